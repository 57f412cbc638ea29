//! Adaptive discriminator augmentation (`limner_gan::ada`): how p adapts, the pipeline's
//! transforms (identity at p = 0, differentiable, whole-pixel moves exact), and FreezeD.

mod common;

use burn::tensor::Device;
use limner_gan::ada::{ada_adjust, AdaConfig, AdaState, AugmentPipe};
use limner_gan::config::tiny;
use limner_gan::params::{state_dict, tensor_from, to_vec};
use limner_gan::train::{TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every transform of the `bgc` pipeline on its own, by its official name.
fn single_transforms() -> Vec<(&'static str, AugmentPipe)> {
    let one = |f: fn(&mut AugmentPipe)| {
        let mut a = AugmentPipe::default();
        f(&mut a);
        a
    };
    vec![
        ("xflip", one(|a| a.xflip = 1.0)),
        ("rotate90", one(|a| a.rotate90 = 1.0)),
        ("xint", one(|a| a.xint = 1.0)),
        ("scale", one(|a| a.scale = 1.0)),
        ("rotate", one(|a| a.rotate = 1.0)),
        ("aniso", one(|a| a.aniso = 1.0)),
        ("xfrac", one(|a| a.xfrac = 1.0)),
        ("brightness", one(|a| a.brightness = 1.0)),
        ("contrast", one(|a| a.contrast = 1.0)),
        ("lumaflip", one(|a| a.lumaflip = 1.0)),
        ("hue", one(|a| a.hue = 1.0)),
        ("saturation", one(|a| a.saturation = 1.0)),
        ("bgc", AugmentPipe::bgc()),
    ]
}

fn random_images(n: usize, res: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * 3 * res * res).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Stub discriminator outputs fed through the same adaptation the trainer uses: a D that
/// always wins on the reals (every logit positive, r_t = 1 > 0.6) drives p up by exactly
/// `batch * interval / (kimg * 1000)` per interval until it saturates at 1; a D that cannot
/// tell (signs at random, r_t near 0) drives it down to 0, where it stays.
#[test]
fn p_rises_when_d_overfits_and_falls_when_it_cannot_tell() {
    let cfg = AdaConfig { interval: 4, kimg: 2.0, initial_p: 0.25, ..Default::default() };
    let batch = 32;
    let speed = (batch * 4) as f64 / 2000.0; // 0.064 per interval
    let mut s = AdaState::new(&cfg);
    assert_eq!(s.p, 0.25);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // D always wins: positive logits of any size
    for k in 1..=5 {
        for _ in 0..cfg.interval {
            let logits: Vec<f32> = (0..batch).map(|_| rng.random_range(0.01..8.0)).collect();
            s.observe(&logits);
        }
        let before = s.p;
        assert_eq!(s.adjust(&cfg, batch), Some(1.0));
        assert!((s.p - before - speed).abs() < 1e-12, "interval {k}: p {before} -> {}, expected +{speed}", s.p);
    }
    assert!((s.p - (0.25 + 5.0 * speed)).abs() < 1e-12);
    for _ in 0..20 {
        s.observe(&vec![3.0; batch]);
        s.adjust(&cfg, batch);
    }
    assert_eq!(s.p, 1.0, "p must saturate at 1");
    // D cannot tell: logits of random sign, r_t about 0 < 0.6
    let mut falls = 0;
    for _ in 0..40 {
        for _ in 0..cfg.interval {
            let logits: Vec<f32> = (0..batch).map(|_| rng.random_range(-1.0..1.0)).collect();
            s.observe(&logits);
        }
        let before = s.p;
        let r_t = s.adjust(&cfg, batch).unwrap();
        assert!(r_t.abs() < 0.5, "random signs gave r_t {r_t}");
        assert!(s.p < before || s.p == 0.0, "p did not fall: {before} -> {}", s.p);
        falls += (s.p < before) as u32;
    }
    assert_eq!(s.p, 0.0, "p must floor at 0");
    assert_eq!(falls, (1.0 / speed).ceil() as u32, "p fell from 1 to 0 in ceil(1/speed) intervals");
    // exactly on target: no move; an interval without observations: no move
    assert_eq!(ada_adjust(0.5, 0.6, 0.6, 32, 4, 500.0), 0.5);
    let mut idle = AdaState { p: 0.3, ..Default::default() };
    assert_eq!(idle.adjust(&cfg, batch), None);
    assert_eq!(idle.p, 0.3);
    // the official step size
    assert!((ada_adjust(0.5, 0.9, 0.6, 64, 4, 500.0) - (0.5 + 256.0 / 500_000.0)).abs() < 1e-15);
}

/// At p = 0 every transform (and the whole bgc pipeline) returns its input bit for bit; at
/// p = 1 each one changes the batch.
#[test]
fn every_augmentation_is_the_identity_at_p_zero() {
    let device = Device::flex();
    let (n, res) = (8, 12);
    let x = random_images(n, res, 3);
    for (name, pipe) in single_transforms() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let y = to_vec(&pipe.apply(tensor_from(x.clone(), [n, 3, res, res], &device), 0.0, &mut rng));
        assert!(y.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()), "{name} is not the identity at p = 0");
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let y = to_vec(&pipe.apply(tensor_from(x.clone(), [n, 3, res, res], &device), 1.0, &mut rng));
        let moved = y.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "{name} did nothing at p = 1 (max change {moved})");
    }
}

/// Each transform is differentiable in the image: the gradient of `sum(aug(x) * r)` reaches
/// the input and matches central finite differences (same augmentation parameters: the same
/// RNG state) on a tiny image.
#[test]
fn every_augmentation_is_differentiable() {
    let device = Device::flex();
    let (n, res) = (2, 6);
    let x = random_images(n, res, 4);
    let r = random_images(n, res, 5);
    let len = x.len();
    for (name, pipe) in single_transforms() {
        let seed = 11;
        let loss = |xs: &[f32]| -> f64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let y = to_vec(&pipe.apply(tensor_from(xs.to_vec(), [n, 3, res, res], &device), 1.0, &mut rng));
            y.iter().zip(&r).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
        };
        let xt = tensor_from(x.clone(), [n, 3, res, res], &device).autodiff().require_grad();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let y = pipe.apply(xt.clone(), 1.0, &mut rng);
        let l = (y * tensor_from(r.clone(), [n, 3, res, res], &device).autodiff()).sum();
        let grads = l.backward();
        let g = to_vec(&xt.grad(&grads).unwrap_or_else(|| panic!("{name}: no gradient reached the input")));
        assert_eq!(g.len(), len);
        assert!(g.iter().any(|v| v.abs() > 1e-3), "{name}: the gradient is zero");
        let eps = 0.05f32;
        let mut worst = 0.0f64;
        for i in (0..len).step_by(7) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps as f64);
            worst = worst.max((fd - g[i] as f64).abs());
        }
        assert!(worst < 2e-3, "{name}: autodiff and finite differences differ by {worst}");
    }
}

/// Whole-pixel geometry moves pixels exactly: with x-flip alone each image comes out either
/// untouched or mirrored, with 90° rotations alone as one of its four rotations, and with
/// p = 1 both cases occur in a batch of 16.
#[test]
fn flips_and_quarter_turns_move_whole_pixels() {
    let device = Device::flex();
    let (n, res) = (16, 5);
    let x = random_images(n, res, 6);
    let plane = 3 * res * res;
    let at = |img: &[f32], c: usize, y: usize, xx: usize| img[c * res * res + y * res + xx];
    let transformed = |img: &[f32], f: &dyn Fn(usize, usize) -> (usize, usize)| -> Vec<f32> {
        let mut out = vec![0.0; plane];
        for c in 0..3 {
            for y in 0..res {
                for xx in 0..res {
                    let (sy, sx) = f(y, xx);
                    out[c * res * res + y * res + xx] = at(img, c, sy, sx);
                }
            }
        }
        out
    };
    let last = res - 1;
    let (flip, rot) = (single_transforms().remove(0).1, single_transforms().remove(1).1);
    let y = to_vec(&flip.apply(tensor_from(x.clone(), [n, 3, res, res], &device), 1.0, &mut ChaCha8Rng::seed_from_u64(2)));
    let mut kinds = [0; 2];
    for i in 0..n {
        let (src, out) = (&x[i * plane..(i + 1) * plane], &y[i * plane..(i + 1) * plane]);
        let mirrored = transformed(src, &|yy, xx| (yy, last - xx));
        let k = if out == src { 0 } else if out == mirrored.as_slice() { 1 } else { panic!("image {i} is neither itself nor its mirror") };
        kinds[k] += 1;
    }
    assert!(kinds.iter().all(|&k| k > 0), "flips {kinds:?}");
    let y = to_vec(&rot.apply(tensor_from(x.clone(), [n, 3, res, res], &device), 1.0, &mut ChaCha8Rng::seed_from_u64(2)));
    let mut kinds = [0; 4];
    for i in 0..n {
        let (src, out) = (&x[i * plane..(i + 1) * plane], &y[i * plane..(i + 1) * plane]);
        let maps: [&dyn Fn(usize, usize) -> (usize, usize); 4] =
            [&|yy, xx| (yy, xx), &|yy, xx| (xx, last - yy), &|yy, xx| (last - yy, last - xx), &|yy, xx| (last - xx, yy)];
        let k = maps.iter().position(|m| transformed(src, m) == out).unwrap_or_else(|| panic!("image {i} is not a quarter turn of itself"));
        kinds[k] += 1;
    }
    assert!(kinds.iter().filter(|&&k| k > 0).count() >= 3, "rotations {kinds:?}");
}

/// FreezeD: with `freeze_d = 1` a training step with ADA leaves D's first block (b16) as it
/// was and trains the rest; more blocks than D has is refused.
#[test]
fn freeze_d_keeps_the_first_blocks() {
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 1);
    let (g, d) = tiny(16);
    let ada = AdaConfig { initial_p: 0.5, ..Default::default() };
    let train = TrainConfig { batch: 4, freeze_d: 1, ada: Some(ada), diffaugment: limner_gan::augment::DiffAugment::none(), ..Default::default() };
    let mut t = Trainer::new(train.clone(), &g, &d, &device).unwrap();
    let before = state_dict(&mut t.d, false);
    let s = t.step(&data).unwrap();
    assert_eq!(s.augment_p, Some(0.5));
    let after = state_dict(&mut t.d, false);
    let (mut frozen, mut trained) = (0, 0);
    for (k, v) in &before {
        let same = v.data == after[k].data;
        if k.starts_with("b16.") {
            assert!(same, "{k} changed although b16 is frozen");
            frozen += 1;
        } else if k.ends_with("weight") {
            assert!(!same, "{k} did not train");
            trained += 1;
        }
    }
    assert!(frozen > 0 && trained > 0);
    let e = Trainer::new(TrainConfig { freeze_d: 3, ..train.clone() }, &g, &d, &device).err().unwrap().to_string();
    assert!(e.contains("--freeze-d 3") && e.contains("2 blocks"), "{e}");
    // ADA and DiffAugment together are refused
    let e = Trainer::new(TrainConfig { diffaugment: limner_gan::augment::DiffAugment::all(), ..train }, &g, &d, &device).err().unwrap().to_string();
    assert!(e.contains("choose one"), "{e}");
}
