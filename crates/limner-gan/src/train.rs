//! The GAN training step: non-saturating logistic loss, lazy R1 by finite differences,
//! DiffAugment or adaptive discriminator augmentation ([`crate::ada`]), FreezeD, style mixing, paired distillation; Adam ([`crate::optim`]), the generator's
//! EMA ([`crate::ema`]), the checkpoint ([`crate::checkpoint`]) and the data order
//! ([`crate::order`]) live beside it.
//!
//! Parameters live on a plain (non-autodiff) device between steps. Each step lifts the
//! network being trained onto the autodiff device as tracked leaves, runs forward and
//! backward, and applies Adam on the plain tensors. All randomness (latents, noise,
//! augmentation, mixing, data order, flips) comes from one ChaCha8 stream whose position is
//! saved in the checkpoint, so a resumed run continues bit for bit.

use anyhow::{bail, Context, Result};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ada::{AdaConfig, AdaState};
use crate::augment::DiffAugment;
use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::layers::NoiseMode;
use crate::ema::{ema_beta, ema_update};
use crate::optim::{grads_of, lift, Adam};
use crate::order::permutation;
use crate::params::{tensor_from, ParamKind, ParamVisitor, Params};
use crate::{Discriminator, Generator};
use limner_core::{latent_for_seed, randn_host};

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
    /// DiffAugment's transforms (all off with ADA)
    pub diffaugment: DiffAugment,
    /// Adaptive discriminator augmentation instead of DiffAugment (`None`: off). Its `p`
    /// lives in [`Trainer::ada`] and the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ada: Option<AdaConfig>,
    /// FreezeD (Mo et al. 2020): the first this many discriminator blocks (from the
    /// highest resolution down, `b{R}`) keep their weights; the rest of D trains.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub freeze_d: usize,
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
    /// Weight of the cross-domain consistency loss ([`crate::cdc`], Ojha et al. 2021; 0 = off):
    /// the G step also keeps the pairwise similarities of the batch's block features close to
    /// those of the frozen source generator ([`Trainer::source`]) on the same latents and
    /// noise, so an adapting generator keeps the source's variety instead of collapsing
    /// towards one template. Needs a source (transfer learning).
    #[serde(default)]
    pub cdc: f64,
    /// Keep the first this many synthesis blocks of G (from `b4` up: the coarse layout, pose and
    /// shape) as they start; the finer blocks, their ToRGBs and the mapping train (see
    /// `freeze_mapping`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub freeze_g: usize,
}

fn one() -> f64 {
    1.0
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl TrainConfig {
    /// Checks that the options make a run: a batch, and something to learn from (a
    /// discriminator or a distillation loss; the perceptual distance is a distillation loss).
    /// [`Trainer::new`] checks it, and every step again (a resumed run may change weights).
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            bail!("batch must be at least 1");
        }
        for (name, lr) in [("G", self.g_lr), ("D", self.d_lr)] {
            if !(lr.is_finite() && lr > 0.0) {
                bail!("{name}'s learning rate must be a number > 0, not {lr}");
            }
        }
        if self.adversarial <= 0.0 && self.distill_l1 <= 0.0 {
            bail!("nothing to train: the adversarial weight is 0 and there is no distillation loss");
        }
        if self.perceptual > 0.0 && self.distill_l1 <= 0.0 {
            bail!("the perceptual distance is a distillation loss: it needs --distill (distill_l1 > 0)");
        }
        if !(self.cdc.is_finite() && self.cdc >= 0.0) {
            bail!("the CDC weight must be a number >= 0, not {}", self.cdc);
        }
        if self.cdc > 0.0 {
            if self.distill_l1 > 0.0 {
                bail!("CDC (--cdc) keeps a source generator's variety while adapting it; it does not combine with paired distillation (--distill)");
            }
            if self.batch < 3 {
                bail!("CDC (--cdc) compares each sample of a batch with the others: it needs a batch of at least 3, not {}", self.batch);
            }
        }
        if let Some(ada) = &self.ada {
            ada.validate()?;
            if self.diffaugment != DiffAugment::none() {
                bail!("ADA and DiffAugment ({}) are both on: choose one (--aug ada or --aug diffaugment)", self.diffaugment.policy());
            }
        }
        Ok(())
    }
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
            ada: None,
            freeze_d: 0,
            xflip: true,
            seed: 0,
            distill_l1: 0.0,
            freeze_mapping: false,
            noise_off: false,
            adversarial: 1.0,
            perceptual: 0.0,
            cdc: 0.0,
            freeze_g: 0,
        }
    }
}

// the distance is defined in limner-core (limner-nets implements it without depending on the
// trainer); re-exported for limner-gan's users
pub use limner_core::PerceptualDistance;

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
    /// the cross-domain consistency loss (with `TrainConfig::cdc` only)
    pub cdc: Option<f32>,
    /// the ADA augmentation probability this step used (ADA only)
    pub augment_p: Option<f64>,
    /// `E[sign(D(real))]` of the interval that ended with this step (ADA only)
    pub ada_rt: Option<f64>,
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
    /// ADA's probability `p` and the sign statistics of the current interval (unused
    /// without ADA)
    pub ada: AdaState,
    pub device: Device,
    /// The network behind `TrainConfig::perceptual` (not saved with the run: attach it again
    /// after [`Trainer::load`]).
    pub perceptual_net: Option<Box<dyn PerceptualDistance>>,
    /// The frozen source generator of a transfer run (the pretrained G_ema it started from),
    /// which the CDC loss compares against; in the checkpoint as `G_source`.
    pub source: Option<Generator>,
}

impl Trainer {
    pub fn new(train: TrainConfig, gcfg: &GeneratorConfig, dcfg: &DiscriminatorConfig, device: &Device) -> Result<Self> {
        gcfg.validate()?;
        dcfg.validate()?;
        train.validate()?;
        let d_blocks = crate::config::block_resolutions(dcfg.img_resolution).len() - 1;
        if train.freeze_d > d_blocks {
            bail!("--freeze-d {}: a {}px discriminator has only {d_blocks} blocks", train.freeze_d, dcfg.img_resolution);
        }
        let g_blocks = gcfg.block_resolutions().len();
        if train.freeze_g >= g_blocks {
            bail!("--freeze-g {}: a {}px generator has {g_blocks} synthesis blocks, and at least the last must train", train.freeze_g, gcfg.img_resolution);
        }
        // initial weights come from the run seed alone (no global RNG state)
        let mut init = crate::layers::Init::new(train.seed.wrapping_add(0x5EED), device);
        let g = Generator::init(gcfg, &mut init);
        let d = Discriminator::init(dcfg, &mut init);
        let g_ema = g.clone();
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(train.seed),
            ada: train.ada.as_ref().map(AdaState::new).unwrap_or_default(),
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
            source: None,
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

    /// ws for a batch with style mixing (one cutoff per batch, as in the official code); with
    /// `source`, also that generator's ws for the same latents and mixing (no gradient).
    fn mapped_ws(&mut self, g: &Generator, n: usize, source: Option<&Generator>) -> (Tensor<3>, Tensor<2>, Option<Tensor<3>>) {
        let z = self.latents(n);
        let num_ws = g.num_ws();
        let mix = self.rng.random::<f64>() < self.train.style_mixing;
        let cutoff = self.rng.random_range(1..num_ws);
        let z2 = self.latents(n);
        let mixed = |g: &Generator, z: Tensor<2>, z2: Tensor<2>| {
            let w = g.mapping.forward_w(z);
            let ws = g.mapping.broadcast_truncate(w.clone(), 1.0, None);
            if !mix {
                return (ws, w);
            }
            let ws2 = g.mapping.forward(z2, 1.0, None);
            let wd = g.config.w_dim;
            (Tensor::cat(vec![ws.slice([0..n, 0..cutoff, 0..wd]), ws2.slice([0..n, cutoff..num_ws, 0..wd])], 1), w)
        };
        let source_ws = source.map(|s| mixed(s, z.clone(), z2.clone()).0);
        let (ws, w) = mixed(g, z, z2);
        (ws, w, source_ws)
    }

    /// One training step: D on a real and a fake batch (plus R1 when due), then G, then the
    /// EMA. The RNG draws, in order: the flips, the D step's (latents, mixing, noise,
    /// augmentation, R1 directions), the G step's.
    pub fn step(&mut self, data: &dyn DataSource) -> Result<StepStats> {
        let n = self.train.batch;
        let res = self.g.config.img_resolution;
        if data.resolution() != res {
            bail!("the dataset is {}px but the model is {}px", data.resolution(), res);
        }
        if data.len() == 0 {
            bail!("the dataset is empty");
        }
        self.train.validate()?;
        let mut stats = StepStats::default();
        let idx = self.next_indices(data.len(), n);
        let flips: Vec<bool> = (0..n).map(|_| self.train.xflip && self.rng.random::<bool>()).collect();
        if self.adversarial() {
            self.d_step(data, &idx, &flips, &mut stats);
        }
        self.g_step(data, &idx, &mut stats)?;
        self.ema_step();

        self.step += 1;
        self.images_seen += n as u64;
        if let Some(ada) = &self.train.ada {
            stats.augment_p = Some(self.ada.p);
            if self.step % ada.interval == 0 {
                stats.ada_rt = self.ada.adjust(ada, n);
            }
        }
        let (l1, perceptual, cdc) = (stats.distill.unwrap_or(0.0), stats.perceptual.unwrap_or(0.0), stats.cdc.unwrap_or(0.0));
        if ![stats.loss_g, stats.loss_d, l1, perceptual, cdc].iter().all(|v| v.is_finite()) {
            bail!(
                "training diverged at step {} (loss G {}, loss D {}, distill L1 {l1}, perceptual {perceptual}, CDC {cdc}); resume from the last checkpoint with a lower learning rate",
                self.step, stats.loss_g, stats.loss_d
            );
        }
        Ok(stats)
    }

    /// Whether the run has a discriminator (an adversarial weight above 0).
    fn adversarial(&self) -> bool {
        self.train.adversarial > 0.0
    }

    /// The D step: `softplus(D(G(z))) + softplus(-D(x))` on the real batch `idx` (flipped by
    /// `flips`) and a fresh fake batch, plus the lazy R1 penalty when due; one Adam step on D.
    fn d_step(&mut self, data: &dyn DataSource, idx: &[usize], flips: &[bool], stats: &mut StepStats) {
        let (n, res, dev) = (idx.len(), self.g.config.img_resolution, self.device.clone());
        let mut buf = Vec::new();
        data.fill_batch(idx, flips, &mut buf);
        let real = tensor_from(buf, [n, 3, res, res], &dev); // [N, 3, R, R]
        let g_plain = self.g.clone();
        let (ws, _, _) = self.mapped_ws(&g_plain, n, None);
        let fake = {
            let mut noise = NoiseMode::Random { rng: &mut self.rng, scale: 1.0 };
            g_plain.synthesis.forward(ws, &mut noise) // [N, 3, R, R], no tape
        };
        let mut d_ad = lift(&self.d, true);
        // FreezeD: the first blocks take part without gradients of their own
        for (b, src) in d_ad.blocks.iter_mut().zip(&self.d.blocks).take(self.train.freeze_d) {
            *b = lift(src, false);
        }
        let fake_aug = self.augment(fake.autodiff()); // [N, 3, R, R]
        let real_aug = self.augment(real.clone().autodiff()); // [N, 3, R, R]
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
        if self.train.ada.is_some() {
            self.ada.observe(&crate::params::to_vec(&real_logits));
        }
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

    /// The G step: `softplus(-D(G(z)))` (weighted by `adversarial`), plus with paired
    /// distillation the pixel L1 and the perceptual distance to the teacher's images; one Adam
    /// step on G and the `w_avg` update.
    ///
    /// With paired distillation the G step renders the latents of the D step's real images
    /// (the teacher's seeds, `idx`) and also pays the distance to those images.
    fn g_step(&mut self, data: &dyn DataSource, idx: &[usize], stats: &mut StepStats) -> Result<()> {
        let (n, res, dev) = (idx.len(), self.g.config.img_resolution, self.device.clone());
        let mut g_ad = lift(&self.g, true);
        let source = if self.train.cdc > 0.0 {
            Some(self.source.take().context("the run has a CDC weight but no source generator to compare with (CDC is for transfer learning: start with --init)")?)
        } else {
            None
        };
        let (ws, w, target, source_ws) = if self.train.distill_l1 > 0.0 {
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
            data.fill_batch(idx, &vec![false; n], &mut buf); // unflipped: the teacher's exact images
            (ws, w, Some(tensor_from(buf, [n, 3, res, res], &dev)), None)
        } else {
            let (ws, w, source_ws) = self.mapped_ws(&g_ad, n, source.as_ref());
            (ws, w, None, source_ws)
        };
        // the source renders the same ws' latents with the same noise: a copy of the RNG
        // replays the draws the adapted G makes
        let mut source_rng = self.rng.clone();
        let (fake, feats) = {
            let mut noise = NoiseMode::Random { rng: &mut self.rng, scale: 1.0 };
            g_ad.synthesis.forward_features(ws, &mut noise) // [N, 3, R, R], each block's [N, C, r, r]
        };
        let cdc = match (&source, source_ws) {
            (Some(src), Some(sws)) => {
                let mut noise = NoiseMode::Random { rng: &mut source_rng, scale: 1.0 };
                let (_, src_feats) = src.synthesis.forward_features(sws, &mut noise);
                Some(crate::cdc::cdc_loss(&src_feats, &feats))
            }
            _ => None,
        };
        drop(feats);
        self.source = source;
        let mut loss_g = if self.adversarial() {
            let d_const = lift(&self.d, false);
            let logits = d_const.forward(self.augment(fake.clone())); // [N, 1]
            let adv = softplus(logits.neg(), 1.0).mean();
            stats.loss_g = adv.clone().into_scalar::<f32>();
            adv.mul_scalar(self.train.adversarial)
        } else {
            Tensor::zeros([1], &fake.device())
        };
        if let Some(c) = cdc {
            stats.cdc = Some(c.clone().into_scalar::<f32>());
            loss_g = loss_g + c.mul_scalar(self.train.cdc);
        }
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
        let frozen: Vec<String> = self.g.config.block_resolutions().iter().take(self.train.freeze_g).map(|r| format!("synthesis.b{r}.")).collect();
        gg.retain(|name, _| !frozen.iter().any(|f| name.starts_with(f)));
        self.adam_g.step(&mut self.g, &gg, self.train.g_lr, self.train.beta1, self.train.beta2);
        if !self.train.freeze_mapping {
            self.g.mapping.update_w_avg(&w);
        }
        Ok(())
    }

    /// What D sees of a batch: the ADA pipeline at the current `p`, or DiffAugment.
    fn augment(&mut self, x: Tensor<4>) -> Tensor<4> {
        match &self.train.ada {
            Some(ada) => ada.pipe.apply(x, self.ada.p, &mut self.rng),
            None => self.train.diffaugment.apply(x, &mut self.rng),
        }
    }

    /// Moves the EMA generator towards G for the batch just trained (before `images_seen`
    /// counts it).
    fn ema_step(&mut self) {
        let beta = ema_beta(self.train.ema_kimg, self.train.ema_rampup, self.images_seen, self.train.batch);
        ema_update(&mut self.g_ema, &mut self.g, beta);
    }
}
