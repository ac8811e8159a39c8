// Device properties, cached per device ordinal, and the process-wide SM-count / tensor-core-utilisation knobs.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "driver.hpp"

namespace dg {

struct DeviceProps {
    int ordinal = 0;
    int major = 0, minor = 0;
    int sm_count = 0;
    int smem_optin_per_block = 0;  // bytes a block may use after cuFuncSetAttribute
    int l2_bytes = 0;
    std::string name;

    // The JIT target: wgmma/TMA kernels need the arch-specific ("a") variants.
    std::string arch() const {
        if (major == 10 && minor == 1) return "sm_101a";
        return fmt::format("sm_{}{}a", major, minor);
    }
};

inline constexpr int kMaxDevices = 64;

// Makes sure a context of device `ordinal` is current on this thread (torch's primary context when torch has
// initialised the device; otherwise the primary context is retained here) and returns it.
inline CUcontext ensure_context(int ordinal) {
    CUcontext ctx = nullptr;
    DG_CU_CHECK(DG_CU(cuCtxGetCurrent)(&ctx));
    if (ctx != nullptr) {
        CUdevice dev = 0;
        DG_CU_CHECK(DG_CU(cuCtxGetDevice)(&dev));
        if (dev == ordinal) return ctx;
    }
    static std::array<std::atomic<CUcontext>, kMaxDevices> primary{};
    DG_CHECK_VALUE(ordinal >= 0 && ordinal < kMaxDevices, "device ordinal {} is out of range", ordinal);
    CUcontext pctx = primary[ordinal].load();
    if (pctx == nullptr) {
        CUdevice dev = 0;
        DG_CU_CHECK(DG_CU(cuDeviceGet)(&dev, ordinal));
        DG_CU_CHECK(DG_CU(cuDevicePrimaryCtxRetain)(&pctx, dev));
        primary[ordinal].store(pctx);
    }
    DG_CU_CHECK(DG_CU(cuCtxSetCurrent)(pctx));
    return pctx;
}

// Makes device `ordinal`'s context current for the scope and restores the caller's context afterwards, so that a
// call on a tensor of another GPU never changes which device torch (the runtime API) considers current.
class ContextGuard {
public:
    explicit ContextGuard(int ordinal) {
        DG_CU_CHECK(DG_CU(cuCtxGetCurrent)(&previous_));
        CUcontext now = ensure_context(ordinal);
        restore_ = previous_ != nullptr && previous_ != now;
    }
    ~ContextGuard() {
        if (restore_) DG_CU(cuCtxSetCurrent)(previous_);
    }
    ContextGuard(const ContextGuard&) = delete;
    ContextGuard& operator=(const ContextGuard&) = delete;

private:
    CUcontext previous_ = nullptr;
    bool restore_ = false;
};

inline int current_ordinal() {
    CUcontext ctx = nullptr;
    DG_CU_CHECK(DG_CU(cuCtxGetCurrent)(&ctx));
    if (ctx == nullptr) return 0;
    CUdevice dev = 0;
    DG_CU_CHECK(DG_CU(cuCtxGetDevice)(&dev));
    return static_cast<int>(dev);
}

inline const DeviceProps& device_props(int ordinal) {
    static std::array<std::atomic<DeviceProps*>, kMaxDevices> cache{};
    static std::mutex mutex;
    DG_CHECK_VALUE(ordinal >= 0 && ordinal < kMaxDevices, "device ordinal {} is out of range", ordinal);
    if (DeviceProps* p = cache[ordinal].load(std::memory_order_acquire)) [[likely]]
        return *p;
    std::lock_guard lock(mutex);
    if (DeviceProps* p = cache[ordinal].load()) return *p;
    int count = 0;
    DG_CU_CHECK(DG_CU(cuDeviceGetCount)(&count));
    DG_CHECK_VALUE(ordinal < count, "CUDA device {} does not exist ({} device(s) present)", ordinal, count);
    CUdevice dev = 0;
    DG_CU_CHECK(DG_CU(cuDeviceGet)(&dev, ordinal));
    auto props = std::make_unique<DeviceProps>();
    props->ordinal = ordinal;
    auto attr = [&](CUdevice_attribute a) {
        int v = 0;
        DG_CU_CHECK(DG_CU(cuDeviceGetAttribute)(&v, a, dev));
        return v;
    };
    props->major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    props->minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    props->sm_count = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    props->smem_optin_per_block = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    props->l2_bytes = attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
    char name[256] = {};
    DG_CU_CHECK(DG_CU(cuDeviceGetName)(name, sizeof(name), dev));
    props->name = name;
    cache[ordinal].store(props.get(), std::memory_order_release);
    return *props.release();
}

inline const DeviceProps& current_device() {
    return device_props(current_ordinal());
}

// set_num_sms / get_num_sms: 0 means "the device's count".
inline std::atomic<int>& configured_num_sms() {
    static std::atomic<int> n{0};
    return n;
}

inline int num_sms_for(const DeviceProps& p) {
    int n = configured_num_sms().load(std::memory_order_relaxed);
    return n > 0 ? std::min(n, p.sm_count) : p.sm_count;
}

inline int num_sms() {
    return num_sms_for(current_device());
}

inline void set_num_sms(int n) {
    DG_CHECK_VALUE(n >= 0, "set_num_sms: n must be >= 0 (0 = use every SM), got {}", n);
    if (n > 0) {
        const int count = current_device().sm_count;
        DG_CHECK_VALUE(n <= count, "set_num_sms: n = {} exceeds the device's {} SMs", n, count);
    }
    configured_num_sms().store(n);
}

inline std::atomic<int>& configured_tc_util() {
    static std::atomic<int> n{0};
    return n;
}

inline int get_tc_util() {
    int v = configured_tc_util().load(std::memory_order_relaxed);
    return v == 0 ? 100 : v;
}

inline void set_tc_util(int p) {
    DG_CHECK_VALUE(p >= 0 && p <= 100, "set_tc_util: p must be in [0, 100] (0 = unset), got {}", p);
    configured_tc_util().store(p);
}

}  // namespace dg
