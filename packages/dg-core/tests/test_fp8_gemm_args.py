"""Every bad-input path of the FP8 GEMM entry points raises a clear TypeError/ValueError before anything runs.

These run on CPU tensors: the structural checks (dtype, rank, shape, majorness, scale layouts, recipe) come before
the device checks, so each is reached here; a fully valid CPU call stops at "must be a CUDA tensor".
"""

from __future__ import annotations

import dg.core
import pytest
import torch

FP8 = torch.float8_e4m3fn


def make(m=128, n=256, k=512, recipe=None, out=torch.bfloat16):
    sk = (k + 127) // 128
    pitch = (m + 3) // 4 * 4
    a = torch.zeros(m, k, dtype=FP8)
    sfa = torch.ones(sk, pitch)[:, :m].t() if m else torch.ones(sk, 4)[:, :0].t()
    b = torch.zeros(n, k, dtype=FP8)
    if recipe == (1, 1, 128):
        sfb = torch.ones(sk, (n + 3) // 4 * 4)[:, :n].t()
    else:
        sfb = torch.ones((n + 127) // 128, sk)
    d = torch.empty(m, n, dtype=out)
    return (a, sfa), (b, sfb), d


def test_valid_call_on_cpu_stops_at_device_check():
    a, b, d = make()
    with pytest.raises(ValueError, match=r"argument 'a\[0\]' must be a CUDA tensor"):
        dg.core.fp8_gemm_nt(a, b, d)


@pytest.mark.parametrize(
    "mutate,exc,pattern",
    [
        (lambda a, b, d: ((a[0].float(), a[1]), b, d), TypeError, r"'a\[0\]' must have dtype torch.float8_e4m3fn"),
        (lambda a, b, d: (a, (b[0].to(torch.bfloat16), b[1]), d), TypeError, r"'b\[0\]' must have dtype"),
        (lambda a, b, d: (a, b, d.half()), TypeError, r"'d' must have dtype torch.bfloat16 or torch.float32"),
        (lambda a, b, d: ((a[0][None], a[1]), b, d), ValueError, r"'a\[0\]' must have 2 dimensions"),
        (lambda a, b, d: (a, b, d[:, :128]), ValueError, r"'d' must have shape \[128, 256\]"),
        (lambda a, b, d: (a, (b[0][:, :384], b[1]), d), ValueError, "K differs"),
        (lambda a, b, d: ((a[0].t().contiguous().t(), a[1]), b, d), ValueError, r"'a\[0\]' must be K-major"),
        (lambda a, b, d: (a, (b[0].t().contiguous().t(), b[1]), d), ValueError, r"'b\[0\]' must be K-major"),
        (lambda a, b, d: (a, b, d.t().contiguous().t()), ValueError, "'d' must be row-major"),
        (lambda a, b, d: ((a[0], a[1].contiguous()), b, d), ValueError,
         r"'a\[1\]' must be MN-major and TMA-aligned.*get_mn_major_tma_aligned_tensor"),
        (lambda a, b, d: ((a[0], a[1][:, :2]), b, d), ValueError, r"'a\[1\]' must have shape \[128, 4\]"),
        (lambda a, b, d: ((a[0], a[1].double()), b, d), TypeError, r"'a\[1\]' must have dtype torch.float32"),
        (lambda a, b, d: (a, (b[0], b[1].t().contiguous().t()), d), ValueError,
         r"'b\[1\]' must be contiguous.*per_block_cast_to_fp8"),
        (lambda a, b, d: (a, (b[0], b[1][:1]), d), ValueError, r"'b\[1\]' must have shape \[2, 4\]"),
        (lambda a, b, d: (a[0], b, d), TypeError, r"'a' must be a \(tensor, scale factor\) pair"),
        (lambda a, b, d: (a, (b[0],), d), TypeError, r"'b' must be a \(tensor, scale factor\) pair"),
        (lambda a, b, d: (a, (b[0], "scales"), d), TypeError, r"'b\[1\]' must be a tensor"),
    ],
)
def test_bad_inputs(mutate, exc, pattern):
    a, b, d = make()
    args = mutate(a, b, d)
    with pytest.raises(exc, match=pattern):
        dg.core.fp8_gemm_nt(*args)


def test_bad_recipe_and_accumulation_rules():
    a, b, d = make()
    with pytest.raises(ValueError, match=r"'recipe' must be \(1, 128, 128\) or \(1, 1, 128\)"):
        dg.core.fp8_gemm_nt(a, b, d, recipe=(1, 64, 128))
    with pytest.raises(ValueError, match="'c' is not supported with recipe \\(1, 128, 128\\)"):
        dg.core.fp8_gemm_nt(a, b, d.float(), c=d.float())
    with pytest.raises(TypeError, match="recipe \\(1, 128, 128\\) writes a torch.bfloat16 'd'"):
        dg.core.fp8_gemm_nt(a, b, d.float())
    a, b, d = make(recipe=(1, 1, 128), out=torch.float32)
    with pytest.raises(TypeError, match="accumulates into a torch.float32 'd'"):
        dg.core.fp8_gemm_nt(a, b, d.bfloat16(), recipe=(1, 1, 128))
    with pytest.raises(ValueError, match=r"'c' must have shape \[128, 256\]"):
        dg.core.fp8_gemm_nt(a, b, d, c=torch.zeros(128, 128), recipe=(1, 1, 128))
    with pytest.raises(TypeError, match="'c' must have dtype torch.float32"):
        dg.core.fp8_gemm_nt(a, b, d, c=d.bfloat16(), recipe=(1, 1, 128))
    with pytest.raises(ValueError, match=r"'b\[1\]' must be MN-major and TMA-aligned"):
        dg.core.fp8_gemm_nt(a, (b[0], b[1].contiguous()), d, recipe=(1, 1, 128))


def test_layout_variants_explain_what_to_pass():
    a, b, d = make()
    b_kn = (b[0].t().contiguous(), b[1].t())  # a row-major [K, N]: MN-major after the view
    with pytest.raises(ValueError, match="fp8_gemm_nn: .*K-major in memory.*pass a K-major copy to fp8_gemm_nt"):
        dg.core.fp8_gemm_nn(a, b_kn, d)
    a_km = (a[0].t().contiguous(), a[1].t())
    with pytest.raises(ValueError, match="fp8_gemm_tt"):
        dg.core.fp8_gemm_tt(a_km, b, d)
    with pytest.raises(ValueError, match="fp8_gemm_tn"):
        dg.core.fp8_gemm_tn(a_km, b_kn, d)
    # K-major memory seen through the transposed view is accepted (and then stops at the device check).
    with pytest.raises(ValueError, match="must be a CUDA tensor"):
        dg.core.fp8_gemm_nn(a, (b[0].t(), b[1].t()), d)


def test_skip_head_mid_checks():
    a, b, d = make(n=512)
    d = torch.empty(128, 512 + 2 * 64, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="multiples of 64"):
        dg.core.fp8_gemm_nt_skip_head_mid(a, b, d, (128, 32, 128))
    with pytest.raises(ValueError, match="must be a multiple of left \\+ right"):
        dg.core.fp8_gemm_nt_skip_head_mid(a, b, d, (192, 64, 192))
    with pytest.raises(ValueError, match=r"'d' must have shape \[128, 640\]"):
        dg.core.fp8_gemm_nt_skip_head_mid(a, b, d[:, :600], (128, 64, 128))
    with pytest.raises(ValueError, match="left \\+ right > 0"):
        dg.core.fp8_gemm_nt_skip_head_mid(a, b, d, (0, 64, 0))
    with pytest.raises(ValueError, match="must be a CUDA tensor"):
        dg.core.fp8_gemm_nt_skip_head_mid(a, b, d, (128, 64, 128))


def test_alignment_is_checked_before_launch():
    # A K-major [M, K] view whose row pitch (K = 520 bytes) is not a multiple of 16 cannot be read by TMA.
    a, b, d = make(k=512)
    a_bad = torch.zeros(128, 520, dtype=FP8)[:, :512]
    with pytest.raises(ValueError, match="must be a CUDA tensor"):  # device is checked before alignment
        dg.core.fp8_gemm_nt((a_bad, a[1]), b, d)


def test_zero_sized_problem_is_a_no_op_after_checks():
    a, b, d = make(m=0)
    with pytest.raises(ValueError, match="must be a CUDA tensor"):
        dg.core.fp8_gemm_nt(a, b, d)
