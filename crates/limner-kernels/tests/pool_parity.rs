//! limner-kernels' max / average pools and fused bias + ReLU against burn's own ops on random
//! inputs: forward and input gradient (autodiff flex), odd and non-square sizes, padding
//! counted or not, plus the plain (non-autodiff) forward.

use burn::tensor::module;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_t(shape: [usize; 4], rng: &mut ChaCha8Rng, dev: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

fn vals(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// (y, dx) of `op` on the autodiff device with `sum(y * r)` backward, and y on the plain device.
fn run(op: &dyn Fn(Tensor<4>) -> Tensor<4>, shape: [usize; 4], seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = rand_t(shape, &mut rng, &dev);
    let plain = vals(op(x.clone()));
    let xa = x.autodiff().require_grad();
    let y = op(xa.clone());
    let r = rand_t(y.dims(), &mut rng, &dev).autodiff();
    let g = (y.clone() * r).sum().backward();
    (vals(y), vals(xa.grad(&g).unwrap()), plain)
}

#[test]
fn max_pool_matches_burn() {
    // (shape, k, s, p)
    let cases = [([2, 3, 125, 125], 3, 2, 0), ([1, 4, 60, 60], 3, 2, 0), ([2, 5, 29, 29], 3, 2, 0), ([1, 2, 8, 7], 3, 2, 1), ([3, 2, 9, 9], 2, 2, 0), ([1, 1, 5, 6], 3, 1, 1)];
    for (i, &(shape, k, s, p)) in cases.iter().enumerate() {
        let opts = MaxPoolOptions::new([k, k]).with_stride([s, s]).with_padding([p, p]);
        let fast = run(&|x| limner_kernels::max_pool2d(x, opts.clone()), shape, i as u64);
        let burn = run(&|x| module::max_pool2d(x, opts.clone()), shape, i as u64);
        assert_eq!(fast.0, burn.0, "case {i}: max pool forward");
        assert_eq!(fast.2, burn.2, "case {i}: max pool plain forward");
        assert!(max_abs_diff(&fast.1, &burn.1) < 1e-6, "case {i}: max pool input gradient differs by {}", max_abs_diff(&fast.1, &burn.1));
    }
}

#[test]
fn avg_pool_matches_burn() {
    // (shape, k, s, p, count_include_pad)
    let cases = [
        ([1, 6, 29, 29], 3, 1, 1, false), // Inception block A pool
        ([2, 4, 14, 14], 3, 1, 1, false), // block C pool
        ([1, 3, 7, 5], 3, 1, 1, true),
        ([2, 2, 9, 8], 2, 2, 0, false),
        ([1, 2, 10, 11], 3, 2, 1, true),
        ([1, 2, 10, 11], 3, 2, 1, false),
    ];
    for (i, &(shape, k, s, p, inc)) in cases.iter().enumerate() {
        let opts = AvgPoolOptions::new([k, k]).with_stride([s, s]).with_padding([p, p]).with_count_include_pad(inc);
        let fast = run(&|x| limner_kernels::avg_pool2d(x, opts.clone()), shape, 10 + i as u64);
        let burn = run(&|x| module::avg_pool2d(x, opts.clone()), shape, 10 + i as u64);
        for (what, a, b) in [("forward", &fast.0, &burn.0), ("input gradient", &fast.1, &burn.1), ("plain forward", &fast.2, &burn.2)] {
            let d = max_abs_diff(a, b);
            assert!(d < 1e-6, "case {i} {shape:?} k{k} s{s} p{p} include_pad={inc}: avg pool {what} differs by {d}");
        }
    }
}

#[test]
fn bias_relu_matches_burn() {
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for shape in [[2, 5, 7, 9], [1, 32, 16, 16], [3, 1, 1, 4]] {
        let x = rand_t(shape, &mut rng, &dev);
        let bv: Vec<f32> = (0..shape[1]).map(|_| rng.random::<f32>() - 0.5).collect();
        let b = Tensor::<1>::from_data(TensorData::new(bv, [shape[1]]), &dev);
        let r = rand_t(shape, &mut rng, &dev).autodiff();
        let run = |fast: bool| {
            let xa = x.clone().autodiff().require_grad();
            let ba = b.clone().autodiff().require_grad();
            let y = if fast {
                limner_kernels::bias_relu(xa.clone(), ba.clone())
            } else {
                burn::tensor::activation::relu(xa.clone() + ba.clone().reshape([1, shape[1], 1, 1]))
            };
            let g = (y.clone() * r.clone()).sum().backward();
            let db = ba.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap();
            (vals(y), vals(xa.grad(&g).unwrap()), db)
        };
        let (f, p) = (run(true), run(false));
        assert_eq!(f.0, p.0, "{shape:?} forward");
        assert_eq!(f.1, p.1, "{shape:?} input gradient");
        let d = f.2.iter().zip(&p.2).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d < 1e-4, "{shape:?} bias gradient differs by {d}");
        // the plain forward too
        let plain = vals(limner_kernels::bias_relu(x.clone(), b.clone()));
        assert_eq!(plain, f.0);
    }
}
