"""GPU tests of the SM90 indexer kernels against the float64 reference (skipped without a GPU).

Every call's output buffer is poisoned: the modules' allocation point is patched to return NaN-filled memory, so
a position the kernel never writes shows up as NaN. Checks (indexer_logits_check.py): the -inf pattern equals the
reference mask exactly (clean mode), no NaN at any scored position, calc_diff < 1e-3 over all scored positions and
a per-element bound reported per row (relative to the row's largest value, plus the FP8 accumulation precision
times the logit's absolute-value magnitude).
"""

from __future__ import annotations

import sys
from pathlib import Path

import dg.indexer as idx
import pytest
import torch
from dg.indexer import mqa_logits as mqa_module
from dg.indexer import paged_mqa_logits as paged_module
from dg.indexer import reference as ref

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer_inputs import make_paged  # noqa: E402
from indexer_logits_check import check_logits, mqa_magnitude, paged_magnitude  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (SM90)")]

FP8 = torch.float8_e4m3fn


@pytest.fixture(autouse=True)
def _sm90_only_poisoned(monkeypatch):
    major, _ = torch.cuda.get_device_capability()
    if major != 9:
        pytest.skip("the indexer kernels are SM90 only")
    torch.manual_seed(0)

    def poisoned(rows, cols, device):
        return torch.full((rows, cols), float("nan"), dtype=torch.float32, device=device)

    monkeypatch.setattr(mqa_module, "_empty_logits", poisoned)
    monkeypatch.setattr(paged_module, "_empty_logits", poisoned)


def num_sms() -> int:
    return torch.cuda.get_device_properties(0).multi_processor_count


# ---------------------------------------------------------------------------------------------------------------
# Non-paged
# ---------------------------------------------------------------------------------------------------------------


def make_mqa(seq_len, seq_len_kv, heads, dim):
    q = torch.randn(seq_len, heads, dim, device="cuda").to(FP8)
    k, k_scale = ref.quantize_per_token(torch.randn(seq_len_kv, dim, device="cuda"))
    w = torch.randn(seq_len, heads, device="cuda")
    return q, k, k_scale, w


def run_mqa(q, k, k_scale, w, ks, ke, clean=True, what=""):
    want = ref.mqa_logits(q, k, k_scale, w, ks, ke, clean_logits=True)
    out = idx.fp8_mqa_logits(q, (k, k_scale), w, ks, ke, clean_logits=clean)
    torch.cuda.synchronize()
    check_logits(out, want, clean, what, mqa_magnitude(q, k, k_scale, w, ks, ke))


def causal(seq_len, seq_len_kv):
    ks = torch.zeros(seq_len, dtype=torch.int32, device="cuda")
    ke = torch.arange(seq_len, dtype=torch.int32, device="cuda") + (seq_len_kv - seq_len) + 1
    return ks, ke


def context_parallel(seq_len, seq_len_kv):
    """Spec 16.8's context-parallel pattern (rows with ke = 0 occur and must be all -inf)."""
    chunk, cp_size = seq_len // 2, seq_len_kv // seq_len
    cp_id = cp_size // 3
    i = torch.arange(chunk, dtype=torch.int32, device="cuda")
    ke = torch.cat([cp_id * chunk + i, (2 * cp_size - 1 - cp_id) * chunk + i]).int()
    return torch.zeros(seq_len, dtype=torch.int32, device="cuda"), ke


@pytest.mark.parametrize("seq_len, seq_len_kv", [(2048, 4096), (2048, 8192), (4096, 16384)])
def test_mqa_spec_causal(seq_len, seq_len_kv):
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 64, 128)
    run_mqa(q, k, s, w, *causal(seq_len, seq_len_kv), what=f"causal {seq_len}x{seq_len_kv}")


@pytest.mark.parametrize("seq_len, seq_len_kv", [(2048, 4096), (2048, 8192), (4096, 16384)])
def test_mqa_spec_context_parallel(seq_len, seq_len_kv):
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 64, 128)
    run_mqa(q, k, s, w, *context_parallel(seq_len, seq_len_kv), what=f"cp {seq_len}x{seq_len_kv}")


@pytest.mark.parametrize("heads", [32, 64, 128])
@pytest.mark.parametrize("dim", [32, 64, 128])
@pytest.mark.parametrize("clean", [True, False])
def test_mqa_all_sizes_random_ranges(heads, dim, clean):
    seq_len, seq_len_kv = 301, 1000  # neither a multiple of a query group nor of a 64-key tile
    q, k, s, w = make_mqa(seq_len, seq_len_kv, heads, dim)
    ks = torch.randint(0, seq_len_kv, (seq_len,), device="cuda", dtype=torch.int32)
    ke = torch.minimum(ks + torch.randint(0, 400, (seq_len,), device="cuda", dtype=torch.int32),
                       torch.tensor(seq_len_kv, device="cuda")).int()
    run_mqa(q, k, s, w, ks, ke, clean=clean, what=f"H={heads} D={dim} clean={clean}")


def test_mqa_adversarial_ranges():
    seq_len, seq_len_kv = 67, 333
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 64, 128)
    ks = torch.randint(0, seq_len_kv, (seq_len,), dtype=torch.int32)
    ke = ks + 1
    ks[0], ke[0] = 0, seq_len_kv          # all keys
    ks[1], ke[1] = 5, 5                   # empty
    ks[2], ke[2] = seq_len_kv, seq_len_kv  # empty at the end
    ks[3], ke[3] = 0, 1                   # first key only
    ks[4], ke[4] = seq_len_kv - 1, seq_len_kv  # last key only
    ks[5:9], ke[5:9] = 7, 7               # a whole query group empty (H = 64: groups of 4)
    ks[9], ke[9] = 63, 65                 # straddles a tile edge
    run_mqa(q, k, s, w, ks.cuda(), ke.cuda(), what="adversarial")


@pytest.mark.parametrize("heads", [32, 128])
def test_mqa_range_starts_off_the_16_byte_grid(heads):
    # Regression: a group's first key is the innermost TMA coordinate of the FP32 scale load, and SM90 raises an
    # illegal instruction unless it lands on 16 bytes (4 keys); every residue mod 4 and odd S_kv occur here.
    seq_len, seq_len_kv = 64, 203
    q, k, s, w = make_mqa(seq_len, seq_len_kv, heads, 64)
    i = torch.arange(seq_len, dtype=torch.int32, device="cuda")
    ks = (7 * i + 1) % 150
    ke = torch.clamp(ks + 1 + i % 70, max=seq_len_kv).int()
    run_mqa(q, k, s, w, ks.int(), ke, what=f"unaligned starts H={heads}")


def test_mqa_bad_ranges_are_guarded():
    # ks > ke, negative ks, ke past S_kv: no fault, no hang; the result equals the clipped semantics.
    seq_len, seq_len_kv = 40, 200
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 32, 64)
    ks = torch.randint(-300, 300, (seq_len,), dtype=torch.int32).cuda()
    ke = torch.randint(-300, 300, (seq_len,), dtype=torch.int32).cuda()
    run_mqa(q, k, s, w, ks, ke, what="bad ranges")


@pytest.mark.parametrize("seq_len", [41, 300])
@pytest.mark.parametrize("mode", ["causal", "all empty", "half empty"])
def test_mqa_short_prefill_split_across_ctas(seq_len, mode):
    # Fewer query groups than SMs: the split instance cuts the groups' tiles into one equal share per CTA (pieces
    # of one group on several CTAs, empty groups placed by their position, all empty: one CTA per group).
    seq_len_kv = 20000
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 64, 128)
    ks, ke = causal(seq_len, seq_len_kv)
    if mode == "all empty":
        ke = ks.clone()
    elif mode == "half empty":
        ke[: seq_len // 2] = ks[: seq_len // 2]
        ks[seq_len // 2:: 3] = 1234  # some ranges start inside the key range
    run_mqa(q, k, s, w, ks, ke, what=f"split {mode}")
    run_mqa(q, k, s, w, ks, ke, clean=False, what=f"split {mode} no clean")


@pytest.mark.parametrize("seq_len, seq_len_kv", [(1, 1), (1, 64), (3, 65), (513, 64)])
def test_mqa_tiny(seq_len, seq_len_kv):
    q, k, s, w = make_mqa(seq_len, seq_len_kv, 64, 128)
    ks = torch.zeros(seq_len, dtype=torch.int32, device="cuda")
    ke = torch.full((seq_len,), seq_len_kv, dtype=torch.int32, device="cuda")
    run_mqa(q, k, s, w, ks, ke, what="tiny")


def test_mqa_empty_problem():
    q, k, s, w = make_mqa(0, 16, 64, 128)
    out = idx.fp8_mqa_logits(q, (k, s), w, torch.zeros(0, dtype=torch.int32, device="cuda"),
                             torch.zeros(0, dtype=torch.int32, device="cuda"))
    assert out.shape == (0, 16)


# ---------------------------------------------------------------------------------------------------------------
# Paged
# ---------------------------------------------------------------------------------------------------------------


def run_paged(q, cache, w, lens, table, max_len, clean=True, what="", sched=None):
    want = ref.paged_mqa_logits(q, cache, w, lens, table, max_len, clean_logits=True)
    if sched is None:
        sched = idx.get_paged_mqa_logits_metadata(lens, 64, num_sms())
    out = idx.fp8_paged_mqa_logits(q, cache, w, lens, table, sched, max_len, clean_logits=clean)
    torch.cuda.synchronize()
    check_logits(out, want, clean, what, paged_magnitude(q, cache, w, lens, table, max_len))
    return out


@pytest.mark.parametrize("batch, next_n", [(64, 1), (64, 2), (128, 1)])
def test_paged_spec_shapes(batch, next_n):
    avg = 8192
    lens = torch.randint(int(0.7 * avg), int(1.3 * avg), (batch,)).tolist()
    max_len = max(lens)
    run_paged(*make_paged(batch, next_n, 64, 128, lens, max_len), max_len, what=f"spec B={batch} n={next_n}")


@pytest.mark.parametrize("next_n", [1, 2])
@pytest.mark.parametrize("heads", [32, 64, 128])
@pytest.mark.parametrize("dim", [32, 64, 128])
def test_paged_all_sizes(next_n, heads, dim):
    max_len = 1500
    lens = [next_n, 1, 64, 65, 256, 257, max_len, 1000, 300]
    batch = len(lens)
    for clean in (True, False):
        run_paged(*make_paged(batch, next_n, heads, dim, lens, max_len, table_pitch_extra=3), max_len,
                  clean=clean, what=f"n={next_n} H={heads} D={dim} clean={clean}")


def test_paged_wide_block_pitch():
    lens = [700, 1, 4096]
    q, cache, w, lens_t, table = make_paged(3, 2, 64, 128, lens, 4096)
    n = cache.shape[0]
    wide = torch.zeros(n, 64 * 132 + 128, dtype=torch.uint8, device="cuda")
    wide[:, : 64 * 132] = cache.view(n, -1)
    strided = torch.as_strided(wide, (n, 64, 1, 132), (64 * 132 + 128, 132, 132, 1))
    run_paged(q, strided, w, lens_t, table, 4096, what="wide pitch")


def test_paged_max_context_len_larger_than_contexts():
    lens = [10, 2000]
    run_paged(*make_paged(2, 1, 64, 128, lens, 5000), 5000, what="max_len > contexts")


def test_paged_invalid_block_ids_give_nan_not_faults():
    lens = [300, 200]
    q, cache, w, lens_t, table = make_paged(2, 1, 64, 128, lens, 320)
    table = table.clone()
    table[0, 1] = 10**6
    table[1, 0] = -5
    sched = idx.get_paged_mqa_logits_metadata(lens_t, 64, num_sms())
    out = idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 320, clean_logits=True)
    torch.cuda.synchronize()
    assert torch.isnan(out[0, 64:128]).all() and torch.isnan(out[1, :64]).all()
    assert torch.isfinite(out[0, :64]).all() and torch.isfinite(out[0, 128:300]).all()
    assert (out[0, 300:] == float("-inf")).all()


def test_paged_bad_lengths_and_schedule_are_guarded():
    # Sequence 1 is longer than its table row (16 blocks = 1024 tokens) can hold, sequences 2 and 3 have no
    # tokens; then a garbage schedule. No fault, no hang; unscorable positions are NaN, never silent values.
    q, cache, w, _, table = make_paged(4, 2, 64, 128, [300, 1024, 0, 0], 1024)
    lens_t = torch.tensor([300, 5000, 0, -7], dtype=torch.int32, device="cuda")
    sched = idx.get_paged_mqa_logits_metadata(lens_t, 64, num_sms())
    out = idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 2048, clean_logits=True)
    garbage = torch.randint(-100, 100, sched.shape, dtype=torch.int32, device="cuda")
    idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, garbage, 2048, clean_logits=True)
    torch.cuda.synchronize()
    assert torch.isfinite(out[0, :299]).all() and (out[0, 299:] == float("-inf")).all()
    assert torch.isfinite(out[1, :300]).all() and (out[1, 300:] == float("-inf")).all()
    assert torch.isfinite(out[2:4, :1024]).all() and torch.isnan(out[2:4, 1024:]).all()
    assert (out[4:8] == float("-inf")).all()


def _counters_are_zero():
    torch.cuda.synchronize()
    return all(not bool(c.any()) for _, c in paged_module._STREAM_COUNTERS.values())


def test_paged_static_split_above_the_dynamic_batch_limit():
    # More sequences than the kernel's prefix table holds: the launch takes the schedule rows (static split).
    batch = 2049
    lens = torch.randint(1, 400, (batch,)).tolist()
    run_paged(*make_paged(batch, 1, 32, 64, lens, 400), 400, what="static split B=2049")
    run_paged(*make_paged(2048, 1, 32, 64, lens[:2048], 400), 400, what="dynamic split B=2048")
    assert _counters_are_zero()


def test_paged_dynamic_split_survives_many_launches_and_a_side_stream():
    # The claim counter must be zero again after every launch (the last CTA re-arms it): back-to-back launches on
    # one stream with different work, then launches on a second stream while the first is busy.
    for i, lens in enumerate(([70000, 1, 5000], [1] * 200, [64 * 3] * 7, [9000, 0, 130, 70000, 2])):
        max_len = max(lens)
        run_paged(*make_paged(len(lens), 2 if i % 2 else 1, 64, 128, lens, max_len), max_len, what=f"launch {i}")
        assert _counters_are_zero()
    big = make_paged(32, 1, 64, 128, [65536] * 32, 65536)
    small = make_paged(5, 2, 64, 128, [100, 7000, 1, 64, 4000], 7000)
    sched_big = idx.get_paged_mqa_logits_metadata(big[3], 64, num_sms())
    side = torch.cuda.Stream()
    outs = []
    for _ in range(3):
        outs.append(idx.fp8_paged_mqa_logits(*big[:4], big[4], sched_big, 65536, clean_logits=True))
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            sched_small = idx.get_paged_mqa_logits_metadata(small[3], 64, num_sms())
            small_out = idx.fp8_paged_mqa_logits(*small[:4], small[4], sched_small, 7000, clean_logits=True)
    torch.cuda.synchronize()
    want_big = ref.paged_mqa_logits(*big[:4], big[4], 65536, clean_logits=True)
    for out in outs:
        check_logits(out, want_big, True, "main stream", paged_magnitude(*big[:4], big[4], 65536))
    want_small = ref.paged_mqa_logits(*small[:4], small[4], 7000, clean_logits=True)
    check_logits(small_out, want_small, True, "side stream", paged_magnitude(*small[:4], small[4], 7000))
    assert _counters_are_zero()


def test_paged_dynamic_split_in_a_cuda_graph():
    # A captured call gets its own counter, zeroed by the graph before the kernel: replays with new lengths and
    # queries written into the captured tensors stay exact, and eager calls in between do not disturb them.
    lens = [3000, 1, 700, 8000]
    q, cache, w, lens_t, table = make_paged(4, 2, 64, 128, lens, 8192)
    sched = idx.get_paged_mqa_logits_metadata(lens_t, 64, num_sms())
    idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 8192, clean_logits=True)  # compile, plan
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 8192, clean_logits=True)
    for step, new_lens in enumerate(([3000, 1, 700, 8000], [8000, 8000, 1, 64], [5, 6000, 6000, 129])):
        lens_t.copy_(torch.tensor(new_lens, dtype=torch.int32))
        q.copy_(torch.randn(q.shape, device="cuda").to(FP8))
        sched.copy_(idx.get_paged_mqa_logits_metadata(lens_t, 64, num_sms()))
        out.fill_(float("nan"))
        graph.replay()
        graph.replay()  # twice: the second replay must find its counter zeroed again
        run_paged(q, cache, w, lens_t, table, 8192, what=f"eager between replays {step}")
        torch.cuda.synchronize()
        want = ref.paged_mqa_logits(q, cache, w, lens_t, table, 8192, clean_logits=True)
        check_logits(out, want, True, f"graph replay {step}", paged_magnitude(q, cache, w, lens_t, table, 8192))
    assert _counters_are_zero()


def test_paged_checked_mode_reports_a_dirty_counter(monkeypatch):
    lens = [100, 200]
    q, cache, w, lens_t, table = make_paged(2, 1, 64, 128, lens, 256)
    sched = idx.get_paged_mqa_logits_metadata(lens_t, 64, num_sms())
    idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 256)
    counter = paged_module._claim_counter(q.device, torch.cuda.current_device())
    monkeypatch.setenv("DG_INDEXER_CHECKED", "1")
    counter.fill_(7)
    try:
        with pytest.raises(RuntimeError, match="claim counter"):
            idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, sched, 256)
    finally:
        counter.zero_()
    run_paged(q, cache, w, lens_t, table, 256, what="checked mode, counter zero")


# 256 and 257 sequences: the two sides of the switch from the batch kernel to the general 512-thread one; 256
# sequences of the longest length: the batch kernel's 32-bit item total at its largest (2^31).
@pytest.mark.parametrize(
    "lens",
    [[], [0], [1], [256, 257, 0, 70000], list(range(0, 76800, 300)), list(range(0, 77100, 300)),
     list(range(0, 20000, 7)), [2**31 - 1] * 256],
)
@pytest.mark.parametrize("sms", [1, 7, None])
def test_metadata_matches_reference(lens, sms):
    sms = sms or num_sms()
    t = torch.tensor(lens, dtype=torch.int32, device="cuda")
    got = idx.get_paged_mqa_logits_metadata(t, 64, sms)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), ref.paged_mqa_logits_metadata(t.cpu(), 64, sms))


def test_metadata_large_batch():
    t = torch.randint(0, 200000, (60000,), dtype=torch.int32, device="cuda")
    got = idx.get_paged_mqa_logits_metadata(t, 64, num_sms())
    assert torch.equal(got.cpu(), ref.paged_mqa_logits_metadata(t.cpu(), 64, num_sms()))


def test_checked_mode_on_device_tensors(monkeypatch):
    monkeypatch.setenv("DG_INDEXER_CHECKED", "1")
    q, k, s, w = make_mqa(8, 64, 64, 128)
    ks = torch.zeros(8, dtype=torch.int32, device="cuda")
    ke = torch.full((8,), 65, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="seq_len_kv=64"):
        idx.fp8_mqa_logits(q, (k, s), w, ks, ke)
    q, cache, w, lens, table = make_paged(2, 1, 64, 128, [100, 200], 256)
    table = table.clone()
    table[1, 2] = cache.shape[0]
    sched = idx.get_paged_mqa_logits_metadata(lens, 64, num_sms())
    with pytest.raises(ValueError, match=r"block_table: entry \[1, 2\]"):
        idx.fp8_paged_mqa_logits(q, cache, w, lens, table, sched, 256)


# ---------------------------------------------------------------------------------------------------------------
# Host fast path: launch plans keyed by the argument signature
# ---------------------------------------------------------------------------------------------------------------


def test_repeated_paged_calls_reuse_the_plan_with_new_tensors():
    lens = [300, 4100, 64, 1]
    first = make_paged(4, 2, 64, 128, lens, 4160)
    run_paged(*first, 4160, what="plan: first call")
    plans = len(paged_module._PLANS._plans)
    metas = len(paged_module._META_PLANS._plans)
    # Same shapes, strides and alignment, new tensors and values: served by the stored plans.
    second = make_paged(4, 2, 64, 128, [4100, 1, 300, 64], 4160)
    run_paged(*second, 4160, what="plan: new tensors")
    run_paged(*second, 4160, clean=False, what="plan: new tensors, no cleaning")
    assert len(paged_module._PLANS._plans) == plans + 1  # one more plan for clean_logits=False only
    assert len(paged_module._META_PLANS._plans) == metas


def test_repeated_prefill_calls_reuse_the_plan_and_follow_set_num_sms():
    import dg.core as core

    q, k, s, w = make_mqa(300, 1000, 64, 128)
    ks, ke = causal(300, 1000)
    run_mqa(q, k, s, w, ks, ke, what="plan: first call")
    plans = len(mqa_module._PLANS._plans)
    q2, k2, s2, w2 = make_mqa(300, 1000, 64, 128)
    ks2 = torch.randint(0, 500, (300,), dtype=torch.int32, device="cuda")
    ke2 = ks2 + torch.randint(0, 500, (300,), dtype=torch.int32, device="cuda")
    run_mqa(q2, k2, s2, w2, ks2, ke2, what="plan: new tensors")
    assert len(mqa_module._PLANS._plans) == plans
    try:
        core.set_num_sms(16)  # fewer CTAs: a new grid, so a new plan (and here the split instance)
        run_mqa(q2, k2, s2, w2, ks2, ke2, what="plan: 16 SMs")
        assert len(mqa_module._PLANS._plans) == plans + 1
    finally:
        core.set_num_sms(0)


def test_repeated_metadata_calls_with_new_lengths():
    for lens in ([5, 7000, 0, 300], [100, 0, 9000, 1], [70000, 1, 1, 1]):
        t = torch.tensor(lens, dtype=torch.int32, device="cuda")
        got = idx.get_paged_mqa_logits_metadata(t, 64, num_sms())
        assert torch.equal(got.cpu(), ref.paged_mqa_logits_metadata(t.cpu(), 64, num_sms()))
