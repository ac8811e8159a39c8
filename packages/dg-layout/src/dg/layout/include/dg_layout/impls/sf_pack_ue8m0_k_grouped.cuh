// dg_layout/impls/sf_pack_ue8m0_k_grouped.cuh -- k-grouped FP32 scale factors into packed UE8M0 (spec 9.6).
//
// Input: sf FP32 contiguous [R_in, MN], R_in = sum_g n_g with n_g = ks[g] / 128 (K-block rows, MN contiguous).
// Output: INT32 contiguous [R_out, MN], R_out = sum_g ceil(n_g / 4). Group g's rows start at
//   in_off(g) = sum_{h<g} n_h and out_off(g) = sum_{h<g} ceil(n_h / 4), and
//   out[out_off(g) + r, c] = e(sf[in_off(g) + 4r, c]) | e(..4r+1..) << 8 | e(..4r+2..) << 16 | e(..4r+3..) << 24,
// e = the exact IEEE exponent byte, rows at or past the group's n_g contributing byte 0. Empty groups write
// nothing. The offsets are recomputed per CTA from ks_tensor on the device (G is small), so no host sync.
//
// Grid: x over column chunks of kColsPerCta, y over groups (striding by gridDim.y). Block: kPackThreads threads,
// one role "pack threads", each owning 4 consecutive columns: four 16-byte loads (one per K-block row) -> one
// 16-byte store per packed row when `vec_ok` (base pointers 16-byte aligned and MN % 4 == 0), scalar otherwise.
// Bounds: every row index is checked against R_in / R_out, so a ks_tensor that disagrees with the host's `ks`
// gives wrong values but never an out-of-bounds access. No shared memory, no barriers.
#pragma once

namespace dg::layout {

constexpr int kPackThreads = 128;
constexpr int kColsPerThread = 4;
constexpr int kColsPerCta = kPackThreads * kColsPerThread;

__device__ __forceinline__ unsigned int exponent_byte(float v) {
    return (__float_as_uint(v) >> 23) & 0xffu;
}

__global__ void __launch_bounds__(kPackThreads)
    sf_pack_ue8m0_k_grouped_impl(const float* __restrict__ sf, int* __restrict__ out, const int* __restrict__ ks,
                                 long long num_groups, long long mn, long long rows_in, long long rows_out,
                                 unsigned int vec_ok) {
    const long long col = static_cast<long long>(blockIdx.x) * kColsPerCta + threadIdx.x * kColsPerThread;
    if (col >= mn) return;
    const bool vec = vec_ok != 0 && col + kColsPerThread <= mn;

    // Step 1: offsets of the first group this CTA handles; negative ks entries count as empty groups.
    long long g = blockIdx.y, in_off = 0, out_off = 0;
    for (long long h = 0; h < g && h < num_groups; ++h) {
        const long long n_h = ks[h] > 0 ? ks[h] / 128 : 0;
        in_off += n_h;
        out_off += (n_h + 3) / 4;
    }

    for (; g < num_groups;) {
        const long long n_g = ks[g] > 0 ? ks[g] / 128 : 0;
        // Step 2: pack this group's rows, four K-block rows per output row.
        for (long long r = 0; 4 * r < n_g && out_off + r < rows_out; ++r) {
            unsigned int words[kColsPerThread] = {0u, 0u, 0u, 0u};
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const long long row = in_off + 4 * r + q;
                if (4 * r + q >= n_g || row >= rows_in) continue;
                const float* src = sf + row * mn + col;
                float v[kColsPerThread];
                if (vec) {
                    const float4 f = __ldg(reinterpret_cast<const float4*>(src));
                    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
                } else {
#pragma unroll
                    for (int c = 0; c < kColsPerThread; ++c) v[c] = col + c < mn ? __ldg(src + c) : 0.0f;
                }
#pragma unroll
                for (int c = 0; c < kColsPerThread; ++c) words[c] |= exponent_byte(v[c]) << (8 * q);
            }
            int* dst = out + (out_off + r) * mn + col;
            if (vec) {
                *reinterpret_cast<int4*>(dst) = make_int4(static_cast<int>(words[0]), static_cast<int>(words[1]),
                                                          static_cast<int>(words[2]), static_cast<int>(words[3]));
            } else {
#pragma unroll
                for (int c = 0; c < kColsPerThread; ++c)
                    if (col + c < mn) dst[c] = static_cast<int>(words[c]);
            }
        }

        // Step 3: advance to this CTA's next group (groups stride by gridDim.y).
        const long long next = g + gridDim.y;
        for (; g < next && g < num_groups; ++g) {
            const long long n_h = ks[g] > 0 ? ks[g] / 128 : 0;
            in_off += n_h;
            out_off += (n_h + 3) / 4;
        }
    }
}

}  // namespace dg::layout
