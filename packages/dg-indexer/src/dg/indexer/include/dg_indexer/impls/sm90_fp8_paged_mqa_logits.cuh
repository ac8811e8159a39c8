// dg_indexer/impls/sm90_fp8_paged_mqa_logits.cuh -- paged lightning-indexer logits (decode) on SM90.
//
// Computes, for sequence b, query r < next_n (output row R = b * next_n + r), L = context_lens[b] and every
// position j <= last = L - next_n + r:
//     out[R, j] = scale(blk, t) * sum_h w[R, h] * max(0, <q[b, r, h, :], kvec(blk, t)>)
// with blk = block_table[b, j / 64], t = j % 64. The fused KV cache block holds the 64 FP8 token vectors (token t
// at byte t * D) and then the 64 FP32 scales (byte 64 * D + 4 * t): kv_map views the vectors as (D, 64, blocks),
// s_map the scales as (64, blocks), both with the block pitch as the outer stride. With `clean`
// set, every position j > last of the row (up to max_context_len) is -inf, written by this kernel.
//
// Work split: schedule_meta (from smxx_paged_mqa_logits_metadata) gives CTA c the (batch, 256-token split)
// items from row c up to row c + 1. A CTA turns its items into segments: one batch and a run of its 64-token
// blocks. Per segment the Q rows (next_n * H) and weights are loaded once; each block is one key tile, and tile
// t of the CTA's sequence goes to math warpgroup t % M (roles, pipelines and the shared memory map in
// sm90_mqa_logits_common.cuh, with kNumQ = next_n). The CTA that owns a batch's last split also writes the
// row tails past the last block; batches without any split are cleaned by CTA b % gridDim.x.
//
// Math warpgroups M (kNumMathWarpgroups, 640 threads with four, 384 with two): four whenever next_n * H <= 128
// (at most 64 accumulators per thread, 104 registers). NOTE: a math warpgroup's tile is a dependent chain (wait,
// wgmma, head sum, stores); on an H100 four in turn retire tiles 2-4% faster than two (measured on the three
// benchmark cases). The pipeline alone (math removed) reaches about 81% of the copy bandwidth: the remaining gap is
// in the loads, not the math; more key stages (20, 22) did not help, 12 was 0.4-2% faster than 16.
//
// Loads: every key block is read once per call, so its two TMA loads carry an L2 evict-first policy. After a dirty
// L2 (the benchmark's flush) most of what is left between this kernel and a copy of the same bytes is the
// write-back of those dirty lines. One 66-row box per block (keys and scales together, swizzled) was as fast after
// a clean L2 and 1.5x slower after a dirty one; 8 or 12 stages: within noise (perf log dg.indexer v7).
//
// Start-up: the first 32 block ids of the CTA are loaded from its schedule row alone, in parallel with the context
// length that the walk needs, so the first key tile is requested one memory latency earlier.
//
// Guards (bad values never cause an out-of-bounds access or an endless loop): L is clamped to
// [0, min(max_context_len, 64 * table_width)]; schedule rows are clamped to [0, B]; the item walk advances the
// batch index on every segment; a block id outside [0, num_blocks) is replaced by block 0 for the load and flagged
// in shared memory, and its tokens get NaN logits, as do positions j <= last that the clamped length excludes.
#pragma once

#include "sm90_mqa_logits_common.cuh"

namespace dg::indexer {

constexpr unsigned int kPagedSplitBlocks = 4;  // blocks per work item of the metadata (256 tokens)

struct PagedParams {
    const int* context_lens;
    const int* block_table;
    unsigned long long table_stride;
    unsigned int table_width;
    unsigned int batch;
    unsigned int max_context_len;

    // Context length of sequence b clamped to what the output and the block table can hold.
    DG_DEVICE unsigned int clamped_len(unsigned int b) const {
        const int raw = __ldg(context_lens + b);
        const unsigned long long cap = min_of(static_cast<unsigned long long>(max_context_len),
                                              static_cast<unsigned long long>(table_width) * kBlockKV);
        return raw <= 0 ? 0u : static_cast<unsigned int>(min_of(static_cast<unsigned long long>(raw), cap));
    }
};

struct PagedSegment {
    unsigned int b;       // sequence
    unsigned int blk_lo;  // first block (table column) of the segment
    unsigned int blk_hi;  // one past its last block
    unsigned int len;     // clamped context length of the sequence
    bool owns_tail;       // this segment holds the sequence's last block: write the row tails
};

// Walks this CTA's (batch, split) items in order, one segment per batch. Every role builds its own walker, so
// the sequence depends only on the kernel arguments and blockIdx.x.
struct PagedWalker {
    unsigned int b, s, b_end, s_end;

    DG_DEVICE PagedWalker(const int* meta, unsigned int batch) {
        const int* row = meta + 2 * blockIdx.x;
        b = clamp_index(row[0], batch);
        s = row[1] < 0 ? 0u : static_cast<unsigned int>(row[1]);
        b_end = clamp_index(row[2], batch);
        s_end = row[3] < 0 ? 0u : static_cast<unsigned int>(row[3]);
    }

    DG_DEVICE static unsigned int clamp_index(int v, unsigned int batch) {
        return v <= 0 ? 0u : min_of(static_cast<unsigned int>(v), batch);
    }

    DG_DEVICE bool next(const PagedParams& p, PagedSegment& seg) {
        while (b < p.batch && (b < b_end || (b == b_end && s < s_end))) {
            const unsigned int len = p.clamped_len(b);
            const unsigned int splits = ceil_div(len, kPagedSplitBlocks * kBlockKV);
            const unsigned int stop = b == b_end ? min_of(s_end, splits) : splits;
            if (s < stop) {
                seg.b = b;
                seg.len = len;
                seg.blk_lo = s * kPagedSplitBlocks;
                seg.blk_hi = ceil_div(min_of(stop * kPagedSplitBlocks * kBlockKV, len), kBlockKV);
                seg.owns_tail = stop == splits;
                ++b;
                s = 0;
                return true;
            }
            ++b;
            s = 0;
        }
        return false;
    }
};

// Row tail [from, max_context_len): NaN at positions the row should have scored (j <= last) but whose keys
// were clamped away, -inf elsewhere when cleaning.
DG_DEVICE void fill_tail(float* row, unsigned int from, unsigned int max_context_len, long long last, bool clean,
                         unsigned int tid, unsigned int stride) {
    const long long scored_end = min_of(static_cast<long long>(max_context_len), max_of(last + 1, 0ll));
    const unsigned int end = clean ? max_context_len : static_cast<unsigned int>(max_of(scored_end, 0ll));
    for (unsigned int c = from + tid; c < end; c += stride)
        row[c] = static_cast<long long>(c) <= last ? quiet_nan() : neg_inf();
}

template <unsigned int kNextN, unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kNumStages,
          unsigned int kNumMathWarpgroups>
__global__ void __launch_bounds__(MqaRoles<kNumMathWarpgroups>::kNumThreads, 1)
    sm90_fp8_paged_mqa_logits_impl(const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap kv_map,
                                   const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap s_map,
                                   unsigned int num_blocks, const int* __restrict__ context_lens,
                                   const int* __restrict__ block_table, unsigned long long table_stride,
                                   unsigned int table_width, const int* __restrict__ schedule_meta,
                                   float* __restrict__ out, unsigned long long out_stride, unsigned int batch,
                                   unsigned int max_context_len, unsigned int clean) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    static_assert(kNextN == 1 || kNextN == 2, "next_n must be 1 or 2");
    using Layout = MqaLayout<kNextN, kNumHeads, kHeadDim, kNumStages>;
    using Roles = MqaRoles<kNumMathWarpgroups>;
    constexpr unsigned int kNumMathThreads = Roles::kNumMathThreads;
    static_assert(kNumMathWarpgroups == 2 || Layout::kQRows <= 128,
                  "four math warpgroups hold at most 64 accumulators per thread (104 registers)");

    extern __shared__ __align__(1024) unsigned char smem[];
    // NOTE: the swizzled tiles need a 1024-byte aligned base, the host must have provided the whole map, and every
    // warpgroup must exist (a missing math warpgroup would leave its barriers waiting forever).
    trap_unless(dynamic_smem_size() >= Layout::kSmemBytes && ptx::smem_addr(smem) % 1024 == 0 &&
                blockDim.x == Roles::kNumThreads && blockDim.y == 1 && blockDim.z == 1);
    const MqaBarriers<kNumStages, kNumMathThreads> bars(
        reinterpret_cast<unsigned long long*>(smem + Layout::kBarrierOffset));
    if (threadIdx.x == 0) {
        ptx::tma_prefetch_descriptor(&q_map);
        ptx::tma_prefetch_descriptor(&kv_map);
        ptx::tma_prefetch_descriptor(&w_map);
        ptx::tma_prefetch_descriptor(&s_map);
        bars.init();
    }
    __syncthreads();

    const PagedParams params{context_lens, block_table, table_stride, table_width, batch, max_context_len};
    const unsigned int role = warpgroup_idx_sync();

    if (role == kTmaWarpgroup) {
        // Step: producer. The first warp walks the work; each lane fetches one of the next 32 block ids, so the
        // table read is one coalesced load per 32 tiles instead of a dependent load per tile. Lane 0 issues
        // every TMA load; the other warps retire.
        ptx::setmaxnreg_dec<kTmaRegisters>();
        if (warp_idx_sync() != 0) return;
        const unsigned int lane = lane_idx();
        // NOTE: every key block is read once: evict-first keeps it from displacing other lines of the L2
        // (dirty ones cost a write-back each). H100, cold L2: 33.4 -> 30.2, 99.6 -> 95.9, 90.6 -> 87.5 us on the
        // three benchmark cases (perf log dg.indexer v7).
        const unsigned long long policy = ptx::l2_policy_evict_first();
        int* stage_ok = reinterpret_cast<int*>(smem + Layout::kFlagOffset);
        PagedWalker walker(schedule_meta, batch);
        // NOTE: the first block ids are fetched before the first segment is known: they depend only on the
        // schedule row, so their load overlaps the context-length load that the walker needs (one memory latency
        // less before the first key tile is requested). Used only if the first segment starts there.
        const unsigned int pre_b = walker.b, pre_blk = walker.s * kPagedSplitBlocks;
        const bool pre_ok = pre_b < batch && pre_blk + lane < table_width;
        const int pre_id = pre_ok ? __ldg(block_table + pre_b * table_stride + pre_blk + lane) : -1;
        PagedSegment seg;
        unsigned int tile = 0, iter = 0;
        while (walker.next(params, seg)) {
            const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
            ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
            if (lane == 0) {
                ptx::mbarrier_arrive_expect_tx(bars.q_full + slot, Layout::kQSlotBytes + Layout::kWSlotBytes);
                ptx::tma_load_2d(smem + Layout::kQOffset + slot * Layout::kQSlotBytes, &q_map, bars.q_full + slot, 0,
                                 static_cast<int>(seg.b * kNextN * kNumHeads));
                ptx::tma_load_2d(smem + Layout::kWOffset + slot * Layout::kWSlotBytes, &w_map, bars.q_full + slot, 0,
                                 static_cast<int>(seg.b * kNextN));
            }
            __syncwarp();
            const int* table_row = block_table + seg.b * table_stride;
            for (unsigned int base = seg.blk_lo; base < seg.blk_hi; base += 32) {
                const unsigned int count = min_of(32u, seg.blk_hi - base);
                const bool prefetched = iter == 0 && base == seg.blk_lo && seg.b == pre_b && seg.blk_lo == pre_blk;
                const int my_id = lane >= count ? -1 : (prefetched ? pre_id : __ldg(table_row + base + lane));
                for (unsigned int i = 0; i < count; ++i, ++tile) {
                    const int id = __shfl_sync(0xffffffffu, my_id, i);
                    const bool ok = id >= 0 && static_cast<unsigned int>(id) < num_blocks;
                    // NOTE: an invalid id loads block 0 instead (always in bounds, num_blocks >= 1); the flag
                    // below makes the consumers turn its tokens into NaN.
                    const int coord = ok ? id : 0;
                    const unsigned int stage = tile % kNumStages, phase = (tile / kNumStages) % 2;
                    ptx::mbarrier_wait(bars.k_empty + stage, phase ^ 1);
                    if (lane == 0) {
                        // NOTE: the flag store is ordered before the consumers' reads by the barrier's
                        // arrive (release) and their wait (acquire).
                        stage_ok[stage] = ok ? 1 : 0;
                        ptx::mbarrier_arrive_expect_tx(bars.k_full + stage, Layout::kStageTxBytes);
                        ptx::tma_load_3d_hint(smem + Layout::kKOffset + stage * Layout::kKStageBytes, &kv_map,
                                              bars.k_full + stage, 0, 0, coord, policy);
                        ptx::tma_load_2d_hint(smem + Layout::kScaleOffset + stage * Layout::kScaleStageBytes, &s_map,
                                              bars.k_full + stage, 0, coord, policy);
                    }
                    __syncwarp();
                }
            }
            ++iter;
        }
        return;
    }

    // Step: math warpgroups.
    ptx::setmaxnreg_inc<Roles::kMathRegisters>();
    const unsigned int math_idx = role - kMathWarpgroup0;
    const unsigned int math_tid = threadIdx.x - kMathWarpgroup0 * 128;  // 0 .. kNumMathThreads - 1
    const unsigned int row0 = accum_row0();
    const float ninf = neg_inf(), nan = quiet_nan();
    const int* stage_ok = reinterpret_cast<const int*>(smem + Layout::kFlagOffset);
    float acc[Layout::kQRows / 2];
    float sums[kNextN][2];
    // NOTE: descriptors pinned (ptx::smem_desc_pinned): rebuilt from the pointers they cost ~7 instructions a tile.
    const unsigned long long desc_k0 = ptx::smem_desc_pinned(tile_desc<kHeadDim>(smem + Layout::kKOffset));

    PagedWalker walker(schedule_meta, batch);
    PagedSegment seg;
    unsigned int tile = 0, iter = 0;
    while (walker.next(params, seg)) {
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        const unsigned char* q_rows = smem + Layout::kQOffset + slot * Layout::kQSlotBytes;
        const float* w_slot = reinterpret_cast<const float*>(smem + Layout::kWOffset + slot * Layout::kWSlotBytes);
        const long long raw_len = __ldg(context_lens + seg.b);
        const unsigned long long desc_q = ptx::smem_desc_pinned(tile_desc<kHeadDim>(q_rows));
        ptx::mbarrier_wait(bars.q_full + slot, parity);

        for (unsigned int blk = seg.blk_lo; blk < seg.blk_hi; ++blk, ++tile) {
            if (tile % kNumMathWarpgroups != math_idx) continue;
            const unsigned int stage = tile % kNumStages, phase = (tile / kNumStages) % 2;
            ptx::mbarrier_wait(bars.k_full + stage, phase);
            // A stage loaded for an invalid block id holds block 0: its tokens get NaN through the scale.
            const float* stage_scales =
                reinterpret_cast<const float*>(smem + Layout::kScaleOffset + stage * Layout::kScaleStageBytes);
            const bool id_ok = stage_ok[stage] != 0;
            const float scale0 = id_ok ? stage_scales[row0] : nan;
            const float scale1 = id_ok ? stage_scales[row0 + 8] : nan;
            tile_mma_issue<Layout::kQRows, kHeadDim>(ptx::smem_desc_advance(desc_k0, stage * Layout::kKStageBytes),
                                                     desc_q, acc);
            tile_mma_wait<Layout::kQRows>(acc);
            ptx::mbarrier_arrive(bars.k_empty + stage);

            relu_weighted_head_sum<kNextN, kNumHeads>(acc, w_slot, sums);
#pragma unroll
            for (unsigned int r = 0; r < kNextN; ++r) {
                const long long last = raw_len - kNextN + r;
                float* row = out + (seg.b * kNextN + r) * out_stride;
#pragma unroll
                for (unsigned int half = 0; half < 2; ++half) {
                    const unsigned int j = blk * kBlockKV + row0 + 8 * half;
                    if (!is_store_lane(r, half) || j >= max_context_len) continue;
                    const bool scored = static_cast<long long>(j) <= last;
                    if (scored)
                        row[j] = j < seg.len ? sums[r][half] * (half ? scale1 : scale0) : nan;
                    else if (clean)
                        row[j] = ninf;
                }
            }
        }

        // Step: the row tails past the sequence's last block.
        if (seg.owns_tail) {
            const unsigned int from = min_of(seg.blk_hi * kBlockKV, max_context_len);
#pragma unroll
            for (unsigned int r = 0; r < kNextN; ++r)
                fill_tail(out + (seg.b * kNextN + r) * out_stride, from, max_context_len, raw_len - kNextN + r,
                          clean != 0, math_tid, kNumMathThreads);
        }
        ptx::mbarrier_arrive(bars.q_empty + slot);
        ++iter;
    }

    // Step: sequences without any block (clamped length 0) belong to no segment; CTA b % gridDim.x writes them.
    for (unsigned int b = blockIdx.x; b < batch; b += gridDim.x) {
        if (params.clamped_len(b) != 0) continue;
        const long long raw_len = __ldg(context_lens + b);
#pragma unroll
        for (unsigned int r = 0; r < kNextN; ++r)
            fill_tail(out + (b * kNextN + r) * out_stride, 0, max_context_len, raw_len - kNextN + r, clean != 0,
                      math_tid, kNumMathThreads);
    }
#endif
}

}  // namespace dg::indexer
