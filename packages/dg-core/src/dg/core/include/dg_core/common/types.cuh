// dg_core/common/types.cuh -- element types and the by-value TMA descriptor type used by kernels.
//
// Kernels take `const __grid_constant__ dg::TensorMap` parameters. The host builds a driver
// `CUtensorMap` (128 bytes, 64-byte aligned) and passes it by value; both types have the same size and
// alignment (checked on the host side), so device code does not need <cuda.h>.
#pragma once

#include <cuda/std/cstdint>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace dg {

struct alignas(64) TensorMap {
    unsigned long long opaque[16];
};
static_assert(sizeof(TensorMap) == 128, "TensorMap must match CUtensorMap (128 bytes)");

using fp8_e4m3 = __nv_fp8_e4m3;
using bf16 = __nv_bfloat16;

}  // namespace dg
