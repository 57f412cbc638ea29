#!/usr/bin/env bash
# What live editing costs through limner_edit (bench/limner-bench/src/bin/edit-bench.rs): a
# slider move or a breed child re-rendered (default 64 px; random-face 256 px when fetched),
# SeFa for one layer group on first use, and projection (default model, 300 steps).
# Prints the RESULT lines and writes bench/results/edit.md.
#
#   bench/edit.sh [--quick]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
cargo build --release -q -p limner-bench --bin edit-bench
mkdir -p "$HERE/results"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  "$CARGO_TARGET_DIR/release/edit-bench" "${1:-}"
} | tee "$HERE/results/edit_raw.txt"
python3 - "$HERE/results/edit_raw.txt" <<'PY' | tee "$HERE/results/edit.md"
import re, sys
print("| what | ms (median) |")
print("|---|---:|")
for line in open(sys.argv[1]):
    m = re.match(r"RESULT limner edit/(\S+) ms=([\d.]+)", line)
    if m:
        print(f"| {m[1]} | {m[2]} |")
PY
