"""Scale-factor layouts of the FP8 GEMMs: TMA alignment, MN-major transposes and UE8M0 packing (spec 3, 9).

Layouts (``tma_mn = align(MN, 4)``, one 16-byte TMA row of FP32/INT32 values):

* MN-major TMA-aligned: logical ``[MN, S]`` / ``[G, MN, S]`` with strides ``(1, tma_mn)`` /
  ``(S * tma_mn, 1, tma_mn)``; element ``(g, i, j)`` at ``g * S * tma_mn + j * tma_mn + i``; rows
  ``MN .. tma_mn - 1`` of each column are padding that no kernel reads.
* Packed UE8M0: the exponent bytes of four consecutive K-block scales in one INT32 (little-endian, missing blocks
  0), ``S_packed = ceil(S / 4)``, then stored MN-major TMA-aligned as above.

CUDA tensors go through dg.layout's kernels, CPU tensors through the pure-torch reference; both give the same
bits. NOTE: packing takes each FP32 value's IEEE exponent byte exactly: for the powers of two the GEMMs expect
(``use_ue8m0=True`` casts or :func:`dg.layout.ceil_to_ue8m0`) that is the value; for any other value it is
``floor(log2 |v|) + 127`` (the value rounded *down*), and the sign is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _kernels, reference
from ._checks import check_bool, check_int, check_same_device, check_tensor
from .numerics import align, ceil_div

__all__ = [
    "get_tma_aligned_size",
    "get_mk_alignment_for_contiguous_layout",
    "get_m_alignment_for_contiguous_layout",
    "get_k_alignment_for_contiguous_layout",
    "get_mn_major_tma_aligned_tensor",
    "get_mn_major_tma_aligned_packed_ue8m0_tensor",
    "get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor",
    "transform_sf_into_required_layout",
]

_FP32 = torch.float32
_INT32 = torch.int32


def get_tma_aligned_size(x: int, element_size: int, /) -> int:
    """``x`` rounded up to a whole number of 16-byte TMA units of ``element_size``-byte elements.

    ``align(x, 16 // element_size)``; ``element_size`` must divide 16. Example: ``get_tma_aligned_size(4097, 4)``
    is ``4100``.
    """
    check_int(x, "x", minimum=0)
    check_int(element_size, "element_size", minimum=1)
    if 16 % element_size != 0:
        raise ValueError(f"element_size must divide 16 (1, 2, 4, 8 or 16), got {element_size}")
    return align(x, 16 // element_size)


def get_mk_alignment_for_contiguous_layout() -> int:
    """The row alignment (128) of each group in the m-grouped contiguous layout (and of k-grouped K sizes)."""
    return 128


get_m_alignment_for_contiguous_layout = get_mk_alignment_for_contiguous_layout
get_k_alignment_for_contiguous_layout = get_mk_alignment_for_contiguous_layout


def _is_mn_major_tma_aligned(sf: torch.Tensor) -> bool:
    mn, s = sf.shape[-2], sf.shape[-1]
    tma_mn = get_tma_aligned_size(mn, sf.element_size())
    if sf.stride(-2) != 1 or sf.stride(-1) != tma_mn:
        return False
    return sf.dim() == 2 or sf.stride(0) == s * tma_mn


def _groups(sf: torch.Tensor) -> int | None:
    return sf.shape[0] if sf.dim() == 3 else None


def get_mn_major_tma_aligned_tensor(sf: torch.Tensor, /) -> torch.Tensor:
    """FP32 scales in the MN-major TMA-aligned layout (a zero-copy return when they already are).

    Args:
        sf: FP32 ``[MN, S]`` or ``[G, MN, S]``, any strides.

    Returns:
        FP32 with ``sf``'s shape and values, strides ``(1, align(MN, 4))`` / ``(S * align(MN, 4), 1,
        align(MN, 4))``; ``sf`` itself when it already has exactly these strides.

    Example::

        >>> sf = torch.rand(4097, 56, device="cuda")
        >>> get_mn_major_tma_aligned_tensor(sf).stride()
        (1, 4100)
    """
    check_tensor(sf, "sf", dtypes=(_FP32,), ranks=(2, 3))
    if _is_mn_major_tma_aligned(sf):
        return sf
    out = reference.empty_mn_major(_groups(sf), sf.shape[-2], sf.shape[-1], _FP32, sf.device)
    if sf.numel() == 0:
        return out
    if sf.is_cuda:
        _kernels.mn_major_fp32(sf, out)
    else:
        out.copy_(sf)
    return out


def _packed_ue8m0(sf: torch.Tensor, row_div: int = 1, mn: int | None = None) -> torch.Tensor:
    mn = sf.shape[-2] if mn is None else mn
    out = reference.empty_mn_major(_groups(sf), mn, ceil_div(sf.shape[-1], 4), _INT32, sf.device)
    if out.numel() == 0:
        return out
    if sf.is_cuda:
        _kernels.pack_ue8m0(sf, out, row_div)
    else:
        out.copy_(reference.mn_major_tma_aligned_packed_ue8m0(sf, row_div, mn))
    return out


def get_mn_major_tma_aligned_packed_ue8m0_tensor(sf: torch.Tensor, /) -> torch.Tensor:
    """FP32 power-of-two scales packed four per INT32 as UE8M0 bytes, in the MN-major TMA-aligned layout.

    Args:
        sf: FP32 ``[MN, S]`` or ``[G, MN, S]``, any strides, values exact positive powers of two (see the module
            note for other values).

    Returns:
        INT32 ``[.., MN, ceil(S / 4)]`` with strides ``(1, align(MN, 4))`` / ``(ceil(S / 4) * align(MN, 4), 1,
        align(MN, 4))``; word ``(i, p)`` holds the exponent bytes of ``sf[i, 4p .. 4p + 3]``, lowest byte first.

    Example::

        >>> _, sf = per_token_cast_to_fp8(torch.randn(4096, 7168, device="cuda"), use_ue8m0=True)
        >>> get_mn_major_tma_aligned_packed_ue8m0_tensor(sf).shape
        torch.Size([4096, 14])
    """
    check_tensor(sf, "sf", dtypes=(_FP32,), ranks=(2, 3))
    return _packed_ue8m0(sf)


def _check_ks(ks: object, name: str) -> tuple[int, int, int]:
    """Check the group sizes; return (K-block rows sum k_g / 128, packed rows sum ceil(k_g / 512), max of the latter).

    NOTE: one pass with plain int arithmetic: this runs on every call, and with 64+ groups a check per element
    through helper functions cost more host time than the kernel takes on the GPU.
    """
    if not isinstance(ks, Sequence) or isinstance(ks, str):
        raise TypeError(f"{name} must be a list of ints, got {type(ks).__name__}")
    rows_in = rows_out = max_rows = 0
    for i, k in enumerate(ks):
        if type(k) is not int or k < 0:  # noqa: E721 - exact type test: bool (an int subclass) and int-likes fail
            check_int(k, f"{name}[{i}]", minimum=0)  # raises the readable error (or accepts an int subclass)
        if k % 128 != 0:
            raise ValueError(f"{name}[{i}] must be a multiple of 128 (the K-block size), got {k}")
        n = k // 128
        rows_in += n
        packed = (n + 3) // 4
        rows_out += packed
        max_rows = packed if packed > max_rows else max_rows
    return rows_in, rows_out, max_rows


def get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(
    sf: torch.Tensor, ks_tensor: torch.Tensor, ks: Sequence[int], /
) -> torch.Tensor:
    """Pack the per-channel scales of a k-grouped operand as UE8M0, each group on its own.

    Args:
        sf: FP32 contiguous ``[sum_g k_g / 128, MN]`` (a K-block row per 128 K-rows, MN contiguous), as
            :func:`per_channel_cast_to_fp8` returns for the concatenated groups; ``MN % 4 == 0``.
        ks_tensor: INT32 1-D tensor of the ``G`` group sizes on ``sf``'s device (the kernel reads it, so no host
            sync); it must hold the same values as ``ks`` (not checked: that would need a sync).
        ks: the ``G`` group sizes as Python ints, each a multiple of 128 (0 allowed: an empty group).

    Returns:
        INT32 contiguous ``[sum_g ceil(k_g / 512), MN]``: group ``g``'s ``k_g / 128`` rows become
        ``ceil(k_g / 512)`` rows of words packing four consecutive rows' exponent bytes (lowest byte first, the
        group's last word padded with zero bytes). Empty groups contribute no rows.

    Example::

        >>> ks = [2048, 0, 384]
        >>> _, sf = per_channel_cast_to_fp8(torch.randn(sum(ks), 4096, device="cuda"), use_ue8m0=True)
        >>> ks_t = torch.tensor(ks, dtype=torch.int32, device="cuda")
        >>> get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, ks_t, ks).shape  # 4 + 0 + 1 rows
        torch.Size([5, 4096])
    """
    check_tensor(sf, "sf", dtypes=(_FP32,), ranks=(2,))
    check_tensor(ks_tensor, "ks_tensor", dtypes=(_INT32,), ranks=(1,))
    want_rows_in, rows_out, max_group_rows = _check_ks(ks, "ks")
    check_same_device(ks_tensor, "ks_tensor", sf, "sf")
    if ks_tensor.shape[0] != len(ks):
        raise ValueError(f"ks_tensor must have len(ks) = {len(ks)} entries, got {ks_tensor.shape[0]}")
    if not sf.is_contiguous():
        raise ValueError(f"sf must be contiguous, got shape {tuple(sf.shape)} with strides {sf.stride()}")
    rows_in, mn = sf.shape
    if want_rows_in != rows_in:
        raise ValueError(f"sf must have sum(k // 128 for k in ks) = {want_rows_in} rows, got {rows_in}")
    if mn % 4 != 0:
        raise ValueError(f"sf must have a multiple of 4 columns (MN, the TMA-aligned pitch), got {mn}")
    if not sf.is_cuda:
        return reference.k_grouped_packed_ue8m0(sf, list(ks))
    out = torch.empty((rows_out, mn), dtype=_INT32, device=sf.device)
    if out.numel() > 0:
        _kernels.pack_ue8m0_k_grouped(sf, out, ks_tensor.contiguous(), max_group_rows)
    return out


def _check_recipe(recipe: object) -> tuple[int, int, int]:
    if not isinstance(recipe, (tuple, list)) or len(recipe) != 3:
        raise TypeError(f"recipe must be a 3-tuple of ints (gran_mn_a, gran_mn_b, gran_k), got {recipe!r}")
    for i, v in enumerate(recipe):
        check_int(v, f"recipe[{i}]", minimum=1)
    return tuple(recipe)  # type: ignore[return-value]


def _resolve_arch(arch: object, sf: torch.Tensor) -> int:
    if arch is None:
        if not sf.is_cuda:
            return 90
        major, _ = torch.cuda.get_device_capability(sf.device)
        arch = major * 10
    check_int(arch, "arch")
    if arch not in (90, 100):
        raise ValueError(f"arch must be 90 (SM90) or 100 (SM100), got {arch}")
    return arch


def transform_sf_into_required_layout(
    sf: torch.Tensor,
    mn: int,
    k: int,
    recipe: tuple[int, int, int],
    num_groups: int | None = None,
    is_sfa: bool = False,
    disable_ue8m0_cast: bool = False,
    *,
    arch: int | None = None,
) -> torch.Tensor:
    """Bring a scale-factor tensor into the layout the FP8 GEMMs of ``arch`` require (spec 3.6).

    Args:
        sf: FP32 or INT32 scales of an operand with ``mn`` rows and ``k`` columns: ``[ceil(mn / gran_mn),
            ceil(k / gran_k)]`` (FP32) or ``[mn, ceil(k / (4 * gran_k))]`` (INT32, packed UE8M0); rank 3 with a
            leading ``num_groups`` when grouped.
        mn, k: the operand's row count and K.
        recipe: ``(gran_mn of A, gran_mn of B, gran_k)``, i.e. ``(1, 128, 128)`` or ``(1, 1, 128)``.
        num_groups: ``G`` for a grouped ``[G, ...]`` tensor, ``None`` for a 2-D one.
        is_sfa: ``sf`` belongs to the LHS (uses ``recipe[0]``), else the RHS (``recipe[1]``).
        disable_ue8m0_cast: on SM100 keep FP32 scales instead of packing them to UE8M0.
        arch: 90 or 100; default: the capability of ``sf``'s device, or 90 for a CPU tensor.

    Rules (the first that matches):
        1. FP32, gran (1, 128), SM90 or ``disable_ue8m0_cast``: :func:`get_mn_major_tma_aligned_tensor`.
        2. FP32, gran (1, 128), SM100: :func:`get_mn_major_tma_aligned_packed_ue8m0_tensor`.
        3. FP32, gran (128, 128), SM90 or ``disable_ue8m0_cast``: ``sf`` itself, which must be contiguous.
        4. FP32, gran (128, 128), SM100: each block row broadcast to its 128 rows, then packed as in rule 2
           (one kernel pass).
        5. INT32, gran (1, 128), SM100: ``sf`` itself, which must already be packed MN-major TMA-aligned.

        Anything else raises ``ValueError``.

    Example::

        >>> _, sfb = per_block_cast_to_fp8(torch.randn(4096, 7168, device="cuda"), use_ue8m0=True)
        >>> transform_sf_into_required_layout(sfb, 4096, 7168, (1, 128, 128), arch=100).shape
        torch.Size([4096, 14])
    """
    check_tensor(sf, "sf", dtypes=(_FP32, _INT32), ranks=(2, 3))
    check_int(mn, "mn", minimum=0)
    check_int(k, "k", minimum=0)
    gran_a, gran_b, gran_k = _check_recipe(recipe)
    if num_groups is not None:
        check_int(num_groups, "num_groups", minimum=0)
    check_bool(is_sfa, "is_sfa")
    check_bool(disable_ue8m0_cast, "disable_ue8m0_cast")
    arch = _resolve_arch(arch, sf)
    gran_mn = gran_a if is_sfa else gran_b

    # Step 1: the shape validator (spec 3.2).
    want_rank = 2 if num_groups is None else 3
    if sf.dim() != want_rank:
        what = "2 (num_groups is None)" if num_groups is None else f"3 (num_groups = {num_groups})"
        raise ValueError(f"sf must have rank {what}, got shape {tuple(sf.shape)}")
    if num_groups is not None and sf.shape[0] != num_groups:
        raise ValueError(f"sf must have num_groups = {num_groups} groups in dim 0, got shape {tuple(sf.shape)}")
    per_word = 4 * gran_k if sf.dtype == _INT32 else gran_k
    want = (ceil_div(mn, gran_mn), ceil_div(k, per_word))
    if tuple(sf.shape[-2:]) != want:
        raise ValueError(
            f"sf must have trailing shape {want} for mn={mn}, k={k}, gran_mn={gran_mn}, gran_k={gran_k} "
            f"({str(sf.dtype).replace('torch.', '')}), got shape {tuple(sf.shape)}"
        )

    # Step 2: the first matching rule (spec 3.6).
    keep_fp32 = arch == 90 or disable_ue8m0_cast
    if sf.dtype == _FP32 and (gran_mn, gran_k) == (1, 128):
        if keep_fp32:
            return get_mn_major_tma_aligned_tensor(sf)
        return _packed_ue8m0(sf)
    if sf.dtype == _FP32 and (gran_mn, gran_k) == (128, 128):
        if keep_fp32:
            if not sf.is_contiguous():
                raise ValueError(
                    f"sf must be contiguous (row-major 128x128 block scales) for recipe {tuple(recipe)}, got "
                    f"strides {sf.stride()}"
                )
            return sf
        return _packed_ue8m0(sf, row_div=128, mn=mn)
    if sf.dtype == _INT32 and (gran_mn, gran_k) == (1, 128) and arch == 100:
        if not _is_mn_major_tma_aligned(sf):
            tma_mn = get_tma_aligned_size(mn, 4)
            raise ValueError(
                f"sf (packed UE8M0 INT32) must already be MN-major TMA-aligned: strides (.., 1, {tma_mn}) with "
                f"group stride {sf.shape[-1] * tma_mn}, got strides {sf.stride()}; produce it with "
                "get_mn_major_tma_aligned_packed_ue8m0_tensor"
            )
        return sf
    raise ValueError(
        f"no scale-factor transformation for dtype {str(sf.dtype).replace('torch.', '')}, gran_mn={gran_mn}, "
        f"gran_k={gran_k} on arch {arch} (disable_ue8m0_cast={disable_ue8m0_cast}); supported: FP32 with "
        "(1, 128) or (128, 128) granularity, INT32 with (1, 128) on SM100"
    )
