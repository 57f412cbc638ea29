//! Setting up a training run from a user's choices, as `limner train` (and any other front
//! end) asks for it: a new run (configs, a teacher's frozen mapping network, a starting
//! generator) or a resumed one (with the weights a user may change mid-run), the run folder's
//! guard rails, and `run.json`. The front end only parses options and prints the notes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Device;

use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::generate::load_generator_file;
use crate::{Discriminator, Generator};
use crate::generator::MappingNetwork;
use crate::train::{DataSource, TrainConfig, Trainer};

/// The checkpoint of a run folder (resume from it).
pub const CHECKPOINT_FILE: &str = "latest.safetensors";

/// A teacher whose mapping network a student adopts (frozen), so the student lives in the
/// teacher's w space and learns the teacher's image of each seed (paired distillation).
pub trait TeacherMapping {
    /// The teacher's name, for messages.
    fn name(&self) -> &str;
    /// `(z_dim, w_dim, mapping layers)` of the teacher's mapping network.
    fn mapping_dims(&self) -> (usize, usize, usize);
    /// The teacher's mapping network as a limner-gan network.
    fn mapping_network(&self, lr_multiplier: f64, num_ws: usize, w_avg_beta: f64) -> Result<MappingNetwork>;
}

/// Pretrained networks a new run starts from (transfer learning, `limner train --init`): G,
/// its EMA and, where the source has one, D. The run takes their configs.
pub struct InitNetworks {
    /// how the user named the source (for messages)
    pub name: String,
    pub g: Generator,
    pub g_ema: Generator,
    /// the source's discriminator; `None`: D starts from random weights
    pub d: Option<Discriminator>,
}

impl InitNetworks {
    /// A source that is one (EMA) generator, such as the embedded default: G = G_ema = it.
    pub fn generator(name: &str, g: Generator) -> Self {
        Self { name: name.to_string(), g_ema: g.clone(), g, d: None }
    }

    /// A training run's checkpoint (`RUN/latest.safetensors`): its G, G_ema and D, as the
    /// official code resumes a snapshot for transfer.
    pub fn checkpoint(name: &str, ckpt: &Path, device: &Device) -> Result<Self> {
        let t = Trainer::load(ckpt, device)?;
        Ok(Self { name: name.to_string(), g: t.g, g_ema: t.g_ema, d: Some(t.d) })
    }

    /// Adds a discriminator file: official state-dict names with the limner config as
    /// `limner_discriminator` metadata, as `limner models import --discriminator` writes it.
    pub fn with_discriminator_file(self, path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read discriminator {}", path.display()))?;
        self.with_discriminator_bytes(&bytes, &path.display().to_string(), device)
    }

    /// Adds a discriminator from a file's bytes (`label` names it in errors).
    pub fn with_discriminator_bytes(mut self, bytes: &[u8], label: &str, device: &Device) -> Result<Self> {
        self.d = Some(crate::import::load_discriminator_bytes(bytes, label, device)?);
        Ok(self)
    }
}

/// A new run: the networks' configs, the training options, and where G starts.
pub struct NewRun<'a> {
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
    pub train: TrainConfig,
    /// adopt this teacher's mapping network (frozen); sets G's z/w dims and mapping depth
    pub teacher: Option<&'a dyn TeacherMapping>,
    /// start G and its EMA from this generator file (same config)
    pub init_generator: Option<&'a Path>,
    /// transfer learning: start G, G_ema and (where there is one) D from these networks;
    /// their configs replace `generator` and `discriminator`
    pub init: Option<InitNetworks>,
}

/// What a user may change when resuming a run (everything else is the checkpoint's).
#[derive(Clone, Debug, Default)]
pub struct ResumeOverrides {
    /// switch the noise inputs off from now on (one-way)
    pub noise_off: bool,
    pub adversarial: Option<f64>,
    pub perceptual: Option<f64>,
    /// G's and D's Adam learning rates from now on (the optimisers' moments are kept)
    pub g_lr: Option<f64>,
    pub d_lr: Option<f64>,
}

/// The run folder's checkpoint, checked against the user's intent: `resume` needs one, a new
/// run refuses to overwrite one.
pub fn checkpoint_path(out: &Path, resume: bool) -> Result<PathBuf> {
    let ckpt = out.join(CHECKPOINT_FILE);
    match (resume, ckpt.exists()) {
        (true, false) => bail!("--resume: {} does not exist (start without --resume)", ckpt.display()),
        (false, true) => bail!("{} already holds a run: pass --resume to continue it, or choose another --out", out.display()),
        _ => Ok(ckpt),
    }
}

/// Starts a new run on `data`. `note` receives one line per choice worth telling the user.
pub fn new_trainer(run: NewRun, data: &dyn DataSource, device: &Device, note: &mut dyn FnMut(String)) -> Result<Trainer> {
    let NewRun { generator: mut g, discriminator: mut d, mut train, teacher, init_generator, init } = run;
    if let Some(init) = &init {
        if teacher.is_some() || init_generator.is_some() {
            bail!("--init {} starts every network from a pretrained model: it cannot be combined with --teacher-mapping or --init-generator", init.name);
        }
        let (res, data_res) = (init.g.config.img_resolution, data.resolution());
        if res != data_res {
            bail!(
                "--init {}: the model is {res}×{res} px but the dataset is {data_res}×{data_res} px; rebuild the dataset at the model's resolution (`limner dataset build PHOTOS --res {res} --out DATA.limner`) or start from a {data_res} px model",
                init.name
            );
        }
        if let Some(src) = &init.d {
            if src.config.img_resolution != res {
                bail!("--init {}: its discriminator is {} px but its generator is {res} px", init.name, src.config.img_resolution);
            }
        }
        g = init.g.config.clone();
        d = match &init.d {
            Some(src) => src.config.clone(),
            None => DiscriminatorConfig { channel_base: g.channel_base, channel_max: g.channel_max, ..DiscriminatorConfig::limner_default(res) },
        };
    }
    if train.cdc > 0.0 && init.is_none() {
        bail!("CDC (--cdc) keeps a pretrained generator's variety while it adapts: it needs a source to start from (--init)");
    }
    if let Some(t) = teacher {
        (g.z_dim, g.w_dim, g.mapping_layers) = t.mapping_dims();
        train.freeze_mapping = true;
    }
    if train.distill_l1 > 0.0 {
        if teacher.is_none() {
            bail!("paired distillation (--distill) needs a teacher's mapping (--teacher-mapping): G must share the teacher's latent space");
        }
        if (0..data.len()).any(|i| data.pair_seed(i).is_none()) {
            bail!("paired distillation (--distill) needs a dataset whose images are all named seedNNNNNNNN.png: build it from a `limner dataset distill` folder");
        }
    }
    let mut t = Trainer::new(train, &g, &d, device)?;
    if let Some(teacher) = teacher {
        let m = teacher.mapping_network(g.mapping_lr_multiplier, g.num_ws(), g.w_avg_beta)?;
        t.g.mapping = m.clone();
        t.g_ema.mapping = m;
        note(format!("G's mapping network is {}'s (frozen): G lives in its w space", teacher.name()));
    }
    if let Some(p) = init_generator {
        let (src, _) = load_generator_file(p, device)?;
        let grown = GeneratorConfig { img_resolution: src.config.img_resolution * 2, ..src.config.clone() };
        if src.config == t.g.config {
            t.g = src.clone();
            t.g_ema = src;
            note(format!("G and its EMA start from {}", p.display()));
        } else if grown == t.g.config {
            let fresh = t.g.synthesis.blocks.last().map(|b| b.name()).unwrap_or_default();
            t.g = grow_generator(&src, t.g.clone());
            t.g_ema = t.g.clone();
            note(format!(
                "G and its EMA grow {}: its {} px blocks start as trained, the new {fresh} starts with a zero toRGB, so the first image is the {} px one upsampled",
                p.display(),
                src.config.img_resolution,
                src.config.img_resolution
            ));
        } else {
            bail!(
                "{} is a {:?} generator; this run is {:?} (match --z-dim/--w-dim/--channel-* and the data's resolution, or train at twice its resolution to grow it)",
                p.display(),
                src.config,
                t.g.config
            );
        }
    }
    if let Some(init) = init {
        let (gc, dc) = (&init.g.config, &d);
        note(format!(
            "transfer: G and its EMA start from {} ({} px, z {} w {}, {} mapping layers, channel_base {} channel_max {})",
            init.name, gc.img_resolution, gc.z_dim, gc.w_dim, gc.mapping_layers, gc.channel_base, gc.channel_max
        ));
        if t.train.cdc > 0.0 {
            t.source = Some(init.g_ema.clone());
            note(format!("CDC: the batch's pairwise feature similarities are kept close to {}'s (weight {})", init.name, t.train.cdc));
        }
        t.g = init.g;
        t.g_ema = init.g_ema;
        let pretrained_d = init.d.is_some();
        match init.d {
            Some(src) => {
                t.d = src;
                note(format!("transfer: D starts from {}'s discriminator", init.name));
            }
            None => note(format!(
                "transfer: {} has no discriminator, so D starts from random weights (channel_base {} channel_max {}; seed {}): G keeps what it knows, but D must first learn to tell faces apart, so expect the first few kimg to move G less purposefully",
                init.name, dc.channel_base, dc.channel_max, t.train.seed
            )),
        }
        let mut frozen_g: Vec<String> = t.g.synthesis.blocks.iter().take(t.train.freeze_g).map(|b| format!("b{}", b.resolution)).collect();
        if t.train.freeze_mapping {
            frozen_g.insert(0, "the mapping network".into());
        }
        if !frozen_g.is_empty() {
            note(format!("G keeps {} as they start", frozen_g.join(", ")));
        }
        if t.train.freeze_d > 0 {
            let frozen: Vec<String> = t.d.blocks.iter().take(t.train.freeze_d).map(|b| format!("b{}", b.resolution)).collect();
            if pretrained_d {
                note(format!("FreezeD: D's blocks {} stay as they start", frozen.join(", ")));
            } else {
                note(format!(
                    "FreezeD: D's blocks {} stay as they start, and {} brought no D, so they stay random (FreezeD is meant for a pretrained D; bring one with --init-discriminator, or --freeze-d 0 lets them learn)",
                    frozen.join(", "),
                    init.name
                ));
            }
        }
    }
    Ok(t)
}

/// Resumes the run whose checkpoint is `ckpt`, applying the user's overrides.
pub fn resume_trainer(ckpt: &Path, o: &ResumeOverrides, device: &Device, note: &mut dyn FnMut(String)) -> Result<Trainer> {
    let mut t = Trainer::load(ckpt, device)?;
    note(format!("resuming {} at {:.1} kimg (step {})", ckpt.display(), t.kimg(), t.step));
    if o.noise_off && !t.train.noise_off {
        t.switch_noise_off();
        note(format!("noise inputs switched off from {:.1} kimg on", t.kimg()));
    }
    let kimg = t.kimg();
    for (name, given, value) in [
        ("adversarial weight", o.adversarial, &mut t.train.adversarial),
        ("perceptual weight", o.perceptual, &mut t.train.perceptual),
        ("G learning rate", o.g_lr, &mut t.train.g_lr),
        ("D learning rate", o.d_lr, &mut t.train.d_lr),
    ] {
        if let Some(w) = given.filter(|w| w != value) {
            *value = w;
            note(format!("{name} {w} from {kimg:.1} kimg on"));
        }
    }
    t.train.validate().with_context(|| format!("resuming {}", ckpt.display()))?;
    Ok(t)
}

/// Writes `out/run.json`: the command, the data and every option of the run.
pub fn write_run_json(out: &Path, command: &str, data: &Path, images: usize, t: &Trainer) -> Result<()> {
    let run_json = serde_json::json!({
        "command": command,
        "data": data, "images": images, "resolution": t.g.config.img_resolution,
        "train": t.train, "generator": t.g.config, "discriminator": t.d.config,
    });
    limner_core::write_atomic(&out.join("run.json"), serde_json::to_string_pretty(&run_json)?.as_bytes())
}

/// Progressive growing of a trained generator by one octave: `fresh` is a freshly initialised
/// generator at twice `src`'s resolution with otherwise the same config. Its mapping network
/// and every block `src` has are replaced by `src`'s, and the new top block's toRGB weight is
/// zeroed, so the grown generator's image is exactly `src`'s image upsampled (skip
/// architecture: `img = upsample(img_prev) + torgb(x)`) until training moves it.
pub fn grow_generator(src: &Generator, mut fresh: Generator) -> Generator {
    assert_eq!(fresh.config.img_resolution, src.config.img_resolution * 2, "grow_generator grows by exactly one octave");
    fresh.mapping.fcs = src.mapping.fcs.clone();
    fresh.mapping.w_avg = src.mapping.w_avg.clone();
    let n = src.synthesis.blocks.len();
    for (dst, b) in fresh.synthesis.blocks.iter_mut().zip(&src.synthesis.blocks) {
        *dst = b.clone();
    }
    let top = &mut fresh.synthesis.blocks[n];
    top.torgb.weight = top.torgb.weight.zeros_like();
    fresh
}