"""CPU checks of the dense tile scheduler (dg_core/scheduler/dense.cuh) against the config heuristic.

The scheduler's own header is compiled for the host (nvcc as the C++ driver, for the CUDA headers; the CUDA built-ins
it reads, blockIdx and gridDim, are plain variables here) and every CTA of a launch is walked in turn. For configs
that the heuristic (csrc/heuristics/sm90_fp8.hpp) returns, with and without a split tail and with uniform split-K,
the walk must cover every K block of every tile exactly once; the units that share a tile must agree on their
count, hold distinct ranks below it and stay inside the workspace the launcher sizes (partial slots and counters);
whole tiles must come whole, the whole tiles before a tail must fill whole waves, and no CTA may take more than its
share: its whole waves plus one split per round of the tail.

Needs NVCC (skipped otherwise); no GPU.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]
INCLUDE = PKG / "src" / "dg" / "core" / "include"
HEURISTICS = PKG / "csrc" / "heuristics"

MAIN = r"""
#define __host__
#define __device__
#define __forceinline__ inline
#define __shfl_sync(mask, v, lane) (v)
#define __shfl_up_sync(mask, v, d) (v)
struct HostDim3 { unsigned int x = 0, y = 0, z = 0; };
static HostDim3 blockIdx, gridDim, threadIdx;
#include <dg_core/scheduler/dense.cuh>
#include <sm90_fp8.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

using namespace dg;
using namespace dg::heuristics;

static int fail(const char* what, long a, long b) {
    std::printf("FAIL %s (%ld, %ld)\n", what, a, b);
    return 1;
}

template <unsigned int BM, unsigned int BN, bool kTail>
static int walk_as(const Sm90Fp8Config& c, unsigned int m, unsigned int n, unsigned int k, unsigned int uniform) {
    const unsigned int mb = (m + BM - 1) / BM, nb = (n + BN - 1) / BN, kb = (k + 127) / 128, tiles = mb * nb;
    const unsigned int grid = static_cast<unsigned int>(c.num_ctas);
    const bool tail = c.tail_splits > 0;
    const unsigned int tail_tiles = tail ? tiles - c.num_whole : 0, splits = tail ? c.tail_splits : uniform;
    // What the launcher provides: tail_tiles x splits partial slots and tail_tiles counters per row group (the
    // harness's uniform split-K: tiles x splits slots, tiles counters).
    const unsigned long long slots = tail ? 1ull * tail_tiles * splits : 1ull * tiles * uniform;
    const unsigned int counters = tail ? tail_tiles : tiles;
    const unsigned int whole = tail ? static_cast<unsigned int>(c.num_whole) : 0;
    if (whole % grid != 0) return fail("whole tiles not whole waves", whole, grid);
    std::vector<std::vector<char>> seen(tiles, std::vector<char>(kb, 0));
    std::map<unsigned int, std::vector<int>> ranks;  // tile -> ranks seen
    std::map<unsigned int, unsigned int> count;      // tile -> num_splits reported
    std::vector<unsigned long long> work(grid, 0);
    gridDim.x = grid;
    for (unsigned int cta = 0; cta < grid; ++cta) {
        blockIdx.x = cta;
        sched::DenseScheduler<BM, BN, 16, kTail> s(m, n, k, uniform > 1 ? uniform : 1u,
                                                   static_cast<unsigned int>(c.num_whole),
                                                   static_cast<unsigned int>(c.tail_splits));
        sched::Tile t;
        unsigned int guard = 0;
        while (s.next(t)) {
            if (++guard > 4 * tiles * (splits + 1) + 8) return fail("endless schedule", cta, guard);
            if (t.tile_id >= tiles) return fail("tile out of range", t.tile_id, tiles);
            if (t.m_block >= mb || t.n_block >= nb) return fail("block out of range", t.m_block, t.n_block);
            if (t.kb_begin >= t.kb_end || t.kb_end > kb) return fail("bad K range", t.kb_begin, t.kb_end);
            if (t.rows_valid == 0 || t.rows_valid > BM) return fail("rows_valid", t.rows_valid, BM);
            for (unsigned int x = t.kb_begin; x < t.kb_end; ++x) {
                if (seen[t.tile_id][x]) return fail("K block covered twice", t.tile_id, x);
                seen[t.tile_id][x] = 1;
            }
            work[cta] += t.kb_end - t.kb_begin;
            const unsigned int t_splits = s.splits_of(t), t_split_tile = s.split_tile_of(t);
            if (t_splits == 1) {
                if (t.kb_begin != 0 || t.kb_end != kb) return fail("single unit not whole", t.tile_id, t.kb_end);
                if (tail && t.tile_id >= whole) return fail("tail tile whole", t.tile_id, 0);
                continue;
            }
            if (tail && t.tile_id < whole) return fail("whole tile split", t.tile_id, 0);
            if (t_splits != splits) return fail("split count", t_splits, splits);
            if (t.split >= t_splits) return fail("rank >= count", t.split, t_splits);
            if (t_split_tile >= counters) return fail("counter out of range", t_split_tile, counters);
            const unsigned long long slot = 1ull * t_split_tile * s.slot_stride() + t.split;
            if (slot >= slots) return fail("slot out of range", slot, slots);
            if (count.count(t.tile_id) && count[t.tile_id] != t_splits) return fail("counts differ", t.tile_id, 0);
            count[t.tile_id] = t_splits;
            ranks[t.tile_id].push_back(static_cast<int>(t.split));
        }
    }
    for (unsigned int tile = 0; tile < tiles; ++tile) {
        for (unsigned int x = 0; x < kb; ++x)
            if (!seen[tile][x]) return fail("K block never covered", tile, x);
        if (count.count(tile)) {
            std::vector<int>& r = ranks[tile];
            if (r.size() != count[tile]) return fail("units of a tile != its count", tile, r.size());
            std::vector<char> hit(count[tile], 0);
            for (int v : r) {
                if (hit[v]) return fail("rank repeated", tile, v);
                hit[v] = 1;
            }
        }
    }
    unsigned int rounds = 0;
    if (tail) {
        rounds = (tail_tiles * splits + grid - 1) / grid;
        const unsigned long long share = 1ull * whole / grid * kb + 1ull * rounds * ((kb + splits - 1) / splits);
        for (unsigned int cta = 0; cta < grid; ++cta)
            if (work[cta] > share) return fail("a CTA above its share", work[cta], share);
    }
    std::printf("ok tiles=%u tail_tiles=%u splits=%d rounds=%u\n", tiles, tail_tiles, c.tail_splits, rounds);
    return 0;
}

// The kernel's instance: its own (kTail) for a split tail, which needs one K way, no cluster and not the early-issue
// loop; the uniform split-K of the harness also runs on the instance with the tail state.
template <unsigned int BM, unsigned int BN>
static int walk(const Sm90Fp8Config& c, unsigned int m, unsigned int n, unsigned int k, unsigned int uniform) {
    if (c.tail_splits > 0 && (c.cluster_m != 1 || c.k_ways != 1 || c.pipeline == 2))
        return fail("a tail on an instance that cannot take one", c.tail_splits, c.pipeline);
    if (c.tail_splits > 0 || uniform > 1) {
        if (const int r = walk_as<BM, BN, true>(c, m, n, k, uniform)) return r;
    }
    return c.tail_splits > 0 ? 0 : walk_as<BM, BN, false>(c, m, n, k, uniform);
}

int main(int argc, char** argv) {
    const int m = std::atoi(argv[1]), n = std::atoi(argv[2]), k = std::atoi(argv[3]), sms = std::atoi(argv[4]);
    const unsigned int uniform = static_cast<unsigned int>(std::atoi(argv[5]));  // > 1: uniform split-K, no tail
    Sm90Fp8Config c = choose_sm90_fp8_config(Sm90Fp8Kind::k1D2D, m, n, k, sms, 232448);
    if (uniform > 1) {
        c.tail_splits = 0;
        c.num_whole = 0;
    }
    const int key = c.block_m * 1000 + c.block_n;
    switch (key) {
        case 128192: return walk<128, 192>(c, m, n, k, uniform);
        case 128160: return walk<128, 160>(c, m, n, k, uniform);
        case 128128: return walk<128, 128>(c, m, n, k, uniform);
        case 128256: return walk<128, 256>(c, m, n, k, uniform);
        case 128176: return walk<128, 176>(c, m, n, k, uniform);
        case 64016: return walk<64, 16>(c, m, n, k, uniform);
        case 64032: return walk<64, 32>(c, m, n, k, uniform);
        case 64064: return walk<64, 64>(c, m, n, k, uniform);
        default: std::printf("SKIP tile %d x %d\n", c.block_m, c.block_n); return 0;
    }
}
"""




@pytest.fixture(scope="module")
def exe(nvcc, tmp_path_factory):
    d = tmp_path_factory.mktemp("sched")
    (d / "main.cpp").write_text(MAIN)
    r = subprocess.run(
        [nvcc, "-x", "c++", "-std=c++20", "-O1", f"-I{INCLUDE}", f"-I{HEURISTICS}", str(d / "main.cpp"), "-o",
         str(d / "walk")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return d / "walk"


def run(exe, m, n, k, sms=132, uniform=0, force=None):
    env = dict(os.environ)
    env.pop("DG_SM90_FP8_FORCE", None)
    if force is not None:
        env["DG_SM90_FP8_FORCE"] = force
    r = subprocess.run([str(exe), str(m), str(n), str(k), str(sms), str(uniform)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0 and not r.stdout.startswith("FAIL"), f"{m}x{n}x{k} sms={sms} {force}: {r.stdout}"
    return r.stdout


@pytest.mark.parametrize(
    "m,n,k,splits",
    [
        (8192, 2112, 7168, 3),  # 704 tiles of 128 x 192: 5 waves + 44, cut 3 ways (one round of 132)
        (8448, 2112, 7168, 2),  # 5 waves + 66
        (9472, 2112, 7168, 4),  # 6 waves + 33
        (4352, 3072, 7168, 4),  # 128-wide tiles
        (4096, 2112, 7168, 0),  # a tail of 88 (2/3 of a wave): whole
        (2048, 2112, 7168, 0),  # 160-wide tiles, a tail of 92
        (4096, 4096, 7168, 0),  # B multicast: no tail
        (6144, 2112, 7168, 0),  # exactly 4 waves
        (64, 2112, 7168, 0),  # small M
        (4096, 32768, 512, 0),  # 4 K blocks per tile
    ],
)
def test_model_configs(exe, m, n, k, splits):
    out = run(exe, m, n, k)
    assert out.startswith("ok") and f"splits={splits} " in out, out
    if splits:
        assert "rounds=1" in out, out


@pytest.mark.parametrize("sms", [132, 114, 78, 7])
@pytest.mark.parametrize("splits", [2, 3, 7])
def test_forced_tails_on_ragged_shapes(exe, sms, splits):
    # The eighth force field S >= 2 forces a tail of S splits wherever the config allows one: also with no whole wave
    # (every tile in the tail), several rounds of splits, partial last M / N tiles and a partial last K block.
    for m, n, k in [(4097, 2112, 7168), (2049, 576, 7168), (1000, 1000, 1040), (129, 2112, 7168), (4096, 4224, 256)]:
        out = run(exe, m, n, k, sms=sms, force=f"0,0,0,0,0,0,0,{splits}")
        assert out.startswith(("ok", "SKIP")), out


def test_uniform_split_k_is_unchanged(exe):
    for splits in (2, 3, 7):
        assert run(exe, 2049, 576, 7168, uniform=splits).startswith("ok")
        assert run(exe, 64, 2112, 7168, uniform=splits).startswith("ok")


def test_random_shapes(exe):
    rng = random.Random(0)
    for _ in range(40):
        m = rng.choice([129, 257, 1000, 2048, 3000, 4096, 4097, 6000, 8192, 9472, 12800])
        n = rng.choice([576, 1000, 2112, 3072, 4224, 7168])
        k = rng.choice([256, 1040, 2048, 7168, 16384])
        sms = rng.choice([132, 120, 66, 16])
        force = rng.choice([None, "0,0,0,0,0,0,0,2", "0,0,0,0,0,0,0,5"])
        out = run(exe, m, n, k, sms=sms, force=force)
        assert out.startswith(("ok", "SKIP")), out
