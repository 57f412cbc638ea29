#!/usr/bin/env bash
# Side-by-side: `limner style --method fast` (tract, pure Rust) vs onnxruntime on the same ONNX
# files and the same input tensors, in one run, at 256 and 512 px.
#
#   bench/style.sh [--iters N] [--content IMG] [--style IMG]
#
# Needs `limner models fetch --only style-transfer`. Builds limner and limner-art's style_bench
# (release; CARGO_TARGET_DIR defaults to $HOME/.cache/limner-target), makes the benchmark-only
# venv $HOME/.cache/limner-style-bench-venv (onnxruntime, onnx, numpy; never in the repo) if
# missing, then:
#   1. `limner style` end to end as a user runs it (a fresh process: load, optimise, run, save)
#      at 256 and 512 px, median of 3 processes: the issue's bar is < 2 s at 256 px;
#   2. style_bench: per-network times in one process (cold first call, then warm medians), and
#      the exact inputs/outputs it used;
#   3. style_ort.py: onnxruntime (2 intra-op threads) on those inputs, plus limner-vs-onnxruntime
#      output differences.
# Prints a table (ms and limner/onnxruntime ratio), also written to bench/results/style-latest.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ITERS=10
CONTENT=""
STYLE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --iters) ITERS="$2"; shift ;;
        --content) CONTENT="$2"; shift ;;
        --style) STYLE="$2"; shift ;;
        -h|--help) sed -n 2,18p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
VENV="${LIMNER_STYLE_BENCH_VENV:-$HOME/.cache/limner-style-bench-venv}"
RESULTS="$HERE/results"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"

echo "== building limner and style_bench (release)" >&2
# the whole workspace with all targets, as .ci/run builds it: a `-p` build unifies features
# differently and would rebuild burn and tract
(cd "$ROOT" && cargo build --release -q --workspace --all-targets)
LIMNER="$CARGO_TARGET_DIR/release/limner"
"$LIMNER" models fetch --only style-transfer >&2
if ! "$VENV/bin/python" -c "import onnxruntime, onnx, numpy" 2>/dev/null; then
    echo "== making $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check onnxruntime onnx numpy
fi

# inputs: a face from limner's default model and a swirly "painting" (or the files given)
if [ -z "$CONTENT" ]; then
    "$LIMNER" generate --seeds 7 --psi 0.7 --out "$WORK/face" >/dev/null
    CONTENT="$WORK/content.png"
    # the 64 px face as a 512 px PNG: with a preset, strength 0 returns the (resized) content itself
    "$LIMNER" style --content "$WORK/face/seed0007.png" --preset style-00 --strength 0 --size 512 --out "$CONTENT" >/dev/null
fi
if [ -z "$STYLE" ]; then
    STYLE="$WORK/style.png"
    "$VENV/bin/python" - "$STYLE" <<'PY'
import sys, zlib, struct
import numpy as np
h = w = 384
y, x = np.mgrid[0:h, 0:w] / 384.0 - 0.5
r, a = np.hypot(x, y), np.arctan2(y, x)
t = 0.5 + 0.35 * np.sin(40 * r + 3 * a) + 0.15 * np.sin(300 * x + 130 * y) * np.cos(400 * y - 60 * x) * 0.5
rgb = np.stack([0.1 + 0.9 * t, 0.15 + 0.75 * np.abs(np.sin(3 * t)) * t, 0.9 - 0.8 * t], -1)
px = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
raw = b"".join(b"\0" + px[i].tobytes() for i in range(h))
chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
fi

echo "== 1. limner style, end to end (fresh process each; median of 3)" >&2
e2e() {  # size, extra args...
    local size=$1; shift
    local ts=()
    for _ in 1 2 3; do
        local t0=$(date +%s%N)
        "$LIMNER" style --content "$CONTENT" --size "$size" --out "$WORK/e2e.png" "$@" >/dev/null
        ts+=($(( ($(date +%s%N) - t0) / 1000000 )))
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p
}
E2E_256=$(e2e 256 --style "$STYLE")
E2E_512=$(e2e 512 --style "$STYLE")
E2E_P256=$(e2e 256 --preset style-07)
E2E_P512=$(e2e 512 --preset style-07)

echo "== 2. limner (tract) per network" >&2
"$CARGO_TARGET_DIR/release/examples/style_bench" "$WORK/t" "$CONTENT" "$STYLE" --iters "$ITERS" --sizes 256,512
echo "== 3. onnxruntime per network, same inputs" >&2
"$VENV/bin/python" "$HERE/style_ort.py" "$WORK/t" --iters "$ITERS" --threads 2

"$VENV/bin/python" - "$WORK/t" "$RESULTS/style-latest.md" "$E2E_256" "$E2E_512" "$E2E_P256" "$E2E_P512" <<'PY'
import json, os, sys, platform, datetime
d, out = sys.argv[1], sys.argv[2]
e2e = dict(zip(["style 256", "style 512", "preset 256", "preset 512"], map(int, sys.argv[3:7])))
lim = json.load(open(os.path.join(d, "limner.json")))
ort = json.load(open(os.path.join(d, "ort.json")))
L = {(r["what"], r["size"]): r for r in lim["rows"]}
O = {(r["what"], r["size"]): r for r in ort["rows"]}
lines = [f"# limner style --method fast: tract vs onnxruntime ({datetime.date.today()})", "",
         f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {lim['threads']} threads each side; "
         f"onnxruntime {ort['onnxruntime']}; median of {lim['iters']} warm runs after one cold call. "
         f"1-minute load average when written: {os.getloadavg()[0]:.1f} (other work on the machine slows both sides alike).", "",
         "| measurement | limner (tract) ms | onnxruntime ms | limner / onnxruntime |", "|---|---:|---:|---:|"]
def row(name, l, o):
    ratio = f"{l / o:.2f}x" if o else "-"
    lines.append(f"| {name} | {l:.1f} | {o:.1f} | {ratio} |" if o else f"| {name} | {l:.1f} | - | - |")
row("style predictor, 256x256", L[("predict", 256)]["ms"], O[("predict", 256)]["ms"])
for s in lim["sizes"]:
    t = L[("transform", s)]
    tag = f"{t['w']}x{t['h']}"
    o = O.get(("transform", s), {}).get("ms")
    row(f"arbitrary transform, {tag}", t["ms"], o)
    row(f"predict + transform (--style), {tag}", L[("predict", 256)]["ms"] + t["ms"], (o + O[("predict", 256)]["ms"]) if o else None)
    row(f"26-style network (--preset), {tag}", L[("multistyle", s)]["ms"], O[("multistyle", s)]["ms"])
lines += ["", "Cold first call in the process (parse + optimise + run; onnxruntime: session creation + first run):", "",
          "| network | limner ms | onnxruntime ms |", "|---|---:|---:|"]
lines.append(f"| predictor 256 | {L[('predict', 256)]['cold_ms']:.0f} | {O[('predict', 256)]['load_ms'] + O[('predict', 256)]['cold_ms']:.0f} |")
for s in lim["sizes"]:
    o = O.get(("transform", s))
    lines.append(f"| transform {s} | {L[('transform', s)]['cold_ms']:.0f} | {(o['load_ms'] + o['cold_ms']) if o else float('nan'):.0f} |")
    lines.append(f"| 26-style {s} | {L[('multistyle', s)]['cold_ms']:.0f} | {O[('multistyle', s)]['load_ms'] + O[('multistyle', s)]['cold_ms']:.0f} |")
lines += ["", "`limner style` end to end, a fresh process each (decode, load + optimise the networks, run, write the PNG), median of 3:", "",
          "| command | ms |", "|---|---:|"]
for k, v in e2e.items():
    lines.append(f"| `limner style --{k.split()[0]} ... --size {k.split()[1]}` | {v} |")
lines += ["", f"Bar (issue 5): under 2000 ms at 256 px: {'met' if e2e['style 256'] < 2000 and e2e['preset 256'] < 2000 else 'NOT met'}.", "",
          "limner vs onnxruntime outputs on the same inputs (images in [0, 1]):", "",
          "| output | mean abs diff | max abs diff | relative L2 |", "|---|---:|---:|---:|"]
for name, a, b, c in ort["checks"]:
    lines.append(f"| {name} | {a:.3g} | {b:.3g} | {c:.2%} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
echo "(written to $RESULTS/style-latest.md)" >&2
