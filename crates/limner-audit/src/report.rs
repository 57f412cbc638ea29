//! The audit's report: `report.md`, `report.json`, `histograms.png` (nearest-training distance
//! distributions of the samples and the held-out images, per space, with the copy threshold)
//! and `closest.png` (the closest sample/training pairs side by side).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use limner_core::write_atomic;
use limner_data::imageio::{save_image_rgb, save_png_rgb};
use limner_data::provenance::{Provenance, SourceType};
use limner_gan::plot::{render_line_plot, Series};

use crate::audit::{AuditResult, SpaceResult};
use crate::source::{ImageSet, Rgb8};

/// Side of each image in `closest.png`.
pub const PAIR_SIDE: usize = 96;

/// The files a report consists of.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub histograms: PathBuf,
    pub closest: PathBuf,
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

/// The report as Markdown; `command` is the command line that made it.
pub fn markdown(r: &AuditResult, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Memorization audit\n");
    let _ = writeln!(s, "Made by:\n\n```sh\n{command}\n```\n");
    let _ = writeln!(s, "- samples: {} ({} images)", r.samples, r.n_samples);
    let _ = writeln!(s, "- training set: {} ({} images)", r.train, r.n_train);
    let _ = writeln!(s, "- held-out set (calibration): {} ({} images)", r.heldout, r.n_heldout);
    let _ = writeln!(s, "- compared at {0} × {0} px; identity crop: {1}", r.compare_size, r.face_box);
    let _ = writeln!(
        s,
        "- a sample is a **suspected copy** in a space when its nearest training image is closer than the {} percentile of the held-out images' nearest training distances\n",
        ordinal(r.percentile)
    );
    for w in &r.warnings {
        let _ = writeln!(s, "**Warning:** {w}\n");
    }
    let _ = writeln!(s, "| space | copy threshold | suspected copies | copy rate (95 % Wilson) | held-out rate | median nearest distance: samples / held-out | C_T (cells used) | precision | recall |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for sr in &r.spaces {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {} of {} | **{}** ({} – {}) | {} | {:.4} / {:.4} | {:.2} ({} of {}) | {:.3} | {:.3} |",
            sr.description,
            sr.threshold,
            sr.copies,
            r.n_samples,
            pct(sr.copy_rate),
            pct(sr.copy_rate_ci.0),
            pct(sr.copy_rate_ci.1),
            pct(sr.heldout_rate),
            sr.median_sample,
            sr.median_heldout,
            sr.data_copying.c_t,
            sr.data_copying.cells_used,
            sr.data_copying.cells,
            sr.precision_recall.precision,
            sr.precision_recall.recall
        );
    }
    let _ = writeln!(s, "\nFlagged in at least one space: {} of {} samples ({}).\n", r.any_copies, r.n_samples, pct(r.any_rate));
    let _ = writeln!(s, "{}\n", verdict(r));
    let _ = writeln!(s, "## How to read it\n");
    let _ = writeln!(s, "- **Copy rate**: fresh images of the same kind fall below the threshold {} of the time by construction, so a model that makes new faces should be near that rate; a model that reproduces its training images is far above it.", ordinal_rate(r.percentile));
    let _ = writeln!(s, "- **C_T** (Meehan, Chaudhuri & Dasgupta 2020): per k-means cell of the training set, the Mann–Whitney z-score of the samples' nearest-training distances against the held-out images', averaged weighted by the held-out share of each cell. Well below 0 (e.g. < −3): samples sit closer to the training images than new images do (data copying); well above 0: farther (the model does not reach its data).");
    let _ = writeln!(s, "- **Precision / recall** (Kynkäänniemi et al. 2019, k = {}, against an even spread of as many training images as samples): precision is the share of samples inside the training images' k-NN manifold (fidelity), recall the share of training images inside the samples' manifold (diversity).", r.spaces.first().map_or(3, |x| x.precision_recall.k));
    let _ = writeln!(s, "- `histograms.png`: per space, the distribution of nearest-training distances of the samples (blue) and the held-out images (orange), the threshold in red.");
    let _ = writeln!(s, "- `closest.png`: the {} samples closest to a training image (distance / threshold, smallest first), each beside that training image; below:\n", r.closest.len());
    let _ = writeln!(s, "| # | sample | training image | space | distance | distance / threshold |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for (i, p) in r.closest.iter().enumerate() {
        let _ = writeln!(s, "| {} | {} | {} | {} | {:.4} | {:.3} |", i + 1, p.sample_label, p.train_label, p.space.name(), p.distance, p.ratio);
    }
    let _ = writeln!(s, "\nTime: embedding {:.1} s, nearest neighbours + statistics {:.1} s.", r.seconds_embedding, r.seconds_search);
    s
}

fn ordinal(p: f64) -> String {
    if p == 1.0 {
        "1st".into()
    } else {
        format!("{p}th")
    }
}

fn ordinal_rate(p: f64) -> String {
    format!("{p} %")
}

/// One line that says what the numbers mean: **copying** when some space's copy rate is
/// surely (Wilson lower bound) above 10× the calibration rate, **elevated** when above 2×,
/// else **no sign of copying**.
pub fn verdict(r: &AuditResult) -> String {
    let base = r.percentile / 100.0;
    let Some(w) = r.spaces.iter().max_by(|a, b| a.copy_rate_ci.0.total_cmp(&b.copy_rate_ci.0)) else { return "no spaces were measured".into() };
    if w.copy_rate_ci.0 > 10.0 * base {
        format!(
            "**Verdict: copying.** In {}, {} of the samples are suspected copies (the calibration rate is {} %): this model reproduces training images.",
            w.space.name(),
            pct(w.copy_rate),
            r.percentile
        )
    } else if w.copy_rate_ci.0 > 2.0 * base {
        format!(
            "**Verdict: elevated in {}.** {} of the samples are closer to a training image than {} % of new images are (95 % interval {} – {}); look at closest.png to see whether they are copies or merely typical faces.",
            w.space.name(),
            pct(w.copy_rate),
            r.percentile,
            pct(w.copy_rate_ci.0),
            pct(w.copy_rate_ci.1)
        )
    } else {
        let top = r.spaces.iter().max_by(|a, b| a.copy_rate.total_cmp(&b.copy_rate)).unwrap();
        format!(
            "**Verdict: no sign of copying.** The highest copy rate is {} ({}), against {} % for images the model never saw.",
            pct(top.copy_rate),
            top.space.name(),
            r.percentile
        )
    }
}

/// A step histogram (bin centres, share of the set per bin).
fn histogram(values: &[f32], lo: f32, hi: f32, bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0usize; bins];
    let w = (hi - lo).max(1e-12) / bins as f32;
    for &v in values {
        let b = (((v - lo) / w).floor() as isize).clamp(0, bins as isize - 1) as usize;
        counts[b] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.iter().enumerate().map(|(i, &c)| ((lo + w * (i as f32 + 0.5)) as f64, c as f64 / n)).collect()
}

fn space_plot(sr: &SpaceResult, width: u32, height: u32) -> Vec<u8> {
    let all = sr.sample_nearest.iter().chain(&sr.heldout_nearest).copied().filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = (lo.min(sr.threshold) * 0.95, hi * 1.02);
    let (hs, hh) = (histogram(&sr.sample_nearest, lo, hi, 40), histogram(&sr.heldout_nearest, lo, hi, 40));
    let top = hs.iter().chain(&hh).map(|p| p.1).fold(0.0, f64::max);
    let line = [(sr.threshold as f64, 0.0), (sr.threshold as f64, top)];
    let title = format!("{}: nearest training image", sr.space.name());
    render_line_plot(
        &title,
        "distance (share of each set per bin)",
        &[
            Series { name: "samples", points: &hs, color: [31, 119, 180] },
            Series { name: "held-out", points: &hh, color: [255, 127, 14] },
            Series { name: "threshold", points: &line, color: [214, 39, 40] },
        ],
        width,
        height,
    )
}

/// The three distance distributions stacked: `(width, height, rgb)`.
pub fn histograms_png(r: &AuditResult) -> (u32, u32, Vec<u8>) {
    let (w, h) = (900u32, 320u32);
    let mut out = vec![];
    for sr in &r.spaces {
        out.extend(space_plot(sr, w, h));
    }
    (w, h * r.spaces.len() as u32, out)
}

/// The closest pairs: rows of 4 pairs, each a sample beside its training image.
pub fn closest_png(r: &AuditResult, samples: &dyn ImageSet, train: &dyn ImageSet) -> Result<(u32, u32, Vec<u8>)> {
    let sample_imgs = samples.load(&r.closest.iter().map(|p| p.sample).collect::<Vec<_>>())?;
    let train_imgs = train.load(&r.closest.iter().map(|p| p.train).collect::<Vec<_>>())?;
    let (side, gap, pad) = (PAIR_SIDE, 4usize, 16usize);
    let cols = 4usize.min(r.closest.len().max(1));
    let rows = r.closest.len().div_ceil(cols).max(1);
    let pair_w = 2 * side + gap;
    let (w, h) = (cols * pair_w + (cols + 1) * pad, rows * side + (rows + 1) * pad);
    let mut canvas = vec![255u8; w * h * 3];
    let mut put = |img: &Rgb8, x0: usize, y0: usize| {
        let img = img.resized(side);
        for y in 0..side {
            let dst = ((y0 + y) * w + x0) * 3;
            canvas[dst..dst + side * 3].copy_from_slice(&img.data[y * side * 3..(y + 1) * side * 3]);
        }
    };
    for (i, (s, t)) in sample_imgs.iter().zip(&train_imgs).enumerate() {
        let (cx, cy) = (i % cols, i / cols);
        let x0 = pad + cx * (pair_w + pad);
        let y0 = pad + cy * (side + pad);
        put(s, x0, y0);
        put(t, x0 + side + gap, y0);
    }
    Ok((w as u32, h as u32, canvas))
}

/// Writes the whole report into `dir` (created), each file atomically.
pub fn write_report(dir: &Path, r: &AuditResult, samples: &dyn ImageSet, train: &dyn ImageSet, command: &str) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the report folder {}", dir.display()))?;
    let files = ReportFiles { markdown: dir.join("report.md"), json: dir.join("report.json"), histograms: dir.join("histograms.png"), closest: dir.join("closest.png") };
    write_atomic(&files.markdown, markdown(r, command).as_bytes())?;
    let mut json = serde_json::to_value(r)?;
    json["command"] = command.into();
    write_atomic(&files.json, serde_json::to_string_pretty(&json)?.as_bytes())?;
    let (w, h, rgb) = histograms_png(r);
    save_png_rgb(&files.histograms, w, h, &rgb)?;
    let (w, h, rgb) = closest_png(r, samples, train)?;
    // samples beside training images: labelled as containing AI-made media
    let prov = Provenance::new(SourceType::CompositeWithTrainedAlgorithmicMedia)
        .with_recipe_json(serde_json::json!({"made_by": "limner audit", "shows": "the samples closest to a training image, each beside it", "samples": r.samples, "train": r.train}));
    save_image_rgb(&files.closest, w, h, &rgb, &prov)?;
    Ok(files)
}
