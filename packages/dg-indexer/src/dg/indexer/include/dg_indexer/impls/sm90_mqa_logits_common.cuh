// dg_indexer/impls/sm90_mqa_logits_common.cuh -- the pieces both SM90 MQA-logits kernels share: the shared
// memory map, the warp roles, the per-tile FP8 wgmma and the ReLU-weighted head sum.
//
// Tile math (one math warpgroup, one tile of 64 keys):
//     S[key, n] = sum_d K[key, d] * Q_n[d]              one wgmma m64nNk32 chain over the warpgroup's N Q rows
//                                                        (row n = q * H + h), A = key tile (64 x D), B = the Q
//                                                        rows (N x D), both FP8 e4m3, K-major, swizzled by D
//                                                        bytes, FP32 accumulators
//     out[q, key] = k_scale[key] * sum_h w[q, h] * max(0, S[key, q*H + h])
// Decode: N = next_n * H, the whole query group. Prefill: the 256 Q rows of a group (256 / H queries) are split
// between the two warpgroups of a pair, N = 128 each. The head sum is a per-thread sum over the thread's
// accumulator columns of a query, then a reduction inside each quad of lanes (the four lanes that share an
// accumulator row): a butterfly (decode) or a reduce-and-scatter that leaves each lane one distinct value to
// store (prefill).
//
// Warp roles (128 * (1 + M) threads, M = MqaRoles::kNumMathWarpgroups):
//     warpgroup 0      kTmaWarpgroup     one lane of its first warp issues every TMA load (in the paged kernel
//                                        the whole warp walks the work and its lanes fetch block ids); the other
//                                        warps retire at once; 40 registers per thread (prefill: 24, or 32
//                                        with split groups)
//     warpgroup 1 + m  math warpgroup m  decode: tiles m, m + M, m + 2M, ... of the CTA's tile sequence, 232
//                                        registers (M = 2) or 104 (M = 4); prefill (M = 4): pair m / 2 takes tiles
//                                        m / 2, m / 2 + 2, ..., half m % 2 of the Q rows, 112 registers
// The math warpgroups take turns: while one runs its ReLU-weighted head sum on the CUDA cores another one's
// wgmma keeps the tensor cores busy.
//
// Pipelines (producer -> consumer, arrive counts):
//     k_full[s]   TMA (1 arrive + 64*D + 256 tx bytes)   -> the math warpgroup(s) owning the tile (keys, scales)
//     k_empty[s]  the owning warpgroup(s) (128 arrives each) -> TMA
//     q_full[i]   TMA (1 arrive + Q and weight bytes)     -> every math warpgroup           (i = 0, 1)
//     q_empty[i]  every math warpgroup (128 * M arrives)  -> TMA
//
// Shared memory map (bytes, every tile 1024-aligned):
//     [q slot 0 | q slot 1]          2 x kQRows * D        FP8 Q rows of one query group (prefill with linear-term
//                                                          rows: 2 halves of align1024((kQRows / 2 + extra) * D))
//     [k stage 0 .. kNumStages-1]    kNumStages x 64 * D   FP8 key tiles
//     [w slot 0 | w slot 1]          2 x kNumQ * H * 4     FP32 weights of the query group
//     [scale stage 0 .. S-1]         kNumStages x 256      FP32 scales of the 64 keys of each key stage
//     [flag stage 0 .. S-1]          kNumStages x 4        paged: the stage's block id was valid (padded to 16)
//     [barriers]                     (2 * kNumStages + 4) x 8
//     [aux]                          prefill with linear-term rows only: (2 * kNumQ + 16) x 4 (part scales,
//                                    per-warpgroup scratch)
//     [work]                         prefill only, 16-aligned: the two slots' headers (the piece of a query group
//                                    each holds), the split of the last round (sm90_fp8_mqa_logits.cuh)
// NOTE: scales come through TMA with their keys, so no math thread waits on a dependent global load per tile.
// The host computes the same total (dg/indexer/_jit.py: smem_bytes); the kernels trap if launched with less.
#pragma once

#include <dg_core/common/types.cuh>
#include <dg_core/common/utils.cuh>
#include <dg_core/ptx/mbarrier.cuh>
#include <dg_core/ptx/sync.cuh>
#include <dg_core/ptx/tma.cuh>
#include <dg_core/ptx/wgmma.cuh>

namespace dg::indexer {

constexpr unsigned int kBlockKV = 64;  // keys per tile: the M of one wgmma
constexpr unsigned int kWgmmaK = 32;   // K of one FP8 wgmma
constexpr unsigned int kTmaWarpgroup = 0;
constexpr unsigned int kMathWarpgroup0 = 1;
constexpr unsigned int kTmaRegisters = 40;

// Thread counts and register budgets of a kernel with kNumMathWarpgroups math warpgroups after the TMA one.
template <unsigned int kNumMathWarpgroups_, unsigned int kTmaRegisters_ = kTmaRegisters>
struct MqaRoles {
    static constexpr unsigned int kProducerRegisters = kTmaRegisters_;
    static constexpr unsigned int kNumMathWarpgroups = kNumMathWarpgroups_;
    static constexpr unsigned int kNumMathThreads = kNumMathWarpgroups * 128;
    static constexpr unsigned int kNumThreads = 128 + kNumMathThreads;
    // Registers per thread at launch: __launch_bounds__(kNumThreads, 1) caps them at 64K / kNumThreads (in
    // multiples of 8), and ptxas takes the cap when the kernel uses setmaxnreg.
    static constexpr unsigned int kLaunchRegisters = 65536u / kNumThreads / 8 * 8;
    // NOTE: setmaxnreg only moves registers inside the CTA's launch allocation: what the TMA warpgroup gives back
    // is shared by the math warpgroups, and asking for more than the pool holds blocks setmaxnreg.inc forever.
    // 232 with two math warpgroups (168 at launch); with four (96 at launch), 104 beside a 40-register producer
    // and 112 beside a 24-register one.
    static constexpr unsigned int kMathRegisters =
        min_of(232u, (kLaunchRegisters * kNumThreads - kProducerRegisters * 128) / kNumMathThreads / 8 * 8);
    static_assert(kNumMathWarpgroups == 2 || kNumMathWarpgroups == 4, "two or four math warpgroups");
    static_assert(kProducerRegisters * 128 + kMathRegisters * kNumMathThreads <= kLaunchRegisters * kNumThreads,
                  "register budget of the warpgroups exceeds the CTA's launch allocation");
};

// kQExtraRows: rows appended to each half of a Q slot (the prefill kernel's linear-term rows, see
// sm90_fp8_mqa_logits.cuh); 0 in the paged kernel, whose slot is the plain Q rows. kWorkBytes: the prefill
// kernel's work area (slot headers and the split of the last round); 0 in the paged kernel.
template <unsigned int kNumQ, unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kNumStages,
          unsigned int kQExtraRows = 0, unsigned int kWorkBytes = 0>
struct MqaLayout {
    static constexpr unsigned int kQRows = kNumQ * kNumHeads;
    // Bytes TMA brings per slot, and a half slot (Q rows of one warpgroup, then its extra rows; 1024-aligned).
    static constexpr unsigned int kQLoadBytes = kQRows * kHeadDim;
    static constexpr unsigned int kQHalfBytes = align_up((kQRows / 2 + kQExtraRows) * kHeadDim, 1024u);
    static constexpr unsigned int kQSlotBytes = kQExtraRows ? 2 * kQHalfBytes : kQLoadBytes;
    static constexpr unsigned int kKStageBytes = kBlockKV * kHeadDim;
    static constexpr unsigned int kWSlotBytes = kNumQ * kNumHeads * 4;
    static constexpr unsigned int kQOffset = 0;
    static constexpr unsigned int kKOffset = kQOffset + 2 * kQSlotBytes;
    static constexpr unsigned int kWOffset = kKOffset + kNumStages * kKStageBytes;
    static constexpr unsigned int kScaleStageBytes = kBlockKV * 4;
    static constexpr unsigned int kScaleOffset = kWOffset + 2 * kWSlotBytes;
    static constexpr unsigned int kFlagOffset = kScaleOffset + kNumStages * kScaleStageBytes;
    static constexpr unsigned int kBarrierOffset = kFlagOffset + align_up(kNumStages * 4, 16u);
    // Bytes one key stage's barrier waits for: the FP8 key tile and its 64 FP32 scales.
    static constexpr unsigned int kStageTxBytes = kKStageBytes + kScaleStageBytes;
    static constexpr unsigned int kNumBarriers = 2 * kNumStages + 4;
    // With extra rows: the FP32 scale of every query's linear-term rows (per slot), then 16 floats of per-warpgroup
    // scratch for the block-wide maximum.
    static constexpr unsigned int kAuxOffset = kBarrierOffset + 8 * kNumBarriers;
    static constexpr unsigned int kAuxBytes = kQExtraRows ? (2 * kNumQ + 16) * 4 : 0;
    // The work area, 16-byte aligned.
    static constexpr unsigned int kWorkOffset = align_up(kAuxOffset + kAuxBytes, 16u);
    static constexpr unsigned int kSmemBytes = kWorkOffset + kWorkBytes;

    static_assert(kHeadDim == 32 || kHeadDim == 64 || kHeadDim == 128, "head_dim must be 32, 64 or 128");
    static_assert(kNumHeads == 32 || kNumHeads == 64 || kNumHeads == 128, "heads must be 32, 64 or 128");
    static_assert(kQRows <= 256, "a query group is loaded as one TMA box of at most 256 rows");
    static_assert(kQSlotBytes % 1024 == 0 && kKStageBytes % 1024 == 0,
                  "swizzled tiles must stay 1024-byte aligned (descriptor K advance relies on it)");
    static_assert(kQRows % 8 == 0 && kQRows <= 256, "wgmma N must be a multiple of 8 up to 256");
    static_assert(kWSlotBytes % 128 == 0, "weight slots must keep the barriers 8-byte and TMA 16-byte aligned");
    static_assert(kSmemBytes <= 227 * 1024, "shared memory budget of an SM90 CTA (227 KiB) exceeded");
    static_assert(kNumStages >= 2 && kNumStages <= 32, "between 2 and 32 key stages");
    static_assert(kWorkBytes % 16 == 0, "the work area is read as 16-byte vectors");
};

// Swizzle of a K-major FP8 tile whose rows are exactly kHeadDim bytes (one swizzle atom per row).
template <unsigned int kHeadDim>
DG_DEVICE constexpr ptx::SmemSwizzle swizzle_for() {
    return kHeadDim == 128 ? ptx::SmemSwizzle::k128B
                           : (kHeadDim == 64 ? ptx::SmemSwizzle::k64B : ptx::SmemSwizzle::k32B);
}

// Shared memory the block was launched with (the %dynamic_smem_size special register).
DG_DEVICE unsigned int dynamic_smem_size() {
    unsigned int v;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(v));
    return v;
}

// Last line of defence for launch contracts the host already guarantees. NOTE: a plain trap rather than
// DG_DEVICE_ASSERT: its printf is a function call, which makes ptxas serialise every wgmma of the kernel.
DG_DEVICE void trap_unless(bool ok) {
    if (!ok) asm volatile("trap;");
}

// Barriers of one CTA, carved out of the barrier region of the map above.
// kConsumersPerTile: math warpgroups that read each key tile (each arrives with its 128 threads on k_empty).
template <unsigned int kNumStages, unsigned int kNumMathThreads, unsigned int kConsumersPerTile = 1>
struct MqaBarriers {
    unsigned long long* k_full;
    unsigned long long* k_empty;
    unsigned long long* q_full;
    unsigned long long* q_empty;

    DG_DEVICE explicit MqaBarriers(unsigned long long* base)
        : k_full(base), k_empty(base + kNumStages), q_full(base + 2 * kNumStages), q_empty(base + 2 * kNumStages + 2) {}

    // Called by one thread before the role split, followed by a CTA barrier.
    DG_DEVICE void init() const {
#pragma unroll
        for (unsigned int s = 0; s < kNumStages; ++s) {
            ptx::mbarrier_init(k_full + s, 1);
            ptx::mbarrier_init(k_empty + s, 128 * kConsumersPerTile);
        }
#pragma unroll
        for (unsigned int i = 0; i < 2; ++i) {
            ptx::mbarrier_init(q_full + i, 1);
            ptx::mbarrier_init(q_empty + i, kNumMathThreads);
        }
        ptx::fence_barrier_init();
    }
};

// Accumulator row of this thread inside a 64-row wgmma tile: rows row0 and row0 + 8.
DG_DEVICE unsigned int accum_row0() {
    const unsigned int t = threadIdx.x % 128;
    return (t / 32) * 16 + (t % 32) / 4;
}

// wgmma descriptor of a K-major FP8 tile of kHeadDim-byte rows (keys or Q rows). NOTE: 8 rows of kHeadDim bytes
// form one swizzle atom; the stride byte offset jumps between atoms.
template <unsigned int kHeadDim>
DG_DEVICE unsigned long long tile_desc(const unsigned char* tile) {
    return ptx::make_smem_desc_kmajor(tile, 8 * kHeadDim, swizzle_for<kHeadDim>());
}

// Issues S = K_tile * Q_rows^T for all kQRows rows of the query group as one wgmma chain (N = kQRows: the key
// tile is read from shared memory once per K step for every query of the group) and commits it as one group.
// Takes the tiles' descriptors (tile_desc).
template <unsigned int kQRows, unsigned int kHeadDim>
DG_DEVICE void tile_mma_issue(unsigned long long desc_k, unsigned long long desc_q, float (&acc)[kQRows / 2]) {
    using Mma = ptx::WgmmaFp8<kQRows>;
    static_assert(Mma::kNumAccum == kQRows / 2, "accumulator count of m64nNk32");
    ptx::accum_fence_array<kQRows / 2>(acc);
    ptx::wgmma_fence();
#pragma unroll
    for (unsigned int kk = 0; kk < kHeadDim / kWgmmaK; ++kk)
        Mma::mma(ptx::smem_desc_advance(desc_k, kk * kWgmmaK), ptx::smem_desc_advance(desc_q, kk * kWgmmaK), acc,
                 kk > 0);
    ptx::wgmma_commit_group();
}

// Waits for the chain tile_mma_issue committed, so the key stage may be released right after.
template <unsigned int kQRows>
DG_DEVICE void tile_mma_wait(float (&acc)[kQRows / 2]) {
    ptx::wgmma_wait_group<0>();
    ptx::accum_fence_array<kQRows / 2>(acc);
}

// Issue and wait in one step.
template <unsigned int kQRows, unsigned int kHeadDim>
DG_DEVICE void tile_mma(const unsigned char* k_tile, const unsigned char* q_rows, float (&acc)[kQRows / 2]) {
    tile_mma_issue<kQRows, kHeadDim>(tile_desc<kHeadDim>(k_tile), tile_desc<kHeadDim>(q_rows), acc);
    tile_mma_wait<kQRows>(acc);
}

// The weights this thread's accumulator columns need: wr[i] = (w_slot[8 i + c], w_slot[8 i + c + 1]) with
// c = 2 * (lane % 4), for the 8-column accumulator groups i of kNumQ queries. Column n of the accumulator is Q row
// n = q * H + h, and the weight slot is [kNumQ][H] row-major, so the weight of column n is w_slot[n]. Read as
// float2 pairs: the four distinct addresses of a warp hit four banks.
template <unsigned int kNumQ, unsigned int kNumHeads>
DG_DEVICE void load_head_weights(const float* w_slot, float2 (&wr)[kNumQ * kNumHeads / 8]) {
    const unsigned int col = 2 * (threadIdx.x % 4);
#pragma unroll
    for (unsigned int i = 0; i < kNumQ * kNumHeads / 8; ++i)
        wr[i] = *reinterpret_cast<const float2*>(w_slot + 8 * i + col);
}

// Per-thread part of the ReLU-weighted head sum: part[2 * q + half] = sum over this thread's accumulator columns
// of query q of w[q, h] * max(0, S[row0 + 8 * half, q * H + h]), with the weights from load_head_weights. With
// kAbsolute, |S| in place of max(0, S) (the prefill kernel's non-linear half, sm90_fp8_mqa_logits.cuh). `acc` holds
// at least kNumQ * kNumHeads / 2 accumulators (the head columns come first).
template <unsigned int kNumQ, unsigned int kNumHeads, bool kAbsolute = false>
DG_DEVICE void relu_weighted_partial(const float* acc, const float2 (&wr)[kNumQ * kNumHeads / 8],
                                     float (&part)[2 * kNumQ]) {
    constexpr unsigned int kGroupsPerQuery = kNumHeads / 8;  // 8-column accumulator groups per query
#pragma unroll
    for (unsigned int q = 0; q < kNumQ; ++q) {
        float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
        for (unsigned int g = 0; g < kGroupsPerQuery; ++g) {
            const unsigned int i = q * kGroupsPerQuery + g;
            float a[4];
#pragma unroll
            for (unsigned int k = 0; k < 4; ++k) a[k] = kAbsolute ? fabsf(acc[4 * i + k]) : fmaxf(acc[4 * i + k], 0.0f);
            s0 = fmaf(a[0], wr[i].x, s0);
            s0 = fmaf(a[1], wr[i].y, s0);
            s1 = fmaf(a[2], wr[i].x, s1);
            s1 = fmaf(a[3], wr[i].y, s1);
        }
        part[2 * q] = s0;
        part[2 * q + 1] = s1;
    }
}

// As above with the weights read from the weight slot in shared memory.
template <unsigned int kNumQ, unsigned int kNumHeads>
DG_DEVICE void relu_weighted_partial(const float (&acc)[kNumQ * kNumHeads / 2], const float* w_slot,
                                     float (&part)[2 * kNumQ]) {
    float2 wr[kNumQ * kNumHeads / 8];
    load_head_weights<kNumQ, kNumHeads>(w_slot, wr);
    relu_weighted_partial<kNumQ, kNumHeads>(acc, wr, part);
}

// The head sum reduced and scattered over the four lanes of a quad (the lanes that share an accumulator row).
// With kNumQ >= 2, lane l of the quad ends with out[j] = value 4 * j + l, that is query 2 * j + l / 2 at row
// row0 + 8 * (l % 2). Two exchange steps (xor 1, then xor 2) each send the half of the values the partner keeps:
// 3 * kNumQ / 2 shuffles and adds instead of the 4 * kNumQ of a full butterfly, and each lane then stores
// kNumQ / 2 values without a per-value lane test. With kNumQ == 1, lanes l and l ^ 2 both end with row
// row0 + 8 * (l % 2) of the one query (scattered_store_lane picks one of them).
template <unsigned int kNumQ>
DG_DEVICE void scatter_quad_sums(const float (&part)[2 * kNumQ], float (&out)[(kNumQ + 1) / 2]) {
    static_assert(kNumQ == 1 || kNumQ % 2 == 0, "the scattered sum needs one or an even number of queries");
    const bool odd = (threadIdx.x & 1) != 0, upper = (threadIdx.x & 2) != 0;
    float half_sums[kNumQ];  // value 2 * i + (l % 2)
#pragma unroll
    for (unsigned int i = 0; i < kNumQ; ++i) {
        const float keep = odd ? part[2 * i + 1] : part[2 * i];
        const float send = odd ? part[2 * i] : part[2 * i + 1];
        half_sums[i] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
    }
    if constexpr (kNumQ == 1) {
        out[0] = half_sums[0] + __shfl_xor_sync(0xffffffffu, half_sums[0], 2);
    } else {
#pragma unroll
        for (unsigned int j = 0; j < kNumQ / 2; ++j) {
            const float keep = upper ? half_sums[2 * j + 1] : half_sums[2 * j];
            const float send = upper ? half_sums[2 * j] : half_sums[2 * j + 1];
            out[j] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
        }
    }
}

// The ReLU-weighted head sum, reduced and scattered over the quad (scatter_quad_sums' layout).
template <unsigned int kNumQ, unsigned int kNumHeads>
DG_DEVICE void relu_weighted_head_sum_scattered(const float (&acc)[kNumQ * kNumHeads / 2],
                                                const float2 (&wr)[kNumQ * kNumHeads / 8],
                                                float (&out)[(kNumQ + 1) / 2]) {
    float part[2 * kNumQ];
    relu_weighted_partial<kNumQ, kNumHeads>(acc, wr, part);
    scatter_quad_sums<kNumQ>(part, out);
}

// Whether this lane stores the values relu_weighted_head_sum_scattered left it (one of two lanes when kNumQ == 1).
template <unsigned int kNumQ>
DG_DEVICE bool scattered_store_lane() {
    return kNumQ != 1 || (threadIdx.x & 2) == 0;
}

// sums[q][half] = sum_h w[q, h] * max(0, S[row0 + 8 * half, q * H + h]), identical in the four lanes of a quad.
template <unsigned int kNumQ, unsigned int kNumHeads>
DG_DEVICE void relu_weighted_head_sum(const float (&acc)[kNumQ * kNumHeads / 2], const float* w_slot,
                                      float (&sums)[kNumQ][2]) {
    float part[2 * kNumQ];
    relu_weighted_partial<kNumQ, kNumHeads>(acc, w_slot, part);
#pragma unroll
    for (unsigned int q = 0; q < kNumQ; ++q) {
        float s0 = part[2 * q], s1 = part[2 * q + 1];
        s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
        s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
        s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
        s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
        sums[q][0] = s0;
        sums[q][1] = s1;
    }
}

// The quad lane that stores value (q, half): spreads the 2 * kNumQ stores of a quad over its lanes.
DG_DEVICE bool is_store_lane(unsigned int q, unsigned int half) {
    return ((2 * q + half) % 4) == threadIdx.x % 4;
}

DG_DEVICE float neg_inf() {
    return __int_as_float(0xff800000);
}

DG_DEVICE float quiet_nan() {
    return __int_as_float(0x7fffffff);
}

// Fills out[col] = value for col in [begin, end) with the threads [tid, stride) of the caller's group.
DG_DEVICE void fill_row(float* row, unsigned int begin, unsigned int end, float value, unsigned int tid,
                        unsigned int stride) {
    for (unsigned int c = begin + tid; c < end; c += stride) row[c] = value;
}

}  // namespace dg::indexer
