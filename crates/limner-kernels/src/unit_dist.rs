//! The LPIPS-style distance of `limner_nets::perceptual` at one activation as ONE op for burn's
//! flex backend: unit-normalise every pixel's feature vector over the channels, take the
//! squared difference summed over the channels, average over space and batch:
//!
//! `d(f, t) = mean_{n,h,w} Σ_c (f[n,c,h,w] / |f[n,:,h,w]| - t[n,c,h,w] / |t[n,:,h,w]|)²`,
//! `|x| = sqrt(Σ_c x² + 1e-10)`,
//!
//! with the gradient to `f` only (`t` is the target's activation, a constant):
//! `∂d/∂f_c = 2 / (N H W |f|) · (e_c - u_c Σ_k e_k u_k)`, `u = f / |f|`, `e = u - t / |t|`.
//!
//! burn's composition of the same formula (square, sum over channels, add, sqrt, broadcast
//! divide, subtract, square, sum, mean, and their autodiff backward: ~15 full passes over the
//! activations, each allocating) was ~10 % of the perceptual distance's CPU time at batch 8,
//! 128 px (bench/NOTES.md, round 4). Here the forward is two passes and the backward two, over
//! blocks of pixels (all channels of ~32 Ki floats: the second pass reads from L2), one rayon
//! task per block, the partial sums added in block order (deterministic).
//!
//! [`unit_channel_distance`] falls back to burn's ops ([`unit_channel_distance_reference`], the
//! formula above written as tensors, exactly the previous code) off flex, for other dtypes,
//! when `t` is tracked, or with `LIMNER_FAST_PERCEPTUAL=0` (A/B switch). The two agree to float
//! rounding (tests/unit_dist_parity.rs).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::{f32_data, on_flex, profile, Switch};

static FAST: Switch = Switch::new("LIMNER_FAST_PERCEPTUAL");

/// Whether [`unit_channel_distance`] uses the fused op (default on; `LIMNER_FAST_PERCEPTUAL=0`
/// turns it off, and so does [`crate::enabled`] off).
pub fn fused_enabled() -> bool {
    FAST.get()
}

/// Turns the fused distance on or off for the whole process (same-process A/B runs).
pub fn set_fused_enabled(on: bool) {
    FAST.set(on);
}

/// `|x|² + 1e-10` is rooted; the same epsilon as the tensor formula.
const EPS: f32 = 1e-10;

/// A raw pointer the tasks share; each task writes a disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Pixels per block: all `c` channels of a block hold about 32 Ki floats per tensor.
fn block_pixels(c: usize, hw: usize) -> usize {
    (32 * 1024 / c.max(1)).max(16).min(hw.max(1))
}

/// The blocks `(sample, first pixel, end pixel)` of `[n, c, hw]`.
fn blocks(n: usize, c: usize, hw: usize) -> Vec<(usize, usize, usize)> {
    let bp = block_pixels(c, hw);
    (0..n).flat_map(|b| (0..hw).step_by(bp).map(move |p0| (b, p0, (p0 + bp).min(hw)))).collect()
}

/// `|f|` and `|t|` per pixel of one block (`nf`, `nt` of length `p1 - p0`).
#[inline]
#[allow(clippy::too_many_arguments)]
fn norms(f: &[f32], t: &[f32], c: usize, hw: usize, base: usize, p0: usize, nf: &mut [f32], nt: &mut [f32]) {
    let len = nf.len();
    nf.fill(0.0);
    nt.fill(0.0);
    for ch in 0..c {
        let o = base + ch * hw + p0;
        for ((a, x), (b, y)) in nf.iter_mut().zip(&f[o..o + len]).zip(nt.iter_mut().zip(&t[o..o + len])) {
            *a += x * x;
            *b += y * y;
        }
    }
    for v in nf.iter_mut().chain(nt.iter_mut()) {
        *v = (*v + EPS).sqrt();
    }
}

/// Forward: the distance and the per-pixel norms `(|f|, |t|)` (`[n, hw]` each, for the backward).
pub fn forward(f: &[f32], t: &[f32], n: usize, c: usize, hw: usize) -> (f32, Vec<f32>, Vec<f32>) {
    assert_eq!(f.len(), n * c * hw, "feature length");
    assert_eq!(t.len(), f.len(), "target length");
    let bl = blocks(n, c, hw);
    let mut nf = vec![0.0f32; n * hw];
    let mut nt = vec![0.0f32; n * hw];
    // (block, its norms) in block order: blocks of one sample are consecutive pixel ranges
    let mut parts: Vec<(&mut [f32], &mut [f32])> = Vec::with_capacity(bl.len());
    {
        let (mut rf, mut rt) = (&mut nf[..], &mut nt[..]);
        for &(_, p0, p1) in &bl {
            let (a, b) = std::mem::take(&mut rf).split_at_mut(p1 - p0);
            let (x, y) = std::mem::take(&mut rt).split_at_mut(p1 - p0);
            parts.push((a, x));
            (rf, rt) = (b, y);
        }
    }
    let sums: Vec<f64> = bl
        .par_iter()
        .zip(parts.into_par_iter())
        .with_max_len(1)
        .map(|(&(b, p0, p1), (nfb, ntb))| {
            let base = b * c * hw;
            norms(f, t, c, hw, base, p0, nfb, ntb);
            let mut d = vec![0.0f32; p1 - p0];
            for ch in 0..c {
                let o = base + ch * hw + p0;
                for (((dv, x), y), (a, b)) in d.iter_mut().zip(&f[o..o + (p1 - p0)]).zip(&t[o..o + (p1 - p0)]).zip(nfb.iter().zip(ntb.iter())) {
                    let e = x / a - y / b;
                    *dv += e * e;
                }
            }
            d.iter().map(|v| *v as f64).sum::<f64>()
        })
        .collect();
    let total: f64 = sums.iter().sum();
    ((total / (n * hw) as f64) as f32, nf, nt)
}

/// Backward: `g · ∂d/∂f` (`g` the upstream gradient of the scalar distance), from the norms
/// [`forward`] returned.
#[allow(clippy::too_many_arguments)]
pub fn backward(f: &[f32], t: &[f32], nf: &[f32], nt: &[f32], n: usize, c: usize, hw: usize, g: f32) -> Vec<f32> {
    assert_eq!(f.len(), n * c * hw, "feature length");
    let mut df = vec![0.0f32; f.len()];
    let s = 2.0 * g / (n * hw) as f32;
    let bl = blocks(n, c, hw);
    let dp = SharedMut(df.as_mut_ptr());
    bl.par_iter().with_max_len(1).for_each(|&(b, p0, p1)| {
        let dp = dp;
        let len = p1 - p0;
        let base = b * c * hw;
        let (nfb, ntb) = (&nf[b * hw + p0..b * hw + p1], &nt[b * hw + p0..b * hw + p1]);
        // dot[p] = Σ_c e_c u_c
        let mut dot = vec![0.0f32; len];
        for ch in 0..c {
            let o = base + ch * hw + p0;
            for ((dv, (x, y)), (a, bb)) in dot.iter_mut().zip(f[o..o + len].iter().zip(&t[o..o + len])).zip(nfb.iter().zip(ntb)) {
                let u = x / a;
                *dv += (u - y / bb) * u;
            }
        }
        for ch in 0..c {
            let o = base + ch * hw + p0;
            // SAFETY: the task of block (b, p0..p1) alone writes these pixels of every channel
            let out = unsafe { std::slice::from_raw_parts_mut(dp.0.add(o), len) };
            for ((((d, x), y), (a, bb)), dv) in out.iter_mut().zip(&f[o..o + len]).zip(&t[o..o + len]).zip(nfb.iter().zip(ntb)).zip(&dot) {
                let u = x / a;
                *d = s / a * ((u - y / bb) - u * dv);
            }
        }
    });
    df
}

/// The fused op; `dims` = `[n, c, h, w]` of both inputs.
#[backend_extension(Flex, Autodiff)]
pub trait FastUnitDistance: Backend {
    /// `d(f, t)` as a `[1]` tensor; gradient to `f` only.
    fn fast_unit_distance(f: FloatTensor<Self>, t: FloatTensor<Self>, dims: [usize; 4]) -> FloatTensor<Self>;
}

fn fwd_flex(f: &FlexTensor, t: &FlexTensor, d: [usize; 4]) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let (v, nf, nt) = profile::time(|| format!("unit-channel distance fwd c={} in=[{}, {}] n={}", d[1], d[2], d[3], d[0]), || forward(&f32_data(f), &f32_data(t), d[0], d[1], d[2] * d[3]));
    (FlexTensor::from_data(TensorData::new(vec![v], [1])), nf, nt)
}

impl FastUnitDistance for Flex {
    fn fast_unit_distance(f: FlexTensor, t: FlexTensor, dims: [usize; 4]) -> FlexTensor {
        fwd_flex(&f, &t, dims).0
    }
}

#[derive(Debug)]
struct UnitDistanceBackward;

impl Backward<Flex, 1> for UnitDistanceBackward {
    /// (f, t, |f|, |t|, dims)
    type State = (FlexTensor, FlexTensor, std::sync::Arc<(Vec<f32>, Vec<f32>)>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (f, t, norms, d) = ops.state;
        let Some(node) = node else { return };
        let g = f32_data(&dy)[0];
        let df = profile::time(
            || format!("unit-channel distance bwd c={} in=[{}, {}] n={}", d[1], d[2], d[3], d[0]),
            || backward(&f32_data(&f), &f32_data(&t), &norms.0, &norms.1, d[0], d[1], d[2] * d[3], g),
        );
        grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(df, d)));
    }
}

impl<C: CheckpointStrategy> FastUnitDistance for Autodiff<Flex, C> {
    fn fast_unit_distance(f: FloatTensor<Self>, t: FloatTensor<Self>, dims: [usize; 4]) -> FloatTensor<Self> {
        let (fp, fnode) = f.into_parts();
        // a constant: `unit_channel_distance` checked that it is not tracked
        let (tp, _) = t.into_parts();
        let (y, nf, nt) = fwd_flex(&fp, &tp, dims);
        match UnitDistanceBackward.prepare::<C>([fnode]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((fp, tp, std::sync::Arc::new((nf, nt)), dims), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The tensor formula (the code `limner_nets::perceptual` used before the fused op), any
/// device: `mean((f / |f| - t / |t|)² summed over channels)`.
pub fn unit_channel_distance_reference(f: Tensor<4>, t: Tensor<4>) -> Tensor<1> {
    fn unit(x: Tensor<4>) -> Tensor<4> {
        let norm = x.clone().square().sum_dim(1).add_scalar(1e-10).sqrt(); // [N, 1, H, W]
        x / norm
    }
    (unit(f) - unit(t)).square().sum_dim(1).mean()
}

/// `d(f, t)` (see the module docs) for `f`, `t` `[n, c, h, w]`; `t` a constant (the target's
/// activation; with autodiff, `t` may be on the autodiff device but must not be tracked).
/// The fused op on flex f32 tensors, [`unit_channel_distance_reference`] otherwise.
pub fn unit_channel_distance(f: Tensor<4>, t: Tensor<4>) -> Tensor<1> {
    let dims = f.dims();
    assert_eq!(dims, t.dims(), "unit_channel_distance: feature shapes differ");
    let fast = crate::enabled() && fused_enabled() && f.dtype() == DType::F32 && t.dtype() == DType::F32 && on_flex(&f) && on_flex(&t) && !t.is_tracked();
    if !fast {
        return unit_channel_distance_reference(f, t);
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as FastUnitDistance>::fast_unit_distance(f.into_dispatch(), t.into_dispatch(), dims))
}
