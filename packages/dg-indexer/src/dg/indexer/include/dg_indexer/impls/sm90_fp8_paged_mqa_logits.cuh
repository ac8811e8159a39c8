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
// Work items: sequence b has ceil(L / 256) items (256-token splits), numbered in sequence order over the batch
// (T in all). A CTA turns the items it gets into segments: one sequence and a run of its 64-token blocks. Per
// segment the producer writes a header into the next Q slot and loads that slot's Q rows (next_n * H) and weights;
// each block is one key tile, and tile t of the CTA's tile sequence goes to math warpgroup t % M (roles, pipelines
// and the shared memory map in sm90_mqa_logits_common.cuh, with kNumQ = next_n). The segment holding a sequence's
// last item also writes the row tails past the last block; sequences without items are cleaned by CTA b % gridDim.x.
//
// Dynamic split (B <= kPagedDynamicMaxBatch, T < 2^31, a claim counter passed): the producer warp of every CTA
// sums the items per sequence into a prefix table in shared memory; CTA c first takes items
// [c * share, (c + 1) * share), share = 3/4 of T / G, then claims pieces of the rest from claim[0] (atomicAdd), each
// of (remaining / 2G) items, between 1 and kPagedMaxClaimItems, until the pool is dry. NOTE: the SMs of an H100 do
// not get equal shares of the HBM bandwidth: with the even static split (every CTA the same item count) the busiest
// SM ran 8-9% longer than the average one (ncu, perf log dg.indexer v7 follow-up); claims let the faster SMs take
// more. The last CTA to finish claiming zeroes claim[0..1], so the counter is ready for the next launch on the same
// stream; the host gives every stream its own counter and every captured call its own (dg/indexer/
// paged_mqa_logits.py).
// Static split (larger batches, or no counter): schedule_meta (from smxx_paged_mqa_logits_metadata) gives CTA c
// the items from row c up to row c + 1.

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
// Start-up (static split): the first 32 block ids of the CTA are loaded from its schedule row alone, in parallel
// with the context length that the walk needs, so the first key tile is requested one memory latency earlier.
//
// Guards (bad values never cause an out-of-bounds access or an endless loop): L is clamped to
// [0, min(max_context_len, 64 * table_width)]; schedule rows are clamped to [0, B]; the item walk advances the
// batch index on every segment; claimed pieces are clipped to [0, T) and the claim loop ends at the first piece
// past T; a block id outside [0, num_blocks) is replaced by block 0 for the load and flagged
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

// Dynamic split (see the file comment): sequences up to this batch size keep their item prefix sums in shared
// memory; larger batches take the schedule rows.
constexpr unsigned int kPagedDynamicMaxBatch = 2048;
// Most items one claim takes from the shared pool, and the static share of each CTA in eighths of T / G.
constexpr unsigned int kPagedMaxClaimItems = 8;
constexpr unsigned int kPagedStaticEighths = 6;
constexpr unsigned int kPagedClaimDivisor = 2;  // a claim takes remaining / (kPagedClaimDivisor * G) items
constexpr unsigned int kNoSegment = 0xffffffffu;

// The segment a Q slot holds, written by the producer before it arms the slot's q_full barrier (b = kNoSegment:
// no more work). 32 bytes per slot.
struct PagedHeader {
    unsigned int b, blk_lo, blk_hi, len, owns_tail, pad[3];
};
// Work area: the two slots' headers, then prefix[0 .. B] (items before sequence b).
constexpr unsigned int kPagedWorkBytes = 2 * sizeof(PagedHeader) + align_up(4 * (kPagedDynamicMaxBatch + 1), 16u);

// Items (256-token splits) of a clamped length.
DG_DEVICE unsigned int paged_items(unsigned int len) {
    return ceil_div(len, kPagedSplitBlocks * kBlockKV);
}

// One warp: prefix[b] = items of sequences 0 .. b - 1 for b = 0 .. B (batch <= kPagedDynamicMaxBatch); returns
// the total in 64 bits (the table is valid only when it stays below 2^31). NOTE: each lane loads four lengths
// before the scans, so a batch of up to 128 sequences costs one memory latency.
DG_DEVICE unsigned long long paged_prefix(const PagedParams& p, unsigned int* prefix, unsigned int lane) {
    unsigned long long carry = 0;
    if (lane == 0) prefix[0] = 0;
    for (unsigned int base = 0; base < p.batch; base += 128) {
        unsigned int items[4];
#pragma unroll
        for (unsigned int i = 0; i < 4; ++i) {
            const unsigned int b = base + 32 * i + lane;
            items[i] = b < p.batch ? paged_items(p.clamped_len(b)) : 0u;
        }
#pragma unroll
        for (unsigned int i = 0; i < 4; ++i) {
            // NOTE: a lane's items stay below 2^23 (lengths below 2^31), so 32 of them fit in 32 bits.
            const unsigned int incl = warp_inclusive_sum(items[i], lane);
            const unsigned int b = base + 32 * i + lane;
            if (b < p.batch) prefix[b + 1] = static_cast<unsigned int>(carry + incl);
            carry += __shfl_sync(0xffffffffu, incl, 31);
        }
    }
    __syncwarp();
    return carry;
}

// Turns items [lo, hi) (0 <= lo < hi <= prefix[B]) into segments, one per sequence, and hands each to `emit`.
template <typename Emit>
DG_DEVICE void paged_emit_items(const PagedParams& p, const unsigned int* prefix, unsigned int lo, unsigned int hi,
                                Emit&& emit) {
    // Step: the sequence holding item lo: the last b with prefix[b] <= lo (prefix[B] > lo bounds the search).
    unsigned int l = 0, r = p.batch;
    while (r - l > 1) {
        const unsigned int m = (l + r) / 2;
        if (prefix[m] <= lo)
            l = m;
        else
            r = m;
    }
    unsigned int b = l;
    while (lo < hi && b < p.batch) {
        const unsigned int first = prefix[b], next = prefix[b + 1];
        if (next <= lo) {  // a sequence without items
            ++b;
            continue;
        }
        const unsigned int end = min_of(hi, next);
        const unsigned int len = p.clamped_len(b);
        PagedSegment seg;
        seg.b = b;
        seg.len = len;
        seg.blk_lo = (lo - first) * kPagedSplitBlocks;
        seg.blk_hi = ceil_div(min_of((end - first) * kPagedSplitBlocks * kBlockKV, len), kBlockKV);
        seg.owns_tail = end == next;
        emit(seg);
        lo = end;
        ++b;
    }
}

template <unsigned int kNextN, unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kNumStages,
          unsigned int kNumMathWarpgroups>
__global__ void __launch_bounds__(MqaRoles<kNumMathWarpgroups>::kNumThreads, 1)
    sm90_fp8_paged_mqa_logits_impl(const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap kv_map,
                                   const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap s_map,
                                   unsigned int num_blocks, const int* __restrict__ context_lens,
                                   const int* __restrict__ block_table, unsigned long long table_stride,
                                   unsigned int table_width, const int* __restrict__ schedule_meta,
                                   unsigned int* __restrict__ claim, float* __restrict__ out,
                                   unsigned long long out_stride, unsigned int batch, unsigned int max_context_len,
                                   unsigned int clean) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900)
    static_assert(kNextN == 1 || kNextN == 2, "next_n must be 1 or 2");
    using Layout = MqaLayout<kNextN, kNumHeads, kHeadDim, kNumStages, 0, kPagedWorkBytes>;
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
    PagedHeader* headers = reinterpret_cast<PagedHeader*>(smem + Layout::kWorkOffset);
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
        unsigned int* prefix = reinterpret_cast<unsigned int*>(smem + Layout::kWorkOffset + 2 * sizeof(PagedHeader));
        // Step: the split. Every CTA takes the same decision from the same arguments (see the file comment).
        bool dynamic = claim != nullptr && batch <= kPagedDynamicMaxBatch;
        unsigned long long total = 0;
        if (dynamic) {
            total = paged_prefix(params, prefix, lane);
            dynamic = total < (1ull << 31);
        }
        // Block ids fetched before the first segment is known (static split only, see below).
        unsigned int pre_b = batch, pre_blk = 0;
        int pre_id = -1;
        unsigned int tile = 0, iter = 0;

        // Publishes one segment in the next Q slot (header, Q rows and weights) and loads its key tiles.
        auto publish = [&](const PagedSegment& seg) {
            const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
            ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
            if (lane == 0) {
                // NOTE: the header is ordered before the consumers' reads by the barrier's arrive (release) and
                // their wait (acquire), like the stage flags.
                headers[slot] = PagedHeader{seg.b, seg.blk_lo, seg.blk_hi, seg.len, seg.owns_tail ? 1u : 0u, {}};
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
        };

        if (dynamic) {
            // Step: the static share: items [c * share, (c + 1) * share) of the T items, share = 3/4 of T / G.
            const unsigned int num_items = static_cast<unsigned int>(total), ctas = gridDim.x;
            const unsigned int share = num_items / ctas * kPagedStaticEighths / 8;
            if (share > 0) paged_emit_items(params, prefix, blockIdx.x * share, (blockIdx.x + 1) * share, publish);
            // Step: the pool [G * share, T), claimed through claim[0] in pieces that shrink with what is left
            // (remaining / 2G, 1 .. kPagedMaxClaimItems items). NOTE: a claim is made when the previous piece's
            // last tile has been requested, so a CTA never holds more than its key stages and one piece.
            const unsigned int pool = ctas * share;
            unsigned int seen = pool;
            for (;;) {
                const unsigned int left = num_items > seen ? num_items - seen : 0u;
                const unsigned int size = max_of(1u, min_of(left / (kPagedClaimDivisor * ctas), kPagedMaxClaimItems));
                unsigned int got = 0;
                if (lane == 0) got = atomicAdd(claim, size);
                got = __shfl_sync(0xffffffffu, got, 0);
                // NOTE: 64-bit: after the pool runs dry every CTA's last claim still adds to the counter.
                const unsigned long long lo = static_cast<unsigned long long>(pool) + got;
                if (lo >= num_items) break;
                seen = static_cast<unsigned int>(lo);
                paged_emit_items(params, prefix, seen, min_of(seen + size, num_items), publish);
            }
            // Step: re-arm the counter. The last CTA to finish claiming zeroes it, so the next launch on this
            // stream (or the next replay of a graph) starts from an empty count. NOTE: every CTA's claims are
            // ordered before its arrival by the fence, so no claim follows the reset.
            if (lane == 0) {
                __threadfence();
                if (atomicAdd(claim + 1, 1u) == ctas - 1) {
                    atomicExch(claim, 0u);
                    atomicExch(claim + 1, 0u);
                }
            }
        } else {
            // NOTE: the schedule rows are read only here: in the dynamic split their load would put one more
            // memory latency before the first key tile. The first block ids are fetched before the first segment
            // is known: they depend only on the schedule row, so their load overlaps the context-length load
            // that the walker needs. Used only if the first segment starts there.
            PagedWalker walker(schedule_meta, batch);
            pre_b = walker.b;
            pre_blk = walker.s * kPagedSplitBlocks;
            if (pre_b < batch && pre_blk + lane < table_width)
                pre_id = __ldg(block_table + pre_b * table_stride + pre_blk + lane);
            PagedSegment seg;
            while (walker.next(params, seg)) publish(seg);
        }

        // Step: the end of the work: a header without a segment (no bytes: a plain arrive completes the phase).
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
        if (lane == 0) {
            headers[slot].b = kNoSegment;
            ptx::mbarrier_arrive(bars.q_full + slot);
        }
        __syncwarp();
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

    unsigned int tile = 0, iter = 0;
    for (;; ++iter) {
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        const unsigned char* q_rows = smem + Layout::kQOffset + slot * Layout::kQSlotBytes;
        const float* w_slot = reinterpret_cast<const float*>(smem + Layout::kWOffset + slot * Layout::kWSlotBytes);
        const unsigned long long desc_q = ptx::smem_desc_pinned(tile_desc<kHeadDim>(q_rows));
        ptx::mbarrier_wait(bars.q_full + slot, parity);
        const PagedHeader& head = headers[slot];
        if (head.b == kNoSegment) break;
        const PagedSegment seg{head.b, head.blk_lo, head.blk_hi, head.len, head.owns_tail != 0};
        const long long raw_len = __ldg(context_lens + seg.b);

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
