// dg_layout/impls/per_channel_cast_fp8.cuh -- 128x1 per-channel FP8 quantisation in one pass.
//
// Computes, for x [M, N] (BF16 or FP32, unit column stride, any row pitch; the host requires M % 128 == 0):
//   sf[i, n]  = scale(max |x[128 i : 128 i + 128, n]|), FP32 row-major [M / 128, N]
//   out[m, n] = e4m3(x[m, n] * (1 / sf[m / 128, n])), FP8 with row pitch `out_row_stride` bytes.
// Scale and rounding rules: common/fp8_cast.cuh. Each CTA holds one 128 x 128 tile in registers
// (common/cast_tile.cuh), so every input element is read once; CTAs stride over tiles.
//
// Warp roles: one role, kTileWarps "tile warps" (256 threads); a thread holds 64 input values as raw words
// (32 registers for BF16, 64 for FP32).
// Reduction: 16 column maxima per lane -> shuffle across the 4 rows a warp holds (xor 8, 16) ->
// shared warp_col_amax[8 warps][128] -> thread c < 128 folds column c into a scale and its reciprocal ->
// shared col_inv[128] (one __frcp_rn per column, not one per column per thread).
// Registers: at most 64 for BF16 (__launch_bounds__ min 4 CTAs per SM, so four 32 KiB tiles are in flight per
// SM, as in the per-block cast; unbounded, ptxas took 74 and three fitted; at 64 it spills 12 bytes, L1-resident);
// at most 128 for FP32 (two 64 KiB tiles).
// Shared memory: 4.5 KiB static. Two __syncthreads per tile.
#pragma once

#include <dg_layout/common/cast_tile.cuh>

namespace dg::layout {

template <typename T>
__global__ void __launch_bounds__(kTileThreads, sizeof(T) == 2 ? 4 : 2)
    per_channel_cast_fp8_impl(const T* __restrict__ x, unsigned char* __restrict__ out, float* __restrict__ sf,
                              long long m, long long n, long long x_row_stride, long long out_row_stride,
                              unsigned int use_ue8m0, unsigned int vec_ok) {
    __shared__ float warp_col_amax[kTileWarps][kTile];
    __shared__ __align__(16) float col_inv[kTile];
    // NOTE: 32-bit tile indices (the host checks that the tile count fits): no 64-bit division per tile.
    const unsigned int tiles_m = static_cast<unsigned int>((m + kTile - 1) / kTile);
    const unsigned int tiles_n = static_cast<unsigned int>((n + kTile - 1) / kTile);
    const int tile_warp = static_cast<int>(threadIdx.x / 32);
    const int lane_col = static_cast<int>(threadIdx.x % kLanesPerRow) * kChunk;

    for (unsigned int tile = blockIdx.x; tile < tiles_m * tiles_n; tile += gridDim.x) {
        const unsigned int row_tile = tile / tiles_n;
        const long long tm = row_tile, tn = tile - row_tile * tiles_n;
        RawChunk<T> v[kRowPasses];
        load_tile(x, m, n, x_row_stride, tm * kTile, tn * kTile, vec_ok != 0, v);

        // Step 1: column maxima over this thread's rows, then over the warp's rows (lanes 8 and 16 apart).
        float cmax[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
            cmax[i] = 0.0f;
#pragma unroll
            for (int p = 0; p < kRowPasses; ++p) cmax[i] = max_nan(cmax[i], fabsf(v[p].get(i)));
#pragma unroll
            for (int offset = kLanesPerRow; offset < 32; offset *= 2)
                cmax[i] = max_nan(cmax[i], __shfl_xor_sync(0xffffffffu, cmax[i], offset));
        }
        if (threadIdx.x % 32 < kLanesPerRow) {
#pragma unroll
            for (int i = 0; i < kChunk; ++i) warp_col_amax[tile_warp][lane_col + i] = cmax[i];
        }
        __syncthreads();

        // Step 2: fold the warps; thread c owns column c of the tile and writes its scale.
        if (threadIdx.x < kTile) {
            float a = 0.0f;
#pragma unroll
            for (int w = 0; w < kTileWarps; ++w) a = max_nan(a, warp_col_amax[w][threadIdx.x]);
            const float scale = fp8_scale(a, use_ue8m0 != 0);
            col_inv[threadIdx.x] = __frcp_rn(scale);
            const long long col = tn * kTile + threadIdx.x;
            if (col < n) sf[tm * n + col] = scale;
        }
        __syncthreads();

        float inv[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) inv[i] = col_inv[lane_col + i];
        // NOTE: no barrier needed here: the next tile writes col_inv only after its first barrier, which
        // every thread reaches after these reads, and warp_col_amax was last read before the second barrier.
        store_tile(out, m, n, out_row_stride, tm * kTile, tn * kTile, vec_ok != 0, v, inv);
    }
}

}  // namespace dg::layout
