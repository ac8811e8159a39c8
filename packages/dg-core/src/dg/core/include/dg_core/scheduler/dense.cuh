// dg_core/scheduler/dense.cuh -- persistent tile scheduler for one dense GEMM (no groups).
//
// Work units are output tiles (optionally split along K into `num_splits` contiguous K ranges). A CTA
// takes units blockIdx.x, blockIdx.x + gridDim.x, ... Tiles are rasterised in bands of kGroupM M-blocks:
// inside a band M varies fastest, so the ~#SM tiles in flight share few A row panels and few B row panels
// (L2 reuse), and two neighbouring units (2i, 2i+1) share their N block whenever the band height is
// even -- which is what an M-direction cluster of 2 that multicasts B requires (the host only enables
// that multicast when the number of M blocks is even and the grid is even).
//
// Stream-K tail (`tail_stride` > 0, num_splits 1): the first `num_whole` tiles (a whole number of waves of the
// grid) run whole as above; the K blocks of the remaining tiles, taken tile after tile, are cut into gridDim.x
// contiguous ranges of equal length (the first ones one K block longer), one per CTA, so the last, partial wave
// spreads over every CTA. A range covers the end of one tile and the start of the next, or lies inside one; each
// piece is a work unit whose tile is shared by the CTAs whose ranges meet it (`num_splits` of them, `split` = this
// CTA's rank among them), summed by the kernel's split-K fix-up in partial slots split_tile * slot_stride() + split.
// The host guarantees at least one K block per range (so every CTA between a tile's first and last contributor
// contributes) and at most `tail_stride` contributors per tile.
#pragma once

#include "tile.cuh"

namespace dg::sched {

// kStreamK: whether the instance can run a stream-K tail (its code and state are compiled out otherwise).
template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kGroupM, bool kStreamK = false>
struct DenseScheduler {
    static_assert(kGroupM > 0 && kGroupM % 2 == 0, "kGroupM must be a positive even number");

    // NOTE: the fields are kept to what next() needs (every warpgroup holds a copy, so each costs a register beside
    // the accumulators); the M-block count and the tail's size are recomputed from them.
    unsigned int num_n_blocks;
    unsigned int num_k_blocks;
    unsigned int num_splits;  // uniform split-K: K ranges per tile; with a stream-K tail: its partial slots per tile
    unsigned int num_units;   // units taken round-robin (the whole tiles before a stream-K tail)
    unsigned int m;
    unsigned int next_unit;
    // Stream-K tail: the next K block of this CTA's range [tail_start(blockIdx.x), tail_start(blockIdx.x + 1)) of the
    // tail's iteration space (tail tiles x K blocks, which the host keeps below 2^32); ~0u without a tail.
    unsigned int tail_next;

    DG_DEVICE DenseScheduler(unsigned int m_, unsigned int n_, unsigned int k_, unsigned int splits_,
                             unsigned int whole_ = 0, unsigned int tail_stride_ = 0)
        : num_n_blocks(ceil_div(n_, BLOCK_N)),
          num_k_blocks(ceil_div(k_, 128u)),
          num_splits(tail_stride_ > 0 ? tail_stride_ : max_of(splits_, 1u)),
          num_units(tail_stride_ > 0 ? min_of(whole_, ceil_div(m_, BLOCK_M) * num_n_blocks)
                                     : ceil_div(m_, BLOCK_M) * num_n_blocks * max_of(splits_, 1u)),
          m(m_),
          next_unit(blockIdx.x),
          tail_next(kStreamK && tail_stride_ > 0 ? tail_start(blockIdx.x) : ~0u) {}

    DG_DEVICE unsigned int num_m_blocks() const { return ceil_div(m, BLOCK_M); }
    // Partial slots per split tile of the split-K fix-up (the uniform split count, or the tail's stride).
    DG_DEVICE unsigned int slot_stride() const { return num_splits; }
    DG_DEVICE unsigned int tail_iters() const { return (num_m_blocks() * num_n_blocks - num_units) * num_k_blocks; }
    // First tail K block of CTA c (the first tail_iters % grid CTAs take one K block more), and the CTA whose range
    // holds tail K block x. NOTE: 32-bit arithmetic only: a 64-bit division inside the pipelined main loop costs
    // registers that the accumulators need.
    DG_DEVICE unsigned int tail_start(unsigned int c) const {
        const unsigned int iters = tail_iters(), q = iters / gridDim.x, r = iters % gridDim.x;
        return c * q + min_of(c, r);
    }
    DG_DEVICE unsigned int tail_owner(unsigned int x) const {
        const unsigned int iters = tail_iters(), q = iters / gridDim.x, r = iters % gridDim.x, big = r * (q + 1);
        return x < big ? x / (q + 1) : r + (x - big) / q;
    }

    // K blocks of split `s` of `splits`: an even division, the first (num_k_blocks % splits) splits one larger.
    DG_DEVICE void k_range(unsigned int s, unsigned int splits, unsigned int& begin, unsigned int& end) const {
        const unsigned int base = num_k_blocks / splits, extra = num_k_blocks % splits;
        begin = s * base + min_of(s, extra);
        end = begin + base + (s < extra ? 1u : 0u);
    }

    DG_DEVICE void place(Tile& t, unsigned int tile) const {
        const unsigned int band_tiles = kGroupM * num_n_blocks;
        const unsigned int band = tile / band_tiles;
        const unsigned int in_band = tile % band_tiles;
        const unsigned int band_m0 = band * kGroupM;
        const unsigned int band_h = min_of(kGroupM, num_m_blocks() - band_m0);
        t.m_block = band_m0 + in_band % band_h;
        t.n_block = in_band / band_h;
        t.a_row = t.m_block * BLOCK_M;
        t.b_row = t.n_block * BLOCK_N;
        t.d_row = t.m_block * BLOCK_M;
        t.sfb_row = (t.n_block * BLOCK_N) / 128u;
        t.rows_valid = min_of(BLOCK_M, m - t.m_block * BLOCK_M);
        t.tile_id = tile;
    }

    DG_DEVICE bool next(Tile& t) {
        const unsigned int unit = next_unit;
        if (unit < num_units) {
            next_unit += gridDim.x;
            // NOTE: the split index varies fastest so the splits of one tile run at the same time (the
            // split-K fix-up then waits on nothing that is not already in flight).
            const unsigned int splits = kStreamK && tail_next != ~0u ? 1u : num_splits;
            const unsigned int split = unit % splits;
            const unsigned int tile = unit / splits;
            place(t, tile);
            k_range(split, splits, t.kb_begin, t.kb_end);
            t.split = split;
            t.num_splits = splits;
            t.split_tile = tile;
            return true;
        }
        if (!kStreamK || tail_next == ~0u) return false;
        const unsigned int tail_end = tail_start(blockIdx.x + 1);
        if (tail_next >= tail_end) return false;
        // Stream-K tail: the piece of this CTA's range inside tail tile q.
        const unsigned int kb = num_k_blocks, q = tail_next / kb;
        const unsigned int tile_begin = q * kb, piece_end = min_of(tail_end, tile_begin + kb);
        place(t, num_units + q);
        t.kb_begin = tail_next - tile_begin;
        t.kb_end = piece_end - tile_begin;
        const unsigned int first = tail_owner(tile_begin);
        t.split = blockIdx.x - first;
        t.num_splits = tail_owner(tile_begin + kb - 1) - first + 1;
        t.split_tile = q;
        tail_next = piece_end;
        return true;
    }
};

}  // namespace dg::sched
