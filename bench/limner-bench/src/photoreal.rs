//! `limner-bench photoreal`: one 1024px random-face (MobileStyleGAN) synthesis, the same work
//! OpenVINO does in `tools/openvino-ref/random_face_ref.py --bench` (w of one face, the IR's
//! baked noise, float32). `bench/photoreal.sh` runs both side by side and prints the ratio.

use std::hint::black_box;

use burn::tensor::{Device, Distribution, Tensor};
use limner_photoreal::{MobileStyleGan, Noise, W_DIM};

use crate::{report, time_it};

pub fn bench_photoreal(dev: &Device, quick: bool) {
    let path = match limner_models::fetch::net_path(limner_photoreal::MODEL_NAME) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            std::process::exit(2);
        }
    };
    let g = MobileStyleGan::load(&path, dev).expect("load random-face");
    let w: Tensor<2> = Tensor::random([1, W_DIM], Distribution::Normal(0.0, 1.0), dev);
    let ws = g.broadcast_w(w);
    let (warm, iters) = if quick { (1, 3) } else { (1, 7) };
    let ts = time_it(dev, warm, iters, || {
        black_box(g.synthesize(ws.clone(), Noise::Baked).into_data());
    });
    // GFLOP are not counted for this network (depthwise/pointwise convs and an inverse wavelet
    // transform): report 0 so the line stays machine-readable.
    report("photoreal_synthesis", "res=1024 batch=1", &ts, 0.0);
}
