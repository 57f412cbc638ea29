//! The copy check of one command's (or one studio worker's) exports, around
//! [`TrainingIndex::check`]: which index applies to a model, the refusal with its explanation
//! and the closest training thumbnail, the override, and the label's record of the distances.
//! The CLI and the studio both call this; they only parse, print and answer.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::tensor::Device;
use limner_data::provenance::{Provenance, SourceType};

use crate::embed::Embedder;
use crate::index::{CopyCheck, TrainingIndex, DEFAULT_INDEX, INDEX_FILE};
use crate::source::Rgb8;

/// The check of a model's exports: its training index, the embedder, and whether the user
/// allowed near copies.
pub struct CopyGuard {
    index: TrainingIndex,
    embedder: Embedder,
    allow: bool,
    device: Device,
}

/// The index that applies to `model`: `explicit` (`--copy-index FILE`), else the one beside the
/// model's generator file as [`limner_models::resolve`] finds it (a run folder, a file, a name
/// in the models folder): `NAME.training-index.safetensors`, else `training-index.safetensors`;
/// else none. (The default model's index is embedded: [`DEFAULT_INDEX`].)
pub fn index_path(model: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let file = limner_models::resolve(model).ok().flatten()?;
    let dir = file.parent()?;
    let stem = file.file_stem()?.to_string_lossy();
    [dir.join(format!("{stem}.{INDEX_FILE}")), dir.join(INDEX_FILE)].into_iter().find(|p| p.is_file())
}

/// One refused image.
#[derive(Clone, Debug)]
pub struct Refused {
    /// the image's name (`seed0002`, `frame007`)
    pub name: String,
    pub check: CopyCheck,
    /// why, in words ([`CopyCheck::explain`])
    pub explanation: String,
    /// the image beside the closest training thumbnail, written here (when a folder was given)
    pub side_by_side: Option<PathBuf>,
    /// the same picture as labelled PNG bytes
    pub side_by_side_png: Option<Vec<u8>>,
}

/// The error of a refused export: every near copy, and how this caller overrides.
#[derive(Clone, Debug)]
pub struct NearCopies {
    pub refused: Vec<Refused>,
    /// e.g. "pass --allow-near-copy to write them anyway"
    pub how_to_override: String,
}

impl fmt::Display for NearCopies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .refused
            .iter()
            .map(|r| format!("{}: {}{}", r.name, r.explanation, r.side_by_side.as_ref().map(|p| format!(" (side by side: {})", p.display())).unwrap_or_default()))
            .collect();
        write!(
            f,
            "refused {} near copy/copies of training images (nothing was written):\n  {}\n{} (the override is recorded in each image's label)",
            self.refused.len(),
            lines.join("\n  "),
            self.how_to_override
        )
    }
}

impl std::error::Error for NearCopies {}

impl CopyGuard {
    /// `None` when no index applies to the model. The default model's index is embedded; a
    /// model's own index needs the fetched networks, and without them the check is skipped and
    /// `note` says why (an index named explicitly must work, else it is an error).
    pub fn open(model: &str, explicit: Option<&Path>, allow: bool, note: &mut dyn FnMut(String)) -> Result<Option<Self>> {
        let device = Device::flex();
        let index = match index_path(model, explicit) {
            Some(path) => TrainingIndex::load(&path)?,
            None if model == limner_models::DEFAULT_NAME => TrainingIndex::from_bytes(DEFAULT_INDEX)?,
            None => return Ok(None),
        };
        let embedder = match index.embedder(&device) {
            Ok(e) => e,
            Err(e) if explicit.is_none() => {
                note(format!("copy check skipped (it needs `limner models fetch --only inception-v3` and `--only face-api`): {e:#}"));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(Some(Self { index, embedder, allow, device }))
    }

    /// Whether near copies are let through (and recorded as allowed).
    pub fn allows(&self) -> bool {
        self.allow
    }

    /// The same guard with another override (the studio decides per request).
    pub fn allowing(&mut self, allow: bool) -> &mut Self {
        self.allow = allow;
        self
    }

    pub fn index(&self) -> &TrainingIndex {
        &self.index
    }

    /// The distances of each image to the training set (no verdict).
    pub fn measure(&self, images: &[Rgb8]) -> Result<Vec<CopyCheck>> {
        self.index.check(&self.embedder, images, &self.device)
    }

    /// Checks the images: a [`NearCopies`] error (naming each near copy, the training image it
    /// is close to, with the side-by-side picture written into `out` as `near-copy-NAME.png`
    /// when given) unless near copies are allowed; else each image's label record ([`record`]).
    pub fn check(&self, images: &[Rgb8], names: &[String], out: Option<&Path>, how_to_override: &str) -> Result<Vec<serde_json::Value>> {
        let checks = self.measure(images)?;
        self.verdict(&checks, images, names, out, how_to_override)
    }

    /// [`Self::check`] on measured distances.
    pub fn verdict(&self, checks: &[CopyCheck], images: &[Rgb8], names: &[String], out: Option<&Path>, how_to_override: &str) -> Result<Vec<serde_json::Value>> {
        let mut refused = vec![];
        for ((c, name), img) in checks.iter().zip(names).zip(images) {
            if c.near_copy && !self.allow {
                let png = c.closest().and_then(|s| self.side_by_side_png(img, s.nearest).ok());
                let side = match (out, &png) {
                    (Some(dir), Some(bytes)) => {
                        let p = dir.join(format!("near-copy-{name}.png"));
                        let _ = std::fs::create_dir_all(dir);
                        limner_core::write_atomic(&p, bytes).ok().map(|_| p)
                    }
                    _ => None,
                };
                refused.push(Refused { name: name.clone(), check: c.clone(), explanation: c.explain(), side_by_side: side, side_by_side_png: png });
            }
        }
        if !refused.is_empty() {
            return Err(NearCopies { refused, how_to_override: how_to_override.to_string() }.into());
        }
        Ok(checks.iter().map(|c| record(c, self.allow)).collect())
    }

    /// The image beside training thumbnail `train` (both 96 px), as a labelled PNG.
    pub fn side_by_side_png(&self, img: &Rgb8, train: usize) -> Result<Vec<u8>> {
        let side = 96;
        let (a, b) = (img.resized(side), self.index.thumbnail(train)?.resized(side));
        let w = 2 * side + 4;
        let mut rgb = vec![255u8; side * w * 3];
        for y in 0..side {
            rgb[y * w * 3..(y * w + side) * 3].copy_from_slice(&a.data[y * side * 3..(y + 1) * side * 3]);
            rgb[(y * w + side + 4) * 3..(y * w + w) * 3].copy_from_slice(&b.data[y * side * 3..(y + 1) * side * 3]);
        }
        let prov = Provenance::new(SourceType::CompositeWithTrainedAlgorithmicMedia)
            .with_recipe_json(serde_json::json!({"made_by": "limner copy check", "shows": "a refused image beside the training thumbnail it is closest to"}));
        let mut png = vec![];
        image::codecs::png::PngEncoder::new(&mut png).write_image(&rgb, w as u32, side as u32, image::ExtendedColorType::Rgb8)?;
        limner_data::provenance::embed(&png, &prov)
    }
}

use image::ImageEncoder;

/// The label's record of a check: distances per space, and whether the user allowed a near copy.
pub fn record(c: &CopyCheck, allowed: bool) -> serde_json::Value {
    let mut v = serde_json::json!({"distances": c.to_json(), "near_copy": c.near_copy});
    if c.near_copy && allowed {
        v["allowed_by_user"] = true.into();
    }
    v
}

/// The key of the record in a label's recipe.
pub const RECORD_KEY: &str = "nearest_training";

/// A label with the check's record added to its recipe (`nearest_training`).
pub fn labelled(p: &Provenance, record: Option<&serde_json::Value>) -> Provenance {
    match record {
        Some(r) => p.with_recipe_field(RECORD_KEY, r.clone()),
        None => p.clone(),
    }
}

/// The record a labelled file carries, if any (read from its XMP).
pub fn record_in(bytes: &[u8]) -> Option<serde_json::Value> {
    let xmp = limner_data::provenance::read_xmp(bytes).ok()??;
    let recipe = limner_data::provenance::Label::parse(&xmp).recipe?;
    let v: serde_json::Value = serde_json::from_str(&recipe).ok()?;
    v.get(RECORD_KEY).cloned()
}

/// Saves a recipe-made face as `limner_edit::recipe::save_with_recipe` does, after the copy
/// check (refused near copies write nothing), with the check's record in its label.
pub fn save_checked(guard: Option<&CopyGuard>, png: &Path, img: &limner_faces::Image, r: &limner_edit::recipe::Recipe, how_to_override: &str) -> Result<()> {
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let rgb = img.to_rgb8();
    let record = match guard {
        Some(g) => {
            let name = png.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            g.check(&[Rgb8::new(img.width, rgb.clone())], &[name], png.parent(), how_to_override)?.pop()
        }
        None => None,
    };
    limner_data::imageio::save_image_rgb(png, img.width as u32, img.height as u32, &rgb, &labelled(&r.provenance()?, record.as_ref()))?;
    r.save(&png.with_extension("json"))
}

/// The label's record for an animation (one label for many frames), shaped as [`record`]'s:
/// `distances` holds per space the closest any frame comes to a training image (that frame, the distance, the training image), which
/// frames are near copies, and whether the user allowed them.
pub fn frames_record(checks: &[CopyCheck], allowed: bool) -> serde_json::Value {
    let mut spaces = serde_json::Map::new();
    for (i, c) in checks.iter().enumerate() {
        for s in &c.spaces {
            let closer = spaces.get(s.space.name()).and_then(|v| v["distance"].as_f64()).is_none_or(|d| (s.distance as f64) < d);
            if closer {
                spaces.insert(
                    s.space.name().into(),
                    serde_json::json!({"frame": i, "distance": (s.distance as f64 * 1e4).round() / 1e4, "threshold": (s.threshold as f64 * 1e4).round() / 1e4, "nearest": s.nearest_label}),
                );
            }
        }
    }
    let near: Vec<usize> = checks.iter().enumerate().filter(|(_, c)| c.near_copy).map(|(i, _)| i).collect();
    let mut v = serde_json::json!({"frames_checked": checks.len(), "distances": spaces, "near_copy_frames": near, "near_copy": !near.is_empty()});
    if !near.is_empty() && allowed {
        v["allowed_by_user"] = true.into();
    }
    v
}
