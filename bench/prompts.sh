#!/usr/bin/env bash
# `limner generate --prompt` judged independently: for every prompt below, seeds 0-31 at psi 0.7,
# the share of faces as asked by the independent judge (human-models' FaceRes + emotion network,
# preprocessed as @vladmandic/human@3.3.6 does; never used to steer), steered and the same seeds
# unsteered, beside limner's own read-back (face-api's describe pipeline) and the seeds both
# readings call done. Prints a markdown table (also written to bench/results/prompts.md).
#
#   bench/prompts.sh [--quick] [--no-build]
#
# --quick     seeds 0-7 instead of 0-31
# --no-build  use the limner already built in $CARGO_TARGET_DIR (default target/)
#
# Needs `limner models fetch` (random-face, face-api, human-models) and jq. With
# LIMNER_PROMPTS_RAW=DIR each run's `--json` report (per seed: both readings, sliders) is kept there.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SEEDS=0-31
BUILD=1
for a in "$@"; do
    case "$a" in
        --quick) SEEDS=0-7 ;;
        --no-build) BUILD=0 ;;
        *) echo "unknown option $a" >&2; exit 2 ;;
    esac
done
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release -q -p limner); fi
BIN="$TARGET/release/limner"
N=$(( ${SEEDS#*-} - ${SEEDS%-*} + 1 ))
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# model | size | prompt | extra generate options (shown beside the prompt)
RUNS=(
    "random-face|256|a man"
    "random-face|256|a woman"
    "random-face|256|an old woman"
    "random-face|256|a young man"
    "random-face|256|a smiling woman"
    "random-face|256|a smiling old man"
    "random-face|256|a young woman, not smiling"
    "random-face|256|an old woman|--identity-cap 0.6"
    "random-face|256|a smiling old man|--identity-cap 0.6"
    "random-face|256|an old woman|--refine-age 20 --refine-aim 80"
    "random-face|256|a smiling old man|--refine-age 20 --refine-aim 80"
    "random-face|256|a neutral face"
    "random-face|256|an angry face"
    "random-face|256|a sad face"
    "random-face|256|a surprised face"
    "default||a man"
    "default||a woman"
)

OUT="$HERE/results/prompts.md"
mkdir -p "$HERE/results"
{
    echo "seeds $SEEDS, psi 0.7; load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| model | prompt | as asked, steered (independent) | same seeds, unsteered (independent) | limner's own read-back (face-api) | done (both agree) | same person (face-api identity < 0.6) | seconds |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
} > "$TMP/table.md"
for run in "${RUNS[@]}"; do
    IFS='|' read -r model size prompt extra <<< "$run"
    args=(generate --model "$model" --prompt "$prompt" --seeds "$SEEDS" --psi 0.7 --json)
    if [ -n "$size" ]; then args+=(--size "$size"); fi
    # shellcheck disable=SC2206 # extra is a few plain options
    if [ -n "$extra" ]; then args+=($extra); fi
    label="$model${size:+ ${size}px}"
    echo "running: limner ${args[*]}" >&2
    t0=$(date +%s)
    "$BIN" "${args[@]}" > "$TMP/run.json"
    secs=$(( $(date +%s) - t0 ))
    jq -r --arg m "$label" --arg n "$N" --arg s "$secs" --arg x "${extra:+ ($extra)}" '
        "| \($m) | \(.prompt)\($x) | \(.met_independent)/\($n) | \(.met_independent_before)/\($n) | \(.met)/\($n) (unsteered \(.met_before)/\($n)) | \(.done)/\($n) | \(.same_person // "-")/\(.identity_compared // "-") | \($s) |"
    ' "$TMP/run.json" >> "$TMP/table.md"
    if [ -n "${LIMNER_PROMPTS_RAW:-}" ]; then
        mkdir -p "$LIMNER_PROMPTS_RAW"
        cp "$TMP/run.json" "$LIMNER_PROMPTS_RAW/$(echo "$label $prompt $extra" | tr -c 'a-z0-9' '_').json"
    fi
done
cp "$TMP/table.md" "$OUT"
cat "$OUT"
