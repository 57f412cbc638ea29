//! `limner-bench art-gatys` / `art-dream`: Gatys style transfer and DeepDream on limner's
//! InceptionV3 (the fetched nsfwjs weights), timed per step; `bench/torch_art.py` runs the same
//! algorithms on torchvision's InceptionV3 truncated at `Mixed_6c` (= Keras `mixed5`).
//!
//! Lines: `SHAPE limner <tap> [..]` (the activation shapes at the benchmark size, which
//! `bench/art.sh` compares with PyTorch's) and `RESULT limner <name> key=value ...`.

use std::time::Instant;

use burn::tensor::Device;
use limner_art::dream::{self, DreamConfig};
use limner_art::gatys::{self, GatysConfig};
use limner_art::Picture;
use limner_nets::{InceptionV3, Tap};

/// A deterministic 256 px test image: smooth colour waves with some texture.
pub fn test_picture(w: usize, h: usize, phase: f32) -> Picture {
    let mut data = Vec::with_capacity(3 * w * h);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let (xf, yf, cf) = (x as f32, y as f32, c as f32);
                let s = 0.5 + 0.4 * (0.05 * xf * (cf + 1.0) + 0.03 * yf + phase).sin() * (0.02 * yf * (2.0 - cf) + phase).cos();
                let tex = if (x / 3 + y / 5) % 2 == 0 { 0.05 } else { -0.05 };
                data.push((s + tex).clamp(0.0, 1.0));
            }
        }
    }
    Picture { width: w, height: h, data }
}

fn load() -> InceptionV3 {
    InceptionV3::load_fetched(&Device::flex()).unwrap_or_else(|e| {
        eprintln!("limner-bench art: {e:#}\n(run `limner models fetch --only inception-v3` first)");
        std::process::exit(2)
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Prints the shape of every tap the benchmarks use, at `size` px (plus the padded Gatys input).
fn print_shapes(net: &InceptionV3, size: usize) {
    let names = ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "conv2d_5", "mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5"];
    let taps: Vec<Tap> = names.iter().map(|n| n.parse().unwrap()).collect();
    let x = test_picture(size, size, 0.0).to_tensor(&net.device());
    for (n, a) in names.iter().zip(net.forward_taps(x, &taps)) {
        println!("SHAPE limner size={size} {n} {:?}", a.dims());
    }
}

/// Gatys at `size` px: `steps` timed steps (after 2 warm-up steps); the 200-step total is
/// extrapolated from the median step unless `steps >= 200`.
pub fn bench_gatys(size: usize, steps: usize) {
    let net = load();
    print_shapes(&net, size);
    let content = test_picture(size, size, 0.0);
    let style = test_picture(size, size, 2.0);
    let cfg = GatysConfig { steps: steps + 2, size, ..Default::default() };
    let mut times = Vec::with_capacity(steps + 2);
    let mut cpus = Vec::with_capacity(steps + 2);
    let mut last = Instant::now();
    let mut last_cpu = crate::inception::cpu_ms();
    let t0 = Instant::now();
    let mut final_loss = 0.0;
    gatys::stylize_with(&net, &content, &style, &cfg, &mut |p| {
        times.push(last.elapsed().as_secs_f64() * 1e3);
        let c = crate::inception::cpu_ms();
        cpus.push(c - last_cpu);
        last_cpu = c;
        last = Instant::now();
        final_loss = p.losses.total;
    })
    .expect("gatys");
    let wall = t0.elapsed().as_secs_f64();
    let mut timed: Vec<f64> = times[2..].to_vec();
    let m = median(&mut timed);
    let total_200 = if steps >= 200 { timed.iter().take(200).sum::<f64>() / 1e3 } else { m * 200.0 / 1e3 };
    let cpu = median(&mut cpus[2..].to_vec());
    println!(
        "RESULT limner gatys_step size={size} n={} median_ms={m:.2} min_ms={:.2} cpu_ms={cpu:.2} total200_s={total_200:.1} extrapolated={} wall_s={wall:.1} loss={final_loss:.4}",
        timed.len(),
        timed.iter().cloned().fold(f64::INFINITY, f64::min),
        steps < 200
    );
}

/// DeepDream at `size` px with the default settings (4 octaves x 10 steps, mixed3), timed whole.
pub fn bench_dream(size: usize, reps: usize) {
    let net = load();
    let img = test_picture(size, size, 1.0);
    let cfg = DreamConfig::default();
    // warm-up: one step on the smallest octave
    dream::dream_with(&net, &img, &DreamConfig { steps: 1, octaves: 1, ..cfg.clone() }, &mut |_| {}).expect("dream");
    let (mut totals, mut cpus) = (vec![], vec![]);
    for _ in 0..reps {
        let (t, c) = (Instant::now(), crate::inception::cpu_ms());
        dream::dream_with(&net, &img, &cfg, &mut |_| {}).expect("dream");
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        cpus.push(crate::inception::cpu_ms() - c);
    }
    let steps = cfg.octaves * cfg.steps;
    let m = median(&mut totals);
    let cpu = median(&mut cpus);
    println!(
        "RESULT limner dream_total size={size} octaves={} steps={steps} n={reps} median_ms={m:.1} cpu_ms={cpu:.1} min_ms={:.1} per_step_ms={:.2}",
        cfg.octaves,
        totals.iter().cloned().fold(f64::INFINITY, f64::min),
        m / steps as f64
    );
}

/// Same-process A/B of the batch-1 row tiles (`limner_kernels::conv_relu::set_row_tiles_enabled`):
/// `art-ab gatys [SIZE] [N]` switches them on and off before every Gatys step (2 warm-up steps,
/// then N steps each way, interleaved); `art-ab dream [SIZE] [N]` alternates whole DeepDream runs
/// (N each way, after a warm-up). Both halves see the same load, so their ratio is steadier than
/// that of two runs minutes apart. Prints `RESULT limner <gatys|dream>_ab on_ms=.. off_ms=..
/// on_cpu_ms=.. off_cpu_ms=.. ratio=.. cpu_ratio=..` (medians; ratio = on / off).
/// `art-ab perceptual [SIZE ignored] [N]` alternates single perceptual-distance forward + backward
/// calls (batch 8, 128 px) with round 4's switches (`LIMNER_FAST_PERCEPTUAL`,
/// `LIMNER_BRANCH_FREE_MASK`) on and off (the row tiles stay on: batch 8 does not use them).
/// `art-ab direct-gatys|direct-dream|direct-perceptual ...` flips the direct conv instead
/// (`limner_kernels::direct`, `LIMNER_DIRECT_CONV`; on = direct, off = im2col + gemm) in the
/// same way; the other switches stay at their defaults. `art-ab wide-...` flips the direct conv's
/// AVX-512 micro-kernel (`LIMNER_DIRECT_AVX512`; on = AVX-512, off = AVX2; needs AVX-512F),
/// `art-ab gemm512-...` compares the direct conv with AVX-512 (on) and the im2col + gemm path
/// (off). `fid` (with any prefix) alternates forward passes of 32 images at 128 px to `mixed5`,
/// the FID-like features' batch.
pub fn bench_ab(what: &str, size: usize, n: usize) {
    use limner_kernels::conv_relu::set_row_tiles_enabled;
    let label = what;
    let (what, mode) = match what.split_once('-') {
        Some((m @ ("direct" | "wide" | "gemm512"), w)) => (w, m),
        _ => (what, ""),
    };
    if mode == "wide" || mode == "gemm512" {
        limner_kernels::direct::set_avx512(true);
        if !limner_kernels::direct::uses_avx512() {
            eprintln!("`{label}` needs a CPU with AVX-512F");
            std::process::exit(2)
        }
    }
    let toggle = |on: bool| match (mode, what) {
        ("direct" | "gemm512", _) => limner_kernels::direct::set_enabled(on),
        ("wide", _) => limner_kernels::direct::set_avx512(on),
        (_, "perceptual") => {
            limner_kernels::unit_dist::set_fused_enabled(on);
            limner_kernels::bias_relu::set_branch_free_mask(on);
        }
        _ => set_row_tiles_enabled(on),
    };
    let net = load();
    let (mut on, mut off): ((Vec<f64>, Vec<f64>), (Vec<f64>, Vec<f64>)) = Default::default();
    match what {
        "gatys" => {
            let content = test_picture(size, size, 0.0);
            let style = test_picture(size, size, 2.0);
            let cfg = GatysConfig { steps: 2 + 2 * n, size, ..Default::default() };
            let (mut last, mut last_cpu, mut step) = (Instant::now(), crate::inception::cpu_ms(), 0usize);
            toggle(true);
            gatys::stylize_with(&net, &content, &style, &cfg, &mut |_| {
                let (t, c) = (last.elapsed().as_secs_f64() * 1e3, crate::inception::cpu_ms() - last_cpu);
                // step `step` ran with the switch set after step - 1: on for even steps
                if step >= 2 {
                    let side = if step % 2 == 0 { &mut on } else { &mut off };
                    side.0.push(t);
                    side.1.push(c);
                }
                step += 1;
                toggle(step % 2 == 0);
                (last, last_cpu) = (Instant::now(), crate::inception::cpu_ms());
            })
            .expect("gatys");
        }
        "dream" => {
            let img = test_picture(size, size, 1.0);
            let cfg = DreamConfig::default();
            dream::dream_with(&net, &img, &DreamConfig { steps: 1, octaves: 1, ..cfg.clone() }, &mut |_| {}).expect("dream");
            for i in 0..2 * n {
                toggle(i % 2 == 0);
                let (t, c) = (Instant::now(), crate::inception::cpu_ms());
                dream::dream_with(&net, &img, &cfg, &mut |_| {}).expect("dream");
                let side = if i % 2 == 0 { &mut on } else { &mut off };
                side.0.push(t.elapsed().as_secs_f64() * 1e3);
                side.1.push(crate::inception::cpu_ms() - c);
            }
        }
        "perceptual" => {
            // this round's perceptual-distance changes (the fused distance and the branch-free
            // ReLU mask) on vs off, alternating single forward + backward calls (batch 8, 128 px)
            let step = crate::inception::perceptual_step(net);
            for _ in 0..2 {
                step();
            }
            for i in 0..2 * n {
                toggle(i % 2 == 0);
                let (t, c) = (Instant::now(), crate::inception::cpu_ms());
                step();
                let side = if i % 2 == 0 { &mut on } else { &mut off };
                side.0.push(t.elapsed().as_secs_f64() * 1e3);
                side.1.push(crate::inception::cpu_ms() - c);
            }
        }
        "fid" => {
            let dev = net.device();
            let x = burn::tensor::Tensor::<4>::from_data(crate::inception::rand_images([32, 3, 128, 128], 5, 0.0, 1.0), &dev);
            let _ = net.pooled_features(x.clone());
            for i in 0..2 * n {
                toggle(i % 2 == 0);
                let (t, c) = (Instant::now(), crate::inception::cpu_ms());
                let _ = net.pooled_features(x.clone());
                let side = if i % 2 == 0 { &mut on } else { &mut off };
                side.0.push(t.elapsed().as_secs_f64() * 1e3);
                side.1.push(crate::inception::cpu_ms() - c);
            }
        }
        other => {
            eprintln!("unknown A/B `{other}` (gatys, dream, perceptual, fid; each also as direct-..., wide-..., gemm512-...)");
            std::process::exit(2)
        }
    }
    toggle(true);
    let (a, b, ac, bc) = (median(&mut on.0), median(&mut off.0), median(&mut on.1), median(&mut off.1));
    println!(
        "RESULT limner {label}_ab size={} n={} on_ms={a:.2} off_ms={b:.2} on_cpu_ms={ac:.2} off_cpu_ms={bc:.2} ratio={:.3} cpu_ratio={:.3}",
        if what == "perceptual" || what == "fid" { 128 } else { size },
        on.0.len(),
        a / b,
        ac / bc
    );
}
