"""The kernel-author API end to end: dg.layout's MN-major transpose kernel (compiled through dg.core.jit) gives
bit-exact results, also when replayed from a CUDA graph."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
layout = pytest.importorskip("dg.layout")

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mn,sk", [(1, 1), (7, 3), (4097, 56), (8192, 12)])
def test_transpose_kernel_bit_exact(mn, sk):
    sf = torch.randn(mn, sk, device="cuda")
    out = layout.get_mn_major_tma_aligned_tensor(sf)
    pitch = (mn + 3) // 4 * 4
    assert out.shape == (mn, sk) and out.stride() == (1, pitch)
    assert torch.equal(out, sf)


def test_transpose_kernel_replays_from_cuda_graph():
    sf = torch.randn(4097, 56, device="cuda")
    layout.get_mn_major_tma_aligned_tensor(sf)  # compile and load outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = layout.get_mn_major_tma_aligned_tensor(sf)
    for _ in range(3):
        sf.copy_(torch.randn_like(sf))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, sf)
