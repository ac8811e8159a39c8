// dg_core/impls/sm90_fp8_gemm_1d2d.cuh -- SM90 FP8 GEMM, 1D2D scaling recipe, BF16 output.
//
// Computes   D[m, n] = sum_k  A[m, k] * SFA[m, k/128] * B[n, k] * SFB[n/128, k/128]      (NT, BF16 out)
//   A   [M, K] FP8 e4m3, K-major;     SFA FP32 [M, ceil(K/128)], MN-major, column pitch align(M, 4)
//   B   [N, K] FP8 e4m3, K-major;     SFB FP32 [ceil(N/128), ceil(K/128)], row-major (contiguous)
//   D   [M, N(+gaps)] BF16, row-major; optional head-split column mapping (fp8_gemm_nt_skip_head_mid)
//
// Warp roles (kNumThreads = 128 * (kNumMathWG + 1), kNumMathWG = BLOCK_M / 64 * kKWays):
//   math warpgroups 0 .. kNumMathWG-1  (threads 0 .. 128*kNumMathWG-1), kMathRegs registers each:
//       warpgroup w has row group r = w % (BLOCK_M / 64) and K way q = w / (BLOCK_M / 64): it owns rows
//       r*64 .. r*64+63 of the BLOCK_M x BLOCK_N tile and the K blocks kb_begin + q, + q + kKWays, ...; per K
//       block it issues four wgmma m64nBLOCK_Nk32 into `partial`, waits, releases the stage, and promotes
//       partial * SFA(row) * SFB(col block) into FP32 `accum` (two-level accumulation). BLOCK_N 256: the
//       same per half of the tile (four wgmma m64n128k32 into a half-width `partial`).
//       Two row groups, one K way (BLOCK_M 128): the groups take turns issuing their K block's wgmma (named
//       barriers 8 and 9), so one group promotes while the tensor cores run the other's block. Measured (H100,
//       harness, same call): 2-4% faster on the M = 4096 seed shapes, within +-2% at M <= 128.
//       kKWays > 1 (small M): the ways run independent wait -> wgmma -> promote chains on one tile, and at
//       the end of the tile ways 1.. hand their `accum` to way 0 through shared memory (named barrier
//       1 + BLOCK_M/64 + r); way 0 alone runs the split-K fix-up and the epilogue.
//   producer warpgroup (last, kProducerRegs registers): one elected thread of its first warp issues all
//       TMA loads; the other 127 threads idle at the reduced register budget.
//
// Pipelines (kNumStages stages, one stage = one 128-deep K block):
//   full[s]:  producer -> math.  Arrive count 1 (the producer's arrive.expect_tx) + TMA transaction bytes
//             (A tile + whole B tile + SFA column), also when half the B tile comes from the cluster peer.
//   empty[s]: math -> producer(s). Arrive count BLOCK_M/64 * 4 warps * kClusterM (the ways that consume the
//             stage's K block): lane r < kClusterM of
//             every math warp arrives on CTA r's barrier, because with multicast each producer writes
//             into both CTAs' stage s.
//   D tile:   math warpgroup -> TMA store, ordered by a per-warpgroup named barrier (id 1 + wg) and
//             fence.proxy.async; the elected thread waits for the previous store to finish reading the
//             tile before the warpgroup overwrites it. With the output ring (Cfg::kDRing) the same per chunk:
//             the thread waits until at most one store is left unread (the one two chunks back has read its slot).
//
// kPipeline (one K way): 2 = the math loop is software-pipelined across tiles: each wgmma (half) is issued right
// after the previous one is promoted, and a tile's first wgmma before the previous tile's epilogue, so the tensor
// cores keep working through it; 1 = pipelined, but the epilogue before the next tile's first wgmma; 0 = a plain
// per-tile loop (wait, issue, wait, promote). The host picks 1 from 4 K blocks per tile at M > 128 (and at M <= 128
// below 32 K blocks, 2 from 32), 2 with K ways, else 0.
//
// Split-K: work units that share a tile's K range (the scheduler's uniform num_splits, or the splits of its split
// tail after the first `num_whole` tiles) each store their FP32 partial to `workspace` [slots][math warpgroups]
// [64 x BLOCK_N] (slot scheduler.split_tile_of(tile) * scheduler.slot_stride() + tile.split), fence, and increment
// counters[split_tile_of(tile)][warpgroup]; the last arrival sums the other partials into its registers, resets the
// counter to 0 (so the zeroed counters stay valid for the next launch) and stores D. The units never wait for each
// other, so they need not be co-resident.
//
// Cluster (kClusterM == 2): two CTAs on neighbouring M blocks of the same N block; each loads half of the
// B tile and multicasts it to both. The scheduler guarantees both CTAs see the same N block sequence.
//
// Shared memory (dynamic, 1024-byte aligned):
//   [D tile: BLOCK_M x BLOCK_N BF16, chunked by kChunkN columns, swizzled; with kDRing two chunk slots]
//   [A stages: kNumStages x BLOCK_M x 128 B][B stages: kNumStages x BLOCK_N x 128 B]
//   [SFA stages: kNumStages x BLOCK_M FP32][full barriers][empty barriers][split-K flags: 4 words]
//   [way hand-off (kKWays > 1, 128-byte aligned): (kKWays - 1) x BLOCK_M x BLOCK_N FP32]
//
// Constraints (static_asserts below; the host's can_implement checks the runtime ones): BLOCK_M 64 or
// 128; BLOCK_N a multiple of 8 in [8, 176] whose tiles touch at most two 128-column SFB blocks (three for a
// multiple of 16, e.g. 176: one straight-line promotion per column offset), 192 (one pass, one straight-line
// promotion per column offset 0 / 64) or 256 (two halves); K % 16
// == 0 (row pitch), N % 8 == 0 (BF16 row pitch); M, N, K edges are zero-filled by TMA on load and
// clipped on store.
#pragma once

#include "../common/types.cuh"
#include "../common/utils.cuh"
#include "../epilogue/sm90_smem_tile.cuh"
#include "../mma/sm90_fp8_kblock.cuh"
#include "../pipeline/sm90_tma_producer.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/smem.cuh"
#include "../ptx/sync.cuh"
#include "../ptx/tma.cuh"
#include "../scheduler/dense.cuh"

namespace dg {

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN, unsigned int kKWays = 1>
struct Sm90Fp8Gemm1d2dConfig {
    static constexpr unsigned int kNumRowWG = BLOCK_M / 64;
    static constexpr unsigned int kNumMathWG = kNumRowWG * kKWays;
    static constexpr unsigned int kNumMathThreads = kNumMathWG * 128;
    static constexpr unsigned int kNumThreads = kNumMathThreads + 128;
    // Register budgets after setmaxnreg (only applied with two math warpgroups; with one, the launch
    // bound of 256 threads already allows 255 registers; with three or four, the launch bound's 128 / 102
    // registers are kept, which the small BLOCK_N of K-way configs fit).
    static constexpr unsigned int kProducerRegs = BLOCK_N > 160 ? 24 : 40;
    static constexpr unsigned int kMathRegs = BLOCK_N > 160 ? 240 : 232;

    static constexpr unsigned int kTileABytes = BLOCK_M * mma::kBlockK;
    static constexpr unsigned int kTileBBytes = BLOCK_N * mma::kBlockK;
    static constexpr unsigned int kSfaBytes = BLOCK_M * 4;
    // Output staging: the whole BLOCK_M x BLOCK_N tile, or (kDRing) a ring of two kChunkN-column chunks when the
    // whole tile does not fit beside the stages (128 x 256 with 4 stages, 128 x 192 with 5): each warpgroup writes and
    // stores its rows chunk by chunk, waiting before it rewrites a slot until the store two chunks back has read it.
    static constexpr unsigned int kChunkBytes = BLOCK_M * kChunkN * 2;
    static constexpr bool kDRing =
        kKWays == 1 &&
        align_up(align_up(BLOCK_M * BLOCK_N * 2, 1024u) + kNumStages * (kTileABytes + kTileBBytes + kSfaBytes), 8u) +
                kNumStages * 16 + 16 + 1024 >
            232448;
    static constexpr unsigned int kDBytes = kDRing ? 2 * kChunkBytes : BLOCK_M * BLOCK_N * 2;
    static constexpr unsigned int kOffA = align_up(kDBytes, 1024u);
    static constexpr unsigned int kOffB = kOffA + kNumStages * kTileABytes;
    static constexpr unsigned int kOffSfa = kOffB + kNumStages * kTileBBytes;
    static constexpr unsigned int kOffBar = align_up(kOffSfa + kNumStages * kSfaBytes, 8u);
    static constexpr unsigned int kOffFlags = kOffBar + kNumStages * 2 * 8;  // one word per math warpgroup
    static constexpr unsigned int kOffRed = kKWays > 1 ? align_up(kOffFlags + 16, 128u) : kOffFlags + 16;
    // + alignment slack for the 1024-byte aligned base; none with the ring, which is used exactly when the budget
    // is tight (the kernel then traps unless the runtime's dynamic shared memory base is 1024-byte aligned, as it
    // is on SM90 without static shared memory).
    static constexpr unsigned int kSlack = kDRing ? 0 : 1024;
    static constexpr unsigned int kSmemBytes = kOffRed + (kKWays - 1) * BLOCK_M * BLOCK_N * 4 + kSlack;

    static constexpr unsigned int gcd128(unsigned int x) {
        return x % 128 == 0 ? 128 : (x % 64 == 0 ? 64 : (x % 32 == 0 ? 32 : (x % 16 == 0 ? 16 : 8)));
    }

    static_assert(BLOCK_M == 64 || BLOCK_M == 128, "BLOCK_M must be 64 or 128 (one or two math warpgroups)");
    static_assert(BLOCK_N % 8 == 0 && BLOCK_N >= 8 && BLOCK_N <= 256, "BLOCK_N must be a multiple of 8 in [8, 256]");
    // Tiles of 256 run as two halves per K block; narrower ones in a single pass.
    static constexpr unsigned int kNumHalves = BLOCK_N == 256 ? 2 : 1;
    // The most 128-wide SFB blocks a single-pass tile touches (tiles start at multiples of BLOCK_N, so at column
    // offsets n0 % 128 that are multiples of gcd128(BLOCK_N)).
    static constexpr unsigned int kSfbBlocks = kNumHalves == 2 ? 2 : (128 - gcd128(BLOCK_N) + BLOCK_N + 127) / 128;
    static constexpr unsigned int kSfbStep = gcd128(BLOCK_N);
    // Single-pass tiles whose promotion has one straight-line variant per column offset (no per-group selects):
    // those that may touch three SFB blocks (176), and 192 (offsets 0 and 64 only: two variants).
    static constexpr bool kPromoteByOffset = kNumHalves == 1 && (kSfbBlocks == 3 || BLOCK_N == 192);
    static_assert(kNumHalves == 2 || kSfbBlocks <= 2 || (kSfbBlocks == 3 && kSfbStep >= 16),
                  "a single-pass BLOCK_N tile may straddle at most two 128-wide SFB blocks, or three when BLOCK_N is "
                  "a multiple of 16");
    static_assert(BLOCK_N <= 176 || BLOCK_N == 192 || BLOCK_N == 256,
                  "tiles wider than 176 are 192 (one pass) or 256 wide (two halves)");
    static_assert(kKWays == 1 || kNumHalves == 1, "K ways take single-pass tiles");
    static_assert(kNumStages >= 2 && kNumStages <= 32, "kNumStages must be in [2, 32]");
    static_assert(kClusterM == 1 || kClusterM == 2, "kClusterM must be 1 or 2");
    static_assert(kKWays >= 1 && kKWays <= 4 && kNumMathWG <= 4, "at most 4 math warpgroups (K ways x row groups)");
    static_assert(kClusterM == 1 || (BLOCK_N / 2) % 8 == 0, "multicast halves of B must be whole 8-row swizzle groups");
    static_assert(kSmemBytes <= 232448, "shared memory budget of one SM90 CTA (227 KiB) exceeded");
    static_assert(kTileABytes % 1024 == 0 && kTileBBytes % 1024 == 0, "stage tiles must keep 1024-byte alignment");
};

template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN, unsigned int kKWays, unsigned int kPipeline, typename Scheduler>
DG_DEVICE void sm90_fp8_gemm_1d2d_body(const TensorMap& tmap_a, const TensorMap& tmap_b, const TensorMap& tmap_sfa,
                                       const TensorMap& tmap_d, const float* __restrict__ sfb, unsigned int n,
                                       unsigned int k, epilogue::HeadSplit heads, float* __restrict__ workspace,
                                       unsigned int* __restrict__ counters, Scheduler scheduler) {
    using Cfg = Sm90Fp8Gemm1d2dConfig<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN, kKWays>;
    using Mma = ptx::WgmmaFp8<BLOCK_N>;
    // BLOCK_N 256: each K block runs as two halves through one `partial` of half the width (wgmma, wait,
    // promote into its half of `accum`), so e.g. a 128 x 256 tile fits the register budget: 128 + 64 accumulators.
    constexpr unsigned int kNumHalves = Cfg::kNumHalves;
    constexpr unsigned int kHalfN = BLOCK_N / kNumHalves;
    using HalfMma = ptx::WgmmaFp8<kHalfN>;

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    if constexpr (Cfg::kSlack == 0) {
        if (ptx::smem_addr(smem_raw) % 1024 != 0) __trap();
    }
    unsigned char* smem = align_smem_1024(smem_raw);
    unsigned char* smem_d = smem;
    auto smem_a = [&](unsigned int s) { return smem + Cfg::kOffA + s * Cfg::kTileABytes; };
    auto smem_b = [&](unsigned int s) { return smem + Cfg::kOffB + s * Cfg::kTileBBytes; };
    auto smem_sfa = [&](unsigned int s) { return reinterpret_cast<float*>(smem + Cfg::kOffSfa + s * Cfg::kSfaBytes); };
    unsigned long long* full_bar = reinterpret_cast<unsigned long long*>(smem + Cfg::kOffBar);
    unsigned long long* empty_bar = full_bar + kNumStages;

    const unsigned int wg = warpgroup_idx_sync();
    const unsigned int warp_in_wg = warp_idx_sync() % 4;
    const unsigned int lane = lane_idx();
    const bool is_producer_wg = wg == Cfg::kNumMathWG;
    const unsigned int num_k_blocks = ceil_div(k, mma::kBlockK);

    // Step: barrier initialisation by one thread, made visible to TMA and to the cluster peer.
    if (is_producer_wg && warp_in_wg == 0 && lane == 0) {
        ptx::tma_prefetch_descriptor(&tmap_a);
        ptx::tma_prefetch_descriptor(&tmap_b);
        ptx::tma_prefetch_descriptor(&tmap_sfa);
        ptx::tma_prefetch_descriptor(&tmap_d);
        pipeline::init_stage_barriers<kNumStages>(full_bar, empty_bar, Cfg::kNumRowWG * 4 * kClusterM);
    }
    pipeline::sync_cta_or_cluster<kClusterM>();
    // NOTE: with programmatic dependent launch, inputs written by the previous kernel are visible only
    // after this wait; without PDL it returns at once.
    ptx::grid_dependency_wait();

    sched::Tile tile;
    if (is_producer_wg) {
        // Role: TMA producer.
        if constexpr (Cfg::kNumMathWG == 2) ptx::setmaxnreg_dec<Cfg::kProducerRegs>();
        if (warp_in_wg == 0 && lane == 0)
            pipeline::run_tma_producer<BLOCK_N, kNumStages, kClusterM,
                                       Cfg::kTileABytes + Cfg::kTileBBytes + Cfg::kSfaBytes, true>(
                scheduler, tmap_a, tmap_b, full_bar, empty_bar, smem_a, smem_b,
                [&](unsigned int stage, unsigned long long* bar, const sched::Tile& t, unsigned int kb) {
                    ptx::tma_load_2d(smem_sfa(stage), &tmap_sfa, bar, static_cast<int>(t.a_row), static_cast<int>(kb));
                });
    } else {
        // Role: math warpgroup `wg` = row group `rg`, K way `way`.
        if constexpr (Cfg::kNumMathWG == 2) ptx::setmaxnreg_inc<Cfg::kMathRegs>();
        const unsigned int rg = wg % Cfg::kNumRowWG, way = wg / Cfg::kNumRowWG;
        float accum[Mma::kNumAccum];
        float partial[HalfMma::kNumAccum];
        const unsigned int row_in_wg = warp_in_wg * 16 + lane / 4;
        const unsigned int num_sfb_rows = ceil_div(n, 128u);
        // K blocks delivered to this CTA's pipeline before the current tile (every way counts all of them:
        // stage and phase of block kb follow from it).
        unsigned int delivered = 0;
        // MMA turn-taking (two row groups, one K way): the row groups issue their K block's wgmma in strict
        // alternation (named barriers kTurnBarrier + rg), so the tensor cores run one group's block while the
        // other promotes its previous one. Without it both groups issue at once, their wgmma interleave on the
        // tensor cores, both finish together and both promote while the tensor cores idle.
        constexpr bool kOrderMma = Cfg::kNumRowWG == 2 && kKWays == 1;
        constexpr unsigned int kTurnBarrier = 8;
        unsigned int mma_issued = 0;
        // Promotes `partial` (half h of a K block) into `accum` with the block's scales.
        // A tile's SFB row offsets, one per 128-wide SFB block its columns touch (two; three for a 176-wide
        // tile), and the values of one K block for them (b[2] stays 0 unless the tile touches three blocks).
        struct SfbRows {
            unsigned int r0, r1, r2;
        };
        struct SfbVals {
            float b[3] = {0.0f, 0.0f, 0.0f};
        };
        auto promote_half = [&](unsigned int h, unsigned int n_col0, unsigned int split_group, float sa0, float sa1,
                                const SfbVals& sbv) {
            const float sb0 = sbv.b[0], sb1 = sbv.b[1];
            if constexpr (Cfg::kPromoteByOffset) {
                mma::promote_1d2d_3<BLOCK_N, Cfg::kSfbStep>(accum, partial, sa0, sa1, sbv.b, n_col0 % 128);
            } else if constexpr (kNumHalves == 1) {
                mma::promote_1d2d<BLOCK_N>(accum, partial, sa0, sa1, sb0, sb1, split_group);
            } else {
                // A 256-wide tile starts on a 128-column boundary: half h is SFB block sfb_row + h.
                mma::promote_1d2d<kHalfN, false>(accum + h * HalfMma::kNumAccum, partial, sa0, sa1, h == 0 ? sb0 : sb1,
                                                 0.0f, 0);
            }
        };
        // Descriptors of this row group's A rows and of B in stage 0, pinned in registers and advanced per stage and
        // half (perf log v17). NOTE: not in the plain loop of two-half tiles, where the two live values made ptxas
        // spill at 240 registers; those rebuild them from the address at each use.
        constexpr bool kPinDescs = !(kNumHalves == 2 && kPipeline == 0);
        const unsigned long long desc_a0 =
            kPinDescs ? ptx::smem_desc_pinned(mma::kblock_desc(smem_a(0) + rg * 64 * mma::kTileRowBytes)) : 0ull;
        const unsigned long long desc_b0 = kPinDescs ? ptx::smem_desc_pinned(mma::kblock_desc(smem_b(0))) : 0ull;
        // Issues half h of the K block in `stage` into `partial`, in turn with the other row group.
        auto issue_half = [&](unsigned int stage, unsigned int h) {
            if constexpr (kOrderMma) {
                if (rg == 1 || mma_issued > 0) ptx::named_barrier_sync(kTurnBarrier + rg, 256);
            }
            if constexpr (kPinDescs) {
                mma::kblock_mma_issue<kHalfN>(
                    ptx::smem_desc_advance(desc_a0, stage * Cfg::kTileABytes),
                    ptx::smem_desc_advance(desc_b0, stage * Cfg::kTileBBytes + h * kHalfN * mma::kTileRowBytes),
                    partial);
            } else {
                mma::kblock_mma_issue<kHalfN>(mma::kblock_desc(smem_a(stage) + rg * 64 * mma::kTileRowBytes),
                                              mma::kblock_desc(smem_b(stage) + h * kHalfN * mma::kTileRowBytes),
                                              partial);
            }
            if constexpr (kOrderMma) {
                ptx::named_barrier_arrive(kTurnBarrier + (rg ^ 1u), 256);
                ++mma_issued;
            }
        };
        // Waits for the half in flight and releases the stage after its last half (to both CTAs of the cluster
        // when B is multicast).
        auto wait_half = [&](unsigned int stage, unsigned int h) {
            ptx::wgmma_wait_group<0>();
            ptx::accum_fence_array<HalfMma::kNumAccum>(partial);
            if (h == kNumHalves - 1 && lane < kClusterM) {
                if constexpr (kClusterM == 1)
                    ptx::mbarrier_arrive(&empty_bar[stage]);
                else
                    ptx::mbarrier_arrive_cluster(&empty_bar[stage], lane);
            }
        };
        // NOTE: SFB rows are addressed by 32-bit element offsets (ceil(N/128) * ceil(K/128) < 2^32), which keeps
        // two registers per row pointer free for the accumulators.
        auto sfb_row = [&](unsigned int row) { return min_of(row, num_sfb_rows - 1) * num_k_blocks; };
        auto sfb_rows_of = [&](const sched::Tile& t) {
            return SfbRows{sfb_row(t.sfb_row), sfb_row(t.sfb_row + 1),
                           Cfg::kSfbBlocks == 3 ? sfb_row(t.sfb_row + 2) : 0u};
        };
        auto load_sfb = [&](const SfbRows& rows, unsigned int kb) {
            SfbVals v;
            v.b[0] = __ldg(sfb + rows.r0 + kb);
            v.b[1] = __ldg(sfb + rows.r1 + kb);
            if constexpr (Cfg::kSfbBlocks == 3) v.b[2] = __ldg(sfb + rows.r2 + kb);
            return v;
        };
        // Which 128-wide SFB block(s) a tile's columns fall in: columns before group `split_group` use block
        // sfb_row, the rest block sfb_row + 1 (clamped so a tile at the N edge never reads past the tensor; those
        // columns are clipped on store anyway).
        auto split_group_of = [&](unsigned int n_col0) {
            const unsigned int split_col = 128 - n_col0 % 128;
            return split_col >= BLOCK_N ? BLOCK_N / 8 : split_col / 8;
        };

        // After the last K block of a tile: the K-way hand-off and the split-K fix-up; false if this warpgroup
        // does not store the tile.
        auto combine = [&](const sched::Tile& tile) -> bool {
            bool store = true;
            // Step: K-way hand-off. Ways 1.. store their sums (thread-linear float4s: conflict-free), way 0 adds
            // them; the second barrier keeps a fast way from overwriting its slot before way 0 has read it.
            if constexpr (kKWays > 1) {
                const unsigned int tid = warp_in_wg * 32 + lane;
                auto slot = [&](unsigned int w) {
                    return reinterpret_cast<float4*>(smem + Cfg::kOffRed) +
                           ((w - 1) * Cfg::kNumRowWG + rg) * (64 * BLOCK_N / 4);
                };
                if (way > 0) {
#pragma unroll
                    for (unsigned int q = 0; q < Mma::kNumAccum / 4; ++q)
                        slot(way)[q * 128 + tid] =
                            make_float4(accum[4 * q], accum[4 * q + 1], accum[4 * q + 2], accum[4 * q + 3]);
                }
                ptx::named_barrier_sync(1 + Cfg::kNumRowWG + rg, 128 * kKWays);
                if (way == 0) {
#pragma unroll
                    for (unsigned int w = 1; w < kKWays; ++w)
#pragma unroll
                        for (unsigned int q = 0; q < Mma::kNumAccum / 4; ++q) {
                            const float4 v = slot(w)[q * 128 + tid];
                            accum[4 * q] += v.x, accum[4 * q + 1] += v.y, accum[4 * q + 2] += v.z,
                                accum[4 * q + 3] += v.w;
                        }
                }
                ptx::named_barrier_sync(1 + Cfg::kNumRowWG + rg, 128 * kKWays);
                if (way > 0) store = false;
            }

            // Step: split-K fix-up. Every split stores its FP32 partial tile to the workspace, then counts
            // itself in; the last split of the tile to arrive adds the others' partials and runs the epilogue
            // (no CTA ever waits on another, so splits need not be co-resident), and re-arms the counter.
            const unsigned int num_splits = scheduler.splits_of(tile), split_tile = scheduler.split_tile_of(tile);
            if (store && num_splits > 1) {
                const unsigned int tid = warp_in_wg * 32 + lane;
                constexpr unsigned int kSlot = 64 * BLOCK_N;
                auto slot = [&](unsigned int split) {
                    return workspace +
                           ((static_cast<unsigned long long>(split_tile) * scheduler.slot_stride() + split) *
                                Cfg::kNumRowWG +
                            rg) *
                               kSlot;
                };
                // NOTE: element (q*128 + tid)*4 .. +3 holds accum[4q .. 4q+3] of thread tid: each warp-wide
                // float4 access covers 512 contiguous bytes.
                float4* mine = reinterpret_cast<float4*>(slot(tile.split));
#pragma unroll
                for (unsigned int q = 0; q < Mma::kNumAccum / 4; ++q)
                    __stcg(mine + q * 128 + tid,
                           make_float4(accum[4 * q], accum[4 * q + 1], accum[4 * q + 2], accum[4 * q + 3]));
                __threadfence();
                ptx::named_barrier_sync(1 + rg, 128);
                unsigned int* flag = reinterpret_cast<unsigned int*>(smem + Cfg::kOffFlags) + rg;
                if (tid == 0) {
                    unsigned int* counter = counters + split_tile * Cfg::kNumRowWG + rg;
                    const unsigned int arrived = atomicAdd(counter, 1u);
                    const bool last = arrived == num_splits - 1;
                    if (last) atomicExch(counter, 0u);
                    *flag = last ? 1u : 0u;
                }
                ptx::named_barrier_sync(1 + rg, 128);
                store = *flag != 0;
                if (store) {
                    __threadfence();
                    for (unsigned int other = 0; other < num_splits; ++other) {
                        if (other == tile.split) continue;
                        const float4* theirs = reinterpret_cast<const float4*>(slot(other));
#pragma unroll
                        for (unsigned int q = 0; q < Mma::kNumAccum / 4; ++q) {
                            const float4 v = __ldcg(theirs + q * 128 + tid);
                            accum[4 * q] += v.x, accum[4 * q + 1] += v.y, accum[4 * q + 2] += v.z,
                                accum[4 * q + 3] += v.w;
                        }
                    }
                }
            }

            return store;
        };
        // Step: epilogue. Wait until this warpgroup's previous TMA store no longer reads the tile.
        unsigned int d_seq = 0;  // output chunks this warpgroup has staged (kDRing: slot d_seq % 2)
        auto store_tile = [&](const sched::Tile& tile) {
            const unsigned int n_col0 = tile.n_block * BLOCK_N;
            const bool store_thread = warp_in_wg == 0 && lane == 0;
            if constexpr (Cfg::kDRing) {
#pragma unroll
                for (unsigned int c = 0; c < BLOCK_N / kChunkN; ++c, ++d_seq) {
                    unsigned char* slot = smem_d + (d_seq % 2) * Cfg::kChunkBytes;
                    // The store that used this slot two chunks ago must have read it.
                    if (store_thread) ptx::tma_store_wait_read<1>();
                    ptx::named_barrier_sync(1 + rg, 128);
                    epilogue::write_accum_to_smem<bf16, BLOCK_M, kChunkN, kChunkN, (kNumHalves == 2)>(
                        slot, accum + c * (kChunkN / 2), rg, warp_in_wg, lane);
                    ptx::fence_proxy_async_smem();
                    ptx::named_barrier_sync(1 + rg, 128);
                    if (store_thread)
                        epilogue::store_smem_tile<bf16, BLOCK_M, kChunkN, kChunkN, false>(
                            &tmap_d, slot, rg, tile.d_row, tile.rows_valid, n_col0 + c * kChunkN, n, heads);
                }
                return;
            }
            if (store_thread) ptx::tma_store_wait_read<0>();
            ptx::named_barrier_sync(1 + rg, 128);
            epilogue::write_accum_to_smem<bf16, BLOCK_M, BLOCK_N, kChunkN, (kNumHalves == 2)>(smem_d, accum, rg,
                                                                                              warp_in_wg, lane);
            ptx::fence_proxy_async_smem();
            ptx::named_barrier_sync(1 + rg, 128);
            if (store_thread)
                epilogue::store_smem_tile<bf16, BLOCK_M, BLOCK_N, kChunkN, false>(&tmap_d, smem_d, rg, tile.d_row,
                                                                                  tile.rows_valid, n_col0, n, heads);
        };

        // NOTE: zeroing once per tile lets the promotion be a single FMA per element.
        // NOTE: one K block (half) in flight per warpgroup. Keeping a second one in flight (a second `partial`
        // array, wgmma_wait_group<1>, promotion of block kb while kb+1 runs) makes ptxas serialise every wgmma
        // (C7514: accumulator registers read between the start and the end of a wgmma pipeline stage; C7518 with
        // the barrier wait loop in flight) and measured 1.0-1.4x slower (H100, docs/perf_log.md v7). More chains
        // need more warpgroups, not more arrays per warpgroup.
        // NOTE: the SFB values of a K block are loaded one K block ahead (clamped to the tile's last block), so
        // their global-memory latency is hidden behind a whole K block instead of the barrier wait.
        if constexpr (kKWays == 1 && kPipeline > 0) {
            // One K way: a software-pipelined walk. Every wgmma half is issued right after the previous one is
            // promoted, including across tiles: a tile's first half is issued before the previous tile's
            // combine and epilogue, so the tensor cores work through them. Each wgmma issue sits in straight-line
            // code or an unconditional loop body (a wgmma under a data-dependent branch makes ptxas serialise
            // all of them, C7518); after the last tile a drain-only half on stage 0 keeps that true.
            float sa0 = 0.0f, sa1 = 0.0f;
            SfbVals sb;
            // Issues the first half of t's first K block (real == false: the drain-only half).
            auto issue_first = [&](const sched::Tile& t, bool real) {
                const unsigned int stage = real ? delivered % kNumStages : 0u;
                if (real) {
                    sb = load_sfb(sfb_rows_of(t), t.kb_begin);
                    ptx::mbarrier_wait(&full_bar[stage], (delivered / kNumStages) & 1u);
                    const float* sfa = smem_sfa(stage) + rg * 64 + row_in_wg;
                    sa0 = ptx::ld_shared_f32(sfa), sa1 = ptx::ld_shared_f32(sfa + 8);
                }
                issue_half(stage, 0);
            };
            bool have = scheduler.next(tile);
            issue_first(tile, have);
            while (have) {
                const unsigned int n_col0 = tile.n_block * BLOCK_N;
                const unsigned int split_group = split_group_of(n_col0);
                const SfbRows rows = sfb_rows_of(tile);
#pragma unroll
                for (unsigned int i = 0; i < Mma::kNumAccum; ++i) accum[i] = 0.0f;
                unsigned int seq = delivered;
                // All K blocks but the last: finish the halves, then issue the next block's first half.
                for (unsigned int kb = tile.kb_begin; kb + 1 < tile.kb_end; ++kb, ++seq) {
                    const unsigned int stage = seq % kNumStages;
                    const SfbVals nb = load_sfb(rows, kb + 1);
                    const unsigned int next_stage = (seq + 1) % kNumStages;
                    float na0 = 0.0f, na1 = 0.0f;
#pragma unroll
                    for (unsigned int h = 0; h < kNumHalves; ++h) {
                        if (h + 1 == kNumHalves) {
                            // The next block's stage and row scales while this block's last wgmma half runs, so the
                            // path from this block's wgmma completion to the next issue is promotion and issue only.
                            // NOTE: measured (H100, harness): 4096x2112x7168 (176-wide, one pass) 119.8 -> 114.6 us,
                            // 64x24576x1536 -3.4%; two-half tiles unchanged (there the wait sits after the second
                            // half's issue; before the first half's wait it cost 4-6%: 3 stages left it exposed).
                            ptx::mbarrier_wait(&full_bar[next_stage], ((seq + 1) / kNumStages) & 1u);
                            const float* sfa = smem_sfa(next_stage) + rg * 64 + row_in_wg;
                            na0 = ptx::ld_shared_f32(sfa), na1 = ptx::ld_shared_f32(sfa + 8);
                        }
                        wait_half(stage, h);
                        promote_half(h, n_col0, split_group, sa0, sa1, sb);
                        if (h + 1 < kNumHalves) issue_half(stage, h + 1);
                    }
                    sa0 = na0, sa1 = na1;
                    sb = nb;
                    issue_half(next_stage, 0);
                }
                // The last K block, then the next tile's first half, then this tile's combine and epilogue.
                {
                    const unsigned int stage = seq % kNumStages;
#pragma unroll
                    for (unsigned int h = 0; h < kNumHalves; ++h) {
                        wait_half(stage, h);
                        promote_half(h, n_col0, split_group, sa0, sa1, sb);
                        if (h + 1 < kNumHalves) issue_half(stage, h + 1);
                    }
                }
                delivered += tile.kb_end - tile.kb_begin;
                sched::Tile next;
                have = scheduler.next(next);
                // NOTE: the early issue waits for the next tile's first stage before the epilogue; with short K
                // (few stages ahead of a new tile's loads) that wait is exposed, so the host picks kPipeline 1
                // (store first) below 32 K blocks per tile (csrc/heuristics/sm90_fp8.hpp).
                if constexpr (kPipeline == 1) {
                    if (combine(tile)) store_tile(tile);
                }
                issue_first(next, have);
                if constexpr (kPipeline == 2) {
                    if (combine(tile)) store_tile(tile);
                }
                tile = next;
            }
            // Drain the drain-only half.
            ptx::wgmma_wait_group<0>();
            ptx::accum_fence_array<HalfMma::kNumAccum>(partial);
        } else {
            // A plain per-tile loop; with K ways (small M, single-pass tiles) the ways run independent
            // wait -> wgmma -> promote chains.
            while (scheduler.next(tile)) {
                const unsigned int n_col0 = tile.n_block * BLOCK_N;
                const unsigned int split_group = split_group_of(n_col0);
                const SfbRows rows = sfb_rows_of(tile);
#pragma unroll
                for (unsigned int i = 0; i < Mma::kNumAccum; ++i) accum[i] = 0.0f;
                SfbVals sb;
                if (tile.kb_begin + way < tile.kb_end) sb = load_sfb(rows, tile.kb_begin + way);
                for (unsigned int kb = tile.kb_begin + way; kb < tile.kb_end; kb += kKWays) {
                    const unsigned int seq = delivered + (kb - tile.kb_begin);
                    const unsigned int stage = seq % kNumStages, phase = (seq / kNumStages) & 1u;
                    const unsigned int kb_next = min_of(kb + kKWays, tile.kb_end - 1);
                    const SfbVals nb = load_sfb(rows, kb_next);
                    ptx::mbarrier_wait(&full_bar[stage], phase);
                    const float* sfa = smem_sfa(stage) + rg * 64 + row_in_wg;
                    const float sa0 = ptx::ld_shared_f32(sfa), sa1 = ptx::ld_shared_f32(sfa + 8);
#pragma unroll
                    for (unsigned int h = 0; h < kNumHalves; ++h) {
                        issue_half(stage, h);
                        wait_half(stage, h);
                        promote_half(h, n_col0, split_group, sa0, sa1, sb);
                    }
                    sb = nb;
                }
                delivered += tile.kb_end - tile.kb_begin;
                if (combine(tile)) store_tile(tile);
            }
        }
        // The last turn signal of row group 1 is consumed here, so no barrier is left half-arrived at exit.
        if constexpr (kOrderMma) {
            if (rg == 0 && mma_issued > 0) ptx::named_barrier_sync(kTurnBarrier, 256);
        }
        if (way == 0 && warp_in_wg == 0 && lane == 0) ptx::tma_store_wait<0>();
    }

    // NOTE: neither CTA of a cluster may exit while its peer can still multicast into its shared memory
    // or arrive on its barriers.
    if constexpr (kClusterM > 1) {
        __syncwarp();
        ptx::cluster_sync();
    }
}

// The dense kernel: one persistent CTA per SM (or fewer), `kGroupM` M blocks per raster band.
template <unsigned int BLOCK_M, unsigned int BLOCK_N, unsigned int kNumStages, unsigned int kClusterM,
          unsigned int kChunkN, unsigned int kGroupM, unsigned int kKWays = 1, unsigned int kPipeline = 2,
          bool kTail = false>
__global__ void __launch_bounds__(
    Sm90Fp8Gemm1d2dConfig<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN, kKWays>::kNumThreads, 1)
    sm90_fp8_gemm_1d2d_impl(const __grid_constant__ TensorMap tmap_a, const __grid_constant__ TensorMap tmap_b,
                            const __grid_constant__ TensorMap tmap_sfa, const __grid_constant__ TensorMap tmap_d,
                            const float* __restrict__ sfb, unsigned int m, unsigned int n, unsigned int k,
                            unsigned int head_left, unsigned int head_mid, unsigned int head_right,
                            unsigned int num_splits, float* __restrict__ workspace, unsigned int* __restrict__ counters,
                            unsigned int num_whole, unsigned int tail_splits) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    // NOTE: a split tail runs with one K way, no cluster and the plain or epilogue-first loop (the host's
    // choose_tail_split), in instances of its own (kTail): the scheduler's tail state measured ~1% on whole-tile
    // launches (4096x2112x7168), and the early-issue loop of 256-wide tiles has no register to spare for it.
    static_assert(!kTail || (kClusterM == 1 && kKWays == 1 && kPipeline != 2), "a split tail needs this loop");
    using Sched = sched::DenseScheduler<BLOCK_M, BLOCK_N, kGroupM, kTail>;
    sm90_fp8_gemm_1d2d_body<BLOCK_M, BLOCK_N, kNumStages, kClusterM, kChunkN, kKWays, kPipeline, Sched>(
        tmap_a, tmap_b, tmap_sfa, tmap_d, sfb, n, k, epilogue::HeadSplit{head_left, head_mid, head_right}, workspace,
        counters, Sched(m, n, k, num_splits, num_whole, tail_splits));
#endif
}

}  // namespace dg
