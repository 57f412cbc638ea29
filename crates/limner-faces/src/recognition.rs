//! face-api's `FaceRecognitionNet`: a port of dlib's face recognition ResNet (King 2017,
//! "dlib-models"; the ResNet-34 layout of He et al. 2016 with fewer filters), mapping a 150 px
//! face to a 128-d identity descriptor. Two faces of one person are typically closer than 0.6
//! in Euclidean distance.
//!
//! Each conv is followed by an affine "scale" layer (`x · weights + biases`, dlib's frozen
//! batch norm), folded here into the conv at load time. Downsampling residual blocks add an
//! average-pooled, zero-channel-padded shortcut (face-api `residualDown`).

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::layers::{avg_pool_valid, max_pool_valid, normalize, Conv, Padding, Weights, FACE_MEAN_RGB};

/// Descriptor length.
pub const DESCRIPTOR: usize = 128;

/// The distance under which two descriptors are taken for one person (dlib's and face-api's 0.6).
pub const SAME_PERSON: f32 = 0.6;

/// Input side (face-api: 150).
pub const INPUT_SIZE: usize = 150;

/// conv + bias + scale layer, folded: `weight · s`, `bias · s + b`.
fn conv_scaled(w: &Weights, prefix: &str) -> Result<Conv> {
    let c = w.conv(&format!("{prefix}/conv"))?;
    let s: Tensor<1> = w.get(&format!("{prefix}/scale/weights"))?;
    let b: Tensor<1> = w.get(&format!("{prefix}/scale/biases"))?;
    let o = c.out_channels();
    if s.dims()[0] != o || b.dims()[0] != o {
        bail!("{}: `{prefix}/scale` does not match its conv", w.path().display());
    }
    Ok(Conv { weight: c.weight * s.clone().reshape([o, 1, 1, 1]), bias: c.bias * s + b })
}

#[derive(Clone, Debug)]
struct Residual {
    conv1: Conv,
    conv2: Conv,
    down: bool,
}

impl Residual {
    fn load(w: &Weights, name: &str) -> Result<Self> {
        Ok(Self { conv1: conv_scaled(w, &format!("{name}/conv1"))?, conv2: conv_scaled(w, &format!("{name}/conv2"))?, down: name.contains("down") })
    }

    /// `[N, C, H, W] -> [N, C', H', W']` (H' = H, or (H − 3) / 2 + 1 padded up to H / 2 when down).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.down {
            let out = relu(self.conv1.forward(x.clone(), 1, Padding::Same)); //  [N, C, H, W]
            let out = self.conv2.forward(out, 1, Padding::Same); //              [N, C, H, W]
            return relu(out + x);
        }
        let out = relu(self.conv1.forward(x.clone(), 2, Padding::Valid)); //     [N, C', (H-3)/2+1, ...]
        let out = self.conv2.forward(out, 1, Padding::Same); //                  [N, C', h, w]
        let pooled = avg_pool_valid(x, 2, 2); //                                 [N, C, H/2, W/2]
        let [n, c, ph, pw] = pooled.dims();
        let [_, co, oh, ow] = out.dims();
        // the conv path may be one short of the pooled grid: zero rows/columns at the end
        let out = if (oh, ow) != (ph, pw) { out.pad([(0, ph - oh), (0, pw - ow)], burn::tensor::ops::PadMode::Constant(0.0)) } else { out };
        // the shortcut gains channels as zeros
        let pooled = if co != c { Tensor::cat(vec![pooled.clone(), Tensor::zeros([n, co - c, ph, pw], &pooled.device())], 1) } else { pooled };
        relu(out + pooled) //                                                    [N, C', H/2, W/2]
    }
}

#[derive(Clone, Debug)]
pub struct FaceRecognitionNet {
    conv32_down: Conv,
    blocks: Vec<Residual>,
    /// `[256, 128]`
    fc: Tensor<2>,
}

/// The residual blocks in order.
const BLOCKS: [&str; 14] = [
    "conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3", "conv128_down", "conv128_1", "conv128_2",
    "conv256_down", "conv256_1", "conv256_2", "conv256_down_out",
];

impl FaceRecognitionNet {
    pub const NET: &'static str = "face-recognition";

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, Self::NET, device)?)
    }

    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(Self::NET, device)?)
    }

    fn from_weights(w: &Weights) -> Result<Self> {
        let blocks = BLOCKS.iter().map(|b| Residual::load(w, b)).collect::<Result<Vec<_>>>()?;
        let fc: Tensor<2> = w.get("fc")?;
        if fc.dims() != [256, DESCRIPTOR] {
            bail!("{}: fc is {:?}, expected [256, 128]", w.path().display(), fc.dims());
        }
        Ok(Self { conv32_down: conv_scaled(w, "conv32_down")?, blocks, fc })
    }

    /// `[N, 3, 150, 150]` RGB 0..255 → `[N, 128]` descriptors.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = normalize(x, FACE_MEAN_RGB); //                                    [N, 3, 150, 150]
        let x = relu(self.conv32_down.forward(x, 2, Padding::Valid)); //           [N, 32, 72, 72]  7×7/2
        let mut x = max_pool_valid(x, 3, 2); //                                    [N, 32, 35, 35]
        for b in &self.blocks {
            // 35 → (64) 17 → (128) 8 → (256) 4 → (256) 2
            x = b.forward(x); //                                                    [N, C, G, G]
        }
        let x = x.mean_dim(3).mean_dim(2); //                                      [N, 256, 1, 1]
        let [n, c, _, _] = x.dims();
        x.reshape([n, c]).matmul(self.fc.clone()) //                               [N, 128]
    }

    /// Descriptors per input.
    pub fn descriptors(&self, x: Tensor<4>) -> Vec<[f32; DESCRIPTOR]> {
        to_vec(&self.forward(x)).chunks_exact(DESCRIPTOR).map(|c| c.try_into().unwrap()).collect()
    }
}

/// Euclidean distance between two descriptors (face-api `euclideanDistance`).
pub fn distance(a: &[f32; DESCRIPTOR], b: &[f32; DESCRIPTOR]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}
