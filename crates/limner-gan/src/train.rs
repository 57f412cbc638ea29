//! The GAN training step: non-saturating logistic loss, lazy R1 by finite differences,
//! DiffAugment, style mixing, Adam, and an EMA of the generator.
//!
//! Parameters live on a plain (non-autodiff) device between steps. Each step lifts the
//! network being trained onto the autodiff device as tracked leaves, runs forward and
//! backward, and applies Adam on the plain tensors. All randomness (latents, noise,
//! augmentation, mixing, data order, flips) comes from one ChaCha8 stream whose position is
//! saved in the checkpoint, so a resumed run continues bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::DiffAugment;
use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::generate::latent_for_seed;
use crate::layers::{randn_host, NoiseMode};
use crate::params::{
    load_state_dict, parse_safetensors, safetensors_bytes, state_dict, tensor_from, write_atomic, ParamKind,
    ParamVisitor, Params, Precision, StateDict,
};
use crate::{Discriminator, Generator};

/// Training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch: usize,
    pub g_lr: f64,
    pub d_lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// half-life of the generator EMA, in thousands of images
    pub ema_kimg: f64,
    /// EMA ramp-up (official `ema_rampup`): the half-life is at most this fraction of the
    /// images seen so far, so the EMA follows the early, fast-changing generator instead of
    /// averaging in its random init. `None` (runs from before this option): a fixed half-life.
    #[serde(default)]
    pub ema_rampup: Option<f64>,
    /// probability of mixing two latents in one batch (style-mixing regularisation)
    pub style_mixing: f64,
    /// R1 weight (0 = off); applied every `r1_interval` steps, by finite differences
    pub r1_gamma: f64,
    pub r1_interval: u64,
    pub diffaugment: DiffAugment,
    /// random horizontal flips of the real images
    pub xflip: bool,
    pub seed: u64,
    /// Weight of the paired distillation loss (0 = off): on a dataset rendered by a teacher
    /// generator from known seeds (`limner dataset distill`), the G step also pulls
    /// `G(z_seed)` towards the teacher's image of the same seed with a mean absolute pixel
    /// error, besides the adversarial loss. The student must share the teacher's latent space
    /// (same `latent_for_seed`, and its mapping network copied from the teacher).
    #[serde(default)]
    pub distill_l1: f64,
    /// Keep the mapping network (and `w_avg`) as they are: train the synthesis network only.
    /// Used with a mapping copied from a teacher, so the student's w space stays the teacher's.
    #[serde(default)]
    pub freeze_mapping: bool,
    /// Noise inputs off: every `noise_strength` is held at 0 (not trained), so the generator is
    /// a deterministic function of w. For a distilled student: the teacher's per-pixel noise
    /// cannot be predicted from the seed, and an adversarial loss otherwise turns the noise
    /// inputs into a speckle texture.
    #[serde(default)]
    pub noise_off: bool,
    /// Weight of the adversarial loss in the G step (1 = plain GAN training). With paired
    /// distillation, 0 turns the discriminator off: no D step at all, the student learns by
    /// regression onto the teacher's images only (about twice the images per second).
    #[serde(default = "one")]
    pub adversarial: f64,
    /// Weight of a perceptual distance to the teacher's image beside the pixel L1 (paired
    /// distillation only; 0 = off). The network is not part of the run: attach it with
    /// [`Trainer::perceptual_net`] (the CLI uses `limner_nets::perceptual`, LPIPS-style on
    /// InceptionV3's early convs).
    #[serde(default)]
    pub perceptual: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            g_lr: 0.0025,
            d_lr: 0.0025,
            beta1: 0.0,
            beta2: 0.99,
            ema_kimg: 10.0,
            ema_rampup: Some(0.05),
            style_mixing: 0.9,
            r1_gamma: 0.05,
            r1_interval: 16,
            diffaugment: DiffAugment::all(),
            xflip: true,
            seed: 0,
            distill_l1: 0.0,
            freeze_mapping: false,
            noise_off: false,
            adversarial: 1.0,
            perceptual: 0.0,
        }
    }
}

/// A differentiable distance between images, used beside the pixel L1 in paired distillation.
pub trait PerceptualDistance {
    /// Mean distance between the generated `fake` (on the autodiff device, NCHW in [-1, 1]) and
    /// the teacher's `target` (a plain tensor of the same shape), as a one-element tensor whose
    /// gradient reaches `fake`.
    fn distance(&self, fake: Tensor<4>, target: Tensor<4>) -> Tensor<1>;
}

/// Anything that serves batches of real images as NCHW float32 in [-1, 1].
pub trait DataSource {
    fn len(&self) -> usize;
    fn resolution(&self) -> usize;
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>);
    /// For a dataset rendered by a teacher generator (`limner dataset distill`): the seed
    /// whose latent (`latent_for_seed`) produced image `i`. `None` for ordinary photos.
    fn pair_seed(&self, _i: usize) -> Option<u64> {
        None
    }
}

/// Per-step losses and the R1 penalty (when it ran).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepStats {
    pub loss_g: f32,
    pub loss_d: f32,
    pub d_real: f32,
    pub d_fake: f32,
    /// mean absolute error to the teacher's images (paired distillation only)
    pub distill: Option<f32>,
    /// perceptual distance to the teacher's images (with `TrainConfig::perceptual` only)
    pub perceptual: Option<f32>,
    pub r1: Option<f32>,
}

/// Adam moments per parameter name (flattened).
#[derive(Clone, Debug, Default)]
pub struct Adam {
    pub m: HashMap<String, Tensor<1>>,
    pub v: HashMap<String, Tensor<1>>,
    pub t: u64,
}

/// Lifts a network onto the autodiff device; trainable tensors become tracked leaves when
/// `track` is set, everything else is a constant.
pub fn lift<P: Params + Clone>(net: &P, track: bool) -> P {
    struct Lift(bool);
    impl ParamVisitor for Lift {
        fn visit<const D: usize>(&mut self, _: &str, t: &mut Tensor<D>, kind: ParamKind) {
            let a = t.clone().autodiff();
            *t = if self.0 && kind == ParamKind::Trainable { a.require_grad() } else { a };
        }
    }
    let mut n = net.clone();
    n.visit_params("", &mut Lift(track));
    n
}

/// Collects the gradients of a lifted network's trainable tensors, flattened.
pub fn grads_of<P: Params>(net: &mut P, grads: &burn::tensor::Gradients) -> HashMap<String, Tensor<1>> {
    struct G<'a>(&'a burn::tensor::Gradients, HashMap<String, Tensor<1>>);
    impl ParamVisitor for G<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
            if kind != ParamKind::Trainable {
                return;
            }
            let n: usize = t.dims().iter().product();
            if let Some(g) = t.grad(self.0) {
                self.1.insert(name.to_string(), g.reshape([n]));
            }
        }
    }
    let mut v = G(grads, HashMap::new());
    net.visit_params("", &mut v);
    v.1
}

impl Adam {
    /// One Adam step on `net`'s trainable tensors.
    fn step<P: Params>(&mut self, net: &mut P, grads: &HashMap<String, Tensor<1>>, lr: f64, b1: f64, b2: f64) {
        self.t += 1;
        struct Upd<'a> {
            adam: &'a mut Adam,
            grads: &'a HashMap<String, Tensor<1>>,
            lr: f64,
            b1: f64,
            b2: f64,
        }
        impl ParamVisitor for Upd<'_> {
            fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
                if kind != ParamKind::Trainable {
                    return;
                }
                let Some(g) = self.grads.get(name) else { return };
                let dims = t.dims();
                let n: usize = dims.iter().product();
                let m = match self.adam.m.remove(name) {
                    Some(m) => m.mul_scalar(self.b1) + g.clone().mul_scalar(1.0 - self.b1),
                    None => g.clone().mul_scalar(1.0 - self.b1),
                };
                let v = match self.adam.v.remove(name) {
                    Some(v) => v.mul_scalar(self.b2) + g.clone().square().mul_scalar(1.0 - self.b2),
                    None => g.clone().square().mul_scalar(1.0 - self.b2),
                };
                let step = self.adam.t as i32;
                let mhat = 1.0 / (1.0 - self.b1.powi(step));
                let vhat = 1.0 / (1.0 - self.b2.powi(step));
                let upd = m.clone().mul_scalar(mhat) / (v.clone().mul_scalar(vhat).sqrt() + 1e-8);
                *t = t.clone() - upd.mul_scalar(self.lr).reshape(dims);
                debug_assert_eq!(n, m.dims()[0]);
                self.adam.m.insert(name.to_string(), m);
                self.adam.v.insert(name.to_string(), v);
            }
        }
        net.visit_params("", &mut Upd { adam: self, grads, lr, b1, b2 });
    }

    fn export(&self, prefix: &str, out: &mut StateDict) {
        for (k, t) in self.m.iter().map(|(k, t)| (format!("{prefix}.m.{k}"), t)).chain(self.v.iter().map(|(k, t)| (format!("{prefix}.v.{k}"), t))) {
            out.insert(k, crate::params::HostTensor { shape: t.dims().to_vec(), data: crate::params::to_vec(t) });
        }
    }

    fn import(prefix: &str, sd: &StateDict, t: u64, device: &Device) -> Self {
        let mut a = Adam { t, ..Default::default() };
        for (k, h) in sd {
            let mk = |_: &str| tensor_from(h.data.clone(), [h.data.len()], device);
            if let Some(rest) = k.strip_prefix(&format!("{prefix}.m.")) {
                a.m.insert(rest.to_string(), mk(rest));
            } else if let Some(rest) = k.strip_prefix(&format!("{prefix}.v.")) {
                a.v.insert(rest.to_string(), mk(rest));
            }
        }
        a
    }
}

/// `ema <- p + (ema - p) * beta` for trainable tensors; buffers are copied from `net`.
fn ema_update(ema: &mut Generator, net: &mut Generator, beta: f64) {
    let src = state_dict(net, false);
    struct E<'a>(&'a StateDict, f64, Device);
    impl ParamVisitor for E<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
            let h = &self.0[name];
            let p: Tensor<D> = tensor_from(h.data.clone(), t.dims(), &self.2);
            *t = match kind {
                ParamKind::Trainable => p.clone() + (t.clone() - p).mul_scalar(self.1),
                ParamKind::Buffer => p,
            };
        }
    }
    let device = net.mapping.w_avg.device();
    ema.visit_params("", &mut E(&src, beta, device));
}

/// A GAN being trained: networks, optimiser state, RNG and data position.
pub struct Trainer {
    pub train: TrainConfig,
    pub g: Generator,
    pub d: Discriminator,
    pub g_ema: Generator,
    pub adam_g: Adam,
    pub adam_d: Adam,
    pub rng: ChaCha8Rng,
    pub step: u64,
    pub images_seen: u64,
    /// data order: epoch number and position within its permutation
    pub epoch: u64,
    pub epoch_pos: usize,
    order: Vec<usize>,
    pub device: Device,
    /// The network behind `TrainConfig::perceptual` (not saved with the run: attach it again
    /// after [`Trainer::load`]).
    pub perceptual_net: Option<Box<dyn PerceptualDistance>>,
}

impl Trainer {
    pub fn new(train: TrainConfig, gcfg: &GeneratorConfig, dcfg: &DiscriminatorConfig, device: &Device) -> Result<Self> {
        gcfg.validate()?;
        dcfg.validate()?;
        if train.batch == 0 {
            bail!("batch must be at least 1");
        }
        // initial weights come from the run seed alone (no global RNG state)
        let mut init = crate::layers::Init::new(train.seed.wrapping_add(0x5EED), device);
        let g = Generator::init(gcfg, &mut init);
        let d = Discriminator::init(dcfg, &mut init);
        let g_ema = g.clone();
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(train.seed),
            train,
            g,
            d,
            g_ema,
            adam_g: Adam::default(),
            adam_d: Adam::default(),
            step: 0,
            images_seen: 0,
            epoch: 0,
            epoch_pos: 0,
            order: vec![],
            device: device.clone(),
            perceptual_net: None,
        })
    }

    /// Turns the noise inputs off for the rest of the run (see [`TrainConfig::noise_off`]):
    /// zeroes every `noise_strength` of G and its EMA and stops training them. One-way.
    pub fn switch_noise_off(&mut self) {
        struct Zero;
        impl ParamVisitor for Zero {
            fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, _: ParamKind) {
                if name.ends_with("noise_strength") {
                    *t = t.zeros_like();
                }
            }
        }
        self.train.noise_off = true;
        self.g.visit_params("", &mut Zero);
        self.g_ema.visit_params("", &mut Zero);
        for m in [&mut self.adam_g.m, &mut self.adam_g.v] {
            m.retain(|name, _| !name.ends_with("noise_strength"));
        }
    }

    pub fn kimg(&self) -> f64 {
        self.images_seen as f64 / 1000.0
    }

    /// The next `n` dataset indices (a fresh seeded permutation every epoch).
    fn next_indices(&mut self, len: usize, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.epoch_pos >= len {
                self.epoch += 1;
                self.epoch_pos = 0;
                self.order.clear();
            }
            if self.order.len() != len {
                self.order = permutation(len, self.train.seed, self.epoch);
            }
            out.push(self.order[self.epoch_pos]);
            self.epoch_pos += 1;
        }
        out
    }

    fn latents(&mut self, n: usize) -> Tensor<2> {
        let zd = self.g.config.z_dim;
        tensor_from(randn_host(&mut self.rng, n * zd), [n, zd], &self.device)
    }

    /// ws for a batch with style mixing (one cutoff per batch, as in the official code).
    fn mapped_ws(&mut self, g: &Generator, n: usize) -> (Tensor<3>, Tensor<2>) {
        let z = self.latents(n);
        let w = g.mapping.forward_w(z);
        let ws = g.mapping.broadcast_truncate(w.clone(), 1.0, None);
        let num_ws = g.num_ws();
        let mix = self.rng.random::<f64>() < self.train.style_mixing;
        let cutoff = self.rng.random_range(1..num_ws);
        let z2 = self.latents(n);
        if !mix {
            return (ws, w);
        }
        let ws2 = g.mapping.forward(z2, 1.0, None);
        let wd = g.config.w_dim;
        let ws = Tensor::cat(vec![ws.slice([0..n, 0..cutoff, 0..wd]), ws2.slice([0..n, cutoff..num_ws, 0..wd])], 1);
        (ws, w)
    }

    /// One training step: D on a real and a fake batch (plus R1 when due), then G.
    pub fn step(&mut self, data: &dyn DataSource) -> Result<StepStats> {
        let n = self.train.batch;
        let res = self.g.config.img_resolution;
        if data.resolution() != res {
            bail!("the dataset is {}px but the model is {}px", data.resolution(), res);
        }
        if data.len() == 0 {
            bail!("the dataset is empty");
        }
        let dev = self.device.clone();
        let mut stats = StepStats::default();

        // ---- D step: softplus(D(G(z))) + softplus(-D(x)) ----
        let idx = self.next_indices(data.len(), n);
        let flips: Vec<bool> = (0..n).map(|_| self.train.xflip && self.rng.random::<bool>()).collect();
        let adversarial = self.train.adversarial > 0.0;
        if !adversarial && self.train.distill_l1 <= 0.0 {
            bail!("nothing to train: the adversarial weight is 0 and there is no distillation loss");
        }
        if adversarial {
            let mut buf = Vec::new();
            data.fill_batch(&idx, &flips, &mut buf);
            let real = tensor_from(buf, [n, 3, res, res], &dev); // [N, 3, R, R]
            let g_plain = self.g.clone();
            let (ws, _) = self.mapped_ws(&g_plain, n);
            let fake = {
                let mut noise = NoiseMode::Random { rng: &mut self.rng, scale: 1.0 };
                g_plain.synthesis.forward(ws, &mut noise) // [N, 3, R, R], no tape
            };
            let mut d_ad = lift(&self.d, true);
            let aug = self.train.diffaugment.clone();
            let fake_aug = aug.apply(fake.autodiff(), &mut self.rng);
            let real_aug = aug.apply(real.clone().autodiff(), &mut self.rng);
            // lazy R1: gamma/2 * |grad_x D(x)|^2, estimated as ((D(x + eps v) - D(x)) / eps)^2 with
            // v ~ N(0, I), whose expectation is |grad_x D(x)|^2 (first-order only: no double backward)
            let r1_due = self.train.r1_gamma > 0.0 && self.step % self.train.r1_interval == 0;
            let eps = 1e-2f32;
            let mut parts = vec![fake_aug, real_aug];
            if r1_due {
                let v = tensor_from(randn_host(&mut self.rng, n * 3 * res * res), [n, 3, res, res], &dev);
                parts.push(real.clone().autodiff());
                parts.push((real + v.mul_scalar(eps)).autodiff());
            }
            let mut logits = d_ad.forward_parts(parts).into_iter(); // each [N, 1]
            let fake_logits = logits.next().unwrap();
            let real_logits = logits.next().unwrap();
            let loss_d = softplus(fake_logits.clone(), 1.0).mean() + softplus(real_logits.clone().neg(), 1.0).mean();
            stats.loss_d = loss_d.clone().into_scalar::<f32>();
            stats.d_fake = fake_logits.mean().into_scalar::<f32>();
            stats.d_real = real_logits.mean().into_scalar::<f32>();
            let mut total = loss_d;
            if r1_due {
                let (l0, l1) = (logits.next().unwrap(), logits.next().unwrap());
                let pen = (l1 - l0).div_scalar(eps).square().mean();
                stats.r1 = Some(pen.clone().into_scalar::<f32>());
                total = total + pen.mul_scalar(self.train.r1_gamma / 2.0 * self.train.r1_interval as f64);
            }
            let grads = total.backward();
            let gd = grads_of(&mut d_ad, &grads);
            drop(grads);
            self.adam_d.step(&mut self.d, &gd, self.train.d_lr, self.train.beta1, self.train.beta2);
        }

        // ---- G step: softplus(-D(G(z))) ----
        // With paired distillation the G step renders the latents of the D step's real images
        // (the teacher's seeds) and also pays the pixel distance to those images.
        let mut g_ad = lift(&self.g, true);
        let (ws, w, target) = if self.train.distill_l1 > 0.0 {
            let seeds = idx
                .iter()
                .map(|&i| data.pair_seed(i))
                .collect::<Option<Vec<u64>>>()
                .context("paired distillation needs a dataset rendered from seeds by `limner dataset distill` (images named seedNNNNNNNN)")?;
            let zd = self.g.config.z_dim;
            let z = tensor_from(seeds.iter().flat_map(|&s| latent_for_seed(s, zd)).collect(), [n, zd], &dev); // [N, z_dim]
            let w = g_ad.mapping.forward_w(z); // [N, w_dim]
            let ws = g_ad.mapping.broadcast_truncate(w.clone(), 1.0, None); // [N, num_ws, w_dim]
            let mut buf = Vec::new();
            data.fill_batch(&idx, &vec![false; n], &mut buf); // unflipped: the teacher's exact images
            (ws, w, Some(tensor_from(buf, [n, 3, res, res], &dev)))
        } else {
            let (ws, w) = self.mapped_ws(&g_ad, n);
            (ws, w, None)
        };
        let fake = {
            let mut noise = NoiseMode::Random { rng: &mut self.rng, scale: 1.0 };
            g_ad.synthesis.forward(ws, &mut noise) // [N, 3, R, R]
        };
        let mut loss_g = if adversarial {
            let d_const = lift(&self.d, false);
            let aug = self.train.diffaugment.clone();
            let logits = d_const.forward(aug.apply(fake.clone(), &mut self.rng));
            let adv = softplus(logits.neg(), 1.0).mean();
            stats.loss_g = adv.clone().into_scalar::<f32>();
            adv.mul_scalar(self.train.adversarial)
        } else {
            Tensor::zeros([1], &fake.device())
        };
        if let Some(target) = target {
            if self.train.perceptual > 0.0 {
                let net = self.perceptual_net.as_ref().context("the run has a perceptual loss weight but no perceptual network is attached")?;
                let p = net.distance(fake.clone(), target.clone());
                stats.perceptual = Some(p.clone().into_scalar::<f32>());
                loss_g = loss_g + p.mul_scalar(self.train.perceptual);
            }
            let l1 = (fake - target.autodiff()).abs().mean();
            stats.distill = Some(l1.clone().into_scalar::<f32>());
            loss_g = loss_g + l1.mul_scalar(self.train.distill_l1);
        }
        let grads = loss_g.backward();
        let mut gg = grads_of(&mut g_ad, &grads);
        drop(grads);
        if self.train.freeze_mapping {
            gg.retain(|name, _| !name.starts_with("mapping."));
        }
        if self.train.noise_off {
            gg.retain(|name, _| !name.ends_with("noise_strength"));
        }
        self.adam_g.step(&mut self.g, &gg, self.train.g_lr, self.train.beta1, self.train.beta2);
        if !self.train.freeze_mapping {
            self.g.mapping.update_w_avg(&w);
        }

        // ---- EMA ----
        let mut ema_nimg = self.train.ema_kimg * 1000.0;
        if let Some(r) = self.train.ema_rampup {
            ema_nimg = ema_nimg.min((self.images_seen + n as u64) as f64 * r);
        }
        let beta = 0.5f64.powf(n as f64 / ema_nimg.max(1e-8));
        ema_update(&mut self.g_ema, &mut self.g, beta);

        self.step += 1;
        self.images_seen += n as u64;
        let (l1, perceptual) = (stats.distill.unwrap_or(0.0), stats.perceptual.unwrap_or(0.0));
        if ![stats.loss_g, stats.loss_d, l1, perceptual].iter().all(|v| v.is_finite()) {
            bail!(
                "training diverged at step {} (loss G {}, loss D {}, distill L1 {l1}, perceptual {perceptual}); resume from the last checkpoint with a lower learning rate",
                self.step, stats.loss_g, stats.loss_d
            );
        }
        Ok(stats)
    }

    /// Everything needed to resume, as safetensors bytes.
    pub fn checkpoint_bytes(&mut self) -> Result<Vec<u8>> {
        let mut sd = StateDict::new();
        for (prefix, part) in [("G", state_dict(&mut self.g, false)), ("D", state_dict(&mut self.d, false)), ("G_ema", state_dict(&mut self.g_ema, false))] {
            for (k, v) in part {
                sd.insert(format!("{prefix}.{k}"), v);
            }
        }
        self.adam_g.export("adam_G", &mut sd);
        self.adam_d.export("adam_D", &mut sd);
        let state = CheckpointState {
            train: self.train.clone(),
            generator: self.g.config.clone(),
            discriminator: self.d.config.clone(),
            step: self.step,
            images_seen: self.images_seen,
            epoch: self.epoch,
            epoch_pos: self.epoch_pos,
            adam_g_t: self.adam_g.t,
            adam_d_t: self.adam_d.t,
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
        };
        // a single metadata key keeps the file bytes deterministic (safetensors writes its
        // metadata map in hash order)
        let mut meta = BTreeMap::new();
        meta.insert("limner_checkpoint".to_string(), serde_json::to_string(&state)?);
        safetensors_bytes(&sd, &meta, Precision::F32)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let bytes = self.checkpoint_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Restores a trainer from a checkpoint written by [`Trainer::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        let (sd, meta) = parse_safetensors(&bytes)
            .with_context(|| format!("{} is not a limner checkpoint (corrupt or truncated?)", path.display()))?;
        let state: CheckpointState = serde_json::from_str(
            meta.get("limner_checkpoint")
                .with_context(|| format!("{} has no training state: it is a generator, not a checkpoint", path.display()))?,
        )?;
        let split = |prefix: &str| -> StateDict {
            let p = format!("{prefix}.");
            sd.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|r| (r.to_string(), v.clone()))).collect()
        };
        let mut t = Trainer::new(state.train.clone(), &state.generator, &state.discriminator, device)?;
        load_state_dict(&mut t.g, &split("G"), device).with_context(|| format!("{}: generator", path.display()))?;
        load_state_dict(&mut t.d, &split("D"), device).with_context(|| format!("{}: discriminator", path.display()))?;
        load_state_dict(&mut t.g_ema, &split("G_ema"), device).with_context(|| format!("{}: EMA generator", path.display()))?;
        t.adam_g = Adam::import("adam_G", &sd, state.adam_g_t, device);
        t.adam_d = Adam::import("adam_D", &sd, state.adam_d_t, device);
        t.step = state.step;
        t.images_seen = state.images_seen;
        t.epoch = state.epoch;
        t.epoch_pos = state.epoch_pos;
        let mut rng = ChaCha8Rng::from_seed(state.rng_seed);
        rng.set_stream(state.rng_stream);
        rng.set_word_pos(state.rng_word_pos.parse().context("bad rng position in checkpoint")?);
        t.rng = rng;
        Ok(t)
    }
}

/// The training state stored in a checkpoint's metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    pub train: TrainConfig,
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
    pub step: u64,
    pub images_seen: u64,
    epoch: u64,
    epoch_pos: usize,
    adam_g_t: u64,
    adam_d_t: u64,
    rng_seed: [u8; 32],
    rng_stream: u64,
    rng_word_pos: String,
}

/// A seeded permutation of `0..len` for one epoch.
pub fn permutation(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    let mut v: Vec<usize> = (0..len).collect();
    v.shuffle(&mut rng);
    v
}
