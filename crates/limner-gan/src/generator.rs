//! The StyleGAN2 generator: mapping network z -> w, and the "skip" synthesis network that
//! turns one w per layer into an image (Karras et al., "Analyzing and Improving the Image
//! Quality of StyleGAN", 2020).

use burn::tensor::{Device, Tensor};

use crate::config::GeneratorConfig;
use crate::layers::{assert_shape, fir_buffer, upsample2d, Activation, FullyConnectedLayer, Init, NoiseMode, SynthesisLayer, ToRGBLayer};
use crate::params::{join, ParamKind, ParamVisitor, Params};

/// A debugging hook that receives `(module name, output values)`; `None` costs nothing.
pub type Trace<'a> = Option<&'a mut dyn FnMut(&str, Vec<f32>)>;

/// Sends a tensor to the trace, if there is one.
pub fn record<const D: usize>(trace: &mut Trace, name: &str, t: &Tensor<D>) {
    if let Some(f) = trace {
        f(name, crate::params::to_vec(t));
    }
}

/// `z * rsqrt(mean(z^2) + 1e-8)` per sample.
pub fn normalize_2nd_moment(z: Tensor<2>) -> Tensor<2> {
    let ms = z.clone().square().mean_dim(1); // [N, 1]
    z * (ms + 1e-8).sqrt().recip()
}

/// z -> w: a stack of equalised-lr fully connected layers with lr multiplier 0.01.
#[derive(Clone, Debug)]
pub struct MappingNetwork {
    pub fcs: Vec<FullyConnectedLayer>,
    /// `[w_dim]` running average of w, the centre of truncation
    pub w_avg: Tensor<1>,
    pub num_ws: usize,
    pub w_avg_beta: f64,
}

impl MappingNetwork {
    pub fn new(cfg: &GeneratorConfig, init: &mut Init) -> Self {
        let device = &init.device().clone();
        let fcs = (0..cfg.mapping_layers)
            .map(|i| {
                let fin = if i == 0 { cfg.z_dim } else { cfg.w_dim };
                FullyConnectedLayer::new(fin, cfg.w_dim, Activation::Lrelu, cfg.mapping_lr_multiplier, 0.0, init)
            })
            .collect();
        Self { fcs, w_avg: Tensor::zeros([cfg.w_dim], device), num_ws: cfg.num_ws(), w_avg_beta: cfg.w_avg_beta }
    }

    /// `z [N, z_dim]` -> `w [N, w_dim]` (one w per sample, before broadcast/truncation).
    pub fn forward_w(&self, z: Tensor<2>) -> Tensor<2> {
        self.forward_w_traced(z, &mut None)
    }

    /// As [`forward_w`](Self::forward_w), reporting each module's output to `trace`
    /// (`G.mapping.normalized_z`, `G.mapping.fcI`), for debugging against reference runs.
    pub fn forward_w_traced(&self, z: Tensor<2>, trace: &mut Trace) -> Tensor<2> {
        let mut x = normalize_2nd_moment(z); // [N, z_dim]
        record(trace, "G.mapping.normalized_z", &x);
        for (i, fc) in self.fcs.iter().enumerate() {
            x = fc.forward(x); // [N, w_dim]
            record(trace, &format!("G.mapping.fc{i}"), &x);
        }
        x
    }

    /// `z [N, z_dim]` -> `ws [N, num_ws, w_dim]` with truncation `psi` applied to the first
    /// `cutoff` rows (all rows when `None`).
    pub fn forward(&self, z: Tensor<2>, psi: f32, cutoff: Option<usize>) -> Tensor<3> {
        let w = self.forward_w(z);
        self.broadcast_truncate(w, psi, cutoff)
    }

    /// Broadcast `w [N, w_dim]` to `[N, num_ws, w_dim]` and truncate towards `w_avg`.
    pub fn broadcast_truncate(&self, w: Tensor<2>, psi: f32, cutoff: Option<usize>) -> Tensor<3> {
        let [n, wd] = w.dims();
        let ws = w.unsqueeze_dim::<3>(1).repeat_dim(1, self.num_ws); // [N, num_ws, w_dim]
        if psi == 1.0 {
            return ws;
        }
        let avg = self.w_avg.clone().reshape([1, 1, wd]);
        let truncated = avg.clone() + (ws.clone() - avg) * psi; // lerp(w_avg, ws, psi)
        match cutoff {
            Some(c) if c < self.num_ws => {
                let head = truncated.slice([0..n, 0..c, 0..wd]);
                let tail = ws.slice([0..n, c..self.num_ws, 0..wd]);
                Tensor::cat(vec![head, tail], 1)
            }
            _ => truncated,
        }
    }

    /// Truncation of arbitrary ws `[N, num_ws, w_dim]` with one psi per layer.
    pub fn truncate_per_layer(&self, ws: Tensor<3>, psis: &[f32]) -> Tensor<3> {
        let [_, nw, wd] = ws.dims();
        assert_eq!(psis.len(), nw, "one psi per w row");
        let device = ws.device();
        let p = crate::params::tensor_from(psis.to_vec(), [1, nw, 1], &device);
        let avg = self.w_avg.clone().reshape([1, 1, wd]);
        avg.clone() + (ws - avg) * p
    }

    /// Training-time update `w_avg <- lerp(mean(w), w_avg, beta)` (no gradient).
    pub fn update_w_avg(&mut self, w: &Tensor<2>) {
        let mean = w.clone().inner().detach().mean_dim(0).squeeze_dim::<1>(0); // [w_dim]
        let avg = self.w_avg.clone().inner();
        self.w_avg = mean.clone() + (avg - mean) * self.w_avg_beta;
    }
}

impl Params for MappingNetwork {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        v.visit(&join(prefix, "w_avg"), &mut self.w_avg, ParamKind::Buffer);
        for (i, fc) in self.fcs.iter_mut().enumerate() {
            fc.visit_params(&join(prefix, &format!("fc{i}")), v);
        }
    }
}

/// One resolution of the synthesis network (`SynthesisBlock`, skip architecture).
#[derive(Clone, Debug)]
pub struct SynthesisBlock {
    pub resolution: usize,
    /// `[C, 4, 4]` learned constant input (b4 only)
    pub constant: Option<Tensor<3>>,
    /// upsampling modulated conv (b8 and up)
    pub conv0: Option<SynthesisLayer>,
    pub conv1: SynthesisLayer,
    pub torgb: ToRGBLayer,
    pub resample_filter: Tensor<2>,
}

impl SynthesisBlock {
    pub fn num_conv(&self) -> usize {
        if self.conv0.is_some() { 2 } else { 1 }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.conv1.weight.dims()[0]
    }

    /// The official module name, `G.synthesis.bR`.
    pub fn name(&self) -> String {
        format!("G.synthesis.b{}", self.resolution)
    }

    /// One resolution: `x [N, C_in, R/2, R/2]` (none for b4, which starts from its constant)
    /// and the image so far `[N, 3, R/2, R/2]`, styled by `ws [N, num_conv + 1, w_dim]`, ->
    /// `(x [N, C, R, R], img [N, 3, R, R])`: conv0 (upsampling), conv1, then torgb added to the
    /// upsampled image (skip architecture).
    pub fn forward(&self, x: Option<Tensor<4>>, img: Option<Tensor<4>>, ws: Tensor<3>, noise: &mut NoiseMode, trace: &mut Trace) -> (Tensor<4>, Tensor<4>) {
        let [n, _, wd] = ws.dims();
        let w_at = |j: usize| ws.clone().narrow(1, j, 1).reshape([n, wd]); // [N, w_dim]
        let name = self.name();
        let mut h = match (&self.constant, x) {
            (Some(c), _) => {
                let [ch, _, _] = c.dims();
                c.clone().reshape([1, ch, 4, 4]).repeat_dim(0, n) // [N, C, 4, 4]
            }
            (None, Some(prev)) => prev,
            (None, None) => panic!("{name} needs an input (b4 comes first)"),
        };
        let mut j = 0;
        if let Some(c0) = &self.conv0 {
            h = c0.forward(h, w_at(j), noise); // [N, C, R, R]
            record(trace, &format!("{name}.conv0"), &h);
            j += 1;
        }
        h = self.conv1.forward(h, w_at(j), noise); // [N, C, R, R]
        record(trace, &format!("{name}.conv1"), &h);
        let y = self.torgb.forward(h.clone(), w_at(j + 1)); // [N, 3, R, R]
        record(trace, &format!("{name}.torgb"), &y);
        let img = match img {
            Some(prev) => upsample2d(prev) + y,
            None => y,
        };
        record(trace, &format!("{name}.x"), &h);
        record(trace, &format!("{name}.img"), &img);
        (h, img)
    }
}

impl Params for SynthesisBlock {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        if let Some(c) = &mut self.constant {
            v.visit(&join(prefix, "const"), c, ParamKind::Trainable);
        }
        v.visit(&join(prefix, "resample_filter"), &mut self.resample_filter, ParamKind::Buffer);
        if let Some(c0) = &mut self.conv0 {
            c0.visit_params(&join(prefix, "conv0"), v);
        }
        self.conv1.visit_params(&join(prefix, "conv1"), v);
        self.torgb.visit_params(&join(prefix, "torgb"), v);
    }
}

/// ws -> image.
#[derive(Clone, Debug)]
pub struct SynthesisNetwork {
    pub blocks: Vec<SynthesisBlock>,
    pub num_ws: usize,
}

impl SynthesisNetwork {
    pub fn new(cfg: &GeneratorConfig, init: &mut Init) -> Self {
        let device = &init.device().clone();
        let blocks = cfg
            .block_resolutions()
            .into_iter()
            .map(|res| {
                let out_ch = cfg.channels(res);
                let (constant, conv0, in_ch) = if res == 4 {
                    (Some(init.randn([out_ch, 4, 4])), None, out_ch)
                } else {
                    let in_ch = cfg.channels(res / 2);
                    (None, Some(SynthesisLayer::new(in_ch, out_ch, cfg.w_dim, res, true, init)), out_ch)
                };
                let clamp = cfg.conv_clamp.map(|c| c as f32);
                let conv0 = conv0.map(|c| SynthesisLayer { clamp, ..c });
                SynthesisBlock {
                    resolution: res,
                    constant,
                    conv0,
                    conv1: SynthesisLayer { clamp, ..SynthesisLayer::new(in_ch, out_ch, cfg.w_dim, res, false, init) },
                    torgb: ToRGBLayer { clamp, ..ToRGBLayer::new(out_ch, cfg.img_channels, cfg.w_dim, init) },
                    resample_filter: fir_buffer(device),
                }
            })
            .collect();
        Self { blocks, num_ws: cfg.num_ws() }
    }

    /// `ws [N, num_ws, w_dim]` -> image `[N, 3, R, R]` (roughly in [-1, 1]; not clamped).
    pub fn forward(&self, ws: Tensor<3>, noise: &mut NoiseMode) -> Tensor<4> {
        self.forward_traced(ws, noise, &mut None)
    }

    /// As [`forward`](Self::forward), reporting every module's output to `trace` under the
    /// official module names (`G.synthesis.bR.convK`, `.torgb`, `.x`, `.img`).
    pub fn forward_traced(&self, ws: Tensor<3>, noise: &mut NoiseMode, trace: &mut Trace) -> Tensor<4> {
        self.forward_inner(ws, noise, trace, None)
    }

    /// As [`forward`](Self::forward), also returning every block's feature output `x`
    /// (`[N, C, R, R]`, b4 first), as tensors that keep their autodiff graph (the
    /// cross-domain consistency loss, [`crate::cdc`], compares them).
    pub fn forward_features(&self, ws: Tensor<3>, noise: &mut NoiseMode) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut feats = Vec::with_capacity(self.blocks.len());
        let img = self.forward_inner(ws, noise, &mut None, Some(&mut feats));
        (img, feats)
    }

    fn forward_inner(&self, ws: Tensor<3>, noise: &mut NoiseMode, trace: &mut Trace, mut feats: Option<&mut Vec<Tensor<4>>>) -> Tensor<4> {
        let [n, nw, _] = ws.dims();
        assert_eq!(nw, self.num_ws, "synthesis expects {} ws, got {nw}", self.num_ws);
        let mut x: Option<Tensor<4>> = None; // features so far
        let mut img: Option<Tensor<4>> = None; // image so far
        let mut k = 0; // the first w of this block
        for block in &self.blocks {
            // a block reads num_conv + 1 ws: its convs', and its torgb's (shared with the next conv)
            let block_ws = ws.clone().narrow(1, k, block.num_conv() + 1); // [N, num_conv + 1, w_dim]
            let (h, y) = block.forward(x.take(), img.take(), block_ws, noise, trace);
            assert_shape(&h, [n, block.channels(), block.resolution, block.resolution], &block.name());
            if let Some(f) = feats.as_deref_mut() {
                f.push(h.clone());
            }
            x = Some(h);
            img = Some(y);
            k += block.num_conv();
        }
        img.expect("at least one block")
    }
}

impl Params for SynthesisNetwork {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        for b in &mut self.blocks {
            let name = format!("b{}", b.resolution);
            b.visit_params(&join(prefix, &name), v);
        }
    }
}

/// Mapping + synthesis.
#[derive(Clone, Debug)]
pub struct Generator {
    pub config: GeneratorConfig,
    pub mapping: MappingNetwork,
    pub synthesis: SynthesisNetwork,
}

impl Generator {
    /// A generator with weights drawn from a fixed seed (0); use [`Generator::init`] to pick
    /// the seed, or load weights over it.
    pub fn new(config: &GeneratorConfig, device: &Device) -> Self {
        Self::init(config, &mut Init::new(0, device))
    }

    /// A freshly initialised generator (the official initialisers: N(0,1) weights, zero
    /// biases, style biases 1, zero noise strengths) drawn from `init`.
    pub fn init(config: &GeneratorConfig, init: &mut Init) -> Self {
        Self {
            config: config.clone(),
            mapping: MappingNetwork::new(config, init),
            synthesis: SynthesisNetwork::new(config, init),
        }
    }

    /// `z [N, z_dim]` -> image `[N, 3, R, R]`.
    pub fn forward(&self, z: Tensor<2>, psi: f32, noise: &mut NoiseMode) -> Tensor<4> {
        let ws = self.mapping.forward(z, psi, None);
        self.synthesis.forward(ws, noise)
    }

    pub fn num_ws(&self) -> usize {
        self.synthesis.num_ws
    }

    /// Precomputes what depends on the weights alone (each modulated conv's `Σ_k W²`,
    /// [`SynthesisLayer::cache_demod`]) for a generator whose weights will not change: every
    /// model that generates, edits or projects (`limner_edit::model::StyleGan2`). The images are
    /// bit-identical; any later visit of the parameters drops the caches.
    pub fn prepare_inference(&mut self) {
        for b in &mut self.synthesis.blocks {
            if let Some(c) = b.conv0.as_mut() {
                c.cache_demod();
            }
            b.conv1.cache_demod();
        }
    }
}

impl Params for Generator {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        self.synthesis.visit_params(&join(prefix, "synthesis"), v);
        self.mapping.visit_params(&join(prefix, "mapping"), v);
    }
}
