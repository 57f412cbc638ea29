//! CLI glue for `limner models fetch` and `limner score` (argument structs and printing only;
//! the work is in `limner_models::fetch` and `limner_nets`).

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use limner_core::progress::bar;
use limner_nets::features::stats_of;
use limner_nets::fid::{fid_like, kid};
use limner_nets::{InceptionV3, FEATURE_SIZE};

/// `limner models fetch`
#[derive(Args)]
pub struct FetchArgs {
    /// fetch only this source (e.g. inception-v3); default: every source
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,
    /// import tarballs/wheels downloaded earlier from this folder instead of downloading (offline)
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// convert again even if the cache is up to date
    #[arg(long)]
    pub force: bool,
}

pub fn models_fetch(a: FetchArgs) -> Result<()> {
    let opts = limner_models::fetch::FetchOptions { only: a.only, from: a.from, force: a.force };
    let done = limner_models::fetch::fetch(&opts, &mut |line| println!("{line}"))?;
    println!("{} source(s) ready in {}", done.len(), limner_models::fetch::nets_dir().display());
    Ok(())
}

/// `limner score A B`: the FID-like score and KID between two image sets.
#[derive(Args)]
pub struct ScoreArgs {
    /// first set: a packed dataset (.limner), a folder of images, or a model (`default`, a run folder, a .safetensors)
    pub a: String,
    /// second set, as the first
    pub b: String,
    /// images per set (datasets and folders: evenly spaced; models: seeds FIRST_SEED..FIRST_SEED+n)
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// first seed of the images drawn from a model: score on seeds it never trained on (the
    /// default model's distillation seeds are 0–9610, so its card scores from 100000)
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// truncation for sets generated from a model
    #[arg(long, default_value_t = 1.0)]
    pub psi: f32,
    /// KID subsets (of min(1000, n/2) images each, so that subsets differ and the spread means something)
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
}

pub fn score(a: ScoreArgs) -> Result<()> {
    let device = Device::flex();
    let net = InceptionV3::load_fetched(&device)?;
    let features = |spec: &str| {
        let pb = bar(a.n as u64, &format!("features of {spec}"));
        let f = stats_of(&net, spec, a.n, a.psi, a.first_seed, &device, &mut |k| pb.inc(k as u64));
        pb.finish_and_clear();
        f
    };
    let (sa, sb) = (features(&a.a)?, features(&a.b)?);
    let (fa, fb) = (&sa.features, &sb.features);
    let fd = fid_like(fa, fb)?;
    // Subsets of the whole set would all be equal (zero spread): draw half-size subsets when n < 2000.
    let subset = 1000.min(fa.len().min(fb.len()) / 2).max(2);
    let k = kid(fa, fb, a.kid_subsets, subset, 0)?;
    println!("FID-like (InceptionV3 mixed5 pooled, {FEATURE_SIZE}px; not the published pool3 FID): {fd:.3}");
    println!("KID (mixed5 pooled, {} subsets of {}): {:.5} ± {:.5} (standard deviation over the subsets)", k.subsets, k.subset_size, k.mean, k.std);
    let (ha, hb) = (sa.mean_sharpness(), sb.mean_sharpness());
    println!(
        "sharpness (mean Laplacian energy at {FEATURE_SIZE}px, first set / second): {:.3} ({ha:.5} vs {hb:.5})",
        ha / hb.max(1e-12)
    );
    println!("images: {} vs {}", fa.len(), fb.len());
    Ok(())
}

/// `limner nsfw FILE...`: nsfwjs' classifier on pictures.
#[derive(Args)]
pub struct NsfwArgs {
    /// pictures (JPEG, PNG or WebP)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// one JSON object a line instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn nsfw(a: NsfwArgs) -> Result<()> {
    use limner_nets::nsfw::{NsfwClassifier, CLASSES};
    let net = NsfwClassifier::load_fetched(&Device::flex())?;
    for f in &a.files {
        let (w, h, rgb) = limner_data::imageio::load_image_rgb(f, 36_000_000)?;
        let t = std::time::Instant::now();
        let s = net.classify_rgb8(w as usize, h as usize, &rgb)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if a.json {
            let probs: serde_json::Map<String, serde_json::Value> = CLASSES.iter().zip(s.probs).map(|(c, p)| (c.to_string(), serde_json::json!(p))).collect();
            println!("{}", serde_json::json!({"file": f.display().to_string(), "probabilities": probs, "explicit": s.explicit(), "top": s.top().0, "ms": ms}));
        } else {
            let probs: Vec<String> = CLASSES.iter().zip(s.probs).map(|(c, p)| format!("{c} {p:.3}")).collect();
            println!("{}: {} · explicit (Porn+Hentai+Sexy) {:.3} · top {} ({ms:.0} ms)", f.display(), probs.join(", "), s.explicit(), s.top().0);
        }
    }
    Ok(())
}
