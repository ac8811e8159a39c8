"""Benchmark harness: cold-L2 median timing with CUDA events, the card's copy bandwidth, JSON + Markdown output.

Benchmarks are not tests. Routines live in the repository's ``benchmarks/routines/`` folder, one module per op
family, each with ``run(ctx) -> list[dict]``; ``python -m dg bench`` (or ``nox -s sm90``) runs them all and writes
``benchmarks/results/<card>/<routine>.{json,md}``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Context", "run_routines", "to_markdown"]


class Context:
    """What a routine gets: the device, a cold-L2 timer, the card's measured copy bandwidth, peer anchors."""

    def __init__(self, anchors: dict[str, Any] | None = None, reps: int = 50, warmup: int = 10) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("benchmarks need a CUDA GPU; none is visible")
        self.torch = torch
        self.device = torch.device("cuda")
        props = torch.cuda.get_device_properties(self.device)
        self.card = props.name
        self.sm_count = props.multi_processor_count
        self.l2_bytes = getattr(props, "L2_cache_size", 50 * 2**20)
        self.reps = reps
        self.warmup = warmup
        self.anchors = anchors or {}
        self.case_settle_s = case_settle_seconds()
        # NVML reading right after the last `bench` call's timed calls (card_state's keys).
        self.last_state: dict[str, Any] = {}
        # NOTE: twice the L2 size is rewritten before every timed call, so no operand is served from L2.
        self._flush = torch.empty(max(2 * self.l2_bytes, 256 * 2**20) // 4, dtype=torch.int32, device=self.device)
        self.copy_bandwidth_gbs = self._copy_bandwidth()

    def bench(self, fn: Callable[[], Any], reps: int | None = None, warmup: int | None = None,
              settle: bool = True) -> float:
        """Median time of ``fn()`` in microseconds over `reps` calls, each after an L2 flush; with `settle`, after
        an idle pause of ``case_settle_s`` seconds. ``last_state`` then holds the card's NVML reading."""
        torch = self.torch
        reps = reps or self.reps
        if settle and self.case_settle_s > 0:
            torch.cuda.synchronize()
            time.sleep(self.case_settle_s)
        for _ in range(warmup if warmup is not None else self.warmup):
            fn()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self._flush.zero_()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        self.last_state = card_state(torch)
        return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)) * 1e3

    def launch_floor_us(self) -> float:
        """What any single kernel launch costs in this harness: a 16-byte fill timed like every case (cold L2, CUDA
        events), without the idle pause (a launch-bound timing draws no power worth settling)."""
        tiny = self.torch.empty(4, dtype=self.torch.int32, device=self.device)
        return self.bench(tiny.zero_, settle=False)

    def _copy_bandwidth(self) -> float:
        torch = self.torch
        n = 2**30 // 4  # 1 GiB read + 1 GiB written
        src = torch.empty(n, dtype=torch.float32, device=self.device).normal_()
        dst = torch.empty_like(src)
        us = self.bench(lambda: dst.copy_(src), reps=20, warmup=3, settle=False)
        return 2 * n * 4 / (us * 1e-6) / 1e9


def to_markdown(title: str, card: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"## {title}\n\nCard: {card}\n\n(no rows)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return "" if v is None else str(v)

    lines = [f"## {title}", "", f"Card: {card}", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    return "".join(c.lower() if c.isalnum() else "-" for c in name).strip("-")


# Pause before every routine (seconds; DG_BENCH_SETTLE_S). NOTE: an H100 that has just run FP8 GEMMs at its power
# limit stays throttled for a moment: in one process, the 2048 x 8192 MQA-logits case read 206 us on a rested card,
# 272 / 248 us right after 20 s of M = 4096 GEMMs (1275 MHz, 703 W) and 205 us after 5 s idle. Without the pause a
# routine's first cases were timed in the aftermath of whatever ran before (the previous routine, or the GPU tests
# before the first one), so results depended on the order.
DEFAULT_SETTLE_S = 5.0
# Pause before every timed case (seconds; DG_BENCH_CASE_SETTLE_S). NOTE: the same effect inside a routine: in one
# `nox -s sm90` run 4096x4096x7168 read 225.8 us right after the 4096x7168x16384 case, 191.9-194.6 us in a probe
# with a pause before each timing (NVML: 1980 MHz after every timing of that probe).
DEFAULT_CASE_SETTLE_S = 1.0


def _seconds(var: str, default: float) -> float:
    value = os.environ.get(var, "").strip()
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        raise ValueError(f"{var}: expected a number of seconds, got {value!r}") from None


def settle_seconds() -> float:
    return _seconds("DG_BENCH_SETTLE_S", DEFAULT_SETTLE_S)


def case_settle_seconds() -> float:
    return _seconds("DG_BENCH_CASE_SETTLE_S", DEFAULT_CASE_SETTLE_S)


def card_state(torch: Any) -> dict[str, Any]:
    """SM clock (MHz), temperature (C) and power draw (W) as NVML reports them now (coarse: NVML averages power and
    refreshes its readings a few times per second); None where NVML is unavailable."""
    state: dict[str, Any] = {}
    for key, read, scale in (("sm_clock_mhz", "clock_rate", 1), ("temperature_c", "temperature", 1),
                             ("power_w", "power_draw", 1e-3)):
        try:
            state[key] = round(getattr(torch.cuda, read)() * scale, 1)
        except Exception:  # noqa: BLE001 - pynvml missing or the query unsupported
            state[key] = None
    return state


def run_routines(routines_dir: Path, out_dir: Path, only: list[str] | None = None,
                 anchors_file: Path | None = None) -> int:
    """Runs every routine of `routines_dir` (or those named in `only`); returns the number that failed."""
    anchors = json.loads(anchors_file.read_text()) if anchors_file and anchors_file.exists() else {}
    ctx = Context(anchors)
    card_dir = out_dir / _slug(ctx.card)
    card_dir.mkdir(parents=True, exist_ok=True)
    print(f"card: {ctx.card} ({ctx.sm_count} SMs), copy bandwidth {ctx.copy_bandwidth_gbs:.0f} GB/s")
    failed = 0
    paths = [p for p in routines_dir.glob("*.py") if not p.stem.startswith("_") and (not only or p.stem in only)]
    # `only` gives the order when present; otherwise routines run by their PRIORITY line (lower first), then name.
    def order(p: Path) -> tuple[int, str]:
        if only:
            return only.index(p.stem), p.stem
        head = p.read_text().split("PRIORITY = ", 1)
        return (int(head[1].split()[0]) if len(head) == 2 else 100), p.stem

    settle = settle_seconds()
    for path in sorted(paths, key=order):
        name = path.stem
        if settle > 0:
            ctx.torch.cuda.synchronize()
            time.sleep(settle)
        state_at_start = card_state(ctx.torch)
        spec = importlib.util.spec_from_file_location(f"dg_bench_{name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            rows = module.run(ctx)
        except Exception as e:  # a failing routine must not hide the others' results
            print(f"routine {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        meta = {
            "routine": name,
            "card": ctx.card,
            "sm_count": ctx.sm_count,
            "copy_bandwidth_gbs": ctx.copy_bandwidth_gbs,
            "torch": ctx.torch.__version__,
            "cuda": ctx.torch.version.cuda,
            "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "method": "median of CUDA-event times, L2 flushed before every call",
            "settle_s_before_routine": settle,
            "settle_s_before_case": ctx.case_settle_s,
            "card_state_at_start": state_at_start,
            "card_state_at_end": card_state(ctx.torch),
        }
        # A routine may condense its rows (geometric means and the like) with summary(rows) -> Markdown.
        notes = module.summary(rows) if callable(getattr(module, "summary", None)) else None
        (card_dir / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "summary": notes}, indent=1)
                                               + "\n")
        title = getattr(module, "TITLE", name)
        md = to_markdown(title, ctx.card, rows)
        if notes:
            md += "\n" + notes + "\n"
        md += f"\nCopy bandwidth in the same run: {ctx.copy_bandwidth_gbs:.0f} GB/s. {meta['method']}.\n"
        if state_at_start.get("sm_clock_mhz") is not None:
            clock, temp, power = (state_at_start.get(k) for k in ("sm_clock_mhz", "temperature_c", "power_w"))
            md += (f"Card at the routine's start ({meta['settle_s_before_routine']:g} s idle before it, "
                   f"{meta['settle_s_before_case']:g} s before each timed case): {clock} MHz, {temp} C, {power} W "
                   "(NVML).\n")
        (card_dir / f"{name}.md").write_text(md)
        print(md)
    return failed
