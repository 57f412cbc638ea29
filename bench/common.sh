# Sourced by the bench scripts (run.sh, art.sh): cargo's target dir, the PyTorch venv outside
# the repository, the results folder, and the limner-bench build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/limner-target}"
VENV="${LIMNER_BENCH_VENV:-$HOME/.cache/limner-bench-venv}"
PY="$VENV/bin/python"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
BIN="$CARGO_TARGET_DIR/release/limner-bench"

build_bench() {
    echo "== building limner-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
    (cd "$ROOT" && cargo build --release --workspace >&2)
}

# ensure_torch_venv [EXTRA_PACKAGE...]: torch, numpy, safetensors and the extras in $VENV.
ensure_torch_venv() {
    local mods="torch, numpy, safetensors" m
    for m in "$@"; do mods="$mods, $m"; done
    if ! "$PY" -c "import $mods" 2>/dev/null; then
        echo "== preparing the benchmark venv at $VENV ($mods)" >&2
        [ -x "$PY" ] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install torch numpy safetensors "$@" >&2
    fi
}
