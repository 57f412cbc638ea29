//! The batch, tensor-level attribute API later features build on: the same numbers as the
//! per-crop pipeline, and gradients that reach the images on an autodiff device.

mod common;

use burn::tensor::Device;
use common::*;
use limner_faces::image::batch;
use limner_core::to_vec;
use limner_faces::{FaceAnalyzer, FaceAnalyzerConfig, Image};

#[test]
fn attribute_tensors_match_the_pipeline_and_carry_gradients() {
    let Some(()) = models() else { return };
    let device = Device::flex();
    let crops: Vec<Image> = faces(3).iter().map(|f| f.face_input(112)).collect();
    let fa = FaceAnalyzer::load_fetched(FaceAnalyzerConfig::default(), &device).unwrap();
    let per_crop = fa.attributes(&crops);
    let t = fa.attribute_tensors(batch(&crops, &device));
    let (age, male, expr) = (to_vec(&t.age), to_vec(&t.male), to_vec(&t.expressions));
    for (i, a) in per_crop.iter().enumerate() {
        assert!((a.age - age[i]).abs() < 1e-3, "age {} vs {}", a.age, age[i]);
        assert!((a.male_probability - male[i]).abs() < 1e-5);
        for k in 0..7 {
            assert!((a.expressions[k] - expr[i * 7 + k]).abs() < 1e-5);
        }
        assert!((a.expressions.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    // 128 px crops go through burn's (differentiable) resize: close to, not equal to, face-api's
    let big: Vec<Image> = faces(3);
    let t128 = fa.attribute_tensors(batch(&big, &device));
    let ages128 = to_vec(&t128.age);
    let ages_resized: Vec<f32> = fa.attributes(&big).iter().map(|a| a.age).collect();
    for (a, b) in ages128.iter().zip(&ages_resized) {
        assert!((a - b).abs() < 5.0, "ages after two resizes: {a} vs {b}");
    }

    // gradients reach the pixels
    let ad = device.autodiff();
    let fa = FaceAnalyzer::load_fetched(FaceAnalyzerConfig::default(), &ad).unwrap();
    let x = batch(&crops, &ad).require_grad();
    let t = fa.attribute_tensors(x.clone());
    let loss = t.age.sum() + t.expressions.slice_dim(1, 1..2).sum(); // older and happier
    let grads = loss.backward();
    let g = to_vec(&x.grad(&grads).expect("a gradient for the images"));
    let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
    eprintln!("|d(age + happy)/d(pixels)| = {norm:.3e} over {} values", g.len());
    assert!(g.iter().all(|v| v.is_finite()) && norm > 0.0, "no gradient reached the images");
}
