// JIT configuration: paths recorded at import (no CUDA call) and the DG_* environment variables.
#pragma once

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace dg::jit {

struct Paths {
    std::string core_include;     // dg-core's own include dir (always on the include path)
    std::string cutlass_include;  // CuTe/CUTLASS headers from the nvidia-cutlass package ("" if absent)
    std::string cutlass_version;  // part of the cache key instead of hashing every CUTLASS header
    std::string cuda_home;        // for nvcc and the CUDA/CCCL headers
    std::string nvrtc_library;    // libnvrtc.so found by the Python side ("" = search the usual names)
    std::string default_cache_dir;
};

inline Paths& paths() {
    static Paths p;
    return p;
}

inline std::string env_str(const char* name, const std::string& fallback = "") {
    const char* v = std::getenv(name);
    return (v != nullptr && v[0] != '\0') ? std::string(v) : fallback;
}

// Integer variables: unset or empty means `fallback`; text that is not a number raises (the peer's %d parse made
// it undefined behaviour).
inline int env_int(const char* name, int fallback = 0) {
    const char* v = std::getenv(name);
    if (v == nullptr || v[0] == '\0') return fallback;
    char* end = nullptr;
    long x = std::strtol(v, &end, 10);
    if (end == v || *end != '\0')
        throw std::invalid_argument(fmt::format("environment variable {}='{}' is not an integer", name, v));
    return static_cast<int>(x);
}

inline bool jit_debug() {
    return env_int("DG_JIT_DEBUG") != 0;
}
inline bool use_nvrtc() {
    return env_int("DG_JIT_USE_NVRTC") != 0;
}

inline std::string cache_dir() {
    std::string dir = env_str("DG_JIT_CACHE_DIR", paths().default_cache_dir);
    if (dir.empty()) dir = env_str("HOME", "/tmp") + "/.cache/dg";
    return dir;
}

inline std::string nvcc_path() {
    return env_str("DG_JIT_NVCC_COMPILER", paths().cuda_home + "/bin/nvcc");
}

}  // namespace dg::jit
