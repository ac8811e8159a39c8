"""CPU tests of the argument checks and of checked mode (DG_INDEXER_CHECKED=1)."""

from __future__ import annotations

import dg.indexer as idx
import pytest
import torch
from dg.indexer import reference as ref

FP8 = torch.float8_e4m3fn


def mqa_args(seq_len=4, seq_len_kv=16, heads=32, dim=64):
    q = torch.zeros(seq_len, heads, dim).to(FP8)
    k = torch.zeros(seq_len_kv, dim).to(FP8)
    k_scale = torch.ones(seq_len_kv)
    w = torch.zeros(seq_len, heads)
    ks = torch.zeros(seq_len, dtype=torch.int32)
    ke = torch.full((seq_len,), seq_len_kv, dtype=torch.int32)
    return dict(q=q, kv=(k, k_scale), weights=w, cu_seq_len_k_start=ks, cu_seq_len_k_end=ke)


def with_(args, **changes):
    out = dict(args)
    out.update(changes)
    return out


@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda a: with_(a, q=a["q"].float()), TypeError, ["q", "float8_e4m3fn", "float32"]),
        (lambda a: with_(a, q=a["q"][:, :, None]), ValueError, ["q", "3-D"]),
        (lambda a: with_(a, q=torch.zeros(4, 48, 64).to(FP8), weights=torch.zeros(4, 48)), ValueError,
         ["q", "heads", "48"]),
        (lambda a: with_(a, q=torch.zeros(4, 32, 96).to(FP8), kv=(torch.zeros(16, 96).to(FP8), a["kv"][1])),
         ValueError, ["q", "head_dim", "96"]),
        (lambda a: with_(a, kv=a["kv"][0]), TypeError, ["kv", "pair"]),
        (lambda a: with_(a, kv=(a["kv"][0],)), TypeError, ["kv", "length 1"]),
        (lambda a: with_(a, kv=(a["kv"][0], a["kv"][1].half())), TypeError, ["kv[1]", "float32"]),
        (lambda a: with_(a, kv=(torch.zeros(16, 32).to(FP8), a["kv"][1])), ValueError, ["kv[0]", "head_dim"]),
        (lambda a: with_(a, kv=(a["kv"][0], torch.ones(15))), ValueError, ["kv[1]", "seq_len_kv"]),
        (lambda a: with_(a, weights=torch.zeros(5, 32)), ValueError, ["weights", "seq_len"]),
        (lambda a: with_(a, weights=torch.zeros(32, 4).t()), ValueError, ["weights", "contiguous"]),
        (lambda a: with_(a, weights=a["weights"].double()), TypeError, ["weights", "float32"]),
        (lambda a: with_(a, cu_seq_len_k_start=a["cu_seq_len_k_start"].long()), TypeError,
         ["cu_seq_len_k_start", "int32"]),
        (lambda a: with_(a, cu_seq_len_k_end=torch.zeros(3, dtype=torch.int32)), ValueError,
         ["cu_seq_len_k_end", "seq_len"]),
        (lambda a: with_(a, cu_seq_len_k_end=torch.zeros(8, dtype=torch.int32)[::2]), ValueError,
         ["cu_seq_len_k_end", "contiguous"]),
        (lambda a: with_(a, q=[1, 2]), TypeError, ["q", "torch.Tensor", "list"]),
        (lambda a: with_(a, clean_logits=1), TypeError, ["clean_logits", "bool"]),
    ],
)
def test_fp8_mqa_logits_rejects(change, error, words):
    args = change(mqa_args())
    with pytest.raises(error) as info:
        idx.fp8_mqa_logits(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_fp8_mqa_logits_checked_mode(monkeypatch):
    args = mqa_args()
    args["cu_seq_len_k_start"] = torch.tensor([0, 3, 2, 0], dtype=torch.int32)
    args["cu_seq_len_k_end"] = torch.tensor([16, 2, 5, 16], dtype=torch.int32)  # row 1: ks > ke
    monkeypatch.delenv("DG_INDEXER_CHECKED", raising=False)
    idx.fp8_mqa_logits(**args)  # unchecked: clamped, no error
    monkeypatch.setenv("DG_INDEXER_CHECKED", "1")
    with pytest.raises(ValueError, match=r"row 1 has ks=3, ke=2"):
        idx.fp8_mqa_logits(**args)
    args["cu_seq_len_k_end"] = torch.tensor([16, 17, 5, 16], dtype=torch.int32)
    args["cu_seq_len_k_start"] = torch.zeros(4, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"row 1 .*seq_len_kv=16"):
        idx.fp8_mqa_logits(**args)
    args["cu_seq_len_k_end"] = torch.tensor([16, 16, 5, 16], dtype=torch.int32)
    args["cu_seq_len_k_start"] = torch.tensor([0, -1, 0, 0], dtype=torch.int32)
    with pytest.raises(ValueError, match="DG_INDEXER_CHECKED"):
        idx.fp8_mqa_logits(**args)
    monkeypatch.setenv("DG_INDEXER_CHECKED", "0")
    idx.fp8_mqa_logits(**args)


def paged_args(batch=2, next_n=1, heads=32, dim=64, num_blocks=4, max_len=128):
    q = torch.zeros(batch, next_n, heads, dim).to(FP8)
    cache = ref.pack_paged_kv_cache(torch.zeros(num_blocks, 64, dim).to(FP8), torch.ones(num_blocks, 64))
    w = torch.zeros(batch * next_n, heads)
    ctx = torch.full((batch,), 100, dtype=torch.int32)
    table = torch.arange(batch * 2, dtype=torch.int32).view(batch, 2) % num_blocks
    sched = ref.paged_mqa_logits_metadata(ctx, 64, 3)
    return dict(q=q, kv_cache=cache, weights=w, context_lens=ctx, block_table=table, schedule_meta=sched,
                max_context_len=max_len)


@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda a: with_(a, q=torch.zeros(2, 3, 32, 64).to(FP8), weights=torch.zeros(6, 32)), ValueError,
         ["q", "next_n", "3"]),
        (lambda a: with_(a, q=a["q"].view(2, 32, 64)), ValueError, ["q", "4-D"]),
        (lambda a: with_(a, kv_cache=a["kv_cache"].view(torch.int8)), TypeError, ["kv_cache", "uint8"]),
        (lambda a: with_(a, kv_cache=torch.zeros(4, 32, 1, 68, dtype=torch.uint8)), ValueError,
         ["kv_cache", "block_kv"]),
        (lambda a: with_(a, kv_cache=torch.zeros(4, 64, 2, 68, dtype=torch.uint8)), ValueError,
         ["kv_cache", "num_heads_kv"]),
        (lambda a: with_(a, kv_cache=torch.zeros(4, 64, 1, 64, dtype=torch.uint8)), ValueError,
         ["kv_cache", "head_dim + 4"]),
        (lambda a: with_(a, kv_cache=torch.zeros(0, 64, 1, 68, dtype=torch.uint8)), ValueError,
         ["kv_cache", "at least one block"]),
        (lambda a: with_(a, kv_cache=torch.as_strided(torch.zeros(4 * 64 * 68 + 8, dtype=torch.uint8),
                                                      (4, 64, 1, 68), (64 * 68 + 2, 68, 68, 1))), ValueError,
         ["kv_cache", "multiple of 16"]),
        (lambda a: with_(a, weights=torch.zeros(3, 32)), ValueError, ["weights", "batch * next_n"]),
        (lambda a: with_(a, weights=torch.zeros(2, 64)), ValueError, ["weights", "heads"]),
        (lambda a: with_(a, context_lens=torch.zeros(3, dtype=torch.int32)), ValueError, ["context_lens", "batch"]),
        (lambda a: with_(a, context_lens=a["context_lens"].view(2, 1)), ValueError, ["context_lens", "1-D"]),
        (lambda a: with_(a, block_table=a["block_table"].t().contiguous().t()), ValueError,
         ["block_table", "stride(1)"]),
        (lambda a: with_(a, block_table=a["block_table"].long()), TypeError, ["block_table", "int32"]),
        (lambda a: with_(a, schedule_meta=torch.zeros(4, 3, dtype=torch.int32)), ValueError,
         ["schedule_meta", "num_sms + 1, 2"]),
        (lambda a: with_(a, max_context_len=128.0), TypeError, ["max_context_len", "int"]),
        (lambda a: with_(a, max_context_len=-1), ValueError, ["max_context_len", ">= 0"]),
        (lambda a: with_(a, clean_logits=None), TypeError, ["clean_logits", "bool"]),
    ],
)
def test_fp8_paged_mqa_logits_rejects(change, error, words):
    args = change(paged_args())
    with pytest.raises(error) as info:
        idx.fp8_paged_mqa_logits(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_paged_accepts_wide_block_pitch_and_strided_table():
    args = paged_args()
    wide = torch.zeros(4, 64 * 68 + 64, dtype=torch.uint8)
    wide[:, : 64 * 68] = args["kv_cache"].view(4, -1)
    args["kv_cache"] = torch.as_strided(wide, (4, 64, 1, 68), (64 * 68 + 64, 68, 68, 1))
    args["block_table"] = torch.zeros(2, 5, dtype=torch.int32)[:, :2]
    out = idx.fp8_paged_mqa_logits(**args)
    assert out.shape == (2, 128)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda a: with_(a, context_lens=torch.tensor([100, 0], dtype=torch.int32)), ["context_lens", "entry 1"]),
        (lambda a: with_(a, context_lens=torch.tensor([129, 1], dtype=torch.int32)), ["context_lens", "entry 0"]),
        (lambda a: with_(a, block_table=torch.tensor([[0, 1], [2, 4]], dtype=torch.int32)),
         ["block_table", "[1, 1]", "is 4"]),
        (lambda a: with_(a, block_table=torch.tensor([[0, -1], [2, 3]], dtype=torch.int32)),
         ["block_table", "[0, 1]"]),
        (lambda a: with_(a, block_table=torch.zeros(2, 1, dtype=torch.int32)), ["block_table", "needs 2"]),
        (lambda a: with_(a, schedule_meta=ref.paged_mqa_logits_metadata(torch.tensor([300, 1], dtype=torch.int32),
                                                                         64, 3)), ["schedule_meta", "match"]),
    ],
)
def test_fp8_paged_mqa_logits_checked_mode(monkeypatch, change, words):
    args = change(paged_args())
    monkeypatch.delenv("DG_INDEXER_CHECKED", raising=False)
    idx.fp8_paged_mqa_logits(**args)  # unchecked: guarded, no error
    monkeypatch.setenv("DG_INDEXER_CHECKED", "1")
    with pytest.raises(ValueError) as info:
        idx.fp8_paged_mqa_logits(**args)
    for word in words + ["DG_INDEXER_CHECKED"]:
        assert word in str(info.value), (word, str(info.value))


def test_checked_mode_passes_valid_inputs(monkeypatch):
    monkeypatch.setenv("DG_INDEXER_CHECKED", "1")
    idx.fp8_paged_mqa_logits(**paged_args())
    idx.fp8_mqa_logits(**mqa_args())


@pytest.mark.parametrize(
    "args, error, words",
    [
        ((torch.zeros(3, dtype=torch.int64), 64, 132), TypeError, ["context_lens", "int32"]),
        ((torch.zeros(3, 1, dtype=torch.int32), 64, 132), ValueError, ["context_lens", "1-D"]),
        ((torch.zeros(6, dtype=torch.int32)[::2], 64, 132), ValueError, ["context_lens", "contiguous"]),
        ((torch.zeros(3, dtype=torch.int32), 0, 132), ValueError, ["block_kv", ">= 1"]),
        ((torch.zeros(3, dtype=torch.int32), 64, 0), ValueError, ["num_sms", ">= 1"]),
        ((torch.zeros(3, dtype=torch.int32), 64.0, 132), TypeError, ["block_kv", "int"]),
        (([1, 2], 64, 132), TypeError, ["context_lens", "torch.Tensor"]),
    ],
)
def test_metadata_rejects(args, error, words):
    with pytest.raises(error) as info:
        idx.get_paged_mqa_logits_metadata(*args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_validated_signature_skips_only_identical_calls():
    # A call whose signature (types, dtypes, shapes, strides, devices, base alignment, scalars) passed the checks
    # skips them; any change in what a check reads runs them again.
    args = mqa_args()
    idx.fp8_mqa_logits(**args)
    idx.fp8_mqa_logits(**args)
    bad = [
        (with_(args, weights=torch.zeros(32, 4).t()), ValueError),
        (with_(args, q=args["q"].float()), TypeError),
        (with_(args, clean_logits=1), TypeError),
        (with_(args, kv=(args["kv"][0], args["kv"][1].double())), TypeError),
    ]
    for changed, error in bad:
        with pytest.raises(error):
            idx.fp8_mqa_logits(**changed)
    p = paged_args()
    idx.fp8_paged_mqa_logits(**p)
    with pytest.raises(TypeError):
        idx.fp8_paged_mqa_logits(**with_(p, max_context_len=float(p["max_context_len"])))
    with pytest.raises(TypeError):
        idx.fp8_paged_mqa_logits(**with_(p, clean_logits=int(p.get("clean_logits", False))))


def test_signature_holds_base_alignment_and_scalar_types():
    from dg.indexer._checks import ValidatedSignatures

    buf = torch.zeros(64, dtype=torch.uint8)
    a, b = buf[0:32], buf[1:33]  # same dtype, shape, strides and device; base addresses 1 byte apart
    assert ValidatedSignatures.of((a,), ()) != ValidatedSignatures.of((b,), ())
    assert ValidatedSignatures.of((a,), (1,)) != ValidatedSignatures.of((a,), (True,))
    assert ValidatedSignatures.of(([1, 2],), ()) is None
    seen = ValidatedSignatures(limit=2)
    keys = [ValidatedSignatures.of((a,), (i,)) for i in range(3)]
    for k in keys:
        seen.add(k)
    assert keys[2] in seen and None not in seen
    assert ValidatedSignatures.of((a,), ([1],)) not in seen  # unhashable scalar: not a hit, no error


def test_plan_cache_is_bounded_and_never_fails_on_odd_keys():
    from dg.indexer._jit import PlanCache

    plans = PlanCache(limit=2)
    plans.put(("a",), 1)
    plans.put(("b",), 2)
    assert plans.get(("a",)) == 1 and plans.get(("b",)) == 2
    plans.put(("c",), 3)  # over the limit: cleared, then stored
    assert plans.get(("a",)) is None and plans.get(("c",)) == 3
    plans.put(None, 4)  # no signature (an argument that is not a tensor): nothing stored
    assert plans.get(None) is None
    plans.put(([1],), 5)  # unhashable: ignored, not an error
    assert plans.get(([1],)) is None


def test_metadata_signature_change_reruns_the_checks():
    # The metadata entry memoises its checked signatures too: a changed type or value is checked again.
    lens = torch.tensor([10, 300, 0], dtype=torch.int32)
    idx.get_paged_mqa_logits_metadata(lens, 64, 132)
    with pytest.raises(TypeError, match="block_kv"):
        idx.get_paged_mqa_logits_metadata(lens, 64.0, 132)
    with pytest.raises(ValueError, match="num_sms"):
        idx.get_paged_mqa_logits_metadata(lens, 64, 0)
    with pytest.raises(TypeError, match="dtype"):
        idx.get_paged_mqa_logits_metadata(lens.long(), 64, 132)


def test_claim_counter_follows_the_stream_id_behind_a_reused_handle(monkeypatch):
    # Eager claim counters are kept by (device, stream handle) and remember the driver's stream id: the same stream
    # gets its counter back with no wait; a handle that comes back for a new stream (another id) first waits for the
    # device, then keeps the counter; another handle gets its own counter.
    from dg.indexer import paged_mqa_logits as paged

    stream = {"handle": 0x1000, "id": 7}
    syncs = []
    monkeypatch.setattr(paged, "_STREAM_COUNTERS", {})
    monkeypatch.setattr(paged, "_capturing", lambda: False)
    monkeypatch.setattr(paged._jit, "current_stream_and_id", lambda index: (stream["handle"], stream["id"]))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    cpu = torch.device("cpu")

    first = paged._claim_counter(cpu, 0)
    assert first.shape == (2,) and first.dtype == torch.int32 and not first.any()
    assert paged._claim_counter(cpu, 0) is first and syncs == []
    stream["id"] = 8  # the handle now names a new stream
    assert paged._claim_counter(cpu, 0) is first and syncs == [cpu]
    assert paged._claim_counter(cpu, 0) is first and syncs == [cpu]
    stream.update(handle=0x2000, id=9)
    other = paged._claim_counter(cpu, 0)
    assert other is not first and syncs == [cpu]
    assert paged._claim_counter(cpu, 1) is not other  # another device
