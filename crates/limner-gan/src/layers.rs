//! The building blocks of StyleGAN2-ADA (Karras et al. 2020), named as in the official
//! `networks.py`: equalised-learning-rate fully connected and conv layers, FIR resampling,
//! the modulated/demodulated convolution and ToRGB.
//!
//! Layout is NCHW everywhere. Tensors are created on whatever burn device the caller picks,
//! so the same code runs on flex (CPU), CUDA, ROCm or Metal.

use burn::tensor::activation::leaky_relu;
// Convolution switch: every conv here goes through limner-kernels, whose `conv2d` /
// `conv_transpose2d` have burn's signatures. On the flex CPU backend, dense convs (groups 1:
// the layer convs, fromrgb/skip/torgb 1x1, the G upsampling transposed conv) run limner's
// im2col + AVX-512 gemm kernels with hand-written backward passes (tested against burn in
// crates/limner-kernels/tests/parity.rs); the depthwise FIR convs (fir_filter, downsample2d,
// upsample2d) get limner's backward (burn's forward); other dtypes and every other backend
// (CUDA, ROCm, Metal) fall through to burn's own ops unchanged.
// `LIMNER_FAST_CONV=0` switches the fast path off at run time.
use limner_kernels::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};
use limner_core::randn_host;

use crate::params::{join, tensor_from, ParamKind, ParamVisitor, Params};

/// `sqrt(2)`: the gain that keeps leaky-ReLU activations at unit variance.
pub const LRELU_GAIN: f64 = std::f64::consts::SQRT_2;

/// Checks a tensor's shape where a block hands over to the next, as the official networks do
/// with `misc.assert_shape`: a mismatch panics naming the block and both shapes (a wrong config
/// or a broken layer fails there, not three blocks later).
#[track_caller]
pub fn assert_shape<const D: usize>(t: &Tensor<D>, want: [usize; D], block: &str) {
    let got = t.dims();
    assert!(got == want, "{block}: shape {got:?}, expected {want:?}");
}

/// The activation that follows a bias in `bias_act`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Linear,
    /// `leaky_relu(x, 0.2) * sqrt(2)`.
    Lrelu,
}

/// `act(x + b) * gain`, the official `bias_act` (bias broadcast over channel dim 1).
///
/// With a bias and `Lrelu`, this is `limner_kernels::bias_lrelu`: on flex one fused pass
/// forward and one backward (no mask tensor), burn's `leaky_relu(x + b) * gain` elsewhere
/// (bit-identical forward; `LIMNER_FAST_BIAS_ACT=0` turns it off).
pub fn bias_act<const D: usize>(x: Tensor<D>, b: Option<Tensor<1>>, act: Activation, gain: f64) -> Tensor<D> {
    let b = match (b, act) {
        (Some(b), Activation::Lrelu) => return limner_kernels::bias_lrelu(x, b, 0.2, LRELU_GAIN * gain),
        (b, _) => b,
    };
    let x = match b {
        Some(b) => {
            let c = b.dims()[0];
            let mut shape = [1usize; D];
            shape[1] = c;
            x + b.reshape(shape)
        }
        None => x,
    };
    match act {
        Activation::Linear if gain == 1.0 => x,
        Activation::Linear => x.mul_scalar(gain),
        Activation::Lrelu => leaky_relu(x, 0.2).mul_scalar(LRELU_GAIN * gain),
    }
}

/// The separable FIR filter `[1,3,3,1]`, as the 4x4 `outer(k,k)/64` (sum 1).
pub fn fir_filter_2d() -> [f32; 16] {
    let k = [1.0f32, 3.0, 3.0, 1.0];
    let mut f = [0.0f32; 16];
    for y in 0..4 {
        for x in 0..4 {
            f[y * 4 + x] = k[y] * k[x] / 64.0;
        }
    }
    f
}

/// The `resample_filter` buffer the official networks store (`[4, 4]`).
pub fn fir_buffer(device: &Device) -> Tensor<2> {
    tensor_from(fir_filter_2d().to_vec(), [4, 4], device)
}

/// The FIR filter as a depthwise kernel `[C, 1, 4, 4]` times `gain`.
fn fir_depthwise(channels: usize, gain: f32, device: &Device) -> Tensor<4> {
    let f = fir_filter_2d();
    let data: Vec<f32> = (0..channels).flat_map(|_| f.iter().map(move |v| v * gain)).collect();
    tensor_from(data, [channels, 1, 4, 4], device)
}

/// `upfirdn2d.upsample2d`: zero-insert to 2H x 2W, pad 2 before / 1 after, filter with FIR*4.
///
/// Written as one depthwise transposed convolution (stride 2, padding 1), which is the
/// same sum: `out[j] = sum_i x[i] * f[j + 1 - 2i]` with the symmetric 4-tap filter.
pub fn upsample2d(x: Tensor<4>) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let f = fir_depthwise(c, 4.0, &x.device());
    // [N, C, H, W] -> [N, C, 2H, 2W]
    conv_transpose2d(x, f, None, ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], c))
}

/// FIR-filter with symmetric zero padding `pad` and gain (no resampling).
pub fn fir_filter(x: Tensor<4>, pad: usize, gain: f32) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let f = fir_depthwise(c, gain, &x.device());
    conv2d(x, f, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], c))
}

/// `upfirdn2d.downsample2d`: pad 1, FIR filter, keep every second sample from 0.
pub fn downsample2d(x: Tensor<4>) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let f = fir_depthwise(c, 1.0, &x.device());
    // [N, C, H, W] -> [N, C, H/2, W/2]
    conv2d(x, f, None, ConvOptions::new([2, 2], [1, 1], [1, 1], c))
}

/// Equalised-learning-rate fully connected layer (`FullyConnectedLayer`).
///
/// The stored weight is N(0,1)/lr_multiplier; the forward pass scales it by
/// `lr_multiplier / sqrt(in)` and the bias by `lr_multiplier`.
#[derive(Clone, Debug)]
pub struct FullyConnectedLayer {
    /// `[out, in]`
    pub weight: Tensor<2>,
    /// `[out]`
    pub bias: Tensor<1>,
    pub activation: Activation,
    pub weight_gain: f64,
    pub bias_gain: f64,
}

impl FullyConnectedLayer {
    pub fn new(
        in_features: usize,
        out_features: usize,
        activation: Activation,
        lr_multiplier: f64,
        bias_init: f32,
        init: &mut Init,
    ) -> Self {
        let device = &init.device().clone();
        let weight = init.randn([out_features, in_features]).div_scalar(lr_multiplier);
        let bias = Tensor::full([out_features], bias_init, device);
        Self {
            weight,
            bias,
            activation,
            weight_gain: lr_multiplier / (in_features as f64).sqrt(),
            bias_gain: lr_multiplier,
        }
    }

    /// `[N, in] -> [N, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let w = self.weight.clone().mul_scalar(self.weight_gain); // [out, in]
        let y = x.matmul(w.transpose()); // [N, out]
        let b = self.bias.clone().mul_scalar(self.bias_gain);
        bias_act(y, Some(b), self.activation, 1.0)
    }
}

impl Params for FullyConnectedLayer {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        v.visit(&join(prefix, "weight"), &mut self.weight, ParamKind::Trainable);
        v.visit(&join(prefix, "bias"), &mut self.bias, ParamKind::Trainable);
    }
}

/// Equalised-learning-rate conv layer of the discriminator (`Conv2dLayer`), optionally
/// followed by a factor-2 FIR downsampling.
#[derive(Clone, Debug)]
pub struct Conv2dLayer {
    /// `[out, in, k, k]`
    pub weight: Tensor<4>,
    /// `[out]`, absent for the resnet skip
    pub bias: Option<Tensor<1>>,
    pub activation: Activation,
    /// extra gain after the activation (`sqrt(0.5)` in resnet branches)
    pub act_gain: f64,
    pub down: bool,
    pub kernel: usize,
    /// `[4, 4]` buffer, kept for state-dict fidelity (always the `[1,3,3,1]` filter)
    pub resample_filter: Tensor<2>,
    /// clamp the output to ±this (`conv_clamp` times the layer's gain)
    pub clamp: Option<f32>,
}

/// How a [`Conv2dLayer`] is built, burn `Config` style: the sizes, then named options
/// (`Conv2dConfig::new(c, c, 3).with_activation(Activation::Lrelu).with_down(true)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// square kernel side (1 or 3)
    pub kernel: usize,
    /// a learned bias (default on; off for the resnet skip)
    pub bias: bool,
    /// default [`Activation::Linear`]
    pub activation: Activation,
    /// a factor-2 FIR downsampling (default off)
    pub down: bool,
    /// extra gain after the activation (default 1; `sqrt(0.5)` in resnet branches)
    pub act_gain: f64,
}

impl Conv2dConfig {
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self { in_channels, out_channels, kernel, bias: true, activation: Activation::Linear, down: false, act_gain: 1.0 }
    }
    pub fn with_bias(self, bias: bool) -> Self {
        Self { bias, ..self }
    }
    pub fn with_activation(self, activation: Activation) -> Self {
        Self { activation, ..self }
    }
    pub fn with_down(self, down: bool) -> Self {
        Self { down, ..self }
    }
    pub fn with_act_gain(self, act_gain: f64) -> Self {
        Self { act_gain, ..self }
    }

    /// The layer, its weight drawn from `init` (N(0, 1); the bias starts at 0).
    pub fn init(&self, init: &mut Init) -> Conv2dLayer {
        let device = &init.device().clone();
        let (cin, cout, k) = (self.in_channels, self.out_channels, self.kernel);
        Conv2dLayer {
            weight: init.randn([cout, cin, k, k]),
            bias: self.bias.then(|| Tensor::zeros([cout], device)),
            activation: self.activation,
            act_gain: self.act_gain,
            down: self.down,
            kernel: k,
            resample_filter: fir_buffer(device),
            clamp: None,
        }
    }
}

impl Conv2dLayer {
    /// `[N, in, H, W] -> [N, out, H or H/2, W or W/2]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, cin, _, _] = self.weight.dims();
        let w = self.weight.clone().mul_scalar(1.0 / ((cin * self.kernel * self.kernel) as f64).sqrt());
        let y = match (self.down, self.kernel) {
            (false, k) => conv2d(x, w, None, ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1)),
            // 1x1 after a FIR downsample (resnet skip)
            (true, 1) => conv2d(downsample2d(x), w, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1)),
            // pad 2 + FIR (H -> H+1), then a stride-2 3x3 conv without padding (-> H/2)
            (true, _) => {
                let x = fir_filter(x, 2, 1.0);
                conv2d(x, w, None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1))
            }
        };
        let y = bias_act(y, self.bias.clone(), self.activation, self.act_gain);
        match self.clamp {
            Some(c) => y.clamp(-c, c),
            None => y,
        }
    }

    /// This layer clamping at `conv_clamp` (times its gain, as the official `bias_act` does).
    pub fn with_conv_clamp(self, conv_clamp: Option<f64>) -> Self {
        Self { clamp: conv_clamp.map(|c| (c * self.act_gain) as f32), ..self }
    }
}

impl Params for Conv2dLayer {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        v.visit(&join(prefix, "weight"), &mut self.weight, ParamKind::Trainable);
        if let Some(b) = &mut self.bias {
            v.visit(&join(prefix, "bias"), b, ParamKind::Trainable);
        }
        v.visit(&join(prefix, "resample_filter"), &mut self.resample_filter, ParamKind::Buffer);
    }
}

/// How a synthesis layer gets its per-pixel noise.
pub enum NoiseMode<'a> {
    /// The layer's fixed `noise_const` buffer (reproducible images).
    Const,
    /// No noise.
    None,
    /// Fresh N(0,1) noise `[N,1,H,W]` drawn from the caller's RNG on the host, so that
    /// training is bit-exact on resume. `scale` multiplies it (the "noise" slider).
    Random { rng: &'a mut rand_chacha::ChaCha8Rng, scale: f32 },
    /// One RNG per sample, so each image's noise depends only on its own seed.
    PerSample { rngs: Vec<rand_chacha::ChaCha8Rng>, scale: f32 },
}

/// The source of initial weights: N(0, 1) values from a seeded ChaCha8 stream on the host,
/// so a network's initialisation depends on its seed only (no global RNG state).
pub struct Init {
    rng: rand_chacha::ChaCha8Rng,
    device: Device,
}

impl Init {
    pub fn new(seed: u64, device: &Device) -> Self {
        use rand::SeedableRng;
        Self { rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed), device: device.clone() }
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// A tensor of standard normal values.
    pub fn randn<const D: usize>(&mut self, shape: [usize; D]) -> Tensor<D> {
        let n = shape.iter().product();
        tensor_from(randn_host(&mut self.rng, n), shape, &self.device)
    }
}

/// The modulated 3x3 convolution with demodulation, noise, bias and lrelu
/// (`SynthesisLayer`). `up` makes it the upsampling conv0 of a block.
#[derive(Clone, Debug)]
pub struct SynthesisLayer {
    /// w -> styles `s` (`[N, w_dim] -> [N, in]`), bias initialised to 1
    pub affine: FullyConnectedLayer,
    /// `[out, in, 3, 3]` (no equalised-lr gain: demodulation removes it)
    pub weight: Tensor<4>,
    /// `[out]`
    pub bias: Tensor<1>,
    /// scalar stored as `[1]` (0-d in the official state dict)
    pub noise_strength: Tensor<1>,
    /// `[R, R]` buffer
    pub noise_const: Tensor<2>,
    /// `[4, 4]` buffer (state-dict fidelity)
    pub resample_filter: Tensor<2>,
    pub up: bool,
    pub resolution: usize,
    /// clamp the output to ±this (`conv_clamp`; the activation gain is 1 at inference)
    pub clamp: Option<f32>,
    /// `Σ_k W[o, i, k]²` (`[out, in]`, the demodulation's weight term) kept from
    /// [`SynthesisLayer::cache_demod`] for calls that do not change the weights; `None`:
    /// computed in every forward. Every visit of the parameters drops it.
    pub demod_sq: Option<Tensor<2>>,
}

impl SynthesisLayer {
    pub fn new(in_channels: usize, out_channels: usize, w_dim: usize, resolution: usize, up: bool, init: &mut Init) -> Self {
        let device = &init.device().clone();
        Self {
            affine: FullyConnectedLayer::new(w_dim, in_channels, Activation::Linear, 1.0, 1.0, init),
            weight: init.randn([out_channels, in_channels, 3, 3]),
            bias: Tensor::zeros([out_channels], device),
            noise_strength: Tensor::zeros([1], device),
            noise_const: init.randn([resolution, resolution]),
            resample_filter: fir_buffer(device),
            up,
            resolution,
            clamp: None,
            demod_sq: None,
        }
    }

    /// `Σ_k W[o, i, k]²`, `[out, in]`.
    fn weight_sq(&self) -> Tensor<2> {
        self.weight.clone().square().sum_dims_squeeze::<2, _>(&[2, 3])
    }

    /// Keeps `Σ_k W²` for the calls to come (generation, projection: the weights stay as they
    /// are; a 9.4 MB pass per 512-channel layer and call otherwise, about a tenth of a 256 px
    /// image's time). Any visit of the parameters (loading, an optimizer or EMA step, lifting to
    /// another device) drops it.
    pub fn cache_demod(&mut self) {
        self.demod_sq = Some(self.weight_sq());
    }

    /// `x [N, in, H, W]`, `w [N, w_dim]` -> `[N, out, R, R]` (R = 2H if `up`).
    ///
    /// Computed the "non-fused" way of the official training path: scale the input
    /// channels by the styles, run one ordinary conv shared by the whole batch, then scale
    /// the output channels by the demodulation coefficients. This equals the per-sample
    /// weight form `W'[n,o,i] = W[o,i] s[n,i] d[n,o]` exactly in real arithmetic (the test
    /// `modulated_conv_matches_per_sample_reference` checks it in float).
    pub fn forward(&self, x: Tensor<4>, w: Tensor<2>, noise: &mut NoiseMode) -> Tensor<4> {
        let [n, _, _, _] = x.dims();
        let styles = self.affine.forward(w); // [N, in]
        // d[n,o] = rsqrt(sum_i s[n,i]^2 * sum_k W[o,i,k]^2 + 1e-8)
        let w_sq = self.demod_sq.clone().unwrap_or_else(|| self.weight_sq()); // [out, in]
        let dcoefs = (styles.clone().square().matmul(w_sq.transpose()) + 1e-8).sqrt().recip(); // [N, out]
        // x * styles.reshape([n, cin, 1, 1]): one fused pass each way on flex (limner-kernels)
        let x = limner_kernels::scale_channels(x, styles); // [N, in, H, W]
        let x = if self.up {
            // conv_transpose2d(stride 2, weight [in, out, 3, 3]): [N, out, 2H+1, 2W+1]
            let wt = self.weight.clone().swap_dims(0, 1);
            let x = conv_transpose2d(x, wt, None, ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1));
            fir_filter(x, 1, 4.0) // [N, out, 2H, 2W]
        } else {
            conv2d(x, self.weight.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)) // [N, out, H, W]
        };
        let r = self.resolution;
        // the noise added to every channel, [1 or N, 1, R, R]
        let nadd = match noise {
            NoiseMode::None => None,
            NoiseMode::Const => {
                Some(self.noise_const.clone().reshape([1, 1, r, r]) * self.noise_strength.clone().reshape([1, 1, 1, 1]))
            }
            NoiseMode::Random { rng, scale } => {
                let z = randn_host(rng, n * r * r);
                let z = tensor_from(z, [n, 1, r, r], &x.device()).mul_scalar(*scale);
                Some(z * self.noise_strength.clone().reshape([1, 1, 1, 1]))
            }
            NoiseMode::PerSample { rngs, scale } => {
                assert_eq!(rngs.len(), n, "one noise RNG per sample");
                let z: Vec<f32> = rngs.iter_mut().flat_map(|r| randn_host(r, self.resolution * self.resolution)).collect();
                let z = tensor_from(z, [n, 1, r, r], &x.device()).mul_scalar(*scale);
                Some(z * self.noise_strength.clone().reshape([1, 1, 1, 1]))
            }
        };
        // lrelu(x * dcoefs + noise + bias) * sqrt(2): one fused op on flex (limner-kernels,
        // bit-identical forward), burn's composition elsewhere
        let y = limner_kernels::demod_noise_bias_lrelu(x, dcoefs, nadd, self.bias.clone(), 0.2, LRELU_GAIN);
        match self.clamp {
            Some(c) => y.clamp(-c, c),
            None => y,
        }
    }
}

impl Params for SynthesisLayer {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        // the visitor may change the weight
        self.demod_sq = None;
        v.visit(&join(prefix, "weight"), &mut self.weight, ParamKind::Trainable);
        v.visit(&join(prefix, "noise_strength"), &mut self.noise_strength, ParamKind::Trainable);
        v.visit(&join(prefix, "bias"), &mut self.bias, ParamKind::Trainable);
        v.visit(&join(prefix, "resample_filter"), &mut self.resample_filter, ParamKind::Buffer);
        v.visit(&join(prefix, "noise_const"), &mut self.noise_const, ParamKind::Buffer);
        self.affine.visit_params(&join(prefix, "affine"), v);
    }
}

/// 1x1 modulated conv to RGB without demodulation (`ToRGBLayer`).
#[derive(Clone, Debug)]
pub struct ToRGBLayer {
    pub affine: FullyConnectedLayer,
    /// `[3, in, 1, 1]`
    pub weight: Tensor<4>,
    /// `[3]`
    pub bias: Tensor<1>,
    /// clamp the output to ±this (`conv_clamp`)
    pub clamp: Option<f32>,
}

impl ToRGBLayer {
    pub fn new(in_channels: usize, out_channels: usize, w_dim: usize, init: &mut Init) -> Self {
        let device = &init.device().clone();
        Self {
            affine: FullyConnectedLayer::new(w_dim, in_channels, Activation::Linear, 1.0, 1.0, init),
            weight: init.randn([out_channels, in_channels, 1, 1]),
            bias: Tensor::zeros([out_channels], device),
            clamp: None,
        }
    }

    /// `x [N, in, H, W]`, `w [N, w_dim]` -> `[N, 3, H, W]`
    pub fn forward(&self, x: Tensor<4>, w: Tensor<2>) -> Tensor<4> {
        let [_, cin, _, _] = x.dims();
        let styles = self.affine.forward(w).mul_scalar(1.0 / (cin as f64).sqrt()); // [N, in]
        let x = limner_kernels::scale_channels(x, styles); // x * styles.reshape([n, cin, 1, 1])
        let y = conv2d(x, self.weight.clone(), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1)); // [N, 3, H, W]
        let y = bias_act(y, Some(self.bias.clone()), Activation::Linear, 1.0);
        match self.clamp {
            Some(c) => y.clamp(-c, c),
            None => y,
        }
    }
}

impl Params for ToRGBLayer {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        v.visit(&join(prefix, "weight"), &mut self.weight, ParamKind::Trainable);
        v.visit(&join(prefix, "bias"), &mut self.bias, ParamKind::Trainable);
        self.affine.visit_params(&join(prefix, "affine"), v);
    }
}
