"""FP8 GEMM entry points (placeholder until the kernels land)."""
