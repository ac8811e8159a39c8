"""dg.layout: one-pass FP8 casts and scale-factor transforms against the multi-pass torch path they replace.

Each row: the dg.layout kernel's median time (cold L2), its effective bandwidth (bytes read + bytes written, each
counted once, logical sizes without padding), that bandwidth as a share of the device-to-device copy bandwidth
measured in the same run, and the time of the pure-torch reference (dg.layout.reference, the DeepGEMM-style
multi-pass path) on the same data. Casts use a 16384 x 7168 BF16/FP32 activation and the DeepSeek-V3 weight
shapes; transforms use the scale tensors those casts produce (activations, MoE weights, k-grouped wgrad).
NOTE: the scale tensors are small (a few MB at most), so the transforms are launch-latency bound and will not
reach copy bandwidth; the casts are the bandwidth-bound kernels the 80% target applies to.
"""

from __future__ import annotations

TITLE = "dg.layout: FP8 casts and scale-factor transforms"
PRIORITY = 4  # run order of `dg bench` (lower first)

# DeepSeek-V3 weight shapes [N, K] (the dense GEMM catalogue) and MoE expert weights.
WEIGHT_SHAPES = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _row(ctx, op, dtype, bytes_moved, fn, ref_fn, args, kwargs=None, ref_args=None):
    """Time ``fn(*args, **kwargs)`` and ``ref_fn(*ref_args)`` (default: the same positional args)."""
    kwargs = kwargs or {}
    ref_args = args if ref_args is None else ref_args
    us = ctx.bench(lambda: fn(*args, **kwargs))
    ref_us = ctx.bench(lambda: ref_fn(*ref_args), reps=max(5, ctx.reps // 5))
    gbs = bytes_moved / (us * 1e-6) / 1e9
    return {
        "op": op,
        "shape": "x".join(str(s) for s in args[0].shape),
        "dtype": dtype,
        "us": us,
        "GB/s": gbs,
        "% of copy": 100.0 * gbs / ctx.copy_bandwidth_gbs,
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
    kv = torch.randn(65536, 128, device="cuda", dtype=torch.bfloat16)
    q, sf = L.per_custom_dims_cast_to_fp8(kv, (0,), False)
    rows.append(_row(ctx, "per_custom_dims_cast_to_fp8 dims=(0,)", "bfloat16", _nbytes(kv, q, sf),
                     L.per_custom_dims_cast_to_fp8, reference.per_custom_dims_cast_to_fp8, (kv, (0,), False)))
    return rows


def _transform_rows(ctx, torch, L, reference):
    rows = []
    # Activation scales of a 16384 x 7168 cast (K-major, as DeepGEMM's own helper returns them), and the masked
    # MoE layout [G, M_max, K / 128] with 32 local experts.
    for shape in ((16384, 56), (32, 4096, 56)):
        sf = torch.rand(shape, device="cuda")
        out = L.get_mn_major_tma_aligned_tensor(sf)
        rows.append(_row(ctx, "get_mn_major_tma_aligned_tensor", "float32", _nbytes(sf, out),
                         L.get_mn_major_tma_aligned_tensor, reference.mn_major_tma_aligned, (sf,)))
        pow2 = torch.pow(2.0, torch.randint(-20, 5, shape, device="cuda").float())
        out = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(pow2)
        rows.append(_row(ctx, "get_mn_major_tma_aligned_packed_ue8m0_tensor", "float32", _nbytes(pow2, out),
                         L.get_mn_major_tma_aligned_packed_ue8m0_tensor,
                         reference.mn_major_tma_aligned_packed_ue8m0, (pow2,)))
    # SM100 rule 4: 128x128 weight scales of 32 MoE experts [32, 4096, 7168] broadcast to rows and packed.
    g, n, k = 32, 4096, 7168
    sfb = torch.pow(2.0, torch.randint(-20, 5, (g, n // 128, k // 128), device="cuda").float())
    out = L.transform_sf_into_required_layout(sfb, n, k, (1, 128, 128), num_groups=g, arch=100)
    rows.append(_row(ctx, f"transform_sf_into_required_layout sm100 128x128 ({g}x{n}x{k} weights)", "float32",
                     _nbytes(sfb, out), L.transform_sf_into_required_layout,
                     reference.mn_major_tma_aligned_packed_ue8m0, (sfb, n, k, (1, 128, 128)),
                     {"num_groups": g, "arch": 100}, ref_args=(sfb, 128, n)))
    # k-grouped wgrad scales: 16 experts, ~2048 tokens each, MN = 7168.
    ks = [2048 + 128 * ((i * 5) % 7 - 3) for i in range(16)]
    sfk = torch.pow(2.0, torch.randint(-20, 5, (sum(ks) // 128, 7168), device="cuda").float())
    ks_t = torch.tensor(ks, dtype=torch.int32, device="cuda")
    out = L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sfk, ks_t, ks)
    rows.append(_row(ctx, "get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor", "float32",
                     _nbytes(sfk, out, ks_t), L.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor,
                     reference.k_grouped_packed_ue8m0, (sfk, ks_t, ks), ref_args=(sfk, ks)))
    return rows


def run(ctx) -> list[dict]:
    import dg.layout as L
    import torch
    from dg.layout import reference

    return _cast_rows(ctx, torch, L, reference) + _transform_rows(ctx, torch, L, reference)
