// dg_core/common/utils.cuh -- small device/host math helpers and compile-time contracts.
//
// Framework-free and NVRTC-compatible: no host standard headers, builtin types only.
#pragma once

#include <cuda/std/cstdint>
#include <cuda/std/type_traits>

#define DG_HOST_DEVICE __host__ __device__ __forceinline__
#define DG_DEVICE __device__ __forceinline__

namespace dg {

template <typename T>
DG_HOST_DEVICE constexpr T ceil_div(T a, T b) {
    return (a + b - 1) / b;
}

template <typename T>
DG_HOST_DEVICE constexpr T align_up(T a, T b) {
    return ceil_div(a, b) * b;
}

template <typename T>
DG_HOST_DEVICE constexpr T min_of(T a, T b) {
    return a < b ? a : b;
}

template <typename T>
DG_HOST_DEVICE constexpr T max_of(T a, T b) {
    return a > b ? a : b;
}

DG_HOST_DEVICE constexpr bool is_pow2(unsigned int x) {
    return x != 0 && (x & (x - 1)) == 0;
}

// The dynamic shared-memory window rounded up to 1024 bytes. NOTE: the window is only guaranteed 16-byte
// aligned, and 128-byte swizzled TMA/wgmma tiles need 1024; kernels reserve 1024 bytes of slack for this.
DG_DEVICE unsigned char* align_smem_1024(unsigned char* smem_raw) {
    return reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(smem_raw) + 1023) &
                                            ~static_cast<unsigned long long>(1023));
}

// Lane / warp / warpgroup indices. The warp index is made warp-uniform with a shuffle so the compiler
// can keep role branches uniform.
DG_DEVICE unsigned int lane_idx() {
    unsigned int lane;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    return lane;
}

DG_DEVICE unsigned int warp_idx_sync() {
    return __shfl_sync(0xffffffffu, threadIdx.x / 32, 0);
}

DG_DEVICE unsigned int warpgroup_idx_sync() {
    return __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
}

// Inclusive prefix sum of `v` over the 32 lanes of a full warp (lane = this thread's lane index).
template <typename T>
DG_DEVICE T warp_inclusive_sum(T v, unsigned int lane) {
#pragma unroll
    for (unsigned int d = 1; d < 32; d *= 2) {
        const T up = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += up;
    }
    return v;
}

DG_DEVICE bool elect_one_sync() {
    unsigned int pred = 0;
    asm volatile(
        "{\n"
        ".reg .pred P;\n"
        "elect.sync _|P, 0xffffffff;\n"
        "selp.u32 %0, 1, 0, P;\n"
        "}\n"
        : "=r"(pred));
    return pred != 0;
}

}  // namespace dg

// Device-side precondition: traps (sticky CUDA error) instead of continuing with a wrong answer.
// Use only for conditions the host has already validated; it is a last line of defence.
#define DG_DEVICE_ASSERT(cond)                                                             \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("dg device assertion failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            asm volatile("trap;");                                                         \
        }                                                                                  \
    } while (0)
