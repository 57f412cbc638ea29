//! InceptionV3 workloads beyond art (`bench/torch_art.py` runs the same on torchvision's
//! network):
//!
//! * `inception-profile WORKLOAD [ITERS]`: where the time goes, per kernel call kind
//!   (`limner_kernels::profile`), for `gatys` (288 px = 256 + 2 x 16 padding, batch 1, taps up
//!   to mixed3, forward + input gradient), `dream` (256 px, batch 1, mixed3, forward + input
//!   gradient), `perceptual` (128 px, batch 8: conv2d_3, conv2d_5, mixed0 of the fake with
//!   gradient and of the target without) and `fid` (128 px, batch 32, mixed5, forward);
//!   `bench/torch_inception_profile.py` prints the PyTorch side.
//! * `art-perceptual [REPS]`: the perceptual distance (`InceptionPerceptual`, its default taps
//!   at 128 px) forward + backward at batch 8, what training and projection call.
//! * `art-fid [IMAGES]`: FID-like features (`pooled_features`, batch 32, 128 px) of IMAGES
//!   images (default 1000).

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use limner_core::PerceptualDistance;
use limner_nets::perceptual::{InceptionPerceptual, DEFAULT_TAPS};
use limner_nets::{InceptionV3, Tap};

fn load() -> InceptionV3 {
    InceptionV3::load_fetched(&Device::flex()).unwrap_or_else(|e| {
        eprintln!("limner-bench: {e:#}\n(run `limner models fetch --only inception-v3` first)");
        std::process::exit(2)
    })
}

/// CPU time of this process so far (all threads), ms: printed as `cpu_ms` beside the wall
/// times, a figure the other processes on a shared machine change much less.
pub fn cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: plain out-parameter
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

/// Deterministic pseudo-random values in [lo, hi).
pub fn rand_images(shape: [usize; 4], seed: u32, lo: f32, hi: f32) -> TensorData {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            lo + (hi - lo) * ((s >> 8) as f32 / (1 << 24) as f32)
        })
        .collect();
    TensorData::new(v, shape)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// (size, batch, taps, backward, with a no-gradient target pass)
fn workload(name: &str) -> (usize, usize, Vec<Tap>, bool, bool) {
    let taps = |v: &[&str]| v.iter().map(|t| t.parse().unwrap()).collect::<Vec<Tap>>();
    match name {
        "gatys" => (288, 1, taps(&["conv2d_2", "conv2d_4", "mixed0", "mixed1", "mixed2", "mixed3"]), true, false),
        "dream" => (256, 1, taps(&["mixed3"]), true, false),
        "perceptual" => (128, 8, taps(&["conv2d_3", "conv2d_5", "mixed0"]), true, true),
        "fid" => (128, 32, taps(&["mixed5"]), false, false),
        other => {
            eprintln!("unknown workload `{other}` (gatys, dream, perceptual, fid)");
            std::process::exit(2)
        }
    }
}

pub fn bench_profile(name: &str, iters: usize) {
    let net = load();
    let net_ad = net.autodiff();
    let (size, batch, taps, backward, target) = workload(name);
    let dev = net.device();
    let x = rand_images([batch, 3, size, size], 1, 0.0, 1.0);
    let t = rand_images([batch, 3, size, size], 2, 0.0, 1.0);
    let step = || -> f32 {
        if !backward {
            let f = net.forward_taps(Tensor::from_data(x.clone(), &dev), &taps);
            return f.into_iter().map(|f| f.mean().into_scalar::<f32>()).sum();
        }
        if target {
            let _ = net.forward_taps(Tensor::from_data(t.clone(), &dev), &taps);
        }
        let xr = Tensor::<4>::from_data(x.clone(), &dev).autodiff().require_grad();
        let fs = net_ad.forward_taps(xr.clone(), &taps);
        let loss = fs.into_iter().map(|f| f.square().mean()).reduce(|a, b| a + b).unwrap();
        let g = loss.backward();
        xr.grad(&g).unwrap().abs().sum().into_scalar::<f32>()
    };
    for _ in 0..2 {
        step();
    }
    let (mut times, mut cpus) = (vec![], vec![]);
    for _ in 0..iters {
        let (t0, c0) = (Instant::now(), cpu_ms());
        step();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpus.push(cpu_ms() - c0);
    }
    let m = median(&mut times.clone());
    println!(
        "TOTAL limner {name} size={size} batch={batch} ms={m:.2} min_ms={:.2} cpu_ms={:.2} n={iters}",
        times.iter().cloned().fold(f64::INFINITY, f64::min),
        median(&mut cpus)
    );
    limner_kernels::profile::take();
    limner_kernels::profile::set_enabled(true);
    let t0 = Instant::now();
    for _ in 0..iters {
        step();
    }
    let wall = t0.elapsed().as_secs_f64() * 1e3 / iters as f64;
    limner_kernels::profile::set_enabled(false);
    let rows = limner_kernels::profile::take();
    let mut sum = 0.0;
    for r in &rows {
        let ms = r.ms / iters as f64;
        sum += ms;
        if ms >= 0.05 {
            // gflop: per iteration (2 per multiply-add; 0 for ops that are not convs)
            // cpu_ms: the process's CPU time during the calls (all threads), per iteration
            println!(
                "PROFILE limner {name} {} gflop={:.4} calls={} cpu_ms={:.3} ms={ms:.3}",
                r.label,
                r.flops / iters as f64 / 1e9,
                r.calls / iters as u64,
                r.cpu_ms / iters as f64
            );
        }
    }
    println!("PROFILE limner {name} other (burn ops: cat, slices, gradient sums, loss, copies) ms={:.3}", (wall - sum).max(0.0));
}

/// One perceptual-distance forward + backward (the default taps, batch 8, 128 px, fixed
/// pseudo-random images) on `net`: what `art-perceptual` times.
pub fn perceptual_step(net: InceptionV3) -> impl Fn() -> f32 {
    let dev = Device::flex();
    let p = InceptionPerceptual::new(net, &DEFAULT_TAPS, 128).expect("perceptual");
    let fake = rand_images([8, 3, 128, 128], 3, -1.0, 1.0);
    let target = rand_images([8, 3, 128, 128], 4, -1.0, 1.0);
    move || {
        let f = Tensor::<4>::from_data(fake.clone(), &dev).autodiff().require_grad();
        let d = p.distance(f.clone(), Tensor::from_data(target.clone(), &dev));
        let g = d.backward();
        f.grad(&g).unwrap().abs().sum().into_scalar::<f32>()
    }
}

/// The perceptual distance forward + backward at batch 8, 128 px (the default taps).
pub fn bench_perceptual(reps: usize) {
    let step = perceptual_step(load());
    for _ in 0..2 {
        step();
    }
    let (mut times, mut cpus) = (vec![], vec![]);
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_ms());
        step();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpus.push(cpu_ms() - c0);
    }
    let mn = times.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("RESULT limner perceptual size=128 batch=8 n={reps} median_ms={:.2} min_ms={mn:.2} cpu_ms={:.2}", median(&mut times), median(&mut cpus));
}

/// FID-like features of `images` random 128 px images (batch 32), timed whole, median of 3.
pub fn bench_fid(images: usize) {
    let net = load();
    let dev = net.device();
    let x = Tensor::<4>::from_data(rand_images([images, 3, 128, 128], 5, 0.0, 1.0), &dev);
    let _ = net.pooled_features(x.clone().slice([0..32.min(images)]));
    let (mut times, mut cpus) = (vec![], vec![]);
    let mut check = 0.0f32;
    for _ in 0..3 {
        let (t0, c0) = (Instant::now(), cpu_ms());
        let f = net.pooled_features(x.clone());
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpus.push(cpu_ms() - c0);
        check = f.iter().map(|v| v.iter().sum::<f32>()).sum();
    }
    let mn = times.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "RESULT limner fid_features size=128 batch=32 images={images} n=3 median_ms={:.1} min_ms={mn:.1} cpu_ms={:.1} checksum={check:.3}",
        median(&mut times),
        median(&mut cpus)
    );
}
