//! limner's nsfwjs classifier (`limner_nets::nsfw`) vs the nsfwjs npm package itself
//! (nsfwjs@4.3.0 `infer` on TensorFlow.js, wasm backend, node): the five class probabilities of
//! a few pictures of different kinds and sizes (a generated face, a photo-like screenshot, two
//! drawings), from the same 8-bit pixels.
//!
//! Thresholds: every probability within 1e-4 of nsfwjs' (absolute) and the same top class
//! (measured: worst 2.0e-6, 1.6e-9 on the face); `classify_rgb8`, which
//! brings pictures over 1024 px down in 8-bit first, within 0.05 of the explicit sum there.
//! No explicit picture is used (none can be shipped): the parity of all five outputs,
//! Porn/Hentai/Sexy included, is what shows the explicit score is nsfwjs'.
//!
//! Needs the fetched model (`limner models fetch --only inception-v3`): under `CI=true` a missing
//! model (or node) fails the test; elsewhere the test prints a note and passes. Runs `npm ci` in
//! tools/tfjs-ref when its node_modules lacks nsfwjs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use limner_nets::nsfw::{NsfwClassifier, CLASSES, MAX_SIDE, NSFW_SIZE};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ensure_node_modules() {
    let dir = repo().join("tools/tfjs-ref");
    if dir.join("node_modules/nsfwjs/package.json").is_file() && dir.join("node_modules/@tensorflow/tfjs-backend-wasm").is_dir() {
        return;
    }
    let st = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status().expect("cannot run npm (is node installed?)");
    assert!(st.success(), "`npm ci` in {} failed", dir.display());
}

/// The test pictures: (name, width, height, 8-bit RGB).
fn pictures() -> Vec<(String, usize, usize, Vec<u8>)> {
    ["models/default/reference/seed0000.png", "docs/studio/photo.png", "docs/examples/swirls.png", "docs/examples/art.png"]
        .iter()
        .map(|p| {
            let bytes = std::fs::read(repo().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            let (w, h, rgb) = limner_data::imageio::decode_image_rgb(&bytes, 1 << 24).unwrap();
            (p.to_string(), w as usize, h as usize, rgb)
        })
        .collect()
}

#[test]
fn matches_nsfwjs_probabilities() {
    let Some(net) = limner_core::testing::fetched(NsfwClassifier::load_fetched(&Device::flex())) else { return };
    ensure_node_modules();
    let pics = pictures();
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec![tmp.path().join("ref.json").display().to_string()];
    for (i, (_, w, h, rgb)) in pics.iter().enumerate() {
        let f = tmp.path().join(format!("{i}.rgb"));
        std::fs::write(&f, rgb).unwrap();
        args.extend([f.display().to_string(), w.to_string(), h.to_string()]);
    }
    let out = match Command::new("node").arg(repo().join("tools/tfjs-ref/nsfw_ref.js")).args(&args).output() {
        Ok(o) => o,
        Err(e) => return limner_core::testing::missing(format!("cannot run node: {e}")).unwrap_or(()),
    };
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("ref.json")).unwrap()).unwrap();
    assert_eq!(reference["classes"], serde_json::json!(CLASSES), "nsfwjs' class order");
    eprintln!("nsfwjs (tfjs {}): {:.0} ms an image", reference["backend"], reference["ms_per_image"].as_f64().unwrap());

    let mut worst = 0.0f32;
    for (i, (name, w, h, rgb)) in pics.iter().enumerate() {
        // nsfwjs' own preprocessing on the whole picture (/255, bilinear to 299 px)
        let x = Tensor::<4>::from_data(TensorData::new(rgb.iter().map(|&v| v as f32 / 255.0).collect::<Vec<f32>>(), [1, *h, *w, 3]), &Device::flex()).permute([0, 3, 1, 2]);
        let t = Instant::now();
        let got = net.classify(x).pop().unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let want: Vec<f32> = reference["probs"][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let err = got.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        worst = worst.max(err);
        eprintln!("{name} ({w}×{h}): limner {:?} nsfwjs {want:?}: max |Δp| {err:.2e}, top {:?}, explicit {:.4}, {ms:.0} ms", got.probs, got.top(), got.explicit());
        assert!((got.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4, "probabilities sum to 1");
        assert!(err < 1e-4, "{name}: probabilities differ from nsfwjs' by {err} ({:?} vs {want:?})", got.probs);
        let top = want.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b }).0;
        assert_eq!(got.top().0, CLASSES[top], "{name}: top class");
        // classify_rgb8 (what the studio and `limner nsfw` call) is that same path up to
        // MAX_SIDE px; a larger picture is first brought down to it in 8-bit, which moves the
        // probabilities a little: the same top class and the explicit sum within 0.05
        let quick = net.classify_rgb8(*w, *h, rgb).unwrap();
        let d_explicit = (quick.explicit() - got.explicit()).abs();
        if w.max(h) <= &MAX_SIDE {
            assert_eq!(quick.probs, got.probs, "{name}: classify_rgb8 is classify below {MAX_SIDE} px");
        } else {
            eprintln!("{name}: brought down to {MAX_SIDE} px first: explicit {:.4} (|Δ| {d_explicit:.2e} from the full picture)", quick.explicit());
            assert!(quick.top().0 == got.top().0 && d_explicit < 0.05, "{name}: {quick:?} vs {got:?}");
        }
    }
    eprintln!("worst |Δp| over {} pictures: {worst:.2e}", pics.len());
    // a generated face is neither a drawing nor explicit to nsfwjs
    let face = net.classify_rgb8(pics[0].1, pics[0].2, &pics[0].3).unwrap();
    assert_eq!(face.top().0, "Neutral", "{face:?}");

    // a batch classifies each image as alone, and `forward` refuses another size
    let [a, b] = [&pics[0], &pics[2]].map(|(_, w, h, rgb)| {
        let x = Tensor::<4>::from_data(TensorData::new(rgb.iter().map(|&v| v as f32 / 255.0).collect::<Vec<f32>>(), [1, *h, *w, 3]), &Device::flex()).permute([0, 3, 1, 2]);
        limner_nets::inception::resize(x, NSFW_SIZE)
    });
    let both = net.classify(Tensor::cat(vec![a, b], 0));
    let alone = net.classify_rgb8(pics[2].1, pics[2].2, &pics[2].3).unwrap();
    assert_eq!(both.len(), 2);
    assert!(both[0].probs.iter().zip(&face.probs).chain(both[1].probs.iter().zip(&alone.probs)).all(|(x, y)| (x - y).abs() < 1e-5), "{both:?}");
}

#[test]
fn wrong_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nsfwjs-head.safetensors");
    std::fs::write(&p, b"not a safetensors file").unwrap();
    let trunk = dir.path().join("inception-v3.safetensors");
    std::fs::write(&trunk, b"nor this").unwrap();
    let e = format!("{:#}", NsfwClassifier::load(&trunk, &p, &Device::flex()).unwrap_err());
    assert!(e.contains("not a valid safetensors"), "{e}");
    let n = limner_nets::NsfwScores { probs: [0.1, 0.2, 0.3, 0.25, 0.15] };
    assert!((n.explicit() - 0.6).abs() < 1e-6 && n.top() == ("Neutral", 0.3));
}
