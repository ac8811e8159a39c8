// Argument checks shared by the GEMM entry points. Every failure names the argument, what it got and what it
// needs, and (for scale factors) the dg.layout call that produces the required layout.
#pragma once

#include <string>

#include "../runtime/error.hpp"
#include "../runtime/tensor.hpp"

namespace dg::api {

inline std::string shape_str(const TensorView& t) {
    std::string s = "[";
    for (int i = 0; i < t.ndim; ++i) s += fmt::format("{}{}", i ? ", " : "", t.shape[i]);
    return s + "]";
}

inline std::string strides_str(const TensorView& t) {
    std::string s = "(";
    for (int i = 0; i < t.ndim; ++i) s += fmt::format("{}{}", i ? ", " : "", t.strides[i]);
    return s + ")";
}

inline int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
inline int64_t align_to(int64_t a, int64_t b) {
    return ceil_div(a, b) * b;
}

inline void check_cuda(const TensorView& t, const char* arg) {
    DG_CHECK_VALUE(t.device >= 0, "argument '{}' must be a CUDA tensor, got a tensor in host memory", arg);
}

inline void check_rank(const TensorView& t, int rank, const char* arg) {
    DG_CHECK_VALUE(t.ndim == rank, "argument '{}' must have {} dimensions, got shape {}", arg, rank, shape_str(t));
}

inline void check_dtype(const TensorView& t, DType want, const char* arg) {
    DG_CHECK_TYPE(t.dtype == want, "argument '{}' must have dtype torch.{}, got torch.{}", arg, dtype_name(want),
                  dtype_name(t.dtype));
}

inline void check_same_device(const TensorView& t, int device, const char* arg) {
    DG_CHECK_VALUE(t.device == device, "argument '{}' is on cuda:{} but the GEMM runs on cuda:{}", arg, t.device,
                   device);
}

// TMA needs a 16-byte aligned base and 16-byte multiples for every non-unit stride.
inline void check_tma_2d(const TensorView& t, const char* arg) {
    const int es = dtype_size(t.dtype);
    DG_CHECK_VALUE(reinterpret_cast<uintptr_t>(t.data) % 16 == 0,
                   "argument '{}' must start at a 16-byte aligned address (TMA); got {} (a slice at an odd offset?)",
                   arg, t.data);
    DG_CHECK_VALUE((t.stride(0) * es) % 16 == 0,
                   "argument '{}' has a row pitch of {} bytes; TMA needs a multiple of 16 bytes (shape {}, strides "
                   "{}): pad the inner dimension to a multiple of {} elements",
                   arg, t.stride(0) * es, shape_str(t), strides_str(t), 16 / es);
}

inline void check_k_major(const TensorView& t, const char* arg, const char* what) {
    DG_CHECK_VALUE(t.stride(-1) == 1,
                   "argument '{}' must be K-major (stride(-1) == 1) for {}; got strides {}. SM90 FP8 tensor cores "
                   "read both operands K-major: pass a K-major copy (e.g. x.t().contiguous() of the transposed "
                   "operand) or use the layout variant (nt/nn/tn/tt) that matches your memory",
                   arg, what, strides_str(t));
}

inline void check_row_major_out(const TensorView& t, const char* arg) {
    DG_CHECK_VALUE(t.stride(-1) == 1, "argument '{}' must be row-major (stride(-1) == 1), got strides {}", arg,
                   strides_str(t));
}

// A per-row 1x128 scale tensor in the MN-major TMA-aligned layout: logical [mn, sk], strides (1, align(mn, 4)).
inline void check_mn_major_sf(const TensorView& sf, int64_t mn, int64_t sk, const char* arg) {
    check_dtype(sf, DType::F32, arg);
    check_rank(sf, 2, arg);
    DG_CHECK_VALUE(sf.size(0) == mn && sf.size(1) == sk, "argument '{}' must have shape [{}, {}], got {}", arg, mn, sk,
                   shape_str(sf));
    const int64_t pitch = align_to(mn, 4);
    const bool ok = mn == 0 || (sf.stride(0) == 1 && (sk == 1 || sf.stride(1) == pitch));
    DG_CHECK_VALUE(ok,
                   "argument '{}' must be MN-major and TMA-aligned: strides (1, {}) for shape [{}, {}], got strides "
                   "{}. Produce it with dg.layout.get_mn_major_tma_aligned_tensor({}) (or "
                   "dg.layout.transform_sf_into_required_layout)",
                   arg, pitch, mn, sk, strides_str(sf), arg);
    DG_CHECK_VALUE(reinterpret_cast<uintptr_t>(sf.data) % 16 == 0,
                   "argument '{}' must start at a 16-byte aligned address (TMA)", arg);
}

// A 128x128 block scale tensor, row-major contiguous [ceil(mn/128), sk].
inline void check_block_sf(const TensorView& sf, int64_t mn, int64_t sk, const char* arg) {
    check_dtype(sf, DType::F32, arg);
    check_rank(sf, 2, arg);
    const int64_t rows = ceil_div(mn, 128);
    DG_CHECK_VALUE(sf.size(0) == rows && sf.size(1) == sk,
                   "argument '{}' must have shape [{}, {}] (one scale per 128x128 block), got {}", arg, rows, sk,
                   shape_str(sf));
    DG_CHECK_VALUE(sf.stride(1) == 1 && (rows == 1 || sf.stride(0) == sk),
                   "argument '{}' must be contiguous (row-major [{}, {}]), got strides {}. Use "
                   "dg.layout.per_block_cast_to_fp8 or call .contiguous() on it",
                   arg, rows, sk, strides_str(sf));
}

}  // namespace dg::api
