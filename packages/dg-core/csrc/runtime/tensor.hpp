// A framework-free view of a tensor, filled by the bindings from a DLPack array (nb::ndarray).
#pragma once

#include <cstdint>
#include <string_view>

namespace dg {

enum class DType : int { F8E4M3, BF16, F16, F32, I32, I64, U8, Other };

inline std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::F8E4M3:
            return "float8_e4m3fn";
        case DType::BF16:
            return "bfloat16";
        case DType::F16:
            return "float16";
        case DType::F32:
            return "float32";
        case DType::I32:
            return "int32";
        case DType::I64:
            return "int64";
        case DType::U8:
            return "uint8";
        default:
            return "an unsupported dtype";
    }
}

inline int dtype_size(DType t) {
    switch (t) {
        case DType::F8E4M3:
        case DType::U8:
            return 1;
        case DType::BF16:
        case DType::F16:
            return 2;
        case DType::F32:
        case DType::I32:
            return 4;
        case DType::I64:
            return 8;
        default:
            return 0;
    }
}

// Strides are in elements, as in torch. `device` is the CUDA ordinal, or -1 for host memory.
struct TensorView {
    void* data = nullptr;
    DType dtype = DType::Other;
    int ndim = 0;
    int64_t shape[4] = {0, 0, 0, 0};
    int64_t strides[4] = {0, 0, 0, 0};
    int device = -1;

    int64_t size(int i) const { return shape[i < 0 ? i + ndim : i]; }
    int64_t stride(int i) const { return strides[i < 0 ? i + ndim : i]; }
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < ndim; ++i) n *= shape[i];
        return n;
    }
};

}  // namespace dg
