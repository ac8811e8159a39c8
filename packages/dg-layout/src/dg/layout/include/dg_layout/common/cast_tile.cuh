// dg_layout/common/cast_tile.cuh -- the 128 x 128 register tile shared by the per-block and per-channel casts.
//
// Thread layout of a tile (kTileThreads = 256 threads, 8 warps): thread t owns columns 16 * (t % 8) .. +15 of
// rows t / 8 + 32 p, p = 0..3 (kRowPasses), i.e. 64 values in registers (kept as raw input words); 8 lanes cover a
// 128-column row (16-byte loads/stores when `vec_ok`), a warp covers 4 rows per pass. Out-of-range elements load as 0
// (the reference's zero padding) and are never stored.
#pragma once

#include <dg_layout/common/fp8_cast.cuh>

namespace dg::layout {

constexpr int kTileThreads = 256;
constexpr int kTileWarps = kTileThreads / 32;
constexpr int kTile = 128;
constexpr int kLanesPerRow = kTile / kChunk;               // 8
constexpr int kRowsPerPass = kTileThreads / kLanesPerRow;  // 32
constexpr int kRowPasses = kTile / kRowsPerPass;           // 4
static_assert(kLanesPerRow * kChunk == kTile, "a row of the tile is split into whole chunks");
static_assert(kRowsPerPass * kRowPasses == kTile, "the passes cover the tile's rows");
static_assert(32 % kLanesPerRow == 0, "a warp holds whole rows");

// Load the tile at (row0, col0) into v[pass] (raw words: a BF16 tile costs 32 registers per thread, not 64);
// out-of-range elements are 0.
template <typename T>
__device__ __forceinline__ void load_tile(const T* x, long long m, long long n, long long x_row_stride, long long row0,
                                          long long col0, bool vec_ok, RawChunk<T> (&v)[kRowPasses]) {
    const long long col = col0 + (threadIdx.x % kLanesPerRow) * kChunk;
#pragma unroll
    for (int p = 0; p < kRowPasses; ++p) {
        const long long row = row0 + threadIdx.x / kLanesPerRow + p * kRowsPerPass;
        const long long n_valid = row < m ? n - col : 0;
        load_raw_chunk(x + (row < m ? row : 0) * x_row_stride + col, n_valid, vec_ok, v[p]);
    }
}

template <typename T>
__device__ __forceinline__ void store_tile(unsigned char* out, long long m, long long n, long long out_row_stride,
                                           long long row0, long long col0, bool vec_ok,
                                           const RawChunk<T> (&v)[kRowPasses], const float (&inv)[kChunk]) {
    const long long col = col0 + (threadIdx.x % kLanesPerRow) * kChunk;
#pragma unroll
    for (int p = 0; p < kRowPasses; ++p) {
        const long long row = row0 + threadIdx.x / kLanesPerRow + p * kRowsPerPass;
        if (row >= m) continue;
        // Per-column scales: scale each value with its own column's reciprocal (per-block passes 16 equal ones).
        float scaled[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) scaled[i] = __fmul_rn(v[p].get(i), inv[i]);
        store_chunk_fp8(out + row * out_row_stride + col, n - col, vec_ok, scaled, 1.0f);
    }
}

}  // namespace dg::layout
