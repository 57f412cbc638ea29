//! CLI glue for the photoreal random-face model's `limner dataset distill` (generation goes
//! through `limner_edit` like every model's) (argument structs, progress bars and printing only; the work is in
//! `limner_photoreal`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use limner_core::progress::bar;
use limner_photoreal::{faces, DistillOptions, MODEL_NAME};

/// `limner dataset distill`
#[derive(Args)]
pub struct DistillArgs {
    /// the teacher model (only `random-face` for now; fetch it with `limner models fetch --only random-face`)
    #[arg(long, default_value = "random-face")]
    pub model: String,
    /// number of images (seeds SEED_START .. SEED_START + COUNT)
    #[arg(long)]
    pub count: u64,
    /// output size: 1024 box-downsampled to this power of two
    #[arg(long, default_value_t = 128)]
    pub res: usize,
    /// truncation psi: 1 = full variety, 0 = the average face
    #[arg(long, default_value_t = 0.9)]
    pub psi: f32,
    /// per-pixel noise scale (0 = none)
    #[arg(long, default_value_t = 1.0)]
    pub noise: f32,
    #[arg(long, default_value_t = 0)]
    pub seed_start: u64,
    /// output folder (PNGs + manifest.json); rerun the same command to resume
    #[arg(long)]
    pub out: PathBuf,
}

pub fn distill(a: DistillArgs) -> Result<()> {
    if a.model != MODEL_NAME {
        bail!("dataset distill supports --model {MODEL_NAME} only (got `{}`)", a.model);
    }
    faces::check_size(a.res)?;
    let g = limner_models::load_random_face(&Device::flex())?;
    let o = DistillOptions { out: a.out.clone(), count: a.count, res: a.res, psi: a.psi, noise: a.noise, seed_start: a.seed_start };
    let pb = bar(a.count, "distilling random-face");
    let report = limner_photoreal::distill(&g, &o, &mut |done, _| pb.set_position(done));
    pb.finish_and_clear();
    let report = report.with_context(|| format!("distilling into {}", a.out.display()))?;
    println!(
        "{} images in {} ({} written, {} already there), {}px, psi {}; manifest {}",
        report.written + report.skipped,
        a.out.display(),
        report.written,
        report.skipped,
        a.res,
        a.psi,
        report.manifest.display()
    );
    println!("licence: {}", limner_photoreal::LICENCE);
    Ok(())
}
