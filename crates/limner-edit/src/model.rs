//! The one generator abstraction: every limner model — the embedded default, a training run,
//! an imported StyleGAN2-ADA state dict ([`StyleGan2`]) and the photoreal random-face
//! ([`RandomFace`]) — is a [`Model`]: it maps `z → w`, takes one `w` per style layer (`w+`,
//! a [`WPlus`]), synthesises an image from `w+` with per-sample seeded noise, knows which of
//! its style layers are coarse, middle or fine ([`LayerGroup`]), its output size and its
//! identity (name + sha256 of its weights, [`ModelId`]).
//!
//! [`open`] opens a model by name (`default`, `random-face`, a run folder, a file, a name from
//! `limner models list`). Everything that edits faces — the CLI's `generate`, named and
//! unlabelled sliders, prompts, breeding, recipes, the studio — goes through `&dyn Model`.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::{Device, Tensor};
use limner_faces::describe::{Attributes, FaceAnalyzer};
use limner_faces::Image;
use limner_core::{latent_for_seed, noise_rng_for_seed};
use limner_gan::layers::NoiseMode;
use limner_core::{tensor_from, to_vec};
use limner_gan::Generator;
use limner_photoreal::faces::{box_downsample, check_size, face_from_ws};
use limner_photoreal::{MobileStyleGan, NATIVE_SIZE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Which model made a face: its name as `open` takes it and the sha256 (hex) of its weights
/// file (for the embedded default: of the embedded bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelId {
    pub name: String,
    pub sha256: String,
}

/// The three style-layer groups of StyleGAN's style mixing, by the resolution a layer works
/// at: coarse 4–8 px (pose, face shape), middle 16–32 px (features, hair), fine 64 px and up
/// (colour, texture).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerGroup {
    Coarse,
    Middle,
    Fine,
}

impl LayerGroup {
    pub const ALL: [LayerGroup; 3] = [LayerGroup::Coarse, LayerGroup::Middle, LayerGroup::Fine];

    /// The group of a layer working at `resolution` px.
    pub fn of_resolution(resolution: usize) -> Self {
        match resolution {
            0..=8 => LayerGroup::Coarse,
            9..=32 => LayerGroup::Middle,
            _ => LayerGroup::Fine,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LayerGroup::Coarse => "coarse",
            LayerGroup::Middle => "middle",
            LayerGroup::Fine => "fine",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "coarse" => Ok(LayerGroup::Coarse),
            "middle" => Ok(LayerGroup::Middle),
            "fine" => Ok(LayerGroup::Fine),
            other => bail!("`{other}` is not a layer group: use coarse (4–8 px), middle (16–32 px) or fine (64 px and up)"),
        }
    }
}

/// How a model frames its faces, which decides how the face networks read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// the face fills the image: the whole image is the face crop (limner's own GANs)
    WholeImage,
    /// FFHQ framing (hair, neck, background): read as `limner describe` reads photos
    Portrait,
}

/// One `w` per style layer, `[rows][dim]` row-major: what synthesis takes.
#[derive(Clone, Debug, PartialEq)]
pub struct WPlus {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl WPlus {
    /// The same `w` in every row.
    pub fn broadcast(w: &[f32], rows: usize) -> Self {
        Self { rows, dim: w.len(), data: w.repeat(rows) }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Whether every value is finite.
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// Checks the shape against a model.
    pub fn check(&self, m: &dyn Model) -> Result<()> {
        ensure!(
            self.rows == m.num_ws() && self.dim == m.w_dim() && self.data.len() == self.rows * self.dim,
            "w+ is {}×{} but model `{}` takes {}×{}",
            self.rows,
            self.dim,
            m.id().name,
            m.num_ws(),
            m.w_dim()
        );
        ensure!(self.is_finite(), "w+ holds NaN or infinite values");
        Ok(())
    }
}

/// A generator every editing tool works on. Object safe: tools take `&dyn Model`.
pub trait Model: Send + Sync {
    /// Name and weights hash.
    fn id(&self) -> &ModelId;
    /// Output side in pixels (square RGB).
    fn size(&self) -> usize;
    fn z_dim(&self) -> usize;
    fn w_dim(&self) -> usize;
    /// Number of style layers (rows of a [`WPlus`]).
    fn num_ws(&self) -> usize;
    /// The resolution each style layer works at, in [`WPlus`] row order (groups follow it).
    fn layer_resolutions(&self) -> Vec<usize>;
    /// The centre of truncation.
    fn w_avg(&self) -> Vec<f32>;
    fn device(&self) -> Device;
    /// `z [N, z_dim] → w [N, w_dim]` (untruncated).
    fn map(&self, z: Tensor<2>) -> Tensor<2>;
    /// `ws [N, num_ws, w_dim] →` image `[N, 3, size, size]` in about [-1, 1], sample `i` with
    /// the per-pixel noise of `noise_seeds[i]` scaled by `noise` (0 = none). Tensor ops only,
    /// so it is differentiable in `ws` on the autodiff device.
    fn synthesize(&self, ws: Tensor<3>, noise_seeds: &[u64], noise: f32) -> Tensor<4>;
    /// The style affine matrices that read style row `row`, each `[channels][w_dim]`
    /// row-major with its gain applied (what SeFa factorises).
    fn style_weights(&self, row: usize) -> Vec<Vec<f32>>;
    fn framing(&self) -> Framing;

    /// A copy whose [`synthesize`](Model::synthesize) runs on the autodiff device (weights
    /// constant), for projection: gradients reach the `ws`.
    fn differentiable(&self) -> Result<Box<dyn Model>> {
        bail!("model `{}` has no differentiable path yet (projection works on StyleGAN2 models (default, runs, imports) and random-face)", self.id().name)
    }

    /// Renders faces as 0..255 images (rounded as PNG stores them), one at a time: every image
    /// depends only on its `w+`, noise seed and `noise`, never on the batch (the matrix
    /// kernels may round differently by batch size, and recipes promise the same bytes).
    fn render(&self, ws: &[WPlus], noise_seeds: &[u64], noise: f32) -> Vec<Image> {
        assert_eq!(ws.len(), noise_seeds.len(), "one noise seed per face");
        let device = self.device();
        ws.iter()
            .zip(noise_seeds)
            .map(|(w, &seed)| {
                let t = tensor_from(w.data.clone(), [1, w.rows, w.dim], &device);
                chw_to_image(&to_vec(&self.synthesize(t, &[seed], noise)), self.size())
            })
            .collect()
    }
}

/// One CHW image in [-1, 1] → 0..255 RGB, rounded as it is saved to PNG.
pub fn chw_to_image(chw: &[f32], res: usize) -> Image {
    let plane = res * res;
    let data = (0..plane).flat_map(|p| (0..3).map(move |c| ((chw[c * plane + p] + 1.0) * 127.5).round().clamp(0.0, 255.0))).collect();
    Image { width: res, height: res, data }
}

/// The untruncated `w` of `z`s given as host vectors.
pub fn map_host(m: &dyn Model, zs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let device = m.device();
    let mut out = vec![];
    for chunk in zs.chunks(64) {
        let z = tensor_from(chunk.concat(), [chunk.len(), m.z_dim()], &device);
        out.extend(to_vec(&m.map(z)).chunks(m.w_dim()).map(|c| c.to_vec()));
    }
    out
}

/// The untruncated `w` of each `z`, one at a time: a `w` depends only on its `z`, never on
/// which others were asked for (the matrix kernels may round differently by batch size).
pub fn map_each(m: &dyn Model, zs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let device = m.device();
    zs.iter().map(|z| to_vec(&m.map(tensor_from(z.clone(), [1, m.z_dim()], &device)))).collect()
}

/// The truncated `w` of each seed: `w_avg + psi (map(z(seed)) − w_avg)`, `z` as
/// [`latent_for_seed`] draws it (the seeds of `limner generate`); each seed on its own.
pub fn seed_w(m: &dyn Model, seeds: &[u64], psi: f32) -> Vec<Vec<f32>> {
    let zs: Vec<Vec<f32>> = seeds.iter().map(|&s| latent_for_seed(s, m.z_dim())).collect();
    let avg = m.w_avg();
    map_each(m, &zs).into_iter().map(|w| w.iter().zip(&avg).map(|(x, a)| a + (x - a) * psi).collect()).collect()
}

/// [`seed_w`] broadcast to every style layer.
pub fn seed_ws(m: &dyn Model, seeds: &[u64], psi: f32) -> Vec<WPlus> {
    seed_w(m, seeds, psi).iter().map(|w| WPlus::broadcast(w, m.num_ws())).collect()
}

/// Renders one `w` per face (broadcast to every layer).
pub fn render_w(m: &dyn Model, ws: &[Vec<f32>], noise_seeds: &[u64], noise: f32) -> Vec<Image> {
    let plus: Vec<WPlus> = ws.iter().map(|w| WPlus::broadcast(w, m.num_ws())).collect();
    m.render(&plus, noise_seeds, noise)
}

/// The style rows of a group, in order.
pub fn group_rows(m: &dyn Model, g: LayerGroup) -> Vec<usize> {
    m.layer_resolutions().iter().enumerate().filter(|(_, &r)| LayerGroup::of_resolution(r) == g).map(|(i, _)| i).collect()
}

/// Parses a layer selection: `all`, a group (`coarse`, `middle`, `fine`), a range `0-5`, a
/// row `3`, or a comma list of those. Returns sorted distinct rows.
pub fn parse_layers(m: &dyn Model, s: &str) -> Result<Vec<usize>> {
    let n = m.num_ws();
    let mut rows = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" {
            rows.extend(0..n);
        } else if let Ok(g) = LayerGroup::parse(part) {
            rows.extend(group_rows(m, g));
        } else if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (a.trim().parse().with_context(|| format!("bad layer `{a}`"))?, b.trim().parse().with_context(|| format!("bad layer `{b}`"))?);
            ensure!(a <= b && b < n, "layers `{part}`: model `{}` has style layers 0-{}", m.id().name, n - 1);
            rows.extend(a..=b);
        } else {
            let r: usize = part.parse().with_context(|| format!("`{part}` is not a layer selection: use all, coarse, middle, fine, 0-5 or 3"))?;
            ensure!(r < n, "layer {r}: model `{}` has style layers 0-{}", m.id().name, n - 1);
            rows.push(r);
        }
    }
    rows.sort_unstable();
    rows.dedup();
    ensure!(!rows.is_empty(), "no layers selected");
    Ok(rows)
}

/// What the attribute networks read in rendered faces: for [`Framing::WholeImage`] the whole
/// image is the face crop, for [`Framing::Portrait`] faces are found and cropped as
/// `limner describe` does ([`crate::prompt::describe_reading`]).
pub fn read_faces(m: &dyn Model, fa: &FaceAnalyzer, images: &[Image]) -> Vec<Attributes> {
    match m.framing() {
        Framing::WholeImage => fa.attributes(images),
        Framing::Portrait => crate::prompt::describe_reading(fa, images),
    }
}

/// sha256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A StyleGAN2(-ADA) generator: the embedded default, a training run, a limner generator file
/// or an imported official state dict.
pub struct StyleGan2 {
    pub g: Generator,
    id: ModelId,
}

impl StyleGan2 {
    /// The model over `g`, prepared for calls that keep its weights
    /// ([`Generator::prepare_inference`]).
    pub fn new(mut g: Generator, id: ModelId) -> Self {
        g.prepare_inference();
        Self { g, id }
    }
}

impl Model for StyleGan2 {
    fn id(&self) -> &ModelId {
        &self.id
    }
    fn size(&self) -> usize {
        self.g.config.img_resolution
    }
    fn z_dim(&self) -> usize {
        self.g.config.z_dim
    }
    fn w_dim(&self) -> usize {
        self.g.config.w_dim
    }
    fn num_ws(&self) -> usize {
        self.g.num_ws()
    }
    /// Row 0 is b4's conv; b4's toRGB shares row 1 with b8's first conv, and so on: row `j ≥ 1`
    /// works at `2^(2 + ⌈j/2⌉)`, the last row (the final toRGB) at the output size.
    fn layer_resolutions(&self) -> Vec<usize> {
        let res = self.size();
        (0..self.num_ws()).map(|j| if j == 0 { 4 } else { (1usize << (2 + j.div_ceil(2))).min(res) }).collect()
    }
    fn w_avg(&self) -> Vec<f32> {
        to_vec(&self.g.mapping.w_avg)
    }
    fn device(&self) -> Device {
        self.g.mapping.w_avg.device()
    }
    fn map(&self, z: Tensor<2>) -> Tensor<2> {
        self.g.mapping.forward_w(z)
    }
    fn synthesize(&self, ws: Tensor<3>, noise_seeds: &[u64], noise: f32) -> Tensor<4> {
        let mut mode = if noise == 0.0 {
            NoiseMode::None
        } else {
            NoiseMode::PerSample { rngs: noise_seeds.iter().map(|&s| noise_rng_for_seed(s)).collect(), scale: noise }
        };
        self.g.synthesis.forward(ws, &mut mode)
    }
    fn style_weights(&self, row: usize) -> Vec<Vec<f32>> {
        let mut out = vec![];
        let mut k = 0;
        let eff = |fc: &limner_gan::layers::FullyConnectedLayer| -> Vec<f32> { to_vec(&fc.weight).into_iter().map(|v| v * fc.weight_gain as f32).collect() };
        for b in &self.g.synthesis.blocks {
            let mut j = k;
            if let Some(c0) = &b.conv0 {
                if j == row {
                    out.push(eff(&c0.affine));
                }
                j += 1;
            }
            if j == row {
                out.push(eff(&b.conv1.affine));
            }
            j += 1;
            if j == row {
                out.push(eff(&b.torgb.affine));
            }
            k += b.num_conv();
        }
        out
    }
    fn framing(&self) -> Framing {
        Framing::WholeImage
    }
    fn differentiable(&self) -> Result<Box<dyn Model>> {
        Ok(Box::new(StyleGan2::new(limner_gan::optim::lift(&self.g, false), self.id.clone())))
    }
}

/// random-face (the photoreal MobileStyleGAN of `limner_photoreal`) rendered at `size` (a
/// power of two up to 1024, box-downsampled from 1024). Its faces are FFHQ-framed.
pub struct RandomFace {
    pub model: MobileStyleGan,
    size: usize,
    strengths: Vec<f32>,
    id: ModelId,
}

/// The size random-face is labelled and steered at when none is asked for: the face-api
/// networks read 112–160 px crops, which a 256 px portrait comfortably holds.
pub const STEER_SIZE: usize = 256;

impl RandomFace {
    pub fn new(model: MobileStyleGan, size: usize, id: ModelId) -> Result<Self> {
        check_size(size)?;
        let strengths = model.synthesis.noise_strengths();
        Ok(Self { model, size, strengths, id })
    }

    /// The model fetched by `limner models fetch --only random-face` (the error says so when it is missing).
    pub fn load_fetched(size: usize, device: &Device) -> Result<Self> {
        let path = limner_models::fetch::net_path(limner_photoreal::MODEL_NAME)?;
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let id = ModelId { name: limner_photoreal::MODEL_NAME.into(), sha256: sha256_hex(&bytes) };
        drop(bytes);
        Self::new(MobileStyleGan::load(&path, device)?, size, id)
    }

    /// Feature-map side of each noise layer (`conv1`, then `conv1`, `conv2` per block).
    fn feature_sizes(&self) -> Vec<usize> {
        self.model.synthesis.noise_resolutions()
    }
}

impl Model for RandomFace {
    fn id(&self) -> &ModelId {
        &self.id
    }
    fn size(&self) -> usize {
        self.size
    }
    fn z_dim(&self) -> usize {
        limner_photoreal::W_DIM
    }
    fn w_dim(&self) -> usize {
        limner_photoreal::W_DIM
    }
    fn num_ws(&self) -> usize {
        self.model.num_ws()
    }
    /// The feature-map side each style acts on (the wavelet domain, half the image it makes):
    /// `conv1` at the input, then per block `up` and `conv1`, `conv2` at the block's side,
    /// and `to_img` at the last.
    fn layer_resolutions(&self) -> Vec<usize> {
        let f = self.feature_sizes();
        let mut v = vec![f[0]];
        for i in 0..self.model.synthesis.layers.len() {
            let r = f[1 + 2 * i];
            v.extend([r, r, f[2 + 2 * i]]);
        }
        v.push(*f.last().expect("noise layers"));
        v
    }
    fn w_avg(&self) -> Vec<f32> {
        to_vec(&self.model.w_avg())
    }
    fn device(&self) -> Device {
        self.model.w_avg().device()
    }
    fn map(&self, z: Tensor<2>) -> Tensor<2> {
        self.model.map(z)
    }
    fn synthesize(&self, ws: Tensor<3>, noise_seeds: &[u64], noise: f32) -> Tensor<4> {
        let device = self.device();
        let n = noise_seeds.len();
        let img = if noise == 0.0 {
            self.model.synthesize(ws, limner_photoreal::model::Noise::Zero)
        } else {
            let mut rngs: Vec<_> = noise_seeds.iter().map(|&s| noise_rng_for_seed(s)).collect();
            let maps: Vec<Tensor<4>> = self
                .feature_sizes()
                .into_iter()
                .zip(&self.strengths)
                .map(|(r, &st)| {
                    let v: Vec<f32> = rngs.iter_mut().flat_map(|rng| limner_core::randn_host(rng, r * r)).map(|x| x * st * noise).collect();
                    tensor_from(v, [n, 1, r, r], &device)
                })
                .collect();
            self.model.synthesize(ws, limner_photoreal::model::Noise::Maps(&maps))
        };
        let f = NATIVE_SIZE / self.size;
        if f == 1 {
            img
        } else {
            burn::tensor::module::avg_pool2d(img, burn::tensor::ops::AvgPoolOptions::new([f, f]))
        }
    }
    fn style_weights(&self, row: usize) -> Vec<Vec<f32>> {
        let s = &self.model.synthesis;
        let nl = s.layers.len();
        let m = if row == 0 {
            &s.conv1.modulation
        } else if row == 1 + 3 * nl {
            &s.to_img.modulation
        } else {
            let (i, part) = ((row - 1) / 3, (row - 1) % 3);
            match part {
                0 => &s.layers[i].up,
                1 => &s.layers[i].conv1.modulation,
                _ => &s.layers[i].conv2.modulation,
            }
        };
        // weight_t is [512, C]: transpose to [C][512], with the modulation's scale
        let wt = to_vec(&m.weight_t);
        let c = wt.len() / limner_photoreal::W_DIM;
        let mut out = vec![0f32; wt.len()];
        for k in 0..limner_photoreal::W_DIM {
            for j in 0..c {
                out[j * limner_photoreal::W_DIM + k] = wt[k * c + j] * m.scale as f32;
            }
        }
        vec![out]
    }
    fn framing(&self) -> Framing {
        Framing::Portrait
    }
    fn differentiable(&self) -> Result<Box<dyn Model>> {
        Ok(Box::new(RandomFace { model: self.model.autodiff(), size: self.size, strengths: self.strengths.clone(), id: self.id.clone() }))
    }

    /// One face at a time at 1024², box-downsampled on the host in f64 (as
    /// `limner_photoreal::generate_seeds` makes them, so seeds give the same pixels).
    fn render(&self, ws: &[WPlus], noise_seeds: &[u64], noise: f32) -> Vec<Image> {
        let device = self.device();
        ws.iter()
            .zip(noise_seeds)
            .map(|(w, &seed)| {
                let t = tensor_from(w.data.clone(), [1, w.rows, w.dim], &device);
                let chw = face_from_ws(&self.model, t, seed, noise, &self.strengths);
                chw_to_image(&box_downsample(&chw, 3, NATIVE_SIZE, self.size), self.size)
            })
            .collect()
    }
}

/// Opens a model by name: `default` (embedded), `random-face` (fetched; `size` picks its
/// output side, default 1024), a generator or checkpoint file, a run folder, or a name from
/// `limner models list`. `size` must be the model's own for every model but random-face.
pub fn open(name: &str, size: Option<usize>, device: &Device) -> Result<Box<dyn Model>> {
    if name == limner_photoreal::MODEL_NAME {
        return Ok(Box::new(RandomFace::load_fetched(size.unwrap_or(NATIVE_SIZE), device)?));
    }
    let (g, sha) = match limner_models::resolve(name)? {
        None => (limner_models::load_default(device)?.0, sha256_hex(limner_models::DEFAULT_GENERATOR)),
        Some(p) => {
            let bytes = std::fs::read(&p).with_context(|| format!("cannot read model {}", p.display()))?;
            let (g, _) = limner_gan::generate::load_generator_bytes(&bytes, device).with_context(|| format!("cannot load model {}", p.display()))?;
            (g, sha256_hex(&bytes))
        }
    };
    if let Some(size) = size.filter(|&s| s != g.config.img_resolution) {
        bail!("--size {size}: model `{name}` makes {}px images (--size resizes only `{}`)", g.config.img_resolution, limner_photoreal::MODEL_NAME);
    }
    Ok(Box::new(StyleGan2::new(g, ModelId { name: name.to_string(), sha256: sha })))
}

/// Whether a path names a model file or folder (for error messages of recipes).
pub fn model_hint(name: &str) -> String {
    if name == limner_photoreal::MODEL_NAME {
        "fetch it with `limner models fetch --only random-face`".into()
    } else if Path::new(name).exists() {
        format!("{name} exists but did not load")
    } else {
        format!("train, import or copy it as `{name}` (see `limner models list`)")
    }
}
