//! Generation: seeds -> latents -> images, and loading a generator from any file limner
//! knows (a training checkpoint, a limner generator file, an official state dict).

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::GeneratorConfig;
use crate::import::infer_generator_config;
use crate::layers::NoiseMode;
use crate::params::{load_state_dict, parse_safetensors, safetensors_bytes, state_dict, to_vec, write_atomic, Precision, StateDict};
use crate::checkpoint::{CheckpointState, CHECKPOINT_KEY};
use crate::Generator;
use limner_data::imageio::nchw_to_rgb8;

/// What a generator file records about itself (safetensors metadata `limner_generator`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub config: Option<GeneratorConfig>,
    /// thousands of training images seen
    pub kimg: Option<f64>,
    /// free-form provenance (data, command)
    pub notes: Option<String>,
}

// A seed's latent and noise stream are shared with every generator (limner-core); re-exported
// for limner-gan's own modules and tests.
pub use limner_core::seed::{latent_for_seed, latents_for_seeds, noise_rng_for_seed};

/// Options of one generation.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// truncation psi ("temperature"): 1 = the full distribution, 0 = the average face
    pub psi: f32,
    /// scale of the per-pixel noise (0 = none); the noise of each seed is fixed by the seed
    pub noise: f32,
    /// images per forward pass
    pub batch: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { psi: 0.7, noise: 1.0, batch: 16 }
    }
}

/// Images for seeds, NCHW in about [-1, 1]. Every image depends only on its seed and the
/// options, never on the batch it was computed in.
pub fn generate_seeds(g: &Generator, seeds: &[u64], opts: &GenerateOptions) -> Vec<f32> {
    let device = g.mapping.w_avg.device();
    let mut out = Vec::new();
    for chunk in seeds.chunks(opts.batch.max(1)) {
        let z = latents_for_seeds(chunk, g.config.z_dim, &device);
        let ws = g.mapping.forward(z, opts.psi, None);
        out.extend(synthesize(g, ws, chunk, opts.noise));
    }
    out
}

/// As [`generate_seeds`], as 8-bit RGB images (HWC, `res * res * 3` bytes each), calling
/// `progress(done)` after each batch.
pub fn generate_seeds_rgb8(g: &Generator, seeds: &[u64], opts: &GenerateOptions, progress: &mut dyn FnMut(usize)) -> Vec<Vec<u8>> {
    let res = g.config.img_resolution;
    let mut out = Vec::with_capacity(seeds.len());
    for chunk in seeds.chunks(opts.batch.max(1)) {
        out.extend(nchw_to_rgb8(&generate_seeds(g, chunk, opts), chunk.len(), res, res));
        progress(out.len());
    }
    out
}

/// Synthesis with per-sample seeded noise.
pub fn synthesize(g: &Generator, ws: Tensor<3>, noise_seeds: &[u64], noise: f32) -> Vec<f32> {
    let img = if noise == 0.0 {
        g.synthesis.forward(ws, &mut NoiseMode::None)
    } else {
        let rngs = noise_seeds.iter().map(|&s| noise_rng_for_seed(s)).collect();
        g.synthesis.forward(ws, &mut NoiseMode::PerSample { rngs, scale: noise })
    };
    to_vec(&img)
}

/// Loads a generator from a training checkpoint (its EMA generator), a limner generator
/// file, or an official StyleGAN2-ADA state dict (config inferred from the shapes).
pub fn load_generator_file(path: &Path, device: &Device) -> Result<(Generator, GeneratorInfo)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    load_generator_bytes(&bytes, device).with_context(|| format!("cannot load model {}", path.display()))
}

/// As [`load_generator_file`], from bytes (used for the embedded default model).
pub fn load_generator_bytes(bytes: &[u8], device: &Device) -> Result<(Generator, GeneratorInfo)> {
    let (sd, meta) = parse_safetensors(bytes).context("not a safetensors file (corrupt or truncated?)")?;
    let (sd, info): (StateDict, GeneratorInfo) = if let Some(ck) = meta.get(CHECKPOINT_KEY) {
        let state: CheckpointState = serde_json::from_str(ck).context("bad checkpoint metadata")?;
        let sd = sd.iter().filter_map(|(k, v)| k.strip_prefix("G_ema.").map(|r| (r.to_string(), v.clone()))).collect();
        (sd, GeneratorInfo { config: Some(state.generator), kimg: Some(state.images_seen as f64 / 1000.0), notes: None })
    } else if let Some(g) = meta.get("limner_generator") {
        (sd, serde_json::from_str(g).context("bad generator metadata")?)
    } else {
        (sd, GeneratorInfo::default())
    };
    let config = match &info.config {
        Some(c) => c.clone(),
        None => infer_generator_config(&sd)?,
    };
    let mut g = Generator::new(&config, device);
    load_state_dict(&mut g, &sd, device)?;
    Ok((g, GeneratorInfo { config: Some(config), ..info }))
}

/// Writes a generator under the official state-dict names with its config in the metadata.
pub fn save_generator(path: &Path, g: &mut Generator, info: &GeneratorInfo, precision: Precision) -> Result<()> {
    let sd = state_dict(g, false);
    let mut meta = std::collections::BTreeMap::new();
    let info = GeneratorInfo { config: Some(g.config.clone()), ..info.clone() };
    meta.insert("limner_generator".to_string(), serde_json::to_string(&info)?);
    write_atomic(path, &safetensors_bytes(&sd, &meta, precision)?)
}

/// Parses a seed list such as `0-63`, `1,5,9` or `0-3,100`.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (u64, u64) = (a.trim().parse().with_context(|| format!("bad seed `{a}`"))?, b.trim().parse().with_context(|| format!("bad seed `{b}`"))?);
            anyhow::ensure!(a <= b, "seed range `{part}` runs backwards");
            anyhow::ensure!(b - a < 1_000_000, "seed range `{part}` is too long");
            out.extend(a..=b);
        } else {
            out.push(part.parse().with_context(|| format!("bad seed `{part}`"))?);
        }
    }
    anyhow::ensure!(!out.is_empty(), "no seeds given");
    Ok(out)
}
