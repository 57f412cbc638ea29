//! Pooled `mixed5` InceptionV3 features of image sets, as the FID-like score and KID compare
//! them ([`crate::fid`]): of a packed dataset, a folder of images, a generator's seeds, or a
//! model by name; and [`TrainScorer`], the FID-like score a training run tracks.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};

use crate::fid::fid_like;
use crate::inception::{resize, InceptionV3, FEATURE_DIM, FEATURE_SIZE};

/// One image's pooled `mixed5` features.
pub type Features = [f32; FEATURE_DIM];

/// Features of square 8-bit RGB images (HWC, `res * res * 3` bytes each).
pub fn rgb8_features(net: &InceptionV3, rgb: &[&[u8]], res: usize, device: &Device) -> Vec<Features> {
    let data: Vec<f32> = rgb.iter().flat_map(|img| img.iter().map(|&v| v as f32 / 255.0)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [rgb.len(), res, res, 3]), device).permute([0, 3, 1, 2]); // [N, 3, R, R] in [0, 1]
    net.pooled_features(resize(x, FEATURE_SIZE))
}

/// Features of `n` images evenly spaced over a packed dataset (all of them when it has fewer).
pub fn dataset_features(net: &InceptionV3, data: &limner_data::PackedDataset, n: usize, device: &Device, progress: &mut dyn FnMut(usize)) -> Vec<Features> {
    let take = n.min(data.len());
    let idx: Vec<usize> = (0..take).map(|i| i * data.len() / take.max(1)).collect();
    let mut out = Vec::with_capacity(take);
    for chunk in idx.chunks(32) {
        let imgs: Vec<&[u8]> = chunk.iter().map(|&i| data.image(i)).collect();
        out.extend(rgb8_features(net, &imgs, data.res() as usize, device));
        progress(chunk.len());
    }
    out
}

/// Features of the generator's images for seeds `first_seed..first_seed + n` at truncation `psi`
/// (pick seeds the model never trained on: a distilled model's training seeds are its
/// `dataset distill` range).
pub fn generator_features(net: &InceptionV3, g: &limner_gan::Generator, first_seed: u64, n: usize, psi: f32, progress: &mut dyn FnMut(usize)) -> Vec<Features> {
    let device = g.mapping.w_avg.device();
    let res = g.config.img_resolution;
    let opts = limner_gan::generate::GenerateOptions { psi, noise: 1.0, batch: 16 };
    let seeds: Vec<u64> = (first_seed..first_seed.saturating_add(n as u64)).collect();
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

/// Features of up to `n` images of an image set named as `limner score` takes it: a packed
/// dataset (`.limner`), a folder of square images (evenly spaced over the sorted names), or a
/// model (`default`, a run folder, a `.safetensors`; seeds `first_seed..first_seed + n` at `psi`).
/// At least 2 images.
pub fn features_of(net: &InceptionV3, spec: &str, n: usize, psi: f32, first_seed: u64, device: &Device, progress: &mut dyn FnMut(usize)) -> Result<Vec<Features>> {
    let p = Path::new(spec);
    let out = if p.is_file() && p.extension().is_some_and(|e| e == "limner") {
        dataset_features(net, &limner_data::PackedDataset::open(p)?, n, device, progress)
    } else if p.is_dir() && !p.join("generator.safetensors").exists() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("cannot read folder {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file())
            .collect();
        files.sort();
        let take = n.min(files.len());
        let mut out = Vec::with_capacity(take);
        for i in 0..take {
            let f = &files[i * files.len() / take.max(1)];
            let (w, h, rgb) = limner_data::imageio::load_image_rgb(f, 64 << 20).with_context(|| format!("scoring {spec}"))?;
            if w != h {
                bail!("{} is {w}x{h}: score square images (pack them with `limner dataset build` first)", f.display());
            }
            out.extend(rgb8_features(net, &[&rgb], w as usize, device));
            progress(1);
        }
        out
    } else {
        let (g, _) = limner_models::load(Some(spec), device)?;
        generator_features(net, &g, first_seed, n, psi, progress)
    };
    if out.len() < 2 {
        bail!("{spec} gave {} image(s); the score needs at least 2", out.len());
    }
    Ok(out)
}

/// The FID-like score during training: the dataset's features are computed once, the EMA
/// generator's (seeds 0..n, psi 1) at every scoring.
pub struct TrainScorer {
    net: InceptionV3,
    real: Vec<Features>,
    n: usize,
}

impl TrainScorer {
    /// Loads the fetched InceptionV3 and computes the features of `n` images of `data`.
    pub fn new(data: &limner_data::PackedDataset, n: usize, device: &Device) -> Result<Self> {
        let net = InceptionV3::load_fetched(device)?;
        let real = dataset_features(&net, data, n, device, &mut |_| {});
        anyhow::ensure!(real.len() >= 2, "the dataset is too small to score");
        let n = real.len();
        Ok(Self { net, real, n })
    }

    /// The FID-like score of `g` against the dataset (lower is better).
    pub fn score(&self, g: &limner_gan::Generator) -> Result<f64> {
        let fake = generator_features(&self.net, g, 0, self.n, 1.0, &mut |_| {});
        fid_like(&self.real, &fake)
    }
}
