//! DeepDream (Mordvintsev, Olah & Tyka 2015, "Inceptionism: Going Deeper into Neural
//! Networks", and their `deepdream.ipynb`), on limner's InceptionV3.
//!
//! Gradient ascent on the image to raise the mean squared activation of one or more layers
//! (`objective = Σ_layers mean(a²)`), in normalised steps (`x += lr · g / mean|g|`), each on
//! an image rolled by a random offset of up to `jitter` px (rolled back after the step), with
//! pixels clipped to [0, 1]. It runs over an octave pyramid, smallest first: each octave
//! starts from its own downscaled copy of the input plus the detail the smaller octaves added
//! (upscaled), so patterns grow at several scales, as in the original notebook.

use anyhow::{ensure, Result};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use limner_nets::{InceptionV3, Tap};
use crate::picture::{host, Picture};

/// Settings of one dream. The defaults are the CLI's (`limner dream`).
#[derive(Clone, Debug)]
pub struct DreamConfig {
    /// the layers whose activations are amplified (summed objective)
    pub layers: Vec<Tap>,
    /// pyramid levels (1 = the input size only)
    pub octaves: usize,
    /// size ratio between neighbouring octaves
    pub octave_scale: f64,
    /// the largest random roll, in px, before each step
    pub jitter: usize,
    /// gradient steps per octave
    pub steps: usize,
    /// step size: the mean absolute pixel change per step ([0, 1] range; the notebook's 1.5 on
    /// 0..255 pixels is 0.006)
    pub lr: f64,
    /// seeds the jitter
    pub seed: u64,
}

impl Default for DreamConfig {
    fn default() -> Self {
        Self { layers: vec!["mixed3".parse().expect("layer")], octaves: 4, octave_scale: 1.4, jitter: 32, steps: 10, lr: 0.006, seed: 0 }
    }
}

/// Reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct DreamProgress {
    /// 1 ..= octaves, smallest first
    pub octave: usize,
    pub octaves: usize,
    /// 1 ..= steps within the octave
    pub step: usize,
    pub steps: usize,
    pub width: usize,
    pub height: usize,
    /// the objective before this step
    pub objective: f32,
}

/// DeepDream with the fetched InceptionV3 (`limner models fetch --only inception-v3`).
pub fn dream(image: &Picture, cfg: &DreamConfig, progress: &mut dyn FnMut(&DreamProgress)) -> Result<Picture> {
    let net = InceptionV3::load_fetched(&Device::flex())?;
    dream_with(&net, image, cfg, progress)
}

/// DeepDream with a loaded network (on the plain flex device; differentiated through its
/// autodiff copy).
pub fn dream_with(net: &InceptionV3, image: &Picture, cfg: &DreamConfig, progress: &mut dyn FnMut(&DreamProgress)) -> Result<Picture> {
    ensure!(!cfg.layers.is_empty(), "give at least one layer to dream on");
    ensure!(cfg.octaves >= 1 && cfg.steps >= 1, "octaves and steps must be at least 1");
    ensure!(cfg.octave_scale.is_finite() && cfg.octave_scale >= 1.0, "the octave scale must be ≥ 1, got {}", cfg.octave_scale);
    ensure!(cfg.lr.is_finite() && cfg.lr > 0.0, "the step size must be a positive number, got {}", cfg.lr);
    // the pyramid, full size first; each level is a downscaled copy of the one above
    let mut bases = vec![image.clone()];
    for _ in 1..cfg.octaves {
        let prev = bases.last().expect("a level");
        let w = ((prev.width as f64 / cfg.octave_scale).round() as usize).max(1);
        let h = ((prev.height as f64 / cfg.octave_scale).round() as usize).max(1);
        bases.push(prev.resized(w, h));
    }
    let smallest = bases.last().expect("a level");
    let deepest = *cfg.layers.iter().max().expect("a layer");
    let min = deepest.min_input_size();
    ensure!(
        smallest.width >= min && smallest.height >= min,
        "the smallest octave would be {}x{} px; layer {deepest} needs at least {min} px: use fewer octaves, a smaller octave scale or a larger image",
        smallest.width,
        smallest.height
    );
    let net_ad = net.autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut detail = Picture { width: smallest.width, height: smallest.height, data: vec![0.0; smallest.data.len()] };
    let mut x = smallest.clone();
    for (octave, base) in bases.iter().rev().enumerate() {
        let detail_here = detail.resized(base.width, base.height);
        let mut data: Vec<f32> = base.data.iter().zip(&detail_here.data).map(|(b, d)| (b + d).clamp(0.0, 1.0)).collect();
        for step in 1..=cfg.steps {
            let j = cfg.jitter as i64;
            let (ox, oy) = (rng.random_range(-j..=j) as isize, rng.random_range(-j..=j) as isize);
            let rolled = roll(&data, base.width, base.height, ox, oy);
            let (objective, g) = objective_and_grad(&net_ad, &rolled, base.width, base.height, &cfg.layers);
            let g = roll(&g, base.width, base.height, -ox, -oy);
            let mean_abs = g.iter().map(|v| v.abs() as f64).sum::<f64>() / g.len() as f64;
            let k = (cfg.lr / mean_abs.max(1e-12)) as f32;
            for (xi, gi) in data.iter_mut().zip(&g) {
                *xi = (*xi + k * gi).clamp(0.0, 1.0);
            }
            progress(&DreamProgress { octave: octave + 1, octaves: cfg.octaves, step, steps: cfg.steps, width: base.width, height: base.height, objective });
        }
        x = Picture { width: base.width, height: base.height, data };
        detail = Picture { width: base.width, height: base.height, data: x.data.iter().zip(&base.data).map(|(a, b)| a - b).collect() };
    }
    Ok(x)
}

/// The dream objective of an image: `Σ_layers mean(a²)` (no gradient).
pub fn objective(net: &InceptionV3, image: &Picture, layers: &[Tap]) -> f32 {
    let feats = net.forward_taps(image.to_tensor(&net.device()), layers);
    feats.into_iter().map(|f| f.square().mean().into_scalar::<f32>()).sum()
}

/// The objective at planar `[3, h, w]` pixels `x` and its gradient (`net_ad`: the network's
/// [`InceptionV3::autodiff`] copy).
pub fn objective_and_grad(net_ad: &InceptionV3, x: &[f32], w: usize, h: usize, layers: &[Tap]) -> (f32, Vec<f32>) {
    let xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 3, h, w]), &net_ad.device()).require_grad(); // [1, 3, H, W]
    let objective: Tensor<1> = net_ad
        .forward_taps(xt.clone(), layers)
        .into_iter()
        .map(|f| f.square().mean()) //                      [1] per layer
        .reduce(|a, b| a + b)
        .expect("a layer");
    let value = objective.clone().into_scalar::<f32>();
    let grads = objective.backward();
    (value, host(xt.grad(&grads).expect("the image is tracked")))
}

/// Planar `[3, h, w]` image rolled (cyclically) by `ox` px right and `oy` px down.
fn roll(x: &[f32], w: usize, h: usize, ox: isize, oy: isize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    let sx = ox.rem_euclid(w as isize) as usize;
    let sy = oy.rem_euclid(h as isize) as usize;
    for c in 0..3 {
        for y in 0..h {
            let src = &x[(c * h + y) * w..][..w];
            let dst = &mut out[(c * h + (y + sy) % h) * w..][..w];
            dst[sx..].copy_from_slice(&src[..w - sx]);
            dst[..sx].copy_from_slice(&src[w - sx..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::roll;

    #[test]
    fn roll_is_cyclic_and_inverts() {
        let (w, h) = (5, 3);
        let x: Vec<f32> = (0..3 * w * h).map(|v| v as f32).collect();
        let r = roll(&x, w, h, 2, -1);
        // pixel (y=0, x=0) of channel 0 moves to (y=2, x=2)
        assert_eq!(r[2 * w + 2], x[0]);
        assert_eq!(roll(&r, w, h, -2, 1), x);
        assert_eq!(roll(&x, w, h, 5, 3), x);
    }
}
