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
