"""Inputs of the GPU tests and the sanitizer script: a paged decode step with a shuffled block table."""

from __future__ import annotations

import torch
from dg.indexer import reference as ref

FP8 = torch.float8_e4m3fn


def make_paged(batch, next_n, heads, dim, lens, max_len, table_pitch_extra=0, spare_blocks=5):
    """(q, kv_cache, weights, context_lens, block_table) on the GPU: the sequences' blocks in random order among
    `spare_blocks` unused ones, block_kv 64, a table of ceil(max_len / 64) columns (a view of a wider one when
    `table_pitch_extra` > 0)."""
    lens_t = torch.tensor(lens, dtype=torch.int32, device="cuda")
    used = [(x + 63) // 64 for x in lens]
    num_blocks = sum(used) + spare_blocks
    width = max(1, (max_len + 63) // 64)
    # Random block order; a wider parent table makes the rows non-contiguous (row pitch > width).
    perm = torch.randperm(num_blocks, device="cuda").int()
    parent = torch.zeros(batch, width + table_pitch_extra, dtype=torch.int32, device="cuda")
    at = 0
    for b, n in enumerate(used):
        n = min(n, width)
        parent[b, :n] = perm[at:at + n]
        at += n
    table = parent[:, :width]
    values, scales = ref.quantize_per_token(torch.randn(num_blocks * 64, dim, device="cuda"))
    cache = ref.pack_paged_kv_cache(values.view(num_blocks, 64, dim), scales.view(num_blocks, 64))
    q = torch.randn(batch, next_n, heads, dim, device="cuda").to(FP8)
    w = torch.randn(batch * next_n, heads, device="cuda")
    return q, cache, w, lens_t, table
