"""Host overhead per call: how long the CPU takes to check arguments, look up the config, build descriptors and
enqueue one FP8 GEMM (64 x 2112 x 7168), and (when dg.indexer is installed) one paged decode step (B = 64, 8192
context), its metadata and one prefill (2048 x 8192), with the GPU kept busy so that only host time is measured.

Method (same as the anchors): best of 5 loops of 200 back-to-back calls, divided by 200; a long device-side sleep is
queued first so the calls never wait for the GPU.
"""

from __future__ import annotations

import time

TITLE = "Host overhead per call (enqueue time, GPU busy)"
PRIORITY = 2  # run order of `dg bench` (lower first)


def _enqueue_us(torch, fn, calls: int = 200, loops: int = 5) -> float:
    best = float("inf")
    fn()
    torch.cuda.synchronize()
    for _ in range(loops):
        torch.cuda._sleep(400_000_000)  # ~0.2 s of device time: the queue never drains while we enqueue
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls * 1e6)
        torch.cuda.synchronize()
    return best


def run(ctx) -> list[dict]:
    import dg.core
    import torch

    m, n, k = 64, 2112, 7168
    a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
    sfa = torch.rand(k // 128, m, device="cuda").add_(0.5).t()  # MN-major, pitch m (m % 4 == 0)
    sfb = torch.rand((n + 127) // 128, k // 128, device="cuda").add_(0.5)
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    xb = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    wb = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    anchors = ctx.anchors.get("host_overhead_us", {})
    rows = [
        {"call": "dg.core.fp8_gemm_nt",
         "us_per_call": _enqueue_us(torch, lambda: dg.core.fp8_gemm_nt((a, sfa), (b, sfb), d)),
         "target_us": 8.0, "deepgemm_anchor_us": anchors.get("deepgemm_fp8_gemm_nt")},
        {"call": "torch.mm (BF16, cuBLAS)", "us_per_call": _enqueue_us(torch, lambda: torch.mm(xb, wb.t())),
         "target_us": None, "deepgemm_anchor_us": anchors.get("torch_mm")},
    ]
    rows += _indexer_rows(torch)
    return rows


def _indexer_rows(torch) -> list[dict]:
    try:
        import dg.indexer as idx
        from dg.indexer import reference as ref
    except ImportError:
        return []
    heads, dim, block_kv, batch, max_ctx = 64, 128, 64, 64, 8192
    lens = torch.full((batch,), max_ctx - 100, dtype=torch.int32, device="cuda")
    blocks = batch * (max_ctx // block_kv)
    table = torch.arange(blocks, dtype=torch.int32, device="cuda").view(batch, -1)
    values, scales = ref.quantize_per_token(torch.randn(blocks * block_kv, dim, device="cuda"))
    cache = ref.pack_paged_kv_cache(values.view(blocks, block_kv, dim), scales.view(blocks, -1))
    q = torch.randn(batch, 1, heads, dim, device="cuda").to(torch.float8_e4m3fn)
    w = torch.randn(batch, heads, device="cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    meta = idx.get_paged_mqa_logits_metadata(lens, block_kv, sms)
    seq, seq_kv = 2048, 8192
    q2 = torch.randn(seq, heads, dim, device="cuda").to(torch.float8_e4m3fn)
    k, k_scale = ref.quantize_per_token(torch.randn(seq_kv, dim, device="cuda"))
    w2 = torch.randn(seq, heads, device="cuda")
    ks = torch.zeros(seq, dtype=torch.int32, device="cuda")
    ke = torch.arange(seq, dtype=torch.int32, device="cuda") + 1 + (seq_kv - seq)
    calls = [
        ("dg.indexer.fp8_paged_mqa_logits (B = 64)",
         lambda: idx.fp8_paged_mqa_logits(q, cache, w, lens, table, meta, max_ctx)),
        ("dg.indexer.get_paged_mqa_logits_metadata (B = 64)",
         lambda: idx.get_paged_mqa_logits_metadata(lens, block_kv, sms)),
        ("dg.indexer.fp8_mqa_logits (2048 x 8192)", lambda: idx.fp8_mqa_logits(q2, (k, k_scale), w2, ks, ke)),
    ]
    return [{"call": name, "us_per_call": _enqueue_us(torch, fn, calls=100), "target_us": None,
             "deepgemm_anchor_us": None} for name, fn in calls]
