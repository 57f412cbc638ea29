//! FFHQ-style face alignment (Karras et al. 2019, "A Style-Based Generator Architecture for
//! GANs", the `recreate_aligned_images` step of the FFHQ dataset script): from 68 landmarks, an
//! oriented square ("quad") around the eyes and mouth is cut out and resampled to `size`².
//!
//! The quad: `x` = eye-to-eye vector minus the eye-to-mouth vector turned by 90°, normalised to
//! `max(2 · |eye-to-eye|, 1.8 · |eye-to-mouth|)`; `y` = `x` turned by 90°; centre `c` = mean of
//! the eye centres + 0.1 · eye-to-mouth; corners `c ∓ x ∓ y`. So the eyes end up level and
//! at the same place in every aligned face. Outside the image the picture is mirrored (the
//! script mirrors and blurs; limner only mirrors). Strong shrinking first averages k×k blocks.

use crate::image::Image;
use crate::landmarks68::{centre, Landmarks};

/// The aligned square in the source image: centre `c` and half-axes `x` (→ right) and `y`
/// (→ down) in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quad {
    pub c: [f32; 2],
    pub x: [f32; 2],
    pub y: [f32; 2],
}

impl Quad {
    /// The FFHQ quad of a face's 68 landmarks.
    pub fn ffhq(lm: &Landmarks) -> Quad {
        let (eye_left, eye_right) = (centre(lm, 36..42), centre(lm, 42..48));
        let (mouth_left, mouth_right) = (lm[48], lm[54]);
        let eye_avg = [(eye_left[0] + eye_right[0]) / 2.0, (eye_left[1] + eye_right[1]) / 2.0];
        let eye_to_eye = [eye_right[0] - eye_left[0], eye_right[1] - eye_left[1]];
        let mouth_avg = [(mouth_left[0] + mouth_right[0]) / 2.0, (mouth_left[1] + mouth_right[1]) / 2.0];
        let eye_to_mouth = [mouth_avg[0] - eye_avg[0], mouth_avg[1] - eye_avg[1]];
        // x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1]
        let mut x = [eye_to_eye[0] + eye_to_mouth[1], eye_to_eye[1] - eye_to_mouth[0]];
        let norm = x[0].hypot(x[1]).max(1e-6);
        let len = (eye_to_eye[0].hypot(eye_to_eye[1]) * 2.0).max(eye_to_mouth[0].hypot(eye_to_mouth[1]) * 1.8);
        x = [x[0] / norm * len, x[1] / norm * len];
        let y = [-x[1], x[0]];
        let c = [eye_avg[0] + eye_to_mouth[0] * 0.1, eye_avg[1] + eye_to_mouth[1] * 0.1];
        Quad { c, x, y }
    }

    /// Source position of the aligned image's point `(u, v)`, both in 0..1.
    pub fn source(&self, u: f32, v: f32) -> [f32; 2] {
        let (a, b) = (2.0 * u - 1.0, 2.0 * v - 1.0);
        [self.c[0] + self.x[0] * a + self.y[0] * b, self.c[1] + self.x[1] * a + self.y[1] * b]
    }

    /// Where a source point lands in the aligned image, in 0..1 (the inverse of [`Self::source`]).
    pub fn target(&self, p: [f32; 2]) -> [f32; 2] {
        let d = [p[0] - self.c[0], p[1] - self.c[1]];
        let (xx, yy) = (self.x[0] * self.x[0] + self.x[1] * self.x[1], self.y[0] * self.y[0] + self.y[1] * self.y[1]);
        let a = (d[0] * self.x[0] + d[1] * self.x[1]) / xx;
        let b = (d[0] * self.y[0] + d[1] * self.y[1]) / yy;
        [(a + 1.0) / 2.0, (b + 1.0) / 2.0]
    }

    /// Side of the quad in source pixels.
    pub fn side(&self) -> f32 {
        2.0 * self.x[0].hypot(self.x[1])
    }
}

/// Cuts the FFHQ quad of `lm` out of `img` as a `size`×`size` image.
pub fn align(img: &Image, lm: &Landmarks, size: usize) -> Image {
    warp(img, &Quad::ffhq(lm), size)
}

/// Resamples `quad` of `img` to `size`² (bilinear; mirrored outside the image; first averaged
/// over k×k blocks when the quad is k ≥ 2 times larger than the output).
pub fn warp(img: &Image, quad: &Quad, size: usize) -> Image {
    let k = (quad.side() / size as f32).floor().max(1.0) as usize;
    let (src, q) = if k >= 2 {
        let s = 1.0 / k as f32;
        // pixel centres: block j covers source pixels j·k .. j·k + k − 1
        let shift = |v: f32| (v + 0.5) * s - 0.5;
        (box_reduce(img, k), Quad { c: [shift(quad.c[0]), shift(quad.c[1])], x: [quad.x[0] * s, quad.x[1] * s], y: [quad.y[0] * s, quad.y[1] * s] })
    } else {
        (img.clone(), *quad)
    };
    let mirror = |v: f32, n: usize| -> f32 {
        let n = n as f32;
        let period = 2.0 * n;
        let m = v.rem_euclid(period);
        if m < n { m } else { period - m - 1.0 }.clamp(0.0, n - 1.0)
    };
    let px = |x: usize, y: usize, c: usize| src.data[(y * src.width + x) * 3 + c];
    let mut data = Vec::with_capacity(size * size * 3);
    for v in 0..size {
        for u in 0..size {
            let p = q.source((u as f32 + 0.5) / size as f32, (v as f32 + 0.5) / size as f32);
            // pixel centres are at integer coordinates + 0.5
            let (fx, fy) = (mirror(p[0] - 0.5, src.width), mirror(p[1] - 0.5, src.height));
            let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(src.width - 1), (y0 + 1).min(src.height - 1));
            let (dx, dy) = (fx - x0 as f32, fy - y0 as f32);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - dx) + px(x1, y0, c) * dx;
                let bottom = px(x0, y1, c) * (1.0 - dx) + px(x1, y1, c) * dx;
                data.push(top * (1.0 - dy) + bottom * dy);
            }
        }
    }
    Image { width: size, height: size, data }
}

/// Averages k×k blocks (the last partial blocks are dropped).
fn box_reduce(img: &Image, k: usize) -> Image {
    let (w, h) = ((img.width / k).max(1), (img.height / k).max(1));
    let mut data = vec![0.0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut s = 0.0;
                let mut n = 0.0;
                for yy in y * k..((y + 1) * k).min(img.height) {
                    for xx in x * k..((x + 1) * k).min(img.width) {
                        s += img.data[(yy * img.width + xx) * 3 + c];
                        n += 1.0;
                    }
                }
                data[(y * w + x) * 3 + c] = s / n;
            }
        }
    }
    Image { width: w, height: h, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Landmarks of an upright synthetic face: eyes at (40, 50) and (80, 50), mouth corners
    /// at (45, 90) and (75, 90).
    fn upright() -> Landmarks {
        let mut lm = [[60.0f32, 70.0]; 68];
        lm[36..42].fill([40.0, 50.0]);
        lm[42..48].fill([80.0, 50.0]);
        lm[48] = [45.0, 90.0];
        lm[54] = [75.0, 90.0];
        lm
    }

    #[test]
    fn quad_follows_the_ffhq_recipe_and_rotations() {
        let q = Quad::ffhq(&upright());
        // eye_to_eye (40, 0), eye_to_mouth (0, 40): x ∥ (80, 0) scaled to max(80, 72) = 80
        assert_eq!(q.x, [80.0, 0.0]);
        assert_eq!(q.y, [-0.0, 80.0]);
        assert_eq!(q.c, [60.0, 54.0]);
        let t = q.target([40.0, 50.0]);
        assert!((t[0] - 0.375).abs() < 1e-6 && (t[1] - 0.475).abs() < 1e-6, "{t:?}");
        // a similarity transform of the landmarks moves the quad with them: the eyes land at the same place
        let (ang, s, off) = (0.4f32, 1.7f32, [13.0f32, -7.0]);
        let tf = |p: [f32; 2]| [s * (p[0] * ang.cos() - p[1] * ang.sin()) + off[0], s * (p[0] * ang.sin() + p[1] * ang.cos()) + off[1]];
        let moved: Landmarks = std::array::from_fn(|i| tf(upright()[i]));
        let q2 = Quad::ffhq(&moved);
        let t2 = q2.target(tf([40.0, 50.0]));
        assert!((t2[0] - t[0]).abs() < 1e-4 && (t2[1] - t[1]).abs() < 1e-4, "{t2:?} vs {t:?}");
        assert!((q2.side() - s * q.side()).abs() < 1e-3);
    }

    #[test]
    fn warp_copies_pixels_and_mirrors_outside() {
        // a 4×4 image whose red channel is x and green is y
        let img = Image { width: 4, height: 4, data: (0..16).flat_map(|i| [(i % 4) as f32, (i / 4) as f32, 0.0]).collect() };
        let identity = Quad { c: [2.0, 2.0], x: [2.0, 0.0], y: [0.0, 2.0] };
        assert_eq!(warp(&img, &identity, 4).data, img.data);
        // shifted right by 2: the last columns mirror (x = 4 → 3, x = 5 → 2)
        let shifted = Quad { c: [4.0, 2.0], x: [2.0, 0.0], y: [0.0, 2.0] };
        let w = warp(&img, &shifted, 4);
        assert_eq!((0..4).map(|u| w.data[u * 3]).collect::<Vec<_>>(), vec![2.0, 3.0, 3.0, 2.0]);
    }
}
