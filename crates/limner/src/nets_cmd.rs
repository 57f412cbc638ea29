//! CLI glue for `limner models fetch` and `limner score` (argument structs and printing only;
//! the work is in `limner_models::fetch` and `limner_nets`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use limner_nets::fid::{fid_like, kid};
use limner_nets::inception::{resize, FEATURE_DIM, FEATURE_SIZE};
use limner_nets::InceptionV3;

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
    /// images per set (datasets and folders: evenly spaced; models: seeds 0..n)
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
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
    let fa = features_of(&net, &a.a, a.n, a.psi, &device)?;
    let fb = features_of(&net, &a.b, a.n, a.psi, &device)?;
    let fd = fid_like(&fa, &fb)?;
    // Subsets of the whole set would all be equal (zero spread): draw half-size subsets when n < 2000.
    let subset = 1000.min(fa.len().min(fb.len()) / 2).max(2);
    let k = kid(&fa, &fb, a.kid_subsets, subset, 0)?;
    println!("FID-like (InceptionV3 mixed5 pooled, {FEATURE_SIZE}px; not the published pool3 FID): {fd:.3}");
    println!("KID (mixed5 pooled, {} subsets of {}): {:.5} ± {:.5} (standard deviation over the subsets)", k.subsets, k.subset_size, k.mean, k.std);
    println!("images: {} vs {}", fa.len(), fb.len());
    Ok(())
}

/// Pooled mixed5 features of up to `n` images from a dataset, a folder or a model.
fn features_of(net: &InceptionV3, spec: &str, n: usize, psi: f32, device: &Device) -> Result<Vec<[f32; FEATURE_DIM]>> {
    let p = Path::new(spec);
    let pb = ProgressBar::new(n as u64);
    pb.set_style(ProgressStyle::with_template("{msg} {pos}/{len} [{bar:40}] {per_sec} eta {eta}").unwrap());
    pb.set_message(format!("features of {spec}"));
    let mut out = Vec::with_capacity(n);
    let mut push = |rgb: Vec<Vec<u8>>, res: usize| {
        // HWC RGB8 -> NCHW in [0, 1]
        let b = rgb.len();
        let data: Vec<f32> = rgb.iter().flat_map(|img| img.iter().map(|&v| v as f32 / 255.0)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [b, res, res, 3]), device).permute([0, 3, 1, 2]);
        out.extend(net.pooled_features(resize(x, FEATURE_SIZE)));
        pb.inc(b as u64);
    };
    if p.is_file() && p.extension().is_some_and(|e| e == "limner") {
        let ds = limner_data::PackedDataset::open(p)?;
        let take = n.min(ds.len());
        let idx: Vec<usize> = (0..take).map(|i| i * ds.len() / take.max(1)).collect();
        for chunk in idx.chunks(32) {
            push(chunk.iter().map(|&i| ds.image(i).to_vec()).collect(), ds.res() as usize);
        }
    } else if p.is_dir() && !p.join("generator.safetensors").exists() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| f.is_file()).collect();
        files.sort();
        let take = n.min(files.len());
        for i in 0..take {
            let f = &files[i * files.len() / take.max(1)];
            let (w, h, rgb) = limner_data::imageio::load_image_rgb(f, 64 << 20).with_context(|| format!("scoring {spec}"))?;
            if w != h {
                bail!("{} is {w}x{h}: score square images (pack them with `limner dataset build` first)", f.display());
            }
            push(vec![rgb], w as usize);
        }
    } else {
        let (g, _) = limner_models::load(Some(spec), device)?;
        out = generator_features(net, &g, n, psi, &mut |k| pb.inc(k as u64));
    }
    pb.finish_and_clear();
    if out.len() < 2 {
        bail!("{spec} gave {} image(s); the score needs at least 2", out.len());
    }
    Ok(out)
}

/// Pooled mixed5 features of the generator's images for seeds `0..n`.
pub fn generator_features(net: &InceptionV3, g: &limner_gan::Generator, n: usize, psi: f32, progress: &mut dyn FnMut(usize)) -> Vec<[f32; FEATURE_DIM]> {
    let device = g.mapping.w_avg.device();
    let res = g.config.img_resolution;
    let opts = limner_gan::generate::GenerateOptions { psi, noise: 1.0, batch: 16 };
    let seeds: Vec<u64> = (0..n as u64).collect();
    let mut out = Vec::with_capacity(n);
    for chunk in seeds.chunks(32) {
        let imgs = limner_gan::generate::generate_seeds(g, chunk, &opts);
        // NCHW in [-1, 1] -> [0, 1], clamped like the 8-bit images users see
        let x = Tensor::<4>::from_data(TensorData::new(imgs, [chunk.len(), 3, res, res]), &device);
        let x = x.add_scalar(1.0).mul_scalar(0.5).clamp(0.0, 1.0);
        out.extend(net.pooled_features(resize(x, FEATURE_SIZE)));
        progress(chunk.len());
    }
    out
}

/// The FID-like score during training: the dataset's features are computed once, the EMA
/// generator's (seeds 0..n, psi 1) at every scoring.
pub struct TrainScorer {
    net: InceptionV3,
    real: Vec<[f32; FEATURE_DIM]>,
    n: usize,
}

impl TrainScorer {
    pub fn new(data: &limner_data::PackedDataset, n: usize, device: &Device) -> Result<Self> {
        let net = InceptionV3::load_fetched(device)?;
        let take = n.min(data.len());
        anyhow::ensure!(take >= 2, "the dataset is too small to score");
        let idx: Vec<usize> = (0..take).map(|i| i * data.len() / take).collect();
        let res = data.res() as usize;
        let mut real = Vec::with_capacity(take);
        for chunk in idx.chunks(32) {
            let px: Vec<f32> = chunk.iter().flat_map(|&i| data.image(i).iter().map(|&v| v as f32 / 255.0)).collect();
            let x = Tensor::<4>::from_data(TensorData::new(px, [chunk.len(), res, res, 3]), device).permute([0, 3, 1, 2]);
            real.extend(net.pooled_features(resize(x, FEATURE_SIZE)));
        }
        Ok(Self { net, real, n: take })
    }

    pub fn score(&self, g: &limner_gan::Generator) -> Result<f64> {
        let fake = generator_features(&self.net, g, self.n, 1.0, &mut |_| {});
        fid_like(&self.real, &fake)
    }
}
