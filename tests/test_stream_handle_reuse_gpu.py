"""Per-stream scratch state across a reused stream handle (GPU).

dg keeps scratch state per (device, stream handle): the FP8 GEMMs' split-K workspace (counters and partial tiles of a
split tail) and the paged indexer's claim counters. A stream destroyed while launches are still queued on it may
hand its handle to the next stream created; launches of that new stream must not share the state with the old
stream's launches still running. Both sides compare the driver's stream id (cuStreamGetId) and wait for the device
when a handle comes back for another stream. These tests queue work on a raw driver stream, destroy it, create
streams until the driver hands the same handle out again (skipped when it does not; on an H100 with driver 580 it
does, with the old launches still queued), launch on the new stream and compare every output with the same call on
torch's default stream. Every launch uses half of the SMs, so that the new stream's launch can run beside the old
ones. NOTE: with the paged call's id check disabled, the outputs still matched in six runs on an H100 (the launches
did not visibly overlap), so the paged test also asserts that the counter under the reused handle now records the
new stream's id, i.e. that the handle's change of stream was noticed. Every tensor used on the old stream stays alive
until the device is idle: torch's caching allocator, which keys its pools by handle too, would otherwise hand a
block freed on the old stream to the new one while the old launches still use it.
"""

from __future__ import annotations

import ctypes

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.sm90]

FP8 = torch.float8_e4m3fn
CU_STREAM_NON_BLOCKING = 1


class _RawStreams:
    """cuStreamCreate / cuStreamDestroy through the driver library (torch's own streams are pooled, never
    destroyed)."""

    def __init__(self) -> None:
        torch.cuda.init()
        torch.cuda.synchronize()  # the primary context is current on this thread from here on
        self._cu = ctypes.CDLL("libcuda.so.1")
        self.live: list[int] = []

    def create(self) -> int:
        handle = ctypes.c_void_p()
        rc = self._cu.cuStreamCreate(ctypes.byref(handle), ctypes.c_uint(CU_STREAM_NON_BLOCKING))
        assert rc == 0, f"cuStreamCreate returned {rc}"
        self.live.append(handle.value)
        return handle.value

    def destroy(self, handle: int) -> None:
        rc = self._cu.cuStreamDestroy_v2(ctypes.c_void_p(handle))
        assert rc == 0, f"cuStreamDestroy returned {rc}"
        self.live.remove(handle)

    def reuse(self, old: int, tries: int = 32) -> int | None:
        """A new stream with handle `old` (destroyed before), or None if the driver hands out another handle `tries`
        times in a row."""
        for _ in range(tries):
            handle = self.create()
            if handle == old:
                return handle
        return None

    def close(self) -> None:
        torch.cuda.synchronize()
        for handle in list(self.live):
            self.destroy(handle)


def _run_across_reuse(queue_old, launch_new):
    """queue_old() on a raw stream that is destroyed right after (its launches still queued), then launch_new() on a
    new stream with the same handle; returns both results once the device is idle, the handle and the new stream's
    driver id (asserted to differ from the old one's: the case the per-stream state must notice)."""
    from dg.core import jit

    raw = _RawStreams()
    device = torch.cuda.current_device()
    try:
        old = raw.create()
        old_id = jit.stream_id(device, old)
        stream = torch.cuda.ExternalStream(old)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            first = queue_old()
        raw.destroy(old)
        new = raw.reuse(old)
        if new is None:
            pytest.skip("the driver did not hand the destroyed stream's handle out again")
        new_id = jit.stream_id(device, new)
        assert new_id != old_id, "a new stream must get a new driver id"
        again = torch.cuda.ExternalStream(new)
        again.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(again):
            second = launch_new()
        torch.cuda.synchronize()
        return first, second, new, new_id
    finally:
        raw.close()


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    got, want = got.double(), want.double()
    finite = torch.isfinite(want)
    assert torch.equal(finite, torch.isfinite(got)), f"{what}: non-finite pattern differs"
    g, w = got[finite], want[finite]
    diff = 1 - 2 * (g * w).sum() / ((g * g).sum() + (w * w).sum()).clamp_min(1e-30)
    assert diff < 1e-6, f"{what}: calc_diff {float(diff):.3g}"


@pytest.fixture
def half_the_sms():
    core = pytest.importorskip("dg.core")
    before = core.get_num_sms()
    half = torch.cuda.get_device_properties(0).multi_processor_count // 2
    core.set_num_sms(half)
    yield half
    core.set_num_sms(before)


def test_gemm_split_tail_across_a_reused_stream_handle(monkeypatch, half_the_sms):
    core = pytest.importorskip("dg.core")
    layout = pytest.importorskip("dg.layout")
    torch.manual_seed(0)
    # 8192x2112x7168 on half the SMs: 704 tiles of 128 x 192, the last 44 cut 3 ways (forced: two rounds of splits).
    monkeypatch.setenv("DG_SM90_FP8_FORCE", "0,0,0,0,0,0,0,3")

    def operands(m, n, k):
        a = (torch.randn(m, k, device="cuda") * 4).to(FP8)
        b = (torch.randn(n, k, device="cuda") * 4).to(FP8)
        sfa = layout.get_mn_major_tma_aligned_tensor(torch.rand(m, k // 128, device="cuda") + 0.5)
        sfb = torch.rand((n + 127) // 128, k // 128, device="cuda") + 0.5
        return (a, sfa), (b, sfb)

    big = operands(8192, 2112, 7168)
    small = operands(8192, 2112, 7168)

    def gemm(ops):
        d = torch.full((8192, 2112), float("nan"), device="cuda", dtype=torch.bfloat16)
        core.fp8_gemm_nt(*ops, d)
        return d

    firsts, second, _, _ = _run_across_reuse(lambda: [gemm(big) for _ in range(6)], lambda: gemm(small))
    want_big, want_small = gemm(big), gemm(small)
    torch.cuda.synchronize()
    for i, d in enumerate(firsts):
        _close(d, want_big, f"old stream, launch {i}")
    _close(second, want_small, "new stream with the old handle")


def test_paged_claim_counter_across_a_reused_stream_handle(half_the_sms):
    idx = pytest.importorskip("dg.indexer")
    ref = pytest.importorskip("dg.indexer.reference")
    torch.manual_seed(0)
    sms = half_the_sms

    def paged_inputs(lens, max_len, heads=64, dim=128):
        batch = len(lens)
        blocks = sum((x + 63) // 64 for x in lens)
        width = (max_len + 63) // 64
        table = torch.zeros(batch, width, dtype=torch.int32, device="cuda")
        perm = torch.randperm(blocks, device="cuda").int()
        at = 0
        for b, x in enumerate(lens):
            n = (x + 63) // 64
            table[b, :n] = perm[at:at + n]
            at += n
        values, scales = ref.quantize_per_token(torch.randn(blocks * 64, dim, device="cuda"))
        cache = ref.pack_paged_kv_cache(values.view(blocks, 64, dim), scales.view(blocks, 64))
        q = torch.randn(batch, 1, heads, dim, device="cuda").to(FP8)
        w = torch.randn(batch, heads, device="cuda")
        lens_t = torch.tensor(lens, dtype=torch.int32, device="cuda")
        return q, cache, w, lens_t, table, max_len

    big = paged_inputs([65536] * 32, 65536)
    small = paged_inputs([100, 7000, 1, 64, 4000], 7000)

    def paged(args):
        # NOTE: returns the schedule too: every tensor of the old stream stays alive until the device is idle
        # (torch's allocator would hand a block freed on the old handle to the new stream at once).
        q, cache, w, lens_t, table, max_len = args
        meta = idx.get_paged_mqa_logits_metadata(lens_t, 64, sms)
        return idx.fp8_paged_mqa_logits(q, cache, w, lens_t, table, meta, max_len, clean_logits=True), meta

    firsts, (second, _), handle, new_id = _run_across_reuse(lambda: [paged(big) for _ in range(8)],
                                                            lambda: paged(small))
    # The new stream's launch found the counter under the reused handle with the old id and took it over.
    from dg.indexer import paged_mqa_logits as paged_module

    assert paged_module._STREAM_COUNTERS[(torch.cuda.current_device(), handle)][0] == new_id
    (want_big, _), (want_small, _) = paged(big), paged(small)
    torch.cuda.synchronize()
    for i, (out, _) in enumerate(firsts):
        assert torch.equal(out, want_big), f"old stream, launch {i}"
    assert torch.equal(second, want_small), "new stream with the old handle"
