"""The kernel-author API: compile a kernel from a package's own include folder and launch it.

Upper packages (dg.layout, dg.moe, dg.indexer) use only this module. Example::

    from dg.core import jit

    kernel = jit.compile(
        name="transpose_fp32",
        include="dg_layout/impls/transpose_fp32.cuh",
        kernel="dg::layout::transpose_fp32_impl<64, 4>",
        include_dirs=[jit.package_include_dir("dg.layout")],
        signature=("ptr", "ptr", "u32", "u32"),
    )
    kernel.launch(grid=(n_blocks, 1, 1), block=(256, 1, 1), args=(out, inp, mn, s))

See docs/design/kernel_author_api.md for the rules (generated source, signature codes, device-side headers).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _C
from ._env import CORE_INCLUDE

__all__ = ["Kernel", "TensorMap", "compile", "make_tensor_map", "package_include_dir", "current_arch",
           "current_stream_handle", "stream_id"]

TensorMap = _C.TensorMap

_CODES = {"ptr": "p", "i32": "i", "u32": "I", "i64": "l", "u64": "L", "f32": "f", "tmap": "t"}
_DIM3 = tuple[int, int, int]


def package_include_dir(package: str) -> str:
    """The `include/` folder shipped inside an installed dg package, e.g. ``package_include_dir("dg.layout")``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package_include_dir: package {package!r} is not installed")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "include"
        if path.is_dir():
            return str(path)
    raise ValueError(f"package_include_dir: package {package!r} has no include/ folder")


def current_arch() -> str:
    """The JIT target of the current CUDA device, e.g. "sm_90a" (creates no context if torch has none)."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return "sm_101a" if (major, minor) == (10, 1) else f"sm_{major}{minor}a"


def _dim3(name: str, value: Any) -> _DIM3:
    # Fast path: the common (x, y, z) tuple of positive ints passes through untouched.
    if type(value) is tuple and len(value) == 3 and all(type(v) is int and v >= 1 for v in value):
        return value  # type: ignore[return-value]
    if isinstance(value, int):
        value = (value,)
    value = tuple(int(v) for v in value) + (1,) * (3 - len(value))
    if len(value) != 3 or any(v < 1 for v in value):
        raise ValueError(f"{name} must be 1 to 3 positive integers, got {value}")
    return value  # type: ignore[return-value]


_STREAM_GETTERS: tuple[Any, Any] | None = None


def _stream_getters() -> tuple[Any, Any]:
    """(current device index, raw cudaStream_t of a device's current stream) as plain-int getters.

    NOTE: torch.cuda.current_stream() builds a Python Stream object on every call; torch's C-level getters return
    the same device index and cudaStream_t as ints, several microseconds cheaper per launch. They are private
    torch functions (Triton's launcher uses them too), so the public calls are the fallback.
    """
    global _STREAM_GETTERS
    import torch

    get_device = getattr(torch._C, "_cuda_getDevice", None)
    get_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if get_device is not None and get_stream is not None:

        def current_device() -> int:
            torch.cuda._lazy_init()
            return get_device()

        _STREAM_GETTERS = (current_device, get_stream)
    else:
        _STREAM_GETTERS = (torch.cuda.current_device, lambda d: torch.cuda.current_stream(d).cuda_stream)
    return _STREAM_GETTERS


def current_stream_handle(device: int) -> int:
    """The raw ``cudaStream_t`` (an int) of torch's current stream on CUDA device ``device``: the stream
    :meth:`Kernel.launch` and :meth:`Kernel.bind` enqueue on by default."""
    return int((_STREAM_GETTERS or _stream_getters())[1](device))


def stream_id(device: int, stream: int) -> int:
    """The driver's id of the stream whose raw handle is `stream` on CUDA device `device`. Unlike a handle, which
    the driver may give to a new stream once the old one is destroyed (even with launches still queued on it), the
    id is never reused within the device's context: per-stream state kept by handle checks it."""
    return int(_C.stream_id(device, stream))


class Kernel:
    """A compiled kernel. Launch it with :meth:`launch`; `symbol`, `cubin`, `log` and `cache_path` describe it."""

    def __init__(self, native: Any, signature: str, name: str) -> None:
        self._native = native
        self._signature = signature
        self.name = name

    @property
    def symbol(self) -> str:
        return self._native.symbol

    @property
    def cubin(self) -> bytes:
        return self._native.cubin

    @property
    def log(self) -> str:
        return self._native.log

    @property
    def cache_path(self) -> str:
        return self._native.cache_path

    def launch(
        self,
        grid: Any,
        block: Any,
        args: Sequence[Any],
        smem: int = 0,
        cluster: Any = (1, 1, 1),
        stream: Any = None,
        pdl: bool = False,
        device: int | None = None,
    ) -> None:
        """Enqueue the kernel on `stream` (default: torch's current stream of the current device).

        Tensors among `args` are passed as their data pointers (for "ptr" parameters); `smem` is the dynamic
        shared memory in bytes (raised past 48 KiB automatically); `cluster` the thread-block cluster shape.
        """
        import torch

        current_device, current_raw_stream = _STREAM_GETTERS or _stream_getters()
        if device is None:
            device = current_device()
        if stream is None:
            stream = current_raw_stream(device)
        elif not isinstance(stream, int):
            stream = stream.cuda_stream
        tensor = torch.Tensor
        values = tuple(a.data_ptr() if isinstance(a, tensor) else a for a in args)
        self._native.launch(
            self._signature,
            values,
            _dim3("grid", grid),
            _dim3("block", block),
            int(smem),
            int(stream),
            _dim3("cluster", cluster),
            bool(pdl),
            int(device),
        )

    def bind(
        self,
        grid: Any,
        block: Any,
        smem: int = 0,
        cluster: Any = (1, 1, 1),
        pdl: bool = False,
    ) -> Callable[[tuple, int], None]:
        """This kernel's launch with a fixed geometry, for hot paths that launch the same shape many times.

        Returns ``launch(values, device)``: enqueues the kernel on torch's current stream of ``device`` (an index).
        ``values`` are final, one per parameter: data pointers as ints (not tensors), tensor maps as they are, the
        scalars. The geometry is converted and checked once, here; per call only the values are.
        """
        g, b, c = _dim3("grid", grid), _dim3("block", block), _dim3("cluster", cluster)
        native, signature, smem, pdl = self._native.launch, self._signature, int(smem), bool(pdl)
        current_raw_stream = (_STREAM_GETTERS or _stream_getters())[1]

        def launch(values: tuple, device: int) -> None:
            native(signature, values, g, b, smem, current_raw_stream(device), c, pdl, device)

        return launch


def compile(  # noqa: A001 - the natural name for this call
    name: str,
    include: str,
    kernel: str,
    include_dirs: Sequence[str] = (),
    signature: Sequence[str] = (),
    arch: str | None = None,
) -> Kernel:
    """Compile one instantiation of a ``__global__`` function template (or load it from the cache).

    Args:
        name: family stem (cache folder name, error messages), e.g. ``"transpose_fp32"``.
        include: the header that defines the kernel, relative to one of `include_dirs`.
        kernel: the instantiation, e.g. ``"dg::layout::transpose_fp32_impl<64, 4>"``.
        include_dirs: the package's include folders; dg.core's own is always added.
        signature: one type tag per kernel parameter: "ptr", "i32", "u32", "i64", "u64", "f32", "tmap".
        arch: "sm_90a", "sm_100a", ...; None means the current device's (needs a GPU).

    Raises:
        dg.core.CompileError: the compiler failed; the message holds the kernel name and the compiler output.
    """
    try:
        codes = "".join(_CODES[s] for s in signature)
    except KeyError as e:
        raise ValueError(f"unknown signature tag {e.args[0]!r}; use one of {sorted(_CODES)}") from None
    if arch is None:
        arch = current_arch()
    native = _C.compile_kernel(name, include, kernel, [str(d) for d in include_dirs], arch)
    return Kernel(native, codes, name)


def make_tensor_map(
    tensor_or_ptr: Any,
    dtype: Any,
    dims: Sequence[int],
    strides_bytes: Sequence[int],
    box: Sequence[int],
    swizzle: int = 0,
) -> TensorMap:
    """Build a TMA descriptor. `dims` and `box` innermost first; `strides_bytes` are the byte strides of dims 1..

    `dtype` is a torch dtype or its name ("bfloat16", "float32", "float8_e4m3fn", "uint8", "int32", ...);
    `swizzle` is 0, 32, 64 or 128 bytes.
    """
    ptr = tensor_or_ptr if isinstance(tensor_or_ptr, int) else tensor_or_ptr.data_ptr()
    dtype_name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    return _C.make_tensor_map(ptr, dtype_name, list(dims), list(strides_bytes), list(box), swizzle)


# Re-exported for kernel authors: dg.core's own include folder (common/, ptx/ device helpers).
CORE_INCLUDE_DIR = CORE_INCLUDE
