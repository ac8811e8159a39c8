"""Argument checks shared by dg.layout's public functions: each raises TypeError/ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def _dtype_names(dtypes: Iterable[torch.dtype]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


def check_tensor(
    t: object,
    name: str,
    *,
    dtypes: tuple[torch.dtype, ...],
    ranks: tuple[int, ...],
) -> torch.Tensor:
    """Check that ``t`` is a tensor of one of ``dtypes`` with one of ``ranks``; return it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {_dtype_names(dtypes)}, got {str(t.dtype).replace('torch.', '')}")
    if t.dim() not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name} must have rank {want}, got rank {t.dim()} (shape {tuple(t.shape)})")
    return t


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    # NOTE: bool is a subclass of int; a True/False size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_same_device(t: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    if t.device != ref.device:
        raise ValueError(f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}")
