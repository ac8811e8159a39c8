// dg_layout/impls/sf_pack_ue8m0_broadcast.cuh -- block scale factors broadcast to rows and packed into UE8M0 in one
// pass (spec 3.6 rule 4: 128x128 block scales of an SM100 weight into its per-row packed layout).
//
// Computes, for in [G, MN_in, S] FP32 with any element strides (sg, smn, ss), P = ceil(S / 4), row_div a multiple
// of 4 (dg.layout sends multiples of 64):
//   out[g, mn, p] = e(in[g, mn / row_div, 4p]) | e(..4p+1) << 8 | e(..4p+2) << 16 | e(..4p+3) << 24
//   e(x) = (bits(x) >> 23) & 0xff, entries with 4p + q >= S contribute byte 0
// out is INT32 [G, MN, P] with strides (P * tma_mn, 1, tma_mn), tma_mn = align(MN, 4); padding rows are not written.
//
// The output is ~row_div times larger than the input, so this is a write stream. Work split: a warp item is
// (g, p, input row): four loads (the same address in every lane: one transaction each), one word, then the warp
// writes the input row's row_div output rows of packed column p, one 16-byte store per lane (512 contiguous bytes
// per warp instruction for row_div = 128). Items are ordered input row fastest, then p, then g, which is the
// output's address order: the grid writes the tensor front to back, like a fill.
// NOTE: measured on an H100 (1024 x 4096 x 56 scales, 235 MB written): 93 us at 4 CTAs of 256 threads per SM, against
// 100 us at 8 and 98 us at 16 CTAs per SM, 102 us for the previous path (a warp per (g, input row, 4 packed columns)
// with 4-byte stores, four columns per item), 75.5 us for a memset of the same bytes.
// Scalar stores when MN % 4 != 0 or `out` is not 16-byte aligned (an int4 could straddle the padding rows).
// Item indices are 32-bit (G * P * ceil(MN / row_div) < 2^31, checked by the host); element offsets too when the
// host sets `narrow`.
#pragma once

namespace dg::layout {

constexpr int kBroadcastThreads = 256;
constexpr int kBroadcastCtasPerSm = 4;

// Index: the type of every element offset (int when the host has checked that the input's largest offset and the
// output's size are below 2^31, else long long). NOTE: measured (same card, same launch): the kernel with 64-bit
// offsets took 121 us against 93 us with 32-bit ones: it is latency-bound per warp (index math -> loads -> stores
// with 32 warps per SM), so every instruction on that chain counts.
template <typename Index>
__device__ __forceinline__ void pack_ue8m0_broadcast(const float* __restrict__ in, int* __restrict__ out,
                                                     unsigned int num_groups, Index mn, Index s, Index sg, Index smn,
                                                     Index ss, Index row_div, Index tma_mn) {
    constexpr int kWarps = kBroadcastThreads / 32;
    const unsigned int packed = static_cast<unsigned int>((s + 3) / 4);
    const unsigned int rows_in = static_cast<unsigned int>((mn + row_div - 1) / row_div);
    const unsigned int items = num_groups * packed * rows_in;
    const int lane = static_cast<int>(threadIdx.x % 32);
    const bool vec = mn % 4 == 0 && reinterpret_cast<unsigned long long>(out) % 16 == 0;

    for (unsigned int item = blockIdx.x * kWarps + threadIdx.x / 32; item < items; item += gridDim.x * kWarps) {
        const unsigned int row = item % rows_in, gp = item / rows_in;
        const unsigned int p = gp % packed, g = gp / packed;
        const float* src =
            in + (static_cast<Index>(g) * sg + static_cast<Index>(row) * smn + static_cast<Index>(4 * p) * ss);
        unsigned int word = 0;
#pragma unroll
        for (int q = 0; q < 4; ++q)
            word |= (static_cast<Index>(4 * p + q) < s ? (__float_as_uint(__ldg(src + q * ss)) >> 23) & 0xffu : 0u)
                    << (8 * q);

        const Index first = static_cast<Index>(row) * row_div;
        const int rows = static_cast<int>(mn - first < row_div ? mn - first : row_div);
        int* dst =
            out + ((static_cast<Index>(g) * static_cast<Index>(packed) + static_cast<Index>(p)) * tma_mn + first);
        if (vec) {
            // rows is a multiple of 4 here (row_div and MN both are). NOTE: a whole 128-row item (rule 4) is one
            // store per lane, without the loop (measured: part of the 93 vs 99 us gap to a loop-free variant).
            const int4 v = make_int4(static_cast<int>(word), static_cast<int>(word), static_cast<int>(word),
                                     static_cast<int>(word));
            if (rows == 128)
                reinterpret_cast<int4*>(dst)[lane] = v;
            else
                for (int j = lane; 4 * j < rows; j += 32) reinterpret_cast<int4*>(dst)[j] = v;
        } else {
            for (int i = lane; i < rows; i += 32) dst[i] = static_cast<int>(word);
        }
    }
}

// narrow != 0: every input offset and the output size fit in 31 bits (checked by the host).
__global__ void __launch_bounds__(kBroadcastThreads)
    sf_pack_ue8m0_broadcast_impl(const float* __restrict__ in, int* __restrict__ out, long long num_groups,
                                 long long mn, long long s, long long sg, long long smn, long long ss,
                                 long long row_div, long long tma_mn, unsigned int narrow) {
    if (narrow)
        pack_ue8m0_broadcast<int>(in, out, static_cast<unsigned int>(num_groups), static_cast<int>(mn),
                                  static_cast<int>(s), static_cast<int>(sg), static_cast<int>(smn),
                                  static_cast<int>(ss), static_cast<int>(row_div), static_cast<int>(tma_mn));
    else
        pack_ue8m0_broadcast<long long>(in, out, static_cast<unsigned int>(num_groups), mn, s, sg, smn, ss, row_div,
                                        tma_mn);
}

}  // namespace dg::layout
