//! oarriaga's mini-Xception emotion classifier (face_classification, FER-2013) as
//! human-models ships it (`emotion.json`): two plain 3×3 convs over a 64 px grey face, two
//! residual blocks (two separable convs and a 3×3/2 max pool, with a strided 1×1 shortcut), a
//! 3×3 conv to 7 channels, global average pooling and a softmax over [`LABELS`].
//!
//! Input as human's `emotion.ts` makes it: the face crop (0..1) resized to 64² (legacy
//! bilinear), grey as `0.2989 R + 0.5870 G + 0.1140 B`, then `(g − 0.5) · 2`.

use anyhow::Result;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};

use super::graph::{GConv, Graph};
use crate::layers::max_pool_same;

/// The network's input side.
pub const INPUT_SIZE: usize = 64;
/// human's labels for this (grey input) network, in output order.
pub const LABELS: [&str; 7] = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
/// human's grey weights (`constants.rgb`).
pub const GREY: [f32; 3] = [0.2989, 0.5870, 0.1140];

/// A residual block: `[relu] → sep → relu → sep → max pool`, plus a strided 1×1 conv shortcut.
#[derive(Clone, Debug)]
struct Block {
    relu_in: bool,
    dw0: GConv,
    pw0: GConv,
    dw1: GConv,
    pw1: GConv,
    pool: (usize, usize),
    shortcut: GConv,
}

impl Block {
    /// `[N, C, H, W] -> [N, C', ⌈H/2⌉, ⌈W/2⌉]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = if self.relu_in { relu(x.clone()) } else { x.clone() };
        let y = self.pw0.forward(self.dw0.forward(y)); //    [N, C', H, W] (ReLU fused)
        let y = self.pw1.forward(self.dw1.forward(y)); //    [N, C', H, W]
        max_pool_same(y, self.pool.0, self.pool.1) + self.shortcut.forward(x)
    }
}

#[derive(Clone, Debug)]
pub struct Emotion {
    conv1: GConv,
    conv2: GConv,
    blocks: [Block; 2],
    conv_out: GConv,
}

impl Emotion {
    pub fn load(g: &Graph) -> Result<Self> {
        let block = |k: usize, relu_in: bool, sep: usize, pw0: &str, pw1: &str| -> Result<Block> {
            let dw = |i: usize| g.depthwise(&format!("separable_conv2d_{i}/separable_conv2d/depthwise"));
            Ok(Block {
                relu_in,
                dw0: dw(sep)?,
                pw0: g.conv(pw0)?,
                dw1: dw(sep + 1)?,
                pw1: g.conv(pw1)?,
                pool: g.max_pool(&format!("max_pooling2d_{k}/MaxPool"))?,
                shortcut: g.conv(&format!("batch_normalization_{k}/FusedBatchNormV3"))?,
            })
        };
        g.node("block3_sepconv1_act/Relu", "Relu")?;
        Ok(Self {
            conv1: g.conv("block1_conv1_act/Relu")?,
            conv2: g.conv("block1_conv2_act/Relu")?,
            blocks: [
                block(1, false, 1, "block2_sepconv2_act/Relu", "block2_sepconv2_bn/FusedBatchNormV3")?,
                block(2, true, 3, "block3_sepconv2_act/Relu", "block3_sepconv2_bn/FusedBatchNormV3")?,
            ],
            conv_out: g.conv("conv2d_5/BiasAdd")?,
        })
    }

    pub fn fetched(device: &Device) -> Result<Self> {
        Self::load(&Graph::fetched("human-emotion", device)?)
    }

    /// `[N, 1, 64, 64]` grey in −1..1 → `[N, 7]` probabilities ([`LABELS`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv2.forward(self.conv1.forward(x)); // [N, 64, 29, 29]
        let x = self.blocks[0].forward(x); //                [N, 128, 15, 15]
        let x = self.blocks[1].forward(x); //                [N, 256, 8, 8]
        let x = self.conv_out.forward(x); //                 [N, 7, 8, 8]
        let [n, c, _, _] = x.dims();
        softmax(x.mean_dim(3).mean_dim(2).reshape([n, c]), 1)
    }
}
