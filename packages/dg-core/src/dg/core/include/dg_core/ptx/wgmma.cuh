// dg_core/ptx/wgmma.cuh -- warpgroup MMA plumbing (sm_90a): shared-memory matrix descriptors,
// fence / commit / wait, and the accumulator fence that keeps the compiler from moving register reads
// across an in-flight wgmma.
#pragma once

#include "../common/utils.cuh"
#include "mbarrier.cuh"
#include "wgmma_fp8.cuh"

namespace dg::ptx {

// Swizzle modes of a wgmma shared-memory descriptor (bits 62-63).
enum class SmemSwizzle : unsigned int { kNone = 0, k128B = 1, k64B = 2, k32B = 3 };

// Descriptor of a K-major tile whose rows are `swizzle bytes` wide (one swizzle atom per row group of 8).
// Fields: start address >> 4 (bits 0-13), leading byte offset >> 4 (16-29, unused for swizzled K-major),
// stride byte offset >> 4 (32-45: distance between 8-row groups), layout type (62-63).
// NOTE: advancing along K inside a 128-byte swizzle atom is done by adding the byte offset to the start
// address: the hardware applies the swizzle on absolute address bits, so the tile base must be
// 1024-byte aligned.
DG_DEVICE unsigned long long make_smem_desc_kmajor(const void* smem_ptr, unsigned int stride_bytes,
                                                   SmemSwizzle swizzle) {
    unsigned long long desc = 0;
    const unsigned int addr = smem_addr(smem_ptr);
    desc |= static_cast<unsigned long long>((addr >> 4) & 0x3FFFu);
    desc |= static_cast<unsigned long long>(1u) << 16;
    desc |= static_cast<unsigned long long>((stride_bytes >> 4) & 0x3FFFu) << 32;
    desc |= static_cast<unsigned long long>(static_cast<unsigned int>(swizzle)) << 62;
    return desc;
}

// Adds a byte offset to the start-address field of a descriptor (no carry into other fields for offsets
// inside one tile: shared addresses stay below 2^18, so the 14-bit field does not overflow).
// NOTE: a 32-bit add on the low word, the high word passed through: the compiler then emits one integer add
// per descriptor instead of a 64-bit add with carry, which sits between consecutive wgmma instructions.
DG_DEVICE unsigned long long smem_desc_advance(unsigned long long desc, unsigned int byte_offset) {
    const unsigned int lo = static_cast<unsigned int>(desc) + (byte_offset >> 4);
    return (desc & 0xFFFFFFFF00000000ull) | lo;
}

// A descriptor the compiler keeps in registers instead of rebuilding it from the shared-memory address at every
// use. NOTE: ptxas rematerialises descriptors made from a shared pointer inside hot loops (the address conversion,
// shift, mask and flag bits: ~7 uniform instructions per use); passing the value through an opaque move stops that.
DG_DEVICE unsigned long long smem_desc_pinned(unsigned long long desc) {
    unsigned int lo = static_cast<unsigned int>(desc), hi = static_cast<unsigned int>(desc >> 32);
    asm volatile("mov.b32 %0, %0;" : "+r"(lo));
    return (static_cast<unsigned long long>(hi) << 32) | lo;
}

DG_DEVICE void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

DG_DEVICE void wgmma_commit_group() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

template <int kPending>
DG_DEVICE void wgmma_wait_group() {
    static_assert(kPending >= 0 && kPending <= 7, "wgmma.wait_group takes 0..7");
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// Ties a register to the surrounding asm so the compiler neither reads it before the wgmma that writes it
// has been waited on nor hoists writes across the fence.
DG_DEVICE void accum_fence(float& r) {
    asm volatile("" : "+f"(r)::"memory");
}

template <unsigned int kCount>
DG_DEVICE void accum_fence_array(float* r) {
#pragma unroll
    for (unsigned int i = 0; i < kCount; ++i) accum_fence(r[i]);
}

}  // namespace dg::ptx
