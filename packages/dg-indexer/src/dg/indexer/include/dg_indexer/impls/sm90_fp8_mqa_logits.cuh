// dg_indexer/impls/sm90_fp8_mqa_logits.cuh -- non-paged lightning-indexer logits (prefill) on SM90.
//
// Computes, for every query i and key j with ks[i] <= j < ke[i]:
//     out[i, j] = k_scale[j] * sum_h w[i, h] * max(0, <q[i, h, :], k[j, :]>)
// q FP8 e4m3 [S, H, D] (no scale), k FP8 e4m3 [S_kv, D] with an FP32 scale per key (s_map: a [1, S_kv] map),
// w FP32 [S, H], FP32 out with row pitch `out_stride` elements. With `clean` set, every other position of the S x S_kv
// output is -inf, written by the same CTA (no separate pass, no extra read of the output).
//
// Work: a query group is kNumQ = 256 / H consecutive queries (256 Q rows). Persistent CTAs (one per SM) take the
// groups round by round, CTA c group r * gridDim.x + c in even rounds and r * gridDim.x + gridDim.x - 1 - c in odd
// ones (snake_group); fewer groups than CTAs are cut into equal shares of tiles, one per CTA, by the kSplit instance
// (see "Work dealing"). A group walks the union of its queries' key ranges, its start rounded down to a multiple of 4
// keys (TMA needs a 16-byte aligned innermost coordinate for the scales), in tiles of 64 keys; tile t of the CTA's
// sequence goes to math pair t % 2, whose two warpgroups each compute half of the Q rows (roles, pipelines and the
// shared memory map in sm90_mqa_logits_common.cuh). Q rows and weights of a group are double buffered, keys use
// kNumStages stages.
//
// Head sum (H = 64, 128): max(0, a) = (a + |a|) / 2 splits it in two. The linear half is computed by the tensor
// cores as extra wgmma columns: per query, u_q = sum_h w[q, h] * Q[q, h, :] in four FP8 parts written after the
// warpgroup's Q rows (a Q slot is two halves of 128 Q rows + kLinearRows rows, each loaded by its own TMA box); the
// CUDA cores add one FFMA (|a| * w / 2) per accumulator. See write_linear_rows and head_sum_with_linear. H = 32
// (four queries per warpgroup) keeps max + FFMA: its 16 extra columns would not fit the registers.
// Per query group, before the first tile: each warpgroup writes the parts of half of its half's queries, then a
// named barrier over the half's two warpgroups (ids kHalfBarrier0 + h, 256 threads) orders them before the wgmma.
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

// Keys per 16 bytes of FP32 scales: the granularity of a tile's first key (see span_of).
constexpr unsigned int kScaleKeyAlign = 16 / sizeof(float);
static_assert(kBlockKV % kScaleKeyAlign == 0, "every tile's first key must stay 16-byte aligned in s_map");

// Tiles of a query group: the union of its queries' key ranges, walked from a first key rounded down to a multiple
// of kScaleKeyAlign, in tiles of kBlockKV keys. u_lo / u_hi: the union's bounds over the non-empty ranges
// (u_hi <= u_lo when every range is empty: no tile).
struct GroupSpan {
    unsigned int first_key, num_tiles;
};

DG_DEVICE GroupSpan span_of(unsigned int u_lo, unsigned int u_hi) {
    // NOTE: the scale load's key is the innermost TMA coordinate of s_map, and Hopper raises an illegal
    // instruction unless an innermost coordinate lands on a 16-byte boundary: start on a multiple of 4 keys.
    const unsigned int first_key = u_hi > u_lo ? u_lo / kScaleKeyAlign * kScaleKeyAlign : 0;
    return {first_key, u_hi > u_lo ? ceil_div(u_hi - first_key, kBlockKV) : 0};
}

// Key ranges of the group of queries [q0, q0 + kNumQ) (empty for queries past S) and the group's span.
template <unsigned int kNumQ>
struct GroupRange {
    unsigned int lo[kNumQ], hi[kNumQ];
    GroupSpan span;

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
        span = span_of(u_lo, u_hi);
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Work dealing. With at least as many groups as CTAs, whole groups are dealt round by round in snake order
// (snake_group), and every role walks that sequence itself. With fewer (short prefills: S < gridDim.x * kNumQ; the
// kSplit instance), the producer warp decides which groups, and which of their tiles, the CTA runs, and hands each
// piece to the math warpgroups in the header of the Q slot that holds the group (written before the slot's q_full
// arrive, read after the wait). The groups are cut so that every CTA gets the same number of tiles: with T the tiles of
// all groups in (group, tile) order, CTA c takes [c T / n, (c + 1) T / n) of them, as one piece per group it touches. A
// group without tiles goes to the CTA whose share holds its place in that order (with T = 0: CTA g). Only the piece
// holding a group's tile 0 (or the whole of an empty group) writes the -inf outside the group's tiles. The places of
// the groups in that order are computed at the start by the producer warpgroup's other three warps (tile counts, then a
// scan by the second warp) into the work area, and published by an mbarrier.
//
// NOTE: the same cut of only the last, partial round of a longer launch (whole rounds first) measured +0.8% / -1.2% /
// -1.0% in time on 2048 x 8192 / 4096 x 16384 / 8192 x 65536 (H100, causal ranges) against whole groups, though it
// removes 2.6-3.5% of idle CTA time at the end: these launches run at the card's power limit (1.7 GHz), where the idle
// SMs of a last round raise the others' clocks, and each cut adds a group set-up. Not kept.
//
// Work area: [slot 0 header | slot 1 header] 2 x 128 bytes, [split barrier] 16, [places] 4 * kMaxPrefillCtas.
// ---------------------------------------------------------------------------------------------------------------
constexpr unsigned int kNoGroup = 0xffffffffu;  // header group of the last slot: no more work
constexpr unsigned int kSlotHeaderInts = 32;    // 128 bytes per slot
constexpr unsigned int kMaxPrefillCtas = 256;   // CTAs per launch (the host caps the grid): up to 255 split groups
constexpr unsigned int kSplitBarrierOffset = 2 * kSlotHeaderInts * 4;
constexpr unsigned int kSplitPlacesOffset = kSplitBarrierOffset + 16;
constexpr unsigned int kPrefillWorkBytes = kSplitPlacesOffset + 4 * kMaxPrefillCtas;
// Header ints: [0] group, [1] first tile, [2] end tile, [3] write the -inf outside the tiles, [4] first key of
// tile 0, [5] tiles of the whole group, [8 + q] / [8 + kNumQ + q] key range [lo, hi) of query q of the group.
constexpr unsigned int kHeaderRanges = 8;

// x / d for x < 2^48 and 0 < d < 2^16 in two 32-bit divisions. NOTE: a 64-bit division is a subroutine call,
// whose register needs exceed the producer's 32 registers (ptxas spills).
DG_DEVICE unsigned long long div_by_small(unsigned long long x, unsigned int d) {
    const unsigned int hi = static_cast<unsigned int>(x >> 16), lo = static_cast<unsigned int>(x & 0xffffu);
    const unsigned int q_hi = hi / d, r = hi - q_hi * d;
    return (static_cast<unsigned long long>(q_hi) << 16) + ((r << 16) | lo) / d;
}

// Publishes the key ranges of group g into `hdr` and returns the group's span to every lane. Called by a whole
// warp: lane q < kNumQ computes query q's range, lane 0 writes them all. NOTE: one writing lane, the one that
// arrives on q_full afterwards, so its release covers every header write (compute-sanitizer racecheck flags writes
// by other lanes ordered only by a warp barrier).
template <unsigned int kNumQ>
DG_DEVICE GroupSpan publish_group(unsigned int* hdr, const int* ks, const int* ke, unsigned int g, unsigned int seq_len,
                                  unsigned int seq_len_kv, unsigned int lane) {
    static_assert(kHeaderRanges + 2 * kNumQ <= kSlotHeaderInts, "the header holds every query's range");
    unsigned int lo = 0, hi = 0;
    const unsigned int q = g * kNumQ + lane;
    if (lane < kNumQ && q < seq_len) clamped_range(ks, ke, q, seq_len_kv, lo, hi);
#pragma unroll
    for (unsigned int i = 0; i < kNumQ; ++i) {
        const unsigned int lo_i = __shfl_sync(0xffffffffu, lo, i), hi_i = __shfl_sync(0xffffffffu, hi, i);
        if (lane == 0) {
            hdr[kHeaderRanges + i] = lo_i;
            hdr[kHeaderRanges + kNumQ + i] = hi_i;
        }
    }
    const bool nonempty = hi > lo;
    return span_of(__reduce_min_sync(0xffffffffu, nonempty ? lo : seq_len_kv),
                   __reduce_max_sync(0xffffffffu, nonempty ? hi : 0u));
}

// ---------------------------------------------------------------------------------------------------------------
// Head sum with its linear half on the tensor cores. Since max(0, a) = (a + |a|) / 2,
//     sum_h w[q, h] * max(0, S[key, q*H + h]) = 1/2 * k_key . u_q + 1/2 * sum_h w[q, h] * |S[key, q*H + h]|,
//     u_q = sum_h w[q, h] * Q[q, h, :]   (a D-vector per query, FP32)
// The CUDA cores keep only the second sum: one FFMA per accumulator (|.| is an operand modifier) instead of a max
// and an FFMA. The first is one more column of the tile's wgmma per query: u_q is split into four FP8 rows,
// u_q ~ sum_p s_q 16^-p e_p (s_q a power of two with |u_q| / s_q < 256, each part the FP8 rounding of the residual of
// the ones before), written after the warpgroup's Q rows as extra B rows (N = 128 + kExtraRows), and the lanes
// holding those columns add sum_p 1/2 s_q 16^-p L[key, p] to the quad's reduced sum. The parts leave a residual
// below 2^-16 of max |u_q|; the rest of the error is the FP8 chain's accumulation, as for the head rows.
// ---------------------------------------------------------------------------------------------------------------

// One e4m3 byte as FP32, and FP32 rounded to nearest e4m3 (saturating), as a byte.
DG_DEVICE float e4m3_to_float(unsigned int byte) {
    unsigned int pair;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(pair) : "h"(static_cast<unsigned short>(byte)));
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(static_cast<unsigned short>(pair & 0xffffu)));
    return f;
}

DG_DEVICE unsigned int float_to_e4m3(float x) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(x));
    return r & 0xffu;
}

// Byte offset of (row n, byte d) in a K-major tile of kHeadDim-byte rows swizzled by kHeadDim bytes (TMA's pattern:
// the 16-byte chunk index XOR the row bits above it), from a 1024-byte aligned base.
template <unsigned int kHeadDim>
DG_DEVICE unsigned int swizzled_offset(unsigned int n, unsigned int d) {
    const unsigned int off = n * kHeadDim + d;
    return off ^ (((off >> 7) & (kHeadDim / 16 - 1)) << 4);
}

// Linear-term rows per half slot: four parts per query of the half, at least one 8-row wgmma column group.
template <unsigned int kWgQ>
constexpr unsigned int kLinearRows = 4 * kWgQ < 8 ? 8 : 4 * kWgQ;
// Extra rows of a prefill half slot with kWgQ queries per warpgroup. NOTE: with four (H = 32) the 16 extra columns
// do not fit the register budget next to the weights: that instance keeps the ReLU on the CUDA cores (no rows).
// The host's copy is dg/indexer/_jit.py: prefill_extra_rows (pinned by tests/test_compile.py).
template <unsigned int kWgQ>
constexpr unsigned int kPrefillExtraRows = kWgQ <= 2 ? kLinearRows<kWgQ> : 0;
constexpr unsigned int kLinearParts = 4;
constexpr float kLinearPartRatio = 1.0f / 16.0f;  // s_{p+1} / s_p

// Writes the linear-term rows of the queries qq (< kWgQ, qq % 2 == pair) of a half slot: `half_slot` holds the
// half's kWgRows Q rows and then the extra rows; `w_rows` the half's weights ([kWgQ][H]); the scale s_q goes to
// `scales[qq]`. Thread d of the warpgroup owns dimension d. `scratch` (4 floats) and the named barrier `bar_id`
// belong to this warpgroup alone (block-wide maximum of |u_q|).
template <unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kWgQ>
DG_DEVICE void write_linear_rows(unsigned char* half_slot, const float* w_rows, float* scales, float* scratch,
                                 unsigned int pair, unsigned int bar_id) {
    constexpr unsigned int kWgRows = kWgQ * kNumHeads;
    const unsigned int d = threadIdx.x % 128, lane = d % 32, warp = d / 32;
#pragma unroll 1
    for (unsigned int qq = pair; qq < kWgQ; qq += 2) {
        float u = 0.0f;
        if (d < kHeadDim) {
#pragma unroll 8
            for (unsigned int h = 0; h < kNumHeads; ++h)
                u = fmaf(w_rows[qq * kNumHeads + h],
                         e4m3_to_float(half_slot[swizzled_offset<kHeadDim>(qq * kNumHeads + h, d)]), u);
        }
        float m = fabsf(u);
#pragma unroll
        for (unsigned int x = 16; x >= 1; x /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, x));
        if (lane == 0) scratch[warp] = m;
        ptx::named_barrier_sync(bar_id, 128);
        m = fmaxf(fmaxf(scratch[0], scratch[1]), fmaxf(scratch[2], scratch[3]));
        // NOTE: the second barrier keeps the next query's maximum from overwriting scratch before all have read it.
        ptx::named_barrier_sync(bar_id, 128);
        // s = 2^(e - 7) for m = 1.f * 2^e, so |u| / s < 256; each part's residual is at most half an e4m3 step of
        // its value (8 s_p below 256), so |r_p| / s_{p+1} < 128 never saturates. Tiny or zero m: s = 1.
        const int e_field = (__float_as_int(m) >> 23) & 0xff;
        const float s = e_field > 8 ? __int_as_float((e_field - 7) << 23) : 1.0f;
        const float inv_s = e_field > 8 ? __int_as_float((254 - (e_field - 7)) << 23) : 1.0f;
        float r = u, part_scale = s, inv_part = inv_s;
#pragma unroll
        for (unsigned int p = 0; p < kLinearParts; ++p) {
            const unsigned int e = float_to_e4m3(r * inv_part);
            r = fmaf(-part_scale, e4m3_to_float(e), r);
            if (d < kHeadDim)
                half_slot[swizzled_offset<kHeadDim>(kWgRows + kLinearParts * qq + p, d)] =
                    static_cast<unsigned char>(e);
            part_scale *= kLinearPartRatio;
            inv_part *= 1.0f / kLinearPartRatio;
        }
        if (d == 0) scales[qq] = s;
    }
    // Padding rows past the parts (one query per half): zero, written by the first pair's warpgroup.
    if constexpr (kLinearParts * kWgQ < kLinearRows<kWgQ>) {
        if (pair == 0 && d < kHeadDim) {
#pragma unroll
            for (unsigned int n = kWgRows + kLinearParts * kWgQ; n < kWgRows + kLinearRows<kWgQ>; ++n)
                half_slot[swizzled_offset<kHeadDim>(n, d)] = 0;
        }
    }
}

// The head sum of one tile with the linear half from the extra columns: out[j] as relu_weighted_head_sum_scattered
// leaves it (query 2 j + l / 2 at row row0 + 8 (l % 2) for quad lane l; kWgQ == 1: row l % 2 of the one query).
// `wr` holds w / 2; `sig[j][k]` is 1/2 s 16^-p of this lane's extra column 8 j + 2 (lane % 4) + k (part p of
// query 2 j + (lane % 4) / 2), 0 for padding columns.
template <unsigned int kWgQ, unsigned int kNumHeads>
DG_DEVICE void head_sum_with_linear(const float* acc, const float2 (&wr)[kWgQ * kNumHeads / 8],
                                    const float (&sig)[(kWgQ + 1) / 2][2], float (&out)[(kWgQ + 1) / 2]) {
    constexpr unsigned int kLinear0 = kWgQ * kNumHeads / 2;  // first accumulator of the extra columns
    float part[2 * kWgQ];
    relu_weighted_partial<kWgQ, kNumHeads, true>(acc, wr, part);
    scatter_quad_sums<kWgQ>(part, out);
    const bool odd = (threadIdx.x & 1) != 0;
#pragma unroll
    for (unsigned int j = 0; j < (kWgQ + 1) / 2; ++j) {
        const float* x = acc + kLinear0 + 4 * j;
        const float e0 = fmaf(sig[j][1], x[1], sig[j][0] * x[0]);
        const float e1 = fmaf(sig[j][1], x[3], sig[j][0] * x[2]);
        const float keep = odd ? e1 : e0, send = odd ? e0 : e1;
        out[j] += keep + __shfl_xor_sync(0xffffffffu, send, 1);
    }
}

// Query group of this CTA in round r: CTAs take groups round by round, in ascending CTA order in even rounds and
// descending in odd ones, so that a CTA given a later (on causal ranges: longer) group in one round gets an earlier
// one in the next. NOTE: all CTAs still work on the same rounds at the same time (their key walks stay together).
DG_DEVICE unsigned int snake_group(unsigned int r) {
    return r * gridDim.x + (r % 2 ? gridDim.x - 1 - blockIdx.x : blockIdx.x);
}

// Four math warpgroups in two pairs: pair p takes the tiles p, p + 2, p + 4, ... of the CTA's tile sequence; in a
// pair, warpgroup half h computes Q rows [128 h, 128 h + 128) of the 256-row query group (queries h * kNumQ / 2
// ...), so both read the same key tile and each keeps 64 accumulators per thread (68 with the linear-term columns).
// The producer runs with 24 registers (32 when its warp deals split groups), which leaves the math warpgroups 112:
// the accumulators and the 32 weights of the warpgroup's rows, held for the whole group.
template <bool kSplit>
using MqaPrefillRoles = MqaRoles<4, kSplit ? 32 : 24>;
constexpr unsigned int kPrefillPairs = 2;
// Named barriers: ids kHalfBarrier0 + h over the two warpgroups of half h (linear-term rows written), ids
// kScratchBarrier0 + m over math warpgroup m alone (the maximum inside write_linear_rows), kSplitCountBarrier over
// the producer warpgroup's warps 1-3 (the split groups' tile counts written).
constexpr unsigned int kHalfBarrier0 = 1;
constexpr unsigned int kScratchBarrier0 = 3;
constexpr unsigned int kSplitCountBarrier = 7;
// Longest time the producer sleeps in one wait for a free key stage (it wakes when the stage is released).
constexpr unsigned int kProducerSuspendNs = 1000000;

// Issues the loads of tiles [t_lo, t_hi) of a group whose tile 0 starts at first_key; `tile`: the CTA tile number
// of tile t_lo. One lane.
template <typename Layout, unsigned int kNumStages>
DG_DEVICE void load_key_tiles(unsigned char* smem, const MqaBarriers<kNumStages, 512, 2>& bars, const TensorMap* k_map,
                              const TensorMap* s_map, unsigned int first_key, unsigned int t_lo, unsigned int t_hi,
                              unsigned int tile) {
    for (unsigned int t = t_lo; t < t_hi; ++t, ++tile) {
        const unsigned int stage = tile % kNumStages, phase = (tile / kNumStages) % 2;
        const int key = static_cast<int>(first_key + t * kBlockKV);
        // NOTE: the ring is full most of the time; a spinning wait would take issue slots from the math warps that
        // share this warp's scheduler.
        ptx::mbarrier_wait_suspend(bars.k_empty + stage, phase ^ 1, kProducerSuspendNs);
        ptx::mbarrier_arrive_expect_tx(bars.k_full + stage, Layout::kStageTxBytes);
        ptx::tma_load_2d(smem + Layout::kKOffset + stage * Layout::kKStageBytes, k_map, bars.k_full + stage, 0, key);
        ptx::tma_load_2d(smem + Layout::kScaleOffset + stage * Layout::kScaleStageBytes, s_map, bars.k_full + stage,
                         key, 0);
    }
}

// Issues the Q rows (two boxes of kWgRows rows, one per half slot, each followed by its linear-term rows) and the
// weights of the group of queries from q0 into Q slot `slot`. One lane.
template <typename Layout, unsigned int kNumStages, unsigned int kNumHeads, unsigned int kWgRows>
DG_DEVICE void load_group(unsigned char* smem, const MqaBarriers<kNumStages, 512, 2>& bars, const TensorMap* q_map,
                          const TensorMap* w_map, unsigned int slot, unsigned int q0) {
    ptx::mbarrier_arrive_expect_tx(bars.q_full + slot, Layout::kQLoadBytes + Layout::kWSlotBytes);
#pragma unroll
    for (unsigned int h = 0; h < 2; ++h)
        ptx::tma_load_2d(smem + Layout::kQOffset + slot * Layout::kQSlotBytes + h * Layout::kQHalfBytes, q_map,
                         bars.q_full + slot, 0, static_cast<int>(q0 * kNumHeads + h * kWgRows));
    ptx::tma_load_2d(smem + Layout::kWOffset + slot * Layout::kWSlotBytes, w_map, bars.q_full + slot, 0,
                     static_cast<int>(q0));
}

// kSplit: the launch has fewer groups than CTAs, and they are cut into equal tile shares (see "Work dealing");
// otherwise whole groups in snake order. Two instances, because the dealing of split groups costs the other one
// ~2% (H100): the header reads reshape the tile loop's register allocation (ptxas rebuilds more of the store path).
template <unsigned int kNumHeads, unsigned int kHeadDim, unsigned int kQRows, unsigned int kNumStages, bool kSplit>
__global__ void __launch_bounds__(MqaPrefillRoles<kSplit>::kNumThreads, 1)
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
    constexpr unsigned int kExtraRows = kPrefillExtraRows<kWgQ>;
    constexpr bool kLinear = kExtraRows != 0;
    constexpr unsigned int kMmaN = kWgRows + kExtraRows;  // the warpgroup's Q rows, then its linear-term rows
    using Layout = MqaLayout<kNumQ, kNumHeads, kHeadDim, kNumStages, kExtraRows, kPrefillWorkBytes>;

    extern __shared__ __align__(1024) unsigned char smem[];
    using Roles = MqaPrefillRoles<kSplit>;
    // NOTE: the swizzled tiles need a 1024-byte aligned base, the host must have provided the whole map, and every
    // warpgroup must exist (a missing math warpgroup would leave its barriers waiting forever). A split holds at
    // most kMaxPrefillCtas - 1 groups.
    trap_unless(dynamic_smem_size() >= Layout::kSmemBytes && ptx::smem_addr(smem) % 1024 == 0 &&
                blockDim.x == Roles::kNumThreads && blockDim.y == 1 && blockDim.z == 1 && gridDim.x <= kMaxPrefillCtas);
    constexpr unsigned int kNumMathThreads = Roles::kNumMathThreads;
    constexpr unsigned int kPairWarpgroups = Roles::kNumMathWarpgroups / kPrefillPairs;
    static_assert(kNumMathThreads == 512 && kPairWarpgroups == 2, "load_group / load_key_tiles take these barriers");
    const MqaBarriers<kNumStages, kNumMathThreads, kPairWarpgroups> bars(
        reinterpret_cast<unsigned long long*>(smem + Layout::kBarrierOffset));
    unsigned int* headers = reinterpret_cast<unsigned int*>(smem + Layout::kWorkOffset);
    unsigned long long* split_bar =
        reinterpret_cast<unsigned long long*>(smem + Layout::kWorkOffset + kSplitBarrierOffset);
    unsigned int* split_places = reinterpret_cast<unsigned int*>(smem + Layout::kWorkOffset + kSplitPlacesOffset);
    if (threadIdx.x == 0) {
        ptx::tma_prefetch_descriptor(&q_map);
        ptx::tma_prefetch_descriptor(&k_map);
        ptx::tma_prefetch_descriptor(&w_map);
        ptx::tma_prefetch_descriptor(&s_map);
        ptx::mbarrier_init(split_bar, 32);
        bars.init();  // NOTE: its closing fence covers split_bar too
    }
    __syncthreads();

    const unsigned int num_groups = ceil_div(seq_len, kNumQ);
    const unsigned int role = warpgroup_idx_sync();

    if (role == kTmaWarpgroup) {
        ptx::setmaxnreg_dec<Roles::kProducerRegisters>();
        if constexpr (!kSplit) {
            // Step: producer, whole groups. One elected lane of the first warp issues every load; the other warps
            // retire.
            if (warp_idx_sync() != 0 || !elect_one_sync()) return;
            unsigned int tile = 0, iter = 0;
            for (unsigned int g = snake_group(0); g < num_groups; g = snake_group(++iter)) {
                const GroupRange<kNumQ> range(ks, ke, g * kNumQ, seq_len, seq_len_kv);
                const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
                ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
                load_group<Layout, kNumStages, kNumHeads, kWgRows>(smem, bars, &q_map, &w_map, slot, g * kNumQ);
                load_key_tiles<Layout, kNumStages>(smem, bars, &k_map, &s_map, range.span.first_key, 0,
                                                   range.span.num_tiles, tile);
                tile += range.span.num_tiles;
            }
            return;
        } else {
            // Step: producer, split groups. The first warp deals the pieces (see "Work dealing"), its lane 0 issues
            // the loads; the other three warps compute the places of the groups, then retire.
            const unsigned int lane = lane_idx(), warp = warp_idx_sync();
            const unsigned int num_split = min_of(num_groups, gridDim.x);
            if (warp != 0) {
                // Tile counts of groups i at places[i + 1], then the second warp turns them into inclusive sums in
                // place (places[i]: the first tile of group i in the order; places[num_split] = T).
                for (unsigned int i = threadIdx.x - 32; i < num_split; i += 96)
                    split_places[i + 1] = GroupRange<kNumQ>(ks, ke, i * kNumQ, seq_len, seq_len_kv).span.num_tiles;
                ptx::named_barrier_sync(kSplitCountBarrier, 96);
                if (warp != 1) return;
                unsigned int running = 0;
                for (unsigned int i0 = 0; i0 < num_split; i0 += 32) {
                    const unsigned int i = i0 + lane;
                    const unsigned int incl = warp_inclusive_sum(i < num_split ? split_places[i + 1] : 0u, lane);
                    if (i < num_split) split_places[i + 1] = running + incl;
                    running += __shfl_sync(0xffffffffu, incl, 31);
                }
                if (lane == 0) split_places[0] = 0;
                // NOTE: every lane arrives (split_bar counts 32), so each lane's release covers its own writes.
                ptx::mbarrier_arrive(split_bar);
                return;
            }

            // This CTA's share of the tiles, one piece per group it touches (lane l looks at every 32nd group).
            // NOTE: T < 2^32 (the host bounds S_kv by the grid), so places are 32-bit.
            unsigned int tile = 0, iter = 0;
            ptx::mbarrier_wait(split_bar, 0);
            const unsigned int total = split_places[num_split];
            const unsigned int share_lo =
                static_cast<unsigned int>(div_by_small(static_cast<unsigned long long>(total) * blockIdx.x, gridDim.x));
            const unsigned int share_hi = static_cast<unsigned int>(
                div_by_small(static_cast<unsigned long long>(total) * (blockIdx.x + 1), gridDim.x));
            for (unsigned int i0 = 0; i0 < num_split; i0 += 32) {
                const unsigned int i = i0 + lane;
                const bool in = i < num_split;
                const unsigned int place = in ? split_places[i] : 0;
                const unsigned int n = in ? split_places[i + 1] - place : 0;
                bool mine;
                unsigned int t_lo = 0, t_hi = 0;
                if (n == 0) {
                    mine = total == 0 ? i == blockIdx.x
                                      : (place >= share_lo && place < share_hi) ||
                                            (place == total && blockIdx.x == gridDim.x - 1);
                } else {
                    const unsigned int a = max_of(place, share_lo), b = min_of(place + n, share_hi);
                    mine = a < b;
                    t_lo = mine ? a - place : 0;
                    t_hi = mine ? b - place : 0;
                }
                for (unsigned int m = __ballot_sync(0xffffffffu, mine && in); m != 0; m &= m - 1) {
                    // Step: one piece: tiles [t_lo, t_hi) of group g in Q slot iter % 2, its header first.
                    const unsigned int src = __ffs(m) - 1, g = i0 + src;
                    const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
                    unsigned int* hdr = headers + slot * kSlotHeaderInts;
                    ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
                    const GroupSpan span = publish_group<kNumQ>(hdr, ks, ke, g, seq_len, seq_len_kv, lane);
                    // NOTE: clamped to the group's tiles whatever the split computed (no load outside its keys).
                    const unsigned int p_hi = min_of(__shfl_sync(0xffffffffu, t_hi, src), span.num_tiles);
                    const unsigned int p_lo = min_of(__shfl_sync(0xffffffffu, t_lo, src), p_hi);
                    // NOTE: lane 0 wrote the whole header (publish_group) and arrives on q_full in load_group (a
                    // release), which the math warpgroups acquire by their wait.
                    if (lane == 0) {
                        hdr[0] = g;
                        hdr[1] = p_lo;
                        hdr[2] = p_hi;
                        hdr[3] = p_lo == 0 ? 1u : 0u;
                        hdr[4] = span.first_key;
                        hdr[5] = span.num_tiles;
                        load_group<Layout, kNumStages, kNumHeads, kWgRows>(smem, bars, &q_map, &w_map, slot, g * kNumQ);
                        load_key_tiles<Layout, kNumStages>(smem, bars, &k_map, &s_map, span.first_key, p_lo, p_hi,
                                                           tile);
                    }
                    __syncwarp();
                    tile += p_hi - p_lo;
                    ++iter;
                }
            }
            // Step: the end mark, in the next slot once the math warpgroups are done with it.
            const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
            ptx::mbarrier_wait(bars.q_empty + slot, parity ^ 1);
            if (lane == 0) {
                headers[slot * kSlotHeaderInts] = kNoGroup;
                ptx::mbarrier_arrive(bars.q_full + slot);
            }
            return;
        }
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
    float acc[kMmaN / 2];
    float2 wr[kWgRows / 8];
    float sig[kStores][2];
    float sums[kStores];
    float* linear_scales = reinterpret_cast<float*>(smem + Layout::kAuxOffset);  // [2 slots][kNumQ]
    float* scratch = linear_scales + 2 * kNumQ + 4 * math_idx;
    const unsigned long long desc_k0 = ptx::smem_desc_pinned(tile_desc<kHeadDim>(smem + Layout::kKOffset));
    // This lane's key scale in stage 0 (stage s: + s * kBlockKV).
    const float* scales = reinterpret_cast<const float*>(smem + Layout::kScaleOffset) + store_row;
    static_assert(Layout::kScaleStageBytes == kBlockKV * sizeof(float), "one FP32 scale per key of a stage");

    unsigned int tile = 0;
    for (unsigned int iter = 0;; ++iter) {
        const unsigned int slot = iter % 2, parity = (iter / 2) % 2;
        // The piece: group (first query q0), its tiles [t_lo, t_hi), the group's span and whether this piece writes
        // the -inf outside it; the rows this lane stores: range, output row, and whether it stores at all.
        unsigned int q0, t_lo, t_hi;
        GroupSpan span;
        bool fill;
        unsigned int my_lo[kStores], my_hi[kStores];
        float* my_row[kStores];
        bool my_ok[kStores];
        const bool second = kWgQ > 1 && quad_lane >= 2;
        if constexpr (!kSplit) {
            const unsigned int g = snake_group(iter);
            if (g >= num_groups) break;
            q0 = g * kNumQ;
            const GroupRange<kNumQ> range(ks, ke, q0, seq_len, seq_len_kv);
            span = range.span;
            t_lo = 0;
            t_hi = span.num_tiles;
            fill = true;
#pragma unroll
            for (unsigned int j = 0; j < kStores; ++j) {
                // NOTE: the range arrays are indexed with literals only (selects), so they stay in registers.
                const unsigned int i0 = 2 * j, i1 = min_of(2 * j + 1, kWgQ - 1);  // queries of the warpgroup's half
                const unsigned int lo0 = half ? range.lo[kWgQ + i0] : range.lo[i0];
                const unsigned int lo1 = half ? range.lo[kWgQ + i1] : range.lo[i1];
                const unsigned int hi0 = half ? range.hi[kWgQ + i0] : range.hi[i0];
                const unsigned int hi1 = half ? range.hi[kWgQ + i1] : range.hi[i1];
                my_lo[j] = second ? lo1 : lo0;
                my_hi[j] = second ? hi1 : hi0;
            }
            ptx::mbarrier_wait(bars.q_full + slot, parity);
        } else {
            ptx::mbarrier_wait(bars.q_full + slot, parity);
            const unsigned int* hdr = headers + slot * kSlotHeaderInts;
            const uint4 piece = *reinterpret_cast<const uint4*>(hdr);  // group, first tile, end tile, fill
            if (piece.x == kNoGroup) break;
            const uint2 group_span = *reinterpret_cast<const uint2*>(hdr + 4);  // first key, tiles of the group
            q0 = piece.x * kNumQ;
            t_lo = piece.y;
            t_hi = piece.z;
            fill = piece.w != 0;
            span = {group_span.x, group_span.y};
#pragma unroll
            for (unsigned int j = 0; j < kStores; ++j) {
                const unsigned int qq = half * kWgQ + (second ? min_of(2 * j + 1, kWgQ - 1) : 2 * j);
                my_lo[j] = hdr[kHeaderRanges + qq];
                my_hi[j] = hdr[kHeaderRanges + kNumQ + qq];
            }
        }
        // NOTE: in the tile loop, unsigned (key - lo) < len tests a range in one compare: my_len[j] keys from
        // my_lo[j] are scored, st_len[j] keys from my_lo[j] (with cleaning: from key 0) are written at all.
        unsigned int my_len[kStores], st_len[kStores];
#pragma unroll
        for (unsigned int j = 0; j < kStores; ++j) {
            const unsigned int q = q0 + half * kWgQ + (second ? min_of(2 * j + 1, kWgQ - 1) : 2 * j);
            my_ok[j] = store_lane && q < seq_len;
            my_row[j] = out + static_cast<unsigned long long>(my_ok[j] ? q : 0) * out_stride;
            my_len[j] = my_hi[j] - my_lo[j];
            st_len[j] = my_ok[j] ? (clean ? seq_len_kv : my_len[j]) : 0u;
        }
        unsigned char* q_rows = smem + Layout::kQOffset + slot * Layout::kQSlotBytes + half * Layout::kQHalfBytes;
        const float* w_slot =
            reinterpret_cast<const float*>(smem + Layout::kWOffset + slot * Layout::kWSlotBytes) + half * kWgRows;

        // Step: the linear-term rows of this half (each warpgroup of the pair writes half of its queries' rows),
        // handed to the async proxy, then a barrier over the half's two warpgroups before either reads them.
        float* slot_scales = linear_scales + slot * kNumQ + half * kWgQ;
        if constexpr (kLinear) {
            write_linear_rows<kNumHeads, kHeadDim, kWgQ>(q_rows, w_slot, slot_scales, scratch, pair,
                                                         kScratchBarrier0 + math_idx);
            ptx::fence_proxy_async_smem();
            ptx::named_barrier_sync(kHalfBarrier0 + half, 2 * 128);
#pragma unroll
            for (unsigned int j = 0; j < kStores; ++j) {
                // Extra column 8 j + 2 c + k (c = quad lane) is part 2 (c % 2) + k of query 2 j + c / 2.
                const unsigned int q = 2 * j + quad_lane / 2;
                float s_q = 0.0f;
#pragma unroll
                for (unsigned int i = 0; i < kWgQ; ++i) s_q = q == i ? slot_scales[i] : s_q;
                const float base = 0.5f * s_q * (quad_lane % 2 ? kLinearPartRatio * kLinearPartRatio : 1.0f);
                sig[j][0] = base;
                sig[j][1] = base * kLinearPartRatio;
            }
        }

        // This pair's tiles of the piece: t = t_lo + t0, t_lo + t0 + 2, ... (CTA tile number tile + t - t_lo).
        const unsigned long long desc_q = ptx::smem_desc_pinned(tile_desc<kHeadDim>(q_rows));
        load_head_weights<kWgQ, kNumHeads>(w_slot, wr);
        if constexpr (kLinear) {
#pragma unroll
            for (unsigned int i = 0; i < kWgRows / 8; ++i) wr[i] = make_float2(0.5f * wr[i].x, 0.5f * wr[i].y);
        }
        // NOTE: tile_base + t is the CTA tile number of piece tile t (exact: the wrap of tile - t_lo cancels).
        const unsigned int tile_base = tile - t_lo;
        for (unsigned int t = t_lo + (tile + pair) % kPrefillPairs; t < t_hi; t += kPrefillPairs) {
            const unsigned int stage = (tile_base + t) % kNumStages, phase = ((tile_base + t) / kNumStages) % 2;
            const unsigned int key = span.first_key + t * kBlockKV + store_row;
            ptx::mbarrier_wait(bars.k_full + stage, phase);
            // Scales of keys past S_kv are zero-filled by TMA; those keys are never stored.
            const float scale = scales[stage * kBlockKV];
            tile_mma_issue<kMmaN, kHeadDim>(ptx::smem_desc_advance(desc_k0, stage * Layout::kKStageBytes), desc_q, acc);
            tile_mma_wait<kMmaN>(acc);
            ptx::mbarrier_arrive(bars.k_empty + stage);

            if constexpr (kLinear)
                head_sum_with_linear<kWgQ, kNumHeads>(acc, wr, sig, sums);
            else
                relu_weighted_head_sum_scattered<kWgQ, kNumHeads>(acc, wr, sums);
#pragma unroll
            for (unsigned int j = 0; j < kStores; ++j) {
                const unsigned int rel = key - my_lo[j];
                if ((clean ? key : rel) < st_len[j]) my_row[j][key] = rel < my_len[j] ? sums[j] * scale : ninf;
            }
        }
        tile += t_hi - t_lo;

        // Step: -inf outside the tiles of the group (the whole row when it has no tile), by its first piece.
        if constexpr (kSplit) {
            // NOTE: read again from the header (still this slot's until the q_empty arrive below), so that they
            // do not occupy registers during the tile loop (ptxas spilled in it otherwise).
            const unsigned int* hdr = headers + slot * kSlotHeaderInts;
            q0 = hdr[0] * kNumQ;
            fill = hdr[3] != 0;
            span = {hdr[4], hdr[5]};
        }
        if (clean && fill) {
            const unsigned int tiles_lo = span.first_key;
            const unsigned int tiles_hi = min_of(span.first_key + span.num_tiles * kBlockKV, seq_len_kv);
#pragma unroll
            for (unsigned int q = 0; q < kNumQ; ++q) {
                if (q0 + q >= seq_len) continue;
                float* row = out + (q0 + q) * out_stride;
                fill_row(row, 0, span.num_tiles ? tiles_lo : 0, ninf, math_tid, kNumMathThreads);
                fill_row(row, span.num_tiles ? tiles_hi : 0, seq_len_kv, ninf, math_tid, kNumMathThreads);
            }
        }
        ptx::mbarrier_arrive(bars.q_empty + slot);
    }
#endif
}

}  // namespace dg::indexer
