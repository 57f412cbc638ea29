//! Shared by the face tests: the fetched models (missing → fail under CI=true, else a note
//! and skip), the TF.js tooling, and real face images.
//!
//! Face images: `$LIMNER_TEST_FACES` or /work/shared/data/faces128 when present (fixed file
//! names), otherwise rendered by the fetched random-face MobileStyleGAN (fixed seeds) at 128 px,
//! so the tests run on any clone after `limner models fetch`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use limner_faces::Image;
use serde_json::Value;

/// `Some(())` when face-api is fetched; `None` (with a note) outside CI when it is not.
pub fn models() -> Option<()> {
    limner_core::testing::fetched(limner_models::fetch::net_path("tiny-face-detector")).map(|_| ())
}

pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/tfjs-ref")
}

/// Installs tools/tfjs-ref's node modules (npm ci) when face-api or human is not there yet.
pub fn ensure_node_modules() {
    let dir = tools_dir();
    if ["node_modules/@vladmandic/face-api/dist/face-api.node-wasm.js", "node_modules/@vladmandic/human/dist/human.node-wasm.js"].iter().all(|f| dir.join(f).is_file()) {
        return;
    }
    let st = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().expect("cannot run npm (is node installed?)");
    assert!(st.success(), "`npm ci` in {} failed", dir.display());
}

const FILES: [&str; 4] = ["0001_00001.jpg", "0001_00013.jpg", "0003_00027.jpg", "0003_00042.jpg"];
const SEEDS: [u64; 4] = [11, 12, 13, 14];

/// `n` (≤ 4) real 128 px faces (see the module comment).
pub fn faces(n: usize) -> Vec<Image> {
    let dir = std::env::var_os("LIMNER_TEST_FACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/work/shared/data/faces128"));
    if FILES[..n].iter().all(|f| dir.join(f).is_file()) {
        return FILES[..n]
            .iter()
            .map(|f| {
                let (w, h, rgb) = limner_data::imageio::load_image_rgb(&dir.join(f), 1 << 24).unwrap();
                Image::from_rgb8(w as usize, h as usize, &rgb)
            })
            .collect();
    }
    let path = limner_models::fetch::net_path("random-face").unwrap_or_else(|e| panic!("no face images in {} and no random-face to render them: {e:#}", dir.display()));
    let device = burn::tensor::Device::flex();
    let g = limner_photoreal::MobileStyleGan::load(&path, &device).unwrap();
    let rgb = limner_photoreal::generate_seeds(&g, &SEEDS[..n], 0.7, 0.0, 128).unwrap();
    rgb.iter().map(|r| Image::from_rgb8(128, 128, r)).collect()
}

pub fn write_f32(p: &Path, v: &[f32]) {
    std::fs::write(p, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

pub fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// `max |a − b|` and `‖a − b‖ / ‖b‖`.
pub fn errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let (mut maxd, mut num, mut den) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let d = (*x as f64 - *y as f64).abs();
        maxd = maxd.max(d);
        num += d * d;
        den += (*y as f64) * (*y as f64);
    }
    (maxd, (num / den.max(1e-30)).sqrt())
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// `face` pasted at `(x, y)` into a `w`×`h` grey canvas.
pub fn paste(face: &Image, w: usize, h: usize, x: usize, y: usize) -> Image {
    let mut data = vec![90.0f32; w * h * 3];
    for row in 0..face.height {
        let dst = ((y + row) * w + x) * 3;
        data[dst..dst + face.width * 3].copy_from_slice(&face.data[row * face.width * 3..(row + 1) * face.width * 3]);
    }
    Image { width: w, height: h, data }
}

pub fn num(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}
