//! The model card that answers "is it theft?" (issue 18 §4): `MODEL_CARD.md` and
//! `model-card.json` beside a model, written by `limner train` (when a run finishes or stops)
//! and `limner models freeze`, with the training index ([`crate::index`]) for the copy check.
//!
//! The card holds what a reader needs to judge whether a model could hold its training images:
//! the dataset (its SHA-256, image count, resolution, bytes), the weights' bytes, their ratio,
//! the training command, and the latest memorization audit when `audit/report.json` exists
//! beside the model (or in the run folder).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::index::{TrainingIndex, INDEX_FILE};
use crate::source::{ImageSet, Packed};

/// The card's JSON file.
pub const CARD_JSON: &str = "model-card.json";
/// The card's Markdown file.
pub const CARD_MD: &str = "MODEL_CARD.md";
/// The generated part of `MODEL_CARD.md` lies between these lines (the rest of a hand-written
/// card is kept).
pub const BEGIN: &str = "<!-- limner model card: generated, do not edit between these lines -->";
pub const END: &str = "<!-- end of the generated limner model card -->";
const FORMAT: &str = "limner-model-card/1";

/// The training images, as the card describes them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DatasetFacts {
    /// the `.limner` file as given to `limner train`
    pub path: String,
    /// SHA-256 of the `.limner` file (its manifest, the file names and every pixel)
    pub sha256: String,
    pub images: usize,
    pub resolution: usize,
    /// the training pixels: images × resolution² × 3 bytes (what the model saw)
    pub pixel_bytes: u64,
    /// the `.limner` file's size
    pub file_bytes: u64,
}

/// The latest memorization audit's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditFacts {
    pub report: String,
    pub samples: usize,
    pub train: usize,
    pub heldout: usize,
    /// per space: (space, copies, copy rate, 95 % interval, C_T)
    pub spaces: Vec<AuditSpace>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditSpace {
    pub space: String,
    pub copies: usize,
    pub copy_rate: f64,
    pub copy_rate_ci: (f64, f64),
    pub c_t: f64,
}

/// What `model-card.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub format: String,
    /// the generator file the card describes (its name beside the card)
    pub weights: String,
    pub weights_sha256: String,
    pub weights_bytes: u64,
    pub kimg: Option<f64>,
    pub dataset: DatasetFacts,
    /// weights_bytes / dataset.pixel_bytes
    pub ratio: f64,
    /// the command that trained the model (from the run's `run.json`)
    pub training_command: String,
    /// the training index's file beside the model, its thresholds and calibration
    pub training_index: Option<IndexFacts>,
    pub audit: Option<AuditFacts>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexFacts {
    pub file: String,
    pub bytes: u64,
    pub images: usize,
    pub thresholds: Vec<(String, f32)>,
    pub calibration: String,
}

/// The dataset's facts (hashing the whole file).
pub fn dataset_facts(path: &Path) -> Result<DatasetFacts> {
    let d = limner_data::PackedDataset::open(path).with_context(|| format!("cannot open the dataset {} for the model card", path.display()))?;
    let res = d.res() as usize;
    Ok(DatasetFacts {
        path: path.display().to_string(),
        sha256: limner_data::provenance::sha256_file(path)?,
        images: d.len(),
        resolution: res,
        pixel_bytes: (d.len() * res * res * 3) as u64,
        file_bytes: std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len(),
    })
}

/// The audit numbers of `report.json`, if it exists and reads as one.
pub fn audit_facts(report_json: &Path) -> Option<AuditFacts> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report_json).ok()?).ok()?;
    let spaces = v["spaces"]
        .as_array()?
        .iter()
        .map(|s| {
            Some(AuditSpace {
                space: s["space"].as_str()?.to_string(),
                copies: s["copies"].as_u64()? as usize,
                copy_rate: s["copy_rate"].as_f64()?,
                copy_rate_ci: (s["copy_rate_ci"][0].as_f64()?, s["copy_rate_ci"][1].as_f64()?),
                c_t: s["data_copying"]["c_t"].as_f64().unwrap_or(f64::NAN),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(AuditFacts {
        report: report_json.display().to_string(),
        samples: v["n_samples"].as_u64()? as usize,
        train: v["n_train"].as_u64()? as usize,
        heldout: v["n_heldout"].as_u64()? as usize,
        spaces,
    })
}

/// What a card is made from.
pub struct CardInput<'a> {
    /// the folder the card (and the index) go in
    pub dir: &'a Path,
    /// the generator file described
    pub weights: &'a Path,
    pub kimg: Option<f64>,
    /// the training dataset (`.limner`)
    pub dataset: &'a Path,
    pub training_command: String,
    /// more folders to look for `audit/report.json` in (the card's own folder first)
    pub audit_dirs: Vec<PathBuf>,
}

/// Writes the training index beside the model unless one for this dataset is there: built from
/// `dataset` (calibrated on `heldout` when given, else leave-one-out), or copied from
/// `existing`. Without the fetched networks it is not written and `note` says why.
pub fn ensure_index(dir: &Path, dataset: &Path, heldout: Option<&str>, existing: Option<&Path>, device: &Device, note: &mut dyn FnMut(String), progress: &mut dyn FnMut(usize, usize)) -> Result<Option<PathBuf>> {
    let out = dir.join(INDEX_FILE);
    if let Some(src) = existing.filter(|p| p.is_file() && *p != out.as_path()) {
        limner_core::write_atomic(&out, &std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?)?;
        return Ok(Some(out));
    }
    let train = Packed::open(dataset)?;
    if let Ok(ix) = TrainingIndex::load(&out) {
        if ix.labels.len() == train.len() && (0..train.len()).all(|i| ix.labels[i] == train.label(i)) {
            return Ok(Some(out));
        }
    }
    let held = match heldout {
        Some(h) => Some(crate::source::open_set(h, None, None, device).with_context(|| format!("--heldout {h}"))?),
        None => None,
    };
    if let Err(e) = crate::embed::Embedder::new(&[crate::embed::Space::Inception, crate::embed::Space::Identity], train.size(), device) {
        note(format!("no training index written (the copy check needs `limner models fetch --only inception-v3` and `--only face-api`): {e:#}"));
        return Ok(None);
    }
    TrainingIndex::build(&train, held.as_deref(), device, progress)?.save(&out)?;
    Ok(Some(out))
}

/// Writes `model-card.json` and the generated part of `MODEL_CARD.md` into `input.dir`.
pub fn write_card(input: &CardInput) -> Result<ModelCard> {
    let dataset = dataset_facts(input.dataset)?;
    let weights_bytes = std::fs::metadata(input.weights).with_context(|| format!("cannot read {}", input.weights.display()))?.len();
    let index_path = input.dir.join(INDEX_FILE);
    let training_index = TrainingIndex::load(&index_path).ok().map(|ix| IndexFacts {
        file: INDEX_FILE.into(),
        bytes: std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0),
        images: ix.labels.len(),
        thresholds: ix.spaces.iter().map(|s| (s.space.name().to_string(), s.threshold)).collect(),
        calibration: ix.calibration.clone(),
    });
    let audit = std::iter::once(input.dir.to_path_buf()).chain(input.audit_dirs.iter().cloned()).find_map(|d| audit_facts(&d.join("audit").join("report.json"))).map(|mut a| {
        // a report beside the card is linked relative to it, so the card reads the same wherever it is
        if let Ok(rel) = Path::new(&a.report).strip_prefix(input.dir) {
            a.report = rel.display().to_string();
        }
        a
    });
    let card = ModelCard {
        format: FORMAT.into(),
        weights: input.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        weights_sha256: limner_data::provenance::sha256_file(input.weights)?,
        weights_bytes,
        kimg: input.kimg,
        ratio: weights_bytes as f64 / dataset.pixel_bytes.max(1) as f64,
        dataset,
        training_command: input.training_command.clone(),
        training_index,
        audit,
    };
    limner_core::write_atomic(&input.dir.join(CARD_JSON), serde_json::to_string_pretty(&card)?.as_bytes())?;
    let md_path = input.dir.join(CARD_MD);
    let generated = format!("{BEGIN}\n{}{END}\n", markdown(&card));
    let md = match std::fs::read_to_string(&md_path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(a), Some(b)) if b > a => format!("{}{generated}{}", &old[..a], old[b + END.len()..].trim_start_matches('\n')),
            _ => format!("{}\n\n{generated}", old.trim_end()),
        },
        Err(_) => format!("# Model card: {}\n\n{generated}", card.weights),
    };
    limner_core::write_atomic(&md_path, md.as_bytes())?;
    Ok(card)
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// "0.4 %" with enough digits to be non-zero.
pub fn percent(ratio: f64) -> String {
    let p = 100.0 * ratio;
    if p >= 10.0 {
        format!("{p:.0} %")
    } else if p >= 0.1 {
        format!("{p:.1} %")
    } else {
        format!("{p:.3} %")
    }
}

/// The card's Markdown (the generated part).
pub fn markdown(c: &ModelCard) -> String {
    let d = &c.dataset;
    let mut s = String::new();
    s += "## Is it theft? What this model could hold of its training images\n\n";
    s += &format!(
        "**This model is {} of the size of the images it learned from**: {} of weights (`{}`, sha256 `{}`) against {} of training pixels ({} images at {} × {} px, 3 bytes a pixel).\n\n",
        percent(c.ratio),
        mb(c.weights_bytes),
        c.weights,
        &c.weights_sha256[..16.min(c.weights_sha256.len())],
        mb(d.pixel_bytes),
        d.images,
        d.resolution,
        d.resolution
    );
    s += "| | |\n|---|---|\n";
    s += &format!("| dataset | `{}`: {} images, {} px, {} file, sha256 `{}` |\n", d.path, d.images, d.resolution, mb(d.file_bytes), d.sha256);
    s += &format!("| weights | `{}`: {} ({} bytes){} |\n", c.weights, mb(c.weights_bytes), c.weights_bytes, c.kimg.map(|k| format!(", {k:.1} kimg")).unwrap_or_default());
    s += &format!("| ratio | {} (weights bytes / training pixel bytes = {:.6}) |\n", percent(c.ratio), c.ratio);
    s += &format!("| training command | `{}` |\n", c.training_command.replace('|', "\\|"));
    match &c.training_index {
        Some(ix) => {
            let th: Vec<String> = ix.thresholds.iter().map(|(n, t)| format!("{n} {t:.4}")).collect();
            s += &format!(
                "| copy check | `{}` ({}, {} training images): every export is checked against it; thresholds {} (calibrated on {}) |\n",
                ix.file,
                mb(ix.bytes),
                ix.images,
                th.join(", "),
                ix.calibration
            );
        }
        None => s += "| copy check | no training index beside the model (`limner models fetch`, then `limner models freeze` or `limner audit --index-out`) |\n",
    }
    match &c.audit {
        Some(a) => {
            s += &format!("| memorization audit | {} samples against {} training images, calibrated on {} held-out images ([report]({})) |\n\n", a.samples, a.train, a.heldout, a.report);
            s += "| space | suspected copies | copy rate (95 % CI) | C_T |\n|---|---|---|---|\n";
            for sp in &a.spaces {
                s += &format!(
                    "| {} | {} / {} | {:.2} % ({:.2}–{:.2}) | {:+.2} |\n",
                    sp.space,
                    sp.copies,
                    a.samples,
                    100.0 * sp.copy_rate,
                    100.0 * sp.copy_rate_ci.0,
                    100.0 * sp.copy_rate_ci.1,
                    sp.c_t
                );
            }
        }
        None => s += "| memorization audit | none yet: `limner audit --model DIR --data DATASET --heldout HELD --out DIR/audit` (the card shows it when next written) |\n",
    }
    s += "\nWritten by limner (`model-card.json` holds the same numbers).\n";
    s
}

/// The card (and the index) of a model trained elsewhere or before cards existed (`limner
/// models card`): `weights` in `dir`, trained on `dataset` by `command`. The training index
/// beside the model is kept when it indexes exactly this dataset's images, else rebuilt.
#[allow(clippy::too_many_arguments)]
pub fn card_for_model(dir: &Path, weights: &Path, dataset: &Path, command: &str, kimg: Option<f64>, heldout: Option<&str>, device: &Device, note: &mut dyn FnMut(String), progress: &mut dyn FnMut(usize, usize)) -> Result<ModelCard> {
    anyhow::ensure!(weights.is_file(), "{} is not a file: give the model's generator with --weights", weights.display());
    anyhow::ensure!(dataset.is_file(), "the training dataset {} is not here: give the `.limner` file the model was trained on (`limner dataset build`)", dataset.display());
    ensure_index(dir, dataset, heldout, None, device, note, progress)?;
    write_card(&CardInput { dir, weights, kimg, dataset, training_command: command.to_string(), audit_dirs: vec![] })
}

/// The card (and the index) of a training run's model, written into `dir`: after `limner train`
/// (`dir` = the run folder) or `limner models freeze` (`dir` = the frozen model's folder). The
/// dataset and the training command come from the run's `run.json` unless given. `None` (and a
/// `note`) when the dataset is no longer there.
#[allow(clippy::too_many_arguments)]
pub fn card_for_run(run_dir: &Path, dir: &Path, weights: &Path, kimg: Option<f64>, heldout: Option<&str>, device: &Device, note: &mut dyn FnMut(String), progress: &mut dyn FnMut(usize, usize)) -> Result<Option<ModelCard>> {
    let run_json: serde_json::Value = match std::fs::read(run_dir.join("run.json")) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{} is not JSON", run_dir.join("run.json").display()))?,
        Err(_) => {
            note(format!("no model card: {} has no run.json naming its dataset", run_dir.display()));
            return Ok(None);
        }
    };
    let Some(dataset) = run_json["data"].as_str().map(PathBuf::from) else {
        note(format!("no model card: {} names no dataset", run_dir.join("run.json").display()));
        return Ok(None);
    };
    if !dataset.is_file() {
        note(format!("no model card: the training dataset {} is not here (run this where it is)", dataset.display()));
        return Ok(None);
    }
    let command = run_json["command"].as_str().map(|c| {
        // the command as a user types it: `limner` for the binary's path
        let mut parts = c.splitn(2, ' ');
        let bin = parts.next().unwrap_or_default();
        let rest = parts.next().unwrap_or_default();
        if bin.ends_with("limner") { format!("limner {rest}") } else { c.to_string() }
    });
    let existing = run_dir.join(INDEX_FILE);
    ensure_index(dir, &dataset, heldout, Some(&existing), device, note, progress)?;
    let card = write_card(&CardInput {
        dir,
        weights,
        kimg,
        dataset: &dataset,
        training_command: command.unwrap_or_else(|| "(not recorded)".into()),
        audit_dirs: vec![run_dir.to_path_buf()],
    })?;
    Ok(Some(card))
}
