"""Non-paged lightning-indexer logits (prefill): :func:`fp8_mqa_logits`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from . import _checks as chk
from . import _jit, reference


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _empty_logits(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    # NOTE: one allocation point, so that tests can hand out NaN-poisoned buffers.
    return torch.empty(rows, cols, dtype=torch.float32, device=device)


# Signatures of calls whose arguments passed _check_args (see chk.ValidatedSignatures).
_VALIDATED = chk.ValidatedSignatures()
_PLANS = _jit.PlanCache()


def _check_args(q, kv, weights, cu_seq_len_k_start, cu_seq_len_k_end, clean_logits) -> None:
    """Every check of fp8_mqa_logits that depends only on the arguments' signature (not on tensor values)."""
    q = chk.tensor("q", q)
    if not isinstance(kv, (tuple, list)) or len(kv) != 2:
        raise TypeError(f"kv: expected a (k, k_scale) pair of tensors, got {type(kv).__name__}"
                        + (f" of length {len(kv)}" if isinstance(kv, (tuple, list)) else ""))
    k = chk.tensor("kv[0]", kv[0])
    k_scale = chk.tensor("kv[1]", kv[1])
    weights = chk.tensor("weights", weights)
    ks = chk.tensor("cu_seq_len_k_start", cu_seq_len_k_start)
    ke = chk.tensor("cu_seq_len_k_end", cu_seq_len_k_end)
    chk.boolean("clean_logits", clean_logits)

    chk.dtypes_and_ranks([("q", q, chk.FP8, 3), ("kv[0]", k, chk.FP8, 2), ("kv[1]", k_scale, torch.float32, 1),
                          ("weights", weights, torch.float32, 2), ("cu_seq_len_k_start", ks, torch.int32, 1),
                          ("cu_seq_len_k_end", ke, torch.int32, 1)])

    seq_len, heads, dim = q.shape
    seq_len_kv = k.shape[0]
    chk.heads("q", heads)
    chk.head_dim("q", dim)
    chk.size("kv[0]", k, 1, dim, "head_dim of q")
    chk.size("kv[1]", k_scale, 0, seq_len_kv, "seq_len_kv of kv[0]")
    chk.size("weights", weights, 0, seq_len, "seq_len of q")
    chk.size("weights", weights, 1, heads, "heads of q")
    chk.size("cu_seq_len_k_start", ks, 0, seq_len, "seq_len of q")
    chk.size("cu_seq_len_k_end", ke, 0, seq_len, "seq_len of q")
    for name, x in (("q", q), ("kv[0]", k), ("kv[1]", k_scale), ("weights", weights),
                    ("cu_seq_len_k_start", ks), ("cu_seq_len_k_end", ke)):
        chk.contiguous(name, x)
    chk.same_device([("q", q), ("kv[0]", k), ("kv[1]", k_scale), ("weights", weights), ("cu_seq_len_k_start", ks),
                     ("cu_seq_len_k_end", ke)])
    if seq_len_kv >= 2**31 or seq_len * heads >= 2**31:
        raise ValueError(f"q/kv: sizes must stay below 2^31 rows, got seq_len*heads={seq_len * heads}, "
                         f"seq_len_kv={seq_len_kv}")


def fp8_mqa_logits(
    q: torch.Tensor,
    kv: tuple[torch.Tensor, torch.Tensor],
    weights: torch.Tensor,
    cu_seq_len_k_start: torch.Tensor,
    cu_seq_len_k_end: torch.Tensor,
    clean_logits: bool = True,
) -> torch.Tensor:
    """Score every query against its key range (DeepSeek-V3.2 lightning indexer, prefill).

    ``out[i, j] = k_scale[j] * sum_h weights[i, h] * max(0, <q[i, h, :], k[j, :]>)`` for
    ``ks[i] <= j < ke[i]``; FP8 products accumulate in FP32 on the tensor cores.

    Args:
        q: FP8 e4m3 ``[S, H, D]``, contiguous, ``H`` in {32, 64, 128}, ``D`` in {32, 64, 128}. No scale: fold a
            query scale into ``weights``.
        kv: ``(k, k_scale)``: FP8 e4m3 ``[S_kv, D]`` contiguous keys and FP32 ``[S_kv]`` per-key scales.
        weights: FP32 ``[S, H]`` contiguous (may be negative).
        cu_seq_len_k_start: INT32 ``[S]`` contiguous, ``ks``: first key of each query (absolute index).
        cu_seq_len_k_end: INT32 ``[S]`` contiguous, ``ke``: one past the last key of each query.
        clean_logits: write ``-inf`` at every position outside ``[ks[i], ke[i])`` (fused into the kernel). When
            false those positions are unspecified.

    Returns:
        FP32 ``[S, S_kv]``: a view of a ``[align(S, 4), align(S_kv + 256, 4)]`` buffer (row pitch larger than
        ``S_kv``; not contiguous).

    Ranges must satisfy ``0 <= ks <= ke <= S_kv``; other values are clamped by the kernel (never an
    out-of-bounds access); ``DG_INDEXER_CHECKED=1`` validates them on the host and raises ``ValueError``. CPU
    inputs are served by :func:`dg.indexer.reference.mqa_logits`. ``q``, ``k``, ``k_scale`` and ``weights`` are
    read with TMA and must start 16-byte aligned (any tensor that starts at its storage does).

    Example:
        >>> S, S_kv, H, D = 4, 128, 64, 128
        >>> q = torch.randn(S, H, D, device="cuda").to(torch.float8_e4m3fn)
        >>> k, k_scale = dg.indexer.reference.quantize_per_token(torch.randn(S_kv, D, device="cuda"))
        >>> w = torch.randn(S, H, device="cuda")
        >>> ks = torch.zeros(S, dtype=torch.int32, device="cuda")
        >>> ke = torch.arange(S_kv - S + 1, S_kv + 1, dtype=torch.int32, device="cuda")
        >>> logits = dg.indexer.fp8_mqa_logits(q, (k, k_scale), w, ks, ke)   # [4, 128], -inf after ke
    """
    checked = chk.checked_mode()
    pair = isinstance(kv, (tuple, list)) and len(kv) == 2
    key = None if checked or not pair else _VALIDATED.of(
        (q, kv[0], kv[1], weights, cu_seq_len_k_start, cu_seq_len_k_end), (clean_logits,))
    # Step: the host fast path. A plan exists only for a signature that passed every check (see _jit.PlanCache);
    # the grid (dg.core.set_num_sms) is part of its key.
    grid = None
    plan = None
    if key is not None:
        grid = min(_jit.num_sms(q.device), _jit.PREFILL_MAX_CTAS) if q.is_cuda else 0
        plan = _PLANS.get((key, grid))
    if plan is None:
        if key not in _VALIDATED:
            _check_args(q, kv, weights, cu_seq_len_k_start, cu_seq_len_k_end, clean_logits)
            _VALIDATED.add(key)
        if checked:
            chk.check_ranges_values(cu_seq_len_k_start, cu_seq_len_k_end, kv[0].shape[0])
        plan = _prefill_plan(q, kv, weights, cu_seq_len_k_start, cu_seq_len_k_end, clean_logits)
        if not isinstance(plan, _PrefillPlan):
            return plan  # CPU inputs or an empty output: served without a launch
        if key is not None and grid == plan.grid:
            _PLANS.put((key, grid), plan)
    k, k_scale = kv
    buffer = _empty_logits(plan.buf_rows, plan.buf_cols, q.device)
    out = buffer[:plan.seq_len, :plan.seq_len_kv]
    values = (_jit.map_at(q.data_ptr(), plan.q_map), _jit.map_at(k.data_ptr(), plan.k_map),
              _jit.map_at(weights.data_ptr(), plan.w_map), _jit.map_at(k_scale.data_ptr(), plan.s_map),
              cu_seq_len_k_start.data_ptr(), cu_seq_len_k_end.data_ptr(), buffer.data_ptr(), plan.seq_len,
              plan.seq_len_kv, buffer.stride(0), plan.clean)
    with _jit.device_guard(q.device):
        plan.launch(values, plan.device)
    return out


class _PrefillPlan(NamedTuple):
    """Everything a prefill launch derives from the argument signature and the grid (see _jit.PlanCache)."""

    launch: Callable[[tuple, int], None]
    device: int
    grid: int
    buf_rows: int
    buf_cols: int
    seq_len: int
    seq_len_kv: int
    q_map: tuple
    k_map: tuple
    w_map: tuple
    s_map: tuple
    clean: int


def _prefill_plan(q, kv, weights, ks, ke, clean_logits):
    """The launch plan of a call whose arguments passed the checks; for CPU inputs or an empty output, the output
    itself (nothing to launch)."""
    k, k_scale = kv
    seq_len, heads, dim = q.shape
    seq_len_kv = k.shape[0]
    device = q.device
    buf_rows, buf_cols = _align(seq_len, 4), _align(seq_len_kv + 256, 4)
    if device.type == "cpu":
        out = _empty_logits(buf_rows, buf_cols, device)[:seq_len, :seq_len_kv]
        out.copy_(reference.mqa_logits(q, k, k_scale, weights, ks, ke, clean_logits=clean_logits))
        return out
    if seq_len == 0 or seq_len_kv == 0:
        return _empty_logits(buf_rows, buf_cols, device)[:seq_len, :seq_len_kv]

    for name, x in (("q", q), ("kv[0]", k), ("kv[1]", k_scale), ("weights", weights)):
        chk.aligned(name, x)
    _jit.require_sm90("q", device)
    with _jit.device_guard(device):
        queries_per_block = _jit.Q_ROWS // heads
        # NOTE: one CTA per SM whatever the group count: fewer groups than CTAs are cut into equal tile shares by
        # the split instance.
        grid = min(_jit.num_sms(device), _jit.PREFILL_MAX_CTAS)
        num_groups = (seq_len + queries_per_block - 1) // queries_per_block
        split = num_groups < grid
        # NOTE: the split instance sums the tiles of its groups in 32 bits: at most grid - 1 groups of at most
        # seq_len_kv / 64 + 2 tiles each.
        if split and (grid - 1) * (seq_len_kv // _jit.BLOCK_KV + 2) >= 2**32:
            raise ValueError(f"kv: seq_len_kv must stay below {(2**32 // max(grid - 1, 1) - 2) * _jit.BLOCK_KV} keys "
                             f"when seq_len < {grid * queries_per_block}, got {seq_len_kv}")
        spec = _jit.mqa_logits_spec(heads, dim, split=split)
        kernel = _jit.kernel_for(spec)
        smem = _jit.smem_bytes(_jit.Q_ROWS, dim, heads, queries_per_block, spec.stages,
                               _jit.prefill_extra_rows(heads), _jit.PREFILL_WORK_BYTES)
        launch = kernel.bind(grid=(grid, 1, 1), block=(spec.threads, 1, 1), smem=smem)
    return _PrefillPlan(
        launch=launch,
        device=_jit.device_index(device),
        grid=grid,
        buf_rows=buf_rows,
        buf_cols=buf_cols,
        seq_len=seq_len,
        seq_len_kv=seq_len_kv,
        # NOTE: a query group's Q rows come as two boxes of Q_ROWS / 2 rows, one per half of the slot.
        q_map=_jit.map_params(q, (dim, seq_len * heads), (dim,), (dim, _jit.Q_ROWS // 2), swizzle=dim),
        k_map=_jit.map_params(k, (dim, seq_len_kv), (dim,), (dim, _jit.BLOCK_KV), swizzle=dim),
        w_map=_jit.map_params(weights, (heads, seq_len), (heads * 4,), (heads, queries_per_block), swizzle=0),
        # NOTE: the scales as a [1, S_kv] matrix: one 64-wide box per key tile (the row pitch is never used).
        s_map=_jit.map_params(k_scale, (seq_len_kv, 1), (_align(seq_len_kv * 4, 16),), (_jit.BLOCK_KV, 1),
                              swizzle=0),
        clean=int(clean_logits),
    )
