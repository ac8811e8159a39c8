"""Paged lightning-indexer logits (decode): :func:`get_paged_mqa_logits_metadata`, :func:`fp8_paged_mqa_logits`."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import NamedTuple

import torch

from . import _checks as chk
from . import _jit, reference

BLOCK_KV = reference.PAGED_BLOCK_KV


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _empty_logits(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    # NOTE: one allocation point, so that tests can hand out NaN-poisoned buffers.
    return torch.empty(rows, cols, dtype=torch.float32, device=device)


# Claim counters of the paged kernel's dynamic split (sm90_fp8_paged_mqa_logits.cuh): two INT32 that are zero
# when a launch starts; the launch's last CTA zeroes them again. NOTE: two launches that ran at the same time on
# one counter would take work from each other, so eager launches get one counter per (device, stream) (launches on
# one stream never overlap), and every call captured into a CUDA graph gets its own slot, zeroed by a memset node
# of the graph before the kernel (a graph's replays are serialised with each other). Slots are never reused:
# a captured graph keeps its pointer for its whole life. NOTE: a stream destroyed with launches still queued may
# hand its raw handle to a new stream, so each eager counter remembers the driver's id of the stream it serves
# (unique in the context); a handle that comes back with another id first waits for the device (the old stream's
# launches may still be claiming from the counter), then keeps the counter, as dg.core's split-K workspace does.
_STREAM_COUNTERS: dict[tuple[int, int], list] = {}  # (device, handle) -> [stream id, INT32 [2] counter]
_CAPTURE_SLOTS: dict[int, list] = {}  # device -> [slab INT32 [_SLAB_SLOTS, 2], next free slot]
_SLAB_SLOTS = 256


# NOTE: torch's C-level query, a few hundred nanoseconds cheaper per call than torch.cuda.is_current_stream_capturing().
_capturing = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None) or torch.cuda.is_current_stream_capturing


def _claim_counter(device: torch.device, index: int) -> torch.Tensor:
    """The claim counter for a paged launch on ``device`` (index ``index``) from the current stream."""
    if _capturing():
        slab = _CAPTURE_SLOTS.get(index)
        if slab is None or slab[1] == _SLAB_SLOTS:
            slab = _CAPTURE_SLOTS[index] = [torch.empty(_SLAB_SLOTS, 2, dtype=torch.int32, device=device), 0]
        counter = slab[0][slab[1]]
        slab[1] += 1
        counter.zero_()
        return counter
    handle, sid = _jit.current_stream_and_id(index)
    entry = _STREAM_COUNTERS.get((index, handle))
    if entry is None:
        entry = _STREAM_COUNTERS[(index, handle)] = [sid, torch.zeros(2, dtype=torch.int32, device=device)]
    elif entry[0] != sid:
        # The handle now names another stream: the old one's launches may still use the counter.
        torch.cuda.synchronize(device)
        entry[0] = sid
    return entry[1]


def get_paged_mqa_logits_metadata(context_lens: torch.Tensor, block_kv: int, num_sms: int) -> torch.Tensor:
    """Split the paged work of one decode step evenly across ``num_sms`` persistent CTAs.

    Work items are splits of ``4 * block_kv`` (256) tokens of one sequence, in (batch, split) order; SM ``s``
    takes the items from row ``s`` up to row ``s + 1`` of the result, and run lengths differ by at most one item.
    Computed on the device by a one-CTA kernel (no host synchronisation); CPU inputs use
    :func:`dg.indexer.reference.paged_mqa_logits_metadata`. :func:`fp8_paged_mqa_logits` launches one CTA per row
    but the last and follows these rows for batches of more than 2048 sequences; smaller batches claim their items
    at run time (the SMs' memory bandwidth differs, so equal item counts do not take equal times).

    Args:
        context_lens: INT32 ``[B]`` contiguous context lengths (negative values count as 0).
        block_kv: tokens per cache block; must be 64 for :func:`fp8_paged_mqa_logits`.
        num_sms: number of CTAs of the paged call, usually the device's SM count.

    Returns:
        INT32 ``[num_sms + 1, 2]``: ``(batch index, split index)`` of each CTA's first item; the last row is
        ``(B, 0)``.

    Example:
        >>> lens = torch.tensor([1000, 300, 5000], dtype=torch.int32, device="cuda")
        >>> sms = torch.cuda.get_device_properties(0).multi_processor_count
        >>> meta = dg.indexer.get_paged_mqa_logits_metadata(lens, 64, sms)
    """
    key = chk.ValidatedSignatures.of((context_lens,), (block_kv, num_sms))
    plan = _META_PLANS.get(key)
    if plan is None:
        context_lens = chk.tensor("context_lens", context_lens)
        block_kv = chk.integer("block_kv", block_kv, 1)
        num_sms = chk.integer("num_sms", num_sms, 1)
        chk.dtype("context_lens", context_lens, torch.int32)
        chk.rank("context_lens", context_lens, 1)
        chk.contiguous("context_lens", context_lens)
        device = chk.same_device([("context_lens", context_lens)])
        if 4 * block_kv >= 2**31:
            raise ValueError(f"block_kv: expected a value below 2^29, got {block_kv}")
        if device.type == "cpu":
            return reference.paged_mqa_logits_metadata(context_lens, block_kv, num_sms)
        batch = context_lens.shape[0]
        with _jit.device_guard(device):
            threads = _jit.metadata_threads(batch)
            kernel = _jit.kernel_for(_jit.metadata_spec(threads, 4 * block_kv))
            launch = kernel.bind(grid=(1, 1, 1), block=(threads, 1, 1), smem=0)
        plan = _MetadataPlan(launch, _jit.device_index(device), batch, 4 * block_kv, num_sms)
        _META_PLANS.put(key, plan)
    device = context_lens.device
    out = torch.empty(plan.num_sms + 1, 2, dtype=torch.int32, device=device)
    with _jit.device_guard(device):
        plan.launch((context_lens.data_ptr(), plan.batch, plan.split, plan.num_sms, out.data_ptr()), plan.device)
    return out


class _MetadataPlan(NamedTuple):
    launch: Callable[[tuple, int], None]
    device: int
    batch: int
    split: int
    num_sms: int


# Launch plans of metadata calls whose arguments passed the checks, by signature (see _jit.PlanCache).
_META_PLANS = _jit.PlanCache()


# Signatures of paged calls whose arguments passed _check_paged_args (see chk.ValidatedSignatures).
_VALIDATED = chk.ValidatedSignatures()
_PLANS = _jit.PlanCache()


def _check_paged_args(q, kv_cache, weights, context_lens, block_table, schedule_meta, max_context_len,
                      clean_logits) -> None:
    """Every check of fp8_paged_mqa_logits that depends only on the arguments' signature (not on tensor values)."""
    q = chk.tensor("q", q)
    kv_cache = chk.tensor("kv_cache", kv_cache)
    weights = chk.tensor("weights", weights)
    context_lens = chk.tensor("context_lens", context_lens)
    block_table = chk.tensor("block_table", block_table)
    schedule_meta = chk.tensor("schedule_meta", schedule_meta)
    max_context_len = chk.integer("max_context_len", max_context_len, 0)
    clean_logits = chk.boolean("clean_logits", clean_logits)

    chk.dtypes_and_ranks([("q", q, chk.FP8, 4), ("kv_cache", kv_cache, torch.uint8, 4),
                          ("weights", weights, torch.float32, 2), ("context_lens", context_lens, torch.int32, 1),
                          ("block_table", block_table, torch.int32, 2),
                          ("schedule_meta", schedule_meta, torch.int32, 2)])

    batch, next_n, heads, dim = q.shape
    if next_n not in chk.SUPPORTED_NEXT_N:
        raise ValueError(f"q: next_n (dim 1) must be one of {chk.SUPPORTED_NEXT_N}, got {next_n}")
    chk.heads("q", heads)
    chk.head_dim("q", dim)
    num_blocks = kv_cache.shape[0]
    chk.size("kv_cache", kv_cache, 1, BLOCK_KV, "block_kv")
    chk.size("kv_cache", kv_cache, 2, 1, "num_heads_kv")
    chk.size("kv_cache", kv_cache, 3, dim + 4, "head_dim + 4 bytes of FP32 scale")
    if kv_cache.stride(3) != 1 or kv_cache.stride(1) != dim + 4:
        raise ValueError(f"kv_cache: expected stride(1) == {dim + 4} and stride(3) == 1, got strides "
                         f"{tuple(kv_cache.stride())}")
    block_bytes = BLOCK_KV * (dim + 4)
    if num_blocks == 0:
        raise ValueError("kv_cache: expected at least one block, got shape "
                         f"{tuple(kv_cache.shape)}")
    if num_blocks > 1 and (kv_cache.stride(0) < block_bytes or kv_cache.stride(0) % 16 != 0):
        raise ValueError(f"kv_cache: block pitch stride(0) must be >= {block_bytes} and a multiple of 16 bytes "
                         f"(TMA), got {kv_cache.stride(0)}")
    chk.size("weights", weights, 0, batch * next_n, "batch * next_n of q")
    chk.size("weights", weights, 1, heads, "heads of q")
    chk.size("context_lens", context_lens, 0, batch, "batch of q")
    chk.size("block_table", block_table, 0, batch, "batch of q")
    if block_table.stride(1) != 1 and block_table.shape[1] > 1:
        raise ValueError(f"block_table: expected stride(1) == 1, got strides {tuple(block_table.stride())}")
    if schedule_meta.shape[0] < 2 or schedule_meta.shape[1] != 2:
        raise ValueError(f"schedule_meta: expected shape [num_sms + 1, 2] with num_sms >= 1, got "
                         f"{tuple(schedule_meta.shape)}")
    for name, x in (("q", q), ("weights", weights), ("context_lens", context_lens),
                    ("schedule_meta", schedule_meta)):
        chk.contiguous(name, x)
    chk.same_device([("q", q), ("kv_cache", kv_cache), ("weights", weights), ("context_lens", context_lens),
                     ("block_table", block_table), ("schedule_meta", schedule_meta)])
    if max_context_len >= 2**31 - 256 or batch * next_n * heads >= 2**31:
        raise ValueError(f"max_context_len/q: sizes must stay below 2^31, got max_context_len={max_context_len}, "
                         f"rows={batch * next_n * heads}")


def fp8_paged_mqa_logits(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    weights: torch.Tensor,
    context_lens: torch.Tensor,
    block_table: torch.Tensor,
    schedule_meta: torch.Tensor,
    max_context_len: int,
    clean_logits: bool = False,
) -> torch.Tensor:
    """Score the ``next_n`` newest query tokens of each sequence against its paged KV cache (decode).

    Row ``R = b * next_n + r`` gets, for ``j <= context_lens[b] - next_n + r``,
    ``out[R, j] = scale(j) * sum_h weights[R, h] * max(0, <q[b, r, h, :], kvec(j)>)`` where token ``j`` lives in
    block ``block_table[b, j // 64]``, slot ``j % 64``.

    Args:
        q: FP8 e4m3 ``[B, next_n, H, D]`` contiguous; ``next_n`` in {1, 2}, ``H`` and ``D`` in {32, 64, 128}.
        kv_cache: UINT8 ``[num_blocks, 64, 1, D + 4]`` with ``stride(1) == D + 4``, ``stride(3) == 1`` and a
            block pitch ``stride(0)`` that is a multiple of 16 bytes. Each block holds the 64 tokens' FP8
            vectors (token ``t`` at byte ``t * D``) followed by their 64 FP32 scales (byte ``64 * D + 4 * t``).
        weights: FP32 ``[B * next_n, H]`` contiguous.
        context_lens: INT32 ``[B]`` contiguous, each in ``[1, max_context_len]``.
        block_table: INT32 ``[B, max_blocks]`` with ``stride(1) == 1`` (any row pitch); the first
            ``ceil(context_lens[b] / 64)`` entries of row ``b`` must be valid block ids.
        schedule_meta: INT32 ``[num_sms + 1, 2]`` from :func:`get_paged_mqa_logits_metadata` with ``block_kv=64``
            on the same ``context_lens``; the kernel launches ``num_sms`` CTAs, which follow its rows for batches
            of more than 2048 sequences and otherwise split the items among themselves at run time.
        max_context_len: number of output columns, ``>= max(context_lens)``.
        clean_logits: write ``-inf`` at every position past the last valid one (fused into the kernel); when
            false those positions are unspecified.

    Returns:
        FP32 ``[B * next_n, max_context_len]``: a view of a ``[B * next_n, align(max_context_len, 256)]`` buffer.

    Bad values never cause an out-of-bounds access: lengths are clamped to ``max_context_len`` and to the table
    width, and a block id outside the cache gives NaN logits for its tokens. ``DG_INDEXER_CHECKED=1`` validates
    the values (and that ``schedule_meta`` matches ``context_lens``) on the host and raises ``ValueError``.
    ``q``, ``kv_cache`` and ``weights`` are read with TMA and must start 16-byte aligned.

    Example (one decode step, batch 2, next_n 1)::

        sms = torch.cuda.get_device_properties(0).multi_processor_count
        lens = torch.tensor([700, 4100], dtype=torch.int32, device="cuda")
        meta = dg.indexer.get_paged_mqa_logits_metadata(lens, 64, sms)
        logits = dg.indexer.fp8_paged_mqa_logits(q, kv_cache, w, lens, table, meta, 4096 + 64,
                                                 clean_logits=True)
    """
    checked = chk.checked_mode()
    key = None if checked else _VALIDATED.of((q, kv_cache, weights, context_lens, block_table, schedule_meta),
                                             (max_context_len, clean_logits))
    # Step: the host fast path. A plan exists only for a signature that passed every check (see _jit.PlanCache).
    plan = _PLANS.get(key)
    if plan is None:
        if key not in _VALIDATED:
            _check_paged_args(q, kv_cache, weights, context_lens, block_table, schedule_meta, max_context_len,
                              clean_logits)
            _VALIDATED.add(key)
        if checked:
            _check_paged_values(q, kv_cache, context_lens, block_table, schedule_meta, max_context_len)
        plan = _paged_plan(q, kv_cache, weights, context_lens, block_table, schedule_meta, max_context_len,
                           clean_logits)
        if not isinstance(plan, _PagedPlan):
            return plan  # CPU inputs or an empty output: served without a launch
        if not checked:
            _PLANS.put(key, plan)
    buffer = _empty_logits(plan.rows, plan.pitch, q.device)
    out = buffer[:, :plan.max_context_len]
    kv_ptr = kv_cache.data_ptr()
    with _jit.device_guard(q.device):
        counter = _claim_counter(q.device, plan.device)
        if checked and bool(counter.any()):
            raise RuntimeError("fp8_paged_mqa_logits: the claim counter of this stream is not zero before the "
                               "launch (an earlier launch on it did not finish) [DG_INDEXER_CHECKED]")
        values = (_jit.map_at(q.data_ptr(), plan.q_map), _jit.map_at(kv_ptr, plan.kv_map),
                  _jit.map_at(weights.data_ptr(), plan.w_map), _jit.map_at(kv_ptr, plan.s_map),
                  plan.num_blocks, context_lens.data_ptr(), block_table.data_ptr(), plan.table_stride,
                  plan.table_width, schedule_meta.data_ptr(), counter.data_ptr(), buffer.data_ptr(),
                  buffer.stride(0), plan.batch, plan.max_context_len, plan.clean)
        plan.launch(values, plan.device)
    return out


class _PagedPlan(NamedTuple):
    """Everything a paged launch derives from the argument signature (see _jit.PlanCache)."""

    launch: Callable[[tuple, int], None]
    device: int
    rows: int
    pitch: int
    max_context_len: int
    q_map: tuple
    kv_map: tuple
    w_map: tuple
    s_map: tuple
    num_blocks: int
    table_stride: int
    table_width: int
    batch: int
    clean: int


def _check_paged_values(q, kv_cache, context_lens, block_table, schedule_meta, max_context_len) -> None:
    # Checked mode (DG_INDEXER_CHECKED): the tensors' values, on the host.
    max_context_len = operator.index(max_context_len)
    chk.check_paged_values(context_lens, block_table, kv_cache.shape[0], max_context_len, BLOCK_KV)
    want = reference.paged_mqa_logits_metadata(context_lens.cpu(), BLOCK_KV, schedule_meta.shape[0] - 1)
    if not torch.equal(schedule_meta.cpu(), want):
        raise ValueError("schedule_meta: does not match get_paged_mqa_logits_metadata(context_lens, 64, "
                         f"{schedule_meta.shape[0] - 1}) for these context_lens [DG_INDEXER_CHECKED]")


def _paged_plan(q, kv_cache, weights, context_lens, block_table, schedule_meta, max_context_len, clean_logits):
    """The launch plan of a call whose arguments passed the checks; for CPU inputs or an empty output, the output
    itself (nothing to launch)."""
    max_context_len = operator.index(max_context_len)
    batch, next_n, heads, dim = q.shape
    num_blocks = kv_cache.shape[0]
    block_bytes = BLOCK_KV * (dim + 4)
    device = q.device
    rows = batch * next_n
    pitch = _align(max_context_len, 256)
    if device.type == "cpu":
        out = _empty_logits(rows, pitch, device)[:, :max_context_len]
        out.copy_(reference.paged_mqa_logits(q, kv_cache, weights, context_lens, block_table, max_context_len,
                                             clean_logits=clean_logits))
        return out
    if rows == 0 or max_context_len == 0:
        return _empty_logits(rows, pitch, device)[:, :max_context_len]

    for name, x in (("q", q), ("kv_cache", kv_cache), ("weights", weights)):
        chk.aligned(name, x)
    _jit.require_sm90("q", device)
    with _jit.device_guard(device):
        spec = _jit.paged_mqa_logits_spec(next_n, heads, dim)
        kernel = _jit.kernel_for(spec)
        grid = schedule_meta.shape[0] - 1
        smem = _jit.paged_smem_bytes(next_n, heads, dim, spec.stages)
        launch = kernel.bind(grid=(grid, 1, 1), block=(spec.threads, 1, 1), smem=smem)
    kv_pitch = kv_cache.stride(0) if num_blocks > 1 else _align(block_bytes, 16)
    return _PagedPlan(
        launch=launch,
        device=_jit.device_index(device),
        rows=rows,
        pitch=pitch,
        max_context_len=max_context_len,
        q_map=_jit.map_params(q, (dim, rows * heads), (dim,), (dim, next_n * heads), swizzle=dim),
        kv_map=_jit.map_params(kv_cache, (dim, BLOCK_KV, num_blocks), (dim, kv_pitch), (dim, BLOCK_KV, 1),
                               swizzle=dim),
        w_map=_jit.map_params(weights, (heads, rows), (heads * 4,), (heads, next_n), swizzle=0),
        # The 64 FP32 scales at byte 64 * D of every block, as a (64, num_blocks) matrix with the block pitch.
        s_map=_jit.map_params(kv_cache, (BLOCK_KV, num_blocks), (kv_pitch,), (BLOCK_KV, 1), swizzle=0,
                              byte_offset=BLOCK_KV * dim, dtype=torch.float32),
        num_blocks=num_blocks,
        table_stride=block_table.stride(0),
        table_width=block_table.shape[1],
        batch=batch,
        clean=int(clean_logits),
    )
