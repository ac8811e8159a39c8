"""sm90_fp8_gemm: dg.core.fp8_gemm_nt (1D2D recipe, BF16 out) on the 18 seed shapes, beside cuBLASLt and DeepGEMM.

Each row: our median time (cold L2, ``ctx.bench``), TFLOPS, GB/s (A + B + D + both scale tensors, each once), the
fraction of the roofline ``max(bytes / copy bandwidth, FLOPs / FP8 per-tensor cuBLAS rate)`` with both ceilings
taken from the anchors (the card's own measured numbers), cuBLASLt's blockwise-scaled FP8 GEMM through
``torch._scaled_mm`` timed in the same run, and DeepGEMM's time from the anchors file (same card type, other run).
Inputs are random normal BF16 quantised with 1x128 per-token scales (A) and 128x128 block scales (B); the scale
tensors are already in the layout the kernel requires, so no transform is timed.
"""

from __future__ import annotations

TITLE = "sm90_fp8_gemm: FP8 GEMM NT, 1D2D recipe, BF16 out"

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


def _cublaslt_fn(torch, a, sfa_rowmajor, b, sfb, out_dtype):
    """torch._scaled_mm's blockwise path (cuBLASLt), or None when this torch/cuBLAS does not offer it.

    NOTE: torch versions differ in the scale layouts they accept for the 1x128 / 128x128 recipe; the first
    combination that runs is timed.
    """
    sa_options = (sfa_rowmajor.t().contiguous().t(), sfa_rowmajor)  # outer-dim-major first, then row-major
    sb_options = (sfb, sfb.t().contiguous().t(), sfb.t().contiguous())
    for sa in sa_options:
        for sb in sb_options:
            try:
                fn = lambda sa=sa, sb=sb: torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype)  # noqa: E731
                fn()
                torch.cuda.synchronize()
                return fn
            except Exception:  # noqa: BLE001 - any rejection means "this layout is not accepted here"
                continue
    return None


def run(ctx) -> list[dict]:
    import torch
    from dg import core

    anchors = {(r["m"], r["n"], r["k"]): r for r in ctx.anchors.get("fp8_gemm_1d2d", [])}
    ceilings = ctx.anchors.get("ceilings", {})
    copy_gbs = float(ceilings.get("copy_gbs", 3020))
    fp8_tflops = float(ceilings.get("fp8_per_tensor_tflops", 1386))
    rows = []
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
            ref = _cublaslt_fn(torch, a, sfa, b, sfb, torch.bfloat16)
            cublas_us = ctx.bench(ref) if ref is not None else None
            flops = 2.0 * m * n * k
            nbytes = a.numel() + b.numel() + d.numel() * 2 + sfa.numel() * 4 + sfb.numel() * 4
            roofline_us = max(nbytes / (copy_gbs * 1e3), flops / (fp8_tflops * 1e6))
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
                    "speedup vs cuBLASLt": (cublas_us / us) if cublas_us else None,
                    "DeepGEMM us (anchor)": dg_us,
                    "speedup vs DeepGEMM": (dg_us / us) if dg_us else None,
                }
            )
    return rows
