//! knn_bench: times limner-audit's exact nearest-neighbour search (blocked matrix products on
//! burn flex) on seeded random vectors, and writes the same vectors and the answers as raw
//! little-endian files for `bench/audit_numpy.py`, which times numpy brute force on them and
//! checks the answers agree. Driven by `bench/audit.sh`.
//!
//! Usage: cargo run --release -p limner-audit --example knn_bench -- DIR TRAIN QUERIES DIM   (prints `RESULT limner knn train=… queries=… dim=… s=…`)

use std::time::Instant;

use burn::tensor::Device;
use limner_audit::knn::{knn, Matrix};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

fn write_f32(path: &std::path::Path, v: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    limner_kernels::keep_freed_memory();
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(a.len() == 5, "usage: knn_bench DIR TRAIN QUERIES DIM");
    let dir = std::path::PathBuf::from(&a[1]);
    let (n, m, d): (usize, usize, usize) = (a[2].parse()?, a[3].parse()?, a[4].parse()?);
    std::fs::create_dir_all(&dir)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let g = Normal::new(0.0f32, 1.0).unwrap();
    let train = Matrix::new(n, d, (0..n * d).map(|_| g.sample(&mut rng)).collect());
    let queries = Matrix::new(m, d, (0..m * d).map(|_| g.sample(&mut rng)).collect());
    write_f32(&dir.join("train.f32"), &train.data)?;
    write_f32(&dir.join("queries.f32"), &queries.data)?;
    let device = Device::flex();
    // warm-up on a slice, then the timed search
    knn(&queries.select(&(0..m.min(256)).collect::<Vec<_>>()), &train, 1, false, &device);
    let t = Instant::now();
    let nn = knn(&queries, &train, 1, false, &device);
    let s = t.elapsed().as_secs_f64();
    let idx: Vec<f32> = nn.index.iter().map(|&i| i as f32).collect();
    write_f32(&dir.join("limner_index.f32"), &idx)?;
    println!("RESULT limner knn train={n} queries={m} dim={d} s={s:.3}");
    Ok(())
}
