//! Adaptive discriminator augmentation (ADA; Karras et al., "Training Generative Adversarial
//! Networks with Limited Data", 2020; the official `training/augment.py` `AugmentPipe`).
//!
//! Every image D sees, real or generated, goes through the same pipeline, each transform
//! applied with probability `p` (times its multiplier). The pipeline is differentiable in the
//! image (G is trained through it), and `p` is tuned during training from the sign of D's
//! outputs on real images: `r_t = E[sign(D(real))]` over `interval` minibatches, and
//! `p += sign(r_t - target) * batch * interval / (kimg * 1000)`, clamped to `[0, 1]`.
//!
//! The transforms of the official `bgc` set, with the official ranges and order:
//! - pixel blitting: x-flip, 90° rotations, integer translation;
//! - general geometric: isotropic scale, pre-rotation, anisotropic scale, post-rotation,
//!   fractional translation;
//! - colour: brightness, contrast, luma flip, hue rotation, saturation.
//!
//! All geometric transforms compose into one inverse affine matrix per image (output pixel ->
//! input pixel), executed once as a bilinear resample with reflect padding; the colour
//! transforms compose into one 4×4 matrix per image applied as `C[:3,:3] @ rgb + C[:3,3]`.
//!
//! Simplified against the official code: the official resampling upsamples 2× with the `sym6`
//! wavelet low-pass filter, samples bilinearly at 2× and low-pass filters back down
//! (anti-aliased resampling). Here the affine is sampled bilinearly once at 1× (four gathers
//! with host-computed indices and weights): no aliasing filter, so minifications alias and
//! bilinear blurs a little; the reflect padding is an index reflection of any extent (the
//! official pads by the needed margin only, zeros beyond it, which the transformed corners never
//! reach). Reason: two CPU cores; the 2× filtered path costs about 4× the pixels plus two
//! 12-tap separable filters per image, and burn's autodiff has no grid-sample backward.
//!
//! All random parameters come from the trainer's seeded ChaCha8 stream on the host, drawn in
//! the same amount whatever `p` is, so a resumed run draws exactly the same augmentations.
//! At `p = 0` no transform is drawn and the pipeline returns its input untouched.

use anyhow::{bail, ensure, Result};
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::params::tensor_from;

/// The augmentation pipeline: probability multipliers and ranges, named as in the official
/// `AugmentPipe`. A multiplier of 0 turns a transform off; 1 applies it with probability `p`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentPipe {
    pub xflip: f64,
    pub rotate90: f64,
    pub xint: f64,
    /// range of integer translation, relative to the image size
    pub xint_max: f64,
    pub scale: f64,
    pub rotate: f64,
    pub aniso: f64,
    pub xfrac: f64,
    /// log2 standard deviation of isotropic scaling
    pub scale_std: f64,
    /// range of arbitrary rotation, 1 = full circle
    pub rotate_max: f64,
    /// log2 standard deviation of anisotropic scaling
    pub aniso_std: f64,
    /// standard deviation of fractional translation, relative to the image size
    pub xfrac_std: f64,
    pub brightness: f64,
    pub contrast: f64,
    pub lumaflip: f64,
    pub hue: f64,
    pub saturation: f64,
    pub brightness_std: f64,
    /// log2 standard deviation of contrast
    pub contrast_std: f64,
    /// range of hue rotation, 1 = full circle
    pub hue_max: f64,
    /// log2 standard deviation of saturation
    pub saturation_std: f64,
}

impl Default for AugmentPipe {
    /// Every transform off, the official ranges.
    fn default() -> Self {
        Self {
            xflip: 0.0,
            rotate90: 0.0,
            xint: 0.0,
            xint_max: 0.125,
            scale: 0.0,
            rotate: 0.0,
            aniso: 0.0,
            xfrac: 0.0,
            scale_std: 0.2,
            rotate_max: 1.0,
            aniso_std: 0.2,
            xfrac_std: 0.125,
            brightness: 0.0,
            contrast: 0.0,
            lumaflip: 0.0,
            hue: 0.0,
            saturation: 0.0,
            brightness_std: 0.2,
            contrast_std: 0.5,
            hue_max: 1.0,
            saturation_std: 1.0,
        }
    }
}

type M3 = [[f64; 3]; 3];
type M4 = [[f64; 4]; 4];

const I3: M3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
const I4: M4 = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];

fn mul3(a: &M3, b: &M3) -> M3 {
    let mut o = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            o[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    o
}

fn mul4(a: &M4, b: &M4) -> M4 {
    let mut o = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            o[i][j] = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    o
}

fn translate2d(tx: f64, ty: f64) -> M3 {
    [[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]
}

fn scale2d(sx: f64, sy: f64) -> M3 {
    [[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]]
}

fn rotate2d(theta: f64) -> M3 {
    let (s, c) = theta.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// A rotation by `k` quarter turns, with exact 0/±1 entries (so 90° rotations move whole pixels).
fn rotate90(k: u32) -> M3 {
    let (c, s) = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][k as usize % 4];
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn translate3d(t: f64) -> M4 {
    let mut m = I4;
    for row in m.iter_mut().take(3) {
        row[3] = t;
    }
    m
}

fn scale3d(s: f64) -> M4 {
    let mut m = I4;
    for (i, row) in m.iter_mut().enumerate().take(3) {
        row[i] = s;
    }
    m
}

/// The luma axis `[1, 1, 1, 0] / sqrt(3)`.
fn luma_axis() -> [f64; 4] {
    let a = 1.0 / 3f64.sqrt();
    [a, a, a, 0.0]
}

/// `v v^T`
fn outer(v: &[f64; 4]) -> M4 {
    let mut m = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            m[i][j] = v[i] * v[j];
        }
    }
    m
}

/// A rotation by `theta` about the unit axis `v` (Rodrigues), homogeneous.
fn rotate3d(v: &[f64; 4], theta: f64) -> M4 {
    let [x, y, z, _] = *v;
    let (s, c) = theta.sin_cos();
    let cc = 1.0 - c;
    [
        [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0.0],
        [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0.0],
        [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// Torch's `mode='reflect'` padding as an index map (the edge pixel is not repeated), for any
/// distance outside `0..len`.
fn reflect(i: i64, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as i64 - 1);
    let m = i.rem_euclid(period);
    (if m >= len as i64 { period - m } else { m }) as usize
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

impl AugmentPipe {
    /// The official presets: `blit` (x-flip, 90° rotations, integer translation), `geom`
    /// (scale, rotation, anisotropic scale, fractional translation), `color` (brightness,
    /// contrast, luma flip, hue, saturation), and their unions `bg` and `bgc` (the default).
    pub fn preset(name: &str) -> Result<Self> {
        let mut a = Self::default();
        let (blit, geom, color) = match name {
            "blit" => (true, false, false),
            "geom" => (false, true, false),
            "color" => (false, false, true),
            "bg" => (true, true, false),
            "bgc" => (true, true, true),
            other => bail!("unknown augmentation pipeline `{other}` (use blit, geom, color, bg or bgc)"),
        };
        if blit {
            (a.xflip, a.rotate90, a.xint) = (1.0, 1.0, 1.0);
        }
        if geom {
            (a.scale, a.rotate, a.aniso, a.xfrac) = (1.0, 1.0, 1.0, 1.0);
        }
        if color {
            (a.brightness, a.contrast, a.lumaflip, a.hue, a.saturation) = (1.0, 1.0, 1.0, 1.0, 1.0);
        }
        Ok(a)
    }

    /// The official default pipeline, `bgc`.
    pub fn bgc() -> Self {
        Self::preset("bgc").expect("bgc is a preset")
    }

    pub fn validate(&self) -> Result<()> {
        let all = [
            self.xflip, self.rotate90, self.xint, self.xint_max, self.scale, self.rotate, self.aniso, self.xfrac, self.scale_std,
            self.rotate_max, self.aniso_std, self.xfrac_std, self.brightness, self.contrast, self.lumaflip, self.hue,
            self.saturation, self.brightness_std, self.contrast_std, self.hue_max, self.saturation_std,
        ];
        ensure!(all.iter().all(|v| v.is_finite() && *v >= 0.0), "augmentation multipliers and ranges must be finite and non-negative");
        Ok(())
    }

    /// One inverse affine matrix per image (output pixel -> input pixel, in pixel units about
    /// the image centre), drawn as the official pipeline draws them. Identity where nothing
    /// was drawn.
    pub fn geometric_params(&self, n: usize, h: usize, w: usize, p: f64, rng: &mut ChaCha8Rng) -> Vec<M3> {
        let mut g = vec![I3; n];
        // for every transform: the values for all images, then whether each image gets it
        let gate = |rng: &mut ChaCha8Rng, prob: f64| -> Vec<bool> { (0..n).map(|_| rng.random::<f64>() < prob).collect() };
        if self.xflip > 0.0 {
            let i: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
            let on = gate(rng, self.xflip * p);
            for k in 0..n {
                if on[k] && i[k] {
                    g[k] = mul3(&g[k], &scale2d(-1.0, 1.0));
                }
            }
        }
        if self.rotate90 > 0.0 {
            let i: Vec<u32> = (0..n).map(|_| rng.random_range(0..4u32)).collect();
            let on = gate(rng, self.rotate90 * p);
            for k in 0..n {
                if on[k] && i[k] != 0 {
                    // rotate2d_inv(-pi/2 i) = rotate2d(pi/2 i)
                    g[k] = mul3(&g[k], &rotate90(i[k]));
                }
            }
        }
        if self.xint > 0.0 {
            let t: Vec<(f64, f64)> = (0..n).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * self.xint_max, (rng.random::<f64>() * 2.0 - 1.0) * self.xint_max)).collect();
            let on = gate(rng, self.xint * p);
            for k in 0..n {
                if on[k] {
                    g[k] = mul3(&g[k], &translate2d(-(t[k].0 * w as f64).round(), -(t[k].1 * h as f64).round()));
                }
            }
        }
        if self.scale > 0.0 {
            let s: Vec<f64> = (0..n).map(|_| (normal(rng) * self.scale_std).exp2()).collect();
            let on = gate(rng, self.scale * p);
            for k in 0..n {
                if on[k] {
                    g[k] = mul3(&g[k], &scale2d(1.0 / s[k], 1.0 / s[k]));
                }
            }
        }
        // P(pre or post rotation) = rotate * p
        let p_rot = 1.0 - (1.0 - self.rotate * p).clamp(0.0, 1.0).sqrt();
        let rotation = |g: &mut Vec<M3>, rng: &mut ChaCha8Rng| {
            let theta: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * std::f64::consts::PI * self.rotate_max).collect();
            let on = gate(rng, p_rot);
            for k in 0..n {
                if on[k] {
                    // rotate2d_inv(-theta) = rotate2d(theta)
                    g[k] = mul3(&g[k], &rotate2d(theta[k]));
                }
            }
        };
        if self.rotate > 0.0 {
            rotation(&mut g, rng);
        }
        if self.aniso > 0.0 {
            let s: Vec<f64> = (0..n).map(|_| (normal(rng) * self.aniso_std).exp2()).collect();
            let on = gate(rng, self.aniso * p);
            for k in 0..n {
                if on[k] {
                    g[k] = mul3(&g[k], &scale2d(1.0 / s[k], s[k]));
                }
            }
        }
        if self.rotate > 0.0 {
            rotation(&mut g, rng);
        }
        if self.xfrac > 0.0 {
            let t: Vec<(f64, f64)> = (0..n).map(|_| (normal(rng) * self.xfrac_std, normal(rng) * self.xfrac_std)).collect();
            let on = gate(rng, self.xfrac * p);
            for k in 0..n {
                if on[k] {
                    g[k] = mul3(&g[k], &translate2d(-t[k].0 * w as f64, -t[k].1 * h as f64));
                }
            }
        }
        g
    }

    /// One 4×4 colour matrix per image (`C @ [r, g, b, 1]`), drawn as the official pipeline
    /// draws them. Identity where nothing was drawn.
    pub fn color_params(&self, n: usize, p: f64, rng: &mut ChaCha8Rng) -> Vec<M4> {
        let mut c = vec![I4; n];
        let gate = |rng: &mut ChaCha8Rng, prob: f64| -> Vec<bool> { (0..n).map(|_| rng.random::<f64>() < prob).collect() };
        let v = luma_axis();
        let vv = outer(&v);
        if self.brightness > 0.0 {
            let b: Vec<f64> = (0..n).map(|_| normal(rng) * self.brightness_std).collect();
            let on = gate(rng, self.brightness * p);
            for k in 0..n {
                if on[k] {
                    c[k] = mul4(&translate3d(b[k]), &c[k]);
                }
            }
        }
        if self.contrast > 0.0 {
            let s: Vec<f64> = (0..n).map(|_| (normal(rng) * self.contrast_std).exp2()).collect();
            let on = gate(rng, self.contrast * p);
            for k in 0..n {
                if on[k] {
                    c[k] = mul4(&scale3d(s[k]), &c[k]);
                }
            }
        }
        if self.lumaflip > 0.0 {
            let i: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
            let on = gate(rng, self.lumaflip * p);
            // Householder reflection about the plane orthogonal to the luma axis
            let mut h = I4;
            for a in 0..4 {
                for b in 0..4 {
                    h[a][b] -= 2.0 * vv[a][b];
                }
            }
            for k in 0..n {
                if on[k] && i[k] {
                    c[k] = mul4(&h, &c[k]);
                }
            }
        }
        if self.hue > 0.0 {
            let theta: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * std::f64::consts::PI * self.hue_max).collect();
            let on = gate(rng, self.hue * p);
            for k in 0..n {
                if on[k] {
                    c[k] = mul4(&rotate3d(&v, theta[k]), &c[k]);
                }
            }
        }
        if self.saturation > 0.0 {
            let s: Vec<f64> = (0..n).map(|_| (normal(rng) * self.saturation_std).exp2()).collect();
            let on = gate(rng, self.saturation * p);
            for k in 0..n {
                if on[k] {
                    let mut m = vv;
                    for a in 0..4 {
                        for b in 0..4 {
                            m[a][b] += (I4[a][b] - vv[a][b]) * s[k];
                        }
                    }
                    c[k] = mul4(&m, &c[k]);
                }
            }
        }
        c
    }

    /// `x [N, 3, H, W]` in about [-1, 1] -> augmented `[N, 3, H, W]`, each transform applied
    /// with probability `p` times its multiplier. Differentiable in `x`; at `p = 0` it
    /// returns `x` itself (no op is recorded).
    pub fn apply(&self, x: Tensor<4>, p: f64, rng: &mut ChaCha8Rng) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        assert_eq!(c, 3, "the augmentation pipeline works on RGB images");
        let geom = self.geometric_params(n, h, w, p, rng);
        let x = if geom.iter().all(|g| *g == I3) { x } else { resample(x, &geom) }; // [N, 3, H, W]
        let col = self.color_params(n, p, rng);
        if col.iter().all(|m| *m == I4) {
            return x;
        }
        let device = x.device();
        let lin: Vec<f32> = col.iter().flat_map(|m| (0..3).flat_map(move |i| (0..3).map(move |j| m[i][j] as f32))).collect();
        let off: Vec<f32> = col.iter().flat_map(|m| (0..3).map(move |i| m[i][3] as f32)).collect();
        let lin = tensor_from(lin, [n, 3, 3], &device); // [N, 3, 3]
        let off = tensor_from(off, [n, 3, 1], &device); // [N, 3, 1]
        let y = lin.matmul(x.reshape([n, 3, h * w])) + off; // [N, 3, H*W]
        y.reshape([n, 3, h, w]) // [N, 3, H, W]
    }
}

/// Bilinear resampling of `x [N, C, H, W]` through one inverse affine per image (output pixel
/// about the centre -> input pixel about the centre), reflect padding: four gathers with host
/// indices, weighted by host bilinear weights. Whole-pixel maps (flips, 90° rotations, integer
/// shifts) copy pixels exactly.
fn resample(x: Tensor<4>, g_inv: &[M3]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let plane = h * w;
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut idx: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n * c * plane));
    let mut wts: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n * plane));
    for g in g_inv {
        let mut pidx: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(plane));
        for yy in 0..h {
            for xx in 0..w {
                let (xo, yo) = (xx as f64 - cx, yy as f64 - cy);
                let sx = g[0][0] * xo + g[0][1] * yo + g[0][2] + cx;
                let sy = g[1][0] * xo + g[1][1] * yo + g[1][2] + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let corners = [(x0, y0, (1.0 - fx) * (1.0 - fy)), (x0 + 1, y0, fx * (1.0 - fy)), (x0, y0 + 1, (1.0 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)];
                for (k, &(px, py, wt)) in corners.iter().enumerate() {
                    pidx[k].push((reflect(py, h) * w + reflect(px, w)) as i64);
                    wts[k].push(wt as f32);
                }
            }
        }
        for k in 0..4 {
            for _ in 0..c {
                idx[k].extend_from_slice(&pidx[k]);
            }
        }
    }
    let flat = x.reshape([n, c, plane]); // [N, C, H*W]
    let mut out: Option<Tensor<3>> = None;
    for (k, (ix, wt)) in idx.into_iter().zip(wts).enumerate() {
        // a corner whose weight is 0 everywhere (whole-pixel maps) adds nothing: skip it
        if k > 0 && wt.iter().all(|v| *v == 0.0) {
            continue;
        }
        let ix: Tensor<3, Int> = Tensor::from_data(TensorData::new(ix, [n, c, plane]), &device);
        let term = flat.clone().gather(2, ix) * tensor_from(wt, [n, 1, plane], &device); // [N, C, H*W]
        out = Some(match out {
            None => term,
            Some(o) => o + term,
        });
    }
    out.expect("the first corner is always sampled").reshape([n, c, h, w]) // [N, C, H, W]
}

/// ADA's settings: the pipeline and how `p` adapts (official `ada_target`, `ada_interval`,
/// `ada_kimg`, `augment_p`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaConfig {
    pub pipe: AugmentPipe,
    /// the wanted `E[sign(D(real))]` (official 0.6)
    pub target: f64,
    /// adjust `p` every this many minibatches (official 4)
    pub interval: u64,
    /// `p` can move by 1 in this many thousand images (official 500; 100 when transferring)
    pub kimg: f64,
    /// `p` at the start of the run (official `augment_p`, 0)
    pub initial_p: f64,
}

impl Default for AdaConfig {
    fn default() -> Self {
        Self { pipe: AugmentPipe::bgc(), target: 0.6, interval: 4, kimg: 500.0, initial_p: 0.0 }
    }
}

impl AdaConfig {
    pub fn validate(&self) -> Result<()> {
        self.pipe.validate()?;
        ensure!((0.0..=1.0).contains(&self.target), "the ADA target must be in [0, 1], not {}", self.target);
        ensure!(self.interval >= 1, "the ADA interval must be at least one minibatch");
        ensure!(self.kimg.is_finite() && self.kimg > 0.0, "--ada-kimg must be a positive number, not {}", self.kimg);
        ensure!((0.0..=1.0).contains(&self.initial_p), "the initial augmentation probability must be in [0, 1], not {}", self.initial_p);
        Ok(())
    }
}

/// ADA's running state: `p` and the signs of D's real logits since the last adjustment. Saved
/// in the checkpoint (`p` as its bits, the signs as integers), so a resumed run continues
/// exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdaState {
    pub p: f64,
    /// sum of `sign(D(real))` since the last adjustment
    pub sign_sum: i64,
    /// number of real logits since the last adjustment
    pub sign_n: u64,
}

/// One ADA step: `p + sign(r_t - target) * batch * interval / (kimg * 1000)`, clamped to
/// `[0, 1]` (`sign(0) = 0`).
pub fn ada_adjust(p: f64, r_t: f64, target: f64, batch: usize, interval: u64, kimg: f64) -> f64 {
    let d = r_t - target;
    let sign = if d > 0.0 { 1.0 } else if d < 0.0 { -1.0 } else { 0.0 };
    (p + sign * (batch as f64 * interval as f64) / (kimg * 1000.0)).clamp(0.0, 1.0)
}

impl AdaState {
    pub fn new(cfg: &AdaConfig) -> Self {
        Self { p: cfg.initial_p, sign_sum: 0, sign_n: 0 }
    }

    /// Records D's logits on a batch of (augmented) real images.
    pub fn observe(&mut self, real_logits: &[f32]) {
        for &l in real_logits {
            self.sign_sum += if l > 0.0 { 1 } else if l < 0.0 { -1 } else { 0 };
            self.sign_n += 1;
        }
    }

    /// `r_t = E[sign(D(real))]` since the last adjustment (`None` before any observation).
    pub fn r_t(&self) -> Option<f64> {
        (self.sign_n > 0).then(|| self.sign_sum as f64 / self.sign_n as f64)
    }

    /// Adjusts `p` from the observations since the last adjustment (none: `p` stays) and
    /// starts a new interval. Returns `r_t`.
    pub fn adjust(&mut self, cfg: &AdaConfig, batch: usize) -> Option<f64> {
        let r_t = self.r_t();
        if let Some(r) = r_t {
            self.p = ada_adjust(self.p, r, cfg.target, batch, cfg.interval, cfg.kimg);
        }
        self.sign_sum = 0;
        self.sign_n = 0;
        r_t
    }
}
