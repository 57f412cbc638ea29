//! face-api's `FaceExpressionNet`: the dense-block [`FaceFeatureExtractor`] (its own weights)
//! and a fully connected layer to 7 expressions, softmaxed.

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::face_feature_extractor::{FaceFeatureExtractor, FaceFeatureExtractorConfig};
use crate::layers::{Fc, Weights};

/// The expressions in the network's output order (face-api `FACE_EXPRESSION_LABELS`).
pub const EXPRESSIONS: [&str; 7] = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"];

#[derive(Clone, Debug)]
pub struct FaceExpressionNet {
    extractor: FaceFeatureExtractor,
    fc: Fc,
}

impl FaceExpressionNet {
    pub const NET: &'static str = "face-expression";

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, Self::NET, device)?)
    }

    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(Self::NET, device)?)
    }

    fn from_weights(w: &Weights) -> Result<Self> {
        let extractor = FaceFeatureExtractor::from_weights(w, FaceFeatureExtractorConfig::default())?;
        let fc = w.fc("fc")?;
        if fc.weights.dims() != [extractor.features(), EXPRESSIONS.len()] {
            bail!("{}: fc is {:?}, expected [256, 7]", w.path().display(), fc.weights.dims());
        }
        Ok(Self { extractor, fc })
    }

    /// `[N, 3, 112, 112]` RGB 0..255 → `[N, 7]` probabilities in [`EXPRESSIONS`] order.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        softmax(self.logits(x), 1) // [N, 7]
    }

    /// `[N, 3, 112, 112]` RGB 0..255 → `[N, 7]` logits (before the softmax), in
    /// [`EXPRESSIONS`] order: unlike the probabilities they do not saturate.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.extractor.forward(x); // [N, 256]
        self.fc.forward(f) //                 [N, 7]
    }

    /// Probabilities per input.
    pub fn expressions(&self, x: Tensor<4>) -> Vec<[f32; 7]> {
        to_vec(&self.forward(x)).chunks_exact(7).map(|c| c.try_into().unwrap()).collect()
    }
}
