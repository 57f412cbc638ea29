#!/usr/bin/env bash
# Where the time goes in InceptionV3, limner vs PyTorch, per op kind, for the four workloads
# limner runs the network in (see bench/limner-bench/src/inception.rs and
# bench/torch_inception_profile.py): gatys, dream, perceptual, fid.
#
#   bench/inception_profile.sh [--iters N] [--no-build]
#
# Each side: the median un-profiled iteration (TOTAL), then N profiled iterations (limner:
# LIMNER_PROFILE timing of every limner-kernels call; "other" = wall time outside them, i.e.
# burn's own ops; PyTorch: torch.profiler self CPU time per aten op). Also runs each limner
# workload with LIMNER_FAST_CONV_RELU=0 (the previous conv path) for the before/after column,
# and with LIMNER_DIRECT_CONV=0 (the fused convs through im2col + gemm instead of the direct conv).
# Writes bench/results/inception-profile_raw.txt and the tables in inception-profile.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ITERS=5
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --iters) ITERS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
source "$HERE/common.sh"
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release -p limner-bench >&2)
ensure_torch_venv torchvision
RAW="$RESULTS/inception-profile_raw.txt"
{
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC'), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "# command: bench/inception_profile.sh --iters $ITERS"
    "$BIN" peak
    for w in gatys dream perceptual fid; do
        "$BIN" inception-profile "$w" "$ITERS"
        LIMNER_FAST_CONV_RELU=0 "$BIN" inception-profile "$w" "$ITERS" | sed -n 1p | sed 's/^TOTAL limner/TOTAL limner-before/'
        LIMNER_DIRECT_CONV=0 "$BIN" inception-profile "$w" "$ITERS" | sed -n 1p | sed 's/^TOTAL limner/TOTAL limner-gemm/'
        env OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_inception_profile.py" "$w" "$ITERS" 2>&1 | grep -E '^(TOTAL|PROFILE)'
    done
    echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RAW"
"$PY" "$HERE/inception_profile_table.py" "$RAW" "$RESULTS/inception-profile.md"
echo "tables written to $RESULTS/inception-profile.md (raw: $RAW)" >&2
