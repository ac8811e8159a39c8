"""The dg command line: `python -m dg {info,precompile,bench,cache}` (also installed as `dg`)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from . import _env

# Shapes of the FP8 GEMM seed set (DeepSeek-V3 projections): M x (N, K).
SEED_NK = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]
SEED_M = [64, 128, 4096]


def _dir_size(path: Path) -> tuple[int, int]:
    total, entries = 0, 0
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file():
                total += p.stat().st_size
        entries = sum(1 for p in (path / "cache").glob("*") if p.is_dir()) if (path / "cache").is_dir() else 0
    return total, entries


def cmd_info(args: argparse.Namespace) -> int:
    from . import _C

    print("dg packages:")
    for dist in ("dg-core", "dg-layout", "dg-moe", "dg-indexer"):
        try:
            print(f"  {dist:11s} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            print(f"  {dist:11s} not installed")
    home = _env.cuda_home()
    print(f"CUDA home: {home}")
    nvcc = os.environ.get("DG_JIT_NVCC_COMPILER") or os.path.join(home, "bin", "nvcc")
    if os.access(nvcc, os.X_OK):
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
        print(f"NVCC: {nvcc} ({out[-1] if out else '?'})")
    else:
        print(f"NVCC: not found at {nvcc}")
    nvrtc = _env.nvrtc_library()
    print(f"NVRTC: {nvrtc or 'not found'}")
    inc, ver = _env.cutlass_include()
    print(f"CUTLASS headers: {inc or 'not found'} (nvidia-cutlass {ver or '-'})")
    cache = Path(_env.cache_dir())
    size, entries = _dir_size(cache)
    print(f"JIT cache: {cache} ({entries} kernels, {size / 2**20:.1f} MiB)")
    if _C.driver_available():
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for i in range(n):
            d = _C.device_info(i)
            v = d["driver_cuda_version"]
            print(f"GPU {i}: {d['name']} ({d['arch']}, {d['sm_count']} SMs, "
                  f"{d['smem_optin_per_block'] // 1024} KiB smem/block, L2 {d['l2_bytes'] // 2**20} MiB), "
                  f"driver CUDA {v // 1000}.{v % 1000 // 10}")
        if n == 0:
            print("GPU: driver present, no device visible")
    else:
        print("GPU: none (no CUDA driver on this machine)")
    return 0


def _seed_shapes() -> list[tuple[int, int, int]]:
    return [(m, n, k) for m in SEED_M for n, k in SEED_NK]


def _parse_shapes(items: list[str]) -> list[tuple[int, int, int]]:
    shapes = []
    for item in items:
        parts = item.lower().replace("x", ",").split(",")
        if len(parts) != 3:
            raise SystemExit(f"bad shape {item!r}: use M,N,K")
        shapes.append(tuple(int(p) for p in parts))  # type: ignore[arg-type]
    return shapes


def _precompile_one(task: tuple[str, tuple[int, int, int], str, int]) -> str:
    kind, shape, arch, num_sms = task
    from . import _C

    if kind == "fp8_gemm_1d2d":
        return _C.precompile_fp8_gemm(*shape, 128, arch, num_sms)
    if kind == "fp8_gemm_1d1d":
        return _C.precompile_fp8_gemm(*shape, 1, arch, num_sms)
    module = importlib.import_module(kind)
    return module.precompile(arch)


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:60]:60s}")
    sys.stdout.flush()


def cmd_precompile(args: argparse.Namespace) -> int:
    shapes = _parse_shapes(args.shape or [])
    if args.preset == "seed" or not shapes:
        shapes += _seed_shapes()
    tasks: list[tuple[str, tuple[int, int, int], str, int]] = []
    for s in dict.fromkeys(shapes):
        tasks.append(("fp8_gemm_1d2d", s, args.arch, args.num_sms))
    for pkg in ("dg.layout", "dg.indexer", "dg.moe"):
        try:
            mod = importlib.import_module(pkg)
        except ImportError:
            continue
        if hasattr(mod, "precompile"):
            tasks.append((pkg, (0, 0, 0), args.arch, args.num_sms))
    print(f"precompiling {len(tasks)} kernel sets for {args.arch} into {_env.cache_dir()} with {args.jobs} processes")
    t0 = time.time()
    failures = 0
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_precompile_one, t): t for t in tasks}
        for i, fut in enumerate(cf.as_completed(futures), 1):
            kind, shape, _, _ = futures[fut]
            label = f"{kind} {shape}" if kind.startswith("fp8") else kind
            try:
                fut.result()
            except Exception as e:  # report every failure, keep compiling the rest
                failures += 1
                sys.stdout.write(f"\nFAILED {label}: {type(e).__name__}: {str(e)[:2000]}\n")
            _progress(i, len(tasks), label)
    print(f"\ndone in {time.time() - t0:.1f} s: {len(tasks) - failures} ok, {failures} failed")
    return 1 if failures else 0


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("dg bench needs torch", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("dg bench: no CUDA GPU on this machine: nothing was benchmarked. Use `python -m dg precompile --arch "
              "sm_90a` here to fill a JIT cache for GPU nodes.", file=sys.stderr)
        return 2
    from .benchmark import run_routines

    routines = Path(args.routines)
    if not routines.is_dir():
        print(f"dg bench: no routines folder at {routines} (run from the repository root or pass --routines)",
              file=sys.stderr)
        return 2
    anchors = Path(args.anchors) if args.anchors else None
    return 1 if run_routines(routines, Path(args.out), args.only or None, anchors) else 0


def cmd_cache(args: argparse.Namespace) -> int:
    root = Path(_env.cache_dir())
    if args.action == "ls":
        entries = sorted((root / "cache").glob("*/")) if (root / "cache").is_dir() else []
        for e in entries:
            cubin = e / "kernel.cubin"
            size = cubin.stat().st_size if cubin.exists() else 0
            print(f"{e.name}  {size / 1024:.0f} KiB{'' if (e / 'meta').exists() else '  (incomplete)'}")
        size, n = _dir_size(root)
        print(f"{n} kernels, {size / 2**20:.1f} MiB in {root}")
    elif args.action == "clear":
        if root.is_dir():
            shutil.rmtree(root / "cache", ignore_errors=True)
            shutil.rmtree(root / "tmp", ignore_errors=True)
        print(f"cleared {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dg", description="dg: GPU kernels for LLM matrix multiplications")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="GPU, driver, compilers, JIT cache, installed dg packages").set_defaults(fn=cmd_info)
    p = sub.add_parser("precompile", help="fill the JIT cache for a list of shapes (works without a GPU)")
    p.add_argument("--arch", default="sm_90a", help="target, e.g. sm_90a (default)")
    p.add_argument("--shape", action="append", help="M,N,K of an FP8 GEMM (repeatable)")
    p.add_argument("--preset", choices=["seed"], help="the 18 FP8 GEMM seed shapes (default with no --shape)")
    p.add_argument("--num-sms", type=int, default=0, help="SM count the heuristics plan for (0: the arch's usual)")
    p.add_argument("-j", "--jobs", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    p.set_defaults(fn=cmd_precompile)
    p = sub.add_parser("bench", help="run the benchmark routines on the GPU (JSON + Markdown out)")
    p.add_argument("--routines", default="benchmarks/routines")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--anchors", default="benchmarks/anchors/h100_2026-11-25.json")
    p.add_argument("--only", action="append", help="routine name (repeatable)")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("cache", help="inspect or clear the JIT cache")
    p.add_argument("action", choices=["ls", "clear"])
    p.set_defaults(fn=cmd_cache)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
