// dg_layout/common/sf_tile.cuh -- tiles of a strided [G, MN, S] scale-factor tensor for the transform kernels.
//
// The SF transforms turn an FP32 tensor with arbitrary element strides (sg, smn, ss) into the MN-major
// TMA-aligned layout (spec 3.3). Both transform kernels walk a 1-D list of kSfTileMn x kSfTileS tiles, ordered
// (group, S tile, MN tile) with the MN tile fastest, so consecutive CTAs write neighbouring output columns.
// A CTA of kSfThreads threads loads a whole tile with every load issued before the first one is used
// (kSfLoadsPerThread independent loads per thread), coalesced along whichever input dimension has unit stride
// (lanes walk S for a K-major input, MN for an MN-major one); the kernel then stages it in shared memory and
// stores it walking MN, the output's unit-stride dimension.
// Index math: 64-bit once per tile (base pointers), 32-bit per element, no per-element integer division (except
// for a row_div other than 1, which dg.layout never sends here).
#pragma once

namespace dg::layout {

constexpr int kSfThreads = 256;
constexpr int kSfTileMn = 64;
constexpr int kSfTileS = 64;
constexpr int kSfLoadsPerThread = kSfTileMn * kSfTileS / kSfThreads;  // 16
// Register budget: 40 per thread (__launch_bounds__ min 6 CTAs per SM; ptxas fits both transforms without
// spills), so six tiles (96 KiB of loads) per SM are in flight.
constexpr int kSfMinCtasPerSm = 6;
static_assert(kSfTileMn * kSfTileS % kSfThreads == 0, "the threads cover the tile in whole steps");
static_assert(kSfThreads % kSfTileMn == 0 && kSfThreads % kSfTileS == 0, "a step covers whole tile rows/columns");

// One tile's place in the tensor.
struct SfTile {
    long long g, mn0, s0;
    int mn_left, s_left;  // valid rows / columns of this tile (<= the tile size)
};

// The 1-D tile list of a [G, MN, S] tensor: tiles per group along MN and S, and the total.
struct SfTileGrid {
    unsigned int tiles_mn, tiles_s, num_tiles;
};

__device__ __forceinline__ SfTileGrid sf_tile_grid(long long num_groups, long long mn, long long s, int tile_s) {
    SfTileGrid grid;
    grid.tiles_mn = static_cast<unsigned int>((mn + kSfTileMn - 1) / kSfTileMn);
    grid.tiles_s = static_cast<unsigned int>((s + tile_s - 1) / tile_s);
    grid.num_tiles = grid.tiles_mn * grid.tiles_s * static_cast<unsigned int>(num_groups);
    return grid;
}

// Tile `index` of the (group, S tile, MN tile) order; `tiles_mn`, `tiles_s` tiles per group in each dimension.
__device__ __forceinline__ SfTile sf_tile_at(unsigned int index, unsigned int tiles_mn, unsigned int tiles_s,
                                             long long mn, long long s, int tile_s) {
    SfTile t;
    const unsigned int rest = index / tiles_mn;
    t.mn0 = static_cast<long long>(index - rest * tiles_mn) * kSfTileMn;
    t.s0 = static_cast<long long>(rest % tiles_s) * tile_s;
    t.g = rest / tiles_s;
    t.mn_left = static_cast<int>(mn - t.mn0 < kSfTileMn ? mn - t.mn0 : kSfTileMn);
    t.s_left = static_cast<int>(s - t.s0 < tile_s ? s - t.s0 : tile_s);
    return t;
}

// Calls fn(i, j, value) for every element (i < kSfTileMn, j < kTileS) of the tile, value 0 past the tensor's
// edge. Input row of tile row i: mn0 + i, or (mn0 + i) / row_div when row_div > 1 (the pack kernel sends
// row_div = 128, the broadcast of 128x128-block scales to their rows, down its own path instead).
template <int kTileS, typename Fn>
__device__ __forceinline__ void load_sf_tile(const float* in, const SfTile& t, long long sg, long long smn,
                                             long long ss, long long row_div, Fn&& fn) {
    static_assert(kSfThreads % kTileS == 0 && kSfTileMn * kTileS % kSfThreads == 0, "whole steps");
    constexpr int kLoads = kSfTileMn * kTileS / kSfThreads;
    const int tid = static_cast<int>(threadIdx.x);
    const float* base = in + t.g * sg + t.s0 * ss;
    if (row_div != 1) {
        // NOTE: a row_div that is neither 1 nor a multiple of the tile height divides per element (slow, never
        // launched by dg.layout, kept so the kernel is correct for any row_div).
        for (int e = tid; e < kSfTileMn * kTileS; e += kSfThreads) {
            const int i = e / kTileS, j = e % kTileS;
            const bool ok = i < t.mn_left && j < t.s_left;
            fn(i, j, ok ? __ldg(base + ((t.mn0 + i) / row_div) * smn + j * ss) : 0.0f);
        }
        return;
    }
    // A thread's elements are (i0 + k * di, j0 + k * dj), k < kLoads: one fixed coordinate (its lane's), one that
    // steps, so each address is the first one plus k times a constant stride.
    const bool lanes_walk_mn = smn == 1;
    const int i0 = lanes_walk_mn ? tid % kSfTileMn : tid / kTileS;
    const int j0 = lanes_walk_mn ? tid / kSfTileMn : tid % kTileS;
    const int di = lanes_walk_mn ? 0 : kSfThreads / kTileS;
    const int dj = lanes_walk_mn ? kSfThreads / kSfTileMn : 0;
    const float* first = base + (t.mn0 + i0) * smn + j0 * ss;
    const long long step = di * smn + dj * ss;
    float v[kLoads];
    // Step 1: issue every load of this thread before using any (bytes in flight hide the DRAM latency).
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
        const bool ok = i0 + k * di < t.mn_left && j0 + k * dj < t.s_left;
        v[k] = ok ? __ldg(first + k * step) : 0.0f;
    }
    // Step 2: hand them over.
#pragma unroll
    for (int k = 0; k < kLoads; ++k) fn(i0 + k * di, j0 + k * dj, v[k]);
}

}  // namespace dg::layout
