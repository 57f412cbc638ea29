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

/// `limner-bench photoreal-stages`: the synthesis stage by stage (flex runs eagerly, so the
/// wall time between ops is the op's), median over a few passes: where the time goes.
pub fn bench_photoreal_stages(dev: &Device) {
    use limner_photoreal::model::idwt_fast;
    let path = limner_models::fetch::net_path(limner_photoreal::MODEL_NAME).expect("random-face fetched");
    let g = MobileStyleGan::load(&path, dev).expect("load random-face");
    let s = &g.synthesis;
    let w: Tensor<2> = Tensor::random([1, W_DIM], Distribution::Normal(0.0, 1.0), dev);
    let mut names: Vec<String> = vec![];
    let mut times: Vec<Vec<f64>> = vec![];
    for pass in 0..6 {
        let mut k = 0usize;
        let mut lap = |name: &str, t: std::time::Instant| {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if pass == 0 {
                names.push(name.to_string());
                times.push(vec![]);
            } else {
                times[k].push(ms);
            }
            k += 1;
        };
        let t = std::time::Instant::now();
        let mut x = s.conv1.forward(s.input.clone(), w.clone(), Some(s.conv1.noise_const.clone()));
        lap("conv1 4x4", t);
        let mut img = None;
        for (i, b) in s.layers.iter().enumerate() {
            let [_, c, h, _] = x.dims();
            let t = std::time::Instant::now();
            let sc = b.up.forward(w.clone());
            let nz = Some(b.conv1.noise_const.clone());
            x = match b.conv1.forward_after_idwt(&x, sc.clone(), &s.idwt_k, w.clone(), nz.clone()) {
                Some(y) => {
                    lap(&format!("idwt+conv1 {}->{} @{}", c, b.conv1.weight.dims()[1], 2 * h), t);
                    y
                }
                None => {
                    let up = idwt_fast(x, Some(sc), &s.idwt_k);
                    lap(&format!("idwt {c}@{h} -> {}", 2 * h), t);
                    let t = std::time::Instant::now();
                    let y = b.conv1.forward(up, w.clone(), nz);
                    lap(&format!("conv1 {}@{}", b.conv1.weight.dims()[1], 2 * h), t);
                    y
                }
            };
            let t = std::time::Instant::now();
            let nz = Some(b.conv2.noise_const.clone());
            if i + 1 == s.layers.len() {
                if let Some(im) = b.conv2.forward_to_img(&x, w.clone(), nz.clone(), &s.to_img, w.clone()) {
                    img = Some(im);
                    lap(&format!("conv2+to_img {}@{}", b.conv2.weight.dims()[1], 2 * h), t);
                    break;
                }
            }
            x = b.conv2.forward(x, w.clone(), nz);
            lap(&format!("conv2 {}@{}", b.conv2.weight.dims()[1], 2 * h), t);
        }
        let img = match img {
            Some(im) => im,
            None => {
                let t = std::time::Instant::now();
                let im = s.to_img.forward(x, w.clone());
                lap("to_img", t);
                im
            }
        };
        let t = std::time::Instant::now();
        let img = idwt_fast(img, None, &s.idwt_k);
        black_box(img.into_data());
        lap("idwt rgb + into_data", t);
    }
    let mut total = 0.0;
    for (n, t) in names.iter().zip(&times) {
        let m = crate::median(t);
        total += m;
        println!("# STAGE {n:<22} {m:8.2} ms");
    }
    println!("# STAGE total {total:.2} ms");
}
