// Config choice for the SM90 FP8 GEMMs (sm90_fp8_gemm_1d2d, sm90_fp8_gemm_1d1d).
//
// Self-contained (standard library only) so the standalone harness and the launchers share it. Inputs
// that depend on the device (SM count, shared-memory limit) are arguments: never hard-code 132.
//
// See choose_sm90_fp8_config for the rules. Background: a GEMM is a set of BLOCK_M x BLOCK_N output tiles processed by
// a persistent grid of at most `num_sms` CTAs (one per SM). For each candidate BLOCK_N we estimate the time of the
// busiest SM as
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
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dg::heuristics {

enum class Sm90Fp8Kind { k1D2D, k1D1D };

struct Sm90Fp8Config {
    int block_m = 128;
    int block_n = 128;
    int stages = 4;
    int cluster_m = 1;
    int chunk_n = 64;     // output columns per TMA store box (BF16: 8..64, FP32: 4..32)
    int group_m = 16;     // M blocks per raster band of the scheduler
    int num_ctas = 1;     // persistent grid size
    int num_splits = 1;   // K splits per output tile (split-K with an in-kernel fix-up)
    int num_whole = 0;    // with tail_splits > 0: leading tiles (whole waves, raster order) before the split tail
    int tail_splits = 0;  // split tail: K splits of each tile of the last, partial wave, 0 = no tail
    int smem_bytes = 0;   // dynamic shared memory to request
    int threads = 384;
    int k_ways = 1;  // 1D2D: math warpgroups per row group, each on every k_ways-th K block of a tile
    // 1D2D, one K way: the math loop's pipelining across tiles (the kernel's kPipeline: 2 early issue of a tile's
    // first wgmma before the previous epilogue, 1 pipelined with the epilogue first, 0 plain).
    int pipeline = 2;

    std::string describe() const {
        char buf[220];
        std::snprintf(buf, sizeof(buf),
                      "block_m=%d block_n=%d stages=%d cluster_m=%d chunk_n=%d group_m=%d ctas=%d splits=%d tail=%d/%d "
                      "smem=%d threads=%d k_ways=%d pipeline=%d",
                      block_m, block_n, stages, cluster_m, chunk_n, group_m, num_ctas, num_splits, num_whole,
                      tail_splits, smem_bytes, threads, k_ways, pipeline);
        return buf;
    }
};

inline constexpr int kMaxStages = 16;
inline constexpr int kBlockK = 128;

inline int ceil_div_i(int64_t a, int64_t b) {
    return static_cast<int>((a + b - 1) / b);
}

// Shared memory of one CTA; mirrors Sm90Fp8Gemm1d2dConfig / Sm90Fp8Gemm1d1dConfig::kSmemBytes. 1D2D with one K way
// and `chunk_n` given: when the whole output tile does not fit beside the stages in the SM90 budget (232448
// bytes), the kernel stages its output through a ring of two chunk_n-column chunks instead (Cfg::kDRing).
inline int sm90_fp8_smem_bytes(Sm90Fp8Kind kind, int block_m, int block_n, int stages, int k_ways = 1,
                               int chunk_n = 0) {
    const int out_elem = kind == Sm90Fp8Kind::k1D2D ? 2 : 4;
    int d_bytes = (block_m * block_n * out_elem + 1023) / 1024 * 1024;
    int stage = block_m * kBlockK + block_n * kBlockK + block_m * 4;
    if (kind == Sm90Fp8Kind::k1D1D) stage += (block_n * 4 + 127) / 128 * 128;  // 128-byte aligned TMA slot
    int slack = 1024;  // alignment slack for the 1024-byte aligned base (none with the ring)
    if (kind == Sm90Fp8Kind::k1D2D && k_ways == 1 && chunk_n > 0 &&
        (d_bytes + stages * stage + 7) / 8 * 8 + stages * 16 + 16 + 1024 > 232448) {
        d_bytes = 2 * block_m * chunk_n * out_elem;
        slack = 0;
    }
    const int bars = (d_bytes + stages * stage + 7) / 8 * 8 + stages * 16;
    if (k_ways > 1)  // + split-K flags, 128-byte aligned K-way hand-off, alignment slack
        return (bars + 16 + 127) / 128 * 128 + (k_ways - 1) * block_m * block_n * 4 + 1024;
    return bars + 16 + slack;  // + split-K flags + alignment slack
}

// A single-pass tile (BLOCK_N <= 192) may cover at most two 128-wide SFB blocks (1D2D): BLOCK_N <= 128 +
// gcd(BLOCK_N, 128) (192: offsets 0 and 64), or three for a multiple of 16 (176). 256-wide tiles run as two halves,
// each within one block.
inline bool sfb_straddle_ok(int block_n) {
    if (block_n > 176) return block_n == 192 || block_n == 256;
    int g = 8;
    for (int d : {128, 64, 32, 16})
        if (block_n % d == 0) {
            g = d;
            break;
        }
    // Tiles start at column offsets that are multiples of g: at most two SFB blocks, or three when g >= 16 (one
    // straight-line promotion per offset; kernel's kSfbBlocks).
    const int blocks = (128 - g + block_n + 127) / 128;
    return blocks <= 2 || (blocks == 3 && g >= 16);
}

// K ways (1D2D): at most 4 math warpgroups in all; beyond two, the launch bound leaves 128 (3 warpgroups) or
// 102 (4) registers per thread, which hold accum + partial only for BLOCK_N <= 64 / 32.
inline bool k_ways_ok(int block_m, int block_n, int k_ways) {
    const int math_wg = block_m / 64 * k_ways;
    if (k_ways < 1 || math_wg > 4) return false;
    if (k_ways > 1 && block_n > 176) return false;  // 192 (accum + partial: 192 registers) and 256 run one K way
    return math_wg <= 2 || block_n <= (math_wg == 3 ? 64 : 32);
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

// The chunk width with which a tile may stage its output through the ring to gain stages (max_stages_for's
// `chunk_n`), 0 to keep the whole output tile. 1D2D with one K way only (measured, H100, API, us):
//  * 128 x 256: `chunk_n` (64), a fourth stage (see the model's NOTE in choose_sm90_fp8_config_model);
//  * 128 x 192 from 32 K blocks on: 32-column chunks, a fifth stage. Whole tile with 4 stages -> ring with 5:
//    4096x2112x7168 103.7 -> 101.9, 4096x4608x7168 198.7 -> 194.8, 4096x16384x7168 691.4 -> 678.1, 8192x8192x8192
//    795.7 -> 782.2, 8192x16384x7168 1394.9 -> 1372.7, 8192x2112x7168 199.8 -> 196.6 (on another machine 0.5-1.2%:
//    4096x2112x7168 101.0 -> 99.8, 8192x8192x8192 767.6 -> 763.7); but 4096x32768x512 147.0 ->
//    170.2 and 2048x32768x512 76.3 -> 91.1: the ring's epilogue (six chunk stores per row group, each waiting for
//    the store two chunks back) costs ~0.5 us per tile, which the fifth stage repays only over many K blocks
//    (break-even near 27 K blocks from these two ends; not measured in between).
inline int ring_chunk_n(Sm90Fp8Kind kind, int block_n, int k_ways, int chunk_n, int num_k_blocks) {
    if (kind != Sm90Fp8Kind::k1D2D || k_ways != 1) return 0;
    if (block_n == 256) return chunk_n;
    if (block_n == 192 && num_k_blocks >= 32 && chunk_n >= 32) return 32;
    return 0;
}

// `chunk_n` > 0 lets the count grow past what fits beside a whole staged output tile (the output ring).
inline int max_stages_for(Sm90Fp8Kind kind, int block_m, int block_n, int k, int smem_limit, int k_ways = 1,
                          int chunk_n = 0) {
    int stages = std::min(kMaxStages, std::max(2, ceil_div_i(k, kBlockK)));
    while (stages > 2 && sm90_fp8_smem_bytes(kind, block_m, block_n, stages, k_ways, chunk_n) > smem_limit) --stages;
    return stages;
}

// Sets c.smem_bytes for c.stages, first narrowing c.chunk_n (1D2D, one K way) while the stages do not fit: the
// kernel then stages its output through a ring of two chunk_n-column chunks (Cfg::kDRing) instead of the whole tile.
// NOTE: halving keeps the chunk a divisor of the head-split segments that pick_chunk_n's chunk divides.
inline void fit_output_ring(Sm90Fp8Config& c, Sm90Fp8Kind kind, int smem_limit) {
    c.smem_bytes = sm90_fp8_smem_bytes(kind, c.block_m, c.block_n, c.stages, c.k_ways, c.chunk_n);
    while (kind == Sm90Fp8Kind::k1D2D && c.k_ways == 1 && c.smem_bytes > smem_limit && c.chunk_n > 8) {
        c.chunk_n /= 2;
        c.smem_bytes = sm90_fp8_smem_bytes(kind, c.block_m, c.block_n, c.stages, c.k_ways, c.chunk_n);
    }
}

// Sets c.stages to as many as fit for the config's tile and K ways, with the output ring where ring_chunk_n says it
// pays (c.chunk_n then narrows to the widest chunk that fits them), and c.smem_bytes.
inline void fit_stages(Sm90Fp8Config& c, Sm90Fp8Kind kind, int k, int smem_limit) {
    const int ring = ring_chunk_n(kind, c.block_n, c.k_ways, c.chunk_n, ceil_div_i(k, kBlockK));
    c.stages = max_stages_for(kind, c.block_m, c.block_n, k, smem_limit, c.k_ways, ring);
    fit_output_ring(c, kind, smem_limit);
}

// K ways for small M (1D2D): the time of a small-M tile is set by one warpgroup's per-K-block chain (barrier wait
// -> 4 wgmma -> wait -> promote, ~300-600 cycles), so 2-3 warpgroups on alternate K blocks of the same rows shorten
// it. Measured (H100, harness, us, ways 1 -> best): 64x2112x7168 18.2 -> 15.6, 128x2112x7168 22.0 -> 18.7,
// 64x4096x7168 23.7 -> 20.4 (3 ways), 128x4096x7168 26.3 -> 23.4, 64x7168x2048 14.7 -> 13.6, 64x7168x16384
// 59.1 -> 57.0; no gain below 16 K blocks (64x24576x1536 24.8 -> 24.1, 64x32768x512 14.6 -> 15.1).
// With BLOCK_M 64 for 64 < M <= 128 (two M blocks) 2 ways: 128x2112x7168 at BLOCK_N 32 15.0 us vs 15.5 with 3.
inline int small_m_k_ways(int m, int block_m, int block_n, int num_k_blocks) {
    if (m > 128 || num_k_blocks < 16) return 1;
    const int ways = block_m == 64 ? (block_n <= 32 && m <= 64 ? 3 : 2) : 2;
    return k_ways_ok(block_m, block_n, ways) ? ways : 1;
}

// Split tail (1D2D, one K way, no cluster, not the early-issue loop): when the tiles fill `full` waves of the grid and
// leave `rem` tiles for a last, partial wave, the first full * grid tiles run whole and each of the others is cut into
// S even K ranges (dense scheduler), so the last wave takes K / S blocks per CTA on S * rem CTAs instead of a whole
// tile's K on rem of them. The splits of a tile meet in the kernel's split-K fix-up through a per-stream workspace:
// each writes its FP32 partial, fences and counts itself in, the last one reads the other S - 1 back. Priced in K
// blocks: the split's range, kTailFixupKBlocks and kTailReadKBlocks per partial read back; S is the cheapest with
// S * rem <= grid (one round) and at least kTailMinKBlocks per split, taken when it saves at least kTailMinGain of the
// launch and its workspace is within kMaxTailWorkspaceBytes (a tail of more than half a wave stays whole).
// `forced`: 0 the rule (M > 128, at least one whole wave, tiles at least 128 wide), 1 never, S >= 2 that split count
// (at most K's blocks) whenever the config allows a tail, even if the splits then take several rounds (also with no
// whole wave: every tile in the tail).
// NOTE: measured (perf log "GEMM v32 probes", "GEMM v33"): a round of fix-ups with S = 3 costs ~6 us at 128 x 192 x
// 7168 (~10 K blocks; reading the two other partials ~2.5 us of it); 8192x2112x7168 (5 waves + 44 tiles) 195 -> 182 us
// cut 3 ways. Ranges that cross tiles (stream-K: a CTA's range ends one tile and starts the next, two fix-ups per CTA)
// were slower than whole tiles at 4096x2112x7168 and 2048x2112x7168 (tails of 2/3 of a wave) and gained only half as
// much at 8192x2112x7168.
inline constexpr double kTailFixupKBlocks = 6.0;
inline constexpr double kTailReadKBlocks = 2.0;
inline constexpr int kTailMinKBlocks = 8;
inline constexpr double kTailMinGain = 0.03;
inline constexpr int64_t kMaxTailWorkspaceBytes = int64_t(64) << 20;

// Bytes of the tail's partial slots (every tail tile gets tail_splits slots of BLOCK_M x BLOCK_N FP32).
inline int64_t tail_workspace_bytes(const Sm90Fp8Config& c, int64_t tail_tiles) {
    return tail_tiles * c.tail_splits * c.block_m * c.block_n * 4;
}

inline void choose_tail_split(Sm90Fp8Config& c, Sm90Fp8Kind kind, int m, int n, int k, int num_sms, int forced = 0) {
    c.num_whole = 0;
    c.tail_splits = 0;
    // NOTE: mirrors the kernel's DenseScheduler<..., kTail> (sm90_fp8_gemm_1d2d_impl).
    if (kind != Sm90Fp8Kind::k1D2D || c.cluster_m != 1 || c.k_ways != 1 || c.pipeline == 2 || c.num_splits != 1 ||
        num_sms < 1 || forced == 1)
        return;
    const int64_t tiles = static_cast<int64_t>(ceil_div_i(m, c.block_m)) * ceil_div_i(n, c.block_n);
    const int64_t grid = num_sms, full = tiles / grid, rem = tiles % grid;
    // NOTE: the price is measured for wide tiles after whole waves only (a K block of a 128 x 192 tile ~0.6 us); a
    // narrow tile's K block is far shorter than the fix-up.
    if (forced == 0 && (m <= 128 || full < 1 || c.block_n < 128)) return;
    const int64_t kb = ceil_div_i(k, kBlockK);
    const int64_t tail_tiles = rem > 0 ? rem : (full == 1 ? tiles : 0);  // forced, one exact wave: all of it
    if (tail_tiles == 0) return;
    int64_t splits = 0;
    if (forced == 0) {
        double best = static_cast<double>(kb);  // a whole tile
        for (int64_t sp = 2; sp * tail_tiles <= grid && sp * kTailMinKBlocks <= kb; ++sp) {
            const double cost = static_cast<double>((kb + sp - 1) / sp) + kTailFixupKBlocks +
                                kTailReadKBlocks * static_cast<double>(sp - 1);
            if (cost < best) best = cost, splits = sp;
        }
        if (splits < 2 || (static_cast<double>(kb) - best) / (static_cast<double>(full + 1) * kb) < kTailMinGain)
            return;
    } else {
        splits = std::min<int64_t>(forced, kb);
        if (splits < 2) return;
    }
    // The scheduler's units (whole tiles + tail tiles x splits) are 32-bit.
    if (tiles - tail_tiles + tail_tiles * splits >= (int64_t(1) << 31)) return;
    Sm90Fp8Config t = c;
    t.tail_splits = static_cast<int>(splits);
    if (tail_workspace_bytes(t, tail_tiles) > kMaxTailWorkspaceBytes) return;
    c.tail_splits = t.tail_splits;
    c.num_whole = static_cast<int>(tiles - tail_tiles);
    c.num_ctas = static_cast<int>(grid);
}

// `smem_limit`: the per-block opt-in limit of the device; `num_sms`: get_num_sms().
// `head_left/right`: fp8_gemm_nt_skip_head_mid segments (0 when unused). Returns block_n == 0 if no
// configuration fits (the caller reports it).
//
// Rules, each measured on an H100 SXM (docs/perf_log.md, section sm90_fp8_gemm):
//  * M > 128 (compute-bound): BLOCK_M 128 and BLOCK_N 256, 192, 176, 128 or 160, whichever needs fewer "tile-width
//    waves" (waves * BLOCK_N / rate; BLOCK_N 160 pays ~2% per tile for straddling SFB blocks, BLOCK_N 256
//    -- two 128-column halves per K block -- runs 6-9% faster per FLOP than 128 at full waves: 4096x4096x7168
//    226 -> 206 us, 4096x7168x16384 898 -> 826 us, but 4096x2112x7168 141 -> 153 us on 3 waves of 288 tiles;
//    BLOCK_N 192 in one pass nearly as fast per column as 256: 4096x2112x7168 on 3 waves of 352 tiles 101.0 us
//    against 108.8 for 3 waves of 384 176-wide tiles and 123.4 for 5 waves of 128; 4096x1536x7168 68.2 against
//    75.5 (128), 4096x4608x7168 191.6 against 210.7, 2048x3072x7168 67.6 against 74.5, 4096x32768x512 144.8
//    against 148.7 (256, multicast)).
//    Multicast B across a cluster of 2 when the number of M blocks is even and M >= 512: always for BLOCK_N 256
//    (API, same call, us unicast -> multicast: 4096x24576x1536 273.7 -> 259.2, 4096x32768x512 177.4 -> 169.3,
//    4096x7168x2048 102.2 -> 100.6, 4096x4096x7168 and 4096x7168x16384 equal within noise; a 256-wide tile reads
//    48 KiB per K block from the L2, 6 TB/s over the whole card at 4096x4096x7168), for BLOCK_N 128/160 from
//    K = 12288 (with K <= 7168 unicast measured 0-4% faster, e.g. 4096x32768x512: 177.1 vs 185.2 us; at K = 16384
//    multicast 1% faster), never for 192 (4096x2112x7168, one pass: 101.5 unicast, 108.0 multicast).
//  * M <= 128 (memory-bound): BLOCK_M 64 (M <= 64; for 64 < M <= 128 when the model finds it strictly cheaper:
//    two M blocks of a wider tile read fewer bytes per CTA, 128x2112x7168 17.8 -> 15.0 us with 64 x 32 tiles
//    against 128 x 16) or 128, and the BLOCK_N (16..160) that minimises the busiest SM's
//    bytes + math (cost model below), with 2-3 K ways (small_m_k_ways) from 16 K blocks on; for 1D1D, if even BLOCK_N
//    64 leaves more than half the SMs idle on a long K, split K (up to 4 ways, at least 8 K blocks per split) with
//    BLOCK_N 64 to feed every SM.
inline Sm90Fp8Config choose_sm90_fp8_config_model(Sm90Fp8Kind kind, int m, int n, int k, int num_sms, int smem_limit,
                                                  int head_left = 0, int head_right = 0) {
    Sm90Fp8Config best;
    best.block_n = 0;
    int block_m = m <= 64 ? 64 : 128;
    int num_m_blocks = ceil_div_i(m, block_m);
    const int num_k_blocks = ceil_div_i(k, kBlockK);
    auto finish = [&](int block_n, int splits, bool multicast) {
        Sm90Fp8Config c;
        c.block_m = block_m;
        c.block_n = block_n;
        c.k_ways = kind == Sm90Fp8Kind::k1D2D && splits == 1 ? small_m_k_ways(m, block_m, block_n, num_k_blocks) : 1;
        c.chunk_n = pick_chunk_n(kind, block_n, head_left, head_right);
        // NOTE: 128 x 256 tiles (1D2D, one K way) take a fourth stage, staging their output through a ring of two
        // 64-column chunks (Cfg::kDRing) instead of the whole 64 KiB tile. Measured (H100, API, settled card, us,
        // 3 -> 4 stages, both with the epilogue first): 4096x4096x7168 179.5 -> 177.3, 4096x24576x1536 254.8 ->
        // 251.2, 4096x7168x2048 101.5 -> 100.5, 4096x32768x512 equal. The 176-wide tile keeps 4 stages (5 with
        // the ring: 113.4 against 108.4 us).
        fit_stages(c, kind, k, smem_limit);
        // NOTE: measured (H100, harness, M = 4096, against the plain loop): early issue 2.5-4.5% faster at
        // K >= 7168 but 1-7.5% slower at K = 1536 and 512 (the wait for the next tile's first stage, few stages
        // ahead of a new tile's loads, then sits before the epilogue; with the next stage's wait moved off the
        // critical path (perf log v24) still 5-9% slower at K = 1536 / 2048); pipelined with the epilogue first 3%
        // faster at K = 1536 and 2048, and since the multicast 256-wide tiles and v24 also at K = 512 (4 K blocks
        // per tile: 4096x32768x512 165 -> 148 us; it was 10% slower with the unicast tiles before).
        // NOTE (M > 128): since the next stage's wait left the critical path (perf log v24), the epilogue-first
        // order also wins at long K (API, settled card, us, early issue -> epilogue first): 4096x4096x7168 191.0 ->
        // 179.5, 4096x7168x16384 694.7 -> 672.9 (4 stages), 4096x2112x7168 113.2 -> 108.4 (perf log v28).
        const int tile_k_blocks = ceil_div_i(num_k_blocks, splits);
        const int long_k_pipeline = m > 128 ? 1 : 2;
        c.pipeline = c.k_ways > 1 ? 2 : (tile_k_blocks >= 32 ? long_k_pipeline : (tile_k_blocks >= 4 ? 1 : 0));
        c.cluster_m = multicast ? 2 : 1;
        c.num_splits = splits;
        const int64_t units = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, block_n) * splits;
        c.num_ctas = static_cast<int>(std::min<int64_t>(units, num_sms));
        if (multicast) c.num_ctas = std::max(2, c.num_ctas / 2 * 2);
        c.threads = 128 * (block_m / 64 * c.k_ways + 1);
        return c;
    };
    auto usable = [&](int block_n) {
        if (kind == Sm90Fp8Kind::k1D2D && !sfb_straddle_ok(block_n)) return false;
        if (pick_chunk_n(kind, block_n, head_left, head_right) == 0) return false;
        return sm90_fp8_smem_bytes(kind, block_m, block_n, 2) <= smem_limit;
    };

    if (m > 128) {
        const bool multicast_ok = m >= 512 && num_m_blocks % 2 == 0 && num_sms >= 2;
        double best_cost = 1e300;
        int best_n = 0;
        const int max_n = kind == Sm90Fp8Kind::k1D2D ? 256 : 128;
        for (int block_n : {128, 256, 192, 176, 160, 112, 96, 64, 32, 16}) {
            if (block_n > max_n || !usable(block_n)) continue;
            const int64_t tiles = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, block_n);
            const int64_t waves = (tiles + num_sms - 1) / num_sms;
            // NOTE: narrower tiles only when 128/160 cannot be used (e.g. head-split segments): measured,
            // BLOCK_N 64-112 lose 10-25% per FLOP at M = 4096.
            // NOTE: 192 and 176 priced from measurements (H100, API, perf log v29). At K = 7168, us per tile-width
            // wave: 256 0.173, 192 (one pass) 0.176, 176 (one pass over up to three SFB blocks) 0.208, so 192 ~1.06
            // and 176 ~0.90. At K = 512, 42 waves of 192 ran 2.6% faster than 32 waves of 256 (4096x32768x512:
            // 144.8 vs 148.7 us), which 1.07 reproduces; the long-K shapes this flips to 192 (e.g. 8192x8192) have
            // both tiles within 2% in the model.
            const double eff = block_n == 128   ? 1.0
                               : block_n == 256 ? 1.08
                               : block_n == 192 ? 1.07
                               : block_n == 160 ? 0.98
                               : block_n == 176 ? 0.90
                                                : 0.5;
            const double cost = static_cast<double>(waves) * block_n / eff;
            if (cost < best_cost) best_cost = cost, best_n = block_n;
        }
        if (best_n == 0) return best;
        const bool multicast =
            multicast_ok && (best_n == 256 || (k >= 12288 && best_n <= 160 && (best_n / 2) % 8 == 0));
        Sm90Fp8Config c = finish(best_n, 1, multicast);
        choose_tail_split(c, kind, m, n, k, num_sms);
        return c;
    }

    // NOTE: per-SM rates in arbitrary units: FP8 math 1400/132 "TFLOPS", loads 4 * 3 / 132 "TB/s".
    const double math_rate = 1400.0 / 132.0 * 1e12, load_rate = 12.0 / 132.0 * 1e12;
    double best_cost = 1e300;
    int best_n = 0, best_m = block_m;
    // 1D2D with 64 < M <= 128 also tries BLOCK_M 64 (two M blocks); it is taken only when its cost is below 85% of
    // BLOCK_M 128's (the model is coarse: 128x7168x2048 at 64 x 64 measured 14.3 us against 12.6 at 128 x 64).
    const bool try_bm64 = kind == Sm90Fp8Kind::k1D2D && m > 64;
    for (const int bm : {128, 64}) {
        if (bm != block_m && !(bm == 64 && try_bm64)) continue;
        block_m = bm;
        num_m_blocks = ceil_div_i(m, block_m);
        double pass_cost = 1e300;
        int pass_n = 0;
        for (int block_n = 16; block_n <= 160; block_n += 16) {
            if (kind == Sm90Fp8Kind::k1D1D && block_n > 128) continue;
            if (!usable(block_n)) continue;
            const int64_t tiles = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, block_n);
            const int ctas = static_cast<int>(std::min<int64_t>(tiles, num_sms));
            const int64_t waves = (tiles + ctas - 1) / ctas;
            const double kk = static_cast<double>(num_k_blocks) * kBlockK;
            const double t_math = 2.0 * block_m * block_n * kk / math_rate;
            const double t_load = (block_m + block_n) * kk / load_rate;
            const double cost = static_cast<double>(waves) * std::max(t_math, t_load);
            if (cost < pass_cost * (1.0 - 1e-9) || (cost <= pass_cost * (1.0 + 1e-9) && block_n > pass_n))
                pass_cost = cost, pass_n = block_n;
        }
        const bool take = best_n == 0 || (bm == 64 && m > 64 ? pass_cost < 0.85 * best_cost : pass_cost < best_cost);
        if (pass_n != 0 && take) best_cost = pass_cost, best_n = pass_n, best_m = bm;
    }
    block_m = best_m;
    num_m_blocks = ceil_div_i(m, block_m);
    if (best_n == 0) return best;
    // NOTE: split-K only for 1D1D, whose epilogue reduce-adds into D (no workspace). The 1D2D kernel
    // supports split-K with an in-kernel fix-up, but on an H100 (cold L2) it measured no faster than the
    // best unsplit BLOCK_N for the seed shapes (e.g. 64x2112x7168: 16.8 vs 16.7 us), so it is not chosen.
    if (kind == Sm90Fp8Kind::k1D1D && usable(64)) {
        const int64_t tiles64 = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, 64);
        if (tiles64 * 2 <= num_sms && num_k_blocks >= 16) {
            const int splits = static_cast<int>(std::min<int64_t>({4, num_sms / tiles64, num_k_blocks / 8}));
            if (splits >= 2) return finish(64, splits, false);
        }
    }
    return finish(best_n, 1, false);
}

// Experiment knob: DG_SM90_FP8_FORCE="block_n,stages,cluster_m[,ctas[,k_ways[,block_m[,loop[,tail]]]]]" (0 or
// missing = keep the heuristic's value) replaces parts of a 1D2D config, for A/B timing through the real API
// (benchmarks, probes). Returns the config unchanged when the variable is unset or the forced config cannot run (the
// reason goes to stderr); a forced cluster of 2 is dropped when BLOCK_N / 2 is not a multiple of 8 or the M blocks
// are odd.
struct Sm90Fp8Force {
    // loop: 1 + the main-loop variant (kPipeline: 0 plain, 1 pipelined with the epilogue first, 2 early issue).
    // tail: the split tail (choose_tail_split's `forced`: 1 off, S >= 2 that many K splits of each tail tile).
    int block_n = 0, stages = 0, cluster_m = 0, ctas = 0, k_ways = 0, block_m = 0, loop = 0, tail = 0;
    // Every field, in one place: comparison, hashing and any() read them through this list, so a new field
    // cannot be left out of one of them.
    std::array<int, 8> fields() const { return {block_n, stages, cluster_m, ctas, k_ways, block_m, loop, tail}; }
    bool any() const {
        for (int v : fields())
            if (v > 0) return true;
        return false;
    }
    bool operator==(const Sm90Fp8Force& o) const { return fields() == o.fields(); }
};

inline Sm90Fp8Force sm90_fp8_force_from_env() {
    Sm90Fp8Force f;
    const char* v = std::getenv("DG_SM90_FP8_FORCE");
    if (v == nullptr || v[0] == '\0') return f;
    std::sscanf(v, "%d,%d,%d,%d,%d,%d,%d,%d", &f.block_n, &f.stages, &f.cluster_m, &f.ctas, &f.k_ways, &f.block_m,
                &f.loop, &f.tail);
    return f;
}

inline Sm90Fp8Config apply_sm90_fp8_force(const Sm90Fp8Config& base, const Sm90Fp8Force& f, Sm90Fp8Kind kind, int m,
                                          int n, int k, int num_sms, int smem_limit, int head_left = 0,
                                          int head_right = 0) {
    if (!f.any() || base.block_n == 0) return base;
    Sm90Fp8Config c = base;
    if (f.block_n > 0) c.block_n = f.block_n;
    if (f.block_m > 0) c.block_m = f.block_m;
    if (f.cluster_m > 0) c.cluster_m = f.cluster_m;
    if (f.k_ways > 0) c.k_ways = f.k_ways;
    // The model's K ways were chosen for its own tile: keep the most a forced tile allows (an explicit K-way
    // count is kept as given and rejected below if illegal).
    while (f.k_ways == 0 && c.k_ways > 1 && !k_ways_ok(c.block_m, c.block_n, c.k_ways)) --c.k_ways;
    if (c.k_ways > 1) c.pipeline = 2;
    if (f.loop > 0) c.pipeline = f.loop - 1;
    c.chunk_n = pick_chunk_n(kind, c.block_n, head_left, head_right);
    if (f.stages > 0)
        c.stages = f.stages;
    else
        fit_stages(c, kind, k, smem_limit);
    const int num_m_blocks = ceil_div_i(m, c.block_m);
    if (c.cluster_m == 2 && ((c.block_n / 2) % 8 != 0 || num_m_blocks % 2 != 0)) c.cluster_m = 1;
    // A forced stage count that does not fit beside the whole output tile narrows the ring's chunks until it does
    // (e.g. 128 x 192 with 5 stages: 32-column chunks).
    fit_output_ring(c, kind, smem_limit);
    c.threads = 128 * (c.block_m / 64 * c.k_ways + 1);
    const bool ok = (c.block_m == 64 || c.block_m == 128) && k_ways_ok(c.block_m, c.block_n, c.k_ways) &&
                    c.block_n % 8 == 0 && c.block_n >= 8 && c.block_n <= 256 && c.chunk_n > 0 &&
                    (kind != Sm90Fp8Kind::k1D2D || sfb_straddle_ok(c.block_n)) && c.stages >= 2 &&
                    c.smem_bytes <= smem_limit && (c.cluster_m == 1 || c.cluster_m == 2) && c.pipeline >= 0 &&
                    c.pipeline <= 2 && (c.k_ways == 1 || c.pipeline == 2);
    if (!ok) {
        std::fprintf(stderr,
                     "[dg] DG_SM90_FP8_FORCE=%d,%d,%d,%d,%d,%d,%d,%d cannot run M=%d N=%d K=%d; using the heuristic\n",
                     f.block_n, f.stages, f.cluster_m, f.ctas, f.k_ways, f.block_m, f.loop, f.tail, m, n, k);
        return base;
    }
    const int64_t units = static_cast<int64_t>(num_m_blocks) * ceil_div_i(n, c.block_n);
    c.num_ctas = static_cast<int>(std::min<int64_t>(units, f.ctas > 0 ? f.ctas : num_sms));
    if (c.cluster_m == 2) c.num_ctas = std::max(2, c.num_ctas / 2 * 2);
    // NOTE: the split tail follows the forced tile and grid.
    choose_tail_split(c, kind, m, n, k, c.num_ctas < num_sms && f.ctas > 0 ? c.num_ctas : num_sms, f.tail);
    return c;
}

// The config the launchers use: the model above, then DG_SM90_FP8_FORCE (1D2D only) when set.
inline Sm90Fp8Config choose_sm90_fp8_config(Sm90Fp8Kind kind, int m, int n, int k, int num_sms, int smem_limit,
                                            int head_left = 0, int head_right = 0) {
    const Sm90Fp8Config c = choose_sm90_fp8_config_model(kind, m, n, k, num_sms, smem_limit, head_left, head_right);
    if (kind != Sm90Fp8Kind::k1D2D) return c;
    return apply_sm90_fp8_force(c, sm90_fp8_force_from_env(), kind, m, n, k, num_sms, smem_limit, head_left,
                                head_right);
}

}  // namespace dg::heuristics
