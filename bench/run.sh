#!/usr/bin/env bash
# Side-by-side CPU benchmark: limner (burn 0.22.1, flex backend) vs a PyTorch port of the
# same networks and training step (bench/torch_ref.py).
#
#   bench/run.sh [--quick] [--cfg default|fixture|both] [--omp-active]
#
# Builds limner-bench (release), makes sure the benchmark-only Python venv exists
# ($HOME/.cache/limner-bench-venv, never inside the repository), runs both sides measurement
# group by measurement group (interleaved, so slow drifts in background load hit both), and
# prints a table that is also written to bench/results/latest.md (raw logs next to it).
#
# --omp-active: run PyTorch with its default OpenMP wait policy. By default this script
#   sets OMP_WAIT_POLICY=PASSIVE for the PyTorch side, because with both cores already busy
#   (e.g. a training run in the background) spinning OpenMP threads make PyTorch's timings
#   erratic and several times slower; see bench/NOTES.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
QUICK=""
CFG="both"
OMP_ACTIVE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK="--quick" ;;
        --cfg) CFG="$2"; shift ;;
        --omp-active) OMP_ACTIVE=1 ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

source "$HERE/common.sh"
build_bench
ensure_torch_venv

if [ "$OMP_ACTIVE" = 1 ]; then
    TORCH_ENV=()
    OMP_NOTE="PyTorch OpenMP wait policy: library default (active spinning)"
else
    TORCH_ENV=(env OMP_WAIT_POLICY=PASSIVE)
    OMP_NOTE="PyTorch OpenMP wait policy: OMP_WAIT_POLICY=PASSIVE (see NOTES.md)"
fi

RAW="$RESULTS/latest_raw.txt"
# LIMNER_BENCH_GROUPS="train-step parts": only these measurement groups (also train-step128:
# the 128px step, issue 19; parts128); LIMNER_BENCH_APPEND=1:
# append to the raw log instead of starting it afresh (re-measured rows replace earlier ones
# in the table), e.g. to redo a group that another process disturbed.
MEASURE="${LIMNER_BENCH_GROUPS:-modconv gen train-step train-step128 parts}"
[ "${LIMNER_BENCH_APPEND:-0}" = 1 ] || : > "$RAW"
{
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "# command: bench/run.sh $QUICK --cfg $CFG $([ $OMP_ACTIVE = 1 ] && echo --omp-active)"
    echo "# $OMP_NOTE"
    echo "# busy processes at start (top, %CPU > 20):"
    top -b -n1 | awk 'NR>7 && $9+0 > 20 {printf "#   pid %s %s%% %s\n", $1, $9, $12}'
} | tee -a "$RAW"

# LIMNER_BENCH_PAUSE_PID=PID: stop that process (e.g. a training run sharing the cores) during
# each measurement group and continue it between groups and on exit (each group stays well
# under 10 minutes).
PAUSE_PID="${LIMNER_BENCH_PAUSE_PID:-}"
pause() { [ -n "$PAUSE_PID" ] && kill -STOP "$PAUSE_PID" 2>/dev/null && sleep 2 || true; }
resume() { [ -n "$PAUSE_PID" ] && kill -CONT "$PAUSE_PID" 2>/dev/null || true; }
trap resume EXIT
[ -n "$PAUSE_PID" ] && echo "# paused pid $PAUSE_PID during each measurement group" | tee -a "$RAW"

# the fp32 peak both sides' pct_peak divide by: measured once here (limner-bench peak: FMA
# chains in the widest vector unit this CPU has, per second of each thread's own CPU time)
export LIMNER_PEAK_GFLOPS="${LIMNER_PEAK_GFLOPS:-$("$BIN" peak --gflops)}"
echo "# fp32 peak for pct_peak: $LIMNER_PEAK_GFLOPS GFLOP/s ($("$BIN" peak 2>/dev/null | grep 'peak machine' | sed 's/^RESULT limner //'))" | tee -a "$RAW"

# the port must reproduce the fixture before anything is timed
"${TORCH_ENV[@]}" "$PY" "$HERE/torch_ref.py" check $QUICK | tee -a "$RAW"
for what in $MEASURE; do
    echo "== $what" >&2
    pause
    echo "# loadavg before $what: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RAW"
    "$BIN" "$what" $QUICK --cfg "$CFG" | tee -a "$RAW"
    "${TORCH_ENV[@]}" "$PY" "$HERE/torch_ref.py" "$what" $QUICK --cfg "$CFG" | tee -a "$RAW"
    resume
done
if [ -z "${LIMNER_BENCH_GROUPS:-}" ]; then
    pause
    "${TORCH_ENV[@]}" "$PY" "$HERE/torch_ref.py" profile $QUICK | tee -a "$RAW"
    resume
fi
echo "# busy processes at end: $(top -b -n1 | awk 'NR>7 && $9+0 > 20 {printf "pid %s %s%% %s; ", $1, $9, $12}')" | tee -a "$RAW"

python3 - "$RAW" "$RESULTS/latest.md" <<'EOF'
import re, sys
raw, out = sys.argv[1], sys.argv[2]
rows, order, header, extra = {}, [], [], []
for line in open(raw):
    line = line.rstrip("\n")
    if line.startswith("RESULT "):
        parts = line.split()
        fw, name = parts[1], parts[2]
        kv = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
        tags = " ".join(p for p in parts[3:] if p.split("=")[0] in ("cfg", "batch", "images", "cin", "res") and not p.startswith("res=64"))
        key = f"{name} {tags}".strip()
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][fw] = kv
    elif line.startswith("# FIXTURE") or line.startswith("# FLOPCHECK") or line.startswith("# date") \
            or line.startswith("# cpu") or line.startswith("# command") or line.startswith("# PyTorch") \
            or "loadavg" in line or line.startswith("# busy") or line.startswith("#   pid") \
            or line.startswith("# paused"):
        header.append(line[2:])
    elif line.startswith("# PROFILE"):
        extra.append(line[len("# PROFILE "):])

def f(x, d=1):
    return f"{float(x):.{d}f}"

lines = []
lines.append("# limner vs PyTorch, CPU (fp32, 2 threads)\n")
lines.append("```")
lines += header
lines.append("```\n")
lines.append("Timings are medians (ms). `train_step` = (15 x `train_step_nor1` + `train_step_r1`) / 16, i.e. one step "
             "with lazy R1 (every 16 steps) amortised. Peak = 294 GFLOP/s (AVX-512, 2 FMA units, 2 cores, ~2.3 GHz). "
             "GFLOP: multiply-adds x 2 of conv/linear layers (FIR included), analytic, cross-checked with "
             "torch FlopCounterMode; train steps use G fwd + 3 G fwd + 3 D fwd x (D images). "
             "A background training process shared the 2 cores: treat differences under ~30% as noise.\n")
lines.append("| measurement | GFLOP | limner ms | torch ms | limner/torch | limner GFLOP/s | torch GFLOP/s | limner % peak | torch % peak |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    r = rows[key]
    l, t = r.get("limner"), r.get("torch")
    g = (l or t)["gflop"]
    ratio = f(float(l["median_ms"]) / float(t["median_ms"]), 2) if l and t else "-"
    lines.append("| " + " | ".join([
        key, f(g, 2),
        f(l["median_ms"]) if l else "-", f(t["median_ms"]) if t else "-", ratio,
        f(l["gflops"]) if l else "-", f(t["gflops"]) if t else "-",
        f(l["pct_peak"]) if l else "-", f(t["pct_peak"]) if t else "-"]) + " |")
if extra:
    lines.append("\nPyTorch profile of a training step (default config, no R1), self CPU time per op:\n")
    lines.append("```")
    lines += extra
    lines.append("```")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
echo "table written to $RESULTS/latest.md (raw log: $RAW)" >&2
