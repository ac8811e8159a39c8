// JIT kernels: generate the source, look it up in the disk cache (or compile it), load it per device.
//
// Disk cache layout: <DG_JIT_CACHE_DIR>/cache/<name>.<key>/{kernel.cu, kernel.cubin, kernel.log, meta}
// - key = SHA-256 of (format version, name, generated source, every transitively included header's content,
//   CUTLASS version, compiler identity, flags, arch);
// - files are written to a temporary name and renamed into place; `meta` is written last, so an entry without a
//   valid `meta` is incomplete;
// - `meta` records the cubin's size and checksum and the kernel symbol: a truncated or corrupt cubin is detected
//   on load and rebuilt, never loaded;
// - an flock on <entry>.lock serialises compilers of the same entry across processes: the second process waits
//   and then finds the entry complete.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "../runtime/device.hpp"
#include "../runtime/launch.hpp"
#include "compiler.hpp"
#include "headers.hpp"

namespace dg::jit {

inline constexpr const char* kCacheFormat = "dg-jit-cache 1";

struct KernelSpec {
    std::string name;      // family stem, e.g. "sm90_fp8_gemm_1d2d"
    std::string include;   // header to include, e.g. "dg_core/impls/sm90_fp8_gemm_1d2d.cuh"
    std::string instance;  // e.g. "dg::sm90_fp8_gemm_1d2d_impl<128, 128, ...>"
    std::vector<std::string> include_dirs;
    std::string arch;  // "sm_90a"; empty = the current device's
};

inline std::string generate_source(const KernelSpec& spec) {
    return fmt::format(
        "#include <{}>\n"
        "static void* dg_kernel_instance() {{ return reinterpret_cast<void*>(&{}); }}\n",
        spec.include, spec.instance);
}

// 64-bit FNV-1a over the bytes: a cheap integrity check for cache entries (the key itself is SHA-256).
inline uint64_t checksum(const std::string& data) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
    return h;
}

inline bool make_dirs(const std::string& path) {
    std::string cur;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
        }
        if (i < path.size()) cur.push_back(path[i]);
    }
    return true;
}

// Writes `data` to `path` atomically (temporary file in the same folder + fsync + rename).
inline void atomic_write(const std::string& path, const std::string& data) {
    static std::atomic<unsigned> counter{0};
    const std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter.fetch_add(1));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw CompileError(fmt::format("cannot write JIT cache file {}: {}", tmp, std::strerror(errno)));
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            ::unlink(tmp.c_str());
            throw CompileError(fmt::format("cannot write JIT cache file {}: {}", tmp, std::strerror(errno)));
        }
        off += static_cast<size_t>(n);
    }
    ::fsync(fd);
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        throw CompileError(fmt::format("cannot rename {} into place: {}", tmp, std::strerror(errno)));
    }
}

struct CacheEntry {
    std::string cubin, symbol, log;
};

// Loads a complete, intact entry; returns false (and says why under DG_JIT_DEBUG) otherwise.
inline bool load_entry(const std::string& dir, CacheEntry& out) {
    std::string meta;
    if (!read_file(dir + "/meta", meta)) return false;  // absent or incomplete: a normal miss
    char fmt_line[64] = {}, symbol[4096] = {};
    unsigned long long size = 0, sum = 0;
    const bool parsed = std::sscanf(meta.c_str(), "%63[^\n]\nsymbol %4095s\nsize %llu\nchecksum %llx", fmt_line, symbol,
                                    &size, &sum) == 4;
    auto reject = [&](const char* why) {
        std::cerr << "[dg.jit] warning: rebuilding corrupt cache entry " << dir << " (" << why << ")" << std::endl;
        return false;
    };
    if (!parsed || std::string(fmt_line) != kCacheFormat) return reject("unreadable meta");
    if (!read_file(dir + "/kernel.cubin", out.cubin)) return reject("missing cubin");
    if (out.cubin.size() != size || checksum(out.cubin) != sum) return reject("cubin size or checksum mismatch");
    CubinInfo info = inspect_cubin(out.cubin);
    if (!info.valid) return reject("cubin is not a valid CUDA ELF");
    out.symbol = symbol;
    read_file(dir + "/kernel.log", out.log);
    return true;
}

class Kernel {
public:
    Kernel(std::string name, std::string symbol, std::string cubin, std::string log, std::string cache_path)
        : name_(std::move(name)),
          symbol_(std::move(symbol)),
          cubin_(std::move(cubin)),
          log_(std::move(log)),
          cache_path_(std::move(cache_path)) {}

    Kernel(const Kernel&) = delete;
    Kernel& operator=(const Kernel&) = delete;

    const std::string& name() const { return name_; }
    const std::string& symbol() const { return symbol_; }
    const std::string& cubin() const { return cubin_; }
    const std::string& log() const { return log_; }
    const std::string& cache_path() const { return cache_path_; }

    // The loaded function on device `ordinal` (its context must be current). Loads the module on first use.
    CUfunction function(int ordinal) {
        PerDevice& d = devices_.at(static_cast<size_t>(ordinal));
        if (CUfunction f = d.function.load(std::memory_order_acquire)) [[likely]]
            return f;
        std::lock_guard lock(mutex_);
        if (CUfunction f = d.function.load()) return f;
        CUmodule module = nullptr;
        CUresult r = DG_CU(cuModuleLoadData)(&module, cubin_.data());
        if (r != CUDA_SUCCESS)
            throw CudaError(fmt::format("cannot load kernel '{}' ({}) on device {}: {}", name_, cache_path_, ordinal,
                                        driver::error_text(r)));
        CUfunction f = nullptr;
        DG_CU_CHECK(DG_CU(cuModuleGetFunction)(&f, module, symbol_.c_str()));
        d.module = module;
        d.function.store(f, std::memory_order_release);
        return f;
    }

    CUfunction function() { return function(current_ordinal()); }

    // Raises the kernel's dynamic shared-memory limit to `bytes` on device `ordinal` (once per value).
    void ensure_smem(int ordinal, uint32_t bytes) {
        PerDevice& d = devices_.at(static_cast<size_t>(ordinal));
        if (bytes <= d.smem_limit.load(std::memory_order_relaxed)) [[likely]]
            return;
        const DeviceProps& props = device_props(ordinal);
        DG_CHECK_VALUE(bytes <= static_cast<uint32_t>(props.smem_optin_per_block),
                       "kernel '{}' needs {} bytes of shared memory; device {} allows {}", name_, bytes, ordinal,
                       props.smem_optin_per_block);
        if (bytes > 48 * 1024)
            DG_CU_CHECK(DG_CU(cuFuncSetAttribute)(function(ordinal), CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                  static_cast<int>(bytes)));
        d.smem_limit.store(bytes);
    }

    void ensure_smem(uint32_t bytes) { ensure_smem(current_ordinal(), bytes); }

    void launch(int ordinal, const LaunchConfig& cfg, void** params, void** extra = nullptr) {
        CUfunction f = function(ordinal);
        if (cfg.smem > 0) ensure_smem(ordinal, cfg.smem);
        if (jit_debug())
            std::cout << fmt::format("[dg.jit] launch {} grid=({},{},{}) block=({},{},{}) smem={} cluster={}", name_,
                                     cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.block.y, cfg.block.z,
                                     cfg.smem, cfg.cluster_x)
                      << std::endl;
        launch_function(f, cfg, params, extra);
    }

private:
    struct PerDevice {
        std::atomic<CUfunction> function{nullptr};
        CUmodule module = nullptr;
        std::atomic<uint32_t> smem_limit{48 * 1024};
    };
    std::string name_, symbol_, cubin_, log_, cache_path_;
    std::mutex mutex_;
    std::array<PerDevice, kMaxDevices> devices_;
};

inline void launch(Kernel& k, const LaunchConfig& cfg, void** params) {
    k.launch(current_ordinal(), cfg, params);
}

inline const Compiler& compiler() {
    static std::mutex mutex;
    static std::unique_ptr<Compiler> nvrtc;
    static std::unordered_map<std::string, std::unique_ptr<Compiler>> nvcc;  // one per DG_JIT_NVCC_COMPILER value
    std::lock_guard lock(mutex);
    if (use_nvrtc()) {
        if (!nvrtc) nvrtc = std::make_unique<NvrtcCompiler>();
        return *nvrtc;
    }
    std::unique_ptr<Compiler>& c = nvcc[nvcc_path()];
    if (!c) c = std::make_unique<NvccCompiler>();
    return *c;
}

class FileLock {
public:
    explicit FileLock(const std::string& path) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
        if (fd_ < 0) throw CompileError(fmt::format("cannot open JIT lock file {}: {}", path, std::strerror(errno)));
        while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    ~FileLock() {
        ::flock(fd_, LOCK_UN);
        ::close(fd_);
    }

private:
    int fd_ = -1;
};

// Compiles (or loads from the disk cache) the kernel of `spec`. Memoised in memory per process.
inline std::shared_ptr<Kernel> get_kernel(const KernelSpec& input) {
    KernelSpec spec = input;
    if (spec.arch.empty()) spec.arch = current_device().arch();
    DG_CHECK_VALUE(spec.arch.size() > 3 && spec.arch.substr(0, 3) == "sm_", "arch must look like 'sm_90a', got '{}'",
                   spec.arch);
    const std::string root = cache_dir();
    std::string memo_key =
        fmt::format("{}\n{}\n{}\n{}\n{}\n{}", spec.name, spec.include, spec.instance, spec.arch, use_nvrtc(), root);
    for (auto& d : spec.include_dirs) memo_key += "\n" + d;
    // Variables that change the compiler or its flags select another cache entry, so they key the memo too.
    for (const char* var : {"DG_JIT_NVCC_COMPILER", "DG_JIT_PTXAS_VERBOSE", "DG_JIT_DEBUG", "DG_JIT_WITH_LINEINFO",
                            "DG_JIT_CPP_STANDARD", "DG_JIT_HOST_COMPILER"})
        memo_key += fmt::format("\n{}={}", var, env_str(var));

    static std::mutex memo_mutex;
    static std::unordered_map<std::string, std::shared_ptr<Kernel>> memo;
    {
        std::lock_guard lock(memo_mutex);
        if (auto it = memo.find(memo_key); it != memo.end()) return it->second;
    }

    const Compiler& cc = compiler();
    CompileRequest req;
    req.name = spec.name;
    req.source = generate_source(spec);
    req.name_expression = "&" + spec.instance;
    req.include_dirs = spec.include_dirs;
    req.arch = spec.arch;

    Sha256 h;
    h.field(kCacheFormat).field(spec.name).field(req.source);
    header_hasher().hash_closure(req.source, all_include_dirs(spec.include_dirs), h);
    h.field(paths().cutlass_version).field(cc.identity()).field(cc.flags(req)).field(spec.arch);
    const std::string key = h.hex().substr(0, 32);

    const std::string entry = fmt::format("{}/cache/{}.{}", root, spec.name, key);
    if (jit_debug()) std::cout << "[dg.jit] kernel " << spec.name << " -> " << entry << "\n" << req.source;
    CacheEntry ce;
    if (!load_entry(entry, ce)) {
        if (!make_dirs(entry) || !make_dirs(root + "/tmp"))
            throw CompileError(fmt::format("cannot create JIT cache folder {}: {}", entry, std::strerror(errno)));
        FileLock lock(entry + ".lock");
        if (!load_entry(entry, ce)) {  // another process may have finished it while we waited
            req.work_dir = root + "/tmp";
            CompileResult r = cc.compile(req);
            if (ptxas_verbose() && !r.log.empty()) std::cout << r.log << std::endl;
            ::unlink((entry + "/meta").c_str());
            atomic_write(entry + "/kernel.cu", req.source);
            atomic_write(entry + "/kernel.log", r.log);
            atomic_write(entry + "/kernel.cubin", r.cubin);
            atomic_write(entry + "/meta", fmt::format("{}\nsymbol {}\nsize {}\nchecksum {:x}\n", kCacheFormat, r.symbol,
                                                      r.cubin.size(), checksum(r.cubin)));
            ce.cubin = std::move(r.cubin);
            ce.symbol = std::move(r.symbol);
            ce.log = std::move(r.log);
        }
    }
    auto kernel = std::make_shared<Kernel>(spec.name, ce.symbol, std::move(ce.cubin), std::move(ce.log), entry);
    std::lock_guard lock(memo_mutex);
    return memo.emplace(memo_key, std::move(kernel)).first->second;
}

}  // namespace dg::jit

namespace dg {
using jit::get_kernel;
using jit::Kernel;
using jit::KernelSpec;
using jit::launch;
}  // namespace dg
