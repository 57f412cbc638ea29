//! FFHQ-style alignment on real faces: after a random rotation, scale and offset, the aligned
//! face's eyes land where they land for the untouched face, level, centred left-right, and
//! near FFHQ's canonical eye positions.

mod common;

use burn::tensor::Device;
use common::*;
use limner_faces::describe::Rect;
use limner_faces::landmarks68::centre;
use limner_faces::{FaceAnalyzer, FaceAnalyzerConfig, Image};
use rand::{Rng, SeedableRng};

/// `img` rotated by `angle` (radians) and scaled by `scale` about its centre, shifted by
/// `offset`, into a `side`² grey canvas (bilinear).
fn transform(img: &Image, angle: f32, scale: f32, offset: [f32; 2], side: usize) -> Image {
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    let (c, s) = (angle.cos(), angle.sin());
    let mut data = Vec::with_capacity(side * side * 3);
    for v in 0..side {
        for u in 0..side {
            // canvas → source: undo the offset, the scale and the rotation
            let (dx, dy) = ((u as f32 + 0.5 - side as f32 / 2.0 - offset[0]) / scale, (v as f32 + 0.5 - side as f32 / 2.0 - offset[1]) / scale);
            let (sx, sy) = (c * dx + s * dy + cx - 0.5, -s * dx + c * dy + cy - 0.5);
            for ch in 0..3 {
                let at = |x: f32, y: f32| {
                    if x < 0.0 || y < 0.0 || x > (img.width - 1) as f32 || y > (img.height - 1) as f32 {
                        return 110.0;
                    }
                    img.data[(y as usize * img.width + x as usize) * 3 + ch]
                };
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
                let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
                data.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Image { width: side, height: side, data }
}

/// Eye centres (image's left, image's right) found by the landmark net in an aligned face.
fn eyes(fa: &FaceAnalyzer, img: &Image) -> [[f32; 2]; 2] {
    let whole = Rect { x: 0.0, y: 0.0, width: img.width as f32, height: img.height as f32 };
    let lm = fa.landmarks(&[(img, whole)]).pop().flatten().expect("landmarks");
    [centre(&lm, 36..42), centre(&lm, 42..48)]
}

#[test]
fn aligned_eyes_land_at_the_canonical_place_after_rotation_scale_and_offset() {
    let Some(()) = models() else { return };
    let device = Device::flex();
    let fa = FaceAnalyzer::load_fetched(FaceAnalyzerConfig::default(), &device).unwrap();
    let size = 128;
    let faces = faces(3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut worst = 0.0f32;
    for (i, face) in faces.iter().enumerate() {
        let reference = fa.align(std::slice::from_ref(face), size).pop().flatten().unwrap_or_else(|| panic!("face {i}: not found"));
        let [rl, rr] = eyes(&fa, &reference);
        for k in 0..2 {
            let angle = rng.random_range(-0.45f32..0.45);
            let scale = rng.random_range(0.8f32..1.4);
            let offset = [rng.random_range(-20.0f32..20.0), rng.random_range(-20.0f32..20.0)];
            let moved = transform(face, angle, scale, offset, 256);
            let aligned = fa.align(std::slice::from_ref(&moved), size).pop().flatten().unwrap_or_else(|| panic!("face {i}, transform {k}: not found"));
            let [l, r] = eyes(&fa, &aligned);
            let err = [(l[0] - rl[0]).hypot(l[1] - rl[1]), (r[0] - rr[0]).hypot(r[1] - rr[1])].into_iter().fold(0.0f32, f32::max);
            let tilt = (r[1] - l[1]).atan2(r[0] - l[0]).to_degrees();
            let mid = (l[0] + r[0]) / 2.0 / size as f32;
            eprintln!(
                "face {i} rotated {:.0}° scaled {scale:.2} moved {:.0},{:.0}: eyes {:.1},{:.1} / {:.1},{:.1} (untouched {:.1},{:.1} / {:.1},{:.1}), off by {err:.2} px, tilt {tilt:.1}°",
                angle.to_degrees(), offset[0], offset[1], l[0], l[1], r[0], r[1], rl[0], rl[1], rr[0], rr[1]
            );
            worst = worst.max(err);
            assert!(err < 0.04 * size as f32, "face {i}: aligned eyes {err:.2} px from where the untouched face puts them");
            assert!(tilt.abs() < 4.0, "face {i}: the eyes are not level ({tilt:.1}°)");
            assert!((mid - 0.5).abs() < 0.05, "face {i}: the eyes are not centred left-right ({mid:.3})");
            // the FFHQ recipe puts the eye centres at (0.375, 0.475) and (0.625, 0.475) of the
            // side when the eyes are wider apart than 0.9 × eye-to-mouth (as in most faces)
            for (e, want) in [(l, [0.375f32, 0.475]), (r, [0.625, 0.475])] {
                let d = (e[0] / size as f32 - want[0]).hypot(e[1] / size as f32 - want[1]);
                assert!(d < 0.04, "face {i}: an eye at {:.3},{:.3} of the side, canonical {want:?}", e[0] / size as f32, e[1] / size as f32);
            }
        }
    }
    eprintln!("worst eye displacement: {worst:.2} px of {size}");
}
