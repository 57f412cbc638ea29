//! `pickle-gen PKL IO REPS`: an official StyleGAN2-ADA pickle imported by limner
//! (`limner_gan::import::load_generator_pickle`), one image per call; `bench/pickle.sh` pairs
//! it with the official code (`bench/torch_pickle.py`).

use std::time::Instant;

use burn::tensor::Device;
use limner_gan::layers::NoiseMode;
use limner_gan::params::{read_safetensors, tensor_from, to_vec};

pub fn bench_pickle_gen(pkl: &str, io: &str, reps: usize) {
    let dev = Device::flex();
    let t0 = Instant::now();
    let p = limner_gan::import::load_generator_pickle(std::path::Path::new(pkl), "G_ema", &dev).unwrap_or_else(|e| panic!("{e:#}"));
    let load_s = t0.elapsed().as_secs_f64();
    // as every generating model is (`limner_edit::model::StyleGan2::new`)
    let mut g = p.generator;
    g.prepare_inference();
    let g = &g;
    let (io, _) = read_safetensors(std::path::Path::new(io)).unwrap_or_else(|e| panic!("{e:#}"));
    let z = &io["z"];
    let run = |z: Vec<f32>| to_vec(&g.forward(tensor_from(z, [1, g.config.z_dim], &dev), 1.0, &mut NoiseMode::Const));
    // the official image for the recorded z (warm-up too)
    let img = run(z.data.clone());
    let diff = img.iter().zip(&io["img"].data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let mut times = vec![];
    for r in 0..reps {
        let z: Vec<f32> = z.data.iter().map(|v| v * (1.0 + r as f32 * 1e-3)).collect();
        let t0 = Instant::now();
        std::hint::black_box(run(z));
        times.push(t0.elapsed().as_secs_f64());
    }
    // LIMNER_PROFILE=1: one more call with every limner-kernels op timed (not in the times above)
    if limner_kernels::profile::enabled() {
        limner_kernels::profile::take();
        let t0 = Instant::now();
        std::hint::black_box(run(z.data.clone()));
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        let rows = limner_kernels::profile::take();
        for r in rows.iter().filter(|r| r.ms >= 0.5 * wall / 100.0) {
            println!("PROFILE limner pickle-gen {:<70} calls={:>3} ms={:8.1} {:5.1}% gflop/s={:.1} per-cpu-s={:.1}", r.label, r.calls, r.ms, 100.0 * r.ms / wall, r.gflops_per_s(), r.gflops_per_cpu_s());
        }
        let sum: f64 = rows.iter().map(|r| r.ms).sum();
        println!("PROFILE limner pickle-gen call wall ms={wall:.1}, in profiled kernels {sum:.1}");
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "RESULT limner pickle-gen res={} load_s={load_s:.2} median_s={median:.3} times={} max_abs_diff_vs_official={diff:.2e}",
        g.config.img_resolution,
        times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(",")
    );
}
