#!/usr/bin/env bash
# Side-by-side CPU benchmark of the face networks: limner-faces (burn flex, faces-bench) vs
# face-api itself in TensorFlow.js (wasm backend, tools/tfjs-ref/face_bench.js), the same
# shapes, interleaved per side. Prints a table (also written to bench/results/faces.md).
#
#   bench/faces.sh [--quick]      (needs `limner models fetch --only face-api` and node)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
QUICK="${1:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
MODEL_DIR="${LIMNER_HOME:-$HOME/.cache/limner}/nets/face-api/package/model"
[ -d "$MODEL_DIR" ] || { echo "no $MODEL_DIR: run \`limner models fetch --only face-api\`" >&2; exit 1; }
[ -d "$ROOT/tools/tfjs-ref/node_modules/@vladmandic/face-api" ] || npm ci --prefix "$ROOT/tools/tfjs-ref" --no-audit --no-fund
cargo build --release -q -p limner-bench --bin faces-bench
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
RAW="$RESULTS/faces_raw.txt"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  "$CARGO_TARGET_DIR/release/faces-bench" $QUICK
  (cd "$ROOT/tools/tfjs-ref" && node face_bench.js "$MODEL_DIR" $QUICK)
} | tee "$RAW" >&2
python3 - "$RAW" <<'PY' | tee "$RESULTS/faces.md"
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\w+) (\S+) batch=(\d+) ms=([\d.]+)", line)
    if m:
        rows.setdefault((m[2], int(m[3])), {})[m[1]] = float(m[4])
print("| network | batch | limner ms | tfjs-wasm ms | limner / tfjs |")
print("|---|---:|---:|---:|---:|")
for (name, b), v in rows.items():
    l, t = v.get("limner"), v.get("tfjs")
    ratio = f"{l / t:.2f}x" if l and t else "-"
    print(f"| {name} | {b} | {l or '-'} | {t or '-'} | {ratio} |")
PY
