//! Host-side image handling as face-api does it on tensors: padding to a square, TF's legacy
//! bilinear resize (`tf.image.resizeBilinear` with `alignCorners = false`,
//! `halfPixelCenters = false`), cropping face boxes (`extractFaceTensors`) and batching into
//! the networks' NCHW input (RGB in 0..255).

use burn::tensor::{Device, Tensor, TensorData};

/// An RGB image, HWC, values 0..255 as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// `height · width · 3` values.
    pub data: Vec<f32>,
}

impl Image {
    /// From 8-bit RGB (as `limner_data::imageio::load_image_rgb` returns it).
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Self {
        assert_eq!(rgb.len(), width * height * 3, "RGB buffer size");
        Self { width, height, data: rgb.iter().map(|&v| v as f32).collect() }
    }

    /// 8-bit RGB, rounded and clamped.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
    }

    fn px(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * 3 + c]
    }

    /// Zero-pads the shorter side to a square (face-api `padToSquare`): at the end (right or
    /// bottom) when `center` is false; else split, the larger half (rounded) at the end.
    pub fn pad_to_square(&self, center: bool) -> Image {
        let side = self.width.max(self.height);
        let diff = side - self.width.min(self.height);
        let after = if center { (diff as f64 * 0.5).round() as usize } else { diff };
        let before = diff - after;
        let (x0, y0) = if self.width < self.height { (before, 0) } else { (0, before) };
        let mut data = vec![0.0f32; side * side * 3];
        for y in 0..self.height {
            let dst = ((y + y0) * side + x0) * 3;
            data[dst..dst + self.width * 3].copy_from_slice(&self.data[y * self.width * 3..(y + 1) * self.width * 3]);
        }
        Image { width: side, height: side, data }
    }

    /// `tf.image.resizeBilinear(x, [h, w], alignCorners = false, halfPixelCenters = false)`:
    /// output pixel `i` samples input `i · in / out` (no half-pixel shift), as face-api resizes.
    pub fn resize_bilinear(&self, width: usize, height: usize) -> Image {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let (sy, sx) = (self.height as f64 / height as f64, self.width as f64 / width as f64);
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            let fy = y as f64 * sy;
            let y0 = fy.floor() as usize;
            let y1 = (fy.ceil() as usize).min(self.height - 1);
            let dy = (fy - y0 as f64) as f32;
            for x in 0..width {
                let fx = x as f64 * sx;
                let x0 = fx.floor() as usize;
                let x1 = (fx.ceil() as usize).min(self.width - 1);
                let dx = (fx - x0 as f64) as f32;
                for c in 0..3 {
                    let top = self.px(x0, y0, c) + (self.px(x1, y0, c) - self.px(x0, y0, c)) * dx;
                    let bottom = self.px(x0, y1, c) + (self.px(x1, y1, c) - self.px(x0, y1, c)) * dx;
                    data.push(top + (bottom - top) * dy);
                }
            }
        }
        Image { width, height, data }
    }

    /// `tf.image.cropAndResize(image, [[y1, x1, y2, x2]], [0], [height, width])` (bilinear,
    /// extrapolation value 0): the box in normalised coordinates (`y · (H − 1)` is a pixel row),
    /// sampled at `height`×`width` points from corner to corner; points outside the image are 0.
    pub fn crop_and_resize(&self, [y1, x1, y2, x2]: [f32; 4], width: usize, height: usize) -> Image {
        let (ih, iw) = ((self.height - 1) as f64, (self.width - 1) as f64);
        let (y1, x1, y2, x2) = (y1 as f64, x1 as f64, y2 as f64, x2 as f64);
        let mut data = vec![0.0f32; width * height * 3];
        for y in 0..height {
            let Some((top, bottom, dy)) = crop_sample(y, height, y1, y2, ih) else { continue };
            for x in 0..width {
                let Some((left, right, dx)) = crop_sample(x, width, x1, x2, iw) else { continue };
                for c in 0..3 {
                    let t = self.px(left, top, c) + (self.px(right, top, c) - self.px(left, top, c)) * dx;
                    let b = self.px(left, bottom, c) + (self.px(right, bottom, c) - self.px(left, bottom, c)) * dx;
                    data[(y * width + x) * 3 + c] = t + (b - t) * dy;
                }
            }
        }
        Image { width, height, data }
    }

    /// The pixels of a box in pixel coordinates, clipped at the borders and floored as face-api
    /// does (`clipAtImageBorders`); `None` when nothing is left.
    pub fn crop(&self, x: f32, y: f32, width: f32, height: f32) -> Option<Image> {
        let (cx, cy, w, h) = self.crop_rect(x, y, width, height)?;
        let mut data = Vec::with_capacity(w * h * 3);
        for row in cy..cy + h {
            data.extend_from_slice(&self.data[(row * self.width + cx) * 3..(row * self.width + cx + w) * 3]);
        }
        Some(Image { width: w, height: h, data })
    }

    /// The pixel rectangle (x, y, width, height) [`Self::crop`] takes.
    pub fn crop_rect(&self, x: f32, y: f32, width: f32, height: f32) -> Option<(usize, usize, usize, usize)> {
        let (right, bottom) = (x + width, y + height);
        let (cx, cy) = (x.max(0.0), y.max(0.0));
        let w = (right - cx).min(self.width as f32 - cx);
        let h = (bottom - cy).min(self.height as f32 - cy);
        let (cx, cy, w, h) = (cx.floor(), cy.floor(), w.floor(), h.floor());
        if w < 1.0 || h < 1.0 || cx >= self.width as f32 || cy >= self.height as f32 {
            return None;
        }
        Some((cx as usize, cy as usize, w as usize, h as usize))
    }

    /// The detector's input: padded at the end to a square, resized to `size`.
    pub fn detector_input(&self, size: usize) -> Image {
        self.pad_to_square(false).resize_bilinear(size, size)
    }

    /// The detector's input with the image shrunk into the middle of a black square canvas
    /// `zoom` times its larger side (bilinear, as [`Self::resize_bilinear`]). Also returns
    /// where the image landed: input pixel = `(x0 + x · sx, y0 + y · sy)`, as `[x0, y0, sx, sy]`.
    pub fn detector_input_zoomed_out(&self, size: usize, zoom: usize) -> (Image, [f32; 4]) {
        let scale = size as f64 / (self.width.max(self.height) * zoom) as f64;
        let (w, h) = (((self.width as f64 * scale).round() as usize).max(1), ((self.height as f64 * scale).round() as usize).max(1));
        let small = self.resize_bilinear(w, h);
        let (x0, y0) = ((size - w) / 2, (size - h) / 2);
        let mut data = vec![0.0f32; size * size * 3];
        for row in 0..h {
            let dst = ((y0 + row) * size + x0) * 3;
            data[dst..dst + w * 3].copy_from_slice(&small.data[row * w * 3..(row + 1) * w * 3]);
        }
        let map = [x0 as f32, y0 as f32, w as f32 / self.width as f32, h as f32 / self.height as f32];
        (Image { width: size, height: size, data }, map)
    }

    /// A face network's input (landmarks, expression, age/gender: 112; identity: 150):
    /// padded to a centred square, resized to `size`.
    pub fn face_input(&self, size: usize) -> Image {
        self.pad_to_square(true).resize_bilinear(size, size)
    }
}

/// Stacks same-sized images into `[N, 3, H, W]`.
pub fn batch(images: &[Image], device: &Device) -> Tensor<4> {
    assert!(!images.is_empty(), "an empty batch");
    let (w, h) = (images[0].width, images[0].height);
    let mut data = Vec::with_capacity(images.len() * h * w * 3);
    for im in images {
        assert!(im.width == w && im.height == h, "images of one batch must have the same size");
        data.extend_from_slice(&im.data);
    }
    Tensor::<4>::from_data(TensorData::new(data, [images.len(), h, w, 3]), device).permute([0, 3, 1, 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        let data = (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as f32, y as f32, (x + y) as f32])).collect();
        Image { width: w, height: h, data }
    }

    #[test]
    fn legacy_resize_samples_without_half_pixel_shift() {
        let im = ramp(4, 4);
        let r = im.resize_bilinear(2, 2);
        // output i samples input 2i: pixel (1, 1) is input (2, 2)
        assert_eq!(&r.data[9..12], &[2.0, 2.0, 4.0]);
        let up = im.resize_bilinear(8, 8);
        // x = 3 samples 1.5; x = 7 samples 3.5 → clamped to the last column (3)
        assert_eq!(up.data[3 * 3], 1.5);
        assert_eq!(up.data[7 * 3], 3.0);
    }

    #[test]
    fn crop_and_resize_samples_corner_to_corner_with_zeros_outside() {
        let im = ramp(5, 5);
        // the whole image at 3×3: samples 0, 2, 4
        let c = im.crop_and_resize([0.0, 0.0, 1.0, 1.0], 3, 3);
        assert_eq!(&c.data[(3 + 1) * 3..(3 + 1) * 3 + 3], &[2.0, 2.0, 4.0]);
        assert_eq!(&c.data[8 * 3..8 * 3 + 3], &[4.0, 4.0, 8.0]);
        // a box half outside on the left: x = −0.5 → −2 (zero), 0.5 → 2 (between 1 and 3: 1.0·… )
        let c = im.crop_and_resize([0.0, -0.5, 1.0, 0.5], 3, 3);
        assert_eq!(&c.data[0..3], &[0.0, 0.0, 0.0]);
        assert_eq!(c.data[3], 0.0); // x = 0 (the first column)
        assert_eq!(c.data[2 * 3], 2.0);
        let c = im.crop_and_resize([0.1, 0.1, 0.2, 0.2], 2, 2);
        assert!((c.data[0] - 0.4).abs() < 1e-6 && (c.data[1] - 0.4).abs() < 1e-6);
    }

    #[test]
    fn pads_and_crops_like_face_api() {
        let im = ramp(3, 6);
        let sq = im.pad_to_square(true);
        assert_eq!((sq.width, sq.height), (6, 6));
        // diff 3: round(1.5) = 2 columns after, 1 before
        assert_eq!(sq.data[0..3], [0.0, 0.0, 0.0]);
        assert_eq!(sq.data[3..6], [0.0, 0.0, 0.0 + 0.0]);
        assert_eq!(sq.data[(6 + 1) * 3 + 1], 1.0);
        let end = im.pad_to_square(false);
        assert_eq!(end.data[3 * 3..3 * 3 + 3], [0.0, 0.0, 0.0]);
        assert_eq!(end.data[6 * 3 + 2 * 3 + 1], 1.0);
        let c = im.crop(-1.5, 2.2, 2.9, 10.0).unwrap();
        // x clipped to 0, width min(1.4, 3) floored to 1; y floored to 2, height min(10, 3.8) → 3
        assert_eq!((c.width, c.height), (1, 3));
        assert_eq!(c.data[1], 2.0);
        assert!(im.crop(5.0, 0.0, 2.0, 2.0).is_none());
    }
}

/// TF's `cropAndResize` along one axis: output index `i` of `n` between the normalised box edges
/// `a1..a2` of an axis whose last pixel is `last`; the two neighbouring pixels and the weight of
/// the second, or `None` outside the image (that output stays 0).
fn crop_sample(i: usize, n: usize, a1: f64, a2: f64, last: f64) -> Option<(usize, usize, f32)> {
    let f = if n > 1 { a1 * last + i as f64 * ((a2 - a1) * last / (n - 1) as f64) } else { 0.5 * (a1 + a2) * last };
    if f < 0.0 || f > last {
        return None;
    }
    let lo = f.floor() as usize;
    Some((lo, f.ceil() as usize, (f - lo as f64) as f32))
}
