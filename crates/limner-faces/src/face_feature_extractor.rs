//! face-api's `FaceFeatureExtractor` (4 dense blocks) and `TinyFaceFeatureExtractor`
//! (3 dense blocks): the backbone of the 68-landmark and expression networks. Each of those
//! files carries its own trained copy of the weights (`dense0/...` ... `dense3/...`); the
//! architecture is the same.
//!
//! A dense block (DenseNet-style, Huang et al. 2017, with separable convs) halves the grid
//! with its first conv and sums every earlier output into the next conv's input.
//! Input: `[N, 3, 112, 112]` RGB in 0..255 (a face crop padded to a centred square).

use anyhow::Result;
use burn::tensor::activation::relu;
use burn::tensor::Tensor;

use crate::layers::{avg_pool_valid, normalize, Conv, Padding, SeparableConv, Weights, FACE_MEAN_RGB};

/// Which extractor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceFeatureExtractorConfig {
    /// 4 (`FaceFeatureExtractor`: 256 features) or 3 (`TinyFaceFeatureExtractor`: 128).
    pub dense_blocks: usize,
    /// Convs per dense block: 4 for the full extractor, 3 for the tiny one.
    pub convs_per_block: usize,
    /// Input side (face-api: 112).
    pub input_size: usize,
}

impl Default for FaceFeatureExtractorConfig {
    fn default() -> Self {
        Self { dense_blocks: 4, convs_per_block: 4, input_size: 112 }
    }
}

impl FaceFeatureExtractorConfig {
    pub fn tiny() -> Self {
        Self { dense_blocks: 3, convs_per_block: 3, input_size: 112 }
    }
}

/// The first conv of a block: a plain 3×3 conv in the first block, separable elsewhere.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // a handful per network
enum FirstConv {
    Plain(Conv),
    Separable(SeparableConv),
}

#[derive(Clone, Debug)]
struct DenseBlock {
    conv0: FirstConv,
    /// conv1 ... conv3 (conv1, conv2 in the tiny extractor)
    rest: Vec<SeparableConv>,
}

impl DenseBlock {
    /// `[N, C, H, W] -> [N, C', H/2, W/2]` (face-api `denseBlock4` / `denseBlock3`).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out1 = relu(match &self.conv0 {
            FirstConv::Plain(c) => c.forward(x, 2, Padding::Same), //       [N, 32, 56, 56]
            FirstConv::Separable(s) => s.forward(x, 2, Padding::Same), //   [N, C', H/2, W/2]
        });
        // each conv reads relu(out1 + ... + out_k) and the block returns relu of the full sum
        let mut sum = out1.clone();
        let mut input = out1;
        for conv in &self.rest {
            let out = conv.forward(input, 1, Padding::Same); //             [N, C', H/2, W/2]
            sum = sum + out;
            input = relu(sum.clone());
        }
        input //                                                             [N, C', H/2, W/2]
    }
}

/// The dense-block backbone with its own weights.
#[derive(Clone, Debug)]
pub struct FaceFeatureExtractor {
    blocks: Vec<DenseBlock>,
    pub config: FaceFeatureExtractorConfig,
}

impl FaceFeatureExtractor {
    /// Reads `dense0/...` ... from a network's weight map.
    pub fn from_weights(w: &Weights, config: FaceFeatureExtractorConfig) -> Result<Self> {
        let mut blocks = vec![];
        for b in 0..config.dense_blocks {
            let conv0 = if b == 0 { FirstConv::Plain(w.conv("dense0/conv0")?) } else { FirstConv::Separable(w.separable(&format!("dense{b}/conv0"))?) };
            let rest = (1..config.convs_per_block).map(|k| w.separable(&format!("dense{b}/conv{k}"))).collect::<Result<Vec<_>>>()?;
            blocks.push(DenseBlock { conv0, rest });
        }
        Ok(Self { blocks, config })
    }

    /// Feature length (256 full, 128 tiny).
    pub fn features(&self) -> usize {
        self.blocks.last().and_then(|b| b.rest.last()).map_or(0, SeparableConv::out_channels)
    }

    /// `[N, 3, 112, 112]` RGB 0..255 → `[N, F]` (F = 256; 128 tiny).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = normalize(x, FACE_MEAN_RGB); //        [N, 3, 112, 112]
        for block in &self.blocks {
            x = block.forward(x); //                       [N, 32, 56, 56] → [N, 64, 28, 28] → [N, 128, 14, 14] → [N, 256, 7, 7]
        }
        let [n, c, g, _] = x.dims();
        // 7×7 (tiny: 14×14) average, stride 2, valid: one value per channel
        let x = avg_pool_valid(x, g, 2); //               [N, 256, 1, 1]
        x.reshape([n, c]) //                               [N, 256]
    }
}
