// dg_core/impls/sm90_fp8_gemm_1d1d.cuh -- SM90 FP8 GEMM, 1D1D scaling recipe, FP32 accumulate-into-D.
//
// Computes   D[m, n] += sum_k  A[m, k] * SFA[m, k/128] * B[n, k] * SFB[n, k/128]          (NT, FP32 out)
//   A   [M, K] FP8 e4m3, K-major;  SFA FP32 [M, ceil(K/128)], MN-major, column pitch align(M, 4)
//   B   [N, K] FP8 e4m3, K-major;  SFB FP32 [N, ceil(K/128)], MN-major, column pitch align(N, 4)
//   D   [M, N] FP32 row-major, updated with a TMA reduce-add (the API copies C into D first when C is a
//       different tensor, so the result is D = C + A @ B^T).
//
// Warp roles, pipelines and the cluster are those of sm90_fp8_gemm_1d2d.cuh (read its card); the
// differences:
//   * a stage also holds BLOCK_N B scales (one per row of B), loaded by TMA with the SFA column, and the
//     promotion multiplies by SFA(row) * SFB(col) per element;
//   * the epilogue writes FP32 chunks of kChunkN (<= 32) columns and issues cp.reduce.async.bulk .add;
//   * split-K needs no workspace: every split reduce-adds its partial tile into D (the FP32 summation
//     order across splits is then not fixed run to run).
//
// Shared memory: [D tile: BLOCK_M x BLOCK_N FP32][A stages][B stages][SFA stages][SFB stages][barriers]
#pragma once

#include "../common/types.cuh"
#include "../common/utils.cuh"
#include "../epilogue/sm90_smem_tile.cuh"
#include "../mma/sm90_fp8_kblock.cuh"
#include "../pipeline/sm90_tma_producer.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/sync.cuh"
#include "../ptx/tma.cuh"
#include "../scheduler/dense.cuh"

namespace dg {

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN>
struct Sm90Fp8Gemm1d1dConfig {
    static constexpr unsigned int kNumMathWG = BLOCK_M / 64;
    static constexpr unsigned int kNumMathThreads = kNumMathWG * 128;
    static constexpr unsigned int kNumThreads = kNumMathThreads + 128;
    static constexpr unsigned int kProducerRegs = 40;
    static constexpr unsigned int kMathRegs = 232;

    static constexpr unsigned int kTileABytes = BLOCK_M * mma::kBlockK;
    static constexpr unsigned int kTileBBytes = BLOCK_N * mma::kBlockK;
    static constexpr unsigned int kSfaBytes = BLOCK_M * 4;
    // NOTE: every stage's SFB slot is a TMA destination, which must start on a 128-byte boundary, so the slot is
    // padded; the transaction count of a stage is the box actually loaded (kSfbTxBytes).
    static constexpr unsigned int kSfbTxBytes = BLOCK_N * 4;
    static constexpr unsigned int kSfbBytes = align_up(kSfbTxBytes, 128u);
    static constexpr unsigned int kDBytes = BLOCK_M * BLOCK_N * 4;
    static constexpr unsigned int kOffA = align_up(kDBytes, 1024u);
    static constexpr unsigned int kOffB = kOffA + kNumStages * kTileABytes;
    static constexpr unsigned int kOffSfa = kOffB + kNumStages * kTileBBytes;
    static constexpr unsigned int kOffSfb = kOffSfa + kNumStages * kSfaBytes;
    static constexpr unsigned int kOffBar = align_up(kOffSfb + kNumStages * kSfbBytes, 8u);
    static constexpr unsigned int kSmemBytes = kOffBar + kNumStages * 2 * 8 + 16 + 1024;

    static_assert(BLOCK_M == 64 || BLOCK_M == 128, "BLOCK_M must be 64 or 128 (one or two math warpgroups)");
    static_assert(BLOCK_N % 16 == 0 && BLOCK_N >= 16 && BLOCK_N <= 128,
                  "BLOCK_N must be a multiple of 16 in [16, 128] (FP32 accumulators + per-column scales)");
    static_assert(kNumStages >= 2 && kNumStages <= 32, "kNumStages must be in [2, 32]");
    static_assert(kClusterM == 1 || kClusterM == 2, "kClusterM must be 1 or 2");
    static_assert(kClusterM == 1 || (BLOCK_N / 2) % 8 == 0, "multicast halves of B must be whole 8-row swizzle groups");
    static_assert(kChunkN * 4 <= 128 && BLOCK_N % kChunkN == 0, "FP32 store chunks are at most 32 columns");
    static_assert(kSfaBytes % 128 == 0 && kSfbBytes % 128 == 0 && kOffSfa % 128 == 0 && kOffSfb % 128 == 0,
                  "TMA destinations in shared memory must be 128-byte aligned");
    static_assert(kSmemBytes <= 232448, "shared memory budget of one SM90 CTA (227 KiB) exceeded");
};

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN, typename Scheduler>
DG_DEVICE void sm90_fp8_gemm_1d1d_body(const TensorMap& tmap_a, const TensorMap& tmap_b, const TensorMap& tmap_sfa,
                                       const TensorMap& tmap_sfb, const TensorMap& tmap_d, unsigned int n,
                                       Scheduler scheduler) {
    using Cfg = Sm90Fp8Gemm1d1dConfig<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN>;
    using Mma = ptx::WgmmaFp8<BLOCK_N>;

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* smem = align_smem_1024(smem_raw);
    unsigned char* smem_d = smem;
    auto smem_a = [&](unsigned int s) { return smem + Cfg::kOffA + s * Cfg::kTileABytes; };
    auto smem_b = [&](unsigned int s) { return smem + Cfg::kOffB + s * Cfg::kTileBBytes; };
    auto smem_sfa = [&](unsigned int s) { return reinterpret_cast<float*>(smem + Cfg::kOffSfa + s * Cfg::kSfaBytes); };
    auto smem_sfb = [&](unsigned int s) { return reinterpret_cast<float*>(smem + Cfg::kOffSfb + s * Cfg::kSfbBytes); };
    unsigned long long* full_bar = reinterpret_cast<unsigned long long*>(smem + Cfg::kOffBar);
    unsigned long long* empty_bar = full_bar + kNumStages;

    const unsigned int wg = warpgroup_idx_sync();
    const unsigned int warp_in_wg = warp_idx_sync() % 4;
    const unsigned int lane = lane_idx();
    const bool is_producer_wg = wg == Cfg::kNumMathWG;

    // Step: barrier initialisation (see sm90_fp8_gemm_1d2d.cuh).
    if (is_producer_wg && warp_in_wg == 0 && lane == 0) {
        ptx::tma_prefetch_descriptor(&tmap_a);
        ptx::tma_prefetch_descriptor(&tmap_b);
        ptx::tma_prefetch_descriptor(&tmap_sfa);
        ptx::tma_prefetch_descriptor(&tmap_sfb);
        ptx::tma_prefetch_descriptor(&tmap_d);
        pipeline::init_stage_barriers<kNumStages>(full_bar, empty_bar, Cfg::kNumMathWG * 4 * kClusterM);
    }
    pipeline::sync_cta_or_cluster<kClusterM>();
    ptx::grid_dependency_wait();

    sched::Tile tile;
    if (is_producer_wg) {
        // Role: TMA producer.
        if constexpr (Cfg::kNumMathWG > 1) ptx::setmaxnreg_dec<Cfg::kProducerRegs>();
        if (warp_in_wg == 0 && lane == 0)
            pipeline::run_tma_producer<BLOCK_N, kNumStages, kClusterM,
                                       Cfg::kTileABytes + Cfg::kTileBBytes + Cfg::kSfaBytes + Cfg::kSfbTxBytes, false>(
                scheduler, tmap_a, tmap_b, full_bar, empty_bar, smem_a, smem_b,
                [&](unsigned int stage, unsigned long long* bar, const sched::Tile& t, unsigned int kb) {
                    ptx::tma_load_2d(smem_sfa(stage), &tmap_sfa, bar, static_cast<int>(t.a_row), static_cast<int>(kb));
                    ptx::tma_load_2d(smem_sfb(stage), &tmap_sfb, bar, static_cast<int>(t.b_row), static_cast<int>(kb));
                });
    } else {
        // Role: math warpgroup `wg`.
        if constexpr (Cfg::kNumMathWG > 1) ptx::setmaxnreg_inc<Cfg::kMathRegs>();
        float accum[Mma::kNumAccum];
        float partial[Mma::kNumAccum];
        const unsigned int row_in_wg = warp_in_wg * 16 + lane / 4;
        unsigned int stage = 0, phase = 0;
        while (scheduler.next(tile)) {
#pragma unroll
            for (unsigned int i = 0; i < Mma::kNumAccum; ++i) accum[i] = 0.0f;
            for (unsigned int kb = tile.kb_begin; kb < tile.kb_end; ++kb) {
                ptx::mbarrier_wait(&full_bar[stage], phase);
                const float* sfa = smem_sfa(stage) + wg * 64 + row_in_wg;
                const float sa0 = sfa[0], sa1 = sfa[8];
                float sb[BLOCK_N / 4];
                const float2* sfb = reinterpret_cast<const float2*>(smem_sfb(stage)) + (lane % 4);
#pragma unroll
                for (unsigned int g = 0; g < BLOCK_N / 8; ++g) {
                    const float2 v = sfb[g * 4];
                    sb[g * 2] = v.x, sb[g * 2 + 1] = v.y;
                }
                mma::kblock_mma<BLOCK_N>(smem_a(stage) + wg * 64 * mma::kTileRowBytes, smem_b(stage), partial);
                if (lane < kClusterM) {
                    if constexpr (kClusterM == 1)
                        ptx::mbarrier_arrive(&empty_bar[stage]);
                    else
                        ptx::mbarrier_arrive_cluster(&empty_bar[stage], lane);
                }
                mma::promote_1d1d<BLOCK_N>(accum, partial, sa0, sa1, sb);
                if (++stage == kNumStages) stage = 0, phase ^= 1;
            }

            // Step: epilogue, FP32 reduce-add of this warpgroup's 64 rows into D.
            const bool store_thread = warp_in_wg == 0 && lane == 0;
            if (store_thread) ptx::tma_store_wait_read<0>();
            ptx::named_barrier_sync(1 + wg, 128);
            epilogue::write_accum_to_smem<float, BLOCK_M, BLOCK_N, kChunkN>(smem_d, accum, wg, warp_in_wg, lane);
            ptx::fence_proxy_async_smem();
            ptx::named_barrier_sync(1 + wg, 128);
            if (store_thread)
                epilogue::store_smem_tile<float, BLOCK_M, BLOCK_N, kChunkN, true>(
                    &tmap_d, smem_d, wg, tile.d_row, tile.rows_valid, tile.n_block * BLOCK_N, n,
                    epilogue::HeadSplit{0, 0, 0});
        }
        if (warp_in_wg == 0 && lane == 0) ptx::tma_store_wait<0>();
    }

    if constexpr (kClusterM > 1) {
        __syncwarp();
        ptx::cluster_sync();
    }
}

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN, unsigned int kGroupM>
__global__ void __launch_bounds__(Sm90Fp8Gemm1d1dConfig<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN>::kNumThreads,
                                  1)
    sm90_fp8_gemm_1d1d_impl(const __grid_constant__ TensorMap tmap_a, const __grid_constant__ TensorMap tmap_b,
                            const __grid_constant__ TensorMap tmap_sfa, const __grid_constant__ TensorMap tmap_sfb,
                            const __grid_constant__ TensorMap tmap_d, unsigned int m, unsigned int n, unsigned int k,
                            unsigned int num_splits) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    using Sched = sched::DenseScheduler<BLOCK_M, BLOCK_N, kGroupM>;
    sm90_fp8_gemm_1d1d_body<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN, Sched>(
        tmap_a, tmap_b, tmap_sfa, tmap_sfb, tmap_d, n, Sched(m, n, k, num_splits));
#endif
}

}  // namespace dg
