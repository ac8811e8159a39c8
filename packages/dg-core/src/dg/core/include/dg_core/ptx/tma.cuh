// dg_core/ptx/tma.cuh -- bulk tensor copies (TMA): loads into shared memory completing on an mbarrier,
// cluster multicast loads, stores and reduce-add stores from shared memory, and descriptor prefetch.
//
// Coordinates are innermost first, in elements, as signed 32-bit values (out-of-bounds boxes are
// zero-filled on load and clipped on store by the hardware).
#pragma once

#include "../common/types.cuh"
#include "mbarrier.cuh"

namespace dg::ptx {

DG_DEVICE void tma_prefetch_descriptor(const TensorMap* desc) {
    asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<unsigned long long>(desc)) : "memory");
}

DG_DEVICE void tma_load_2d(void* smem_dst, const TensorMap* desc, unsigned long long* bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], "
        "[%2];" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1)
        : "memory");
}

// An L2 cache policy that marks lines as first to evict (for data read once, e.g. a weight streamed by a small-M
// GEMM), for the `.L2::cache_hint` forms below.
DG_DEVICE unsigned long long l2_policy_evict_first() {
    unsigned long long policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    return policy;
}

DG_DEVICE void tma_load_2d_hint(void* smem_dst, const TensorMap* desc, unsigned long long* bar, int c0, int c1,
                                unsigned long long policy) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint [%0], "
        "[%1, {%3, %4}], [%2], %5;" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "l"(policy)
        : "memory");
}

DG_DEVICE void tma_load_3d(void* smem_dst, const TensorMap* desc, unsigned long long* bar, int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
        "[%2];" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

DG_DEVICE void tma_load_3d_hint(void* smem_dst, const TensorMap* desc, unsigned long long* bar, int c0, int c1, int c2,
                                unsigned long long policy) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint [%0], "
        "[%1, {%3, %4, %5}], [%2], %6;" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2), "l"(policy)
        : "memory");
}

// Loads one box and writes it to the same shared-memory offset in every CTA named by `cta_mask`; each
// destination CTA's mbarrier (same offset) receives the transaction bytes.
DG_DEVICE void tma_load_2d_multicast(void* smem_dst, const TensorMap* desc, unsigned long long* bar, int c0, int c1,
                                     unsigned short cta_mask) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster "
        "[%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "h"(cta_mask)
        : "memory");
}

DG_DEVICE void tma_store_2d(const TensorMap* desc, const void* smem_src, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(
                     reinterpret_cast<unsigned long long>(desc)),
                 "r"(smem_addr(smem_src)), "r"(c0), "r"(c1)
                 : "memory");
}

// The same with an L2 cache policy (l2_policy_evict_first: output lines become the first victims, so a GEMM's
// streamed output does not displace its operands from the L2).
DG_DEVICE void tma_store_2d_hint(const TensorMap* desc, const void* smem_src, int c0, int c1,
                                 unsigned long long policy) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group.L2::cache_hint [%0, {%2, %3}], [%1], %4;" ::"l"(
                     reinterpret_cast<unsigned long long>(desc)),
                 "r"(smem_addr(smem_src)), "r"(c0), "r"(c1), "l"(policy)
                 : "memory");
}

// Element-wise `global += smem` (FP32 add) over one box.
DG_DEVICE void tma_reduce_add_2d(const TensorMap* desc, const void* smem_src, int c0, int c1) {
    asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3}], [%1];" ::"l"(
                     reinterpret_cast<unsigned long long>(desc)),
                 "r"(smem_addr(smem_src)), "r"(c0), "r"(c1)
                 : "memory");
}

DG_DEVICE void tma_store_commit() {
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Waits until at most kPending committed store groups still read shared memory (the smem may be reused).
template <int kPending>
DG_DEVICE void tma_store_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
}

// Waits until at most kPending committed store groups are incomplete (writes visible in global memory).
template <int kPending>
DG_DEVICE void tma_store_wait() {
    asm volatile("cp.async.bulk.wait_group %0;" ::"n"(kPending) : "memory");
}

}  // namespace dg::ptx
