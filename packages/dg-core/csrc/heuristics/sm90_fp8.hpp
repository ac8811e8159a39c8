// Config choice for the SM90 FP8 GEMMs (sm90_fp8_gemm_1d2d, sm90_fp8_gemm_1d1d).
//
// Self-contained (standard library only) so the standalone harness and the launchers share it. Inputs
// that depend on the device (SM count, shared-memory limit) are arguments: never hard-code 132.
//
// The model. A GEMM is a set of BLOCK_M x BLOCK_N output tiles processed by a persistent grid of at most
// `num_sms` CTAs (one per SM). For each candidate BLOCK_N we estimate the time of the busiest SM as
//     waves * max(tile_math_time, tile_load_time)
// where waves = ceil(tiles / ctas), tile_math_time = 2*BLOCK_M*BLOCK_N*K / (per-SM tensor rate) and
// tile_load_time = (BLOCK_M + BLOCK_N) * K bytes / (per-SM load rate), and keep the fastest, preferring
// the larger BLOCK_N on ties (fewer A re-reads). The rates are relative; only their ratio matters
// (H100: ~1400 dense FP8 TFLOPS over ~3 TB/s of DRAM, but tiles mostly hit L2, so loads are given about
// 4x the DRAM rate per SM). BLOCK_M is 64 when M <= 64 (one math warpgroup), else 128.
// Stages: as many as fit the shared-memory limit next to the output tile, capped at kMaxStages.
// Multicast: a cluster of 2 CTAs on neighbouring M blocks shares (multicasts) the B tile when there are
// many M blocks (M >= 512) and their count is even, halving B's L2->SM traffic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dg::heuristics {

enum class Sm90Fp8Kind { k1D2D, k1D1D };

struct Sm90Fp8Config {
    int block_m = 128;
    int block_n = 128;
    int stages = 4;
    int cluster_m = 1;
    int chunk_n = 64;      // output columns per TMA store box (BF16: 8..64, FP32: 4..32)
    int group_m = 16;      // M blocks per raster band of the scheduler
    int num_ctas = 1;      // persistent grid size
    int num_splits = 1;    // K splits per output tile (split-K with an in-kernel fix-up)
    int smem_bytes = 0;    // dynamic shared memory to request
    int threads = 384;

    std::string describe() const {
        char buf[200];
        std::snprintf(buf, sizeof(buf),
                      "block_m=%d block_n=%d stages=%d cluster_m=%d chunk_n=%d group_m=%d ctas=%d splits=%d smem=%d threads=%d",
                      block_m, block_n, stages, cluster_m, chunk_n, group_m, num_ctas, num_splits, smem_bytes, threads);
        return buf;
    }
};

inline constexpr int kMaxStages = 16;
inline constexpr int kBlockK = 128;

inline int ceil_div_i(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// Shared memory of one CTA; mirrors Sm90Fp8Gemm1d2dConfig / Sm90Fp8Gemm1d1dConfig::kSmemBytes.
inline int sm90_fp8_smem_bytes(Sm90Fp8Kind kind, int block_m, int block_n, int stages) {
    const int out_elem = kind == Sm90Fp8Kind::k1D2D ? 2 : 4;
    const int d_bytes = (block_m * block_n * out_elem + 1023) / 1024 * 1024;
    int stage = block_m * kBlockK + block_n * kBlockK + block_m * 4;
    if (kind == Sm90Fp8Kind::k1D1D) stage += block_n * 4;
    const int bars = (d_bytes + stages * stage + 7) / 8 * 8 + stages * 16;
    return bars + 16 + 1024;  // + split-K flags + alignment slack
}

// A tile may cover at most two 128-wide SFB blocks (1D2D): BLOCK_N <= 128 + gcd(BLOCK_N, 128).
inline bool sfb_straddle_ok(int block_n) {
    int g = 8;
    for (int d : {128, 64, 32, 16})
        if (block_n % d == 0) { g = d; break; }
    return block_n <= 128 + g;
}

// Largest store chunk (columns) that divides block_n and every head-split segment (0 = no constraint).
inline int pick_chunk_n(Sm90Fp8Kind kind, int block_n, int head_left, int head_right) {
    const int widest = kind == Sm90Fp8Kind::k1D2D ? 64 : 32;
    for (int c = widest; c >= (kind == Sm90Fp8Kind::k1D2D ? 8 : 4); c /= 2) {
        if (block_n % c != 0) continue;
        if (head_left % c != 0 || head_right % c != 0) continue;
        return c;
    }
    return 0;
}

// `smem_limit`: the per-block opt-in limit of the device; `num_sms`: get_num_sms().
// `head_left/right`: fp8_gemm_nt_skip_head_mid segments (0 when unused).
inline Sm90Fp8Config choose_sm90_fp8_config(Sm90Fp8Kind kind, int m, int n, int k, int num_sms, int smem_limit,
                                            int head_left = 0, int head_right = 0) {
    Sm90Fp8Config best;
    double best_cost = 1e300;
    const int block_m = m <= 64 ? 64 : 128;
    const int num_m_blocks = ceil_div_i(m, block_m);
    // NOTE: per-SM rates in arbitrary units: FP8 math 1400/132 "TFLOPS", loads 4 * 3 / 132 "TB/s".
    const double math_rate = 1400.0 / 132.0 * 1e12, load_rate = 12.0 / 132.0 * 1e12;
    const int max_n = kind == Sm90Fp8Kind::k1D2D ? 160 : 128;
    for (int block_n = 16; block_n <= max_n; block_n += 16) {
        if (kind == Sm90Fp8Kind::k1D2D && !sfb_straddle_ok(block_n)) continue;
        const int chunk = pick_chunk_n(kind, block_n, head_left, head_right);
        if (chunk == 0) continue;
        const int64_t tiles = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, block_n);
        const bool multicast = m >= 512 && num_m_blocks % 2 == 0 && (block_n / 2) % 8 == 0 && num_sms >= 2;
        int ctas = static_cast<int>(std::min<int64_t>(tiles, num_sms));
        if (multicast) ctas = std::max(2, ctas / 2 * 2);
        const int64_t waves = (tiles + ctas - 1) / ctas;
        const double kk = static_cast<double>(ceil_div_i(k, kBlockK)) * kBlockK;
        const double b_share = multicast ? 0.5 : 1.0;
        const double t_math = 2.0 * block_m * block_n * kk / math_rate;
        const double t_load = (block_m + block_n * b_share) * kk / load_rate;
        const double cost = static_cast<double>(waves) * std::max(t_math, t_load);
        if (cost < best_cost * (1.0 - 1e-9) || (cost <= best_cost * (1.0 + 1e-9) && block_n > best.block_n)) {
            int stages = std::min(kMaxStages, std::max(2, ceil_div_i(k, kBlockK) + 0));
            while (stages > 2 && sm90_fp8_smem_bytes(kind, block_m, block_n, stages) > smem_limit) --stages;
            if (sm90_fp8_smem_bytes(kind, block_m, block_n, stages) > smem_limit) continue;
            best_cost = cost;
            best.block_m = block_m;
            best.block_n = block_n;
            best.stages = stages;
            best.cluster_m = multicast ? 2 : 1;
            best.chunk_n = chunk;
            best.num_ctas = ctas;
            best.smem_bytes = sm90_fp8_smem_bytes(kind, block_m, block_n, stages);
            best.threads = 128 * (block_m / 64 + 1);
        }
    }
    return best;
}

}  // namespace dg::heuristics
