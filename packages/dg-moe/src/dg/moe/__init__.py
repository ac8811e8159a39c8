"""dg.moe: MoE grouped-GEMM layouts and schedulers on top of dg.core.

The grouped kernels (contiguous, masked, k-grouped) are not shipped yet. What is here are the host-side layout
builders and validators the grouped GEMMs will take, usable today to prepare inputs:

- :func:`make_contiguous_layout`: per-row group ids (``m_indices``) for the contiguous layout, each group's rows
  padded with ``-1`` to the M alignment;
- :func:`validate_masked_m`: checks a masked-layout ``masked_m`` against ``M_max`` on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["MK_ALIGNMENT", "make_contiguous_layout", "validate_masked_m"]

#: M (and K) alignment of a group's segment in the contiguous layouts (DeepGEMM's
#: ``get_mk_alignment_for_contiguous_layout()``).
MK_ALIGNMENT = 128


def make_contiguous_layout(group_sizes: Sequence[int], alignment: int = MK_ALIGNMENT, device: Any = None) -> Any:
    """Row -> group map of the contiguous layout.

    Group ``g`` owns ``group_sizes[g]`` rows, padded with ``-1`` rows up to a multiple of `alignment`; the segments
    are concatenated in group order, so every group starts at a multiple of `alignment` and the total is one too.

    Returns an INT32 tensor ``m_indices`` of length ``sum(align(size, alignment))``.

    Example::

        >>> make_contiguous_layout([3, 0, 130], alignment=128).tolist()[:4]
        [0, 0, 0, -1]
    """
    import torch

    if alignment <= 0:
        raise ValueError(f"alignment must be positive, got {alignment}")
    parts = []
    for g, size in enumerate(group_sizes):
        if int(size) != size or size < 0:
            raise ValueError(f"group_sizes[{g}] must be a non-negative integer, got {size!r}")
        padded = -(-int(size) // alignment) * alignment
        seg = torch.full((padded,), -1, dtype=torch.int32)
        seg[: int(size)] = g
        parts.append(seg)
    out = torch.cat(parts) if parts else torch.empty(0, dtype=torch.int32)
    return out.to(device) if device is not None else out


def validate_masked_m(masked_m: Any, m_max: int) -> None:
    """Raise ``ValueError`` unless every ``masked_m[g]`` lies in ``[0, m_max]`` (reads the tensor on the host)."""
    import torch

    if not isinstance(masked_m, torch.Tensor) or masked_m.dtype != torch.int32 or masked_m.dim() != 1:
        raise TypeError("masked_m must be a 1-D torch.int32 tensor")
    values = masked_m.cpu()
    bad = ((values < 0) | (values > m_max)).nonzero().flatten().tolist()
    if bad:
        g = bad[0]
        raise ValueError(f"masked_m[{g}] = {int(values[g])} is outside [0, {m_max}] (M_max)")
