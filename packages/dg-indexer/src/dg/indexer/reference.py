"""Pure-torch reference implementations of the lightning-indexer operations.

They define the semantics the GPU kernels are tested against, and they are what the public functions run when
every input lives on the CPU. They compute in float64 by default and never index out of bounds on bad values:
ranges are intersected with ``[0, seq_len_kv)``, block ids outside the cache give NaN logits.

Math (spec section 8)::

    logits[i, j] = k_scale[j] * sum_h weights[i, h] * max(0, <q[i, h, :], k[j, :]>)

The paged KV-cache block holds the 64 tokens' FP8 vectors first (token ``t`` at byte ``t * D``), then their 64
FP32 scales (token ``t`` at byte ``64 * D + 4 * t``); :func:`pack_paged_kv_cache` and
:func:`unpack_paged_kv_cache` convert between that byte layout and (values, scales) pairs.
"""

from __future__ import annotations

import torch

__all__ = [
    "PAGED_BLOCK_KV",
    "mqa_logits",
    "paged_mqa_logits",
    "paged_mqa_logits_metadata",
    "pack_paged_kv_cache",
    "unpack_paged_kv_cache",
    "quantize_per_token",
    "calc_diff",
]

#: Tokens per block of the paged KV cache (the only size the paged kernel supports).
PAGED_BLOCK_KV = 64

# NOTE: the reference materialises per-head scores [H, rows, keys]; chunk the rows so that this temporary stays
# around this many elements whatever the problem size.
_CHUNK_ELEMENTS = 1 << 25


def _rows_per_chunk(heads: int, keys: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, heads * keys))


def mqa_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    k_scale: torch.Tensor,
    weights: torch.Tensor,
    ks: torch.Tensor,
    ke: torch.Tensor,
    clean_logits: bool = True,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Reference of :func:`dg.indexer.fp8_mqa_logits` (non-paged, prefill).

    Args:
        q: ``[S, H, D]`` queries (any float dtype, FP8 included).
        k: ``[S_kv, D]`` keys (any float dtype).
        k_scale: ``[S_kv]`` per-key scale, applied after the ReLU and the head sum.
        weights: ``[S, H]`` per-query, per-head weights (may be negative).
        ks, ke: ``[S]`` integer key range ``[ks[i], ke[i])`` of each query, absolute key indices.
        clean_logits: positions outside the range are ``-inf`` when true; when false they are 0 here (the kernel
            leaves them unspecified).
        compute_dtype: dtype of the arithmetic and of the result.

    Returns:
        ``[S, S_kv]`` logits in ``compute_dtype``.

    Example:
        >>> q = torch.randn(4, 32, 64); k = torch.randn(16, 64)
        >>> out = mqa_logits(q, k, torch.ones(16), torch.randn(4, 32),
        ...                  torch.zeros(4, dtype=torch.int32), torch.full((4,), 16, dtype=torch.int32))
        >>> out.shape
        torch.Size([4, 16])
    """
    seq_len, heads, _ = q.shape
    seq_len_kv = k.shape[0]
    kf = k.to(compute_dtype)
    ksf = k_scale.to(compute_dtype)
    out = torch.empty(seq_len, seq_len_kv, dtype=compute_dtype, device=q.device)
    cols = torch.arange(seq_len_kv, device=q.device)
    step = _rows_per_chunk(heads, seq_len_kv)
    for r0 in range(0, seq_len, step):
        r1 = min(seq_len, r0 + step)
        qf = q[r0:r1].to(compute_dtype)
        scores = torch.einsum("shd,nd->hsn", qf, kf).clamp_min_(0)
        wt = weights[r0:r1].to(compute_dtype).t()[:, :, None]
        chunk = (scores * wt).sum(0) * ksf[None, :]
        lo = ks[r0:r1].to(torch.int64)[:, None]
        hi = ke[r0:r1].to(torch.int64)[:, None]
        valid = (cols[None, :] >= lo) & (cols[None, :] < hi)
        fill = float("-inf") if clean_logits else 0.0
        out[r0:r1] = torch.where(valid, chunk, torch.full_like(chunk, fill))
    return out


def pack_paged_kv_cache(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Pack FP8 token vectors and FP32 scales into the fused paged KV-cache byte layout.

    Args:
        values: ``[num_blocks, 64, D]`` FP8 (e4m3) token vectors.
        scales: ``[num_blocks, 64]`` FP32 per-token scales.

    Returns:
        ``uint8 [num_blocks, 64, 1, D + 4]`` (contiguous); each block holds the 64 vectors, then the 64 scales.
    """
    num_blocks, block_kv, dim = values.shape
    if tuple(scales.shape) != (num_blocks, block_kv):
        raise ValueError(f"scales: expected shape {(num_blocks, block_kv)}, got {tuple(scales.shape)}")
    raw = torch.empty(num_blocks, block_kv * (dim + 4), dtype=torch.uint8, device=values.device)
    raw[:, : block_kv * dim] = values.contiguous().view(torch.uint8).reshape(num_blocks, block_kv * dim)
    raw[:, block_kv * dim :] = scales.to(torch.float32).contiguous().view(torch.uint8).reshape(num_blocks, -1)
    return raw.view(num_blocks, block_kv, 1, dim + 4)


def unpack_paged_kv_cache(kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack_paged_kv_cache`; honours a block pitch ``kv_cache.stride(0)`` larger than a block.

    Returns:
        ``(values, scales)``: FP8 ``[num_blocks, 64, D]`` and FP32 ``[num_blocks, 64]`` (copies).
    """
    num_blocks, block_kv, _, dim_plus = kv_cache.shape
    dim = dim_plus - 4
    block_bytes = block_kv * dim_plus
    flat = torch.as_strided(kv_cache, (num_blocks, block_bytes), (kv_cache.stride(0), 1))
    values = flat[:, : block_kv * dim].contiguous().view(torch.float8_e4m3fn).view(num_blocks, block_kv, dim)
    scales = flat[:, block_kv * dim :].contiguous().view(torch.float32).view(num_blocks, block_kv)
    return values, scales


def paged_mqa_logits(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    weights: torch.Tensor,
    context_lens: torch.Tensor,
    block_table: torch.Tensor,
    max_context_len: int,
    clean_logits: bool = True,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Reference of :func:`dg.indexer.fp8_paged_mqa_logits` (paged, decode).

    Row ``R = b * next_n + r`` scores positions ``j <= context_lens[b] - next_n + r`` (and ``j <
    max_context_len``); token ``j`` lives in block ``block_table[b, j // 64]``, slot ``j % 64``.

    Args:
        q: ``[B, next_n, H, D]`` queries.
        kv_cache: ``uint8 [num_blocks, 64, 1, D + 4]`` fused cache (see :func:`pack_paged_kv_cache`).
        weights: ``[B * next_n, H]``.
        context_lens: ``[B]`` integer context lengths.
        block_table: ``[B, max_blocks]`` integer block ids.
        max_context_len: number of output columns.
        clean_logits: positions past the last valid one are ``-inf`` when true, 0 when false.
        compute_dtype: dtype of the arithmetic and of the result.

    Returns:
        ``[B * next_n, max_context_len]`` logits. Bad values give NaN, never a plausible number: a block id outside
        ``[0, num_blocks)`` for its tokens, and positions ``j <= last`` beyond ``64 * block_table.shape[1]``.
    """
    batch, next_n, heads, dim = q.shape
    values, scales = unpack_paged_kv_cache(kv_cache)
    num_blocks = values.shape[0]
    fill = float("-inf") if clean_logits else 0.0
    out = torch.full((batch * next_n, max_context_len), fill, dtype=compute_dtype, device=q.device)
    ctx = [int(x) for x in context_lens.tolist()]
    for b in range(batch):
        length = min(max(ctx[b], 0), max_context_len, block_table.shape[1] * PAGED_BLOCK_KV)
        for r in range(next_n):
            # Positions the row should score but that lie past what the table or the output can hold: NaN.
            end = min(ctx[b] - next_n + r + 1, max_context_len)
            if end > length:
                out[b * next_n + r, length:end] = float("nan")
        if length <= 0:
            continue
        n_blk = (length + PAGED_BLOCK_KV - 1) // PAGED_BLOCK_KV
        ids = block_table[b, :n_blk].to(torch.int64)
        ok = (ids >= 0) & (ids < num_blocks)
        safe = torch.where(ok, ids, torch.zeros_like(ids))
        kv = values[safe].to(compute_dtype).reshape(n_blk * PAGED_BLOCK_KV, dim)
        sc = scales[safe].to(compute_dtype)
        sc = torch.where(ok[:, None], sc, torch.full_like(sc, float("nan"))).reshape(-1)
        cols = torch.arange(n_blk * PAGED_BLOCK_KV, device=q.device)
        for r in range(next_n):
            row = b * next_n + r
            scores = (q[b, r].to(compute_dtype) @ kv.t()).clamp_min_(0)
            logit = (scores * weights[row].to(compute_dtype)[:, None]).sum(0) * sc
            last = ctx[b] - next_n + r
            valid = cols <= last
            cut = min(length, n_blk * PAGED_BLOCK_KV)
            out[row, :cut] = torch.where(valid, logit, torch.full_like(logit, fill))[:cut]
    return out


def paged_mqa_logits_metadata(context_lens: torch.Tensor, block_kv: int, num_sms: int) -> torch.Tensor:
    """Reference of :func:`dg.indexer.get_paged_mqa_logits_metadata`: the balanced split of the paged work.

    Work items are splits of ``4 * block_kv`` tokens of one sequence, ordered by (batch, split). They are divided
    into ``num_sms`` contiguous runs whose sizes differ by at most one; row ``s`` of the result is the first item
    of SM ``s`` as ``(batch index, split index within that batch)``, and the extra last row is always ``(B, 0)``.
    Negative context lengths count as 0.

    Returns:
        ``int32 [num_sms + 1, 2]`` on ``context_lens.device``.
    """
    split = 4 * block_kv
    lens = [max(int(x), 0) for x in context_lens.tolist()]
    segs = [(x + split - 1) // split for x in lens]
    prefix, total = [], 0
    for s in segs:
        total += s
        prefix.append(total)
    per, rem = divmod(total, num_sms)
    rows = []
    b = 0
    for s in range(num_sms + 1):
        start = s * per + min(s, rem)
        while b < len(prefix) and prefix[b] <= start:
            b += 1
        before = prefix[b - 1] if b > 0 else 0
        rows.append((b, start - before))
    return torch.tensor(rows, dtype=torch.int32, device=context_lens.device).view(num_sms + 1, 2)


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row FP8 (e4m3) quantisation: ``x ~= values * scales[:, None]`` with ``amax / 448`` scales.

    Args:
        x: ``[N, D]`` float tensor.

    Returns:
        ``(values, scales)``: FP8 ``[N, D]`` and FP32 ``[N]``.
    """
    amax = x.float().abs().amax(dim=-1).clamp_min(1e-4)
    scales = amax / 448.0
    values = (x.float() / scales[:, None]).to(torch.float8_e4m3fn)
    return values, scales


def calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    """Similarity metric of the tests: ``1 - 2 <x, y> / (|x|^2 + |y|^2)`` in float64 (0 for two zero tensors)."""
    x, y = x.double(), y.double()
    denom = (x * x + y * y).sum()
    if float(denom) == 0.0:
        return 0.0
    return float(1 - 2 * (x * y).sum() / denom)
