"""Runs both logits kernels on small cases (non-paged with random, empty and inverted ranges for 64 and 32 heads and
both prefill instances, paged with next_n 1 and 2 and a shuffled block table) for compute-sanitizer, e.g.
`compute-sanitizer --tool racecheck python packages/dg-indexer/tests/sanitize_mqa_logits.py` (and memcheck).
Exits non-zero if a result is wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import dg.indexer as idx
import torch
from dg.indexer import reference as ref

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer_inputs import make_paged  # noqa: E402

D, BLOCK_KV = 128, 64


def scored_diff(out: torch.Tensor, want: torch.Tensor, valid: torch.Tensor) -> float:
    o = torch.where(valid, out.double(), 0.0)
    w = torch.where(valid, want.double(), 0.0)
    return ref.calc_diff(o, w)


def non_paged(seq_len: int, seq_len_kv: int, heads: int) -> bool:
    q = torch.randn(seq_len, heads, D, device="cuda").to(torch.float8_e4m3fn)
    k, k_scale = ref.quantize_per_token(torch.randn(seq_len_kv, D, device="cuda"))
    w = torch.randn(seq_len, heads, device="cuda")
    a = torch.randint(-3, seq_len_kv + 3, (seq_len,), device="cuda")
    b = torch.randint(-3, seq_len_kv + 3, (seq_len,), device="cuda")
    ks, ke = torch.minimum(a, b).int(), torch.maximum(a, b).int()
    ks[::5], ke[::5] = 7, 3  # inverted: empty
    out = idx.fp8_mqa_logits(q, (k, k_scale), w, ks, ke, clean_logits=True)
    want = ref.mqa_logits(q, k, k_scale, w, ks, ke, clean_logits=True)
    lo = ks.clamp(0, seq_len_kv).long()
    hi = torch.maximum(ke.clamp(0, seq_len_kv).long(), lo)
    j = torch.arange(seq_len_kv, device="cuda")
    valid = (j[None, :] >= lo[:, None]) & (j[None, :] < hi[:, None])
    diff = scored_diff(out, want, valid)
    ninf_ok = bool(torch.equal(torch.isinf(out) & (out < 0), ~valid))
    print(f"non-paged S={seq_len} S_kv={seq_len_kv} H={heads}: calc_diff {diff:.2e}, -inf outside ranges {ninf_ok}")
    return diff < 1e-3 and ninf_ok


def paged(batch: int, next_n: int, max_ctx: int, heads: int) -> bool:
    lens_list = torch.randint(1, max_ctx + 1, (batch,)).tolist()
    q, cache, w, lens, table = make_paged(batch, next_n, heads, D, lens_list, max_ctx)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    meta = idx.get_paged_mqa_logits_metadata(lens, BLOCK_KV, sms)
    out = idx.fp8_paged_mqa_logits(q, cache, w, lens, table, meta, max_ctx, clean_logits=True)
    want = ref.paged_mqa_logits(q, cache, w, lens, table, max_ctx, clean_logits=True)
    rows = batch * next_n
    last = lens.repeat_interleave(next_n) - next_n + torch.arange(rows, device="cuda") % next_n
    valid = torch.arange(out.shape[1], device="cuda")[None, :] <= last[:, None]
    diff = scored_diff(out, want, valid)
    print(f"paged B={batch} next_n={next_n} max_ctx={max_ctx} H={heads}: calc_diff {diff:.2e}")
    return diff < 1e-3


def main() -> int:
    torch.manual_seed(0)
    # NOTE: 70 and 33 queries are fewer query groups than SMs (the split prefill instance), 600 more (whole groups).
    ok = non_paged(70, 600, 64) & non_paged(33, 300, 32) & non_paged(600, 300, 64)
    ok &= paged(5, 1, 700, 64) & paged(3, 2, 500, 64)
    print("all results correct" if ok else "WRONG RESULTS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
