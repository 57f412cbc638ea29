//! Import and export of official StyleGAN2-ADA state dicts (safetensors, PyTorch names).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use serde_json::Value;

use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::layers::fir_filter_2d;
use crate::params::{load_state_dict, read_safetensors, StateDict};
use crate::{Discriminator, Generator};

/// Reads a StyleGAN2 config JSON: either flat or under `"config"`, with the official names
/// (`z_dim`, `w_dim`, `img_resolution` or `res`, `mapping_layers` or `map_layers`,
/// `channel_base`, `channel_max`).
pub fn read_config_json(path: &Path) -> Result<(GeneratorConfig, DiscriminatorConfig)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let c = v.get("config").unwrap_or(&v);
    let get = |names: &[&str]| -> Result<usize> {
        for n in names {
            if let Some(x) = c.get(*n).and_then(Value::as_u64) {
                return Ok(x as usize);
            }
        }
        bail!("{}: missing `{}`", path.display(), names[0])
    };
    let res = get(&["img_resolution", "res", "resolution"])?;
    let mut g = GeneratorConfig::limner_default(res);
    g.z_dim = get(&["z_dim"])?;
    g.w_dim = get(&["w_dim"])?;
    g.mapping_layers = get(&["mapping_layers", "map_layers", "num_layers"])?;
    g.channel_base = get(&["channel_base"])?;
    g.channel_max = get(&["channel_max"])?;
    g.validate()?;
    let mut d = DiscriminatorConfig::limner_default(res);
    d.channel_base = g.channel_base;
    d.channel_max = g.channel_max;
    Ok((g, d))
}

/// Infers the generator config from an official state dict's shapes.
pub fn infer_generator_config(sd: &StateDict) -> Result<GeneratorConfig> {
    let shape = |k: &str| sd.get(k).map(|t| t.shape.clone()).with_context(|| format!("state dict has no `{k}`: not a StyleGAN2 generator"));
    let fc0 = shape("mapping.fc0.weight")?;
    let (w_dim, z_dim) = (fc0[0], fc0[1]);
    let mapping_layers = (0..).take_while(|i| sd.contains_key(&format!("mapping.fc{i}.weight"))).count();
    let mut res = 4;
    let mut chans = BTreeMap::new();
    while let Ok(s) = shape(&format!("synthesis.b{res}.conv1.weight")) {
        chans.insert(res, s[0]);
        res *= 2;
    }
    let img_resolution = res / 2;
    let channel_max = *chans.values().max().context("no synthesis blocks")?;
    // channels(R) = min(base / R, max): any resolution below the cap pins base down
    let channel_base = chans
        .iter()
        .find(|(_, &c)| c < channel_max)
        .map(|(&r, &c)| c * r)
        .unwrap_or(channel_max * img_resolution);
    let mut g = GeneratorConfig::limner_default(img_resolution);
    g.z_dim = z_dim;
    g.w_dim = w_dim;
    g.mapping_layers = mapping_layers;
    g.channel_base = channel_base;
    g.channel_max = channel_max;
    g.img_channels = shape(&format!("synthesis.b{img_resolution}.torgb.weight"))?[0];
    g.validate()?;
    Ok(g)
}

/// Checks that every `resample_filter` buffer holds the default `[1,3,3,1]` FIR filter.
fn check_filters(sd: &StateDict) -> Result<()> {
    let f = fir_filter_2d();
    for (k, t) in sd.iter().filter(|(k, _)| k.ends_with("resample_filter")) {
        let ok = t.data.len() == 16 && t.data.iter().zip(f.iter()).all(|(a, b)| (a - b).abs() < 1e-6);
        if !ok {
            bail!("`{k}` is not the default [1,3,3,1] filter; limner supports only that one");
        }
    }
    Ok(())
}

/// Loads an official generator state dict (config inferred from shapes unless given).
pub fn load_generator(path: &Path, cfg: Option<&GeneratorConfig>, device: &Device) -> Result<Generator> {
    let (sd, _) = read_safetensors(path)?;
    let cfg = match cfg {
        Some(c) => c.clone(),
        None => infer_generator_config(&sd).with_context(|| format!("{}", path.display()))?,
    };
    check_filters(&sd)?;
    let mut g = Generator::new(&cfg, device);
    load_state_dict(&mut g, &sd, device).with_context(|| format!("loading {}", path.display()))?;
    Ok(g)
}

/// Loads an official discriminator state dict.
pub fn load_discriminator(path: &Path, cfg: &DiscriminatorConfig, device: &Device) -> Result<Discriminator> {
    let (sd, _) = read_safetensors(path)?;
    check_filters(&sd)?;
    let mut d = Discriminator::new(cfg, device);
    load_state_dict(&mut d, &sd, device).with_context(|| format!("loading {}", path.display()))?;
    Ok(d)
}

/// One row of [`compare_intermediates`]: a module, its largest absolute difference from the
/// reference, and the largest reference value (for scale).
#[derive(Clone, Debug)]
pub struct ModuleDiff {
    pub name: String,
    pub max_abs_diff: f32,
    pub max_abs_ref: f32,
}

/// Runs the fixture's generator (`w_psi1`, const noise) and discriminator (`x_real`) with a
/// trace and compares every module's output with `intermediates.safetensors`, in execution
/// order, so a broken layer shows up as the first row that deviates.
pub fn compare_intermediates(dir: &Path, device: &Device) -> Result<Vec<ModuleDiff>> {
    use crate::layers::NoiseMode;
    use crate::params::{tensor_from, to_vec, HostTensor};
    let (gcfg, dcfg) = read_config_json(&dir.join("config.json"))?;
    let g = load_generator(&dir.join("G.safetensors"), Some(&gcfg), device)?;
    let d = load_discriminator(&dir.join("D.safetensors"), &dcfg, device)?;
    let (io, _) = read_safetensors(&dir.join("io.safetensors"))?;
    let (refs, _) = read_safetensors(&dir.join("intermediates.safetensors"))?;
    let get = |k: &str| -> Result<&HostTensor> { io.get(k).with_context(|| format!("io.safetensors has no `{k}`")) };
    let mut seen: Vec<(String, Vec<f32>)> = vec![];
    {
        let mut rec = |name: &str, v: Vec<f32>| seen.push((name.to_string(), v));
        let z = get("z")?;
        g.mapping.forward_w_traced(tensor_from(z.data.clone(), [z.shape[0], z.shape[1]], device), &mut Some(&mut rec));
        let w = get("w_psi1")?;
        let ws = tensor_from(w.data.clone(), [w.shape[0], w.shape[1], w.shape[2]], device);
        g.synthesis.forward_traced(ws, &mut NoiseMode::Const, &mut Some(&mut rec));
        let x = get("x_real")?;
        let x = tensor_from(x.data.clone(), [x.shape[0], x.shape[1], x.shape[2], x.shape[3]], device);
        d.forward_traced(x, &mut Some(&mut rec));
    }
    {
        // the styles (`.affine` outputs) are not part of the forward trace: computed here and
        // placed before the layer they modulate, in execution order
        let w = get("w_psi1")?;
        let ws = tensor_from(w.data.clone(), [w.shape[0], w.shape[1], w.shape[2]], device);
        let [n, _, wd] = ws.dims();
        let mut k = 0;
        for b in &g.synthesis.blocks {
            let mut layers: Vec<(&str, &crate::layers::FullyConnectedLayer)> = vec![];
            if let Some(c0) = &b.conv0 {
                layers.push(("conv0", &c0.affine));
            }
            layers.push(("conv1", &b.conv1.affine));
            layers.push(("torgb", &b.torgb.affine));
            for (j, (layer, affine)) in layers.into_iter().enumerate() {
                let module = format!("{}.{layer}", b.name());
                let styles = affine.forward(ws.clone().narrow(1, k + j, 1).reshape([n, wd]));
                let at = seen.iter().position(|(m, _)| *m == module).unwrap_or(seen.len());
                seen.insert(at, (format!("{module}.affine"), to_vec(&styles)));
            }
            k += b.num_conv();
        }
    }
    let mut rows = vec![];
    for (name, got) in seen {
        let Some(want) = refs.get(&name) else { continue };
        if want.data.len() != got.len() {
            bail!("module `{name}`: {} values, the reference has {}", got.len(), want.data.len());
        }
        let max_abs_diff = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let max_abs_ref = want.data.iter().map(|v| v.abs()).fold(0.0, f32::max);
        rows.push(ModuleDiff { name, max_abs_diff, max_abs_ref });
    }
    Ok(rows)
}
