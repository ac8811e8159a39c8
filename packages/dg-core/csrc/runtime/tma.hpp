// TMA descriptor (CUtensorMap) builders. Contracts are checked here so that a bad layout becomes a readable
// ValueError instead of CUDA_ERROR_INVALID_VALUE from the driver.
#pragma once

#include <cstdint>

#include "driver.hpp"

namespace dg {

inline CUtensorMapSwizzle swizzle_mode(int swizzle_bytes) {
    switch (swizzle_bytes) {
        case 0:
            return CU_TENSOR_MAP_SWIZZLE_NONE;
        case 32:
            return CU_TENSOR_MAP_SWIZZLE_32B;
        case 64:
            return CU_TENSOR_MAP_SWIZZLE_64B;
        case 128:
            return CU_TENSOR_MAP_SWIZZLE_128B;
        default:
            throw ValueError(fmt::format("swizzle must be 0, 32, 64 or 128 bytes, got {}", swizzle_bytes));
    }
}

inline int tma_element_size(CUtensorMapDataType t) {
    switch (t) {
        case CU_TENSOR_MAP_DATA_TYPE_UINT8:
            return 1;
        case CU_TENSOR_MAP_DATA_TYPE_UINT16:
        case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
        case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
            return 2;
        case CU_TENSOR_MAP_DATA_TYPE_UINT32:
        case CU_TENSOR_MAP_DATA_TYPE_INT32:
        case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
            return 4;
        case CU_TENSOR_MAP_DATA_TYPE_UINT64:
        case CU_TENSOR_MAP_DATA_TYPE_INT64:
        case CU_TENSOR_MAP_DATA_TYPE_FLOAT64:
            return 8;
        default:
            throw ValueError(fmt::format("unsupported TMA data type {}", static_cast<int>(t)));
    }
}

// dims: innermost first. strides_bytes: rank-1 entries, the byte stride of dims 1..rank-1. box: innermost first.
inline CUtensorMap make_tensor_map(const void* base, CUtensorMapDataType dtype, int rank, const uint64_t* dims,
                                   const uint64_t* strides_bytes, const uint32_t* box, int swizzle_bytes) {
    DG_CHECK_VALUE(rank >= 1 && rank <= 5, "TMA rank must be 1..5, got {}", rank);
    DG_CHECK_VALUE(reinterpret_cast<uintptr_t>(base) % 16 == 0, "TMA base address {} is not 16-byte aligned", base);
    const int esize = tma_element_size(dtype);
    for (int i = 0; i < rank; ++i) {
        DG_CHECK_VALUE(dims[i] >= 1 && dims[i] <= (uint64_t(1) << 32), "TMA dim {} = {} is out of [1, 2^32]", i,
                       dims[i]);
        DG_CHECK_VALUE(box[i] >= 1 && box[i] <= 256, "TMA box dim {} = {} is out of [1, 256]", i, box[i]);
    }
    for (int i = 0; i + 1 < rank; ++i) {
        DG_CHECK_VALUE(strides_bytes[i] % 16 == 0 && strides_bytes[i] < (uint64_t(1) << 40),
                       "TMA stride of dim {} = {} bytes must be a multiple of 16 and < 2^40", i + 1, strides_bytes[i]);
    }
    if (swizzle_bytes != 0) {
        DG_CHECK_VALUE(box[0] * esize <= static_cast<uint32_t>(swizzle_bytes),
                       "TMA inner box of {} bytes exceeds the {}-byte swizzle span", box[0] * esize, swizzle_bytes);
    } else {
        DG_CHECK_VALUE((box[0] * esize) % 16 == 0, "TMA inner box of {} bytes must be a multiple of 16",
                       box[0] * esize);
    }
    cuuint32_t elem_strides[5] = {1, 1, 1, 1, 1};
    CUtensorMap map{};
    DG_CU_CHECK(DG_CU(cuTensorMapEncodeTiled)(
        &map, dtype, static_cast<cuuint32_t>(rank), const_cast<void*>(base), reinterpret_cast<const cuuint64_t*>(dims),
        reinterpret_cast<const cuuint64_t*>(strides_bytes), reinterpret_cast<const cuuint32_t*>(box), elem_strides,
        CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle_mode(swizzle_bytes), CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    return map;
}

// A 2-D map over a row-major matrix: `inner` contiguous elements per row, `outer` rows, `outer_stride_bytes` pitch.
inline CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner, uint64_t outer,
                               uint64_t outer_stride_bytes, uint32_t box_inner, uint32_t box_outer, int swizzle_bytes) {
    const uint64_t dims[2] = {inner, outer};
    const uint64_t strides[1] = {outer_stride_bytes};
    const uint32_t box[2] = {box_inner, box_outer};
    return make_tensor_map(base, dtype, 2, dims, strides, box, swizzle_bytes);
}

// A 3-D map: dims {inner, mid, outer} with the byte strides of mid and outer.
inline CUtensorMap make_tma_3d(const void* base, CUtensorMapDataType dtype, uint64_t inner, uint64_t mid,
                               uint64_t outer, uint64_t mid_stride_bytes, uint64_t outer_stride_bytes,
                               uint32_t box_inner, uint32_t box_mid, uint32_t box_outer, int swizzle_bytes) {
    const uint64_t dims[3] = {inner, mid, outer};
    const uint64_t strides[2] = {mid_stride_bytes, outer_stride_bytes};
    const uint32_t box[3] = {box_inner, box_mid, box_outer};
    return make_tensor_map(base, dtype, 3, dims, strides, box, swizzle_bytes);
}

}  // namespace dg
