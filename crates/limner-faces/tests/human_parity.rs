//! The independent judge (human-models' BlazeFace, FaceRes, emotion in burn) vs TensorFlow.js
//! (node, wasm backend, tools/tfjs-ref/human_ref.js), on real faces:
//!
//! 1. each graph model on the *same* tensors (only the networks are compared): BlazeFace's raw
//!    896 × 17 outputs, FaceRes' gender, age bins and descriptor, the emotion probabilities;
//! 2. `@vladmandic/human@3.3.6` itself (face mesh off) on whole images: the same face box, the
//!    same 256² crop, the same raw age bins, gender and emotions from that crop, and human's own
//!    rounded age, gender and top emotion.
//!
//! Needs `limner models fetch --only human-models` (under CI=true a missing model fails) and node.

mod common;

use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use limner_core::to_vec;
use limner_faces::human::blazeface::{self, BlazeFace};
use limner_faces::human::emotion::{Emotion, LABELS};
use limner_faces::human::faceres::{self, FaceRes};
use limner_faces::human::{emotion_input, face_crop, faceres_input, Judge};
use limner_faces::image::batch;
use limner_faces::Image;
use serde_json::{json, Value};

#[test]
fn judge_matches_human_in_tfjs() {
    let Some(_) = limner_core::testing::fetched(limner_models::fetch::net_path("human-blazeface")) else { return };
    ensure_node_modules();
    let device = Device::flex();
    let faces = faces(3);
    let n = faces.len();
    // whole images: the faces as they are, in a larger square, off-centre in a non-square canvas
    let whole = vec![faces[0].clone(), paste(&faces[1], 256, 256, 64, 40), paste(&faces[2], 300, 200, 150, 40)];
    let bf_in: Vec<Image> = whole.iter().map(blazeface::input).collect();
    let unit = |im: &Image| Image { width: im.width, height: im.height, data: im.data.iter().map(|v| v / 255.0).collect() };
    let fr_in: Vec<Image> = faces.iter().map(|f| faceres_input(&unit(f))).collect();
    let em_in: Vec<f32> = faces.iter().flat_map(|f| emotion_input(&unit(f))).collect();

    let tmp = std::env::temp_dir().join(format!("limner-human-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let stack = |ims: &[Image]| ims.iter().flat_map(|i| i.data.iter().copied()).collect::<Vec<f32>>();
    let mut tensors = serde_json::Map::new();
    for (name, data, shape) in [
        ("bf", stack(&bf_in), vec![whole.len(), 256, 256, 3]),
        ("faceres", stack(&fr_in), vec![n, 224, 224, 3]),
        ("emotion", em_in.clone(), vec![n, 64, 64, 1]),
    ] {
        let p = tmp.join(format!("in_{name}.f32"));
        write_f32(&p, &data);
        tensors.insert(name.into(), json!({ "file": p, "shape": shape }));
    }
    let mut images = vec![];
    for (i, im) in whole.iter().enumerate() {
        let p = tmp.join(format!("in_whole{i}.f32"));
        write_f32(&p, &im.data);
        images.push(json!({ "file": p, "shape": [im.height, im.width, 3] }));
    }
    let model_dir = limner_models::fetch::human_model_dir().expect("human-models' original graph models: run `limner models fetch --only human-models --force`");
    std::fs::write(tmp.join("job.json"), json!({ "model_dir": model_dir, "tensors": tensors, "images": images }).to_string()).unwrap();
    let out = Command::new("node").arg(tools_dir().join("human_ref.js")).arg(tmp.join("job.json")).arg(&tmp).output().expect("cannot run node");
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("tfjs: {}", String::from_utf8_lossy(&out.stdout).trim());
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(tmp.join("results.json")).unwrap()).unwrap();
    assert_eq!(reference["version"], "3.3.6");

    // 1. the networks on identical inputs
    let bf = BlazeFace::fetched(&device).unwrap();
    let raw = to_vec(&bf.forward(batch(&bf_in, &device)));
    let want = read_f32(&tmp.join("bf.f32"));
    let (m, r) = errors(&raw, &want);
    // the regressors are in input pixels (up to a few hundred): compare to the largest value
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs() as f64));
    eprintln!("blazeface raw outputs: max abs {m:.2e} of values up to {scale:.0} ({:.2e} relative), rel L2 {r:.2e}", m / scale);
    assert!(r < 1e-4 && m < 1e-4 * scale, "BlazeFace differs: max {m}, rel {r}");

    let fr = FaceRes::fetched(&device).unwrap();
    let o = fr.forward(batch(&fr_in, &device));
    let (mg, _) = errors(&to_vec(&o.gender), &read_f32(&tmp.join("faceres_gender.f32")));
    let (ma, _) = errors(&to_vec(&o.age), &read_f32(&tmp.join("faceres_age.f32")));
    let (md, rd) = errors(&to_vec(&o.descriptor), &read_f32(&tmp.join("faceres_desc.f32")));
    eprintln!("faceres: gender max abs {mg:.2e}, age bins max abs {ma:.2e}, descriptor max abs {md:.2e} (rel L2 {rd:.2e})");
    assert!(mg < 1e-4 && ma < 1e-4 && rd < 1e-4, "FaceRes differs");

    let em = Emotion::fetched(&device).unwrap();
    let probs = to_vec(&em.forward(Tensor::<4>::from_data(TensorData::new(em_in, [n, 1, 64, 64]), &device)));
    let (me, _) = errors(&probs, &read_f32(&tmp.join("emotion.f32")));
    eprintln!("emotion: max abs {me:.2e}");
    assert!(me < 1e-4, "the emotion network differs: max {me}");

    // 2. human itself on whole images
    let judge = Judge::fetched(&device).unwrap();
    let readings = judge.read(&whole);
    let (mut crop_err, mut prob_err, mut found) = (0.0f64, 0.0f64, 0);
    for (i, (ours, theirs)) in readings.iter().zip(reference["human"].as_array().unwrap()).enumerate() {
        let theirs = theirs.as_array().unwrap();
        assert_eq!(ours.is_some(), !theirs.is_empty(), "image {i}: we found {} face, human {}", ours.is_some() as u8, theirs.len());
        let (Some(ours), Some(t)) = (ours, theirs.first()) else { continue };
        found += 1;
        let im = &whole[i];
        // human's boxRaw: the (unclamped) squared box over the image size
        let raw_box = t["boxRaw"].as_array().unwrap();
        let [x1, y1, x2, y2] = ours.box_xyxy;
        let want = [x1 / im.width as f32, y1 / im.height as f32, (x2 - x1) / im.width as f32, (y2 - y1) / im.height as f32];
        for (a, b) in want.iter().zip(raw_box) {
            assert!((a - num(b)).abs() < 1e-5, "image {i}: box {want:?} vs human's {raw_box:?}");
        }
        assert!((ours.box_score - num(&t["boxScore"])).abs() < 0.006, "image {i}: score {} vs {}", ours.box_score, t["boxScore"]);
        let b = blazeface::FaceBox { start: [x1, y1], end: [x2, y2], confidence: ours.box_score };
        let crop = face_crop(im, &b);
        let (m, _) = errors(&crop.data, &read_f32(&tmp.join(format!("face{i}.f32"))));
        crop_err = crop_err.max(m);
        let bins = read_f32(&tmp.join(format!("human{i}_age.f32")));
        let male = read_f32(&tmp.join(format!("human{i}_gender.f32")))[0];
        let emo = read_f32(&tmp.join(format!("human{i}_emotion.f32")));
        prob_err = prob_err.max((ours.male - male).abs() as f64).max(errors(&ours.emotions, &emo).0);
        let age = faceres::expected_age(&bins);
        assert!((ours.age - age).abs() < 1e-3, "image {i}: age {} vs {age}", ours.age);
        // human's own rounded readings
        assert_eq!(ours.gender(), t["gender"].as_str().unwrap(), "image {i}: gender");
        assert!((ours.age_human - num(&t["age"])).abs() < 0.051, "image {i}: human's age {} vs {}", ours.age_human, t["age"]);
        let top = t["emotion"].as_array().unwrap()[0]["emotion"].as_str().unwrap();
        assert_eq!(ours.top_emotion().0, top, "image {i}: top emotion");
        assert!(LABELS.contains(&top));
        eprintln!(
            "image {i}: box {:?} score {:.3}; {} (P(male) {:.3}), age {:.1} (human {:.1}), {} {:.2}",
            ours.box_xyxy, ours.box_score, ours.gender(), ours.male, ours.age, ours.age_human, ours.top_emotion().0, ours.top_emotion().1
        );
    }
    eprintln!("end to end: {found} faces; crop max abs {crop_err:.2e} (0..1), probabilities max abs {prob_err:.2e}");
    assert!(found >= 2, "human found a face in only {found} of {} images", whole.len());
    assert!(crop_err < 1e-4 && prob_err < 1e-4, "the judge differs from human: crop {crop_err}, probabilities {prob_err}");
    let _ = std::fs::remove_dir_all(&tmp);
}
