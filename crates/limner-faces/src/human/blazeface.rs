//! MediaPipe BlazeFace (Bazarevsky et al. 2019), the 256 px "back camera" detector that
//! `@vladmandic/human@3.3.6` loads as `blazeface.json`, and human's box decoding
//! (`src/face/blazeface.ts`, `facemeshutil.ts`).
//!
//! Network: a 5×5/2 conv (24) and 31 BlazeBlocks `relu(x' + pointwise(depthwise3×3(x)))`, where a
//! strided block's shortcut `x'` is a 2×2 max pool of `x` zero-padded in channels; heads on the
//! 16×16 grid (2 anchors per cell) and, after one more strided block without a shortcut, on the
//! 8×8 grid (6 anchors): 896 anchors × (1 score logit + 16 regressors: box centre offset and
//! size, 6 key points).
//!
//! Decoding as human does with its default config (`maxDetected: 1`, `minConfidence: 0.2`,
//! `iouThreshold: 0.1`, `scale: 1.4`, no rotation, no squaring of the input): the best-scoring
//! anchor's box in the 256 px input, scaled to the image, enlarged 1.4×, made square (rounded).

use anyhow::{ensure, Result};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use super::graph::{GConv, Graph};
use crate::layers::max_pool_same;
use crate::Image;

/// The detector's input side.
pub const INPUT_SIZE: usize = 256;
/// Anchors: 16×16 cells × 2, then 8×8 cells × 6.
pub const ANCHORS: usize = 896;

/// One BlazeBlock.
#[derive(Clone, Debug)]
struct Block {
    depthwise: GConv,
    pointwise: GConv,
    /// Strided: the shortcut is a max pool (`(kernel, stride)`), zero-padded to the output channels.
    pool: Option<(usize, usize)>,
}

impl Block {
    /// `[N, C, H, W] -> [N, C', H / s, W / s]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.pointwise.forward(self.depthwise.forward(x.clone())); // [N, C', H/s, W/s]
        let shortcut = match self.pool {
            None => x,
            Some((k, s)) => {
                let p = max_pool_same(x, k, s); //                                [N, C, H/s, W/s]
                let [n, c, h, w] = p.dims();
                let extra = self.pointwise.out_channels() - c;
                if extra == 0 {
                    p
                } else {
                    Tensor::cat(vec![p.clone(), Tensor::zeros([n, extra, h, w], &p.device())], 1) // [N, C', H/s, W/s]
                }
            }
        };
        relu(y + shortcut)
    }
}

/// The BlazeFace network.
#[derive(Clone, Debug)]
pub struct BlazeFace {
    conv_in: GConv,
    blocks: Vec<Block>,
    cls16: GConv,
    reg16: GConv,
    last_depthwise: GConv,
    last_pointwise: GConv,
    cls8: GConv,
    reg8: GConv,
}

fn keras(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}_{i}")
    }
}

impl BlazeFace {
    pub fn load(g: &Graph) -> Result<Self> {
        let conv_in = g.conv("conv2d/Relu")?;
        let mut blocks = vec![];
        for i in 0..31 {
            let depthwise = g.depthwise(&format!("{}/depthwise", keras("depthwise_conv2d", i)))?;
            let pointwise = g.conv(&format!("conv2d_{}/BiasAdd", i + 1))?;
            let pool = if depthwise.stride == 1 {
                None
            } else {
                let pool = g.max_pool(&format!("{}/MaxPool", keras("max_pooling2d", blocks.iter().filter(|b: &&Block| b.pool.is_some()).count())))?;
                Some(pool)
            };
            if pool.is_some() && pointwise.out_channels() > depthwise.out_channels() {
                // the graph's `Pad` adds the missing channels at the end, with zeros
                let k = blocks.iter().filter(|b: &&Block| b.pool.is_some() && b.pointwise.out_channels() > b.depthwise.out_channels()).count();
                let name = format!("tf_op_layer_{0}/{0}/paddings", keras("Pad", k));
                let pads = &g.host(&name)?.data;
                let extra = (pointwise.out_channels() - depthwise.out_channels()) as f32;
                ensure!(pads[..] == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, extra], "{}: `{name}` is {pads:?}, expected channel padding at the end", g.path().display());
            }
            blocks.push(Block { depthwise, pointwise, pool });
        }
        Ok(Self {
            conv_in,
            blocks,
            cls16: g.conv("conv2d_33/BiasAdd")?,
            reg16: g.conv("conv2d_35/BiasAdd")?,
            last_depthwise: g.depthwise("depthwise_conv2d_31/depthwise")?,
            last_pointwise: g.conv("re_lu_31/Relu")?,
            cls8: g.conv("conv2d_34/BiasAdd")?,
            reg8: g.conv("conv2d_36/BiasAdd")?,
        })
    }

    pub fn fetched(device: &Device) -> Result<Self> {
        Self::load(&Graph::fetched("human-blazeface", device)?)
    }

    /// `[N, 3, 256, 256]` in −1..1 → `[N, 896, 17]`: per anchor the score logit and the 16
    /// regressors, 16×16 anchors first (human's order after sorting the graph's outputs).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let mut x = self.conv_in.forward(x); //              [N, 24, 128, 128]
        for b in &self.blocks {
            x = b.forward(x); //                             → [N, 48, 32, 32] → [N, 96, 16, 16]
        }
        let a16 = anchors_major(self.cls16.forward(x.clone()), self.reg16.forward(x.clone())); // [N, 512, 17]
        let y = self.last_pointwise.forward(self.last_depthwise.forward(x)); //                  [N, 96, 8, 8]
        let a8 = anchors_major(self.cls8.forward(y.clone()), self.reg8.forward(y)); //           [N, 384, 17]
        Tensor::cat(vec![a16, a8], 1)
    }
}

/// `[N, A, H, W]` scores and `[N, 16·A, H, W]` regressors → `[N, H·W·A, 17]` (TF's NHWC reshape).
fn anchors_major(cls: Tensor<4>, reg: Tensor<4>) -> Tensor<3> {
    let [n, a, h, w] = cls.dims();
    let cls = cls.permute([0, 2, 3, 1]).reshape([n, h * w * a, 1]);
    let reg = reg.permute([0, 2, 3, 1]).reshape([n, h * w * a, 16]);
    Tensor::cat(vec![cls, reg], 2)
}

/// Anchor centres in input pixels (`facemeshutil.ts` `generateAnchors(256)`).
pub fn anchors() -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(ANCHORS);
    for (stride, per) in [(INPUT_SIZE / 16, 2), (INPUT_SIZE / 8, 6)] {
        let cells = INPUT_SIZE.div_ceil(stride);
        for gy in 0..cells {
            for gx in 0..cells {
                for _ in 0..per {
                    out.push([stride as f32 * (gx as f32 + 0.5), stride as f32 * (gy as f32 + 0.5)]);
                }
            }
        }
    }
    out
}

/// A face box as human keeps it: corners in image pixels (already enlarged and squared) and
/// the detector's score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    /// `[x, y]` of the top-left corner.
    pub start: [f32; 2],
    /// `[x, y]` of the bottom-right corner.
    pub end: [f32; 2],
    pub confidence: f32,
}

/// The detector's input: the image resized (legacy bilinear) to 256², `/127.5 − 1`.
pub fn input(image: &Image) -> Image {
    let mut r = image.resize_bilinear(INPUT_SIZE, INPUT_SIZE);
    for v in &mut r.data {
        *v = *v / 127.5 - 1.0;
    }
    r
}

/// Decodes one image's `[896 × 17]` raw output (as [`BlazeFace::forward`]) into human's face box
/// for an image of `width`×`height`: the best anchor with score > `min_confidence`, or `None`.
pub fn decode(raw: &[f32], width: usize, height: usize, min_confidence: f32, scale: f32) -> Option<FaceBox> {
    assert_eq!(raw.len(), ANCHORS * 17, "one image's raw output");
    let size = INPUT_SIZE as f32;
    let anchors = anchors();
    // nonMaxSuppression with maxOutputSize 1 keeps the first highest score above the threshold
    let mut best: Option<(usize, f32)> = None;
    for i in 0..ANCHORS {
        let score = 1.0 / (1.0 + (-raw[i * 17]).exp());
        if score > min_confidence && best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    let (i, confidence) = best?;
    let r = &raw[i * 17..(i + 1) * 17];
    let a = anchors[i];
    // decodeBoxes: centre = offset + anchor, half size, in 256 px input coordinates
    let (cx, cy) = ((r[1] + a[0]) / size, (r[2] + a[1]) / size);
    let (hw, hh) = (r[3] / size / 2.0, r[4] / size / 2.0);
    let (x1, y1, x2, y2) = ((cx - hw) * size, (cy - hh) * size, (cx + hw) * size, (cy + hh) * size);
    // scaleBoxCoordinates to the image, enlargeBox(scale), squarifyBox (Math.round)
    let (fx, fy) = (width as f32 / size, height as f32 / size);
    let (sx1, sy1, sx2, sy2) = (x1 * fx, y1 * fy, x2 * fx, y2 * fy);
    let (ccx, ccy) = ((sx1 + sx2) / 2.0, (sy1 + sy2) / 2.0);
    let (w, h) = ((sx2 - sx1).abs() * scale, (sy2 - sy1).abs() * scale);
    let half = w.max(h) / 2.0;
    let round = |v: f32| (v as f64 + 0.5).floor() as f32; // JS Math.round
    Some(FaceBox { start: [round(ccx - half), round(ccy - half)], end: [round(ccx + half), round(ccy + half)], confidence })
}

/// Runs the detector on images (any sizes) and decodes each with human's defaults.
pub fn detect(net: &BlazeFace, images: &[Image], device: &Device) -> Vec<Option<FaceBox>> {
    if images.is_empty() {
        return vec![];
    }
    let inputs: Vec<Image> = images.iter().map(input).collect();
    let raw = to_vec(&net.forward(crate::image::batch(&inputs, device)));
    images.iter().enumerate().map(|(k, im)| decode(&raw[k * ANCHORS * 17..(k + 1) * ANCHORS * 17], im.width, im.height, 0.2, 1.4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_human_s() {
        let a = anchors();
        assert_eq!(a.len(), ANCHORS);
        assert_eq!(a[0], [8.0, 8.0]);
        assert_eq!(a[1], [8.0, 8.0]);
        assert_eq!(a[2], [24.0, 8.0]);
        assert_eq!(a[512], [16.0, 16.0]);
        assert_eq!(a[512 + 6], [48.0, 16.0]);
        assert_eq!(a[895], [240.0, 240.0]);
    }

    #[test]
    fn decodes_the_best_anchor_enlarged_and_squared() {
        let mut raw = vec![-10.0f32; ANCHORS * 17];
        // anchor 2 at (24, 8): offset (+1, +2), size 20 × 10, logit 2 → score 0.88
        raw[2 * 17..2 * 17 + 5].copy_from_slice(&[2.0, 1.0, 2.0, 20.0, 10.0]);
        raw[5 * 17] = 1.0; // a weaker one
        let b = decode(&raw, 512, 256, 0.2, 1.4).unwrap();
        // centre (25, 10) → image (50, 10); box 40 × 10 → ×1.4 = 56 × 14 → square 56
        assert_eq!(b.start, [22.0, -18.0]);
        assert_eq!(b.end, [78.0, 38.0]);
        assert!((b.confidence - 0.880797).abs() < 1e-5);
        assert!(decode(&vec![-10.0; ANCHORS * 17], 256, 256, 0.2, 1.4).is_none());
    }
}
