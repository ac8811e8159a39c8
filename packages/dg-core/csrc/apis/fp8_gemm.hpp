// fp8_gemm_nt / fp8_gemm_nt_skip_head_mid: the whole per-call host path (argument checks, recipe resolution,
// dispatch to the SM90 launchers). Layout variants (nn/tn/tt) are view wrappers in Python.
//
// NOTE: every check runs before anything is enqueued, so a bad call loses nothing and leaves `d` untouched.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/tuple.h>

#include <array>
#include <optional>

#include "../bindings/tensor_arg.hpp"
#include "../kernels/sm90_fp8_gemm_1d1d.hpp"
#include "../kernels/sm90_fp8_gemm_1d2d.hpp"
#include "../runtime/device.hpp"
#include "checks.hpp"

namespace dg::api {

namespace nb = nanobind;

struct ScaledOperand {
    TensorView data, sf;
};

inline ScaledOperand scaled_operand(nb::handle pair, const char* arg, const char* data_name, const char* sf_name) {
    const bool is_pair = (PyTuple_Check(pair.ptr()) || PyList_Check(pair.ptr())) && PySequence_Size(pair.ptr()) == 2;
    DG_CHECK_TYPE(is_pair, "argument '{}' must be a (tensor, scale factor) pair, got {}", arg,
                  nb::type_name(pair.type()).c_str());
    nb::object t0 = nb::steal(PySequence_GetItem(pair.ptr(), 0));
    nb::object t1 = nb::steal(PySequence_GetItem(pair.ptr(), 1));
    return {bind::tensor_arg(t0, data_name), bind::tensor_arg(t1, sf_name)};
}

using Recipe = std::optional<std::tuple<int, int, int>>;

struct Fp8Call {
    ScaledOperand a, b;
    TensorView d;
    std::optional<TensorView> c;
    int64_t m = 0, n = 0, k = 0;
    int gran_n = 128;  // 128 -> 1D2D, 1 -> 1D1D
    int device = 0;
};

// Checks shared by fp8_gemm_nt and its skip-head-mid form; returns the resolved problem.
// `head_splits` (fp8_gemm_nt_skip_head_mid): D has N + (N / (left + right)) * mid columns instead of N.
inline Fp8Call check_fp8_call(nb::handle a, nb::handle b, nb::handle d, nb::handle c, const Recipe& recipe,
                              const std::tuple<int, int, int>* head_splits = nullptr) {
    Fp8Call call;
    call.a = scaled_operand(a, "a", "a[0]", "a[1]");
    call.b = scaled_operand(b, "b", "b[0]", "b[1]");
    call.d = bind::tensor_arg(d, "d");
    const TensorView &A = call.a.data, &B = call.b.data, &D = call.d;
    call.device = A.device;
    check_rank(A, 2, "a[0]");
    check_rank(B, 2, "b[0]");
    check_rank(D, 2, "d");
    check_dtype(A, DType::F8E4M3, "a[0]");
    check_dtype(B, DType::F8E4M3, "b[0]");
    DG_CHECK_TYPE(D.dtype == DType::BF16 || D.dtype == DType::F32,
                  "argument 'd' must have dtype torch.bfloat16 or torch.float32, got torch.{}", dtype_name(D.dtype));
    call.m = A.size(0);
    call.k = A.size(1);
    call.n = B.size(0);
    DG_CHECK_VALUE(B.size(1) == call.k, "a[0] is [M, K] = {} but b[0] is [N, K] = {}: K differs", shape_str(A),
                   shape_str(B));
    int64_t d_cols = call.n;
    if (head_splits != nullptr) {
        auto [left, mid, right] = *head_splits;
        DG_CHECK_VALUE(call.n % (left + right) == 0, "N = {} (rows of b[0]) must be a multiple of left + right = {}",
                       call.n, left + right);
        d_cols = call.n + call.n / (left + right) * mid;
    }
    DG_CHECK_VALUE(D.size(0) == call.m && D.size(1) == d_cols, "argument 'd' must have shape [{}, {}], got {}", call.m,
                   d_cols, shape_str(D));
    constexpr int64_t kMax = (int64_t(1) << 31) - 1;
    DG_CHECK_VALUE(call.m <= kMax && call.n <= kMax && call.k <= kMax, "M, N and K must each be below 2^31");
    // NOTE: the 1D2D kernel addresses SFB with 32-bit element offsets.
    DG_CHECK_VALUE((call.n + 127) / 128 * ((call.k + 127) / 128) < (int64_t(1) << 32),
                   "ceil(N/128) * ceil(K/128) must be below 2^32 (N={}, K={})", call.n, call.k);
    check_k_major(A, "a[0]", "the SM90 FP8 GEMM");
    check_k_major(B, "b[0]", "the SM90 FP8 GEMM");
    check_row_major_out(D, "d");

    // Recipe: (1, 128, 128) = 1D2D (BF16 out); (1, 1, 128) = 1D1D (FP32 out, D = C + A B^T).
    auto [rm, rn, rk] = recipe.value_or(std::tuple{1, 128, 128});
    DG_CHECK_VALUE(rm == 1 && rk == 128 && (rn == 128 || rn == 1),
                   "argument 'recipe' must be (1, 128, 128) or (1, 1, 128), got ({}, {}, {})", rm, rn, rk);
    call.gran_n = rn;

    if (!c.is_none()) {
        call.c = bind::tensor_arg(c, "c");
        check_rank(*call.c, 2, "c");
        check_dtype(*call.c, DType::F32, "c");
        check_row_major_out(*call.c, "c");
        DG_CHECK_VALUE(call.c->size(0) == call.m && call.c->size(1) == call.n,
                       "argument 'c' must have shape [{}, {}] like d, got {}", call.m, call.n, shape_str(*call.c));
    }
    return call;
}

// Device checks come after the structural ones, so that every layout error is reported the same way whatever
// the device (and the CPU test suite reaches each of them).
inline void check_devices(const Fp8Call& call) {
    check_cuda(call.a.data, "a[0]");
    const std::pair<const TensorView*, const char*> others[] = {
        {&call.b.data, "b[0]"}, {&call.d, "d"}, {&call.a.sf, "a[1]"}, {&call.b.sf, "b[1]"}};
    for (auto [t, name] : others) {
        check_cuda(*t, name);
        check_same_device(*t, call.device, name);
    }
    if (call.c) {
        check_cuda(*call.c, "c");
        check_same_device(*call.c, call.device, "c");
    }
}

inline void check_sm90(int device) {
    const DeviceProps& p = device_props(device);
    DG_CHECK_VALUE(p.major == 9,
                   "dg's FP8 GEMM kernels run on SM90 (Hopper) today; cuda:{} is {} ({}). SM100 kernels are not "
                   "available yet",
                   device, p.name, p.arch());
    DG_CHECK_VALUE(get_tc_util() == 100,
                   "set_tc_util({}) is active: FP8 GEMMs do not support a tensor-core utilisation limit; call "
                   "set_tc_util(0) first",
                   get_tc_util());
}

// Scale-factor layouts, devices, TMA alignment and the architecture. Returns false for an empty problem (M or N is
// 0: nothing to launch, after every check that does not depend on the size).
inline bool check_scales_and_alignment(Fp8Call& call) {
    DG_CHECK_VALUE(call.k > 0, "K must be > 0 (a[0] is {})", shape_str(call.a.data));
    const int64_t sk = ceil_div(call.k, 128);
    check_mn_major_sf(call.a.sf, call.m, sk, "a[1]");
    if (call.gran_n == 128)
        check_block_sf(call.b.sf, call.n, sk, "b[1]");
    else
        check_mn_major_sf(call.b.sf, call.n, sk, "b[1]");
    check_devices(call);
    if (call.m == 0 || call.n == 0) return false;
    // NOTE: with a single K block the column pitch of an MN-major scale tensor never matters; normalise it so the
    // TMA descriptor gets a 16-byte multiple.
    if (sk == 1) {
        call.a.sf.strides[1] = align_to(call.m, 4);
        if (call.gran_n == 1) call.b.sf.strides[1] = align_to(call.n, 4);
    }
    check_tma_2d(call.a.data, "a[0]");
    check_tma_2d(call.b.data, "b[0]");
    check_tma_2d(call.d, "d");
    check_sm90(call.device);
    return true;
}

// The bytes spanned by a row-major [rows, cols] view, for overlap checks.
inline std::pair<uintptr_t, uintptr_t> span(const TensorView& t) {
    const auto lo = reinterpret_cast<uintptr_t>(t.data);
    const auto bytes = ((t.size(0) - 1) * t.stride(0) + t.size(1)) * dtype_size(t.dtype);
    return {lo, lo + static_cast<uintptr_t>(bytes)};
}

inline void fp8_gemm_nt(nb::handle a, nb::handle b, nb::handle d, nb::handle c, const Recipe& recipe,
                        const std::string& compiled_dims, bool disable_ue8m0_cast) {
    (void)compiled_dims;       // NOTE: accepted for interface compatibility; our kernels take M, N, K at run time
    (void)disable_ue8m0_cast;  // NOTE: no effect on SM90 (FP32 scales are used as they are)
    Fp8Call call = check_fp8_call(a, b, d, c, recipe);
    if (call.gran_n == 128) {
        DG_CHECK_VALUE(!call.c,
                       "argument 'c' is not supported with recipe (1, 128, 128) (BF16 output); use recipe "
                       "(1, 1, 128) with an FP32 'd' to accumulate");
        DG_CHECK_TYPE(call.d.dtype == DType::BF16,
                      "recipe (1, 128, 128) writes a torch.bfloat16 'd'; for torch.float32 output use recipe "
                      "(1, 1, 128) with per-row scales on B");
    } else {
        DG_CHECK_TYPE(call.d.dtype == DType::F32, "recipe (1, 1, 128) accumulates into a torch.float32 'd', got {}",
                      dtype_name(call.d.dtype));
    }
    if (!check_scales_and_alignment(call)) return;
    if (call.c) {
        const bool same = call.c->data == call.d.data && call.c->stride(0) == call.d.stride(0);
        if (!same) {
            auto [c0, c1] = span(*call.c);
            auto [d0, d1] = span(call.d);
            DG_CHECK_VALUE(c1 <= d0 || d1 <= c0, "argument 'c' must be 'd' itself or must not overlap 'd'");
        }
    }

    ContextGuard context(call.device);
    CUstream stream = bind::current_stream(d, call.device);
    if (call.gran_n == 128) {
        kernels::sm90_fp8_gemm_1d2d(call.a.data, call.a.sf, call.b.data, call.b.sf, call.d, call.m, call.n, call.k,
                                    stream);
    } else {
        // D = C + A B^T: the kernel accumulates into D, so D first holds C (copied when distinct) or zeros.
        const TensorView& D = call.d;
        if (!call.c) {
            DG_CU_CHECK(DG_CU(cuMemsetD2D32Async)(reinterpret_cast<CUdeviceptr>(D.data), D.stride(0) * 4, 0,
                                                  static_cast<size_t>(call.n), static_cast<size_t>(call.m), stream));
        } else if (call.c->data != D.data) {
            CUDA_MEMCPY2D copy{};
            copy.srcMemoryType = CU_MEMORYTYPE_DEVICE;
            copy.srcDevice = reinterpret_cast<CUdeviceptr>(call.c->data);
            copy.srcPitch = call.c->stride(0) * 4;
            copy.dstMemoryType = CU_MEMORYTYPE_DEVICE;
            copy.dstDevice = reinterpret_cast<CUdeviceptr>(D.data);
            copy.dstPitch = D.stride(0) * 4;
            copy.WidthInBytes = call.n * 4;
            copy.Height = call.m;
            DG_CU_CHECK(DG_CU(cuMemcpy2DAsync)(&copy, stream));
        }
        kernels::sm90_fp8_gemm_1d1d(call.a.data, call.a.sf, call.b.data, call.b.sf, D, call.m, call.n, call.k, stream);
    }
}

inline void fp8_gemm_nt_skip_head_mid(nb::handle a, nb::handle b, nb::handle d, std::tuple<int, int, int> head_splits,
                                      const Recipe& recipe, const std::string& compiled_dims, bool disable_ue8m0_cast) {
    (void)compiled_dims;
    (void)disable_ue8m0_cast;
    auto [left, mid, right] = head_splits;
    DG_CHECK_VALUE(left >= 0 && mid >= 0 && right >= 0 && left + right > 0,
                   "argument 'head_splits' must be (left, mid, right) with non-negative entries and left + right > "
                   "0, got ({}, {}, {})",
                   left, mid, right);
    DG_CHECK_VALUE(left % 64 == 0 && mid % 64 == 0 && right % 64 == 0,
                   "argument 'head_splits' entries must be multiples of 64 (the epilogue's store width), got ({}, {}, "
                   "{})",
                   left, mid, right);
    Fp8Call call = check_fp8_call(a, b, d, nb::none(), recipe, &head_splits);
    DG_CHECK_VALUE(call.gran_n == 128, "fp8_gemm_nt_skip_head_mid on SM90 supports recipe (1, 128, 128) only");
    DG_CHECK_TYPE(call.d.dtype == DType::BF16, "fp8_gemm_nt_skip_head_mid writes a torch.bfloat16 'd', got {}",
                  dtype_name(call.d.dtype));
    if (!check_scales_and_alignment(call)) return;
    ContextGuard context(call.device);
    CUstream stream = bind::current_stream(d, call.device);
    kernels::sm90_fp8_gemm_1d2d_skip_head_mid(call.a.data, call.a.sf, call.b.data, call.b.sf, call.d, call.m, call.n,
                                              call.k, left, mid, right, stream);
}

// Compiles (into the disk cache) the kernel that fp8_gemm_nt would use for (M, N, K) on an `arch` device with
// `num_sms` SMs, without a GPU. Returns the instantiation. Used by `python -m dg precompile`.
inline std::string precompile_fp8_gemm(int64_t m, int64_t n, int64_t k, int gran_n, const std::string& arch,
                                       int num_sms) {
    DG_CHECK_VALUE(arch == "sm_90a", "precompile: dg's FP8 GEMM kernels target sm_90a today, got '{}'", arch);
    DG_CHECK_VALUE(gran_n == 128 || gran_n == 1, "precompile: gran_n must be 128 or 1, got {}", gran_n);
    const auto kind = gran_n == 128 ? heuristics::Sm90Fp8Kind::k1D2D : heuristics::Sm90Fp8Kind::k1D1D;
    const std::string why = kernels::sm90_fp8_can_implement(kind, m, n, k, 0, 0, 0);
    DG_CHECK_VALUE(why.empty(), "precompile: {}", why);
    // NOTE: without a device, plan for a full H100 SXM (132 SMs, 227 KiB of shared memory per block) unless told.
    constexpr int kSm90SmemOptin = 232448;
    heuristics::Sm90Fp8Config cfg =
        heuristics::choose_sm90_fp8_config(kind, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                           num_sms > 0 ? num_sms : 132, kSm90SmemOptin);
    cfg.group_m = kernels::kSm90Fp8GroupM;
    KernelSpec spec;
    spec.name = kernels::sm90_fp8_stem(kind);
    spec.include = fmt::format("dg_core/impls/{}.cuh", spec.name);
    spec.instance = kernels::sm90_fp8_instance(kind, cfg);
    spec.arch = arch;
    get_kernel(spec);
    return spec.instance;
}

inline void register_fp8_gemm(nb::module_& m) {
    m.def(
        "precompile_fp8_gemm",
        [](int64_t m_, int64_t n, int64_t k, int gran_n, const std::string& arch, int num_sms) {
            nb::gil_scoped_release release;
            return precompile_fp8_gemm(m_, n, k, gran_n, arch, num_sms);
        },
        nb::arg("m"), nb::arg("n"), nb::arg("k"), nb::arg("gran_n"), nb::arg("arch"), nb::arg("num_sms") = 0);
    using namespace nb::literals;
    m.def("fp8_gemm_nt", &fp8_gemm_nt, "a"_a, "b"_a, "d"_a, "c"_a.none() = nb::none(), "recipe"_a.none() = nb::none(),
          "compiled_dims"_a = "nk", "disable_ue8m0_cast"_a = false);
    m.def("fp8_gemm_nt_skip_head_mid", &fp8_gemm_nt_skip_head_mid, "a"_a, "b"_a, "d"_a, "head_splits"_a,
          "recipe"_a.none() = nb::none(), "compiled_dims"_a = "nk", "disable_ue8m0_cast"_a = false);
}

}  // namespace dg::api
