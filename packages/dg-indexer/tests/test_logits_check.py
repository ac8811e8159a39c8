"""CPU tests of the logits check that the GPU tests use (indexer_logits_check.py).

They pin down what its per-element bound accepts and rejects, on a model of the SM90 kernels' arithmetic:
  * a model of an FP8 wgmma chain (products aligned to the largest exponent of each 32-wide K step and of the
    accumulator, truncated to 13 fraction bits, FP32 accumulator) followed by the kernels' FP32 head sum passes,
    single-key rows included, while the row-max bound alone rejects it on those rows;
  * the defects a kernel can have (wrong key, wrong weight row, a head or a K step left out, the key scale not
    applied, a position never written, one logit a few percent off) are all rejected.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from dg.indexer import reference as ref

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer_logits_check import check_logits, mqa_magnitude, paged_magnitude  # noqa: E402

FP8 = torch.float8_e4m3fn
WGMMA_K = 32
FRACTION_BITS = 13


def _problem(seed: int, heads: int = 64, dim: int = 128):
    """Single-key rows (where cancellation across heads bites) followed by a few long rows."""
    gen = torch.Generator().manual_seed(seed)
    single, long_rows, seq_len_kv = 160, 6, 300
    seq_len = single + long_rows
    q = torch.randn(seq_len, heads, dim, generator=gen).to(FP8)
    k, k_scale = ref.quantize_per_token(torch.randn(seq_len_kv, dim, generator=gen))
    w = torch.randn(seq_len, heads, generator=gen)
    ks = torch.randint(0, seq_len_kv, (seq_len,), generator=gen, dtype=torch.int32)
    ke = ks + 1
    ks[single:] = torch.randint(0, 100, (long_rows,), generator=gen, dtype=torch.int32)
    ke[single:] = ks[single:] + 150
    return q, k, k_scale, w, ks, ke


def _truncated_step(acc: torch.Tensor, prods: torch.Tensor) -> torch.Tensor:
    """acc + sum(prods) the way the model's tensor core does it: align to the largest exponent, truncate."""
    terms = torch.cat([acc[..., None], prods], dim=-1)
    top = terms.abs().amax(dim=-1, keepdim=True).clamp_min(1e-300)
    ulp = torch.pow(2.0, torch.floor(torch.log2(top)) - FRACTION_BITS)
    return (torch.trunc(terms / ulp) * ulp).sum(dim=-1).float().double()


def _kernel_model(q, k, k_scale, w, ks, ke) -> torch.Tensor:
    """Logits of the valid positions as the model kernel computes them; -inf elsewhere."""
    seq_len, heads, dim = q.shape
    out = torch.full((seq_len, k.shape[0]), float("-inf"), dtype=torch.float64)
    qf, kf = q.double(), k.double()
    for i in range(seq_len):
        keys = torch.arange(int(ks[i]), int(ke[i]))
        prods = qf[i][:, None, :] * kf[keys][None, :, :]  # [H, keys, D], exact
        acc = torch.zeros(heads, keys.numel(), dtype=torch.float64)
        for k0 in range(0, dim, WGMMA_K):
            acc = _truncated_step(acc, prods[..., k0:k0 + WGMMA_K])
        total = torch.zeros(keys.numel(), dtype=torch.float32)
        for h in range(heads):  # FP32 fmaf chain of the head sum, in head order
            total = (total.double() + acc[h].clamp_min(0) * float(w[i, h])).float()
        out[i, keys] = (total * k_scale[keys]).double()
    return out


def _masked(values: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isinf(want), want, values)


@pytest.mark.parametrize("seed", [0, 1])
def test_fp8_accumulation_model_passes(seed):
    q, k, s, w, ks, ke = _problem(seed)
    want = ref.mqa_logits(q, k, s, w, ks, ke)
    got = _kernel_model(q, k, s, w, ks, ke).float()
    check_logits(got, want, True, "model", mqa_magnitude(q, k, s, w, ks, ke))


def test_row_max_bound_alone_rejects_the_model():
    # Why the magnitude term exists: without it, single-key rows of a correct FP8 kernel fail.
    q, k, s, w, ks, ke = _problem(0)
    want = ref.mqa_logits(q, k, s, w, ks, ke)
    got = _kernel_model(q, k, s, w, ks, ke).float()
    with pytest.raises(AssertionError, match="off by"):
        check_logits(got, want, True, "model")


def _defects(q, k, s, w, ks, ke):
    everything = (torch.zeros_like(ks), torch.full_like(ke, k.shape[0]))
    full = ref.mqa_logits(q, k, s, w, *everything)
    cut = q.shape[2] - WGMMA_K
    yield "wrong key", full.roll(1, dims=1)
    yield "wrong weight row", ref.mqa_logits(q, k, s, w.roll(1, dims=0), *everything)
    yield "a head left out", ref.mqa_logits(q[:, 1:], k, s, w[:, 1:], *everything)
    yield "a K step left out", ref.mqa_logits(q[..., :cut], k[:, :cut], s, w, *everything)
    yield "key scale not applied", full / s.double()[None, :]
    unwritten = full.clone()
    unwritten[0, int(ks[0])] = float("nan")
    yield "a position never written", unwritten
    off = full.clone()
    off[3, int(ks[3])] *= 1.05
    yield "one logit 5% off", off


def test_defects_are_rejected():
    q, k, s, w, ks, ke = _problem(0)
    want = ref.mqa_logits(q, k, s, w, ks, ke)
    mag = mqa_magnitude(q, k, s, w, ks, ke)
    for name, values in _defects(q, k, s, w, ks, ke):
        with pytest.raises(AssertionError):
            check_logits(_masked(values, want).float(), want, True, name, mag)


# A defect in a single row must fail too (in a large output the global calc_diff cannot see it): row 161 has 150
# keys, row 3 one.
@pytest.mark.parametrize("row", [161, 3])
def test_defects_in_one_row_are_rejected(row):
    q, k, s, w, ks, ke = _problem(0)
    want = ref.mqa_logits(q, k, s, w, ks, ke)
    mag = mqa_magnitude(q, k, s, w, ks, ke)
    for name, values in _defects(q, k, s, w, ks, ke):
        # NOTE: with one key, leaving out a head whose score is negative changes nothing: not a defect there.
        if name in ("a position never written", "one logit 5% off") or (row == 3 and name == "a head left out"):
            continue
        out = want.clone()
        out[row] = values[row]
        with pytest.raises(AssertionError):
            check_logits(_masked(out, want).float(), want, True, name, mag)


def test_magnitudes_bound_the_logits():
    # |logit| <= magnitude everywhere, with equality when every input is non-negative; rows come back in the order
    # asked, for the paged layout too (rows of several sequences, next_n = 2, a table wider than needed).
    gen = torch.Generator().manual_seed(3)
    q, k, s, w, ks, ke = _problem(1, heads=32, dim=64)
    rows = torch.tensor([165, 0, 3])
    want = ref.mqa_logits(q, k, s, w, ks, ke, clean_logits=False)[rows]
    mag = mqa_magnitude(q, k, s, w, ks, ke)(rows)
    assert bool((want.abs() <= mag * (1 + 1e-12)).all())
    q_pos = q.float().abs().to(FP8)
    assert torch.allclose(mqa_magnitude(q_pos, k.float().abs().to(FP8), s, w.abs(), ks, ke)(rows),
                          ref.mqa_logits(q_pos, k.float().abs().to(FP8), s, w.abs(), ks, ke, clean_logits=False)[rows])

    batch, next_n, heads, dim, lens = 3, 2, 32, 64, [2, 130, 70]
    values, scales = ref.quantize_per_token(torch.randn(8 * 64, dim, generator=gen))
    cache = ref.pack_paged_kv_cache(values.view(8, 64, dim), scales.view(8, 64))
    table = torch.tensor([[5, 0, 0, 0], [1, 7, 2, 0], [3, 6, 0, 0]], dtype=torch.int32)
    lens_t = torch.tensor(lens, dtype=torch.int32)
    qp = torch.randn(batch, next_n, heads, dim, generator=gen).to(FP8)
    wp = torch.randn(batch * next_n, heads, generator=gen)
    rows = torch.tensor([5, 0, 2, 3])
    want = ref.paged_mqa_logits(qp, cache, wp, lens_t, table, 160, clean_logits=False)[rows]
    mag = paged_magnitude(qp, cache, wp, lens_t, table, 160)(rows)
    assert bool((want.abs() <= mag * (1 + 1e-12)).all())
    cache_pos = ref.pack_paged_kv_cache(values.float().abs().to(FP8).view(8, 64, dim), scales.view(8, 64))
    qp_pos = qp.float().abs().to(FP8)
    assert torch.allclose(paged_magnitude(qp_pos, cache_pos, wp.abs(), lens_t, table, 160)(rows),
                          ref.paged_mqa_logits(qp_pos, cache_pos, wp.abs(), lens_t, table, 160,
                                               clean_logits=False)[rows])
