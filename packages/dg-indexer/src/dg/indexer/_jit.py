"""JIT glue of the indexer kernels: which template instance to compile, its launch shape and shared memory.

The three kernel families (one stem each, see STYLE.md habit 1):

``sm90_fp8_mqa_logits``
    non-paged logits, ``impls/sm90_fp8_mqa_logits.cuh``.
``sm90_fp8_paged_mqa_logits``
    paged logits, ``impls/sm90_fp8_paged_mqa_logits.cuh``.
``smxx_paged_mqa_logits_metadata``
    the split of the paged work across SMs, ``impls/smxx_paged_mqa_logits_metadata.cuh``.

Shared-memory sizes are computed here with the same formula as the kernels' ``kSmemBytes``; the kernels trap
if they are launched with less than they need, so a mismatch cannot corrupt memory.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

# Threads: one producer warpgroup (TMA) plus math warpgroups. The prefill kernel has four, in two pairs that take turns
# on the key tiles; the two warpgroups of a pair split the 256 Q rows of the query group (68 accumulators per thread
# each: 64 head columns and 4 of the linear-term columns). NOTE: a prefill tile is a dependent chain per warpgroup
# (wgmma, head sum on the CUDA cores, stores), and four math warps per scheduler hide its latency far better than two
# (perf log dg.indexer v4, v5). The paged kernel has four math warpgroups when its query group has at most 128 Q rows
# (at most 64 accumulators, which fit the 104 registers of four math warpgroups), else two. NOTE: the paged kernel is
# bound by HBM bandwidth only while its math warpgroups keep up with the loads; a warpgroup's tile is a dependent chain
# (wait, wgmma, head sum, stores), so more warpgroups in turn raise the tiles per second an SM retires.
PREFILL_MATH_WARPGROUPS = 4
NUM_THREADS = 128 * (1 + PREFILL_MATH_WARPGROUPS)  # the prefill kernel (the paged spec carries its own count)
# Keys per tile (one wgmma M of 64 rows) and per block of the paged cache.
BLOCK_KV = 64
# Query rows (query x head) of a non-paged query group, loaded as two TMA boxes of 128 rows, one per warpgroup of a
# math pair (N = 128 head rows each, plus the linear-term rows). NOTE: each key tile is read once for all 256 rows
# (four queries at 64 heads).
Q_ROWS = 256
# Key-tile stages: as many as fit in SMEM_BUDGET, at most MAX_STAGES. NOTE: the paged kernel is bound by HBM
# bandwidth, and the bytes in flight per SM (stages x 64 x D) are what hides the memory latency.
MAX_STAGES = 16
SMEM_BUDGET = 200 * 1024
# Metadata kernel threads. NOTE: measured on an H100 (B = 32..128, cold L2): 512 threads (one sequence per thread,
# rows written in parallel) beat one warp (a few sequences per lane, fewer barriers) by 0.1-0.4 us; the pass over
# its run is a dependent chain per thread, so more threads are shorter chains. Up to 256 sequences, a 256-thread CTA
# is 0.23-0.26 us faster again (4.35 against 4.58 us at B = 64 and 128; an empty launch 3.23 us the same way); at
# B = 1000 it is 0.9 us slower than 512 threads.
METADATA_THREADS = 512
METADATA_THREADS_SMALL = 256


def metadata_threads(batch: int) -> int:
    """Threads of the metadata CTA for a batch of `batch` sequences."""
    return METADATA_THREADS_SMALL if batch <= METADATA_THREADS_SMALL else METADATA_THREADS


def include_dir() -> str:
    from dg.core import jit

    return jit.package_include_dir("dg.indexer")


def prefill_extra_rows(heads: int) -> int:
    """Linear-term rows after each half of the prefill kernel's Q slot: four per query of the half, at least 8; none
    with four queries per half (H = 32, which keeps the ReLU on the CUDA cores: sm90_fp8_mqa_logits.cuh)."""
    queries = Q_ROWS // 2 // heads
    return 0 if queries > 2 else max(8, 4 * queries)


# The prefill kernel's work area and its most CTAs per launch (kPrefillWorkBytes, kMaxPrefillCtas in
# sm90_fp8_mqa_logits.cuh).
PREFILL_MAX_CTAS = 256
PREFILL_WORK_BYTES = 2 * 128 + 16 + 4 * PREFILL_MAX_CTAS
# The paged kernel's work area (kPagedWorkBytes in sm90_fp8_paged_mqa_logits.cuh): two 32-byte slot headers and the
# item prefix table of a dynamically split launch (PAGED_DYNAMIC_MAX_BATCH + 1 entries, 16-byte aligned).
PAGED_DYNAMIC_MAX_BATCH = 2048
PAGED_WORK_BYTES = 2 * 32 + (4 * (PAGED_DYNAMIC_MAX_BATCH + 1) + 15) // 16 * 16


def smem_bytes(q_rows: int, head_dim: int, heads: int, num_queries: int, stages: int, extra_rows: int = 0,
               work_bytes: int = 0) -> int:
    """Dynamic shared memory of both logits kernels (layout in sm90_mqa_logits_common.cuh, MqaLayout).

    ``extra_rows``: the prefill kernel's linear-term rows per half slot (prefill_extra_rows), 0 for the paged one;
    ``work_bytes``: the prefill kernel's work area (PREFILL_WORK_BYTES), 0 for the paged one.
    """
    if extra_rows:
        q_slot = 2 * (((q_rows // 2 + extra_rows) * head_dim + 1023) // 1024 * 1024)
    else:
        q_slot = q_rows * head_dim
    k_stage = BLOCK_KV * head_dim
    w_slot = num_queries * heads * 4
    scale_stage = BLOCK_KV * 4
    flags = (stages * 4 + 15) // 16 * 16
    aux = (2 * num_queries + 16) * 4 if extra_rows else 0
    end = 2 * q_slot + stages * (k_stage + scale_stage) + 2 * w_slot + flags + 8 * (2 * stages + 4) + aux
    return (end + 15) // 16 * 16 + work_bytes  # the work area starts 16-byte aligned


def paged_smem_bytes(next_n: int, heads: int, head_dim: int, stages: int) -> int:
    """Dynamic shared memory of the paged kernel (its Q slot is the plain next_n * H rows, plus its work area)."""
    return smem_bytes(next_n * heads, head_dim, heads, next_n, stages, 0, PAGED_WORK_BYTES)


def num_stages(q_rows: int, head_dim: int, heads: int, num_queries: int, extra_rows: int = 0,
               work_bytes: int = 0) -> int:
    stages = MAX_STAGES
    while stages > 2 and smem_bytes(q_rows, head_dim, heads, num_queries, stages, extra_rows,
                                    work_bytes) > SMEM_BUDGET:
        stages -= 1
    return stages


@dataclass(frozen=True)
class KernelSpec:
    name: str
    include: str
    kernel: str
    signature: tuple[str, ...]
    stages: int = 0  # key-tile stages of the logits kernels (0 for the metadata kernel)
    threads: int = NUM_THREADS  # threads per CTA


@functools.cache
def mqa_logits_spec(heads: int, head_dim: int, split: bool = False) -> KernelSpec:
    """The prefill kernel; ``split``: the instance for launches with fewer query groups than CTAs, which cuts the
    groups into equal tile shares (sm90_fp8_mqa_logits.cuh, "Work dealing")."""
    stages = num_stages(Q_ROWS, head_dim, heads, Q_ROWS // heads, prefill_extra_rows(heads), PREFILL_WORK_BYTES)
    return KernelSpec(
        name="sm90_fp8_mqa_logits",
        include="dg_indexer/impls/sm90_fp8_mqa_logits.cuh",
        kernel=f"dg::indexer::sm90_fp8_mqa_logits_impl<{heads}, {head_dim}, {Q_ROWS}, {stages}, "
               f"{'true' if split else 'false'}>",
        # q map, k map, weights map, k_scale map, ks, ke, out, seq_len, seq_len_kv, out row stride, clean
        signature=("tmap", "tmap", "tmap", "tmap", "ptr", "ptr", "ptr", "u32", "u32", "u64", "u32"),
        stages=stages,
    )


def paged_math_warpgroups(next_n: int, heads: int) -> int:
    return 4 if next_n * heads <= 128 else 2


@functools.cache
def paged_mqa_logits_spec(next_n: int, heads: int, head_dim: int, stages: int | None = None,
                          math_warpgroups: int | None = None) -> KernelSpec:
    stages = stages or num_stages(next_n * heads, head_dim, heads, next_n, 0, PAGED_WORK_BYTES)
    wgs = math_warpgroups or paged_math_warpgroups(next_n, heads)
    return KernelSpec(
        name="sm90_fp8_paged_mqa_logits",
        include="dg_indexer/impls/sm90_fp8_paged_mqa_logits.cuh",
        kernel=f"dg::indexer::sm90_fp8_paged_mqa_logits_impl<{next_n}, {heads}, {head_dim}, {stages}, {wgs}>",
        # q map, kv map, weights map, scale map, num_blocks, context_lens, block_table, table row pitch, table width,
        # schedule_meta, claim counter, out, out row stride, batch, max_context_len, clean
        signature=("tmap", "tmap", "tmap", "tmap", "u32", "ptr", "ptr", "u64", "u32", "ptr", "ptr", "ptr", "u64",
                   "u32", "u32", "u32"),
        stages=stages,
        threads=128 * (1 + wgs),
    )


def metadata_spec(threads: int = METADATA_THREADS, split: int = 4 * BLOCK_KV) -> KernelSpec:
    """The metadata instance for `threads` threads; the split size (4 * block_kv) is compiled in when it is the
    paged kernel's (256), else it is a kernel argument. The small CTA with the paged kernel's split runs the batch
    kernel (one sequence per thread, 32-bit counts), every other instance the general one."""
    fixed = split if split == 4 * BLOCK_KV else 0
    impl = "metadata_batch_impl" if fixed and threads == METADATA_THREADS_SMALL else "metadata_impl"
    return KernelSpec(
        name="smxx_paged_mqa_logits_metadata",
        include="dg_indexer/impls/smxx_paged_mqa_logits_metadata.cuh",
        kernel=f"dg::indexer::smxx_paged_mqa_logits_{impl}<{threads}, {fixed}>",
        # context_lens, batch, split tokens, num_sms, out
        signature=("ptr", "u32", "u32", "u32", "ptr"),
        threads=threads,
    )


def all_specs() -> list[KernelSpec]:
    """Every instance the package can launch (used by the compile test)."""
    specs = [
        metadata_spec(threads, split)
        for threads in (METADATA_THREADS_SMALL, METADATA_THREADS)
        for split in (4 * BLOCK_KV, 0)
    ]
    for h in (32, 64, 128):
        for d in (32, 64, 128):
            specs += [mqa_logits_spec(h, d, split) for split in (False, True)]
            for n in (1, 2):
                specs.append(paged_mqa_logits_spec(n, h, d))
    return specs


def compile_spec(spec: KernelSpec, arch: str | None = None):
    from dg.core import jit

    return jit.compile(name=spec.name, include=spec.include, kernel=spec.kernel, include_dirs=[include_dir()],
                       signature=spec.signature, arch=arch)


@functools.cache
def kernel_for(spec: KernelSpec, arch: str | None = None):
    return compile_spec(spec, arch)


def map_params(t: torch.Tensor, dims: tuple[int, ...], strides_bytes: tuple[int, ...], box: tuple[int, ...],
               swizzle: int, byte_offset: int = 0, dtype: torch.dtype | None = None) -> tuple:
    """A TMA descriptor over ``t`` without its address, for launch plans: dims and box innermost first, byte strides
    of dims 1.., optionally starting ``byte_offset`` bytes in and reading elements of ``dtype`` (default: the
    tensor's). Returns ``(byte_offset, (dtype name, dims, strides, box, swizzle))``; :func:`map_at` builds it."""
    name = str(dtype or t.dtype).removeprefix("torch.")
    return byte_offset, (name, tuple(dims), tuple(strides_bytes), tuple(box), swizzle)


def map_at(ptr: int, params: tuple):
    """The descriptor of :func:`map_params` ``params`` over the tensor that starts at ``ptr``."""
    return _tensor_map_cached(ptr + params[0], *params[1])


class PlanCache:
    """Launch plans of one entry point, keyed by a validated argument signature (chk.ValidatedSignatures.of).

    A plan holds everything a launch derives from the signature (kernel, geometry, shared memory, descriptor
    parameters, scalar arguments), so a repeated call only allocates its output, looks its descriptors up and
    launches. A plan is stored only after the call's checks passed, so finding one also means the checks would
    pass again. Bounded: cleared when it holds ``limit`` plans.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._plans: dict = {}
        self._limit = limit

    def get(self, key):
        try:
            return self._plans.get(key) if key is not None else None
        except TypeError:  # an unhashable scalar in the signature
            return None

    def put(self, key, plan) -> None:
        if key is None:
            return
        if len(self._plans) >= self._limit:
            self._plans.clear()
        try:
            self._plans[key] = plan
        except TypeError:
            pass

    def clear(self) -> None:
        self._plans.clear()


# NOTE: a descriptor is a pure function of these values (address, type, extents, box, swizzle), so memoising it is
# always correct, also after the memory is freed and reused; it takes the driver call off the decode hot path.
@functools.lru_cache(maxsize=512)
def _tensor_map_cached(ptr: int, dtype: str, dims: tuple[int, ...], strides_bytes: tuple[int, ...],
                       box: tuple[int, ...], swizzle: int):
    from dg.core import jit

    return jit.make_tensor_map(ptr, dtype, list(dims), list(strides_bytes), list(box), swizzle=swizzle)


def num_sms(device: torch.device) -> int:
    """SM count used for persistent grids: dg.core's setting when it has one, else the device's."""
    try:
        import dg.core as core

        getter = getattr(core, "get_num_sms", None)
        if getter is not None:
            return int(getter())
    except ImportError:
        pass
    return torch.cuda.get_device_properties(device).multi_processor_count


def device_index(device: torch.device) -> int:
    """The CUDA device index of ``device`` (the current device when it names none)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def current_stream_and_id(index: int) -> tuple[int, int]:
    """(raw handle, driver id) of torch's current stream on device ``index``; the id is unique in the context, unlike
    the handle. NOTE: one lazy import for both (each costs ~0.5 us on the paged call's per-call path)."""
    from dg.core import jit

    handle = jit.current_stream_handle(index)
    return handle, jit.stream_id(index, handle)


def device_guard(device: torch.device):
    """Make ``device`` current for a launch; a no-op context when it already is (the common, hot case)."""
    if device.index is None or device.index == torch.cuda.current_device():
        return contextlib.nullcontext()
    return torch.cuda.device(device)


def require_sm90(name: str, device: torch.device) -> None:
    major, minor = torch.cuda.get_device_capability(device)
    if major != 9:
        raise ValueError(f"{name}: the indexer kernels need an SM90 (Hopper) GPU, got compute capability "
                         f"{major}.{minor} on {device}")


def precompile(arch: str) -> str:
    """Compile every dg.indexer kernel for ``arch`` (e.g. ``"sm_90a"``) into the JIT cache; works without a GPU.

    Used by ``python -m dg precompile``; returns a one-line summary.
    """
    specs = all_specs()
    for spec in specs:
        compile_spec(spec, arch)
    return f"dg.indexer: {len(specs)} kernels for {arch}"
