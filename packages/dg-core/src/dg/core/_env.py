"""Locating what the JIT needs at run time: CUDA, CUTLASS headers, NVRTC, the cache folder.

Nothing here touches the GPU: importing dg.core must not create a CUDA context.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
from importlib import metadata
from pathlib import Path

CORE_INCLUDE = str(Path(__file__).resolve().parent / "include")


def cuda_home() -> str:
    """The CUDA toolkit root: $CUDA_HOME, $CUDA_PATH, the toolkit of `nvcc` on PATH, or /usr/local/cuda.

    A candidate counts only if it holds include/cuda.h (an `nvcc` on PATH may be a wrapper script elsewhere).
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        value = os.environ.get(var)
        if value:
            return value
    nvcc = shutil.which("nvcc")
    if nvcc:
        home = Path(nvcc).resolve().parent.parent
        if (home / "include" / "cuda.h").is_file():
            return str(home)
    return "/usr/local/cuda"


def cutlass_include() -> tuple[str, str]:
    """(include dir, version) of the CuTe/CUTLASS headers shipped by the `nvidia-cutlass` package, or ("", "")."""
    spec = importlib.util.find_spec("cutlass_library")
    if spec is None or spec.origin is None:
        return "", ""
    include = Path(spec.origin).parent / "source" / "include"
    if not (include / "cute" / "tensor.hpp").is_file():
        return "", ""
    try:
        version = metadata.version("nvidia-cutlass")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return str(include), version


def nvrtc_library() -> str:
    """Path of libnvrtc from the CUDA toolkit or the `nvidia-cuda-nvrtc` package ("" if none is found)."""
    if os.environ.get("DG_JIT_NVRTC_LIBRARY"):
        return os.environ["DG_JIT_NVRTC_LIBRARY"]
    candidates = sorted(glob.glob(os.path.join(cuda_home(), "lib64", "libnvrtc.so*")))
    try:
        import nvidia  # namespace package of NVIDIA's wheels

        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    for c in candidates:
        if "builtins" not in c and "alt" not in os.path.basename(c):
            return c
    return ""


def default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "dg")


def cache_dir() -> str:
    """The JIT cache root: $DG_JIT_CACHE_DIR or ~/.cache/dg."""
    return os.environ.get("DG_JIT_CACHE_DIR") or default_cache_dir()
