"""Shared fixtures of dg-core's tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def nvcc() -> str:
    """The NVCC the CPU compile tests use: the JIT's own choice (``DG_JIT_NVCC_COMPILER``), else the one on PATH, else
    the default CUDA install; the test is skipped when there is none."""
    for cand in (os.environ.get("DG_JIT_NVCC_COMPILER"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).exists():
            return cand
    pytest.skip("NVCC not found")
