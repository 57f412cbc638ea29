//! The fused conv + bias + ReLU (`conv_bias_relu`, frozen weights) against the plain path
//! (`LIMNER_FAST_CONV_RELU=0`: burn's conv for non-square kernels, limner's square conv and
//! `bias_relu` otherwise) on the autodiff flex device: values and input gradients, every
//! kernel shape InceptionV3 uses, batch 1 and more, odd sizes; and the weights stay constants.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn<const D: usize>(shape: [usize; D], rng: &mut ChaCha8Rng, dev: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// max |a - b| / max |b|
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let m = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    d / m.max(1e-30)
}

#[test]
fn fused_conv_bias_relu_matches_the_plain_path() {
    // (n, cin, h, w, cout, kh, kw, stride, ph, pw)
    let cases = [
        (1, 3, 35, 35, 32, 3, 3, 2, 0, 0),  // conv2d_1: 3x3 stride 2 valid on RGB
        (2, 8, 17, 17, 12, 3, 3, 1, 0, 0),  // conv2d_2: 3x3 valid
        (1, 8, 15, 15, 16, 3, 3, 1, 1, 1),  // conv2d_3: 3x3 same
        (3, 24, 9, 9, 20, 1, 1, 1, 0, 0),   // 1x1
        (2, 12, 13, 13, 16, 5, 5, 1, 2, 2), // 5x5 same
        (1, 20, 13, 13, 24, 3, 3, 2, 0, 0), // mixed3's stride-2 3x3
        (2, 16, 6, 6, 16, 1, 7, 1, 0, 3),   // 1x7 same at 6x6 (128 px)
        (1, 16, 14, 14, 20, 7, 1, 1, 3, 0), // 7x1 same at 14x14 (256 px), batch 1
        (5, 6, 7, 5, 4, 7, 1, 1, 3, 0),     // odd batch, non-square map
        (1, 4, 40, 33, 6, 3, 3, 1, 1, 1),   // several column tiles
    ];
    let dev = Device::flex().autodiff();
    for (i, &(n, cin, h, w, cout, kh, kw, s, ph, pw)) in cases.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let x = randn([n, cin, h, w], &mut rng, &dev);
        let wt = randn([cout, cin, kh, kw], &mut rng, &dev).mul_scalar(0.5);
        let b = randn([cout], &mut rng, &dev).mul_scalar(0.3);
        let run = |fused: bool| {
            limner_kernels::conv_relu::set_fused_enabled(fused);
            let xr = x.clone().require_grad();
            let y = limner_kernels::conv_bias_relu(xr.clone(), wt.clone(), b.clone(), s, [ph, pw]);
            let r = randn(y.dims(), &mut ChaCha8Rng::seed_from_u64(100 + i as u64), &dev);
            let g = (y.clone() * r).sum().backward();
            let dx = xr.grad(&g).unwrap();
            assert!(wt.grad(&g).is_none() && b.grad(&g).is_none(), "case {i}: the weights must stay constants");
            (vals(y), vals(dx))
        };
        let (yf, dxf) = run(true);
        let (yp, dxp) = run(false);
        limner_kernels::conv_relu::set_fused_enabled(true);
        assert!(yf.iter().any(|v| *v > 0.0) && yf.iter().any(|v| *v == 0.0), "case {i}: ReLU should be active and inactive somewhere");
        let (ey, edx) = (rel(&yf, &yp), rel(&dxf, &dxp));
        assert!(ey < 1e-5 && edx < 1e-5, "case {i} {:?}: rel err y {ey:.2e}, dx {edx:.2e}", cases[i]);
    }
}

/// Tracked weights (someone training them) take the plain path, which gives their gradients.
#[test]
fn tracked_weights_fall_back_and_get_gradients() {
    let dev = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = randn([2, 4, 8, 8], &mut rng, &dev);
    let wt = randn([5, 4, 1, 7], &mut rng, &dev).require_grad();
    let b = randn([5], &mut rng, &dev).require_grad();
    let y = limner_kernels::conv_bias_relu(x, wt.clone(), b.clone(), 1, [0, 3]);
    let g = y.sum().backward();
    let dw = vals(wt.grad(&g).expect("weight gradient"));
    assert!(dw.iter().any(|v| *v != 0.0));
    assert!(b.grad(&g).is_some());
}
