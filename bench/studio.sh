#!/usr/bin/env bash
# Load benchmark of `limner studio` (bench/limner-bench/src/bin/studio-load.rs):
#
#   bench/studio.sh [--clients 200] [--requests 3] [--workers N] [--model default]
#
# Builds limner and limner-bench (release), then runs 200 concurrent clients against a fresh
# studio (correctness of every answer against the single-user render, p50/p99, throughput, peak
# RSS) and again with the queue saturated (only 503s beyond the bound, memory bounded).
# Output: stdout and bench/results/studio.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
cd "$ROOT"
# --no-build: use the binaries already in $CARGO_TARGET_DIR (e.g. from `cargo build --release --workspace --all-targets`)
BUILD=1; ARGS=()
for a in "$@"; do if [ "$a" = --no-build ]; then BUILD=0; else ARGS+=("$a"); fi; done
set -- ${ARGS[@]+"${ARGS[@]}"}
[ "$BUILD" = 0 ] || cargo build --release -q -p limner -p limner-bench --bin limner --bin studio-load
ulimit -n 4096 2>/dev/null || true
{
  echo "# limner studio load benchmark"
  echo
  echo "\`bench/studio.sh $*\` on $(nproc) cores, $(date -u +%Y-%m-%d)"
  echo
  echo '```'
  "$CARGO_TARGET_DIR/release/studio-load" --limner "$CARGO_TARGET_DIR/release/limner" "$@"
  echo '```'
} | tee "$HERE/results/studio.md"
