// dg_core/ptx/smem.cuh -- shared-memory stores used by epilogues (plain vector stores and stmatrix).
#pragma once

#include "mbarrier.cuh"

namespace dg::ptx {

DG_DEVICE void st_shared_b32(unsigned int addr, unsigned int v) {
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(v) : "memory");
}

DG_DEVICE void st_shared_v2_f32(unsigned int addr, float x, float y) {
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(x), "f"(y) : "memory");
}

// stmatrix x4: each of the four 8x8 b16 matrices takes one row address per lane from lanes 8i..8i+7.
DG_DEVICE void stmatrix_x4(unsigned int addr, unsigned int r0, unsigned int r1, unsigned int r2, unsigned int r3) {
    asm volatile("stmatrix.sync.aligned.x4.m8n8.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3)
                 : "memory");
}

DG_DEVICE void stmatrix_x2(unsigned int addr, unsigned int r0, unsigned int r1) {
    asm volatile("stmatrix.sync.aligned.x2.m8n8.shared.b16 [%0], {%1, %2};" ::"r"(addr), "r"(r0), "r"(r1) : "memory");
}

DG_DEVICE float ld_shared_f32(const float* p) {
    float v;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(smem_addr(p)));
    return v;
}

}  // namespace dg::ptx
