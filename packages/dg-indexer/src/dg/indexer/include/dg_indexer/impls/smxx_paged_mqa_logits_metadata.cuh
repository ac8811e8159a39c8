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
// a CTA-wide exclusive scan (warp shuffles, then one warp over the warp totals) gives the run's first item.
// Pass 2 walks the run again and writes every row s whose start(s) falls inside one of its sequences; rows with
// start(s) >= T are written in a strided loop. Each row is written exactly once. Work O(B + num_sms).
// All item counts are 64-bit, so no context length or batch size can overflow them.
#pragma once

#include <dg_core/common/utils.cuh>

namespace dg::indexer {

template <unsigned int kNumThreads>
__global__ void __launch_bounds__(kNumThreads, 1)
    smxx_paged_mqa_logits_metadata_impl(const int* __restrict__ context_lens, unsigned int batch, unsigned int split,
                                        unsigned int num_sms, int* __restrict__ meta) {
    static_assert(kNumThreads % 32 == 0 && kNumThreads <= 1024, "a whole number of warps, at most 1024 threads");
    constexpr unsigned int kNumWarps = kNumThreads / 32;
    __shared__ unsigned long long warp_totals[kNumWarps];
    __shared__ unsigned long long grand_total;

    const unsigned int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const unsigned int per_thread = ceil_div(batch, kNumThreads);
    const unsigned int b0 = min_of(tid * per_thread, batch), b1 = min_of(b0 + per_thread, batch);
    const unsigned int safe_split = max_of(split, 1u);
    auto segs = [&](unsigned int b) -> unsigned long long {
        const int len = __ldg(context_lens + b);
        return len <= 0 ? 0ull
                        : ceil_div(static_cast<unsigned long long>(len), static_cast<unsigned long long>(safe_split));
    };

    // Step: items of this thread's run, then an exclusive scan over the CTA.
    unsigned long long local = 0;
    for (unsigned int b = b0; b < b1; ++b) local += segs(b);
    unsigned long long incl = local;
#pragma unroll
    for (unsigned int d = 1; d < 32; d *= 2) {
        const unsigned long long v = __shfl_up_sync(0xffffffffu, incl, d);
        if (lane >= d) incl += v;
    }
    if (lane == 31) warp_totals[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        unsigned long long w = lane < kNumWarps ? warp_totals[lane] : 0ull;
#pragma unroll
        for (unsigned int d = 1; d < 32; d *= 2) {
            const unsigned long long v = __shfl_up_sync(0xffffffffu, w, d);
            if (lane >= d) w += v;
        }
        if (lane < kNumWarps) warp_totals[lane] = w;  // inclusive over warps
        if (lane == 31) grand_total = w;
    }
    __syncthreads();
    const unsigned long long total = grand_total;
    unsigned long long running = (warp > 0 ? warp_totals[warp - 1] : 0ull) + incl - local;

    const unsigned long long q = total / num_sms, r = total % num_sms;
    auto start_of = [&](unsigned long long s) { return s * q + min_of(s, r); };
    // Smallest s with start_of(s) >= lo, for lo < total.
    auto first_row = [&](unsigned long long lo) -> unsigned long long {
        if (q == 0) return lo;
        if (lo <= r * (q + 1)) return ceil_div(lo, q + 1);
        return r + ceil_div(lo - r * (q + 1), q);
    };

    // Step: rows past the last item.
    for (unsigned int s = tid; s <= num_sms; s += kNumThreads) {
        if (start_of(s) >= total) {
            meta[2 * s] = static_cast<int>(batch);
            meta[2 * s + 1] = 0;
        }
    }

    // Step: rows whose first item lies in this thread's run.
    for (unsigned int b = b0; b < b1; ++b) {
        const unsigned long long lo = running, hi = running + segs(b);
        for (unsigned long long s = lo < hi ? first_row(lo) : num_sms + 1ull; s <= num_sms && start_of(s) < hi; ++s) {
            meta[2 * s] = static_cast<int>(b);
            meta[2 * s + 1] = static_cast<int>(start_of(s) - lo);
        }
        running = hi;
    }
}

}  // namespace dg::indexer
