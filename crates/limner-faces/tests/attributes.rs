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

/// The identity network on the autodiff device (what `limner_edit::refine` steers with): the
/// same descriptors as on the plain device, and a gradient of the identity distance to another
/// face that agrees with a central finite difference along it (±0.02 grey levels rms per pixel)
/// within 5 %.
#[test]
fn identity_distance_gradient_matches_finite_differences() {
    let Some(()) = models() else { return };
    let device = Device::flex();
    let f = faces(2);
    let crops: Vec<Image> = f.iter().map(|im| im.face_input(150)).collect();
    let plain = limner_faces::recognition::FaceRecognitionNet::load_fetched(&device).unwrap();
    let ad = device.clone().autodiff();
    let net = limner_faces::recognition::FaceRecognitionNet::load_fetched(&ad).unwrap();
    let want = plain.descriptors(batch(&crops, &device));
    let got = net.descriptors(batch(&crops, &ad));
    for (w, g) in want.iter().zip(&got) {
        assert!(w.iter().zip(g).all(|(a, b)| (a - b).abs() < 1e-5), "autodiff descriptors differ");
    }
    let target = limner_core::tensor_from(want[1].to_vec(), [1, 128], &ad);
    let dist = |x: burn::tensor::Tensor<4>| (net.forward(x) - target.clone()).square().sum().sqrt();
    let x = batch(&crops[..1], &ad).require_grad();
    let d0 = dist(x.clone());
    let grads = d0.backward();
    let g = to_vec(&x.grad(&grads).expect("a gradient for the pixels"));
    let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(norm > 0.0 && g.iter().all(|v| v.is_finite()), "no gradient reached the pixels");
    // step along the gradient: rms grey levels per pixel
    let shifted = |sgn: f32, h: f32| {
        let base = batch(&crops[..1], &device);
        let dir = limner_core::tensor_from(g.clone(), base.dims(), &device); // NCHW, as the gradient
        to_vec(&(plain.forward(base + dir.mul_scalar(sgn * h)) - limner_core::tensor_from(want[1].to_vec(), [1, 128], &device)).square().sum().sqrt())[0]
    };
    // 0.02 grey levels: ReLU kinks make larger steps read lower (2 levels: a quarter of it)
    let h = 0.02 * (g.len() as f32).sqrt() / norm;
    let numeric = (shifted(1.0, h) - shifted(-1.0, h)) / (2.0 * h);
    let analytic = norm; // the derivative along g / |g| is |g|; along g it is |g|²
    eprintln!("identity distance {:.4}: d/dx along the gradient {:.4e} (finite difference) vs {:.4e} (autodiff, |g|)", to_vec(&d0)[0], numeric / norm, analytic);
    assert!(((numeric / norm) - analytic).abs() < 0.05 * analytic, "finite difference {:.4e} vs autodiff {analytic:.4e}", numeric / norm);
}
