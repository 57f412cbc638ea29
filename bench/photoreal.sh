#!/usr/bin/env bash
# Side-by-side: one 1024px random-face (MobileStyleGAN) synthesis in limner (burn flex +
# limner-kernels) vs OpenVINO (tools/openvino-ref, float32), same machine, same run.
#
#   bench/photoreal.sh [--quick] [--rounds N]
#
# Needs `limner models fetch --only random-face` (both sides read the fetched package) and makes
# the OpenVINO venv ($LIMNER_OPENVINO_VENV, default ~/.cache/limner-openvino-venv) if missing.
# Each side runs in its own process, alternating N rounds (default 2) so background-load drifts hit
# both; timings exclude model loading (median of several syntheses after a warm-up); peak memory is
# each process's maximum resident set (GNU time), model loading included. Writes
# bench/results/photoreal.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
QUICK=""; ROUNDS=2
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK="--quick" ;;
        --rounds) ROUNDS="$2"; shift ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
VENV="${LIMNER_OPENVINO_VENV:-$HOME/.cache/limner-openvino-venv}"
NETS="${LIMNER_HOME:+$LIMNER_HOME/nets}"; NETS="${NETS:-$HOME/.cache/limner/nets}"
IR="$NETS/random-face/random_face/data"
[ -f "$IR/SynthesisNetwork.xml" ] || { echo "random-face is not fetched ($IR): run \`limner models fetch --only random-face\`" >&2; exit 2; }
(cd "$ROOT" && cargo build --release --workspace >&2)
if ! "$VENV/bin/python" -c "import openvino, numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$ROOT/tools/openvino-ref/requirements.txt"
fi
mkdir -p "$HERE/results"
K=7; [ -n "$QUICK" ] && K=3
LOG="$(mktemp)"
for r in $(seq "$ROUNDS"); do
    /usr/bin/time -f "PEAK limner %M" "$CARGO_TARGET_DIR/release/limner-bench" photoreal $QUICK >>"$LOG" 2>&1
    /usr/bin/time -f "PEAK openvino %M" "$VENV/bin/python" "$ROOT/tools/openvino-ref/random_face_ref.py" \
        --model-dir "$IR" --bench "$K" --threads "$(nproc)" >>"$LOG" 2>&1
done
python3 - "$LOG" "$HERE/results/photoreal.md" <<'PY'
import re, statistics, sys, datetime, platform
log = open(sys.argv[1]).read()
lim = [float(m) / 1e3 for m in re.findall(r"RESULT limner photoreal_synthesis .*?median_ms=([0-9.]+)", log)]
ov = [float(m) for m in re.findall(r"openvino synthesis: best [0-9.]+ s, median ([0-9.]+) s", log)]
pk = {k: max(int(v) for v in re.findall(rf"PEAK {k} (\d+)", log)) / 1024 for k in ("limner", "openvino")}
if not lim or not ov:
    sys.exit("bench failed:\n" + log)
l, o = statistics.median(lim), statistics.median(ov)
load = open("/proc/loadavg").read().split()[:3]
out = f"""# random-face 1024px: limner vs OpenVINO (fp32, {platform.machine()}, {len(lim)} rounds each)

date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; loadavg at end: {' '.join(load)}

| | seconds per face (median) | peak RSS MB |
|---|---:|---:|
| limner | {l:.3f} | {pk['limner']:.0f} |
| OpenVINO | {o:.3f} | {pk['openvino']:.0f} |
| **limner / OpenVINO** | **{l / o:.2f}** | {pk['limner'] / pk['openvino']:.2f} |
"""
print(out)
open(sys.argv[2], "w").write(out + "\n## raw log\n\n```\n" + log + "```\n")
PY
