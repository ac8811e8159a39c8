"""Compiling and launching dg.layout's CUDA kernels through dg.core's kernel-author API.

Every kernel takes its shapes and strides as runtime arguments, so one compile per (kernel, input dtype, arch)
serves every shape. The launchers here assume their arguments were validated by the public functions; they only
decide the grid and the vector-access flags.
"""

from __future__ import annotations

import functools

import torch

# Kernel stem -> the kernel's parameter list (dg.core.jit signature tags, in order).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "per_token_cast_fp8": ("ptr", "ptr", "ptr") + ("i64",) * 6 + ("u32", "u32"),
    "per_block_cast_fp8": ("ptr", "ptr", "ptr") + ("i64",) * 4 + ("u32", "u32"),
    "per_channel_cast_fp8": ("ptr", "ptr", "ptr") + ("i64",) * 4 + ("u32", "u32"),
    "sf_mn_major_fp32": ("ptr", "ptr") + ("i64",) * 7,
    "sf_pack_ue8m0": ("ptr", "ptr") + ("i64",) * 8,
    "sf_pack_ue8m0_broadcast": ("ptr", "ptr") + ("i64",) * 8 + ("u32",),
    "sf_pack_ue8m0_k_grouped": ("ptr", "ptr", "ptr") + ("i64",) * 4 + ("u32",),
}
# Kernel stem -> the template arguments it is instantiated with (None: not a template).
TEMPLATE_ARGS: dict[str, tuple[str, ...] | None] = {
    "per_token_cast_fp8": ("__nv_bfloat16", "float"),
    "per_block_cast_fp8": ("__nv_bfloat16", "float"),
    "per_channel_cast_fp8": ("__nv_bfloat16", "float"),
    "sf_mn_major_fp32": None,
    "sf_pack_ue8m0": None,
    "sf_pack_ue8m0_broadcast": None,
    "sf_pack_ue8m0_k_grouped": None,
}
_CPP_TYPE = {torch.bfloat16: "__nv_bfloat16", torch.float32: "float"}

# Launch shapes; they must match the constants in the kernels' headers.
_CAST_THREADS = 256  # per_token: kCastWarps * 32; per_block/per_channel: kTileThreads
_GROUPS_PER_CAST_CTA = 32  # per_token: 8 warps x 4 groups of 128 columns
_TILE = 128
_SF_THREADS = 256  # sf_tile.cuh: kSfThreads
_SF_TILE_MN = 64  # sf_tile.cuh: kSfTileMn
_SF_TILE_S = 64  # sf_tile.cuh: kSfTileS
_SF_CTAS_PER_SM = 6  # sf_tile.cuh: kSfMinCtasPerSm (40 registers x 256 threads; 16.3 KiB of shared memory)
_BROADCAST_THREADS = 256  # sf_pack_ue8m0_broadcast.cuh: kBroadcastThreads
_BROADCAST_CTAS_PER_SM = 4  # sf_pack_ue8m0_broadcast.cuh: kBroadcastCtasPerSm
_NARROW_LIMIT = 2**31  # element offsets below this use the broadcast kernel's 32-bit path
_PACK_THREADS = 128  # sf_pack_ue8m0_k_grouped.cuh: kPackThreads
_PACK_COLS_PER_CTA = 512  # kPackThreads * kColsPerThread
_MAX_GRID_X = 2**31 - 1
_MAX_GRID_YZ = 65535
# The cast and transform kernels index their tiles with 32-bit unsigned integers (cheap division per tile).
_MAX_TILES = 2**31 - 1


def _jit():
    try:
        from dg.core import jit
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "dg.layout needs dg.core (the dg-core package) to run its CUDA kernels; install dg-core, or pass CPU "
            "tensors to use the pure-torch path"
        ) from e
    return jit


def instantiation(stem: str, template_arg: str | None = None) -> str:
    return f"dg::layout::{stem}_impl" + (f"<{template_arg}>" if template_arg else "")


def compile_kernel(stem: str, template_arg: str | None = None, arch: str | None = None):
    """Compile one instantiation of a dg.layout kernel (``arch=None``: the current device's)."""
    jit = _jit()
    return jit.compile(
        name=stem,
        include=f"dg_layout/impls/{stem}.cuh",
        kernel=instantiation(stem, template_arg),
        include_dirs=[jit.package_include_dir("dg.layout")],
        signature=SIGNATURES[stem],
        arch=arch,
    )


@functools.cache
def _kernel_for(stem: str, template_arg: str | None, index: int | None):
    # NOTE: one kernel object per device index (so a process with two GPU models gets one build per arch); the
    # compile itself targets the current device, which the launchers set to the tensor's device before calling.
    del index
    return compile_kernel(stem, template_arg)


def _kernel(stem: str, device: torch.device, template_arg: str | None = None):
    # NOTE: a plain cache hit: no device-property query per launch (host time shows in back-to-back calls on
    # small tensors, where the kernel takes a few microseconds).
    return _kernel_for(stem, template_arg, device.index)


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _aligned16(*values: int) -> bool:
    return all(v % 16 == 0 for v in values)


def _capped_grid(ctas: int, device: torch.device, waves: int = 64) -> int:
    # NOTE: the kernels stride over their work, so capping only bounds the grid; 64 waves of small CTAs keep
    # enough loads in flight on any card while never exceeding the hardware grid limit.
    return max(1, min(ctas, _sm_count(device.index) * waves, _MAX_GRID_X))


def per_token_cast(x: torch.Tensor, out: torch.Tensor, sf: torch.Tensor, use_ue8m0: bool) -> None:
    """x [m, k] (unit column stride) -> out FP8 [m, k] (unit column stride), sf FP32 [m, ceil(k/128)] any strides."""
    m, k = x.shape
    num_groups = m * ((k + _TILE - 1) // _TILE)
    es = x.element_size()
    vec_ok = _aligned16(x.data_ptr(), x.stride(0) * es, out.data_ptr(), out.stride(0))
    grid = _capped_grid((num_groups + _GROUPS_PER_CAST_CTA - 1) // _GROUPS_PER_CAST_CTA, x.device)
    with torch.cuda.device(x.device):
        _kernel("per_token_cast_fp8", x.device, _CPP_TYPE[x.dtype]).launch(
            grid=(grid, 1, 1), block=(_CAST_THREADS, 1, 1),
            args=(x, out, sf, m, k, x.stride(0), out.stride(0), sf.stride(0), sf.stride(1), int(use_ue8m0),
                  int(vec_ok)),
        )


def _check_tiles(tiles: int, what: str, shape: tuple[int, ...]) -> None:
    if tiles > _MAX_TILES:
        raise ValueError(f"{what} of shape {shape} needs {tiles} tiles; the kernel indexes at most {_MAX_TILES}")


def tile_cast(stem: str, x: torch.Tensor, out: torch.Tensor, sf: torch.Tensor, use_ue8m0: bool) -> None:
    """per_block_cast_fp8 / per_channel_cast_fp8: x [m, n] -> out FP8 [m, n], sf FP32 row-major."""
    m, n = x.shape
    tiles = ((m + _TILE - 1) // _TILE) * ((n + _TILE - 1) // _TILE)
    _check_tiles(tiles, "x", tuple(x.shape))
    vec_ok = _aligned16(x.data_ptr(), x.stride(0) * x.element_size(), out.data_ptr(), out.stride(0))
    grid = _capped_grid(tiles, x.device, waves=16)
    with torch.cuda.device(x.device):
        _kernel(stem, x.device, _CPP_TYPE[x.dtype]).launch(
            grid=(grid, 1, 1), block=(_CAST_THREADS, 1, 1),
            args=(x, out, sf, m, n, x.stride(0), out.stride(0), int(use_ue8m0), int(vec_ok)),
        )


def _strides3(t: torch.Tensor) -> tuple[int, int, int, int]:
    """(groups, group stride, mn stride, s stride) of a rank-2 or rank-3 tensor."""
    if t.dim() == 2:
        return 1, 0, t.stride(0), t.stride(1)
    return t.shape[0], t.stride(0), t.stride(1), t.stride(2)


def _sf_grid(sf: torch.Tensor, groups: int, mn: int, s: int) -> tuple[int, int, int]:
    """1-D grid over the (group, S tile, MN tile) list of 64 x 64 tiles, capped at a few CTAs per SM."""
    tiles = groups * ((mn + _SF_TILE_MN - 1) // _SF_TILE_MN) * ((s + _SF_TILE_S - 1) // _SF_TILE_S)
    _check_tiles(tiles, "sf", tuple(sf.shape))
    # NOTE: one tile per CTA at a time (load -> barrier -> store), so the overlap between one tile's stores and
    # the next tile's loads comes from the other CTAs of the SM; more CTAs than fit only wait for a slot.
    return _capped_grid(tiles, sf.device, waves=_SF_CTAS_PER_SM), 1, 1


def mn_major_fp32(sf: torch.Tensor, out: torch.Tensor) -> None:
    """Copy FP32 sf [.., MN, S] (any strides) into out, an MN-major TMA-aligned tensor of the same shape."""
    groups, sg, smn, ss = _strides3(sf)
    mn, s = sf.shape[-2], sf.shape[-1]
    with torch.cuda.device(sf.device):
        _kernel("sf_mn_major_fp32", sf.device).launch(
            grid=_sf_grid(sf, groups, mn, s), block=(_SF_THREADS, 1, 1),
            args=(sf, out, groups, mn, s, sg, smn, ss, out.stride(-1)),
        )


def pack_ue8m0(sf: torch.Tensor, out: torch.Tensor, row_div: int = 1) -> None:
    """Pack FP32 sf [.., MN_in, S] (any strides) into out INT32 [.., MN, ceil(S/4)] MN-major TMA-aligned.

    Output row r reads input row r // row_div.
    """
    groups, sg, smn, ss = _strides3(sf)
    mn, s = out.shape[-2], sf.shape[-1]
    args = (sf, out, groups, mn, s, sg, smn, ss, row_div, out.stride(-1))
    if row_div > 1 and row_div % _SF_TILE_MN == 0:
        # The broadcast kernel's warp items: (group, packed column, input row).
        items = groups * ((s + 3) // 4) * ((mn + row_div - 1) // row_div)
        _check_tiles(items, "sf", tuple(sf.shape))
        warps = _BROADCAST_THREADS // 32
        grid = _capped_grid((items + warps - 1) // warps, sf.device, waves=_BROADCAST_CTAS_PER_SM)
        # 32-bit element offsets when the input's largest offset and the output's size fit in 31 bits.
        last_in = sum((d - 1) * abs(st) for d, st in zip(sf.shape, sf.stride(), strict=True))
        narrow = int(last_in < _NARROW_LIMIT and out.untyped_storage().nbytes() // 4 < _NARROW_LIMIT)
        with torch.cuda.device(sf.device):
            _kernel("sf_pack_ue8m0_broadcast", sf.device).launch(
                grid=(grid, 1, 1), block=(_BROADCAST_THREADS, 1, 1), args=args + (narrow,)
            )
        return
    with torch.cuda.device(sf.device):
        _kernel("sf_pack_ue8m0", sf.device).launch(
            grid=_sf_grid(sf, groups, mn, s), block=(_SF_THREADS, 1, 1), args=args
        )


def pack_ue8m0_k_grouped(
    sf: torch.Tensor, out: torch.Tensor, ks_tensor: torch.Tensor, max_group_rows: int | None = None
) -> None:
    """Pack contiguous FP32 sf [sum k_g/128, MN] into contiguous INT32 out [sum ceil(k_g/512), MN].

    ``max_group_rows``: the most packed rows of one group (``max ceil(k_g / 512)``), which sizes the grid's z
    dimension; default ``out.shape[0]`` (an upper bound: surplus CTAs find no row and exit).
    """
    rows_in, mn = sf.shape
    groups = ks_tensor.shape[0]
    vec_ok = _aligned16(sf.data_ptr(), out.data_ptr()) and mn % 4 == 0
    rows = out.shape[0] if max_group_rows is None else max_group_rows
    grid = (
        max(1, (mn + _PACK_COLS_PER_CTA - 1) // _PACK_COLS_PER_CTA),
        max(1, min(groups, _MAX_GRID_YZ)),
        max(1, min(rows, _MAX_GRID_YZ)),
    )
    with torch.cuda.device(sf.device):
        _kernel("sf_pack_ue8m0_k_grouped", sf.device).launch(
            grid=grid, block=(_PACK_THREADS, 1, 1),
            args=(sf, out, ks_tensor, groups, mn, rows_in, out.shape[0], int(vec_ok)),
        )


def all_instantiations() -> list[tuple[str, str | None]]:
    """Every (stem, template argument) pair dg.layout launches."""
    pairs: list[tuple[str, str | None]] = []
    for stem, targs in TEMPLATE_ARGS.items():
        pairs += [(stem, t) for t in targs] if targs else [(stem, None)]
    return pairs


def precompile(arch: str) -> str:
    """Compile every dg.layout kernel for ``arch`` (e.g. "sm_90a") into the JIT cache; works without a GPU."""
    names = []
    for stem, targ in all_instantiations():
        compile_kernel(stem, targ, arch=arch)
        names.append(instantiation(stem, targ))
    return f"dg.layout: {len(names)} kernels for {arch}"
