//! Projection (GAN inversion): find the `w+` whose render looks like a photo, so a real face
//! can be bred, slid and animated like any other. The photo is found and FFHQ-aligned with
//! face-api ([`align_photo`], as `limner dataset build --align` frames faces), then
//! optimised with Adam from `w_avg`: first one `w` for every layer, then every layer's own
//! (`w+`), minimising a perceptual distance (any [`PerceptualDistance`], e.g.
//! `limner_nets::perceptual`) plus pixel L1 plus `reg · ‖w − w_avg‖²` (keeps `w` where the
//! mapping network puts faces). It starts from `w_avg` or from a given `w` (the
//! [`crate::encoder`]'s guess).
//! Renders without per-pixel noise (noise 0), so the recipe re-renders exactly.

use std::ops::ControlFlow;

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::Tensor;
use limner_core::{tensor_from, to_vec, PerceptualDistance};
use limner_faces::describe::FaceAnalyzer;
use limner_faces::Image;

use crate::model::{Model, WPlus};

/// How to project.
#[derive(Clone, Debug)]
pub struct ProjectOptions {
    pub steps: usize,
    /// optimise per-layer `w`s in the second half
    pub w_plus: bool,
    pub lr: f32,
    /// weight of the pixel L1 term (images in [-1, 1])
    pub l1: f32,
    /// weight of `mean((w − w_avg)²)`
    pub reg: f32,
    /// where to start (one `w`, e.g. the [`crate::encoder`]'s guess); `None` = `w_avg`
    pub start: Option<Vec<f32>>,
}

impl Default for ProjectOptions {
    fn default() -> Self {
        Self { steps: 300, w_plus: true, lr: 0.05, l1: 0.3, reg: 0.001, start: None }
    }
}

/// A projection's result.
pub struct Projected {
    pub ws: WPlus,
    pub image: Image,
    /// the perceptual distance of the start (`w_avg` or the given start) and of the result
    pub start_distance: f32,
    pub distance: f32,
}

/// 0..255 HWC image → `[1, 3, S, S]` in [-1, 1].
pub fn image_tensor(img: &Image, device: &burn::tensor::Device) -> Tensor<4> {
    let s = img.width;
    let plane = s * s;
    let mut chw = vec![0f32; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            chw[c * plane + p] = img.data[p * 3 + c] / 127.5 - 1.0;
        }
    }
    tensor_from(chw, [1, 3, s, s], device)
}

/// Finds the largest face in `photo` and aligns it FFHQ-style to `size`²; says how many
/// faces there were. A photo without a face is an error.
pub fn align_photo(fa: &FaceAnalyzer, photo: &Image, size: usize) -> Result<(Image, usize)> {
    ensure!(photo.width >= 16 && photo.height >= 16, "the photo is {}×{} px: too small to find a face in (at least 16×16)", photo.width, photo.height);
    let boxes = fa.detect(std::slice::from_ref(photo)).pop().unwrap_or_default();
    let Some(&(_, rect)) = boxes.iter().max_by(|a, b| (a.1.width * a.1.height).total_cmp(&(b.1.width * b.1.height))) else {
        bail!("no face found in the photo (face-api's detector): use a photo with one clearly visible face");
    };
    let lm = fa.landmarks(&[(photo, rect)]).pop().flatten().context("the face found has no landmarks (too small or cut off?)")?;
    Ok((limner_faces::align::align(photo, &lm, size), boxes.len()))
}

/// Projects an aligned face (`target`, the model's size) onto `m`. `progress(step, distance)`.
pub fn project(m: &dyn Model, target: &Image, dist: &dyn PerceptualDistance, o: &ProjectOptions, progress: &mut dyn FnMut(usize, f32)) -> Result<Projected> {
    project_steps(m, target, dist, o, &mut |s: &Step| {
        progress(s.step, s.distance);
        ControlFlow::Continue(())
    })
}

/// Where a projection is after one step (what [`project_steps`] reports).
pub struct Step<'a> {
    /// steps done, 1 ..= steps
    pub step: usize,
    pub steps: usize,
    /// the perceptual distance of this step's `w+` (before its update)
    pub distance: f32,
    params: &'a [f32],
    rows: usize,
    per_layer: bool,
}

impl Step<'_> {
    /// The `w+` reached so far (after this step's update), e.g. to render a preview.
    pub fn ws(&self) -> WPlus {
        if self.per_layer {
            WPlus { rows: self.rows, dim: self.params.len() / self.rows, data: self.params.to_vec() }
        } else {
            WPlus::broadcast(self.params, self.rows)
        }
    }
}

/// The error of a projection stopped by its caller ([`project_steps`]' callback breaking).
#[derive(Debug)]
pub struct Cancelled {
    pub step: usize,
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the projection was cancelled after {} steps", self.step)
    }
}

impl std::error::Error for Cancelled {}

/// [`project`], reporting every step (with its `w+`, for previews); the callback returns
/// `ControlFlow::Break(())` to stop, and the projection then fails with [`Cancelled`].
pub fn project_steps(m: &dyn Model, target: &Image, dist: &dyn PerceptualDistance, o: &ProjectOptions, on_step: &mut dyn FnMut(&Step) -> ControlFlow<()>) -> Result<Projected> {
    ensure!(target.width == m.size() && target.height == m.size(), "the aligned photo is {}×{}, model `{}` makes {}px", target.width, target.height, m.id().name, m.size());
    ensure!(o.steps <= 100_000, "--steps {}: at most 100000", o.steps);
    ensure!(o.steps >= 1 || o.start.is_some(), "--steps 0 needs a start (an encoder's guess)");
    ensure!(o.lr.is_finite() && o.lr > 0.0, "the learning rate must be a positive number");
    let device = m.device();
    let (rows, dim) = (m.num_ws(), m.w_dim());
    let avg = m.w_avg();
    let t = image_tensor(target, &device);
    // parameters: one w (first phase), then rows × w
    let mut params: Vec<f32> = match &o.start {
        Some(w) => {
            ensure!(w.len() == dim && w.iter().all(|v| v.is_finite()), "the start w has {} values (model `{}` takes {dim}) or is not finite", w.len(), m.id().name);
            w.clone()
        }
        None => avg.clone(),
    };
    if o.steps == 0 {
        let ws = WPlus::broadcast(&params, rows);
        let image = m.render(std::slice::from_ref(&ws), &[0], 0.0).pop().expect("one");
        let d = to_vec(&dist.distance(image_tensor(&image, &device).autodiff(), t))[0];
        return Ok(Projected { ws, image, start_distance: d, distance: d });
    }
    let dm = m.differentiable()?;
    let (mut mom, mut vel) = (vec![0f32; dim], vec![0f32; dim]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let switch = if o.w_plus { o.steps / 2 } else { o.steps };
    let mut per_layer = false;
    let mut start_distance = f32::NAN;
    let mut adam_t = 0i32;
    for step in 0..o.steps {
        if step == switch && !per_layer {
            per_layer = true;
            params = params.repeat(rows);
            mom = vec![0.0; rows * dim];
            vel = vec![0.0; rows * dim];
            adam_t = 0;
        }
        let p = tensor_from(params.clone(), [1, params.len()], &device).autodiff().require_grad();
        let ws = if per_layer { p.clone().reshape([1, rows, dim]) } else { p.clone().reshape([1, 1, dim]).repeat_dim(1, rows) };
        let img = dm.synthesize(ws, &[0], 0.0);
        let perc = dist.distance(img.clone(), t.clone());
        let l1 = (img - t.clone().autodiff()).abs().mean();
        let loss = perc.clone() + l1.mul_scalar(o.l1);
        let d = to_vec(&perc)[0];
        ensure!(d.is_finite(), "the projection diverged (distance {d}) at step {step}: try a smaller learning rate");
        if step == 0 {
            start_distance = d;
        }
        let grads = loss.backward();
        let g = to_vec(&p.grad(&grads).context("no gradient reached w")?);
        adam_t += 1;
        let n = params.len() as f32;
        for i in 0..params.len() {
            let gi = g[i] + o.reg * 2.0 * (params[i] - avg[i % dim]) / n;
            mom[i] = b1 * mom[i] + (1.0 - b1) * gi;
            vel[i] = b2 * vel[i] + (1.0 - b2) * gi * gi;
            let mh = mom[i] / (1.0 - b1.powi(adam_t));
            let vh = vel[i] / (1.0 - b2.powi(adam_t));
            params[i] -= o.lr * mh / (vh.sqrt() + eps);
        }
        let s = Step { step: step + 1, steps: o.steps, distance: d, params: &params, rows, per_layer };
        if on_step(&s).is_break() {
            return Err(Cancelled { step: step + 1 }.into());
        }
    }
    let ws = if per_layer { WPlus { rows, dim, data: params } } else { WPlus::broadcast(&params, rows) };
    ensure!(ws.is_finite(), "the projection diverged (non-finite w)");
    let image = m.render(std::slice::from_ref(&ws), &[0], 0.0).pop().expect("one");
    // the final distance, measured on the result
    let out = to_vec(&dist.distance(image_tensor(&image, &device).autodiff(), t))[0];
    Ok(Projected { ws, image, start_distance, distance: out })
}

/// face-api's identity distance between two faces (128-d descriptors; < 0.6 is "the same
/// person" to face-api): the largest face of each; `None` where one has no face.
pub fn identity_distance(fa: &FaceAnalyzer, a: &Image, b: &Image) -> Option<f32> {
    let found = fa.analyze(&[a.clone(), b.clone()]);
    let desc = |faces: &Vec<limner_faces::Face>| {
        faces.iter().max_by(|x, y| (x.rect.width * x.rect.height).total_cmp(&(y.rect.width * y.rect.height))).and_then(|f| f.attributes.descriptor.clone())
    };
    let (da, db) = (desc(&found[0])?, desc(&found[1])?);
    Some(da.iter().zip(&db).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt())
}

/// Side by side: `a | b` (same height).
pub fn side_by_side(a: &Image, b: &Image) -> Image {
    let h = a.height.min(b.height);
    let w = a.width + b.width;
    let mut data = vec![0f32; w * h * 3];
    for y in 0..h {
        data[y * w * 3..(y * w + a.width) * 3].copy_from_slice(&a.data[y * a.width * 3..(y + 1) * a.width * 3]);
        data[(y * w + a.width) * 3..(y + 1) * w * 3].copy_from_slice(&b.data[y * b.width * 3..(y + 1) * b.width * 3]);
    }
    Image { width: w, height: h, data }
}

