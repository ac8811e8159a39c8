"""Integer helpers and the UE8M0 rounding of scale factors (spec 12.1)."""

from __future__ import annotations

import torch

from . import reference
from ._checks import check_int, check_tensor

__all__ = ["ceil_div", "align", "ceil_to_ue8m0"]


def ceil_div(x: int, y: int) -> int:
    """``(x + y - 1) // y`` for integers, ``y > 0``.

    Example: ``ceil_div(7168, 128) == 56``, ``ceil_div(7296, 512) == 15``.
    """
    check_int(x, "x")
    check_int(y, "y", minimum=1)
    return (x + y - 1) // y


def align(x: int, y: int) -> int:
    """``x`` rounded up to a multiple of ``y`` (``ceil_div(x, y) * y``), ``y > 0``.

    Example: ``align(4097, 4) == 4100``.
    """
    return ceil_div(x, y) * y


def ceil_to_ue8m0(x: torch.Tensor) -> torch.Tensor:
    """Round every ``|x|`` up to a power of two: ``2 ** ceil(log2(|x|))``, elementwise.

    ``x``: FP32, BF16 or FP16 tensor of any shape and device; the result has the same shape and dtype. Scales
    rounded this way are exactly representable as UE8M0 (an 8-bit exponent), the scale format of SM100's FP8
    GEMMs. Computed exactly from the IEEE bits (exact powers of two are kept, anything above moves to the next
    power of two, 0 stays 0), not with a floating-point ``log2``, which gets values just above a power of two wrong.

    Raises ``ValueError`` when ``x`` is empty or its largest value is not positive (as the spec asserts).
    NOTE: that check reads one value back from the device, so it synchronises a CUDA tensor's stream.

    Example::

        >>> ceil_to_ue8m0(torch.tensor([0.3, 0.25, 3.0]))
        tensor([0.5000, 0.2500, 4.0000])
    """
    check_tensor(x, "x", dtypes=(torch.float32, torch.bfloat16, torch.float16), ranks=tuple(range(0, 9)))
    if x.numel() == 0:
        raise ValueError("x must not be empty (ceil_to_ue8m0 needs a positive maximum)")
    top = float(x.max())
    if not top > 0:
        raise ValueError(f"x must have a positive maximum, got max(x) = {top}")
    return reference.ceil_to_ue8m0(x)
