#!/usr/bin/env bash
# Builds the standalone harness and one cubin per kernel instance it needs into $1 (default: <repo>/.gemmbin).
# Usage (from anywhere): build_sm90_fp8_gemm.sh [out_dir] [sweep]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
inc="$here/../../src/dg/core/include"
out="${1:-$here/../../../../.gemmbin}"
mkdir -p "$out/cubin"
NVCC="${NVCC:-/usr/local/cuda/bin/nvcc}"
"$NVCC" -std=c++20 -O2 -gencode=arch=compute_90a,code=sm_90a "$here/sm90_fp8_gemm_harness.cu" -o "$out/sm90_fp8_gemm_harness" -ldl
"$out/sm90_fp8_gemm_harness" list 132 232448 ${2:-} > "$out/instances.txt"
build_one() {
    inst="$1"
    name="$(echo "$inst" | sed 's/[^A-Za-z0-9]/_/g')"
    [ -f "$out/cubin/$name.cubin" ] && return 0
    src="$(mktemp --suffix=.cu)"
    case "$inst" in *1d1d*) hdr=sm90_fp8_gemm_1d1d.cuh ;; *) hdr=sm90_fp8_gemm_1d2d.cuh ;; esac
    printf '#include <dg_core/impls/%s>\nstatic void* dg_kernel_instance() { return reinterpret_cast<void*>(&%s); }\n' "$hdr" "$inst" > "$src"
    "$NVCC" -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -cubin -I"$inc" -diag-suppress 177 "$src" \
        -o "$out/cubin/$name.cubin" -Xptxas -v 2> "$out/cubin/$name.log" || { cat "$out/cubin/$name.log"; exit 1; }
    rm -f "$src"
}
export -f build_one
export out inc NVCC
xargs -a "$out/instances.txt" -d '\n' -P "$(nproc)" -I{} bash -c 'build_one "$@"' _ {}
grep -h "spill" "$out"/cubin/*.log | sort | uniq -c
