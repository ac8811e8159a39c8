"""dg.layout: scale-factor layouts, UE8M0 packing, TMA alignment and fast FP8 quantisation.

Everything the FP8 GEMMs of :mod:`dg.core` need on the input side: quantise activations and weights in one pass
(:func:`per_token_cast_to_fp8`, :func:`per_block_cast_to_fp8`, :func:`per_channel_cast_to_fp8`,
:func:`per_custom_dims_cast_to_fp8`) and bring scale factors into the layout a GEMM requires
(:func:`transform_sf_into_required_layout` and the helpers it uses). CUDA tensors run dg.layout's own kernels
(compiled on first use through ``dg.core.jit``); CPU tensors run the pure-torch reference in
:mod:`dg.layout.reference`, with identical results.
"""

from ._kernels import precompile
from .cast import (
    per_block_cast_to_fp8,
    per_channel_cast_to_fp8,
    per_custom_dims_cast_to_fp8,
    per_token_cast_to_fp8,
)
from .numerics import align, ceil_div, ceil_to_ue8m0
from .sf import (
    get_k_alignment_for_contiguous_layout,
    get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor,
    get_m_alignment_for_contiguous_layout,
    get_mk_alignment_for_contiguous_layout,
    get_mn_major_tma_aligned_packed_ue8m0_tensor,
    get_mn_major_tma_aligned_tensor,
    get_tma_aligned_size,
    transform_sf_into_required_layout,
)

__all__ = [
    "align",
    "ceil_div",
    "ceil_to_ue8m0",
    "get_k_alignment_for_contiguous_layout",
    "get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor",
    "get_m_alignment_for_contiguous_layout",
    "get_mk_alignment_for_contiguous_layout",
    "get_mn_major_tma_aligned_packed_ue8m0_tensor",
    "get_mn_major_tma_aligned_tensor",
    "get_tma_aligned_size",
    "per_block_cast_to_fp8",
    "per_channel_cast_to_fp8",
    "per_custom_dims_cast_to_fp8",
    "per_token_cast_to_fp8",
    "precompile",
    "transform_sf_into_required_layout",
]
