//! The training checkpoint: every network, Adam's moments and the RNG position in one
//! safetensors file, so a resumed run continues bit for bit. A generator file can be read
//! from a checkpoint too ([`crate::generate`] reads its `G_ema`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use limner_core::{parse_safetensors, safetensors_bytes, write_atomic, Precision, StateDict};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ada::AdaState;
use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::optim::Adam;
use crate::params::{load_state_dict, state_dict};
use crate::train::{TrainConfig, Trainer};

/// The metadata key holding a checkpoint's [`CheckpointState`] (JSON).
pub const CHECKPOINT_KEY: &str = "limner_checkpoint";

/// Whether safetensors `bytes` are a training checkpoint (G, G_ema, D and the training state)
/// rather than a generator file; reads the header only.
pub fn is_checkpoint(bytes: &[u8]) -> bool {
    safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().map(|m| m.contains_key(CHECKPOINT_KEY)))
        .unwrap_or(false)
}

impl Trainer {
    /// Everything needed to resume, as safetensors bytes.
    pub fn checkpoint_bytes(&mut self) -> Result<Vec<u8>> {
        let mut sd = StateDict::new();
        let mut parts = vec![("G", state_dict(&mut self.g, false)), ("D", state_dict(&mut self.d, false)), ("G_ema", state_dict(&mut self.g_ema, false))];
        if let Some(src) = &mut self.source {
            parts.push(("G_source", state_dict(src, false)));
        }
        for (prefix, part) in parts {
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
            ada: self.train.ada.is_some().then(|| AdaCheckpoint { p_bits: self.ada.p.to_bits(), sign_sum: self.ada.sign_sum, sign_n: self.ada.sign_n }),
        };
        // a single metadata key keeps the file bytes deterministic (safetensors writes its
        // metadata map in hash order)
        let mut meta = BTreeMap::new();
        meta.insert(CHECKPOINT_KEY.to_string(), serde_json::to_string(&state)?);
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
            meta.get(CHECKPOINT_KEY)
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
        let source = split("G_source");
        if !source.is_empty() {
            let mut src = t.g.clone();
            load_state_dict(&mut src, &source, device).with_context(|| format!("{}: source generator", path.display()))?;
            t.source = Some(src);
        }
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
        if let Some(a) = state.ada {
            t.ada = AdaState { p: f64::from_bits(a.p_bits), sign_sum: a.sign_sum, sign_n: a.sign_n };
        }
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
    /// ADA's state (runs with ADA only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ada: Option<AdaCheckpoint>,
}

/// ADA's state in a checkpoint: `p` as its IEEE bits (JSON numbers need not round-trip an f64
/// exactly) and the integer sign statistics of the current interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AdaCheckpoint {
    p_bits: u64,
    sign_sum: i64,
    sign_n: u64,
}

impl CheckpointState {
    /// ADA's probability `p` at the checkpoint (`None`: a run without ADA).
    pub fn augment_p(&self) -> Option<f64> {
        self.ada.as_ref().map(|a| f64::from_bits(a.p_bits))
    }
}
