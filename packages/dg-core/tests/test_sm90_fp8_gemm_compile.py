"""CPU checks of the SM90 FP8 GEMM kernels: they compile for sm_90a with NVCC, the PTX holds FP8 (e4m3) wgmma, ptxas
reports no spills, the static_asserts reject illegal tile configurations with a readable message, and the config
heuristic (csrc/heuristics/sm90_fp8.hpp) returns legal configurations for a catalogue of shapes.

Needs NVCC (skipped otherwise); no GPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]
INCLUDE = PKG / "src" / "dg" / "core" / "include"
HEURISTICS = PKG / "csrc" / "heuristics" / "sm90_fp8.hpp"



# (stem, template arguments) pairs covering both recipes, both BLOCK_M, multicast, odd BLOCK_N, narrow chunks and
# K ways.
INSTANCES = [
    ("sm90_fp8_gemm_1d2d", "128, 128, 5, 2, 64, 16"),
    ("sm90_fp8_gemm_1d2d", "128, 160, 5, 1, 32, 16"),
    ("sm90_fp8_gemm_1d2d", "128, 144, 5, 2, 16, 16"),
    ("sm90_fp8_gemm_1d2d", "128, 256, 3, 1, 64, 16"),  # two 128-column halves per K block
    ("sm90_fp8_gemm_1d2d", "128, 192, 4, 1, 64, 16"),  # single pass, promotion per column offset 0 / 64
    ("sm90_fp8_gemm_1d2d", "128, 192, 5, 1, 32, 16, 1, 1"),  # long K: 5 stages, output ring of 32-column chunks
    ("sm90_fp8_gemm_1d2d", "128, 192, 4, 2, 64, 16, 1, 1"),  # the same, epilogue first, B multicast
    ("sm90_fp8_gemm_1d2d", "128, 176, 4, 1, 16, 16"),  # single pass over up to three SFB blocks
    ("sm90_fp8_gemm_1d2d", "128, 256, 3, 1, 64, 16, 1, 1"),  # pipelined, epilogue before the next tile's wgmma
    ("sm90_fp8_gemm_1d2d", "128, 256, 3, 1, 64, 16, 1, 0"),  # plain per-tile loop
    ("sm90_fp8_gemm_1d2d", "128, 256, 3, 2, 64, 16, 1, 1"),  # two halves, B multicast to a cluster of 2
    ("sm90_fp8_gemm_1d2d", "128, 256, 4, 2, 64, 16, 1, 1"),  # 4 stages: output through a ring of two chunks
    ("sm90_fp8_gemm_1d2d", "128, 256, 4, 1, 64, 16"),  # the ring with the early-issue loop
    ("sm90_fp8_gemm_1d2d", "64, 16, 16, 1, 16, 16"),
    ("sm90_fp8_gemm_1d2d", "64, 96, 10, 1, 32, 16"),
    ("sm90_fp8_gemm_1d2d", "64, 64, 13, 1, 64, 16"),
    ("sm90_fp8_gemm_1d2d", "64, 32, 16, 1, 32, 16, 3"),  # three K ways
    ("sm90_fp8_gemm_1d2d", "128, 16, 11, 1, 16, 16, 2"),  # two row groups x two K ways
    ("sm90_fp8_gemm_1d1d", "128, 128, 4, 2, 32, 16"),
    ("sm90_fp8_gemm_1d1d", "64, 64, 12, 1, 32, 16"),
    ("sm90_fp8_gemm_1d1d", "128, 32, 10, 1, 32, 16"),
]
MULTICAST_1D1D = ("sm90_fp8_gemm_1d1d", "128, 128, 4, 2, 32, 16")


def _compile(nvcc: str, tmp_path: Path, stem: str, args: str, *extra: str) -> subprocess.CompletedProcess:
    src = tmp_path / f"{stem}.cu"
    src.write_text(
        f"#include <dg_core/impls/{stem}.cuh>\n"
        f"static void* dg_kernel_instance() {{ return reinterpret_cast<void*>(&dg::{stem}_impl<{args}>); }}\n"
    )
    cmd = [
        nvcc,
        "-std=c++20",
        "-O3",
        "-gencode=arch=compute_90a,code=sm_90a",
        f"-I{INCLUDE}",
        "-diag-suppress",
        "177",
        *extra,
        str(src),
    ]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("stem,args", INSTANCES, ids=[f"{s}<{a.replace(' ', '')}>" for s, a in INSTANCES])
def test_kernel_compiles_without_spills(nvcc, tmp_path, stem, args):
    r = _compile(nvcc, tmp_path, stem, args, "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"))
    assert r.returncode == 0, r.stderr
    stats = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", r.stderr)
    assert stats, r.stderr
    for frame, st, ld in stats:
        assert (int(frame), int(st), int(ld)) == (0, 0, 0), f"{stem}<{args}> spills or uses a stack frame:\n{r.stderr}"
    assert "C7508" not in r.stderr, f"setmaxnreg ignored:\n{r.stderr}"
    # ptxas serialises every wgmma of a kernel when it cannot prove a pipeline safe (a wgmma under a data-dependent
    # branch, accumulators read while a chain is in flight across a loop's back edge, ...): correct, but slow.
    assert "Potential Performance Loss" not in r.stderr, f"{stem}<{args}>: wgmma serialised:\n{r.stderr}"


@pytest.mark.parametrize("stem,args", [INSTANCES[0], MULTICAST_1D1D], ids=["1d2d", "1d1d"])
def test_ptx_uses_fp8_wgmma_tma_and_setmaxnreg(nvcc, tmp_path, stem, args):
    r = _compile(nvcc, tmp_path, stem, args, "-ptx", "-o", str(tmp_path / "k.ptx"))
    assert r.returncode == 0, r.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    n = args.split(",")[1].strip()
    assert re.search(rf"wgmma\.mma_async\.sync\.aligned\.m64n{n}k32\.f32\.e4m3\.e4m3", ptx)
    assert "cp.async.bulk.tensor.2d.shared::cluster.global" in ptx
    assert "multicast::cluster" in ptx  # these instances use a cluster of 2
    assert "setmaxnreg.inc.sync.aligned.u32 232" in ptx
    assert "setmaxnreg.dec.sync.aligned.u32 40" in ptx
    store = "cp.reduce.async.bulk.tensor" if stem.endswith("1d1d") else "cp.async.bulk.tensor.2d.global.shared::cta"
    assert store in ptx
    if not stem.endswith("1d1d"):
        # The BF16 output is streamed out with an L2 evict-first policy (docs/perf_log.md v19); the 1D1D kernel's
        # reduce-add keeps plain stores (its D is read back).
        stores = [line for line in ptx.splitlines() if "cp.async.bulk.tensor.2d.global.shared::cta" in line]
        assert stores and all("L2::cache_hint" in line for line in stores), stores


@pytest.mark.parametrize(
    "stem,args,message",
    [
        ("sm90_fp8_gemm_1d2d", "96, 128, 4, 1, 64, 16", "BLOCK_M must be 64 or 128"),
        ("sm90_fp8_gemm_1d2d", "128, 152, 4, 1, 8, 16", "at most two 128-wide SFB blocks"),
        ("sm90_fp8_gemm_1d2d", "128, 208, 3, 1, 16, 16", "tiles wider than 176 are 192 (one pass) or 256 wide"),
        ("sm90_fp8_gemm_1d2d", "128, 128, 8, 1, 64, 16", "shared memory budget"),
        ("sm90_fp8_gemm_1d2d", "128, 120, 4, 2, 8, 16", "multicast halves of B"),
        ("sm90_fp8_gemm_1d1d", "128, 160, 3, 1, 32, 16", "BLOCK_N must be a multiple of 16 in [16, 128]"),
    ],
)
def test_static_asserts_reject_bad_configs(nvcc, tmp_path, stem, args, message):
    r = _compile(nvcc, tmp_path, stem, args, "-cubin", "-o", str(tmp_path / "k.cubin"))
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


SMEM_MIRROR_MAIN = r"""
#include <dg_core/impls/sm90_fp8_gemm_1d2d.cuh>
#include "sm90_fp8.hpp"
#include <cstdio>
template <unsigned int BM, unsigned int BN, unsigned int S, unsigned int CH, unsigned int W>
void row() {
    using C = dg::Sm90Fp8Gemm1d2dConfig<BM, BN, S, 1, CH, W>;
    const int host = dg::heuristics::sm90_fp8_smem_bytes(dg::heuristics::Sm90Fp8Kind::k1D2D, BM, BN, S, W, CH);
    std::printf("%u %u %u %d %u %d\n", BM, BN, S, int(C::kDRing), C::kSmemBytes, host);
}
int main() {
    row<128, 256, 3, 64, 1>(); row<128, 256, 4, 64, 1>(); row<128, 192, 4, 64, 1>(); row<128, 176, 4, 16, 1>();
    row<128, 176, 5, 16, 1>(); row<128, 128, 5, 64, 1>(); row<128, 160, 5, 32, 1>(); row<64, 16, 16, 16, 3>();
    row<64, 64, 12, 64, 2>(); row<128, 16, 11, 16, 2>(); row<64, 128, 4, 64, 1>();
}
"""


def test_host_shared_memory_mirrors_the_kernel_layout(nvcc, tmp_path):
    # The launcher requests sm90_fp8_smem_bytes(); the kernel lays out Cfg::kSmemBytes (and decides on the output
    # ring by itself): both must agree for every kind of tile, with and without the ring.
    (tmp_path / "mirror.cu").write_text(SMEM_MIRROR_MAIN)
    exe = tmp_path / "mirror"
    r = subprocess.run([nvcc, "-std=c++20", f"-I{INCLUDE}", f"-I{HEURISTICS.parent}", "-diag-suppress", "177",
                        str(tmp_path / "mirror.cu"), "-o", str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [list(map(int, line.split())) for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                                     check=True).stdout.splitlines()]
    assert len(rows) == 11
    for bm, bn, stages, ring, kernel, host in rows:
        assert kernel == host and kernel <= 232448, (bm, bn, stages, ring, kernel, host)
    rings = {(bm, bn, stages) for bm, bn, stages, ring, _, _ in rows if ring}
    assert rings == {(128, 256, 4), (128, 176, 5)}


HEURISTIC_MAIN = r"""
#include "sm90_fp8.hpp"
#include <cstdio>
using namespace dg::heuristics;
int main() {
    const int ms[] = {1, 7, 63, 64, 65, 128, 129, 256, 1000, 4096, 4097, 8192};
    const int nks[][2] = {{2112, 7168}, {576, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384}, {4096, 7168},
                          {7168, 2048}, {2112, 128}, {576, 256}, {256, 7168}};
    for (int kind = 0; kind < 2; ++kind)
        for (int sms : {132, 114, 78, 1})
            for (int m : ms)
                for (auto& nk : nks) {
                    const Sm90Fp8Kind kd = kind ? Sm90Fp8Kind::k1D1D : Sm90Fp8Kind::k1D2D;
                    Sm90Fp8Config c = choose_sm90_fp8_config(kd, m, nk[0], nk[1], sms, 232448);
                    std::printf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", kind, sms, m, nk[0], nk[1],
                                c.block_m, c.block_n, c.stages, c.cluster_m, c.chunk_n, c.num_ctas, c.num_splits,
                                c.smem_bytes, c.threads, c.k_ways);
                }
    Sm90Fp8Config h = choose_sm90_fp8_config(Sm90Fp8Kind::k1D2D, 256, 4096, 1536, 132, 232448, 128, 128);
    std::printf("heads %d %d\n", h.block_n, h.chunk_n);
}
"""


def test_heuristic_configs_are_legal(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    (tmp_path / "main.cpp").write_text(HEURISTIC_MAIN)
    exe = tmp_path / "heur"
    r = subprocess.run(
        [cxx, "-std=c++17", "-O1", f"-I{HEURISTICS.parent}", str(tmp_path / "main.cpp"), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    for line in out[:-1]:
        kind, sms, m, n, k, bm, bn, stages, cl, ch, ctas, splits, smem, threads, ways = map(int, line.split())
        where = f"kind={kind} sms={sms} M={m} N={n} K={k}: {line}"
        assert bm in (64, 128), where
        assert bm >= 128 or m <= 128, where  # BLOCK_M 64 for M <= 64, and 64 < M <= 128 when cheaper
        assert bn % 16 == 0 and 16 <= bn <= (256 if kind == 0 else 128), where
        assert bn <= 160 or (bn in (176, 192, 256) and m > 128), where
        if kind == 0:
            g = next(d for d in (128, 64, 32, 16, 8) if bn % d == 0)
            # at most two SFB blocks per single-pass tile (192 = 128 + 64), three for 176; 256 runs as two halves
            assert bn <= 128 + g or bn in (176, 192, 256), where
            assert splits == 1, where
        assert bn % ch == 0 and ch * (2 if kind == 0 else 4) <= 128, where
        assert 2 <= stages <= 16 and smem <= 232448, where
        assert threads == 128 * (bm // 64 * ways + 1), where
        # K ways: small M only, at most 4 math warpgroups, narrow tiles when the launch bound limits registers.
        assert ways == 1 or (kind == 0 and m <= 128 and k >= 16 * 128), where
        assert bm // 64 * ways <= 4 and (bm // 64 * ways <= 2 or bn <= (64 if bm // 64 * ways == 3 else 32)), where
        tiles = -(-m // bm) * -(-n // bn)
        assert 1 <= ctas <= max(sms, 2) and ctas <= tiles * splits, where
        assert 1 <= splits <= max(1, -(-k // 128)), where
        if cl == 2:
            assert ctas % 2 == 0 and (-(-m // bm)) % 2 == 0 and (bn // 2) % 8 == 0 and bn != 192, where
        if kind == 0 and bn == 256 and m >= 512 and (-(-m // bm)) % 2 == 0 and sms >= 2:
            assert cl == 2, where  # 256-wide tiles multicast B whenever the M blocks pair up
        if m == 4096 and sms == 132:
            assert bn in (128, 160, 176, 192, 256), where
    assert out[-1].split()[1:] == ["128", "64"] or out[-1].split()[2] in ("64", "32", "16"), out[-1]


def _nvrtc():
    """libnvrtc through ctypes (the pip wheel nvidia-cuda-nvrtc, or the toolkit's), or None."""
    import ctypes
    import glob

    dirs = []
    try:
        import nvidia.cu13 as cu13  # type: ignore[import-not-found]

        dirs += [str(Path(p) / "lib") for p in cu13.__path__]
    except ImportError:
        pass
    dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
    for d in dirs:
        for lib in sorted(glob.glob(f"{d}/libnvrtc.so*")):
            if "builtins" in lib or "alt" in lib:
                continue
            try:
                # NOTE: load the builtins first from the same folder so NVRTC finds them without LD_LIBRARY_PATH.
                for b in glob.glob(f"{d}/libnvrtc-builtins.so*"):
                    if "alt" not in b:
                        ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                return ctypes.CDLL(lib)
            except OSError:
                continue
    return None


@pytest.mark.parametrize("stem,args", [INSTANCES[0], MULTICAST_1D1D], ids=["1d2d", "1d1d"])
def test_kernels_compile_with_nvrtc(stem, args):
    import ctypes

    lib = _nvrtc()
    cccl = Path("/usr/local/cuda/include/cccl")
    if lib is None or not cccl.exists():
        pytest.skip("libnvrtc or the CCCL headers not found")
    prog = ctypes.c_void_p()
    src = f"#include <dg_core/impls/{stem}.cuh>\n".encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"k.cu", 0, None, None) == 0
    assert lib.nvrtcAddNameExpression(prog, f"&dg::{stem}_impl<{args}>".encode()) == 0
    opts = [
        b"-std=c++20",
        b"-arch=sm_90a",
        b"-default-device",
        f"-I{INCLUDE}".encode(),
        f"-I{cccl}".encode(),
        b"-I/usr/local/cuda/include",
    ]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, log.value.decode(errors="replace")
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    assert size.value > 0
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
