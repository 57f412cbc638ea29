//! The training loop: exact resume, and a tiny GAN that learns a synthetic dataset.

mod common;

use burn::tensor::Device;
use limner_gan::config::tiny;
use limner_gan::layers::NoiseMode;
use limner_gan::params::{state_dict, tensor_from, to_vec};
use limner_gan::train::{TrainConfig, Trainer};

/// N steps in one go, or N/2 + save + load + N/2, give bitwise the same networks,
/// optimiser moments and RNG position.
#[test]
fn resume_is_exact() {
    let device = Device::flex();
    let data = common::Discs::new(24, 16, 1);
    let (g, d) = tiny(16);
    let train = TrainConfig { batch: 4, r1_interval: 2, seed: 7, ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("half.safetensors");

    let mut a = Trainer::new(train.clone(), &g, &d, &device).unwrap();
    for _ in 0..8 {
        a.step(&data).unwrap();
    }

    let mut b = Trainer::new(train, &g, &d, &device).unwrap();
    for _ in 0..4 {
        b.step(&data).unwrap();
    }
    b.save(&ckpt).unwrap();
    drop(b);
    let mut b = Trainer::load(&ckpt, &device).unwrap();
    for _ in 0..4 {
        b.step(&data).unwrap();
    }

    assert_eq!(a.step, b.step);
    assert_eq!(a.images_seen, b.images_seen);
    assert_same_trainers(&mut a, &mut b);
}

/// The two trainers' G, D and G_ema are bitwise equal, and so are their whole checkpoints.
fn assert_same_trainers(a: &mut Trainer, b: &mut Trainer) {
    for (name, x, y) in [
        ("G", state_dict(&mut a.g, false), state_dict(&mut b.g, false)),
        ("D", state_dict(&mut a.d, false), state_dict(&mut b.d, false)),
        ("G_ema", state_dict(&mut a.g_ema, false), state_dict(&mut b.g_ema, false)),
    ] {
        for (k, v) in &x {
            assert_eq!(v.data, y[k].data, "{name}.{k} differs after resume");
        }
    }
    assert_eq!(a.checkpoint_bytes().unwrap(), b.checkpoint_bytes().unwrap(), "full checkpoints differ");
}

/// With ADA, N steps in one go, or 3 + save + load + the rest (the checkpoint falls inside an
/// ADA interval, so the interval's sign statistics must survive it too), give bitwise the same
/// p, networks and checkpoint; and p has moved (the run really adapts).
#[test]
fn ada_resume_continues_p_exactly() {
    use limner_gan::ada::AdaConfig;
    let device = Device::flex();
    let data = common::Discs::new(24, 16, 1);
    let (g, d) = tiny(16);
    // fast adaptation (0.16 a step of two minibatches), starting mid-way so that it can move
    // either way and the pipeline is active from the first step
    let ada = AdaConfig { interval: 2, kimg: 0.05, initial_p: 0.5, ..Default::default() };
    let train = TrainConfig { batch: 4, r1_interval: 2, seed: 7, ada: Some(ada), diffaugment: limner_gan::augment::DiffAugment::none(), ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("part.safetensors");
    let steps = 8;

    let mut a = Trainer::new(train.clone(), &g, &d, &device).unwrap();
    let mut ps = vec![];
    for _ in 0..steps {
        a.step(&data).unwrap();
        ps.push(a.ada.p);
    }
    eprintln!("p after each step: {ps:?}");
    assert!(ps.iter().any(|&p| p != 0.5), "p never moved: {ps:?}");

    let mut b = Trainer::new(train, &g, &d, &device).unwrap();
    for _ in 0..3 {
        b.step(&data).unwrap();
    }
    assert!(b.ada.sign_n > 0, "the checkpoint should fall inside an ADA interval");
    b.save(&ckpt).unwrap();
    let mid = b.ada.clone();
    drop(b);
    let mut b = Trainer::load(&ckpt, &device).unwrap();
    assert_eq!(b.ada, mid, "ADA state lost in the checkpoint");
    for _ in 3..steps {
        b.step(&data).unwrap();
    }
    assert_eq!(a.ada.p.to_bits(), b.ada.p.to_bits(), "p differs after resume");
    assert_eq!(a.ada, b.ada);
    assert_same_trainers(&mut a, &mut b);
}

/// Statistics of a set of NCHW images: per-channel mean and std, and the mean image.
fn stats(imgs: &[f32], n: usize, res: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let plane = res * res;
    let mut mean = vec![0.0; 3];
    let mut sq = vec![0.0; 3];
    let mut mean_img = vec![0.0; 3 * plane];
    for i in 0..n {
        for c in 0..3 {
            for p in 0..plane {
                let v = imgs[i * 3 * plane + c * plane + p];
                mean[c] += v;
                sq[c] += v * v;
                mean_img[c * plane + p] += v / n as f32;
            }
        }
    }
    let cnt = (n * plane) as f32;
    let std = (0..3).map(|c| (sq[c] / cnt - (mean[c] / cnt).powi(2)).max(0.0).sqrt()).collect();
    (mean.iter().map(|m| m / cnt).collect(), std, mean_img)
}

/// Distance between the statistics of generated and real images.
fn stat_distance(fake: &[f32], real: &[f32], n: usize, res: usize) -> f32 {
    let (fm, fs, fi) = stats(fake, n, res);
    let (rm, rs, ri) = stats(real, n, res);
    let d_mean: f32 = fm.iter().zip(&rm).map(|(a, b)| (a - b).abs()).sum();
    let d_std: f32 = fs.iter().zip(&rs).map(|(a, b)| (a - b).abs()).sum();
    let d_img = (fi.iter().zip(&ri).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / fi.len() as f32).sqrt();
    d_mean + d_std + d_img
}

/// Shape: the mean absolute distance from the flat grey background (-0.2) over each image's
/// four 2x2 corners, which no disc reaches in the data (it is 0 there).
fn corner_error(imgs: &[f32], n: usize, res: usize) -> f32 {
    let plane = res * res;
    let corners = [(0, 0), (0, res - 2), (res - 2, 0), (res - 2, res - 2)];
    let mut sum = 0.0;
    for i in 0..n {
        for c in 0..3 {
            for &(y0, x0) in &corners {
                for (y, x) in [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)] {
                    sum += (imgs[i * 3 * plane + c * plane + y * res + x] + 0.2).abs();
                }
            }
        }
    }
    sum / (n * 3 * 16) as f32
}

/// Diversity: the mean RMS distance between images `i` and `i + n/2` (no two alike when the
/// samples have not collapsed onto a few modes).
fn diversity(imgs: &[f32], n: usize, res: usize) -> f32 {
    let len = 3 * res * res;
    let half = n / 2;
    (0..half)
        .map(|i| {
            let (a, b) = (&imgs[i * len..(i + 1) * len], &imgs[(i + half) * len..(i + half + 1) * len]);
            (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / len as f32).sqrt()
        })
        .sum::<f32>()
        / half as f32
}

/// A tiny GAN trained for a few hundred steps on coloured discs moves its samples'
/// statistics (channel means and stds, mean image) towards the data's, learns the shape (the
/// corners become the flat background) and keeps its samples diverse (no collapse). Measured
/// (seed 3, 300 steps): statistics distance 4.11 -> 0.40, corner distance 0.573 -> 0.076,
/// diversity 0.267 against the data's 0.422.
#[test]
fn tiny_gan_learns_discs() {
    let device = Device::flex();
    let res = 16;
    let data = common::Discs::new(256, res, 2);
    let (g, d) = tiny(res);
    let train = TrainConfig { batch: 16, ema_kimg: 0.5, seed: 3, ..Default::default() };
    let mut t = Trainer::new(train, &g, &d, &device).unwrap();
    let n = 128;
    let real: Vec<f32> = data.images[..n].iter().flatten().copied().collect();
    let sample = |t: &Trainer| {
        let z = tensor_from(
            (0..n * 32).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 1.7).collect(),
            [n, 32],
            &device,
        );
        to_vec(&t.g_ema.forward(z, 1.0, &mut NoiseMode::Const))
    };
    let init = sample(&t);
    let before = stat_distance(&init, &real, n, res);
    let steps = 300;
    for _ in 0..steps {
        t.step(&data).unwrap();
    }
    let trained = sample(&t);
    let after = stat_distance(&trained, &real, n, res);
    eprintln!("statistics distance to the data: {before:.3} at init -> {after:.3} after {steps} steps");
    assert!(after < 0.5 * before, "distance {before} -> {after}: the GAN did not learn");
    let (corners_before, corners_after) = (corner_error(&init, n, res), corner_error(&trained, n, res));
    let (div_real, div_fake) = (diversity(&real, n, res), diversity(&trained, n, res));
    eprintln!("corner distance to the background: {corners_before:.3} -> {corners_after:.3}; diversity {div_fake:.3} (data {div_real:.3})");
    assert!(corners_after < 0.3 * corners_before, "the corners did not become background: {corners_before} -> {corners_after}");
    assert!(div_fake > 0.4 * div_real, "the samples collapsed: diversity {div_fake} vs the data's {div_real}");
}

/// Two runs with the same seed give bitwise the same generator.
#[test]
fn same_seed_same_weights() {
    let device = Device::flex();
    let data = common::Discs::new(24, 16, 1);
    let (g, d) = tiny(16);
    let train = TrainConfig { batch: 4, r1_interval: 2, seed: 7, ..Default::default() };
    let run = || {
        let mut t = Trainer::new(train.clone(), &g, &d, &device).unwrap();
        for _ in 0..3 {
            t.step(&data).unwrap();
        }
        state_dict(&mut t.g, false)
    };
    let (x, y) = (run(), run());
    for (k, v) in &x {
        assert_eq!(v.data, y[k].data, "{k} differs between two identical runs");
    }
}

/// A teacher's images of known seeds, as `limner dataset distill` makes them.
struct TeacherPairs {
    res: usize,
    seeds: Vec<u64>,
    images: Vec<Vec<f32>>,
}

impl limner_gan::train::DataSource for TeacherPairs {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn resolution(&self) -> usize {
        self.res
    }
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        common::fill_batch(&self.images, self.res, indices, flips, out)
    }
    fn pair_seed(&self, i: usize) -> Option<u64> {
        Some(self.seeds[i])
    }
}

/// A random teacher generator (rendered without noise), its images of seeds 0..64 as a paired
/// dataset, and a student trainer with the teacher's mapping copied in and frozen.
struct Distillation {
    teacher: limner_gan::Generator,
    data: TeacherPairs,
    t: Trainer,
}

impl Distillation {
    fn new(res: usize, train: TrainConfig) -> Self {
        use limner_gan::generate::latents_for_seeds;
        let device = Device::flex();
        let (g, d) = tiny(res);
        let teacher = Trainer::new(TrainConfig { seed: 100, ..Default::default() }, &g, &d, &device).unwrap().g;
        let seeds: Vec<u64> = (0..64).collect();
        let rendered = to_vec(&teacher.forward(latents_for_seeds(&seeds, g.z_dim, &device), 1.0, &mut NoiseMode::None));
        let images = rendered.chunks(3 * res * res).map(|c| c.to_vec()).collect();
        let data = TeacherPairs { res, seeds, images };
        let train = TrainConfig { distill_l1: 10.0, freeze_mapping: true, ..train };
        let mut t = Trainer::new(train, &g, &d, &device).unwrap();
        t.g.mapping = teacher.mapping.clone();
        t.g_ema.mapping = teacher.mapping.clone();
        Self { teacher, data, t }
    }

    /// Mean absolute error between the student's G and the teacher on `seeds`.
    fn mae(&self, seeds: &[u64]) -> f32 {
        use limner_gan::generate::latents_for_seeds;
        let z = |s: &[u64]| latents_for_seeds(s, self.teacher.config.z_dim, &self.t.device);
        let a = to_vec(&self.t.g.forward(z(seeds), 1.0, &mut NoiseMode::None));
        let b = to_vec(&self.teacher.forward(z(seeds), 1.0, &mut NoiseMode::None));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }
}

/// Paired distillation (`limner train --distill W --teacher-mapping ...`): a student that starts
/// from the teacher's mapping network (frozen) and random synthesis weights learns to render
/// the teacher's image of each seed: the mean absolute error to the teacher falls by more than
/// half, on the training seeds and on seeds it never saw, and the mapping is untouched.
#[test]
fn distillation_learns_the_teacher_and_keeps_the_mapping() {
    let mut x = Distillation::new(16, TrainConfig { batch: 16, seed: 5, ..Default::default() });
    let mapping_before = state_dict(&mut x.t.g.mapping.clone(), false);
    let seen: Vec<u64> = (0..64).collect();
    let unseen: Vec<u64> = (1000..1032).collect();
    let (seen0, unseen0) = (x.mae(&seen), x.mae(&unseen));
    let mut l1 = vec![];
    for _ in 0..150 {
        l1.push(x.t.step(&x.data).unwrap().distill.expect("distill loss reported"));
    }
    let (seen1, unseen1) = (x.mae(&seen), x.mae(&unseen));
    eprintln!("MAE to the teacher: seen {seen0:.3} -> {seen1:.3}, unseen {unseen0:.3} -> {unseen1:.3}; step L1 {:.3} -> {:.3}", l1[0], l1[l1.len() - 1]);
    assert!(seen1 < 0.5 * seen0, "seen seeds: {seen0} -> {seen1}");
    assert!(unseen1 < 0.5 * unseen0, "unseen seeds: {unseen0} -> {unseen1}");
    for (k, v) in state_dict(&mut x.t.g.mapping.clone(), false) {
        assert_eq!(v.data, mapping_before[&k].data, "frozen mapping changed: {k}");
    }
}

/// `--adversarial 0`: distillation by regression alone. The discriminator is never stepped
/// (weights and Adam moments untouched, no D loss), and the student still learns the teacher.
#[test]
fn regression_only_distillation_skips_the_discriminator() {
    let mut x = Distillation::new(16, TrainConfig { batch: 16, seed: 5, adversarial: 0.0, beta1: 0.9, ..Default::default() });
    let d_before = state_dict(&mut x.t.d.clone(), false);
    let seen: Vec<u64> = (0..64).collect();
    let before = x.mae(&seen);
    for _ in 0..100 {
        let s = x.t.step(&x.data).unwrap();
        assert_eq!((s.loss_g, s.loss_d), (0.0, 0.0), "no adversarial losses without a discriminator step");
        assert!(s.distill.is_some());
    }
    let after = x.mae(&seen);
    eprintln!("regression only: MAE {before:.3} -> {after:.3}");
    assert!(after < 0.5 * before, "{before} -> {after}");
    for (k, v) in state_dict(&mut x.t.d.clone(), false) {
        assert_eq!(v.data, d_before[&k].data, "D changed without adversarial loss: {k}");
    }
    assert!(x.t.adam_d.m.is_empty(), "D's optimiser was stepped");
    // nothing at all to learn from is refused
    let mut y = Distillation::new(16, TrainConfig { batch: 4, adversarial: 0.0, ..Default::default() });
    y.t.train.distill_l1 = 0.0;
    let err = format!("{:#}", y.t.step(&y.data).unwrap_err());
    assert!(err.contains("nothing to train"), "{err}");
}

/// A perceptual distance that records the shapes it saw and measures the squared distance
/// of the images' per-channel means (differentiable, so G learns from it).
struct MeanColour;

impl limner_gan::train::PerceptualDistance for MeanColour {
    fn distance(&self, fake: burn::tensor::Tensor<4>, target: burn::tensor::Tensor<4>) -> burn::tensor::Tensor<1> {
        let m = |x: burn::tensor::Tensor<4>| x.mean_dim(3).mean_dim(2); // [N, 3, 1, 1]
        (m(fake) - m(target).autodiff()).square().mean()
    }
}

/// `--perceptual W`: the attached distance is evaluated on every G step and reported, and its
/// gradient reaches G (with the pixel loss off, the colour distance alone still falls); a run
/// that asks for it without a network attached fails clearly instead of training without it.
#[test]
fn perceptual_distance_is_trained_on_and_required() {
    let train = TrainConfig { batch: 16, seed: 3, adversarial: 0.0, perceptual: 10.0, beta1: 0.9, ..Default::default() };
    let mut x = Distillation::new(16, train.clone());
    let err = format!("{:#}", x.t.step(&x.data).unwrap_err());
    assert!(err.contains("no perceptual network"), "{err}");

    let mut x = Distillation::new(16, train);
    x.t.train.distill_l1 = 1e-9; // effectively only the perceptual term
    x.t.perceptual_net = Some(Box::new(MeanColour));
    let mut p = vec![];
    for _ in 0..60 {
        p.push(x.t.step(&x.data).unwrap().perceptual.expect("perceptual distance reported"));
    }
    let (first, last) = (p[..5].iter().sum::<f32>() / 5.0, p[p.len() - 5..].iter().sum::<f32>() / 5.0);
    eprintln!("mean-colour distance {first:.5} -> {last:.5}");
    assert!(last < 0.5 * first, "{first} -> {last}");
}

/// A dataset without seeds cannot be distilled from: a clear error, not a silent GAN run.
#[test]
fn distillation_on_plain_photos_is_refused() {
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 1);
    let (g, d) = tiny(16);
    let train = TrainConfig { batch: 4, distill_l1: 1.0, ..Default::default() };
    let mut t = Trainer::new(train, &g, &d, &device).unwrap();
    let err = format!("{:#}", t.step(&data).unwrap_err());
    assert!(err.contains("limner dataset distill"), "{err}");
}

/// EMA ramp-up: early in a run the EMA generator follows G (its half-life is at most 5% of the
/// images seen) instead of staying at the random init, as it does with a fixed 10-kimg half-life.
#[test]
fn ema_rampup_follows_the_early_generator() {
    let device = Device::flex();
    let data = common::Discs::new(16, 16, 1);
    let (g, d) = tiny(16);
    let dist = |rampup: Option<f64>| {
        let train = TrainConfig { batch: 4, seed: 9, ema_rampup: rampup, ..Default::default() };
        let mut t = Trainer::new(train, &g, &d, &device).unwrap();
        let init = state_dict(&mut t.g_ema, false);
        for _ in 0..6 {
            t.step(&data).unwrap();
        }
        let (gs, es) = (state_dict(&mut t.g, false), state_dict(&mut t.g_ema, false));
        let l2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>();
        let (mut to_g, mut from_init) = (0.0, 0.0);
        for (k, v) in &gs {
            if k.contains("w_avg") {
                continue;
            }
            to_g += l2(&es[k].data, &v.data);
            from_init += l2(&init[k].data, &v.data);
        }
        to_g / from_init
    };
    let (ramped, fixed) = (dist(Some(0.05)), dist(None));
    eprintln!("|EMA - G|² / |init - G|² after 6 steps: ramp-up {ramped:.4}, fixed half-life {fixed:.4}");
    assert!(ramped < 0.1 && fixed > 0.9, "ramp-up {ramped}, fixed {fixed}");
}

/// `--noise-off`: the noise strengths stay exactly 0 through training (a fresh run), and
/// switching an existing run off zeroes them in G and its EMA, so the images no longer depend
/// on the noise at all.
#[test]
fn noise_off_keeps_the_generator_deterministic() {
    let device = Device::flex();
    let data = common::Discs::new(16, 16, 1);
    let (g, d) = tiny(16);
    let strengths = |t: &mut Trainer| -> Vec<f32> {
        state_dict(&mut t.g, false).into_iter().filter(|(k, _)| k.ends_with("noise_strength")).flat_map(|(_, v)| v.data).collect()
    };
    let mut on = Trainer::new(TrainConfig { batch: 4, seed: 2, ..Default::default() }, &g, &d, &device).unwrap();
    let mut off = Trainer::new(TrainConfig { batch: 4, seed: 2, noise_off: true, ..Default::default() }, &g, &d, &device).unwrap();
    for _ in 0..5 {
        on.step(&data).unwrap();
        off.step(&data).unwrap();
    }
    assert!(strengths(&mut on).iter().any(|&s| s != 0.0), "noise strengths train when noise is on");
    assert!(strengths(&mut off).iter().all(|&s| s == 0.0), "noise strengths moved with noise off");
    // switching the trained run off: zero strengths, and noise no longer changes the image
    on.switch_noise_off();
    on.step(&data).unwrap();
    assert!(strengths(&mut on).iter().all(|&s| s == 0.0));
    let z = limner_gan::generate::latents_for_seeds(&[1, 2], 32, &device);
    let a = to_vec(&on.g_ema.forward(z.clone(), 1.0, &mut NoiseMode::Const));
    let b = to_vec(&on.g_ema.forward(z, 1.0, &mut NoiseMode::None));
    assert_eq!(a, b, "the EMA generator still uses its noise inputs");
}
