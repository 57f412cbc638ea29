#!/usr/bin/env bash
# Official StyleGAN2-ADA pickles generating on the CPU: limner (the pickle imported by
# limner-pickle, run on burn flex) vs NVIDIA's own code (PyTorch, force_fp32), same pickle,
# same machine, one image per call, interleaved rounds.
#
#   STYLEGAN2_ADA_PYTORCH=/path/to/stylegan2-ada-pytorch bench/pickle.sh [--res "256 1024"] [--rounds 2] [--reps 3] [--no-build]
#
# The generators are the FFHQ configuration of train.py (z = w = 512, 8 mapping layers,
# channel_base 32768, channel_max 512, num_fp16_res 4, conv_clamp 256) with random weights,
# built and pickled by bench/torch_pickle.py into $HOME/.cache/limner-pickle-bench (never in
# the repository). limner also reports its largest difference from the official image for
# the same z. The table goes to bench/results/pickle.md, the raw lines beside it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RESES="256 1024"
ROUNDS=2
REPS=3
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --res) RESES="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --reps) REPS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OFFICIAL="${STYLEGAN2_ADA_PYTORCH:?set STYLEGAN2_ADA_PYTORCH to a checkout of NVlabs/stylegan2-ada-pytorch}"

source "$HERE/common.sh"
if [ "$BUILD" = 1 ]; then
    echo "== building limner-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
    (cd "$ROOT" && cargo build --release -p limner-bench >&2)
fi
ensure_torch_venv requests scipy
CACHE="$HOME/.cache/limner-pickle-bench"
mkdir -p "$CACHE"
RAW="$RESULTS/pickle_raw.txt"
{
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "# command: bench/pickle.sh --res \"$RESES\" --rounds $ROUNDS --reps $REPS"
    echo "# official code: $(git -C "$OFFICIAL" rev-parse HEAD 2>/dev/null || echo "$OFFICIAL")"
} | tee "$RAW"
for res in $RESES; do
    pkl="$CACHE/ffhq$res.pkl"
    io="$CACHE/ffhq$res.io.safetensors"
    if [ ! -f "$pkl" ] || [ ! -f "$io" ]; then
        "$PY" "$HERE/torch_pickle.py" make --official "$OFFICIAL" --res "$res" --out "$pkl" --io "$io" | tee -a "$RAW"
    fi
    for round in $(seq "$ROUNDS"); do
        "$BIN" pickle-gen "$pkl" "$io" "$REPS" | tee -a "$RAW"
        OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_pickle.py" time --official "$OFFICIAL" --pkl "$pkl" --reps "$REPS" | tee -a "$RAW"
    done
done

# table: per resolution, the median over rounds of each side's median
"$PY" - "$RAW" > "$RESULTS/pickle.md" <<'PYEOF'
import re, statistics, sys
raw = open(sys.argv[1]).read().splitlines()
rows = {}
diff = {}
for l in raw:
    m = re.match(r'RESULT (\w+) pickle-gen res=(\d+) load_s=([\d.]+) median_s=([\d.]+)', l)
    if m:
        side, res, load, med = m.group(1), int(m.group(2)), float(m.group(3)), float(m.group(4))
        times = re.search(r'times=([\d.,]+)', l)
        best = min(float(x) for x in times.group(1).split(',')) if times else med
        rows.setdefault(res, {}).setdefault(side, []).append((med, load, best))
        d = re.search(r'max_abs_diff_vs_official=(\S+)', l)
        if d:
            diff[res] = max(diff.get(res, 0.0), float(d.group(1)))
print('# Official StyleGAN2-ADA pickles generating on the CPU: limner vs the official code')
print()
for l in raw:
    if l.startswith('# ') and not l.startswith('# made') and not l.startswith('# limner-bench'):
        print(l[2:] + '  ')
print()
print('| generator (FFHQ config, random weights) | limner s/image | official PyTorch s/image (force_fp32) | official / limner | fastest call: limner / official (s) | official\'s fastest / limner\'s median | load: limner / official (s) | max abs diff vs official image |')
print('|---|---|---|---|---|---|---|---|')
for res in sorted(rows):
    l = rows[res].get('limner', []); t = rows[res].get('torch', [])
    if not l or not t:
        continue
    lm = statistics.median(x[0] for x in l); tm = statistics.median(x[0] for x in t)
    ll = statistics.median(x[1] for x in l); tl = statistics.median(x[1] for x in t)
    lb = min(x[2] for x in l); tb = min(x[2] for x in t)
    print(f'| {res}px | {lm:.3f} | {tm:.3f} | {tm / lm:.2f}x | {lb:.3f} / {tb:.3f} | {tb / lm:.2f}x | {ll:.2f} / {tl:.2f} | {diff.get(res, float("nan")):.1e} |')
print()
print('One image per call (batch 1, psi 1, const noise), median of the calls of a round, median of the rounds; '
      'limner and PyTorch alternate round by round. "Fastest call": the quickest single call of all rounds; '
      'the official code\'s fastest call against limner\'s median is the comparison least favourable to limner '
      '(a noisy neighbour slows some calls of either side). Made by `bench/pickle.sh` (raw lines: `pickle_raw.txt`).')
PYEOF
cat "$RESULTS/pickle.md"
