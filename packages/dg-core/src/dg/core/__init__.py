"""dg.core: JIT runtime, launch path, TMA descriptors and the dense GEMM kernels of dg.

Importing this package records paths for the JIT and creates no CUDA context, so a process that imports it can
still fork workers that pick their own GPU.
"""

from __future__ import annotations

from . import _env
from ._C import CompileError, CudaError, get_num_sms, get_tc_util, release_workspaces, set_num_sms, set_tc_util
from ._C import init as _init

__version__ = "0.1.0"

_cutlass_include, _cutlass_version = _env.cutlass_include()
_init(
    core_include=_env.CORE_INCLUDE,
    cutlass_include=_cutlass_include,
    cutlass_version=_cutlass_version,
    cuda_home=_env.cuda_home(),
    nvrtc_library=_env.nvrtc_library(),
    default_cache_dir=_env.default_cache_dir(),
)

from . import jit  # noqa: E402
from .gemm import (  # noqa: E402
    fp8_gemm_nn,
    fp8_gemm_nt,
    fp8_gemm_nt_skip_head_mid,
    fp8_gemm_tn,
    fp8_gemm_tt,
)

__all__ = [
    "CompileError",
    "CudaError",
    "__version__",
    "fp8_gemm_nn",
    "fp8_gemm_nt",
    "fp8_gemm_nt_skip_head_mid",
    "fp8_gemm_tn",
    "fp8_gemm_tt",
    "get_num_sms",
    "get_tc_util",
    "jit",
    "release_workspaces",
    "set_num_sms",
    "set_tc_util",
]
