"""The benchmark harness's host-side pieces (no GPU): the settle pause setting and the card-state reading."""

from __future__ import annotations

import types

import pytest
from dg.core import benchmark


def test_settle_default_and_override(monkeypatch):
    monkeypatch.delenv("DG_BENCH_SETTLE_S", raising=False)
    assert benchmark.settle_seconds() == benchmark.DEFAULT_SETTLE_S
    monkeypatch.setenv("DG_BENCH_SETTLE_S", "0")
    assert benchmark.settle_seconds() == 0.0
    monkeypatch.setenv("DG_BENCH_SETTLE_S", " 2.5 ")
    assert benchmark.settle_seconds() == 2.5
    monkeypatch.setenv("DG_BENCH_SETTLE_S", "-3")
    assert benchmark.settle_seconds() == 0.0


def test_settle_rejects_garbage(monkeypatch):
    monkeypatch.setenv("DG_BENCH_SETTLE_S", "five")
    with pytest.raises(ValueError, match="DG_BENCH_SETTLE_S"):
        benchmark.settle_seconds()


def test_case_settle_default_and_override(monkeypatch):
    monkeypatch.delenv("DG_BENCH_CASE_SETTLE_S", raising=False)
    assert benchmark.case_settle_seconds() == benchmark.DEFAULT_CASE_SETTLE_S
    monkeypatch.setenv("DG_BENCH_CASE_SETTLE_S", "0.25")
    assert benchmark.case_settle_seconds() == 0.25
    monkeypatch.setenv("DG_BENCH_CASE_SETTLE_S", "x")
    with pytest.raises(ValueError, match="DG_BENCH_CASE_SETTLE_S"):
        benchmark.case_settle_seconds()


def test_card_state_reads_and_scales_nvml_values():
    cuda = types.SimpleNamespace(clock_rate=lambda: 1980, temperature=lambda: 41, power_draw=lambda: 131300)
    state = benchmark.card_state(types.SimpleNamespace(cuda=cuda))
    assert state == {"sm_clock_mhz": 1980, "temperature_c": 41, "power_w": 131.3}


def test_card_state_without_nvml_is_none_not_an_error():
    def missing():
        raise ModuleNotFoundError("pynvml")

    cuda = types.SimpleNamespace(clock_rate=missing, temperature=missing, power_draw=missing)
    assert benchmark.card_state(types.SimpleNamespace(cuda=cuda)) == {
        "sm_clock_mhz": None, "temperature_c": None, "power_w": None}
