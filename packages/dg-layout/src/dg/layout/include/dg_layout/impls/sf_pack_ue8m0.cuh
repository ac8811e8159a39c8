// dg_layout/impls/sf_pack_ue8m0.cuh -- FP32 scale factors into packed UE8M0, MN-major TMA-aligned (spec 3.4).
//
// Computes, for in [G, MN_in, S] FP32 with any element strides (sg, smn, ss), P = ceil(S / 4):
//   e(x)            = (bits(x) >> 23) & 0xff                     (the IEEE exponent byte, taken exactly: a power
//                                                                 of two 2^k gives k + 127; other values give
//                                                                 floor(log2 |x|) + 127; the sign is dropped)
//   out[g, mn, p]   = e(in[g, mn / row_div, 4p]) | e(..4p+1) << 8 | e(..4p+2) << 16 | e(..4p+3) << 24
//                     (entries with 4p + q >= S contribute byte 0)
// out is INT32 [G, MN, P] with strides (P * tma_mn, 1, tma_mn), tma_mn = align(MN, 4); padding rows are not
// written. row_div = 128 broadcasts 128x128-block scales to their 128 rows (spec 3.6 rule 4) in the same pass.
//
// Work split, general path: tiles of 64 MN rows x 64 input columns (16 packed words per row; common/sf_tile.cuh)
// in a 1-D list of `num_tiles` (< 2^31, checked by the host); CTAs stride over it.
// Block: kSfThreads = 256 threads, one role "pack threads": 16 independent loads per thread per tile, then 4
// word stores per thread, a warp writing 128 consecutive bytes of one output column.
// Broadcast path (row_div a multiple of 64, i.e. rule 4): no shared memory, no barriers; a warp job is (group,
// input row, 4 packed columns): 16 independent loads (the same addresses in every lane), four words, then the
// warp writes them to the input row's row_div output rows (128-byte stores). Warps stride over the jobs
// (< 2^31, checked by the host); a job writes 2 KiB for one load round trip, so few jobs per SM hide the latency.
// Shared memory: the tile's exponent bytes, rows padded to 68 bytes (17 words: the word-per-row reads of the
// store are conflict-free). Every byte of the tile is written each time (0 past the edge), so no zeroing pass.
// Per tile: load + extract bytes -> __syncthreads -> assemble words, store along MN -> __syncthreads.
#pragma once

#include <dg_layout/common/sf_tile.cuh>

namespace dg::layout {

constexpr int kBroadcastWords = 4;  // packed columns per broadcast job

__device__ __forceinline__ void pack_ue8m0_broadcast(const float* in, int* out, long long num_groups, long long mn,
                                                     long long s, long long sg, long long smn, long long ss,
                                                     long long row_div, long long tma_mn) {
    constexpr int kWarps = kSfThreads / 32;
    const long long packed = (s + 3) / 4;
    const unsigned int rows_in = static_cast<unsigned int>((mn + row_div - 1) / row_div);
    const unsigned int word_groups = static_cast<unsigned int>((packed + kBroadcastWords - 1) / kBroadcastWords);
    const unsigned int jobs = static_cast<unsigned int>(num_groups) * rows_in * word_groups;
    const int lane = static_cast<int>(threadIdx.x % 32);
    const unsigned int warp_stride = gridDim.x * kWarps;

    for (unsigned int job = blockIdx.x * kWarps + threadIdx.x / 32; job < jobs; job += warp_stride) {
        const unsigned int rest = job / word_groups;
        const int p0 = static_cast<int>(job - rest * word_groups) * kBroadcastWords;
        const unsigned int row = rest % rows_in;
        const long long g = rest / rows_in;
        // Step 1: the job's 16 input values, all loads issued first (columns past S read as byte 0).
        const float* src = in + g * sg + row * smn;
        float v[4 * kBroadcastWords];
#pragma unroll
        for (int k = 0; k < 4 * kBroadcastWords; ++k) {
            const long long col = 4LL * p0 + k;
            v[k] = col < s ? __ldg(src + col * ss) : 0.0f;
        }
        unsigned int words[kBroadcastWords];
#pragma unroll
        for (int c = 0; c < kBroadcastWords; ++c) {
            words[c] = 0u;
#pragma unroll
            for (int q = 0; q < 4; ++q) words[c] |= ((__float_as_uint(v[4 * c + q]) >> 23) & 0xffu) << (8 * q);
        }
        // Step 2: every output row of this input row gets the same words; lanes walk MN.
        const long long first = static_cast<long long>(row) * row_div;
        const int rows = static_cast<int>(mn - first < row_div ? mn - first : row_div);
        const int cols = static_cast<int>(packed - p0 < kBroadcastWords ? packed - p0 : kBroadcastWords);
        int* dst = out + g * packed * tma_mn + p0 * tma_mn + first;
        for (int i = lane; i < rows; i += 32) {
#pragma unroll
            for (int c = 0; c < kBroadcastWords; ++c)
                if (c < cols) dst[c * tma_mn + i] = static_cast<int>(words[c]);
        }
    }
}

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
    const unsigned int tiles_mn = static_cast<unsigned int>((mn + kSfTileMn - 1) / kSfTileMn);
    const unsigned int tiles_s = static_cast<unsigned int>((s + kSfTileS - 1) / kSfTileS);
    const unsigned int num_tiles = tiles_mn * tiles_s * static_cast<unsigned int>(num_groups);
    const int tid = static_cast<int>(threadIdx.x);
    if (row_div > 1 && row_div % kSfTileMn == 0) {
        pack_ue8m0_broadcast(in, out, num_groups, mn, s, sg, smn, ss, row_div, tma_mn);
        return;
    }

    for (unsigned int index = blockIdx.x; index < num_tiles; index += gridDim.x) {
        const SfTile t = sf_tile_at(index, tiles_mn, tiles_s, mn, s, kSfTileS);
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
