// Host launcher of sm90_fp8_gemm_1d2d (dg_core/impls/sm90_fp8_gemm_1d2d.cuh): D (BF16) = A @ B^T with
// 1x128 per-token scales on A and 128x128 block scales on B; also the fp8_gemm_nt_skip_head_mid form.
//
// Inputs arrive validated by csrc/apis/fp8_gemm.hpp: A [M, K] and B [N, K] FP8 K-major (16-byte row
// pitch), SFA FP32 [M, ceil(K/128)] MN-major with strides (1, align(M, 4)), SFB FP32 [ceil(N/128),
// ceil(K/128)] contiguous, D BF16 row-major. The kernel reads SFB through a plain pointer with row
// length ceil(K/128), hence the contiguity requirement.
#pragma once

#include "../runtime/workspace.hpp"
#include "sm90_fp8_gemm_common.hpp"

namespace dg::kernels {

inline void sm90_fp8_gemm_1d2d_launch(const TensorView& a, const TensorView& sfa, const TensorView& b,
                                      const TensorView& sfb, const TensorView& d, int64_t m, int64_t n, int64_t k,
                                      int head_left, int head_mid, int head_right, CUstream stream) {
    const std::string why = sm90_fp8_can_implement(Sm90Fp8Kind::k1D2D, m, n, k, head_left, head_mid, head_right);
    DG_CHECK_VALUE(why.empty(), "sm90_fp8_gemm_1d2d cannot run this problem: {}", why);
    const Sm90Fp8Plan& plan = sm90_fp8_plan(Sm90Fp8Kind::k1D2D, m, n, k, head_left, head_right);
    const Sm90Fp8Config& c = plan.cfg;
    const int64_t k_blocks = (k + 127) / 128;
    const int64_t d_cols = head_mid > 0 ? n + (n / (head_left + head_right)) * head_mid : n;

    CUtensorMap tmap_a = sm90_fp8_operand_map(a, static_cast<int>(m), c.block_m);
    CUtensorMap tmap_b = sm90_fp8_operand_map(b, static_cast<int>(n), c.block_n / c.cluster_m);
    CUtensorMap tmap_sfa = sm90_fp8_sf_map(sfa, m, k_blocks, c.block_m);
    CUtensorMap tmap_d = sm90_fp8_output_map(d, m, d_cols, c);
    const float* sfb_ptr = static_cast<const float*>(sfb.data);
    unsigned int um = static_cast<unsigned int>(m), un = static_cast<unsigned int>(n),
                 uk = static_cast<unsigned int>(k);
    unsigned int hl = static_cast<unsigned int>(head_left), hm = static_cast<unsigned int>(head_mid),
                 hr = static_cast<unsigned int>(head_right);
    // The split tail (heuristics/sm90_fp8.hpp, choose_tail_split) sums the splits of its tiles through this
    // stream's workspace; a stream being captured into a CUDA graph, or one the driver cannot give a workspace, runs
    // the same kernel with every tile whole.
    unsigned int splits = 1, whole = 0, tail_splits = 0;
    float* workspace = nullptr;
    unsigned int* counters = nullptr;
    DG_ASSERT(c.num_splits == 1);
    if (c.tail_splits > 0 && !stream_capturing(stream)) {
        const int64_t tiles = ((m + c.block_m - 1) / c.block_m) * ((n + c.block_n - 1) / c.block_n);
        const int64_t tail_tiles = tiles - c.num_whole;
        const SplitWorkspace ws =
            split_workspace(current_device().ordinal, stream, static_cast<size_t>(tail_tiles * (c.block_m / 64)),
                            static_cast<size_t>(heuristics::tail_workspace_bytes(c, tail_tiles)));
        if (ws.counters != nullptr) {
            whole = static_cast<unsigned int>(c.num_whole);
            tail_splits = static_cast<unsigned int>(c.tail_splits);
            workspace = ws.partials;
            counters = ws.counters;
        }
    }
    void* params[] = {&tmap_a, &tmap_b, &tmap_sfa, &tmap_d, &sfb_ptr,   &um,       &un,    &uk,
                      &hl,     &hm,     &hr,       &splits, &workspace, &counters, &whole, &tail_splits};
    launch(*plan.kernel, sm90_fp8_launch_config(c, stream), params);
}

inline void sm90_fp8_gemm_1d2d(const TensorView& a, const TensorView& sfa, const TensorView& b, const TensorView& sfb,
                               const TensorView& d, int64_t m, int64_t n, int64_t k, CUstream stream) {
    sm90_fp8_gemm_1d2d_launch(a, sfa, b, sfb, d, m, n, k, 0, 0, 0, stream);
}

// fp8_gemm_nt_skip_head_mid: GEMM column c goes to D column c + floor((c + right) / (left + right)) * mid;
// the `mid` gap columns of every head are left untouched.
inline void sm90_fp8_gemm_1d2d_skip_head_mid(const TensorView& a, const TensorView& sfa, const TensorView& b,
                                             const TensorView& sfb, const TensorView& d, int64_t m, int64_t n,
                                             int64_t k, int left, int mid, int right, CUstream stream) {
    sm90_fp8_gemm_1d2d_launch(a, sfa, b, sfb, d, m, n, k, left, mid, right, stream);
}

}  // namespace dg::kernels
