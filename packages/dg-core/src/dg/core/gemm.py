"""FP8 GEMMs with fine-grained scaling on SM90 (Hopper).

All entry points write ``d`` in place on torch's current CUDA stream and return ``None``. The arguments are checked
in C++ before anything is enqueued; a bad call raises ``ValueError``/``TypeError`` naming the argument and leaves
``d`` untouched.

Scale-factor layouts (see the dg.layout documentation for pictures):

- ``a[1]`` (SFA): FP32 ``[M, ceil(K/128)]``, one scale per row and 128-wide K block, **MN-major and TMA-aligned**:
  strides ``(1, align(M, 4))``. ``dg.layout.get_mn_major_tma_aligned_tensor`` produces it.
- ``b[1]`` (SFB), recipe ``(1, 128, 128)``: FP32 ``[ceil(N/128), ceil(K/128)]``, one scale per 128x128 block,
  contiguous (``dg.layout.per_block_cast_to_fp8`` produces it).
- ``b[1]`` (SFB), recipe ``(1, 1, 128)``: like SFA, ``[N, ceil(K/128)]`` MN-major and TMA-aligned.
"""

from __future__ import annotations

from typing import Any

from . import _C

__all__ = ["fp8_gemm_nn", "fp8_gemm_nt", "fp8_gemm_nt_skip_head_mid", "fp8_gemm_tn", "fp8_gemm_tt"]

Pair = tuple[Any, Any]


def fp8_gemm_nt(
    a: Pair,
    b: Pair,
    d: Any,
    c: Any = None,
    recipe: tuple[int, int, int] | None = None,
    compiled_dims: str = "nk",
    disable_ue8m0_cast: bool = False,
) -> None:
    """``D = (C +) A·Bᵀ`` with FP8 operands dequantised by their scale factors.

    Args:
        a: ``(A, SFA)``: ``A`` ``torch.float8_e4m3fn`` ``[M, K]`` K-major (``stride(-1) == 1``, row pitch a multiple
            of 16 bytes); ``SFA`` FP32 ``[M, ceil(K/128)]`` MN-major TMA-aligned.
        b: ``(B, SFB)``: ``B`` ``torch.float8_e4m3fn`` ``[N, K]`` K-major; ``SFB`` per the recipe (module docs).
        d: output ``[M, N]`` row-major: ``torch.bfloat16`` for recipe ``(1, 128, 128)``, ``torch.float32`` for
            ``(1, 1, 128)``.
        c: optional FP32 ``[M, N]`` addend (recipe ``(1, 1, 128)`` only). May be ``d`` itself (accumulate in
            place) or a distinct tensor that does not overlap ``d``.
        recipe: ``(1, 128, 128)`` (default: per-token A, per-block B, BF16 out) or ``(1, 1, 128)`` (per-token
            scales on both, FP32 out, ``D = C + A·Bᵀ``; ``c=None`` means ``C = 0``).
        compiled_dims: accepted for DeepGEMM compatibility; dg's kernels take M, N, K at run time.
        disable_ue8m0_cast: accepted for compatibility; no effect on SM90.

    Memory: when the configuration runs a split tail (recipe ``(1, 128, 128)``, M > 128, a partial last wave of at
    most half the SMs with wide tiles; ``DG_PRINT_CONFIGS=1`` shows ``tail=``), the call sums the tail's partial tiles
    through a workspace that dg keeps per (device, stream), at most 64 MiB, taken from the driver's stream-ordered
    allocator, grown as needed and kept until ``dg.core.release_workspaces()``. A call captured into a CUDA graph
    uses no workspace, nor one whose stream the driver cannot give a workspace (out of memory, no stream-ordered
    allocator): it runs every tile whole.

    Example::

        import torch, dg.core, dg.layout
        x = torch.randn(128, 7168, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(4096, 7168, device="cuda", dtype=torch.bfloat16)
        a = dg.layout.per_token_cast_to_fp8(x, use_ue8m0=False)
        a = (a[0], dg.layout.get_mn_major_tma_aligned_tensor(a[1]))
        b = dg.layout.per_block_cast_to_fp8(w, use_ue8m0=False)
        d = torch.empty(128, 4096, device="cuda", dtype=torch.bfloat16)
        dg.core.fp8_gemm_nt(a, b, d)

    Raises:
        TypeError: wrong dtype or argument kind. ValueError: wrong rank, shape, majorness, alignment, scale layout,
        device, or an unsupported architecture.
    """
    _C.fp8_gemm_nt(a, b, d, c, recipe, compiled_dims, disable_ue8m0_cast)


def _t(pair: Pair, arg: str) -> Pair:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"argument {arg!r} must be a (tensor, scale factor) pair, got {type(pair).__name__}")
    return pair[0].transpose(-1, -2), pair[1].transpose(-1, -2)


def _require_k_major(t: Any, variant: str, arg: str, shape: str) -> None:
    if t.dim() == 2 and t.stride(-1) != 1:
        raise ValueError(
            f"{variant}: after the {variant[-2:]} view, {arg} must be K-major in memory, but the {shape} tensor you "
            f"passed is MN-major (strides {tuple(t.stride())} after transposition). SM90 FP8 tensor cores read "
            f"K-major operands only: pass a K-major copy to fp8_gemm_nt instead, e.g. "
            f"fp8_gemm_nt(..., ({arg}.mT.contiguous(), sf.mT.contiguous()), ...)"
        )


def fp8_gemm_nn(a: Pair, b: Pair, d: Any, c: Any = None, recipe: tuple[int, int, int] | None = None,
                compiled_dims: str = "nk", disable_ue8m0_cast: bool = False) -> None:
    """``D = (C +) A·B`` with ``b = (B [K, N], SFB in transposed orientation)``: ``fp8_gemm_nt(a, (B.T, SFB.T))``.

    On SM90 this works only if ``B`` is K-major in memory, i.e. ``B.stride(0) == 1`` (``B`` is itself the transpose
    of a K-major ``[N, K]`` tensor); otherwise a ``ValueError`` says what to pass instead.
    """
    bt = _t(b, "b")
    _require_k_major(bt[0], "fp8_gemm_nn", "b[0]", "[K, N]")
    _C.fp8_gemm_nt(a, bt, d, c, recipe, compiled_dims, disable_ue8m0_cast)


def fp8_gemm_tn(a: Pair, b: Pair, d: Any, c: Any = None, recipe: tuple[int, int, int] | None = None,
                compiled_dims: str = "mn", disable_ue8m0_cast: bool = False) -> None:
    """``D = (C +) Aᵀ·B`` with ``a = (A [K, M], SFA)``, ``b = (B [K, N], SFB)``: both operands transposed views.

    On SM90 both must be K-major in memory after the view (``A.stride(0) == 1`` and ``B.stride(0) == 1``).
    """
    at, bt = _t(a, "a"), _t(b, "b")
    _require_k_major(at[0], "fp8_gemm_tn", "a[0]", "[K, M]")
    _require_k_major(bt[0], "fp8_gemm_tn", "b[0]", "[K, N]")
    _C.fp8_gemm_nt(at, bt, d, c, recipe, compiled_dims, disable_ue8m0_cast)


def fp8_gemm_tt(a: Pair, b: Pair, d: Any, c: Any = None, recipe: tuple[int, int, int] | None = None,
                compiled_dims: str = "mn", disable_ue8m0_cast: bool = False) -> None:
    """``D = (C +) Aᵀ·Bᵀ`` with ``a = (A [K, M], SFA)``: only ``a`` is transposed (SM90: ``A.stride(0) == 1``)."""
    at = _t(a, "a")
    _require_k_major(at[0], "fp8_gemm_tt", "a[0]", "[K, M]")
    _C.fp8_gemm_nt(at, b, d, c, recipe, compiled_dims, disable_ue8m0_cast)


def fp8_gemm_nt_skip_head_mid(
    a: Pair,
    b: Pair,
    d: Any,
    head_splits: tuple[int, int, int],
    recipe: tuple[int, int, int] | None = None,
    compiled_dims: str = "nk",
    disable_ue8m0_cast: bool = False,
) -> None:
    """``fp8_gemm_nt`` (recipe ``(1, 128, 128)``, BF16 out) whose output columns skip a gap inside every head.

    With ``head_splits = (left, mid, right)`` (each a multiple of 64), ``N = b[0].size(0)`` and
    ``H = N / (left + right)``, ``d`` is ``[M, N + H * mid]``: GEMM column ``n`` lands in column
    ``n + floor((n + right) / (left + right)) * mid``; the ``mid`` columns of every head are not written.
    """
    _C.fp8_gemm_nt_skip_head_mid(a, b, d, tuple(head_splits), recipe, compiled_dims, disable_ue8m0_cast)
