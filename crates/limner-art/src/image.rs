//! The float RGB images style transfer works on: loading (through limner-data's safe decoder),
//! resizing, cropping, reflect padding, colour transfer, and 8-bit PNG output.

use std::path::Path;

use anyhow::{bail, Result};
use image::imageops::{self, FilterType};
use image::{ImageBuffer, Rgb};

/// Images declaring more pixels than this are refused before decoding (limner-data's guard).
pub const MAX_PIXELS: u64 = limner_data::imageio::DEFAULT_MAX_PIXELS;

/// An RGB image, HWC, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub w: usize,
    pub h: usize,
    /// `h * w * 3` values, row by row, RGB interleaved.
    pub data: Vec<f32>,
}

type Rgb32 = ImageBuffer<Rgb<f32>, Vec<f32>>;

impl Image {
    /// Loads a PNG/JPEG/WebP file (EXIF rotation applied, alpha over white). Files that are not
    /// images, truncated files and images declaring more than [`MAX_PIXELS`] are errors that name
    /// the file.
    pub fn load(path: &Path) -> Result<Self> {
        let (w, h, rgb) = limner_data::imageio::load_image_rgb(path, MAX_PIXELS)?;
        Ok(Self::from_rgb8(w as usize, h as usize, &rgb))
    }

    /// From 8-bit RGB (HWC).
    pub fn from_rgb8(w: usize, h: usize, rgb: &[u8]) -> Self {
        assert_eq!(rgb.len(), w * h * 3, "from_rgb8: not a {w}x{h} RGB buffer");
        Self { w, h, data: rgb.iter().map(|&v| v as f32 / 255.0).collect() }
    }

    /// To 8-bit RGB (HWC), rounding and clamping (NaN becomes 0).
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
    }

    /// Writes the image as a PNG, atomically.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        limner_data::imageio::save_png_rgb(path, self.w as u32, self.h as u32, &self.to_rgb8())
    }

    fn to_buffer(&self) -> Rgb32 {
        Rgb32::from_raw(self.w as u32, self.h as u32, self.data.clone()).expect("image buffer size")
    }

    fn from_buffer(b: Rgb32) -> Self {
        let (w, h) = (b.width() as usize, b.height() as usize);
        let mut data = b.into_raw();
        // Lanczos rings past the ends of the range
        data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        Self { w, h, data }
    }

    /// Resized to `w`×`h` (Lanczos-3 with its support scaled when shrinking, so it also
    /// anti-aliases), clamped to [0, 1]. The same size returns a copy.
    pub fn resize(&self, w: usize, h: usize) -> Self {
        if (w, h) == (self.w, self.h) {
            return self.clone();
        }
        Self::from_buffer(imageops::resize(&self.to_buffer(), w as u32, h as u32, FilterType::Lanczos3))
    }

    /// Resized so that the longer side is `side` pixels (aspect ratio kept, each side ≥ 1).
    pub fn fit_longer_side(&self, side: usize) -> Self {
        let (w, h) = fit_size(self.w, self.h, side);
        self.resize(w, h)
    }

    /// The centred square crop (side = the shorter side).
    pub fn center_square(&self) -> Self {
        let s = self.w.min(self.h);
        self.crop((self.w - s) / 2, (self.h - s) / 2, s, s)
    }

    /// The `w`×`h` window at (`x0`, `y0`). Panics if it does not fit.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Self {
        assert!(x0 + w <= self.w && y0 + h <= self.h, "crop outside the image");
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            let row = (y * self.w + x0) * 3;
            data.extend_from_slice(&self.data[row..row + w * 3]);
        }
        Self { w, h, data }
    }

    /// Padded on the right and bottom by mirroring (numpy's `reflect`: the edge pixel is not
    /// repeated) to `w`×`h`. Needs `w - self.w < self.w` and likewise for the height.
    pub fn reflect_pad(&self, w: usize, h: usize) -> Self {
        assert!(w >= self.w && h >= self.h && w - self.w < self.w.max(2) && h - self.h < self.h.max(2), "reflect_pad: {}x{} to {w}x{h}", self.w, self.h);
        let mirror = |i: usize, n: usize| if i < n { i } else { (2 * (n - 1)).saturating_sub(i) };
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let sy = mirror(y, self.h);
            for x in 0..w {
                let p = (sy * self.w + mirror(x, self.w)) * 3;
                data.extend_from_slice(&self.data[p..p + 3]);
            }
        }
        Self { w, h, data }
    }

    /// NCHW planes (`3 * h * w`).
    pub fn to_planes(&self) -> Vec<f32> {
        let n = self.w * self.h;
        let mut out = vec![0.0; 3 * n];
        for (p, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * n + p] = px[c];
            }
        }
        out
    }

    /// From NCHW planes (`3 * h * w`).
    pub fn from_planes(w: usize, h: usize, planes: &[f32]) -> Self {
        let n = w * h;
        assert_eq!(planes.len(), 3 * n, "from_planes: not 3x{h}x{w}");
        let mut data = vec![0.0; 3 * n];
        for p in 0..n {
            for c in 0..3 {
                data[p * 3 + c] = planes[c * n + p];
            }
        }
        Self { w, h, data }
    }

    /// `a · (1 − t) + b · t`, pixel by pixel (same sizes).
    pub fn lerp(a: &Image, b: &Image, t: f32) -> Self {
        assert_eq!((a.w, a.h), (b.w, b.h), "lerp: sizes differ");
        Self { w: a.w, h: a.h, data: a.data.iter().zip(&b.data).map(|(x, y)| x + (y - x) * t).collect() }
    }

    /// The luminance of `self` with the chroma of `colours` (resized to this size): the
    /// "preserve colour" of style transfer (Gatys et al. 2016, luminance-only transfer), in full
    /// range BT.601 YCbCr (JPEG's; what PIL's `YCbCr` mode uses).
    pub fn with_colours_of(&self, colours: &Image) -> Self {
        let colours = colours.resize(self.w, self.h);
        let mut data = Vec::with_capacity(self.data.len());
        for (s, c) in self.data.chunks_exact(3).zip(colours.data.chunks_exact(3)) {
            let y = 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2];
            let cb = -0.168_736 * c[0] - 0.331_264 * c[1] + 0.5 * c[2];
            let cr = 0.5 * c[0] - 0.418_688 * c[1] - 0.081_312 * c[2];
            data.push((y + 1.402 * cr).clamp(0.0, 1.0));
            data.push((y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, 1.0));
            data.push((y + 1.772 * cb).clamp(0.0, 1.0));
        }
        Self { w: self.w, h: self.h, data }
    }

    /// Mean absolute difference per value (same sizes).
    pub fn mean_abs_diff(&self, other: &Image) -> f32 {
        assert_eq!((self.w, self.h), (other.w, other.h), "mean_abs_diff: sizes differ");
        self.data.iter().zip(&other.data).map(|(a, b)| (a - b).abs()).sum::<f32>() / self.data.len().max(1) as f32
    }
}

/// `w`×`h` scaled so the longer side is `side` (each side at least 1).
pub fn fit_size(w: usize, h: usize, side: usize) -> (usize, usize) {
    let s = side as f64 / w.max(h) as f64;
    (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
}

/// Checks that both sides are at least `min` pixels.
pub fn check_min_side(img: &Image, min: usize, what: &str) -> Result<()> {
    if img.w < min || img.h < min {
        bail!("the {what} is too small ({}x{}): both sides need at least {min} px", img.w, img.h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        let data = (0..w * h * 3).map(|i| (i % 251) as f32 / 250.0).collect();
        Image { w, h, data }
    }

    #[test]
    fn planes_round_trip_and_reflect_pad() {
        let a = ramp(5, 3);
        assert_eq!(Image::from_planes(5, 3, &a.to_planes()), a);
        let p = a.reflect_pad(8, 5);
        assert_eq!((p.w, p.h), (8, 5));
        assert_eq!(p.crop(0, 0, 5, 3), a);
        // numpy reflect: column 5 mirrors column 3, column 6 column 2; row 3 mirrors row 1
        let px = |im: &Image, x: usize, y: usize| im.data[(y * im.w + x) * 3..][..3].to_vec();
        assert_eq!(px(&p, 5, 0), px(&a, 3, 0));
        assert_eq!(px(&p, 6, 1), px(&a, 2, 1));
        assert_eq!(px(&p, 1, 3), px(&a, 1, 1));
        assert_eq!(px(&p, 7, 4), px(&a, 1, 0));
    }

    #[test]
    fn colour_transfer_keeps_luminance_and_chroma() {
        let grey = Image { w: 1, h: 1, data: vec![0.5, 0.5, 0.5] };
        let red = Image { w: 1, h: 1, data: vec![0.8, 0.2, 0.2] };
        let out = grey.with_colours_of(&red);
        let y = |p: &[f32]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        assert!((y(&out.data) - 0.5).abs() < 1e-4, "{:?}", out.data);
        assert!(out.data[0] > out.data[1] && out.data[0] > out.data[2], "{:?}", out.data);
        // its own colours change nothing
        let same = red.with_colours_of(&red);
        assert!(same.mean_abs_diff(&red) < 1e-5);
    }

    #[test]
    fn fit_and_crop() {
        assert_eq!(fit_size(400, 300, 256), (256, 192));
        assert_eq!(fit_size(10, 1000, 100), (1, 100));
        let a = ramp(7, 4);
        let s = a.center_square();
        assert_eq!((s.w, s.h), (4, 4));
        assert_eq!(s, a.crop(1, 0, 4, 4));
        let r = a.resize(14, 8);
        assert_eq!((r.w, r.h), (14, 8));
        assert!(r.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
