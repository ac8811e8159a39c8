// dg_core/pipeline/sm90_tma_producer.cuh -- the stage pipeline shared by the SM90 FP8 GEMM kernels: barrier
// set-up and the TMA producer loop.
//
// A stage holds one 128-deep K block: the A tile (BLOCK_M rows), the B tile (BLOCK_N rows; with a cluster of 2 each
// CTA loads half of it and multicasts it to both) and whatever scale factors the recipe adds (`load_scales`).
//   full[s]:  producer -> consumers, arrive count 1 (the producer's arrive.expect_tx) + the stage's TMA bytes.
//   empty[s]: consumers -> producer(s), `empty_arrivals` arrivals per phase.
#pragma once

#include "../common/types.cuh"
#include "../mma/sm90_fp8_kblock.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/sync.cuh"
#include "../ptx/tma.cuh"
#include "../scheduler/tile.cuh"

namespace dg::pipeline {

// By one thread: initialise the stage barriers and make them visible to TMA and to the cluster peer.
template <unsigned int kNumStages>
DG_DEVICE void init_stage_barriers(unsigned long long* full_bar, unsigned long long* empty_bar,
                                   unsigned int empty_arrivals) {
    for (unsigned int s = 0; s < kNumStages; ++s) {
        ptx::mbarrier_init(&full_bar[s], 1);
        ptx::mbarrier_init(&empty_bar[s], empty_arrivals);
    }
    ptx::fence_barrier_init();
}

// Every thread of the CTA (and of its cluster peer): the barriers initialised above are ready.
template <unsigned int kClusterM>
DG_DEVICE void sync_cta_or_cluster() {
    if constexpr (kClusterM > 1)
        ptx::cluster_sync();
    else
        __syncthreads();
}

// The producer: one elected thread walks the scheduler's tiles and, per K block, waits for the stage to be free,
// announces kStageTxBytes, loads A and B (this CTA's half of B, multicast, with a cluster of 2) and calls
// `load_scales(stage, bar, tile, kb)` for the recipe's scale factors. `smem_a(stage)` / `smem_b(stage)` give the
// stage's tiles. kEvictFirstB: unicast B loads carry an L2 evict-first hint. Measured for the 1D2D kernel (H100,
// harness, same call): 4-11% faster on the M <= 128 seed shapes (e.g. 64x4096x7168 19.9 -> 17.7 us,
// 128x7168x16384 58.0 -> 53.2 us), M = 4096 unchanged or faster (4096x7168x2048 135.2 -> 128.5 us); an evict-last
// hint on A added nothing.
template <unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM, unsigned int kStageTxBytes,
          bool kEvictFirstB, typename Scheduler, typename SmemA, typename SmemB, typename LoadScales>
DG_DEVICE void run_tma_producer(Scheduler& scheduler, const TensorMap& tmap_a, const TensorMap& tmap_b,
                                unsigned long long* full_bar, unsigned long long* empty_bar, SmemA smem_a, SmemB smem_b,
                                LoadScales load_scales) {
    const unsigned int rank = kClusterM > 1 ? ptx::cluster_ctarank() : 0;
    const unsigned long long policy_b = kEvictFirstB ? ptx::l2_policy_evict_first() : 0;
    unsigned int stage = 0, phase = 0;
    sched::Tile tile;
    while (scheduler.next(tile)) {
        for (unsigned int kb = tile.kb_begin; kb < tile.kb_end; ++kb) {
            ptx::mbarrier_wait(&empty_bar[stage], phase ^ 1);
            unsigned long long* bar = &full_bar[stage];
            ptx::mbarrier_arrive_expect_tx(bar, kStageTxBytes);
            const int k0 = static_cast<int>(kb * mma::kBlockK);
            ptx::tma_load_2d(smem_a(stage), &tmap_a, bar, k0, static_cast<int>(tile.a_row));
            if constexpr (kClusterM == 1 && kEvictFirstB) {
                ptx::tma_load_2d_hint(smem_b(stage), &tmap_b, bar, k0, static_cast<int>(tile.b_row), policy_b);
            } else if constexpr (kClusterM == 1) {
                ptx::tma_load_2d(smem_b(stage), &tmap_b, bar, k0, static_cast<int>(tile.b_row));
            } else {
                constexpr unsigned int kHalf = BLOCK_N / 2;
                ptx::tma_load_2d_multicast(smem_b(stage) + rank * kHalf * mma::kTileRowBytes, &tmap_b, bar, k0,
                                           static_cast<int>(tile.b_row + rank * kHalf), 0x3);
            }
            load_scales(stage, bar, tile, kb);
            if (++stage == kNumStages) stage = 0, phase ^= 1;
        }
    }
}

}  // namespace dg::pipeline
