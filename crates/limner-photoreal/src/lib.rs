//! Photoreal 1024px faces: the MobileStyleGAN of PyPI `random-face` (OpenVINO IR v10), run
//! natively in burn, with one style vector per layer.
//!
//! # Design: a module-by-module port, not an IR interpreter
//!
//! The IR is a trace of `bes-dev/MobileStyleGAN.pytorch`: 940 synthesis nodes of which ~470 are
//! constants and ~200 are shape arithmetic (`ShapeOf`/`Gather`/`Concat`/`Unsqueeze`) around a
//! small, regular network. limner ports that network (`MappingNetwork`, `StyledConv2d`,
//! `IDWTUpsaplme`, `MultichannelIamge`, the inverse Haar DWT) and the converter ([`convert_ir`])
//! maps the IR's constants onto it by their PyTorch layer names. Why:
//!
//! * **Reads best.** A newcomer sees `conv1`, `up`, `to_img`, `idwt` under the paper's names, not
//!   an op list; per-layer styles ([`Synthesis::forward`] takes `ws [N, 23, 512]`) are a plain
//!   `style(k)` per module, where an interpreter would have to rewire the single `style` input
//!   of 23 `MatMul`s by pattern matching at run time.
//! * **Runs faster.** The port is free to compute the same function with fewer passes over
//!   memory than the traced graph: the per-sample modulation is folded into the depthwise
//!   kernels (one grouped conv over `N×C` groups instead of a full-size multiply, batch > 1
//!   included), each inverse DWT is one grouped transposed conv instead of six strided
//!   transposed convs plus adds, bias rides inside the pointwise conv, and no shape arithmetic
//!   runs at all.
//! * **Fails clearly.** The converter knows what it expects, so a missing layer or wrong shape
//!   is reported by name (`missing tensor m.layers.3.conv1.bias`), and a truncated `.bin` names
//!   the constant whose bytes are gone.
//!
//! The cost is that the port only runs this architecture; a different IR would need its own
//! port. The parity test (`tests/openvino_parity.rs`) pins the port to OpenVINO's output.
//!
//! # Use
//!
//! ```no_run
//! # use burn::tensor::{Device, Tensor, Distribution};
//! # use limner_photoreal::{convert_random_face, MobileStyleGan, Noise};
//! # fn main() -> anyhow::Result<()> {
//! let dir = std::path::Path::new("random_face/data"); // from `pip download random-face==2021.7.21.1`
//! convert_random_face(dir, "random-face.safetensors".as_ref())?;
//! let device = Device::flex();
//! let g = MobileStyleGan::load("random-face.safetensors".as_ref(), &device)?;
//! let z = Tensor::<2>::random([1, 512], Distribution::Normal(0.0, 1.0), &device);
//! let w = g.map(z);                                  // [1, 512]
//! let ws = g.broadcast_w(w);                         // [1, 23, 512]: same w in every layer
//! let img = g.synthesize(ws, Noise::Baked);          // [1, 3, 1024, 1024], about [-1, 1]
//! # Ok(()) }
//! ```
//!
//! Weights: NVIDIA FFHQ lineage, non-commercial use only ([`convert::WEIGHTS_LICENSE`]).

pub mod convert;
pub mod distill;
pub mod faces;
pub mod ir;
pub mod model;

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use limner_core::{read_safetensors, StateDict};

pub use convert::{convert_ir, convert_random_face, Part};
pub use distill::{distill, DistillOptions, DistillReport};
pub use faces::{box_downsample, generate_seeds, save_seeds, NATIVE_SIZE};
pub use model::{MappingNetwork, Noise, Synthesis, W_DIM};

/// The model name `limner generate --model` and `limner dataset distill --model` take.
pub const MODEL_NAME: &str = "random-face";

/// The licence lineage of random-face, for users (model lists, manifests).
pub const LICENCE: &str = "random-face code: Apache-2.0; MobileStyleGAN weights distilled from NVIDIA's FFHQ StyleGAN2: non-commercial use only (so are the images it makes)";

/// The random-face generator: mapping z → w and synthesis ws → 1024² RGB.
#[derive(Clone, Debug)]
pub struct MobileStyleGan {
    pub mapping: MappingNetwork,
    pub synthesis: Synthesis,
}

impl MobileStyleGan {
    /// Loads a file written by [`convert_random_face`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (sd, _meta) = read_safetensors(path)?;
        Self::from_state_dict(&sd, device).with_context(|| format!("cannot load {}", path.display()))
    }

    /// Loads the mapping and synthesis from separate [`convert_ir`] outputs.
    pub fn load_parts(mapping: &Path, synthesis: &Path, device: &Device) -> Result<Self> {
        let mut sd = read_safetensors(mapping)?.0;
        sd.extend(read_safetensors(synthesis)?.0);
        Self::from_state_dict(&sd, device)
    }

    /// Builds the networks; a file without `mapping.w_avg` gets it computed here (about a
    /// second: [`convert::mean_w`] over [`convert::W_AVG_SAMPLES`] latents).
    pub fn from_state_dict(sd: &StateDict, device: &Device) -> Result<Self> {
        let mut mapping = MappingNetwork::from_state_dict(sd, device)?;
        if mapping.w_avg.is_none() {
            let avg = convert::mean_w(sd, convert::W_AVG_SAMPLES, convert::W_AVG_SEED)?;
            mapping.w_avg = Some(limner_core::tensor_from(avg, [1, W_DIM], device));
        }
        Ok(Self { mapping, synthesis: Synthesis::from_state_dict(sd, device)? })
    }

    /// A copy on burn's autodiff backend (weights constant, no gradients kept for them), for
    /// projection: gradients reach the `ws` given to [`Self::synthesize`]. The fused inference
    /// kernels (`limner_kernels::mobile`) do not run on autodiff tensors, so this copy takes the
    /// burn composition of every layer (`StyledConv::forward_burn`, [`model::idwt`]); the
    /// inference path is unchanged (a test pins the two to the same image).
    pub fn autodiff(&self) -> Self {
        let ad = |t: &Tensor<2>| t.clone().autodiff();
        let ad4 = |t: &Tensor<4>| t.clone().autodiff();
        let ad1 = |t: &Tensor<1>| t.clone().autodiff();
        let m = |m: &model::Modulation| model::Modulation { weight_t: ad(&m.weight_t), bias: ad(&m.bias), scale: m.scale };
        let sc = |c: &model::StyledConv| model::StyledConv {
            modulation: m(&c.modulation),
            weight_dw: c.weight_dw.as_ref().map(ad4),
            weight: ad4(&c.weight),
            bias: ad1(&c.bias),
            noise_const: ad4(&c.noise_const),
            slope: c.slope,
        };
        let s = &self.synthesis;
        let synthesis = Synthesis {
            input: ad4(&s.input),
            conv1: sc(&s.conv1),
            layers: s.layers.iter().map(|b| model::SynthesisBlock { up: m(&b.up), conv1: sc(&b.conv1), conv2: sc(&b.conv2) }).collect(),
            to_img: model::ToImg { modulation: m(&s.to_img.modulation), weight: ad4(&s.to_img.weight), bias: ad1(&s.to_img.bias) },
            idwt_k: ad4(&s.idwt_k),
            channels: s.channels.clone(),
        };
        let mapping = MappingNetwork {
            pixel_norm_eps: self.mapping.pixel_norm_eps,
            layers: self.mapping.layers.iter().map(|l| model::MappingLayer { weight_t: ad(&l.weight_t), bias: ad(&l.bias), slope: l.slope, gain: l.gain }).collect(),
            w_avg: self.mapping.w_avg.as_ref().map(ad),
        };
        Self { mapping, synthesis }
    }

    /// The average w, `[1, 512]`, that truncation pulls towards.
    pub fn w_avg(&self) -> Tensor<2> {
        self.mapping.w_avg.clone().expect("set by from_state_dict")
    }

    /// Truncation: `w_avg + psi (w - w_avg)` (random-face's `truncate(style, alpha)`).
    pub fn truncate(&self, w: Tensor<2>, psi: f32) -> Tensor<2> {
        let avg = self.w_avg();
        avg.clone() + (w - avg).mul_scalar(psi)
    }

    /// `z [N, 512] -> w [N, 512]`
    pub fn map(&self, z: Tensor<2>) -> Tensor<2> {
        self.mapping.forward(z)
    }

    /// `ws [N, num_ws, 512]` (one w per style layer, see [`Synthesis::style_layer_names`]) ->
    /// image `[N, 3, 1024, 1024]`.
    pub fn synthesize(&self, ws: Tensor<3>, noise: Noise) -> Tensor<4> {
        self.synthesis.forward(ws, noise)
    }

    /// Number of style layers (23).
    pub fn num_ws(&self) -> usize {
        self.synthesis.num_ws()
    }

    /// random-face's mapping network as a limner-gan [`limner_gan::generator::MappingNetwork`]
    /// (official StyleGAN2-ADA parametrisation with learning-rate multiplier `lr_multiplier`,
    /// `w_avg` included) that computes the same `z → w`, so a limner generator can live in
    /// random-face's w space: the default model is distilled from random-face this way, and
    /// random-face's named directions then apply to it.
    ///
    /// The IR stores effective weights (`W · lr/√in`, `b · lr`); the official layer stores
    /// `W / (lr/√in)` and `b / lr` and applies `leaky_relu(·, 0.2) · √2`, which is checked here.
    pub fn stylegan2_mapping(&self, lr_multiplier: f64, num_ws: usize, w_avg_beta: f64) -> Result<limner_gan::generator::MappingNetwork> {
        use limner_gan::layers::{Activation, FullyConnectedLayer};
        anyhow::ensure!(
            (self.mapping.pixel_norm_eps - 1e-8).abs() < 1e-12,
            "random-face's pixel norm eps is {}, StyleGAN2-ADA's is 1e-8",
            self.mapping.pixel_norm_eps
        );
        let mut fcs = Vec::with_capacity(self.mapping.layers.len());
        for (k, l) in self.mapping.layers.iter().enumerate() {
            anyhow::ensure!(
                (l.slope - 0.2).abs() < 1e-6 && (l.gain - std::f64::consts::SQRT_2).abs() < 1e-5,
                "random-face mapping layer {k} has slope {} and gain {}: expected leaky ReLU 0.2 with gain sqrt(2)",
                l.slope,
                l.gain
            );
            let [fin, fout] = l.weight_t.dims();
            let weight_gain = lr_multiplier / (fin as f64).sqrt();
            fcs.push(FullyConnectedLayer {
                weight: l.weight_t.clone().transpose().div_scalar(weight_gain), // [out, in]
                bias: l.bias.clone().reshape([fout]).div_scalar(lr_multiplier),
                activation: Activation::Lrelu,
                weight_gain,
                bias_gain: lr_multiplier,
            });
        }
        Ok(limner_gan::generator::MappingNetwork {
            fcs,
            w_avg: self.w_avg().reshape([W_DIM]),
            num_ws,
            w_avg_beta,
        })
    }

    /// `w [N, 512] -> ws [N, num_ws, 512]`: the same w in every layer (what the IR computes).
    pub fn broadcast_w(&self, w: Tensor<2>) -> Tensor<3> {
        let [n, d] = w.dims();
        w.reshape([n, 1, d]).repeat_dim(1, self.num_ws())
    }
}

/// random-face as the teacher of a distilled limner generator (`limner train --teacher-mapping
/// random-face`): the student adopts its mapping network ([`MobileStyleGan::stylegan2_mapping`]).
impl limner_gan::setup::TeacherMapping for MobileStyleGan {
    fn name(&self) -> &str {
        MODEL_NAME
    }

    fn mapping_dims(&self) -> (usize, usize, usize) {
        (W_DIM, W_DIM, self.mapping.layers.len())
    }

    fn mapping_network(&self, lr_multiplier: f64, num_ws: usize, w_avg_beta: f64) -> Result<limner_gan::generator::MappingNetwork> {
        self.stylegan2_mapping(lr_multiplier, num_ws, w_avg_beta)
    }
}
