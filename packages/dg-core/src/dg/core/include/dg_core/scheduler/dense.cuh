// dg_core/scheduler/dense.cuh -- persistent tile scheduler for one dense GEMM (no groups).
//
// Work units are output tiles (optionally split along K into `num_splits` contiguous K ranges). A CTA
// takes units blockIdx.x, blockIdx.x + gridDim.x, ... Tiles are rasterised in bands of kGroupM M-blocks:
// inside a band M varies fastest, so the ~#SM tiles in flight share few A row panels and few B row panels
// (L2 reuse), and two neighbouring units (2i, 2i+1) share their N block whenever the band height is
// even -- which is what an M-direction cluster of 2 that multicasts B requires (the host only enables
// that multicast when the number of M blocks is even and the grid is even).
//
// Split tail (`tail_splits` > 0, num_splits 1): the first `num_whole` tiles (a whole number of waves of the grid)
// run whole as above; each remaining tile, the last, partial wave, is cut into `tail_splits` even K ranges, and these
// units continue the round-robin (tile after tile, the split fastest), so a tail of a third of a wave cut three ways
// keeps every CTA busy for a third of a tile instead of a third of the CTAs for a whole tile. The splits of a tile
// meet in the kernel's split-K fix-up, in partial slots split_tile_of(t) * slot_stride() + split (the tile's index
// among the tail tiles).
#pragma once

#include "tile.cuh"

namespace dg::sched {

// kTail: whether the instance can run a split tail (its state is compiled out otherwise).
template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kGroupM, bool kTail = false>
struct DenseScheduler {
    static_assert(kGroupM > 0 && kGroupM % 2 == 0, "kGroupM must be a positive even number");

    // NOTE: the fields are kept to what next() needs (every warpgroup holds a copy, so each costs a register beside
    // the accumulators); the M-block count is recomputed from them.
    unsigned int num_n_blocks;
    unsigned int num_k_blocks;
    unsigned int num_splits;  // K ranges of every split tile (uniform split-K: every tile; a split tail: its tiles)
    unsigned int num_units;   // units taken round-robin
    unsigned int m;
    unsigned int next_unit;
    unsigned int num_whole;  // tiles before the split ones (0 with uniform split-K or without kTail)

    // splits_ >= 1 (uniform split-K; 1 = whole tiles).
    DG_DEVICE DenseScheduler(unsigned int m_, unsigned int n_, unsigned int k_, unsigned int splits_,
                             unsigned int whole_ = 0, unsigned int tail_splits_ = 0)
        : num_n_blocks(ceil_div(n_, BLOCK_N)),
          num_k_blocks(ceil_div(k_, 128u)),
          num_splits(kTail ? (tail_splits_ > 0 ? tail_splits_ : max_of(splits_, 1u)) : splits_),
          num_units(0),
          m(m_),
          next_unit(blockIdx.x),
          num_whole(kTail && tail_splits_ > 0 ? min_of(whole_, ceil_div(m_, BLOCK_M) * num_n_blocks) : 0u) {
        num_units = num_whole + (ceil_div(m_, BLOCK_M) * num_n_blocks - num_whole) * num_splits;
    }

    DG_DEVICE unsigned int num_m_blocks() const { return ceil_div(m, BLOCK_M); }
    // Partial slots per split tile of the split-K fix-up.
    DG_DEVICE unsigned int slot_stride() const { return num_splits; }
    // Units that share tile t's K range (1: t runs whole), and t's index among the split tiles (its split-K counter
    // and partial slots). NOTE: derived from the tile id rather than carried in the Tile, so the math warpgroups keep
    // no extra register live through the main loop.
    DG_DEVICE unsigned int splits_of(const Tile& t) const { return kTail && t.tile_id < num_whole ? 1u : num_splits; }
    DG_DEVICE unsigned int split_tile_of(const Tile& t) const { return t.tile_id - num_whole; }

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
        if (unit >= num_units) return false;
        next_unit += gridDim.x;
        if (kTail && unit < num_whole) {
            place(t, unit);
            t.kb_begin = 0;
            t.kb_end = num_k_blocks;
            t.split = 0;
            return true;
        }
        // NOTE: the split index varies fastest so the splits of one tile run at the same time (the
        // split-K fix-up then waits on nothing that is not already in flight).
        const unsigned int u = kTail ? unit - num_whole : unit;
        const unsigned int split = u % num_splits, split_tile = u / num_splits;
        place(t, (kTail ? num_whole : 0u) + split_tile);
        k_range(split, num_splits, t.kb_begin, t.kb_end);
        t.split = split;
        return true;
    }
};

}  // namespace dg::sched
