// dg_core/ptx/mbarrier.cuh -- shared-memory mbarrier wrappers (sm_90).
//
// An mbarrier lives in shared memory as one 64-bit word. All wrappers take a generic pointer to it and
// convert to a shared-window address. Phases are tracked by the caller with a parity bit.
#pragma once

#include "../common/utils.cuh"

namespace dg::ptx {

DG_DEVICE unsigned int smem_addr(const void* p) {
    return static_cast<unsigned int>(__cvta_generic_to_shared(p));
}

DG_DEVICE void mbarrier_init(unsigned long long* bar, unsigned int arrive_count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(arrive_count));
}

// Makes mbarrier initialisation visible to the async proxy (TMA) and to the other CTAs of the cluster.
DG_DEVICE void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

DG_DEVICE void mbarrier_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

// Arrive on the barrier at the same shared-memory offset in CTA `cta_rank` of this cluster.
// NOTE: default (.release.cta) semantics: a .release.cluster arrive made every consumer warp pay a
// cluster-scope fence per K block and halved the multicast kernel's throughput (measured, H100).
DG_DEVICE void mbarrier_arrive_cluster(unsigned long long* bar, unsigned int cta_rank) {
    asm volatile(
        "{\n"
        ".reg .b32 remote;\n"
        "mapa.shared::cluster.u32 remote, %0, %1;\n"
        "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
        "}\n" ::"r"(smem_addr(bar)),
        "r"(cta_rank)
        : "memory");
}

// Arrive once and add `bytes` to the transaction count the current phase waits for.
DG_DEVICE void mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

DG_DEVICE bool mbarrier_try_wait(unsigned long long* bar, unsigned int parity) {
    unsigned int ok;
    asm volatile(
        "{\n"
        ".reg .pred P;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2;\n"
        "selp.u32 %0, 1, 0, P;\n"
        "}\n"
        : "=r"(ok)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
    return ok != 0;
}

// Blocks until the phase with the given parity has completed.
DG_DEVICE void mbarrier_wait(unsigned long long* bar, unsigned int parity) {
    while (!mbarrier_try_wait(bar, parity)) {
    }
}

// As mbarrier_try_wait, but the thread may be suspended inside the instruction for up to `suspend_ns` ns (it
// resumes when the phase completes). For a waiter that would otherwise spin: every failed try_wait is an
// issued instruction taken from the other warps of its scheduler.
DG_DEVICE bool mbarrier_try_wait_suspend(unsigned long long* bar, unsigned int parity, unsigned int suspend_ns) {
    unsigned int ok;
    asm volatile(
        "{\n"
        ".reg .pred P;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2, %3;\n"
        "selp.u32 %0, 1, 0, P;\n"
        "}\n"
        : "=r"(ok)
        : "r"(smem_addr(bar)), "r"(parity), "r"(suspend_ns)
        : "memory");
    return ok != 0;
}

DG_DEVICE void mbarrier_wait_suspend(unsigned long long* bar, unsigned int parity, unsigned int suspend_ns) {
    while (!mbarrier_try_wait_suspend(bar, parity, suspend_ns)) {
    }
}

}  // namespace dg::ptx
