// dg_layout/common/fp8_cast.cuh -- device helpers shared by the FP8 cast kernels of dg.layout.
//
// The quantisation recipe (spec 12.1), written so that every step is one correctly rounded IEEE operation and
// therefore equal bit for bit to the pure-torch reference of dg.layout.reference:
//   amax  = max |x| over the group                       (exact; a NaN anywhere propagates)
//   scale = max(amax, 1e-4f) / 448.0f                    (__fdiv_rn: true division, no reciprocal trick)
//   scale = ceil_pow2(scale)            if UE8M0         (exponent-bit arithmetic, never log2 in float)
//   inv   = 1.0f / scale                                 (__frcp_rn: correctly rounded reciprocal)
//   q     = e4m3(x * inv)                                (__fmul_rn, then cvt.rn.satfinite: round to nearest
//                                                         even; |x * inv| <= 448 * (1 + 2^-22) < 464, so the
//                                                         saturation never differs from torch's conversion)
// Loads and stores move 16 consecutive elements per lane: two or four 16-byte loads of the input and one
// 16-byte store of the FP8 bytes when the caller proved alignment (`vec_ok`), otherwise guarded scalar accesses.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace dg::layout {

// Elements of one lane's chunk: 16 FP8 bytes = one 16-byte store.
constexpr int kChunk = 16;
// The recipe's constants.
constexpr float kFp8E4m3Max = 448.0f;
constexpr float kAmaxFloor = 1e-4f;

// NOTE: fmaxf drops NaNs; the reference (torch.amax / torch.clamp) propagates them, so we do too.
__device__ __forceinline__ float max_nan(float a, float b) {
    return (a != a) ? a : ((b != b) ? b : fmaxf(a, b));
}

// Smallest power of two >= |x| (2^ceil(log2|x|)), from the IEEE bits: exact for every input.
// 0 -> 0, inf -> inf, NaN -> NaN, overflow past 2^127 -> inf, subnormals -> the next power of two.
__device__ __forceinline__ float ceil_pow2(float x) {
    const unsigned int bits = __float_as_uint(x) & 0x7fffffffu;
    const unsigned int exponent = bits >> 23;
    const unsigned int mantissa = bits & 0x7fffffu;
    if (exponent == 0xffu) return __uint_as_float(bits);  // inf or NaN unchanged
    if (mantissa == 0u) return __uint_as_float(bits);     // 0 or an exact power of two
    if (exponent == 0u) {
        // Subnormal m * 2^-149: the next power of two of the integer m has the same bit pattern as the
        // answer (1 << 23 is the smallest normal 2^-126, as wanted).
        const unsigned int pow2 = 1u << (32 - __clz(mantissa - 1u));
        return __uint_as_float(pow2);
    }
    return __uint_as_float((exponent + 1u) << 23);  // exponent 254 + 1 gives the bits of +inf
}

__device__ __forceinline__ float fp8_scale(float amax, bool use_ue8m0) {
    const float clamped = (amax != amax) ? amax : fmaxf(amax, kAmaxFloor);
    const float scale = __fdiv_rn(clamped, kFp8E4m3Max);
    return use_ue8m0 ? ceil_pow2(scale) : scale;
}

// One lane's kChunk input elements kept as raw 32-bit words (BF16: two per word), so a thread can hold a large
// tile in few registers; get(i) decodes element i exactly (BF16 -> FP32 is a 16-bit shift).
template <typename T>
struct RawChunk {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "inputs are BF16 or FP32");
    static constexpr int kWords = kChunk * static_cast<int>(sizeof(T)) / 4;
    unsigned int w[kWords];

    __device__ __forceinline__ float get(int i) const {
        if constexpr (sizeof(T) == 4)
            return __uint_as_float(w[i]);
        else
            return __uint_as_float(i % 2 == 0 ? w[i / 2] << 16 : w[i / 2] & 0xffff0000u);
    }
};

// Load kChunk elements starting at `src`; `n_valid` of them exist (the rest read as 0, matching the reference's
// zero padding). `vec_ok` promises `src` is 16-byte aligned.
template <typename T>
__device__ __forceinline__ void load_raw_chunk(const T* src, long long n_valid, bool vec_ok, RawChunk<T>& raw) {
    if (vec_ok && n_valid >= kChunk) {
#pragma unroll
        for (int i = 0; i < RawChunk<T>::kWords / 4; ++i) {
            const uint4 q = __ldg(reinterpret_cast<const uint4*>(src) + i);
            raw.w[4 * i] = q.x, raw.w[4 * i + 1] = q.y, raw.w[4 * i + 2] = q.z, raw.w[4 * i + 3] = q.w;
        }
    } else if constexpr (sizeof(T) == 4) {
        const unsigned int* bits = reinterpret_cast<const unsigned int*>(src);
#pragma unroll
        for (int i = 0; i < kChunk; ++i) raw.w[i] = i < n_valid ? __ldg(bits + i) : 0u;
    } else {
        const unsigned short* bits = reinterpret_cast<const unsigned short*>(src);
#pragma unroll
        for (int i = 0; i < kChunk / 2; ++i) {
            const unsigned int lo = 2 * i < n_valid ? __ldg(bits + 2 * i) : 0u;
            const unsigned int hi = 2 * i + 1 < n_valid ? __ldg(bits + 2 * i + 1) : 0u;
            raw.w[i] = lo | (hi << 16);
        }
    }
}

template <typename T>
__device__ __forceinline__ void load_chunk(const T* src, long long n_valid, bool vec_ok, float (&v)[kChunk]) {
    RawChunk<T> raw;
    load_raw_chunk(src, n_valid, vec_ok, raw);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) v[i] = raw.get(i);
}

// Quantise v * inv to e4m3 and store `n_valid` (<= kChunk) bytes at `dst`; `vec_ok` promises 16-byte alignment.
__device__ __forceinline__ void store_chunk_fp8(unsigned char* dst, long long n_valid, bool vec_ok,
                                                const float (&v)[kChunk], float inv) {
    unsigned short pairs[kChunk / 2];
#pragma unroll
    for (int i = 0; i < kChunk / 2; ++i) {
        const float2 scaled = make_float2(__fmul_rn(v[2 * i], inv), __fmul_rn(v[2 * i + 1], inv));
        // Low byte holds scaled.x.
        pairs[i] = __nv_cvt_float2_to_fp8x2(scaled, __NV_SATFINITE, __NV_E4M3);
    }
    if (vec_ok && n_valid >= kChunk) {
        uint4 packed;
        packed.x = pairs[0] | (static_cast<unsigned int>(pairs[1]) << 16);
        packed.y = pairs[2] | (static_cast<unsigned int>(pairs[3]) << 16);
        packed.z = pairs[4] | (static_cast<unsigned int>(pairs[5]) << 16);
        packed.w = pairs[6] | (static_cast<unsigned int>(pairs[7]) << 16);
        *reinterpret_cast<uint4*>(dst) = packed;
    } else {
#pragma unroll
        for (int i = 0; i < kChunk; ++i)
            if (i < n_valid) dst[i] = static_cast<unsigned char>((pairs[i / 2] >> (8 * (i % 2))) & 0xffu);
    }
}

__device__ __forceinline__ float chunk_abs_max(const float (&v)[kChunk]) {
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < kChunk; ++i) m = max_nan(m, fabsf(v[i]));
    return m;
}

template <typename T>
__device__ __forceinline__ float raw_chunk_abs_max(const RawChunk<T>& raw) {
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < kChunk; ++i) m = max_nan(m, fabsf(raw.get(i)));
    return m;
}

}  // namespace dg::layout
