//! CLI glue for `limner audit` (argument parsing, progress bars and printing; the work is in
//! `limner_audit`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Args;
use limner_audit::audit::audit_full;
use limner_audit::{open_set, AuditOptions, Space};
use limner_core::progress::bar;

/// `limner audit`
#[derive(Args)]
pub struct AuditArgs {
    /// the model to audit (`default`, a run folder, a .safetensors, `random-face`)
    #[arg(long)]
    pub model: String,
    /// its training images: a .limner dataset, a folder of images, or a `dataset distill` folder (missing files are re-rendered from its manifest.json)
    #[arg(long)]
    pub data: String,
    /// only these seeds of a distillation folder (the model's training range), e.g. 0-9610
    #[arg(long, value_name = "SEEDS")]
    pub data_seeds: Option<String>,
    /// images of the same kind the model never trained on (calibration): a folder or a .limner dataset
    #[arg(long)]
    pub heldout: String,
    /// samples to draw from the model (seeds FIRST_SEED..FIRST_SEED+N)
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// first seed of the samples: pick seeds the model never trained on (the default model's distillation seeds are 0–9610)
    #[arg(long, default_value_t = 100_000)]
    pub first_seed: u64,
    /// truncation of the samples
    #[arg(long, default_value_t = 1.0)]
    pub psi: f32,
    /// noise strength of the samples
    #[arg(long, default_value_t = 1.0)]
    pub noise: f32,
    /// spaces to measure in (comma list of pixels, inception, identity)
    #[arg(long, default_value = "pixels,inception,identity")]
    pub spaces: String,
    /// the calibration percentile of held-out nearest distances
    #[arg(long, default_value_t = 1.0)]
    pub percentile: f64,
    /// the report folder (report.md, report.json, histograms.png, closest.png)
    #[arg(long)]
    pub out: PathBuf,
    /// also write the model's training index for the copy check on exports (put it in the model's folder as training-index.safetensors)
    #[arg(long, value_name = "FILE")]
    pub index_out: Option<PathBuf>,
}

pub fn run(a: AuditArgs) -> Result<()> {
    let device = Device::flex();
    let spaces = Space::parse_list(&a.spaces)?;
    anyhow::ensure!(a.samples >= 2, "--samples must be at least 2");
    let seeds = a.data_seeds.as_deref().map(limner_gan::generate::parse_seeds).transpose().context("--data-seeds")?;
    let train = open_set(&a.data, seeds.as_deref(), None, &device).with_context(|| format!("--data {}", a.data))?;
    let heldout = open_set(&a.heldout, None, None, &device).with_context(|| format!("--heldout {}", a.heldout))?;
    let samples = open_set(&a.model, None, Some((a.first_seed, a.samples, a.psi, a.noise)), &device).with_context(|| format!("--model {}", a.model))?;
    println!("samples:  {}", samples.describe());
    println!("training: {}", train.describe());
    println!("held-out: {}", heldout.describe());
    let o = AuditOptions { spaces, percentile: a.percentile, ..Default::default() };
    let mut pb: Option<(String, indicatif::ProgressBar)> = None;
    let (r, embedded) = audit_full(train.as_ref(), heldout.as_ref(), samples.as_ref(), &o, &device, &mut |stage, done, total| {
        if pb.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, b)) = pb.take() {
                b.finish_and_clear();
            }
            pb = Some((stage.to_string(), bar(total as u64, stage)));
        }
        if let Some((_, b)) = &pb {
            b.set_position(done as u64);
        }
    })?;
    if let Some((_, b)) = pb.take() {
        b.finish_and_clear();
    }
    // the command as a user types it: `limner` for the binary's path
    let command = std::iter::once("limner".to_string())
        .chain(std::env::args().skip(1).map(|s| if s.contains(' ') { format!("'{s}'") } else { s }))
        .collect::<Vec<_>>()
        .join(" ");
    let files = limner_audit::report::write_report(&a.out, &r, samples.as_ref(), train.as_ref(), &command)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    println!("{:<10} {:>10} {:>9} {:>22} {:>8} {:>9} {:>7}", "space", "threshold", "copies", "copy rate (95 % CI)", "C_T", "precision", "recall");
    for s in &r.spaces {
        println!(
            "{:<10} {:>10.4} {:>9} {:>22} {:>8.2} {:>9.3} {:>7.3}",
            s.space.name(),
            s.threshold,
            format!("{}/{}", s.copies, r.n_samples),
            format!("{:.2} % ({:.2}–{:.2})", 100.0 * s.copy_rate, 100.0 * s.copy_rate_ci.0, 100.0 * s.copy_rate_ci.1),
            s.data_copying.c_t,
            s.precision_recall.precision,
            s.precision_recall.recall
        );
    }
    println!("{}", limner_audit::report::verdict(&r).replace("**", ""));
    println!("report: {} (+ report.json, histograms.png, closest.png)", files.markdown.display());
    if let Some(p) = &a.index_out {
        let index = limner_audit::index::TrainingIndex::from_embedded(&embedded, &device)?;
        index.save(p)?;
        let th: Vec<String> = index.spaces.iter().map(|s| format!("{} {:.4}", s.space.name(), s.threshold)).collect();
        println!("training index: {} ({} images, {:.1} MB; thresholds {})", p.display(), index.labels.len(), std::fs::metadata(p)?.len() as f64 / 1e6, th.join(", "));
    }
    Ok(())
}
