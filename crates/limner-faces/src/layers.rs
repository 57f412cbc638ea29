//! The building blocks face-api's networks share, written to match TensorFlow.js exactly:
//! weights read from the converted safetensors file, TF "same" padding (which pads the
//! *end* of an axis when the total is odd), separable convolutions, pooling, leaky ReLU and
//! face-api's input normalisation.
//!
//! Every tensor is NCHW. Images enter the networks as RGB in 0..255 (face-api's
//! `toBatchTensor`); each network subtracts its own mean colour and divides by 255.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use limner_core::{read_safetensors, HostTensor};

/// The mean RGB face-api subtracts before the landmark, expression, age/gender and identity
/// networks (its `FaceFeatureExtractor`, `TinyXception` and `FaceRecognitionNet`).
pub const FACE_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// A converted face-api weight map (`limner models fetch --only face-api`), by the names of
/// face-api's weights manifest.
pub struct Weights {
    path: PathBuf,
    tensors: BTreeMap<String, HostTensor>,
    device: Device,
}

impl Weights {
    /// Reads `path` and checks its `format` metadata is `limner-faces/NET/1`.
    pub fn open(path: &Path, net: &str, device: &Device) -> Result<Self> {
        let (tensors, meta) = read_safetensors(path)?;
        let want = format!("limner-faces/{net}/1");
        if meta.get("format") != Some(&want) {
            bail!(
                "{} is not face-api's {net} as limner converts it (format {:?}, expected {want}): run `limner models fetch --only face-api --force`",
                path.display(),
                meta.get("format")
            );
        }
        Ok(Self { path: path.to_path_buf(), tensors, device: device.clone() })
    }

    /// The fetched network `net` (`tiny-face-detector`, `face-landmark-68`, ...).
    pub fn fetched(net: &str, device: &Device) -> Result<Self> {
        Self::open(&limner_models::fetch::net_path(net)?, net, device)
    }

    /// One tensor with the expected number of dimensions; errors name the file and the tensor.
    pub fn get<const D: usize>(&self, name: &str) -> Result<Tensor<D>> {
        let t = self.tensors.get(name).ok_or_else(|| anyhow!("{} has no tensor `{name}`", self.path.display()))?;
        if t.shape.len() != D {
            bail!("{}: `{name}` has shape {:?}, expected {D} dimensions", self.path.display(), t.shape);
        }
        let shape: [usize; D] = t.shape.clone().try_into().expect("checked length");
        Ok(Tensor::from_data(TensorData::new(t.data.clone(), shape), &self.device))
    }

    /// A convolution `PREFIX/filters` `[out, in, kh, kw]` + `PREFIX/bias` `[out]`.
    pub fn conv(&self, prefix: &str) -> Result<Conv> {
        let weight: Tensor<4> = self.get(&format!("{prefix}/filters"))?;
        let bias: Tensor<1> = self.get(&format!("{prefix}/bias"))?;
        check(&self.path, prefix, weight.dims()[0] == bias.dims()[0])?;
        Ok(Conv { weight, bias })
    }

    /// A separable convolution: `PREFIX/depthwise_filter` `[c, 1, 3, 3]`,
    /// `PREFIX/pointwise_filter` `[out, c, 1, 1]` and `PREFIX/bias` `[out]`.
    pub fn separable(&self, prefix: &str) -> Result<SeparableConv> {
        let depthwise: Tensor<4> = self.get(&format!("{prefix}/depthwise_filter"))?;
        let pointwise: Tensor<4> = self.get(&format!("{prefix}/pointwise_filter"))?;
        let bias: Tensor<1> = self.get(&format!("{prefix}/bias"))?;
        let [c, one, _, _] = depthwise.dims();
        let [out, cin, _, _] = pointwise.dims();
        check(&self.path, prefix, one == 1 && cin == c && bias.dims()[0] == out)?;
        Ok(SeparableConv { depthwise, pointwise, bias })
    }

    /// A fully connected layer `PREFIX/weights` `[in, out]` + `PREFIX/bias` `[out]`.
    pub fn fc(&self, prefix: &str) -> Result<Fc> {
        let weights: Tensor<2> = self.get(&format!("{prefix}/weights"))?;
        let bias: Tensor<1> = self.get(&format!("{prefix}/bias"))?;
        check(&self.path, prefix, weights.dims()[1] == bias.dims()[0])?;
        Ok(Fc { weights, bias })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn check(path: &Path, prefix: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!("{}: the shapes of `{prefix}/*` do not fit together", path.display()))
            .context("run `limner models fetch --only face-api --force`")
    }
}

/// TF padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Output size `ceil(in / stride)`; the total padding is split with the extra pixel at the end.
    Same,
    /// No padding.
    Valid,
}

/// `(before, after)` padding of TF's "same" along one axis.
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Pads H and W as TF "same" does for a `kernel`×`kernel` window with `stride`, with `value`.
fn pad_same(x: Tensor<4>, kernel: usize, stride: usize, value: f32) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let (top, bottom) = same_padding(h, kernel, stride);
    let (left, right) = same_padding(w, kernel, stride);
    if top + bottom + left + right == 0 {
        return x;
    }
    x.pad([(top, bottom), (left, right)], PadMode::Constant(value))
}

/// A depthwise convolution (one group per channel); `weight` `[C, 1, kh, kw]`.
pub fn grouped_conv(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: Padding) -> Tensor<4> {
    let c = weight.dims()[0];
    conv(x, weight, bias, stride, padding, c)
}

/// A 2-d convolution with a bias; `weight` `[out, in / groups, kh, kw]`.
pub(crate) fn conv(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: Padding, groups: usize) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    let [_, _, h, w] = x.dims();
    let (top, bottom) = if padding == Padding::Same { same_padding(h, kh, stride) } else { (0, 0) };
    let (left, right) = if padding == Padding::Same { same_padding(w, kw, stride) } else { (0, 0) };
    // symmetric padding goes to the conv itself; TF's lopsided padding is made explicitly
    let (x, pad) = if top == bottom && left == right { (x, [top, left]) } else { (x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0)), [0, 0]) };
    conv2d(x, weight, bias, ConvOptions::new([stride, stride], pad, [1, 1], groups))
}

/// `tf.conv2d` + bias.
#[derive(Clone, Debug)]
pub struct Conv {
    /// `[out, in, kh, kw]`
    pub weight: Tensor<4>,
    /// `[out]`
    pub bias: Tensor<1>,
}

impl Conv {
    pub fn forward(&self, x: Tensor<4>, stride: usize, padding: Padding) -> Tensor<4> {
        conv(x, self.weight.clone(), Some(self.bias.clone()), stride, padding, 1)
    }
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }
}

/// `tf.separableConv2d` (a depthwise 3×3, then a pointwise 1×1) + bias.
#[derive(Clone, Debug)]
pub struct SeparableConv {
    /// `[c, 1, 3, 3]`
    pub depthwise: Tensor<4>,
    /// `[out, c, 1, 1]`
    pub pointwise: Tensor<4>,
    /// `[out]`
    pub bias: Tensor<1>,
}

impl SeparableConv {
    pub fn forward(&self, x: Tensor<4>, stride: usize, padding: Padding) -> Tensor<4> {
        let c = self.depthwise.dims()[0];
        let x = conv(x, self.depthwise.clone(), None, stride, padding, c); // [N, c, H', W']
        conv(x, self.pointwise.clone(), Some(self.bias.clone()), 1, Padding::Valid, 1) // [N, out, H', W']
    }
    pub fn out_channels(&self) -> usize {
        self.pointwise.dims()[0]
    }
}

/// A fully connected layer, TF layout: `y = x · W + b` with `W` `[in, out]`.
#[derive(Clone, Debug)]
pub struct Fc {
    /// `[in, out]`
    pub weights: Tensor<2>,
    /// `[out]`
    pub bias: Tensor<1>,
}

impl Fc {
    /// `[N, in] -> [N, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weights.clone()) + self.bias.clone().unsqueeze::<2>()
    }
}

/// `tf.maxPool(x, k, stride, 'same')`: padded with −∞, the extra pixel at the end.
pub fn max_pool_same(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let x = pad_same(x, kernel, stride, f32::NEG_INFINITY);
    max_pool2d(x, MaxPoolOptions::new([kernel, kernel]).with_stride([stride, stride]))
}

/// `tf.maxPool(x, k, stride, 'valid')`.
pub fn max_pool_valid(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([kernel, kernel]).with_stride([stride, stride]))
}

/// `tf.avgPool(x, k, stride, 'valid')`.
pub fn avg_pool_valid(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([kernel, kernel]).with_stride([stride, stride]))
}

/// face-api's leaky ReLU, slope 0.1 (written there as `relu(x − 0.1x) + 0.1x`).
pub fn leaky(x: Tensor<4>) -> Tensor<4> {
    burn::tensor::activation::leaky_relu(x, 0.1)
}

/// `(x − mean_rgb) / 255` per channel: face-api's `normalize(...).div(255)`.
/// `[N, 3, H, W]` in 0..255 → centred, about −0.5..0.5.
pub fn normalize(x: Tensor<4>, mean_rgb: [f32; 3]) -> Tensor<4> {
    let device = x.device();
    let mean = Tensor::<1>::from_data(TensorData::new(mean_rgb.to_vec(), [3]), &device).reshape([1, 3, 1, 1]);
    (x - mean).div_scalar(255.0)
}


#[cfg(test)]
mod tests {
    use super::*;
    use limner_core::to_vec;

    #[test]
    fn tf_same_padding_puts_the_odd_pixel_at_the_end() {
        assert_eq!(same_padding(112, 3, 2), (0, 1));
        assert_eq!(same_padding(56, 3, 1), (1, 1));
        assert_eq!(same_padding(207, 2, 2), (0, 1));
        assert_eq!(same_padding(13, 2, 1), (0, 1));
        assert_eq!(same_padding(56, 1, 2), (0, 0));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
    }

    #[test]
    fn max_pool_same_matches_tf_at_the_border() {
        let d = Device::flex();
        // 1×1×3×3: TF 'same' 2×2 stride 1 pools [i, i+1] and the last row/column alone
        let x = Tensor::<4>::from_data(TensorData::new(vec![-1.0f32, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0], [1, 1, 3, 3]), &d);
        let y = to_vec(&max_pool_same(x, 2, 1));
        assert_eq!(y, vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0]);
        let x = Tensor::<4>::from_data(TensorData::new((0..9).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 3, 3]), &d);
        assert_eq!(to_vec(&max_pool_same(x, 2, 2)), vec![4.0, 5.0, 7.0, 8.0]);
    }
}
