//! The LPIPS-style distance on the real InceptionV3 weights, as `limner train --perceptual`
//! uses it: zero between an image and itself, larger for a more different image, and its
//! gradient (through the autodiff copy of the network) lowers it.
//!
//! Needs the fetched model (`limner models fetch --only inception-v3`): under `CI=true` a
//! missing model fails these tests; elsewhere they print a note and pass.

use burn::tensor::{Device, Tensor, TensorData};
use limner_core::PerceptualDistance;
use limner_nets::perceptual::{InceptionPerceptual, DEFAULT_TAPS};
use limner_nets::InceptionV3;

fn distance() -> Option<InceptionPerceptual> {
    limner_core::testing::fetched(InceptionV3::load_fetched(&Device::flex())).map(|n| InceptionPerceptual::new(n, &DEFAULT_TAPS, 128).unwrap())
}

/// A 64 px "face": a lit disc with two dark eyes on a graded background, in [-1, 1];
/// `shift` moves the eyes.
fn face(shift: f32) -> Vec<f32> {
    let s = 64;
    let mut v = vec![0.0; 3 * s * s];
    for y in 0..s {
        for x in 0..s {
            let (fx, fy) = (x as f32, y as f32);
            let disc = ((fx - 32.0).powi(2) + (fy - 34.0).powi(2)).sqrt() < 20.0;
            let eye = [(24.0 + shift, 28.0), (40.0 + shift, 28.0)].iter().any(|(ex, ey)| (fx - ex).powi(2) + (fy - ey).powi(2) < 9.0);
            let base = if eye { -0.8 } else if disc { 0.5 } else { -0.2 + fy / 128.0 };
            for c in 0..3 {
                v[(c * s + y) * s + x] = base + 0.1 * c as f32 + 0.03 * ((x * 7 + y * 13 + c) as f32).sin();
            }
        }
    }
    v
}

fn tensor(v: Vec<f32>) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, [1, 3, 64, 64]), &Device::flex())
}

#[test]
fn zero_for_the_same_image_and_ordered_by_difference() {
    let Some(p) = distance() else { return };
    let d = |a: Vec<f32>, b: Vec<f32>| p.distance(tensor(a).autodiff(), tensor(b)).into_scalar::<f32>();
    let same = d(face(0.0), face(0.0));
    let near = d(face(1.0), face(0.0));
    let far = d(face(6.0), face(0.0));
    eprintln!("same {same:.2e}, eyes moved 1 px {near:.4}, 6 px {far:.4}");
    assert!(same.abs() < 1e-6, "{same}");
    assert!(near > 1e-4 && far > near, "near {near}, far {far}");
}

#[test]
fn its_gradient_lowers_it() {
    let Some(p) = distance() else { return };
    let target = face(0.0);
    let mut x = face(5.0);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..40 {
        let xt = tensor(x.clone()).autodiff().require_grad();
        let d = p.distance(xt.clone(), tensor(target.clone()));
        last = d.clone().into_scalar::<f32>();
        first.get_or_insert(last);
        let grads = d.backward();
        let g: Vec<f32> = xt.grad(&grads).expect("input gradient").into_data().try_to_vec::<f32>().unwrap();
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        for (xi, gi) in x.iter_mut().zip(&g) {
            *xi -= 0.5 * gi / norm; // a fixed-length step down the gradient
        }
    }
    let first = first.unwrap();
    eprintln!("perceptual distance {first:.4} -> {last:.4} in 40 gradient steps");
    assert!(last < 0.7 * first, "{first} -> {last}");
}
