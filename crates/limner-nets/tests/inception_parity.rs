//! limner's InceptionV3 vs TensorFlow.js running nsfwjs' own model files (wasm backend, node).
//!
//! Needs the fetched model (`limner models fetch --only inception-v3`): under `CI=true` a
//! missing model fails the test; elsewhere the test prints a note and passes. Runs `npm ci` in
//! tools/tfjs-ref when its node_modules is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use limner_nets::inception::{resize, InceptionV3, Layer, FEATURE_SIZE};

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/tfjs-ref")
}

/// The fetched model, or `None` (with a note) when it is missing outside CI.
fn fetched_model() -> Option<(PathBuf, PathBuf)> {
    match limner_models::fetch::net_path("inception-v3") {
        Ok(p) => {
            let tfjs = p.parent().unwrap().join("package/dist/models/inception_v3");
            assert!(tfjs.join("model.min.js").is_file(), "{} lacks nsfwjs' files: run `limner models fetch --only inception-v3 --force`", tfjs.display());
            Some((p, tfjs))
        }
        Err(e) => limner_core::testing::missing(format!("{e:#}")),
    }
}

fn ensure_node_modules() {
    let dir = tools_dir();
    if dir.join("node_modules/@tensorflow/tfjs-backend-wasm").is_dir() {
        return;
    }
    let st = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().expect("cannot run npm (is node installed?)");
    assert!(st.success(), "`npm ci` in {} failed", dir.display());
}

/// A deterministic, non-square test batch: two smooth colour patterns with some texture,
/// `[N, H, W, 3]` in [0, 1].
fn test_images(n: usize, h: usize, w: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * h * w * 3);
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let (xf, yf, cf) = (x as f64, y as f64, c as f64);
                    let s = 0.5 + 0.45 * (0.07 * xf * (cf + 1.0) + 0.05 * yf + b as f64).sin() * (0.03 * yf * (2.0 - cf)).cos();
                    let tex = if (x / 4 + y / 3 + b) % 2 == 0 { 0.03 } else { -0.03 };
                    v.push((s + tex).clamp(0.0, 1.0) as f32);
                }
            }
        }
    }
    v
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// `‖a − b‖₂ / ‖b‖₂` and `max |a − b| / max |b|`.
fn rel_err(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den, mut maxd, mut maxb) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let d = (*x as f64 - *y as f64).abs();
        num += d * d;
        den += (*y as f64).powi(2);
        maxd = maxd.max(d);
        maxb = maxb.max((*y as f64).abs());
    }
    ((num / den).sqrt(), maxd / maxb)
}

/// NCHW tensor → NHWC host vector (the TF layout).
fn to_nhwc(t: Tensor<4>) -> Vec<f32> {
    t.permute([0, 2, 3, 1]).into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn matches_tfjs_at_mixed2_and_mixed5() {
    let Some((weights, tfjs_dir)) = fetched_model() else { return };
    ensure_node_modules();
    let (n, h, w) = (2, 96, 112);
    let input = test_images(n, h, w);
    let tmp = std::env::temp_dir().join(format!("limner-inception-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let input_path = tmp.join("input.f32");
    std::fs::write(&input_path, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = Command::new("node")
        .arg(tools_dir().join("inception_ref.js"))
        .arg(&tfjs_dir)
        .arg(&input_path)
        .args([n, h, w, FEATURE_SIZE].map(|v| v.to_string()))
        .arg(&tmp)
        .output()
        .expect("cannot run node");
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("tfjs: {}", String::from_utf8_lossy(&out.stdout).trim());

    let device = Device::flex();
    let net = InceptionV3::load(&weights, &device).unwrap();
    // [N, H, W, 3] -> [N, 3, H, W]
    let x = Tensor::<4>::from_data(TensorData::new(input, [n, h, w, 3]), &device).permute([0, 3, 1, 2]);
    let x = resize(x, FEATURE_SIZE); // [N, 3, 128, 128]
    let (e_resize, m_resize) = rel_err(&to_nhwc(x.clone()), &read_f32(&tmp.join("resized.f32")));
    let acts = net.forward_named(x.clone(), &["mixed2", "mixed5"]).unwrap();
    assert_eq!(acts[0].dims(), [n, 288, 13, 13]);
    assert_eq!(acts[1].dims(), [n, 768, 6, 6]);
    let (e2, m2) = rel_err(&to_nhwc(acts[0].clone()), &read_f32(&tmp.join("mixed2.f32")));
    let (e5, m5) = rel_err(&to_nhwc(acts[1].clone()), &read_f32(&tmp.join("mixed5.f32")));
    eprintln!("relative L2 error (max-abs relative): resize {e_resize:.2e} ({m_resize:.2e}), mixed2 {e2:.2e} ({m2:.2e}), mixed5 {e5:.2e} ({m5:.2e})");
    assert!(e_resize < 1e-5, "bilinear resize differs from tf.image.resizeBilinear: {e_resize}");
    assert!(e2 < 1e-3 && m2 < 1e-3, "mixed2 relative error {e2} (max {m2})");
    assert!(e5 < 1e-3 && m5 < 1e-3, "mixed5 relative error {e5} (max {m5})");

    // forward_to and forward_layers agree, and the pooled features are mixed5's spatial mean
    let m5_direct = net.forward_to(x.clone(), Layer::Mixed5);
    let (e_same, _) = rel_err(&to_nhwc(m5_direct.clone()), &to_nhwc(acts[1].clone()));
    assert!(e_same < 1e-6);
    let pooled = net.pooled_features(Tensor::from_data(TensorData::new(test_images(n, h, w), [n, h, w, 3]), &device).permute([0, 3, 1, 2]));
    let mean: Vec<f32> = m5_direct.mean_dim(3).mean_dim(2).into_data().try_into_vec_as::<f32>().unwrap();
    let flat: Vec<f32> = pooled.iter().flatten().copied().collect();
    assert!(rel_err(&flat, &mean).0 < 1e-6);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn unknown_layer_names_list_the_valid_ones() {
    let e = "pool3".parse::<Layer>().unwrap_err().to_string();
    assert!(e.contains("pool3") && e.contains("mixed0") && e.contains("mixed5"), "{e}");
    assert_eq!("mixed3".parse::<Layer>().unwrap(), Layer::Mixed3);
}

#[test]
fn corrupt_weights_are_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("limner-inception-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("inception-v3.safetensors");
    std::fs::write(&p, b"not a safetensors file").unwrap();
    let e = format!("{:#}", InceptionV3::load(&p, &Device::flex()).unwrap_err());
    assert!(e.contains("not a valid safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A batch of 16 or more runs as two halves side by side (`rayon::join`); the features must
/// be exactly those of the two halves run one after the other (below 16 images: one plain
/// pass), in order, and close to each image run alone.
#[test]
fn pooled_features_of_a_split_batch_equal_single_images() {
    let Some((weights, _)) = fetched_model() else { return };
    let device = Device::flex();
    let net = InceptionV3::load(&weights, &device).unwrap();
    let n = 18;
    let x = Tensor::<4>::from_data(TensorData::new(test_images(n, 128, 128), [n, 128, 128, 3]), &device).permute([0, 3, 1, 2]);
    let batch = net.pooled_features(x.clone());
    assert_eq!(batch.len(), n);
    let mut halves = net.pooled_features(x.clone().slice([0..9]));
    halves.extend(net.pooled_features(x.clone().slice([9..18])));
    assert!(batch == halves, "the split batch differs from its halves run in turn");
    for i in [0, 9, 17] {
        let one = net.pooled_features(x.clone().slice([i..i + 1]));
        let e = rel_err(&batch[i], &one[0]).0;
        assert!(e < 1e-6, "image {i}: {e}");
    }
}
