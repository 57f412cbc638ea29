//! What the audit reads: sets of square RGB images behind one small trait, [`ImageSet`].
//!
//! A model's samples ([`ModelSamples`]: seeds through `limner_edit::Model`), a packed dataset
//! ([`Packed`]), a folder of images ([`Folder`]), a distillation folder re-rendered from its
//! manifest where files are missing ([`Distilled`]), or any list a test builds ([`InMemory`]).
//! Every set is indexable, so the audit keeps only embeddings and fetches the few images it
//! shows again at the end.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::Device;
use limner_data::imageio::load_image_rgb;
use limner_edit::model::{seed_ws, Model};
use serde_json::Value;

/// A square 8-bit RGB image, HWC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub size: usize,
    pub data: Vec<u8>,
}

impl Rgb8 {
    pub fn new(size: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), size * size * 3, "Rgb8: {} bytes for {size}²", data.len());
        Self { size, data }
    }

    /// Area-averaged to `size` (box filter for integer factors, bilinear otherwise); the same
    /// image when it already has that size.
    pub fn resized(&self, size: usize) -> Rgb8 {
        if size == self.size {
            return self.clone();
        }
        if size < self.size && self.size.is_multiple_of(size) {
            let f = self.size / size;
            let mut out = vec![0u8; size * size * 3];
            for y in 0..size {
                for x in 0..size {
                    for c in 0..3 {
                        let mut s = 0u32;
                        for dy in 0..f {
                            for dx in 0..f {
                                s += self.data[((y * f + dy) * self.size + x * f + dx) * 3 + c] as u32;
                            }
                        }
                        out[(y * size + x) * 3 + c] = ((s as f32) / (f * f) as f32).round() as u8;
                    }
                }
            }
            return Rgb8 { size, data: out };
        }
        let img = limner_faces::Image::from_rgb8(self.size, self.size, &self.data).resize_bilinear(size, size);
        Rgb8 { size, data: img.to_rgb8() }
    }

    pub fn to_face_image(&self) -> limner_faces::Image {
        limner_faces::Image::from_rgb8(self.size, self.size, &self.data)
    }
}

/// An indexable set of square images of one size.
pub trait ImageSet: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Side of every image.
    fn size(&self) -> usize;
    /// What the set is, for reports (`model default, seeds 100000–109999 at psi 1`).
    fn describe(&self) -> String;
    /// What image `i` is (a file name, `seed 7`).
    fn label(&self, i: usize) -> String;
    /// Images at these indices, in order.
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>>;
}

/// Seeds `first_seed..first_seed + count` of a model at truncation `psi`, noise `noise` (the
/// seeds of `limner generate`).
pub struct ModelSamples {
    pub model: Box<dyn Model>,
    pub first_seed: u64,
    pub count: usize,
    pub psi: f32,
    pub noise: f32,
}

impl ModelSamples {
    pub fn seed(&self, i: usize) -> u64 {
        self.first_seed + i as u64
    }
}

impl ImageSet for ModelSamples {
    fn len(&self) -> usize {
        self.count
    }
    fn size(&self) -> usize {
        self.model.size()
    }
    fn describe(&self) -> String {
        format!(
            "model `{}` (sha256 {}…), seeds {}–{} at psi {}, noise {}",
            self.model.id().name,
            &self.model.id().sha256[..12.min(self.model.id().sha256.len())],
            self.first_seed,
            self.first_seed + self.count.saturating_sub(1) as u64,
            self.psi,
            self.noise
        )
    }
    fn label(&self, i: usize) -> String {
        format!("seed {}", self.seed(i))
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        let seeds: Vec<u64> = indices.iter().map(|&i| self.seed(i)).collect();
        let ws = seed_ws(self.model.as_ref(), &seeds, self.psi);
        Ok(self.model.render(&ws, &seeds, self.noise).into_iter().map(|im| Rgb8::new(im.width, im.to_rgb8())).collect())
    }
}

/// A packed dataset (`.limner`).
pub struct Packed {
    pub path: PathBuf,
    pub data: limner_data::PackedDataset,
}

impl Packed {
    pub fn open(path: &Path) -> Result<Self> {
        let data = limner_data::PackedDataset::open(path).with_context(|| format!("cannot open the dataset {}", path.display()))?;
        ensure!(!data.is_empty(), "{} holds no images", path.display());
        Ok(Self { path: path.to_path_buf(), data })
    }
}

impl ImageSet for Packed {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn size(&self) -> usize {
        self.data.res() as usize
    }
    fn describe(&self) -> String {
        format!("packed dataset {} ({} images, {} px)", self.path.display(), self.len(), self.size())
    }
    fn label(&self, i: usize) -> String {
        self.data.names().get(i).cloned().unwrap_or_else(|| format!("#{i}"))
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        Ok(indices.iter().map(|&i| Rgb8::new(self.size(), self.data.image(i).to_vec())).collect())
    }
}

/// The file extensions a folder's images may have.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// A folder of square images of one size (sorted by name; not recursive). Every file must be
/// an image (hidden files and `.json` side files aside): a stray file is an error naming it,
/// not something silently skipped.
pub struct Folder {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    size: usize,
}

impl Folder {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut files = vec![];
        for e in std::fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))? {
            let p = e?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
            // hidden files, sub-folders and JSON side files (the recipes `limner generate` writes
            // beside each image, a distillation's manifest) are not images and not errors
            if name.starts_with('.') || ext == "json" || p.is_dir() {
                continue;
            }
            ensure!(
                IMAGE_EXTENSIONS.contains(&ext.as_str()),
                "{} is not an image file (the audit reads .png, .jpg, .jpeg, .webp and .gif): move it out of {}",
                p.display(),
                dir.display()
            );
            files.push(p);
        }
        files.sort();
        ensure!(!files.is_empty(), "{} holds no images: give a folder of .png/.jpg/.webp faces, a .limner dataset or a distillation folder", dir.display());
        let size = load_square(&files[0])?.size;
        Ok(Self { dir: dir.to_path_buf(), files, size })
    }
}

/// One image file as a square [`Rgb8`], or an error naming the file and what is wrong.
pub fn load_square(path: &Path) -> Result<Rgb8> {
    let (w, h, rgb) = load_image_rgb(path, limner_data::imageio::DEFAULT_MAX_PIXELS)?;
    ensure!(w == h, "{} is {w}×{h}: the audit compares square faces (pack photos with `limner dataset build` first)", path.display());
    Ok(Rgb8::new(w as usize, rgb))
}

impl ImageSet for Folder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn size(&self) -> usize {
        self.size
    }
    fn describe(&self) -> String {
        format!("folder {} ({} images, {} px)", self.dir.display(), self.len(), self.size)
    }
    fn label(&self, i: usize) -> String {
        self.files[i].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        indices
            .iter()
            .map(|&i| {
                let img = load_square(&self.files[i])?;
                ensure!(img.size == self.size, "{} is {}px, the other images of {} are {}px", self.files[i].display(), img.size, self.dir.display(), self.size);
                Ok(img)
            })
            .collect()
    }
}

/// A `limner dataset distill` folder: the seeds its manifest lists (or a range of them), read
/// from the files that are there and re-rendered by random-face — the same code path that
/// wrote them — where a file is missing. So an audit needs only the manifest.
pub struct Distilled {
    pub dir: PathBuf,
    pub seeds: Vec<u64>,
    pub psi: f32,
    pub noise: f32,
    pub res: usize,
    teacher: OnceLock<Result<Mutex<limner_photoreal::MobileStyleGan>, String>>,
    device: Device,
}

impl Distilled {
    /// Opens `dir/manifest.json`; `only` keeps the seeds in that list (e.g. a model's training
    /// range), which must all be in the manifest.
    pub fn open(dir: &Path, only: Option<&[u64]>, device: &Device) -> Result<Self> {
        let mpath = dir.join(limner_photoreal::distill::MANIFEST);
        let text = std::fs::read_to_string(&mpath).with_context(|| format!("cannot read {}", mpath.display()))?;
        let m: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", mpath.display()))?;
        ensure!(m["model"] == limner_photoreal::MODEL_NAME, "{}: only random-face distillations can be re-rendered (model is {})", mpath.display(), m["model"]);
        let num = |k: &str| m[k].as_f64().with_context(|| format!("{}: no number `{k}`", mpath.display()));
        let (psi, noise, res) = (num("psi")? as f32, num("noise")? as f32, num("res")? as usize);
        let listed: Vec<u64> = m["files"].as_array().with_context(|| format!("{}: no `files` list", mpath.display()))?.iter().filter_map(|f| f["seed"].as_u64()).collect();
        let seeds = match only {
            None => listed,
            Some(want) => {
                let set: std::collections::HashSet<u64> = listed.iter().copied().collect();
                if let Some(s) = want.iter().find(|s| !set.contains(s)) {
                    bail!("seed {s} is not in {} (it lists {} seeds)", mpath.display(), set.len());
                }
                want.to_vec()
            }
        };
        ensure!(!seeds.is_empty(), "{} lists no seeds", mpath.display());
        Ok(Self { dir: dir.to_path_buf(), seeds, psi, noise, res, teacher: OnceLock::new(), device: device.clone() })
    }

    /// How many of the seeds have their file in the folder.
    pub fn present(&self) -> usize {
        self.seeds.iter().filter(|&&s| self.dir.join(limner_photoreal::distill::file_name(s)).is_file()).count()
    }
}

impl ImageSet for Distilled {
    fn len(&self) -> usize {
        self.seeds.len()
    }
    fn size(&self) -> usize {
        self.res
    }
    fn describe(&self) -> String {
        let (a, b) = (self.seeds.iter().min().unwrap(), self.seeds.iter().max().unwrap());
        format!("random-face distillation {} (seeds {a}–{b}, {} images, psi {}, {} px; missing files re-rendered from the manifest)", self.dir.display(), self.len(), self.psi, self.res)
    }
    fn label(&self, i: usize) -> String {
        limner_photoreal::distill::file_name(self.seeds[i])
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        indices
            .iter()
            .map(|&i| {
                let seed = self.seeds[i];
                let p = self.dir.join(limner_photoreal::distill::file_name(seed));
                if p.is_file() {
                    let img = load_square(&p)?;
                    ensure!(img.size == self.res, "{} is {}px, its manifest says {}px", p.display(), img.size, self.res);
                    return Ok(img);
                }
                let teacher = self.teacher.get_or_init(|| limner_models::load_random_face(&self.device).map(Mutex::new).map_err(|e| format!("{e:#}")));
                let g = teacher.as_ref().map_err(|e| anyhow::anyhow!("{} is missing and random-face did not load to re-render it: {e}", p.display()))?;
                let g = g.lock().unwrap();
                let rgb = limner_photoreal::faces::generate_seeds(&g, &[seed], self.psi, self.noise, self.res)?;
                Ok(Rgb8::new(self.res, rgb.into_iter().next().unwrap()))
            })
            .collect()
    }
}

/// Images held in memory (tests, fakes).
pub struct InMemory {
    pub name: String,
    pub images: Vec<Rgb8>,
}

impl ImageSet for InMemory {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn size(&self) -> usize {
        self.images.first().map_or(0, |i| i.size)
    }
    fn describe(&self) -> String {
        format!("{} ({} images)", self.name, self.images.len())
    }
    fn label(&self, i: usize) -> String {
        format!("{} #{i}", self.name)
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<Rgb8>> {
        Ok(indices.iter().map(|&i| self.images[i].clone()).collect())
    }
}

/// Opens an image set named on the command line: a `.limner` file, a distillation folder
/// (with `manifest.json`; `seeds` picks the training range), a folder of images, or else a
/// model (`default`, a run folder, a `.safetensors`, `random-face`) sampled at seeds
/// `first_seed..first_seed + count`.
pub fn open_set(spec: &str, seeds: Option<&[u64]>, model_samples: Option<(u64, usize, f32, f32)>, device: &Device) -> Result<Box<dyn ImageSet>> {
    let p = Path::new(spec);
    if p.is_file() && p.extension().is_some_and(|e| e == "limner") {
        return Ok(Box::new(Packed::open(p)?));
    }
    if p.is_dir() && p.join(limner_photoreal::distill::MANIFEST).is_file() {
        return Ok(Box::new(Distilled::open(p, seeds, device)?));
    }
    ensure!(seeds.is_none(), "--data-seeds picks seeds of a distillation folder (one with manifest.json); {spec} is not one");
    if p.is_dir() && !p.join("generator.safetensors").exists() {
        return Ok(Box::new(Folder::open(p)?));
    }
    if p.is_file() && p.extension().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())) {
        bail!("{spec} is one image: give a folder of images, a .limner dataset or a distillation folder");
    }
    let Some((first_seed, count, psi, noise)) = model_samples else {
        bail!("{spec} is not a .limner dataset, an image folder or a distillation folder");
    };
    if p.is_file() && !p.extension().is_some_and(|e| e == "safetensors") {
        bail!("{spec} is neither a .limner dataset, a folder of images nor a model (.safetensors)");
    }
    let model = limner_edit::model::open(spec, None, device).with_context(|| format!("cannot open `{spec}` as a model"))?;
    Ok(Box::new(ModelSamples { model, first_seed, count, psi, noise }))
}
