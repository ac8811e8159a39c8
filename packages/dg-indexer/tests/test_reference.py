"""CPU tests of the reference implementations, the metadata algorithm and the kernels' work split."""

from __future__ import annotations

import math
import random

import dg.indexer as idx
import pytest
import torch
from dg.indexer import reference as ref

FP8 = torch.float8_e4m3fn


def small_ints(*shape, lo=-3, hi=3, gen=None):
    """Integers that FP8 e4m3 represents exactly, so hand-computed sums are exact."""
    return torch.randint(lo, hi + 1, shape, generator=gen).float()


# ---------------------------------------------------------------------------------------------------------------
# Non-paged reference
# ---------------------------------------------------------------------------------------------------------------


def loop_mqa_logits(q, k, k_scale, w, ks, ke):
    """The spec formula written as plain loops over Python numbers (independent of the reference's einsum)."""
    seq_len, heads, dim = q.shape
    seq_len_kv = k.shape[0]
    out = [[-math.inf] * seq_len_kv for _ in range(seq_len)]
    for i in range(seq_len):
        for j in range(max(0, int(ks[i])), min(seq_len_kv, int(ke[i]))):
            total = 0.0
            for h in range(heads):
                dot = sum(float(q[i, h, d]) * float(k[j, d]) for d in range(dim))
                total += float(w[i, h]) * max(0.0, dot)
            out[i][j] = float(k_scale[j]) * total
    return torch.tensor(out, dtype=torch.float64)


def test_mqa_logits_hand_made_exact():
    gen = torch.Generator().manual_seed(1)
    seq_len, seq_len_kv, heads, dim = 5, 9, 3, 4
    q = small_ints(seq_len, heads, dim, gen=gen)
    k = small_ints(seq_len_kv, dim, gen=gen)
    k_scale = torch.tensor([2.0 ** (i % 3 - 1) for i in range(seq_len_kv)])
    w = small_ints(seq_len, heads, gen=gen)
    ks = torch.tensor([0, 2, 4, 9, 3], dtype=torch.int32)  # row 3: empty at the end
    ke = torch.tensor([9, 5, 4, 9, 8], dtype=torch.int32)  # row 2: empty (ks == ke)
    got = ref.mqa_logits(q.to(FP8), k.to(FP8), k_scale, w, ks, ke)
    want = loop_mqa_logits(q, k, k_scale, w, ks, ke)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got, want)  # small integers and powers of two: exact in float64


def test_mqa_logits_bad_ranges_are_clipped_not_crashing():
    q = torch.ones(3, 2, 4)
    k = torch.ones(6, 4)
    ks = torch.tensor([-5, 4, 2], dtype=torch.int32)
    ke = torch.tensor([2, 1, 100], dtype=torch.int32)  # row 1: ks > ke; row 2: ke > S_kv
    out = ref.mqa_logits(q, k, torch.ones(6), torch.ones(3, 2), ks, ke)
    assert torch.isfinite(out[0, :2]).all() and torch.isinf(out[0, 2:]).all()
    assert torch.isinf(out[1]).all()
    assert torch.isinf(out[2, :2]).all() and torch.isfinite(out[2, 2:]).all()
    assert float(out[0, 0]) == 2 * 4.0


def test_mqa_logits_unclean_is_zero_outside():
    q, k = torch.ones(2, 2, 4), torch.ones(3, 4)
    ks = torch.tensor([0, 1], dtype=torch.int32)
    ke = torch.tensor([1, 2], dtype=torch.int32)
    out = ref.mqa_logits(q, k, torch.ones(3), torch.ones(2, 2), ks, ke, clean_logits=False)
    assert torch.equal(out, torch.tensor([[8.0, 0, 0], [0, 8.0, 0]], dtype=torch.float64))


def test_mqa_logits_negative_weights_and_relu():
    # One head has a negative score (cut by the ReLU), one a negative weight.
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [1, 2, 2]
    k = torch.tensor([[2.0, -3.0]])  # head 0 score 2, head 1 score -3
    w = torch.tensor([[-0.5, 10.0]])
    out = ref.mqa_logits(q, k, torch.tensor([4.0]), w, torch.tensor([0], dtype=torch.int32),
                         torch.tensor([1], dtype=torch.int32))
    assert float(out[0, 0]) == 4.0 * (-0.5 * 2.0)


def test_public_fp8_mqa_logits_cpu_matches_reference_and_layout():
    gen = torch.Generator().manual_seed(2)
    seq_len, seq_len_kv, heads, dim = 6, 70, 32, 32
    q = small_ints(seq_len, heads, dim, gen=gen).to(FP8)
    k = small_ints(seq_len_kv, dim, gen=gen).to(FP8)
    k_scale = torch.rand(seq_len_kv, generator=gen) + 0.5
    w = torch.randn(seq_len, heads, generator=gen)
    ks = torch.tensor([0, 1, 5, 60, 70, 0], dtype=torch.int32)
    ke = torch.tensor([70, 2, 64, 70, 70, 0], dtype=torch.int32)
    out = idx.fp8_mqa_logits(q, (k, k_scale), w, ks, ke)
    assert out.shape == (seq_len, seq_len_kv) and out.dtype == torch.float32
    assert out.stride() == (seq_len_kv + 256 + (-(seq_len_kv + 256)) % 4, 1)
    want = ref.mqa_logits(q, k, k_scale, w, ks, ke).float()
    assert torch.equal(torch.isinf(out), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(out[finite], want[finite], rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Paged reference and cache layout
# ---------------------------------------------------------------------------------------------------------------


def test_pack_unpack_roundtrip_and_byte_layout():
    gen = torch.Generator().manual_seed(3)
    values = small_ints(3, 64, 32, gen=gen).to(FP8)
    scales = torch.rand(3, 64, generator=gen)
    cache = ref.pack_paged_kv_cache(values, scales)
    assert cache.shape == (3, 64, 1, 36) and cache.dtype == torch.uint8
    raw = cache.view(3, -1)
    # Block 1, token 5: vector at byte 5 * D, scale at byte 64 * D + 4 * 5.
    assert torch.equal(raw[1, 5 * 32:6 * 32], values[1, 5].view(torch.uint8))
    assert torch.equal(raw[1, 64 * 32 + 20:64 * 32 + 24], scales[1, 5:6].view(torch.uint8))
    v2, s2 = ref.unpack_paged_kv_cache(cache)
    assert torch.equal(v2.view(torch.uint8), values.view(torch.uint8)) and torch.equal(s2, scales)


def test_unpack_honours_block_pitch():
    values = small_ints(2, 64, 32).to(FP8)
    scales = torch.rand(2, 64)
    packed = ref.pack_paged_kv_cache(values, scales).view(2, -1)
    wide = torch.zeros(2, 64 * 36 + 64, dtype=torch.uint8)
    wide[:, : 64 * 36] = packed
    cache = torch.as_strided(wide, (2, 64, 1, 36), (64 * 36 + 64, 36, 36, 1))
    v2, s2 = ref.unpack_paged_kv_cache(cache)
    assert torch.equal(v2.view(torch.uint8), values.view(torch.uint8)) and torch.equal(s2, scales)


def loop_paged(q, values, scales, w, ctx, table, max_len):
    """Spec section 8.5 pseudo-code, as loops."""
    batch, next_n, heads, dim = q.shape
    out = torch.full((batch * next_n, max_len), -math.inf, dtype=torch.float64)
    for b in range(batch):
        for r in range(next_n):
            last = int(ctx[b]) - next_n + r
            for j in range(0, last + 1):
                blk, t = int(table[b, j // 64]), j % 64
                kv = values[blk, t].double() * float(scales[blk, t])
                out[b * next_n + r, j] = sum(float(w[b * next_n + r, h]) * max(0.0, float(q[b, r, h].double() @ kv))
                                             for h in range(heads))
    return out


@pytest.mark.parametrize("next_n", [1, 2])
def test_paged_reference_hand_made(next_n):
    gen = torch.Generator().manual_seed(4 + next_n)
    batch, heads, dim, num_blocks = 3, 2, 4, 7
    q = small_ints(batch, next_n, heads, dim, gen=gen)
    values = small_ints(num_blocks, 64, dim, gen=gen)
    scales = torch.tensor([[2.0 ** ((b + t) % 3 - 1) for t in range(64)] for b in range(num_blocks)])
    w = small_ints(batch * next_n, heads, gen=gen)
    ctx = torch.tensor([1 + next_n, 64, 130], dtype=torch.int32)  # one token (+next_n), a full block, 3 blocks
    table = torch.tensor([[6, 0, 0], [2, 0, 0], [5, 1, 3]], dtype=torch.int32)  # random block order
    max_len = 192
    cache = ref.pack_paged_kv_cache(values.to(FP8), scales)
    got = ref.paged_mqa_logits(q.to(FP8), cache, w, ctx, table, max_len)
    want = loop_paged(q, values, scales, w, ctx, table, max_len)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got, want)


def test_paged_reference_invalid_block_gives_nan():
    q = torch.ones(1, 1, 2, 4)
    cache = ref.pack_paged_kv_cache(torch.ones(2, 64, 4).to(FP8), torch.ones(2, 64))
    out = ref.paged_mqa_logits(q, cache, torch.ones(1, 2), torch.tensor([100], dtype=torch.int32),
                               torch.tensor([[1, 9]], dtype=torch.int32), 128)
    assert torch.isfinite(out[0, :64]).all() and torch.isnan(out[0, 64:100]).all() and torch.isinf(out[0, 100:]).all()


# ---------------------------------------------------------------------------------------------------------------
# Metadata: reference on hand-made cases, and a CPU model of the kernel's two-pass algorithm
# ---------------------------------------------------------------------------------------------------------------


def meta(lens, num_sms, block_kv=64):
    return ref.paged_mqa_logits_metadata(torch.tensor(lens, dtype=torch.int32), block_kv, num_sms).tolist()


def test_metadata_hand_made():
    # segs = [4, 2, 20], T = 26, 4 SMs -> runs of 7, 7, 6, 6 items starting at 0, 7, 14, 20.
    assert meta([1000, 300, 5000], 4) == [[0, 0], [2, 1], [2, 8], [2, 14], [3, 0]]
    # Fewer items than SMs: one item each, then empty SMs at (B, 0).
    assert meta([256, 256], 4) == [[0, 0], [1, 0], [2, 0], [2, 0], [2, 0]]
    # Empty sequences are skipped; nothing to do at all.
    assert meta([0, 0], 3) == [[2, 0]] * 4
    assert meta([], 2) == [[0, 0]] * 3
    assert meta([0, 257, 0, 1], 2) == [[1, 0], [3, 0], [4, 0]]
    # A block_kv other than 64 changes the split (4 * block_kv tokens).
    assert meta([512], 2, block_kv=32) == [[0, 0], [0, 2], [1, 0]]


def kernel_model_metadata(lens, split, num_sms, num_threads):
    """Python model of smxx_paged_mqa_logits_metadata_impl: per-thread runs, exclusive scan, closed-form rows. With
    num_threads >= len(lens) (one sequence per thread) it is also the model of ..._metadata_batch_impl."""
    batch = len(lens)
    segs = [(max(x, 0) + split - 1) // split for x in lens]
    per = (batch + num_threads - 1) // num_threads
    runs = [(min(t * per, batch), min(min(t * per, batch) + per, batch)) for t in range(num_threads)]
    local = [sum(segs[b0:b1]) for b0, b1 in runs]
    total = sum(local)
    q, r = divmod(total, num_sms)

    def start(s):
        return s * q + min(s, r)

    def first_row(lo):
        if q == 0:
            return lo
        if lo <= r * (q + 1):
            return -(-lo // (q + 1))
        return r + -(-(lo - r * (q + 1)) // q)

    out = [None] * (num_sms + 1)
    for s in range(num_sms + 1):
        if start(s) >= total:
            assert out[s] is None
            out[s] = [batch, 0]
    running = 0
    for b0, b1 in runs:
        for b in range(b0, b1):
            lo, hi = running, running + segs[b]
            s = first_row(lo) if lo < hi else num_sms + 1
            while s <= num_sms and start(s) < hi:
                assert out[s] is None, "a row written twice"
                out[s] = [b, start(s) - lo]
                s += 1
            running = hi
    assert all(row is not None for row in out), "a row never written"
    return out


@pytest.mark.parametrize("seed", range(40))
def test_metadata_kernel_algorithm_matches_reference(seed):
    rnd = random.Random(seed)
    batch = rnd.choice([0, 1, 2, 5, 64, 130, 1000])
    hi = rnd.choice([1, 300, 8192, 70000])
    lens = [rnd.choice([0, rnd.randint(1, hi)]) if seed % 3 == 0 else rnd.randint(-2, hi) for _ in range(batch)]
    num_sms = rnd.choice([1, 3, 78, 132])
    num_threads = rnd.choice([32, 256, 512])
    want = meta(lens, num_sms)
    assert kernel_model_metadata(lens, 256, num_sms, num_threads) == want


def paged_walk(meta_rows, lens, max_context_len, table_width, cta):
    """Python model of PagedWalker in sm90_fp8_paged_mqa_logits.cuh: the segments one CTA processes."""
    batch = len(lens)

    def clamp_index(v):
        return 0 if v <= 0 else min(v, batch)

    def clamped_len(b):
        return 0 if lens[b] <= 0 else min(lens[b], max_context_len, table_width * 64)

    b, s = clamp_index(meta_rows[cta][0]), max(meta_rows[cta][1], 0)
    b_end, s_end = clamp_index(meta_rows[cta + 1][0]), max(meta_rows[cta + 1][1], 0)
    segments = []
    while b < batch and (b < b_end or (b == b_end and s < s_end)):
        length = clamped_len(b)
        splits = -(-length // 256)
        stop = min(s_end, splits) if b == b_end else splits
        if s < stop:
            segments.append((b, s * 4, -(-min(stop * 256, length) // 64), stop == splits))
        b, s = b + 1, 0
    return segments


@pytest.mark.parametrize("seed", range(20))
def test_paged_work_split_covers_every_block_once(seed):
    rnd = random.Random(100 + seed)
    batch = rnd.choice([1, 3, 64, 128])
    max_len = rnd.choice([64, 1000, 8192])
    lens = [rnd.randint(1, max_len) for _ in range(batch)]
    num_sms = rnd.choice([1, 7, 132])
    rows = meta(lens, num_sms)
    seen, tails = {}, {}
    for cta in range(num_sms):
        for b, lo, hi, owns_tail in paged_walk(rows, lens, max_len, 10**6, cta):
            for blk in range(lo, hi):
                seen[(b, blk)] = seen.get((b, blk), 0) + 1
            if owns_tail:
                tails[b] = tails.get(b, 0) + 1
    want = {(b, blk): 1 for b in range(batch) for blk in range(-(-lens[b] // 64))}
    assert seen == want
    assert tails == {b: 1 for b in range(batch)}


def test_paged_work_split_survives_garbage_schedule():
    lens = [100, 5000, 3]
    garbage = [[7, -3], [-1, 99], [2, 1 << 30], [3, 0]]
    for cta in range(3):
        segs = paged_walk(garbage, lens, 8192, 100, cta)
        assert len(segs) <= len(lens)
        for b, lo, hi, _ in segs:
            assert 0 <= b < len(lens) and 0 <= lo <= hi <= -(-lens[b] // 64)


def paged_dynamic_split(lens, max_context_len, table_width, ctas, rnd):
    """Python model of the dynamic split of sm90_fp8_paged_mqa_logits.cuh (prefix table, static share, pool
    claims, paged_emit_items), with the CTAs' claims interleaved in a random order: the segments of every CTA."""
    batch = len(lens)

    def clamped_len(b):
        return 0 if lens[b] <= 0 else min(lens[b], max_context_len, table_width * 64)

    prefix = [0]
    for b in range(batch):
        prefix.append(prefix[-1] + -(-clamped_len(b) // 256))
    total = prefix[-1]

    def emit(lo, hi, out):
        b = max(i for i in range(batch + 1) if prefix[i] <= lo) if batch else 0
        while lo < hi and b < batch:
            first, nxt = prefix[b], prefix[b + 1]
            if nxt <= lo:
                b += 1
                continue
            end = min(hi, nxt)
            out.append((b, (lo - first) * 4, -(-min((end - first) * 256, clamped_len(b)) // 64), end == nxt))
            lo, b = end, b + 1

    share = total // ctas * 3 // 4
    segments = [[] for _ in range(ctas)]
    for c in range(ctas):
        if share:
            emit(c * share, (c + 1) * share, segments[c])
    pool, counter = ctas * share, 0
    seen = [pool] * ctas
    active = list(range(ctas))
    while active:
        c = rnd.choice(active)
        size = max(1, min(max(total - seen[c], 0) // (2 * ctas), 8))
        lo = pool + counter
        counter += size
        if lo >= total:
            active.remove(c)
            continue
        seen[c] = lo
        emit(lo, min(lo + size, total), segments[c])
    return segments


@pytest.mark.parametrize("seed", range(30))
def test_paged_dynamic_split_covers_every_block_once(seed):
    rnd = random.Random(500 + seed)
    batch = rnd.choice([1, 3, 64, 128, 300])
    max_len = rnd.choice([64, 1000, 8192, 70000])
    lens = [rnd.choice([0, -3, rnd.randint(1, max_len)]) if seed % 4 == 0 else rnd.randint(1, max_len)
            for _ in range(batch)]
    ctas = rnd.choice([1, 7, 132])
    width = rnd.choice([10**6, 3])
    seen, tails = {}, {}
    for per_cta in paged_dynamic_split(lens, max_len, width, ctas, rnd):
        for b, lo, hi, owns_tail in per_cta:
            assert lo < hi
            for blk in range(lo, hi):
                seen[(b, blk)] = seen.get((b, blk), 0) + 1
            if owns_tail:
                tails[b] = tails.get(b, 0) + 1
    clamped = [0 if n <= 0 else min(n, max_len, width * 64) for n in lens]
    want = {(b, blk): 1 for b in range(batch) for blk in range(-(-clamped[b] // 64))}
    assert seen == want
    assert tails == {b: 1 for b in range(batch) if clamped[b] > 0}


def test_public_metadata_cpu():
    lens = torch.tensor([1000, 300, 5000], dtype=torch.int32)
    out = idx.get_paged_mqa_logits_metadata(lens, 64, 4)
    assert out.dtype == torch.int32 and out.shape == (5, 2)
    assert out.tolist() == [[0, 0], [2, 1], [2, 8], [2, 14], [3, 0]]


def test_public_paged_cpu_matches_reference_and_layout():
    gen = torch.Generator().manual_seed(9)
    batch, next_n, heads, dim, num_blocks = 2, 2, 32, 64, 6
    q = small_ints(batch, next_n, heads, dim, gen=gen).to(FP8)
    cache = ref.pack_paged_kv_cache(small_ints(num_blocks, 64, dim, gen=gen).to(FP8), torch.rand(num_blocks, 64))
    w = torch.randn(batch * next_n, heads, generator=gen)
    ctx = torch.tensor([70, 200], dtype=torch.int32)
    table = torch.tensor([[3, 0, 0, 0], [5, 1, 2, 0]], dtype=torch.int32)
    sched = idx.get_paged_mqa_logits_metadata(ctx, 64, 3)
    out = idx.fp8_paged_mqa_logits(q, cache, w, ctx, table, sched, 200, clean_logits=True)
    assert out.shape == (4, 200) and out.stride() == (256, 1)
    want = ref.paged_mqa_logits(q, cache, w, ctx, table, 200).float()
    assert torch.equal(torch.isinf(out), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(out[finite], want[finite], rtol=1e-6, atol=1e-4)


def prefill_writes(ks, ke, seq_len, seq_len_kv, heads, q_rows=256, grid=7):
    """Python model of sm90_fp8_mqa_logits_impl's stores with clean=True: which positions each CTA writes."""
    num_q = q_rows // heads
    writes = torch.zeros(seq_len, seq_len_kv, dtype=torch.int64)
    scored = torch.zeros(seq_len, seq_len_kv, dtype=torch.bool)
    groups = -(-seq_len // num_q)
    for cta in range(grid):
        for g in range(cta, groups, grid):
            q0 = g * num_q
            lo, hi = [0] * num_q, [0] * num_q
            u_lo, u_hi = seq_len_kv, 0
            for q in range(num_q):
                if q0 + q < seq_len:
                    s, e = int(ks[q0 + q]), int(ke[q0 + q])
                    lo[q] = 0 if s <= 0 else min(s, seq_len_kv)
                    hi[q] = max(0 if e <= 0 else min(e, seq_len_kv), lo[q])
                if hi[q] > lo[q]:
                    u_lo, u_hi = min(u_lo, lo[q]), max(u_hi, hi[q])
            first = u_lo if u_hi > u_lo else 0
            tiles = -(-(u_hi - u_lo) // 64) if u_hi > u_lo else 0
            for q in range(num_q):
                if q0 + q >= seq_len:
                    continue
                for key in range(first, min(first + 64 * tiles, seq_len_kv)):
                    writes[q0 + q, key] += 1
                    scored[q0 + q, key] = lo[q] <= key < hi[q]
                tiles_lo, tiles_hi = (first, min(first + 64 * tiles, seq_len_kv)) if tiles else (0, 0)
                writes[q0 + q, :tiles_lo] += 1
                writes[q0 + q, tiles_hi:] += 1
    return writes, scored


@pytest.mark.parametrize("heads", [32, 64, 128])
@pytest.mark.parametrize("seed", range(4))
def test_prefill_writes_every_position_once(heads, seed):
    gen = torch.Generator().manual_seed(seed)
    seq_len, seq_len_kv = 37, 300
    ks = torch.randint(-50, 350, (seq_len,), generator=gen, dtype=torch.int32)
    ke = torch.randint(-50, 350, (seq_len,), generator=gen, dtype=torch.int32)
    ks[:5], ke[:5] = 0, seq_len_kv
    writes, scored = prefill_writes(ks, ke, seq_len, seq_len_kv, heads)
    assert bool((writes == 1).all())
    want = torch.isfinite(ref.mqa_logits(torch.ones(seq_len, 1, 1), torch.ones(seq_len_kv, 1), torch.ones(seq_len_kv),
                                         torch.ones(seq_len, 1), ks, ke))
    assert torch.equal(scored, want)


@pytest.mark.parametrize("heads, num_q", [(32, 8), (64, 4), (128, 2), (64, 1), (128, 1), (32, 2)])
def test_head_sum_fragment_mapping_model(heads, num_q):
    """Python model of relu_weighted_head_sum and is_store_lane over the wgmma m64nN accumulator layout (element j
    of thread t: row 16*(t/32) + (t%32)/4 + 8*((j/2)%2), column 8*(j/4) + 2*(t%4) + j%2): every (key, query)
    value is stored exactly once, by one lane, and equals the direct ReLU-weighted head sum."""
    gen = torch.Generator().manual_seed(heads + num_q)
    n = heads * num_q
    scores = torch.randn(64, n, generator=gen, dtype=torch.float64)
    w = torch.randn(num_q, heads, generator=gen, dtype=torch.float64)
    want = (scores.clamp_min(0).view(64, num_q, heads) * w[None]).sum(-1)
    w_slot = w.reshape(-1).tolist()
    partial = {}
    for t in range(128):
        row0 = 16 * (t // 32) + (t % 32) // 4
        acc = [float(scores[row0 + 8 * ((j // 2) % 2), 8 * (j // 4) + 2 * (t % 4) + j % 2]) for j in range(n // 2)]
        col = 2 * (t % 4)
        sums = [[0.0, 0.0] for _ in range(num_q)]
        for q in range(num_q):
            for g in range(heads // 8):
                i = q * (heads // 8) + g
                wx, wy = w_slot[8 * i + col], w_slot[8 * i + col + 1]
                sums[q][0] += max(acc[4 * i], 0.0) * wx + max(acc[4 * i + 1], 0.0) * wy
                sums[q][1] += max(acc[4 * i + 2], 0.0) * wx + max(acc[4 * i + 3], 0.0) * wy
        partial[t] = (row0, sums)
    got = torch.full((64, num_q), float("nan"), dtype=torch.float64)
    for t in range(128):
        row0 = partial[t][0]
        quad = [partial[t - t % 4 + k][1] for k in range(4)]  # the two xor shuffles sum the quad
        for q in range(num_q):
            for half in range(2):
                if (2 * q + half) % 4 == t % 4:
                    assert torch.isnan(got[row0 + 8 * half, q]), "stored twice"
                    got[row0 + 8 * half, q] = sum(s[q][half] for s in quad)
    torch.testing.assert_close(got, want)
