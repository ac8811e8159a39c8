"""FP8 GEMM probe: why is the API path slower than the standalone harness? One process, the 18 seed shapes.

Columns (us, median of REPS, L2 flushed before every call, CUDA events around the call only):
  api      dg.core.fp8_gemm_nt exactly as benchmarks/routines/sm90_fp8_gemm.py times it (dg.core.benchmark.Context:
           256 MiB zero_ flush, events, no sync between reps), heuristic config
  sync     same call and data, harness-style loop: flush, event, call, event, synchronize every rep
  hdata    same as api but with the harness's data (fill_fp8-like values, scales 0.25e-3..1.25e-3)
  cublas   torch._scaled_mm blockwise (per-tensor if blockwise is unavailable; see the 'cublas path' line), api timing
  alternatives: DG_SM90_FP8_FORCE=<bn,stages,cluster,ctas> through the same API call (api timing)
Also printed: host enqueue us of one call (GPU kept busy), the first-call wall time of every variant (a JIT compile
shows as seconds), and the harness's own table from the same machine (run by gemm_probe.sh).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REPS = int(os.environ.get("PROBE_REPS", "30"))

# Alternatives per regime: (label, DG_SM90_FP8_FORCE value, which shapes).
SMALL_NK = {(2112, 7168), (4096, 7168)}
ALTS = [
    ("uni", "128,0,1", lambda m, n, k: m == 4096),            # unicast BLOCK_N 128 (harness "unicast measured")
    ("c128", "0,0,0,128", lambda m, n, k: m == 4096),         # multicast on 128 CTAs (64 clusters), co-residency
    ("bn160", "160,0,2", lambda m, n, k: m == 4096),          # BLOCK_N 160 multicast
    ("bn16", "16,0,1", lambda m, n, k: m <= 128 and (n, k) in SMALL_NK),
    ("bn32", "32,0,1", lambda m, n, k: m <= 128 and (n, k) in SMALL_NK),
    ("bn64", "64,0,1", lambda m, n, k: m <= 128 and (n, k) in SMALL_NK),
]


def load_routine():
    spec = importlib.util.spec_from_file_location("probe_routine", ROOT / "benchmarks/routines/sm90_fp8_gemm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_sync(ctx, fn, reps):
    for _ in range(3):
        fn()
    ts = []
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(reps):
        ctx._flush.zero_()
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) * 1e3)
    return statistics.median(ts)


def harness_data(m, n, k):
    def fp8(rows):
        u = torch.rand(rows, k, device="cuda")
        return ((u * 2 - 1) * 448.0 * u).to(torch.float8_e4m3fn)

    sk = -(-k // 128)
    a, b = fp8(m), fp8(n)
    sfa = torch.empty_strided((m, sk), (1, -(-m // 4) * 4), device="cuda", dtype=torch.float32)
    sfa.copy_((0.25 + torch.rand(m, sk, device="cuda")) * 1e-3)
    sfb = ((0.25 + torch.rand(-(-n // 128), sk, device="cuda")) * 1e-3).contiguous()
    return a, sfa, b, sfb


def timed_first_call(fn):
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def enqueue_us(fn, calls=200):
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    us = (time.perf_counter() - t) / calls * 1e6
    torch.cuda.synchronize()
    return us


def prefill(r):
    """Compiles (in parallel threads; cache hits cost ~ms) every kernel the probe will launch, per force value."""
    from concurrent.futures import ThreadPoolExecutor

    from dg.core import _C

    shapes = [(m, n, k) for m in r.SEED_MS for n, k in r.SEED_NK]
    t = time.time()
    for label, force, when in [("heuristic", None, lambda m, n, k: True)] + ALTS:
        if force is None:
            os.environ.pop("DG_SM90_FP8_FORCE", None)
        else:
            os.environ["DG_SM90_FP8_FORCE"] = force
        todo = [s for s in shapes if when(*s)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda s: _C.precompile_fp8_gemm(*s, 128, "sm_90a", 0), todo))
    os.environ.pop("DG_SM90_FP8_FORCE", None)
    return time.time() - t


def main():
    from dg import core
    from dg.core.benchmark import Context

    r = load_routine()
    print(f"prefill (JIT cache check/compile): {prefill(r):.1f} s", flush=True)
    ctx = Context(reps=REPS, warmup=5)
    props = torch.cuda.get_device_properties(0)
    print(f"card {props.name} sms {props.multi_processor_count} torch {torch.__version__} cuda {torch.version.cuda} "
          f"copy {ctx.copy_bandwidth_gbs:.0f} GB/s reps {REPS}")
    os.environ.pop("DG_SM90_FP8_FORCE", None)
    rows, slow_first = [], []
    cublas_path = None
    t_start = time.time()
    for m in r.SEED_MS:
        for n, k in r.SEED_NK:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            a, sfa = r._quantise(torch, x, 1)
            b, sfb = r._quantise(torch, w, 128)
            sfa_mn = r._mn_major(torch, sfa)
            d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            fn = lambda: core.fp8_gemm_nt((a, sfa_mn), (b, sfb), d)  # noqa: E731
            row = {"M": m, "N": n, "K": k}
            first = timed_first_call(fn)
            if first > 1.0:
                slow_first.append(f"{m}x{n}x{k} heuristic: {first:.1f} s")
            row["api"] = ctx.bench(fn)
            row["sync"] = bench_sync(ctx, fn, REPS)
            ha, hsfa, hb, hsfb = harness_data(m, n, k)
            hfn = lambda: core.fp8_gemm_nt((ha, hsfa), (hb, hsfb), d)  # noqa: E731
            row["hdata"] = ctx.bench(hfn)
            fn()
            ref, path = r.cublaslt_fn(torch, a, sfa, b, sfb, torch.bfloat16, expect=d)
            cublas_path = cublas_path or path
            row["cublas"] = ctx.bench(ref) if ref is not None else None
            for label, force, when in ALTS:
                if not when(m, n, k):
                    continue
                os.environ["DG_SM90_FP8_FORCE"] = force
                try:
                    first = timed_first_call(fn)
                    if first > 1.0:
                        slow_first.append(f"{m}x{n}x{k} {label}: {first:.1f} s")
                    row[label] = ctx.bench(fn)
                except Exception as e:  # noqa: BLE001 - report and keep going
                    row[label] = None
                    print(f"{m}x{n}x{k} {label}: {type(e).__name__}: {e}", file=sys.stderr)
                finally:
                    os.environ.pop("DG_SM90_FP8_FORCE", None)
            rows.append(row)
            print(" ".join(f"{kk}={v:.1f}" if isinstance(v, float) else f"{kk}={v}" for kk, v in row.items()),
                  flush=True)
            fn = hfn = None  # release the closures (and the tensors they hold) before the next shape
    x = torch.randn(64, 7168, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(2112, 7168, device="cuda", dtype=torch.bfloat16)
    a, sfa = r._quantise(torch, x, 1)
    b, sfb = r._quantise(torch, w, 128)
    sfa_mn = r._mn_major(torch, sfa)
    d = torch.empty(64, 2112, device="cuda", dtype=torch.bfloat16)
    host = enqueue_us(lambda: core.fp8_gemm_nt((a, sfa_mn), (b, sfb), d))

    anchors = {(x["m"], x["n"], x["k"]): x for x in __import__("json").loads(
        (ROOT / "benchmarks/anchors/h100_2026-11-25.json").read_text())["fp8_gemm_1d2d"]}
    cols = ["api", "sync", "hdata", "cublas"] + [label for label, _, _ in ALTS]
    lines = ["| M | N | K | " + " | ".join(cols) + " | DeepGEMM anchor | cuBLASLt anchor |",
             "|" + "---|" * (len(cols) + 5)]
    for row in rows:
        an = anchors.get((row["M"], row["N"], row["K"]), {})
        cells = [f"{row[c]:.1f}" if isinstance(row.get(c), float) else "" for c in cols]
        lines.append(f"| {row['M']} | {row['N']} | {row['K']} | " + " | ".join(cells) +
                     f" | {an.get('deepgemm_us', '')} | {an.get('cublaslt_us', '')} |")
    table = "\n".join(lines)
    print("\n## gemm_probe (us)\n")
    print(f"card {props.name}; cublas path: {cublas_path}; host enqueue {host:.1f} us/call; "
          f"probe {time.time() - t_start:.0f} s")
    print("alternatives (DG_SM90_FP8_FORCE): " + ", ".join(f"{label}={force}" for label, force, _ in ALTS))
    if slow_first:
        print("first calls over 1 s (JIT compiles, not prefilled): " + "; ".join(slow_first))
    print(table)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gemm_probe.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
