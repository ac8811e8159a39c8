from __future__ import annotations

import pytest
import torch
from dg.moe import make_contiguous_layout, validate_masked_m


def test_contiguous_layout_pads_each_group():
    m = make_contiguous_layout([3, 0, 130], alignment=128)
    assert m.dtype == torch.int32 and m.numel() == 128 + 0 + 256
    assert m[:3].tolist() == [0, 0, 0] and (m[3:128] == -1).all()
    assert (m[128:258] == 2).all() and (m[258:] == -1).all()


def test_contiguous_layout_single_row_and_empty():
    assert make_contiguous_layout([1], alignment=4).tolist() == [0, -1, -1, -1]
    assert make_contiguous_layout([]).numel() == 0


@pytest.mark.parametrize("sizes", [[-1], [1.5]])
def test_contiguous_layout_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="group_sizes"):
        make_contiguous_layout(sizes)


def test_validate_masked_m():
    validate_masked_m(torch.tensor([0, 5, 8], dtype=torch.int32), 8)
    with pytest.raises(ValueError, match=r"masked_m\[1\] = 9"):
        validate_masked_m(torch.tensor([0, 9], dtype=torch.int32), 8)
    with pytest.raises(TypeError):
        validate_masked_m(torch.tensor([0, 1]), 8)
