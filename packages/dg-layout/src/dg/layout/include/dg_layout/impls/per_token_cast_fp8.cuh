// dg_layout/impls/per_token_cast_fp8.cuh -- 1x128 per-token FP8 quantisation in one pass.
//
// Computes, for x [M, K] (BF16 or FP32, unit column stride, any row pitch) and S = ceil(K / 128):
//   sf[m, s]   = recipe scale of max |x[m, 128 s : 128 s + 128]|   (columns >= K count as 0; see common/fp8_cast)
//   out[m, k]  = e4m3(x[m, k] * (1 / sf[m, k / 128]))
// `out` is FP8 with row pitch `out_row_stride` bytes. `sf` is FP32 written at m * sf_stride_m + s * sf_stride_s,
// so the host picks the layout: K-major [M, S] (strides (S, 1)) or MN-major TMA-aligned (strides (1, align(M, 4))),
// which is the layout the SM90 FP8 GEMMs read (no transform kernel afterwards).
//
// Work split: a "group" is one (row, 128-column block). Eight lanes own a group, 16 consecutive columns each
// (16-byte loads/stores when `vec_ok`); a warp owns four consecutive groups of the same or adjacent rows, so one
// warp reads 512 consecutive input elements. Warps stride over groups (grid-stride loop, whole warps move together
// so the shuffles always have all 32 lanes).
//
// Warp roles: one role, kCastWarps "cast warps" per CTA; no shared memory, no barriers.
// Constraints: groups are indexed with 64-bit integers; every access is guarded by the row/column bounds.
#pragma once

#include <dg_layout/common/fp8_cast.cuh>

namespace dg::layout {

template <typename T>
__global__ void __launch_bounds__(256)
    per_token_cast_fp8_impl(const T* __restrict__ x, unsigned char* __restrict__ out, float* __restrict__ sf,
                            long long m, long long k, long long x_row_stride, long long out_row_stride,
                            long long sf_stride_m, long long sf_stride_s, unsigned int use_ue8m0, unsigned int vec_ok) {
    constexpr int kCastWarps = 8;
    constexpr int kLanesPerGroup = 128 / kChunk;
    constexpr int kGroupsPerWarp = 32 / kLanesPerGroup;
    static_assert(kLanesPerGroup * kChunk == 128, "a group is 128 columns");
    static_assert(kLanesPerGroup * kGroupsPerWarp == 32, "a warp holds whole groups");

    const int lane = static_cast<int>(threadIdx.x % 32);
    const int cast_warp = static_cast<int>(threadIdx.x / 32);
    const long long num_s = (k + 127) / 128;
    const long long num_groups = m * num_s;
    const long long warp_global = static_cast<long long>(blockIdx.x) * kCastWarps + cast_warp;
    const long long warp_stride = static_cast<long long>(gridDim.x) * kCastWarps;

    for (long long base = warp_global * kGroupsPerWarp; base < num_groups; base += warp_stride * kGroupsPerWarp) {
        // Step 1: locate this lane's 16 columns; lanes of a group beyond the end work on nothing.
        const long long group = base + lane / kLanesPerGroup;
        const bool valid = group < num_groups;
        const long long row = valid ? group / num_s : 0;
        const long long s = valid ? group % num_s : 0;
        const long long col0 = s * 128 + (lane % kLanesPerGroup) * kChunk;
        const long long n_valid = valid ? k - col0 : 0;

        // Step 2: load and reduce |x| over the eight lanes of the group.
        float v[kChunk];
        load_chunk(x + row * x_row_stride + col0, n_valid, vec_ok != 0, v);
        float amax = chunk_abs_max(v);
#pragma unroll
        for (int offset = kLanesPerGroup / 2; offset > 0; offset /= 2)
            amax = max_nan(amax, __shfl_xor_sync(0xffffffffu, amax, offset));

        // Step 3: scale, write the scale once per group, write the FP8 bytes.
        const float scale = fp8_scale(amax, use_ue8m0 != 0);
        const float inv = __frcp_rn(scale);
        if (valid && lane % kLanesPerGroup == 0) sf[row * sf_stride_m + s * sf_stride_s] = scale;
        if (valid) store_chunk_fp8(out + row * out_row_stride + col0, n_valid, vec_ok != 0, v, inv);
    }
}

}  // namespace dg::layout
