// dg_indexer/impls/sm90_fp8_mqa_logits.cuh -- non-paged lightning-indexer logits (prefill) on SM90.
//
// Computes, for every query i and key j with ks[i] <= j < ke[i]:
//     out[i, j] = k_scale[j] * sum_h w[i, h] * max(0, <q[i, h, :], k[j, :]>)
// q FP8 e4m3 [S, H, D] (no scale), k FP8 e4m3 [S_kv, D] with an FP32 scale per key (s_map: a [1, S_kv] map),
// w FP32 [S, H], FP32 out with row pitch `out_stride` elements. With `clean` set, every other position of the S x S_kv
// output is -inf, written by the same CTA (no separate pass, no extra read of the output).
//
// Work: a query group is kNumQ = 256 / H consecutive queries (256 Q rows). Persistent CTAs take groups
// blockIdx.x, blockIdx.x + gridDim.x, ...; a group walks the union of its queries' key ranges, its start rounded
// down to a multiple of 4 keys (TMA needs a 16-byte aligned innermost coordinate for the scales), in tiles of 64
// keys; tile t of the CTA's sequence goes to math pair t % 2, whose two warpgroups each compute half of the Q rows
// (roles, pipelines and the shared memory map in sm90_mqa_logits_common.cuh). Q rows and weights of a group are
// double buffered, keys use kNumStages stages.
//
// Guards (bad range values never cause an out-of-bounds access or an endless loop): ks is clamped to
// [0, S_kv] and ke to [ks, S_kv]; keys past S_kv are zero-filled by TMA and never stored; query rows past S
// are zero-filled and never stored.
#pragma once

#include "sm90_mqa_logits_common.cuh"

namespace dg::indexer {

// Clamped key range [lo, hi) of query i (0 <= lo <= hi <= S_kv whatever the inputs hold).
DG_DEVICE void clamped_range(const int* ks, const int* ke, unsigned int i, unsigned int seq_len_kv, unsigned int& lo,
                             unsigned int& hi) {
    const int s = __ldg(ks + i), e = __ldg(ke + i);
    lo = s <= 0 ? 0u : min_of(static_cast<unsigned int>(s), seq_len_kv);
    hi = e <= 0 ? 0u : min_of(static_cast<unsigned int>(e), seq_len_kv);
    hi = max_of(hi, lo);
}

// Keys per 16 bytes of FP32 scales: the granularity of a tile's first key (see GroupRange).
constexpr unsigned int kScaleKeyAlign = 16 / sizeof(float);
static_assert(kBlockKV % kScaleKeyAlign == 0, "every tile's first key must stay 16-byte aligned in s_map");

// Union of the key ranges of the group's queries, as a first key (a multiple of kScaleKeyAlign) and a tile
// count.
template <unsigned int kNumQ>
struct GroupRange {
    unsigned int lo[kNumQ], hi[kNumQ];  // per query; empty ([0, 0)) for queries past S
    unsigned int first_key, num_tiles;

    DG_DEVICE GroupRange(const int* ks, const int* ke, unsigned int q0, unsigned int seq_len, unsigned int seq_len_kv) {
        unsigned int u_lo = seq_len_kv, u_hi = 0;
#pragma unroll
        for (unsigned int q = 0; q < kNumQ; ++q) {
            lo[q] = hi[q] = 0;
            if (q0 + q < seq_len) clamped_range(ks, ke, q0 + q, seq_len_kv, lo[q], hi[q]);
            if (hi[q] > lo[q]) {
                u_lo = min_of(u_lo, lo[q]);
                u_hi = max_of(u_hi, hi[q]);
            }
        }
        // NOTE: the scale load's key is the innermost TMA coordinate of s_map, and Hopper raises an illegal
        // instruction unless an innermost coordinate lands on a 16-byte boundary: start on a multiple of 4 keys.
        first_key = u_hi > u_lo ? u_lo / kScaleKeyAlign * kScaleKeyAlign : 0;
        num_tiles = u_hi > u_lo ? ceil_div(u_hi - first_key, kBlockKV) : 0;
    }
};

// Four math warpgroups in two pairs: pair p takes the CTA's tiles p, p + 2, p + 4, ...; in a pair, warpgroup half
// h computes Q rows [128 h, 128 h + 128) of the 256-row query group (queries h * kNumQ / 2 ...), so both read the
// same key tile and each keeps 64 accumulators per thread. The producer runs with 24 registers, which leaves the
// math warpgroups 112: the accumulators and the 32 weights of the warpgroup's rows, held for the whole group.
using MqaPrefillRoles = MqaRoles<4, 24>;
constexpr unsigned int kPrefillPairs = 2;
// Longest time the producer sleeps in one wait for a free key stage (it wakes when the stage is released).
constexpr unsigned int kProducerSuspendNs = 1000000;

template <unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kQRows, unsigned int kNumStages>
__global__ void __launch_bounds__(MqaPrefillRoles::kNumThreads, 1)
    sm90_fp8_mqa_logits_impl(const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap k_map,
                             const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap s_map,
                             const int* __restrict__ ks, const int* __restrict__ ke, float* __restrict__ out,
                             unsigned int seq_len, unsigned int seq_len_kv, unsigned long long out_stride,
                             unsigned int clean) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    static_assert(kQRows == 256 && kQRows % kNumHeads == 0, "a query group is 256 Q rows");
    constexpr unsigned int kNumQ = kQRows / kNumHeads;
    // Q rows and queries of one math warpgroup (half of the group).
    constexpr unsigned int kWgRows = kQRows / 2;
    constexpr unsigned int kWgQ = kNumQ / 2 > 0 ? kNumQ / 2 : 1;
    static_assert(kWgRows == kWgQ * kNumHeads, "a warpgroup's rows are whole queries");
    constexpr unsigned int kStores = (kWgQ + 1) / 2;  // values a lane stores per tile
    using Layout = MqaLayout<kNumQ, kNumHeads, kHeadDim, kNumStages>;

    extern __shared__ __align__(1024) unsigned char smem[];
    using Roles = MqaPrefillRoles;
    // NOTE: the swizzled tiles need a 1024-byte aligned base, the host must have provided the whole map, and every
    // warpgroup must exist (a missing math warpgroup would leave its barriers waiting forever).
    trap_unless(dynamic_smem_size() >= Layout::kSmemBytes && ptx::smem_addr(smem) % 1024 == 0 &&
                blockDim.x == Roles::kNumThreads && blockDim.y == 1 && blockDim.z == 1);
    constexpr unsigned int kNumMathThreads = Roles::kNumMathThreads;
    constexpr unsigned int kPairWarpgroups = Roles::kNumMathWarpgroups / kPrefillPairs;
    const MqaBarriers<kNumStages, kNumMathThreads, kPairWarpgroups> bars(
        reinterpret_cast<unsigned long long*>(smem + Layout::kBarrierOffset));
    if (threadIdx.x == 0) {
        ptx::tma_prefetch_descriptor(&q_map);
        ptx::tma_prefetch_descriptor(&k_map);
        ptx::tma_prefetch_descriptor(&w_map);
        ptx::tma_prefetch_descriptor(&s_map);
        bars.init();
    }
    __syncthreads();

    const unsigned int num_groups = ceil_div(seq_len, kNumQ);
    const unsigned int role = warpgroup_idx_sync();

    if (role == kTmaWarpgroup) {
        // Step: producer. One elected lane of the first warp issues every load; the other warps retire.
        ptx::setmaxnreg_dec<Roles::kProducerRegisters>();
        if (warp_idx_sync() != 0 || !elect_one_sync()) return;
        unsigned int tile = 0, iter = 0;
        for (unsigned int g = blockIdx.x; g < num_groups; g += gridDim.x, ++iter) {
            const unsigned int q0 = g * kNumQ;
            const GroupRange<kNumQ> range(ks, ke, q0, seq_len, seq_len_kv);
            const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
            ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
            ptx::mbarrier_arrive_expect_tx(bars.q_full + slot, Layout::kQSlotBytes + Layout::kWSlotBytes);
            ptx::tma_load_2d(smem + Layout::kQOffset + slot * Layout::kQSlotBytes, &q_map, bars.q_full + slot, 0,
                             static_cast<int>(q0 * kNumHeads));
            ptx::tma_load_2d(smem + Layout::kWOffset + slot * Layout::kWSlotBytes, &w_map, bars.q_full + slot, 0,
                             static_cast<int>(q0));
            for (unsigned int t = 0; t < range.num_tiles; ++t, ++tile) {
                const unsigned int stage = tile % kNumStages, phase = (tile / kNumStages) % 2;
                const int key = static_cast<int>(range.first_key + t * kBlockKV);
                // NOTE: the ring is full most of the time; a spinning wait would take issue slots from the math
                // warps that share this warp's scheduler.
                ptx::mbarrier_wait_suspend(bars.k_empty + stage, phase ^ 1, kProducerSuspendNs);
                ptx::mbarrier_arrive_expect_tx(bars.k_full + stage, Layout::kStageTxBytes);
                ptx::tma_load_2d(smem + Layout::kKOffset + stage * Layout::kKStageBytes, &k_map, bars.k_full + stage, 0,
                                 key);
                ptx::tma_load_2d(smem + Layout::kScaleOffset + stage * Layout::kScaleStageBytes, &s_map,
                                 bars.k_full + stage, key, 0);
            }
        }
        return;
    }

    // Step: math warpgroups.
    ptx::setmaxnreg_inc<Roles::kMathRegisters>();
    const unsigned int math_idx = role - kMathWarpgroup0;
    const unsigned int pair = math_idx / kPairWarpgroups, half = math_idx % kPairWarpgroups;
    const unsigned int math_tid = threadIdx.x - kMathWarpgroup0 * 128;  // 0 .. 511 over all math warpgroups
    // This lane stores the logits of queries half * kWgQ + 2 * j + l / 2 (j < kStores) at key row
    // row0 + 8 * (l % 2), where l is the lane's place in its quad (relu_weighted_head_sum_scattered).
    const unsigned int quad_lane = threadIdx.x % 4;
    const unsigned int store_row = accum_row0() + 8 * (quad_lane % 2);
    const bool store_lane = scattered_store_lane<kWgQ>();
    const float ninf = neg_inf();
    float acc[kWgRows / 2];
    float2 wr[kWgRows / 8];
    float sums[kStores];
    const unsigned long long desc_k0 = tile_desc<kHeadDim>(smem + Layout::kKOffset);
    // This lane's key scale in stage 0 (stage s: + s * kBlockKV).
    const float* scales = reinterpret_cast<const float*>(smem + Layout::kScaleOffset) + store_row;
    static_assert(Layout::kScaleStageBytes == kBlockKV * sizeof(float), "one FP32 scale per key of a stage");

    unsigned int tile = 0, iter = 0;
    for (unsigned int g = blockIdx.x; g < num_groups; g += gridDim.x, ++iter) {
        const unsigned int q0 = g * kNumQ;
        const GroupRange<kNumQ> range(ks, ke, q0, seq_len, seq_len_kv);
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        const unsigned char* q_rows = smem + Layout::kQOffset + slot * Layout::kQSlotBytes + half * kWgRows * kHeadDim;
        const float* w_slot =
            reinterpret_cast<const float*>(smem + Layout::kWOffset + slot * Layout::kWSlotBytes) + half * kWgRows;
        // The rows this lane stores: range, output row, and whether it stores at all.
        unsigned int my_lo[kStores], my_hi[kStores];
        float* my_row[kStores];
        bool my_ok[kStores];
#pragma unroll
        for (unsigned int j = 0; j < kStores; ++j) {
            // NOTE: the range arrays are indexed with literals only (selects), so they stay in registers.
            const bool second = kWgQ > 1 && quad_lane >= 2;
            const unsigned int i0 = 2 * j, i1 = min_of(2 * j + 1, kWgQ - 1);  // queries of the warpgroup's half
            const unsigned int lo0 = half ? range.lo[kWgQ + i0] : range.lo[i0];
            const unsigned int lo1 = half ? range.lo[kWgQ + i1] : range.lo[i1];
            const unsigned int hi0 = half ? range.hi[kWgQ + i0] : range.hi[i0];
            const unsigned int hi1 = half ? range.hi[kWgQ + i1] : range.hi[i1];
            const unsigned int q = q0 + half * kWgQ + (second ? i1 : i0);
            my_lo[j] = second ? lo1 : lo0;
            my_hi[j] = second ? hi1 : hi0;
            my_ok[j] = store_lane && q < seq_len;
            my_row[j] = out + static_cast<unsigned long long>(my_ok[j] ? q : 0) * out_stride;
        }
        ptx::mbarrier_wait(bars.q_full + slot, parity);

        // This pair's tiles of the group: t = t0, t0 + 2, ... (CTA tile number tile + t).
        const unsigned long long desc_q = tile_desc<kHeadDim>(q_rows);
        load_head_weights<kWgQ, kNumHeads>(w_slot, wr);
        for (unsigned int t = (tile + pair) % kPrefillPairs; t < range.num_tiles; t += kPrefillPairs) {
            const unsigned int stage = (tile + t) % kNumStages, phase = ((tile + t) / kNumStages) % 2;
            const unsigned int key = range.first_key + t * kBlockKV + store_row;
            ptx::mbarrier_wait(bars.k_full + stage, phase);
            // Scales of keys past S_kv are zero-filled by TMA; those keys are never stored.
            const float scale = scales[stage * kBlockKV];
            tile_mma_issue<kWgRows, kHeadDim>(ptx::smem_desc_advance(desc_k0, stage * Layout::kKStageBytes), desc_q,
                                              acc);
            tile_mma_wait<kWgRows>(acc);
            ptx::mbarrier_arrive(bars.k_empty + stage);

            relu_weighted_head_sum_scattered<kWgQ, kNumHeads>(acc, wr, sums);
            if (key < seq_len_kv) {
#pragma unroll
                for (unsigned int j = 0; j < kStores; ++j) {
                    const bool valid = key >= my_lo[j] && key < my_hi[j];
                    if (my_ok[j] && (valid || clean)) my_row[j][key] = valid ? sums[j] * scale : ninf;
                }
            }
        }
        tile += range.num_tiles;

        // Step: -inf outside the tiles of this group (the whole row when the group has no tile).
        if (clean) {
            const unsigned int tiles_lo = range.first_key;
            const unsigned int tiles_hi = min_of(range.first_key + range.num_tiles * kBlockKV, seq_len_kv);
#pragma unroll
            for (unsigned int q = 0; q < kNumQ; ++q) {
                if (q0 + q >= seq_len) continue;
                float* row = out + (q0 + q) * out_stride;
                fill_row(row, 0, range.num_tiles ? tiles_lo : 0, ninf, math_tid, kNumMathThreads);
                fill_row(row, range.num_tiles ? tiles_hi : 0, seq_len_kv, ninf, math_tid, kNumMathThreads);
            }
        }
        ptx::mbarrier_arrive(bars.q_empty + slot);
    }
#endif
}

}  // namespace dg::indexer
