//! A perceptual distance for paired distillation, in the manner of LPIPS (Zhang et al. 2018,
//! "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric") without its learned
//! channel weights: at each chosen InceptionV3 activation, unit-normalise every pixel's feature
//! vector over the channels, take the squared difference summed over channels, average over
//! space and batch; then average over the activations.
//!
//! Pixel L1 alone drives a student towards the blurry median of what it cannot yet predict;
//! a distance on edge- and texture-detecting features also rewards the right structure.
use anyhow::Result;
use burn::tensor::{Device, Tensor};
use limner_core::PerceptualDistance;

use crate::inception::{resize, InceptionV3, Tap};

/// The activations the distance compares, by default: the stem's 3×3 conv (64 channels, edges
/// and colour blobs), its last conv (192 channels) and the first mixed block (256 channels).
pub const DEFAULT_TAPS: [Tap; 3] = [Tap::Conv(3), Tap::Conv(5), Tap::Mixed(crate::inception::Layer::Mixed0)];

/// LPIPS-style distance on InceptionV3.
pub struct InceptionPerceptual {
    net: InceptionV3,
    net_ad: InceptionV3,
    taps: Vec<Tap>,
    /// images are resized (bilinear) to this side before the network
    size: usize,
}

impl InceptionPerceptual {
    /// `net` on the plain device; `size` ≥ the deepest tap's minimum input size.
    pub fn new(net: InceptionV3, taps: &[Tap], size: usize) -> Result<Self> {
        if taps.is_empty() {
            anyhow::bail!("a perceptual distance needs at least one activation");
        }
        let need = taps.iter().map(|t| t.min_input_size()).max().unwrap_or(1);
        if size < need {
            anyhow::bail!("the perceptual distance's input size {size} px is below the {need} px its activations need");
        }
        let net_ad = net.autodiff();
        Ok(Self { net, net_ad, taps: taps.to_vec(), size })
    }

    /// The fetched InceptionV3 (`limner models fetch --only inception-v3`) with [`DEFAULT_TAPS`]
    /// at 128 px.
    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::new(InceptionV3::load_fetched(device)?, &DEFAULT_TAPS, 128)
    }

    /// [-1, 1] NCHW → the network's [0, 1] input at `size`.
    fn prepare(&self, x: Tensor<4>) -> Tensor<4> {
        resize(x.add_scalar(1.0).mul_scalar(0.5), self.size)
    }
}


impl PerceptualDistance for InceptionPerceptual {
    fn distance(&self, fake: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
        let want = self.net_ad.forward_taps(self.prepare(fake), &self.taps); // autodiff
        let have = self.net.forward_taps(self.prepare(target), &self.taps); // constants
        let mut total: Option<Tensor<1>> = None;
        for (f, t) in want.into_iter().zip(have) {
            // mean over pixels of Σ_c (f / |f| - t / |t|)², |x| = sqrt(Σ_c x² + 1e-10): one fused
            // op with its own backward on the CPU (`LIMNER_FAST_PERCEPTUAL=0`: burn's ops)
            let d = limner_kernels::unit_channel_distance(f, t.autodiff()); // [1]
            total = Some(match total {
                Some(acc) => acc + d,
                None => d,
            });
        }
        total.expect("at least one tap").div_scalar(self.taps.len() as f64)
    }
}
