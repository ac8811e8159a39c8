"""Every kernel instance the package can launch compiles for sm_90a (no GPU needed).

Two routes: through dg.core's JIT (skipped while dg.core is not importable), and straight through nvcc with the
JIT's generated-source shape (skipped where nvcc is absent), so that the headers are checked on any CPU machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dg.indexer import _jit

SPECS = _jit.all_specs()
IDS = [s.kernel.split("::")[-1].replace(" ", "") for s in SPECS]

INDEXER_INCLUDE = Path(_jit.__file__).resolve().parent / "include"


def _core():
    try:
        import dg.core as core  # noqa: F401
        from dg.core import jit  # noqa: F401
    except Exception as e:  # the native module may be missing or fail to load
        pytest.skip(f"dg.core is not importable here ({type(e).__name__}: {e}); JIT compile test not run")
    return core


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_jit_compiles_for_sm90a(spec):
    _core()
    kernel = _jit.compile_spec(spec, arch="sm_90a")
    assert kernel.cubin, f"{spec.kernel}: empty cubin"
    assert "impl" in kernel.symbol


def _nvcc() -> str:
    for candidate in (os.environ.get("DG_JIT_NVCC_COMPILER"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("nvcc not found; header compile test not run")


def _core_include() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "packages" / "dg-core" / "src" / "dg" / "core" / "include"
        if cand.is_dir():
            return cand
    try:
        from dg.core import jit

        return Path(jit.CORE_INCLUDE_DIR)
    except Exception:
        pytest.skip("dg.core's include folder not found; header compile test not run")


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_headers_compile_with_nvcc(spec, tmp_path):
    nvcc = _nvcc()
    source = tmp_path / "kernel.cu"
    source.write_text(f"#include <{spec.include}>\n"
                      f"static void* const dg_kernel_instance = reinterpret_cast<void*>(&{spec.kernel});\n")
    cmd = [nvcc, "-std=c++20", "-gencode=arch=compute_90a,code=sm_90a", "-cubin", "-diag-suppress=177",
           f"-I{INDEXER_INCLUDE}", f"-I{_core_include()}", "-Xptxas=-v", str(source), "-o",
           str(tmp_path / "kernel.cubin")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{spec.kernel}:\n{proc.stdout}\n{proc.stderr}"
    log = proc.stdout + proc.stderr
    # Spills or a serialised wgmma pipeline would not be wrong, but they are a performance bug worth failing on.
    assert "spill stores" not in log or " 0 bytes spill stores" in log, log
    assert "C7510" not in log, log
    assert "Potential Performance Loss" not in log, log  # e.g. C7514: every wgmma of the kernel serialised


def test_host_shared_memory_matches_the_kernel_layout(tmp_path):
    # The launchers pass _jit.smem_bytes and the kernels trap when launched with less than their layout needs: pin
    # the two computations (and the prefill kernel's linear-term rows) together at compile time.
    nvcc = _nvcc()
    checks = []
    for h in (32, 64, 128):
        extra = _jit.prefill_extra_rows(h)
        checks.append(f"static_assert(dg::indexer::kPrefillExtraRows<{_jit.Q_ROWS // 2 // h}> == {extra});")
        for d in (32, 64, 128):
            spec = _jit.mqa_logits_spec(h, d)
            nq = _jit.Q_ROWS // h
            hb = _jit.PREFILL_WORK_BYTES
            smem = _jit.smem_bytes(_jit.Q_ROWS, d, h, nq, spec.stages, extra, hb)
            checks.append(f"static_assert(dg::indexer::MqaLayout<{nq}, {h}, {d}, {spec.stages}, {extra}, {hb}>"
                          f"::kSmemBytes == {smem});")
            for n in (1, 2):
                paged = _jit.paged_mqa_logits_spec(n, h, d)
                smem = _jit.paged_smem_bytes(n, h, d, paged.stages)
                pw = _jit.PAGED_WORK_BYTES
                checks.append(f"static_assert(dg::indexer::MqaLayout<{n}, {h}, {d}, {paged.stages}, 0, {pw}>"
                              f"::kSmemBytes == {smem});")
    source = tmp_path / "layout.cu"
    checks.append(f"static_assert(dg::indexer::kPrefillWorkBytes == {_jit.PREFILL_WORK_BYTES});")
    checks.append(f"static_assert(dg::indexer::kMaxPrefillCtas == {_jit.PREFILL_MAX_CTAS});")
    checks.append(f"static_assert(dg::indexer::kPagedWorkBytes == {_jit.PAGED_WORK_BYTES});")
    checks.append(f"static_assert(dg::indexer::kPagedDynamicMaxBatch == {_jit.PAGED_DYNAMIC_MAX_BATCH});")
    source.write_text("#include <dg_indexer/impls/sm90_fp8_mqa_logits.cuh>\n"
                      "#include <dg_indexer/impls/sm90_fp8_paged_mqa_logits.cuh>\n" + "\n".join(checks) + "\n")
    cmd = [nvcc, "-std=c++20", "-gencode=arch=compute_90a,code=sm_90a", "-c", "-diag-suppress=177",
           f"-I{INDEXER_INCLUDE}", f"-I{_core_include()}", str(source), "-o", str(tmp_path / "layout.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_paged_key_loads_carry_the_evict_first_hint(tmp_path):
    # Every key block of a decode step is read exactly once: its TMA loads (keys and scales) carry an L2 evict-first
    # policy (H100, cold L2: 3-10% on the three benchmark cases, docs/perf_log.md dg.indexer v7). Pinned on the PTX.
    nvcc = _nvcc()
    spec = _jit.paged_mqa_logits_spec(1, 64, 128)
    source = tmp_path / "paged.cu"
    source.write_text(f"#include <{spec.include}>\n"
                      f"static void* const dg_kernel_instance = reinterpret_cast<void*>(&{spec.kernel});\n")
    cmd = [nvcc, "-std=c++20", "-gencode=arch=compute_90a,code=compute_90a", "-ptx", "-diag-suppress=177",
           f"-I{INDEXER_INCLUDE}", f"-I{_core_include()}", str(source), "-o", str(tmp_path / "paged.ptx")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ptx = (tmp_path / "paged.ptx").read_text()
    assert "createpolicy.fractional.L2::evict_first" in ptx
    hinted = [line for line in ptx.splitlines() if "cp.async.bulk.tensor" in line and "L2::cache_hint" in line]
    assert any(".3d." in line for line in hinted), "the key tile load lost its cache hint"
    assert any(".2d." in line for line in hinted), "the scale load lost its cache hint"
