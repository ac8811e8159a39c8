"""sm90_fp8_gemm: dg.core.fp8_gemm_nt (1D2D recipe, BF16 out) on the 18 seed shapes, beside cuBLASLt and DeepGEMM.

Each row: our median time (cold L2, ``ctx.bench``), TFLOPS, GB/s (A + B + D + both scale tensors, each once), the
fraction of the roofline ``max(bytes / copy bandwidth, FLOPs / FP8 per-tensor cuBLAS rate)`` with both ceilings
taken from the anchors (the card's own measured numbers), cuBLASLt's FP8 GEMM through ``torch._scaled_mm`` timed in
the same run (blockwise 1x128/128x128 scales when this torch/CUDA offers them, else per-tensor: the "cuBLASLt path"
column says which), and DeepGEMM's time from the anchors file (same card type, other run).
"bound us" is what a kernel would take that moved its bytes at this run's copy bandwidth (or ran its FLOPs at the
FP8 rate) after paying the launch floor (a 16-byte torch fill timed the same way: cold L2, CUDA events);
"DeepGEMM / bound" is the largest speedup over DeepGEMM such a kernel could show. The summary under the table gives
the geometric means per M group.
Inputs are random normal BF16 quantised with 1x128 per-token scales (A) and 128x128 block scales (B); the scale
tensors are already in the layout the kernel requires, so no transform is timed.
"""

from __future__ import annotations

TITLE = "sm90_fp8_gemm: FP8 GEMM NT, 1D2D recipe, BF16 out"
PRIORITY = 0  # run order of `dg bench` (lower first)

SEED_MS = (64, 128, 4096)
SEED_NK = ((2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048))


def _quantise(torch, x, block_rows):
    """FP8 e4m3 values and FP32 scales of 1 x 128 (block_rows=1) or 128 x 128 blocks, row-major scales."""
    rows, cols = x.shape
    pr, pc = -(-rows // block_rows) * block_rows, -(-cols // 128) * 128
    xp = torch.zeros(pr, pc, device=x.device, dtype=torch.float32)
    xp[:rows, :cols] = x.float()
    blocks = xp.view(pr // block_rows, block_rows, pc // 128, 128)
    amax = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-4)
    sf = amax / 448.0
    q = (blocks / sf[:, None, :, None]).to(torch.float8_e4m3fn).view(pr, pc)[:rows, :cols].contiguous()
    return q, sf.contiguous()


def _mn_major(torch, sf):
    """Copy [mn, s] scales into the TMA-aligned MN-major layout: strides (1, align(mn, 4))."""
    mn, s = sf.shape
    pitch = -(-mn // 4) * 4
    out = torch.empty_strided((mn, s), (1, pitch), device=sf.device, dtype=sf.dtype)
    out.copy_(sf)
    return out


def _calc_diff(x, y) -> float:
    x, y = x.double(), y.double()
    denom = (x * x + y * y).sum().item()
    return 1.0 - 2.0 * (x * y).sum().item() / denom if denom > 0 else 0.0


def cublaslt_fn(torch, a, sfa_rowmajor, b, sfb, out_dtype, expect=None):
    """A callable timing cuBLASLt's FP8 GEMM through ``torch._scaled_mm``, and the label of the path it takes.

    First choice: the blockwise recipe (1 x 128 scales on A, 128 x 128 on B; CUDA >= 12.9, SM90). torch checks the
    scales against the operands as passed, ``a`` [M, K] and ``b.t()`` [K, N]:
      * scale_a [M, ceil(K/128)] FP32 with strides (1, M) (outer-dim-major);
      * scale_b [ceil(K/128), ceil(N/128)] FP32 whose transpose is row-major, i.e. ``sfb.t()`` of the row-major
        [ceil(N/128), ceil(K/128)] tensor; newer torch versions want that row pitch padded to a multiple of 4.
    The blockwise result must match ``expect`` (our output, calc_diff < 1e-3) or the layout was misread and the
    path is not used. Fallback: per-tensor scaled FP8 (unit scales): the same FLOPs and bytes, not the same math.
    Returns ``(fn, label)``; ``(None, reason)`` when neither path runs.
    """
    if not hasattr(torch, "_scaled_mm"):
        return None, "torch._scaled_mm missing"
    m, k = a.shape
    sk = -(-k // 128)
    sa = torch.empty_strided((m, sk), (1, m), device=a.device, dtype=torch.float32)
    sa.copy_(sfa_rowmajor)
    sb_dense = sfb.contiguous().t()  # [sk, ceil(N/128)], strides (1, sk)
    pitch = -(-sk // 4) * 4
    sb_pad = torch.zeros(sfb.shape[0], pitch, device=a.device, dtype=torch.float32)
    sb_pad[:, :sk] = sfb
    sb_pad = sb_pad[:, :sk].t()  # strides (1, pitch)
    errors = []
    for sb, name in ((sb_dense, "dense"), (sb_pad, "padded")):
        try:
            fn = lambda sb=sb: torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype)  # noqa: E731
            out = fn()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - a rejection means "this layout is not accepted here"
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        diff = _calc_diff(out.float(), expect.float()) if expect is not None else 0.0
        if diff > 1e-3:
            errors.append(f"{name}: ran but disagrees with dg (calc_diff {diff:.2e})")
            continue
        return fn, "blockwise 1x128/128x128"
    one = torch.ones((), device=a.device, dtype=torch.float32)
    try:
        fn = lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=out_dtype)  # noqa: E731
        fn()
        torch.cuda.synchronize()
        return fn, "per-tensor (blockwise unavailable)"
    except Exception as e:  # noqa: BLE001
        errors.append(f"per-tensor: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
        return None, "; ".join(errors)


def bound_us(nbytes: float, flops: float, floor_us: float, copy_gbs: float, fp8_tflops: float) -> float:
    """Launch floor plus the longer of moving the bytes at the copy bandwidth and the FLOPs at the FP8 rate."""
    return floor_us + max(nbytes / (copy_gbs * 1e3), flops / (fp8_tflops * 1e6))


def _geomean(values: list[float]) -> float | None:
    import math

    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary(rows: list[dict]) -> str:
    """Geometric means per M group: our speedups over DeepGEMM and cuBLASLt, and DeepGEMM / bound."""
    lines = ["| M group | shapes | vs DeepGEMM | vs cuBLASLt | DeepGEMM / bound | % of bound (geomean) |",
             "|---|---|---|---|---|---|"]
    for label, pick in (("M <= 128", lambda m: m <= 128), ("M = 4096", lambda m: m == 4096)):
        group = [r for r in rows if pick(r["M"])]
        if not group:
            continue
        cols = []
        for key in ("speedup vs DeepGEMM", "speedup vs cuBLASLt", "DeepGEMM / bound", "% of bound"):
            g = _geomean([r[key] for r in group if r.get(key)])
            cols.append("-" if g is None else (f"{g:.1f}" if key.startswith("%") else f"{g:.3f}"))
        lines.append(f"| {label} | {len(group)} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def run(ctx) -> list[dict]:
    import torch
    from dg import core

    anchors = {(r["m"], r["n"], r["k"]): r for r in ctx.anchors.get("fp8_gemm_1d2d", [])}
    ceilings = ctx.anchors.get("ceilings", {})
    copy_gbs = float(ceilings.get("copy_gbs", 3020))
    fp8_tflops = float(ceilings.get("fp8_per_tensor_tflops", 1386))
    run_copy_gbs = float(getattr(ctx, "copy_bandwidth_gbs", 0) or copy_gbs)
    floor_us = ctx.launch_floor_us()
    rows = []
    cublas_reason = None
    for m in SEED_MS:
        for n, k in SEED_NK:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            a, sfa = _quantise(torch, x, 1)
            b, sfb = _quantise(torch, w, 128)
            sfa_mn = _mn_major(torch, sfa)
            d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            fn = lambda a=a, sfa_mn=sfa_mn, b=b, sfb=sfb, d=d: core.fp8_gemm_nt((a, sfa_mn), (b, sfb), d)  # noqa: E731
            us = ctx.bench(fn)
            mhz = ctx.last_state.get("sm_clock_mhz")
            ref, cublas_kind = cublaslt_fn(torch, a, sfa, b, sfb, torch.bfloat16, expect=d)
            if ref is None and cublas_reason is None:
                cublas_reason = cublas_kind
            cublas_us = ctx.bench(ref) if ref is not None else None
            cublas_mhz = ctx.last_state.get("sm_clock_mhz") if ref is not None else None
            flops = 2.0 * m * n * k
            nbytes = a.numel() + b.numel() + d.numel() * 2 + sfa.numel() * 4 + sfb.numel() * 4
            roofline_us = max(nbytes / (copy_gbs * 1e3), flops / (fp8_tflops * 1e6))
            bound = bound_us(nbytes, flops, floor_us, run_copy_gbs, fp8_tflops)
            anchor = anchors.get((m, n, k), {})
            dg_us = anchor.get("deepgemm_us")
            rows.append(
                {
                    "M": m,
                    "N": n,
                    "K": k,
                    "us": us,
                    "TFLOPS": flops / us / 1e6,
                    "GB/s": nbytes / us / 1e3,
                    "% of roofline": 100.0 * roofline_us / us,
                    "cuBLASLt us": cublas_us,
                    "cuBLASLt path": cublas_kind if ref is not None else "unavailable",
                    "speedup vs cuBLASLt": (cublas_us / us) if cublas_us else None,
                    "DeepGEMM us (anchor)": dg_us,
                    "speedup vs DeepGEMM": (dg_us / us) if dg_us else None,
                    "MHz after dg": mhz,
                    "MHz after cuBLASLt": cublas_mhz,
                    "launch floor us": floor_us,
                    "bound us": bound,
                    "% of bound": 100.0 * bound / us,
                    "DeepGEMM / bound": (dg_us / bound) if dg_us else None,
                }
            )
    if cublas_reason:
        print(f"sm90_fp8_gemm: cuBLASLt column incomplete: {cublas_reason}")
    return rows
