"""JIT runtime on the CPU: real NVCC/NVRTC compiles, the disk cache (hits, corruption, concurrency), errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dg.core
import pytest
from dg.core import jit

DATA = Path(__file__).parent / "data" / "jit_probe"
HAS_NVCC = os.access(os.path.join(dg.core._env.cuda_home(), "bin", "nvcc"), os.X_OK)
needs_nvcc = pytest.mark.skipif(not HAS_NVCC, reason="needs the CUDA toolkit's nvcc")


def compile_probe(scale: int = 3, **kw):
    return jit.compile("probe", "jit_probe/probe.cuh", f"dg_test::probe_impl<{scale}>",
                       include_dirs=[str(DATA.parent)], signature=("ptr", "ptr", "u32", "f32"), arch="sm_90a", **kw)


def run_py(code: str, cache: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DG_JIT_CACHE_DIR": str(cache), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True,
                          text=True, timeout=300)


PROBE_IN_SUBPROCESS = f"""
    import time
    from dg.core import jit
    t = time.perf_counter()
    k = jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<5>", include_dirs=[{str(DATA.parent)!r}],
                    signature=("ptr", "ptr", "u32", "f32"), arch="sm_90a")
    print(k.cache_path, k.symbol, time.perf_counter() - t)
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DG_JIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_import_creates_no_cuda_context():
    # NOTE: some torch builds map libcuda.so on `import torch` already (seen on an H100 host with torch 2.11): the
    # check is that importing dg.core adds neither the driver nor a CUDA context to what torch's import did.
    code = """
        import torch
        torch_loaded_driver = "libcuda.so" in open("/proc/self/maps").read()
        import dg.core
        assert not torch.cuda.is_initialized(), "importing dg.core initialised CUDA"
        maps = open("/proc/self/maps").read()
        assert torch_loaded_driver or "libcuda.so" not in maps, "importing dg.core loaded the CUDA driver"
        print("ok")
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


@needs_nvcc
def test_nvcc_compile_writes_complete_entry(cache):
    k = compile_probe()
    entry = Path(k.cache_path)
    assert entry.parent == cache / "cache"
    assert sorted(p.name for p in entry.iterdir()) == ["kernel.cu", "kernel.cubin", "kernel.log", "meta"]
    assert k.cubin[:4] == b"\x7fELF" and len(k.cubin) == (entry / "kernel.cubin").stat().st_size
    assert k.symbol == "_ZN7dg_test10probe_implILi3EEEvPfPKfjf"
    # Generated source: one include plus one instantiation, no logic.
    src = (entry / "kernel.cu").read_text().strip().splitlines()
    assert src[0] == "#include <jit_probe/probe.cuh>"
    assert len(src) == 2 and "dg_test::probe_impl<3>" in src[1]
    assert not any((cache / "tmp").iterdir())


@needs_nvcc
def test_cache_hit_in_new_process_is_fast(cache):
    first = run_py(PROBE_IN_SUBPROCESS, cache)
    assert first.returncode == 0, first.stderr
    path, symbol, _ = first.stdout.split()
    cubin = Path(path) / "kernel.cubin"
    mtime = cubin.stat().st_mtime_ns
    second = run_py(PROBE_IN_SUBPROCESS, cache)
    assert second.returncode == 0, second.stderr
    path2, symbol2, seconds = second.stdout.split()
    assert (path2, symbol2) == (path, symbol)
    assert cubin.stat().st_mtime_ns == mtime, "a cache hit must not rewrite the entry"
    assert float(seconds) < 0.1, f"a cached compile took {seconds} s"


@needs_nvcc
def test_same_process_memoises(cache):
    a = compile_probe()
    t = time.perf_counter()
    b = compile_probe()
    assert time.perf_counter() - t < 0.01
    assert a.cache_path == b.cache_path


@needs_nvcc
@pytest.mark.parametrize("damage", ["truncate_cubin", "garble_cubin", "garble_meta", "delete_meta"])
def test_corrupt_entry_is_rebuilt(cache, damage):
    first = run_py(PROBE_IN_SUBPROCESS, cache)
    assert first.returncode == 0, first.stderr
    entry = Path(first.stdout.split()[0])
    good = (entry / "kernel.cubin").read_bytes()
    if damage == "truncate_cubin":
        (entry / "kernel.cubin").write_bytes(good[: len(good) // 2])
    elif damage == "garble_cubin":
        (entry / "kernel.cubin").write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:200]) + good[200:])
    elif damage == "garble_meta":
        (entry / "meta").write_text("not a meta file")
    else:
        (entry / "meta").unlink()
    second = run_py(PROBE_IN_SUBPROCESS, cache)
    assert second.returncode == 0, second.stderr
    assert ("rebuilding corrupt cache entry" in second.stderr) == (damage != "delete_meta")
    assert (entry / "kernel.cubin").read_bytes()[:4] == b"\x7fELF"
    assert len((entry / "kernel.cubin").read_bytes()) == len(good)


@needs_nvcc
def test_two_processes_compile_same_kernel(cache):
    env = {**os.environ, "DG_JIT_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(PROBE_IN_SUBPROCESS)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    paths = {o.split()[0] for o, _ in outs}
    assert len(paths) == 1
    entries = [p for p in (cache / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == ["kernel.cu", "kernel.cubin", "kernel.log", "meta"]
    assert not list((cache / "tmp").iterdir())


@needs_nvcc
def test_header_change_changes_key(cache, tmp_path):
    inc = tmp_path / "inc" / "jit_probe"
    shutil.copytree(DATA, inc)
    k1 = jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<2>", include_dirs=[str(inc.parent)],
                     signature=("ptr", "ptr", "u32", "f32"), arch="sm_90a")
    text = (inc / "probe.cuh").read_text().replace("in[i] * kScale", "in[i] * (kScale + 1)")
    (inc / "probe.cuh").write_text(text)
    code = f"""
        from dg.core import jit
        k = jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<2>", include_dirs=[{str(inc.parent)!r}],
                        signature=("ptr", "ptr", "u32", "f32"), arch="sm_90a")
        print(k.cache_path)
    """
    r = run_py(code, cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != k1.cache_path


def test_missing_compiler_raises_clear_error(tmp_path):
    code = f"""
        import dg.core
        from dg.core import jit
        try:
            jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<1>", include_dirs=[{str(DATA.parent)!r}],
                        signature=("ptr",), arch="sm_90a")
        except dg.core.CompileError as e:
            print("CompileError:", e)
    """
    r = run_py(code, tmp_path / "cache", DG_JIT_NVCC_COMPILER="/nonexistent/bin/nvcc")
    assert r.returncode == 0, r.stderr
    assert "CompileError: NVCC not found at '/nonexistent/bin/nvcc'" in r.stdout


@needs_nvcc
def test_syntax_error_raises_with_kernel_name_and_compiler_output(cache):
    with pytest.raises(dg.core.CompileError) as info:
        jit.compile("broken_kernel", "jit_probe/broken.cuh", "dg_test::broken_impl<1>",
                    include_dirs=[str(DATA.parent)], signature=("ptr",), arch="sm_90a")
    msg = str(info.value)
    assert "broken_kernel" in msg
    assert "this_identifier_does_not_exist" in msg and "error" in msg
    # Nothing half-written stays behind.
    assert not any((cache / "cache").glob("broken_kernel.*/meta"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown signature tag"):
        jit.compile("probe", "jit_probe/probe.cuh", "x", signature=("pointer",), arch="sm_90a")
    with pytest.raises(ValueError, match="arch must look like"):
        jit.compile("probe", "jit_probe/probe.cuh", "x", signature=(), arch="hopper")
    with pytest.raises(ValueError, match="is not installed"):
        jit.package_include_dir("dg.no_such_package")


@pytest.mark.skipif(not dg.core._env.nvrtc_library(), reason="needs NVRTC (CUDA toolkit or nvidia-cuda-nvrtc)")
def test_nvrtc_compiles_and_is_cached_separately(cache, monkeypatch):
    monkeypatch.setenv("DG_JIT_USE_NVRTC", "1")
    k = compile_probe(scale=7)
    assert k.cubin[:4] == b"\x7fELF"
    assert k.symbol == "_ZN7dg_test10probe_implILi7EEEvPfPKfjf"
    monkeypatch.delenv("DG_JIT_USE_NVRTC")
    if HAS_NVCC:
        assert compile_probe(scale=7).cache_path != k.cache_path


@pytest.mark.skipif(not dg.core._env.nvrtc_library(), reason="needs NVRTC (CUDA toolkit or nvidia-cuda-nvrtc)")
def test_nvrtc_syntax_error(cache, monkeypatch):
    monkeypatch.setenv("DG_JIT_USE_NVRTC", "1")
    with pytest.raises(dg.core.CompileError, match="broken_nvrtc"):
        jit.compile("broken_nvrtc", "jit_probe/broken.cuh", "dg_test::broken_impl<1>",
                    include_dirs=[str(DATA.parent)], signature=("ptr",), arch="sm_90a")


def test_non_integer_env_variable_is_rejected(cache, monkeypatch):
    monkeypatch.setenv("DG_JIT_USE_NVRTC", "yes")
    with pytest.raises(ValueError, match="DG_JIT_USE_NVRTC"):
        compile_probe()


@pytest.mark.skipif(not dg.core._env.nvrtc_library(), reason="needs NVRTC (CUDA toolkit or nvidia-cuda-nvrtc)")
def test_nvrtc_compiles_the_real_wgmma_tma_gemm(cache, monkeypatch):
    """NVRTC builds the SM90 FP8 GEMM (wgmma, TMA, CCCL headers): the peer's NVRTC path could not."""
    monkeypatch.setenv("DG_JIT_USE_NVRTC", "1")
    instance = dg.core._C.precompile_fp8_gemm(128, 4096, 7168, 128, "sm_90a")
    assert instance.startswith("dg::sm90_fp8_gemm_1d2d_impl<")
    entries = list((cache / "cache").glob("sm90_fp8_gemm_1d2d.*/kernel.cubin"))
    assert len(entries) == 1 and entries[0].read_bytes()[:4] == b"\x7fELF"


@needs_nvcc
def test_sm100a_target_compiles(cache):
    """The JIT targets Blackwell too (sm_100a), with its own cache entry; no SM100 kernel family is shipped yet."""
    k90 = compile_probe(scale=4)
    k100 = jit.compile("probe", "jit_probe/probe.cuh", "dg_test::probe_impl<4>", include_dirs=[str(DATA.parent)],
                       signature=("ptr", "ptr", "u32", "f32"), arch="sm_100a")
    assert k100.cubin[:4] == b"\x7fELF" and k100.cache_path != k90.cache_path


@needs_nvcc
def test_switching_compiler_in_process_is_honoured(cache, monkeypatch):
    compile_probe(scale=11)
    monkeypatch.setenv("DG_JIT_NVCC_COMPILER", "/nonexistent/bin/nvcc")
    with pytest.raises(dg.core.CompileError, match="NVCC not found at '/nonexistent/bin/nvcc'"):
        compile_probe(scale=11)
    monkeypatch.delenv("DG_JIT_NVCC_COMPILER")
    assert compile_probe(scale=11).cubin[:4] == b"\x7fELF"
