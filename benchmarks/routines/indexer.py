"""Benchmark routine of the lightning-indexer family: fp8_mqa_logits, fp8_paged_mqa_logits and the metadata.

Cases and peer times come from the H100 anchors (64 heads, head_dim 128): non-paged with causal ranges
ks[i] = 0, ke[i] = i + 1 + (seq_len_kv - seq_len); paged with block_kv 64 and context lengths uniform in
[max/2, max]. FLOPs = 2 * H * D * (scored positions); bytes = every input once plus the scored logits written.
The non-paged call is timed with clean_logits=True (the -inf fill is fused, so its writes count in "bytes");
the paged call both without cleaning (DeepGEMM's anchor times its main kernel alone) and with. The metadata kernel is
a one-CTA launch-bound kernel: "launch floor us" times a 16-byte torch fill the same way (cold L2, CUDA events), the
floor any single kernel launch pays in this harness.

The paged context lengths are random, so one run's work differs from another's and from the anchor's (the sum of
32 lengths uniform in [32768, 65536] moves by ~3% between draws). The paged speedup is therefore a throughput ratio,
our TFLOPS over DeepGEMM's TFLOPS on its own draw (the anchors list both), not a ratio of times; the lengths come
from a fixed seed per case, so our own runs stay comparable.
"""

from __future__ import annotations

from typing import Any

TITLE = "Lightning-indexer MQA logits (sm90_fp8_mqa_logits, sm90_fp8_paged_mqa_logits)"
PRIORITY = 1  # run order of `dg bench` (lower first)

HEADS, HEAD_DIM, BLOCK_KV = 64, 128, 64

DEFAULT_MQA = [(2048, 8192, 236.0), (4096, 16384, 963.0), (8192, 65536, 7906.0)]
DEFAULT_PAGED = [(64, 1, 8192, 31.9, 206.0), (128, 2, 16384, 92.6, 558.0), (32, 1, 65536, 84.4, 287.0)]


def _anchor_lists(ctx) -> tuple[list, list, Any]:
    anchors = getattr(ctx, "anchors", {}) or {}
    mqa = [(a["seq_len"], a["seq_len_kv"], a.get("deepgemm_us")) for a in anchors.get("mqa_logits", [])]
    paged = [(a["batch"], a["next_n"], a["max_context"], a.get("deepgemm_us"), a.get("deepgemm_tflops"))
             for a in anchors.get("paged_mqa_logits", [])]
    return mqa or DEFAULT_MQA, paged or DEFAULT_PAGED, anchors.get("paged_mqa_metadata_us")


def _mqa_case(ctx, seq_len: int, seq_len_kv: int, peer_us: float | None) -> dict:
    import dg.indexer as idx
    import torch
    from dg.indexer import reference as ref

    q = torch.randn(seq_len, HEADS, HEAD_DIM, device="cuda").to(torch.float8_e4m3fn)
    k, k_scale = ref.quantize_per_token(torch.randn(seq_len_kv, HEAD_DIM, device="cuda"))
    w = torch.randn(seq_len, HEADS, device="cuda")
    ks = torch.zeros(seq_len, dtype=torch.int32, device="cuda")
    ke = torch.arange(seq_len, dtype=torch.int32, device="cuda") + 1 + (seq_len_kv - seq_len)
    scored = int((ke.clamp(max=seq_len_kv) - ks).clamp(min=0).sum())
    flops = 2 * HEADS * HEAD_DIM * scored
    in_bytes = q.numel() + k.numel() + 4 * (k_scale.numel() + w.numel() + ks.numel() + ke.numel())
    out_bytes = 4 * seq_len * seq_len_kv  # every position: scored logits and the fused -inf fill
    us = ctx.bench(lambda: idx.fp8_mqa_logits(q, (k, k_scale), w, ks, ke, clean_logits=True))
    us_raw = ctx.bench(lambda: idx.fp8_mqa_logits(q, (k, k_scale), w, ks, ke, clean_logits=False))
    return {
        "op": "fp8_mqa_logits",
        "seq_len": seq_len,
        "seq_len_kv": seq_len_kv,
        "us (clean)": us,
        "TFLOPS (clean)": flops / us / 1e6,
        "GB/s (clean)": (in_bytes + out_bytes) / us / 1e3,
        "us (no clean)": us_raw,
        "TFLOPS (no clean)": flops / us_raw / 1e6,
        "DeepGEMM us": peer_us,
        "DeepGEMM TFLOPS": flops / peer_us / 1e6 if peer_us else None,
        "speedup vs DeepGEMM (clean)": peer_us / us if peer_us else None,
    }


def _paged_case(ctx, batch: int, next_n: int, max_ctx: int, peer_us: float | None, peer_tflops: float | None,
                meta_peer) -> dict:
    import dg.indexer as idx
    import torch
    from dg.indexer import reference as ref

    sms = ctx.sm_count
    gen = torch.Generator(device="cuda").manual_seed(batch * 100003 + next_n * 1009 + max_ctx)
    lens = torch.randint(max_ctx // 2, max_ctx + 1, (batch,), dtype=torch.int32, device="cuda", generator=gen)
    used = ((lens + BLOCK_KV - 1) // BLOCK_KV).tolist()
    num_blocks = sum(used)
    width = (max_ctx + BLOCK_KV - 1) // BLOCK_KV
    perm = torch.randperm(num_blocks, device="cuda").int()
    table = torch.zeros(batch, width, dtype=torch.int32, device="cuda")
    at = 0
    for b, n in enumerate(used):
        table[b, :n] = perm[at:at + n]
        at += n
    values, scales = ref.quantize_per_token(torch.randn(num_blocks * BLOCK_KV, HEAD_DIM, device="cuda"))
    cache = ref.pack_paged_kv_cache(values.view(num_blocks, BLOCK_KV, HEAD_DIM), scales.view(num_blocks, -1))
    del values, scales
    q = torch.randn(batch, next_n, HEADS, HEAD_DIM, device="cuda").to(torch.float8_e4m3fn)
    w = torch.randn(batch * next_n, HEADS, device="cuda")
    meta = idx.get_paged_mqa_logits_metadata(lens, BLOCK_KV, sms)

    sum_lens = int(lens.sum())
    flops = 2 * sum_lens * next_n * HEADS * HEAD_DIM
    in_bytes = (q.numel() + 4 * (w.numel() + lens.numel()) + sum_lens * (HEAD_DIM + 4)
                + 4 * ((sum_lens + BLOCK_KV - 1) // BLOCK_KV))
    out_bytes = 4 * sum_lens * next_n
    us = ctx.bench(lambda: idx.fp8_paged_mqa_logits(q, cache, w, lens, table, meta, max_ctx, clean_logits=False))
    us_clean = ctx.bench(lambda: idx.fp8_paged_mqa_logits(q, cache, w, lens, table, meta, max_ctx,
                                                           clean_logits=True))
    # NOTE: no idle pause before the two launch-bound one-CTA kernels: they draw no power worth settling, and after a
    # pause their few microseconds of warm-up would not bring the clocks back up.
    meta_us = ctx.bench(lambda: idx.get_paged_mqa_logits_metadata(lens, BLOCK_KV, sms), settle=False)
    floor_us = ctx.launch_floor_us()
    gbs = (in_bytes + out_bytes) / us / 1e3
    return {
        "op": "fp8_paged_mqa_logits",
        "batch": batch,
        "next_n": next_n,
        "max_context": max_ctx,
        "us": us,
        "TFLOPS": flops / us / 1e6,
        "GB/s": gbs,
        "% of copy bandwidth": 100 * gbs / ctx.copy_bandwidth_gbs,
        "us (clean)": us_clean,
        "DeepGEMM us": peer_us,
        # DeepGEMM's TFLOPS on its own draw of lengths (anchor); without it, our work over its time
        "DeepGEMM TFLOPS": peer_tflops or (flops / peer_us / 1e6 if peer_us else None),
        "speedup vs DeepGEMM": (flops / us / 1e6 / peer_tflops if peer_tflops
                                else (peer_us / us if peer_us else None)),
        "metadata us": meta_us,
        "DeepGEMM metadata us": "-".join(str(x) for x in meta_peer) if meta_peer else None,
        "launch floor us": floor_us,
    }


def run(ctx) -> list[dict]:
    import torch

    mqa_cases, paged_cases, meta_peer = _anchor_lists(ctx)
    rows = []
    for seq_len, seq_len_kv, peer_us in mqa_cases:
        rows.append(_mqa_case(ctx, seq_len, seq_len_kv, peer_us))
        torch.cuda.empty_cache()  # the 8192 x 65536 case alone holds a 2 GiB output
    for batch, next_n, max_ctx, peer_us, peer_tflops in paged_cases:
        rows.append(_paged_case(ctx, batch, next_n, max_ctx, peer_us, peer_tflops, meta_peer))
        torch.cuda.empty_cache()
    return rows
