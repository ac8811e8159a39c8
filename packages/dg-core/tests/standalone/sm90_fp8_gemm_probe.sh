#!/usr/bin/env bash
# FP8 GEMM probe (~60-90 s on an H100, JIT cache prefilled): API path vs standalone harness on the same card.
# Run from the repository root after the packages are installed and the harness is built (build_sm90_fp8_gemm.sh):
#   bash packages/dg-core/tests/standalone/sm90_fp8_gemm_probe.sh   (DG_HARNESS_DIR: the harness build folder)
# Writes $OUT/gemm_probe.md (API table), $OUT/harness.txt, $OUT/smi.csv when $OUT is set.
set -u
cd "$(dirname "$0")/../../../.."
OUT="${OUT:-/tmp/gemm_probe_out}"; mkdir -p "$OUT"; export OUT
export DG_JIT_CACHE_DIR="${DG_JIT_CACHE_DIR:-$HOME/.cache/dg}" DG_PRINT_CONFIGS=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv,noheader -lms 250 > "$OUT/smi.csv" 2>/dev/null &
smi_pid=$!
# Harness on the same machine, same cubins as the API (copied from the JIT cache under the harness's file names).
cub=/tmp/probe_cubins; mkdir -p "$cub"
# NOTE: oldest first, so that where stale entries (older headers) share an instance the newest cubin wins.
for f in $(ls -tr "$DG_JIT_CACHE_DIR"/cache/sm90_fp8_gemm_1d2d.*/kernel.cubin 2>/dev/null | sed "s/kernel.cubin$/kernel.cu/"); do
    [ -f "$f" ] || continue
    inst=$(sed -n 's/.*(&\(dg::sm90_fp8_gemm_1d2d_impl<[^>]*>\)).*/\1/p' "$f")
    [ -n "$inst" ] && cp "$(dirname "$f")/kernel.cubin" "$cub/$(echo "$inst" | sed 's/[^A-Za-z0-9]/_/g').cubin"
done
echo "=== harness (seed shapes, heuristic configs, timing only)"
DG_SEEDS_ONLY=1 DG_SKIP_CHECK=1 timeout 45 "${DG_HARNESS_DIR:-.gemmbin}"/sm90_fp8_gemm_harness run "$cub" > "$OUT/harness.txt" 2>&1
grep -v "^max active" "$OUT/harness.txt" | cut -c1-110; grep -m1 "^max active" "$OUT/harness.txt"
echo "=== API probe"
timeout 120 python3 packages/dg-core/tests/standalone/sm90_fp8_gemm_probe.py > "$OUT/probe.txt" 2>&1; echo "probe rc $?"
echo "--- configs the API compiled/used (DG_PRINT_CONFIGS)"
grep "^\[dg\] sm90_fp8_gemm_1d2d" "$OUT/probe.txt" | sed -E 's/.*M=([0-9]+) N=([0-9]+) K=([0-9]+).*block_m=([0-9]+) block_n=([0-9]+) stages=([0-9]+) cluster_m=([0-9]+).* ctas=([0-9]+).*/\1x\2x\3 bm\4 bn\5 st\6 cl\7 ctas\8/' | paste -sd';' | fold -w 200
grep -v "^\[dg\]" "$OUT/probe.txt" | grep -iE "error|Traceback|cannot" | head -8
sed -n '/^## gemm_probe/,$p' "$OUT/probe.txt"
kill "$smi_pid" 2>/dev/null
python3 - "$OUT/smi.csv" <<'PY'
import sys, statistics
rows = [l.split(", ") for l in open(sys.argv[1]) if l.count(",") >= 4]
clk = [float(r[1].split()[0]) for r in rows if r[1].split()[0].replace(".", "").isdigit()]
pw = [float(r[2].split()[0]) for r in rows if r[2].split()[0].replace(".", "").isdigit()]
reasons = sorted({r[4].strip() for r in rows})
if clk:
    print(f"smi: {len(clk)} samples, SM clock min {min(clk):.0f} median {statistics.median(clk):.0f} MHz, "
          f"power max {max(pw):.0f} W, throttle reasons seen {reasons}")
PY
