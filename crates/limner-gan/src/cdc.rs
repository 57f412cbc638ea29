//! Cross-domain consistency (Ojha et al. 2021, "Few-shot Image Generation via Cross-domain
//! Correspondence"): while a pretrained generator adapts to a few images, keep how the samples
//! of a batch relate to each other as they related in the source generator. For every
//! sample `i` and feature layer, the cosine similarities to the other samples of the batch
//! (`j != i`) make a softmax distribution; the loss is the KL divergence from the source's
//! distribution to the adapted generator's, averaged over samples and layers. A generator that
//! collapses towards one template makes every similarity equal (a flat distribution) and pays
//! for it; one that keeps the source's relations, whatever it paints, pays nothing.

use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;

use crate::params::tensor_from;

/// Softmax logits over the other samples: `[N, N]` cosine similarities of the rows of
/// `feat [N, C, H, W]` with the diagonal pushed to -10⁴ (so it takes no probability).
fn similarity_logits(feat: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = feat.dims();
    let f = feat.reshape([n, c * h * w]); // [N, F]
    let norm = (f.clone().square().sum_dim(1) + 1e-12).sqrt(); // [N, 1]
    let f = f / norm;
    let sim = f.clone().matmul(f.transpose()); // [N, N]
    let eye: Vec<f32> = (0..n * n).map(|k| if k / n == k % n { 1e4 } else { 0.0 }).collect();
    let dev = sim.device();
    sim - tensor_from(eye, [n, n], &dev)
}

/// The CDC loss between the source generator's features `source` (constants) and the adapted
/// generator's `adapted` (the same layers, the same latents and noise, in the same order; each
/// `[N, C, H, W]`, N ≥ 3): `mean over layers of (1/N) Σ_i KL(p_source,i ‖ p_adapted,i)`, a
/// `[1]` tensor on `adapted`'s device (gradients flow into `adapted` only).
pub fn cdc_loss(source: &[Tensor<4>], adapted: &[Tensor<4>]) -> Tensor<1> {
    assert_eq!(source.len(), adapted.len(), "one source layer per adapted layer");
    assert!(!adapted.is_empty(), "CDC needs at least one feature layer");
    let mut total: Option<Tensor<1>> = None;
    for (s, a) in source.iter().zip(adapted) {
        assert_eq!(s.dims(), a.dims(), "source and adapted features differ in shape");
        let n = a.dims()[0];
        assert!(n >= 3, "CDC compares each sample with the others: a batch of at least 3, not {n}");
        // the source side is a constant (no autodiff: burn treats it as one beside `a`)
        let log_ps = log_softmax(similarity_logits(s.clone().inner()), 1); // [N, N]
        let log_pa = log_softmax(similarity_logits(a.clone()), 1); // [N, N]
        // the diagonal's p_s is exp(-10⁴) = 0 exactly, so it adds nothing
        let kl = (log_ps.clone().exp() * (log_ps - log_pa)).sum().div_scalar(n as f64); // [1]
        total = Some(match total {
            Some(t) => t + kl,
            None => kl,
        });
    }
    total.expect("at least one layer").div_scalar(adapted.len() as f64)
}
