// Host launcher of sm90_fp8_gemm_1d1d (dg_core/impls/sm90_fp8_gemm_1d1d.cuh): D (FP32) += A @ B^T with
// 1x128 per-token scales on both A and B (the weight-gradient recipe).
//
// Inputs arrive validated by csrc/apis/fp8_gemm.hpp, which has already made D hold C (copied when C is a
// distinct tensor, zeroed when there is no C): this launcher only adds A @ B^T. A [M, K], B [N, K] FP8
// K-major; SFA FP32 [M, ceil(K/128)] and SFB FP32 [N, ceil(K/128)], both MN-major with strides
// (1, align(MN, 4)); D FP32 row-major.
#pragma once

#include "sm90_fp8_gemm_common.hpp"

namespace dg::kernels {

inline void sm90_fp8_gemm_1d1d(const TensorView& a, const TensorView& sfa, const TensorView& b, const TensorView& sfb,
                               const TensorView& d, int64_t m, int64_t n, int64_t k, CUstream stream) {
    const std::string why = sm90_fp8_can_implement(Sm90Fp8Kind::k1D1D, m, n, k, 0, 0, 0);
    DG_CHECK_VALUE(why.empty(), "sm90_fp8_gemm_1d1d cannot run this problem: {}", why);
    const Sm90Fp8Plan& plan = sm90_fp8_plan(Sm90Fp8Kind::k1D1D, m, n, k, 0, 0);
    const Sm90Fp8Config& c = plan.cfg;
    const int64_t k_blocks = (k + 127) / 128;

    CUtensorMap tmap_a = sm90_fp8_operand_map(a, static_cast<int>(m), c.block_m);
    CUtensorMap tmap_b = sm90_fp8_operand_map(b, static_cast<int>(n), c.block_n / c.cluster_m);
    CUtensorMap tmap_sfa = sm90_fp8_sf_map(sfa, m, k_blocks, c.block_m);
    CUtensorMap tmap_sfb = sm90_fp8_sf_map(sfb, n, k_blocks, c.block_n);
    CUtensorMap tmap_d = sm90_fp8_output_map(d, m, n, c);
    unsigned int um = static_cast<unsigned int>(m), un = static_cast<unsigned int>(n),
                 uk = static_cast<unsigned int>(k), splits = static_cast<unsigned int>(c.num_splits);
    void* params[] = {&tmap_a, &tmap_b, &tmap_sfa, &tmap_sfb, &tmap_d, &um, &un, &uk, &splits};
    launch(*plan.kernel, sm90_fp8_launch_config(c, stream), params);
}

}  // namespace dg::kernels
