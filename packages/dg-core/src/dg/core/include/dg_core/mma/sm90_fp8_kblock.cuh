// dg_core/mma/sm90_fp8_kblock.cuh -- one 128-deep K block of an FP8 tile product on one warpgroup, and
// the promotion of its FP32 partial sums into the main accumulators with the block's scales.
//
// Two-level accumulation (the fine-grained scaling recipe): the tensor cores accumulate one K block of
// 128 (four m64nNk32 wgmma) into `partial`; the CUDA cores then add partial * scale_a(row) * scale_b(col)
// into `accum`. Both arrays use the wgmma accumulator layout: element j of a thread (warp w of the
// warpgroup, lane l) sits at row w*16 + l/4 + 8*((j/2)%2), column (j/4)*8 + (l%4)*2 + j%2.
#pragma once

#include "../ptx/wgmma.cuh"

namespace dg::mma {

constexpr unsigned int kBlockK = 128;            // K elements per scale block and per pipeline stage
constexpr unsigned int kWgmmaK = 32;             // K of one FP8 wgmma
constexpr unsigned int kTileRowBytes = kBlockK;  // one FP8 K-major row of a stage tile = one 128-byte swizzle atom

// wgmma descriptor of a stage tile (rows of one 128-byte K block, 128-byte swizzled, 1024-byte aligned).
DG_DEVICE unsigned long long kblock_desc(const void* smem_tile) {
    return ptx::make_smem_desc_kmajor(smem_tile, 8 * kTileRowBytes, ptx::SmemSwizzle::k128B);
}

// Issues the four wgmma of one K block into `partial` and commits them as one group, without waiting:
// the caller waits (wgmma_wait_group) and fences `partial` before reading it. Takes the tiles' descriptors
// (kblock_desc; NOTE: a kernel that keeps them pinned (ptx::smem_desc_pinned) and advances them per stage spares
// ptxas rebuilding them from the shared-memory address at every K block).
template <unsigned int BLOCK_N>
DG_DEVICE void kblock_mma_issue(unsigned long long desc_a, unsigned long long desc_b, float* partial) {
    using Mma = ptx::WgmmaFp8<BLOCK_N>;
    ptx::accum_fence_array<Mma::kNumAccum>(partial);
    ptx::wgmma_fence();
#pragma unroll
    for (unsigned int kk = 0; kk < kBlockK / kWgmmaK; ++kk)
        Mma::mma(ptx::smem_desc_advance(desc_a, kk * kWgmmaK), ptx::smem_desc_advance(desc_b, kk * kWgmmaK), partial,
                 kk > 0);
    ptx::wgmma_commit_group();
}

// Issues the four wgmma of one K block and waits for them. `smem_a` holds 64 rows x 128 bytes (this
// warpgroup's rows), `smem_b` BLOCK_N rows x 128 bytes, both 128-byte swizzled and 1024-byte aligned.
template <unsigned int BLOCK_N>
DG_DEVICE void kblock_mma(const void* smem_a, const void* smem_b, float* partial) {
    kblock_mma_issue<BLOCK_N>(kblock_desc(smem_a), kblock_desc(smem_b), partial);
    ptx::wgmma_wait_group<0>();
    ptx::accum_fence_array<ptx::WgmmaFp8<BLOCK_N>::kNumAccum>(partial);
}

// accum += partial * scale, where the scale of element j is
//   (row half (j/2)%2 == 0 ? row_scale0 : row_scale1) * (column group j/4 < split_group ? col_scale0 : col_scale1)
// `split_group` is the first 8-column group that takes the second column scale (>= BLOCK_N/8: none).
// The caller zeroes `accum` at the start of a tile.
// kMayStraddle == false (BLOCK_N divides 128): every column takes col_scale0 and `split_group` is ignored.
template <unsigned int BLOCK_N, bool kMayStraddle = true>
DG_DEVICE void promote_1d2d(float* accum, const float* partial, float row_scale0, float row_scale1, float col_scale0,
                            float col_scale1, unsigned int split_group) {
    const float s00 = row_scale0 * col_scale0, s10 = row_scale1 * col_scale0;
    const float s01 = row_scale0 * col_scale1, s11 = row_scale1 * col_scale1;
#pragma unroll
    for (unsigned int g = 0; g < BLOCK_N / 8; ++g) {
        const bool second = kMayStraddle && g >= split_group;
        const float r0 = second ? s01 : s00, r1 = second ? s11 : s10;
        accum[g * 4 + 0] = fmaf(partial[g * 4 + 0], r0, accum[g * 4 + 0]);
        accum[g * 4 + 1] = fmaf(partial[g * 4 + 1], r0, accum[g * 4 + 1]);
        accum[g * 4 + 2] = fmaf(partial[g * 4 + 2], r1, accum[g * 4 + 2]);
        accum[g * 4 + 3] = fmaf(partial[g * 4 + 3], r1, accum[g * 4 + 3]);
    }
}

// promote_1d2d for a single-pass tile whose SFB switch points depend on its column offset: BLOCK_N 176 (a tile at
// column offset o = n0 % 128 spans blocks 0..2 when o + 176 > 256; eight offsets) and 192 (offsets 0 and 64, two
// blocks). `offset` = n0 % 128, a multiple of kStep (= the largest power of two up to 128 dividing BLOCK_N); each
// offset has its own straight-line promotion whose per-group scale choice is a compile-time constant, so the
// promotion stays one FMA per element (no per-group selects).
template <unsigned int BLOCK_N, unsigned int kOffset>
DG_DEVICE void promote_1d2d_at(float* accum, const float* partial, float row_scale0, float row_scale1,
                               const float (&col_scale)[3]) {
    static_assert((kOffset + BLOCK_N - 1) / 128 < 3, "a tile touches at most three SFB blocks");
    float s0[3], s1[3];
#pragma unroll
    for (unsigned int b = 0; b < 3; ++b) s0[b] = row_scale0 * col_scale[b], s1[b] = row_scale1 * col_scale[b];
#pragma unroll
    for (unsigned int g = 0; g < BLOCK_N / 8; ++g) {
        const unsigned int b = (kOffset + g * 8) / 128;
        accum[g * 4 + 0] = fmaf(partial[g * 4 + 0], s0[b], accum[g * 4 + 0]);
        accum[g * 4 + 1] = fmaf(partial[g * 4 + 1], s0[b], accum[g * 4 + 1]);
        accum[g * 4 + 2] = fmaf(partial[g * 4 + 2], s1[b], accum[g * 4 + 2]);
        accum[g * 4 + 3] = fmaf(partial[g * 4 + 3], s1[b], accum[g * 4 + 3]);
    }
}

// Dispatches `offset` (a multiple of kStep below 128) to promote_1d2d_at: a chain of warp-uniform branches, each
// around straight-line code (no wgmma inside).
template <unsigned int BLOCK_N, unsigned int kStep, unsigned int kOffset = 0>
DG_DEVICE void promote_1d2d_3(float* accum, const float* partial, float row_scale0, float row_scale1,
                              const float (&col_scale)[3], unsigned int offset) {
    static_assert(kStep >= 16 && 128 % kStep == 0, "per-offset promotion: offsets are multiples of 16");
    if constexpr (kOffset + kStep >= 128) {
        promote_1d2d_at<BLOCK_N, kOffset>(accum, partial, row_scale0, row_scale1, col_scale);
    } else {
        if (offset == kOffset)
            promote_1d2d_at<BLOCK_N, kOffset>(accum, partial, row_scale0, row_scale1, col_scale);
        else
            promote_1d2d_3<BLOCK_N, kStep, kOffset + kStep>(accum, partial, row_scale0, row_scale1, col_scale, offset);
    }
}

// 1D1D: the column scale is per output column; `col_scale` holds this thread's BLOCK_N/4 values, one per
// (8-column group, column parity): col_scale[g*2 + p] for column g*8 + (lane%4)*2 + p.
template <unsigned int BLOCK_N>
DG_DEVICE void promote_1d1d(float* accum, const float* partial, float row_scale0, float row_scale1,
                            const float* col_scale) {
#pragma unroll
    for (unsigned int g = 0; g < BLOCK_N / 8; ++g) {
#pragma unroll
        for (unsigned int p = 0; p < 2; ++p) {
            const float c = col_scale[g * 2 + p];
            accum[g * 4 + p] = fmaf(partial[g * 4 + p], row_scale0 * c, accum[g * 4 + p]);
            accum[g * 4 + 2 + p] = fmaf(partial[g * 4 + 2 + p], row_scale1 * c, accum[g * 4 + 2 + p]);
        }
    }
}

}  // namespace dg::mma
