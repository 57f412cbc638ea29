//! `limner dataset distill`: a folder of seeded random-face images (box-downsampled from 1024²)
//! plus `manifest.json`, written so an interrupted run can be resumed.
//!
//! Each image is `seedNNNNNNNN.png` for seeds `seed_start .. seed_start + count`, written
//! atomically (temporary file + rename), so a file that exists is complete; a rerun skips it.
//! `manifest.json` (also atomic) records the model, its licence, psi, noise, sizes and the seed
//! of every file; it is written before the first image (`"complete": false`) and again at the
//! end (`"complete": true`). A rerun with other settings (psi, noise, res, seed start, model)
//! into the same folder is refused rather than mixing two datasets.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use limner_data::imageio::save_image_rgb;
use limner_data::provenance::Provenance;
use limner_core::write_atomic;
use serde_json::{json, Value};

use crate::faces::{check_size, generate_seeds, NATIVE_SIZE};
use crate::{MobileStyleGan, LICENCE, MODEL_NAME};

/// Settings of one distillation.
#[derive(Clone, Debug)]
pub struct DistillOptions {
    pub out: PathBuf,
    pub count: u64,
    /// output size (a power of two up to 1024)
    pub res: usize,
    pub psi: f32,
    pub noise: f32,
    pub seed_start: u64,
}

/// What a distillation did.
#[derive(Clone, Debug)]
pub struct DistillReport {
    pub written: u64,
    /// already present from an earlier run
    pub skipped: u64,
    pub manifest: PathBuf,
}

/// The file of one seed: `seedNNNNNNNN.png`.
pub fn file_name(seed: u64) -> String {
    format!("seed{seed:08}.png")
}

/// The seed of a file written by [`distill`] (`seedNNNNNNNN.png`, possibly inside folders),
/// or `None` for any other name.
pub fn seed_of_file(name: &str) -> Option<u64> {
    let stem = Path::new(name).file_stem()?.to_str()?;
    let digits = stem.strip_prefix("seed")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

fn manifest(o: &DistillOptions, complete: bool) -> Value {
    let files: Vec<Value> = (0..o.count).map(|i| json!({ "file": file_name(o.seed_start + i), "seed": o.seed_start + i })).collect();
    json!({
        "model": MODEL_NAME,
        "source": "PyPI random-face==2021.7.21.1 (MobileStyleGAN, OpenVINO IR), run natively by limner-photoreal",
        "licence": LICENCE,
        "psi": o.psi,
        "noise": o.noise,
        "res": o.res,
        "native_res": NATIVE_SIZE,
        "downsample": format!("box average of {0}x{0} blocks (float), then rounded to 8-bit", NATIVE_SIZE / o.res),
        "seeding": "z: 512 N(0,1) from ChaCha8(seed); noise: ChaCha8(seed) stream 1 (as limner generate)",
        "seed_start": o.seed_start,
        "count": o.count,
        "complete": complete,
        "files": files,
    })
}

/// Refuses to resume into a folder made with other settings.
fn check_existing(path: &Path, o: &DistillOptions) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let old: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON (delete it to start over)", path.display()))?;
    let new = manifest(o, false);
    for key in ["model", "psi", "noise", "res", "seed_start"] {
        if old[key] != new[key] {
            bail!(
                "{} was made with {key} = {}, not {}: distill into another --out (or give the same settings to resume)",
                path.parent().unwrap_or(Path::new(".")).display(),
                old[key],
                new[key]
            );
        }
    }
    Ok(())
}

/// Writes `count` faces and the manifest into `o.out`, skipping images already there.
/// `progress(done, total)` is called once at the start and after every image (written or skipped).
pub fn distill(g: &MobileStyleGan, o: &DistillOptions, progress: &mut dyn FnMut(u64, u64)) -> Result<DistillReport> {
    check_size(o.res)?;
    ensure!(o.count > 0, "--count must be at least 1");
    ensure!(o.psi.is_finite() && o.noise.is_finite(), "--psi and --noise must be finite numbers");
    ensure!(o.seed_start.checked_add(o.count).is_some(), "seed range overflows");
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    let mpath = o.out.join(MANIFEST);
    check_existing(&mpath, o)?;
    write_atomic(&mpath, serde_json::to_string_pretty(&manifest(o, false))?.as_bytes())?;
    let (mut written, mut skipped) = (0, 0);
    progress(0, o.count);
    for i in 0..o.count {
        let seed = o.seed_start + i;
        let p = o.out.join(file_name(seed));
        if p.is_file() {
            skipped += 1;
        } else {
            let rgb = generate_seeds(g, &[seed], o.psi, o.noise, o.res)?;
            let recipe = serde_json::json!({"model": crate::MODEL_NAME, "seed": seed, "psi": o.psi, "noise": o.noise, "size": o.res});
            save_image_rgb(&p, o.res as u32, o.res as u32, &rgb[0], &Provenance::generated().with_recipe_json(recipe))?;
            written += 1;
        }
        progress(i + 1, o.count);
    }
    write_atomic(&mpath, serde_json::to_string_pretty(&manifest(o, true))?.as_bytes())?;
    Ok(DistillReport { written, skipped, manifest: mpath })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_back_from_file_names() {
        for seed in [0, 7, 12_345_678, 99_999_999_999] {
            assert_eq!(seed_of_file(&file_name(seed)), Some(seed));
            assert_eq!(seed_of_file(&format!("sub/dir/{}", file_name(seed))), Some(seed));
        }
        for bad in ["0001_00003.jpg", "seed.png", "seedling.png", "seed12a.png", "myseed12.png"] {
            assert_eq!(seed_of_file(bad), None, "{bad}");
        }
    }
}
