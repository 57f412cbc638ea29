//! Opt-in per-op timing of the fast kernels (`LIMNER_PROFILE=1`, or [`set_enabled`]): every
//! kernel call adds its wall time (and, for convs, its floating-point operations: 2 per
//! multiply-add) to a label such as `conv 3x3 fwd cin=80 cout=192 in=[62, 62]`; [`take`]
//! returns and clears the totals. Off (the default) it costs one relaxed atomic load per call.
//! `limner-bench inception-profile` prints the table with GFLOP/s
//! (bench/results/inception-profile.md).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// 0 = not read yet, 1 = on, 2 = off
static STATE: AtomicU8 = AtomicU8::new(0);
static TOTALS: Mutex<BTreeMap<String, Row>> = Mutex::new(BTreeMap::new());

/// The totals of one label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub label: String,
    /// wall time, all calls
    pub ms: f64,
    pub calls: u64,
    /// floating-point operations, all calls (0 for ops that are not counted)
    pub flops: f64,
    /// CPU time of the whole process during the calls (all its threads: the op's workers,
    /// and any other thread of the process that ran meanwhile), ms; unlike the wall time it
    /// does not grow when other processes take the cores away
    pub cpu_ms: f64,
}

impl Row {
    /// GFLOP/s over the recorded wall time (0 when nothing was counted).
    pub fn gflops_per_s(&self) -> f64 {
        if self.ms > 0.0 { self.flops / self.ms / 1e6 } else { 0.0 }
    }
    /// GFLOP per second of CPU time: the rate of one busy core (compare with one core's peak).
    pub fn gflops_per_cpu_s(&self) -> f64 {
        if self.cpu_ms > 0.0 { self.flops / self.cpu_ms / 1e6 } else { 0.0 }
    }
}

/// CPU time of this process so far, ms (`CLOCK_PROCESS_CPUTIME_ID`; 0 where unavailable).
fn process_cpu_ms() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: plain out-parameter
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6;
        }
    }
    0.0
}

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
    time_flops(label, 0.0, f)
}

/// [`time`] for an op doing `flops` floating-point operations (2 per multiply-add).
pub fn time_flops<R>(label: impl FnOnce() -> String, flops: f64, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let (t, c) = (Instant::now(), process_cpu_ms());
    let r = f();
    let dt = t.elapsed().as_secs_f64() * 1e3;
    let dc = process_cpu_ms() - c;
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let label = label();
    let e = m.entry(label.clone()).or_insert_with(|| Row { label, ..Row::default() });
    e.ms += dt;
    e.calls += 1;
    e.flops += flops;
    e.cpu_ms += dc;
    r
}

/// The totals so far, largest time first; clears them.
pub fn take() -> Vec<Row> {
    let mut m = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<Row> = std::mem::take(&mut *m).into_values().collect();
    v.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_time_and_flops_per_label() {
        set_enabled(true);
        take();
        for _ in 0..3 {
            time_flops(|| "test op a".into(), 2e6, || std::thread::sleep(std::time::Duration::from_millis(2)));
        }
        time(|| "test op b".into(), || ());
        set_enabled(false);
        let rows = take();
        let a = rows.iter().find(|r| r.label == "test op a").expect("row a");
        assert_eq!((a.calls, a.flops), (3, 6e6));
        assert!(a.ms >= 6.0, "{a:?}");
        // (its CPU time is the whole process's, which other tests running in parallel also
        // spend, so nothing is asserted about it here beyond being a time)
        assert!(a.cpu_ms.is_finite() && a.cpu_ms >= 0.0, "{a:?}");
        assert!(a.gflops_per_s() > 0.0 && a.gflops_per_s() <= 1.0, "{a:?}");
        let b = rows.iter().find(|r| r.label == "test op b").expect("row b");
        assert_eq!((b.calls, b.flops, b.gflops_per_s()), (1, 0.0, 0.0));
        assert!(take().is_empty());
    }
}
