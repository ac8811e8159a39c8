"""Argument checks shared by the indexer entry points.

Every public function validates device, dtype, rank, shape, strides and alignment here before any launch and
raises ``TypeError``/``ValueError`` naming the argument, what it got and what it needs. A call whose argument
signature already passed them skips them (``ValidatedSignatures``: the host fast path of repeated decode steps).
Checked mode (``DG_INDEXER_CHECKED=1``) additionally copies the index tensors to the host and validates their
values, at every call.
"""

from __future__ import annotations

import operator
import os

import torch

SUPPORTED_HEADS = (32, 64, 128)
SUPPORTED_HEAD_DIMS = (32, 64, 128)
SUPPORTED_NEXT_N = (1, 2)
FP8 = torch.float8_e4m3fn

# NOTE: TMA needs 16-byte aligned base addresses and pitches; a view with an odd offset is rejected up front
# instead of failing inside the driver.
TMA_ALIGNMENT = 16


def checked_mode() -> bool:
    """True when ``DG_INDEXER_CHECKED`` is set to a non-zero integer (read at every call)."""
    value = os.environ.get("DG_INDEXER_CHECKED", "").strip()
    if not value:
        return False
    try:
        return int(value) != 0
    except ValueError:
        return True


class ValidatedSignatures:
    """Argument signatures that already passed every check of one entry point (the host fast path).

    A signature holds everything the checks read (each tensor's type, dtype, shape, strides, device and base address
    modulo the TMA alignment; the scalar arguments with their types), so a call whose signature is in the set would
    pass the checks again: it skips them. Values inside tensors are not part of it; checked mode, which reads
    them, always runs the full checks. Bounded: cleared when it holds ``limit`` signatures.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._seen: set[tuple] = set()
        self._limit = limit

    @staticmethod
    def of(tensors: tuple, scalars: tuple) -> tuple | None:
        """The signature of a call, or None when it cannot be formed (an argument that is not a tensor, a tensor
        without storage): the full checks then run and report what is wrong."""
        try:
            return tuple((type(x), x.dtype, x.shape, x.stride(), x.device, x.data_ptr() % TMA_ALIGNMENT)
                         for x in tensors) + tuple((type(v), v) for v in scalars)
        except Exception:  # noqa: BLE001 - any failure only means "no fast path"
            return None

    def __contains__(self, key: tuple | None) -> bool:
        try:
            return key is not None and key in self._seen
        except TypeError:  # an unhashable scalar: the full checks reject it
            return False

    def add(self, key: tuple | None) -> None:
        if key is None:
            return
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(key)


def tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def dtype(name: str, x: torch.Tensor, want: torch.dtype) -> None:
    if x.dtype != want:
        raise TypeError(f"{name}: expected dtype {want}, got {x.dtype}")


def rank(name: str, x: torch.Tensor, want: int) -> None:
    if x.dim() != want:
        raise ValueError(f"{name}: expected a {want}-D tensor, got {x.dim()}-D with shape {tuple(x.shape)}")


def dtypes_and_ranks(specs: list[tuple[str, torch.Tensor, torch.dtype, int]]) -> None:
    """``dtype`` then ``rank`` over (name, tensor, dtype, rank) entries: every dtype first, then every rank."""
    for name, x, want, _ in specs:
        dtype(name, x, want)
    for name, x, _, want in specs:
        rank(name, x, want)


def contiguous(name: str, x: torch.Tensor) -> None:
    if not x.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor, got strides {tuple(x.stride())} for shape "
                         f"{tuple(x.shape)}")


def size(name: str, x: torch.Tensor, dim: int, want: int, what: str) -> None:
    if x.shape[dim] != want:
        raise ValueError(f"{name}: expected size {want} in dim {dim} ({what}), got shape {tuple(x.shape)}")


def aligned(name: str, x: torch.Tensor) -> None:
    if x.is_cuda and x.numel() > 0 and x.data_ptr() % TMA_ALIGNMENT != 0:
        raise ValueError(f"{name}: data pointer must be {TMA_ALIGNMENT}-byte aligned (TMA), got address "
                         f"{x.data_ptr():#x}; pass a tensor that starts at its storage or copy it")


def integer(name: str, x: object, minimum: int) -> int:
    # NOTE: anything with __index__ (numpy integers too) is an int here; bool and float are not.
    if isinstance(x, bool) or not hasattr(type(x), "__index__"):
        raise TypeError(f"{name}: expected an int, got {type(x).__name__}")
    x = operator.index(x)
    if x < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {x}")
    return x


def boolean(name: str, x: object) -> bool:
    if not isinstance(x, bool):
        raise TypeError(f"{name}: expected a bool, got {type(x).__name__}")
    return x


def heads(name: str, h: int) -> None:
    if h not in SUPPORTED_HEADS:
        raise ValueError(f"{name}: number of heads must be one of {SUPPORTED_HEADS}, got {h}")


def head_dim(name: str, d: int) -> None:
    if d not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"{name}: head_dim must be one of {SUPPORTED_HEAD_DIMS}, got {d}")


def same_device(pairs: list[tuple[str, torch.Tensor]]) -> torch.device:
    first_name, first = pairs[0]
    for name, x in pairs[1:]:
        if x.device != first.device:
            raise ValueError(f"{name}: expected a tensor on {first.device} (the device of {first_name}), got "
                             f"{x.device}")
    if first.device.type not in ("cuda", "cpu"):
        raise ValueError(f"{first_name}: expected a CUDA or CPU tensor, got device {first.device}")
    return first.device


def first_bad(mask: torch.Tensor) -> int:
    """Index of the first true entry of a boolean host tensor (caller knows one exists)."""
    return int(torch.nonzero(mask.reshape(-1))[0, 0])


def check_ranges_values(ks: torch.Tensor, ke: torch.Tensor, seq_len_kv: int) -> None:
    """Checked mode of the non-paged call: ``0 <= ks[i] <= ke[i] <= seq_len_kv`` for every query ``i``."""
    ks_h, ke_h = ks.to("cpu", torch.int64), ke.to("cpu", torch.int64)
    bad = (ks_h < 0) | (ks_h > ke_h) | (ke_h > seq_len_kv)
    if bool(bad.any()):
        i = first_bad(bad)
        raise ValueError(f"cu_seq_len_k_start/cu_seq_len_k_end: row {i} has ks={int(ks_h[i])}, ke={int(ke_h[i])}; "
                         f"need 0 <= ks <= ke <= seq_len_kv={seq_len_kv} ({int(bad.sum())} bad rows) "
                         f"[DG_INDEXER_CHECKED]")


def check_paged_values(context_lens: torch.Tensor, block_table: torch.Tensor, num_blocks: int,
                       max_context_len: int, block_kv: int) -> None:
    """Checked mode of the paged call: context lengths, table width and block ids of the used table entries."""
    lens = context_lens.to("cpu", torch.int64)
    bad = (lens < 1) | (lens > max_context_len)
    if bool(bad.any()):
        b = first_bad(bad)
        raise ValueError(f"context_lens: entry {b} is {int(lens[b])}; need 1 <= context_lens[b] <= "
                         f"max_context_len={max_context_len} [DG_INDEXER_CHECKED]")
    table = block_table.to("cpu", torch.int64)
    width = table.shape[1]
    used = (lens + block_kv - 1) // block_kv
    if lens.numel() > 0 and int(used.max()) > width:
        b = first_bad(used > width)
        raise ValueError(f"block_table: row {b} needs {int(used[b])} block ids for context length {int(lens[b])} "
                         f"but the table has {width} columns [DG_INDEXER_CHECKED]")
    cols = torch.arange(width)[None, :]
    in_use = cols < used[:, None]
    bad_ids = in_use & ((table < 0) | (table >= num_blocks))
    if bool(bad_ids.any()):
        flat = first_bad(bad_ids)
        b, c = divmod(flat, width)
        raise ValueError(f"block_table: entry [{b}, {c}] is {int(table[b, c])}; block ids must be in "
                         f"[0, {num_blocks}) for the first ceil(context_lens[b] / {block_kv}) entries of a row "
                         f"[DG_INDEXER_CHECKED]")
