//! DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
//! 2020): the same random colour, translation and cutout transforms are applied to real and
//! generated images before the discriminator, and gradients flow through them to G.
//!
//! All random parameters come from the trainer's seeded RNG on the host, so a resumed run
//! draws exactly the same augmentations.

use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::params::tensor_from;

/// Which transforms run (the paper's `policy='color,translation,cutout'`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffAugment {
    pub color: bool,
    pub translation: bool,
    pub cutout: bool,
}

impl DiffAugment {
    pub fn all() -> Self {
        Self { color: true, translation: true, cutout: true }
    }
    pub fn none() -> Self {
        Self { color: false, translation: false, cutout: false }
    }
    /// Parses a policy such as `color,translation,cutout` (or `none`).
    pub fn parse(policy: &str) -> anyhow::Result<Self> {
        let mut a = Self::none();
        for p in policy.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "none") {
            match p {
                "color" => a.color = true,
                "translation" => a.translation = true,
                "cutout" => a.cutout = true,
                other => anyhow::bail!("unknown DiffAugment policy `{other}` (use color, translation, cutout or none)"),
            }
        }
        Ok(a)
    }
    pub fn policy(&self) -> String {
        let mut v = vec![];
        if self.color {
            v.push("color");
        }
        if self.translation {
            v.push("translation");
        }
        if self.cutout {
            v.push("cutout");
        }
        if v.is_empty() { "none".into() } else { v.join(",") }
    }

    /// `x [N, C, H, W]` -> augmented `[N, C, H, W]`.
    pub fn apply(&self, x: Tensor<4>, rng: &mut ChaCha8Rng) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let device = x.device();
        let mut x = x;
        if self.color {
            let per = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| -> Tensor<4> {
                let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
                tensor_from(v, [n, 1, 1, 1], &device)
            };
            // brightness: + U(-0.5, 0.5)
            x = x + per(rng, -0.5, 0.5);
            // saturation: scale the deviation from the per-pixel channel mean by U(0, 2)
            let mean = x.clone().mean_dim(1); // [N, 1, H, W]
            x = (x - mean.clone()) * per(rng, 0.0, 2.0) + mean;
            // contrast: scale the deviation from the image mean by U(0.5, 1.5)
            let mean = x.clone().reshape([n, c * h * w]).mean_dim(1).reshape([n, 1, 1, 1]);
            x = (x - mean.clone()) * per(rng, 0.5, 1.5) + mean;
        }
        let mut mask = vec![1.0f32; n * h * w];
        let mut any_mask = false;
        if self.translation {
            // shift by up to 1/8 of the size with zero fill, as a gather from host indices
            let sh = (h as f32 * 0.125 + 0.5) as i64;
            let sw = (w as f32 * 0.125 + 0.5) as i64;
            let mut idx = Vec::with_capacity(n * c * h * w);
            for i in 0..n {
                let ty = rng.random_range(-sh..=sh);
                let tx = rng.random_range(-sw..=sw);
                let mut plane = Vec::with_capacity(h * w);
                for y in 0..h as i64 {
                    for xx in 0..w as i64 {
                        let (sy, sx) = (y + ty, xx + tx);
                        let inside = sy >= 0 && sy < h as i64 && sx >= 0 && sx < w as i64;
                        plane.push(if inside { sy * w as i64 + sx } else { 0 });
                        if !inside {
                            mask[i * h * w + (y as usize) * w + xx as usize] = 0.0;
                            any_mask = true;
                        }
                    }
                }
                for _ in 0..c {
                    idx.extend_from_slice(&plane);
                }
            }
            let idx: Tensor<3, Int> = Tensor::from_data(TensorData::new(idx, [n, c, h * w]), &device);
            x = x.reshape([n, c, h * w]).gather(2, idx).reshape([n, c, h, w]);
        }
        if self.cutout {
            // zero a square of half the size centred at a random position
            let (ch, cw) = ((h as f32 * 0.5 + 0.5) as i64, (w as f32 * 0.5 + 0.5) as i64);
            for i in 0..n {
                let oy = rng.random_range(0..(h as i64 + (1 - ch % 2)));
                let ox = rng.random_range(0..(w as i64 + (1 - cw % 2)));
                for y in (oy - ch / 2).max(0)..(oy + ch / 2).min(h as i64) {
                    for xx in (ox - cw / 2).max(0)..(ox + cw / 2).min(w as i64) {
                        mask[i * h * w + y as usize * w + xx as usize] = 0.0;
                    }
                }
            }
            any_mask = true;
        }
        if any_mask {
            x = x * tensor_from(mask, [n, 1, h, w], &device);
        }
        x
    }
}
