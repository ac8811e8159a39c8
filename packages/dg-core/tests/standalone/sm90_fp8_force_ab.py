"""FP8 GEMM A/B timing of forced configs through the real API, checked first, timed in alternating rounds.

Environment (all optional):
  AB_SHAPES  "MxNxK;MxNxK"                  default: 4096x2112x7168
  AB_FORCES  "label=force;label=force"      DG_SM90_FP8_FORCE values; an empty value is the heuristic's config
                                            default: "heuristic=;bn192=192,0,1;bn192mc=192,0,2"
  AB_ROUNDS  timed rounds (default 3): every variant of a shape is timed once per round, in turn, so a drifting card
             clock spreads over all of them instead of favouring the first
  AB_REPS    calls per timing (default 30; median, L2 flushed before each, dg.core.benchmark.Context)

Every variant is first checked once with the GPU tests' check (tests/test_sm90_fp8_gemm_gpu.py): output poisoned
with NaN, calc_diff against a float64 reference of the same quantised inputs (< 1e-3) and every 128 x 128 tile within
1e-2 of its largest reference value. A variant that fails the check is reported and not timed. Prints one Markdown
table (us per round, median of the rounds); writes it to $OUT/force_ab.md when $OUT is set. Run from the repository
root after the packages are installed.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]


def _gpu_tests():
    """The GPU tests' quantisation, reference and check helpers (imported by path: tests are not a package)."""
    path = ROOT / "packages/dg-core/tests/test_sm90_fp8_gemm_gpu.py"
    spec = importlib.util.spec_from_file_location("fp8_gemm_gpu_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(";") if s.strip()]


def _parse_forces(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(";"):
        if item.strip():
            label, _, force = item.partition("=")
            out.append((label.strip(), force.strip()))
    return out


def _set_force(force: str) -> None:
    if force:
        os.environ["DG_SM90_FP8_FORCE"] = force
    else:
        os.environ.pop("DG_SM90_FP8_FORCE", None)


def main() -> int:
    from dg import core
    from dg.core.benchmark import Context

    t = _gpu_tests()
    shapes = _parse_shapes(os.environ.get("AB_SHAPES", "4096x2112x7168"))
    forces = _parse_forces(os.environ.get("AB_FORCES", "heuristic=;bn192=192,0,1;bn192mc=192,0,2"))
    rounds = int(os.environ.get("AB_ROUNDS", "3"))
    ctx = Context(reps=int(os.environ.get("AB_REPS", "30")), warmup=5)
    card = torch.cuda.get_device_properties(0).name
    lines = [f"card {card}; {rounds} rounds; us per round (median of the rounds)", "",
             "| M | N | K | variant | force | check | " + " | ".join(f"r{i}" for i in range(rounds)) + " | median |",
             "|" + "---|" * (rounds + 7)]
    failed = False
    for m, n, k in shapes:
        a, b, ref = t.make_1d2d(m, n, k)
        d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        fn = lambda: core.fp8_gemm_nt(a, b, d)  # noqa: E731
        ok: dict[str, str] = {}
        for label, force in forces:
            _set_force(force)
            try:
                d.fill_(float("nan"))
                fn()
                torch.cuda.synchronize()
                ok[label] = f"ok {t.check(d, ref, label):.1e}"
            except AssertionError as e:
                ok[label] = f"FAIL {e}"
            except Exception as e:  # noqa: BLE001 - report the variant and go on
                ok[label] = f"error {type(e).__name__}: {e}".replace("\n", " ")[:160]
            failed |= not ok[label].startswith("ok")
        times: dict[str, list[float]] = {label: [] for label, _ in forces}
        for _ in range(rounds):
            for label, force in forces:
                if not ok[label].startswith("ok"):
                    continue
                _set_force(force)
                times[label].append(ctx.bench(fn))
        _set_force("")
        for label, force in forces:
            ts = times[label]
            cells = [f"{t:.1f}" for t in ts] + [""] * (rounds - len(ts))
            med = f"{statistics.median(ts):.1f}" if ts else ""
            lines.append(f"| {m} | {n} | {k} | {label} | {force or '-'} | {ok[label]} | " + " | ".join(cells) +
                         f" | {med} |")
        print("\n".join(lines[-len(forces):]), flush=True)
        fn = None
    table = "\n".join(lines)
    print("\n## force_ab\n\n" + table)
    out = os.environ.get("OUT")
    if out:
        Path(out, "force_ab.md").write_text(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
