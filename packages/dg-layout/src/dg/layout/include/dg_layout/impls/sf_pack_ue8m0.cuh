// dg_layout/impls/sf_pack_ue8m0.cuh -- FP32 scale factors into packed UE8M0, MN-major TMA-aligned (spec 3.4).
//
// Computes, for in [G, MN_in, S] FP32 with any element strides (sg, smn, ss), P = ceil(S / 4):
//   e(x)            = (bits(x) >> 23) & 0xff                     (the IEEE exponent byte, taken exactly: a power
//                                                                 of two 2^k gives k + 127; other values give
//                                                                 floor(log2 |x|) + 127; the sign is dropped)
//   out[g, mn, p]   = e(in[g, mn / row_div, 4p]) | e(..4p+1) << 8 | e(..4p+2) << 16 | e(..4p+3) << 24
//                     (entries with 4p + q >= S contribute byte 0)
// out is INT32 [G, MN, P] with strides (P * tma_mn, 1, tma_mn), tma_mn = align(MN, 4); padding rows are not
// written. row_div = 128 broadcasts 128x128-block scales to their 128 rows (spec 3.6 rule 4) in the same pass.
//
// Grid: x over MN tiles of 32, y over packed-column tiles of 32 (128 input columns), z over groups; each
// dimension strides by its grid size. Block: 32 x 8 threads, one role "pack threads". Shared memory: exponent
// bytes of a 32 x 128 tile, rows padded to 132 bytes (33 words: conflict-free column reads).
// Steps per tile: zero the byte tile -> __syncthreads -> load + extract bytes -> __syncthreads -> assemble words,
// store along MN -> __syncthreads (three barriers: the zeroing and the filling threads differ).
#pragma once

#include <dg_layout/common/sf_tile.cuh>

namespace dg::layout {

__global__ void __launch_bounds__(kSfTileThreads)
    sf_pack_ue8m0_impl(const float* __restrict__ in, int* __restrict__ out, long long num_groups, long long mn,
                       long long s, long long sg, long long smn, long long ss, long long row_div, long long tma_mn) {
    constexpr int kTileMn = 32, kTilePacked = 32, kTileS = 4 * kTilePacked;
    constexpr int kRowBytes = kTileS + 4;
    static_assert(kRowBytes % 4 == 0 && (kRowBytes / 4) % 2 == 1, "odd word pitch avoids bank conflicts");
    __shared__ __align__(16) unsigned char exps[kTileMn][kRowBytes];
    const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
    const long long packed = (s + 3) / 4;

    for (long long g = blockIdx.z; g < num_groups; g += gridDim.z)
        for (long long p0 = static_cast<long long>(blockIdx.y) * kTilePacked; p0 < packed;
             p0 += gridDim.y * kTilePacked)
            for (long long mn0 = static_cast<long long>(blockIdx.x) * kTileMn; mn0 < mn; mn0 += gridDim.x * kTileMn) {
                // Step 1: zero the tile (missing columns pack as byte 0), then fill the exponent bytes.
                for (int i = ty; i < kTileMn; i += kTileRowsPerStep) reinterpret_cast<unsigned int*>(exps[i])[tx] = 0u;
                __syncthreads();
                for_each_tile_element<kTileMn, kTileS>(
                    in, g, mn0, p0 * 4, mn, s, sg, smn, ss, row_div, [&](int i, int j, float v) {
                        exps[i][j] = static_cast<unsigned char>((__float_as_uint(v) >> 23) & 0xffu);
                    });
                __syncthreads();

                // Step 2: one little-endian word per (mn, p), lanes walking MN.
                int* dst = out + g * packed * tma_mn;
                for (int j = ty; j < kTilePacked; j += kTileRowsPerStep) {
                    const long long r = mn0 + tx, c = p0 + j;
                    if (r < mn && c < packed)
                        dst[c * tma_mn + r] = static_cast<int>(reinterpret_cast<const unsigned int*>(exps[tx])[j]);
                }
                __syncthreads();
            }
}

}  // namespace dg::layout
