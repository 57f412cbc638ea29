//! Setting up a training run from a user's choices, as `limner train` (and any other front
//! end) asks for it: a new run (configs, a teacher's frozen mapping network, a starting
//! generator) or a resumed one (with the weights a user may change mid-run), the run folder's
//! guard rails, and `run.json`. The front end only parses options and prints the notes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Device;

use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::generate::load_generator_file;
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

/// A new run: the networks' configs, the training options, and where G starts.
pub struct NewRun<'a> {
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
    pub train: TrainConfig,
    /// adopt this teacher's mapping network (frozen); sets G's z/w dims and mapping depth
    pub teacher: Option<&'a dyn TeacherMapping>,
    /// start G and its EMA from this generator file (same config)
    pub init_generator: Option<&'a Path>,
}

/// What a user may change when resuming a run (everything else is the checkpoint's).
#[derive(Clone, Debug, Default)]
pub struct ResumeOverrides {
    /// switch the noise inputs off from now on (one-way)
    pub noise_off: bool,
    pub adversarial: Option<f64>,
    pub perceptual: Option<f64>,
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
    let NewRun { generator: mut g, discriminator: d, mut train, teacher, init_generator } = run;
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
        if src.config != t.g.config {
            bail!("{} is a {:?} generator; this run is {:?} (match --z-dim/--w-dim/--channel-* and the data's resolution)", p.display(), src.config, t.g.config);
        }
        t.g = src.clone();
        t.g_ema = src;
        note(format!("G and its EMA start from {}", p.display()));
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
    for (name, given, weight) in [("adversarial", o.adversarial, &mut t.train.adversarial), ("perceptual", o.perceptual, &mut t.train.perceptual)] {
        if let Some(w) = given.filter(|w| w != weight) {
            *weight = w;
            note(format!("{name} weight {w} from {kimg:.1} kimg on"));
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
