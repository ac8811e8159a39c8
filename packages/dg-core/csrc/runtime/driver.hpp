// The CUDA driver API, loaded at run time.
//
// NOTE: dg.core._C does not link against libcuda: a machine without a driver (a build box, CI) can still import
// dg.core, compile kernels and run the CPU tests. The first call that needs the driver dlopen()s libcuda.so.1
// and resolves every entry point through cuGetProcAddress, so versioned symbols (_v2, ...) match cuda.h.
#pragma once

#include <cuda.h>

#include <mutex>
#include <string>

#include <dlfcn.h>

#include "error.hpp"

namespace dg::driver {

#define DG_DRIVER_FUNCTIONS(X)  \
    X(cuInit)                   \
    X(cuGetErrorName)           \
    X(cuGetErrorString)         \
    X(cuDriverGetVersion)       \
    X(cuDeviceGet)              \
    X(cuDeviceGetCount)         \
    X(cuDeviceGetAttribute)     \
    X(cuDeviceGetName)          \
    X(cuCtxGetCurrent)          \
    X(cuCtxSetCurrent)          \
    X(cuCtxGetDevice)           \
    X(cuCtxSynchronize)         \
    X(cuDevicePrimaryCtxRetain) \
    X(cuModuleLoadData)         \
    X(cuModuleUnload)           \
    X(cuModuleGetFunction)      \
    X(cuFuncSetAttribute)       \
    X(cuFuncGetAttribute)       \
    X(cuLaunchKernelEx)         \
    X(cuTensorMapEncodeTiled)   \
    X(cuMemcpy2DAsync)          \
    X(cuMemsetD32Async)         \
    X(cuMemsetD2D32Async)       \
    X(cuStreamIsCapturing)      \
    X(cuStreamGetId)            \
    X(cuMemAllocAsync)          \
    X(cuMemFreeAsync)           \
    X(cuOccupancyMaxActiveClusters)

struct Api {
#define DG_DECLARE_PFN(name) decltype(&::name) name = nullptr;
    DG_DRIVER_FUNCTIONS(DG_DECLARE_PFN)
#undef DG_DECLARE_PFN
};

inline constexpr int kDriverAbiVersion = 12000;

namespace detail {

inline std::string& load_error() {
    static std::string error;
    return error;
}

inline Api* load_api() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        load_error() = fmt::format("cannot load the CUDA driver (libcuda.so.1): {}", dlerror());
        return nullptr;
    }
    using GetProc = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
    auto get_proc = reinterpret_cast<GetProc>(dlsym(lib, "cuGetProcAddress_v2"));
    if (get_proc == nullptr) {
        load_error() = "the CUDA driver is too old: cuGetProcAddress_v2 is missing (need a driver for CUDA >= 12)";
        return nullptr;
    }
    auto* api = new Api();
    bool ok = true;
    auto resolve = [&](const char* name, void** slot) {
        CUdriverProcAddressQueryResult status{};
        // NOTE: the version asked for selects the ABI of the returned entry point. CUDA 13 added
        // cuCtxGetDevice_v2(device, ctx) under the same base name, while cuda.h keeps declaring the 1-argument
        // form; asking for the CUDA 12.0 ABI returns exactly the signatures declared above for every entry point
        // used here (cuMemcpy2DAsync resolves to its _v2, as the header maps it).
        if (get_proc(name, slot, kDriverAbiVersion, CU_GET_PROC_ADDRESS_DEFAULT, &status) != CUDA_SUCCESS ||
            *slot == nullptr) {
            load_error() = fmt::format("the CUDA driver lacks the entry point {}", name);
            ok = false;
        }
    };
#define DG_RESOLVE_PFN(name) resolve(#name, reinterpret_cast<void**>(&api->name));
    DG_DRIVER_FUNCTIONS(DG_RESOLVE_PFN)
#undef DG_RESOLVE_PFN
    if (!ok) return nullptr;
    if (CUresult r = api->cuInit(0); r != CUDA_SUCCESS) {
        const char* name = nullptr;
        api->cuGetErrorName(r, &name);
        load_error() = fmt::format("cuInit failed: {}", name ? name : "unknown error");
        return nullptr;
    }
    return api;
}

}  // namespace detail

// True if a usable driver is present (loads it on first call).
inline const Api* try_api() {
    static Api* api = detail::load_api();
    return api;
}

inline const Api& api() {
    const Api* a = try_api();
    if (a == nullptr) [[unlikely]]
        throw CudaError(detail::load_error());
    return *a;
}

inline std::string error_text(CUresult r) {
    const char* name = nullptr;
    const char* text = nullptr;
    if (const Api* a = try_api()) {
        a->cuGetErrorName(r, &name);
        a->cuGetErrorString(r, &text);
    }
    return fmt::format("{} ({})", name ? name : "CUDA_ERROR_UNKNOWN", text ? text : "no description");
}

}  // namespace dg::driver

// Calls a driver function and throws dg::CudaError naming the call and the driver's error.
#define DG_CU_CHECK(expr)                                                                                   \
    do {                                                                                                    \
        CUresult dg_cu_result_ = (expr);                                                                    \
        if (dg_cu_result_ != CUDA_SUCCESS) [[unlikely]]                                                     \
            throw ::dg::CudaError(::fmt::format("{}: {}", #expr, ::dg::driver::error_text(dg_cu_result_))); \
    } while (0)

// Shorthand for a driver entry point: DG_CU(cuLaunchKernelEx)(...)
#define DG_CU(name) (::dg::driver::api().name)
