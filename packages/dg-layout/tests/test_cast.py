"""CPU tests of the FP8 casts: hand-computed cases, an independent float64 re-derivation, shapes, errors."""

import dg.layout as L
import pytest
import torch
from dg.layout import reference

FP8 = torch.float8_e4m3fn
AMAX_FLOOR_F32 = torch.tensor(1e-4, dtype=torch.float32).item()


def _rand(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(dtype)


def f64_scale(amax, use_ue8m0):
    """The recipe's scale from float64 arithmetic (division of floats rounded once: innocuous double rounding)."""
    s = (torch.clamp(amax.double(), min=AMAX_FLOOR_F32) / 448.0).float()
    if use_ue8m0:
        # 2^ceil(log2 s) from frexp, exact in float64: s = m * 2^e with m in [0.5, 1).
        m, e = torch.frexp(s.double())
        s = torch.where(m == 0.5, s.double(), torch.ldexp(torch.ones_like(m), e)).float()
    return s


def f64_quantize(x, scale):
    """fl32(x * fl32(1 / scale)) -> e4m3, from float64 products (exact) rounded once to float32."""
    inv = (1.0 / scale.double()).float()
    return (x.double() * inv.double()).float().to(FP8)


def f64_per_token(x, use_ue8m0):
    m, n = x.shape
    s = L.ceil_div(n, 128)
    xp = torch.zeros(m, s * 128, dtype=torch.float64)
    xp[:, :n] = x.double()
    scale = f64_scale(xp.view(m, s, 128).abs().amax(dim=2), use_ue8m0)
    q = f64_quantize(xp.view(m, s, 128), scale[:, :, None]).view(m, s * 128)[:, :n]
    return q, scale


def _bits(t):
    return t.view(torch.uint8) if t.dtype == FP8 else t


def assert_bits_equal(a, b):
    assert a.shape == b.shape
    assert torch.equal(_bits(a.contiguous()), _bits(b.contiguous()))


# ----------------------------------------------------------------------------------------------------- per-token
def test_per_token_hand_case():
    x = torch.zeros(3, 256)
    x[0, :3] = torch.tensor([1.0, -2.0, 0.5])  # amax 2: scale 2/448, values x * 224
    x[0, 128] = 56.0  # block 1: amax 56, scale 0.125 exactly
    x[1, 5] = 1e-5  # amax clamps to 1e-4
    q, sf = L.per_token_cast_to_fp8(x, use_ue8m0=False)
    want_sf = torch.tensor(
        [[2.0 / 448, 0.125], [AMAX_FLOOR_F32 / 448, AMAX_FLOOR_F32 / 448], [AMAX_FLOOR_F32 / 448] * 2],
        dtype=torch.float64,
    ).float()
    assert torch.equal(sf, want_sf)
    assert q[0, :3].float().tolist() == [224.0, -448.0, 112.0]
    assert q[0, 128].float().item() == 448.0
    assert q[1, 5].float().item() == pytest.approx(1e-5 * 448 / 1e-4, rel=1 / 16)
    assert q[2].float().abs().sum().item() == 0.0


def test_per_token_hand_case_ue8m0():
    x = torch.zeros(2, 384)
    x[0, :3] = torch.tensor([1.0, -2.0, 0.5])  # scale 2/448 = 0.00446 -> 2^-7: values x * 128
    x[0, 128] = 56.0  # scale 0.125 is already a power of two: stays
    x[0, 256] = 57.0  # scale 0.1272 rounds up to 0.25: 57 * 4 = 228 -> e4m3 224
    x[1, 0] = 0.0  # all-zero row: scale (1e-4 / 448) -> 2^-22
    q, sf = L.per_token_cast_to_fp8(x, use_ue8m0=True)
    assert sf[0].tolist() == [2.0**-7, 0.125, 0.25]
    assert sf[1].tolist() == [2.0**-22] * 3
    assert q[0, :3].float().tolist() == [128.0, -256.0, 64.0]
    assert q[0, 128].float().item() == 448.0
    assert q[0, 256].float().item() == 224.0


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 128), (7, 300), (33, 7168), (5, 7296), (3, 1)])
def test_per_token_matches_float64(shape, dtype, use_ue8m0):
    x = _rand(shape, dtype, seed=shape[0] * 31 + shape[1])
    x[0, 0] = 0.0
    q, sf = L.per_token_cast_to_fp8(x, use_ue8m0)
    q64, sf64 = f64_per_token(x, use_ue8m0)
    assert q.is_contiguous() and q.dtype == FP8 and sf.dtype == torch.float32 and sf.is_contiguous()
    assert_bits_equal(sf, sf64)
    assert_bits_equal(q, q64)
    # Dequantised values are within e4m3's half-ulp (2^-4 relative) of x, plus the subnormal floor.
    sf_per_col = sf.repeat_interleave(128, dim=1)[:, : shape[1]]
    deq = q.float().view(shape[0], -1) * sf_per_col
    assert torch.all((deq - x.float()).abs() <= x.float().abs() / 16 + sf_per_col * 2**-9)


@pytest.mark.parametrize("m", [1, 7, 4097])
def test_per_token_mn_major_sf(m):
    x = _rand((m, 7168), torch.bfloat16, seed=m)
    q, sf = L.per_token_cast_to_fp8(x, False, mn_major_sf=True)
    q2, sf2 = L.per_token_cast_to_fp8(x, False)
    assert sf.shape == (m, 56) and sf.stride() == (1, L.align(m, 4))
    assert torch.equal(sf, sf2) and torch.equal(q.view(torch.uint8), q2.view(torch.uint8))
    # It is exactly what the SM90 transform would produce (a zero-copy pass-through).
    assert L.transform_sf_into_required_layout(sf, m, 7168, (1, 128, 128), is_sfa=True, arch=90) is sf


def test_per_token_non_contiguous_input():
    x = _rand((64, 512), torch.float32, seed=3)
    q, sf = L.per_token_cast_to_fp8(x.t().contiguous().t(), False)
    q2, sf2 = L.per_token_cast_to_fp8(x, False)
    assert torch.equal(sf, sf2) and torch.equal(q.view(torch.uint8), q2.view(torch.uint8))


def test_per_token_empty():
    q, sf = L.per_token_cast_to_fp8(torch.empty(0, 256), False)
    assert q.shape == (0, 256) and sf.shape == (0, 2)
    q, sf = L.per_token_cast_to_fp8(torch.empty(4, 0), False)
    assert q.shape == (4, 0) and sf.shape == (4, 0)


# ------------------------------------------------------------------------------------------------ per-block
def test_per_block_hand_case():
    x = torch.zeros(130, 129)
    x[0, 0] = 7.0  # block (0, 0): scale 7/448 = 1/64
    x[127, 127] = -3.5
    x[129, 0] = 448.0  # block (1, 0): scale 1
    x[0, 128] = 0.0  # block (0, 1): zero, clamp
    q, sf = L.per_block_cast_to_fp8(x, False)
    assert sf.shape == (2, 2)
    assert sf[0, 0].item() == 1 / 64 and sf[1, 0].item() == 1.0
    assert sf[0, 1].item() == torch.tensor(AMAX_FLOOR_F32 / 448, dtype=torch.float32).item()
    assert q[0, 0].float().item() == 448.0 and q[127, 127].float().item() == -224.0
    assert q[129, 0].float().item() == 448.0


def f64_per_block(x, use_ue8m0):
    m, n = x.shape
    pm, pn = L.align(m, 128), L.align(n, 128)
    xp = torch.zeros(pm, pn, dtype=torch.float64)
    xp[:m, :n] = x.double()
    v = xp.view(pm // 128, 128, pn // 128, 128)
    scale = f64_scale(v.abs().amax(dim=(1, 3)), use_ue8m0)
    return f64_quantize(v, scale[:, None, :, None]).view(pm, pn)[:m, :n], scale


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (129, 257), (256, 7168)])
def test_per_block_matches_float64(shape, dtype, use_ue8m0):
    x = _rand(shape, dtype, seed=shape[0] + shape[1])
    q, sf = L.per_block_cast_to_fp8(x, use_ue8m0)
    q64, sf64 = f64_per_block(x, use_ue8m0)
    assert sf.shape == (L.ceil_div(shape[0], 128), L.ceil_div(shape[1], 128)) and sf.is_contiguous()
    assert_bits_equal(sf, sf64)
    assert_bits_equal(q, q64)


# ---------------------------------------------------------------------------------------------- per-channel
def test_per_channel_hand_case():
    x = torch.zeros(256, 3)
    x[0, 0], x[127, 0] = 1.0, -2.0  # column 0, rows 0..127: scale 2/448
    x[128, 1] = 448.0  # column 1, rows 128..255: scale 1
    q, sf = L.per_channel_cast_to_fp8(x, True)
    assert sf.shape == (2, 3)
    assert sf[0, 0].item() == 2.0**-7 and sf[1, 1].item() == 1.0 and sf[0, 2].item() == 2.0**-22
    assert q[0, 0].float().item() == 128.0 and q[127, 0].float().item() == -256.0
    assert q[128, 1].float().item() == 448.0


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(128, 1), (128, 300), (384, 4096)])
def test_per_channel_matches_float64(shape, dtype, use_ue8m0):
    x = _rand(shape, dtype, seed=shape[1])
    q, sf = L.per_channel_cast_to_fp8(x, use_ue8m0)
    m, n = shape
    v = x.double().view(m // 128, 128, n)
    sf64 = f64_scale(v.abs().amax(dim=1), use_ue8m0)
    assert_bits_equal(sf, sf64)
    assert_bits_equal(q, f64_quantize(v, sf64[:, None, :]).view(m, n))


# ----------------------------------------------------------------------------------------------- custom dims
@pytest.mark.parametrize("use_ue8m0", [False, True])
def test_per_custom_dims_rows(use_ue8m0):
    kv = _rand((300, 128), torch.bfloat16, seed=9)
    q, sf = L.per_custom_dims_cast_to_fp8(kv, (0,), use_ue8m0)
    q2, sf2 = L.per_token_cast_to_fp8(kv, use_ue8m0)
    assert sf.shape == (300,) and q.shape == kv.shape
    assert torch.equal(sf, sf2[:, 0]) and torch.equal(q.view(torch.uint8), q2.view(torch.uint8))


def test_per_custom_dims_columns_and_negative_dims():
    x = _rand((64, 5, 8), torch.float32, seed=4)
    q, sf = L.per_custom_dims_cast_to_fp8(x, [-1], False)
    assert sf.shape == (8,)
    want = f64_scale(x.double().abs().amax(dim=(0, 1)), False)
    assert torch.equal(sf, want)
    assert_bits_equal(q, f64_quantize(x, want[None, None, :]))


def test_per_custom_dims_squeezes_size_one():
    q, sf = L.per_custom_dims_cast_to_fp8(_rand((1, 128)), (0,), False)
    assert sf.shape == ()


# ---------------------------------------------------------------------------------------------------- errors
CASTS = [L.per_token_cast_to_fp8, L.per_block_cast_to_fp8, L.per_channel_cast_to_fp8]


@pytest.mark.parametrize("fn", CASTS)
def test_cast_errors(fn):
    with pytest.raises(TypeError, match="x must have dtype bfloat16 or float32, got float16"):
        fn(torch.zeros(128, 128, dtype=torch.float16))
    with pytest.raises(TypeError, match="x must have dtype"):
        fn(torch.zeros(128, 128, dtype=FP8))
    with pytest.raises(ValueError, match="x must have rank 2, got rank 3"):
        fn(torch.zeros(2, 128, 128))
    with pytest.raises(ValueError, match="x must have rank 2, got rank 1"):
        fn(torch.zeros(128))
    with pytest.raises(TypeError, match="use_ue8m0 must be a bool"):
        fn(torch.zeros(128, 128), 1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn([[1.0]])


def test_per_channel_rejects_rows_not_multiple_of_128():
    with pytest.raises(ValueError, match="x must have a multiple of 128 rows"):
        L.per_channel_cast_to_fp8(torch.zeros(100, 128))


def test_per_token_option_type():
    with pytest.raises(TypeError, match="mn_major_sf must be a bool"):
        L.per_token_cast_to_fp8(torch.zeros(4, 128), False, mn_major_sf="yes")


def test_per_custom_dims_errors():
    x = torch.zeros(4, 128)
    with pytest.raises(ValueError, match=r"dims entries must be in \[-2, 2\)"):
        L.per_custom_dims_cast_to_fp8(x, (2,), False)
    with pytest.raises(ValueError, match="must not repeat"):
        L.per_custom_dims_cast_to_fp8(x, (0, -2), False)
    with pytest.raises(TypeError, match="dims must hold ints"):
        L.per_custom_dims_cast_to_fp8(x, (0.0,), False)
    with pytest.raises(TypeError, match="dims must be a tuple or list"):
        L.per_custom_dims_cast_to_fp8(x, "0", False)


def test_reference_is_the_public_cpu_path():
    x = _rand((33, 1000), torch.bfloat16, seed=11)
    for pub, ref in [(L.per_token_cast_to_fp8, reference.per_token_cast_to_fp8),
                     (L.per_block_cast_to_fp8, reference.per_block_cast_to_fp8)]:
        (q, s), (rq, rs) = pub(x, True), ref(x, True)
        assert torch.equal(s, rs) and torch.equal(q.view(torch.uint8), rq.view(torch.uint8))
