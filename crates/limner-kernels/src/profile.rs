//! Opt-in per-op timing of the fast kernels (`LIMNER_PROFILE=1`, or [`set_enabled`]): every
//! kernel call adds its wall time to a label such as `conv 3x3 fwd cin=80 cout=192 in=[62, 62]`;
//! [`take`] returns and clears the totals. Off (the default) it costs one relaxed atomic load
//! per call. `limner-bench inception-profile` prints the table (bench/results/inception-profile.md).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// 0 = not read yet, 1 = on, 2 = off
static STATE: AtomicU8 = AtomicU8::new(0);
static TOTALS: Mutex<BTreeMap<String, (f64, u64)>> = Mutex::new(BTreeMap::new());

/// Whether kernel calls are timed (`LIMNER_PROFILE=1`).
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("LIMNER_PROFILE").is_ok_and(|v| v == "1");
            set_enabled(on);
            on
        }
    }
}

/// Turns the timing on or off for the whole process.
pub fn set_enabled(on: bool) {
    STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Runs `f`, adding its wall time to `label()` when profiling is on.
pub fn time<R>(label: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let r = f();
    let dt = t.elapsed().as_secs_f64() * 1e3;
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let e = m.entry(label()).or_insert((0.0, 0));
    e.0 += dt;
    e.1 += 1;
    r
}

/// The totals so far, `(label, ms, calls)`, largest first; clears them.
pub fn take() -> Vec<(String, f64, u64)> {
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, f64, u64)> = std::mem::take(&mut *m).into_iter().map(|(k, (ms, n))| (k, ms, n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}
