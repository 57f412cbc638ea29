#!/usr/bin/env bash
# The audit's nearest-neighbour search (limner-audit: exact, blocked matrix products on burn
# flex) beside numpy brute force (float32 BLAS, the same blocking) on the same seeded random
# vectors: 100,000 training vectors × 10,000 samples at the inception (768) and identity (128)
# widths. Prints a table (also written to bench/results/audit.md) with the ratio and whether the
# answers agree.
#
#   bench/audit.sh [--quick]      (20,000 × 2,000; needs the torch venv's numpy, see common.sh)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/common.sh"
if [ "${1:-}" = "--quick" ]; then N=20000; M=2000; else N=100000; M=10000; fi
"$PY" -c "import numpy" 2>/dev/null || ensure_torch_venv
(cd "$ROOT" && cargo build --release -q -p limner-audit --example knn_bench)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
RAW="$RESULTS/audit_raw.txt"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg), numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
  for DIM in 768 128; do
    "$CARGO_TARGET_DIR/release/examples/knn_bench" "$TMP" $N $M $DIM
    "$PY" "$HERE/audit_numpy.py" "$TMP" $N $M $DIM
  done
} | tee "$RAW" >&2
python3 - "$RAW" <<'PY' | tee "$RESULTS/audit.md"
import re, sys
rows, head = {}, ""
for line in open(sys.argv[1]):
    if line.startswith("#"):
        head = line.strip("# \n")
    m = re.match(r"RESULT (\w+) knn train=(\d+) queries=(\d+) dim=(\d+) s=([\d.eE+-]+)(?: agree=([\d.]+))?", line)
    if m:
        r = rows.setdefault((int(m[2]), int(m[3]), int(m[4])), {})
        r[m[1]] = float(m[5])
        if m[6]:
            r["agree"] = m[6]
print(f"Exact nearest neighbour, {head}\n")
print("| training vectors | samples | dim | limner s | numpy s | limner / numpy | same answers |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for (n, q, d), v in rows.items():
    l, p = v.get("limner"), v.get("numpy")
    print(f"| {n:,} | {q:,} | {d} | {l} | {p} | {l / p:.2f}x | {float(v.get('agree', 0)) * 100:.2f} % |")
PY
