// dg_layout/impls/sf_pack_ue8m0_k_grouped.cuh -- k-grouped FP32 scale factors into packed UE8M0 (spec 9.6).
//
// Input: sf FP32 contiguous [R_in, MN], R_in = sum_g n_g with n_g = ks[g] / 128 (K-block rows, MN contiguous).
// Output: INT32 contiguous [R_out, MN], R_out = sum_g ceil(n_g / 4). Group g's rows start at
//   in_off(g) = sum_{h<g} n_h and out_off(g) = sum_{h<g} ceil(n_h / 4), and
//   out[out_off(g) + r, c] = e(sf[in_off(g) + 4r, c]) | e(..4r+1..) << 8 | e(..4r+2..) << 16 | e(..4r+3..) << 24,
// e = the exact IEEE exponent byte, rows at or past the group's n_g contributing byte 0. Empty groups write
// nothing. The offsets are recomputed per CTA from ks_tensor on the device (G is small), so no host sync.
//
// Grid: x over column chunks of kColsPerCta, y over groups, z over the group's packed rows (both striding by
// their grid size; the host sizes z to the largest group, so each thread usually packs one output row).
// Block: kPackThreads threads, one role "pack threads", each owning 4 consecutive columns: up to four
// independent 16-byte loads (one per K-block row, all issued before any is used) -> one 16-byte store per
// packed row when `vec_ok` (base pointers 16-byte aligned and MN % 4 == 0), scalar accesses otherwise.
// Group offsets: every CTA sums ks[0 .. g) in parallel (each thread a strided share, then a warp shuffle tree
// and a 4-entry shared array: two __syncthreads per group), so no CTA walks the groups one load at a time.
// Bounds: every row index is checked against R_in / R_out, so a ks_tensor that disagrees with the host's `ks`
// gives wrong values but never an out-of-bounds access. Shared memory: 64 B static.
#pragma once

namespace dg::layout {

constexpr int kPackThreads = 128;
constexpr int kPackWarps = kPackThreads / 32;
constexpr int kColsPerThread = 4;
constexpr int kColsPerCta = kPackThreads * kColsPerThread;

__device__ __forceinline__ unsigned int exponent_byte(float v) {
    return (__float_as_uint(v) >> 23) & 0xffu;
}

// K-block rows of a group (negative ks entries count as empty groups).
__device__ __forceinline__ long long group_rows(int k) {
    return k > 0 ? k / 128 : 0;
}

__global__ void __launch_bounds__(kPackThreads)
    sf_pack_ue8m0_k_grouped_impl(const float* __restrict__ sf, int* __restrict__ out, const int* __restrict__ ks,
                                 long long num_groups, long long mn, long long rows_in, long long rows_out,
                                 unsigned int vec_ok) {
    __shared__ long long warp_in[kPackWarps], warp_out[kPackWarps];
    const int tid = static_cast<int>(threadIdx.x);
    const long long col = static_cast<long long>(blockIdx.x) * kColsPerCta + tid * kColsPerThread;
    const bool vec = vec_ok != 0 && col + kColsPerThread <= mn;

    // NOTE: no early return for col >= mn: every thread takes part in the offset reduction's barriers.
    for (long long g = blockIdx.y; g < num_groups; g += gridDim.y) {
        // Step 1: in_off(g) and out_off(g), the sums over the groups before g.
        long long in_off = 0, out_off = 0;
        for (long long h = tid; h < g; h += kPackThreads) {
            const long long n_h = group_rows(__ldg(ks + h));
            in_off += n_h;
            out_off += (n_h + 3) / 4;
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) {
            in_off += __shfl_xor_sync(0xffffffffu, in_off, offset);
            out_off += __shfl_xor_sync(0xffffffffu, out_off, offset);
        }
        if (tid % 32 == 0) warp_in[tid / 32] = in_off, warp_out[tid / 32] = out_off;
        __syncthreads();
        in_off = 0, out_off = 0;
#pragma unroll
        for (int w = 0; w < kPackWarps; ++w) in_off += warp_in[w], out_off += warp_out[w];
        // NOTE: the second barrier keeps a fast thread's next group from overwriting warp_in under a slow reader.
        __syncthreads();
        const long long n_g = group_rows(__ldg(ks + g));
        if (col >= mn) continue;

        // Step 2: this CTA's packed rows of the group, four K-block rows per output row.
        for (long long r = blockIdx.z; 4 * r < n_g && out_off + r < rows_out; r += gridDim.z) {
            float v[4][kColsPerThread];
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const long long row = in_off + 4 * r + q;
                const bool row_ok = 4 * r + q < n_g && row < rows_in;
                const float* src = sf + row * mn + col;
                if (vec && row_ok) {
                    const float4 f = __ldg(reinterpret_cast<const float4*>(src));
                    v[q][0] = f.x, v[q][1] = f.y, v[q][2] = f.z, v[q][3] = f.w;
                } else {
#pragma unroll
                    for (int c = 0; c < kColsPerThread; ++c) v[q][c] = row_ok && col + c < mn ? __ldg(src + c) : 0.0f;
                }
            }
            unsigned int words[kColsPerThread];
#pragma unroll
            for (int c = 0; c < kColsPerThread; ++c)
                words[c] = exponent_byte(v[0][c]) | exponent_byte(v[1][c]) << 8 | exponent_byte(v[2][c]) << 16 |
                           exponent_byte(v[3][c]) << 24;
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
    }
}

}  // namespace dg::layout
