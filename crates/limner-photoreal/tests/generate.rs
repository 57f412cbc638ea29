//! Seeded generation and distillation with the real random-face weights (fetched by
//! `limner models fetch --only random-face`; see tests/common/mod.rs). Each test synthesises a
//! handful of 1024² faces (about half a second each on 2 cores).

mod common;

use limner_data::imageio::load_image_rgb;
use limner_core::{read_safetensors, to_vec};
use limner_photoreal::{distill, faces, DistillOptions, MobileStyleGan};

/// What `limner generate --model random-face --seeds S --psi 0.7 --size 256 --out DIR` does,
/// run twice from a fresh load: byte-identical PNGs, and different seeds give different faces;
/// a seed's image does not depend on the other seeds asked for.
#[test]
fn generate_is_seeded_and_byte_identical_at_256() {
    let Some((file, _guard)) = common::model_file() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let seeds = [0u64, 1];
    let mut runs = vec![];
    for run in 0..2 {
        // a fresh model load per run, as two `limner generate` processes would do
        let g = MobileStyleGan::load(&file, &burn::tensor::Device::flex()).unwrap();
        let rgb = faces::generate_seeds(&g, &seeds, 0.7, 1.0, 256).unwrap();
        assert!(rgb.iter().all(|px| px.len() == 256 * 256 * 3));
        let paths = faces::save_seeds(&tmp.path().join(format!("run{run}")), &seeds, &rgb, 256).unwrap();
        runs.push(paths.iter().map(|p| std::fs::read(p).unwrap()).collect::<Vec<_>>());
        if run == 1 {
            // seed 1 alone equals seed 1 computed after seed 0
            let alone = faces::generate_seeds(&g, &[1], 0.7, 1.0, 256).unwrap();
            assert!(alone[0] == rgb[1], "seed 1 depends on the other seeds");
        }
    }
    assert_eq!(runs[0], runs[1], "two runs gave different PNG bytes");
    assert_ne!(runs[0][0], runs[0][1], "seeds 0 and 1 gave the same image");
    // different seeds differ a lot (not just in noise): mean absolute pixel difference
    let (w, h, p0) = load_image_rgb(&tmp.path().join("run0/seed0000.png"), 1 << 20).unwrap();
    let (_, _, p1) = load_image_rgb(&tmp.path().join("run0/seed0001.png"), 1 << 20).unwrap();
    assert_eq!((w, h), (256, 256));
    let mad = p0.iter().zip(&p1).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / p0.len() as f64;
    eprintln!("seed 0 vs seed 1: mean |diff| {mad:.1} / 255");
    assert!(mad > 10.0, "seeds 0 and 1 look alike (mean |diff| {mad:.1})");
    // a plausible face image: not flat, not clipped everywhere
    let mean = p0.iter().map(|&v| v as f64).sum::<f64>() / p0.len() as f64;
    let sd = (p0.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / p0.len() as f64).sqrt();
    assert!((40.0..215.0).contains(&mean) && sd > 20.0, "seed 0: mean {mean:.1}, sd {sd:.1}");
}

/// The converted file stores `mapping.w_avg`, and psi = 0 maps every seed to it.
#[test]
fn converted_file_has_w_avg_and_truncation_uses_it() {
    let Some((file, _guard)) = common::model_file() else { return };
    let (sd, meta) = read_safetensors(&file).unwrap();
    let avg = &sd["mapping.w_avg"];
    assert_eq!(avg.shape, vec![512]);
    assert!(avg.data.iter().all(|v| v.is_finite()) && avg.data.iter().any(|&v| v != 0.0));
    assert!(meta.get("w_avg").is_some_and(|m| m.contains("4096")), "{meta:?}");
    if std::env::var_os("LIMNER_RANDOM_FACE_DIR").is_none() {
        // fetched through the registry: from the pinned wheel, and listed with its licence
        let prov: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(file.parent().unwrap().join("source.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(prov["sha256"], limner_models::fetch::source("random-face").unwrap().sha256);
        let list = limner_models::list(&burn::tensor::Device::flex());
        let e = list.iter().find(|m| m.name == "random-face").expect("models list shows random-face");
        assert_eq!(e.resolution, Some(1024));
        assert!(e.licence.contains("non-commercial") && e.licence.contains("FFHQ"), "{}", e.licence);
    }
    let g = MobileStyleGan::load(&file, &burn::tensor::Device::flex()).unwrap();
    let z = limner_core::latents_for_seeds(&[3, 4], 512, &burn::tensor::Device::flex());
    let w0 = to_vec(&g.truncate(g.map(z), 0.0));
    for row in w0.chunks_exact(512) {
        assert!(row.iter().zip(&avg.data).all(|(a, b)| (a - b).abs() < 1e-5));
    }
}

/// `limner dataset distill --count 2 --res 64`: two 64² PNGs and a manifest with the seed of
/// each file; a rerun skips both and changes nothing; other settings into the same folder fail.
#[test]
fn distill_writes_manifest_and_sizes_and_resumes() {
    let Some(g) = common::model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("distilled");
    let o = DistillOptions { out: out.clone(), count: 2, res: 64, psi: 0.9, noise: 1.0, seed_start: 5 };
    let mut calls = vec![];
    let r = distill(&g, &o, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!((r.written, r.skipped), (2, 0));
    assert_eq!(calls, vec![(0, 2), (1, 2), (2, 2)]);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["model"], "random-face");
    assert_eq!(m["res"], 64);
    assert_eq!(m["complete"], true);
    assert!((m["psi"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert!(m["licence"].as_str().unwrap().contains("non-commercial"));
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(f["seed"], 5 + i as u64);
        let (w, h, _) = load_image_rgb(&out.join(f["file"].as_str().unwrap()), 1 << 20).unwrap();
        assert_eq!((w, h), (64, 64));
    }
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "seed00000005.png", "seed00000006.png"], "stray files (temporaries?)");

    // the distilled image is the box-downsampled generate output of the same seed
    let direct = faces::generate_seeds(&g, &[6], 0.9, 1.0, 64).unwrap();
    let (_, _, px) = load_image_rgb(&out.join("seed00000006.png"), 1 << 20).unwrap();
    assert!(px == direct[0]);

    // resume: nothing recomputed, nothing changed
    let before = std::fs::read(out.join("seed00000005.png")).unwrap();
    let r = distill(&g, &o, &mut |_, _| {}).unwrap();
    assert_eq!((r.written, r.skipped), (0, 2));
    assert_eq!(std::fs::read(out.join("seed00000005.png")).unwrap(), before);
    // other settings: refused, with the reason
    let e = distill(&g, &DistillOptions { psi: 0.5, ..o.clone() }, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("psi"), "{e}");
    let e = distill(&g, &DistillOptions { res: 100, ..o }, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("100"), "{e}");
}

/// `stylegan2_mapping` (used by `limner train --teacher-mapping random-face`) computes the same
/// z → w as random-face's own mapping, and carries its `w_avg`: a limner generator built on it
/// lives in random-face's w space. A wrong weight or bias gain would be off by 100×.
#[test]
fn teacher_mapping_as_limner_gan_mapping_is_the_same_function() {
    let Some((file, _guard)) = common::model_file() else { return };
    let dev = burn::tensor::Device::flex();
    let g = MobileStyleGan::load(&file, &dev).unwrap();
    let m = g.stylegan2_mapping(0.01, 10, 0.995).unwrap();
    assert_eq!(m.fcs.len(), 8);
    let z = limner_core::latents_for_seeds(&[0, 1, 2, 3, 4, 5, 6, 7], 512, &dev);
    let want = to_vec(&g.map(z.clone()));
    let got = to_vec(&m.forward_w(z));
    let scale = want.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    eprintln!("teacher mapping vs limner-gan mapping: max |diff| / max |w| = {err:.2e}");
    assert!(err < 1e-5, "relative error {err}");
    assert_eq!(to_vec(&m.w_avg), to_vec(&g.w_avg()));
    // the official layer stores W / (lr/sqrt(in)) and initialises it as randn / lr: raw weights
    // of a trained mapping with lr 0.01 have an rms of order 100
    let raw = to_vec(&m.fcs[0].weight);
    let rms = (raw.iter().map(|v| v * v).sum::<f32>() / raw.len() as f32).sqrt();
    assert!((10.0..1000.0).contains(&rms), "raw weight rms {rms}");
}
