#!/usr/bin/env bash
# Side-by-side CPU benchmark of the image-optimisation art tools: limner's Gatys style transfer
# and DeepDream (crates/limner-art on limner-nets' InceptionV3, burn flex, limner-kernels convs) vs the same algorithms in
# PyTorch on torchvision's InceptionV3 truncated at Mixed_6c (bench/torch_art.py), in ONE run.
#
#   bench/art.sh [--quick] [--steps N] [--full] [--reps N] [--size PX] [--images N] [--no-build]
#
# --quick    every row with fewer repetitions (--steps 10 --reps 1 --images 320, perceptual
#            median of 5): about 1 minute of measuring on a quiet machine, under 10 minutes at
#            load average ~10; later options override it
# --steps N  timed Gatys steps per side (default 20, after 2 warm-up steps); the 200-step total
#            is extrapolated from the median step (the output says `extrapolated=true`)
# --full     time all 200 Gatys steps instead (about 2 x 2-3 minutes on 2 busy cores)
# --reps N   DeepDream repetitions per side (default 3; 4 octaves x 10 steps each)
# --size PX  image side (default 256)
# --images N FID-like features of N images (default 1000; 128 px, batch 32, forward only)
# --no-build use the limner-bench already built in $CARGO_TARGET_DIR
# Also timed: the perceptual distance forward + backward (batch 8, 128 px, median of 10 calls).
# The table gives, beside each row, the 1-minute load average when each side started: the two
# sides of a row run back to back, so compare ratios from one run, not across runs.
#
# Needs the fetched InceptionV3 (`limner models fetch --only inception-v3`) and the bench venv
# ($HOME/.cache/limner-bench-venv with torch; torchvision is installed into it if missing).
# Writes bench/results/art.md and bench/results/art_raw.txt.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
STEPS=20
REPS=3
SIZE=256
IMAGES=1000
PREPS=10
BUILD=1
QUICK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) STEPS=10; REPS=1; IMAGES=320; PREPS=5; QUICK=" --quick" ;;
        --steps) STEPS="$2"; shift ;;
        --full) STEPS=200 ;;
        --reps) REPS="$2"; shift ;;
        --size) SIZE="$2"; shift ;;
        --images) IMAGES="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n 2,26p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

source "$HERE/common.sh"
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release -p limner-bench >&2)
ensure_torch_venv torchvision

RAW="$RESULTS/art_raw.txt"
: > "$RAW"
{
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "# command: bench/art.sh$QUICK --steps $STEPS --reps $REPS --size $SIZE --images $IMAGES"
    echo "# PyTorch OpenMP wait policy: OMP_WAIT_POLICY=PASSIVE (see NOTES.md)"
    echo "# busy processes at start (top, %CPU > 20):"
    top -b -n1 | awk 'NR>7 && $9+0 > 20 {printf "#   pid %s %s%% %s\n", $1, $9, $12}'
} | tee -a "$RAW"

"$BIN" art-gatys "$SIZE" "$STEPS" | tee -a "$RAW"
env OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_art.py" gatys "$SIZE" "$STEPS" 2>&1 | tee -a "$RAW"
"$BIN" art-dream "$SIZE" "$REPS" | tee -a "$RAW"
env OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_art.py" dream "$SIZE" "$REPS" 2>&1 | tee -a "$RAW"
"$BIN" art-perceptual "$PREPS" | tee -a "$RAW"
env OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_art.py" perceptual "$PREPS" 2>&1 | tee -a "$RAW"
"$BIN" art-fid "$IMAGES" | tee -a "$RAW"
env OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_art.py" fid "$IMAGES" 2>&1 | tee -a "$RAW"
echo "# busy processes at end: $(top -b -n1 | awk 'NR>7 && $9+0 > 20 {printf "pid %s %s%% %s; ", $1, $9, $12}')" | tee -a "$RAW"

python3 - "$RAW" "$RESULTS/art.md" <<'PYEOF'
import sys
raw, out = sys.argv[1], sys.argv[2]
import re
shapes, res, header = {"limner": {}, "torch": {}}, {}, []
# the 1-minute load average when each side of each row started
ROW = {"art-gatys": "gatys_step", "art-dream": "dream_total", "art-perceptual": "perceptual", "art-fid": "fid_features",
       "gatys": "gatys_step", "dream": "dream_total", "perceptual": "perceptual", "fid": "fid_features"}
load = {}
for line in open(raw):
    p = line.split()
    m = re.match(r"# (limner-bench|torch_art) (\S+?):? .*loadavg at start: ([\d.]+)", line)
    if m and m.group(2) in ROW:
        load[(ROW[m.group(2)], "limner" if m.group(1) == "limner-bench" else "torch")] = m.group(3)
    if line.startswith("SHAPE "):
        shapes[p[1]][p[3]] = " ".join(p[4:])
    elif line.startswith("RESULT "):
        res.setdefault(p[2], {})[p[1]] = dict(kv.split("=", 1) for kv in p[3:] if "=" in kv)
    elif line.startswith("# ") and not line.startswith("# busy processes at start"):
        header.append(line[2:].rstrip())
ok = shapes["limner"] == shapes["torch"] and len(shapes["limner"]) == 11
L = ["# limner vs PyTorch on InceptionV3: Gatys, DeepDream, the perceptual distance, FID-like features (CPU, fp32, 2 threads)\n", "```"]
L += header
L.append("```\n")
L.append(f"Architecture check (activation shapes of conv2d_1..5 and mixed0..5 at the benchmark size, limner vs "
         f"torchvision's truncated inception_v3): {'MATCH' if ok else 'MISMATCH'}\n")
for k, v in shapes["limner"].items():
    L.append(f"- {k}: limner {v}, torch {shapes['torch'].get(k, '-')}")
L.append("")
L.append("limner/torch: wall time; CPU time limner/torch: process CPU time of all threads (median per iteration), "
         "which other processes on the machine change much less than the wall time.")
L.append("")
L.append("| measurement | limner | torch | limner/torch | CPU time limner/torch | load avg (1 min) at start, limner / torch |")
L.append("|---|---:|---:|---:|---:|---|")
def ld(k):
    # the ratio of process CPU time (median per iteration, all threads): less sensitive to other
    # processes than the wall time; then the load averages
    l, t = res.get(k, {}).get("limner", {}), res.get(k, {}).get("torch", {})
    cr = f"{float(l['cpu_ms']) / float(t['cpu_ms']):.2f}" if "cpu_ms" in l and "cpu_ms" in t else "-"
    return f"{cr} | {load.get((k, 'limner'), '?')} / {load.get((k, 'torch'), '?')}"
g = res.get("gatys_step", {})
if "limner" in g and "torch" in g:
    l, t = g["limner"], g["torch"]
    ex = " (extrapolated from the median step)" if l.get("extrapolated") == "true" else ""
    L.append(f"| Gatys ms/step ({l['size']} px, median of {l['n']}) | {float(l['median_ms']):.1f} | {float(t['median_ms']):.1f} | {float(l['median_ms'])/float(t['median_ms']):.2f} | {ld('gatys_step')} |")
    L.append(f"| Gatys 200 steps, s{ex} | {float(l['total200_s']):.1f} | {float(t['total200_s']):.1f} | {float(l['total200_s'])/float(t['total200_s']):.2f} | {ld('gatys_step')} |")
d = res.get("dream_total", {})
if "limner" in d and "torch" in d:
    l, t = d["limner"], d["torch"]
    L.append(f"| DeepDream total, s ({l['size']} px, 4 octaves x 10 steps, median of {l['n']}) | {float(l['median_ms'])/1e3:.2f} | {float(t['median_ms'])/1e3:.2f} | {float(l['median_ms'])/float(t['median_ms']):.2f} | {ld('dream_total')} |")
    L.append(f"| DeepDream ms/step (mean over the octaves) | {float(l['per_step_ms']):.1f} | {float(t['per_step_ms']):.1f} | {float(l['per_step_ms'])/float(t['per_step_ms']):.2f} | {ld('dream_total')} |")
p = res.get("perceptual", {})
if "limner" in p and "torch" in p:
    l, t = p["limner"], p["torch"]
    L.append(f"| perceptual distance fwd+bwd, ms (128 px, batch 8, median of {l['n']}) | {float(l['median_ms']):.1f} | {float(t['median_ms']):.1f} | {float(l['median_ms'])/float(t['median_ms']):.2f} | {ld('perceptual')} |")
f = res.get("fid_features", {})
if "limner" in f and "torch" in f:
    l, t = f["limner"], f["torch"]
    L.append(f"| FID-like features of {l['images']} images, s (128 px, batch 32, median of {l['n']}) | {float(l['median_ms'])/1e3:.2f} | {float(t['median_ms'])/1e3:.2f} | {float(l['median_ms'])/float(t['median_ms']):.2f} | {ld('fid_features')} |")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
print()
print(text)
if not ok:
    sys.exit("activation shapes differ: the two networks are not the same architecture")
PYEOF
echo "table written to $RESULTS/art.md (raw log: $RAW)" >&2
