"""CPU tests of the scale-factor layouts: MN-major TMA alignment, UE8M0 packing, k-grouped packing, transforms."""

import random

import dg.layout as L
import pytest
import torch


def pow2_sf(shape, seed=0):
    """Random exact powers of two, as use_ue8m0 casts produce."""
    g = torch.Generator().manual_seed(seed)
    return torch.pow(2.0, torch.randint(-30, 10, shape, generator=g).float())


def spec_packed_reference(sf):
    """The spec's 16.11 reference: exponent bytes, zero-padded to [G, align(mn, 4), align(S, 4)], viewed as INT32,
    copied into an MN-major buffer, sliced to mn rows."""
    squeeze = sf.dim() == 2
    sf = sf.unsqueeze(0) if squeeze else sf
    g, mn, s = sf.shape
    tma, ps = L.align(mn, 4), L.align(s, 4)
    exps = ((sf.contiguous().view(torch.int32) >> 23) & 0xFF).to(torch.uint8)
    padded = torch.zeros(g, tma, ps, dtype=torch.uint8)
    padded[:, :mn, :s] = exps
    words = padded.view(torch.int32)  # [g, tma, ps / 4]
    buf = torch.empty(g, ps // 4, tma, dtype=torch.int32)
    buf.copy_(words.transpose(1, 2))
    out = buf.transpose(1, 2)[:, :mn]
    return out[0] if squeeze else out


def assert_mn_major(t, groups, mn, cols):
    tma = L.align(mn, 4)
    if groups is None:
        assert t.shape == (mn, cols) and t.stride() == (1, tma)
    else:
        assert t.shape == (groups, mn, cols) and t.stride() == (cols * tma, 1, tma)


# -------------------------------------------------------------------------------------- get_mn_major_tma_aligned
def test_mn_major_hand_case():
    sf = torch.arange(15, dtype=torch.float32).view(5, 3)
    out = L.get_mn_major_tma_aligned_tensor(sf)
    assert_mn_major(out, None, 5, 3)
    assert torch.equal(out, sf)
    storage = torch.as_strided(out, (3 * 8,), (1,))  # columns of pitch 8, padding rows 5..7
    assert storage[0:5].tolist() == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert storage[8:13].tolist() == [1.0, 4.0, 7.0, 10.0, 13.0]


@pytest.mark.parametrize("with_transpose", [True, False])
@pytest.mark.parametrize("groups", [None, 1, 2, 4])
@pytest.mark.parametrize("mn,k", [(4096, 128), (4097, 7168), (8192, 7296), (1, 128), (7, 256)])
def test_mn_major_spec_shapes(mn, k, groups, with_transpose):
    shape = (mn, L.ceil_div(k, 128)) if groups is None else (groups, mn, L.ceil_div(k, 128))
    sf = torch.rand(shape)
    if not with_transpose:
        sf = sf.transpose(-1, -2).contiguous().transpose(-1, -2)
    out = L.get_mn_major_tma_aligned_tensor(sf)
    assert_mn_major(out, groups, mn, shape[-1])
    assert torch.equal(out, sf)


def test_mn_major_zero_copy():
    sf = L.get_mn_major_tma_aligned_tensor(torch.rand(4097, 56))
    assert L.get_mn_major_tma_aligned_tensor(sf) is sf
    sf3 = L.get_mn_major_tma_aligned_tensor(torch.rand(2, 4096, 56))
    assert L.get_mn_major_tma_aligned_tensor(sf3) is sf3
    # MN-major but with a pitch that is not the TMA-aligned one: copied.
    plain = torch.rand(56, 4097).t()
    out = L.get_mn_major_tma_aligned_tensor(plain)
    assert out is not plain and out.stride() == (1, 4100) and torch.equal(out, plain)


def test_mn_major_empty():
    assert_mn_major(L.get_mn_major_tma_aligned_tensor(torch.empty(0, 5)), None, 0, 5)
    assert_mn_major(L.get_mn_major_tma_aligned_tensor(torch.empty(3, 4, 0)), 3, 4, 0)


def test_mn_major_errors():
    with pytest.raises(TypeError, match="sf must have dtype float32, got int32"):
        L.get_mn_major_tma_aligned_tensor(torch.zeros(4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="sf must have rank 2 or 3, got rank 1"):
        L.get_mn_major_tma_aligned_tensor(torch.zeros(4))
    with pytest.raises(ValueError, match="sf must have rank 2 or 3, got rank 4"):
        L.get_mn_major_tma_aligned_tensor(torch.zeros(1, 1, 4, 4))


# ---------------------------------------------------------------------------------------------- UE8M0 packing
def test_pack_hand_case():
    sf = torch.tensor([[1.0, 2.0, 0.5, 2.0**-127 * 2, 4.0], [2.0**-20, 1.0, 1.0, 1.0, 1.0]])
    out = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    assert_mn_major(out, None, 2, 2)
    w0 = 127 | (128 << 8) | (126 << 16) | (1 << 24)
    assert out[0, 0].item() == w0
    assert out[0, 1].item() == 129  # 4.0, then three missing blocks as byte 0
    assert out[1, 0].item() == 107 | (127 << 8) | (127 << 16) | (127 << 24)
    assert out[1, 1].item() == 127


def test_pack_high_byte_sets_sign_bit():
    sf = torch.tensor([[1.0, 1.0, 1.0, 2.0**1]])  # byte 3 = 128: the word is negative as int32
    word = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)[0, 0].item()
    assert word == (127 | 127 << 8 | 127 << 16 | 128 << 24) - 2**32


def test_pack_non_power_of_two_takes_exponent_byte():
    sf = torch.tensor([[3.0, 0.3, -2.0, 1.5]])  # exponents of 2^1, 2^-2, 2^1 (sign dropped), 2^0
    word = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)[0, 0].item()
    assert word == 128 | 125 << 8 | 128 << 16 | 127 << 24


@pytest.mark.parametrize("with_transpose", [True, False])
@pytest.mark.parametrize("groups", [None, 1, 2, 4])
@pytest.mark.parametrize("mn,k", [(4096, 128), (4097, 7168), (8192, 7296), (1, 128), (7, 640)])
def test_pack_spec_shapes(mn, k, groups, with_transpose):
    shape = (mn, L.ceil_div(k, 128)) if groups is None else (groups, mn, L.ceil_div(k, 128))
    sf = pow2_sf(shape, seed=mn + k)
    if not with_transpose:
        sf = sf.transpose(-1, -2).contiguous().transpose(-1, -2)
    out = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    ref = spec_packed_reference(sf)
    assert_mn_major(out, groups, mn, L.ceil_div(shape[-1], 4))
    assert out.stride() == ref.stride() and torch.equal(out, ref)


def test_pack_from_cast():
    _, sf = L.per_token_cast_to_fp8(torch.randn(2 * 300, 7296), use_ue8m0=True)
    sf = sf.view(2, 300, -1)
    assert torch.equal(L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf), spec_packed_reference(sf))


def test_pack_errors():
    with pytest.raises(TypeError, match="sf must have dtype float32"):
        L.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4, 4, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="sf must have rank 2 or 3"):
        L.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4))


# ------------------------------------------------------------------------------------------ k-grouped packing
def k_grouped_reference(sf, ks):
    """Per group: the spec reference packing of that group's [k_g/128, mn] slice, transposed back."""
    pieces, row = [], 0
    for k in ks:
        n = k // 128
        if n:
            pieces.append(spec_packed_reference(sf[row:row + n].t()).t())
        row += n
    return torch.cat(pieces) if pieces else torch.empty(0, sf.shape[1], dtype=torch.int32)


def test_k_grouped_hand_case():
    ks = [640, 0, 128]  # 5 rows -> 2 packed rows; an empty group; 1 row -> 1 packed row
    rows = torch.pow(2.0, torch.arange(5, dtype=torch.float32))  # 1, 2, 4, 8, 16: bytes 127..131
    sf = torch.cat([rows[:, None].expand(5, 4), torch.full((1, 4), 0.25)]).contiguous()  # [6, 4]
    out = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, torch.tensor(ks, dtype=torch.int32), ks)
    assert out.shape == (3, 4) and out.is_contiguous()
    assert out[0].tolist() == [(127 | 128 << 8 | 129 << 16 | 130 << 24) - 2**32] * 4
    assert out[1].tolist() == [131] * 4  # the group's fifth row, then zero bytes
    assert out[2].tolist() == [125] * 4


@pytest.mark.parametrize("mn", [4096, 7168])
@pytest.mark.parametrize("groups,avg_k", [(16, 2048), (8, 4096), (72, 384), (128, 256), (1, 512), (4, 384)])
def test_k_grouped_spec_shapes(mn, groups, avg_k):
    rng = random.Random(groups * 1000 + avg_k)
    ks = [L.align(int(avg_k * rng.uniform(0.7, 1.3)), 128) for _ in range(groups)]
    if groups > 1:
        ks[rng.randrange(groups)] = 0  # an empty group
    sf = pow2_sf((sum(ks) // 128, mn), seed=groups)
    out = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, torch.tensor(ks, dtype=torch.int32), ks)
    assert out.shape == (sum(L.ceil_div(k, 512) for k in ks), mn) and out.is_contiguous()
    assert torch.equal(out, k_grouped_reference(sf, ks))


def test_k_grouped_all_empty():
    out = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(
        torch.empty(0, 8), torch.zeros(2, dtype=torch.int32), [0, 0])
    assert out.shape == (0, 8) and out.dtype == torch.int32


def test_k_grouped_errors():
    sf = torch.ones(3, 8)
    ks_t = torch.tensor([256, 128], dtype=torch.int32)
    fn = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor
    with pytest.raises(ValueError, match=r"ks\[1\] must be a multiple of 128"):
        fn(sf, ks_t, [256, 100])
    with pytest.raises(ValueError, match=r"ks\[0\] must be >= 0"):
        fn(sf, ks_t, [-128, 512])
    with pytest.raises(ValueError, match="sf must have sum"):
        fn(sf, ks_t, [256, 256])
    with pytest.raises(ValueError, match="ks_tensor must have len"):
        fn(sf, ks_t, [384])
    with pytest.raises(TypeError, match="ks_tensor must have dtype int32"):
        fn(sf, ks_t.long(), [256, 128])
    with pytest.raises(ValueError, match="sf must be contiguous"):
        fn(torch.ones(8, 3).t(), ks_t, [256, 128])
    with pytest.raises(ValueError, match="sf must have a multiple of 4 columns"):
        fn(torch.ones(3, 6), ks_t, [256, 128])
    with pytest.raises(TypeError, match="sf must have dtype float32"):
        fn(torch.ones(3, 8, dtype=torch.int32), ks_t, [256, 128])
    with pytest.raises(TypeError, match="ks must be a list of ints"):
        fn(sf, ks_t, 384)


# --------------------------------------------------------------------------------------------------- transform
def test_transform_rule1_sm90_per_token():
    sf = torch.rand(4097, 57)
    out = L.transform_sf_into_required_layout(sf, 4097, 7296, (1, 128, 128), is_sfa=True, arch=90)
    assert_mn_major(out, None, 4097, 57) and torch.equal(out, sf)
    assert L.transform_sf_into_required_layout(out, 4097, 7296, (1, 128, 128), is_sfa=True) is out  # CPU: SM90


def test_transform_rule1_disable_ue8m0_on_sm100():
    sf = torch.rand(3, 256, 56)
    out = L.transform_sf_into_required_layout(sf, 256, 7168, (1, 1, 128), num_groups=3, disable_ue8m0_cast=True,
                                              arch=100)
    assert_mn_major(out, 3, 256, 56) and torch.equal(out, sf)


def test_transform_rule2_sm100_packs():
    sf = pow2_sf((2, 4097, 57))
    out = L.transform_sf_into_required_layout(sf, 4097, 7296, (1, 1, 128), num_groups=2, arch=100)
    assert out.dtype == torch.int32 and torch.equal(out, spec_packed_reference(sf))


def test_transform_rule3_sm90_block_scales_unchanged():
    sf = torch.rand(33, 56)
    assert L.transform_sf_into_required_layout(sf, 4097, 7168, (1, 128, 128), arch=90) is sf
    with pytest.raises(ValueError, match="sf must be contiguous"):
        L.transform_sf_into_required_layout(torch.rand(56, 33).t(), 4097, 7168, (1, 128, 128), arch=90)


def test_transform_rule4_sm100_block_scales_broadcast_and_packed():
    sf = pow2_sf((2, 33, 57))
    out = L.transform_sf_into_required_layout(sf, 4097, 7296, (1, 128, 128), num_groups=2, arch=100)
    rows = sf.repeat_interleave(128, dim=1)[:, :4097]
    assert torch.equal(out, spec_packed_reference(rows))
    assert_mn_major(out, 2, 4097, 15)


def test_transform_rule5_sm100_packed_passthrough():
    packed = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(pow2_sf((4097, 57)))
    assert L.transform_sf_into_required_layout(packed, 4097, 7296, (1, 1, 128), arch=100) is packed
    with pytest.raises(ValueError, match="must already be MN-major TMA-aligned"):
        L.transform_sf_into_required_layout(packed.contiguous(), 4097, 7296, (1, 1, 128), arch=100)


def test_transform_unknown_combinations():
    with pytest.raises(ValueError, match="no scale-factor transformation for dtype int32"):
        L.transform_sf_into_required_layout(torch.zeros(128, 2, dtype=torch.int32), 128, 1024, (1, 1, 128), arch=90)
    with pytest.raises(ValueError, match="no scale-factor transformation for dtype int32, gran_mn=128"):
        L.transform_sf_into_required_layout(torch.zeros(1, 2, dtype=torch.int32), 128, 1024, (1, 128, 128),
                                            arch=100)
    with pytest.raises(ValueError, match="no scale-factor transformation"):
        L.transform_sf_into_required_layout(torch.zeros(128, 16), 128, 1024, (1, 1, 64), arch=90)


def test_transform_shape_validation():
    f = L.transform_sf_into_required_layout
    with pytest.raises(ValueError, match=r"sf must have trailing shape \(4097, 57\)"):
        f(torch.rand(4097, 56), 4097, 7296, (1, 128, 128), is_sfa=True, arch=90)
    with pytest.raises(ValueError, match=r"sf must have trailing shape \(33, 57\)"):
        f(torch.rand(4097, 57), 4097, 7296, (1, 128, 128), arch=90)
    with pytest.raises(ValueError, match="sf must have rank 3"):
        f(torch.rand(4097, 57), 4097, 7296, (1, 128, 128), num_groups=2, is_sfa=True)
    with pytest.raises(ValueError, match="sf must have rank 2"):
        f(torch.rand(2, 4097, 57), 4097, 7296, (1, 128, 128), is_sfa=True)
    with pytest.raises(ValueError, match="sf must have num_groups = 3 groups"):
        f(torch.rand(2, 4097, 57), 4097, 7296, (1, 128, 128), num_groups=3, is_sfa=True)
    with pytest.raises(ValueError, match=r"sf must have trailing shape \(4097, 15\)"):
        f(torch.zeros(4097, 57, dtype=torch.int32), 4097, 7296, (1, 1, 128), arch=100)


def test_transform_argument_errors():
    f = L.transform_sf_into_required_layout
    sf = torch.rand(128, 8)
    with pytest.raises(TypeError, match="recipe must be a 3-tuple"):
        f(sf, 128, 1024, (1, 128))
    with pytest.raises(ValueError, match=r"recipe\[2\] must be >= 1"):
        f(sf, 128, 1024, (1, 128, 0))
    with pytest.raises(ValueError, match="arch must be 90"):
        f(sf, 128, 1024, (1, 1, 128), arch=80)
    with pytest.raises(TypeError, match="sf must have dtype float32 or int32"):
        f(sf.half(), 128, 1024, (1, 1, 128))
    with pytest.raises(TypeError, match="is_sfa must be a bool"):
        f(sf, 128, 1024, (1, 1, 128), is_sfa=1)
    with pytest.raises(ValueError, match="mn must be >= 0"):
        f(sf, -1, 1024, (1, 1, 128))
    with pytest.raises(TypeError, match="k must be an int"):
        f(sf, 128, 1024.0, (1, 1, 128))
