//! Issue 18 §2: a model trained by limner on 50 images long enough to memorise them is flagged
//! by the audit. Pixel space only (no fetched network: it runs everywhere), 16 px.

use anyhow::Result;
use burn::tensor::Device;
use limner_audit::{audit, AuditOptions, ImageSet, Rgb8, Space};
use limner_gan::config::{DiscriminatorConfig, GeneratorConfig};
use limner_gan::generate::{generate_seeds_rgb8, GenerateOptions};
use limner_gan::train::{DataSource, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};

const RES: usize = 16;

/// `n` pictures of one kind: a two-colour gradient with three soft coloured blobs, all random.
fn pictures(n: usize, seed: u64) -> Vec<Rgb8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let c0: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            let c1: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            let angle: f32 = rng.random::<f32>() * std::f32::consts::TAU;
            let blobs: Vec<([f32; 2], f32, [f32; 3])> =
                (0..3).map(|_| ([rng.random::<f32>() * RES as f32, rng.random::<f32>() * RES as f32], 1.5 + 3.0 * rng.random::<f32>(), [rng.random(), rng.random(), rng.random()])).collect();
            let mut data = Vec::with_capacity(RES * RES * 3);
            for y in 0..RES {
                for x in 0..RES {
                    let (u, v) = (x as f32 / RES as f32 - 0.5, y as f32 / RES as f32 - 0.5);
                    let t = (0.5 + u * angle.cos() + v * angle.sin()).clamp(0.0, 1.0);
                    let mut px: Vec<f32> = (0..3).map(|c| c0[c] * (1.0 - t) + c1[c] * t).collect();
                    for (p, r, col) in &blobs {
                        let a = (-((x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2)) / (2.0 * r * r)).exp();
                        for c in 0..3 {
                            px[c] = px[c] * (1.0 - a) + col[c] * a;
                        }
                    }
                    data.extend(px.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8));
                }
            }
            Rgb8::new(RES, data)
        })
        .collect()
}

/// Images as an audit's image set.
struct Set(&'static str, Vec<Rgb8>);

impl ImageSet for Set {
    fn len(&self) -> usize {
        self.1.len()
    }
    fn size(&self) -> usize {
        RES
    }
    fn describe(&self) -> String {
        format!("{} ({} images)", self.0, self.1.len())
    }
    fn label(&self, i: usize) -> String {
        format!("{} {i}", self.0)
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        Ok(indices.iter().map(|&i| self.1[i].clone()).collect())
    }
}

/// The training pictures as limner's trainer reads them (NCHW in [-1, 1]); image `i` is paired
/// with seed `i` for the regression route.
struct Train(Vec<Rgb8>);

impl DataSource for Train {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resolution(&self) -> usize {
        RES
    }
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        out.clear();
        for (&i, &f) in indices.iter().zip(flips) {
            let d = &self.0[i].data;
            for c in 0..3 {
                for y in 0..RES {
                    for x in 0..RES {
                        let sx = if f { RES - 1 - x } else { x };
                        out.push(d[(y * RES + sx) * 3 + c] as f32 / 127.5 - 1.0);
                    }
                }
            }
        }
    }
    fn pair_seed(&self, i: usize) -> Option<u64> {
        std::env::var("MEM_PAIRED").is_ok().then_some(i as u64)
    }
}

fn tiny() -> (GeneratorConfig, DiscriminatorConfig) {
    let mut g = GeneratorConfig::limner_default(RES);
    g.z_dim = 32;
    g.w_dim = 32;
    g.mapping_layers = 2;
    g.channel_base = 512;
    g.channel_max = 64;
    let mut d = DiscriminatorConfig::limner_default(RES);
    d.channel_base = 512;
    d.channel_max = 64;
    (g, d)
}

fn samples(t: &Trainer, seeds: &[u64]) -> Vec<Rgb8> {
    generate_seeds_rgb8(&t.g_ema, seeds, &GenerateOptions { psi: 1.0, noise: 1.0, batch: 32 }, &mut |_| {}).into_iter().map(|d| Rgb8::new(RES, d)).collect()
}

#[test]
fn a_gan_trained_on_50_images_until_it_memorises_them_is_flagged() {
    let device = Device::flex();
    let train = pictures(50, 1);
    let held = Set("held-out", pictures(50, 2));
    let steps: usize = std::env::var("MEM_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let (g, d) = tiny();
    let paired = std::env::var("MEM_PAIRED").is_ok();
    let cfg = TrainConfig {
        batch: 16,
        ema_kimg: 0.05,
        seed: 3,
        xflip: false,
        diffaugment: limner_gan::augment::DiffAugment::parse("none").unwrap(),
        distill_l1: if paired { 10.0 } else { 0.0 },
        adversarial: if paired { 0.0 } else { 1.0 },
        noise_off: paired,
        ..Default::default()
    };
    let mut t = Trainer::new(cfg, &g, &d, &device).unwrap();
    let data = Train(train.clone());
    let tset = Set("training", train);
    let o = AuditOptions { spaces: vec![Space::Pixels], ..Default::default() };
    let t0 = std::time::Instant::now();
    let every = std::env::var("MEM_EVERY").ok().and_then(|s| s.parse().ok()).unwrap_or(steps);
    for step in 1..=steps {
        t.step(&data).unwrap();
        if step % every == 0 || step == steps {
            let new = Set("samples", samples(&t, &(100_000..100_064).collect::<Vec<_>>()));
            let r = audit(&tset, &held, &new, &o, &device, &mut |_, _, _| {}).unwrap();
            let s = &r.spaces[0];
            let seen = Set("samples", samples(&t, &(0..50).collect::<Vec<_>>()));
            let r2 = audit(&tset, &held, &seen, &o, &device, &mut |_, _, _| {}).unwrap();
            eprintln!(
                "step {step} ({:.0} s): new seeds copy rate {:.1} % (median nearest {:.3}, held-out median {:.3}, threshold {:.3}, C_T {:.2}); training seeds {:.1} %",
                t0.elapsed().as_secs_f64(),
                100.0 * s.copy_rate,
                s.median_sample,
                s.median_heldout,
                s.threshold,
                s.data_copying.c_t,
                100.0 * r2.spaces[0].copy_rate
            );
        }
    }
}
