"""DG_SM90_FP8_FORCE (experiment knob of heuristics/sm90_fp8.hpp): forced fields replace the model's, illegal
forces fall back to the model with a message, and 1D1D ignores the knob. CPU only (host C++ compiled with g++)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HEURISTICS = Path(__file__).resolve().parents[1] / "csrc" / "heuristics" / "sm90_fp8.hpp"

MAIN = r"""
#include "sm90_fp8.hpp"
#include <cstdio>
using namespace dg::heuristics;
int main(int argc, char** argv) {
    int m = std::atoi(argv[1]), n = std::atoi(argv[2]), k = std::atoi(argv[3]);
    Sm90Fp8Kind kind = std::atoi(argv[4]) == 0 ? Sm90Fp8Kind::k1D2D : Sm90Fp8Kind::k1D1D;
    Sm90Fp8Config c = choose_sm90_fp8_config(kind, m, n, k, 132, 232448);
    std::printf("%d %d %d %d %d %d %d %d %d\n", c.block_n, c.stages, c.cluster_m, c.num_ctas, c.chunk_n, c.smem_bytes,
                c.pipeline, c.num_whole, c.tail_splits);
}
"""


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("force")
    (d / "main.cpp").write_text(MAIN)
    subprocess.run(
        [cxx, "-std=c++17", "-O1", f"-I{HEURISTICS.parent}", str(d / "main.cpp"), "-o", str(d / "f")],
        check=True,
        capture_output=True,
    )
    return d / "f"


def run(exe, force, m, n, k, kind=0):
    env = dict(os.environ)
    env.pop("DG_SM90_FP8_FORCE", None)
    if force is not None:
        env["DG_SM90_FP8_FORCE"] = force
    r = subprocess.run(
        [str(exe), str(m), str(n), str(k), str(kind)], env=env, capture_output=True, text=True, check=True
    )
    return tuple(map(int, r.stdout.split())), r.stderr


def test_unset_and_empty_keep_the_model(exe):
    base, _ = run(exe, None, 4096, 4096, 7168)
    # two-half 256-wide tiles, B multicast to a cluster of 2, 4 stages (output ring), epilogue-first loop
    assert base[:4] == (256, 4, 2, 132) and base[6] == 1
    assert run(exe, None, 4096, 7168, 16384)[0][:4] == (256, 4, 2, 132)
    # 11 x 32 tiles, single pass, unicast; at 56 K blocks a fifth stage with the output through a 32-column ring
    assert run(exe, None, 4096, 2112, 7168)[0][:5] == (192, 5, 1, 132, 32)
    assert run(exe, None, 4096, 32768, 512)[0][:5] == (192, 4, 1, 132, 64)  # 4 K blocks: the whole output tile
    assert run(exe, None, 4096, 4224, 16384)[0][:4] == (128, 5, 2, 132)  # multicast at long K (128 wide: 8 waves)
    assert run(exe, None, 4096, 4224, 7168)[0][:4] == (128, 5, 1, 132)  # ... not below K = 12288
    assert run(exe, "", 4096, 4096, 7168)[0] == base
    assert run(exe, "0,0,0,0", 4096, 4096, 7168)[0] == base


def test_forced_fields_replace_the_model(exe):
    bn, stages, cl, ctas, chunk, smem = run(exe, "128,0,2", 4096, 4096, 7168)[0][:6]
    assert (bn, stages, cl, ctas) == (128, 5, 2, 132)
    bn, stages, cl, ctas, chunk, smem = run(exe, "160,4,2,128", 4096, 4096, 7168)[0][:6]
    assert (bn, stages, cl, ctas, chunk) == (160, 4, 2, 128, 32) and smem <= 232448
    bn, stages, cl, ctas, chunk = run(exe, "32,0,1", 64, 2112, 7168)[0][:5]
    assert (bn, cl, ctas, chunk) == (32, 1, 66, 32) and stages == 16


def test_cluster_dropped_when_m_blocks_are_odd(exe):
    assert run(exe, "128,0,2", 320, 4096, 7168)[0][2] == 1  # 3 M blocks of 128


@pytest.mark.parametrize("force", ["100,0,1", "128,40,1", "264,0,1", "128,16,1"])
def test_illegal_force_falls_back_with_a_message(exe, force):
    base, _ = run(exe, None, 4096, 4096, 7168)
    got, err = run(exe, force, 4096, 4096, 7168)
    assert got == base
    assert "DG_SM90_FP8_FORCE" in err and "using the heuristic" in err


def test_1d1d_ignores_the_knob(exe):
    assert run(exe, "32,0,1", 4096, 4096, 7168, kind=1)[0] == run(exe, None, 4096, 4096, 7168, kind=1)[0]


def test_loop_field_and_the_ring_stage_count(exe):
    # Seventh field: 1 + the main-loop variant; 256-wide tiles forced without a stage count get the ring's fourth
    # stage, a forced third stage keeps the whole output tile.
    got, err = run(exe, "0,0,0,0,0,0,3", 4096, 4096, 7168)
    assert got[:4] == (256, 4, 2, 132) and got[6] == 2 and not err
    got, _ = run(exe, "256,3,2,0,0,0,1", 4096, 32768, 512)
    assert got[:3] == (256, 3, 2) and got[6] == 0 and got[5] <= 232448
    got, _ = run(exe, "256,0,1", 512, 2112, 1536)
    assert got[:3] == (256, 4, 1) and got[5] <= 232448
    got, err = run(exe, "0,0,0,0,0,0,9", 4096, 4096, 7168)
    assert "cannot run" in err and got == run(exe, None, 4096, 4096, 7168)[0]


def test_forced_two_half_tile_drops_the_models_k_ways(exe):
    # 64x7168x16384: the model runs 64 x 64 tiles with two K ways; a forced 256-wide tile (two halves) takes one K
    # way instead of a configuration the kernel cannot compile; an explicit K-way count with it is rejected.
    got, err = run(exe, "256,0,1", 64, 7168, 16384)
    assert got[0] == 256 and not err
    got, err = run(exe, "256,0,1,0,2", 64, 7168, 16384)
    assert "cannot run" in err and got == run(exe, None, 64, 7168, 16384)[0]


def test_forced_stages_narrow_the_output_ring(exe):
    # A forced stage count that does not fit beside the whole output tile stages it through a ring of narrower chunks;
    # a forced count that fits keeps the whole tile (the A/B baseline of the long-K 192-wide ring).
    got, err = run(exe, "192,5,1", 4096, 32768, 512)
    assert got[:5] == (192, 5, 1, 132, 32) and got[5] <= 232448 and not err
    got, err = run(exe, "192,4,1", 4096, 2112, 7168)
    assert got[:5] == (192, 4, 1, 132, 64) and not err
    got, err = run(exe, "192,6,1", 4096, 2112, 7168)  # six stages leave no room even for 8-column chunks
    assert "cannot run" in err and got == run(exe, None, 4096, 2112, 7168)[0]


def test_split_tail(exe):
    # The model: 8192x2112x7168 runs 5 whole waves of 128 x 192 tiles and cuts the last 44 tiles 3 ways (one round of
    # 132 splits of 18-19 K blocks), 8448x2112x7168 its last 66 tiles 2 ways; none where the tail is more than half a
    # wave (4096x2112x7168: 88 tiles), the tiles fill whole waves, with multicast tiles, short K or small M.
    got = run(exe, None, 8192, 2112, 7168)[0]
    assert got[:4] == (192, 5, 1, 132) and got[7:] == (660, 3)
    assert run(exe, None, 8448, 2112, 7168)[0][7:] == (660, 2)
    for shape in [(4096, 2112, 7168), (6144, 2112, 7168), (4096, 4096, 7168), (4096, 32768, 512), (64, 2112, 7168),
                  (128, 2112, 7168)]:
        assert run(exe, None, *shape)[0][7:] == (0, 0), shape
    # Eighth force field: 1 turns the tail off, S >= 2 forces S splits wherever the config allows a tail (also with
    # no whole wave: every tile in the tail, on every SM; at most K's blocks), and it follows a forced tile; multicast
    # tiles never take one.
    assert run(exe, "0,0,0,0,0,0,0,1", 8192, 2112, 7168)[0][7:] == (0, 0)
    got = run(exe, "0,0,0,0,0,0,0,2", 2049, 576, 7168)[0]
    assert got[3] == 132 and got[7:] == (0, 2)
    assert run(exe, "0,0,0,0,0,0,0,9", 1000, 1000, 256)[0][7:] == (0, 2)  # 2 K blocks: 2 splits at most
    # The workspace cap (64 MiB): 88 tail tiles of 128 x 192 take 6 splits (52 MB), not 8 (69 MB: no tail).
    assert run(exe, "0,0,0,0,0,0,0,6", 4096, 2112, 7168)[0][7:] == (264, 6)
    assert run(exe, "0,0,0,0,0,0,0,8", 4096, 2112, 7168)[0][7:] == (0, 0)
    got, err = run(exe, "128,0,1,0,0,0,0,4", 4096, 2112, 7168)  # 32 x 17 tiles of 128 x 128: 4 waves + 16
    assert got[0] == 128 and got[7:] == (528, 4) and not err
    assert run(exe, "0,0,2,0,0,0,0,2", 4096, 4096, 7168)[0][7:] == (0, 0)
