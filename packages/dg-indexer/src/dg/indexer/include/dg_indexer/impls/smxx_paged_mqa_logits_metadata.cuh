// dg_indexer/impls/smxx_paged_mqa_logits_metadata.cuh -- the balanced split of a paged decode step across SMs.
//
// Computes (one CTA of kNumThreads threads, no shared-memory limit on the batch size):
//     segs[b] = ceil(max(context_lens[b], 0) / split)         work items of sequence b (split = 4 * block_kv)
//     P[b]    = segs[0] + ... + segs[b],  T = P[B - 1]
//     start(s) = s * (T / num_sms) + min(s, T % num_sms)      first item of SM s, s = 0 .. num_sms
//     meta[s] = (b, start(s) - P[b - 1]) for the b with P[b - 1] <= start(s) < P[b], or (B, 0) if start(s) >= T
// The reference algorithm is dg.indexer.reference.paged_mqa_logits_metadata.
//
// Roles: every thread owns a contiguous run of ceil(B / kNumThreads) sequences. Pass 1 sums its run's items;
// an exclusive scan over the CTA (warp shuffles, then one warp over the warp totals) gives the run's first item. Pass 2
// walks the run again and writes every row s whose start(s) falls inside one of its sequences; rows with start(s) >= T
// are written in a strided loop. Each row is written exactly once, as one 8-byte store. Work O(B + num_sms).
//
// Instances (dg/indexer/_jit.py): up to 256 sequences with the paged kernel's split (256), the batch kernel below;
// otherwise this general kernel, 256 threads up to 256 sequences and 512 above, the split compiled in (kSplit = 256)
// or taken from the argument (kSplit = 0). NOTE: the kernel is launch- and latency-bound: on an H100 with a cold L2
// it takes 4.7-5.7 us against 3.5-4.2 us for an empty launch; with warm caches it still runs ~0.9 us longer than a
// kernel that loads the lengths and stores the rows (perf log "dg.indexer v9"). So the design goal is the fewest
// dependent steps: the lengths of a run are loaded together, the per-sequence division is a shift, the row arithmetic
// is 32-bit whenever T < 2^32 (always in practice; the 64-bit path, with its division subroutine, sits out of line) and
// each row is one store. A one-warp instance (no CTA barrier) measured 0.1-0.4 us slower: each lane then walks several
// sequences and rows in a dependent chain. Item counts are 64-bit in the scan, so no length or batch size overflows.
#pragma once

#include <dg_core/common/utils.cuh>

namespace dg::indexer {

// ceil(len / split) for split >= 1, 0 for len <= 0. NOTE: as (len - 1) / split + 1 in 32 bits: no overflow.
DG_DEVICE unsigned int items_of(int len, unsigned int split) {
    return len <= 0 ? 0u : (static_cast<unsigned int>(len) - 1) / split + 1;
}

// Pass 2 in the width of Index: writes the rows past the total, then the rows whose first item lies in this
// thread's run [b0, b1) (first item `running`).
template <typename Index, unsigned int kNumThreads>
DG_DEVICE void write_metadata(const int* context_lens, unsigned int batch, unsigned int split, unsigned int num_sms,
                              int* meta, unsigned long long total_64, unsigned long long running, unsigned int b0,
                              unsigned int b1) {
    // NOTE: the division runs in Index's width (a 32-bit one is a few inline instructions).
    const Index total = static_cast<Index>(total_64);
    const Index q = total / num_sms, r = total % num_sms;
    auto start_of = [&](Index s) { return s * q + min_of(s, r); };
    int2* rows = reinterpret_cast<int2*>(meta);

    // Step: rows past the last item.
    for (unsigned int s = threadIdx.x; s <= num_sms; s += kNumThreads)
        if (start_of(s) >= total) rows[s] = make_int2(static_cast<int>(batch), 0);

    // Step: rows whose first item lies in this thread's run (lengths reloaded: L1 hits).
    Index lo = static_cast<Index>(running);
    for (unsigned int b = b0; b < b1; ++b) {
        const Index hi = lo + items_of(__ldg(context_lens + b), split);
        if (lo < hi) {
            // Smallest s with start_of(s) >= lo.
            Index s = q == 0 ? lo : (lo <= r * (q + 1) ? ceil_div(lo, q + 1) : r + ceil_div(lo - r * (q + 1), q));
            for (; s <= static_cast<Index>(num_sms) && start_of(s) < hi; ++s)
                rows[s] = make_int2(static_cast<int>(b), static_cast<int>(start_of(s) - lo));
        }
        lo = hi;
    }
}

// NOTE: out of line, so that its 64-bit division subroutines stay out of the hot path's instruction stream.
template <unsigned int kNumThreads>
__device__ __noinline__ void write_metadata_64(const int* context_lens, unsigned int batch, unsigned int split,
                                               unsigned int num_sms, int* meta, unsigned long long total,
                                               unsigned long long running, unsigned int b0, unsigned int b1) {
    write_metadata<unsigned long long, kNumThreads>(context_lens, batch, split, num_sms, meta, total, running, b0, b1);
}

// kSplit: the split size when known at compile time (256 for the paged kernel's block_kv of 64: the per-sequence
// division becomes a shift), 0 to take the `split` argument.
template <unsigned int kNumThreads, unsigned int kSplit>
__global__ void __launch_bounds__(kNumThreads, 1)
    smxx_paged_mqa_logits_metadata_impl(const int* __restrict__ context_lens, unsigned int batch, unsigned int split,
                                        unsigned int num_sms, int* __restrict__ meta) {
    static_assert(kNumThreads % 32 == 0 && kNumThreads <= 1024, "a whole number of warps, at most 1024 threads");
    constexpr unsigned int kNumWarps = kNumThreads / 32;

    const unsigned int tid = threadIdx.x, lane = tid % 32;
    const unsigned int per_thread = ceil_div(batch, kNumThreads);
    const unsigned int b0 = min_of(tid * per_thread, batch), b1 = min_of(b0 + per_thread, batch);
    split = kSplit != 0 ? kSplit : max_of(split, 1u);

    // Step: items of this thread's run. NOTE: loads unrolled in batches of 8, so that a batch costs one memory
    // latency; a decode batch (B <= 4096 with 512 threads) is a single batch.
    unsigned long long local = 0;
    for (unsigned int base = b0; base < b1; base += 8) {
        int lens[8];
#pragma unroll
        for (unsigned int i = 0; i < 8; ++i) lens[i] = base + i < b1 ? __ldg(context_lens + base + i) : 0;
#pragma unroll
        for (unsigned int i = 0; i < 8; ++i) local += items_of(lens[i], split);
    }

    // Step: exclusive scan of the run totals over the CTA.
    const unsigned long long incl = warp_inclusive_sum(local, lane);
    __shared__ unsigned long long warp_totals[kNumWarps];
    __shared__ unsigned long long grand_total;
    const unsigned int warp = tid / 32;
    if (lane == 31) warp_totals[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        const unsigned long long w = warp_inclusive_sum(lane < kNumWarps ? warp_totals[lane] : 0ull, lane);
        if (lane < kNumWarps) warp_totals[lane] = w;  // inclusive over warps
        if (lane == 31) grand_total = w;
    }
    __syncthreads();
    const unsigned long long total = grand_total;
    const unsigned long long running = (warp > 0 ? warp_totals[warp - 1] : 0ull) + incl - local;

    // NOTE: start(num_sms) = total, so every row value stays below 2^32 exactly when the total does.
    if (total <= 0xffffffffull)
        write_metadata<unsigned int, kNumThreads>(context_lens, batch, split, num_sms, meta, total, running, b0, b1);
    else
        write_metadata_64<kNumThreads>(context_lens, batch, split, num_sms, meta, total, running, b0, b1);
}

// The same split for a decode batch, on the shortest dependent chain: one sequence per thread (B <= kNumThreads) and
// 32-bit item counts throughout (kSplit >= 256 keeps the total below 2^32: static_assert). Steps: each thread loads
// its length; a warp scan of the item counts; the warp totals meet in shared memory behind the kernel's only barrier,
// where every thread sums them for its own prefix and the total (no second scan level, no second barrier); then the
// rows as in write_metadata, without reloading the length. NOTE: measured on an H100 (perf log "dg.indexer v9"),
// with warm caches: 0.48-0.73 us above a kernel that only loads the lengths and stores the rows, against 0.83-1.16 us
// for the general kernel (its 64-bit scan in two levels, second barrier, length reload and run loops).
template <unsigned int kNumThreads, unsigned int kSplit>
__global__ void __launch_bounds__(kNumThreads, 1)
    smxx_paged_mqa_logits_metadata_batch_impl(const int* __restrict__ context_lens, unsigned int batch,
                                              unsigned int split, unsigned int num_sms, int* __restrict__ meta) {
    static_assert(kNumThreads % 32 == 0 && kNumThreads <= 1024, "a whole number of warps, at most 1024 threads");
    static_assert(
        kSplit > 0 && static_cast<unsigned long long>(kNumThreads) * ((0x7fffffffu - 1) / kSplit + 1) <= 0xffffffffull,
        "the item total of kNumThreads sequences must fit 32 bits");
    constexpr unsigned int kNumWarps = kNumThreads / 32;
    (void)split;

    const unsigned int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const unsigned int items = tid < batch ? items_of(__ldg(context_lens + tid), kSplit) : 0u;

    // Step: inclusive scan within the warp, warp totals through shared memory.
    const unsigned int incl = warp_inclusive_sum(items, lane);
    __shared__ unsigned int warp_totals[kNumWarps];
    if (lane == 31) warp_totals[warp] = incl;
    __syncthreads();
    unsigned int before = 0, total = 0;
#pragma unroll
    for (unsigned int w = 0; w < kNumWarps; ++w) {
        const unsigned int t = warp_totals[w];
        before += w < warp ? t : 0u;
        total += t;
    }
    const unsigned int lo = before + incl - items, hi = lo + items;

    // Step: rows. start(s) = s * q + min(s, r); every row is written once (start(num_sms) = total).
    const unsigned int q = total / num_sms, r = total % num_sms;
    auto start_of = [&](unsigned int s) { return s * q + min_of(s, r); };
    int2* rows = reinterpret_cast<int2*>(meta);
    for (unsigned int s = tid; s <= num_sms; s += kNumThreads)
        if (start_of(s) >= total) rows[s] = make_int2(static_cast<int>(batch), 0);
    if (lo < hi) {
        // Smallest s with start_of(s) >= lo.
        unsigned int s = q == 0 ? lo : (lo <= r * (q + 1) ? ceil_div(lo, q + 1) : r + ceil_div(lo - r * (q + 1), q));
        for (; s <= num_sms && start_of(s) < hi; ++s)
            rows[s] = make_int2(static_cast<int>(tid), static_cast<int>(start_of(s) - lo));
    }
}

}  // namespace dg::indexer
