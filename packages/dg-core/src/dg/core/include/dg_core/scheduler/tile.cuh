// dg_core/scheduler/tile.cuh -- the tile record that every tile scheduler hands to a GEMM main loop.
//
// A scheduler is a template parameter of the GEMM kernels. It must provide
//     DG_DEVICE bool next(Tile& tile);   // false when this CTA has no more work
// and fill every field below. Kernels call `next` independently from each role (producer, each math
// warpgroup), so the sequence must depend only on the scheduler's constructor arguments and blockIdx.
// Grouped schedulers (MoE contiguous / masked / k-grouped) express the group by row offsets, so the
// main loop never needs to know about groups.
#pragma once

#include "../common/utils.cuh"

namespace dg::sched {

struct Tile {
    unsigned int m_block;     // tile index along M inside its group (rows m_block * BLOCK_M ...)
    unsigned int n_block;     // tile index along N inside its group
    unsigned int kb_begin;    // first 128-wide K block of this work unit
    unsigned int kb_end;      // one past the last K block
    unsigned int a_row;       // first row of this tile in A's TMA map (includes any group offset)
    unsigned int b_row;       // first row of this tile in B's TMA map
    unsigned int d_row;       // first row of this tile in D's TMA map
    unsigned int sfb_row;     // row of the scale-factor tensor of B (1D2D: 128-row block of the group)
    unsigned int rows_valid;  // rows of this tile that lie inside the problem (<= BLOCK_M)
    unsigned int tile_id;     // output tile index (same for all K splits of a tile)
    unsigned int split;       // K split index, 0 when the tile is not split
};

}  // namespace dg::sched
