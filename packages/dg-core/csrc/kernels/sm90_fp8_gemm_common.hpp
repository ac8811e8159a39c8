// Host-side plumbing shared by the SM90 FP8 GEMM launchers (sm90_fp8_gemm_1d2d, sm90_fp8_gemm_1d1d):
// the per-shape plan cache (config + compiled kernel), instance strings, TMA maps and the launch.
//
// The per-call host path is: one hash-map lookup under a mutex (plan), four or five
// cuTensorMapEncodeTiled calls, one cuLaunchKernelEx. Compilation and config choice happen once per
// (device, recipe, M, N, K, head split, SM count, DG_SM90_FP8_FORCE) and are printed with DG_PRINT_CONFIGS=1.
// The per-call path also reads DG_SM90_FP8_FORCE (one getenv; see heuristics/sm90_fp8.hpp).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../heuristics/sm90_fp8.hpp"
#include "../jit/kernel.hpp"
#include "../runtime/device.hpp"
#include "../runtime/launch.hpp"
#include "../runtime/tensor.hpp"
#include "../runtime/tma.hpp"

namespace dg::kernels {

using heuristics::Sm90Fp8Config;
using heuristics::Sm90Fp8Kind;

inline constexpr int kSm90Fp8GroupM = 16;  // M blocks per raster band of the dense scheduler

struct Sm90Fp8Plan {
    Sm90Fp8Config cfg;
    std::shared_ptr<Kernel> kernel;
};

inline const char* sm90_fp8_stem(Sm90Fp8Kind kind) {
    return kind == Sm90Fp8Kind::k1D2D ? "sm90_fp8_gemm_1d2d" : "sm90_fp8_gemm_1d1d";
}

// The one explicit instantiation the JIT compiles (generated source = include + this expression).
inline std::string sm90_fp8_instance(Sm90Fp8Kind kind, const Sm90Fp8Config& c) {
    // NOTE: a config with a split tail gets an instance of its own (kTail), so the others run the scheduler without it.
    if (kind == Sm90Fp8Kind::k1D2D && c.tail_splits > 0)
        return fmt::format("dg::{}_impl<{}, {}, {}, {}, {}, {}, {}, {}, true>", sm90_fp8_stem(kind), c.block_m,
                           c.block_n, c.stages, c.cluster_m, c.chunk_n, c.group_m, c.k_ways, c.pipeline);
    if (kind == Sm90Fp8Kind::k1D2D && c.pipeline != 2)
        return fmt::format("dg::{}_impl<{}, {}, {}, {}, {}, {}, {}, {}>", sm90_fp8_stem(kind), c.block_m, c.block_n,
                           c.stages, c.cluster_m, c.chunk_n, c.group_m, c.k_ways, c.pipeline);
    if (kind == Sm90Fp8Kind::k1D2D && c.k_ways > 1)
        return fmt::format("dg::{}_impl<{}, {}, {}, {}, {}, {}, {}>", sm90_fp8_stem(kind), c.block_m, c.block_n,
                           c.stages, c.cluster_m, c.chunk_n, c.group_m, c.k_ways);
    return fmt::format("dg::{}_impl<{}, {}, {}, {}, {}, {}>", sm90_fp8_stem(kind), c.block_m, c.block_n, c.stages,
                       c.cluster_m, c.chunk_n, c.group_m);
}

inline bool print_configs() {
    static const bool on = [] {
        const char* v = std::getenv("DG_PRINT_CONFIGS");
        return v != nullptr && v[0] != '\0' && v[0] != '0';
    }();
    return on;
}

// can_implement: an empty string when the kernels can run this problem, else the reason. The API layer
// has already checked dtypes, majorness and alignment; these are the kernels' own limits.
inline std::string sm90_fp8_can_implement(Sm90Fp8Kind kind, int64_t m, int64_t n, int64_t k, int head_left,
                                          int head_mid, int head_right) {
    constexpr int64_t kMax = (int64_t(1) << 31) - 1;
    if (m <= 0 || n <= 0 || k <= 0) return fmt::format("M, N and K must be positive, got {}, {}, {}", m, n, k);
    if (m > kMax || n > kMax || k > kMax) return fmt::format("M, N and K must be < 2^31, got {}, {}, {}", m, n, k);
    if (k % 16 != 0) return fmt::format("K = {} must be a multiple of 16 (16-byte FP8 row pitch for TMA)", k);
    if (kind == Sm90Fp8Kind::k1D2D && n % 8 != 0)
        return fmt::format("N = {} must be a multiple of 8 (16-byte BF16 row pitch of D)", n);
    if (kind == Sm90Fp8Kind::k1D1D && n % 4 != 0)
        return fmt::format("N = {} must be a multiple of 4 (16-byte FP32 row pitch of D)", n);
    if (head_mid > 0 || head_left > 0 || head_right > 0) {
        if (kind != Sm90Fp8Kind::k1D2D) return "head splits are only supported with recipe (1, 128, 128)";
        if (head_left % 8 != 0 || head_right % 8 != 0 || head_mid % 8 != 0)
            return fmt::format("head_splits ({}, {}, {}) must be multiples of 8", head_left, head_mid, head_right);
        if (head_left + head_right <= 0 || n % (head_left + head_right) != 0)
            return fmt::format("N = {} must be a multiple of left + right = {}", n, head_left + head_right);
    }
    return {};
}

// How many clusters of this configuration can be resident at once on device `ordinal` (0 if unknown).
inline int max_active_clusters(Kernel& kernel, int ordinal, const Sm90Fp8Config& c) {
    CUfunction f = kernel.function(ordinal);
    kernel.ensure_smem(ordinal, static_cast<uint32_t>(c.smem_bytes));
    CUlaunchAttribute attr{};
    attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim.x = static_cast<unsigned>(c.cluster_m);
    attr.value.clusterDim.y = 1;
    attr.value.clusterDim.z = 1;
    CUlaunchConfig lc{};
    lc.gridDimX = static_cast<unsigned>(c.num_ctas);
    lc.gridDimY = lc.gridDimZ = 1;
    lc.blockDimX = static_cast<unsigned>(c.threads);
    lc.blockDimY = lc.blockDimZ = 1;
    lc.sharedMemBytes = static_cast<unsigned>(c.smem_bytes);
    lc.attrs = &attr;
    lc.numAttrs = 1;
    int clusters = 0;
    if (DG_CU(cuOccupancyMaxActiveClusters)(&clusters, f, &lc) != CUDA_SUCCESS) return 0;
    return clusters;
}

// The cached plan for one problem on the current device. Thread-safe; entries are never evicted (the
// number of distinct shapes of a process is small).
inline const Sm90Fp8Plan& sm90_fp8_plan(Sm90Fp8Kind kind, int64_t m, int64_t n, int64_t k, int head_left,
                                        int head_right) {
    const DeviceProps& dev = current_device();
    const int sms = num_sms_for(dev);
    struct Key {
        int64_t m, n, k;
        int kind, dev, sms, hl, hr;
        heuristics::Sm90Fp8Force force;  // DG_SM90_FP8_FORCE at call time (experiments; usually all zero)
        bool operator==(const Key& o) const {
            return m == o.m && n == o.n && k == o.k && kind == o.kind && dev == o.dev && sms == o.sms && hl == o.hl &&
                   hr == o.hr && force == o.force;
        }
    };
    struct KeyHash {
        size_t operator()(const Key& x) const {
            uint64_t h = 1469598103934665603ull;
            auto mix = [&h](int64_t v) { h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull; };
            for (int64_t v :
                 {x.m, x.n, x.k, int64_t(x.kind), int64_t(x.dev), int64_t(x.sms), int64_t(x.hl), int64_t(x.hr)})
                mix(v);
            for (int v : x.force.fields()) mix(v);
            return static_cast<size_t>(h);
        }
    };
    static std::mutex mutex;
    static std::unordered_map<Key, std::unique_ptr<Sm90Fp8Plan>, KeyHash> cache;
    // NOTE: the experiment knob is read on every call (one getenv) so a process can A/B configs.
    const Key key{m,
                  n,
                  k,
                  static_cast<int>(kind),
                  dev.ordinal,
                  sms,
                  head_left,
                  head_right,
                  heuristics::sm90_fp8_force_from_env()};
    {
        std::lock_guard lock(mutex);
        if (auto it = cache.find(key); it != cache.end()) [[likely]]
            return *it->second;
    }
    // NOTE: compile outside the lock so other shapes are not blocked behind a JIT compile.
    auto plan = std::make_unique<Sm90Fp8Plan>();
    plan->cfg = heuristics::choose_sm90_fp8_config(kind, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                                   sms, dev.smem_optin_per_block, head_left, head_right);
    DG_CHECK_VALUE(plan->cfg.block_n > 0,
                   "{}: no kernel configuration fits M={}, N={}, K={} (head split {}, {}) in {} bytes of shared memory",
                   sm90_fp8_stem(kind), m, n, k, head_left, head_right, dev.smem_optin_per_block);
    plan->cfg.group_m = kSm90Fp8GroupM;
    KernelSpec spec;
    spec.name = sm90_fp8_stem(kind);
    spec.include = fmt::format("dg_core/impls/{}.cuh", sm90_fp8_stem(kind));
    spec.instance = sm90_fp8_instance(kind, plan->cfg);
    spec.arch = dev.arch();
    plan->kernel = get_kernel(spec);
    // NOTE: a persistent grid must be fully co-resident. With 2-CTA clusters the GPC layout can hold fewer than
    // num_sms / 2 clusters at this shared-memory size, so the grid is capped at what the driver says fits.
    if (plan->cfg.cluster_m > 1) {
        const int fit = max_active_clusters(*plan->kernel, dev.ordinal, plan->cfg);
        if (fit > 0) plan->cfg.num_ctas = std::min(plan->cfg.num_ctas, fit * plan->cfg.cluster_m);
    }
    if (print_configs())
        std::cout << fmt::format("[dg] {} M={} N={} K={} on {} ({} SMs): {} -> {}", spec.name, m, n, k, dev.name, sms,
                                 plan->cfg.describe(), spec.instance)
                  << std::endl;
    std::lock_guard lock(mutex);
    auto [it, inserted] = cache.emplace(key, std::move(plan));
    return *it->second;
}

// NOTE: the stride of a dimension of extent 1 is arbitrary in torch (a [1, K] view may report any row
// stride); TMA never steps along it, so the dense pitch is used instead to keep the encoder's 16-byte
// stride check meaningful.
inline uint64_t row_pitch_elems(const TensorView& t, int64_t rows, int64_t dense) {
    return static_cast<uint64_t>(rows > 1 ? t.stride(0) : dense);
}

inline CUtensorMap sm90_fp8_operand_map(const TensorView& t, int rows, int box_rows) {
    // K-major FP8 [rows, K]: dims (K, rows), 128-byte swizzled boxes of (128, box_rows).
    return make_tma_2d(t.data, CU_TENSOR_MAP_DATA_TYPE_UINT8, static_cast<uint64_t>(t.size(1)),
                       static_cast<uint64_t>(rows), row_pitch_elems(t, rows, t.size(1)), 128,
                       static_cast<uint32_t>(box_rows), 128);
}

inline CUtensorMap sm90_fp8_sf_map(const TensorView& sf, int64_t mn, int64_t k_blocks, int box_mn) {
    // MN-major TMA-aligned FP32 scales [mn, k_blocks] with strides (1, pitch): dims (mn, k_blocks).
    const uint64_t pitch = k_blocks > 1 ? static_cast<uint64_t>(sf.stride(1)) : static_cast<uint64_t>((mn + 3) / 4 * 4);
    return make_tma_2d(sf.data, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, static_cast<uint64_t>(mn),
                       static_cast<uint64_t>(k_blocks), pitch * 4, static_cast<uint32_t>(box_mn), 1, 0);
}

inline CUtensorMap sm90_fp8_output_map(const TensorView& d, int64_t m, int64_t cols, const Sm90Fp8Config& c) {
    const int esize = dtype_size(d.dtype);
    const int row_bytes = c.chunk_n * esize;
    return make_tma_2d(d.data,
                       d.dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
                       static_cast<uint64_t>(cols), static_cast<uint64_t>(m), row_pitch_elems(d, m, cols) * esize,
                       static_cast<uint32_t>(c.chunk_n), 64, row_bytes >= 32 ? row_bytes : 0);
}

inline LaunchConfig sm90_fp8_launch_config(const Sm90Fp8Config& c, CUstream stream) {
    LaunchConfig lc;
    lc.grid.x = static_cast<uint32_t>(c.num_ctas);
    lc.block.x = static_cast<uint32_t>(c.threads);
    lc.smem = static_cast<uint32_t>(c.smem_bytes);
    lc.stream = stream;
    lc.cluster_x = static_cast<uint32_t>(c.cluster_m);
    return lc;
}

}  // namespace dg::kernels
