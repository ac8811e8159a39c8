// dg_core/epilogue/sm90_smem_tile.cuh -- writing wgmma accumulators of one warpgroup (64 rows x BLOCK_N)
// into a TMA-store-ready shared-memory tile, and storing / reduce-adding it to global memory.
//
// Shared-memory layout of an output tile of BLOCK_M rows: BLOCK_N / kChunkN column chunks, each a dense
// [BLOCK_M][kChunkN] array whose rows are kChunkN * sizeof(T) bytes (16, 32, 64 or 128) and swizzled the
// way TMA's matching SWIZZLE mode expects: 16-byte unit index ^= (address bits 7..9 masked to the row
// width). Every chunk starts 1024-byte aligned. One chunk of 64 rows is one TMA box (kChunkN, 64).
// NOTE: with 128-byte rows the swizzle makes each warp-wide 4-byte store hit 32 distinct banks.
#pragma once

#include "../common/types.cuh"
#include "../ptx/smem.cuh"
#include "../ptx/sync.cuh"
#include "../ptx/tma.cuh"

namespace dg::epilogue {

template <typename T, unsigned int kChunkN>
struct SmemTileLayout {
    static constexpr unsigned int kRowBytes = kChunkN * sizeof(T);
    static_assert(kRowBytes == 16 || kRowBytes == 32 || kRowBytes == 64 || kRowBytes == 128,
                  "an output chunk row must be 16, 32, 64 or 128 bytes (a TMA swizzle width)");
    static constexpr unsigned int kSwizzleMask = kRowBytes / 16 - 1;
    static constexpr unsigned int kTmaSwizzleBytes = kRowBytes == 16 ? 0 : kRowBytes;

    DG_DEVICE static unsigned int offset(unsigned int row, unsigned int byte_in_row) {
        const unsigned int linear = row * kRowBytes + byte_in_row;
        return linear ^ (((linear >> 7) & kSwizzleMask) << 4);
    }
};

DG_DEVICE unsigned int pack_bf16x2(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned int*>(&v);
}

// Writes the 64 x BLOCK_N accumulators of warpgroup `wg` (rows wg*64 ...) into the tile at `smem_tile`.
// BF16: stmatrix, four 8x8 matrices per instruction (8-column groups g and g+1, rows +0 and +8), whose fragments
// are exactly the wgmma accumulator layout (thread t: row t/4, columns (t%4)*2, +1), with lane 8j+r giving the
// address of row r of matrix j; a quarter of the store instructions of one 4-byte store per element pair.
// kStmatrix == false (BF16) or FP32: one 4- / 8-byte store per element pair. NOTE: measured in the 1D2D kernel
// (H100, harness, M = 4096): stmatrix 1% faster with BLOCK_N 256, 1-3% slower with BLOCK_N 128.
template <typename T, unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kChunkN, bool kStmatrix = true>
DG_DEVICE void write_accum_to_smem(void* smem_tile, const float* accum, unsigned int wg, unsigned int warp_in_wg,
                                   unsigned int lane) {
    using L = SmemTileLayout<T, kChunkN>;
    static_assert(BLOCK_N % kChunkN == 0, "BLOCK_N must be a multiple of the store chunk");
    static_assert(kChunkN % 8 == 0 || sizeof(T) == 4, "BF16 chunks are whole 8-column groups");
    constexpr unsigned int kChunkBytes = BLOCK_M * L::kRowBytes;
    static_assert(kChunkBytes % 1024 == 0, "every output chunk must stay 1024-byte aligned");
    const unsigned int base = ptx::smem_addr(smem_tile);
    if constexpr (sizeof(T) == 2 && kStmatrix) {
        constexpr unsigned int kGroups = BLOCK_N / 8;
        // This lane's matrix j = lane / 8 (row half j % 2, group offset j / 2) and row lane % 8 in it.
        const unsigned int row = wg * 64 + warp_in_wg * 16 + ((lane / 8) % 2) * 8 + lane % 8;
        const unsigned int group_off = lane / 16;
        auto addr_of = [&](unsigned int g) {
            const unsigned int col = (g + group_off) * 8;
            return base + (col / kChunkN) * kChunkBytes + L::offset(row, (col % kChunkN) * 2);
        };
#pragma unroll
        for (unsigned int g = 0; g + 1 < kGroups; g += 2) {
            ptx::stmatrix_x4(addr_of(g), pack_bf16x2(accum[g * 4 + 0], accum[g * 4 + 1]),
                             pack_bf16x2(accum[g * 4 + 2], accum[g * 4 + 3]),
                             pack_bf16x2(accum[g * 4 + 4], accum[g * 4 + 5]),
                             pack_bf16x2(accum[g * 4 + 6], accum[g * 4 + 7]));
        }
        if constexpr (kGroups % 2 == 1) {
            // The last group alone (lanes 0-15 give the addresses of its two matrices).
            constexpr unsigned int g = kGroups - 1;
            ptx::stmatrix_x2(addr_of(g), pack_bf16x2(accum[g * 4 + 0], accum[g * 4 + 1]),
                             pack_bf16x2(accum[g * 4 + 2], accum[g * 4 + 3]));
        }
    } else {
        const unsigned int row0 = wg * 64 + warp_in_wg * 16 + lane / 4;
#pragma unroll
        for (unsigned int g = 0; g < BLOCK_N / 8; ++g) {
#pragma unroll
            for (unsigned int h = 0; h < 2; ++h) {
                const unsigned int row = row0 + h * 8;
                const unsigned int col = g * 8 + (lane % 4) * 2;
                const unsigned int chunk = col / kChunkN, cc = col % kChunkN;
                const unsigned int addr = base + chunk * kChunkBytes + L::offset(row, cc * sizeof(T));
                const float x = accum[g * 4 + h * 2 + 0], y = accum[g * 4 + h * 2 + 1];
                if constexpr (sizeof(T) == 2)
                    ptx::st_shared_b32(addr, pack_bf16x2(x, y));
                else
                    ptx::st_shared_v2_f32(addr, x, y);
            }
        }
    }
}

// Maps a GEMM output column to the column of D for fp8_gemm_nt_skip_head_mid: heads of (left + right)
// GEMM columns are written as (left, gap of mid, right). With mid == 0 it is the identity.
struct HeadSplit {
    unsigned int left, mid, right;
    DG_DEVICE unsigned int map(unsigned int col) const {
        if (mid == 0) return col;
        return col + ((col + right) / (left + right)) * mid;
    }
};

// Issues the TMA stores (kReduceAdd: FP32 reduce-add) of warpgroup `wg`'s 64 rows, one box per chunk.
// Chunks that start at or beyond `n` (GEMM columns) or rows at or beyond `m_valid` are skipped; partial
// boxes are clipped by TMA. Called by one thread; commits one bulk group.
template <typename T, unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kChunkN, bool kReduceAdd>
DG_DEVICE void store_smem_tile(const TensorMap* tmap_d, const void* smem_tile, unsigned int wg, unsigned int d_row,
                               unsigned int rows_valid, unsigned int n_col0, unsigned int n, HeadSplit heads) {
    using L = SmemTileLayout<T, kChunkN>;
    constexpr unsigned int kChunkBytes = BLOCK_M * L::kRowBytes;
    if (wg * 64 >= rows_valid) return;
    const unsigned long long policy = kReduceAdd ? 0ull : ptx::l2_policy_evict_first();
#pragma unroll
    for (unsigned int c = 0; c < BLOCK_N / kChunkN; ++c) {
        const unsigned int col = n_col0 + c * kChunkN;
        if (col >= n) break;
        const void* src = static_cast<const char*>(smem_tile) + c * kChunkBytes + wg * 64 * L::kRowBytes;
        if constexpr (kReduceAdd)
            ptx::tma_reduce_add_2d(tmap_d, src, static_cast<int>(heads.map(col)), static_cast<int>(d_row + wg * 64));
        else
            ptx::tma_store_2d_hint(tmap_d, src, static_cast<int>(heads.map(col)), static_cast<int>(d_row + wg * 64),
                                   policy);
    }
    ptx::tma_store_commit();
}

}  // namespace dg::epilogue
