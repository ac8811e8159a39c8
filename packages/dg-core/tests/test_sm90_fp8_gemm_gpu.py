"""GPU correctness of the SM90 FP8 GEMM kernels through dg.core.fp8_gemm_nt / fp8_gemm_nt_skip_head_mid.

Every case: fresh random data, output poisoned with NaN before the call, a float64 reference that dequantises with
the same recipe (spec section 3.8), the global metric calc_diff < 1e-3 (spec section 16) and a per-128x128-tile
check (a never-written tile of a large output would still pass the global metric). Shapes: the 18 seed shapes, the
adversarial M / N / K edges, 1D1D accumulation with `c` distinct from `d` and with `c is d`, the head-split form
and replay from a CUDA graph.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.sm90]

SEED_NK = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]
SEED = [(m, n, k) for m in (64, 128, 4096) for n, k in SEED_NK]
EDGE = [(m, n, k) for m in (1, 7, 63, 65, 129, 1000, 4097) for n in (2112, 576) for k in (128, 256, 7168)]
# K with a partial last 128-block and N that is neither a multiple of 16 nor of the tile width.
EDGE += [(65, 1000, 1040), (4097, 1000, 1040), (1, 8, 16)]


def _core():
    from dg import core

    return core


def quantise(x: torch.Tensor, block_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 e4m3 values and row-major FP32 scales of (block_rows x 128) blocks."""
    rows, cols = x.shape
    pr, pc = -(-rows // block_rows) * block_rows, -(-cols // 128) * 128
    xp = torch.zeros(pr, pc, device=x.device, dtype=torch.float32)
    xp[:rows, :cols] = x.float()
    blocks = xp.view(pr // block_rows, block_rows, pc // 128, 128)
    sf = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-4) / 448.0
    q = (blocks / sf[:, None, :, None]).to(torch.float8_e4m3fn).view(pr, pc)[:rows, :cols].contiguous()
    return q, sf.contiguous()


def mn_major(sf: torch.Tensor) -> torch.Tensor:
    """The TMA-aligned MN-major layout the kernels require: strides (1, align(mn, 4))."""
    mn, s = sf.shape
    out = torch.empty_strided((mn, s), (1, -(-mn // 4) * 4), device=sf.device, dtype=sf.dtype)
    out.copy_(sf)
    return out


def dequantise(q: torch.Tensor, sf: torch.Tensor, block_rows: int) -> torch.Tensor:
    rows, cols = q.shape
    s = sf.double().repeat_interleave(block_rows, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
    return q.double() * s


def calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double(), y.double()
    denom = (x * x + y * y).sum()
    return float(1 - 2 * (x * y).sum() / denom) if denom > 0 else 0.0


def _tile_max(x: torch.Tensor) -> torch.Tensor:
    """The largest element of every 128 x 128 tile of a non-negative 2-D tensor (edge tiles zero-padded)."""
    m, n = x.shape
    x = torch.nn.functional.pad(x, (0, -n % 128, 0, -m % 128))
    return x.view(x.shape[0] // 128, 128, x.shape[1] // 128, 128).amax(dim=(1, 3))


def check(out: torch.Tensor, ref: torch.Tensor, what: str) -> float:
    """Asserts the output against the float64 reference; returns calc_diff."""
    assert not torch.isnan(out).any(), f"{what}: NaN in the output (an element was never written)"
    diff = calc_diff(out, ref)
    assert diff < 1e-3, f"{what}: calc_diff {diff:.3e}"
    err, mag = _tile_max((out.double() - ref).abs()), _tile_max(ref.abs())
    bad = (err > 1e-2 * mag + 1e-6).nonzero()
    if len(bad) > 0:
        ti, tj = (int(v) for v in bad[0])
        e, r = float(err[ti, tj]), float(mag[ti, tj])
        raise AssertionError(f"{what}: tile ({ti * 128}, {tj * 128}) error {e:.3e} vs max |ref| {r:.3e}")
    return diff


def make_1d2d(m: int, n: int, k: int):
    a, sfa = quantise(torch.randn(m, k, device="cuda"), 1)
    b, sfb = quantise(torch.randn(n, k, device="cuda"), 128)
    ref = dequantise(a, sfa, 1) @ dequantise(b, sfb, 128).T
    return (a, mn_major(sfa)), (b, sfb), ref


@pytest.mark.parametrize("m,n,k", SEED + EDGE, ids=[f"{m}x{n}x{k}" for m, n, k in SEED + EDGE])
def test_fp8_gemm_nt_1d2d(m, n, k):
    a, b, ref = make_1d2d(m, n, k)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    _core().fp8_gemm_nt(a, b, d)
    torch.cuda.synchronize()
    check(d, ref, f"1d2d {m}x{n}x{k}")


# Forced wide tiles (DG_SM90_FP8_FORCE): 176 (single pass over up to three SFB blocks, one promotion per column
# offset), 192 (single pass, tiles at column offsets 0 and 64 of an SFB block; with 5 stages its output goes through a
# ring of 32-column chunks) and 256 (two halves), each unicast and with B multicast to a cluster of 2; N with a
# partial last tile, K with a partial last block.
@pytest.mark.parametrize("force", ["176,0,1", "176,0,2", "192,0,1", "192,0,2", "192,5,1", "256,0,1", "256,0,2"])
@pytest.mark.parametrize("m,n,k", [(512, 2112, 1536), (256, 1000, 1040)])
def test_fp8_gemm_nt_1d2d_forced_wide_tiles(monkeypatch, m, n, k, force):
    monkeypatch.setenv("DG_SM90_FP8_FORCE", force)
    a, b, ref = make_1d2d(m, n, k)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    _core().fp8_gemm_nt(a, b, d)
    torch.cuda.synchronize()
    check(d, ref, f"1d2d {m}x{n}x{k} forced {force}")


# Split tail (heuristics choose_tail_split): the tiles of the last, partial wave are cut into S K ranges each, which
# meet in the split-K fix-up through the stream's workspace. The model's tail (8192x2112x7168: 44 tiles cut 3 ways),
# and forced tails on ragged shapes (partial M / N tiles, a partial last K block, every tile in the tail, several
# rounds of splits) and on a forced tile; each launched three times, checked every time (a launch must leave the
# counters zero for the next).
@pytest.mark.parametrize("force", ["", "0,0,0,0,0,0,0,2", "0,0,0,0,0,0,0,5", "128,0,1,0,0,0,0,3"])
@pytest.mark.parametrize("m,n,k", [(8192, 2112, 7168), (4097, 2112, 2064), (2049, 576, 7168), (640, 1000, 1040)])
def test_fp8_gemm_nt_1d2d_split_tail(monkeypatch, m, n, k, force):
    monkeypatch.setenv("DG_SM90_FP8_FORCE", force)
    a, b, ref = make_1d2d(m, n, k)
    d = torch.empty((m, n), device="cuda", dtype=torch.bfloat16)
    for i in range(3):
        d.fill_(float("nan"))
        _core().fp8_gemm_nt(a, b, d)
        torch.cuda.synchronize()
        check(d, ref, f"split tail {m}x{n}x{k} force {force or '-'} launch {i}")


def test_fp8_gemm_nt_split_tail_streams_and_growth(monkeypatch):
    # Two streams at once (each has its own workspace), then the same stream with a larger tail (its workspace
    # grows; the old one is freed behind the launches queued before), then the smaller one again.
    core = _core()
    small = (8192, 2112, 7168)  # the model's tail: 44 tiles x 3 splits
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    cases = [make_1d2d(*small), make_1d2d(*small)]
    outs = [torch.full(small[:2], float("nan"), device="cuda", dtype=torch.bfloat16) for _ in cases]
    for _ in range(2):
        for s, (a, b, _), d in zip(streams, cases, outs, strict=True):
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                d.fill_(float("nan"))
                core.fp8_gemm_nt(a, b, d)
        torch.cuda.synchronize()
        for (_, _, ref), d in zip(cases, outs, strict=True):
            check(d, ref, "split tail on two streams")
    with torch.cuda.stream(streams[0]):
        # 4096x2112x7168 forced to 6 splits: 88 tiles x 6 slots (52 MB, under the 64 MiB cap), 4x the model's.
        for shape, force in ((small, ""), ((4096, 2112, 7168), "0,0,0,0,0,0,0,6"), (small, "")):
            monkeypatch.setenv("DG_SM90_FP8_FORCE", force)
            a, b, ref = make_1d2d(*shape)
            d = torch.full(shape[:2], float("nan"), device="cuda", dtype=torch.bfloat16)
            core.fp8_gemm_nt(a, b, d)
            streams[0].synchronize()
            check(d, ref, f"split tail, workspace growth {shape} {force or '-'}")
    # Releasing frees both streams' buffers (each at least the model's 44 x 3 slots of 128 x 192 FP32), once; the
    # next tail allocates a new one.
    monkeypatch.setenv("DG_SM90_FP8_FORCE", "")
    assert core.release_workspaces() >= 2 * 44 * 3 * 128 * 192 * 4
    assert core.release_workspaces() == 0
    a, b, ref = cases[0]
    d = torch.full(small[:2], float("nan"), device="cuda", dtype=torch.bfloat16)
    with torch.cuda.stream(streams[1]):
        core.fp8_gemm_nt(a, b, d)
    torch.cuda.synchronize()
    check(d, ref, "split tail after release_workspaces")


@pytest.mark.parametrize(
    "m,n,k",
    [
        (2112, 4096, 4096),
        (7168, 4096, 2048),
        (129, 2112, 7168),
        (65, 576, 7168),
        (4097, 576, 256),
        (64, 2112, 128),
        (129, 1000, 1040),
    ],
)
@pytest.mark.parametrize("mode", ["c_distinct", "c_is_d", "no_c"])
def test_fp8_gemm_nt_1d1d_accumulate(m, n, k, mode):
    a, sfa = quantise(torch.randn(m, k, device="cuda"), 1)
    b, sfb = quantise(torch.randn(n, k, device="cuda"), 1)
    prod = dequantise(a, sfa, 1) @ dequantise(b, sfb, 1).T
    c = torch.randn(m, n, device="cuda") * 32
    c_before = c.clone()
    if mode == "c_is_d":
        d = c
    else:
        d = torch.full((m, n), float("nan"), device="cuda")
    _core().fp8_gemm_nt((a, mn_major(sfa)), (b, mn_major(sfb)), d, c=None if mode == "no_c" else c, recipe=(1, 1, 128))
    torch.cuda.synchronize()
    ref = prod + (0 if mode == "no_c" else c_before.double())
    check(d, ref, f"1d1d {mode} {m}x{n}x{k}")
    if mode == "c_distinct":
        assert torch.equal(c, c_before), "a distinct 'c' must not be modified"


@pytest.mark.parametrize("m,left,mid,right,heads,k", [(256, 128, 64, 128, 16, 1536), (65, 64, 128, 64, 8, 7168)])
def test_fp8_gemm_nt_skip_head_mid(m, left, mid, right, heads, k):
    n = heads * (left + right)
    a, b, ref = make_1d2d(m, n, k)
    d = torch.full((m, n + heads * mid), float("nan"), device="cuda", dtype=torch.bfloat16)
    _core().fp8_gemm_nt_skip_head_mid(a, b, d, (left, mid, right))
    torch.cuda.synchronize()
    cols = torch.arange(n, device="cuda")
    out_cols = cols + ((cols + right) // (left + right)) * mid
    check(d[:, out_cols], ref, "skip_head_mid")
    gap = torch.ones(n + heads * mid, dtype=torch.bool, device="cuda")
    gap[out_cols] = False
    assert torch.isnan(d[:, gap]).all(), "the 'mid' gap columns must keep their previous contents"


# 8192x2112x7168 runs a split tail eagerly; a captured launch runs every tile whole (no workspace in a graph).
@pytest.mark.parametrize("m,n,k", [(64, 2112, 7168), (4096, 4096, 1536), (8192, 2112, 7168)])
def test_fp8_gemm_nt_cuda_graph_replay(m, n, k):
    a, b, _ = make_1d2d(m, n, k)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    core = _core()
    core.fp8_gemm_nt(a, b, d)  # compile and load outside the capture
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        core.fp8_gemm_nt(a, b, d)
    torch.cuda.current_stream().wait_stream(stream)
    for _ in range(2):
        a2, b2, ref = make_1d2d(m, n, k)
        a[0].copy_(a2[0]), a[1].copy_(a2[1]), b[0].copy_(b2[0]), b[1].copy_(b2[1])
        d.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(d, ref, f"graph replay {m}x{n}x{k}")


def test_fp8_gemm_nt_empty_m_is_a_no_op():
    a, b, _ = make_1d2d(1, 576, 256)
    a0 = (a[0][:0], mn_major(a[1][:0]))
    d = torch.empty(0, 576, device="cuda", dtype=torch.bfloat16)
    _core().fp8_gemm_nt(a0, b, d)
    torch.cuda.synchronize()
