//! The model registry: the default generator embedded in the binary, and the models a user
//! trained or imported (run folders and files under the model directory).

pub mod convert;
pub mod fetch;
pub mod tfjs;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use limner_gan::generate::{load_generator_bytes, load_generator_file, GeneratorInfo};
use limner_gan::Generator;

/// The default generator, trained by limner on the shared faces (half precision).
pub static DEFAULT_GENERATOR: &[u8] = include_bytes!("../../../models/default/generator.safetensors");

/// The default model's card.
pub static DEFAULT_MODEL_CARD: &str = include_str!("../../../models/default/MODEL_CARD.md");

/// The name that selects the embedded model.
pub const DEFAULT_NAME: &str = "default";

/// Where imported models live: `$LIMNER_HOME/models`, else `~/.cache/limner/models`
/// (see [`limner_core::dirs`]).
pub use limner_core::dirs::models_dir;

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

/// sha256 (hex) of the file behind a model name or path, as [`resolve`] finds it: the embedded
/// bytes for `default`, the fetched network for `random-face`, else the generator file. This is
/// the `limner:ModelSHA256` of the images the model makes.
pub fn model_sha256(name: &str) -> Result<String> {
    use limner_data::provenance::{sha256_file, sha256_hex};
    if name == limner_photoreal::MODEL_NAME {
        return sha256_file(&fetch::net_path(limner_photoreal::MODEL_NAME)?);
    }
    match resolve(name)? {
        None => Ok(sha256_hex(DEFAULT_GENERATOR)),
        Some(p) => sha256_file(&p),
    }
}

/// How a model is named in an image's recipe: `default` and `random-face` as they are; a file by
/// its name only (`run/generator.safetensors` for a run's generator), never the folders above it,
/// so a label reveals nothing of the user's disk and the same model gives the same label however
/// it was named on the command line (a run folder or its generator file). The sha256 beside it
/// says exactly which file it was.
pub fn model_label(name: &str) -> Result<String> {
    if name == limner_photoreal::MODEL_NAME {
        return Ok(name.to_string());
    }
    let Some(p) = resolve(name)? else { return Ok(DEFAULT_NAME.to_string()) };
    let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match p.parent().and_then(|d| d.file_name()).filter(|_| file == "generator.safetensors") {
        Some(run) => Ok(format!("{}/{file}", run.to_string_lossy())),
        None => Ok(file),
    }
}

/// Loads the fetched random-face (`limner models fetch --only random-face`; the error says so
/// when it is missing).
pub fn load_random_face(device: &Device) -> Result<limner_photoreal::MobileStyleGan> {
    limner_photoreal::MobileStyleGan::load(&fetch::net_path(limner_photoreal::MODEL_NAME)?, device)
}

/// Face `seed` of the embedded default model at psi 0.7, the `seed:N` content image of `limner
/// gatys`, `dream` and `style`: `(res, pixels)`, one NCHW `[1, 3, res, res]` image in about
/// [-1, 1].
pub fn default_face(seed: u64, device: &Device) -> Result<(usize, Vec<f32>)> {
    let (g, _) = load_default(device)?;
    let opts = limner_gan::generate::GenerateOptions { psi: 0.7, noise: 1.0, batch: 1 };
    Ok((g.config.img_resolution, limner_gan::generate::generate_seeds(&g, &[seed], &opts)))
}

/// Loads a generator by name or path (`None` or `default` = the embedded model).
pub fn load(name: Option<&str>, device: &Device) -> Result<(Generator, GeneratorInfo)> {
    match resolve(name.unwrap_or(DEFAULT_NAME))? {
        None => load_default(device),
        Some(p) => load_generator_file(&p, device),
    }
}

/// The discriminator trained beside the default generator (f16, official names, written by
/// [`freeze`] from the same checkpoint), so `limner train --init default` starts with a D that
/// already knows faces.
pub static DEFAULT_DISCRIMINATOR: Option<&[u8]> = Some(include_bytes!("../../../models/default/discriminator.safetensors"));

/// The pretrained networks `limner train --init NAME` starts from: `default` (the embedded
/// model: its EMA generator and [`DEFAULT_DISCRIMINATOR`]), a run folder (its checkpoint's G, G_ema and D),
/// a checkpoint or generator file, or an imported model's name; `discriminator` adds a D file
/// written by `limner models import PKL --discriminator FILE`.
pub fn init_networks(name: &str, discriminator: Option<&Path>, device: &Device) -> Result<limner_gan::setup::InitNetworks> {
    use limner_gan::setup::{InitNetworks, CHECKPOINT_FILE};
    if name == limner_photoreal::MODEL_NAME {
        bail!("--init {name}: random-face is a MobileStyleGAN, which limner runs but does not train; start from `default`, a run, or an imported StyleGAN2-ADA model");
    }
    let run_ckpt = Path::new(name).join(CHECKPOINT_FILE);
    let init = if name == DEFAULT_NAME {
        let init = InitNetworks::generator(name, load_default(device)?.0);
        match (DEFAULT_DISCRIMINATOR, discriminator) {
            (Some(d), None) => init.with_discriminator_bytes(d, "the default model's discriminator", device)?,
            _ => init,
        }
    } else if run_ckpt.is_file() {
        InitNetworks::checkpoint(name, &run_ckpt, device)?
    } else {
        let p = resolve(name)?.expect("only `default` resolves to the embedded model");
        let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        if limner_gan::checkpoint::is_checkpoint(&bytes) {
            InitNetworks::checkpoint(name, &p, device)?
        } else {
            InitNetworks::generator(name, load_generator_bytes(&bytes, device).with_context(|| format!("cannot load model {}", p.display()))?.0)
        }
    };
    match discriminator {
        Some(d) => init.with_discriminator_file(d, device),
        None => Ok(init),
    }
}

/// Where `limner models import --out OUT` writes: a bare model name (letters, digits, `.`,
/// `_`, `-`; not starting with `.`) becomes `<models dir>/OUT.safetensors`, so `--model OUT`
/// finds it everywhere; a path must end in `.safetensors`.
pub fn import_target(out: &str) -> Result<PathBuf> {
    let p = Path::new(out);
    if out.ends_with(".safetensors") {
        return Ok(p.to_path_buf());
    }
    if p.components().count() > 1 {
        bail!("--out `{out}`: give a model name, or a path ending in .safetensors");
    }
    let ok = !out.is_empty() && !out.starts_with('.') && out.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        bail!("`{out}` is not a model name: use letters, digits, `.`, `_` and `-` (or give a path ending in .safetensors)");
    }
    if out == DEFAULT_NAME || out == limner_photoreal::MODEL_NAME {
        bail!("`{out}` is the name of a built-in model: choose another name");
    }
    Ok(models_dir().join(format!("{out}.safetensors")))
}

/// What [`import_pickle`] made.
#[derive(Clone, Debug)]
pub struct Imported {
    pub file: PathBuf,
    pub config: limner_gan::GeneratorConfig,
    /// trainable parameters
    pub params: usize,
    /// what the notes of the model file say
    pub notes: String,
}

/// Imports the generator `network` (`G_ema` or `G`) of an official StyleGAN2-ADA snapshot
/// pickle as a limner model file at [`import_target`]`(out)`, read without running anything
/// in the pickle (`limner_gan::import::load_generator_pickle`). An existing file is kept
/// unless `force`; the file is written atomically.
///
/// With `discriminator`, the snapshot's `D` is also written there (safetensors, official
/// state-dict names, its limner config as `limner_discriminator` metadata).
pub fn import_pickle(src: &Path, network: &str, out: &str, discriminator: Option<&Path>, force: bool, device: &Device) -> Result<Imported> {
    use limner_gan::generate::save_generator;
    let file = import_target(out)?;
    for f in std::iter::once(file.as_path()).chain(discriminator) {
        if f.exists() && !force {
            bail!("{} already exists: choose another name, or pass --force to replace it", f.display());
        }
    }
    let mut p = limner_gan::import::load_generator_pickle(src, network, device)?;
    if let Some(dpath) = discriminator {
        let mut d = limner_gan::import::load_discriminator_pickle(src, device)?;
        limner_gan::import::save_discriminator(dpath, &mut d, limner_core::Precision::F32)?;
    }
    let name = src.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut notes = format!("imported from {name} ({network}, stored {}", p.stored_dtypes.join("+"));
    if p.num_fp16_res > 0 {
        notes += &format!("; the official code runs its {} highest resolutions in fp16 unless force_fp32, limner computes in f32", p.num_fp16_res);
    }
    if let Some(t) = &p.training_set {
        notes += &format!("; trained on {t}");
    }
    notes += "); licence: as its source";
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let info = GeneratorInfo { notes: Some(notes.clone()), ..Default::default() };
    save_generator(&file, &mut p.generator, &info, limner_core::Precision::F32)?;
    let params = parameter_count(&mut p.generator);
    Ok(Imported { file, config: p.generator.config.clone(), params, notes })
}

/// Trainable parameters of a generator.
pub fn parameter_count(g: &mut Generator) -> usize {
    limner_gan::params::state_dict(g, true).values().map(|t| t.data.len()).sum()
}

/// One row of `limner models list`.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub name: String,
    pub location: String,
    pub resolution: Option<usize>,
    /// layers of the mapping network (StyleGAN2 generators)
    pub mapping_layers: Option<usize>,
    /// trainable parameters (StyleGAN2 generators)
    pub params: Option<usize>,
    pub kimg: Option<f64>,
    pub licence: String,
}

/// The embedded default, the fetched random-face (if fetched), and every `.safetensors`
/// generator in [`models_dir`].
pub fn list(device: &Device) -> Vec<ModelEntry> {
    let mut v = vec![];
    let (res, mapping_layers, params, kimg) = load_default(device)
        .map(|(mut g, i)| (Some(g.config.img_resolution), Some(g.config.mapping_layers), Some(parameter_count(&mut g)), i.kimg))
        .unwrap_or((None, None, None, None));
    v.push(ModelEntry {
        name: DEFAULT_NAME.into(),
        location: "embedded in the binary".into(),
        resolution: res,
        mapping_layers,
        params,
        kimg,
        licence: "non-commercial (trained on faces rendered by an FFHQ-lineage StyleGAN)".into(),
    });
    // pretrained generators fetched by `limner models fetch` (listed only when present)
    if let Ok(p) = fetch::net_path(limner_photoreal::MODEL_NAME) {
        v.push(ModelEntry {
            name: limner_photoreal::MODEL_NAME.into(),
            location: p.display().to_string(),
            resolution: Some(limner_photoreal::NATIVE_SIZE),
            mapping_layers: None,
            params: None,
            kimg: None,
            licence: limner_photoreal::LICENCE.into(),
        });
    }
    if let Ok(rd) = std::fs::read_dir(models_dir()) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
        files.sort();
        for p in files {
            let (res, mapping_layers, params, kimg, notes) = match load_generator_file(&p, device) {
                Ok((mut g, i)) => (Some(g.config.img_resolution), Some(g.config.mapping_layers), Some(parameter_count(&mut g)), i.kimg, i.notes),
                Err(_) => (None, None, None, None, Some("unreadable".into())),
            };
            v.push(ModelEntry {
                name: p.file_stem().unwrap_or_default().to_string_lossy().into(),
                location: p.display().to_string(),
                resolution: res,
                mapping_layers,
                params,
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

/// Where `limner models directions` writes a model's directions file (it need not exist yet):
///
/// - for the built-in `default` and `random-face`, the user's data folder,
///   `$LIMNER_HOME/data/<model>/directions.safetensors` (else under `~/.cache/limner`, see
///   [`limner_core::dirs::user_data_dir`]) — never beside the program or in a source tree. The
///   committed copies in `models/<model>/` (embedded in the binary) are refreshed on purpose,
///   with `limner models directions --model default --out models/default/directions.safetensors`;
/// - `<run>/directions.safetensors` for a run folder;
/// - `<generator stem>.directions.safetensors` beside a generator file.
pub fn directions_path(name: &str) -> Result<PathBuf> {
    if is_builtin(name) {
        return Ok(limner_core::dirs::user_data_dir(name).join(DIRECTIONS_FILE));
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

/// Whether `name` is a model that ships with limner (`default`, `random-face`), whose
/// directions are embedded in the binary.
fn is_builtin(name: &str) -> bool {
    name == DEFAULT_NAME || name == limner_photoreal::MODEL_NAME
}

/// The directions file's bytes for a model, `None` when there is none. Precedence: the file at
/// [`directions_path`] when it exists (for a built-in model, the user's own recomputed
/// directions win, so `limner models directions --model default` takes effect at once), else
/// for `default` and `random-face` the embedded copies ([`DEFAULT_DIRECTIONS`],
/// [`RANDOM_FACE_DIRECTIONS`]).
pub fn directions_bytes(name: &str) -> Result<Option<Vec<u8>>> {
    let p = directions_path(name)?;
    if p.is_file() {
        return std::fs::read(&p).map(Some).with_context(|| format!("cannot read {}", p.display()));
    }
    Ok(match name {
        DEFAULT_NAME => DEFAULT_DIRECTIONS.map(<[u8]>::to_vec),
        limner_photoreal::MODEL_NAME => RANDOM_FACE_DIRECTIONS.map(<[u8]>::to_vec),
        _ => None,
    })
}
/// The default model's named directions (`models/default/directions.safetensors`, made by
/// `limner models directions --model default`; its metadata records how).
pub static DEFAULT_DIRECTIONS: Option<&[u8]> = Some(include_bytes!("../../../models/default/directions.safetensors"));

/// random-face's named directions (`models/random-face/directions.safetensors`, made by
/// `limner models directions --model random-face`; its metadata records how). Only the
/// directions (a few KB) are in the repository, never the model's weights.
pub static RANDOM_FACE_DIRECTIONS: Option<&[u8]> = Some(include_bytes!("../../../models/random-face/directions.safetensors"));

/// Seeds of the reference images stored with a frozen model (`reference/seedNNNN.png`,
/// checked by the default model's regression test).
pub const REFERENCE_SEEDS: [u64; 4] = [0, 1, 2, 3];

/// What [`freeze`] made.
#[derive(Clone, Debug)]
pub struct Frozen {
    /// the half-precision generator file
    pub file: PathBuf,
    pub kimg: Option<f64>,
    pub resolution: usize,
    /// the file's size
    pub bytes: u64,
    /// the run's discriminator, in half precision (when the source was a training checkpoint)
    pub discriminator: Option<PathBuf>,
}

/// Packages a training run (its folder, i.e. `latest.safetensors`, or a checkpoint/generator
/// file) as a shippable model in `out/`: `generator.safetensors` in half precision, a 64-face
/// `grid.png` and the [`REFERENCE_SEEDS`] images under `reference/` (psi 0.7), all made from the
/// half-precision file exactly as users will load it. This is how `models/default` is made.
pub fn freeze(run: &Path, out: &Path, notes: Option<String>, device: &Device) -> Result<Frozen> {
    use limner_data::imageio::{make_grid, save_image_rgb, save_seed_images};
    use limner_gan::generate::{generate_seeds_rgb8, save_generator, GenerateOptions};
    let src = if run.is_dir() { run.join(limner_gan::setup::CHECKPOINT_FILE) } else { run.to_path_buf() };
    let (mut g, info) = load_generator_file(&src, device)?;
    let file = out.join("generator.safetensors");
    let info = GeneratorInfo { notes: notes.or(info.notes), ..info };
    save_generator(&file, &mut g, &info, limner_core::Precision::F16)?;
    let (g, info) = load_generator_file(&file, device)?;
    let res = g.config.img_resolution;
    let seeds: Vec<u64> = (0..64).collect();
    let rgb = generate_seeds_rgb8(&g, &seeds, &GenerateOptions { psi: 0.7, noise: 1.0, batch: 16 }, &mut |_| {});
    let (w, h, px) = make_grid(&rgb, res as u32, 8, 2);
    let prov = limner_data::provenance::Provenance::generated()
        .with_recipe(serde_json::json!({"model": "default", "psi": 0.7, "noise": 1.0}).to_string())
        .with_model_sha256(Some(limner_data::provenance::sha256_file(&file)?));
    save_image_rgb(&out.join("grid.png"), w, h, &px, &prov.with_recipe_field("seeds", seeds.clone().into()))?;
    save_seed_images(&rgb[..REFERENCE_SEEDS.len()], res as u32, &REFERENCE_SEEDS, Some(&out.join("reference")), None, &prov)?;
    let bytes = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?.len();
    // a training checkpoint also holds D: keep it beside G, for transfer (`train --init`)
    let is_checkpoint = limner_gan::checkpoint::is_checkpoint(&std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?);
    let discriminator = if is_checkpoint {
        let mut t = limner_gan::train::Trainer::load(&src, device)?;
        let dfile = out.join("discriminator.safetensors");
        limner_gan::import::save_discriminator(&dfile, &mut t.d, limner_core::Precision::F16)?;
        Some(dfile)
    } else {
        None
    };
    Ok(Frozen { file, kimg: info.kimg, resolution: res, bytes, discriminator })
}
