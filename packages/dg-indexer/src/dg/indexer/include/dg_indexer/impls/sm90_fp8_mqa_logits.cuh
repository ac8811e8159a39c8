// dg_indexer/impls/sm90_fp8_mqa_logits.cuh -- non-paged lightning-indexer logits (prefill) on SM90.
//
// Computes, for every query i and key j with ks[i] <= j < ke[i]:
//     out[i, j] = k_scale[j] * sum_h w[i, h] * max(0, <q[i, h, :], k[j, :]>)
// q FP8 e4m3 [S, H, D] (no scale), k FP8 e4m3 [S_kv, D] with an FP32 scale per key (s_map: a [1, S_kv] map),
// w FP32 [S, H], FP32 out with row pitch `out_stride` elements. With `clean` set, every other position of the S x S_kv
// output is -inf, written by the same CTA (no separate pass, no extra read of the output).
//
// Work: a query group is kNumQ = kQRows / H consecutive queries (kQRows = 128 or 256 Q rows, one wgmma N).
// Persistent CTAs take groups
// blockIdx.x, blockIdx.x + gridDim.x, ...; a group walks the union of its queries' key ranges, its start rounded
// down to a multiple of 4 keys (TMA needs a 16-byte aligned innermost coordinate for the scales), in tiles of 64
// keys; tile t of the CTA's sequence goes to math warpgroup t % 2 (roles, pipelines and the shared memory map in
// sm90_mqa_logits_common.cuh). Q rows and weights of a group are double buffered, keys use kNumStages stages.
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

// Two math warpgroups: the 256-row query group keeps 128 accumulators per thread.
using MqaPrefillRoles = MqaRoles<2>;

template <unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kQRows, unsigned int kNumStages>
__global__ void __launch_bounds__(MqaPrefillRoles::kNumThreads, 1)
    sm90_fp8_mqa_logits_impl(const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap k_map,
                             const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap s_map,
                             const int* __restrict__ ks, const int* __restrict__ ke, float* __restrict__ out,
                             unsigned int seq_len, unsigned int seq_len_kv, unsigned long long out_stride,
                             unsigned int clean) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    static_assert(kQRows % kNumHeads == 0 && (kQRows == 128 || kQRows == 256), "a query group is 128 or 256 Q rows");
    constexpr unsigned int kNumQ = kQRows / kNumHeads;
    using Layout = MqaLayout<kNumQ, kNumHeads, kHeadDim, kNumStages>;

    extern __shared__ __align__(1024) unsigned char smem[];
    // NOTE: the swizzled tiles need a 1024-byte aligned base and the host must have provided the whole map.
    trap_unless(dynamic_smem_size() >= Layout::kSmemBytes && ptx::smem_addr(smem) % 1024 == 0);
    using Roles = MqaPrefillRoles;
    constexpr unsigned int kNumMathThreads = Roles::kNumMathThreads;
    const MqaBarriers<kNumStages, kNumMathThreads> bars(
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
        ptx::setmaxnreg_dec<kTmaRegisters>();
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
                ptx::mbarrier_wait(bars.k_empty + stage, phase ^ 1);
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
    const unsigned int math_tid = threadIdx.x - kMathWarpgroup0 * 128;  // 0 .. 255 over both warpgroups
    const unsigned int row0 = accum_row0();
    const float ninf = neg_inf();
    float acc[Layout::kQRows / 2];
    float sums[kNumQ][2];

    unsigned int tile = 0, iter = 0;
    for (unsigned int g = blockIdx.x; g < num_groups; g += gridDim.x, ++iter) {
        const unsigned int q0 = g * kNumQ;
        const GroupRange<kNumQ> range(ks, ke, q0, seq_len, seq_len_kv);
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        const unsigned char* q_rows = smem + Layout::kQOffset + slot * Layout::kQSlotBytes;
        const float* w_slot = reinterpret_cast<const float*>(smem + Layout::kWOffset + slot * Layout::kWSlotBytes);
        ptx::mbarrier_wait(bars.q_full + slot, parity);

        for (unsigned int t = 0; t < range.num_tiles; ++t, ++tile) {
            if (tile % Roles::kNumMathWarpgroups != math_idx) continue;
            const unsigned int stage = tile % kNumStages, phase = (tile / kNumStages) % 2;
            const unsigned int key0 = range.first_key + t * kBlockKV + row0;
            ptx::mbarrier_wait(bars.k_full + stage, phase);
            // Scales of keys past S_kv are zero-filled by TMA; those keys are never stored.
            const float* stage_scales =
                reinterpret_cast<const float*>(smem + Layout::kScaleOffset + stage * Layout::kScaleStageBytes);
            const float scale0 = stage_scales[row0], scale1 = stage_scales[row0 + 8];
            tile_mma<Layout::kQRows, kHeadDim>(smem + Layout::kKOffset + stage * Layout::kKStageBytes, q_rows, acc);
            ptx::mbarrier_arrive(bars.k_empty + stage);

            relu_weighted_head_sum<kNumQ, kNumHeads>(acc, w_slot, sums);
#pragma unroll
            for (unsigned int q = 0; q < kNumQ; ++q) {
#pragma unroll
                for (unsigned int half = 0; half < 2; ++half) {
                    const unsigned int key = key0 + 8 * half;
                    if (!is_store_lane(q, half) || q0 + q >= seq_len || key >= seq_len_kv) continue;
                    const bool valid = key >= range.lo[q] && key < range.hi[q];
                    if (valid || clean)
                        out[(q0 + q) * out_stride + key] = valid ? sums[q][half] * (half ? scale1 : scale0) : ninf;
                }
            }
        }

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
