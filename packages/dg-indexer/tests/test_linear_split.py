"""CPU tests of the prefill kernel's FP8 split of the linear term (write_linear_rows in sm90_fp8_mqa_logits.cuh).

The kernel writes u_q = sum_h w[q, h] * Q[q, h, :] as four FP8 e4m3 rows e_p with scales s * 16^-p, s = 2^(e - 7)
for max |u_q| = 1.f * 2^e, each part the rounding of what the parts before left. This model of that arithmetic (same
scale choice, same order, FP32 residuals) pins down the two facts the kernel relies on: no part saturates (every
scaled residual stays below 256, inside e4m3's 448), and the four parts leave a residual below 2^-16 of max |u_q|.
The GPU tests check the kernel's logits themselves against the float64 reference.
"""

from __future__ import annotations

import math

import pytest
import torch

FP8 = torch.float8_e4m3fn
PARTS = 4
RATIO = 1.0 / 16.0


def split(u: torch.Tensor) -> tuple[float, list[torch.Tensor], list[float], torch.Tensor]:
    """(s, parts, largest scaled residual per part, final residual) as the kernel computes them, in FP32."""
    u = u.float()
    m = float(u.abs().max())
    e_field = (torch.tensor([m], dtype=torch.float32).view(torch.int32).item() >> 23) & 0xFF
    s = 2.0 ** (e_field - 127 - 7) if e_field > 8 else 1.0
    r, scale, parts, peaks = u.clone(), s, [], []
    for _ in range(PARTS):
        x = (r * (1.0 / scale)).float()
        peaks.append(float(x.abs().max()))
        e = x.to(FP8)
        parts.append(e)
        r = (r - scale * e.float()).float()
        scale *= RATIO
    return s, parts, peaks, r


def _vectors():
    gen = torch.Generator().manual_seed(0)
    yield torch.randn(128, generator=gen) * 30.0
    yield torch.randn(128, generator=gen) * 1e-3
    yield torch.randn(128, generator=gen) * 1e6
    yield torch.cat([torch.randn(127, generator=gen) * 1e-4, torch.tensor([5000.0])])  # one dominant entry
    yield torch.full((128,), 448.0 * 2.0**4)  # maximum exactly on a power of two
    yield torch.full((128,), 2.0**-126)  # tiny: scale falls back to 1
    q = torch.randn(64, 128, generator=gen).to(FP8).float()
    w = torch.randn(64, generator=gen)
    yield (w[:, None] * q).sum(0)  # the kernel's u_q for random queries and weights


@pytest.mark.parametrize("u", list(_vectors()), ids=lambda u: f"max{float(u.abs().max()):.3g}")
def test_parts_never_saturate_and_leave_a_tiny_residual(u):
    s, parts, peaks, r = split(u)
    assert all(p < 256.0 for p in peaks), peaks
    m = float(u.abs().max())
    if m > 2.0**-100:
        assert float(r.abs().max()) <= m * 2.0**-16, (float(r.abs().max()) / m)
    rebuilt = sum(s * RATIO**p * parts[p].float() for p in range(PARTS))
    assert torch.allclose(rebuilt.double(), u.double(), rtol=0, atol=max(m, 1e-30) * 2.0**-16)


def test_zero_vector_gives_zero_parts():
    s, parts, _, r = split(torch.zeros(128))
    assert s == 1.0 and all(bool((p.float() == 0).all()) for p in parts) and bool((r == 0).all())


def test_scale_is_a_power_of_two_with_headroom():
    for m in (1e-20, 0.3, 1.0, 447.0, 448.0, 1e30):
        s, _, peaks, _ = split(torch.tensor([m, -m / 3]))
        assert math.log2(s).is_integer() and 128.0 <= peaks[0] < 256.0
