//! The model registry: the default generator embedded in the binary, and the models a user
//! trained or imported (run folders and files under the model directory).

pub mod fetch;
pub mod tfjs;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::tensor::Device;
use limner_gan::generate::{load_generator_bytes, load_generator_file, GeneratorInfo};
use limner_gan::Generator;

/// The default generator, trained by limner on the shared faces (half precision).
pub static DEFAULT_GENERATOR: &[u8] = include_bytes!("../../../models/default/generator.safetensors");

/// The default model's card.
pub static DEFAULT_MODEL_CARD: &str = include_str!("../../../models/default/MODEL_CARD.md");

/// The name that selects the embedded model.
pub const DEFAULT_NAME: &str = "default";

/// Where imported models live: `$LIMNER_HOME/models`, else `~/.cache/limner/models`.
pub fn models_dir() -> PathBuf {
    if let Ok(h) = std::env::var("LIMNER_HOME") {
        return PathBuf::from(h).join("models");
    }
    let home = std::env::var("HOME").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("."));
    home.join(".cache/limner/models")
}

/// Loads the embedded default generator.
pub fn load_default(device: &Device) -> Result<(Generator, GeneratorInfo)> {
    load_generator_bytes(DEFAULT_GENERATOR, device)
}

/// Resolves a model name or path: `default` (embedded), a file, a run folder (its
/// `generator.safetensors`), a path without `.safetensors`, or a name in [`models_dir`].
pub fn resolve(name: &str) -> Result<Option<PathBuf>> {
    if name == DEFAULT_NAME {
        return Ok(None);
    }
    let p = Path::new(name);
    if p.is_dir() {
        let g = p.join("generator.safetensors");
        if g.exists() {
            return Ok(Some(g));
        }
        bail!("{} is a folder without generator.safetensors (is it a training run that has not snapshotted yet?)", p.display());
    }
    for cand in [p.to_path_buf(), p.with_extension("safetensors"), models_dir().join(name), models_dir().join(format!("{name}.safetensors"))] {
        if cand.is_file() {
            return Ok(Some(cand));
        }
    }
    bail!("model `{name}` not found: give a .safetensors file, a run folder, `default`, or a name from `limner models list`")
}

/// Loads a generator by name or path (`None` or `default` = the embedded model).
pub fn load(name: Option<&str>, device: &Device) -> Result<(Generator, GeneratorInfo)> {
    match resolve(name.unwrap_or(DEFAULT_NAME))? {
        None => load_default(device),
        Some(p) => load_generator_file(&p, device),
    }
}

/// One row of `limner models list`.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub name: String,
    pub location: String,
    pub resolution: Option<usize>,
    pub kimg: Option<f64>,
    pub licence: String,
}

/// The embedded default, the fetched random-face (if fetched), and every `.safetensors`
/// generator in [`models_dir`].
pub fn list(device: &Device) -> Vec<ModelEntry> {
    let mut v = vec![];
    let (res, kimg) = load_default(device).map(|(g, i)| (Some(g.config.img_resolution), i.kimg)).unwrap_or((None, None));
    v.push(ModelEntry {
        name: DEFAULT_NAME.into(),
        location: "embedded in the binary".into(),
        resolution: res,
        kimg,
        licence: "non-commercial (trained on faces rendered by an FFHQ-lineage StyleGAN)".into(),
    });
    // pretrained generators fetched by `limner models fetch` (listed only when present)
    if let Ok(p) = fetch::net_path(limner_photoreal::MODEL_NAME) {
        v.push(ModelEntry {
            name: limner_photoreal::MODEL_NAME.into(),
            location: p.display().to_string(),
            resolution: Some(limner_photoreal::NATIVE_SIZE),
            kimg: None,
            licence: limner_photoreal::LICENCE.into(),
        });
    }
    if let Ok(rd) = std::fs::read_dir(models_dir()) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
        files.sort();
        for p in files {
            let (res, kimg, notes) = match load_generator_file(&p, device) {
                Ok((g, i)) => (Some(g.config.img_resolution), i.kimg, i.notes),
                Err(_) => (None, None, Some("unreadable".into())),
            };
            v.push(ModelEntry {
                name: p.file_stem().unwrap_or_default().to_string_lossy().into(),
                location: p.display().to_string(),
                resolution: res,
                kimg,
                licence: notes.unwrap_or_else(|| "as its source".into()),
            });
        }
    }
    v
}

/// File name of a model's attribute directions (`limner models directions`), beside its
/// generator file or in its run folder.
pub const DIRECTIONS_FILE: &str = "directions.safetensors";

/// Where a model's directions file lives (it need not exist yet): `models/default/`'s for
/// `default` and `models/random-face/`'s for `random-face` (the committed files, also embedded
/// in the binary when it was built), else
/// `<run>/directions.safetensors` for a run folder, else `<generator stem>.directions.safetensors`
/// beside a generator file.
pub fn directions_path(name: &str) -> Result<PathBuf> {
    if name == DEFAULT_NAME || name == limner_photoreal::MODEL_NAME {
        return Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name).join(DIRECTIONS_FILE));
    }
    let p = Path::new(name);
    if p.is_dir() {
        return Ok(p.join(DIRECTIONS_FILE));
    }
    let g = resolve(name)?.expect("not default");
    if g.file_name().is_some_and(|f| f == "generator.safetensors") {
        return Ok(g.with_file_name(DIRECTIONS_FILE));
    }
    Ok(g.with_extension("directions.safetensors"))
}

/// The directions file's bytes for a model: for `default` and `random-face` the embedded
/// copies (see [`DEFAULT_DIRECTIONS`], [`RANDOM_FACE_DIRECTIONS`]), else the file at
/// [`directions_path`]; `None` when there is none.
pub fn directions_bytes(name: &str) -> Result<Option<Vec<u8>>> {
    let embedded = match name {
        DEFAULT_NAME => DEFAULT_DIRECTIONS,
        limner_photoreal::MODEL_NAME => RANDOM_FACE_DIRECTIONS,
        _ => None,
    };
    if let Some(b) = embedded {
        return Ok(Some(b.to_vec()));
    }
    let p = directions_path(name)?;
    if p.is_file() {
        return Ok(Some(std::fs::read(&p)?));
    }
    Ok(None)
}
/// The default model's named directions (`models/default/directions.safetensors`, made by
/// `limner models directions --model default`; its metadata records how).
pub static DEFAULT_DIRECTIONS: Option<&[u8]> = Some(include_bytes!("../../../models/default/directions.safetensors"));

/// random-face's named directions (`models/random-face/directions.safetensors`, made by
/// `limner models directions --model random-face`; its metadata records how). Only the
/// directions (a few KB) are in the repository, never the model's weights.
pub static RANDOM_FACE_DIRECTIONS: Option<&[u8]> = Some(include_bytes!("../../../models/random-face/directions.safetensors"));
