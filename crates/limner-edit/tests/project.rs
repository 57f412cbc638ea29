//! Projection's differentiable paths: random-face's autodiff synthesis renders what its fast
//! inference path renders, and gradients through it bring a projection closer to a face it made.
//! Needs random-face and inception-v3 (`limner models fetch`; under CI=true a missing model fails).

use std::time::Instant;

use burn::tensor::Device;
use limner_core::{tensor_from, to_vec};
use limner_edit::model::{open, seed_ws, Model};
use limner_edit::project::{project, ProjectOptions};

fn random_face(size: usize) -> Option<Box<dyn Model>> {
    limner_core::testing::fetched(open(limner_photoreal::MODEL_NAME, Some(size), &Device::flex()))
}

/// The autodiff copy (burn composition of every layer) and the fused inference kernels make the
/// same image from the same `w+`, with and without noise.
#[test]
fn random_face_autodiff_render_equals_inference_render() {
    let Some(m) = random_face(256) else { return };
    let dm = m.differentiable().unwrap();
    let ws = seed_ws(m.as_ref(), &[5], 0.7).pop().unwrap();
    for noise in [0.0f32, 1.0] {
        let t = tensor_from(ws.data.clone(), [1, ws.rows, ws.dim], &m.device());
        let t0 = Instant::now();
        let fast = to_vec(&m.synthesize(t.clone(), &[5], noise));
        let t_fast = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let slow = to_vec(&dm.synthesize(t.autodiff(), &[5], noise));
        let t_slow = t0.elapsed().as_secs_f64();
        let worst = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let scale = fast.iter().map(|v| v.abs()).fold(0f32, f32::max);
        eprintln!("noise {noise}: max |fast − autodiff| {worst:.2e} (image max {scale:.2}); fast {t_fast:.2} s, autodiff forward {t_slow:.2} s");
        assert_eq!(fast.len(), 3 * 256 * 256);
        // 1e-3 of [-1, 1] is an eighth of a 0..255 level
        assert!(worst < 1e-3, "the autodiff render differs from the inference render by {worst}");
    }
}

/// A few projection steps on random-face's own render of a known `w` lower the perceptual
/// distance: the gradients flow through the autodiff synthesis into `w`.
#[test]
fn random_face_projection_gradients_flow() {
    let Some(m) = random_face(128) else { return };
    let Some(dist) = limner_core::testing::fetched(limner_nets::perceptual::InceptionPerceptual::load_fetched(&Device::flex())) else { return };
    let target = m.render(&seed_ws(m.as_ref(), &[21], 0.7), &[0], 0.0).pop().unwrap();
    let o = ProjectOptions { steps: 6, w_plus: false, ..Default::default() };
    let mut ds = vec![];
    let t0 = Instant::now();
    let p = project(m.as_ref(), &target, &dist, &o, &mut |_, d| ds.push(d)).unwrap();
    eprintln!("distances per step {ds:.4?}, final {:.4}; {:.1} s per step", p.distance, t0.elapsed().as_secs_f64() / 6.0);
    assert!(p.distance < 0.9 * p.start_distance, "6 steps moved the distance from {} to {}", p.start_distance, p.distance);
    assert!(ds[5] < ds[0]);
}
