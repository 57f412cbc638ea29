//! face-api's tiny face detector: a Tiny-YOLOv2-style single-class detector built from
//! depthwise separable convolutions (Redmon & Farhadi 2017, "YOLO9000"; face-api's
//! `TinyFaceDetector`, `TinyYolov2Base.runMobilenet`).
//!
//! Input: RGB in 0..255, the image padded to a square at the bottom/right with black and
//! resized (bilinear, TF's legacy sampling) to `input_size`, a multiple of 32 (face-api:
//! 416 by default). The net subtracts face-api's detector mean colour and divides by 255.
//! Output: a grid of `input_size / 32` cells, each with 5 anchors × (tx, ty, tw, th, score).
//! Shapes in the comments are for 416 px.

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::layers::{leaky, max_pool_same, normalize, Conv, Padding, SeparableConv, Weights};

/// The detector's mean RGB (face-api `MEAN_RGB` of the tiny face detector).
pub const MEAN_RGB: [f32; 3] = [117.001, 114.697, 97.404];

/// Anchor boxes (width, height) in grid cells (face-api `BOX_ANCHORS`).
pub const ANCHORS: [(f32, f32); 5] = [(1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061), (4.266906, 5.178857), (9.041765, 10.66308)];

/// Values per anchor: tx, ty, tw, th, objectness.
const BOX_ENCODING: usize = 5;

/// Detection settings (face-api `TinyFaceDetectorOptions` and the net's IoU threshold).
#[derive(Clone, Debug, PartialEq)]
pub struct TinyFaceDetectorConfig {
    /// Side of the square network input, a multiple of 32 (face-api's default: 416).
    pub input_size: usize,
    /// Minimum objectness after the sigmoid (face-api's default: 0.5).
    pub score_threshold: f32,
    /// Non-maximum suppression drops boxes overlapping a better one by more than this IoU.
    pub iou_threshold: f32,
}

impl Default for TinyFaceDetectorConfig {
    fn default() -> Self {
        Self { input_size: 416, score_threshold: 0.5, iou_threshold: 0.4 }
    }
}

/// A face box relative to the image: x, y, width, height in 0..1 of the image's width/height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl RelBox {
    fn area(&self) -> f32 {
        self.width * self.height
    }
    /// Intersection over union (face-api `iou`).
    pub fn iou(&self, o: &RelBox) -> f32 {
        let w = ((self.x + self.width).min(o.x + o.width) - self.x.max(o.x)).max(0.0);
        let h = ((self.y + self.height).min(o.y + o.height) - self.y.max(o.y)).max(0.0);
        let inter = w * h;
        inter / (self.area() + o.area() - inter)
    }
}

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Objectness (sigmoid of the score channel).
    pub score: f32,
    /// The box relative to the original (unpadded) image.
    pub rel_box: RelBox,
}

/// The detector's weights.
#[derive(Clone, Debug)]
pub struct TinyFaceDetector {
    conv0: Conv,
    /// conv1 ... conv5
    separable: Vec<SeparableConv>,
    conv8: Conv,
}

impl TinyFaceDetector {
    pub const NET: &'static str = "tiny-face-detector";

    /// Loads `tiny-face-detector.safetensors` (`limner models fetch --only face-api`).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, Self::NET, device)?)
    }

    /// Loads the fetched network from the cache.
    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(Self::NET, device)?)
    }

    fn from_weights(w: &Weights) -> Result<Self> {
        let conv0 = w.conv("conv0")?;
        let separable = (1..=5).map(|i| w.separable(&format!("conv{i}"))).collect::<Result<Vec<_>>>()?;
        let conv8 = w.conv("conv8")?;
        if conv8.out_channels() != ANCHORS.len() * BOX_ENCODING {
            bail!("{}: conv8 has {} outputs, expected {}", w.path().display(), conv8.out_channels(), ANCHORS.len() * BOX_ENCODING);
        }
        Ok(Self { conv0, separable, conv8 })
    }

    /// The raw grid. `x`: `[N, 3, S, S]` RGB in 0..255 → `[N, 25, S/32, S/32]` with channel
    /// `anchor · 5 + k`, k ∈ (tx, ty, tw, th, score).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = normalize(x, MEAN_RGB); //                                     [N, 3, 416, 416]
        let x = leaky(self.conv0.forward(x, 1, Padding::Valid)); //            [N, 16, 414, 414]
        let x = max_pool_same(x, 2, 2); //                                     [N, 16, 207, 207]
        let mut x = x;
        for (i, sep) in self.separable.iter().enumerate() {
            // pad 1 + valid 3×3 = "same" at stride 1
            x = leaky(sep.forward(x, 1, Padding::Same)); //                    [N, 32 | 64 | 128 | 256 | 512, ...]
            // 207 → 104 → 52 → 26 → 13; the last pool keeps 13 (stride 1)
            x = max_pool_same(x, 2, if i < 4 { 2 } else { 1 }); //              [N, C, 104 | 52 | 26 | 13 | 13, ...]
        }
        self.conv8.forward(x, 1, Padding::Valid) //                            [N, 25, 13, 13]
    }

    /// Decodes one image's grid into boxes above the threshold and runs non-maximum
    /// suppression (face-api `extractBoxes` + `nonMaxSuppression`). `grid`: `[25, G, G]`
    /// values as [`Self::forward`] returns them (host, row-major); `(width, height)`: the
    /// original image size, to undo the padding to a square.
    pub fn decode(grid: &[f32], cells: usize, width: usize, height: usize, cfg: &TinyFaceDetectorConfig) -> Vec<Detection> {
        assert_eq!(grid.len(), ANCHORS.len() * BOX_ENCODING * cells * cells, "grid size");
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        // the image filled the top-left of the square: relative-to-square → relative-to-image
        // (face-api divides by the resized image's rounded size)
        let s = cfg.input_size as f64;
        let scale = s / width.max(height) as f64;
        let (cx, cy) = ((s / (width as f64 * scale).round()) as f32, (s / (height as f64 * scale).round()) as f32);
        let at = |a: usize, k: usize, row: usize, col: usize| grid[((a * BOX_ENCODING + k) * cells + row) * cells + col];
        let mut found = vec![];
        for row in 0..cells {
            for col in 0..cells {
                for (a, &(aw, ah)) in ANCHORS.iter().enumerate() {
                    let score = sigmoid(at(a, 4, row, col));
                    if score <= cfg.score_threshold {
                        continue;
                    }
                    let n = cells as f32;
                    let ctx = (col as f32 + sigmoid(at(a, 0, row, col))) / n * cx;
                    let cty = (row as f32 + sigmoid(at(a, 1, row, col))) / n * cy;
                    let w = at(a, 2, row, col).exp() * aw / n * cx;
                    let h = at(a, 3, row, col).exp() * ah / n * cy;
                    found.push(Detection { score, rel_box: RelBox { x: ctx - w / 2.0, y: cty - h / 2.0, width: w, height: h } });
                }
            }
        }
        non_max_suppression(found, cfg.iou_threshold)
    }

    /// Detects faces in a batch of network inputs (`[N, 3, S, S]`, 0..255, each made by
    /// [`crate::image::detector_input`]); `sizes[i]` is image i's original (width, height).
    pub fn detect(&self, x: Tensor<4>, sizes: &[(usize, usize)], cfg: &TinyFaceDetectorConfig) -> Vec<Vec<Detection>> {
        let out = self.forward(x);
        let [n, c, g, _] = out.dims();
        assert_eq!(n, sizes.len(), "one size per image");
        let host = to_vec(&out);
        host.chunks_exact(c * g * g).zip(sizes).map(|(grid, &(w, h))| Self::decode(grid, g, w, h, cfg)).collect()
    }
}

/// Greedy non-maximum suppression, best score first (face-api `nonMaxSuppression`; ties
/// resolved as its stable sort does: the later box first).
pub fn non_max_suppression(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    // ascending by score, stable; face-api pops from the end
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[a].score.partial_cmp(&dets[b].score).unwrap_or(std::cmp::Ordering::Equal));
    let mut pick = vec![];
    while let Some(cur) = order.pop() {
        pick.push(cur);
        order.retain(|&i| dets[cur].rel_box.iou(&dets[i].rel_box) <= iou_threshold);
    }
    let mut out = Vec::with_capacity(pick.len());
    for i in pick {
        out.push(std::mem::replace(&mut dets[i], Detection { score: 0.0, rel_box: RelBox { x: 0.0, y: 0.0, width: 0.0, height: 0.0 } }));
    }
    out
}
