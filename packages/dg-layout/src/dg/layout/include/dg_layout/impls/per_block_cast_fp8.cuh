// dg_layout/impls/per_block_cast_fp8.cuh -- 128x128 per-block FP8 quantisation in one pass.
//
// Computes, for x [M, N] (BF16 or FP32, unit column stride, any row pitch):
//   sf[i, j]  = scale(max |x| over tile (i, j)), FP32 row-major [ceil(M/128), ceil(N/128)]
//               (rows/columns past the edge count as 0, the reference's zero padding)
//   out[m, n] = e4m3(x[m, n] * (1 / sf[m / 128, n / 128])), FP8 with row pitch `out_row_stride` bytes.
// Scale and rounding rules: common/fp8_cast.cuh. Each CTA holds one 128 x 128 tile in registers
// (common/cast_tile.cuh), so every input element is read once; CTAs stride over tiles.
//
// Warp roles: one role, kTileWarps "tile warps" (256 threads); a thread holds 64 input values as raw words
// (32 registers for BF16, 64 for FP32).
// Registers: at most 64 for BF16 (__launch_bounds__ min 4 CTAs per SM: four 32 KiB tiles in flight per SM; the
// bound keeps ptxas from drifting past 64, which would leave room for only three); at most 128 for FP32.
// Reduction: lane max -> warp shuffle (5 levels) -> shared warp_amax[8] -> every thread folds the 8 values.
// Shared memory: 32 B static. Two __syncthreads per tile.
#pragma once

#include <dg_layout/common/cast_tile.cuh>

namespace dg::layout {

template <typename T>
__global__ void __launch_bounds__(kTileThreads, sizeof(T) == 2 ? 4 : 2)
    per_block_cast_fp8_impl(const T* __restrict__ x, unsigned char* __restrict__ out, float* __restrict__ sf,
                            long long m, long long n, long long x_row_stride, long long out_row_stride,
                            unsigned int use_ue8m0, unsigned int vec_ok) {
    __shared__ float warp_amax[kTileWarps];
    // NOTE: 32-bit tile indices (the host checks that the tile count fits): no 64-bit division per tile.
    const unsigned int tiles_m = static_cast<unsigned int>((m + kTile - 1) / kTile);
    const unsigned int tiles_n = static_cast<unsigned int>((n + kTile - 1) / kTile);
    const int tile_warp = static_cast<int>(threadIdx.x / 32);

    for (unsigned int tile = blockIdx.x; tile < tiles_m * tiles_n; tile += gridDim.x) {
        const unsigned int row_tile = tile / tiles_n;
        const long long tm = row_tile, tn = tile - row_tile * tiles_n;
        RawChunk<T> v[kRowPasses];
        load_tile(x, m, n, x_row_stride, tm * kTile, tn * kTile, vec_ok != 0, v);

        // Step 1: block amax.
        float amax = 0.0f;
#pragma unroll
        for (int p = 0; p < kRowPasses; ++p) amax = max_nan(amax, raw_chunk_abs_max(v[p]));
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) amax = max_nan(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
        if (threadIdx.x % 32 == 0) warp_amax[tile_warp] = amax;
        __syncthreads();
#pragma unroll
        for (int w = 0; w < kTileWarps; ++w) amax = max_nan(amax, warp_amax[w]);
        // NOTE: the second barrier keeps a fast warp's next tile from overwriting warp_amax under a slow reader.
        __syncthreads();

        // Step 2: one scale for the tile, written by thread 0.
        const float scale = fp8_scale(amax, use_ue8m0 != 0);
        if (threadIdx.x == 0) sf[tm * tiles_n + tn] = scale;
        float inv[kChunk];
        const float r = __frcp_rn(scale);
#pragma unroll
        for (int i = 0; i < kChunk; ++i) inv[i] = r;
        store_tile(out, m, n, out_row_stride, tm * kTile, tn * kTile, vec_ok != 0, v, inv);
    }
}

}  // namespace dg::layout
