//! Times one 1024px face (mapping + synthesis) and where the time goes.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 /usr/bin/time -v cargo run --release -p limner-photoreal --example face_bench -- \
//!     ~/.cache/limner-random-face/random_face/data [RUNS]
//! ```
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use limner_core::to_vec;
use limner_photoreal::model::idwt;
use limner_photoreal::{convert_random_face, MobileStyleGan, Noise};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: face_bench RANDOM_FACE_DATA_DIR [RUNS]"));
    let runs: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    let st = std::env::temp_dir().join("limner-face-bench.safetensors");
    let t = Instant::now();
    convert_random_face(&dir, &st)?;
    eprintln!("convert: {:.2} s", t.elapsed().as_secs_f64());
    let device = Device::flex();
    let g = MobileStyleGan::load(&st, &device)?;
    let z = Tensor::<2>::from_data(
        TensorData::new((0..512).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect::<Vec<_>>(), [1, 512]),
        &device,
    );
    let mut times = vec![];
    for _ in 0..runs + 1 {
        let t = Instant::now();
        let ws = g.broadcast_w(g.map(z.clone()));
        let img = g.synthesize(ws, Noise::Baked);
        let v = to_vec(&img);
        assert_eq!(v.len(), 3 << 20);
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // warm-up
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("limner face (map + synthesis, 1024px): best {:.3} s, median {:.3} s ({} runs, {} rayon threads)",
        times[0], times[times.len() / 2], runs, rayon_threads());

    // per-stage profile of one face
    let s = &g.synthesis;
    let ws = g.broadcast_w(g.map(z));
    let style = |k: usize| ws.clone().narrow(1, k, 1).reshape([1, 512]);
    let sync = |x: &Tensor<4>| { let _ = to_vec(&x.clone().narrow(1, 0, 1).narrow(2, 0, 1)); };
    let lap = |name: &str, t: &mut Instant| { eprintln!("  {name:<28} {:7.1} ms", t.elapsed().as_secs_f64() * 1e3); *t = Instant::now(); };
    let mut t = Instant::now();
    let mut x = s.conv1.forward(s.input.clone(), style(0), Some(s.conv1.noise_const.clone()));
    sync(&x); lap("conv1 4x4", &mut t);
    for (i, b) in s.layers.iter().enumerate() {
        let [_, c, h, _] = x.dims();
        let m = b.up.forward(style(1 + 3 * i));
        x = x * m.reshape([1, c, 1, 1]);
        sync(&x); lap(&format!("layers.{i}.up modulate ({})", 2 * h), &mut t);
        x = idwt(x, &s.idwt_k);
        sync(&x); lap(&format!("layers.{i}.up idwt"), &mut t);
        x = b.conv1.forward(x, style(2 + 3 * i), Some(b.conv1.noise_const.clone()));
        sync(&x); lap(&format!("layers.{i}.conv1"), &mut t);
        x = b.conv2.forward(x, style(3 + 3 * i), Some(b.conv2.noise_const.clone()));
        sync(&x); lap(&format!("layers.{i}.conv2"), &mut t);
    }
    let img = s.to_img.forward(x, style(22));
    sync(&img); lap("to_img", &mut t);
    let img = idwt(img, &s.idwt_k);
    sync(&img); lap("final idwt", &mut t);
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}
