#!/usr/bin/env bash
# Interactive speed of `limner studio` in headless Chromium (bench/studio_browser.rs):
#
#   bench/studio_browser.sh [--samples 40] [--warmup 4] [--workers N] [--no-build]
#
# Builds limner and the bench (release), starts the real studio on loopback and Debian's
# chromium (driven by the end-to-end tests' DevTools client), and measures in the page: a
# slider's input event → the new image on screen (128 px default, 256 px random-face when
# fetched), a reload → its new face on screen, the New face button; p50/p95 against the goals
# (≤ 100 ms slider at the default, ≤ 250 ms at 256 px, ≤ 150 ms refresh) and where the time went.
# Output: stdout and bench/results/studio_browser.md (with the machine's load before and after).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
cd "$ROOT"
# the bench is the limner crate's `studio-browser` example (bench/studio_browser.rs): it reuses the
# studio tests' support code (tests/studio_support: the studio on loopback, the DevTools client)
# --no-build: use the binaries already in $CARGO_TARGET_DIR (e.g. from `cargo build --release --workspace --all-targets`)
BUILD=1; ARGS=()
for a in "$@"; do if [ "$a" = --no-build ]; then BUILD=0; else ARGS+=("$a"); fi; done
set -- ${ARGS[@]+"${ARGS[@]}"}
[ "$BUILD" = 0 ] || cargo build --release -q -p limner --bin limner --example studio-browser
{
  echo "# limner studio in a browser: interactive speed"
  echo
  echo "\`bench/studio_browser.sh $*\` on $(nproc) cores, $(date -u +%Y-%m-%d), $(chromium --version 2>/dev/null | head -1)"
  echo
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); niceness $(nice)"
  echo
  echo '```'
  "$CARGO_TARGET_DIR/release/examples/studio-browser" "$@"
  echo '```'
  echo
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$HERE/results/studio_browser.md"
