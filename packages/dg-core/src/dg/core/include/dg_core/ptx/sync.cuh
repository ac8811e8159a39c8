// dg_core/ptx/sync.cuh -- fences, named barriers, cluster barriers and register reallocation (sm_90a).
#pragma once

#include "../common/utils.cuh"

namespace dg::ptx {

// Orders this thread's generic-proxy shared-memory writes before later async-proxy (TMA, wgmma) reads.
DG_DEVICE void fence_proxy_async_smem() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

DG_DEVICE void fence_proxy_async() {
    asm volatile("fence.proxy.async;" ::: "memory");
}

// Named barrier over `num_threads` threads (a multiple of 32). Id 0 is __syncthreads(); callers use 1..15.
DG_DEVICE void named_barrier_sync(unsigned int id, unsigned int num_threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(num_threads) : "memory");
}

DG_DEVICE void named_barrier_arrive(unsigned int id, unsigned int num_threads) {
    asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(num_threads) : "memory");
}

DG_DEVICE unsigned int cluster_ctarank() {
    unsigned int r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

DG_DEVICE unsigned int cluster_nctarank() {
    unsigned int r;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r));
    return r;
}

// Full cluster barrier: every thread of every CTA in the cluster arrives and waits.
DG_DEVICE void cluster_sync() {
    asm volatile(
        "barrier.cluster.arrive.release.aligned;\n"
        "barrier.cluster.wait.acquire.aligned;" ::
            : "memory");
}

// Register reallocation between warpgroups. Requires a register cap at entry (__launch_bounds__(T, 1)).
template <unsigned int kRegs>
DG_DEVICE void setmaxnreg_inc() {
    static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg needs a multiple of 8 in [24, 256]");
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegs));
}

template <unsigned int kRegs>
DG_DEVICE void setmaxnreg_dec() {
    static_assert(kRegs % 8 == 0 && kRegs >= 24 && kRegs <= 256, "setmaxnreg needs a multiple of 8 in [24, 256]");
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegs));
}

// Programmatic dependent launch: wait for the previous grid's memory, allow the next grid to start.
DG_DEVICE void grid_dependency_wait() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

DG_DEVICE void grid_dependency_launch_dependents() {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

}  // namespace dg::ptx
