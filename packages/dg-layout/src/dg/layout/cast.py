"""FP8 (e4m3) quantisation with per-token, per-block, per-channel and custom-dimension scales (spec 12.1).

The recipe, shared by every function here (see :mod:`dg.layout.reference` for the exact arithmetic):
``amax = max |x|`` over the group (in FP32), ``scale = max(amax, 1e-4) / 448``, optionally rounded up to a power of
two (``use_ue8m0``), ``fp8 = e4m3(x * (1 / scale))``, so that ``float(fp8) * scale`` approximates ``x``.

CUDA tensors go through one-pass dg.layout kernels (each input element read once, FP8 and scales written
straight into their final layout); CPU tensors through the pure-torch reference. Both give identical bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _kernels, reference
from ._checks import check_bool, check_tensor
from .numerics import ceil_div

__all__ = [
    "per_token_cast_to_fp8",
    "per_block_cast_to_fp8",
    "per_channel_cast_to_fp8",
    "per_custom_dims_cast_to_fp8",
]

_INPUT_DTYPES = (torch.bfloat16, torch.float32)
_FP8 = torch.float8_e4m3fn


def _unit_column_stride(x: torch.Tensor) -> torch.Tensor:
    # NOTE: the kernels read rows with unit column stride and any row pitch; anything else is copied first.
    return x if x.stride(-1) == 1 or x.shape[-1] <= 1 else x.contiguous()


def per_token_cast_to_fp8(
    x: torch.Tensor, use_ue8m0: bool = False, *, mn_major_sf: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` to FP8 with one scale per row and 128-column block (the "1x128" LHS recipe).

    Args:
        x: BF16 or FP32 ``[m, k]``, any ``k`` (a partial last block is scaled as if zero-padded to 128).
        use_ue8m0: round every scale up to a power of two (what SM100's UE8M0 GEMMs need).
        mn_major_sf: write the scales straight into the MN-major TMA-aligned layout (strides
            ``(1, align(m, 4))``) that SM90's FP8 GEMMs read, so no transform kernel runs afterwards.

    Returns:
        ``(fp8, sf)``: ``fp8`` is ``float8_e4m3fn`` ``[m, k]`` contiguous; ``sf`` is FP32 ``[m, ceil(k / 128)]``,
        contiguous (K-major) or MN-major TMA-aligned when ``mn_major_sf``.

    Example::

        >>> a = torch.randn(4096, 7168, dtype=torch.bfloat16, device="cuda")
        >>> a_fp8, a_sf = per_token_cast_to_fp8(a, use_ue8m0=False, mn_major_sf=True)
        >>> a_sf.shape, a_sf.stride()
        (torch.Size([4096, 56]), (1, 4096))
    """
    check_tensor(x, "x", dtypes=_INPUT_DTYPES, ranks=(2,))
    check_bool(use_ue8m0, "use_ue8m0")
    check_bool(mn_major_sf, "mn_major_sf")
    m, k = x.shape
    s = ceil_div(k, 128)
    out = torch.empty((m, k), dtype=_FP8, device=x.device)
    if mn_major_sf:
        sf = reference.empty_mn_major(None, m, s, torch.float32, x.device)
    else:
        sf = torch.empty((m, s), dtype=torch.float32, device=x.device)
    if m == 0 or k == 0:
        return out, sf
    if x.is_cuda:
        _kernels.per_token_cast(_unit_column_stride(x), out, sf, use_ue8m0)
    else:
        q, scale = reference.per_token_cast_to_fp8(x, use_ue8m0)
        out.copy_(q)
        sf.copy_(scale)
    return out, sf


def per_block_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` to FP8 with one scale per 128 x 128 block (the RHS recipe of the 1D2D GEMMs).

    Args:
        x: BF16 or FP32 ``[m, n]``, any ``m`` and ``n`` (partial edge blocks are scaled as if zero-padded).
        use_ue8m0: round every scale up to a power of two.

    Returns:
        ``(fp8 [m, n] contiguous, sf FP32 [ceil(m / 128), ceil(n / 128)] contiguous)``.

    Example::

        >>> b = torch.randn(7168, 2048, dtype=torch.bfloat16, device="cuda")
        >>> b_fp8, b_sf = per_block_cast_to_fp8(b)
        >>> b_sf.shape
        torch.Size([56, 16])
    """
    check_tensor(x, "x", dtypes=_INPUT_DTYPES, ranks=(2,))
    check_bool(use_ue8m0, "use_ue8m0")
    m, n = x.shape
    out = torch.empty((m, n), dtype=_FP8, device=x.device)
    sf = torch.empty((ceil_div(m, 128), ceil_div(n, 128)), dtype=torch.float32, device=x.device)
    if m == 0 or n == 0:
        return out, sf
    if x.is_cuda:
        _kernels.tile_cast("per_block_cast_fp8", _unit_column_stride(x), out, sf, use_ue8m0)
    else:
        q, scale = reference.per_block_cast_to_fp8(x, use_ue8m0)
        out.copy_(q)
        sf.copy_(scale)
    return out, sf


def per_channel_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` to FP8 with one scale per column and 128-row block (k-grouped wgrad operands).

    Args:
        x: BF16 or FP32 ``[m, n]`` with ``m % 128 == 0`` (rows are the GEMM's K dimension).
        use_ue8m0: round every scale up to a power of two.

    Returns:
        ``(fp8 [m, n] contiguous, sf FP32 [m / 128, n] contiguous)``.

    Example::

        >>> a = torch.randn(8192, 4096, dtype=torch.bfloat16, device="cuda")
        >>> a_fp8, a_sf = per_channel_cast_to_fp8(a, use_ue8m0=True)
        >>> a_sf.shape
        torch.Size([64, 4096])
    """
    check_tensor(x, "x", dtypes=_INPUT_DTYPES, ranks=(2,))
    check_bool(use_ue8m0, "use_ue8m0")
    m, n = x.shape
    if m % 128 != 0:
        raise ValueError(f"x must have a multiple of 128 rows for per-channel scales, got shape {tuple(x.shape)}")
    out = torch.empty((m, n), dtype=_FP8, device=x.device)
    sf = torch.empty((m // 128, n), dtype=torch.float32, device=x.device)
    if m == 0 or n == 0:
        return out, sf
    if x.is_cuda:
        _kernels.tile_cast("per_channel_cast_fp8", _unit_column_stride(x), out, sf, use_ue8m0)
    else:
        q, scale = reference.per_channel_cast_to_fp8(x, use_ue8m0)
        out.copy_(q)
        sf.copy_(scale)
    return out, sf


def _normalise_dims(dims: object, rank: int) -> tuple[int, ...]:
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = (dims,)
    if not isinstance(dims, Sequence) or isinstance(dims, str):
        raise TypeError(f"dims must be a tuple or list of ints, got {type(dims).__name__}")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"dims must hold ints, got {d!r} in {dims!r}")
        if not -rank <= d < rank:
            raise ValueError(f"dims entries must be in [{-rank}, {rank}) for a rank-{rank} x, got {d} in {dims!r}")
        out.append(d % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"dims must not repeat a dimension, got {dims!r}")
    return tuple(sorted(out))


def per_custom_dims_cast_to_fp8(
    x: torch.Tensor, dims: Sequence[int], use_ue8m0: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` to FP8 with one scale per index of the kept dimensions ``dims``.

    The maximum is taken over every dimension *not* in ``dims``. Returns ``(fp8, sf.squeeze())``: ``fp8`` has
    ``x``'s shape (contiguous), ``sf`` is FP32 with the kept dimensions' sizes, size-1 dimensions squeezed (as the
    spec does; a kept dimension of size 1 disappears too).

    Args:
        x: BF16 or FP32 tensor of rank >= 1.
        dims: the dimensions that keep their own scale, e.g. ``(0,)`` for one scale per row of ``[S_kv, D]``.
        use_ue8m0: round every scale up to a power of two.

    CUDA: a contiguous ``x`` whose reduced dimensions are the trailing ones and span exactly 128 elements (the
    indexer's ``[S_kv, 128]`` keys) runs through the one-pass per-token kernel; other layouts use the torch path
    on the device (TODO: a general one-pass kernel).

    Example::

        >>> kv = torch.randn(65536, 128, dtype=torch.bfloat16, device="cuda")
        >>> kv_fp8, kv_sf = per_custom_dims_cast_to_fp8(kv, (0,), False)
        >>> kv_sf.shape
        torch.Size([65536])
    """
    check_tensor(x, "x", dtypes=_INPUT_DTYPES, ranks=tuple(range(1, 9)))
    kept = _normalise_dims(dims, x.dim())
    check_bool(use_ue8m0, "use_ue8m0")
    reduced = [d for d in range(x.dim()) if d not in kept]
    reduced_numel = 1
    for d in reduced:
        reduced_numel *= x.shape[d]
    trailing = reduced == list(range(x.dim() - len(reduced), x.dim()))
    if x.is_cuda and x.is_contiguous() and trailing and reduced_numel == 128 and x.numel() > 0:
        rows = x.numel() // 128
        out, sf = per_token_cast_to_fp8(x.view(rows, 128), use_ue8m0)
        keep_shape = [x.shape[d] if d in kept else 1 for d in range(x.dim())]
        return out.view(x.shape), sf.view(keep_shape).squeeze()
    return reference.per_custom_dims_cast_to_fp8(x, kept, use_ue8m0)
