"""The benchmark harness's host-side pieces (no GPU): the settle pause setting, the card-state reading and the launch
floor's timing call."""

from __future__ import annotations

import types

import pytest
from dg.core import benchmark

PAUSES = [("DG_BENCH_SETTLE_S", "settle_seconds", "DEFAULT_SETTLE_S"),
          ("DG_BENCH_CASE_SETTLE_S", "case_settle_seconds", "DEFAULT_CASE_SETTLE_S")]


@pytest.mark.parametrize("var,reader,default", PAUSES, ids=[p[0] for p in PAUSES])
def test_pause_default_and_override(monkeypatch, var, reader, default):
    read = getattr(benchmark, reader)
    monkeypatch.delenv(var, raising=False)
    assert read() == getattr(benchmark, default)
    for text, seconds in (("0", 0.0), (" 2.5 ", 2.5), ("0.25", 0.25), ("-3", 0.0)):
        monkeypatch.setenv(var, text)
        assert read() == seconds


@pytest.mark.parametrize("var,reader,default", PAUSES, ids=[p[0] for p in PAUSES])
def test_pause_rejects_garbage(monkeypatch, var, reader, default):
    monkeypatch.setenv(var, "five")
    with pytest.raises(ValueError, match=var):
        getattr(benchmark, reader)()


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


def test_launch_floor_times_a_tiny_fill_without_the_pause():
    import torch

    calls = []

    def bench(fn, settle=True):
        fn()
        calls.append(settle)
        return 3.9

    ctx = types.SimpleNamespace(torch=torch, device=torch.device("cpu"), bench=bench)
    assert benchmark.Context.launch_floor_us(ctx) == 3.9
    assert calls == [False]
