// dg_layout/impls/sf_mn_major_fp32.cuh -- FP32 scale factors into the MN-major TMA-aligned layout.
//
// Computes out[g, mn, s] = in[g, mn, s] for in [G, MN, S] with any element strides (sg, smn, ss), where out has
// strides (S * tma_mn, 1, tma_mn), tma_mn = align(MN, 4) (spec 3.3): column s of group g is a run of MN
// consecutive floats followed by tma_mn - MN padding floats that this kernel never writes.
//
// Work split: 64 x 64 tiles (common/sf_tile.cuh) in a 1-D list of `num_tiles` (< 2^31, checked by the host);
// CTAs stride over it (grid-stride loop, the grid capped by the host at a few CTAs per SM).
// Block: kSfThreads = 256 threads, one role "transpose threads"; each issues 16 independent 4-byte loads per
// tile (16 KiB in flight per CTA), then 16 stores, a warp writing 128 consecutive bytes of one output column.
// Shared memory: a kSfTileS x (kSfTileMn + 1) float tile (16.3 KiB; the odd pitch keeps both the column-wise
// writes of a K-major load and the row-wise reads of the store free of bank conflicts).
// Per tile: load -> shared -> __syncthreads -> store -> __syncthreads (the next tile overwrites the buffer).
#pragma once

#include <dg_layout/common/sf_tile.cuh>

namespace dg::layout {

__global__ void __launch_bounds__(kSfThreads, kSfMinCtasPerSm)
    sf_mn_major_fp32_impl(const float* __restrict__ in, float* __restrict__ out, long long num_groups, long long mn,
                          long long s, long long sg, long long smn, long long ss, long long tma_mn) {
    constexpr int kPitch = kSfTileMn + 1;
    __shared__ float tile[kSfTileS * kPitch];
    const SfTileGrid grid = sf_tile_grid(num_groups, mn, s, kSfTileS);
    const int tid = static_cast<int>(threadIdx.x);

    for (unsigned int index = blockIdx.x; index < grid.num_tiles; index += gridDim.x) {
        const SfTile t = sf_tile_at(index, grid.tiles_mn, grid.tiles_s, mn, s, kSfTileS);
        // Step 1: the tile into shared memory, transposed (tile[j][i]).
        load_sf_tile<kSfTileS>(in, t, sg, smn, ss, 1, [&](int i, int j, float v) { tile[j * kPitch + i] = v; });
        __syncthreads();

        // Step 2: lanes walk MN: each warp writes 32 consecutive floats of one output column.
        // Thread's elements: column i = tid % 64 (fixed), rows j = j0 + k * kStep.
        constexpr int kStep = kSfThreads / kSfTileMn;
        const int i = tid % kSfTileMn, j0 = tid / kSfTileMn;
        float* dst = out + t.g * s * tma_mn + (t.s0 + j0) * tma_mn + t.mn0 + i;
        if (i < t.mn_left) {
#pragma unroll
            for (int k = 0; k < kSfLoadsPerThread; ++k)
                if (j0 + k * kStep < t.s_left) dst[k * kStep * tma_mn] = tile[(j0 + k * kStep) * kPitch + i];
        }
        __syncthreads();
    }
}

}  // namespace dg::layout
