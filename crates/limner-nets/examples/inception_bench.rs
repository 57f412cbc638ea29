//! Times InceptionV3 up to mixed5: `cargo run --release -p limner-nets --example inception_bench [BATCH] [SIZE] [REPEATS]`.
use burn::tensor::{Device, Distribution, Tensor};
use limner_nets::{InceptionV3, Layer};

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, size, reps) = (arg(1, 32), arg(2, 128), arg(3, 3));
    let device = Device::flex();
    let net = InceptionV3::load_fetched(&device)?;
    let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Uniform(0.0, 1.0), &device);
    for r in 0..=reps {
        let t = std::time::Instant::now();
        let y = net.forward_to(x.clone(), Layer::Mixed5);
        let _ = y.into_data();
        let s = t.elapsed().as_secs_f64();
        println!("{} batch {batch} at {size}px: {:.3} s ({:.1} images/s)", if r == 0 { "warm-up" } else { "run" }, s, batch as f64 / s);
    }
    Ok(())
}
