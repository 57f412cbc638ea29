//! Shared by the style-transfer tests: model availability (a missing model fails under CI=true,
//! else the test prints a note and passes), test images, and the Gram-matrix style distance.

#![allow(dead_code)]

use burn::tensor::{Device, Tensor, TensorData};
use limner_art::Image;
use limner_nets::{InceptionV3, Layer};


/// Whether `net` is fetched: fails under CI, else prints the note; `false` for "skip".
pub fn have(net: &str) -> bool {
    limner_core::testing::fetched(limner_models::fetch::net_path(net)).is_some()
}

/// Whether the three style networks are fetched (see [`have`]).
pub fn have_style_nets() -> bool {
    use limner_models::fetch::{STYLE_MULTI, STYLE_PREDICT, STYLE_TRANSFORM};
    [STYLE_PREDICT, STYLE_TRANSFORM, STYLE_MULTI].iter().all(|n| have(n))
}

/// Face `seed` of the embedded default model (psi 0.7), 64 px, upscaled to `size`.
pub fn face(seed: u64, size: usize) -> Image {
    let device = Device::flex();
    let (res, imgs) = limner_models::default_face(seed, &device).unwrap();
    let rgb = limner_data::imageio::nchw_to_rgb8(&imgs, 1, res, res).remove(0);
    Image::from_rgb8(res, res, &rgb).resize(size, size)
}

/// A painting-like style image: saturated swirling bands of colour with short strokes, nothing
/// like a smooth face.
pub fn swirl_painting(w: usize, h: usize) -> Image {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
            let r = (u * u + v * v).sqrt();
            let a = v.atan2(u);
            let band = (40.0 * r + 3.0 * a).sin();
            let stroke = ((x as f32 * 0.9 + y as f32 * 0.4).sin() * (y as f32 * 1.3 - x as f32 * 0.2).cos()) * 0.5;
            let t = 0.5 + 0.35 * band + 0.15 * stroke;
            // deep blue ↔ yellow ↔ orange
            data.push((0.1 + 0.9 * t).clamp(0.0, 1.0));
            data.push((0.15 + 0.75 * (t * 3.0).sin().abs() * t).clamp(0.0, 1.0));
            data.push((0.9 - 0.8 * t).clamp(0.0, 1.0));
        }
    }
    Image { w, h, data }
}

/// Normalised Gram matrices of InceptionV3 `mixed2` and `mixed3` (the style statistics of
/// Gatys et al.): `G = F Fᵀ / (H W)` per layer, images fed at 256 px.
pub struct Grams {
    net: InceptionV3,
    device: Device,
}

impl Grams {
    pub fn load() -> Self {
        let device = Device::flex();
        Self { net: InceptionV3::load_fetched(&device).unwrap(), device }
    }

    pub fn of(&self, img: &Image) -> Vec<Vec<f32>> {
        let img = img.resize(256, 256);
        let x = Tensor::<4>::from_data(TensorData::new(img.to_planes(), [1, 3, 256, 256]), &self.device);
        self.net
            .forward_layers(x, &[Layer::Mixed2, Layer::Mixed3])
            .into_iter()
            .map(|a| {
                let [_, c, h, w] = a.dims();
                let f = a.reshape([c, h * w]);
                let g = f.clone().matmul(f.transpose()).div_scalar((h * w) as f32);
                g.into_data().try_into_vec_as::<f32>().unwrap()
            })
            .collect()
    }

    /// Style distance: the sum over layers of ‖G_a − G_b‖ / ‖G_b‖.
    pub fn distance(&self, a: &Image, b: &Image) -> f32 {
        let (ga, gb) = (self.of(a), self.of(b));
        ga.iter()
            .zip(&gb)
            .map(|(x, y)| {
                let d: f32 = x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
                d / y.iter().map(|q| q * q).sum::<f32>().sqrt()
            })
            .sum()
    }
}

/// A PNG whose header claims `w`×`h` pixels (8-bit RGB) with one tiny IDAT: enough for a loader
/// that checks the declared size before decoding.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}
