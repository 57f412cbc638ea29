//! limner's face networks vs face-api itself in TensorFlow.js (node, wasm backend,
//! tools/tfjs-ref/face_ref.js), on real faces:
//!
//! 1. each network on the *same* preprocessed tensors (so only the networks are compared):
//!    the tiny detector's raw grid and its decoded, suppressed boxes; SSD-MobileNetV1's
//!    decoded boxes, scores and detections; 68 landmarks (full, tiny);
//!    expression probabilities; age and gender; the 128-d descriptor;
//! 2. the whole pipeline on whole images (face-api pads, resizes and crops them itself; one
//!    face sits off-centre in a larger, non-square canvas).
//!
//! Needs `limner models fetch --only face-api` (under CI=true a missing model fails) and node.

mod common;

use std::process::Command;

use burn::tensor::{Device, Tensor};
use common::*;
use limner_faces::age_gender::AgeGenderNet;
use limner_faces::expression::FaceExpressionNet;
use limner_faces::image::batch;
use limner_faces::landmarks68::{FaceLandmark68Net, LandmarkModel};
use limner_core::to_vec;
use limner_faces::recognition::FaceRecognitionNet;
use limner_faces::ssd_mobilenet::{SsdMobilenetV1, SsdMobilenetV1Config};
use limner_faces::tiny_face_detector::{TinyFaceDetector, TinyFaceDetectorConfig};
use limner_faces::{FaceAnalyzer, FaceAnalyzerConfig, Image};
use serde_json::{json, Value};

/// `[N, C, H, W]` → NHWC host values (the TF layout).
fn nhwc(t: Tensor<4>) -> Vec<f32> {
    to_vec(&t.permute([0, 2, 3, 1]))
}

fn stack_hwc(images: &[Image]) -> Vec<f32> {
    images.iter().flat_map(|i| i.data.iter().copied()).collect()
}

#[test]
fn networks_and_pipeline_match_face_api_in_tfjs() {
    let Some(()) = models() else { return };
    ensure_node_modules();
    let device = Device::flex();
    let faces = faces(3);
    let n = faces.len();
    let cfg = TinyFaceDetectorConfig::default();
    let s = cfg.input_size;
    let det: Vec<Image> = faces.iter().map(|f| f.detector_input(s)).collect();
    let ssd_cfg = SsdMobilenetV1Config::default();
    let ssd_in: Vec<Image> = faces.iter().map(|f| f.detector_input(ssd_cfg.input_size)).collect();
    let f112: Vec<Image> = faces.iter().map(|f| f.face_input(112)).collect();
    let f150: Vec<Image> = faces.iter().map(|f| f.face_input(150)).collect();
    // portraits framed as tightly as FFHQ's are too close for the detector at 416 px: give them room
    let whole = vec![paste(&faces[0], 300, 240, 90, 40), paste(&faces[1], 250, 300, 50, 130)];

    let tmp = std::env::temp_dir().join(format!("limner-faces-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut tensors = serde_json::Map::new();
    for (name, ims, side) in [("det", &det, s), ("ssd", &ssd_in, ssd_cfg.input_size), ("face112", &f112, 112), ("face150", &f150, 150)] {
        let p = tmp.join(format!("in_{name}.f32"));
        write_f32(&p, &stack_hwc(ims));
        tensors.insert(name.into(), json!({ "file": p, "shape": [n, side, side, 3] }));
    }
    let mut images = vec![];
    for (i, im) in whole.iter().enumerate() {
        let p = tmp.join(format!("in_whole{i}.f32"));
        write_f32(&p, &im.data);
        images.push(json!({ "file": p, "shape": [im.height, im.width, 3] }));
    }
    let model_dir = limner_models::fetch::face_api_model_dir().expect("face-api's original model files: run `limner models fetch --only face-api --force`");
    let job = json!({ "model_dir": model_dir, "input_size": s, "score_threshold": cfg.score_threshold, "ssd_min_confidence": ssd_cfg.min_confidence, "tensors": tensors, "images": images });
    std::fs::write(tmp.join("job.json"), job.to_string()).unwrap();
    let out = Command::new("node").arg(tools_dir().join("face_ref.js")).arg(tmp.join("job.json")).arg(&tmp).output().expect("cannot run node");
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("tfjs: {}", String::from_utf8_lossy(&out.stdout).trim());
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(tmp.join("results.json")).unwrap()).unwrap();

    // 1. networks on identical inputs
    let detector = TinyFaceDetector::load_fetched(&device).unwrap();
    let grid = detector.forward(batch(&det, &device));
    let (e_max, e_rel) = errors(&nhwc(grid), &read_f32(&tmp.join("det_grid.f32")));
    eprintln!("detector grid: max abs {e_max:.2e}, rel L2 {e_rel:.2e}");
    assert!(e_rel < 1e-4 && e_max < 1e-3, "detector grid differs: max {e_max}, rel {e_rel}");
    let dets = detector.detect(batch(&det, &device), &vec![(s, s); n], &cfg);
    let mut worst_box = 0.0f32;
    for (i, (ours, theirs)) in dets.iter().zip(reference["detections"].as_array().unwrap()).enumerate() {
        let theirs = theirs.as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "image {i}: {} detections, face-api {}", ours.len(), theirs.len());
        for (d, t) in ours.iter().zip(theirs) {
            assert!((d.score - num(&t["score"])).abs() < 1e-4, "score {} vs {}", d.score, t["score"]);
            let b = &t["box"];
            for (a, k) in [(d.rel_box.x, "x"), (d.rel_box.y, "y"), (d.rel_box.width, "width"), (d.rel_box.height, "height")] {
                worst_box = worst_box.max((a - num(&b[k])).abs());
            }
        }
    }
    assert!(dets.iter().any(|d| !d.is_empty()), "no face found in any of the face images");
    eprintln!("detections: {:?} per image, worst relative box coordinate error {worst_box:.2e}", dets.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(worst_box < 1e-4, "boxes differ by {worst_box}");

    let ssd = SsdMobilenetV1::load_fetched(&device).unwrap();
    let (boxes, scores) = ssd.forward(batch(&ssd_in, &device));
    let (mb, rb) = errors(&to_vec(&boxes), &read_f32(&tmp.join("ssd_boxes.f32")));
    let (ms, rs) = errors(&to_vec(&scores), &read_f32(&tmp.join("ssd_scores.f32")));
    eprintln!("ssd-mobilenetv1: boxes max abs {mb:.2e} (rel L2 {rb:.2e}), scores max abs {ms:.2e} (rel L2 {rs:.2e})");
    assert!(mb < 1e-4 && rb < 1e-4 && ms < 1e-4, "SSD outputs differ");
    let ssd_dets = ssd.detect(batch(&ssd_in, &device), &vec![(ssd_cfg.input_size, ssd_cfg.input_size); n], &ssd_cfg);
    let mut worst = 0.0f32;
    for (i, (ours, theirs)) in ssd_dets.iter().zip(reference["ssd_detections"].as_array().unwrap()).enumerate() {
        let theirs = theirs.as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "SSD image {i}: {} detections, face-api {}", ours.len(), theirs.len());
        for (d, t) in ours.iter().zip(theirs) {
            worst = worst.max((d.score - num(&t["score"])).abs());
            for (a, k) in [(d.rel_box.x, "x"), (d.rel_box.y, "y"), (d.rel_box.width, "width"), (d.rel_box.height, "height")] {
                worst = worst.max((a - num(&t["box"][k])).abs());
            }
        }
    }
    eprintln!("ssd detections: {:?} per image, worst score/box error {worst:.2e}", ssd_dets.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(ssd_dets.iter().all(|d| !d.is_empty()), "SSD found no face in a face image");
    assert!(worst < 1e-4, "SSD detections differ by {worst}");

    let x112 = batch(&f112, &device);
    for (model, file) in [(LandmarkModel::Full, "landmarks"), (LandmarkModel::Tiny, "landmarks_tiny")] {
        let net = FaceLandmark68Net::load_fetched(model, &device).unwrap();
        let (m, r) = errors(&to_vec(&net.forward(x112.clone())), &read_f32(&tmp.join(format!("{file}.f32"))));
        eprintln!("{file}: max abs {m:.2e} (of the face square), rel L2 {r:.2e}");
        assert!(m < 1e-4 && r < 1e-4, "{file} differ: max {m}, rel {r}");
    }
    let expr = FaceExpressionNet::load_fetched(&device).unwrap();
    let (m, r) = errors(&to_vec(&expr.forward(x112.clone())), &read_f32(&tmp.join("expressions.f32")));
    eprintln!("expressions: max abs {m:.2e}, rel L2 {r:.2e}");
    assert!(m < 1e-4 && r < 1e-4, "expressions differ: max {m}, rel {r}");
    let ag = AgeGenderNet::load_fetched(&device).unwrap();
    let (age, gender) = ag.forward(x112);
    let (age, gender) = (to_vec(&age), to_vec(&gender));
    let (ma, ra) = errors(&age, &read_f32(&tmp.join("age.f32")));
    let (mg, _) = errors(&gender, &read_f32(&tmp.join("gender.f32")));
    eprintln!("age {age:?}: max abs {ma:.2e} years, rel {ra:.2e}; gender: max abs {mg:.2e}");
    assert!(ra < 1e-4 && mg < 1e-4, "age/gender differ: age rel {ra}, gender max {mg}");
    let rec = FaceRecognitionNet::load_fetched(&device).unwrap();
    let ours = to_vec(&rec.forward(batch(&f150, &device)));
    let theirs = read_f32(&tmp.join("descriptors.f32"));
    let (m, r) = errors(&ours, &theirs);
    let cos = ours.chunks(128).zip(theirs.chunks(128)).map(|(a, b)| cosine(a, b)).fold(1.0f64, f64::min);
    eprintln!("descriptors: min cosine {cos:.7}, max abs {m:.2e}, rel L2 {r:.2e}");
    assert!(cos > 0.9999 && r < 1e-4, "descriptors differ: cosine {cos}, rel {r}");

    // 2. the whole pipeline
    let analyzer = FaceAnalyzer::load_fetched(FaceAnalyzerConfig { descriptors: true, zoom_out: false, ..Default::default() }, &device).unwrap();
    let found = analyzer.analyze(&whole);
    let (mut px, mut prob, mut years, mut cos) = (0.0f32, 0.0f32, 0.0f32, 1.0f64);
    for (i, (ours, theirs)) in found.iter().zip(reference["end_to_end"].as_array().unwrap()).enumerate() {
        let theirs = theirs.as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "image {i}: {} faces, face-api {}", ours.len(), theirs.len());
        assert!(!ours.is_empty(), "image {i}: no face");
        for (f, t) in ours.iter().zip(theirs) {
            for (a, k) in [(f.rect.x, "x"), (f.rect.y, "y"), (f.rect.width, "width"), (f.rect.height, "height")] {
                px = px.max((a - num(&t["box"][k])).abs());
            }
            for (a, k) in [(f.aligned.x, "x"), (f.aligned.y, "y"), (f.aligned.width, "width"), (f.aligned.height, "height")] {
                px = px.max((a - num(&t["aligned"][k])).abs());
            }
            for (p, q) in f.landmarks.iter().zip(t["landmarks"].as_array().unwrap()) {
                px = px.max((p[0] - num(&q[0])).abs()).max((p[1] - num(&q[1])).abs());
            }
            for (p, q) in f.attributes.expressions.iter().zip(t["expressions"].as_array().unwrap()) {
                prob = prob.max((p - num(q)).abs());
            }
            let (g, gp) = f.attributes.gender();
            assert_eq!(g, t["gender"].as_str().unwrap());
            prob = prob.max((gp - num(&t["gender_probability"])).abs());
            years = years.max((f.attributes.age - num(&t["age"])).abs());
            let d: Vec<f32> = t["descriptor"].as_array().unwrap().iter().map(num).collect();
            cos = cos.min(cosine(f.attributes.descriptor.as_ref().unwrap(), &d));
            eprintln!("image {i}: {} (box {:.1},{:.1} {:.1}×{:.1})", f.attributes.sentence(), f.rect.x, f.rect.y, f.rect.width, f.rect.height);
        }
    }
    eprintln!("end to end: max {px:.2e} px (boxes, landmarks), {prob:.2e} (probabilities), {years:.2e} years, min descriptor cosine {cos:.7}");
    assert!(px < 0.01 && prob < 1e-3 && years < 0.01 && cos > 0.9999, "the pipeline differs from face-api's");
    let _ = std::fs::remove_dir_all(&tmp);
}
