//! The embedded default model: what its tests can and cannot prove.
//!
//! - The reference images beside it (`models/default/reference/`, written by `limner models
//!   freeze` from the half-precision file itself) pin the loader and the renderer: a broken
//!   loader, a changed default or a changed synthesis path cannot pass. They cannot judge the
//!   f32 → f16 conversion, having been rendered after it; the f32 EMA the file came from is not
//!   in the repository.
//! - The conversion is checked on the file itself instead: every tensor is stored as IEEE f16
//!   (not bf16, not f32), decodes (by an independent bit-level decoder here) to exactly what
//!   limner loads, is finite, is not flushed to zero where the network has weights, and limner's
//!   own f16 writer reproduces the file byte for byte from the loaded model.

use std::path::Path;

use burn::tensor::Device;
use limner_data::imageio::{load_image_rgb, nchw_to_rgb8, seed_file_name};
use limner_gan::generate::{generate_seeds, save_generator, GenerateOptions};
use limner_models::{DEFAULT_GENERATOR, REFERENCE_SEEDS};

#[test]
fn embedded_model_reproduces_reference_images() {
    let device = Device::flex();
    let (g, info) = limner_models::load_default(&device).expect("the embedded model loads");
    let res = g.config.img_resolution;
    let seeds = REFERENCE_SEEDS;
    let opts = GenerateOptions { psi: 0.7, noise: 1.0, batch: 4 };
    let imgs = nchw_to_rgb8(&generate_seeds(&g, &seeds, &opts), seeds.len(), res, res);
    let refdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default/reference");
    for (s, got) in seeds.iter().zip(&imgs) {
        let (w, h, want) = load_image_rgb(&refdir.join(seed_file_name(*s)), 1 << 20).unwrap();
        assert_eq!((w as usize, h as usize), (res, res), "reference size");
        let diffs: Vec<f64> = got.iter().zip(&want).map(|(a, b)| (*a as f64 - *b as f64).abs()).collect();
        let mad = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().cloned().fold(0.0, f64::max);
        eprintln!("seed {s}: mean abs diff {mad:.3} levels, max {max} (model at {:?} kimg)", info.kimg);
        assert!(mad < 0.5 && max <= 8.0, "seed {s}: mean abs diff {mad}, max {max} levels vs the reference");
        // not a blank image
        let mean = got.iter().map(|&v| v as f64).sum::<f64>() / got.len() as f64;
        let var = got.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / got.len() as f64;
        assert!(var.sqrt() > 5.0, "seed {s}: the image is nearly flat (std {})", var.sqrt());
    }
    // different seeds give different people
    assert_ne!(imgs[0], imgs[1]);
}

#[test]
fn resolve_reports_unknown_models() {
    let err = limner_models::resolve("no-such-model-anywhere").unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("models list"), "{err}");
    assert!(limner_models::resolve("default").unwrap().is_none());
}

/// IEEE 754 half → f32 by its bits (sign, 5-bit exponent, 10-bit fraction; subnormals, inf,
/// NaN), written here independently of the `half` crate limner's loader uses.
fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

#[test]
fn the_half_precision_file_is_a_faithful_f16_copy() {
    let st = safetensors::SafeTensors::deserialize(DEFAULT_GENERATOR).expect("a safetensors file");
    let (loaded, _) = limner_core::parse_safetensors(DEFAULT_GENERATOR).unwrap();
    assert!(loaded.len() > 50, "only {} tensors", loaded.len());
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F16, "{name} is not stored as f16");
        let decoded: Vec<f32> = view.data().chunks_exact(2).map(|b| f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect();
        let got = &loaded[&name].data;
        assert_eq!(decoded.len(), got.len(), "{name}");
        assert!(decoded.iter().zip(got).all(|(a, b)| a == b), "{name}: limner's loader disagrees with the f16 bits");
        assert!(got.iter().all(|v| v.is_finite()), "{name}: inf/NaN (an f32 value beyond f16's range?)");
        // a trained weight tensor flushed to zero would mean values below f16's range
        if name.ends_with(".weight") {
            let zeros = got.iter().filter(|v| **v == 0.0).count();
            assert!(zeros * 100 < got.len(), "{name}: {zeros} of {} values are 0", got.len());
        }
    }
    // limner's own writer, given the loaded model, writes this very file
    let device = Device::flex();
    let (mut g, info) = limner_models::load_default(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("generator.safetensors");
    save_generator(&again, &mut g, &info, limner_core::Precision::F16).unwrap();
    assert!(std::fs::read(&again).unwrap() == DEFAULT_GENERATOR, "re-saving the loaded default model in f16 changes the file");
}

#[test]
fn the_independent_f16_decoder_is_right() {
    assert_eq!(f16_bits_to_f32(0x3c00), 1.0);
    assert_eq!(f16_bits_to_f32(0xc000), -2.0);
    assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_bits_to_f32(0x3555), 0.333_251_95);
    assert!(f16_bits_to_f32(0x7c00).is_infinite() && f16_bits_to_f32(0x7e00).is_nan());
}
