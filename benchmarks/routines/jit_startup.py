"""JIT and start-up costs, each measured in fresh processes: `import dg.core`; the first fp8_gemm_nt call of a
process with an empty cache (NVCC and NVRTC compile + load + run); the first call with the cache filled (lookup,
cubin load, launch, sync). Problem: 128 x 4096 x 7168 (as the anchors)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

TITLE = "JIT and start-up (fresh processes, one FP8 kernel 128x4096x7168)"
PRIORITY = 3  # run order of `dg bench` (lower first)

FIRST_CALL = """
    import time, torch
    torch.cuda.init()
    m, n, k = 128, 4096, 7168
    a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
    sfa = torch.rand(k // 128, m, device="cuda").add_(0.5).t()
    sfb = torch.rand(n // 128, k // 128, device="cuda").add_(0.5)
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    import dg.core
    t = time.perf_counter()
    dg.core.fp8_gemm_nt((a, sfa), (b, sfb), d)
    torch.cuda.synchronize()
    print((time.perf_counter() - t) * 1e3)
"""


def _run(code: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return float(out.stdout.strip().splitlines()[-1])


def run(ctx) -> list[dict]:
    rows = []
    base = dict(os.environ)
    imp = "import time; t = time.perf_counter(); import dg.core; print((time.perf_counter() - t) * 1e3)"
    times = [_run(imp, base) for _ in range(5)]
    rows.append({"what": "import dg.core (ms, median of 5)", "dg": statistics.median(times), "target": 200,
                 "deepgemm": "300-520"})
    for compiler, flag in (("NVCC", "0"), ("NVRTC", "1")):
        with tempfile.TemporaryDirectory() as cache:
            env = {**base, "DG_JIT_CACHE_DIR": cache, "DG_JIT_USE_NVRTC": flag}
            cold = _run(FIRST_CALL, env)
            warm = [_run(FIRST_CALL, env) for _ in range(5)]
        rows.append({"what": f"first call, empty cache, {compiler} (ms)", "dg": cold, "target": None,
                     "deepgemm": "3440" if compiler == "NVCC" else "failed"})
        rows.append({"what": f"first call of a new process, cache filled, {compiler} (ms, median of 5)",
                     "dg": statistics.median(warm), "target": 2, "deepgemm": "4" if compiler == "NVCC" else "-"})
    return rows
