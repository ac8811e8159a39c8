"""The built extension: links neither libtorch nor libcuda, ships typing stubs, imports fast, CLI works w/o GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dg.core
from dg.core import _C


def needed_libraries(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
    if out.returncode != 0:  # readelf missing: fall back to ldd
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "NEEDED" in line or "=>" in line]


def test_extension_links_no_torch_and_no_cuda():
    libs = " ".join(needed_libraries(Path(_C.__file__)))
    assert libs, "could not read the extension's dynamic section"
    for forbidden in ("libcuda", "libtorch", "libc10", "libcudart", "libnvrtc"):
        assert forbidden not in libs, f"dg.core._C links {forbidden}: {libs}"


def test_stubs_and_marker_installed():
    pkg = Path(dg.core.__file__).parent
    assert (pkg / "py.typed").exists()
    stub = (pkg / "_C.pyi").read_text()
    for name in ("def set_num_sms(n: int, /) -> None", "class CompileError", "def compile_kernel",
                 "def release_workspaces() -> int"):
        assert name in stub


def test_import_time_is_small():
    code = "import time; t = time.perf_counter(); import dg.core; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]
    assert min(times) < 0.2, f"import dg.core took {min(times):.3f} s"


def test_cli_info_and_bench_without_gpu():
    info = subprocess.run([sys.executable, "-m", "dg", "info"], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "dg-core" in info.stdout and "JIT cache" in info.stdout and "NVCC" in info.stdout
    import torch

    if not torch.cuda.is_available():
        bench = subprocess.run([sys.executable, "-m", "dg", "bench"], capture_output=True, text=True, timeout=120)
        assert bench.returncode == 2 and "no CUDA GPU" in bench.stderr


def test_cli_cache_ls_and_clear(tmp_path):
    env = {"DG_JIT_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (tmp_path / "cache" / "x.abc").mkdir(parents=True)
    ls = subprocess.run([sys.executable, "-m", "dg", "cache", "ls"], capture_output=True, text=True, env=env)
    assert ls.returncode == 0 and "x.abc" in ls.stdout and "(incomplete)" in ls.stdout
    clear = subprocess.run([sys.executable, "-m", "dg", "cache", "clear"], capture_output=True, text=True, env=env)
    assert clear.returncode == 0 and not (tmp_path / "cache").exists()


def test_cli_precompile_without_gpu(tmp_path):
    env = {**__import__("os").environ, "DG_JIT_CACHE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "dg", "precompile", "--arch", "sm_90a", "--shape", "128,4096,7168",
                        "-j", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout
    entries = [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert any(e.startswith("sm90_fp8_gemm_1d2d.") for e in entries), entries


def test_release_workspaces_with_none_makes_no_cuda_call():
    # No GEMM has run a split tail in this process: nothing to free, and no CUDA call (so it also works without a GPU).
    code = "import dg.core; print(dg.core.release_workspaces(), dg.core.release_workspaces())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]
