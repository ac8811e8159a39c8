"""The correctness check of the indexer logits tests, shared by the GPU tests and the CPU tests of the check itself.

Checks, in order: the -inf pattern equals the reference mask exactly (clean mode); no NaN at any scored position;
calc_diff < 1e-3 over all scored positions (the spec's bar); and a per-element bound, reported per row, so that one
wrong row cannot hide in the global metric:

    |out - want| <= 1e-3 * max_row |want| + 1e-4 + ACCUM_PRECISION * magnitude

``magnitude`` is the same logit computed on absolute values, ``k_scale * sum_h |w_h| * sum_d |q_hd| * |k_d|``: the
condition scale of the sum. NOTE: why the last term. The head sum has weights of both signs, so a logit can cancel
down to a small fraction of its terms. On Hopper the FP8 tensor cores accumulate a wgmma chain with about 14
significant bits (products aligned to the largest exponent, the rest truncated), so the error of a logit follows
its terms, not its value. A row with one or a few scored positions has no large value to be relative to, and the
old row-max bound alone failed there for any FP8 wgmma kernel (row 0 of a paged sequence of length next_n, a
prefill query with ke = ks + 1). For long rows the row-max term dominates and the check is as tight as before.
The CPU tests in test_logits_check.py show that a model of that accumulation passes and that wrong keys, heads,
weight rows, scales or a dropped K step still fail.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from dg.indexer import reference as ref

# Error of a logit per unit of its magnitude that an FP8 wgmma kernel may have. NOTE: the model in
# test_logits_check.py reaches 1.5e-5 at most (about 10^4 logits per (H, D)); the five per-row failures seen on the H100
# (0.002 to 0.008, single-position rows) are about 1e-6 to 5e-6 of their estimated magnitudes. 2^-15 keeps a margin
# over both while a single head left out of a single-key row still fails.
ACCUM_PRECISION = 2.0**-15
ROW_RELATIVE = 1e-3
ABSOLUTE = 1e-4

Magnitude = Callable[[torch.Tensor], torch.Tensor]


def check_logits(out: torch.Tensor, want: torch.Tensor, clean: bool, what: str,
                 magnitude: Magnitude | None = None) -> None:
    """`want` is the float64 reference with -inf outside the valid positions. `magnitude(rows)` returns the
    absolute-value logits of those rows ([len(rows), cols], float64); it is only called for rows that exceed the
    row-max bound, so long problems pay for it only where it matters."""
    valid = torch.isfinite(want) | torch.isnan(want)
    assert out.shape == want.shape, what
    if clean:
        neg_inf = torch.isinf(out) & (out < 0)
        mismatch = neg_inf != ~valid
        assert not bool(mismatch.any()), f"{what}: -inf pattern differs at {mismatch.nonzero()[:5].tolist()}"
    assert not bool(torch.isnan(out[valid & ~torch.isnan(want)]).any()), \
        f"{what}: NaN (never written) at {torch.nonzero(torch.isnan(out) & valid)[:5].tolist()}"
    if not bool(valid.any()):
        return
    zero = torch.zeros((), dtype=torch.float64, device=out.device)
    o = torch.where(valid, out.double(), zero)
    w = torch.where(valid, want.double(), zero)
    diff = ref.calc_diff(o, w)
    assert diff < 1e-3, f"{what}: calc_diff {diff}"
    err = (o - w).abs()
    bound = ROW_RELATIVE * w.abs().amax(dim=1, keepdim=True) + ABSOLUTE
    rows = (err > bound).any(dim=1).nonzero().flatten()
    if rows.numel() and magnitude is not None:
        mag = magnitude(rows).to(device=out.device, dtype=torch.float64)
        mag = torch.where(valid[rows], mag, zero)
        bad_rows = (err[rows] > bound[rows] + ACCUM_PRECISION * mag).any(dim=1)
        rows = rows[bad_rows]
    if rows.numel():
        worst = err[rows].amax(dim=1)
        raise AssertionError(f"{what}: rows {rows[:5].tolist()} off by {worst[:5].tolist()}")


def mqa_magnitude(q: torch.Tensor, k: torch.Tensor, k_scale: torch.Tensor, weights: torch.Tensor,
                  ks: torch.Tensor, ke: torch.Tensor) -> Magnitude:
    """Absolute-value logits of fp8_mqa_logits' inputs, for the rows asked."""

    def rows_of(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.to(q.device)
        return ref.mqa_logits(q[rows].double().abs(), k.double().abs(), k_scale.double().abs(),
                              weights[rows].double().abs(), ks[rows], ke[rows], clean_logits=False)

    return rows_of


def paged_magnitude(q: torch.Tensor, kv_cache: torch.Tensor, weights: torch.Tensor, context_lens: torch.Tensor,
                    block_table: torch.Tensor, max_context_len: int) -> Magnitude:
    """Absolute-value logits of fp8_paged_mqa_logits' inputs, for the rows asked (row = b * next_n + r)."""
    batch, next_n, heads, _ = q.shape

    def rows_of(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.to(q.device)
        seqs = torch.unique(rows // next_n)
        values, scales = ref.unpack_paged_kv_cache(kv_cache)
        # NOTE: |x| of an e4m3 value is an e4m3 value, so the packed cache holds the absolute values exactly.
        cache_abs = ref.pack_paged_kv_cache(values.float().abs().to(values.dtype), scales.abs())
        w = weights.view(batch, next_n, heads)[seqs].reshape(-1, heads)
        got = ref.paged_mqa_logits(q[seqs].double().abs(), cache_abs, w.double().abs(), context_lens[seqs],
                                   block_table[seqs], max_context_len, clean_logits=False)
        # Row i * next_n + r of `got` is sequence seqs[i]; pick the rows asked, in order.
        pos = torch.searchsorted(seqs, rows // next_n)
        return got[pos * next_n + rows % next_n]

    return rows_of
