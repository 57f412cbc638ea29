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
    let mut set = SetStats::default();
    set.add_rgb8(net, rgb, res, device);
    set.features
}

/// What `limner score` measures of an image set, image by image, on the images as InceptionV3
/// sees them (resized to [`FEATURE_SIZE`]): pooled features and sharpness.
#[derive(Default)]
pub struct SetStats {
    pub features: Vec<Features>,
    /// [`laplacian_energy`] of each image at [`FEATURE_SIZE`]
    pub sharpness: Vec<f32>,
}

impl SetStats {
    /// Adds a batch `[N, 3, R, R]` in [0, 1].
    fn add(&mut self, net: &InceptionV3, x: Tensor<4>) {
        let x = resize(x, FEATURE_SIZE); // [N, 3, 128, 128]
        self.sharpness.extend(laplacian_energy(&x));
        self.features.extend(net.pooled_features(x));
    }

    fn add_rgb8(&mut self, net: &InceptionV3, rgb: &[&[u8]], res: usize, device: &Device) {
        let data: Vec<f32> = rgb.iter().flat_map(|img| img.iter().map(|&v| v as f32 / 255.0)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [rgb.len(), res, res, 3]), device).permute([0, 3, 1, 2]); // [N, 3, R, R] in [0, 1]
        self.add(net, x);
    }

    /// Mean sharpness of the set.
    pub fn mean_sharpness(&self) -> f64 {
        self.sharpness.iter().map(|&v| v as f64).sum::<f64>() / self.sharpness.len().max(1) as f64
    }
}

/// Sharpness of each image of `x [N, C, S, S]` (values in [0, 1]): the mean squared 5-point
/// Laplacian (`4 p - up - down - left - right`) of its grey level (the mean of the channels)
/// over the interior pixels. Blur lowers it; a set's mean relative to another's at the same
/// size says how much sharper or softer it is (1.0 = as sharp).
pub fn laplacian_energy(x: &Tensor<4>) -> Vec<f32> {
    let [n, c, h, w] = x.dims();
    let v: Vec<f32> = x.clone().into_data().try_into_vec_as::<f32>().expect("f32 image data");
    (0..n)
        .map(|i| {
            let img = &v[i * c * h * w..(i + 1) * c * h * w];
            let g: Vec<f32> = (0..h * w).map(|p| (0..c).map(|ch| img[ch * h * w + p]).sum::<f32>() / c as f32).collect();
            let grey = |y: usize, xx: usize| g[y * w + xx];
            let mut sum = 0.0f64;
            for y in 1..h.saturating_sub(1) {
                for xx in 1..w.saturating_sub(1) {
                    let l = 4.0 * grey(y, xx) - grey(y - 1, xx) - grey(y + 1, xx) - grey(y, xx - 1) - grey(y, xx + 1);
                    sum += (l as f64) * (l as f64);
                }
            }
            let count = (h.saturating_sub(2) * w.saturating_sub(2)).max(1);
            (sum / count as f64) as f32
        })
        .collect()
}

/// Features of `n` images evenly spaced over a packed dataset (all of them when it has fewer).
pub fn dataset_features(net: &InceptionV3, data: &limner_data::PackedDataset, n: usize, device: &Device, progress: &mut dyn FnMut(usize)) -> Vec<Features> {
    dataset_stats(net, data, n, device, progress).features
}

fn dataset_stats(net: &InceptionV3, data: &limner_data::PackedDataset, n: usize, device: &Device, progress: &mut dyn FnMut(usize)) -> SetStats {
    let take = n.min(data.len());
    let idx: Vec<usize> = (0..take).map(|i| i * data.len() / take.max(1)).collect();
    let mut set = SetStats::default();
    for chunk in idx.chunks(32) {
        let imgs: Vec<&[u8]> = chunk.iter().map(|&i| data.image(i)).collect();
        set.add_rgb8(net, &imgs, data.res() as usize, device);
        progress(chunk.len());
    }
    set
}

/// Features of the generator's images for seeds `first_seed..first_seed + n` at truncation `psi`
/// (pick seeds the model never trained on: a distilled model's training seeds are its
/// `dataset distill` range).
pub fn generator_features(net: &InceptionV3, g: &limner_gan::Generator, first_seed: u64, n: usize, psi: f32, progress: &mut dyn FnMut(usize)) -> Vec<Features> {
    generator_stats(net, g, first_seed, n, psi, progress).features
}

fn generator_stats(net: &InceptionV3, g: &limner_gan::Generator, first_seed: u64, n: usize, psi: f32, progress: &mut dyn FnMut(usize)) -> SetStats {
    let device = g.mapping.w_avg.device();
    let res = g.config.img_resolution;
    let opts = limner_gan::generate::GenerateOptions { psi, noise: 1.0, batch: 16 };
    let seeds: Vec<u64> = (first_seed..first_seed.saturating_add(n as u64)).collect();
    let mut set = SetStats::default();
    for chunk in seeds.chunks(32) {
        let imgs = limner_gan::generate::generate_seeds(g, chunk, &opts);
        // NCHW in [-1, 1] -> [0, 1], clamped like the 8-bit images users see
        let x = Tensor::<4>::from_data(TensorData::new(imgs, [chunk.len(), 3, res, res]), &device);
        set.add(net, x.add_scalar(1.0).mul_scalar(0.5).clamp(0.0, 1.0));
        progress(chunk.len());
    }
    set
}

/// Features of up to `n` images of an image set named as `limner score` takes it: a packed
/// dataset (`.limner`), a folder of square images (evenly spaced over the sorted names), or a
/// model (`default`, a run folder, a `.safetensors`; seeds `first_seed..first_seed + n` at `psi`).
/// At least 2 images.
pub fn features_of(net: &InceptionV3, spec: &str, n: usize, psi: f32, first_seed: u64, device: &Device, progress: &mut dyn FnMut(usize)) -> Result<Vec<Features>> {
    Ok(stats_of(net, spec, n, psi, first_seed, device, progress)?.features)
}

/// As [`features_of`], with each image's sharpness beside its features.
pub fn stats_of(net: &InceptionV3, spec: &str, n: usize, psi: f32, first_seed: u64, device: &Device, progress: &mut dyn FnMut(usize)) -> Result<SetStats> {
    let p = Path::new(spec);
    let out = if p.is_file() && p.extension().is_some_and(|e| e == "limner") {
        dataset_stats(net, &limner_data::PackedDataset::open(p)?, n, device, progress)
    } else if p.is_dir() && !p.join("generator.safetensors").exists() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("cannot read folder {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file())
            .collect();
        files.sort();
        let take = n.min(files.len());
        let mut out = SetStats::default();
        for i in 0..take {
            let f = &files[i * files.len() / take.max(1)];
            let (w, h, rgb) = limner_data::imageio::load_image_rgb(f, 64 << 20).with_context(|| format!("scoring {spec}"))?;
            if w != h {
                bail!("{} is {w}x{h}: score square images (pack them with `limner dataset build` first)", f.display());
            }
            out.add_rgb8(net, &[&rgb], w as usize, device);
            progress(1);
        }
        out
    } else {
        let (g, _) = limner_models::load(Some(spec), device)?;
        generator_stats(net, &g, first_seed, n, psi, progress)
    };
    if out.features.len() < 2 {
        bail!("{spec} gave {} image(s); the score needs at least 2", out.features.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laplacian_energy_is_zero_on_flat_and_ramps_and_falls_with_blur() {
        let device = Device::flex();
        let s = 16;
        // image 0: flat grey; image 1: a linear ramp (Laplacian 0); image 2: a checkerboard; image 3: it blurred
        let mut v = vec![0.0f32; 4 * 3 * s * s];
        let checker = |y: usize, x: usize| ((x + y) % 2) as f32;
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let at = |i: usize| ((i * 3 + c) * s + y) * s + x;
                    v[at(0)] = 0.5;
                    v[at(1)] = x as f32 / s as f32;
                    v[at(2)] = checker(y, x);
                    // a 3-tap box blur of the checkerboard along x
                    let l = checker(y, x.saturating_sub(1));
                    let r = checker(y, (x + 1).min(s - 1));
                    v[at(3)] = (l + checker(y, x) + r) / 3.0;
                }
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(v, [4, 3, s, s]), &device);
        let e = laplacian_energy(&x);
        assert!(e[0].abs() < 1e-9 && e[1].abs() < 1e-9, "{e:?}");
        assert!((e[2] - 16.0).abs() < 1e-3, "checkerboard: the Laplacian is ±4 at every pixel, so its energy is 16: {e:?}");
        assert!(e[3] < e[2] / 4.0, "blur must lower the energy a lot: {e:?}");
    }
}
