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

mod encoder {
    use super::*;
    use limner_edit::encoder::{self, Encoder, TrainOptions};

    fn default_model() -> Box<dyn Model> {
        open("default", None, &Device::flex()).unwrap()
    }

    /// A short training run lowers the held-out w-space loss, writes the f16 file and its
    /// checkpoint, and `resume` continues from the checkpoint's step.
    #[test]
    fn short_training_lowers_the_w_loss_and_resumes() {
        let m = default_model();
        let m = m.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("enc.safetensors");
        let held: Vec<u64> = (0..32).map(|i| 7_000 + i).collect();
        let o = TrainOptions { steps: 150, batch: 16, lr: 0.005, checkpoint_every: 25, ..Default::default() };
        let fresh = encoder::EncoderNet::new(&m.w_avg(), &encoder::w_spread(m), 1, &m.device());
        let (before, base) = encoder::w_loss(m, &fresh, &held, o.psi);
        let mut losses = vec![];
        let e = encoder::train(m, &out, false, &o, &mut |_, l| losses.push(l)).unwrap();
        let (after, _) = encoder::w_loss(m, &e.net, &held, o.psi);
        eprintln!("held-out w loss {before:.3} → {after:.3} after 150 steps (guessing w_avg: {base:.3}); training losses {losses:.3?}");
        assert!(after < 0.9 * before, "150 steps moved the held-out loss from {before} to {after}");
        assert_eq!(e.steps, 150);
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size < 4_000_000, "the f16 encoder is {size} bytes");
        let back = Encoder::load(&out, &Device::flex()).unwrap();
        back.check_model(m, "enc").unwrap();
        let (x, _) = encoder::w_loss(m, &back.net, &held, o.psi);
        assert!((x - after).abs() < 0.02 * after, "the f16 file scores {x}, the trained net {after}");
        let o2 = TrainOptions { steps: 152, ..o };
        let e2 = encoder::train(m, &out, true, &o2, &mut |_, _| {}).unwrap();
        assert_eq!(e2.steps, 152);
        // `init`: a new run starts from those weights (a fresh net would score `before`)
        let o3 = TrainOptions { steps: 1, batch: 2, lr: 1e-7, init: Some(out.clone()), ..Default::default() };
        let e3 = encoder::train(m, &dir.path().join("init.safetensors"), false, &o3, &mut |_, _| {}).unwrap();
        assert_eq!(e3.steps, 1);
        let (x3, _) = encoder::w_loss(m, &e3.net, &held, o3.psi);
        assert!((x3 - after).abs() < 0.05 * after && x3 < 0.9 * before, "started from the trained encoder: {x3} (trained {after}, fresh {before})");
    }

    /// The encoder's guess (the shipped or cached one when there is one, else one trained here)
    /// is closer (perceptual distance) to renders of new seeds than `w_avg`, and guesses fast.
    #[test]
    fn the_guess_beats_w_avg_on_new_seeds() {
        let m = default_model();
        let m = m.as_ref();
        let Some(dist) = limner_core::testing::fetched(limner_nets::perceptual::InceptionPerceptual::load_fetched(&Device::flex())) else { return };
        let dir = tempfile::tempdir().unwrap();
        let e = match encoder::locate(m, &Device::flex()).unwrap() {
            Some((e, f)) => {
                eprintln!("using the encoder {f} ({} steps)", e.steps);
                e
            }
            None => encoder::train(m, &dir.path().join("e.safetensors"), false, &TrainOptions { steps: 400, lr: 0.005, ..Default::default() }, &mut |_, _| {}).unwrap(),
        };
        let seeds: Vec<u64> = (0..12).map(|i| 500 + i).collect();
        let (avg, guess) = encoder::compare_on_renders(m, &e, &dist, &seeds).unwrap();
        eprintln!("mean perceptual distance to renders of 12 new seeds: w_avg {avg:.4}, encoder {guess:.4}");
        assert!(guess < 0.85 * avg, "the encoder's guess ({guess}) is not clearly closer than w_avg ({avg})");
        let face = m.render(&seed_ws(m, &[600], 0.7), &[0], 0.0);
        let t0 = Instant::now();
        e.guess(&face).unwrap();
        eprintln!("one guess in {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    }

    /// Missing, garbage, truncated and wrong-model encoder files are clear errors.
    #[test]
    fn bad_encoder_files_are_clear_errors() {
        let m = default_model();
        let m = m.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let d = Device::flex();
        let err = |p: &std::path::Path| format!("{:#}", Encoder::load(p, &d).map(|_| ()).unwrap_err());
        let missing = dir.path().join("none.safetensors");
        let e = err(&missing);
        assert!(e.contains("none.safetensors") && e.contains("limner models encoder"), "{e}");
        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"not an encoder at all").unwrap();
        let e = err(&junk);
        assert!(e.contains("junk.safetensors") && e.contains("not a valid safetensors"), "{e}");
        let good = dir.path().join("good.safetensors");
        let enc = encoder::train(m, &good, false, &TrainOptions { steps: 1, batch: 2, ..Default::default() }, &mut |_, _| {}).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = err(&cut);
        assert!(e.contains("cut.safetensors"), "{e}");
        // another model's encoder
        let other = Encoder { model_sha256: "0".repeat(64), model_name: "other".into(), ..enc.clone() };
        let e = format!("{:#}", other.check_model(m, "x.safetensors").unwrap_err());
        assert!(e.contains("trained for model `other`") && e.contains("limner models encoder --model default"), "{e}");
        // a safetensors file that is not an encoder
        let plain = dir.path().join("plain.safetensors");
        let sd = limner_core::StateDict::from([("x".to_string(), limner_core::HostTensor { shape: vec![1], data: vec![1.0] })]);
        limner_core::write_safetensors(&plain, &sd, &Default::default(), limner_core::Precision::F32).unwrap();
        let e = err(&plain);
        assert!(e.contains("not a limner encoder"), "{e}");
        // resume without a checkpoint
        let e = format!("{:#}", encoder::train(m, &dir.path().join("fresh.safetensors"), true, &TrainOptions::default(), &mut |_, _| {}).map(|_| ()).unwrap_err());
        assert!(e.contains("--resume") && e.contains("fresh.ckpt.safetensors"), "{e}");
    }
}
