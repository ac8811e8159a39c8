"""CPU tests: dg.layout's kernels, run by a host emulator through their real launchers, equal the reference.

The launchers in dg.layout._kernels are called with CPU tensors; the JIT kernel object is replaced by one that runs
the same .cuh code compiled with g++ against tests/emulator/host_emulator.h (every CUDA thread a std::thread).
Grids are capped at 3 CTAs per dimension so every grid-stride loop runs several rounds. Outputs are poisoned
first, so an element the kernel never writes fails the comparison. The GPU tests (test_gpu.py) check the same
kernels on hardware.
"""

import contextlib
import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import dg.layout as L
import pytest
import torch
from dg.layout import _kernels, reference

HERE = Path(__file__).resolve().parent
INCLUDE = Path(_kernels.__file__).resolve().parent / "include"
FP8 = torch.float8_e4m3fn


def _cuda_include() -> Path | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda_fp8.h").exists():
            return Path(root) / "include"
    return None


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++")
    cuda_inc = _cuda_include()
    if cxx is None or cuda_inc is None:
        pytest.skip("the kernel emulator needs g++ and the CUDA toolkit headers (cuda_fp8.h)")
    lib_path = tmp_path_factory.mktemp("emulator") / "libdg_layout_emulated.so"
    cmd = [cxx, "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-w", f"-I{cuda_inc}",
           f"-I{cuda_inc / 'cccl'}", f"-I{INCLUDE}", str(HERE / "emulator" / "emulated_kernels.cpp"), "-o",
           str(lib_path), "-pthread"]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"emulator build failed:\n{build.stderr[-4000:]}"
    return ctypes.CDLL(str(lib_path))


class _EmulatedKernel:
    def __init__(self, lib, stem, template_arg):
        self.lib, self.stem, self.bf16 = lib, stem, int(template_arg == "__nv_bfloat16")

    def launch(self, grid, block, args, **_):
        sig = _kernels.SIGNATURES[self.stem]
        assert len(args) == len(sig), f"{self.stem}: {len(args)} args for a {len(sig)}-parameter signature"
        values = [a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args]
        conv = [ctypes.c_void_p(v) if t == "ptr" else ctypes.c_longlong(v) if t == "i64" else ctypes.c_uint(v)
                for v, t in zip(values, sig, strict=True)]
        gx, gy, gz = (ctypes.c_int(g) for g in grid)
        block = tuple(block)
        if self.stem == "per_token_cast_fp8":
            assert block == (256, 1, 1)
            self.lib.per_token(ctypes.c_int(self.bf16), gx, *conv)
        elif self.stem in ("per_block_cast_fp8", "per_channel_cast_fp8"):
            assert block == (256, 1, 1)
            self.lib.tile_cast(ctypes.c_int(self.stem == "per_channel_cast_fp8"), ctypes.c_int(self.bf16), gx, *conv)
        elif self.stem == "sf_mn_major_fp32":
            assert block == (256, 1, 1) and tuple(grid[1:]) == (1, 1)
            self.lib.mn_major(gx, *conv)
        elif self.stem == "sf_pack_ue8m0":
            assert block == (256, 1, 1) and tuple(grid[1:]) == (1, 1)
            self.lib.pack(gx, *conv)
        elif self.stem == "sf_pack_ue8m0_broadcast":
            assert block == (256, 1, 1) and tuple(grid[1:]) == (1, 1)
            self.lib.pack_bcast(gx, *conv)
        else:
            assert self.stem == "sf_pack_ue8m0_k_grouped" and block == (128, 1, 1)
            self.lib.pack_kg(gx, gy, gz, *conv)


@pytest.fixture
def emulated(emulator, monkeypatch):
    monkeypatch.setattr(_kernels, "_kernel", lambda stem, device, targ=None: _EmulatedKernel(emulator, stem, targ))
    monkeypatch.setattr(_kernels, "_capped_grid", lambda ctas, device, waves=64: max(1, min(ctas, 3)))
    monkeypatch.setattr(_kernels, "_MAX_GRID_X", 3)
    monkeypatch.setattr(_kernels, "_MAX_GRID_YZ", 2)
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())


def u8(t):
    return t.view(torch.uint8) if t.dtype == FP8 else t


def assert_bits_equal(got, want):
    assert got.shape == want.shape
    assert torch.equal(u8(got), u8(want)), f"{int((u8(got) != u8(want)).sum())} elements differ"


def randn(shape, dtype):
    x = torch.randn(shape) * torch.exp2(torch.randint(-20, 20, (shape[0], 1)).float())
    return x.to(dtype)


def poisoned_fp8(shape):
    return torch.full(shape, 0x7F, dtype=torch.uint8).view(FP8)


def poisoned_like(ref):
    out = torch.empty_strided(ref.shape, ref.stride(), dtype=ref.dtype)
    flat = torch.as_strided(out, (out.untyped_storage().nbytes() // 4,), (1,))
    flat.fill_(0x7FFFDEAD) if out.dtype == torch.int32 else flat.fill_(float("nan"))
    return out


@pytest.mark.parametrize("view", ["contiguous", "pitched", "unaligned"])
@pytest.mark.parametrize("mn_major", [False, True])
@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("m,k", [(1, 128), (7, 300), (5, 7296), (40, 1024)])
def test_per_token(emulated, m, k, dtype, use_ue8m0, mn_major, view):
    base = randn((m, k + 64), dtype)
    x = {"contiguous": base[:, :k].contiguous(), "pitched": base[:, 64:], "unaligned": base[:, 1:k + 1]}[view]
    x[0, : min(k, 128)] = 0
    want_q, want_sf = reference.per_token_cast_to_fp8(x, use_ue8m0)
    s = L.ceil_div(k, 128)
    sf = reference.empty_mn_major(None, m, s, torch.float32, "cpu") if mn_major else torch.empty(m, s)
    out, sf = poisoned_fp8((m, k)), poisoned_like(sf)
    _kernels.per_token_cast(x, out, sf, use_ue8m0)
    assert_bits_equal(sf, want_sf)
    assert_bits_equal(out, want_q)


@pytest.mark.parametrize("unaligned", [False, True])
@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("m,n", [(1, 1), (7, 300), (129, 257), (256, 384)])
def test_per_block(emulated, m, n, dtype, use_ue8m0, unaligned):
    base = randn((m, n + 1), dtype)
    x = base[:, 1:] if unaligned else base[:, :n].contiguous()
    want_q, want_sf = reference.per_block_cast_to_fp8(x, use_ue8m0)
    out, sf = poisoned_fp8((m, n)), poisoned_like(want_sf)
    _kernels.tile_cast("per_block_cast_fp8", x, out, sf, use_ue8m0)
    assert_bits_equal(sf, want_sf)
    assert_bits_equal(out, want_q)


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("m,n", [(128, 1), (128, 300), (384, 257)])
def test_per_channel(emulated, m, n, dtype, use_ue8m0):
    x = (torch.randn(m, n) * torch.exp2(torch.randint(-20, 20, (1, n)).float())).to(dtype)
    want_q, want_sf = reference.per_channel_cast_to_fp8(x, use_ue8m0)
    out, sf = poisoned_fp8((m, n)), poisoned_like(want_sf)
    _kernels.tile_cast("per_channel_cast_fp8", x, out, sf, use_ue8m0)
    assert_bits_equal(sf, want_sf)
    assert_bits_equal(out, want_q)


# NOTE: S > 64 spans several 64-column tiles of the transform kernels (S = 130: three, the last partial).
SF_SHAPES = [(1, 1), (7, 3), (3, 33, 57), (1, 65, 9), (2, 70, 40), (2, 70, 130), (1, 5, 200)]


@pytest.mark.parametrize("with_transpose", [True, False])
@pytest.mark.parametrize("shape", SF_SHAPES)
def test_sf_transforms(emulated, shape, with_transpose):
    sf = torch.pow(2.0, torch.randint(-30, 10, shape).float()) * torch.rand(shape).add(1)
    pow2 = torch.pow(2.0, torch.randint(-30, 10, shape).float())
    if not with_transpose:
        sf = sf.transpose(-1, -2).contiguous().transpose(-1, -2)
        pow2 = pow2.transpose(-1, -2).contiguous().transpose(-1, -2)
    want = reference.mn_major_tma_aligned(sf)
    out = poisoned_like(want)
    _kernels.mn_major_fp32(sf, out)
    assert torch.equal(out, sf)
    want = reference.mn_major_tma_aligned_packed_ue8m0(pow2)
    out = poisoned_like(want)
    _kernels.pack_ue8m0(pow2, out)
    assert_bits_equal(out, want)


def test_sf_transforms_without_unit_stride(emulated):
    base = torch.rand(3, 60, 400) * 1e3
    sf = base[:, 3::4, 5::2][:, :14, :97].transpose(1, 2)
    want = reference.mn_major_tma_aligned_packed_ue8m0(sf)
    out = poisoned_like(want)
    _kernels.pack_ue8m0(sf, out)
    assert_bits_equal(out, want)
    out = poisoned_like(reference.mn_major_tma_aligned(sf))
    _kernels.mn_major_fp32(sf, out)
    assert torch.equal(out, sf)


# narrow: the broadcast kernel's 32-bit offsets (the default for these sizes) or, forced, its 64-bit path.
@pytest.mark.parametrize("narrow", [True, False])
# row_div 128 (rule 4) and 256 take the broadcast kernel (16-byte stores when MN % 4 == 0: 300, 520; scalar stores
# otherwise: 7, 129); 3 the general per-element-division path.
@pytest.mark.parametrize("row_div", [128, 256, 3])
@pytest.mark.parametrize("mn,s,groups", [(300, 9, 2), (7, 1, None), (129, 5, 1), (520, 70, 1)])
def test_block_scale_broadcast_pack(emulated, monkeypatch, mn, s, groups, row_div, narrow):
    if not narrow:
        monkeypatch.setattr(_kernels, "_NARROW_LIMIT", 0)
    rows = L.ceil_div(mn, row_div)
    sfb = torch.pow(2.0, torch.randint(-30, 10, (rows, s) if groups is None else (groups, rows, s)).float())
    want = reference.mn_major_tma_aligned_packed_ue8m0(sfb, row_div, mn)
    out = poisoned_like(want)
    _kernels.pack_ue8m0(sfb, out, row_div)
    assert_bits_equal(out, want)


@pytest.mark.parametrize("ks", [[640, 0, 128], [128], [0, 0, 256], [384] * 5, [512, 1024, 0, 128, 896]])
@pytest.mark.parametrize("mn", [8, 12, 520, 1028])
def test_k_grouped(emulated, mn, ks):
    sf = torch.pow(2.0, torch.randint(-30, 10, (sum(ks) // 128, mn)).float())
    want = reference.k_grouped_packed_ue8m0(sf, ks)
    out = poisoned_like(want)
    _kernels.pack_ue8m0_k_grouped(sf, out, torch.tensor(ks, dtype=torch.int32))
    assert_bits_equal(out, want)


def test_k_grouped_unaligned_base(emulated):
    ks = [512, 0, 384]
    sf = torch.pow(2.0, torch.randint(-20, 5, (7 * 64 + 1,)).float())[1:].view(7, 64)
    want = reference.k_grouped_packed_ue8m0(sf, ks)
    out = poisoned_like(want)
    _kernels.pack_ue8m0_k_grouped(sf, out, torch.tensor(ks, dtype=torch.int32))
    assert_bits_equal(out, want)
