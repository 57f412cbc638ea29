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
    let g = &p.generator;
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
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "RESULT limner pickle-gen res={} load_s={load_s:.2} median_s={median:.3} times={} max_abs_diff_vs_official={diff:.2e}",
        g.config.img_resolution,
        times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(",")
    );
}
