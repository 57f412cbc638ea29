//! Import and export of official StyleGAN2-ADA state dicts (safetensors, PyTorch names).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
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
    discriminator_from(&sd, cfg, &path.display().to_string(), device)
}

/// A discriminator of `cfg` with the weights of `sd` (official names; `label` names the source).
fn discriminator_from(sd: &StateDict, cfg: &DiscriminatorConfig, label: &str, device: &Device) -> Result<Discriminator> {
    check_filters(sd)?;
    let mut d = Discriminator::new(cfg, device);
    load_state_dict(&mut d, sd, device).with_context(|| format!("loading {label}"))?;
    Ok(d)
}

/// The metadata key under which a discriminator file carries its limner config.
pub const DISCRIMINATOR_META: &str = "limner_discriminator";

/// A discriminator file's bytes (official state-dict names, its config as
/// [`DISCRIMINATOR_META`] metadata, as [`save_discriminator`] writes it); `label` names the
/// source in errors.
pub fn load_discriminator_bytes(bytes: &[u8], label: &str, device: &Device) -> Result<Discriminator> {
    let (sd, meta) = limner_core::parse_safetensors(bytes).with_context(|| format!("{label} is not a safetensors file"))?;
    let cfg: DiscriminatorConfig = serde_json::from_str(meta.get(DISCRIMINATOR_META).with_context(|| {
        format!("{label} has no `{DISCRIMINATOR_META}` metadata: write it with `limner models import PKL --discriminator FILE` or `limner models freeze`")
    })?)
    .with_context(|| format!("{label}: bad discriminator metadata"))?;
    discriminator_from(&sd, &cfg, label, device)
}

/// Writes `d` as [`load_discriminator_bytes`] reads it (atomically).
pub fn save_discriminator(path: &Path, d: &mut Discriminator, precision: limner_core::Precision) -> Result<()> {
    let sd = crate::params::state_dict(d, false);
    let meta = BTreeMap::from([(DISCRIMINATOR_META.to_string(), serde_json::to_string(&d.config)?)]);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    limner_core::write_safetensors(path, &sd, &meta, precision)
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

/// Which network of an official snapshot to import (`G_ema`, the one to generate with, by
/// default; `G` is the raw training generator).
pub const GENERATOR_KEYS: [&str; 2] = ["G_ema", "G"];

/// A generator read from an official StyleGAN2-ADA pickle, with what the file said about it.
pub struct PickledGenerator {
    pub generator: Generator,
    /// the snapshot key it came from (`G_ema` or `G`)
    pub network: String,
    /// the element types its tensors were stored in (`F32`, `F16`)
    pub stored_dtypes: Vec<String>,
    /// `num_fp16_res` of the official config (limner computes in f32 throughout, as the
    /// official code does with `force_fp32=True`)
    pub num_fp16_res: usize,
    /// the training data's `path` and `resolution`, when the snapshot records them
    pub training_set: Option<String>,
}

/// Reads an official `network-snapshot-*.pkl` (or any pickle of a `training.networks.Generator`)
/// without running anything in it ([`limner_pickle`]) and loads `network` (`G_ema` or `G`) into
/// limner's generator, its config from the pickle's constructor arguments (`init_kwargs`)
/// and checked against the tensors. What limner cannot run is refused by name: conditional
/// models (`c_dim > 0`), architectures other than `skip`, non-default filters or activations.
pub fn load_generator_pickle(path: &Path, network: &str, device: &Device) -> Result<PickledGenerator> {
    let limits = limner_pickle::Limits::default();
    let snap = limner_pickle::stylegan2::read_snapshot(path, &limits)?;
    let net = snap.network(network).with_context(|| format!("{}", path.display()))?;
    if net.class_name != "Generator" {
        bail!("{}: `{network}` is a {}, not a Generator", path.display(), net.class_name);
    }
    let (cfg, num_fp16_res) = generator_config_from_kwargs(&net.init_kwargs)
        .with_context(|| format!("{}: `{network}` cannot be imported", path.display()))?;
    check_filters(&net.state_dict).with_context(|| format!("{}: `{network}`", path.display()))?;
    let mut g = Generator::new(&cfg, device);
    load_state_dict(&mut g, &net.state_dict, device)
        .with_context(|| format!("{}: `{network}`'s tensors do not match its own constructor arguments (a modified network?)", path.display()))?;
    let training_set = snap.training_set_kwargs.as_ref().map(|t| {
        let path = t.get("path").and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "?".into());
        let res = t.get("resolution").and_then(|v| v.as_int()).map(|r| format!(" at {r}px")).unwrap_or_default();
        format!("{path}{res}")
    });
    Ok(PickledGenerator {
        generator: g,
        network: network.to_string(),
        stored_dtypes: net.stored_dtypes.iter().map(|d| format!("{d:?}")).collect(),
        num_fp16_res,
        training_set,
    })
}

/// The official `Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs,
/// synthesis_kwargs)` arguments as limner's config (and `num_fp16_res`, which changes only the
/// official code's precision). Every argument is read; one limner cannot honour is an error
/// naming it.
pub fn generator_config_from_kwargs(kw: &limner_pickle::Value) -> Result<(GeneratorConfig, usize)> {
    use limner_pickle::Value;
    let present = |v: Option<Value>| v.filter(|v| !matches!(v, Value::None));
    let int = |path: &[&str], default: Option<usize>| -> Result<usize> {
        match present(limner_pickle::stylegan2::kwarg(kw, path)) {
            Some(v) => v.as_int().filter(|&i| i >= 0).map(|i| i as usize).with_context(|| format!("`{}` is {v:?}, not a count", path.join("."))),
            None => default.with_context(|| format!("the constructor arguments have no `{}`", path.join("."))),
        }
    };
    let float = |path: &[&str]| -> Result<Option<f64>> {
        match present(limner_pickle::stylegan2::kwarg(kw, path)) {
            Some(v) => Ok(Some(v.as_f64().with_context(|| format!("`{}` is {v:?}, not a number", path.join(".")))?)),
            None => Ok(None),
        }
    };
    let text = |path: &[&str]| present(limner_pickle::stylegan2::kwarg(kw, path)).map(|v| v.as_str().map(String::from).unwrap_or_else(|| format!("{v:?}")));
    if !matches!(kw, Value::Dict(_)) {
        bail!("no constructor arguments (`_init_kwargs`) in the pickle");
    }
    let c_dim = int(&["c_dim"], Some(0))?;
    if c_dim > 0 {
        bail!(
            "it is a conditional generator (c_dim = {c_dim}: a class label goes in through the mapping network's class embedding \
             `mapping.embed`); limner's generator has no class-label input, so it is not imported (unconditional snapshots, c_dim = 0, are)"
        );
    }
    for (k, _) in kw.items() {
        let k = k.as_str().unwrap_or("?");
        if !["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"].contains(&k) {
            bail!("unknown constructor argument `{k}` (not one of stylegan2-ada-pytorch's Generator arguments)");
        }
    }
    let res = int(&["img_resolution"], None)?;
    let mut cfg = GeneratorConfig::limner_default(res);
    cfg.z_dim = int(&["z_dim"], None)?;
    cfg.w_dim = int(&["w_dim"], None)?;
    cfg.img_channels = int(&["img_channels"], None)?;
    // mapping_kwargs (MappingNetwork)
    let mk = limner_pickle::stylegan2::kwarg(kw, &["mapping_kwargs"]).unwrap_or(Value::None);
    for (k, _) in mk.items() {
        let k = k.as_str().unwrap_or("?").to_string();
        match k.as_str() {
            "num_layers" | "lr_multiplier" | "w_avg_beta" | "embed_features" => {}
            "layer_features" => {
                let f = int(&["mapping_kwargs", "layer_features"], Some(cfg.w_dim))?;
                ensure!(f == cfg.w_dim, "mapping_kwargs.layer_features = {f} differs from w_dim = {}: limner's mapping layers are w_dim wide", cfg.w_dim);
            }
            "activation" => {
                let a = text(&["mapping_kwargs", "activation"]).unwrap_or_default();
                ensure!(a == "lrelu", "mapping_kwargs.activation = {a:?}: limner's mapping network uses 'lrelu' only");
            }
            _ => bail!("mapping_kwargs.{k} is not supported by limner's mapping network"),
        }
    }
    cfg.mapping_layers = int(&["mapping_kwargs", "num_layers"], Some(8))?;
    cfg.mapping_lr_multiplier = float(&["mapping_kwargs", "lr_multiplier"])?.unwrap_or(0.01);
    cfg.w_avg_beta = match limner_pickle::stylegan2::kwarg(kw, &["mapping_kwargs", "w_avg_beta"]) {
        Some(Value::None) => bail!("mapping_kwargs.w_avg_beta = None: the network keeps no average w (`mapping.w_avg`), which limner needs for truncation"),
        _ => float(&["mapping_kwargs", "w_avg_beta"])?.unwrap_or(0.995),
    };
    // synthesis_kwargs (SynthesisNetwork and SynthesisBlock)
    let sk = limner_pickle::stylegan2::kwarg(kw, &["synthesis_kwargs"]).unwrap_or(Value::None);
    let mut num_fp16_res = 0;
    for (k, _) in sk.items() {
        let k = k.as_str().unwrap_or("?").to_string();
        let path = ["synthesis_kwargs", k.as_str()];
        match k.as_str() {
            "channel_base" | "channel_max" | "conv_clamp" | "fp16_channels_last" => {}
            "num_fp16_res" => num_fp16_res = int(&path, Some(0))?,
            "architecture" => {
                let a = text(&path).unwrap_or_else(|| "skip".into());
                ensure!(
                    a == "skip",
                    "synthesis_kwargs.architecture = {a:?}: limner runs the 'skip' generator (StyleGAN2-ADA's default and every official \
                     model's); 'orig' and 'resnet' generators are not supported"
                );
            }
            "resample_filter" => {
                let f: Vec<f64> = present(limner_pickle::stylegan2::kwarg(kw, &path)).and_then(|v| v.elements()).map(|e| e.iter().filter_map(Value::as_f64).collect()).unwrap_or(vec![1.0, 3.0, 3.0, 1.0]);
                ensure!(f == [1.0, 3.0, 3.0, 1.0], "synthesis_kwargs.resample_filter = {f:?}: limner supports only the default [1, 3, 3, 1]");
            }
            "use_noise" => {
                let on = present(limner_pickle::stylegan2::kwarg(kw, &path)).map(|v| matches!(v, Value::Bool(true))).unwrap_or(true);
                ensure!(on, "synthesis_kwargs.use_noise = False: limner's synthesis layers always have noise inputs");
            }
            "activation" => {
                let a = text(&path).unwrap_or_default();
                ensure!(a == "lrelu", "synthesis_kwargs.activation = {a:?}: limner supports 'lrelu' only");
            }
            "kernel_size" => {
                let n = int(&path, Some(3))?;
                ensure!(n == 3, "synthesis_kwargs.kernel_size = {n}: limner supports 3 only");
            }
            _ => bail!("synthesis_kwargs.{k} is not supported by limner's synthesis network"),
        }
    }
    cfg.channel_base = int(&["synthesis_kwargs", "channel_base"], Some(32768))?;
    cfg.channel_max = int(&["synthesis_kwargs", "channel_max"], Some(512))?;
    cfg.conv_clamp = float(&["synthesis_kwargs", "conv_clamp"])?;
    cfg.validate()?;
    Ok((cfg, num_fp16_res))
}

/// Reads the discriminator (`D`) of an official snapshot pickle into limner's
/// [`Discriminator`] (nothing in the pickle runs), its config from the pickle's constructor
/// arguments. limner's discriminator is the official `resnet` one without class conditioning;
/// anything else is refused by name.
pub fn load_discriminator_pickle(path: &Path, device: &Device) -> Result<Discriminator> {
    let snap = limner_pickle::stylegan2::read_snapshot(path, &limner_pickle::Limits::default())?;
    let net = snap.network("D").with_context(|| format!("{}", path.display()))?;
    if net.class_name != "Discriminator" {
        bail!("{}: `D` is a {}, not a Discriminator", path.display(), net.class_name);
    }
    let cfg = discriminator_config_from_kwargs(&net.init_kwargs).with_context(|| format!("{}: `D` cannot be imported", path.display()))?;
    check_filters(&net.state_dict).with_context(|| format!("{}: `D`", path.display()))?;
    let mut d = Discriminator::new(&cfg, device);
    load_state_dict(&mut d, &net.state_dict, device)
        .with_context(|| format!("{}: `D`'s tensors do not match its own constructor arguments (a modified network?)", path.display()))?;
    Ok(d)
}

/// The official `Discriminator(c_dim, img_resolution, img_channels, architecture,
/// channel_base, channel_max, num_fp16_res, conv_clamp, cmap_dim, block_kwargs,
/// mapping_kwargs, epilogue_kwargs)` arguments as limner's config.
pub fn discriminator_config_from_kwargs(kw: &limner_pickle::Value) -> Result<DiscriminatorConfig> {
    use limner_pickle::stylegan2::kwarg;
    use limner_pickle::Value;
    let present = |path: &[&str]| kwarg(kw, path).filter(|v| !matches!(v, Value::None));
    let int = |path: &[&str], default: Option<usize>| -> Result<usize> {
        match present(path) {
            Some(v) => v.as_int().filter(|&i| i >= 0).map(|i| i as usize).with_context(|| format!("`{}` is {v:?}, not a count", path.join("."))),
            None => default.with_context(|| format!("the constructor arguments have no `{}`", path.join("."))),
        }
    };
    let text = |path: &[&str], default: &str| present(path).map(|v| v.as_str().map(String::from).unwrap_or_else(|| format!("{v:?}"))).unwrap_or(default.into());
    if !matches!(kw, Value::Dict(_)) {
        bail!("no constructor arguments (`_init_kwargs`) in the pickle");
    }
    let c_dim = int(&["c_dim"], Some(0))?;
    ensure!(c_dim == 0, "it is a conditional discriminator (c_dim = {c_dim}: the class-projection mapping `mapping`); limner's discriminator has no class-label input");
    let arch = text(&["architecture"], "resnet");
    ensure!(arch == "resnet", "architecture = {arch:?}: limner's discriminator is the 'resnet' one (StyleGAN2-ADA's default)");
    for (k, _) in kw.items() {
        let k = k.as_str().unwrap_or("?").to_string();
        match k.as_str() {
            "c_dim" | "img_resolution" | "img_channels" | "architecture" | "channel_base" | "channel_max" | "num_fp16_res" | "conv_clamp" | "cmap_dim"
            | "mapping_kwargs" => {}
            "block_kwargs" => {
                for (b, _) in kwarg(kw, &["block_kwargs"]).map(|v| v.items()).unwrap_or_default() {
                    let b = b.as_str().unwrap_or("?").to_string();
                    match b.as_str() {
                        "fp16_channels_last" | "freeze_layers" => {}
                        "activation" => ensure!(text(&["block_kwargs", "activation"], "lrelu") == "lrelu", "block_kwargs.activation: limner supports 'lrelu' only"),
                        "resample_filter" => {
                            let f: Vec<f64> = present(&["block_kwargs", "resample_filter"]).and_then(|v| v.elements()).map(|e| e.iter().filter_map(Value::as_f64).collect()).unwrap_or(vec![1.0, 3.0, 3.0, 1.0]);
                            ensure!(f == [1.0, 3.0, 3.0, 1.0], "block_kwargs.resample_filter = {f:?}: limner supports only [1, 3, 3, 1]");
                        }
                        _ => bail!("block_kwargs.{b} is not supported by limner's discriminator"),
                    }
                }
            }
            "epilogue_kwargs" => {
                for (e, _) in kwarg(kw, &["epilogue_kwargs"]).map(|v| v.items()).unwrap_or_default() {
                    let e = e.as_str().unwrap_or("?").to_string();
                    match e.as_str() {
                        "mbstd_group_size" | "mbstd_num_channels" => {}
                        "activation" => ensure!(text(&["epilogue_kwargs", "activation"], "lrelu") == "lrelu", "epilogue_kwargs.activation: limner supports 'lrelu' only"),
                        _ => bail!("epilogue_kwargs.{e} is not supported by limner's discriminator"),
                    }
                }
            }
            _ => bail!("unknown constructor argument `{k}` (not one of stylegan2-ada-pytorch's Discriminator arguments)"),
        }
    }
    let mut cfg = DiscriminatorConfig::limner_default(int(&["img_resolution"], None)?);
    cfg.img_channels = int(&["img_channels"], None)?;
    cfg.channel_base = int(&["channel_base"], Some(32768))?;
    cfg.channel_max = int(&["channel_max"], Some(512))?;
    if matches!(kwarg(kw, &["epilogue_kwargs", "mbstd_group_size"]), Some(Value::None)) {
        bail!("epilogue_kwargs.mbstd_group_size = None (the whole minibatch as one group) is not supported: limner needs a group size");
    }
    cfg.mbstd_group_size = int(&["epilogue_kwargs", "mbstd_group_size"], Some(4))?;
    cfg.mbstd_num_channels = int(&["epilogue_kwargs", "mbstd_num_channels"], Some(1))?;
    ensure!(cfg.mbstd_num_channels >= 1, "mbstd_num_channels = 0 (no minibatch-stddev layer) is not supported");
    cfg.conv_clamp = match present(&["conv_clamp"]) {
        Some(v) => Some(v.as_f64().with_context(|| format!("`conv_clamp` is {v:?}, not a number"))?),
        None => None,
    };
    cfg.validate()?;
    Ok(cfg)
}
