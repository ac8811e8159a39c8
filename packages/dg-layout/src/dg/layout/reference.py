"""Pure-torch reference implementations of every dg.layout operation.

These run on any device. The public functions use them for CPU tensors; the GPU kernels are tested against them
bit for bit. Each is written so that every floating-point step is one correctly rounded IEEE operation with the
same result on CPU and CUDA:

* ``scale = max(amax, 1e-4) / 448`` divides by a full tensor of 448s. NOTE: ``tensor / 448.0`` would not do:
  on CUDA torch turns division by a Python scalar into multiplication by ``fl(1 / 448)``, which differs from the
  true quotient in the last bit for some inputs.
* ``ceil_to_ue8m0`` works on the IEEE bits. NOTE: ``2 ** ceil(log2(x))`` in float is wrong for values a few ulps
  above a power of two (``log2`` rounds to the integer, ``ceil`` then keeps it).
* Values are ``x * reciprocal(scale)`` converted with ``.to(torch.float8_e4m3fn)`` (round to nearest even).

Inputs are assumed validated by the public functions in :mod:`dg.layout`.
"""

from __future__ import annotations

import torch

FP8_E4M3_MAX = 448.0
AMAX_FLOOR = 1e-4
BLOCK = 128

__all__ = [
    "ceil_to_ue8m0",
    "fp8_scale",
    "per_token_cast_to_fp8",
    "per_block_cast_to_fp8",
    "per_channel_cast_to_fp8",
    "per_custom_dims_cast_to_fp8",
    "ue8m0_exponent_bytes",
    "mn_major_tma_aligned",
    "mn_major_tma_aligned_packed_ue8m0",
    "k_grouped_packed_ue8m0",
    "empty_mn_major",
]


def _ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


def ceil_to_ue8m0(x: torch.Tensor) -> torch.Tensor:
    """``2 ** ceil(log2(|x|))`` elementwise, computed exactly from the IEEE bits (FP32, BF16 or FP16 input)."""
    dtype = x.dtype
    xf = x.float().abs()
    # Step 1: bring subnormals into the normal range; multiplying by 2^64 and back is exact for powers of two.
    subnormal = (xf > 0) & (xf < torch.finfo(torch.float32).tiny)
    scaled = torch.where(subnormal, xf * 2.0**64, xf)
    # Step 2: an exact power of two stays, anything else moves to the next exponent with a zero mantissa.
    bits = scaled.contiguous().view(torch.int32)
    mantissa = bits & 0x7FFFFF
    exponent = bits >> 23
    up = (exponent + 1) << 23  # exponent 254 + 1 gives the bits of +inf, as 2 ** 128 overflows
    result_bits = torch.where((mantissa == 0) | (exponent == 0xFF), bits, up)
    result = result_bits.view(torch.float32)
    result = torch.where(subnormal, result * 2.0**-64, result)
    result = torch.where(torch.isnan(xf), xf, result)
    return result.to(dtype)


def fp8_scale(amax: torch.Tensor, use_ue8m0: bool) -> torch.Tensor:
    """The recipe's FP32 scale for a tensor of group maxima."""
    clamped = torch.clamp(amax, min=AMAX_FLOOR)
    scale = torch.div(clamped, torch.full_like(clamped, FP8_E4M3_MAX))
    return ceil_to_ue8m0(scale) if use_ue8m0 else scale


def _quantize(xf: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (xf * torch.reciprocal(scale)).to(torch.float8_e4m3fn)


def per_token_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x [m, n] -> (FP8 [m, n] contiguous, FP32 scales [m, ceil(n / 128)] contiguous); 1 x 128 groups."""
    m, n = x.shape
    padded = _ceil_div(n, BLOCK) * BLOCK
    xf = torch.zeros((m, padded), dtype=torch.float32, device=x.device)
    xf[:, :n] = x.float()
    xv = xf.view(m, -1, BLOCK)
    scale = fp8_scale(xv.abs().amax(dim=2), use_ue8m0)
    q = _quantize(xv, scale.unsqueeze(2)).view(m, padded)[:, :n].contiguous()
    return q, scale.contiguous()


def per_block_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x [m, n] -> (FP8 [m, n] contiguous, FP32 scales [ceil(m / 128), ceil(n / 128)]); 128 x 128 blocks."""
    m, n = x.shape
    pm, pn = _ceil_div(m, BLOCK) * BLOCK, _ceil_div(n, BLOCK) * BLOCK
    xf = torch.zeros((pm, pn), dtype=torch.float32, device=x.device)
    xf[:m, :n] = x.float()
    xv = xf.view(pm // BLOCK, BLOCK, pn // BLOCK, BLOCK)
    scale = fp8_scale(xv.abs().amax(dim=(1, 3)), use_ue8m0)
    q = _quantize(xv, scale[:, None, :, None]).view(pm, pn)[:m, :n].contiguous()
    return q, scale.contiguous()


def per_channel_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x [m, n] with m % 128 == 0 -> (FP8 [m, n] contiguous, FP32 scales [m / 128, n]); 128 x 1 groups."""
    m, n = x.shape
    xv = x.float().view(m // BLOCK, BLOCK, n)
    scale = fp8_scale(xv.abs().amax(dim=1), use_ue8m0)
    q = _quantize(xv, scale[:, None, :]).view(m, n).contiguous()
    return q, scale.contiguous()


def per_custom_dims_cast_to_fp8(
    x: torch.Tensor, dims: tuple[int, ...], use_ue8m0: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """amax over every dimension not in ``dims`` (normalised, non-negative); returns ``(fp8, scale.squeeze())``."""
    reduced = tuple(d for d in range(x.dim()) if d not in dims)
    xf = x.float()
    amax = xf.abs().amax(dim=reduced, keepdim=True) if reduced else xf.abs()
    scale = fp8_scale(amax, use_ue8m0)
    return _quantize(xf, scale).contiguous(), scale.squeeze()


def empty_mn_major(groups: int | None, mn: int, cols: int, dtype: torch.dtype, device) -> torch.Tensor:
    """An uninitialised [G, mn, cols] (or [mn, cols]) tensor in the MN-major TMA-aligned layout (spec 3.3)."""
    # NOTE: the whole padded buffer is allocated (empty_strided would stop after the last column's MN-th row), so
    # a TMA box that covers the padding rows of the last column stays inside the allocation.
    tma_mn = _ceil_div(mn, 4) * 4
    if mn == 0 or cols == 0 or groups == 0:
        # Nothing to store; keep the documented strides, which torch does not derive for empty buffers.
        if groups is None:
            return torch.empty_strided((mn, cols), (1, tma_mn), dtype=dtype, device=device)
        return torch.empty_strided((groups, mn, cols), (cols * tma_mn, 1, tma_mn), dtype=dtype, device=device)
    # NOTE: one as_strided view instead of transpose + slice + select: this runs on every call of the public
    # functions, where host time matters for small tensors.
    buf = torch.empty(((1 if groups is None else groups) * cols * tma_mn,), dtype=dtype, device=device)
    if groups is None:
        return buf.as_strided((mn, cols), (1, tma_mn))
    return buf.as_strided((groups, mn, cols), (cols * tma_mn, 1, tma_mn))


def mn_major_tma_aligned(sf: torch.Tensor) -> torch.Tensor:
    """A copy of ``sf`` ([MN, S] or [G, MN, S], FP32) in the MN-major TMA-aligned layout."""
    groups = sf.shape[0] if sf.dim() == 3 else None
    out = empty_mn_major(groups, sf.shape[-2], sf.shape[-1], sf.dtype, sf.device)
    out.copy_(sf)
    return out


def ue8m0_exponent_bytes(sf: torch.Tensor) -> torch.Tensor:
    """The IEEE exponent byte of every FP32 value, as uint8 (sign dropped; exact for every input)."""
    bits = sf.contiguous().view(torch.int32)
    return ((bits >> 23) & 0xFF).to(torch.uint8)


def _pack_bytes_last_dim(exps: torch.Tensor) -> torch.Tensor:
    """[..., S] uint8 -> [..., ceil(S / 4)] int32, four bytes per word little-endian, missing bytes 0."""
    s = exps.shape[-1]
    packed = _ceil_div(s, 4)
    padded = torch.zeros((*exps.shape[:-1], packed * 4), dtype=torch.uint8, device=exps.device)
    padded[..., :s] = exps
    # NOTE: the shifts are done in int64 so that byte 3 never overflows a signed 32-bit value; the final
    # reinterpretation keeps the low 32 bits, little-endian like the device's int32 words.
    words = padded.view(*exps.shape[:-1], packed, 4).to(torch.int64)
    value = words[..., 0] | (words[..., 1] << 8) | (words[..., 2] << 16) | (words[..., 3] << 24)
    value = torch.where(value >= 2**31, value - 2**32, value)
    return value.to(torch.int32)


def mn_major_tma_aligned_packed_ue8m0(sf: torch.Tensor, row_div: int = 1, mn: int | None = None) -> torch.Tensor:
    """FP32 ``sf`` [.., MN_in, S] -> INT32 [.., MN, ceil(S / 4)] packed UE8M0 in the MN-major TMA-aligned layout.

    ``row_div`` > 1 broadcasts each input row to ``row_div`` output rows first (128 x 128 block scales -> rows),
    keeping the first ``mn`` rows.
    """
    if row_div != 1:
        sf = sf.repeat_interleave(row_div, dim=-2)[..., :mn, :]
    words = _pack_bytes_last_dim(ue8m0_exponent_bytes(sf))
    groups = sf.shape[0] if sf.dim() == 3 else None
    out = empty_mn_major(groups, sf.shape[-2], words.shape[-1], torch.int32, sf.device)
    out.copy_(words)
    return out


def k_grouped_packed_ue8m0(sf: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """FP32 ``sf`` [sum k_g/128, MN] -> INT32 [sum ceil(k_g/512), MN], each group packed on its own."""
    mn = sf.shape[1]
    pieces, row = [], 0
    for k in ks:
        n_g = k // BLOCK
        if n_g == 0:
            continue
        exps = ue8m0_exponent_bytes(sf[row:row + n_g]).transpose(0, 1)  # [MN, n_g]
        pieces.append(_pack_bytes_last_dim(exps).transpose(0, 1))  # [ceil(n_g / 4), MN]
        row += n_g
    if not pieces:
        return torch.empty((0, mn), dtype=torch.int32, device=sf.device)
    return torch.cat(pieces, dim=0).contiguous()
