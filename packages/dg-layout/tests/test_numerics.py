"""CPU tests of the integer helpers, TMA alignment and ceil_to_ue8m0."""

import math

import dg.layout as L
import pytest
import torch
from dg.layout import reference


def test_ceil_div_and_align():
    assert L.ceil_div(7168, 128) == 56
    assert L.ceil_div(7296, 128) == 57
    assert L.ceil_div(7296, 512) == 15
    assert L.ceil_div(0, 128) == 0
    assert L.align(4097, 4) == 4100
    assert L.align(4096, 4) == 4096
    assert L.align(1, 128) == 128


@pytest.mark.parametrize("bad", [0, -1])
def test_ceil_div_rejects_non_positive_divisor(bad):
    with pytest.raises(ValueError, match="y must be >= 1"):
        L.ceil_div(5, bad)


def test_ceil_div_rejects_non_int():
    with pytest.raises(TypeError, match="x must be an int"):
        L.ceil_div(5.0, 2)
    with pytest.raises(TypeError, match="y must be an int"):
        L.align(5, True)


def test_tma_aligned_size():
    assert L.get_tma_aligned_size(4097, 4) == 4100
    assert L.get_tma_aligned_size(4097, 2) == 4104
    assert L.get_tma_aligned_size(4097, 1) == 4112
    assert L.get_tma_aligned_size(5, 16) == 5
    assert L.get_tma_aligned_size(0, 4) == 0
    with pytest.raises(ValueError, match="element_size must divide 16"):
        L.get_tma_aligned_size(10, 3)
    with pytest.raises(ValueError, match="element_size must be >= 1"):
        L.get_tma_aligned_size(10, 0)
    with pytest.raises(TypeError):
        L.get_tma_aligned_size(x=10, element_size=4)  # positional-only, as the spec says


def test_mk_alignment():
    assert L.get_mk_alignment_for_contiguous_layout() == 128
    assert L.get_m_alignment_for_contiguous_layout is L.get_mk_alignment_for_contiguous_layout
    assert L.get_k_alignment_for_contiguous_layout is L.get_mk_alignment_for_contiguous_layout


def _f32(values):
    return torch.tensor(values, dtype=torch.float32)


def test_ceil_to_ue8m0_hand_cases():
    x = _f32([1.0, 0.25, 2.0**-20, 2.0**100, 3.0, 0.3, 1e-4 / 448, 0.0, -3.0, -0.125])
    want = _f32([1.0, 0.25, 2.0**-20, 2.0**100, 4.0, 0.5, 2.0**-22, 0.0, 4.0, 0.125])
    assert torch.equal(L.ceil_to_ue8m0(x), want)


def test_ceil_to_ue8m0_just_above_powers_of_two():
    # One ulp above 2^e must round up to 2^(e+1); float log2 rounds these to e and gets them wrong.
    exps = torch.arange(-126, 128, dtype=torch.float64)
    pow2 = torch.pow(2.0, exps).float()
    above = torch.nextafter(pow2, torch.full_like(pow2, math.inf))
    assert torch.equal(L.ceil_to_ue8m0(pow2), pow2)
    got = L.ceil_to_ue8m0(above)
    assert torch.equal(got[:-1], pow2[1:])
    assert torch.isinf(got[-1])  # one ulp above 2^127 rounds up past the largest float


def test_ceil_to_ue8m0_overflow_and_specials():
    x = _f32([3.0e38, math.inf, 2.0**127])
    got = L.ceil_to_ue8m0(x)
    assert torch.isinf(got[0]) and torch.isinf(got[1]) and got[2] == 2.0**127
    nan = reference.ceil_to_ue8m0(_f32([math.nan]))
    assert torch.isnan(nan).all()


def test_ceil_to_ue8m0_subnormals():
    tiny = 2.0**-149
    x = _f32([tiny, 3 * tiny, 2.0**-130 * 1.5, 2.0**-127 * 1.75, 1.0])
    want = _f32([tiny, 4 * tiny, 2.0**-129, 2.0**-126, 1.0])
    assert torch.equal(L.ceil_to_ue8m0(x), want)


def test_ceil_to_ue8m0_matches_log2_formula_where_exact():
    # Away from powers of two, the spec's float formula 2 ** ceil(log2 |x|) is exact: the two must agree.
    g = torch.Generator().manual_seed(0)
    x = torch.exp(torch.empty(100_000).uniform_(-60, 60, generator=g)).float()
    frac = torch.log2(x.double()) - torch.floor(torch.log2(x.double()))
    x = x[(frac > 1e-5) & (frac < 1 - 1e-5)]
    spec = torch.pow(2.0, torch.ceil(torch.log2(x.abs())))
    assert torch.equal(L.ceil_to_ue8m0(x), spec)
    assert torch.equal(reference.ceil_to_ue8m0(-x), spec)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ceil_to_ue8m0_low_precision(dtype):
    x = torch.tensor([0.3, 0.25, 3.0, 1000.0], dtype=dtype)
    got = L.ceil_to_ue8m0(x)
    assert got.dtype == dtype
    assert torch.equal(got.float(), _f32([0.5, 0.25, 4.0, 1024.0]))


def test_ceil_to_ue8m0_errors():
    with pytest.raises(ValueError, match="positive maximum"):
        L.ceil_to_ue8m0(torch.zeros(4))
    with pytest.raises(ValueError, match="positive maximum"):
        L.ceil_to_ue8m0(_f32([-1.0, -2.0]))
    with pytest.raises(ValueError, match="must not be empty"):
        L.ceil_to_ue8m0(torch.empty(0))
    with pytest.raises(TypeError, match="x must have dtype"):
        L.ceil_to_ue8m0(torch.ones(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        L.ceil_to_ue8m0([1.0])
