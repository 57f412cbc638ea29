//! Neural style transfer by image optimisation (Gatys, Ecker & Bethge 2016, "Image Style
//! Transfer Using Convolutional Neural Networks"), on limner's InceptionV3 instead of VGG.
//!
//! The image `x` (pixels in [0, 1]) is optimised with Adam (or L-BFGS), projected back onto
//! [0, 1] after every step, to minimise
//!
//! ```text
//! L(x) = style_weight   · mean_l ‖G_l(x) − G_l(s)‖² / ‖G_l(s)‖²      (Gram matrices, style layers)
//!      + content_weight · ‖F(x) − F(c)‖² / ‖F(c)‖²                   (one deeper layer)
//!      + tv_weight      · mean((x[i+1, j] − x[i, j])² + (x[i, j+1] − x[i, j])²)
//! ```
//!
//! where `G_l = F_l F_lᵀ / (H_l W_l)` for the `[C_l, H_l W_l]` activations `F_l`. Dividing each
//! term by the target's squared norm (instead of the paper's `1 / 4N²M²`) makes every layer
//! contribute about equally whatever its activation scale, so the default weights hold across
//! layers and image sizes.
//!
//! `preserve_colour` is the luminance-only transfer of Gatys et al. 2017 ("Controlling
//! Perceptual Factors in Neural Style Transfer", §5): style and content go to YIQ, the style's
//! luminance is matched to the content's mean and deviation, the transfer runs on luminance
//! alone (as grey images), and the result's luminance is recombined with the content's I and Q.

use anyhow::{ensure, Result};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use limner_nets::{InceptionV3, Tap};
use crate::picture::{host, Picture};

/// Where the optimisation starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// the content image (the usual choice: converges in far fewer steps)
    Content,
    /// uniform noise drawn from `seed` (the paper's start)
    Noise,
}

/// How the pixels are optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Adam with step size `lr` (pixel units), projected onto [0, 1] after each step
    Adam,
    /// L-BFGS (10 curvature pairs) with a backtracking Armijo line search on the projected
    /// path `clamp(x + t·d, 0, 1)`; `lr` is the largest pixel change of the very first step.
    /// Each step costs one or more forward + backward passes.
    Lbfgs,
}

/// Settings of one transfer. The defaults are the CLI's (`limner gatys`).
#[derive(Clone, Debug)]
pub struct GatysConfig {
    /// Adam steps
    pub steps: usize,
    /// longest side of the output (the content image is resized to it; so is the style image)
    pub size: usize,
    /// layers whose Gram matrices define the style
    pub style_layers: Vec<Tap>,
    /// the layer whose activations define the content
    pub content_layer: Tap,
    pub style_weight: f32,
    pub content_weight: f32,
    pub tv_weight: f32,
    /// Adam step size, in pixel units ([0, 1] range)
    pub lr: f64,
    /// transfer luminance only and keep the content's colours
    pub preserve_colour: bool,
    pub init: Init,
    pub optimizer: Optimizer,
    /// seeds the noise of [`Init::Noise`] (the content start has no randomness)
    pub seed: u64,
}

impl Default for GatysConfig {
    fn default() -> Self {
        Self {
            steps: 200,
            size: 256,
            style_layers: ["conv2d_2", "conv2d_4", "mixed0", "mixed1", "mixed2"].map(|n| n.parse().expect("layer")).to_vec(),
            content_layer: "mixed3".parse().expect("layer"),
            style_weight: 30.0,
            content_weight: 1.0,
            tv_weight: 10.0,
            lr: 0.02,
            preserve_colour: false,
            init: Init::Content,
            optimizer: Optimizer::Adam,
            seed: 0,
        }
    }
}

/// The terms of the loss, unweighted, and their weighted sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    /// mean over the style layers of `‖G(x) − G(s)‖² / ‖G(s)‖²`
    pub style: f32,
    /// `‖F(x) − F(c)‖² / ‖F(c)‖²`
    pub content: f32,
    pub tv: f32,
    pub total: f32,
}

/// Reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct GatysProgress {
    /// steps done (1 ..= steps)
    pub step: usize,
    pub steps: usize,
    /// the losses of the image before this step
    pub losses: Losses,
}

/// Style transfer with the fetched InceptionV3 (`limner models fetch --only inception-v3`).
pub fn stylize(content: &Picture, style: &Picture, cfg: &GatysConfig, progress: &mut dyn FnMut(&GatysProgress)) -> Result<Picture> {
    let net = InceptionV3::load_fetched(&Device::flex())?;
    stylize_with(&net, content, style, cfg, progress)
}

/// Style transfer with a loaded network (on the plain flex device; differentiated through its
/// autodiff copy).
pub fn stylize_with(net: &InceptionV3, content: &Picture, style: &Picture, cfg: &GatysConfig, progress: &mut dyn FnMut(&GatysProgress)) -> Result<Picture> {
    ensure!(cfg.steps > 0, "steps must be at least 1");
    ensure!(cfg.lr.is_finite() && cfg.lr > 0.0, "the learning rate must be a positive number, got {}", cfg.lr);
    for (name, w) in [("style", cfg.style_weight), ("content", cfg.content_weight), ("tv", cfg.tv_weight)] {
        ensure!(w.is_finite() && w >= 0.0, "the {name} weight must be a finite number ≥ 0, got {w}");
    }
    let content = content.fit_longest(cfg.size);
    let style = style.fit_longest(cfg.size);
    check_size(&content, cfg, "content")?;
    check_size(&style, cfg, "style")?;
    if !cfg.preserve_colour {
        let objective = Objective::new(net, &content, &style, cfg);
        return Ok(objective.run(start(&content, cfg), cfg, progress));
    }
    // luminance-only transfer: match the style's luminance statistics to the content's
    let [yc, i, q] = content.to_yiq();
    let [ys, _, _] = style.to_yiq();
    let (mc, sc) = mean_std(&yc);
    let (ms, ss) = mean_std(&ys);
    let ys: Vec<f32> = ys.iter().map(|v| ((v - ms) * sc / ss.max(1e-6) + mc).clamp(0.0, 1.0)).collect();
    let grey_content = Picture::grey(content.width, content.height, &yc);
    let grey_style = Picture::grey(style.width, style.height, &ys);
    let objective = Objective::new(net, &grey_content, &grey_style, cfg);
    let out = objective.run(start(&grey_content, cfg), cfg, progress);
    let [yo, _, _] = out.to_yiq();
    Ok(Picture::from_yiq(content.width, content.height, &[yo, i, q]))
}

/// The losses of `image` against `content` and `style` (all resized to `cfg.size` first), with
/// `cfg`'s layers and weights: what [`stylize`] minimises, for checks and reports.
pub fn losses(net: &InceptionV3, image: &Picture, content: &Picture, style: &Picture, cfg: &GatysConfig) -> Result<Losses> {
    let (image, content, style) = (image.fit_longest(cfg.size), content.fit_longest(cfg.size), style.fit_longest(cfg.size));
    check_size(&content, cfg, "content")?;
    check_size(&style, cfg, "style")?;
    let objective = Objective::new(net, &content, &style, cfg);
    let (losses, _) = objective.evaluate(&image.data, false);
    Ok(losses)
}

/// Both images must be large enough for the deepest layer to have at least one pixel.
fn check_size(p: &Picture, cfg: &GatysConfig, what: &str) -> Result<()> {
    let deepest = cfg.style_layers.iter().chain([&cfg.content_layer]).max().expect("a layer");
    let min = deepest.min_input_size();
    ensure!(
        p.width >= min && p.height >= min,
        "the {what} image is {}x{} px at --size {}: layer {deepest} needs at least {min} px on each side (raise --size)",
        p.width,
        p.height,
        cfg.size
    );
    Ok(())
}

fn start(content: &Picture, cfg: &GatysConfig) -> Vec<f32> {
    match cfg.init {
        Init::Content => content.data.clone(),
        Init::Noise => {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            (0..content.data.len()).map(|_| rng.random::<f32>()).collect()
        }
    }
}

fn mean_std(v: &[f32]) -> (f32, f32) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m as f32, var.sqrt() as f32)
}

/// `F Fᵀ / (H W)` of `[1, C, H, W]` activations: `[C, C]`.
fn gram(f: Tensor<4>) -> Tensor<2> {
    let [_, c, h, w] = f.dims();
    let f = f.reshape([c, h * w]); //                   [C, HW]
    f.clone().matmul(f.transpose()).div_scalar((h * w) as f64) // [C, C]
}

/// `mean((x[i+1, j] − x[i, j])² + (x[i, j+1] − x[i, j])²)` of `[1, 3, H, W]`.
fn total_variation(x: Tensor<4>) -> Tensor<1> {
    let [_, _, h, w] = x.dims();
    let dy = x.clone().slice([0..1, 0..3, 1..h, 0..w]) - x.clone().slice([0..1, 0..3, 0..h - 1, 0..w]); // [1, 3, H-1, W]
    let dx = x.clone().slice([0..1, 0..3, 0..h, 1..w]) - x.slice([0..1, 0..3, 0..h, 0..w - 1]); //       [1, 3, H, W-1]
    dy.square().mean() + dx.square().mean()
}

/// Reflection padding (px per side) of the image the network sees. Inception's stride-2
/// "valid" convs and pools skip the last row / column whenever a size is even, so without it
/// the bottom and right edge pixels get almost no gradient and Adam fills them with noise.
const EDGE_PAD: usize = 16;

/// `[1, 3, H, W] -> [1, 3, H + 2·EDGE_PAD, W + 2·EDGE_PAD]`, mirrored at the borders (at most
/// `size − 1` px, as reflection allows).
fn reflect_pad(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let p = EDGE_PAD.min(h - 1).min(w - 1);
    x.pad([(p, p), (p, p)], PadMode::Reflect)
}

/// The fixed targets and the network: evaluates the loss and its gradient for an image.
struct Objective {
    net: InceptionV3,
    taps: Vec<Tap>,
    /// per style layer: the Gram target and `1 / ‖G(s)‖²`
    style: Vec<(Tensor<2>, f64)>,
    /// content activations and `1 / ‖F(c)‖²`
    content: (Tensor<4>, f64),
    weights: (f32, f32, f32),
    shape: [usize; 4],
}

impl Objective {
    fn new(net: &InceptionV3, content: &Picture, style: &Picture, cfg: &GatysConfig) -> Self {
        let device = net.device();
        let net = net.autodiff();
        let mut taps = cfg.style_layers.clone();
        taps.push(cfg.content_layer);
        let inv_norm = |t: Tensor<1>| 1.0 / (t.into_scalar::<f32>() as f64).max(1e-12);
        let style_feats = net.forward_taps(reflect_pad(style.to_tensor(&device).autodiff()), &cfg.style_layers);
        let style = style_feats
            .into_iter()
            .map(|f| {
                let g = gram(f); //                                      [C, C]
                let n = inv_norm(g.clone().square().sum());
                (g, n)
            })
            .collect();
        let f = net.forward_taps(reflect_pad(content.to_tensor(&device).autodiff()), &[cfg.content_layer]).pop().expect("content"); // [1, C, H, W]
        let n = inv_norm(f.clone().square().sum());
        Self {
            net,
            taps,
            style,
            content: (f, n),
            weights: (cfg.style_weight, cfg.content_weight, cfg.tv_weight),
            shape: [1, 3, content.height, content.width],
        }
    }

    /// The losses at `x` (planar `[3, H, W]` pixels) and, if asked, their gradient.
    fn evaluate(&self, x: &[f32], want_grad: bool) -> (Losses, Option<Vec<f32>>) {
        let device = self.net.device();
        let mut xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), self.shape), &device);
        if want_grad {
            xt = xt.require_grad();
        }
        let mut feats = self.net.forward_taps(reflect_pad(xt.clone()), &self.taps);
        let content_feat = feats.pop().expect("content layer");
        let style: Tensor<1> = feats
            .into_iter()
            .zip(&self.style)
            .map(|(f, (target, inv))| (gram(f) - target.clone()).square().sum().mul_scalar(*inv))
            .reduce(|a, b| a + b)
            .expect("style layers")
            .div_scalar(self.style.len() as f64);
        let content = (content_feat - self.content.0.clone()).square().sum().mul_scalar(self.content.1);
        let tv = total_variation(xt.clone());
        let (sw, cw, tw) = self.weights;
        let total = style.clone().mul_scalar(sw) + content.clone().mul_scalar(cw) + tv.clone().mul_scalar(tw);
        let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>();
        let losses = Losses { style: scalar(&style), content: scalar(&content), tv: scalar(&tv), total: scalar(&total) };
        let grad = want_grad.then(|| {
            let grads = total.backward();
            host(xt.grad(&grads).expect("the image is tracked"))
        });
        (losses, grad)
    }

    fn run(&self, x: Vec<f32>, cfg: &GatysConfig, progress: &mut dyn FnMut(&GatysProgress)) -> Picture {
        let x = match cfg.optimizer {
            Optimizer::Adam => self.adam(x, cfg, progress),
            Optimizer::Lbfgs => self.lbfgs(x, cfg, progress),
        };
        let [_, _, height, width] = self.shape;
        Picture { width, height, data: x }
    }

    /// L-BFGS (Nocedal & Wright, Algorithm 7.4: the two-loop recursion) with a projected
    /// backtracking line search.
    fn lbfgs(&self, mut x: Vec<f32>, cfg: &GatysConfig, progress: &mut dyn FnMut(&GatysProgress)) -> Vec<f32> {
        const HISTORY: usize = 10;
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let (mut losses, g) = self.evaluate(&x, true);
        let mut g: Vec<f64> = g.expect("gradient").iter().map(|&v| v as f64).collect();
        let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default(); // (s, y, 1 / yᵀs)
        for step in 1..=cfg.steps {
            // d = −H g by the two-loop recursion
            let mut q = g.clone();
            let mut alphas = Vec::with_capacity(pairs.len());
            for (s, y, rho) in pairs.iter().rev() {
                let a = rho * dot(s, &q);
                q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
                alphas.push(a);
            }
            let gamma = match pairs.back() {
                Some((s, y, _)) => dot(s, y) / dot(y, y),
                // first step: the largest pixel change is `lr`
                None => cfg.lr / g.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12),
            };
            q.iter_mut().for_each(|v| *v *= gamma);
            for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
                let b = rho * dot(y, &q);
                q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
            }
            let d: Vec<f64> = q.iter().map(|v| -v).collect();
            // backtracking on the projected path until Armijo's sufficient decrease holds
            let mut t = 1.0f64;
            let mut accepted = None;
            for _ in 0..10 {
                let xn: Vec<f32> = x.iter().zip(&d).map(|(xi, di)| (*xi as f64 + t * di).clamp(0.0, 1.0) as f32).collect();
                let decrease: f64 = xn.iter().zip(&x).zip(&g).map(|((a, b), gi)| (*a as f64 - *b as f64) * gi).sum();
                let (ln, gn) = self.evaluate(&xn, true);
                if (ln.total as f64) <= losses.total as f64 + 1e-4 * decrease && ln.total.is_finite() {
                    accepted = Some((xn, ln, gn.expect("gradient")));
                    break;
                }
                t *= 0.5;
            }
            let before = losses;
            let Some((xn, ln, gn)) = accepted else {
                // no decrease along this direction: forget the curvature and retry as gradient descent
                pairs.clear();
                progress(&GatysProgress { step, steps: cfg.steps, losses: before });
                continue;
            };
            let gn: Vec<f64> = gn.iter().map(|&v| v as f64).collect();
            let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| *a as f64 - *b as f64).collect();
            let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
            let ys = dot(&y, &s);
            if ys > 1e-12 {
                if pairs.len() == HISTORY {
                    pairs.pop_front();
                }
                pairs.push_back((s, y, 1.0 / ys));
            }
            (x, g, losses) = (xn, gn, ln);
            progress(&GatysProgress { step, steps: cfg.steps, losses: before });
        }
        x
    }

    /// Adam on the pixels, projected onto [0, 1] after each step.
    fn adam(&self, mut x: Vec<f32>, cfg: &GatysConfig, progress: &mut dyn FnMut(&GatysProgress)) -> Vec<f32> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut m = vec![0.0f64; x.len()];
        let mut v = vec![0.0f64; x.len()];
        for step in 1..=cfg.steps {
            let (losses, grad) = self.evaluate(&x, true);
            let g = grad.expect("gradient");
            let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
            for (((xi, gi), mi), vi) in x.iter_mut().zip(&g).zip(&mut m).zip(&mut v) {
                let gi = *gi as f64;
                *mi = b1 * *mi + (1.0 - b1) * gi;
                *vi = b2 * *vi + (1.0 - b2) * gi * gi;
                let upd = cfg.lr * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                *xi = (*xi as f64 - upd).clamp(0.0, 1.0) as f32;
            }
            progress(&GatysProgress { step, steps: cfg.steps, losses });
        }
        x
    }
}
