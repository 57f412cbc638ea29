//! The embedded default model loads and reproduces the reference images stored beside it,
//! so a broken loader, a changed default or a wrong half-precision conversion cannot pass.

use std::path::Path;

use burn::tensor::Device;
use limner_data::imageio::{load_image_rgb, nchw_to_rgb8};
use limner_gan::generate::{generate_seeds, GenerateOptions};

#[test]
fn embedded_model_reproduces_reference_images() {
    let device = Device::flex();
    let (g, info) = limner_models::load_default(&device).expect("the embedded model loads");
    let res = g.config.img_resolution;
    let seeds = [0u64, 1, 2, 3];
    let opts = GenerateOptions { psi: 0.7, noise: 1.0, batch: 4 };
    let imgs = nchw_to_rgb8(&generate_seeds(&g, &seeds, &opts), seeds.len(), res, res);
    let refdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default/reference");
    for (s, got) in seeds.iter().zip(&imgs) {
        let (w, h, want) = load_image_rgb(&refdir.join(format!("seed{s:04}.png")), 1 << 20).unwrap();
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
