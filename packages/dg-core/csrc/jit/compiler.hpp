// The two JIT compilers: NVCC (default; a child process) and NVRTC (DG_JIT_USE_NVRTC=1; libnvrtc loaded at
// run time). Both turn one generated source into an sm_XXa cubin; a failure raises dg::CompileError carrying the
// kernel name and the compiler's output.
#pragma once

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "../runtime/error.hpp"
#include "config.hpp"
#include "elf.hpp"
#include "headers.hpp"
#include "process.hpp"

namespace dg::jit {

struct CompileRequest {
    std::string name;                       // family stem, for messages
    std::string source;                     // generated source
    std::string name_expression;            // "&ns::kernel<...>" (NVRTC lowers it to the symbol)
    std::vector<std::string> include_dirs;  // package include dirs (dg-core's is added by the caller)
    std::string arch;                       // "sm_90a"
    std::string work_dir;                   // scratch folder for NVCC's files
};

struct CompileResult {
    std::string cubin;
    std::string symbol;
    std::string log;
};

inline std::vector<std::string> common_flags() {
    std::vector<std::string> f = {"-std=c++" + std::to_string(env_int("DG_JIT_CPP_STANDARD", 20))};
    f.push_back("-DNDEBUG");
    return f;
}

inline bool ptxas_verbose() {
    return env_int("DG_JIT_PTXAS_VERBOSE") != 0 || jit_debug();
}

inline std::vector<std::string> all_include_dirs(const std::vector<std::string>& dirs) {
    std::vector<std::string> out = dirs;
    out.push_back(paths().core_include);
    if (!paths().cutlass_include.empty()) out.push_back(paths().cutlass_include);
    return out;
}

// Size of a toolkit binary: with the toolkit's CUDA_VERSION it identifies a release without running it (spawning
// `nvcc --version` would cost tens of milliseconds on every cache lookup). Paths and mtimes are left out on purpose,
// so a cache filled on a build box serves a GPU node with the same toolkit.
inline std::string size_identity(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return "missing";
    return std::to_string(static_cast<long long>(st.st_size));
}

inline std::string toolkit_version(const std::string& cuda_include) {
    // NOTE: CUDA_VERSION is defined near the top of cuda.h; reading its first 64 KiB (not the whole ~1 MB file)
    // keeps a cache hit cheap.
    std::string text(64 * 1024, '\0');
    FILE* f = std::fopen((cuda_include + "/cuda.h").c_str(), "rb");
    if (f == nullptr) return "unknown";
    text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    const size_t pos = text.find("#define CUDA_VERSION ");
    if (pos == std::string::npos) return "unknown";
    return text.substr(pos + 21, text.find('\n', pos) - pos - 21);
}

class Compiler {
public:
    virtual ~Compiler() = default;
    virtual std::string identity() const = 0;  // enters the cache key
    virtual std::string flags(const CompileRequest&) const = 0;
    virtual CompileResult compile(const CompileRequest&) const = 0;
};

inline std::string single_kernel(const CompileRequest& req, const std::string& cubin, const std::string& log) {
    CubinInfo info = inspect_cubin(cubin);
    if (!info.valid)
        throw CompileError(
            fmt::format("JIT compilation of kernel '{}' produced an unreadable cubin: {}", req.name, info.error));
    if (info.kernels.size() != 1)
        throw CompileError(
            fmt::format("JIT source of kernel '{}' must instantiate exactly one __global__ function, found {}\n{}",
                        req.name, info.kernels.size(), log));
    return info.kernels[0];
}

class NvccCompiler final : public Compiler {
public:
    NvccCompiler() : nvcc_(nvcc_path()) {
        if (::access(nvcc_.c_str(), X_OK) != 0)
            throw CompileError(fmt::format(
                "NVCC not found at '{}': install the CUDA toolkit, set CUDA_HOME, or point DG_JIT_NVCC_COMPILER "
                "at nvcc (or set DG_JIT_USE_NVRTC=1)",
                nvcc_));
        const std::string bin = nvcc_.substr(0, nvcc_.rfind('/'));
        identity_ = "nvcc|" + toolkit_version(bin + "/../include") + "|" + size_identity(nvcc_) + "|" +
                    size_identity(bin + "/ptxas") + "|" + size_identity(bin + "/../nvvm/bin/cicc");
    }

    std::string identity() const override { return identity_; }

    std::vector<std::string> arg_flags(const CompileRequest& req) const {
        std::vector<std::string> f = common_flags();
        const std::string num = req.arch.substr(3);  // "90a"
        f.insert(f.end(),
                 {"-cubin", "-O3", "--expt-relaxed-constexpr", "--expt-extended-lambda",
                  "-gencode=arch=compute_" + num + ",code=sm_" + num, "-Xptxas=-warn-spills", "-diag-suppress=177"});
        if (env_int("DG_JIT_WITH_LINEINFO")) f.insert(f.end(), {"-lineinfo"});
        if (ptxas_verbose()) f.push_back("--ptxas-options=--verbose");
        if (std::string ccbin = env_str("DG_JIT_HOST_COMPILER"); !ccbin.empty()) f.push_back("-ccbin=" + ccbin);
        return f;
    }

    std::string flags(const CompileRequest& req) const override {
        std::string s;
        for (auto& f : arg_flags(req)) s += f + " ";
        return s;
    }

    CompileResult compile(const CompileRequest& req) const override {
        static std::atomic<unsigned> counter{0};
        const std::string stem = fmt::format("{}/{}.{}.{}", req.work_dir, req.name, ::getpid(), counter.fetch_add(1));
        const std::string src = stem + ".cu", out = stem + ".cubin", log_file = stem + ".log";
        {
            FILE* f = std::fopen(src.c_str(), "wb");
            if (f == nullptr) throw CompileError(fmt::format("cannot write JIT source {}", src));
            std::fwrite(req.source.data(), 1, req.source.size(), f);
            std::fclose(f);
        }
        std::vector<std::string> argv = {nvcc_, src, "-o", out};
        for (auto& f : arg_flags(req)) argv.push_back(f);
        for (auto& d : all_include_dirs(req.include_dirs)) argv.push_back("-I" + d);
        if (env_int("DG_JIT_PRINT_COMPILER_COMMAND") || jit_debug()) {
            std::string cmd;
            for (auto& a : argv) cmd += a + " ";
            std::cout << "[dg.jit] compiling " << req.name << ": " << cmd << std::endl;
        }
        ProcessResult r = run_process(argv, log_file);
        ::unlink(src.c_str());
        if (!r.spawn_error.empty()) throw CompileError(fmt::format("kernel '{}': {}", req.name, r.spawn_error));
        if (r.exit_code != 0) {
            ::unlink(out.c_str());
            throw CompileError(
                fmt::format("NVCC failed to compile kernel '{}' (exit code {}):\n{}", req.name, r.exit_code, r.output));
        }
        CompileResult result;
        result.log = r.output;
        if (!read_file(out, result.cubin))
            throw CompileError(fmt::format("NVCC wrote no cubin for kernel '{}'", req.name));
        ::unlink(out.c_str());
        result.symbol = single_kernel(req, result.cubin, result.log);
        return result;
    }

private:
    std::string nvcc_;
    std::string identity_;
};

// NVRTC entry points (nvrtc.h is not needed at build time: the handful of signatures are declared here).
struct NvrtcApi {
    using Program = struct _nvrtcProgram*;
    int (*version)(int*, int*) = nullptr;
    int (*create)(Program*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
    int (*destroy)(Program*) = nullptr;
    int (*compile)(Program, int, const char* const*) = nullptr;
    int (*add_name)(Program, const char*) = nullptr;
    int (*lowered_name)(Program, const char*, const char**) = nullptr;
    int (*log_size)(Program, size_t*) = nullptr;
    int (*log)(Program, char*) = nullptr;
    int (*cubin_size)(Program, size_t*) = nullptr;
    int (*cubin)(Program, char*) = nullptr;
    const char* (*error_string)(int) = nullptr;
    int major = 0, minor = 0;
};

inline void preload_builtins(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return;
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.rfind("libnvrtc-builtins.so", 0) == 0) dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_GLOBAL);
    }
    ::closedir(d);
}

// Where NVRTC is looked for, in order: DG_JIT_NVRTC_LIBRARY, the nvidia-cuda-nvrtc wheel, the toolkit, then the
// loader's search path by soname.
inline std::vector<std::string> nvrtc_candidates() {
    std::vector<std::string> candidates;
    if (auto p = env_str("DG_JIT_NVRTC_LIBRARY"); !p.empty()) candidates.push_back(p);
    if (!paths().nvrtc_library.empty()) candidates.push_back(paths().nvrtc_library);
    candidates.push_back(paths().cuda_home + "/lib64/libnvrtc.so");
    candidates.push_back("libnvrtc.so.13");
    candidates.push_back("libnvrtc.so.12");
    candidates.push_back("libnvrtc.so");
    return candidates;
}

inline const NvrtcApi& nvrtc_api() {
    static std::unique_ptr<NvrtcApi> api;
    static std::string error;
    static std::once_flag once;
    std::call_once(once, [] {
        void* lib = nullptr;
        for (auto& c : nvrtc_candidates()) {
            // NOTE: libnvrtc dlopen()s its builtins library by bare name; a wheel's lib folder is not on the
            // loader's path, so the builtins beside an explicit path are loaded first.
            if (const size_t slash = c.rfind('/'); slash != std::string::npos) preload_builtins(c.substr(0, slash));
            if ((lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
        }
        if (lib == nullptr) {
            error =
                "cannot load NVRTC (libnvrtc.so): install the CUDA toolkit or the nvidia-cuda-nvrtc package, or "
                "set DG_JIT_NVRTC_LIBRARY";
            return;
        }
        auto a = std::make_unique<NvrtcApi>();
        bool ok = true;
        auto sym = [&](auto& slot, const char* name) {
            slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(lib, name));
            ok &= slot != nullptr;
        };
        sym(a->version, "nvrtcVersion");
        sym(a->create, "nvrtcCreateProgram");
        sym(a->destroy, "nvrtcDestroyProgram");
        sym(a->compile, "nvrtcCompileProgram");
        sym(a->add_name, "nvrtcAddNameExpression");
        sym(a->lowered_name, "nvrtcGetLoweredName");
        sym(a->log_size, "nvrtcGetProgramLogSize");
        sym(a->log, "nvrtcGetProgramLog");
        sym(a->cubin_size, "nvrtcGetCUBINSize");
        sym(a->cubin, "nvrtcGetCUBIN");
        sym(a->error_string, "nvrtcGetErrorString");
        if (!ok) {
            error = "the loaded NVRTC library lacks required entry points";
            return;
        }
        a->version(&a->major, &a->minor);
        api = std::move(a);
    });
    if (!api) throw CompileError(error);
    return *api;
}

class NvrtcCompiler final : public Compiler {
public:
    // NOTE: the library is loaded on the first compile, not here: loading libnvrtc and its builtins took ~5 ms
    // and made a cache hit of an NVRTC-built kernel cost 6.4 ms in a new process (H100 host, measured).
    NvrtcCompiler() : identity_(make_identity()) {}

    std::string identity() const override { return identity_; }

    std::vector<std::string> arg_flags(const CompileRequest& req) const {
        std::vector<std::string> f = common_flags();
        f.insert(f.end(), {"--gpu-architecture=" + req.arch, "-default-device", "--device-int128"});
        if (ptxas_verbose()) f.push_back("--ptxas-options=--verbose");
        if (env_int("DG_JIT_WITH_LINEINFO")) f.push_back("-lineinfo");
        return f;
    }

    std::string flags(const CompileRequest& req) const override {
        std::string s;
        for (auto& f : arg_flags(req)) s += f + " ";
        return s;
    }

    CompileResult compile(const CompileRequest& req) const override {
        const NvrtcApi& api = nvrtc_api();
        std::vector<std::string> opts = arg_flags(req);
        for (auto& d : all_include_dirs(req.include_dirs)) opts.push_back("-I" + d);
        // NOTE: NVRTC does not search the toolkit's headers by itself; CCCL (cuda/std/...) sits under include/cccl.
        opts.push_back("-I" + paths().cuda_home + "/include");
        opts.push_back("-I" + paths().cuda_home + "/include/cccl");
        std::vector<const char*> copts;
        for (auto& o : opts) copts.push_back(o.c_str());
        if (env_int("DG_JIT_PRINT_COMPILER_COMMAND") || jit_debug()) {
            std::string cmd;
            for (auto& o : opts) cmd += o + " ";
            std::cout << "[dg.jit] NVRTC compiling " << req.name << ": " << cmd << std::endl;
        }
        NvrtcApi::Program prog = nullptr;
        check(api.create(&prog, req.source.c_str(), (req.name + ".cu").c_str(), 0, nullptr, nullptr), req, "");
        struct Guard {
            const NvrtcApi& a;
            NvrtcApi::Program& p;
            ~Guard() { a.destroy(&p); }
        } guard{api, prog};
        check(api.add_name(prog, req.name_expression.c_str()), req, "");
        const int rc = api.compile(prog, static_cast<int>(copts.size()), copts.data());
        size_t log_size = 0;
        api.log_size(prog, &log_size);
        std::string log(log_size, '\0');
        if (log_size > 0) api.log(prog, log.data());
        while (!log.empty() && log.back() == '\0') log.pop_back();
        if (rc != 0)
            throw CompileError(
                fmt::format("NVRTC failed to compile kernel '{}' ({}):\n{}", req.name, api.error_string(rc), log));
        CompileResult result;
        result.log = log;
        size_t size = 0;
        check(api.cubin_size(prog, &size), req, log);
        result.cubin.resize(size);
        check(api.cubin(prog, result.cubin.data()), req, log);
        const char* lowered = nullptr;
        check(api.lowered_name(prog, req.name_expression.c_str(), &lowered), req, log);
        result.symbol = lowered;
        single_kernel(req, result.cubin, log);
        return result;
    }

private:
    void check(int rc, const CompileRequest& req, const std::string& log) const {
        if (rc != 0)
            throw CompileError(
                fmt::format("NVRTC error in kernel '{}': {}\n{}", req.name, nvrtc_api().error_string(rc), log));
    }
    // The NVRTC that compile() would load, identified without loading it where a file can be stat()ed: the
    // first candidate path that exists, by size, with the toolkit's CUDA_VERSION (its headers are compiled
    // against). A bare soname can only be identified by loading the library and asking its version.
    static std::string make_identity() {
        for (auto& c : nvrtc_candidates()) {
            if (c.find('/') == std::string::npos) break;
            if (size_identity(c) != "missing")
                return "nvrtc|" + toolkit_version(paths().cuda_home + "/include") + "|" + size_identity(c);
        }
        const NvrtcApi& api = nvrtc_api();
        return fmt::format("nvrtc|{}.{}", api.major, api.minor);
    }

    const std::string identity_;
};

}  // namespace dg::jit
