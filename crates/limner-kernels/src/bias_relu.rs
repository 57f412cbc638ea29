//! `relu(x + bias)` as one op for burn's flex backend: the epilogue of every InceptionV3
//! conv. Forward and backward are single multithreaded passes (one rayon task per channel
//! plane); burn 0.22's separate broadcast add, ReLU and mask-based ReLU backward took about
//! as long as the convolutions they follow at 256 px (bench/NOTES.md).
//!
//! Backward: `dx = dy · [y > 0]`, `dbias[c] = Σ_{n,h,w} dx` (summed per plane in order, then
//! over the batch in order: bit-identical run to run).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::{f32_data, flex_from, on_flex, profile};

/// `y[n, c, :, :] = max(x[n, c, :, :] + b[c], 0)` over `nc = [n, c]` planes of `hw` values.
pub fn bias_relu_fwd(x: &[f32], b: &[f32], nc: [usize; 2], hw: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(pl, (yp, xp))| {
        let bc = b[pl % nc[1]];
        for (o, v) in yp.iter_mut().zip(xp) {
            *o = (v + bc).max(0.0);
        }
    });
    y
}

/// `dx = dy · [y > 0]`.
pub fn relu_bwd(y: &[f32], dy: &[f32], hw: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; y.len()];
    dx.par_chunks_mut(hw).zip(y.par_chunks(hw).zip(dy.par_chunks(hw))).for_each(|(dp, (yp, gp))| {
        copy_masked(dp, gp, yp);
    });
    dx
}

/// `dst = src · [m > 0]` (the ReLU backward; `0.0` where `m <= 0` or `m` is NaN, `src`'s bits
/// otherwise). Branch-free: the sign of a ReLU's input is a coin flip per element, and the
/// branchy `if m > 0.0 { s } else { 0.0 }` loop (scalar, mispredicted half the time) took
/// ~3 ns per element, 7 % of the perceptual distance's CPU time; this one compiles to vector
/// compares and ANDs, with the same bits out.
/// `LIMNER_BRANCH_FREE_MASK=0` (or [`set_branch_free_mask(false)`](set_branch_free_mask))
/// keeps the previous branchy loop, for same-process A/B runs.
#[inline]
pub(crate) fn copy_masked(dst: &mut [f32], src: &[f32], m: &[f32]) {
    if !BRANCH_FREE.get() {
        for ((d, s), m) in dst.iter_mut().zip(src).zip(m) {
            *d = if *m > 0.0 { *s } else { 0.0 };
        }
        return;
    }
    for ((d, s), m) in dst.iter_mut().zip(src).zip(m) {
        let keep = if *m > 0.0 { u32::MAX } else { 0 };
        *d = f32::from_bits(s.to_bits() & keep);
    }
}

static BRANCH_FREE: crate::Switch = crate::Switch::new("LIMNER_BRANCH_FREE_MASK");

/// Turns the branch-free ReLU mask ([`copy_masked`]) on or off for the whole process (default
/// on; the same bits either way).
pub fn set_branch_free_mask(on: bool) {
    BRANCH_FREE.set(on);
}


/// `db[c] = Σ_{n, plane} dx[n, c]`.
fn bias_grad(dx: &[f32], nc: [usize; 2], hw: usize) -> Vec<f32> {
    let per_plane: Vec<f32> = dx.par_chunks(hw).map(|p| p.iter().sum::<f32>()).collect();
    let mut db = vec![0.0f32; nc[1]];
    for (pl, s) in per_plane.iter().enumerate() {
        db[pl % nc[1]] += s;
    }
    db
}

#[backend_extension(Flex, Autodiff)]
pub trait FastBiasRelu: Backend {
    /// `relu(x + bias)`, `x` `[n, c, h, w]`, `bias` `[c]`; `dims` = `[n, c, h, w]`
    fn fast_bias_relu(x: FloatTensor<Self>, bias: FloatTensor<Self>, dims: [usize; 4]) -> FloatTensor<Self>;
}

fn fwd(x: &FlexTensor, b: &FlexTensor, d: [usize; 4]) -> FlexTensor {
    profile::time(|| "bias+relu fwd".into(), || flex_from(bias_relu_fwd(&f32_data(x), &f32_data(b), [d[0], d[1]], d[2] * d[3]), d))
}

impl FastBiasRelu for Flex {
    fn fast_bias_relu(x: FlexTensor, bias: FlexTensor, dims: [usize; 4]) -> FlexTensor {
        fwd(&x, &bias, dims)
    }
}

#[derive(Debug)]
struct BiasReluBackward;

impl Backward<Flex, 2> for BiasReluBackward {
    /// (output, dims)
    type State = (FlexTensor, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (y, d) = ops.state;
        let hw = d[2] * d[3];
        let dx = profile::time(|| "relu bwd".into(), || relu_bwd(&f32_data(&y), &f32_data(&dy), hw));
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(bias_grad(&dx, [d[0], d[1]], hw), [d[1]])));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_from(dx, d));
        }
    }
}

impl<C: CheckpointStrategy> FastBiasRelu for Autodiff<Flex, C> {
    fn fast_bias_relu(x: FloatTensor<Self>, bias: FloatTensor<Self>, dims: [usize; 4]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (bp, bn) = bias.into_parts();
        let y = fwd(&xp, &bp, dims);
        match BiasReluBackward.prepare::<C>([xn, bn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), dims), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `relu(x + bias.reshape([1, c, 1, 1]))`: one fused pass on flex f32 tensors (fast path on),
/// burn's ops otherwise.
pub fn bias_relu(x: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    let dims = x.dims();
    assert_eq!(bias.dims()[0], dims[1], "bias_relu: {} biases for {} channels", bias.dims()[0], dims[1]);
    let fast = crate::enabled() && x.dtype() == DType::F32 && bias.dtype() == DType::F32 && on_flex(&x) && on_flex(&bias);
    if !fast {
        return relu(x + bias.reshape([1, dims[1], 1, 1]));
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as FastBiasRelu>::fast_bias_relu(x.into_dispatch(), bias.into_dispatch(), dims))
}

#[cfg(test)]
mod tests {
    /// The branch-free mask gives the bits of the branchy definition, NaN, ±0 and ±inf included.
    #[test]
    fn copy_masked_matches_the_branchy_select_bit_for_bit() {
        let special = [0.0f32, -0.0, 1.0, -1.0, f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 1e-45, -1e-45];
        let mut src = vec![];
        let mut m = vec![];
        for a in special {
            for b in special {
                src.push(a);
                m.push(b);
            }
        }
        let mut seed = 9u32;
        for _ in 0..1000 {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            src.push(f32::from_bits(seed));
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            m.push((seed >> 8) as f32 / (1 << 24) as f32 - 0.5);
        }
        let mut dst = vec![7.0f32; src.len()];
        super::copy_masked(&mut dst, &src, &m);
        for i in 0..src.len() {
            let want = if m[i] > 0.0 { src[i] } else { 0.0 };
            assert_eq!(dst[i].to_bits(), want.to_bits(), "src {} mask {}", src[i], m[i]);
        }
    }
}
