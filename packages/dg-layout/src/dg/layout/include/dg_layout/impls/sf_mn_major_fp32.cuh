// dg_layout/impls/sf_mn_major_fp32.cuh -- FP32 scale factors into the MN-major TMA-aligned layout.
//
// Computes out[g, mn, s] = in[g, mn, s] for in [G, MN, S] with any element strides (sg, smn, ss), where out has
// strides (S * tma_mn, 1, tma_mn), tma_mn = align(MN, 4) (spec 3.3): column s of group g is a run of MN
// consecutive floats followed by tma_mn - MN padding floats that this kernel never writes.
//
// Grid: x over MN tiles, y over S tiles, z over groups (each dimension strides by its grid size, so any G, MN, S
// is covered). Block: 32 x 8 threads, one role "transpose threads". Shared memory: a 32 x 33 float tile (the
// extra column keeps the transposed reads free of bank conflicts). One tile per step: load (coalesced along the
// input's unit-stride dimension) -> __syncthreads -> store (coalesced along MN) -> __syncthreads.
#pragma once

#include <dg_layout/common/sf_tile.cuh>

namespace dg::layout {

__global__ void __launch_bounds__(kSfTileThreads)
    sf_mn_major_fp32_impl(const float* __restrict__ in, float* __restrict__ out, long long num_groups, long long mn,
                          long long s, long long sg, long long smn, long long ss, long long tma_mn) {
    constexpr int kTileMn = 32, kTileS = 32;
    __shared__ float tile[kTileS][kTileMn + 1];
    const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);

    for (long long g = blockIdx.z; g < num_groups; g += gridDim.z)
        for (long long s0 = static_cast<long long>(blockIdx.y) * kTileS; s0 < s; s0 += gridDim.y * kTileS)
            for (long long mn0 = static_cast<long long>(blockIdx.x) * kTileMn; mn0 < mn; mn0 += gridDim.x * kTileMn) {
                for_each_tile_element<kTileMn, kTileS>(in, g, mn0, s0, mn, s, sg, smn, ss, 1,
                                                       [&](int i, int j, float v) { tile[j][i] = v; });
                __syncthreads();
                float* dst = out + g * s * tma_mn;
                for (int j = ty; j < kTileS; j += kTileRowsPerStep) {
                    const long long r = mn0 + tx, c = s0 + j;
                    if (r < mn && c < s) dst[c * tma_mn + r] = tile[j][tx];
                }
                __syncthreads();
            }
}

}  // namespace dg::layout
