//! limner's MobileStyleGAN port vs OpenVINO running the original random-face IR, on fixed inputs.
//! Needs the model (`limner models fetch --only random-face`, see tests/common/mod.rs) and makes
//! the OpenVINO reference on first run (a venv with OpenVINO, created if missing).

mod common;

use burn::tensor::{Device, Tensor};
use limner_core::{tensor_from, to_vec};
use limner_photoreal::Noise;

const TOL: f64 = 1e-3;

#[test]
fn mapping_and_synthesis_match_openvino() {
    let Some(model) = common::model_dir() else { return };
    let Some(refdir) = common::reference(&model) else { return };
    let Some(g) = common::model() else { return };
    let device = Device::flex();
    assert_eq!(g.num_ws(), 23);

    // mapping: z -> w
    let (zs, z) = common::read_ref(&refdir, "z");
    let (_, w_ref) = common::read_ref(&refdir, "w");
    let w = to_vec(&g.map(tensor_from(z, [zs[0], zs[1]], &device)));
    let e_map = common::rel_err(&w, &w_ref);
    eprintln!("mapping   rel err {e_map:.2e}");
    assert!(e_map < TOL, "mapping: relative error {e_map:.3e} >= {TOL}");

    // synthesis: the IR feeds one w to every layer; limner's per-layer ws with that same w in
    // all 23 layers must reproduce it.
    let (ss, s) = common::read_ref(&refdir, "ws_in");
    let (is, img_ref) = common::read_ref(&refdir, "img");
    let ws = g.broadcast_w(tensor_from(s, [ss[0], ss[1]], &device));
    let t = std::time::Instant::now();
    let img = g.synthesize(ws, Noise::Baked);
    assert_eq!(img.dims().to_vec(), is);
    let img = to_vec(&img);
    eprintln!("synthesis of {} faces: {:.2} s", is[0], t.elapsed().as_secs_f64());
    let e_img = common::rel_err(&img, &img_ref);
    let per_face = is[1] * is[2] * is[3];
    for k in 0..is[0] {
        let r = k * per_face..(k + 1) * per_face;
        eprintln!("synthesis face {k} rel err {:.2e}", common::rel_err(&img[r.clone()], &img_ref[r]));
    }
    assert!(e_img < TOL, "synthesis: relative error {e_img:.3e} >= {TOL}");
}

/// Per-layer styles really are per layer: changing only the `to_img` w changes the image, and the
/// batch path (per-sample kernels) equals running the faces one by one.
#[test]
fn per_layer_styles_and_batching() {
    let Some(g) = common::model() else { return };
    let device = Device::flex();
    let z = Tensor::<2>::from_data(
        burn::tensor::TensorData::new((0..1024).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect::<Vec<_>>(), [2, 512]),
        &device,
    );
    let w = g.map(z);
    let ws = g.broadcast_w(w.clone());
    let both = to_vec(&g.synthesize(ws.clone(), Noise::Zero));
    let one = to_vec(&g.synthesize(ws.clone().narrow(0, 1, 1), Noise::Zero));
    let half = both.len() / 2;
    let e = common::rel_err(&both[half..], &one);
    assert!(e < 1e-4, "batched vs single: {e:.3e}");

    // face 0 with the last style layer (to_img) taken from face 1
    let mixed = Tensor::cat(vec![ws.clone().narrow(0, 0, 1).narrow(1, 0, 22), ws.narrow(0, 1, 1).narrow(1, 22, 1)], 1);
    let mixed = to_vec(&g.synthesize(mixed, Noise::Zero));
    let d = common::rel_err(&mixed, &both[..half]);
    eprintln!("to_img style swap changes face 0 by {d:.3e} (relative)");
    assert!(d > 1e-2, "a different to_img w should change the image");
}
