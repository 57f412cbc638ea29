//! CLI glue for the copy check on exports (the check is `limner_audit::index`): which training
//! index applies, the refusal message, and the label's record of the nearest distances.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::tensor::Device;
use limner_audit::index::{CopyCheck, TrainingIndex, INDEX_FILE};
use limner_audit::{Embedder, Rgb8};
use limner_data::provenance::Provenance;

/// The check of one command's exports: the index, its embedder, and whether the user allowed
/// near copies.
pub struct CopyGuard {
    index: TrainingIndex,
    embedder: Embedder,
    allow: bool,
    device: Device,
}

/// The index that applies to `model`: `--copy-index FILE`, else `training-index.safetensors`
/// in the model's run folder (or beside its file), else none.
pub fn index_path(model: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let m = Path::new(model);
    let dir = if m.is_dir() { Some(m) } else { m.parent().filter(|p| m.is_file() && !p.as_os_str().is_empty()) };
    dir.map(|d| d.join(INDEX_FILE)).filter(|p| p.is_file())
}

impl CopyGuard {
    /// `None` when no index applies to the model. The default model's index is embedded; a
    /// model's own index needs the fetched networks, and without them the check is skipped with a
    /// note (an index named with `--copy-index` must work, else it is an error).
    pub fn open(model: &str, explicit: Option<&Path>, allow: bool) -> Result<Option<Self>> {
        let device = Device::flex();
        let index = match index_path(model, explicit) {
            Some(path) => TrainingIndex::load(&path)?,
            None if model == limner_models::DEFAULT_NAME => TrainingIndex::from_bytes(limner_audit::index::DEFAULT_INDEX)?,
            None => return Ok(None),
        };
        let embedder = match index.embedder(&device) {
            Ok(e) => e,
            Err(e) if explicit.is_none() => {
                eprintln!("note: copy check skipped (it needs `limner models fetch --only inception-v3` and `--only face-api`): {e:#}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(Some(Self { index, embedder, allow, device }))
    }

    /// Checks the images; refuses (an error naming the closest training image, whose thumbnail is
    /// written beside `out` as `near-copy-NAME.png`) unless near copies are allowed. Gives each
    /// image's label record.
    pub fn check(&self, images: &[Rgb8], names: &[String], out: Option<&Path>) -> Result<Vec<serde_json::Value>> {
        let checks = self.index.check(&self.embedder, images, &self.device)?;
        let mut refused = vec![];
        for ((c, name), img) in checks.iter().zip(names).zip(images) {
            if c.near_copy && !self.allow {
                let side = match (out, c.closest()) {
                    (Some(dir), Some(s)) => self.side_by_side(img, s.nearest, &dir.join(format!("near-copy-{name}.png"))).ok(),
                    _ => None,
                };
                refused.push(format!("{name}: {}{}", c.explain(), side.map(|p| format!(" (side by side: {})", p.display())).unwrap_or_default()));
            }
        }
        if !refused.is_empty() {
            bail!(
                "refused {} near copy/copies of training images (nothing was written):\n  {}\npass --allow-near-copy to write them anyway (the override is recorded in each image's label)",
                refused.len(),
                refused.join("\n  ")
            );
        }
        Ok(checks.iter().map(|c| record(c, self.allow)).collect())
    }

    fn side_by_side(&self, img: &Rgb8, train: usize, path: &Path) -> Result<PathBuf> {
        let side = 96;
        let (a, b) = (img.resized(side), self.index.thumbnail(train)?.resized(side));
        let mut rgb = vec![255u8; side * (2 * side + 4) * 3];
        let w = 2 * side + 4;
        for y in 0..side {
            rgb[y * w * 3..(y * w + side) * 3].copy_from_slice(&a.data[y * side * 3..(y + 1) * side * 3]);
            rgb[(y * w + side + 4) * 3..(y * w + w) * 3].copy_from_slice(&b.data[y * side * 3..(y + 1) * side * 3]);
        }
        let prov = Provenance::new(limner_data::provenance::SourceType::CompositeWithTrainedAlgorithmicMedia)
            .with_recipe_json(serde_json::json!({"made_by": "limner copy check", "shows": "a refused image beside the training thumbnail it is closest to"}));
        limner_data::imageio::save_image_rgb(path, w as u32, side as u32, &rgb, &prov)?;
        Ok(path.to_path_buf())
    }
}

/// The label's record of a check: distances per space, and whether the user allowed a near copy.
pub fn record(c: &CopyCheck, allowed: bool) -> serde_json::Value {
    let mut v = serde_json::json!({"distances": c.to_json(), "near_copy": c.near_copy});
    if c.near_copy && allowed {
        v["allowed_by_user"] = true.into();
    }
    v
}

/// A label with the check's record added to its recipe (`nearest_training`).
pub fn labelled(p: &Provenance, record: Option<&serde_json::Value>) -> Provenance {
    match record {
        Some(r) => p.with_recipe_field("nearest_training", r.clone()),
        None => p.clone(),
    }
}

/// Saves a recipe-made face as `limner_edit::recipe::save_with_recipe` does, after the copy
/// check (refused near copies write nothing), with the check's record in its label.
pub fn save_checked(guard: Option<&CopyGuard>, png: &Path, img: &limner_faces::Image, r: &limner_edit::recipe::Recipe) -> Result<()> {
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let rgb = img.to_rgb8();
    let record = match guard {
        Some(g) => {
            let name = png.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            g.check(&[Rgb8::new(img.width, rgb.clone())], &[name], png.parent())?.pop()
        }
        None => None,
    };
    limner_data::imageio::save_image_rgb(png, img.width as u32, img.height as u32, &rgb, &labelled(&r.provenance()?, record.as_ref()))?;
    r.save(&png.with_extension("json"))
}
