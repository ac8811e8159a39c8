// dg_layout/common/sf_tile.cuh -- reading a tile of a strided [G, MN, S] scale-factor tensor into shared memory.
//
// The SF transforms turn an FP32 tensor with arbitrary element strides (sg, smn, ss) into the MN-major
// TMA-aligned layout (spec 3.3). Both transform kernels stage a tile of kTileMn rows x kTileS columns in shared
// memory: the load is coalesced along whichever input dimension has unit stride (threadIdx.x walks S for a
// K-major input, MN for an MN-major one), the store always walks MN (the output's unit-stride dimension).
// Block shape: (kTileLanes = 32, kTileRowsPerStep = 8) = 256 threads.
#pragma once

namespace dg::layout {

constexpr int kTileLanes = 32;
constexpr int kTileRowsPerStep = 8;
constexpr int kSfTileThreads = kTileLanes * kTileRowsPerStep;
static_assert(kSfTileThreads == 256, "the transform kernels are launched with 256 threads");

// Calls fn(i_mn, i_s, value) for every in-range element of the tile at (mn0, s0) of group g.
// Input row index is mn / row_div (row_div = 128 broadcasts 128x128-block scales to rows; 1 otherwise).
template <int kTileMn, int kTileS, typename Fn>
__device__ __forceinline__ void for_each_tile_element(const float* in, long long g, long long mn0, long long s0,
                                                      long long mn, long long s, long long sg, long long smn,
                                                      long long ss, long long row_div, Fn&& fn) {
    static_assert(kTileMn % kTileLanes == 0 && kTileS % kTileLanes == 0, "tiles are whole warps wide");
    static_assert(kTileMn % kTileRowsPerStep == 0 && kTileS % kTileRowsPerStep == 0, "tiles are whole steps");
    const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
    const float* base = in + g * sg;
    if (smn == 1 && row_div == 1) {
        // MN-major input: lanes walk MN.
        for (int j = ty; j < kTileS; j += kTileRowsPerStep)
            for (int i = tx; i < kTileMn; i += kTileLanes) {
                const long long r = mn0 + i, c = s0 + j;
                if (r < mn && c < s) fn(i, j, __ldg(base + r * smn + c * ss));
            }
    } else {
        // K-major (or broadcast) input: lanes walk S.
        for (int i = ty; i < kTileMn; i += kTileRowsPerStep)
            for (int j = tx; j < kTileS; j += kTileLanes) {
                const long long r = mn0 + i, c = s0 + j;
                if (r < mn && c < s) fn(i, j, __ldg(base + (r / row_div) * smn + c * ss));
            }
    }
}

}  // namespace dg::layout
