//! 64-bit DCT perceptual hash, for near-duplicate detection.

use std::f32::consts::PI;

use image::imageops::{self, FilterType};
use image::RgbImage;

const SIZE: usize = 32;
const LOW: usize = 8;

/// pHash: the 8x8 lowest frequencies of the DCT of a 32x32 grey thumbnail, one bit
/// per coefficient, set when it is above the median of the AC coefficients.
/// Similar pictures have hashes a small Hamming distance apart.
pub(crate) fn phash(img: &RgbImage) -> u64 {
    let grey = imageops::grayscale(img);
    let thumb = imageops::resize(&grey, SIZE as u32, SIZE as u32, FilterType::Triangle);
    let px: Vec<f32> = thumb.pixels().map(|p| f32::from(p[0])).collect();

    let mut cos = [[0f32; SIZE]; LOW];
    for (u, row) in cos.iter_mut().enumerate() {
        for (x, c) in row.iter_mut().enumerate() {
            *c = ((2 * x + 1) as f32 * u as f32 * PI / (2 * SIZE) as f32).cos();
        }
    }
    // Separable 2-D DCT-II, low frequencies only: rows first, then columns.
    let mut rows = [[0f32; LOW]; SIZE];
    for (y, row) in rows.iter_mut().enumerate() {
        for (u, r) in row.iter_mut().enumerate() {
            *r = (0..SIZE).map(|x| px[y * SIZE + x] * cos[u][x]).sum();
        }
    }
    let mut coefs = [0f32; LOW * LOW];
    for v in 0..LOW {
        for u in 0..LOW {
            coefs[v * LOW + u] = (0..SIZE).map(|y| cos[v][y] * rows[y][u]).sum();
        }
    }

    let mut ac = coefs[1..].to_vec();
    ac.sort_by(f32::total_cmp);
    let median = ac[ac.len() / 2];
    coefs
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > median)
        .fold(0u64, |hash, (i, _)| hash | 1 << i)
}
