//! The perceptual-distance interface: a trainer (limner-gan's paired distillation) asks for it,
//! a network (limner-nets' InceptionV3 taps) provides it; neither depends on the other.

use burn::tensor::Tensor;

/// A differentiable distance between images, used beside the pixel L1 in paired distillation.
pub trait PerceptualDistance {
    /// Mean distance between the generated `fake` (on the autodiff device, NCHW in [-1, 1]) and
    /// the teacher's `target` (a plain tensor of the same shape), as a one-element tensor whose
    /// gradient reaches `fake`.
    fn distance(&self, fake: Tensor<4>, target: Tensor<4>) -> Tensor<1>;
}
