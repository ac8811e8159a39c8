"""GPU tests: every dg.layout kernel equals the pure-torch reference bit for bit.

Kernels are called through their launchers with NaN/sentinel-poisoned outputs (so a never-written element fails),
and through the public functions; fresh random data per case. Run on an H100: ``pytest -m gpu packages/dg-layout``.
"""

import random

import dg.layout as L
import pytest
import torch
from dg.layout import _kernels, reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP8 = torch.float8_e4m3fn
DTYPES = [torch.bfloat16, torch.float32]


def randn(shape, dtype, scale_rows=True):
    """Fresh random data with per-row magnitudes spread over many binades (exercises many scale exponents)."""
    x = torch.randn(shape, dtype=torch.float32, device="cuda")
    if scale_rows and len(shape) == 2:
        x = x * torch.exp2(torch.randint(-20, 20, (shape[0], 1), device="cuda").float())
    return x.to(dtype)


def poisoned_fp8(shape):
    return torch.full(shape, 0x7F, dtype=torch.uint8, device="cuda").view(FP8)  # 0x7F is e4m3 NaN


def poisoned_like(ref):
    """An empty tensor with ref's sizes and strides whose every storage byte is NaN / a sentinel."""
    out = torch.empty_strided(ref.shape, ref.stride(), dtype=ref.dtype, device="cuda")
    if out.dtype == torch.int32:
        torch.as_strided(out, (out.untyped_storage().nbytes() // 4,), (1,)).fill_(0x7FFFDEAD)
    else:
        torch.as_strided(out, (out.untyped_storage().nbytes() // 4,), (1,)).fill_(float("nan"))
    return out


def u8(t):
    return t.view(torch.uint8) if t.dtype == FP8 else t


def assert_bits_equal(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    g, w = u8(got), u8(want)
    if not torch.equal(g, w):
        diff = (g != w).nonzero()
        first = tuple(diff[0].tolist())
        raise AssertionError(f"{diff.shape[0]} elements differ; first at {first}: got {g[first]}, want {w[first]}")


# ------------------------------------------------------------------------------------------------- per-token
PER_TOKEN_SHAPES = [(1, 128), (7, 7168), (128, 2048), (4096, 7168), (4097, 7296), (4097, 1536), (16384, 512),
                    (3, 100), (5, 300), (64, 16384)]


@pytest.mark.parametrize("mn_major", [False, True])
@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PER_TOKEN_SHAPES, ids=[f"{m}x{k}" for m, k in PER_TOKEN_SHAPES])
def test_per_token_kernel(shape, dtype, use_ue8m0, mn_major):
    m, k = shape
    x = randn(shape, dtype)
    x[0, : min(k, 128)] = 0  # an all-zero group: the 1e-4 clamp
    ref_q, ref_sf = reference.per_token_cast_to_fp8(x, use_ue8m0)
    out = poisoned_fp8((m, k))
    sf = reference.empty_mn_major(None, m, L.ceil_div(k, 128), torch.float32, "cuda") if mn_major else \
        torch.empty(m, L.ceil_div(k, 128), device="cuda")
    sf = poisoned_like(sf)
    _kernels.per_token_cast(x, out, sf, use_ue8m0)
    assert_bits_equal(sf, ref_sf)
    assert_bits_equal(out, ref_q)
    # The public function gives the same bits and the documented layout.
    q2, sf2 = L.per_token_cast_to_fp8(x, use_ue8m0, mn_major_sf=mn_major)
    assert sf2.stride() == ((1, L.align(m, 4)) if mn_major else (sf2.shape[1], 1))
    assert_bits_equal(sf2, ref_sf)
    assert_bits_equal(q2, ref_q)


def test_per_token_matches_float64_derivation():
    x = randn((4097, 7296), torch.bfloat16)
    q, sf = L.per_token_cast_to_fp8(x, False)
    xd = x.double().view(4097, 57, 128)
    sf64 = (torch.clamp(xd.abs().amax(dim=2), min=torch.tensor(1e-4).item()) / 448.0).float()
    assert_bits_equal(sf, sf64)
    inv = (1.0 / sf64.double()).float().double()
    assert_bits_equal(q, (xd * inv[:, :, None]).float().to(FP8).view(4097, 7296))


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_token_row_pitch_and_unaligned(dtype):
    wide = randn((300, 7168 + 64), dtype)
    x = wide[:, 64:]  # row pitch 7232 elements, base offset 64 elements: still 16-byte aligned
    assert_bits_equal(L.per_token_cast_to_fp8(x, True)[0], reference.per_token_cast_to_fp8(x, True)[0])
    y = wide[:, 1:7169]  # base not 16-byte aligned: the scalar path
    q, sf = L.per_token_cast_to_fp8(y, True)
    rq, rsf = reference.per_token_cast_to_fp8(y, True)
    assert_bits_equal(sf, rsf)
    assert_bits_equal(q, rq)
    z = randn((512, 384), dtype).t()  # column stride != 1: copied, then cast
    assert_bits_equal(L.per_token_cast_to_fp8(z, False)[0], reference.per_token_cast_to_fp8(z, False)[0])


def test_per_token_gpu_equals_cpu():
    x = randn((513, 7296), torch.bfloat16)
    for ue8m0 in (False, True):
        q, sf = L.per_token_cast_to_fp8(x, ue8m0)
        cq, csf = L.per_token_cast_to_fp8(x.cpu(), ue8m0)
        assert_bits_equal(sf.cpu(), csf)
        assert_bits_equal(q.cpu(), cq)


# ------------------------------------------------------------------------------------------- per-block/channel
PER_BLOCK_SHAPES = [(1, 1), (7, 300), (129, 257), (4096, 7168), (7168, 2048), (4097, 7296), (2112, 7168)]


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PER_BLOCK_SHAPES, ids=[f"{m}x{n}" for m, n in PER_BLOCK_SHAPES])
def test_per_block_kernel(shape, dtype, use_ue8m0):
    x = randn(shape, dtype)
    ref_q, ref_sf = reference.per_block_cast_to_fp8(x, use_ue8m0)
    out, sf = poisoned_fp8(shape), poisoned_like(ref_sf)
    _kernels.tile_cast("per_block_cast_fp8", x, out, sf, use_ue8m0)
    assert_bits_equal(sf, ref_sf)
    assert_bits_equal(out, ref_q)
    q2, sf2 = L.per_block_cast_to_fp8(x, use_ue8m0)
    assert_bits_equal(sf2, ref_sf)
    assert_bits_equal(q2, ref_q)


PER_CHANNEL_SHAPES = [(128, 1), (128, 300), (256, 4097), (8192, 4096), (2048, 7168)]


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PER_CHANNEL_SHAPES, ids=[f"{m}x{n}" for m, n in PER_CHANNEL_SHAPES])
def test_per_channel_kernel(shape, dtype, use_ue8m0):
    x = randn(shape, dtype, scale_rows=False)
    x = x * torch.exp2(torch.randint(-20, 20, (1, shape[1]), device="cuda").float()).to(dtype)
    ref_q, ref_sf = reference.per_channel_cast_to_fp8(x, use_ue8m0)
    out, sf = poisoned_fp8(shape), poisoned_like(ref_sf)
    _kernels.tile_cast("per_channel_cast_fp8", x, out, sf, use_ue8m0)
    assert_bits_equal(sf, ref_sf)
    assert_bits_equal(out, ref_q)
    q2, sf2 = L.per_channel_cast_to_fp8(x, use_ue8m0)
    assert_bits_equal(sf2, ref_sf)
    assert_bits_equal(q2, ref_q)


def test_per_custom_dims_kernel_path():
    kv = randn((65536, 128), torch.bfloat16)
    q, sf = L.per_custom_dims_cast_to_fp8(kv, (0,), False)
    rq, rsf = reference.per_custom_dims_cast_to_fp8(kv, (0,), False)
    assert_bits_equal(sf, rsf)
    assert_bits_equal(q, rq)


# ---------------------------------------------------------------------------------------------- SF transforms
# NOTE: k = 16512 gives S = 129 > 64: several 64-column tiles of the transform kernels, the last one partial.
SF_CASES = [(mn, k, g) for mn in (1, 7, 4096, 4097, 8192) for k in (128, 7168, 7296) for g in (None, 1, 2, 4, 32)
            if not (mn == 8192 and g == 32)] + [(mn, 16512, g) for mn in (7, 4097) for g in (None, 2, 32)]


def make_sf(mn, k, groups, with_transpose, pow2):
    s = L.ceil_div(k, 128)
    rows = mn * (groups or 1)
    _, sf = L.per_token_cast_to_fp8(randn((rows, k), torch.bfloat16), use_ue8m0=pow2)
    sf = sf.view(groups, mn, s) if groups is not None else sf
    if not with_transpose:
        sf = sf.transpose(-1, -2).contiguous().transpose(-1, -2)
    return sf


@pytest.mark.parametrize("with_transpose", [True, False])
@pytest.mark.parametrize("mn,k,groups", SF_CASES)
def test_mn_major_kernel(mn, k, groups, with_transpose):
    sf = make_sf(mn, k, groups, with_transpose, pow2=False)
    want = reference.mn_major_tma_aligned(sf)
    out = poisoned_like(want)
    _kernels.mn_major_fp32(sf, out)
    assert torch.equal(out, sf) and out.stride() == want.stride()
    got = L.get_mn_major_tma_aligned_tensor(sf)
    assert torch.equal(got, sf) and got.stride() == want.stride()


@pytest.mark.parametrize("with_transpose", [True, False])
@pytest.mark.parametrize("mn,k,groups", SF_CASES)
def test_pack_ue8m0_kernel(mn, k, groups, with_transpose):
    sf = make_sf(mn, k, groups, with_transpose, pow2=True)
    want = reference.mn_major_tma_aligned_packed_ue8m0(sf)
    out = poisoned_like(want)
    _kernels.pack_ue8m0(sf, out)
    assert_bits_equal(out, want)
    got = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    assert got.stride() == want.stride()
    assert_bits_equal(got, want)
    assert_bits_equal(got.cpu(), reference.mn_major_tma_aligned_packed_ue8m0(sf.cpu()))


def test_pack_ue8m0_odd_strides_and_non_powers_of_two():
    base = torch.randn(3, 60, 8200, device="cuda").abs() * 1e3
    sf = base[:, 3::4, 5::2][:, :14, :4097].transpose(1, 2)  # [3, 4097, 14], no unit stride at all
    assert 1 not in sf.stride()
    want = reference.mn_major_tma_aligned_packed_ue8m0(sf)
    assert_bits_equal(L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf), want)
    assert torch.equal(L.get_mn_major_tma_aligned_tensor(sf), sf)


@pytest.mark.parametrize("groups", [None, 1, 4, 32])
@pytest.mark.parametrize("mn,k", [(4096, 7168), (4097, 7296), (7, 128), (2112, 7168)])
def test_transform_rule4_kernel(mn, k, groups):
    rows = L.ceil_div(mn, 128) * (groups or 1)
    _, sf = L.per_block_cast_to_fp8(randn((rows * 128, k), torch.bfloat16), use_ue8m0=True)
    sf = sf.view(groups, -1, sf.shape[-1]) if groups is not None else sf
    got = L.transform_sf_into_required_layout(sf, mn, k, (1, 128, 128), num_groups=groups, arch=100)
    want = reference.mn_major_tma_aligned_packed_ue8m0(sf, row_div=128, mn=mn)
    assert got.stride() == want.stride()
    assert_bits_equal(got, want)


# ------------------------------------------------------------------------------------------ k-grouped packing
K_GROUPED = [(16, 2048), (8, 4096), (72, 384), (128, 256), (1, 2048), (32, 512)]


@pytest.mark.parametrize("with_empty", [False, True])
@pytest.mark.parametrize("mn", [4096, 7168, 12])
@pytest.mark.parametrize("groups,avg_k", K_GROUPED)
def test_k_grouped_kernel(groups, avg_k, mn, with_empty):
    rng = random.Random()
    ks = [L.align(int(avg_k * rng.uniform(0.7, 1.3)), 128) for _ in range(groups)]
    if with_empty:
        ks[rng.randrange(groups)] = 0
    x = randn((sum(ks), mn), torch.bfloat16, scale_rows=False)
    _, sf = L.per_channel_cast_to_fp8(x, use_ue8m0=True) if sum(ks) else (None, torch.empty(0, mn, device="cuda"))
    ks_t = torch.tensor(ks, dtype=torch.int32, device="cuda")
    want = reference.k_grouped_packed_ue8m0(sf, ks)
    out = poisoned_like(want)
    if want.numel():
        _kernels.pack_ue8m0_k_grouped(sf, out, ks_t)
    assert_bits_equal(out, want)
    assert_bits_equal(L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, ks_t, ks), want)


def test_k_grouped_unaligned_base_uses_scalar_path():
    ks = [512, 0, 384]
    flat = torch.pow(2.0, torch.randint(-20, 5, (7 * 64 + 1,), device="cuda").float())
    sf = flat[1:].view(7, 64)  # contiguous, base 4 bytes past a 16-byte boundary
    ks_t = torch.tensor(ks, dtype=torch.int32, device="cuda")
    got = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, ks_t, ks)
    assert_bits_equal(got, reference.k_grouped_packed_ue8m0(sf, ks))


def test_k_grouped_disagreeing_ks_tensor_stays_in_bounds():
    ks = [256, 256]
    sf = torch.ones(4, 64, device="cuda")
    liar = torch.tensor([1 << 20, 1 << 20], dtype=torch.int32, device="cuda")
    L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, liar, ks)
    torch.cuda.synchronize()  # no illegal address: every access is bounds-checked
