//! The projection encoder: a small conv net (burn) that reads a face and guesses its `w` in one
//! pass, so [`crate::project`] starts close instead of at `w_avg`. limner trains it on pairs it
//! makes itself: `w = w_avg + psi (map(z) − w_avg)` for fresh seeds and `psi`, the render
//! `G(w)`, and an L2 loss in (per-dimension standardised) `w` space ([`train`]).
//!
//! Input: the model's render or an aligned photo, box-downsampled to [`INPUT`] px. Net: a 1×1
//! conv to 32 channels, four 3×3 conv + FIR-downsample layers (64 → 4 px, limner-gan's
//! [`Conv2dLayer`]), two fully connected layers; ≈1 M weights, ≈2 MB as f16.
//!
//! Files: `ENCODER.safetensors` (f16 weights, metadata: the model's name and sha256, the steps
//! it trained) and, for `--resume`, `ENCODER.ckpt.safetensors` beside it (f32 weights and Adam
//! moments). Both are written atomically. [`locate`] finds a model's encoder: beside a model
//! file (`G.encoder.safetensors`), in the cache (`$LIMNER_HOME/data/encoders/<sha256>.safetensors`,
//! where `limner models encoder` writes by default), or embedded for the default model;
//! random-face without its own falls back to the default model's, which shares its w space.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor};
use limner_core::{latent_for_seed, tensor_from, to_vec, Precision, StateDict};
use limner_gan::layers::{Activation, Conv2dConfig, Conv2dLayer, FullyConnectedLayer, Init};
use limner_gan::optim::{grads_of, lift, Adam};
use limner_gan::params::{join, load_state_dict, state_dict, ParamKind, ParamVisitor, Params};
use rand::{Rng, SeedableRng};

use crate::model::{map_host, Model};

/// The side the encoder reads faces at.
pub const INPUT: usize = 64;
/// Format version in the file's metadata.
pub const VERSION: u32 = 1;
/// Training seeds start here, far from the seeds people type (tests hold out seeds below it).
pub const TRAIN_SEED_BASE: u64 = 1 << 40;

/// The default model's encoder (`models/default/encoder.safetensors`, trained by `limner models
/// encoder --model default --steps 2000 --batch 32`).
pub const EMBEDDED_DEFAULT: Option<&[u8]> = Some(include_bytes!("../../../models/default/encoder.safetensors"));

/// The encoder network (see the module docs).
#[derive(Clone, Debug)]
pub struct EncoderNet {
    pub from_rgb: Conv2dLayer,
    pub convs: Vec<Conv2dLayer>,
    pub fc: FullyConnectedLayer,
    pub out: FullyConnectedLayer,
    /// `[w_dim]`: the centre and per-dimension spread of `w` the output is scaled by
    pub w_avg: Tensor<1>,
    pub w_std: Tensor<1>,
}

const WIDTHS: [usize; 5] = [32, 64, 128, 128, 128];
const HIDDEN: usize = 256;

impl EncoderNet {
    /// A fresh net for `w_dim`-wide `w`s centred on `w_avg` with spread `w_std`.
    pub fn new(w_avg: &[f32], w_std: &[f32], seed: u64, device: &Device) -> Self {
        let mut init = Init::new(seed, device);
        let from_rgb = Conv2dConfig::new(3, WIDTHS[0], 1).with_activation(Activation::Lrelu).init(&mut init);
        let convs = WIDTHS.windows(2).map(|c| Conv2dConfig::new(c[0], c[1], 3).with_activation(Activation::Lrelu).with_down(true).init(&mut init)).collect();
        let last = WIDTHS[WIDTHS.len() - 1] * 16;
        let fc = FullyConnectedLayer::new(last, HIDDEN, Activation::Lrelu, 1.0, 0.0, &mut init);
        let mut out = FullyConnectedLayer::new(HIDDEN, w_avg.len(), Activation::Linear, 1.0, 0.0, &mut init);
        // start at w_avg: a small output layer
        out.weight = out.weight.mul_scalar(0.1);
        Self { from_rgb, convs, fc, out, w_avg: tensor_from(w_avg.to_vec(), [w_avg.len()], device), w_std: tensor_from(w_std.to_vec(), [w_std.len()], device) }
    }

    pub fn w_dim(&self) -> usize {
        self.w_avg.dims()[0]
    }

    /// Faces `[N, 3, S, S]` in [-1, 1] (S a multiple of [`INPUT`]) → the standardised guess
    /// `(w − w_avg) / w_std`, `[N, w_dim]`.
    pub fn forward_std(&self, x: Tensor<4>) -> Tensor<2> {
        let x = to_input(x);
        let mut h = self.from_rgb.forward(x);
        for c in &self.convs {
            h = c.forward(h);
        }
        let [n, c, hh, ww] = h.dims();
        let h = self.fc.forward(h.reshape([n, c * hh * ww]));
        self.out.forward(h)
    }

    /// Faces → `w` guesses `[N, w_dim]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let s = self.forward_std(x);
        let d = self.w_dim();
        s * self.w_std.clone().reshape([1, d]) + self.w_avg.clone().reshape([1, d])
    }
}

impl Params for EncoderNet {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        self.from_rgb.visit_params(&join(prefix, "from_rgb"), v);
        for (i, c) in self.convs.iter_mut().enumerate() {
            c.visit_params(&join(prefix, &format!("convs.{i}")), v);
        }
        self.fc.visit_params(&join(prefix, "fc"), v);
        self.out.visit_params(&join(prefix, "out"), v);
        v.visit(&join(prefix, "w_avg"), &mut self.w_avg, ParamKind::Buffer);
        v.visit(&join(prefix, "w_std"), &mut self.w_std, ParamKind::Buffer);
    }
}

/// Box-downsamples faces to [`INPUT`] px.
fn to_input(x: Tensor<4>) -> Tensor<4> {
    let [_, _, s, _] = x.dims();
    match s / INPUT {
        1 => x,
        f => avg_pool2d(x, AvgPoolOptions::new([f, f])),
    }
}

/// A trained encoder for one model.
#[derive(Clone, Debug)]
pub struct Encoder {
    pub net: EncoderNet,
    /// the model it was trained for
    pub model_name: String,
    pub model_sha256: String,
    /// training steps done
    pub steps: u64,
}

impl Encoder {
    /// The first guess for aligned faces (0..255 images at the model's size): one `w` each.
    pub fn guess(&self, faces: &[limner_faces::Image]) -> Result<Vec<Vec<f32>>> {
        let device = self.net.w_avg.device();
        let mut out = vec![];
        for f in faces {
            ensure!(f.width == f.height && f.width % INPUT == 0, "the encoder reads square faces of a multiple of {INPUT} px, not {}×{}", f.width, f.height);
            let w = self.net.forward(crate::project::image_tensor(f, &device));
            out.push(to_vec(&w));
        }
        Ok(out)
    }

    /// Checks that this encoder was trained for `m`.
    pub fn check_model(&self, m: &dyn Model, file: &str) -> Result<()> {
        ensure!(
            self.model_sha256 == m.id().sha256 && self.net.w_dim() == m.w_dim(),
            "the encoder {file} was trained for model `{}` (sha256 {}…), not `{}` (sha256 {}…): train one with `limner models encoder --model {}`",
            self.model_name,
            &self.model_sha256[..self.model_sha256.len().min(12)],
            m.id().name,
            &m.id().sha256[..m.id().sha256.len().min(12)],
            m.id().name
        );
        Ok(())
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("limner_encoder".to_string(), VERSION.to_string()),
            ("model_name".to_string(), self.model_name.clone()),
            ("model_sha256".to_string(), self.model_sha256.clone()),
            ("steps".to_string(), self.steps.to_string()),
            ("w_dim".to_string(), self.net.w_dim().to_string()),
        ])
    }

    /// The f16 weights file (what `limner project` reads), written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let sd = state_dict(&mut self.net.clone(), false);
        limner_core::write_safetensors(path, &sd, &self.metadata(), Precision::F16).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads an encoder file (`what` names it in errors).
    pub fn from_bytes(bytes: &[u8], what: &str, device: &Device) -> Result<Self> {
        let (sd, meta) = limner_core::parse_safetensors(bytes).with_context(|| format!("the encoder {what} is not a valid safetensors file: train it again with `limner models encoder`"))?;
        Self::from_state_dict(&sd, &meta, what, device)
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the encoder {what}: train one with `limner models encoder`"))?;
        Self::from_bytes(&bytes, &what, device)
    }

    fn from_state_dict(sd: &StateDict, meta: &BTreeMap<String, String>, what: &str, device: &Device) -> Result<Self> {
        let version = meta.get("limner_encoder").with_context(|| format!("{what} is not a limner encoder (no `limner_encoder` metadata)"))?;
        ensure!(version == &VERSION.to_string(), "the encoder {what} has format version {version}; this limner reads version {VERSION}: train it again with `limner models encoder`");
        let get = |k: &str| meta.get(k).cloned().with_context(|| format!("the encoder {what} lacks its `{k}` metadata"));
        let w_dim: usize = get("w_dim")?.parse().with_context(|| format!("the encoder {what}: bad w_dim"))?;
        ensure!((1..=4096).contains(&w_dim), "the encoder {what}: w_dim {w_dim} is out of range");
        let mut net = EncoderNet::new(&vec![0.0; w_dim], &vec![1.0; w_dim], 0, device);
        load_state_dict(&mut net, sd, device).with_context(|| format!("the encoder {what} does not fit limner's encoder network"))?;
        Ok(Self { net, model_name: get("model_name")?, model_sha256: get("model_sha256")?, steps: get("steps")?.parse().unwrap_or(0) })
    }
}

/// Where `limner models encoder` writes a model's encoder by default (the cache, by the
/// model's weights hash).
pub fn cache_path(m: &dyn Model) -> PathBuf {
    limner_core::dirs::user_data_dir("encoders").join(format!("{}.safetensors", m.id().sha256))
}

/// The encoder file beside a model file (`G.safetensors` → `G.encoder.safetensors`).
pub fn beside_path(m: &dyn Model) -> Option<PathBuf> {
    let p = limner_models::resolve(&m.id().name).ok()??;
    Some(p.with_extension("encoder.safetensors"))
}

/// Finds `m`'s encoder: beside the model file, in the cache, embedded (default model).
/// `Ok(None)` when there is none; a file that is there but bad is an error.
pub fn locate(m: &dyn Model, device: &Device) -> Result<Option<(Encoder, String)>> {
    for p in beside_path(m).into_iter().chain([cache_path(m)]) {
        if p.is_file() {
            let e = Encoder::load(&p, device)?;
            let what = p.display().to_string();
            e.check_model(m, &what)?;
            return Ok(Some((e, what)));
        }
    }
    if let (Some(bytes), None) = (EMBEDDED_DEFAULT, limner_models::resolve(&m.id().name).ok().flatten()) {
        if m.id().name == limner_models::DEFAULT_NAME {
            let e = Encoder::from_bytes(bytes, "(embedded)", device)?;
            e.check_model(m, "(embedded)")?;
            return Ok(Some((e, "embedded".into())));
        }
    }
    // The default model was distilled into random-face's w space (its mapping network is
    // random-face's), so its encoder's guess is a w random-face renders as a similar face.
    if m.id().name == limner_photoreal::MODEL_NAME {
        let default_sha = crate::model::sha256_hex(limner_models::DEFAULT_GENERATOR);
        let cached = limner_core::dirs::user_data_dir("encoders").join(format!("{default_sha}.safetensors"));
        let found = if cached.is_file() {
            Some((Encoder::load(&cached, device)?, cached.display().to_string()))
        } else {
            EMBEDDED_DEFAULT.map(|b| Encoder::from_bytes(b, "(embedded)", device).map(|e| (e, "embedded".to_string()))).transpose()?
        };
        if let Some((e, f)) = found.filter(|(e, _)| e.model_sha256 == default_sha && e.net.w_dim() == m.w_dim()) {
            return Ok(Some((e, format!("the default model's encoder ({f}), which shares random-face's w space"))));
        }
    }
    Ok(None)
}

/// How to train an encoder.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// total steps (a resumed run continues up to this)
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    /// truncation of the training faces, drawn uniformly from this range
    pub psi: (f32, f32),
    /// save the checkpoint every this many steps
    pub checkpoint_every: u64,
    /// start from this encoder's weights (e.g. one trained for another model of the same w
    /// space) instead of a fresh net; Adam and the step count start afresh
    pub init: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { steps: 2000, batch: 16, lr: 0.001, psi: (0.4, 1.0), checkpoint_every: 25, init: None }
    }
}

/// One training batch: `(faces [B, 3, S, S], standardised target w [B, w_dim])` for batch
/// number `k` (seeds `TRAIN_SEED_BASE + k·B …`, so a resumed run draws what it would have).
pub fn batch_of(m: &dyn Model, net: &EncoderNet, seeds: &[u64], psi: (f32, f32)) -> (Tensor<4>, Tensor<2>) {
    let device = m.device();
    let zs: Vec<Vec<f32>> = seeds.iter().map(|&s| latent_for_seed(s, m.z_dim())).collect();
    let avg = to_vec(&net.w_avg);
    let std = to_vec(&net.w_std);
    let mut ws = vec![];
    let mut target = vec![];
    for (w, &s) in map_host(m, &zs).into_iter().zip(seeds) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s ^ 0x5eed);
        let psi: f32 = rng.random_range(psi.0..=psi.1);
        for (i, x) in w.iter().enumerate() {
            let t = avg[i] + psi * (x - avg[i]);
            ws.push(t);
            target.push((t - avg[i]) / std[i]);
        }
    }
    let (n, d) = (seeds.len(), m.w_dim());
    let wt = tensor_from(ws, [n, 1, d], &device).repeat_dim(1, m.num_ws());
    let img = m.synthesize(wt, seeds, 1.0);
    (img, tensor_from(target, [n, d], &device))
}

/// The standardised squared error of `net` on seeds (no gradients), what training lowers,
/// and that of guessing `w_avg` (the baseline).
pub fn w_loss(m: &dyn Model, net: &EncoderNet, seeds: &[u64], psi: (f32, f32)) -> (f32, f32) {
    let (mut loss, mut base) = (0f32, 0f32);
    // in chunks: random-face renders 1024² maps
    for chunk in seeds.chunks(8) {
        let (img, target) = batch_of(m, net, chunk, psi);
        loss += to_vec(&(net.forward_std(img) - target.clone()).square().sum())[0];
        base += to_vec(&target.square().sum())[0];
    }
    let n = (seeds.len() * net.w_dim()).max(1) as f32;
    (loss / n, base / n)
}

/// A training checkpoint: the net, Adam, the step.
fn ckpt_path(out: &Path) -> PathBuf {
    out.with_extension("ckpt.safetensors")
}

/// The per-dimension spread of `w` over 2,000 fixed seeds.
pub fn w_spread(m: &dyn Model) -> Vec<f32> {
    let zs: Vec<Vec<f32>> = (0..2000u64).map(|s| latent_for_seed(TRAIN_SEED_BASE - 1 - s, m.z_dim())).collect();
    let ws = map_host(m, &zs);
    let avg = m.w_avg();
    (0..m.w_dim()).map(|i| (ws.iter().map(|w| (w[i] - avg[i]).powi(2)).sum::<f32>() / ws.len() as f32).sqrt().max(1e-3)).collect()
}

/// Trains (or, with `resume`, continues training) `m`'s encoder, writing `out` (f16) and its
/// checkpoint every `checkpoint_every` steps and at the end. `progress(step, loss)`.
pub fn train(m: &dyn Model, out: &Path, resume: bool, o: &TrainOptions, progress: &mut dyn FnMut(u64, f32)) -> Result<Encoder> {
    ensure!(o.batch >= 1 && o.steps >= 1, "an encoder needs at least one step of at least one face");
    ensure!(m.size() % INPUT == 0, "the encoder reads faces at {INPUT} px: model `{}` makes {} px", m.id().name, m.size());
    let device = m.device();
    let ck = ckpt_path(out);
    let (mut net, mut adam, mut step) = if resume {
        ensure!(ck.is_file(), "--resume: no checkpoint {} (start without --resume)", ck.display());
        let (sd, meta) = limner_core::read_safetensors(&ck)?;
        let e = Encoder::from_state_dict(&sd.iter().filter(|(k, _)| !k.starts_with("adam.")).map(|(k, v)| (k.clone(), v.clone())).collect(), &meta, &ck.display().to_string(), &device)?;
        e.check_model(m, &ck.display().to_string())?;
        let adam = Adam::import("adam", &sd, e.steps, &device);
        (e.net, adam, e.steps)
    } else if let Some(init) = &o.init {
        let e = Encoder::load(init, &device)?;
        ensure!(
            e.net.w_dim() == m.w_dim(),
            "--init {}: that encoder guesses {}-wide w's, model `{}` has {}",
            init.display(),
            e.net.w_dim(),
            m.id().name,
            m.w_dim()
        );
        (e.net, Adam::default(), 0)
    } else {
        (EncoderNet::new(&m.w_avg(), &w_spread(m), 1, &device), Adam::default(), 0)
    };
    let save = |net: &EncoderNet, adam: &Adam, step: u64| -> Result<Encoder> {
        let e = Encoder { net: net.clone(), model_name: m.id().name.clone(), model_sha256: m.id().sha256.clone(), steps: step };
        let mut sd = state_dict(&mut e.net.clone(), false);
        adam.export("adam", &mut sd);
        limner_core::write_safetensors(&ck, &sd, &e.metadata(), Precision::F32).with_context(|| format!("cannot write {}", ck.display()))?;
        e.save(out)?;
        Ok(e)
    };
    while step < o.steps {
        let seeds: Vec<u64> = (0..o.batch as u64).map(|i| TRAIN_SEED_BASE + step * o.batch as u64 + i).collect();
        let (img, target) = batch_of(m, &net, &seeds, o.psi);
        let mut lifted = lift(&net, true);
        let loss = (lifted.forward_std(img.autodiff()) - target.autodiff()).square().mean();
        let l = to_vec(&loss)[0];
        ensure!(l.is_finite(), "the encoder's training diverged at step {step} (loss {l})");
        let grads = loss.backward();
        let g = grads_of(&mut lifted, &grads);
        // cosine decay to a tenth
        let frac = step as f64 / o.steps.max(1) as f64;
        let lr = o.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
        adam.step(&mut net, &g, lr, 0.9, 0.99);
        step += 1;
        progress(step, l);
        if step % o.checkpoint_every == 0 && step < o.steps {
            save(&net, &adam, step)?;
        }
    }
    save(&net, &adam, step)
}

/// The held-out comparison the README and tests print: mean perceptual distance to renders of
/// `seeds` (psi 0.7) of `w_avg`'s render and of the encoder's guess's render.
pub fn compare_on_renders(m: &dyn Model, e: &Encoder, dist: &dyn limner_core::PerceptualDistance, seeds: &[u64]) -> Result<(f32, f32)> {
    if seeds.is_empty() {
        bail!("no seeds to compare on");
    }
    let device = m.device();
    let targets = m.render(&crate::model::seed_ws(m, seeds, 0.7), seeds, 0.0);
    let guesses = e.guess(&targets)?;
    let avg_img = crate::model::render_w(m, &[m.w_avg()], &[0], 0.0).pop().expect("one");
    let (mut a, mut g) = (0f32, 0f32);
    for (t, w) in targets.iter().zip(&guesses) {
        let gi = crate::model::render_w(m, std::slice::from_ref(w), &[0], 0.0).pop().expect("one");
        let tt = crate::project::image_tensor(t, &device);
        a += to_vec(&dist.distance(crate::project::image_tensor(&avg_img, &device).autodiff(), tt.clone()))[0];
        g += to_vec(&dist.distance(crate::project::image_tensor(&gi, &device).autodiff(), tt))[0];
    }
    Ok((a / seeds.len() as f32, g / seeds.len() as f32))
}
