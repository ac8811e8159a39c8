"""dg.layout: one-pass FP8 casts and scale-factor transforms against the multi-pass torch path they replace.

Each row: the dg.layout kernel's median time (cold L2), its effective bandwidth (bytes read + bytes written, each
counted once, logical sizes without padding), that bandwidth as a share of the device-to-device copy bandwidth
measured in the same run ("% of copy": a 1 GiB copy), the time of a plain device-to-device copy moving the same
number of bytes (``dst.copy_(src)`` of half of them, read once and written once) under the same cold-L2 protocol
and the kernel's share of it ("% of same-size copy" = copy time / kernel time), and the time of the pure-torch
reference (dg.layout.reference, the DeepGEMM-style multi-pass path) on the same data.
NOTE: inputs of a few MB are latency-bound for the copy too (launch, DRAM round trips, tail), so the same-size copy
is the honest ceiling there; the 1 GiB copy is the ceiling for large inputs.
"host us/call" is the host time of one call (Python checks, allocation, launch) with the GPU running behind. NOTE:
each timed call follows an L2 flush (256 MiB zeroed, ~85 us on an H100) that hides the host time of the next call;
where host us/call exceeds the flush, the GPU waits for the launch after the start event and the row's "us" counts
part of the host time, i.e. the call is host-bound at that size (the kernel alone is faster).
Casts use a 16384 x 7168 BF16/FP32 activation and the DeepSeek-V3 weight shapes; transforms use the scale tensors
those casts produce (activations, MoE weights, k-grouped wgrad), plus larger ones where the DeepSeek tensors are
only a few MB (the scales of 65536 and 2^20 tokens, 256 MoE experts, 64 and 256 k-groups), so that bandwidth is
measurable.
"""

from __future__ import annotations

import time

TITLE = "dg.layout: FP8 casts and scale-factor transforms"
PRIORITY = 4  # run order of `dg bench` (lower first)

# DeepSeek-V3 weight shapes [N, K] (the dense GEMM catalogue) and MoE expert weights.
WEIGHT_SHAPES = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


_COPY_US: dict[int, float] = {}


def _same_size_copy_us(ctx, bytes_moved: int) -> float:
    """Cold-L2 time of ``dst.copy_(src)`` reading and writing ``bytes_moved / 2`` bytes each (memoised per size)."""
    if bytes_moved not in _COPY_US:
        torch = ctx.torch
        src = torch.empty(max(1, bytes_moved // 2), dtype=torch.uint8, device=ctx.device).random_()
        dst = torch.empty_like(src)
        _COPY_US[bytes_moved] = ctx.bench(lambda: dst.copy_(src), settle=False)
    return _COPY_US[bytes_moved]


def _host_us(ctx, fn, calls: int = 100) -> float:
    """Host time of one ``fn()`` in microseconds, the GPU left to run behind (nothing waits for it)."""
    torch = ctx.torch
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    us = (time.perf_counter() - start) / calls * 1e6
    torch.cuda.synchronize()
    return us


def _row(ctx, op, dtype, bytes_moved, fn, ref_fn, args, kwargs=None, ref_args=None):
    """Time ``fn(*args, **kwargs)`` and ``ref_fn(*ref_args)`` (default: the same positional args)."""
    kwargs = kwargs or {}
    ref_args = args if ref_args is None else ref_args
    # NOTE: no pause per case: these are short memory-bound kernels (the routine's own pause is enough).
    us = ctx.bench(lambda: fn(*args, **kwargs), settle=False)
    host_us = _host_us(ctx, lambda: fn(*args, **kwargs))
    ref_us = ctx.bench(lambda: ref_fn(*ref_args), reps=max(5, ctx.reps // 5), settle=False)
    copy_us = _same_size_copy_us(ctx, bytes_moved)
    gbs = bytes_moved / (us * 1e-6) / 1e9
    return {
        "op": op,
        "shape": "x".join(str(s) for s in args[0].shape),
        "dtype": dtype,
        "us": us,
        "GB/s": gbs,
        "% of copy": 100.0 * gbs / ctx.copy_bandwidth_gbs,
        "same-size copy us": copy_us,
        "% of same-size copy": 100.0 * copy_us / us,
        "host us/call": host_us,
        "torch ref us": ref_us,
        "speedup vs torch": ref_us / us,
    }


def _cast_rows(ctx, torch, L, reference):
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(16384, 7168, device="cuda", dtype=dtype)
        name = str(dtype).replace("torch.", "")
        for ue8m0, mn_major in ((False, False), (True, False), (False, True)):
            q, sf = L.per_token_cast_to_fp8(x, ue8m0, mn_major_sf=mn_major)
            label = "per_token_cast_to_fp8" + (" ue8m0" if ue8m0 else "") + (" mn_major_sf" if mn_major else "")
            rows.append(_row(ctx, label, name, _nbytes(x, q, sf), L.per_token_cast_to_fp8,
                             reference.per_token_cast_to_fp8, (x, ue8m0), {"mn_major_sf": mn_major}))
        for fn_name in ("per_block_cast_to_fp8", "per_channel_cast_to_fp8"):
            q, sf = getattr(L, fn_name)(x, False)
            rows.append(_row(ctx, fn_name, name, _nbytes(x, q, sf), getattr(L, fn_name),
                             getattr(reference, fn_name), (x, False)))
    for n, k in WEIGHT_SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        q, sf = L.per_block_cast_to_fp8(w, True)
        rows.append(_row(ctx, "per_block_cast_to_fp8 ue8m0 (weight)", "bfloat16", _nbytes(w, q, sf),
                         L.per_block_cast_to_fp8, reference.per_block_cast_to_fp8, (w, True)))
    # A 65536-token KV cache (host-bound at this size) and 2^20 tokens (256 MB, bandwidth-bound).
    for tokens in (65536, 1 << 20):
        kv = torch.randn(tokens, 128, device="cuda", dtype=torch.bfloat16)
        q, sf = L.per_custom_dims_cast_to_fp8(kv, (0,), False)
        rows.append(_row(ctx, "per_custom_dims_cast_to_fp8 dims=(0,)", "bfloat16", _nbytes(kv, q, sf),
                         L.per_custom_dims_cast_to_fp8, reference.per_custom_dims_cast_to_fp8, (kv, (0,), False)))
    return rows


def _transform_rows(ctx, torch, L, reference):
    rows = []
    # Activation scales of a 16384 x 7168 cast (K-major, as DeepGEMM's own helper returns them), of 65536 tokens,
    # of 2^20 tokens (235 MB: large enough for the copy itself to approach its 1 GiB bandwidth), and the masked MoE
    # layout [G, M_max, K / 128] with 32 local experts.
    for shape in ((16384, 56), (65536, 56), (1 << 20, 56), (32, 4096, 56)):
        sf = torch.rand(shape, device="cuda")
        out = L.get_mn_major_tma_aligned_tensor(sf)
        rows.append(_row(ctx, "get_mn_major_tma_aligned_tensor", "float32", _nbytes(sf, out),
                         L.get_mn_major_tma_aligned_tensor, reference.mn_major_tma_aligned, (sf,)))
        pow2 = torch.pow(2.0, torch.randint(-20, 5, shape, device="cuda").float())
        out = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(pow2)
        rows.append(_row(ctx, "get_mn_major_tma_aligned_packed_ue8m0_tensor", "float32", _nbytes(pow2, out),
                         L.get_mn_major_tma_aligned_packed_ue8m0_tensor,
                         reference.mn_major_tma_aligned_packed_ue8m0, (pow2,)))
    # SM100 rule 4: 128x128 weight scales of 32 local / 256 (all DeepSeek-V3) MoE experts [G, 4096, 7168]
    # broadcast to rows and packed; 1024 groups (235 MB out, not a DeepSeek shape) measures its bandwidth.
    n, k = 4096, 7168
    for g in (32, 256, 1024):
        sfb = torch.pow(2.0, torch.randint(-20, 5, (g, n // 128, k // 128), device="cuda").float())
        out = L.transform_sf_into_required_layout(sfb, n, k, (1, 128, 128), num_groups=g, arch=100)
        rows.append(_row(ctx, f"transform_sf_into_required_layout sm100 128x128 ({g}x{n}x{k} weights)", "float32",
                         _nbytes(sfb, out), L.transform_sf_into_required_layout,
                         reference.mn_major_tma_aligned_packed_ue8m0, (sfb, n, k, (1, 128, 128)),
                         {"num_groups": g, "arch": 100}, ref_args=(sfb, 128, n)))
    # k-grouped wgrad scales, MN = 7168: 16 experts of ~2048 tokens, 64 and 256 of ~4096 (bandwidth-measurable).
    for groups, tokens in ((16, 2048), (64, 4096), (256, 4096)):
        ks = [tokens + 128 * ((i * 5) % 7 - 3) for i in range(groups)]
        sfk = torch.pow(2.0, torch.randint(-20, 5, (sum(ks) // 128, 7168), device="cuda").float())
        ks_t = torch.tensor(ks, dtype=torch.int32, device="cuda")
        out = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sfk, ks_t, ks)
        rows.append(_row(ctx, f"get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor ({groups} groups)",
                         "float32", _nbytes(sfk, out, ks_t), L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor,
                         reference.k_grouped_packed_ue8m0, (sfk, ks_t, ks), ref_args=(sfk, ks)))
    return rows


def run(ctx) -> list[dict]:
    import dg.layout as L
    import torch
    from dg.layout import reference

    return _cast_rows(ctx, torch, L, reference) + _transform_rows(ctx, torch, L, reference)
