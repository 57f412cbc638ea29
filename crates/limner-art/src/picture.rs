//! [`Picture`]: the RGB image type of the image-optimisation tools ([`crate::gatys`],
//! [`crate::dream`]), planar f32 in [0, 1], with the resampling and colour-space helpers they
//! share.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use limner_data::imageio::{load_image_rgb, save_png_rgb, DEFAULT_MAX_PIXELS};

/// An RGB image, planar (`[3, height, width]`, channel-major), values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    /// `3 * height * width` values: the R plane, then G, then B.
    pub data: Vec<f32>,
}

impl Picture {
    /// Loads an image file through limner-data's safe decoder (EXIF orientation applied,
    /// decompression bombs refused); the error names the file.
    pub fn load(path: &Path) -> Result<Self> {
        let (w, h, rgb) = load_image_rgb(path, DEFAULT_MAX_PIXELS)?;
        Self::from_rgb8(w as usize, h as usize, &rgb).with_context(|| format!("cannot use {}", path.display()))
    }

    /// Writes the picture as an 8-bit PNG, atomically.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_png_rgb(path, self.width as u32, self.height as u32, &self.to_rgb8())
    }

    /// From 8-bit interleaved RGB (`height * width * 3` bytes, as `limner_data::imageio`
    /// loads images).
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self> {
        ensure!(width > 0 && height > 0, "empty image ({width}x{height})");
        ensure!(rgb.len() == width * height * 3, "{} bytes for a {width}x{height} RGB image", rgb.len());
        let plane = width * height;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + i] = px[c] as f32 / 255.0;
            }
        }
        Ok(Self { width, height, data })
    }

    /// To 8-bit interleaved RGB, rounded and clamped.
    pub fn to_rgb8(&self) -> Vec<u8> {
        let plane = self.width * self.height;
        let mut out = vec![0u8; plane * 3];
        for i in 0..plane {
            for c in 0..3 {
                let v = self.data[c * plane + i];
                out[i * 3 + c] = if v.is_finite() { (v * 255.0).round().clamp(0.0, 255.0) as u8 } else { 0 };
            }
        }
        out
    }

    /// `[1, 3, height, width]` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data.clone(), [1, 3, self.height, self.width]), device)
    }

    /// From a `[1, 3, h, w]` tensor.
    pub fn from_tensor(t: Tensor<4>) -> Self {
        let [n, c, height, width] = t.dims();
        assert!(n == 1 && c == 3, "Picture::from_tensor: expected [1, 3, h, w], got {:?}", t.dims());
        Self { width, height, data: host(t) }
    }

    /// Resampled to `width` x `height`: separable linear interpolation whose filter widens
    /// when shrinking (an antialiased "triangle" filter, like PIL's bilinear), so a large
    /// photo shrinks without aliasing and an enlargement is plain bilinear.
    pub fn resized(&self, width: usize, height: usize) -> Self {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let wx = filter_taps(self.width, width);
        let wy = filter_taps(self.height, height);
        let mut out = vec![0.0f32; 3 * width * height];
        let mut rows = vec![0.0f32; self.height * width];
        for c in 0..3 {
            let src = &self.data[c * self.width * self.height..][..self.width * self.height];
            // horizontal pass: [h, w_in] -> [h, w]
            for y in 0..self.height {
                let line = &src[y * self.width..][..self.width];
                for (x, taps) in wx.iter().enumerate() {
                    rows[y * width + x] = taps.iter().map(|&(i, k)| line[i] * k).sum();
                }
            }
            // vertical pass: [h, w] -> [h_out, w]
            let dst = &mut out[c * width * height..][..width * height];
            for (y, taps) in wy.iter().enumerate() {
                let row = &mut dst[y * width..][..width];
                for &(i, k) in taps {
                    for (d, s) in row.iter_mut().zip(&rows[i * width..][..width]) {
                        *d += s * k;
                    }
                }
            }
        }
        Self { width, height, data: out }
    }

    /// Resized so that the longer side is `side` px (aspect ratio kept, at least 1 px).
    pub fn fit_longest(&self, side: usize) -> Self {
        let (w, h) = (self.width as f64, self.height as f64);
        let s = side as f64 / w.max(h);
        self.resized(((w * s).round() as usize).max(1), ((h * s).round() as usize).max(1))
    }

    /// The planes in YIQ (NTSC): `[Y, I, Q]`, Y the luminance in [0, 1].
    pub fn to_yiq(&self) -> [Vec<f32>; 3] {
        let plane = self.width * self.height;
        let (r, g, b) = (&self.data[..plane], &self.data[plane..2 * plane], &self.data[2 * plane..]);
        let mut yiq = [vec![0.0; plane], vec![0.0; plane], vec![0.0; plane]];
        for i in 0..plane {
            for (k, row) in YIQ.iter().enumerate() {
                yiq[k][i] = row[0] * r[i] + row[1] * g[i] + row[2] * b[i];
            }
        }
        yiq
    }

    /// From YIQ planes (the inverse of [`Self::to_yiq`]), clamped to [0, 1].
    pub fn from_yiq(width: usize, height: usize, yiq: &[Vec<f32>; 3]) -> Self {
        let plane = width * height;
        let mut data = vec![0.0; 3 * plane];
        for i in 0..plane {
            for (c, row) in RGB_FROM_YIQ.iter().enumerate() {
                data[c * plane + i] = (row[0] * yiq[0][i] + row[1] * yiq[1][i] + row[2] * yiq[2][i]).clamp(0.0, 1.0);
            }
        }
        Self { width, height, data }
    }

    /// A grey picture whose three channels are `y`.
    pub fn grey(width: usize, height: usize, y: &[f32]) -> Self {
        Self { width, height, data: [y, y, y].concat() }
    }
}

/// RGB -> YIQ (FCC NTSC matrix).
const YIQ: [[f32; 3]; 3] = [[0.299, 0.587, 0.114], [0.595_716, -0.274_453, -0.321_263], [0.211_456, -0.522_591, 0.311_135]];
/// YIQ -> RGB (the inverse of [`YIQ`]).
const RGB_FROM_YIQ: [[f32; 3]; 3] = [[1.0, 0.956_3, 0.621_0], [1.0, -0.272_1, -0.647_4], [1.0, -1.107_0, 1.704_6]];

/// For each output index: the input indices and weights of a triangle filter of radius
/// `max(in / out, 1)` centred on the output pixel's centre (weights sum to 1; edges clamp).
fn filter_taps(len_in: usize, len_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = len_in as f64 / len_out as f64;
    let radius = scale.max(1.0);
    (0..len_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale - 0.5;
            let lo = (centre - radius).floor() as isize;
            let hi = (centre + radius).ceil() as isize;
            let mut taps: Vec<(usize, f32)> = Vec::new();
            for i in lo..=hi {
                let k = 1.0 - (i as f64 - centre).abs() / radius;
                if k > 0.0 {
                    let idx = i.clamp(0, len_in as isize - 1) as usize;
                    taps.push((idx, k as f32));
                }
            }
            let sum: f32 = taps.iter().map(|t| t.1).sum();
            taps.iter_mut().for_each(|t| t.1 /= sum);
            taps
        })
        .collect()
}

/// A tensor's values on the host.
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Picture {
        let mut data = vec![];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    data.push(((x + 2 * y + 5 * c) % 17) as f32 / 16.0);
                }
            }
        }
        Picture { width: w, height: h, data }
    }

    #[test]
    fn rgb8_round_trip_and_yiq_inverse() {
        let p = ramp(7, 5);
        let q = Picture::from_rgb8(7, 5, &p.to_rgb8()).unwrap();
        assert!(p.data.iter().zip(&q.data).all(|(a, b)| (a - b).abs() <= 0.5 / 255.0 + 1e-6));
        let back = Picture::from_yiq(7, 5, &p.to_yiq());
        let worst = p.data.iter().zip(&back.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 2e-3, "YIQ round trip error {worst}");
        assert!(Picture::from_rgb8(7, 5, &[0; 10]).is_err());
    }

    #[test]
    fn resize_keeps_constants_and_means() {
        let flat = Picture { width: 9, height: 6, data: vec![0.25; 3 * 54] };
        for (w, h) in [(3, 2), (20, 13), (9, 6), (1, 1)] {
            let r = flat.resized(w, h);
            assert_eq!((r.width, r.height, r.data.len()), (w, h, 3 * w * h));
            assert!(r.data.iter().all(|v| (v - 0.25).abs() < 1e-6));
        }
        // shrinking by an integer factor averages: the mean is kept closely
        let p = ramp(64, 48);
        let s = p.resized(16, 12);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean(&p.data) - mean(&s.data)).abs() < 0.01);
        assert_eq!(p.fit_longest(32).width, 32);
        assert_eq!(p.fit_longest(32).height, 24);
    }
}
