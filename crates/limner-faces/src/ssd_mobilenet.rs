//! face-api's SSD-MobileNetV1 face detector: MobileNetV1 (Howard et al. 2017) with ReLU6,
//! the SSD head of Liu et al. 2016 ("SSD: Single Shot MultiBox Detector") as the TensorFlow
//! Object Detection API builds it: 6 feature maps (32², 16², 8², 4², 2², 1² for a 512 px
//! input), 3 anchors on the first and 6 on the others, 5118 anchors in all, fixed anchor boxes
//! (`Output/extra_dim`), box codes scaled by (10, 10, 5, 5), a sigmoid face score and greedy
//! non-maximum suppression. More accurate and ~10× slower than the tiny detector.
//!
//! Input: RGB 0..255, padded at the end to a square and resized to 512 (as the tiny
//! detector); the net maps it to −1..1.

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::layers::{self, Conv, Padding, Weights};
use crate::tiny_face_detector::{Detection, RelBox};

/// Anchors of a 512 px input.
pub const ANCHORS: usize = 5118;

/// TF's batch-norm epsilon in this graph (face-api writes the f32 value 0.0010000000474974513).
const EPSILON: f32 = 0.001;

/// Detection settings (face-api `SsdMobilenetv1Options`; the IoU threshold is fixed there).
#[derive(Clone, Debug, PartialEq)]
pub struct SsdMobilenetV1Config {
    /// Input side (face-api: 512; the anchors are made for it).
    pub input_size: usize,
    pub min_confidence: f32,
    pub max_results: usize,
    pub iou_threshold: f32,
}

impl Default for SsdMobilenetV1Config {
    fn default() -> Self {
        Self { input_size: 512, min_confidence: 0.5, max_results: 100, iou_threshold: 0.5 }
    }
}

/// A conv + bias, clipped to 0..6. Depthwise convs carry their batch norm folded in.
#[derive(Clone, Debug)]
struct ConvRelu6 {
    conv: Conv,
    depthwise: bool,
}

impl ConvRelu6 {
    fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        let y = if self.depthwise { self.conv.forward_depthwise(x, stride) } else { self.conv.forward(x, stride, Padding::Same) };
        y.clamp(0.0, 6.0)
    }
}

#[derive(Clone, Debug)]
pub struct SsdMobilenetV1 {
    /// `MobilenetV1/Conv2d_0_pointwise` then 13 (depthwise, pointwise) pairs
    conv0: ConvRelu6,
    pairs: Vec<(ConvRelu6, ConvRelu6)>,
    /// `Prediction/Conv2d_{0..7}_pointwise`
    extra: Vec<ConvRelu6>,
    /// `Prediction/BoxPredictor_{0..5}`: (box encoding, class) convs
    predictors: Vec<(Conv, Conv)>,
    /// `[5118, 4]` anchor boxes (ymin, xmin, ymax, xmax), relative
    anchors: Vec<[f32; 4]>,
    device: Device,
}

impl SsdMobilenetV1 {
    pub const NET: &'static str = "ssd-mobilenetv1";

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, Self::NET, device)?, device)
    }

    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(Self::NET, device)?, device)
    }

    fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let pointwise = |prefix: &str| -> Result<ConvRelu6> {
            Ok(ConvRelu6 { conv: Conv { weight: w.get(&format!("{prefix}/weights"))?, bias: w.get(&format!("{prefix}/convolution_bn_offset"))? }, depthwise: false })
        };
        let depthwise = |i: usize| -> Result<ConvRelu6> {
            let p = format!("MobilenetV1/Conv2d_{i}_depthwise");
            let weight: Tensor<4> = w.get(&format!("{p}/depthwise_weights"))?;
            let bn = |k: &str| w.get::<1>(&format!("{p}/BatchNorm/{k}"));
            let (gamma, beta, mean, var) = (bn("gamma")?, bn("beta")?, bn("moving_mean")?, bn("moving_variance")?);
            // batch norm folded: s = gamma / sqrt(var + eps); w · s; beta − mean · s
            let s = gamma / var.add_scalar(EPSILON).sqrt();
            if to_vec(&s.clone()).iter().any(|v| !v.is_finite()) {
                bail!("{}: `{p}/BatchNorm` has non-finite scales", w.path().display());
            }
            let c = weight.dims()[0];
            Ok(ConvRelu6 { conv: Conv { weight: weight * s.clone().reshape([c, 1, 1, 1]), bias: beta - mean * s }, depthwise: true })
        };
        let conv0 = pointwise("MobilenetV1/Conv2d_0_pointwise")?;
        let pairs = (1..=13).map(|i| Ok((depthwise(i)?, pointwise(&format!("MobilenetV1/Conv2d_{i}_pointwise"))?))).collect::<Result<Vec<_>>>()?;
        let extra = (0..8).map(|i| pointwise(&format!("Prediction/Conv2d_{i}_pointwise"))).collect::<Result<Vec<_>>>()?;
        let predictors = (0..6)
            .map(|i| {
                let c = |k: &str| -> Result<Conv> {
                    let p = format!("Prediction/BoxPredictor_{i}/{k}");
                    Ok(Conv { weight: w.get(&format!("{p}/weights"))?, bias: w.get(&format!("{p}/biases"))? })
                };
                Ok((c("BoxEncodingPredictor")?, c("ClassPredictor")?))
            })
            .collect::<Result<Vec<_>>>()?;
        let a: Tensor<3> = w.get("Output/extra_dim")?;
        if a.dims() != [1, ANCHORS, 4] {
            bail!("{}: anchors {:?}, expected [1, {ANCHORS}, 4]", w.path().display(), a.dims());
        }
        let anchors = to_vec(&a).chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        Ok(Self { conv0, pairs, extra, predictors, anchors, device: device.clone() })
    }

    /// `[N, 3, 512, 512]` RGB 0..255 → raw box codes `[N, 5118, 4]` (ty, tx, th, tw) and
    /// class logits `[N, 5118, 3]`, anchors ordered by feature map, then row, column, anchor.
    pub fn forward_raw(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let x = x.div_scalar(127.5).sub_scalar(1.0); //                               [N, 3, 512, 512]
        let mut x = self.conv0.forward(x, 2); //                                      [N, 32, 256, 256]
        let mut conv11 = None;
        for (i, (dw, pw)) in self.pairs.iter().enumerate() {
            let stride = if [2, 4, 6, 12].contains(&(i + 1)) { 2 } else { 1 };
            x = pw.forward(dw.forward(x, stride), 1); //                              [N, 64..1024, 256 → 16, ...]
            if i + 1 == 11 {
                conv11 = Some(x.clone()); //                                          [N, 512, 32, 32]
            }
        }
        // extra feature maps: 1×1 then 3×3/2, four times
        let mut maps = vec![conv11.expect("13 pairs"), x.clone()]; //                 32², 16²
        for pair in self.extra.chunks(2) {
            x = pair[1].forward(pair[0].forward(x, 1), 2); //                         [N, 512 | 256 | 256 | 128, 8² | 4² | 2² | 1²]
            maps.push(x.clone());
        }
        let n = maps[0].dims()[0];
        let (mut boxes, mut classes) = (vec![], vec![]);
        for (map, (enc, cls)) in maps.into_iter().zip(&self.predictors) {
            // NCHW → NHWC so that the reshape orders anchors as TF does
            let b = enc.forward(map.clone(), 1, Padding::Same).permute([0, 2, 3, 1]); // [N, G, G, A·4]
            let c = cls.forward(map, 1, Padding::Same).permute([0, 2, 3, 1]); //         [N, G, G, A·3]
            boxes.push(b.reshape([n as i64, -1, 4]));
            classes.push(c.reshape([n as i64, -1, 3]));
        }
        (Tensor::cat(boxes, 1), Tensor::cat(classes, 1)) //                            [N, 5118, 4], [N, 5118, 3]
    }

    /// Decoded boxes `[N, 5118, 4]` (ymin, xmin, ymax, xmax relative to the input square) and
    /// face scores `[N, 5118]` (face-api `outputLayer`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<2>) {
        let (codes, classes) = self.forward_raw(x);
        let [n, a, _] = codes.dims();
        let anchors: Vec<f32> = self.anchors.iter().flatten().copied().collect();
        let anchors = Tensor::<3>::from_data(burn::tensor::TensorData::new(anchors, [1, a, 4]), &self.device);
        let size = anchors.clone().slice_dim(2, 2..4) - anchors.clone().slice_dim(2, 0..2); // [1, A, 2] (h, w)
        let centre = anchors.slice_dim(2, 0..2) + size.clone().div_scalar(2.0); //             [1, A, 2]
        let half = codes.clone().slice_dim(2, 2..4).div_scalar(5.0).exp() * size.clone() / 2.0; // [N, A, 2]
        let mid = codes.slice_dim(2, 0..2).div_scalar(10.0) * size + centre; //                  [N, A, 2]
        let boxes = Tensor::cat(vec![mid.clone() - half.clone(), mid + half], 2); //              [N, A, 4]
        let scores = sigmoid(classes.slice_dim(2, 1..2)).reshape([n, a]); //                    [N, A]
        (boxes, scores)
    }

    /// Faces in a batch of 512 px inputs; `sizes[i]` is image i's original (width, height).
    pub fn detect(&self, x: Tensor<4>, sizes: &[(usize, usize)], cfg: &SsdMobilenetV1Config) -> Vec<Vec<Detection>> {
        let (boxes, scores) = self.forward(x);
        let (boxes, scores) = (to_vec(&boxes), to_vec(&scores));
        let s = cfg.input_size as f64;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let b: Vec<[f32; 4]> = boxes[i * ANCHORS * 4..(i + 1) * ANCHORS * 4].chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
                let sc = &scores[i * ANCHORS..(i + 1) * ANCHORS];
                let scale = s / w.max(h) as f64;
                let (pad_x, pad_y) = ((s / (w as f64 * scale).round()) as f32, (s / (h as f64 * scale).round()) as f32);
                non_max_suppression(&b, sc, cfg)
                    .into_iter()
                    .map(|k| {
                        let (top, bottom) = (b[k][0].max(0.0) * pad_y, b[k][2].min(1.0) * pad_y);
                        let (left, right) = (b[k][1].max(0.0) * pad_x, b[k][3].min(1.0) * pad_x);
                        Detection { score: sc[k], rel_box: RelBox { x: left, y: top, width: right - left, height: bottom - top } }
                    })
                    .collect()
            })
            .collect()
    }
}

impl Conv {
    /// Depthwise 3×3 conv ("same") + bias: `weight` `[C, 1, 3, 3]`.
    fn forward_depthwise(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        layers::grouped_conv(x, self.weight.clone(), Some(self.bias.clone()), stride, Padding::Same)
    }
}

/// face-api's SSD suppression: candidates above `min_confidence`, best first; a candidate is
/// kept unless it overlaps a kept box by more than `iou_threshold`; at most `max_results`.
fn non_max_suppression(boxes: &[[f32; 4]], scores: &[f32], cfg: &SsdMobilenetV1Config) -> Vec<usize> {
    let iou = |i: usize, j: usize| -> f32 {
        let (a, b) = (boxes[i], boxes[j]);
        let (ay0, ax0, ay1, ax1) = (a[0].min(a[2]), a[1].min(a[3]), a[0].max(a[2]), a[1].max(a[3]));
        let (by0, bx0, by1, bx1) = (b[0].min(b[2]), b[1].min(b[3]), b[0].max(b[2]), b[1].max(b[3]));
        let (area_a, area_b) = ((ay1 - ay0) * (ax1 - ax0), (by1 - by0) * (bx1 - bx0));
        if area_a <= 0.0 || area_b <= 0.0 {
            return 0.0;
        }
        let inter = (ay1.min(by1) - ay0.max(by0)).max(0.0) * (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
        inter / (area_a + area_b - inter)
    };
    let mut cand: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > cfg.min_confidence).collect();
    // JS sort is stable: equal scores keep index order
    cand.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut selected: Vec<usize> = vec![];
    for c in cand {
        if selected.len() >= cfg.max_results.min(scores.len()) {
            break;
        }
        if selected.iter().rev().all(|&s| iou(c, s) <= cfg.iou_threshold) {
            selected.push(c);
        }
    }
    selected
}
