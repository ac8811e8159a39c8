// dg_layout/impls/sf_pack_ue8m0.cuh -- FP32 scale factors into packed UE8M0, MN-major TMA-aligned (spec 3.4).
//
// Computes, for in [G, MN_in, S] FP32 with any element strides (sg, smn, ss), P = ceil(S / 4):
//   e(x)            = (bits(x) >> 23) & 0xff                     (the IEEE exponent byte, taken exactly: a power
//                                                                 of two 2^k gives k + 127; other values give
//                                                                 floor(log2 |x|) + 127; the sign is dropped)
//   out[g, mn, p]   = e(in[g, mn / row_div, 4p]) | e(..4p+1) << 8 | e(..4p+2) << 16 | e(..4p+3) << 24
//                     (entries with 4p + q >= S contribute byte 0)
// out is INT32 [G, MN, P] with strides (P * tma_mn, 1, tma_mn), tma_mn = align(MN, 4); padding rows are not
// written. row_div > 1 broadcasts each input row to row_div output rows; dg.layout sends the broadcast of 128x128-block
// scales (spec 3.6 rule 4, row_div = 128) to sf_pack_ue8m0_broadcast.cuh instead.
//
// Work split, general path: tiles of 64 MN rows x 64 input columns (16 packed words per row; common/sf_tile.cuh)
// in a 1-D list of `num_tiles` (< 2^31, checked by the host); CTAs stride over it.
// Block: kSfThreads = 256 threads, one role "pack threads": 16 independent loads per thread per tile, then 4
// word stores per thread, a warp writing 128 consecutive bytes of one output column.
// Shared memory: the tile's exponent bytes, rows padded to 68 bytes (17 words: the word-per-row reads of the
// store are conflict-free). Every byte of the tile is written each time (0 past the edge), so no zeroing pass.
// Per tile: load + extract bytes -> __syncthreads -> assemble words, store along MN -> __syncthreads.
#pragma once

#include <dg_layout/common/sf_tile.cuh>

namespace dg::layout {

__global__ void __launch_bounds__(kSfThreads, kSfMinCtasPerSm)
    sf_pack_ue8m0_impl(const float* __restrict__ in, int* __restrict__ out, long long num_groups, long long mn,
                       long long s, long long sg, long long smn, long long ss, long long row_div, long long tma_mn) {
    constexpr int kTilePacked = kSfTileS / 4;
    constexpr int kRowWords = kTilePacked + 1;
    static_assert(kRowWords % 2 == 1, "odd word pitch avoids bank conflicts");
    constexpr int kStores = kSfTileMn * kTilePacked / kSfThreads;
    static_assert(kSfTileMn * kTilePacked % kSfThreads == 0, "the threads cover the packed tile in whole steps");
    __shared__ unsigned int words[kSfTileMn * kRowWords];
    unsigned char* exps = reinterpret_cast<unsigned char*>(words);
    const long long packed = (s + 3) / 4;
    const SfTileGrid grid = sf_tile_grid(num_groups, mn, s, kSfTileS);
    const int tid = static_cast<int>(threadIdx.x);

    for (unsigned int index = blockIdx.x; index < grid.num_tiles; index += gridDim.x) {
        const SfTile t = sf_tile_at(index, grid.tiles_mn, grid.tiles_s, mn, s, kSfTileS);
        // Step 1: exponent bytes into shared memory (exps[i][j]).
        load_sf_tile<kSfTileS>(in, t, sg, smn, ss, row_div, [&](int i, int j, float v) {
            exps[i * 4 * kRowWords + j] = static_cast<unsigned char>((__float_as_uint(v) >> 23) & 0xffu);
        });
        __syncthreads();

        // Step 2: one little-endian word per (mn, p), lanes walking MN.
        const int p_left = (t.s_left + 3) / 4;
        // Thread's words: row i = tid % 64 (fixed), packed columns p = p0 + k * kStep.
        constexpr int kStep = kSfThreads / kSfTileMn;
        const int i = tid % kSfTileMn, p0 = tid / kSfTileMn;
        const unsigned int* src = words + i * kRowWords;
        int* dst = out + t.g * packed * tma_mn + (t.s0 / 4 + p0) * tma_mn + t.mn0 + i;
        if (i < t.mn_left) {
#pragma unroll
            for (int k = 0; k < kStores; ++k)
                if (p0 + k * kStep < p_left) dst[k * kStep * tma_mn] = static_cast<int>(src[p0 + k * kStep]);
        }
        __syncthreads();
    }
}

}  // namespace dg::layout
