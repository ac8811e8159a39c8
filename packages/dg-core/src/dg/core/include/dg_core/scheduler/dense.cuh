// dg_core/scheduler/dense.cuh -- persistent tile scheduler for one dense GEMM (no groups).
//
// Work units are output tiles (optionally split along K into `num_splits` contiguous K ranges). A CTA
// takes units blockIdx.x, blockIdx.x + gridDim.x, ... Tiles are rasterised in bands of kGroupM M-blocks:
// inside a band M varies fastest, so the ~#SM tiles in flight share few A row panels and few B row panels
// (L2 reuse), and two neighbouring units (2i, 2i+1) share their N block whenever the band height is
// even -- which is what an M-direction cluster of 2 that multicasts B requires (the host only enables
// that multicast when the number of M blocks is even and the grid is even).
#pragma once

#include "tile.cuh"

namespace dg::sched {

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kGroupM>
struct DenseScheduler {
    static_assert(kGroupM > 0 && kGroupM % 2 == 0, "kGroupM must be a positive even number");

    unsigned int num_m_blocks;
    unsigned int num_n_blocks;
    unsigned int num_k_blocks;
    unsigned int num_splits;
    unsigned int num_units;
    unsigned int m;
    unsigned int next_unit;

    DG_DEVICE DenseScheduler(unsigned int m_, unsigned int n_, unsigned int k_, unsigned int splits_)
        : num_m_blocks(ceil_div(m_, BLOCK_M)),
          num_n_blocks(ceil_div(n_, BLOCK_N)),
          num_k_blocks(ceil_div(k_, 128u)),
          num_splits(splits_),
          num_units(ceil_div(m_, BLOCK_M) * ceil_div(n_, BLOCK_N) * splits_),
          m(m_),
          next_unit(blockIdx.x) {}

    // K blocks of split `s`: an even division, the first (num_k_blocks % num_splits) splits one larger.
    DG_DEVICE void k_range(unsigned int s, unsigned int& begin, unsigned int& end) const {
        const unsigned int base = num_k_blocks / num_splits, extra = num_k_blocks % num_splits;
        begin = s * base + min_of(s, extra);
        end = begin + base + (s < extra ? 1u : 0u);
    }

    DG_DEVICE bool next(Tile& t) {
        const unsigned int unit = next_unit;
        if (unit >= num_units) return false;
        next_unit += gridDim.x;

        // NOTE: the split index varies fastest so the splits of one tile run at the same time (the
        // split-K fix-up then waits on nothing that is not already in flight).
        const unsigned int split = unit % num_splits;
        const unsigned int tile = unit / num_splits;
        const unsigned int band_tiles = kGroupM * num_n_blocks;
        const unsigned int band = tile / band_tiles;
        const unsigned int in_band = tile % band_tiles;
        const unsigned int band_m0 = band * kGroupM;
        const unsigned int band_h = min_of(kGroupM, num_m_blocks - band_m0);
        t.m_block = band_m0 + in_band % band_h;
        t.n_block = in_band / band_h;
        k_range(split, t.kb_begin, t.kb_end);
        t.a_row = t.m_block * BLOCK_M;
        t.b_row = t.n_block * BLOCK_N;
        t.d_row = t.m_block * BLOCK_M;
        t.sfb_row = (t.n_block * BLOCK_N) / 128u;
        t.rows_valid = min_of(BLOCK_M, m - t.m_block * BLOCK_M);
        t.tile_id = tile;
        t.split = split;
        return true;
    }
};

}  // namespace dg::sched
