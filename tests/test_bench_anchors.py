"""The committed anchors and the benchmark routines read them the same way (no GPU): every anchor case the routines
compare against has the numbers its speedup needs."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = json.loads((ROOT / "benchmarks" / "anchors" / "h100_2026-11-25.json").read_text())


def _routine(name: str):
    spec = importlib.util.spec_from_file_location(f"routine_{name}", ROOT / "benchmarks" / "routines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paged_anchor_cases_carry_deepgemm_throughput():
    # Random context lengths: the paged speedup is a throughput ratio, so each case needs DeepGEMM's TFLOPS.
    indexer = _routine("indexer")
    _, paged, meta = indexer._anchor_lists(types.SimpleNamespace(anchors=ANCHORS))
    assert [(b, n, c) for b, n, c, _, _ in paged] == [(64, 1, 8192), (128, 2, 16384), (32, 1, 65536)]
    for _, _, _, us, tflops in paged:
        assert us > 0 and tflops > 0
    assert paged == [tuple(case) for case in indexer.DEFAULT_PAGED]
    assert meta


def test_routine_defaults_match_the_anchors_without_an_anchor_file():
    indexer = _routine("indexer")
    mqa, paged, _ = indexer._anchor_lists(types.SimpleNamespace(anchors={}))
    assert mqa == indexer.DEFAULT_MQA and paged == indexer.DEFAULT_PAGED


def test_gemm_bound_and_summary():
    gemm = _routine("sm90_fp8_gemm")
    # 64x2112x7168 moves ~15.9 MB: 5.3 us at 3000 GB/s after a 4 us floor; its FLOPs take far less at 1386 TFLOPS.
    nbytes, flops = 15.9e6, 2.0 * 64 * 2112 * 7168
    assert abs(gemm.bound_us(nbytes, flops, 4.0, 3000.0, 1386.0) - 9.3) < 1e-9
    # Compute-bound: the FLOPs set the time.
    assert abs(gemm.bound_us(1e6, 1386e6 * 100, 4.0, 3000.0, 1386.0) - 104.0) < 1e-9
    rows = [{"M": 64, "speedup vs DeepGEMM": 1.21, "speedup vs cuBLASLt": 2.0, "DeepGEMM / bound": 1.5,
             "% of bound": 50.0},
            {"M": 128, "speedup vs DeepGEMM": 1.0, "speedup vs cuBLASLt": None, "DeepGEMM / bound": 1.5,
             "% of bound": 72.0},
            {"M": 4096, "speedup vs DeepGEMM": 0.9, "speedup vs cuBLASLt": 1.1, "DeepGEMM / bound": 1.02,
             "% of bound": 88.0}]
    text = gemm.summary(rows)
    assert "| M <= 128 | 2 | 1.100 | 2.000 | 1.500 | 60.0 |" in text
    assert "| M = 4096 | 1 | 0.900 | 1.100 | 1.020 | 88.0 |" in text
