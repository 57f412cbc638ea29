//! The fp32 peak of THIS machine, measured: every thread runs 12 independent FMA chains in the
//! widest vector unit the CPU has (detected at run time: AVX-512F, 16 lanes; AVX2 + FMA,
//! 8 lanes; otherwise SSE2 multiply + add, 4 lanes), 2 FLOP per lane per FMA. The rate per
//! second of each thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`) does not drop when other
//! processes take the core away, so the peak is that rate times the number of threads the
//! benches use (`available_parallelism`), measured with all of them running at once (so two
//! vCPUs sharing one core's FMA units would show). The clock it implies is printed assuming
//! 2 FMA pipes per core (Zen 2-5, Skylake-SP and later server cores); /proc/cpuinfo's
//! `cpu MHz` beside it is often the TSC rate, not the boost clock.
//!
//! `LIMNER_PEAK_GFLOPS` in the environment overrides the measurement (bench/run.sh measures
//! once and passes the same number to both sides).

use std::sync::OnceLock;
use std::time::Instant;

/// The vector unit the chains run on.
#[derive(Clone, Copy, Debug)]
pub struct Isa {
    pub name: &'static str,
    pub lanes: usize,
    /// FLOP per lane per instruction pair / FMA
    pub fma: bool,
}

pub fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa { name: "avx512f", lanes: 16, fma: true };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa { name: "avx2+fma", lanes: 8, fma: true };
        }
        Isa { name: "sse2 (no fma)", lanes: 4, fma: false }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Isa { name: "scalar", lanes: 1, fma: false }
}

/// 12 chains of `iters` FMAs (or multiply + add) each; returns FLOP done and a value to keep.
fn chains(iters: usize) -> (f64, f32) {
    let i = isa();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn c512(iters: usize) -> f32 {
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            let mut acc = [_mm512_set1_ps(1.0); 12];
            for _ in 0..iters {
                for v in acc.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, a, b);
                }
            }
            let mut s = _mm512_setzero_ps();
            for v in acc {
                s = _mm512_add_ps(s, v);
            }
            _mm512_reduce_add_ps(s)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn c256(iters: usize) -> f32 {
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            let mut acc = [_mm256_set1_ps(1.0); 12];
            for _ in 0..iters {
                for v in acc.iter_mut() {
                    *v = _mm256_fmadd_ps(*v, a, b);
                }
            }
            let mut out = [0.0f32; 8];
            let mut s = _mm256_setzero_ps();
            for v in acc {
                s = _mm256_add_ps(s, v);
            }
            _mm256_storeu_ps(out.as_mut_ptr(), s);
            out.iter().sum()
        }
        let flops = (iters * 12 * i.lanes * 2) as f64;
        // SAFETY: the CPU has the feature (checked by `isa`)
        match i.name {
            "avx512f" => return (flops, unsafe { c512(iters) }),
            "avx2+fma" => return (flops, unsafe { c256(iters) }),
            _ => {}
        }
    }
    // no FMA: a multiply and an add per lane, 4 independent lanes per chain as plain floats
    let mut acc = [[1.0f32; 4]; 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            for x in v.iter_mut() {
                *x = std::hint::black_box(*x) * 0.999_999 + 1e-7;
            }
        }
    }
    ((iters * 12 * 4 * 2) as f64, acc.iter().flatten().sum())
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: plain out-parameter
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

pub fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `threads` threads at once, best of `tries`: (GFLOP/s over the wall time, all threads
/// together; the slowest thread's GFLOP per second of its own CPU time).
pub fn measure(threads: usize, iters: usize, tries: usize) -> (f64, f64) {
    let (mut best_wall, mut best_cpu) = (0.0f64, 0.0f64);
    for _ in 0..tries {
        let t0 = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::spawn(move || {
                    let c0 = thread_cpu_s();
                    let (flops, keep) = chains(iters);
                    (flops, keep, thread_cpu_s() - c0)
                })
            })
            .collect();
        let rs: Vec<(f64, f32, f64)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        std::hint::black_box(rs.iter().map(|r| r.1).sum::<f32>());
        let total: f64 = rs.iter().map(|r| r.0).sum();
        best_wall = best_wall.max(total / t0.elapsed().as_secs_f64() / 1e9);
        best_cpu = best_cpu.max(rs.iter().map(|r| r.0 / r.2 / 1e9).fold(f64::INFINITY, f64::min));
    }
    (best_wall, best_cpu)
}

/// FLOP per cycle per core the clock estimate assumes: 2 FMA pipes × lanes × 2 FLOP.
pub fn flop_per_cycle(i: Isa) -> f64 {
    if i.fma { (2 * i.lanes * 2) as f64 } else { (2 * i.lanes) as f64 }
}

/// The highest `cpu MHz` in /proc/cpuinfo (often the TSC / base rate).
fn cpuinfo_mhz() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines().filter(|l| l.starts_with("cpu MHz")).filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok()).reduce(f64::max)
}

/// The peak the benches divide by, GFLOP/s for all `threads()` threads, and how it was obtained.
pub fn machine_peak() -> &'static (f64, String) {
    static PEAK: OnceLock<(f64, String)> = OnceLock::new();
    PEAK.get_or_init(|| {
        if let Some(v) = std::env::var("LIMNER_PEAK_GFLOPS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|v| *v > 0.0) {
            return (v, "LIMNER_PEAK_GFLOPS".into());
        }
        let t = threads();
        let (_, per_thread) = measure(t, 20_000_000 / isa().lanes.max(1) * 8, 3);
        (per_thread * t as f64, format!("measured: {t} threads x {per_thread:.1} GFLOP per thread CPU-second, {} FMA chains", isa().name))
    })
}

/// `limner-bench peak [--gflops]`: the measurement in full (or only the peak, for scripts).
pub fn bench_peak(only_number: bool) {
    if only_number {
        println!("{:.1}", machine_peak().0);
        return;
    }
    let i = isa();
    let fpc = flop_per_cycle(i);
    let iters = 400_000_000 / i.lanes;
    let mhz = cpuinfo_mhz().map(|m| format!("{m:.0}")).unwrap_or_else(|| "?".into());
    let mut peak = 0.0;
    for threads in [1, threads()] {
        let (wall, cpu) = measure(threads, iters, 3);
        println!(
            "RESULT limner peak threads={threads} isa={} gflops={wall:.1} gflops_per_thread_cpu_s={cpu:.1} clock_ghz={:.2} \
             (best of 3, {} FMA chains, {} lanes; clock = per-CPU-second rate / {fpc} FLOP per cycle, assuming 2 FMA pipes; \
             /proc/cpuinfo cpu MHz {mhz})",
            i.name,
            cpu / fpc,
            i.name,
            i.lanes
        );
        peak = cpu * threads as f64;
    }
    println!(
        "RESULT limner peak machine gflops={peak:.1} threads={} isa={} (the {}-thread run's slowest thread per CPU-second x {}; \
         what the benches' pct_peak divides by unless LIMNER_PEAK_GFLOPS is set)",
        threads(),
        i.name,
        threads(),
        threads()
    );
}
