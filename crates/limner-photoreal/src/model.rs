//! MobileStyleGAN (Belousov 2021, `bes-dev/MobileStyleGAN.pytorch`) as burn modules, named as in
//! its PyTorch code: `MappingNetwork`, `MobileSynthesisNetwork` with `ConstantInput`, a
//! `StyledConv2d` at 4×4, seven `MobileSynthesisBlock`s (`IDWTUpsaplme` up, two `StyledConv2d`
//! with `ModulatedDWConv2d`), the last block's `MultichannelIamge` (`to_img`) and the inverse
//! Haar wavelet transform that turns its 12 channels into the RGB image at twice the size.
//!
//! Layout is NCHW. The per-sample modulation is folded into the depthwise kernels (one grouped
//! conv over `N×C` groups), so no full-size "x × style" pass is spent on those layers.

use anyhow::{bail, Result};
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};
use limner_core::{tensor_from, HostTensor, StateDict};
use limner_kernels::mobile;

/// Width of z and w.
pub const W_DIM: usize = 512;

fn get<'a>(sd: &'a StateDict, name: &str) -> &'a HostTensor {
    // only called after a successful check_*
    &sd[name]
}

fn t1(sd: &StateDict, name: &str, d: &Device) -> Tensor<1> {
    let h = get(sd, name);
    tensor_from(h.data.clone(), [h.data.len()], d)
}

fn t2(sd: &StateDict, name: &str, shape: [usize; 2], d: &Device) -> Tensor<2> {
    tensor_from(get(sd, name).data.clone(), shape, d)
}

fn t4(sd: &StateDict, name: &str, d: &Device) -> Tensor<4> {
    let h = get(sd, name);
    let s: [usize; 4] = h.shape.clone().try_into().expect("checked 4-d");
    tensor_from(h.data.clone(), s, d)
}

fn scalar(sd: &StateDict, name: &str) -> f64 {
    get(sd, name).data[0] as f64
}

/// Collects "missing" / "wrong shape" problems so one error lists them all.
struct Checker<'a> {
    sd: &'a StateDict,
    errors: Vec<String>,
    seen: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(sd: &'a StateDict) -> Self {
        Self { sd, errors: vec![], seen: vec![] }
    }

    fn want(&mut self, name: &str, shape: &[usize]) {
        self.seen.push(name.to_string());
        match self.sd.get(name) {
            None => self.errors.push(format!("missing tensor `{name}` (expected shape {shape:?})")),
            Some(h) if h.shape != shape => {
                self.errors.push(format!("tensor `{name}` has shape {:?}, expected {shape:?}", h.shape))
            }
            Some(h) if h.data.len() != shape.iter().product::<usize>() => {
                self.errors.push(format!("tensor `{name}` has {} values for shape {shape:?}", h.data.len()))
            }
            _ => {}
        }
    }

    fn affine(&mut self, prefix: &str, out: usize) {
        self.want(&format!("{prefix}.modulation.weight"), &[out, W_DIM]);
        self.want(&format!("{prefix}.modulation.bias"), &[out]);
        self.want(&format!("{prefix}.modulation.scale"), &[1]);
    }

    fn finish(self, prefix: &str, what: &str) -> Result<()> {
        let mut errors = self.errors;
        let extra: Vec<&String> =
            self.sd.keys().filter(|k| k.starts_with(prefix) && !self.seen.contains(k)).collect();
        if !extra.is_empty() {
            errors.push(format!("{} unexpected tensor(s), e.g. `{}`", extra.len(), extra[0]));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("invalid {what}: {}", errors.join("; "))
        }
    }
}

/// Checks the mapping tensors (`mapping.*`); returns the number of layers.
pub fn check_mapping(sd: &StateDict) -> Result<usize> {
    let layers = (0..).take_while(|k| sd.contains_key(&format!("mapping.fc{k}.weight"))).count();
    let mut c = Checker::new(sd);
    if layers == 0 {
        c.errors.push("missing tensor `mapping.fc0.weight` (no mapping layers)".into());
    }
    c.want("mapping.pixel_norm_eps", &[1]);
    if sd.contains_key("mapping.w_avg") {
        // optional: stored by `convert_random_face` (see `crate::convert::W_AVG_SAMPLES`)
        c.want("mapping.w_avg", &[W_DIM]);
    }
    for k in 0..layers {
        c.want(&format!("mapping.fc{k}.weight"), &[W_DIM, W_DIM]);
        c.want(&format!("mapping.fc{k}.bias"), &[W_DIM]);
        c.want(&format!("mapping.fc{k}.slope"), &[1]);
        c.want(&format!("mapping.fc{k}.gain"), &[1]);
    }
    c.finish("mapping.", "mapping network")?;
    Ok(layers)
}

/// Checks the synthesis tensors (`m.*`, `idwt.*`); returns the channel widths
/// `[C0 (4×4), C1 (8×8), ..., CB]`.
pub fn check_synthesis(sd: &StateDict) -> Result<Vec<usize>> {
    let Some(input) = sd.get("m.input.input") else {
        bail!("invalid synthesis network: missing tensor `m.input.input` (the 4×4 constant input)");
    };
    let [1, c0, 4, 4] = input.shape.as_slice() else {
        bail!("invalid synthesis network: tensor `m.input.input` has shape {:?}, expected [1, C, 4, 4]", input.shape);
    };
    let blocks = sd
        .keys()
        .filter_map(|k| k.strip_prefix("m.layers.")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let mut c = Checker::new(sd);
    let mut ch = vec![*c0];
    for i in 0..blocks {
        let width = [
            format!("m.layers.{i}.conv2.bias"),
            format!("m.layers.{i}.conv1.bias"),
            format!("m.layers.{i}.conv2.conv.modulation.weight"),
        ]
        .iter()
        .find_map(|n| sd.get(n).and_then(|h| h.shape.first().copied()));
        match width {
            Some(w) => ch.push(w),
            None => {
                c.errors.push(format!("block m.layers.{i}: missing tensors `m.layers.{i}.conv1.bias` and `m.layers.{i}.conv2.bias`"));
                ch.push(ch[i] / 2);
            }
        }
    }
    c.want("m.input.input", &[1, *c0, 4, 4]);
    c.affine("m.conv1.conv", *c0);
    c.want("m.conv1.conv.weight", &[*c0, *c0, 3, 3]);
    c.want("m.conv1.noise.const", &[1, 1, 4, 4]);
    c.want("m.conv1.bias", &[*c0]);
    for i in 0..blocks {
        let p = format!("m.layers.{i}");
        let (cin, cout, r) = (ch[i], ch[i + 1], 8usize << i);
        if cin % 4 != 0 {
            c.errors.push(format!("block {p}: input width {cin} is not a multiple of 4"));
        }
        c.affine(&format!("{p}.up"), cin);
        for (conv, ci) in [("conv1", cin / 4), ("conv2", cout)] {
            c.affine(&format!("{p}.{conv}.conv"), ci);
            c.want(&format!("{p}.{conv}.conv.weight_dw"), &[ci, 1, 3, 3]);
            c.want(&format!("{p}.{conv}.conv.weight_permute"), &[cout, ci, 1, 1]);
            c.want(&format!("{p}.{conv}.noise.const"), &[1, 1, r, r]);
            c.want(&format!("{p}.{conv}.bias"), &[cout]);
        }
    }
    if blocks == 0 {
        c.errors.push("no synthesis blocks (`m.layers.0.*`) found".into());
    } else {
        let p = format!("m.layers.{}.to_img", blocks - 1);
        let cl = ch[blocks];
        c.affine(&format!("{p}.conv"), cl);
        c.want(&format!("{p}.conv.weight"), &[12, cl, 1, 1]);
        c.want(&format!("{p}.bias"), &[12]);
    }
    c.want("m.lrelu_slope", &[1]);
    c.want("idwt.g0", &[2]);
    c.want("idwt.g1", &[2]);
    // `m.layers.K.to_img` of earlier blocks are dead in the traced graph and absent.
    let mut sub = Checker::new(sd);
    sub.errors = c.errors;
    sub.seen = c.seen;
    sub.finish("m.", "synthesis network")?;
    let mut idwt = Checker::new(sd);
    idwt.seen = vec!["idwt.g0".into(), "idwt.g1".into()];
    idwt.finish("idwt.", "synthesis network")?;
    Ok(ch)
}

/// `EqualLinear` of the mapping, equalised-lr scale already folded into the weight by the export:
/// `lrelu(x W^T + b, slope) * gain`.
#[derive(Clone, Debug)]
pub struct MappingLayer {
    /// `W^T`, `[in, out]`
    pub weight_t: Tensor<2>,
    /// `[1, out]`
    pub bias: Tensor<2>,
    pub slope: f64,
    pub gain: f64,
}

/// `MappingNetwork`: pixel norm, then 8 fully connected layers with leaky ReLU. z → w.
#[derive(Clone, Debug)]
pub struct MappingNetwork {
    pub pixel_norm_eps: f64,
    pub layers: Vec<MappingLayer>,
    /// The average w (`[1, 512]`) for truncation, when the file stores `mapping.w_avg`.
    pub w_avg: Option<Tensor<2>>,
}

impl MappingNetwork {
    pub fn from_state_dict(sd: &StateDict, device: &Device) -> Result<Self> {
        let n = check_mapping(sd)?;
        let layers = (0..n)
            .map(|k| {
                let p = format!("mapping.fc{k}");
                MappingLayer {
                    weight_t: t2(sd, &format!("{p}.weight"), [W_DIM, W_DIM], device).transpose(),
                    bias: t2(sd, &format!("{p}.bias"), [1, W_DIM], device),
                    slope: scalar(sd, &format!("{p}.slope")),
                    gain: scalar(sd, &format!("{p}.gain")),
                }
            })
            .collect();
        let w_avg = sd.contains_key("mapping.w_avg").then(|| t2(sd, "mapping.w_avg", [1, W_DIM], device));
        Ok(Self { pixel_norm_eps: scalar(sd, "mapping.pixel_norm_eps"), layers, w_avg })
    }

    /// `z [N, 512] -> w [N, 512]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let norm = (z.clone().square().mean_dim(1) + self.pixel_norm_eps).sqrt().recip(); // [N, 1]
        let mut x = z * norm;
        for l in &self.layers {
            x = leaky_relu(x.matmul(l.weight_t.clone()) + l.bias.clone(), l.slope).mul_scalar(l.gain);
        }
        x
    }
}

/// `modulation` of a modulated layer: `(w M^T + b) * scale`, one style per input channel.
#[derive(Clone, Debug)]
pub struct Modulation {
    /// `M^T`, `[512, C]`
    pub weight_t: Tensor<2>,
    /// `[1, C]`
    pub bias: Tensor<2>,
    pub scale: f64,
}

impl Modulation {
    fn load(sd: &StateDict, prefix: &str, device: &Device) -> Self {
        let c = get(sd, &format!("{prefix}.modulation.bias")).data.len();
        Self {
            weight_t: t2(sd, &format!("{prefix}.modulation.weight"), [c, W_DIM], device).transpose(),
            bias: t2(sd, &format!("{prefix}.modulation.bias"), [1, c], device),
            scale: scalar(sd, &format!("{prefix}.modulation.scale")),
        }
    }

    /// `w [N, 512] -> s [N, C]`
    pub fn forward(&self, w: Tensor<2>) -> Tensor<2> {
        (w.matmul(self.weight_t.clone()) + self.bias.clone()).mul_scalar(self.scale)
    }
}

/// How the synthesis layers get their per-pixel noise.
pub enum Noise<'a> {
    /// The noise baked into the IR (fixed maps, already times each layer's `noise.weight`):
    /// what OpenVINO computes.
    Baked,
    /// No noise.
    Zero,
    /// One additive map per noise layer (`[N or 1, 1, R, R]`, in [`Synthesis::noise_resolutions`]
    /// order), already scaled: for fresh noise pass `strength_k * randn` with
    /// [`Synthesis::noise_strengths`].
    Maps(&'a [Tensor<4>]),
}

/// `StyledConv2d`: modulated conv (depthwise 3×3 + pointwise 1×1, or a plain 3×3 at 4×4),
/// noise, bias, leaky ReLU. Demodulation is a per-output-channel constant in MobileStyleGAN
/// (`style_inv` buffer), folded into the conv weight by the export.
#[derive(Clone, Debug)]
pub struct StyledConv {
    pub modulation: Modulation,
    /// `[C, 1, 3, 3]` for `ModulatedDWConv2d`; `None` for the 4×4 block's `ModulatedConv2d`
    pub weight_dw: Option<Tensor<4>>,
    /// `[O, C, 1, 1]` (`weight_permute`) or `[O, C, 3, 3]`
    pub weight: Tensor<4>,
    /// `[O]`
    pub bias: Tensor<1>,
    /// `[1, 1, R, R]`: baked, weighted noise
    pub noise_const: Tensor<4>,
    pub slope: f64,
}

impl StyledConv {
    fn load(sd: &StateDict, prefix: &str, slope: f64, device: &Device) -> Self {
        let dw = format!("{prefix}.conv.weight_dw");
        let (weight_dw, weight) = if sd.contains_key(&dw) {
            (Some(t4(sd, &dw, device)), t4(sd, &format!("{prefix}.conv.weight_permute"), device))
        } else {
            (None, t4(sd, &format!("{prefix}.conv.weight"), device))
        };
        Self {
            modulation: Modulation::load(sd, &format!("{prefix}.conv"), device),
            weight_dw,
            weight,
            bias: t1(sd, &format!("{prefix}.bias"), device),
            noise_const: t4(sd, &format!("{prefix}.noise.const"), device),
            slope,
        }
    }

    /// `x [N, C, H, W]`, `w [N, 512]` -> `[N, O, H, W]`
    pub fn forward(&self, x: Tensor<4>, w: Tensor<2>, noise: Option<Tensor<4>>) -> Tensor<4> {
        let s = self.modulation.forward(w);
        if let (Some(dw), true) = (&self.weight_dw, fast(&x)) {
            // one fused pass per row tile (limner-kernels::mobile): same math as below
            let [n, c, _, _] = x.dims();
            let [o, ..] = self.weight.dims();
            let kdw = dw.clone().reshape([1, c, 9]) * s.reshape([n, c, 1]);
            let wpw = self.weight.clone().reshape([1, o, c]);
            return mobile::styled_conv_t(x, Some(kdw), wpw, self.bias.clone(), noise, Some(self.slope), None, None);
        }
        self.forward_burn(x, s, noise)
    }

    /// `forward(idwt(x * s_up))` (the block's `up` then this `conv1`) fused: the 2× map is made
    /// per row tile in cache. `x [N, 4C, H, W]`, `s_up [N, 4C]`, `k` the [`idwt`] kernel.
    /// `None` when the fast kernels do not apply.
    pub fn forward_after_idwt(&self, x: &Tensor<4>, s_up: Tensor<2>, k: &Tensor<4>, w: Tensor<2>, noise: Option<Tensor<4>>) -> Option<Tensor<4>> {
        let dw = self.weight_dw.as_ref()?;
        if !fast(x) {
            return None;
        }
        let [n, c4, _, _] = x.dims();
        let c = c4 / 4;
        let [o, ..] = self.weight.dims();
        let s = self.modulation.forward(w);
        let kdw = dw.clone().reshape([1, c, 9]) * s.reshape([n, c, 1]);
        let wpw = self.weight.clone().reshape([1, o, c]);
        let coef = idwt_coef(n, c, Some(s_up), k);
        Some(mobile::styled_conv_t(x.clone(), Some(kdw), wpw, self.bias.clone(), noise, Some(self.slope), None, Some(coef)))
    }

    /// [`Self::forward`] followed by `to_img.forward(.., w_img)`, fused (the layer's output
    /// never leaves the cache), when the fast kernels apply; `None` otherwise.
    pub fn forward_to_img(&self, x: &Tensor<4>, w: Tensor<2>, noise: Option<Tensor<4>>, to_img: &ToImg, w_img: Tensor<2>) -> Option<Tensor<4>> {
        let dw = self.weight_dw.as_ref()?;
        if !fast(x) {
            return None;
        }
        let [n, c, _, _] = x.dims();
        let [o, ..] = self.weight.dims();
        let s = self.modulation.forward(w);
        let kdw = dw.clone().reshape([1, c, 9]) * s.reshape([n, c, 1]);
        let wpw = self.weight.clone().reshape([1, o, c]);
        let si = to_img.modulation.forward(w_img); // [N, O]
        let k = to_img.weight.clone().reshape([1, 12, o]) * si.reshape([n, 1, o]); // [N, 12, O]
        Some(mobile::styled_conv_t(x.clone(), Some(kdw), wpw, self.bias.clone(), noise, Some(self.slope), Some((k, to_img.bias.clone())), None))
    }

    /// The burn composition of [`Self::forward`] with the style `s [N, C]` given.
    fn forward_burn(&self, x: Tensor<4>, s: Tensor<2>, noise: Option<Tensor<4>>) -> Tensor<4> {
        let x = match &self.weight_dw {
            Some(dw) => {
                let x = depthwise_modulated(x, dw, s);
                conv2d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
            }
            None => {
                let [n, c, _, _] = x.dims();
                let x = x * s.reshape([n, c, 1, 1]);
                // limner-kernels' im2col + gemm conv (burn's own on other backends): burn flex's
                // direct conv took ~5 ms for this 4x4 512->512 layer
                limner_kernels::conv2d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
            }
        };
        let x = match noise {
            Some(n) => x + n,
            None => x,
        };
        leaky_relu(x, self.slope)
    }
}

/// `x * s` followed by the depthwise 3×3 conv, as one grouped conv with the style folded into
/// per-sample kernels: `x [N, C, H, W]`, `dw [C, 1, 3, 3]`, `s [N, C]`.
fn depthwise_modulated(x: Tensor<4>, dw: &Tensor<4>, s: Tensor<2>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let k = dw.clone().reshape([1, c, 9]) * s.reshape([n, c, 1]); // [N, C, 9]
    let k = k.reshape([n * c, 1, 3, 3]);
    let y = conv2d(x.reshape([1, n * c, h, w]), k, None, ConvOptions::new([1, 1], [1, 1], [1, 1], n * c));
    y.reshape([n, c, h, w])
}

/// The inverse one-level 2-D DWT of `pytorch_wavelets.DWTInverse` (mode `zero`) for 2-tap
/// filters: bands `[ll | (lh, hl, hh) per channel]` in `x [N, 4C, H, W]` -> `[N, C, 2H, 2W]`.
///
/// Each output pixel `(2i+a, 2j+b)` is `sum_band band[i, j] * K[band, a, b]` with `K` the outer
/// products of g0/g1 (ll: g0 g0, lh: g1 along H, hl: g1 along W, hh: g1 g1): the six strided
/// transposed convs of the IR done as one grouped stride-2 transposed conv (4 bands -> 1
/// channel per group) after putting each channel's 4 bands next to each other. `k`: `[4, 1, 2, 2]`.
pub fn idwt(x: Tensor<4>, k: &Tensor<4>) -> Tensor<4> {
    let [n, c4, h, w] = x.dims();
    let c = c4 / 4;
    let ll = x.clone().narrow(1, 0, c).reshape([n, c, 1, h, w]);
    let high = x.narrow(1, c, 3 * c).reshape([n, c, 3, h, w]);
    let x = Tensor::cat(vec![ll, high], 2).reshape([n, 4 * c, h, w]); // channel-major bands
    let weight = k.clone().repeat_dim(0, c); // [4C, 1, 2, 2]
    conv_transpose2d(x, weight, None, ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], c))
}

/// Whether the fused inference kernels of `limner_kernels::mobile` run this forward pass (plain
/// flex device, f32, `LIMNER_FAST_MOBILE` not 0); elsewhere (autodiff, other backends) the
/// burn composition runs.
fn fast(x: &Tensor<4>) -> bool {
    mobile::usable(x)
}

/// [`idwt`] of `x * s` (`s [N, 4C]` per band channel, `None` = 1) as one pass, the band scales
/// folded into the 16 coefficients per channel (`limner_kernels::mobile::idwt`).
pub fn idwt_fast(x: Tensor<4>, s: Option<Tensor<2>>, k: &Tensor<4>) -> Tensor<4> {
    let [n, c4, _, _] = x.dims();
    mobile::idwt_t(x, idwt_coef(n, c4 / 4, s, k))
}

/// The 16 coefficients per channel of `limner_kernels::mobile::idwt` (`[N, C, 16]`): the band
/// scales `s [N, 4C]` (`None` = 1) times the kernel `k`.
fn idwt_coef(n: usize, c: usize, s: Option<Tensor<2>>, k: &Tensor<4>) -> Tensor<3> {
    let k = k.clone().reshape([1, 1, 4, 4]); // [band, a * 2 + b]
    let coef = match s {
        Some(s) => {
            let ll = s.clone().narrow(1, 0, c).reshape([n, c, 1]);
            let high = s.narrow(1, c, 3 * c).reshape([n, c, 3]);
            Tensor::cat(vec![ll, high], 2).reshape([n, c, 4, 1]) * k
        }
        None => k.repeat_dim(0, n).repeat_dim(1, c),
    };
    coef.reshape([n, c, 16])
}

/// `K[band, 0, a, b]` for [`idwt`].
fn idwt_kernel(g0: [f32; 2], g1: [f32; 2], device: &Device) -> Tensor<4> {
    // (H filter, W filter) per band: ll, lh, hl, hh
    let f = [(g0, g0), (g1, g0), (g0, g1), (g1, g1)];
    let mut k = Vec::with_capacity(16);
    for (fh, fw) in f {
        for a in 0..2 {
            for b in 0..2 {
                k.push(fh[a] * fw[b]);
            }
        }
    }
    tensor_from(k, [4, 1, 2, 2], device)
}

/// `MobileSynthesisBlock`: `up` (modulate the 4C wavelet bands, inverse DWT to 2× size), `conv1`,
/// `conv2`. (Its `to_img` only matters in the last block; the others were traced away.)
#[derive(Clone, Debug)]
pub struct SynthesisBlock {
    pub up: Modulation,
    pub conv1: StyledConv,
    pub conv2: StyledConv,
}

/// `MultichannelIamge` of the last block: modulated 1×1 conv to 12 channels (RGB low band + 3×3
/// high bands), no demodulation, plus bias.
#[derive(Clone, Debug)]
pub struct ToImg {
    pub modulation: Modulation,
    /// `[12, C, 1, 1]`
    pub weight: Tensor<4>,
    /// `[12]`
    pub bias: Tensor<1>,
}

impl ToImg {
    /// `x [N, C, H, W]`, `w [N, 512]` -> `[N, 12, H, W]` (per-sample weights as one grouped conv)
    pub fn forward(&self, x: Tensor<4>, w: Tensor<2>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let s = self.modulation.forward(w); // [N, C]
        let k = self.weight.clone().reshape([1, 12, c]) * s.reshape([n, 1, c]); // [N, 12, C]
        if fast(&x) {
            return mobile::styled_conv_t(x, None, k, self.bias.clone(), None, None, None, None);
        }
        Self::forward_burn(x, k, &self.bias)
    }

    /// The burn composition of [`Self::forward`]: `k [N, 12, C]` the modulated weights.
    fn forward_burn(x: Tensor<4>, k: Tensor<3>, bias: &Tensor<1>) -> Tensor<4> {
        let [n, c, h, wd] = x.dims();
        let bias = bias.clone();
        let bias = bias.reshape([1, 12]).repeat_dim(0, n).reshape([n * 12]);
        let y = conv2d(
            x.reshape([1, n * c, h, wd]),
            k.reshape([n * 12, c, 1, 1]),
            Some(bias),
            ConvOptions::new([1, 1], [0, 0], [1, 1], n),
        );
        y.reshape([n, 12, h, wd])
    }
}

/// `MobileSynthesisNetwork`: w per style layer -> RGB image `[N, 3, 1024, 1024]` in about [-1, 1].
#[derive(Clone, Debug)]
pub struct Synthesis {
    /// `ConstantInput`, `[1, C0, 4, 4]`
    pub input: Tensor<4>,
    pub conv1: StyledConv,
    pub layers: Vec<SynthesisBlock>,
    pub to_img: ToImg,
    /// `[4, 1, 2, 2]`, see [`idwt`]
    pub idwt_k: Tensor<4>,
    /// `[C0, C1, ...]`
    pub channels: Vec<usize>,
}

impl Synthesis {
    pub fn from_state_dict(sd: &StateDict, device: &Device) -> Result<Self> {
        let channels = check_synthesis(sd)?;
        let slope = scalar(sd, "m.lrelu_slope");
        let blocks = channels.len() - 1;
        let layers = (0..blocks)
            .map(|i| {
                let p = format!("m.layers.{i}");
                SynthesisBlock {
                    up: Modulation::load(sd, &format!("{p}.up"), device),
                    conv1: StyledConv::load(sd, &format!("{p}.conv1"), slope, device),
                    conv2: StyledConv::load(sd, &format!("{p}.conv2"), slope, device),
                }
            })
            .collect();
        let p = format!("m.layers.{}.to_img", blocks - 1);
        let taps = |n: &str| -> [f32; 2] { get(sd, n).data.clone().try_into().expect("checked [2]") };
        Ok(Self {
            input: t4(sd, "m.input.input", device),
            conv1: StyledConv::load(sd, "m.conv1", slope, device),
            layers,
            to_img: ToImg {
                modulation: Modulation::load(sd, &format!("{p}.conv"), device),
                weight: t4(sd, &format!("{p}.conv.weight"), device),
                bias: t1(sd, &format!("{p}.bias"), device),
            },
            idwt_k: idwt_kernel(taps("idwt.g0"), taps("idwt.g1"), device),
            channels,
        })
    }

    /// Number of style inputs (one per modulation): `conv1`, then `up`, `conv1`, `conv2` of
    /// each block, then `to_img`. 23 for random-face.
    pub fn num_ws(&self) -> usize {
        2 + 3 * self.layers.len()
    }

    /// The module each style input modulates, in `ws` order (`m.conv1`, `m.layers.0.up`, ...).
    pub fn style_layer_names(&self) -> Vec<String> {
        let mut v = vec!["m.conv1".to_string()];
        for i in 0..self.layers.len() {
            for part in ["up", "conv1", "conv2"] {
                v.push(format!("m.layers.{i}.{part}"));
            }
        }
        v.push(format!("m.layers.{}.to_img", self.layers.len() - 1));
        v
    }

    /// The noise layers in order (`conv1`, then `conv1`, `conv2` of each block) and their sizes.
    pub fn noise_resolutions(&self) -> Vec<usize> {
        self.noise_layers().iter().map(|l| l.noise_const.dims()[3]).collect()
    }

    /// RMS of each baked noise map: the layer's noise strength (`|noise.weight|` times the RMS
    /// of the N(0,1) map traced into the IR), to scale fresh `randn` noise with.
    pub fn noise_strengths(&self) -> Vec<f32> {
        self.noise_layers()
            .iter()
            .map(|l| limner_core::to_vec(&l.noise_const.clone().square().mean().sqrt())[0])
            .collect()
    }

    fn noise_layers(&self) -> Vec<&StyledConv> {
        let mut v = vec![&self.conv1];
        for b in &self.layers {
            v.push(&b.conv1);
            v.push(&b.conv2);
        }
        v
    }

    /// `ws [N, num_ws, 512]` -> image `[N, 3, 2R, 2R]` (R = 512 for random-face).
    pub fn forward(&self, ws: Tensor<3>, noise: Noise) -> Tensor<4> {
        let [n, l, d] = ws.dims();
        assert_eq!(l, self.num_ws(), "ws must be [N, {}, {W_DIM}]", self.num_ws());
        assert_eq!(d, W_DIM, "ws must be [N, {}, {W_DIM}]", self.num_ws());
        if let Noise::Maps(maps) = &noise {
            assert_eq!(maps.len(), self.noise_layers().len(), "one noise map per noise layer");
        }
        let style = |k: usize| ws.clone().narrow(1, k, 1).reshape([n, W_DIM]);
        let mut noise_k = 0usize;
        let mut next_noise = |layer: &StyledConv| -> Option<Tensor<4>> {
            let r = match &noise {
                Noise::Baked => Some(layer.noise_const.clone()),
                Noise::Zero => None,
                Noise::Maps(maps) => Some(maps[noise_k].clone()),
            };
            noise_k += 1;
            r
        };
        let x = self.input.clone().repeat_dim(0, n);
        let mut x = self.conv1.forward(x, style(0), next_noise(&self.conv1));
        for (i, b) in self.layers.iter().enumerate() {
            let [_, c, _, _] = x.dims();
            let s = b.up.forward(style(1 + 3 * i)); // [N, 4C']
            let nz = next_noise(&b.conv1);
            x = match b.conv1.forward_after_idwt(&x, s.clone(), &self.idwt_k, style(2 + 3 * i), nz.clone()) {
                Some(y) => y,
                None => {
                    let up = if fast(&x) { idwt_fast(x, Some(s), &self.idwt_k) } else { idwt(x * s.reshape([n, c, 1, 1]), &self.idwt_k) };
                    b.conv1.forward(up, style(2 + 3 * i), nz)
                }
            };
            let nz = next_noise(&b.conv2);
            if i + 1 == self.layers.len() {
                let w_img = style(1 + 3 * self.layers.len());
                if let Some(img) = b.conv2.forward_to_img(&x, style(3 + 3 * i), nz.clone(), &self.to_img, w_img) {
                    return idwt_fast(img, None, &self.idwt_k);
                }
            }
            x = b.conv2.forward(x, style(3 + 3 * i), nz);
        }
        let img = self.to_img.forward(x, style(1 + 3 * self.layers.len()));
        if fast(&img) {
            idwt_fast(img, None, &self.idwt_k)
        } else {
            idwt(img, &self.idwt_k)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use limner_core::to_vec;

    fn rel_err(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt()
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
        a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(((x - y) as f64).abs())) / scale
    }

    fn rnd<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
    }

    /// The fused kernels (limner_kernels::mobile) against the burn composition, odd sizes.
    #[test]
    fn fused_kernels_match_burn_path() {
        let d = Device::flex();
        for &(n, c, o, h, w, noise_n) in &[(1, 5, 7, 9, 11, 1), (2, 12, 9, 13, 6, 2), (3, 4, 3, 1, 5, 0), (1, 36, 20, 33, 40, 1)] {
            let m = Modulation { weight_t: rnd([W_DIM, c], &d).mul_scalar(0.05), bias: rnd([1, c], &d), scale: 0.7 };
            let conv = StyledConv {
                modulation: m.clone(),
                weight_dw: Some(rnd([c, 1, 3, 3], &d)),
                weight: rnd([o, c, 1, 1], &d),
                bias: rnd([o], &d),
                noise_const: rnd([1, 1, h, w], &d),
                slope: 0.2,
            };
            let x = rnd([n, c, h, w], &d);
            let wv = rnd([n, W_DIM], &d);
            let noise = (noise_n > 0).then(|| rnd([noise_n, 1, h, w], &d));
            assert!(fast(&x));
            let got = to_vec(&conv.forward(x.clone(), wv.clone(), noise.clone()));
            let want = to_vec(&conv.forward_burn(x.clone(), m.forward(wv.clone()), noise));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "styled conv {n} {c}->{o} {h}x{w}: {e:.2e} (rms {:.2e})", rel_err(&got, &want));

            // up (idwt of 4c bands) fused into the conv
            let kk = idwt_kernel([0.7071, 0.7071], [-0.7071, 0.7071], &d);
            let (hi, wi) = (h.div_ceil(2), w.div_ceil(2));
            let xb = rnd([n, 4 * c, hi, wi], &d);
            let sb = rnd([n, 4 * c], &d);
            let nz = (noise_n > 0).then(|| rnd([noise_n, 1, 2 * hi, 2 * wi], &d));
            let got = to_vec(&conv.forward_after_idwt(&xb, sb.clone(), &kk, wv.clone(), nz.clone()).expect("fast path"));
            let up = idwt(xb * sb.reshape([n, 4 * c, 1, 1]), &kk);
            let want = to_vec(&conv.forward_burn(up, m.forward(wv.clone()), nz));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "idwt + styled conv {n} {c}->{o} {hi}x{wi}: {e:.2e}");

            let ti = ToImg { modulation: m.clone(), weight: rnd([12, c, 1, 1], &d), bias: rnd([12], &d) };
            // conv (c -> c, so to_img fits) fused with to_img
            let sq = StyledConv { weight: rnd([c, c, 1, 1], &d), bias: rnd([c], &d), ..conv.clone() };
            let nz = (noise_n > 0).then(|| rnd([noise_n, 1, h, w], &d));
            let wi = rnd([n, W_DIM], &d);
            let got = to_vec(&sq.forward_to_img(&x, wv.clone(), nz.clone(), &ti, wi.clone()).expect("fast path"));
            let y = sq.forward_burn(x.clone(), m.forward(wv.clone()), nz);
            let si = m.forward(wi);
            let k = ti.weight.clone().reshape([1, 12, c]) * si.reshape([n, 1, c]);
            let want = to_vec(&ToImg::forward_burn(y, k, &ti.bias));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "styled conv + to_img {n} {c} {h}x{w}: {e:.2e}");

            let got = to_vec(&ti.forward(x.clone(), wv.clone()));
            let s = m.forward(wv.clone());
            let k = ti.weight.clone().reshape([1, 12, c]) * s.clone().reshape([n, 1, c]);
            let want = to_vec(&ToImg::forward_burn(x.clone(), k, &ti.bias));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "to_img {n} {c} {h}x{w}: {e:.2e}");

            let kk = idwt_kernel([0.7071, 0.7071], [-0.7071, 0.7071], &d);
            let c4 = 4 * c;
            let xb = rnd([n, c4, h, w], &d);
            let sb = rnd([n, c4], &d);
            let got = to_vec(&idwt_fast(xb.clone(), Some(sb.clone()), &kk));
            let want = to_vec(&idwt(xb.clone() * sb.reshape([n, c4, 1, 1]), &kk));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "idwt (scaled) {n} {c4} {h}x{w}: {e:.2e}");
            let got = to_vec(&idwt_fast(xb.clone(), None, &kk));
            let want = to_vec(&idwt(xb, &kk));
            let e = max_rel(&got, &want);
            assert!(e < 1e-5, "idwt {n} {c4} {h}x{w}: {e:.2e}");
        }
    }
}
