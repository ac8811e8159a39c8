"""Shared pytest setup: the `gpu` marker skips a test on machines without a CUDA GPU."""

from __future__ import annotations

import pytest


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "sm90: needs an SM90 (Hopper) GPU")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = _has_gpu()
    sm90 = False
    if has_gpu:
        import torch

        sm90 = torch.cuda.get_device_capability()[0] == 9
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        elif "sm90" in item.keywords and not sm90:
            item.add_marker(pytest.mark.skip(reason="needs an SM90 (Hopper) GPU"))
