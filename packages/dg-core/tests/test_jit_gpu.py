"""JIT + launch path on a GPU: the probe kernel runs, is bit-exact, replays from a CUDA graph, and a first call served
from the disk cache in a new process is fast."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dg.core import jit  # noqa: E402

DATA = Path(__file__).parent / "data" / "jit_probe"
pytestmark = pytest.mark.gpu


def probe(scale: int):
    return jit.compile("probe", "jit_probe/probe.cuh", f"dg_test::probe_impl<{scale}>",
                       include_dirs=[str(DATA.parent)], signature=("ptr", "ptr", "u32", "f32"))


def test_probe_kernel_bit_exact():
    k = probe(3)
    x = torch.randn(100_003, device="cuda")
    out = torch.full_like(x, float("nan"))
    k.launch(grid=((x.numel() + 255) // 256,), block=(256,), args=(out, x, x.numel(), 0.25))
    torch.cuda.synchronize()
    # NOTE: the kernel's multiply-add is fused (one rounding); float64 gives the same single-rounded result.
    assert torch.equal(out, (x.double() * 3 + 0.25).float())


def test_probe_kernel_in_cuda_graph():
    k = probe(2)
    x = torch.randn(4096, device="cuda")
    out = torch.full_like(x, float("nan"))
    k.launch(grid=(16,), block=(256,), args=(out, x, x.numel(), 1.0))  # warm-up: load the module outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        k.launch(grid=(16,), block=(256,), args=(out, x, x.numel(), 1.0))
    for _ in range(3):
        x.copy_(torch.randn_like(x))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, (x.double() * 2 + 1.0).float())


def test_launch_errors_are_exceptions():
    k = probe(3)
    x = torch.randn(16, device="cuda")
    with pytest.raises(ValueError, match="takes 4 arguments"):
        k.launch(grid=(1,), block=(32,), args=(x, x))
    with pytest.raises(TypeError, match="signature code"):
        k.launch(grid=(1,), block=(32,), args=(x, x, "sixteen", 1.0))
    with pytest.raises(Exception, match="CUDA_ERROR_INVALID_VALUE"):
        k.launch(grid=(1,), block=(4096,), args=(x, x, 16, 1.0))  # more threads than a block may have


def test_bound_launch_matches_launch_and_follows_the_current_stream():
    k = probe(3)
    x = torch.randn(5000, device="cuda")
    want = (x.double() * 3 + 0.5).float()
    torch.cuda.synchronize()
    run = k.bind(grid=((x.numel() + 255) // 256,), block=(256,))
    stream = torch.cuda.Stream()
    for s in (torch.cuda.current_stream(), stream):
        out = torch.full_like(x, float("nan"))
        with torch.cuda.stream(s):
            run((out.data_ptr(), x.data_ptr(), x.numel(), 0.5), x.device.index)
        s.synchronize()
        assert torch.equal(out, want)
    with pytest.raises(ValueError, match="takes 4 arguments"):
        run((x.data_ptr(),), x.device.index)
    with pytest.raises(ValueError, match="grid"):
        k.bind(grid=(0,), block=(256,))


def test_first_call_from_disk_cache_in_new_process(tmp_path):
    code = f"""
        import time, torch
        torch.cuda.init()
        x = torch.randn(1024, device="cuda"); out = torch.empty_like(x); torch.cuda.synchronize()
        t = time.perf_counter()
        from dg.core import jit
        k = jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<9>", include_dirs=[{str(DATA.parent)!r}],
                        signature=("ptr", "ptr", "u32", "f32"))
        k.launch(grid=(4,), block=(256,), args=(out, x, 1024, 0.0))
        torch.cuda.synchronize()
        print((time.perf_counter() - t) * 1e3, torch.equal(out, x * 9))
    """
    env = {**os.environ, "DG_JIT_CACHE_DIR": str(tmp_path)}
    run = lambda: subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,  # noqa: E731
                                 text=True, timeout=300)
    first = run()
    assert first.returncode == 0, first.stderr
    second = run()
    assert second.returncode == 0, second.stderr
    ms, ok = second.stdout.split()
    assert ok == "True"
    print(f"first call served from the disk cache: {float(ms):.2f} ms (import of dg.core included)")
    assert float(ms) < 50


@pytest.mark.sm90
def test_nvrtc_built_gemm_matches_nvcc_built(tmp_path):
    """The same FP8 GEMM compiled by NVRTC and by NVCC gives bit-identical results on the GPU."""
    code = """
        import sys, torch, dg.core
        torch.manual_seed(0)
        m, n, k = 256, 512, 1024
        a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
        sfa = torch.rand(k // 128, m, device="cuda").add_(0.5).t()
        sfb = torch.rand(n // 128, k // 128, device="cuda").add_(0.5)
        d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        dg.core.fp8_gemm_nt((a, sfa), (b, sfb), d)
        torch.save(d.cpu(), sys.argv[1])
    """
    outs = []
    for i, nvrtc in enumerate(("0", "1")):
        env = {**os.environ, "DG_JIT_USE_NVRTC": nvrtc, "DG_JIT_CACHE_DIR": str(tmp_path / "cache")}
        path = tmp_path / f"d{i}.pt"
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(path)], env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        outs.append(torch.load(path))
    assert not outs[0].isnan().any()
    assert torch.equal(outs[0], outs[1])
