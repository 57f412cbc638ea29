//! limner-bench: times limner's StyleGAN2 on burn's CPU `flex` backend.
//!
//! Every measurement prints one machine-readable line
//! `RESULT limner <name> key=value ...` that `bench/run.sh` pairs with the identical line
//! printed by the PyTorch port `bench/torch_ref.py`.
//!
//! Usage: limner-bench [all|train-step|gen|modconv|parts|kernels|ab|act|photoreal|art-gatys|art-dream]... [--quick] [--cfg default|fixture|both]
//!
//! `photoreal` (not part of `all`; needs `limner models fetch --only random-face`) times one
//! 1024px random-face synthesis; `bench/photoreal.sh` pairs it with OpenVINO.
//!
//! `art-gatys [SIZE] [STEPS]` and `art-dream [SIZE] [REPS]` (not part of `all`; `bench/art.sh`
//! runs them): Gatys style transfer and DeepDream on limner's InceptionV3, see `art.rs`.
//! `art-ab gatys|dream [SIZE] [N]`: the batch-1 row tiles on vs off in one process; `art-ab perceptual
//! [SIZE] [N]`: the fused perceptual distance + branch-free ReLU mask on vs off (`art.rs`);
//! `art-ab direct-gatys|direct-dream|direct-perceptual ...`: the direct conv on vs off.
//!
//! `peak [--gflops]`: this machine's fp32 peak, measured (`peak.rs`); every `pct_peak` divides by it.
//!
//! `pickle-gen PKL IO [REPS]` (not part of `all`; `bench/pickle.sh` runs it): an official
//! StyleGAN2-ADA pickle imported and generating, see `pickle.rs`.
//!
//! `kernels` and `ab` (not part of `all`) compare burn's flex convs with limner-kernels in one
//! process: per conv layer (fwd / input grad / weight grad), and the whole training step.
//!
//! GFLOP are counted analytically (2 FLOP per multiply-add of every conv / linear layer,
//! FIR filters included, transposed convs counted at their input resolution; elementwise
//! ops not counted), so both sides divide by the same number.

mod art;
mod inception;
mod peak;

use std::hint::black_box;
use std::time::Instant;

mod photoreal;
mod pickle;

use burn::tensor::{Device, Distribution, Tensor};
use limner_gan::layers::{NoiseMode, SynthesisLayer};
use limner_gan::params::Params;
use limner_gan::train::{DataSource, TrainConfig, Trainer};
use limner_gan::{Discriminator, DiscriminatorConfig, Generator, GeneratorConfig};

/// fp32 peak of this machine, GFLOP/s: measured once per process (`peak::machine_peak`: FMA
/// chains in the widest vector unit detected at run time) unless `LIMNER_PEAK_GFLOPS` is set.
fn peak_gflops() -> f64 {
    peak::machine_peak().0
}
const RES: usize = 64;
const BATCH: usize = 32;

struct Opts {
    quick: bool,
    cfgs: Vec<&'static str>,
}

fn main() {
    limner_kernels::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let cfg_arg = args.windows(2).find(|w| w[0] == "--cfg").map(|w| w[1].clone()).unwrap_or_else(|| "both".into());
    let cfgs = match cfg_arg.as_str() {
        "default" => vec!["default"],
        "fixture" => vec!["fixture"],
        _ => vec!["default", "fixture"],
    };
    let mut what: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && !(*i > 0 && args[i - 1] == "--cfg"))
        .map(|(_, a)| a.clone())
        .collect();
    if what.is_empty() || what.iter().any(|w| w == "all") {
        what = vec!["modconv".into(), "gen".into(), "train-step".into(), "parts".into()];
    }
    if what.first().is_some_and(|w| w == "peak") {
        peak::bench_peak(args.iter().any(|a| a == "--gflops"));
        return;
    }
    if what.first().is_some_and(|w| w == "inception-profile") {
        let iters = what.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
        inception::bench_profile(what.get(1).map(String::as_str).unwrap_or("gatys"), iters);
        return;
    }
    if what.first().is_some_and(|w| w == "pickle-gen") {
        // pickle-gen PKL IO [REPS]
        let (Some(pkl), Some(io)) = (what.get(1), what.get(2)) else {
            eprintln!("usage: limner-bench pickle-gen PKL IO.safetensors [REPS]");
            std::process::exit(2);
        };
        println!("# limner-bench pickle-gen: loadavg at start: {}", loadavg());
        pickle::bench_pickle_gen(pkl, io, what.get(3).and_then(|r| r.parse().ok()).unwrap_or(5));
        println!("# limner-bench pickle-gen done, loadavg at end: {}", loadavg());
        return;
    }
    if let Some(w) = what.first().filter(|w| w.starts_with("art-")) {
        let num = |i: usize, d: usize| what.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
        println!("# limner-bench {w}: loadavg at start: {}", loadavg());
        match w.as_str() {
            "art-gatys" => art::bench_gatys(num(1, 256), num(2, 20)),
            "art-dream" => art::bench_dream(num(1, 256), num(2, 3)),
            "art-perceptual" => inception::bench_perceptual(num(1, 10)),
            "art-fid" => inception::bench_fid(num(1, 1000)),
            "art-ab" => {
                let which = what.get(1).cloned().unwrap_or_else(|| "gatys".into());
                art::bench_ab(&which, num(2, 256), num(3, if which.ends_with("dream") { 3 } else { 10 }))
            }
            other => {
                eprintln!("unknown measurement `{other}` (art-gatys, art-dream, art-perceptual, art-fid, art-ab)");
                std::process::exit(2);
            }
        }
        println!("# limner-bench {w} done, loadavg at end: {}", loadavg());
        return;
    }
    let opts = Opts { quick, cfgs };
    let dev = Device::flex();
    dev.seed(0);
    println!(
        "# limner-bench: burn 0.22.1 flex, {} threads available, quick={}, loadavg at start: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        quick,
        loadavg()
    );
    for w in &what {
        match w.as_str() {
            "modconv" => bench_modconv(&dev, &opts),
            "gen" => bench_gen(&dev, &opts),
            "train-step" => bench_train(&dev, &opts, RES),
            // issue 19: the 128px training step (GeneratorConfig / DiscriminatorConfig::
            // limner_default(128), the default batch 32), and its sub-parts
            "train-step128" => bench_train(&dev, &opts, 2 * RES),
            "parts" => bench_parts(&dev, &opts, RES),
            "parts128" => bench_parts(&dev, &opts, 2 * RES),
            "profile128" => bench_profile_train(&dev, &opts, 2 * RES),
            // same-process A/B of one switch at 128px: steps alternate between off and on
            "ab128-sepfir" => bench_ab_switch(&dev, &opts, 2 * RES, "sepfir", limner_kernels::set_sep_fir_enabled),
            "kernels" => bench_kernels(&dev, &opts),
            "ab" => bench_ab(&dev, &opts),
            "photoreal" => photoreal::bench_photoreal(&dev, opts.quick),
            "photoreal-stages" => photoreal::bench_photoreal_stages(&dev),
            "act" => bench_act(&opts),
            other => {
                eprintln!("unknown measurement `{other}` (use all, train-step, train-step128, parts128, gen, modconv, parts, kernels, ab, act, photoreal, art-gatys, art-dream)");
                std::process::exit(2);
            }
        }
    }
    println!("# limner-bench done, loadavg at end: {}", loadavg());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------- configs and FLOPs

fn gcfg(name: &str) -> GeneratorConfig {
    gcfg_res(name, RES)
}

fn gcfg_res(name: &str, res: usize) -> GeneratorConfig {
    match name {
        "default" => GeneratorConfig::limner_default(res),
        // /work/shared/fixtures/stylegan2-ref/res64/config.json
        "fixture" => GeneratorConfig { z_dim: 64, w_dim: 64, mapping_layers: 8, ..GeneratorConfig::limner_default(res) },
        _ => unreachable!(),
    }
}

fn dcfg(name: &str) -> DiscriminatorConfig {
    dcfg_res(name, RES)
}

fn dcfg_res(_name: &str, res: usize) -> DiscriminatorConfig {
    // the res64 fixture D (channel_base 1024, channel_max 128, mbstd 4/1) equals limner's default D
    DiscriminatorConfig::limner_default(res)
}

/// Multiply-adds of one generator forward, per image (mapping + synthesis).
fn g_macs(c: &GeneratorConfig) -> f64 {
    let (z, w) = (c.z_dim as f64, c.w_dim as f64);
    let mut m = z * w + (c.mapping_layers as f64 - 1.0) * w * w;
    for r in c.block_resolutions() {
        let co = c.channels(r) as f64;
        let rr = (r * r) as f64;
        if r == 4 {
            m += w * co + co * co + co * co * 9.0 * rr; // conv1: affine, demod, conv
        } else {
            let ci = c.channels(r / 2) as f64;
            let hin = ((r / 2) * (r / 2)) as f64;
            m += w * ci + ci * co + ci * co * 9.0 * hin + co * 16.0 * rr; // conv0: affine, demod, convT, FIR
            m += w * co + co * co + co * co * 9.0 * rr; // conv1
            m += 3.0 * 16.0 * hin; // upsample2d of the image (depthwise transposed, input res)
        }
        m += w * co + 3.0 * co * rr; // torgb: affine, 1x1
    }
    m
}

/// Multiply-adds of one discriminator forward, per image.
fn d_macs(c: &DiscriminatorConfig) -> f64 {
    let mut m = 0.0;
    let mut r = c.img_resolution;
    while r > 4 {
        let (t, o) = (c.channels(r) as f64, c.channels(r / 2) as f64);
        let (rr, hh) = ((r * r) as f64, ((r / 2) * (r / 2)) as f64);
        if r == c.img_resolution {
            m += 3.0 * t * rr; // fromrgb
        }
        m += t * 16.0 * hh + t * o * hh; // skip: FIR down + 1x1
        m += t * t * 9.0 * rr; // conv0
        m += t * 16.0 * ((r + 1) * (r + 1)) as f64 + t * o * 9.0 * hh; // conv1: FIR + stride-2 3x3
        r /= 2;
    }
    let ch = c.channels(4) as f64;
    m += (ch + 1.0) * ch * 9.0 * 16.0 + 16.0 * ch * ch + ch;
    m
}

/// GFLOP of one training step: G fwd (D step) + 3 x G fwd (G step) + 3 x D fwd x images
/// through D (fake + real in the D step, 2 R1 batches when R1 runs, fake in the G step).
fn train_gflop(g: &GeneratorConfig, d: &DiscriminatorConfig, n: usize, r1_batches: f64) -> f64 {
    let n = n as f64;
    let gf = g_macs(g) * n;
    let df = d_macs(d);
    2.0 * (gf + 3.0 * gf + 3.0 * df * (2.0 * n + r1_batches * n + n)) / 1e9
}

fn modconv_gflop(n: usize, c: usize, r: usize, w_dim: usize) -> f64 {
    let (n, c, rr, w) = (n as f64, c as f64, (r * r) as f64, w_dim as f64);
    2.0 * n * (w * c + c * c + c * c * 9.0 * rr) / 1e9
}

// ---------------------------------------------------------------- timing

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn time_it<F: FnMut()>(dev: &Device, warm: usize, iters: usize, mut f: F) -> Vec<f64> {
    for _ in 0..warm {
        f();
        dev.sync().unwrap();
    }
    (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            dev.sync().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn report(name: &str, tags: &str, ts: &[f64], gflop: f64) {
    let m = median(ts);
    let min = ts.iter().cloned().fold(f64::INFINITY, f64::min);
    let gflops = gflop / (m / 1e3);
    println!(
        "RESULT limner {name} {tags} n={} median_ms={m:.2} min_ms={min:.2} gflop={gflop:.4} gflops={gflops:.2} pct_peak={:.2}",
        ts.len(),
        100.0 * gflops / peak_gflops()
    );
}

// ---------------------------------------------------------------- helpers

/// Reads every gradient of a lifted network (forces them to be materialised).
fn touch_grads<P: Params>(net: &mut P, grads: &burn::tensor::Gradients) {
    black_box(limner_gan::optim::grads_of(net, grads));
}

fn randn<const D: usize>(shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), dev)
}

/// A fixed set of random images in [-1, 1] (xorshift, deterministic).
struct Synthetic {
    n: usize,
    res: usize,
    data: Vec<f32>,
}

impl Synthetic {
    fn new(n: usize, res: usize) -> Self {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let data = (0..n * 3 * res * res)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Self { n, res, data }
    }
}

impl DataSource for Synthetic {
    fn len(&self) -> usize {
        self.n
    }
    fn resolution(&self) -> usize {
        self.res
    }
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        let r = self.res;
        let per = 3 * r * r;
        out.clear();
        out.reserve(indices.len() * per);
        for (&i, &f) in indices.iter().zip(flips) {
            let img = &self.data[i * per..(i + 1) * per];
            if !f {
                out.extend_from_slice(img);
            } else {
                for row in img.chunks_exact(r) {
                    out.extend(row.iter().rev());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- measurements

fn bench_modconv(dev: &Device, o: &Opts) {
    let (n, c, r, wd) = (BATCH, 128, 32, 128);
    let (warm, iters) = if o.quick { (1, 3) } else { (2, 7) };
    let layer = SynthesisLayer::new(c, c, wd, r, false, &mut limner_gan::layers::Init::new(0, dev));
    let gf = modconv_gflop(n, c, r, wd);
    let tags = format!("cin={c} cout={c} res={r} batch={n}");
    let x = randn([n, c, r, r], dev);
    let w = randn([n, wd], dev);
    let ts = time_it(dev, warm, iters, || {
        black_box(layer.forward(x.clone(), w.clone(), &mut NoiseMode::Const));
    });
    report("modconv_fwd", &tags, &ts, gf);

    let mut la = limner_gan::optim::lift(&layer, true);
    let xa = x.clone().autodiff().require_grad();
    let wa = w.clone().autodiff();
    let gout = randn([n, c, r, r], dev).autodiff();
    let ts = time_it(dev, warm, iters, || {
        let y = la.forward(xa.clone(), wa.clone(), &mut NoiseMode::Const);
        let grads = (y * gout.clone()).sum().backward();
        black_box(xa.grad(&grads));
        touch_grads(&mut la, &grads);
    });
    report("modconv_fwd_bwd", &tags, &ts, 3.0 * gf);
}

fn bench_gen(dev: &Device, o: &Opts) {
    let images = 64;
    let (warm, iters) = if o.quick { (1, 3) } else { (1, 5) };
    // issue 7: "generation of 64 images at 64px and at 128px" (the same config, one more block)
    for &cfg in &o.cfgs {
        for res in [RES, 2 * RES] {
            let gc = GeneratorConfig { img_resolution: res, ..gcfg(cfg) };
            let g = Generator::new(&gc, dev);
            let gf = 2.0 * g_macs(&gc) * images as f64 / 1e9;
            for b in [1usize, 8] {
                let zs: Vec<Tensor<2>> = (0..images / b).map(|_| randn([b, gc.z_dim], dev)).collect();
                let ts = time_it(dev, warm, iters, || {
                    for z in &zs {
                        black_box(g.forward(z.clone(), 1.0, &mut NoiseMode::Const));
                    }
                });
                report("gen", &format!("cfg={cfg} res={res} batch={b} images={images}"), &ts, gf);
            }
        }
    }
}

fn bench_train(dev: &Device, o: &Opts, res: usize) {
    let (warm, iters) = if o.quick { (1, 3) } else { (2, 6) };
    let data = Synthetic::new(256, res);
    for &cfg in &o.cfgs {
        let (gc, dc) = (gcfg_res(cfg, res), dcfg_res(cfg, res));
        let tags = format!("cfg={cfg} res={res} batch={BATCH}");
        let mut med = [0.0f64; 2];
        for (vi, r1) in [false, true].into_iter().enumerate() {
            let tc = TrainConfig { batch: BATCH, r1_gamma: if r1 { 0.05 } else { 0.0 }, ..TrainConfig::default() };
            let mut t = Trainer::new(tc, &gc, &dc, dev).expect("trainer");
            let mut k = 0u64;
            let mut cpu = Vec::new();
            let ts = time_it(dev, warm, iters, || {
                if r1 {
                    // make this step one of the lazy-R1 steps (step % r1_interval == 0)
                    t.step = 16 * k;
                    k += 1;
                }
                let c0 = process_cpu_ms();
                black_box(t.step(&data).expect("step"));
                cpu.push(process_cpu_ms() - c0);
            });
            let (name, gf) = if r1 {
                ("train_step_r1", train_gflop(&gc, &dc, BATCH, 2.0))
            } else {
                ("train_step_nor1", train_gflop(&gc, &dc, BATCH, 0.0))
            };
            report(name, &tags, &ts, gf);
            if res != RES {
                // process CPU time per step (all threads): less disturbed by other processes
                // than wall time on a shared machine (GFLOP/s columns: per CPU-second)
                report(&format!("{name}_cpu"), &tags, &cpu[warm..], gf);
            }
            med[vi] = median(&ts);
        }
        // amortised over one R1 interval: 15 plain steps + 1 step with R1
        let am = (15.0 * med[0] + med[1]) / 16.0;
        let gf = train_gflop(&gc, &dc, BATCH, 2.0 / 16.0);
        let gflops = gf / (am / 1e3);
        println!(
            "RESULT limner train_step {tags} n=derived median_ms={am:.2} min_ms={am:.2} gflop={gf:.4} gflops={gflops:.2} pct_peak={:.2}",
            100.0 * gflops / peak_gflops()
        );
    }
}

/// limner-kernels' per-op profile (`limner_kernels::profile`) of training steps (default config
/// at `res`, batch 32, no R1): `PROFILE` lines, largest wall time first, per step.
fn bench_profile_train(dev: &Device, o: &Opts, res: usize) {
    let steps = if o.quick { 1 } else { 3 };
    let data = Synthetic::new(256, res);
    let (gc, dc) = (gcfg_res("default", res), dcfg_res("default", res));
    let tc = TrainConfig { batch: BATCH, r1_gamma: 0.0, ..TrainConfig::default() };
    let mut t = Trainer::new(tc, &gc, &dc, dev).expect("trainer");
    black_box(t.step(&data).expect("step"));
    limner_kernels::profile::take();
    limner_kernels::profile::set_enabled(true);
    let t0 = Instant::now();
    for _ in 0..steps {
        black_box(t.step(&data).expect("step"));
    }
    let wall = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;
    limner_kernels::profile::set_enabled(false);
    let rows = limner_kernels::profile::take();
    let sum: f64 = rows.iter().map(|r| r.ms).sum::<f64>() / steps as f64;
    for r in &rows {
        let ms = r.ms / steps as f64;
        if ms >= 1.0 {
            println!(
                "PROFILE limner train_step res={res} {:<60} calls={:>3} ms={ms:8.1} {:5.1}% gflop/s={:.1}",
                r.label,
                r.calls / steps as u64,
                100.0 * ms / wall,
                r.gflops_per_s()
            );
        }
    }
    println!("PROFILE limner train_step res={res} step wall ms={wall:.1}, in profiled kernels {sum:.1} ({:.1}%), loadavg {}", 100.0 * sum / wall, loadavg());
}

/// Sub-parts of a training step (default config at `res`, batch 32), for the per-op picture.
fn bench_parts(dev: &Device, o: &Opts, res: usize) {
    let (warm, iters) = if o.quick { (1, 3) } else { (1, 5) };
    let (gc, dc) = (gcfg_res("default", res), dcfg_res("default", res));
    let g = Generator::new(&gc, dev);
    let d = Discriminator::new(&dc, dev);
    let n = BATCH;
    let gfwd = 2.0 * g_macs(&gc) * n as f64 / 1e9;
    let dfwd = 2.0 * d_macs(&dc) * n as f64 / 1e9;
    let tags = &format!("cfg=default res={res} batch={BATCH}");

    let z = randn([n, gc.z_dim], dev);
    let ts = time_it(dev, warm, iters, || {
        black_box(g.forward(z.clone(), 1.0, &mut NoiseMode::Const));
    });
    report("part_g_fwd", tags, &ts, gfwd);

    let x2 = randn([2 * n, 3, res, res], dev);
    let ts = time_it(dev, warm, iters, || {
        black_box(d.forward(x2.clone()));
    });
    report("part_d_fwd_2n", tags, &ts, 2.0 * dfwd);

    // D step core: D on 2N images with weight gradients
    let ts = time_it(dev, warm, iters, || {
        let mut da = limner_gan::optim::lift(&d, true);
        let l = da.forward(x2.clone().autodiff()).mean();
        let grads = l.backward();
        touch_grads(&mut da, &grads);
    });
    report("part_d_fwd_bwd_2n", tags, &ts, 3.0 * 2.0 * dfwd);

    // G step core: G fwd (tracked) -> D (constant) -> backward into G
    let ts = time_it(dev, warm, iters, || {
        let mut ga = limner_gan::optim::lift(&g, true);
        let dc_ = limner_gan::optim::lift(&d, false);
        let img = ga.forward(z.clone().autodiff(), 1.0, &mut NoiseMode::Const);
        let l = dc_.forward(img).mean();
        let grads = l.backward();
        touch_grads(&mut ga, &grads);
    });
    report("part_g_step_fwd_bwd", tags, &ts, 3.0 * (gfwd + dfwd));

    // DiffAugment (color, translation, cutout) on N images, forward + backward to the input,
    // as in the G step (no conv/linear FLOPs)
    let aug = limner_gan::augment::DiffAugment::all();
    let mut rng = limner_core::noise_rng_for_seed(0);
    let x1 = randn([n, 3, res, res], dev);
    let g1 = randn([n, 3, res, res], dev).autodiff();
    let ts = time_it(dev, warm, iters, || {
        let xa = x1.clone().autodiff().require_grad();
        let grads = (aug.apply(xa.clone(), &mut rng) * g1.clone()).sum().backward();
        black_box(xa.grad(&grads));
    });
    report("part_augment_fwd_bwd", tags, &ts, 0.0);
}

// ---------------------------------------------------------------- kernels (limner-kernels A/B)

/// One dense conv of the default 64px networks: (label, batch, cin, h, cout, k, stride, pad,
/// transposed). Transposed entries are G's upsampling convs (`h` = their input size).
type ConvShape = (&'static str, usize, usize, usize, usize, usize, usize, usize, bool);

/// Depthwise FIR convs of the default 64px networks: (label, batch, channels, h, k, stride,
/// pad, transposed).
type DwShape = (&'static str, usize, usize, usize, usize, usize, usize, bool);

fn dw_shapes() -> Vec<DwShape> {
    let d = 2 * BATCH;
    let g = BATCH;
    vec![
        ("D.b64.conv1_fir", d, 16, 64, 4, 1, 2, false),
        ("D.b32.conv1_fir", d, 32, 32, 4, 1, 2, false),
        ("D.b16.conv1_fir", d, 64, 16, 4, 1, 2, false),
        ("D.b8.conv1_fir", d, 128, 8, 4, 1, 2, false),
        ("D.b64.skip_down", d, 16, 64, 4, 2, 1, false),
        ("D.b32.skip_down", d, 32, 32, 4, 2, 1, false),
        ("D.b16.skip_down", d, 64, 16, 4, 2, 1, false),
        ("D.b8.skip_down", d, 128, 8, 4, 2, 1, false),
        ("G.b8.up_fir", g, 128, 9, 4, 1, 1, false),
        ("G.b16.up_fir", g, 64, 17, 4, 1, 1, false),
        ("G.b32.up_fir", g, 32, 33, 4, 1, 1, false),
        ("G.b64.up_fir", g, 16, 65, 4, 1, 1, false),
        ("G.b64.img_up", g, 3, 32, 4, 2, 1, true),
    ]
}

fn conv_shapes() -> Vec<ConvShape> {
    let d = 2 * BATCH; // the D step runs D on real + fake
    let g = BATCH;
    vec![
        ("D.b64.fromrgb", d, 3, 64, 16, 1, 1, 0, false),
        ("D.b64.conv0", d, 16, 64, 16, 3, 1, 1, false),
        ("D.b64.conv1", d, 16, 65, 32, 3, 2, 0, false),
        ("D.b64.skip", d, 16, 32, 32, 1, 1, 0, false),
        ("D.b32.conv0", d, 32, 32, 32, 3, 1, 1, false),
        ("D.b32.conv1", d, 32, 33, 64, 3, 2, 0, false),
        ("D.b32.skip", d, 32, 16, 64, 1, 1, 0, false),
        ("D.b16.conv0", d, 64, 16, 64, 3, 1, 1, false),
        ("D.b16.conv1", d, 64, 17, 128, 3, 2, 0, false),
        ("D.b16.skip", d, 64, 8, 128, 1, 1, 0, false),
        ("D.b8.conv0", d, 128, 8, 128, 3, 1, 1, false),
        ("D.b8.conv1", d, 128, 9, 128, 3, 2, 0, false),
        ("D.b8.skip", d, 128, 4, 128, 1, 1, 0, false),
        ("D.b4.conv", d, 129, 4, 128, 3, 1, 1, false),
        ("G.b4.conv1", g, 128, 4, 128, 3, 1, 1, false),
        ("G.b8.conv0_up", g, 128, 4, 128, 3, 2, 0, true),
        ("G.b8.conv1", g, 128, 8, 128, 3, 1, 1, false),
        ("G.b16.conv0_up", g, 128, 8, 64, 3, 2, 0, true),
        ("G.b16.conv1", g, 64, 16, 64, 3, 1, 1, false),
        ("G.b32.conv0_up", g, 64, 16, 32, 3, 2, 0, true),
        ("G.b32.conv1", g, 32, 32, 32, 3, 1, 1, false),
        ("G.b64.conv0_up", g, 32, 32, 16, 3, 2, 0, true),
        ("G.b64.conv1", g, 16, 64, 16, 3, 1, 1, false),
        ("G.b64.torgb", g, 16, 64, 3, 1, 1, 0, false),
        ("modconv128@32", g, 128, 32, 128, 3, 1, 1, false),
    ]
}

/// Per-layer A/B of burn's flex conv against limner-kernels, interleaved in one process:
/// forward (no tape), input-gradient and weight-gradient passes, each timed separately
/// (median of `iters`). Prints `RESULT limner kconv ...` lines and a summary.
fn bench_kernels(dev: &Device, o: &Opts) {
    use burn::tensor::module;
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    let iters = if o.quick { 5 } else { 9 };
    let ad = dev.clone().autodiff();
    let mut tot = [[0.0f64; 3]; 2];
    let mut dwtot = [[0.0f64; 2]; 2];
    println!("# kconv: per layer, ms (median of {iters}); pass = fwd | xgrad | wgrad; impl = burn | fast");
    let only_dw = std::env::var("KCONV_ONLY_DW").is_ok();
    for (label, n, cin, h, cout, k, s, p, tr) in conv_shapes().into_iter().filter(|_| !only_dw) {
        let x = randn([n, cin, h, h], dev);
        let w = if tr { randn([cin, cout, k, k], dev) } else { randn([cout, cin, k, k], dev) };
        let run = |fast: bool, x: Tensor<4>, w: Tensor<4>| -> Tensor<4> {
            match (tr, fast) {
                (false, false) => module::conv2d(x, w, None, ConvOptions::new([s, s], [p, p], [1, 1], 1)),
                (false, true) => limner_kernels::conv2d(x, w, None, ConvOptions::new([s, s], [p, p], [1, 1], 1)),
                (true, false) => module::conv_transpose2d(x, w, None, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], 1)),
                (true, true) => limner_kernels::conv_transpose2d(x, w, None, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], 1)),
            }
        };
        let y0 = run(false, x.clone(), w.clone());
        let gy = randn(y0.dims(), dev).autodiff();
        let flop = 2.0 * (n * cout * cin * k * k) as f64
            * if tr { (h * h) as f64 } else { (y0.dims()[2] * y0.dims()[3]) as f64 };
        let mut res = [[Vec::new(), Vec::new(), Vec::new()], [Vec::new(), Vec::new(), Vec::new()]];
        for it in 0..iters + 1 {
            for fast in [false, true] {
                let f = usize::from(fast);
                // forward, no tape
                let t = Instant::now();
                black_box(run(fast, x.clone(), w.clone()).into_data());
                let tf = t.elapsed().as_secs_f64() * 1e3;
                // input gradient only (weight constant)
                let xa = x.clone().autodiff().require_grad();
                let y = run(fast, xa.clone(), w.clone().autodiff());
                let t = Instant::now();
                let gr = (y * gy.clone()).sum().backward();
                black_box(xa.grad(&gr).map(|g| g.into_data()));
                let tx = t.elapsed().as_secs_f64() * 1e3;
                // weight gradient only (input constant)
                let wa = w.clone().autodiff().require_grad();
                let y = run(fast, x.clone().autodiff(), wa.clone());
                let t = Instant::now();
                let gr = (y * gy.clone()).sum().backward();
                black_box(wa.grad(&gr).map(|g| g.into_data()));
                let tw = t.elapsed().as_secs_f64() * 1e3;
                if it > 0 {
                    res[f][0].push(tf);
                    res[f][1].push(tx);
                    res[f][2].push(tw);
                }
            }
        }
        let m: Vec<[f64; 3]> = (0..2).map(|f| [median(&res[f][0]), median(&res[f][1]), median(&res[f][2])]).collect();
        for f in 0..2 {
            for q in 0..3 {
                tot[f][q] += m[f][q];
            }
        }
        let _ = &ad;
        println!(
            "RESULT limner kconv {label} n={n} cin={cin} h={h} cout={cout} k={k} s={s} tr={tr} gflop={:.3} \
             burn_fwd={:.2} fast_fwd={:.2} burn_xgrad={:.2} fast_xgrad={:.2} burn_wgrad={:.2} fast_wgrad={:.2} \
             fast_fwd_gflops={:.1} burn_fwd_gflops={:.1}",
            flop / 1e9, m[0][0], m[1][0], m[0][1], m[1][1], m[0][2], m[1][2],
            flop / 1e6 / m[1][0], flop / 1e6 / m[0][0]
        );
    }
    for (label, n, c, h, k, s, p, tr) in dw_shapes() {
        let x = randn([n, c, h, h], dev);
        let w = randn([c, 1, k, k], dev);
        let run = |fast: bool, x: Tensor<4>, w: Tensor<4>| -> Tensor<4> {
            match (tr, fast) {
                (false, false) => module::conv2d(x, w, None, ConvOptions::new([s, s], [p, p], [1, 1], c)),
                (false, true) => limner_kernels::conv2d(x, w, None, ConvOptions::new([s, s], [p, p], [1, 1], c)),
                (true, false) => module::conv_transpose2d(x, w, None, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], c)),
                (true, true) => limner_kernels::conv_transpose2d(x, w, None, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], c)),
            }
        };
        let gy = randn(run(false, x.clone(), w.clone()).dims(), dev).autodiff();
        let mut res = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
        for it in 0..iters + 1 {
            for fast in [false, true] {
                let f = usize::from(fast);
                let t = Instant::now();
                black_box(run(fast, x.clone(), w.clone()).into_data());
                let tf = t.elapsed().as_secs_f64() * 1e3;
                // input gradient (the FIR weight is a constant in the networks)
                let xa = x.clone().autodiff().require_grad();
                let y = run(fast, xa.clone(), w.clone().autodiff());
                let t = Instant::now();
                let gr = (y * gy.clone()).sum().backward();
                black_box(xa.grad(&gr).map(|g| g.into_data()));
                let tx = t.elapsed().as_secs_f64() * 1e3;
                if it > 0 {
                    res[f][0].push(tf);
                    res[f][1].push(tx);
                }
            }
        }
        let m: Vec<[f64; 2]> = (0..2).map(|f| [median(&res[f][0]), median(&res[f][1])]).collect();
        for f in 0..2 {
            for q in 0..2 {
                dwtot[f][q] += m[f][q];
            }
        }
        println!(
            "RESULT limner kdw {label} n={n} c={c} h={h} k={k} s={s} p={p} tr={tr} burn_fwd={:.2} fast_fwd={:.2} burn_xgrad={:.2} fast_xgrad={:.2}",
            m[0][0], m[1][0], m[0][1], m[1][1]
        );
    }
    println!(
        "RESULT limner kdw_total burn_fwd={:.1} fast_fwd={:.1} burn_xgrad={:.1} fast_xgrad={:.1}",
        dwtot[0][0], dwtot[1][0], dwtot[0][1], dwtot[1][1]
    );
    println!(
        "RESULT limner kconv_total burn_fwd={:.1} fast_fwd={:.1} burn_xgrad={:.1} fast_xgrad={:.1} burn_wgrad={:.1} fast_wgrad={:.1}",
        tot[0][0], tot[1][0], tot[0][1], tot[1][1], tot[0][2], tot[1][2]
    );
}

/// Training step and G forward with the fast paths off (`burn`), dense convs only (FIR convs
/// and bias + lrelu on burn's ops), all fast convs but burn's bias + lrelu (`no_act`) and fully
/// on (`fast`), rotating through the four in one process (A/B/C/D under the same background
/// load). Medians.
fn bench_ab(dev: &Device, o: &Opts) {
    let iters = if o.quick { 3 } else { 5 };
    let data = Synthetic::new(256, RES);
    let (gc, dc) = (gcfg("default"), dcfg("default"));
    let tc = TrainConfig { batch: BATCH, r1_gamma: 0.0, ..TrainConfig::default() };
    // (name, convs, depthwise convs, bias + lrelu)
    let variants = [("burn", false, false, false), ("dense_only", true, false, false), ("no_act", true, true, false), ("fast", true, true, true)];
    let nv = variants.len();
    let mut t: Vec<Trainer> = (0..nv).map(|_| Trainer::new(tc.clone(), &gc, &dc, dev).expect("trainer")).collect();
    let g = Generator::new(&gc, dev);
    let z = randn([BATCH, gc.z_dim], dev);
    let mut ts = vec![[Vec::new(), Vec::new()]; nv];
    let mut cpu = vec![Vec::new(); nv];
    for it in 0..iters + 1 {
        for (v, &(_, conv, dw, act)) in variants.iter().enumerate() {
            limner_kernels::set_enabled(conv);
            limner_kernels::set_dw_enabled(dw);
            limner_kernels::set_bias_act_enabled(act);
            let s = Instant::now();
            let c0 = process_cpu_ms();
            black_box(t[v].step(&data).expect("step"));
            dev.sync().unwrap();
            let a = s.elapsed().as_secs_f64() * 1e3;
            if it > 0 {
                cpu[v].push(process_cpu_ms() - c0);
            }
            let s = Instant::now();
            black_box(g.forward(z.clone(), 1.0, &mut NoiseMode::Const).into_data());
            let b = s.elapsed().as_secs_f64() * 1e3;
            if it > 0 {
                ts[v][0].push(a);
                ts[v][1].push(b);
            }
        }
    }
    limner_kernels::set_enabled(true);
    limner_kernels::set_dw_enabled(true);
    limner_kernels::set_bias_act_enabled(true);
    for (q, name) in ["ab_train_step_nor1", "ab_g_fwd_batch32"].into_iter().enumerate() {
        let mut line = format!("RESULT limner {name} cfg=default batch={BATCH} n={iters}");
        for (v, (vn, ..)) in variants.iter().enumerate() {
            line += &format!(" {vn}_ms={:.1}", median(&ts[v][q]));
        }
        line += &format!(
            " speedup_vs_burn={:.2} speedup_vs_no_act={:.2}",
            median(&ts[0][q]) / median(&ts[nv - 1][q]),
            median(&ts[nv - 2][q]) / median(&ts[nv - 1][q])
        );
        for (v, (vn, ..)) in variants.iter().enumerate() {
            line += &format!(" {vn}_all={:?}", ts[v][q].iter().map(|v| v.round()).collect::<Vec<_>>());
        }
        println!("{line}");
    }
    // CPU time of the whole process per step (user + sys, all threads): less sensitive to
    // other processes than wall time, but includes rayon's spinning.
    let mut line = format!("RESULT limner ab_train_step_nor1_cpu cfg=default batch={BATCH} n={iters}");
    for (v, (vn, ..)) in variants.iter().enumerate() {
        line += &format!(" {vn}_cpu_ms={:.0}", median(&cpu[v]));
    }
    line += &format!(" cpu_ratio_no_act_over_fast={:.2}", median(&cpu[nv - 2]) / median(&cpu[nv - 1]));
    println!("{line}");
}

/// Same-process A/B of one limner-kernels switch on the training step (default config at
/// `res`, batch 32, no R1): two trainers, steps alternating off / on, medians of wall and CPU ms.
fn bench_ab_switch(dev: &Device, o: &Opts, res: usize, name: &str, set: fn(bool)) {
    let iters = if o.quick { 3 } else { 7 };
    let data = Synthetic::new(256, res);
    let (gc, dc) = (gcfg_res("default", res), dcfg_res("default", res));
    let tc = TrainConfig { batch: BATCH, r1_gamma: 0.0, ..TrainConfig::default() };
    let mut t: Vec<Trainer> = (0..2).map(|_| Trainer::new(tc.clone(), &gc, &dc, dev).expect("trainer")).collect();
    let (mut wall, mut cpu) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for it in 0..iters + 1 {
        for (v, tv) in t.iter_mut().enumerate() {
            set(v == 1);
            let (s, c0) = (Instant::now(), process_cpu_ms());
            black_box(tv.step(&data).expect("step"));
            dev.sync().unwrap();
            if it > 0 {
                wall[v].push(s.elapsed().as_secs_f64() * 1e3);
                cpu[v].push(process_cpu_ms() - c0);
            }
        }
    }
    set(true);
    println!(
        "RESULT limner ab_{name} res={res} batch={BATCH} n={iters} off_ms={:.1} on_ms={:.1} speedup={:.3} off_cpu_ms={:.0} on_cpu_ms={:.0} cpu_speedup={:.3} off_all={:?} on_all={:?} loadavg={}",
        median(&wall[0]),
        median(&wall[1]),
        median(&wall[0]) / median(&wall[1]),
        median(&cpu[0]),
        median(&cpu[1]),
        median(&cpu[0]) / median(&cpu[1]),
        wall[0].iter().map(|v| v.round()).collect::<Vec<_>>(),
        wall[1].iter().map(|v| v.round()).collect::<Vec<_>>(),
        loadavg().replace(' ', "/")
    );
}

/// User + system CPU time of this process so far, ms (from /proc/self/stat; 0 elsewhere).
fn process_cpu_ms() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // rest starts at field 3 (state): field k is f[k - 3]; clock ticks are 100 Hz on Linux
    (ticks(11) + ticks(12)) * 10.0
}

/// The fused elementwise ops of limner-kernels (bias + lrelu; the synthesis-layer tail
/// demod + noise + bias + lrelu) against burn's composition, forward + backward on the
/// autodiff flex device, alternating in one process. Medians of wall and process CPU ms.
fn bench_act(o: &Opts) {
    let dev = Device::flex().autodiff();
    let iters = if o.quick { 5 } else { 11 };
    // (n, c, res)
    for (n, c, r) in [(32usize, 32usize, 64usize), (32, 128, 16), (32, 256, 4)] {
        let x = Tensor::<4>::random([n, c, r, r], Distribution::Normal(0.0, 1.0), &dev);
        let b = Tensor::<1>::random([c], Distribution::Normal(0.0, 1.0), &dev);
        let d = Tensor::<2>::random([n, c], Distribution::Normal(1.0, 0.1), &dev);
        let z = Tensor::<4>::random([n, 1, r, r], Distribution::Normal(0.0, 1.0), &dev);
        let go = Tensor::<4>::random([n, c, r, r], Distribution::Normal(0.0, 1.0), &dev);
        for op in ["bias_lrelu", "demod_tail", "scale"] {
            let mut ts = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
            for it in 0..iters + 1 {
                for (v, fast) in [false, true].into_iter().enumerate() {
                    limner_kernels::set_bias_act_enabled(fast);
                    let (x, b, d, z) = (x.clone().require_grad(), b.clone().require_grad(), d.clone().require_grad(), z.clone().require_grad());
                    let s = Instant::now();
                    let c0 = process_cpu_ms();
                    let y = match op {
                        "bias_lrelu" => limner_kernels::bias_lrelu(x.clone(), b.clone(), 0.2, 2f64.sqrt()),
                        "scale" => limner_kernels::scale_channels(x.clone(), d.clone()),
                        _ => limner_kernels::demod_noise_bias_lrelu(x.clone(), d.clone(), Some(z.clone()), b.clone(), 0.2, 2f64.sqrt()),
                    };
                    let g = (y * go.clone()).sum().backward();
                    black_box(x.grad(&g).unwrap().into_data());
                    black_box(b.grad(&g).unwrap().into_data());
                    if it > 0 {
                        ts[v][0].push(s.elapsed().as_secs_f64() * 1e3);
                        ts[v][1].push(process_cpu_ms() - c0);
                    }
                }
            }
            println!(
                "RESULT limner act_{op} n={n} c={c} res={r} fwd_bwd burn_ms={:.1} fused_ms={:.1} burn_cpu_ms={:.0} fused_cpu_ms={:.0}",
                median(&ts[0][0]),
                median(&ts[1][0]),
                median(&ts[0][1]),
                median(&ts[1][1])
            );
            // forward only, untracked (generation): a fresh input each time (in place)
            let mut tf = [Vec::new(), Vec::new()];
            let xs = x.clone().inner();
            let (bs, ds, zs) = (b.clone().inner(), d.clone().inner(), z.clone().inner());
            for it in 0..iters * 4 + 1 {
                for (v, fast) in [false, true].into_iter().enumerate() {
                    limner_kernels::set_bias_act_enabled(fast);
                    let xi = xs.clone().mul_scalar(1.0);
                    let s = Instant::now();
                    let y = match op {
                        "bias_lrelu" => limner_kernels::bias_lrelu(xi, bs.clone(), 0.2, 2f64.sqrt()),
                        "scale" => limner_kernels::scale_channels(xi, ds.clone()),
                        _ => limner_kernels::demod_noise_bias_lrelu(xi, ds.clone(), Some(zs.clone()), bs.clone(), 0.2, 2f64.sqrt()),
                    };
                    dev.sync().unwrap();
                    if it > 0 {
                        tf[v].push(s.elapsed().as_secs_f64() * 1e3);
                    }
                    black_box(y);
                }
            }
            println!(
                "RESULT limner act_{op} n={n} c={c} res={r} fwd_untracked burn_ms={:.2} fused_ms={:.2}",
                median(&tf[0]),
                median(&tf[1])
            );
        }
    }
    limner_kernels::set_bias_act_enabled(true);
}
