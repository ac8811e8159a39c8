// host_emulator.h -- runs dg.layout's kernels on the CPU so that CI without a GPU checks their index logic.
//
// Every thread of a block is a std::thread; __syncthreads is a block-wide std::barrier, __shfl_xor_sync goes
// through a per-warp slot array between two warp barriers (so it needs all 32 lanes, as our kernels guarantee),
// __shared__ variables become function-local statics (blocks run one after another). Arithmetic intrinsics map to
// the host's IEEE operations (build with -ffp-contract=off); FP8 conversion uses cuda_fp8.h's host path.
// What this cannot check: timing, memory-model races, and the hardware conversion instruction itself (the GPU
// tests do).
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

namespace emu {
inline thread_local uint3 tIdx, bIdx;
inline uint3 bDim, gDim;
inline std::barrier<>* block_bar = nullptr;
struct Warp {
    std::barrier<>* bar;
    unsigned long long slots[32];
};
inline std::vector<std::unique_ptr<Warp>> warps;
inline thread_local int my_warp, my_lane;
}  // namespace emu
#define threadIdx (emu::tIdx)
#define blockIdx (emu::bIdx)
#define blockDim (emu::bDim)
#define gridDim (emu::gDim)

template <typename T>
inline T __ldg(const T* p) {
    return *p;
}
inline unsigned int emu_f2u(float f) {
    unsigned int u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float emu_u2f(unsigned int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
#define __float_as_uint emu_f2u
#define __uint_as_float emu_u2f
inline float emu_fdiv(float a, float b) {
    volatile float r = a / b;
    return r;
}
inline float emu_frcp(float a) {
    volatile float r = 1.0f / a;
    return r;
}
inline float emu_fmul(float a, float b) {
    volatile float r = a * b;
    return r;
}
#define __fdiv_rn emu_fdiv
#define __frcp_rn emu_frcp
#define __fmul_rn emu_fmul
inline int emu_clz(unsigned int x) {
    return x == 0 ? 32 : __builtin_clz(x);
}
#define __clz emu_clz
inline void emu_sync() {
    emu::block_bar->arrive_and_wait();
}
#define __syncthreads emu_sync
template <typename T>
inline T emu_shfl_xor(unsigned, T v, int off) {
    static_assert(sizeof(T) <= sizeof(unsigned long long), "a shuffle moves at most 8 bytes");
    auto& w = *emu::warps[emu::my_warp];
    std::memcpy(&w.slots[emu::my_lane], &v, sizeof(T));
    w.bar->arrive_and_wait();
    T r;
    std::memcpy(&r, &w.slots[emu::my_lane ^ off], sizeof(T));
    w.bar->arrive_and_wait();
    return r;
}
#define __shfl_xor_sync emu_shfl_xor

namespace emu {
// Run fn on grid x block threads, one block at a time.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& fn) {
    bDim = make_uint3(block.x, block.y, block.z);
    gDim = make_uint3(grid.x, grid.y, grid.z);
    const int n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                std::barrier<> bar(n);
                block_bar = &bar;
                warps.clear();
                std::vector<std::unique_ptr<std::barrier<>>> wb;
                for (int w = 0; w < (n + 31) / 32; ++w) {
                    wb.emplace_back(new std::barrier<>(std::min(32, n - 32 * w)));
                    warps.emplace_back(new Warp{wb.back().get(), {}});
                }
                std::vector<std::thread> ts;
                for (int t = 0; t < n; ++t)
                    ts.emplace_back([&, t] {
                        tIdx = make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                        bIdx = make_uint3(bx, by, bz);
                        my_warp = t / 32, my_lane = t % 32;
                        fn();
                    });
                for (auto& th : ts) th.join();
            }
}
}  // namespace emu
