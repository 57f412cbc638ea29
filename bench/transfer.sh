#!/usr/bin/env bash
# Issue 20 §2's demo: adapt a model to 100 portraits of a domain no model here has seen, on
# the 2 cores, and compare with training from scratch for the same wall-clock time.
#
#   bench/transfer.sh [--minutes 60] [--chunk 10] [--preset style-05] [--faces DIR] [--work DIR]
#                     [--only transfer|scratch|none] [--held 500] [--score-n 500] [--freeze-d 1]
#   bench/transfer.sh --kimg 40 --kimg-chunk 4 ...   (a budget in images, not minutes)
#   bench/transfer.sh --rate 3                        (each run's speed on this machine, kimg/min)
#   bench/transfer.sh --only transfer --name NAME --train-args "--ema-kimg 1 ..." (a variant of the
#                     transfer run, named NAME in the curves; LIMNER_BIN=PATH runs that binary, no build)
#   bench/transfer.sh --init models/default/generator.safetensors --freeze-d 0 ...  (what the
#                     transfer run starts from: default `default`, the embedded model with its D)
#
# 1. The domain, made reproducibly: faces128 portraits (default /work/shared/data/faces128 or
#    $LIMNER_FACES128) turned into paintings by `limner style --preset PRESET --size 128`:
#    the first 100 files whose index does not end in 0 for training (packed at the default
#    model's resolution, `limner models list`: 128 px since session 11), the first 500 whose
#    index ends in 0 held out. Cached in WORK.
# 2. Two runs for MINUTES each, both with ADA (target 0.6) on the same architecture as the
#    embedded default (z = w = 512, 8 mapping layers, channel_base 2048, channel_max 128):
#    `--init INIT --freeze-d FREEZE_D` (transfer; default `--init default --freeze-d 1`) and from random weights (scratch). Each run
#    trains in CHUNK-minute pieces (`timeout --foreground -s INT`: Ctrl-C saves a checkpoint, `--resume`
#    continues bit for bit), and after every piece its EMA generator is scored:
#    `limner score RUN HELDOUT --n SCORE_N --first-seed 100000` (FID-like, InceptionV3 mixed5).
#    With --kimg TOTAL --kimg-chunk K each piece trains K more kimg instead (`--kimg` is the
#    run's target, the run stops there and `--resume` continues): the curve then does not depend
#    on the machine's load, and the minutes column is the wall time it happened to take.
#    --rate M trains each run for M minutes from its start in a scratch folder and prints its
#    speed (kimg per minute; run it on a quiet machine), which converts kimg into quiet minutes.
# 3. Prints kimg vs FID-like for both runs (and the starting model's score), also written to
#    WORK/curves.csv and bench/results/transfer-latest.md; grids: WORK/run-*/grid-latest.png.
#
# Needs `limner models fetch --only style-transfer --only inception-v3`. Builds limner
# (release; CARGO_TARGET_DIR defaults to $HOME/.cache/limner-target). Scoring time is not
# counted as training time.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MINUTES=60
CHUNK=10
PRESET=style-05  # keeps faces readable at 128 px; style-07 turns them into colour fields that blobs match (a 1-minute scratch run "won")
FACES="${LIMNER_FACES128:-/work/shared/data/faces128}"
WORK="${LIMNER_TRANSFER_WORK:-$HOME/.cache/limner-transfer-bench}"
ONLY=""
KIMG=""
KIMG_CHUNK=4
RATE=""
FREEZE_D=1
INIT=default
NAME=""
TRAIN_ARGS=""
SCORE_N=500
HELD_N=500
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift ;;
        --chunk) CHUNK="$2"; shift ;;
        --preset) PRESET="$2"; shift ;;
        --faces) FACES="$2"; shift ;;
        --work) WORK="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        --kimg) KIMG="$2"; shift ;;
        --kimg-chunk) KIMG_CHUNK="$2"; shift ;;
        --rate) RATE="$2"; shift ;;
        --freeze-d) FREEZE_D="$2"; shift ;;
        --init) INIT="$2"; shift ;;
        --name) NAME="$2"; shift ;;
        --train-args) TRAIN_ARGS="$2"; shift ;;
        --score-n) SCORE_N="$2"; shift ;;
        --held) HELD_N="$2"; shift ;;
        -h|--help) sed -n 2,35p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
LIMNER="${LIMNER_BIN:-$CARGO_TARGET_DIR/release/limner}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS" "$WORK"
[ -n "${LIMNER_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p limner >&2)

# -- 1. the domain ---------------------------------------------------------------------------
[ -d "$FACES" ] || { echo "no faces128 folder at $FACES (give --faces DIR)" >&2; exit 1; }
PAINT="$WORK/paintings-$PRESET"
HELDOUT="$PAINT/heldout-$HELD_N"
mkdir -p "$PAINT/train" "$HELDOUT"
mapfile -t TRAIN < <(ls "$FACES" | grep -E '^[0-9_]*[1-9]\.(jpg|png)$' | sort | head -100)
mapfile -t HELD < <(ls "$FACES" | grep -E '^[0-9_]*0\.(jpg|png)$' | sort | head -"$HELD_N")
[ "${#TRAIN[@]}" -eq 100 ] && [ "${#HELD[@]}" -eq "$HELD_N" ] || { echo "need 100 + $HELD_N faces in $FACES" >&2; exit 1; }
style_all() { # DEST FILE...
    local dest="$1" f out; shift
    for f in "$@"; do
        out="$dest/${f%.*}.png"
        [ -s "$out" ] || "$LIMNER" style --content "$FACES/$f" --preset "$PRESET" --size 128 --out "$out" >/dev/null
    done
}
echo "== painting ${#TRAIN[@]} training and ${#HELD[@]} held-out faces with $PRESET (cached in $PAINT)" >&2
style_all "$PAINT/train" "${TRAIN[@]}"
style_all "$HELDOUT" "${HELD[@]}"
# the default model's resolution (--init refuses a dataset at another one)
RES=$("$LIMNER" models list 2>/dev/null | awk '$1 == "default" {for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+px$/) {sub("px", "", $i); print $i; exit}}')
[ -n "$RES" ] || { echo "cannot read the default model's resolution from \`limner models list\`" >&2; exit 1; }
DATA="$PAINT/train$RES.limner"
[ -s "$DATA" ] || "$LIMNER" dataset build "$PAINT/train" --res "$RES" --out "$DATA" >&2

# -- 2. the runs -------------------------------------------------------------------------------
CURVES="$WORK/curves-$PRESET-$HELD_N.csv"
score() { # MODEL -> FID-like
    "$LIMNER" score "$1" "$HELDOUT" --n "$SCORE_N" --first-seed 100000 2>/dev/null | sed -n 's/^FID-like.*: \([0-9.]*\)$/\1/p'
}
if [ ! -s "$CURVES" ]; then
    echo "run,minutes,kimg,fid_like" > "$CURVES"
    echo "start,0,0,$(score default)" >> "$CURVES"
fi
ARCH=(--z-dim 512 --w-dim 512 --mapping-layers 8 --channel-base 2048 --channel-max 128)
read -r -a EXTRA <<< "$TRAIN_ARGS"
if [ -n "$RATE" ]; then
    for name in transfer scratch; do
        tmp="$(mktemp -d)"
        [ "$name" = transfer ] && extra=(--init "$INIT" --freeze-d "$FREEZE_D" "${EXTRA[@]}") || extra=("${ARCH[@]}")
        timeout --foreground -s INT "$((RATE * 60))" "$LIMNER" train --data "$DATA" --out "$tmp/run" --kimg 100000 --snap-kimg 1 \
            --aug ada "${extra[@]}" >"$tmp/log" 2>&1 || true
        # metrics.csv: kimg,step,seconds (per snapshot interval),...; the first row is kimg 0
        awk -F, -v n="$name" -v m="$RATE" 'NR > 2 {k = $1; s += $3} END {
            if (s > 0) printf "%s: %.3f kimg in %.0f s of training = %.4f kimg per minute; 60 minutes = %.1f kimg (%d cores, load %s)\n", n, k, s, k / s * 60, k / s * 3600, '"$(nproc)"', "'"$(cut -d' ' -f1-3 /proc/loadavg)"'" }' "$tmp/run/metrics.csv"
        rm -rf "$tmp"
    done | tee "$RESULTS/transfer-rate.md"
    exit 0
fi
train_for() { # NAME MINUTES EXTRA...
    local name="$1" total="$2" out="$WORK/run-$PRESET-$HELD_N-$1" done_min=0 resume=() kimg; shift 2
    done_min=$(awk -F, -v r="$name" '$1==r {m=$2} END {print m+0}' "$CURVES")
    if [ -n "$KIMG" ]; then
        local done_k t0 s
        done_k=$(awk -F, -v r="$name" '$1==r {k=$3} END {print k+0}' "$CURVES")
        while awk -v a="$done_k" -v b="$KIMG" 'BEGIN {exit !(a + 1e-9 < b)}'; do
            [ -s "$out/latest.safetensors" ] && resume=(--resume) || resume=("$@")
            local target; target=$(awk -v a="$done_k" -v c="$KIMG_CHUNK" -v b="$KIMG" 'BEGIN {t = a + c; if (t > b) t = b; print t}')
            echo "== $name: kimg $done_k..$target" >&2
            t0=$(date +%s)
            "$LIMNER" train --data "$DATA" --out "$out" --kimg "$target" --snap-kimg 1 --aug ada "${resume[@]}" >>"$WORK/$name.log" 2>&1
            s=$(( $(date +%s) - t0 ))
            done_min=$(awk -v a="$done_min" -v s="$s" 'BEGIN {printf "%.1f", a + s / 60}')
            done_k=$(tail -1 "$out/metrics.csv" | cut -d, -f1)
            echo "$name,$done_min,$done_k,$(score "$out")" >> "$CURVES"
            tail -1 "$CURVES" >&2
        done
        return 0
    fi
    while [ "$done_min" -lt "$total" ]; do
        [ -s "$out/latest.safetensors" ] && resume=(--resume) || resume=("$@")
        echo "== $name: minutes $done_min..$((done_min + CHUNK))" >&2
        # --foreground: SIGINT to limner alone; without it timeout also signals the process
        # group, limner sees a second Ctrl-C and exits without its checkpoint
        timeout --foreground -s INT "$((CHUNK * 60))" "$LIMNER" train --data "$DATA" --out "$out" --kimg 100000 --snap-kimg 5 \
            --aug ada "${resume[@]}" >>"$WORK/$name.log" 2>&1 || true
        done_min=$((done_min + CHUNK))
        kimg=$( [ -s "$out/metrics.csv" ] && tail -1 "$out/metrics.csv" | cut -d, -f1 || echo 0)
        echo "$name,$done_min,$kimg,$(score "$out")" >> "$CURVES"
        tail -1 "$CURVES" >&2
    done
}
# the transfer run's name says how many of D's blocks FreezeD kept (the default model ships the D
# trained beside it, so a frozen block keeps what that D learnt about faces)
TRANSFER=transfer; [ "$FREEZE_D" = 1 ] || TRANSFER="transfer-freeze$FREEZE_D"
[ -z "$NAME" ] || TRANSFER="$NAME"
[ "$ONLY" = scratch ] || [ "$ONLY" = none ] || train_for "$TRANSFER" "$MINUTES" --init "$INIT" --freeze-d "$FREEZE_D" "${EXTRA[@]}"
[ "$ONLY" = transfer ] || [ "$ONLY" = none ] || train_for scratch "$MINUTES" "${ARCH[@]}"

# -- 3. the table --------------------------------------------------------------------------------
{
    echo "# transfer vs scratch on $PRESET paintings ($(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) when the table was written)"
    echo
    echo "| run | minutes | kimg | FID-like vs $HELD_N held-out paintings (N = $SCORE_N) |"
    echo "|---|---|---|---|"
    tail -n +2 "$CURVES" | awk -F, '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}'
} | tee "$RESULTS/transfer-latest.md"
