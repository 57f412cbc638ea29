//! Seeded faces: seed → z → w (truncated) → 1024² image → box-downsampled RGB8.
//!
//! Seeded exactly like limner's GAN path (`limner_gan::generate`): a seed's latent is 512
//! standard normals from ChaCha8 seeded with the seed ([`latent_for_seed`]), and its per-pixel
//! noise comes from the same seed's second ChaCha8 stream ([`noise_rng_for_seed`]), one map per
//! noise layer in [`Synthesis::noise_resolutions`](crate::Synthesis::noise_resolutions) order,
//! scaled by that layer's strength (the RMS of the noise baked into the IR) times `noise`.
//! Every face is computed on its own, so an image depends only on its seed and the settings,
//! never on which other seeds were asked for.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use burn::tensor::Tensor;
use limner_data::imageio::{nchw_to_rgb8, save_png_rgb};
use limner_core::{latent_for_seed, noise_rng_for_seed, randn_host, tensor_from, to_vec};

use crate::model::{Noise, W_DIM};
use crate::MobileStyleGan;

/// The size random-face synthesises (1024²); smaller sizes are box-downsampled from it.
pub const NATIVE_SIZE: usize = 1024;

/// Checks an output size: a power of two from 8 to [`NATIVE_SIZE`].
pub fn check_size(size: usize) -> Result<()> {
    ensure!(
        size.is_power_of_two() && (8..=NATIVE_SIZE).contains(&size),
        "size {size} is not supported: random-face makes {NATIVE_SIZE}px faces, box-downsampled by a power of two (1024, 512, 256, 128, 64, 32, 16 or 8)"
    );
    Ok(())
}

/// One face at [`NATIVE_SIZE`], CHW floats in about [-1, 1].
pub fn face_f32(g: &MobileStyleGan, seed: u64, psi: f32, noise: f32, strengths: &[f32]) -> Vec<f32> {
    let device = g.w_avg().device();
    let z = tensor_from(latent_for_seed(seed, W_DIM), [1, W_DIM], &device);
    let w = g.truncate(g.map(z), psi);
    face_from_ws(g, g.broadcast_w(w), seed, noise, strengths)
}

/// The truncated w (`[512]`) of a seed, as [`face_f32`] computes it.
pub fn w_for_seed(g: &MobileStyleGan, seed: u64, psi: f32) -> Vec<f32> {
    let device = g.w_avg().device();
    let z = tensor_from(latent_for_seed(seed, W_DIM), [1, W_DIM], &device);
    to_vec(&g.truncate(g.map(z), psi))
}

/// One face at [`NATIVE_SIZE`] from given styles (`ws [1, num_ws, 512]`) with the seed's
/// per-pixel noise: CHW floats in about [-1, 1]. With `ws` = the seed's broadcast w this is
/// [`face_f32`]; steering passes moved ws.
pub fn face_from_ws(g: &MobileStyleGan, ws: Tensor<3>, seed: u64, noise: f32, strengths: &[f32]) -> Vec<f32> {
    let device = g.w_avg().device();
    let img = if noise == 0.0 {
        g.synthesize(ws, Noise::Zero)
    } else {
        let mut rng = noise_rng_for_seed(seed);
        let maps: Vec<Tensor<4>> = g
            .synthesis
            .noise_resolutions()
            .into_iter()
            .zip(strengths)
            .map(|(r, &s)| {
                let v: Vec<f32> = randn_host(&mut rng, r * r).into_iter().map(|x| x * s * noise).collect();
                tensor_from(v, [1, 1, r, r], &device)
            })
            .collect();
        g.synthesize(ws, Noise::Maps(&maps))
    };
    to_vec(&img)
}

/// Box-downsamples CHW float planes from `size_in`² to `size_out`² (`size_in / size_out` must be a
/// whole number): each output pixel is the mean of its `f × f` block, summed in f64.
pub fn box_downsample(chw: &[f32], channels: usize, size_in: usize, size_out: usize) -> Vec<f32> {
    assert!(size_out > 0 && size_in.is_multiple_of(size_out), "box_downsample: {size_in} is not a multiple of {size_out}");
    assert_eq!(chw.len(), channels * size_in * size_in, "box_downsample: not {channels}x{size_in}x{size_in}");
    let f = size_in / size_out;
    if f == 1 {
        return chw.to_vec();
    }
    let inv = 1.0 / (f * f) as f64;
    let mut out = vec![0f32; channels * size_out * size_out];
    for c in 0..channels {
        let src = &chw[c * size_in * size_in..(c + 1) * size_in * size_in];
        let dst = &mut out[c * size_out * size_out..(c + 1) * size_out * size_out];
        let mut acc = vec![0f64; size_out];
        for oy in 0..size_out {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for y in oy * f..(oy + 1) * f {
                let row = &src[y * size_in..(y + 1) * size_in];
                for (a, block) in acc.iter_mut().zip(row.chunks_exact(f)) {
                    *a += block.iter().map(|&v| v as f64).sum::<f64>();
                }
            }
            for (d, a) in dst[oy * size_out..(oy + 1) * size_out].iter_mut().zip(&acc) {
                *d = (a * inv) as f32;
            }
        }
    }
    out
}

/// Faces for `seeds` at `size`² (see [`check_size`]), HWC RGB8 (`size * size * 3` bytes each).
/// `psi` is the truncation (1 = full variety), `noise` scales the per-pixel noise (0 = none).
/// `progress` is called after each face.
pub fn generate_seeds_with_progress(
    g: &MobileStyleGan,
    seeds: &[u64],
    psi: f32,
    noise: f32,
    size: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<u8>>> {
    check_size(size)?;
    ensure!(psi.is_finite() && noise.is_finite(), "psi and noise must be finite numbers");
    let strengths = g.synthesis.noise_strengths();
    let mut out = Vec::with_capacity(seeds.len());
    for (i, &seed) in seeds.iter().enumerate() {
        let img = face_f32(g, seed, psi, noise, &strengths);
        let small = box_downsample(&img, 3, NATIVE_SIZE, size);
        out.push(nchw_to_rgb8(&small, 1, size, size).pop().expect("one image"));
        progress(i + 1);
    }
    Ok(out)
}

/// [`generate_seeds_with_progress`] without the callback.
pub fn generate_seeds(g: &MobileStyleGan, seeds: &[u64], psi: f32, noise: f32, size: usize) -> Result<Vec<Vec<u8>>> {
    generate_seeds_with_progress(g, seeds, psi, noise, size, &mut |_| {})
}

/// The file `limner generate` writes for a seed: `seedNNNN.png`.
pub fn seed_file_name(seed: u64) -> String {
    format!("seed{seed:04}.png")
}

/// Writes already generated faces as `dir/seedNNNN.png` (atomically); returns the paths.
pub fn save_seeds(dir: &Path, seeds: &[u64], rgb: &[Vec<u8>], size: usize) -> Result<Vec<PathBuf>> {
    ensure!(seeds.len() == rgb.len(), "{} seeds but {} images", seeds.len(), rgb.len());
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut paths = Vec::with_capacity(seeds.len());
    for (&s, px) in seeds.iter().zip(rgb) {
        let p = dir.join(seed_file_name(s));
        save_png_rgb(&p, size as u32, size as u32, px)?;
        paths.push(p);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_downsample_averages_blocks() {
        // 1 channel, 4x4 -> 2x2
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let y = box_downsample(&x, 1, 4, 2);
        assert_eq!(y, vec![2.5, 4.5, 10.5, 12.5]);
        // 2 channels, constant planes stay constant; 4x4 -> 1x1
        let x: Vec<f32> = [vec![0.25f32; 16], vec![-1.0f32; 16]].concat();
        assert_eq!(box_downsample(&x, 2, 4, 1), vec![0.25, -1.0]);
        assert_eq!(box_downsample(&x, 2, 4, 4), x);
    }

    #[test]
    fn sizes() {
        for s in [8, 64, 256, 512, 1024] {
            check_size(s).unwrap();
        }
        for s in [0, 4, 100, 2048] {
            assert!(check_size(s).is_err(), "{s}");
        }
    }
}
