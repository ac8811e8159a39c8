"""dg.indexer: DeepSeek-V3.2 lightning-indexer MQA logits on SM90, paged and non-paged.

Public functions (spec section 8):

- :func:`fp8_mqa_logits`: prefill, every query against its key range of one key tensor.
- :func:`get_paged_mqa_logits_metadata`: the balanced split of a decode step's work across SMs.
- :func:`fp8_paged_mqa_logits`: decode, queries against a paged FP8 KV cache.

:mod:`dg.indexer.reference` holds the pure-torch definitions (also used for CPU tensors);
:func:`precompile` fills the JIT cache for every kernel instance (no GPU needed).
"""

from . import reference
from ._jit import precompile
from .mqa_logits import fp8_mqa_logits
from .paged_mqa_logits import fp8_paged_mqa_logits, get_paged_mqa_logits_metadata

__all__ = [
    "fp8_mqa_logits",
    "fp8_paged_mqa_logits",
    "get_paged_mqa_logits_metadata",
    "precompile",
    "reference",
]
