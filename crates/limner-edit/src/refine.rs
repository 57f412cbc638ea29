//! Age that keeps the person: a per-seed optimisation of `w+` by gradient, through the
//! model's differentiable path ([`Model::differentiable`]) and face-api's own networks loaded
//! on burn's autodiff device (age/gender, expression, identity). It starts where the linear
//! search ([`crate::prompt`]) left a seed and minimises
//!
//! - a hinge on face-api's age: `max(0, aim − age) / 10` for an older face (`age − aim` for a
//!   younger one), the aim inside the asked band ([`crate::prompt::steering_range`]) or
//!   given ([`RefineConfig::age_aim`], `--refine-aim`);
//! - `identity_weight · max(0, d − identity_margin)`, `d` face-api's identity distance
//!   (128-d descriptor, Euclidean) to the unsteered face;
//! - hinges that keep the other asked targets (gender at P ≥ 0.85, the asked expression's
//!   probability at ≥ 0.7), and `prior · mean((w+ − start)²)`, which keeps `w+` near the
//!   point the linear search reached (where the generator makes faces);
//! - with [`RefineConfig::head_scale`]: the same age hinge on face-api's reading of the face's
//!   box enlarged about its centre (hair, neck and the head's outline in view, as people and
//!   the independent judge's 1.4× box see a face; the aligned box is the inner face only);
//! - with [`RefineConfig::gender_floor`]: a hinge on the asked gender's log-odds on every crop
//!   read (face-api's probability is flat at 0.97+, where FaceRes read many aged women male);
//! - with [`RefineConfig::expression_hold`]: a hinge keeping the asked expression's log-odds
//!   (from the expression network's logits) where the search left them, so restoring the person
//!   does not take the smile back (its probability, 0.99+ on most portraits, gave no handle).
//!
//! With [`RefineConfig::passes`] > 1, a seed that the report's measurement (face-api finding the
//! refined face again) still reads as another person is refined again on the crops found there.
//!
//! The attribute readings are the mean over the crop and its mirror image; the gradient's
//! component along the age direction is removed in every row ([`RefineConfig::lock_age`]), so
//! the person is pulled back by the other directions while the linear age move stays. Adam,
//! at most `steps` steps, stopping at the first that meets the targets under `stop_below`.
//!
//! Measured (README, "Refined age"): the person comes back under 0.6 on most seeds, but the
//! independent judge reads the refined faces younger than the linear search's: whatever
//! face-api's recognition network sees as "another person" in an aged face is much of what
//! FaceRes reads as age, while face-api's age network keeps reading them old.
//!
//! The crops are face-api's, fixed from the start image (the aligned box for the attribute
//! networks, dlib's box for the identity network), applied as two interpolation matrices
//! ([`crop_matrices`]) that reproduce `Image::crop` + `face_input` (centred square padding,
//! TF's bilinear resize): the in-graph readings are the pipeline's, up to the rendered
//! image's rounding. Only face-api steers: the independent judge (human-models) never enters
//! the loss.

use anyhow::{ensure, Context, Result};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use limner_core::{tensor_from, to_vec};
use limner_faces::describe::{FaceAnalyzer, Rect};
use limner_faces::Image;

use crate::model::{Model, WPlus};

/// Settings of the refinement.
#[derive(Clone, Debug)]
pub struct RefineConfig {
    /// Adam steps per seed
    pub steps: usize,
    /// Adam's learning rate, in `w` units
    pub lr: f32,
    /// weight of the identity hinge (per unit of face-api identity distance)
    pub identity_weight: f32,
    /// identity distance under which the identity term is zero (below the 0.6 "same person")
    pub identity_margin: f32,
    /// weight of `mean((w+ − start)²)`
    pub prior: f32,
    /// stop at the first step that meets the targets with an identity distance under this
    pub stop_below: f32,
    /// keep the age direction's component of `w+` where the linear search put it
    /// ([`RefineTarget::locked`])
    pub lock_age: bool,
    /// face-api age the refinement pulls an older (younger) face to, met from 3 years short
    /// of it; `None`: 3 years inside the asked band's steering range
    /// ([`crate::prompt::steering_range`]), as the linear search aims, met from the range's edge
    pub age_aim: Option<f32>,
    /// also read face-api's age on the aligned box enlarged by this factor about its centre
    /// (hair, neck and the head's outline in view, as a person and the independent judge's
    /// 1.4× BlazeFace box see them) and hold that reading to the aim too; `None`: off
    pub head_scale: Option<f32>,
    /// with a (non-negated) expression asked: weight of a hinge keeping face-api's log-odds of
    /// it at least where the search left it (the probability itself saturates at 0.99+ on most
    /// portraits, so its hinge does not stop the person's restoration from undoing a smile); 0: off
    pub expression_hold: f32,
    /// refinement passes per seed: after each, face-api finds the refined face again and, where
    /// its identity distance (as the report measures it, on the crops found there) is still 0.6
    /// or more, the next pass refines from there on those crops (1: the start image's crops only)
    pub passes: usize,
    /// with a gender asked: also hold face-api's log-odds of it at `logit(floor)` or more on
    /// every crop read (aligned, and head with `head_scale`); `None`: only the P ≥ 0.85 hinge
    pub gender_floor: Option<f32>,
}

impl Default for RefineConfig {
    fn default() -> Self {
        Self { steps: 10, lr: 0.01, identity_weight: 10.0, identity_margin: 0.56, prior: 1.0, stop_below: 0.59, lock_age: true, age_aim: None, head_scale: Some(1.5), expression_hold: 1.0, passes: 2, gender_floor: Some(0.97) }
    }
}

/// What one seed's refinement aims at.
#[derive(Clone, Debug)]
pub struct RefineTarget {
    /// face-api age to reach (in years) and the side: `+1` older than `age_aim`, `−1` younger
    pub age_aim: f32,
    pub age_sign: f32,
    /// the lowest (highest, for `age_sign` −1) face-api age that counts as met
    pub age_met: f32,
    /// `Some(true)`: keep P(male) ≥ 0.85; `Some(false)`: ≤ 0.15
    pub male: Option<bool>,
    /// face-api expression index whose probability is kept ≥ 0.7 (or, `negate`, ≤ 0.3)
    pub expression: Option<(usize, bool)>,
    /// the unsteered face's identity descriptor (face-api, dlib crop)
    pub descriptor: Vec<f32>,
    /// the attribute crop (face-api's aligned box) and the identity crop (dlib's box), in the
    /// rendered image's pixels
    pub attribute_rect: Rect,
    pub identity_rect: Rect,
    /// a `w` direction (the age direction) whose component, in every row, the refinement keeps
    /// where the linear search put it: the gradient's component along it is removed, so the
    /// person is restored by the other directions and the age move stays
    pub locked: Option<Vec<f32>>,
}

/// One step's in-graph reading.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RefineStep {
    pub age: f32,
    /// face-api's age on the head crop ([`RefineConfig::head_scale`])
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_age: Option<f32>,
    pub identity: f32,
    pub loss: f32,
}

/// A refined seed: the `w+` kept and every step's reading.
#[derive(Clone, Debug)]
pub struct Refined {
    pub w: WPlus,
    /// the step kept (0: the start)
    pub kept: usize,
    pub trace: Vec<RefineStep>,
}

/// Row-major `[out, size]` matrix of `Image::crop(x, y, w, h)` then `face_input(out)` along one
/// axis of an image `size` pixels long: the crop `[c0, c0 + len)`, padded to `side` with
/// `before` zeros first, resized to `out` by TF's bilinear rule (output `i` samples
/// `i · side / out`, no half-pixel shift).
fn axis_matrix(size: usize, c0: usize, len: usize, side: usize, before: usize, out: usize) -> Vec<f32> {
    let mut m = vec![0f32; out * size];
    let s = side as f64 / out as f64;
    for i in 0..out {
        let f = i as f64 * s;
        let k0 = f.floor() as usize;
        let k1 = (f.ceil() as usize).min(side - 1);
        let d = (f - k0 as f64) as f32;
        for (k, wgt) in [(k0, 1.0 - d), (k1, d)] {
            // square index k holds crop index k − before (zero padding outside the crop)
            if wgt != 0.0 && k >= before && k - before < len {
                m[i * size + c0 + k - before] += wgt;
            }
        }
    }
    m
}

/// The two matrices (`[out, H]` for rows, `[out, W]` for columns) that take a `width`×`height`
/// image to face-api's `out`² input of the crop `r`: `Image::crop` (clipped to the image),
/// `pad_to_square(true)`, `resize_bilinear(out, out)`. `None` where the crop is empty.
pub fn crop_matrices(width: usize, height: usize, r: Rect, out: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let probe = Image { width, height, data: vec![] };
    let (cx, cy, w, h) = probe.crop_rect(r.x, r.y, r.width, r.height)?;
    let side = w.max(h);
    let diff = side - w.min(h);
    let after = (diff as f64 * 0.5).round() as usize;
    let before = diff - after;
    let (bx, by) = if w < h { (before, 0) } else { (0, before) };
    Some((axis_matrix(height, cy, h, side, by, out), axis_matrix(width, cx, w, side, bx, out)))
}

/// `x` `[N, C, H, W]` → `[N, C, out, out]`: `rows` `[out, H]`, `cols` `[out, W]` (from
/// [`crop_matrices`]). Differentiable (two matrix products).
pub fn apply_crop(x: Tensor<4>, rows: &[f32], cols: &[f32], out: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let ct: Tensor<2> = tensor_from(cols.to_vec(), [out, w], &device).transpose(); //  [W, out]
    let rt: Tensor<2> = tensor_from(rows.to_vec(), [out, h], &device).transpose(); //  [H, out]
    let y = x.reshape([n * c * h, w]).matmul(ct).reshape([n, c, h, out]); //         [N, C, H, out]
    let y = y.swap_dims(2, 3).reshape([n * c * out, h]).matmul(rt).reshape([n, c, out, out]); // [N, C, out(x), out(y)]
    y.swap_dims(2, 3) //                                                               [N, C, out, out]
}

/// One step's in-graph reading of a rendered image (see [`read`]).
struct Reading {
    /// `[1]` face-api's age on the aligned crop (mean with its mirror image)
    age: Tensor<1>,
    /// `[1]` face-api's age on the head crop ([`RefineConfig::head_scale`]), when on
    head_age: Option<Tensor<1>>,
    /// `[1]` P(male), aligned crop
    male: Tensor<1>,
    /// `[1]` P(male) on the head crop, when on
    head_male: Option<Tensor<1>>,
    /// `[1, 7]` expression probabilities and logits, aligned crop
    expressions: Tensor<2>,
    expression_logits: Tensor<2>,
    /// `[1]` identity distance to the target's descriptor
    identity: Tensor<1>,
}

/// The differentiable reading of rendered images `[1, 3, S, S]` in [-1, 1].
fn read(fa: &FaceAnalyzer, img: Tensor<4>, t: &RefineTarget, crops: &Crops) -> Reading {
    let device = img.device();
    let x = img.add_scalar(1.0).mul_scalar(127.5).clamp(0.0, 255.0); // [1, 3, S, S] 0..255
    // the crop and its mirror image in one batch, their readings averaged: a reading that only
    // one of them gives is not a face that looks older
    let size = limner_faces::describe::FACE_SIZE;
    let mut inputs = vec![apply_crop(x.clone(), &crops.attr.0, &crops.attr.1, size), apply_crop(x.clone(), &crops.attr.0, &crops.mirror, size)];
    if let Some((rows, cols, mirror)) = &crops.head {
        inputs.push(apply_crop(x.clone(), rows, cols, size));
        inputs.push(apply_crop(x.clone(), rows, mirror, size));
    }
    let a = fa.attribute_tensors(Tensor::cat(inputs, 0)); // [2 or 4] readings
    let pair = |v: Tensor<1>, i: usize| v.slice_dim(0, i..i + 2).mean(); // [1]
    let rec = fa.recognition.as_ref().expect("checked by refine");
    let id = apply_crop(x, &crops.id.0, &crops.id.1, limner_faces::recognition::INPUT_SIZE);
    let d = rec.forward(id); // [1, 128]
    let target: Tensor<2> = tensor_from(t.descriptor.clone(), [1, t.descriptor.len()], &device);
    let identity = (d - target).square().sum_dim(1).add_scalar(1e-8).sqrt().reshape([1]);
    Reading {
        age: pair(a.age.clone(), 0),
        head_age: crops.head.as_ref().map(|_| pair(a.age, 2)),
        head_male: crops.head.as_ref().map(|_| pair(a.male.clone(), 2)),
        male: pair(a.male, 0),
        expressions: a.expressions.slice_dim(0, 0..2).mean_dim(0),
        expression_logits: a.expression_logits.slice_dim(0, 0..2).mean_dim(0),
        identity,
    }
}

/// `r` scaled by `f` about its centre.
fn enlarge(r: Rect, f: f32) -> Rect {
    let (cx, cy) = (r.x + r.width / 2.0, r.y + r.height / 2.0);
    Rect { x: cx - r.width * f / 2.0, y: cy - r.height * f / 2.0, width: r.width * f, height: r.height * f }
}

/// `[1, 7]` logits → `[1]` the margin of expression `k` over the others: `z_k − log Σ_{j≠k} e^{z_j}`
/// (the log-odds of its probability, which does not saturate as the probability does).
fn expression_margin(z: Tensor<2>, k: usize) -> Tensor<1> {
    let zk = z.clone().slice_dim(1, k..k + 1).reshape([1]);
    let others: Vec<Tensor<2>> = (0..limner_faces::expression::EXPRESSIONS.len()).filter(|&j| j != k).map(|j| z.clone().slice_dim(1, j..j + 1)).collect();
    let o = Tensor::cat(others, 1); // [1, 6]
    let m = o.clone().max_dim(1).detach(); // [1, 1]
    let lse = (o - m.clone()).exp().sum_dim(1).log().add(m).reshape([1]);
    zk - lse
}

/// A `[out, size]` column matrix ([`crop_matrices`]) with its output columns reversed: the crop
/// mirrored left to right.
fn mirrored(cols: &[f32], size: usize) -> Vec<f32> {
    cols.chunks(size).rev().flatten().copied().collect()
}

struct Crops {
    attr: (Vec<f32>, Vec<f32>),
    /// `attr.1` with its output columns reversed (the crop mirrored left to right)
    mirror: Vec<f32>,
    id: (Vec<f32>, Vec<f32>),
    /// the head crop's rows, columns and mirrored columns ([`RefineConfig::head_scale`])
    head: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
}

/// Refines one seed's `start` `w+` (see the module). `dm`: the model's differentiable copy;
/// `fa`: face-api loaded on `dm`'s (autodiff) device with descriptors. Keeps the step with the
/// smallest identity distance among those that meet the age (`age_met`) and the other targets
/// by the in-graph reading, else the one with the smallest loss; stops early at a step that
/// meets them under `stop_below`.
pub fn refine(dm: &dyn Model, fa: &FaceAnalyzer, seed: u64, noise: f32, start: &WPlus, t: &RefineTarget, cfg: &RefineConfig) -> Result<Refined> {
    ensure!(fa.recognition.is_some(), "refining age needs face-api's recognition network (descriptors)");
    start.check(dm)?;
    let device: Device = dm.device();
    let s = dm.size();
    let attr = crop_matrices(s, s, t.attribute_rect, limner_faces::describe::FACE_SIZE).context("the face's box lies outside the image")?;
    let mirror = mirrored(&attr.1, s);
    let crops = Crops {
        attr,
        mirror,
        id: crop_matrices(s, s, t.identity_rect, limner_faces::recognition::INPUT_SIZE).context("the face's identity box lies outside the image")?,
        head: match cfg.head_scale {
            Some(f) => {
                let (rows, cols) = crop_matrices(s, s, enlarge(t.attribute_rect, f), limner_faces::describe::FACE_SIZE).context("the face's head box lies outside the image")?;
                let mirror = mirrored(&cols, s);
                Some((rows, cols, mirror))
            }
            None => None,
        },
    };
    let (rows, dim) = (start.rows, start.dim);
    let n = rows * dim;
    let mut params = start.data.clone();
    let (mut mom, mut vel) = (vec![0f32; n], vec![0f32; n]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut trace = vec![];
    let mut states: Vec<Vec<f32>> = vec![];
    let mut met: Vec<bool> = vec![];
    let mut hold: Option<f32> = None;
    for step in 0..=cfg.steps {
        let p = tensor_from(params.clone(), [1, n], &device).require_grad();
        let img = dm.synthesize(p.clone().reshape([1, rows, dim]), &[seed], noise);
        let r = read(fa, img, t, &crops);
        let hinge_age = |age: Tensor<1>| relu((age.neg().add_scalar(t.age_aim)).mul_scalar(t.age_sign)).div_scalar(10.0);
        let mut loss = hinge_age(r.age.clone()) + relu(r.identity.clone().sub_scalar(cfg.identity_margin)).mul_scalar(cfg.identity_weight);
        let head = r.head_age.as_ref().map(|h| to_vec(h)[0]);
        if let Some(h) = r.head_age.clone() {
            loss = loss + hinge_age(h);
        }
        let mut others_met = true;
        if let Some(m) = t.male {
            let p_asked = if m { r.male.clone() } else { r.male.clone().neg().add_scalar(1.0) };
            others_met &= to_vec(&p_asked)[0] >= 0.75;
            loss = loss + relu(p_asked.neg().add_scalar(0.85)).mul_scalar(2.0);
            if let Some(floor) = cfg.gender_floor {
                // the asked gender's log-odds at least logit(floor), on every crop read: the
                // probability's own hinge is flat once face-api is sure
                let lf = (floor / (1.0 - floor)).ln();
                let asked = |p: Tensor<1>| if m { p } else { p.neg().add_scalar(1.0) };
                for p in std::iter::once(r.male.clone()).chain(r.head_male.clone()) {
                    let q = asked(p).clamp(1e-6, 1.0 - 1e-6);
                    let logodds = q.clone().log() - q.neg().add_scalar(1.0).log();
                    loss = loss + relu(logodds.neg().add_scalar(lf)).mul_scalar(0.5);
                }
            }
        }
        if let Some((k, negate)) = t.expression {
            let pk = r.expressions.clone().slice_dim(1, k..k + 1).reshape([1]);
            let v = to_vec(&pk)[0];
            if negate {
                others_met &= v < 0.5;
                loss = loss + relu(pk.sub_scalar(0.3)).mul_scalar(2.0);
            } else {
                others_met &= v >= 0.55;
                loss = loss + relu(pk.neg().add_scalar(0.7)).mul_scalar(2.0);
                if cfg.expression_hold > 0.0 {
                    // the expression at least as strong (in log-odds) as the search left it
                    let m = expression_margin(r.expression_logits.clone(), k);
                    let mv = to_vec(&m)[0];
                    let m0 = *hold.get_or_insert(mv);
                    others_met &= mv >= m0 - 1.0;
                    loss = loss + relu(m.neg().add_scalar(m0)).mul_scalar(cfg.expression_hold);
                }
            }
        }
        let (a, d) = (to_vec(&r.age)[0], to_vec(&r.identity)[0]);
        let prior: f32 = cfg.prior * params.iter().zip(&start.data).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / n as f32;
        let l = to_vec(&loss)[0] + prior;
        ensure!(l.is_finite(), "the age refinement diverged at step {step} (loss {l})");
        trace.push(RefineStep { age: a, head_age: head, identity: d, loss: l });
        states.push(params.clone());
        let age_met = |a: f32| (a - t.age_met) * t.age_sign >= 0.0;
        met.push(others_met && age_met(a) && head.is_none_or(age_met));
        // done early: the targets met and the person kept with a margin
        if step == cfg.steps || (met[step] && d < cfg.stop_below) {
            break;
        }
        let grads = loss.backward();
        let mut g = to_vec(&p.grad(&grads).context("no gradient reached w+")?);
        if let Some(u) = &t.locked {
            let norm = u.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for row in g.chunks_mut(dim) {
                let along = row.iter().zip(u).map(|(a, b)| a * b).sum::<f32>() / (norm * norm);
                row.iter_mut().zip(u).for_each(|(a, b)| *a -= along * b);
            }
        }
        let tt = (step + 1) as i32;
        for i in 0..n {
            let gi = g[i] + cfg.prior * 2.0 * (params[i] - start.data[i]) / n as f32;
            mom[i] = b1 * mom[i] + (1.0 - b1) * gi;
            vel[i] = b2 * vel[i] + (1.0 - b2) * gi * gi;
            let mh = mom[i] / (1.0 - b1.powi(tt));
            let vh = vel[i] / (1.0 - b2.powi(tt));
            params[i] -= cfg.lr * mh / (vh.sqrt() + eps);
        }
    }
    let kept = (0..trace.len())
        .filter(|&i| met[i])
        .min_by(|&a, &b| trace[a].identity.total_cmp(&trace[b].identity))
        .or_else(|| (0..trace.len()).min_by(|&a, &b| trace[a].loss.total_cmp(&trace[b].loss)))
        .expect("at least the start");
    let w = WPlus { rows, dim, data: states.swap_remove(kept) };
    ensure!(w.is_finite(), "the age refinement diverged (non-finite w+)");
    Ok(Refined { w, kept, trace })
}

#[cfg(test)]
mod tests {
    use super::*;
    use limner_faces::image::batch;

    fn ramp(w: usize, h: usize) -> Image {
        let data = (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as f32 * 3.0, y as f32 * 5.0 + 1.0, ((x * 7 + y * 11) % 13) as f32])).collect();
        Image { width: w, height: h, data }
    }

    /// The matrices reproduce face-api's crop, centred square padding and TF resize exactly,
    /// for boxes inside the image, clipped at its edges, wider than tall and taller than wide.
    #[test]
    fn crop_matrices_match_the_pipeline() {
        let im = ramp(40, 36);
        let device = Device::flex();
        let rects = [
            Rect { x: 5.3, y: 4.7, width: 20.0, height: 20.0 },
            Rect { x: -3.0, y: 10.2, width: 17.5, height: 30.0 },
            Rect { x: 12.0, y: 2.0, width: 30.0, height: 11.0 },
            Rect { x: 0.0, y: 0.0, width: 40.0, height: 36.0 },
        ];
        for r in rects {
            for out in [16, 23, 50] {
                let want = im.crop(r.x, r.y, r.width, r.height).unwrap().face_input(out);
                let (rows, cols) = crop_matrices(im.width, im.height, r, out).unwrap();
                let got = apply_crop(batch(std::slice::from_ref(&im), &device), &rows, &cols, out);
                let got = to_vec(&got.permute([0, 2, 3, 1]));
                let err = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(err < 1e-3, "{r:?} → {out}: max error {err}");
            }
        }
        assert!(crop_matrices(40, 36, Rect { x: 50.0, y: 0.0, width: 10.0, height: 10.0 }, 16).is_none());
    }

    /// The expression margin is the log-odds of the softmax probability, and stays finite and
    /// ordered where the probability has saturated to 1 in f32.
    #[test]
    fn expression_margin_is_the_log_odds_and_does_not_saturate() {
        let device = Device::flex();
        let z = [1.5f32, 30.0, -2.0, 0.25, 4.0, -7.0, 3.0];
        for k in [1, 4] {
            let got = to_vec(&expression_margin(tensor_from(z.to_vec(), [1, 7], &device), k))[0] as f64;
            let e: Vec<f64> = z.iter().map(|&v| (v as f64).exp()).collect();
            let p = e[k] / e.iter().sum::<f64>();
            let want = (p / (1.0 - p)).ln();
            assert!((got - want).abs() < 1e-4, "k {k}: {got} vs {want}");
        }
        let m = |top: f32| to_vec(&expression_margin(tensor_from(vec![0.0, top, 0.0, 0.0, 0.0, 0.0, 0.0], [1, 7], &device), 1))[0];
        assert!(m(25.0) > m(20.0) + 4.9, "{} {}", m(25.0), m(20.0));
        let r = enlarge(Rect { x: 10.0, y: 20.0, width: 40.0, height: 30.0 }, 1.5);
        assert_eq!((r.x, r.y, r.width, r.height), (0.0, 12.5, 60.0, 45.0));
    }
}
