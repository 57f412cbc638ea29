//! faces-bench: times limner's face networks (limner-faces, burn flex) per batch, for
//! `bench/faces.sh`, which runs TF.js (tools/tfjs-ref/face_bench.js, wasm backend) on the same
//! shapes and prints both side by side. Each measurement prints
//! `RESULT limner faces/<net> batch=B ms=<median>`.
//!
//! Usage: faces-bench [--quick]   (needs `limner models fetch --only face-api`)

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use limner_faces::age_gender::AgeGenderNet;
use limner_faces::expression::FaceExpressionNet;
use limner_faces::landmarks68::{FaceLandmark68Net, LandmarkModel};
use limner_faces::recognition::FaceRecognitionNet;
use limner_faces::ssd_mobilenet::SsdMobilenetV1;
use limner_faces::tiny_face_detector::TinyFaceDetector;

fn median_ms(runs: usize, dev: &Device, mut f: impl FnMut()) -> f64 {
    f();
    dev.sync().unwrap();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            dev.sync().unwrap();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn main() -> anyhow::Result<()> {
    limner_kernels::keep_freed_memory();
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 9 };
    let dev = Device::flex();
    dev.seed(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# faces-bench: burn 0.22.1 flex, {runs} runs per line (median), loadavg at start: {}", load.trim());
    let tiny = TinyFaceDetector::load_fetched(&dev)?;
    let ssd = SsdMobilenetV1::load_fetched(&dev)?;
    let lm = FaceLandmark68Net::load_fetched(LandmarkModel::Full, &dev)?;
    let lm_tiny = FaceLandmark68Net::load_fetched(LandmarkModel::Tiny, &dev)?;
    let expr = FaceExpressionNet::load_fetched(&dev)?;
    let ag = AgeGenderNet::load_fetched(&dev)?;
    let rec = FaceRecognitionNet::load_fetched(&dev)?;
    let input = |n: usize, s: usize| Tensor::<4>::random([n, 3, s, s], Distribution::Uniform(0.0, 255.0), &dev);
    for batch in [1usize, 8] {
        let report = |name: &str, ms: f64| println!("RESULT limner faces/{name} batch={batch} ms={ms:.2}");
        let x = input(batch, 416);
        report("tiny_face_detector_416", median_ms(runs, &dev, || drop(tiny.forward(x.clone()))));
        let x = input(batch, 160);
        report("tiny_face_detector_160", median_ms(runs, &dev, || drop(tiny.forward(x.clone()))));
        let x = input(batch, 512);
        report("ssd_mobilenetv1_512", median_ms(runs, &dev, || drop(ssd.forward(x.clone()))));
        let x = input(batch, 112);
        report("face_landmark_68", median_ms(runs, &dev, || drop(lm.forward(x.clone()))));
        report("face_landmark_68_tiny", median_ms(runs, &dev, || drop(lm_tiny.forward(x.clone()))));
        report("face_expression", median_ms(runs, &dev, || drop(expr.forward(x.clone()))));
        report("age_gender", median_ms(runs, &dev, || drop(ag.forward(x.clone()))));
        let x = input(batch, 150);
        report("face_recognition", median_ms(runs, &dev, || drop(rec.forward(x.clone()))));
    }
    Ok(())
}
