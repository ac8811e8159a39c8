"""Runs fp8_gemm_nt on nine shapes (one of each kernel path: small-M 1D2D, multicast 1D2D with a long K, small-M
1D2D with K ways, 1D1D accumulate, and through DG_SM90_FP8_FORCE a 176-wide single-pass tile over three SFB blocks,
a multicast two-half 256-wide tile and a 192-wide single-pass tile at both of its column offsets with a partial
last N tile, also with 5 stages and its output through a ring of 32-column chunks; a split tail over every tile
with a partial last K block, whose splits meet in the split-K fix-up) for compute-sanitizer, e.g.
`compute-sanitizer --tool memcheck python packages/dg-core/tests/sanitize_fp8_gemm.py` (and racecheck; shape
indices as arguments run only those).
Exits non-zero if a result is wrong."""

from __future__ import annotations

import os
import sys

import dg.core
import torch


def quantised(rows: int, k: int, block_scales: bool):
    x = torch.randn(rows, k, device="cuda")
    kb = (k + 127) // 128  # a partial last K block has a scale of its own
    if block_scales:
        sf = torch.rand((rows + 127) // 128, kb, device="cuda").add_(0.5)
        full = sf.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :k]
    else:
        pitch = (rows + 3) // 4 * 4
        sf = torch.rand(kb, pitch, device="cuda").add_(0.5)[:, :rows].t()
        full = sf.repeat_interleave(128, 1)[:, :k]
    q = (x / full).to(torch.float8_e4m3fn)
    return q, sf, q.double() * full.double()


def main() -> int:
    torch.manual_seed(0)
    bad = 0
    shapes = [(129, 576, 256, (1, 128, 128), ""), (512, 1056, 12288, (1, 128, 128), ""),
              (64, 256, 2048, (1, 128, 128), ""), (256, 384, 384, (1, 1, 128), ""),
              (256, 1000, 1024, (1, 128, 128), "176,0,1"), (512, 1056, 1536, (1, 128, 128), "256,0,2"),
              (512, 1000, 1536, (1, 128, 128), "192,0,1"), (384, 1000, 4096, (1, 128, 128), "192,5,1"),
              (640, 1000, 1040, (1, 128, 128), "0,0,0,0,0,0,0,3")]
    # Optional arguments: indices of the shapes to run (default: all), e.g. `... sanitize_fp8_gemm.py 8`.
    picked = [int(i) for i in sys.argv[1:]] or range(len(shapes))
    for m, n, k, recipe, force in (shapes[i] for i in picked):
        os.environ["DG_SM90_FP8_FORCE"] = force
        a, sfa, a_ref = quantised(m, k, False)
        b, sfb, b_ref = quantised(n, k, recipe[1] == 128)
        ref = a_ref @ b_ref.t()
        if recipe[1] == 128:
            d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
            dg.core.fp8_gemm_nt((a, sfa), (b, sfb), d)
        else:
            c = torch.randn(m, n, device="cuda")
            d = c.clone()
            dg.core.fp8_gemm_nt((a, sfa), (b, sfb), d, c=d, recipe=recipe)
            ref = ref + c.double()
        torch.cuda.synchronize()
        out = d.double()
        diff = 1 - 2 * (out * ref).sum() / (out * out + ref * ref).sum()
        ok = not out.isnan().any().item() and diff.item() < 1e-3
        verdict = "ok" if ok else "WRONG"
        print(f"{m}x{n}x{k} recipe={recipe} force={force or '-'}: calc_diff={diff.item():.2e} {verdict}")
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
