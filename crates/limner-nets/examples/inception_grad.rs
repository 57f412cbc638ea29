//! Times InceptionV3 forward + backward to the input (what Gatys and DeepDream run per step):
//! `cargo run --release -p limner-nets --example inception_grad [SIZE] [REPEATS] [TAP]`.
//! `LIMNER_FAST_CONV=0` runs burn's own convs instead of limner-kernels'.
use burn::tensor::{Device, Distribution, Tensor};
use limner_nets::{InceptionV3, Tap};

/// CPU time (user + system) of this process so far, in ms (less sensitive to other load than
/// wall time on a shared machine).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0
}

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, d: &str| std::env::args().nth(i).unwrap_or(d.to_string());
    let size: usize = arg(1, "256").parse()?;
    let reps: usize = arg(2, "3").parse()?;
    let tap: Tap = arg(3, "mixed5").parse()?;
    let device = Device::flex();
        let net = InceptionV3::load_fetched(&device)?;
    let net_ad = net.autodiff();
    let x = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(0.0, 1.0), &device);
    for r in 0..=reps {
        let t = std::time::Instant::now();
        let y = net.forward_taps(x.clone(), &[tap]).pop().unwrap();
        let _ = y.into_data();
        let f = t.elapsed().as_secs_f64();
        let (t, c) = (std::time::Instant::now(), cpu_ms());
        let xa = x.clone().autodiff().require_grad();
        let y = net_ad.forward_taps(xa.clone(), &[tap]).pop().unwrap();
        let loss = y.square().mean();
        let g = loss.backward();
        let gx = xa.grad(&g).unwrap();
        let _ = gx.into_data();
        let fb = t.elapsed().as_secs_f64();
        let cpu = cpu_ms() - c;
        println!("{} {size}px to {tap}: forward {:.1} ms, forward+backward {:.1} ms (CPU time {cpu:.0} ms)", if r == 0 { "warm-up" } else { "run" }, f * 1e3, fb * 1e3);
    }
    Ok(())
}
