#!/usr/bin/env bash
# What live editing costs through limner_edit (bench/limner-bench/src/bin/edit-bench.rs): a
# slider move or a breed child re-rendered (default 64 px; random-face 256 px when fetched),
# SeFa for one layer group on first use, and projection (default model, 300 steps).
# Prints the RESULT lines and writes bench/results/edit.md.
#
# With --project: `limner project` on photos of real people taken from registry packages at
# bench time into the cache (never committed) — NASA's public-domain astronaut.png (Eileen
# Collins) from the scikit-image wheel (PyPI), and obama.jpg and biden.jpg (official White House
# portraits, US government works: public domain) from the MIT-licensed face_recognition 1.3.0
# sdist (PyPI) — on the default model and random-face 256 px: time, perceptual and face-api
# identity distance for the encoder alone, encoder + optimisation, optimisation alone
# (bench/limner-bench/src/bin/project-bench.rs); writes bench/results/project.md.
#
#   bench/edit.sh [--quick]
#   bench/edit.sh --project [--steps 300] [--rf-steps 60] [--models default,random-face] [--encoder-default F]
# (results in bench/results/project_<models>.md; wall and CPU seconds, as the 2 cores are shared)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
if [ "${1:-}" = "--project" ]; then
  shift
  PHOTOS="${LIMNER_HOME:-$HOME/.cache/limner}/bench-photos"
  mkdir -p "$PHOTOS"
  if [ ! -f "$PHOTOS/astronaut.png" ] || [ ! -f "$PHOTOS/obama.jpg" ] || [ ! -f "$PHOTOS/biden.jpg" ]; then
    echo "== fetching the photos from PyPI into $PHOTOS" >&2
    TMP="$(mktemp -d)"
    python3 -m pip download -q --no-deps --only-binary :all: scikit-image==0.26.0 -d "$TMP" >&2
    python3 -m pip download -q --no-deps --no-binary :all: face_recognition==1.3.0 -d "$TMP" >&2
    python3 - "$TMP" "$PHOTOS" <<'PY'
import glob, os, sys, tarfile, zipfile
tmp, out = sys.argv[1:]
with zipfile.ZipFile(glob.glob(os.path.join(tmp, "scikit_image-*.whl"))[0]) as z:
    open(os.path.join(out, "astronaut.png"), "wb").write(z.read("skimage/data/astronaut.png"))
with tarfile.open(os.path.join(tmp, "face_recognition-1.3.0.tar.gz")) as t:
    for n in ("obama", "biden"):
        open(os.path.join(out, n + ".jpg"), "wb").write(t.extractfile(f"face_recognition-1.3.0/tests/test_images/{n}.jpg").read())
PY
    rm -rf "$TMP"
  fi
  cargo build --release -q -p limner-bench --bin project-bench
  mkdir -p "$HERE/results"
  TAG="$(echo "$*" | sed -n 's/.*--models \([^ ]*\).*/\1/p' | tr ',' '+')"
  TAG="${TAG:-all}"
  MODES="$(echo "$*" | sed -n 's/.*--modes \([^ ]*\).*/\1/p' | tr ',' '+')"
  [ -z "$MODES" ] || TAG="$TAG-$MODES"
  "$CARGO_TARGET_DIR/release/project-bench" "$@" "$PHOTOS/astronaut.png" "$PHOTOS/obama.jpg" "$PHOTOS/biden.jpg" | tee "$HERE/results/project_${TAG}_raw.txt"
  python3 - "$HERE/results/project_${TAG}_raw.txt" <<'PY' | tee "$HERE/results/project_${TAG}.md"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
for l in lines:
    if l.startswith("#") or l.startswith("HELDOUT") or l.startswith("RESULT"):
        print(l.replace("HELDOUT", "held-out renders, mean perceptual distance:"), "  ")
print()
print("| model | photo | start | steps | wall s | CPU s | perceptual | identity (< 0.6 same) |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for l in lines:
    m = re.match(r"ROW (\S+) (\S+) (\S+) steps=(\d+) s=([\d.]+) cpu=([\d.]+) perceptual=([\d.]+) identity=(\S+)", l)
    if m:
        mode = {"w_avg": "w_avg alone", "encoder": "encoder alone", "encoder+opt": "encoder + optimisation", "opt": "w_avg + optimisation"}[m[3]]
        print(f"| {m[1]} | {m[2]} | {mode} | {m[4]} | {m[5]} | {m[6]} | {m[7]} | {m[8]} |")
PY
  exit 0
fi
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
