//! Every fast kernel against burn's own flex path on random inputs: forward, input gradient
//! and weight gradient, f32, max |fast - burn| / max |burn| < 1e-5, odd sizes included.

use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn(shape: [usize; 4], rng: &mut ChaCha8Rng, dev: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

fn vals(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// max |a - b| / max |b|
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let m = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    d / m.max(1e-30)
}

/// Runs `op(x, w)` fast and plain on the autodiff flex device, backward through
/// `sum(y * r)`, and returns the relative errors (y, dx, dw).
fn check<F, G>(xs: [usize; 4], ws: [usize; 4], fast: F, plain: G, seed: u64) -> [f64; 3]
where
    F: Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    G: Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
{
    let dev = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = randn(xs, &mut rng, &dev);
    let w = randn(ws, &mut rng, &dev);
    check_with(x, w, fast, plain, seed)
}

/// [`check`] on given `x` and `w` (on the autodiff flex device).
fn check_with<F, G>(x: Tensor<4>, w: Tensor<4>, fast: F, plain: G, seed: u64) -> [f64; 3]
where
    F: Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    G: Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
{
    let dev = x.device();
    let run = |f: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<4>, rng: &mut ChaCha8Rng| {
        let x = x.clone().require_grad();
        let w = w.clone().require_grad();
        let y = f(x.clone(), w.clone());
        let r = randn(y.dims(), rng, &dev);
        let g = (y.clone() * r).sum().backward();
        let dx = x.grad(&g).unwrap();
        let dw = w.grad(&g).unwrap();
        (vals(y.clone()), dx.into_data().try_to_vec::<f32>().unwrap(), dw.into_data().try_to_vec::<f32>().unwrap())
    };
    let mut r1 = ChaCha8Rng::seed_from_u64(seed + 1000);
    let mut r2 = ChaCha8Rng::seed_from_u64(seed + 1000);
    let a = run(&fast, &mut r1);
    let b = run(&plain, &mut r2);
    [rel(&a.0, &b.0), rel(&a.1, &b.1), rel(&a.2, &b.2)]
}

const TOL: f64 = 1e-5;

#[test]
fn conv2d_matches_burn_forward_and_backward() {
    // (n, cin, h, w, cout, k, stride, pad)
    let cases = [
        (1, 3, 4, 4, 5, 3, 1, 1),     // batch 1, 3 channels, 4x4
        (2, 3, 64, 64, 16, 1, 1, 0),  // fromrgb 1x1
        (3, 16, 16, 16, 32, 3, 1, 1), // conv0
        (2, 16, 33, 33, 32, 3, 2, 0), // conv1 after FIR pad 2 (odd map, stride 2)
        (4, 32, 16, 16, 64, 1, 1, 0), // skip 1x1
        (2, 129, 4, 4, 128, 3, 1, 1), // epilogue (mbstd channel)
        (1, 4, 5, 7, 3, 3, 1, 2),     // non-square map, pad > k/2
        (9, 5, 4, 4, 3, 3, 1, 1),     // batch not a multiple of the chunks
        (2, 16, 64, 64, 3, 1, 1, 0),  // torgb 1x1, 3 outputs (direct pointwise xgrad)
        (2, 20, 8, 8, 24, 1, 1, 0),   // 1x1 with K > 16 (gemm path)
        (2, 16, 65, 65, 32, 3, 2, 0), // D b64 conv1: several im2col row tiles
        (2, 3, 9, 7, 4, 3, 2, 1),     // stride 2 with padding, non-square
        (1, 3, 4, 4, 2, 1, 2, 0),     // 1x1 stride 2 (not pointwise)
    ];
    for (i, &(n, cin, h, w, cout, k, s, p)) in cases.iter().enumerate() {
        let opts = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let o2 = opts.clone();
        let e = check(
            [n, cin, h, w],
            [cout, cin, k, k],
            move |x, w| limner_kernels::conv2d(x, w, None, opts.clone()),
            move |x, w| module::conv2d(x, w, None, o2.clone()),
            i as u64,
        );
        println!("conv2d n={n} cin={cin} {h}x{w} cout={cout} k={k} s={s} p={p}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "conv2d case {i}: {e:?}");
    }
}

#[test]
fn conv_transpose2d_matches_burn_forward_and_backward() {
    // (n, cin, h, w, cout, k, stride, pad, pad_out)
    let cases = [
        (1, 3, 4, 4, 5, 3, 2, 0, 0),      // batch 1, 3 channels, 4x4
        (2, 128, 4, 4, 128, 3, 2, 0, 0),  // G b8 conv0
        (3, 64, 16, 16, 32, 3, 2, 0, 0),  // G b32 conv0
        (2, 4, 5, 5, 3, 3, 1, 1, 0),      // stride 1
        (2, 4, 5, 6, 3, 4, 2, 1, 1),      // k 4, padding_out 1
    ];
    for (i, &(n, cin, h, w, cout, k, s, p, po)) in cases.iter().enumerate() {
        let opts = ConvTransposeOptions::new([s, s], [p, p], [po, po], [1, 1], 1);
        let o2 = opts.clone();
        let e = check(
            [n, cin, h, w],
            [cin, cout, k, k],
            move |x, w| limner_kernels::conv_transpose2d(x, w, None, opts.clone()),
            move |x, w| module::conv_transpose2d(x, w, None, o2.clone()),
            100 + i as u64,
        );
        println!("conv_transpose2d n={n} cin={cin} {h}x{w} cout={cout} k={k} s={s} p={p} po={po}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "conv_transpose2d case {i}: {e:?}");
    }
}

/// StyleGAN2's up-conv: the layer's `[out, in, 3, 3]` weight handed over swapped
/// (`swap_dims(0, 1)`, a strided view the 3×3 stride-2 path reads in place on AVX-512 machines),
/// one micro-tile (weights in place) and several (packed), batch 1 and 2.
#[test]
fn swapped_weight_up_conv_matches_burn_forward_and_backward() {
    // (n, cin of the transposed conv, h, w, cout)
    let cases = [(1, 64, 4, 4, 32), (1, 32, 16, 16, 48), (2, 16, 8, 8, 24), (1, 24, 1, 1, 8), (1, 12, 9, 7, 6)];
    for (i, &(n, cin, h, w, cout)) in cases.iter().enumerate() {
        let opts = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
        let o2 = opts.clone();
        let e = check(
            [n, cin, h, w],
            [cout, cin, 3, 3],
            move |x, w| limner_kernels::conv_transpose2d(x, w.swap_dims(0, 1), None, opts.clone()),
            move |x, w| module::conv_transpose2d(x, w.swap_dims(0, 1), None, o2.clone()),
            300 + i as u64,
        );
        println!("up-conv, swapped weight n={n} cin={cin} {h}x{w} cout={cout}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "swapped up-conv case {i}: {e:?}");
    }
}

#[test]
fn plain_device_and_bias_and_determinism() {
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = randn([5, 6, 9, 9], &mut rng, &dev);
    let w = randn([4, 6, 3, 3], &mut rng, &dev);
    let b: Tensor<1> = Tensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0], [4]), &dev);
    let o = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
    let a = vals(limner_kernels::conv2d(x.clone(), w.clone(), Some(b.clone()), o.clone()));
    let r = vals(module::conv2d(x.clone(), w.clone(), Some(b), o));
    assert!(rel(&a, &r) < TOL);
    // weight gradient summed in a fixed order: bit-identical on repeat
    let g = limner_kernels::Geom::square(5, 6, 9, 9, 4, 3, 2, 1);
    let xv = vals(x);
    let dy: Vec<f32> = (0..g.n * g.out_len()).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    let w1 = limner_kernels::cpu::conv_wgrad(&g, &xv, &dy);
    for _ in 0..3 {
        assert_eq!(w1, limner_kernels::cpu::conv_wgrad(&g, &xv, &dy));
    }
}

#[test]
fn depthwise_conv2d_matches_burn_forward_and_backward() {
    // (n, c, h, w, k, stride, pad): groups = c, weight [c, 1, k, k]
    let cases = [
        (1, 3, 4, 4, 4, 1, 2),   // batch 1, 3 channels, 4x4 (FIR pad 2)
        (2, 16, 33, 33, 4, 1, 2), // D conv1 FIR, odd map
        (2, 5, 9, 9, 4, 2, 1),   // downsample2d (stride 2), odd map
        (1, 3, 4, 4, 4, 2, 1),   // downsample2d, batch 1, 4x4
        (3, 7, 6, 5, 3, 1, 1),   // 3x3, non-square
        (2, 4, 17, 17, 4, 1, 1), // G up FIR (pad 1)
    ];
    for (i, &(n, c, h, w, k, s, p)) in cases.iter().enumerate() {
        let opts = ConvOptions::new([s, s], [p, p], [1, 1], c);
        let o2 = opts.clone();
        let e = check(
            [n, c, h, w],
            [c, 1, k, k],
            move |x, w| limner_kernels::conv2d(x, w, None, opts.clone()),
            move |x, w| module::conv2d(x, w, None, o2.clone()),
            200 + i as u64,
        );
        println!("depthwise conv2d n={n} c={c} {h}x{w} k={k} s={s} p={p}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "depthwise conv2d case {i}: {e:?}");
    }
}

#[test]
fn depthwise_conv_transpose2d_matches_burn_forward_and_backward() {
    // (n, c, h, w, k, stride, pad, pad_out): groups = c, weight [c, 1, k, k]
    let cases = [
        (1, 3, 4, 4, 4, 2, 1, 0),  // upsample2d, batch 1, 3 channels, 4x4
        (2, 16, 8, 8, 4, 2, 1, 0), // upsample2d
        (2, 5, 5, 7, 4, 2, 1, 1),  // non-square, padding_out 1
        (2, 3, 6, 6, 3, 1, 1, 0),  // stride 1
    ];
    for (i, &(n, c, h, w, k, s, p, po)) in cases.iter().enumerate() {
        let opts = ConvTransposeOptions::new([s, s], [p, p], [po, po], [1, 1], c);
        let o2 = opts.clone();
        let e = check(
            [n, c, h, w],
            [c, 1, k, k],
            move |x, w| limner_kernels::conv_transpose2d(x, w, None, opts.clone()),
            move |x, w| module::conv_transpose2d(x, w, None, o2.clone()),
            300 + i as u64,
        );
        println!("depthwise conv_transpose2d n={n} c={c} {h}x{w} k={k} s={s} p={p} po={po}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "depthwise conv_transpose2d case {i}: {e:?}");
    }
}

/// `outer(fy, fx) * gain` for each of `c` channels: a depthwise weight `[c, 1, k, k]`.
fn rank1_weight(fy: &[f32], fx: &[f32], gain: f32, c: usize) -> Vec<f32> {
    let one: Vec<f32> = fy.iter().flat_map(|a| fx.iter().map(move |b| a * b * gain)).collect();
    (0..c).flat_map(|_| one.iter().copied()).collect()
}

#[test]
fn separable_fir_matches_burn_forward_and_backward() {
    let fir = [1.0f32, 3.0, 3.0, 1.0];
    // the FIR filters (gain 1 and 4) and an asymmetric rank-1 kernel (catches a flipped tap)
    let kernels: [(&[f32], &[f32], f32); 3] = [(&fir, &fir, 1.0 / 64.0), (&fir, &fir, 4.0 / 64.0), (&[0.5, -1.0, 2.0, 0.25], &[1.5, 0.2, -0.7, 1.0], 1.0)];
    // the separable path is taken for exactly these: one rank-1 kernel shared by all channels
    for &(fy, fx, gain) in &kernels {
        assert!(limner_kernels::cpu::separable_factors(&rank1_weight(fy, fx, gain, 5), 5, 4).is_some());
    }
    let mut two = rank1_weight(&fir, &fir, 1.0, 2);
    two[16] = 2.0; // channel 1 differs
    assert!(limner_kernels::cpu::separable_factors(&two, 2, 4).is_none());
    let mut rank2 = rank1_weight(&fir, &fir, 1.0, 1);
    rank2[5] += 0.5;
    assert!(limner_kernels::cpu::separable_factors(&rank2, 1, 4).is_none());
    assert!(limner_kernels::cpu::separable_factors(&[0.0; 16], 1, 4).is_none());

    let dev = Device::flex().autodiff();
    // conv2d (n, c, h, w, stride, pad): D conv1's FIR (pad 2), downsample2d (stride 2, pad 1),
    // G's FIR after the up conv (pad 1); batch 1, 3 channels, 4x4, odd and non-square maps
    let convs = [(1, 3, 4, 4, 1, 2), (2, 8, 33, 33, 1, 2), (2, 5, 9, 9, 2, 1), (1, 3, 4, 4, 2, 1), (2, 4, 17, 17, 1, 1), (2, 3, 13, 7, 2, 1), (3, 2, 10, 11, 2, 2)];
    // conv_transpose2d (n, c, h, w, stride, pad, pad_out): upsample2d and friends
    let transposed = [(1, 3, 4, 4, 2, 1, 0), (2, 16, 8, 8, 2, 1, 0), (2, 5, 5, 7, 2, 1, 1), (2, 3, 6, 6, 1, 1, 0)];
    for (ki, &(fy, fx, gain)) in kernels.iter().enumerate() {
        for (i, &(n, c, h, w, s, p)) in convs.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(500 + i as u64);
            let x = randn([n, c, h, w], &mut rng, &dev);
            let wt = Tensor::from_data(TensorData::new(rank1_weight(fy, fx, gain, c), [c, 1, 4, 4]), &dev);
            let opts = ConvOptions::new([s, s], [p, p], [1, 1], c);
            let o2 = opts.clone();
            let e = check_with(x, wt, move |x, w| limner_kernels::conv2d(x, w, None, opts.clone()), move |x, w| module::conv2d(x, w, None, o2.clone()), 600 + i as u64);
            println!("separable conv2d kernel {ki} n={n} c={c} {h}x{w} s={s} p={p}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
            assert!(e.iter().all(|&v| v < TOL), "separable conv2d kernel {ki} case {i}: {e:?}");
        }
        for (i, &(n, c, h, w, s, p, po)) in transposed.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(700 + i as u64);
            let x = randn([n, c, h, w], &mut rng, &dev);
            let wt = Tensor::from_data(TensorData::new(rank1_weight(fy, fx, gain, c), [c, 1, 4, 4]), &dev);
            let opts = ConvTransposeOptions::new([s, s], [p, p], [po, po], [1, 1], c);
            let o2 = opts.clone();
            let e = check_with(x, wt, move |x, w| limner_kernels::conv_transpose2d(x, w, None, opts.clone()), move |x, w| module::conv_transpose2d(x, w, None, o2.clone()), 800 + i as u64);
            println!("separable conv_transpose2d kernel {ki} n={n} c={c} {h}x{w} s={s} p={p} po={po}: rel err y {:.2e} dx {:.2e} dw {:.2e}", e[0], e[1], e[2]);
            assert!(e.iter().all(|&v| v < TOL), "separable conv_transpose2d kernel {ki} case {i}: {e:?}");
        }
    }
}

#[test]
fn separable_fir_is_deterministic_and_matches_the_2d_kernels() {
    let fir = [1.0f32, 3.0, 3.0, 1.0];
    for g in [limner_kernels::Geom::square(5, 6, 13, 11, 6, 4, 2, 1), limner_kernels::Geom::square(3, 4, 9, 9, 4, 4, 1, 2)] {
        let w = rank1_weight(&fir, &fir, 1.0 / 64.0, g.cin);
        let (fy, fx) = limner_kernels::cpu::separable_factors(&w, g.cin, 4).expect("rank 1");
        let x: Vec<f32> = (0..g.n * g.in_len()).map(|i| ((i * 104729) % 17) as f32 * 0.37 - 3.0).collect();
        let dy: Vec<f32> = (0..g.n * g.cin * g.ho() * g.wo()).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let y = limner_kernels::cpu::dw_fwd_sep(&g, &x, &fy, &fx);
        let dx = limner_kernels::cpu::dw_xgrad_sep(&g, &dy, &fy, &fx);
        assert!(rel(&y, &limner_kernels::cpu::dw_fwd(&g, &x, &w)) < TOL);
        assert!(rel(&dx, &limner_kernels::cpu::dw_xgrad(&g, &dy, &w)) < TOL);
        for _ in 0..3 {
            assert_eq!(y, limner_kernels::cpu::dw_fwd_sep(&g, &x, &fy, &fx));
            assert_eq!(dx, limner_kernels::cpu::dw_xgrad_sep(&g, &dy, &fy, &fx));
        }
    }
}

#[test]
fn depthwise_is_deterministic() {
    let g = limner_kernels::Geom::square(5, 6, 13, 11, 6, 4, 2, 1);
    let x: Vec<f32> = (0..g.n * g.in_len()).map(|i| ((i * 104729) % 17) as f32 * 0.37 - 3.0).collect();
    let dy: Vec<f32> = (0..g.n * g.cin * g.ho() * g.wo()).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    let w: Vec<f32> = (0..g.cin * 16).map(|i| (i % 5) as f32 * 0.1).collect();
    let a = limner_kernels::cpu::dw_wgrad(&g, &x, &dy);
    let b = limner_kernels::cpu::dw_xgrad(&g, &dy, &w);
    for _ in 0..3 {
        assert_eq!(a, limner_kernels::cpu::dw_wgrad(&g, &x, &dy));
        assert_eq!(b, limner_kernels::cpu::dw_xgrad(&g, &dy, &w));
    }
}

/// `bias_lrelu` (fused) vs burn's `leaky_relu(x + b, 0.2) * gain` on the autodiff flex
/// device: y bit-identical, dx and db rel err < 1e-5; x of rank `D`.
fn check_bias_lrelu<const D: usize>(shape: [usize; D], gain: f64, seed: u64) -> [f64; 3] {
    let dev = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let c = shape[1];
    let xv: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let bv: Vec<f32> = (0..c).map(|_| rng.random::<f32>() - 0.5).collect();
    let rv: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let run = |fast: bool| {
        let x = Tensor::<D>::from_data(TensorData::new(xv.clone(), shape), &dev).require_grad();
        let b = Tensor::<1>::from_data(TensorData::new(bv.clone(), [c]), &dev).require_grad();
        // odd seeds: a fresh (uniquely owned) input, which the fused op overwrites in place
        let xin = if seed % 2 == 1 { x.clone().mul_scalar(1.0) } else { x.clone() };
        let y = if fast {
            limner_kernels::bias_lrelu(xin, b.clone(), 0.2, gain)
        } else {
            let mut bs = [1usize; D];
            bs[1] = c;
            burn::tensor::activation::leaky_relu(xin + b.clone().reshape(bs), 0.2).mul_scalar(gain)
        };
        let r = Tensor::<D>::from_data(TensorData::new(rv.clone(), shape), &dev);
        let g = (y.clone() * r).sum().backward();
        let f = |t: TensorData| t.try_to_vec::<f32>().unwrap();
        (f(y.into_data()), f(x.grad(&g).unwrap().into_data()), f(b.grad(&g).unwrap().into_data()))
    };
    let a = run(true);
    let p = run(false);
    assert_eq!(a.0, p.0, "bias_lrelu forward must be bit-identical to burn's composition");
    [rel(&a.0, &p.0), rel(&a.1, &p.1), rel(&a.2, &p.2)]
}

#[test]
fn bias_lrelu_matches_burn_forward_and_backward() {
    let g = std::f64::consts::SQRT_2;
    let h = std::f64::consts::SQRT_2 * std::f64::consts::FRAC_1_SQRT_2; // D resnet act_gain
    let cases4: [([usize; 4], f64); 7] = [
        ([1, 3, 4, 4], g),     // batch 1, 3 channels, 4x4
        ([9, 5, 4, 4], g),     // batch not a multiple of the task rows
        ([2, 16, 33, 33], g),  // odd map
        ([3, 32, 64, 64], h),  // 64² layer, several rows per task
        ([2, 3, 130, 131], g), // rows longer than a task
        ([1, 1, 1, 1], g),
        ([4, 7, 5, 3], 0.5),   // non-square, gain < 1
    ];
    for (i, (s, gain)) in cases4.into_iter().enumerate() {
        let e = check_bias_lrelu(s, gain, 400 + i as u64);
        println!("bias_lrelu {s:?} gain {gain:.3}: rel err y {:.2e} dx {:.2e} db {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "bias_lrelu case {i}: {e:?}");
    }
    // fully connected: [n, c]
    for (i, s) in [[1usize, 3], [32, 512], [7, 129]].into_iter().enumerate() {
        let e = check_bias_lrelu(s, g * 0.01, 500 + i as u64);
        println!("bias_lrelu {s:?}: rel err y {:.2e} dx {:.2e} db {:.2e}", e[0], e[1], e[2]);
        assert!(e.iter().all(|&v| v < TOL), "bias_lrelu fc case {i}: {e:?}");
    }
}

#[test]
fn bias_lrelu_plain_device_and_determinism() {
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = randn([3, 6, 9, 9], &mut rng, &dev);
    let b: Tensor<1> = Tensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0, 0.25, -0.3], [6]), &dev);
    let a = vals(limner_kernels::bias_lrelu(x.clone(), b.clone(), 0.2, 2.0));
    // a uniquely owned input: computed in place
    let a2 = vals(limner_kernels::bias_lrelu(x.clone().mul_scalar(1.0), b.clone(), 0.2, 2.0));
    let r = vals(burn::tensor::activation::leaky_relu(x.clone() + b.clone().reshape([1, 6, 1, 1]), 0.2).mul_scalar(2.0));
    assert_eq!(a, r);
    assert_eq!(a2, r);
    // the synthesis-layer tail, untracked: out of place and in place
    let d = randn([3, 6, 1, 1], &mut rng, &dev).reshape([3, 6]);
    let z = randn([1, 1, 9, 9], &mut rng, &dev);
    let tail = |x: Tensor<4>| vals(limner_kernels::demod_noise_bias_lrelu(x, d.clone(), Some(z.clone()), b.clone(), 0.2, 1.5));
    let want = vals(
        burn::tensor::activation::leaky_relu(x.clone() * d.clone().reshape([3, 6, 1, 1]) + z.clone() + b.clone().reshape([1, 6, 1, 1]), 0.2)
            .mul_scalar(1.5),
    );
    assert_eq!(tail(x.clone()), want);
    assert_eq!(tail(x.clone().mul_scalar(1.0)), want);
    // bias gradient: bit-identical on repeat (fixed reduction order)
    let (c, hw) = (13, 1000);
    let y: Vec<f32> = (0..8 * c * hw).map(|i| ((i * 104729) % 17) as f32 * 0.37 - 3.0).collect();
    let dy: Vec<f32> = (0..8 * c * hw).map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6).collect();
    let (dx, db) = limner_kernels::act::bias_lrelu_bwd(&y, &dy, c, hw, 0.2, 1.4, true);
    for _ in 0..3 {
        let (dx2, db2) = limner_kernels::act::bias_lrelu_bwd(&y, &dy, c, hw, 0.2, 1.4, true);
        assert_eq!(dx, dx2);
        assert_eq!(db, db2);
    }
}

/// `demod_noise_bias_lrelu` (fused) vs burn's `leaky_relu(x * d + noise + b, 0.2) * gain` on
/// the autodiff flex device: y bit-identical; dx, dd, dnoise, db rel err (returned).
fn check_demod(shape: [usize; 4], nn: Option<usize>, gain: f64, seed: u64) -> Vec<f64> {
    let dev = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [n, c, h, w] = shape;
    let mut r = |len: usize, a: f32| -> Vec<f32> { (0..len).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * a).collect() };
    let (xv, dv, bv) = (r(n * c * h * w, 1.0), r(n * c, 2.0), r(c, 0.5));
    let zv = r(nn.unwrap_or(1) * h * w, 0.3);
    let rv = r(n * c * h * w, 1.0);
    let f = |t: TensorData| t.try_to_vec::<f32>().unwrap();
    let run = |fast: bool| {
        let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), shape), &dev).require_grad();
        // odd seeds: a fresh (uniquely owned) input
        let xin = if seed % 2 == 1 { x.clone().mul_scalar(1.0) } else { x.clone() };
        let d = Tensor::<2>::from_data(TensorData::new(dv.clone(), [n, c]), &dev).require_grad();
        let b = Tensor::<1>::from_data(TensorData::new(bv.clone(), [c]), &dev).require_grad();
        let z = nn.map(|nn| Tensor::<4>::from_data(TensorData::new(zv.clone(), [nn, 1, h, w]), &dev).require_grad());
        let y = if fast {
            limner_kernels::demod_noise_bias_lrelu(xin, d.clone(), z.clone(), b.clone(), 0.2, gain)
        } else {
            let v = xin * d.clone().reshape([n, c, 1, 1]);
            let v = match &z {
                Some(z) => v + z.clone(),
                None => v,
            };
            burn::tensor::activation::leaky_relu(v + b.clone().reshape([1, c, 1, 1]), 0.2).mul_scalar(gain)
        };
        let rt = Tensor::<4>::from_data(TensorData::new(rv.clone(), shape), &dev);
        let g = (y.clone() * rt).sum().backward();
        let mut out = vec![f(y.into_data()), f(x.grad(&g).unwrap().into_data()), f(d.grad(&g).unwrap().into_data())];
        out.push(f(b.grad(&g).unwrap().into_data()));
        if let Some(z) = z {
            out.push(f(z.grad(&g).unwrap().into_data()));
        }
        out
    };
    let a = run(true);
    let p = run(false);
    assert_eq!(a[0], p[0], "forward must be bit-identical to burn's composition");
    a.iter().zip(&p).map(|(a, p)| rel(a, p)).collect()
}

#[test]
fn demod_noise_bias_lrelu_matches_burn_forward_and_backward() {
    let g = std::f64::consts::SQRT_2;
    let cases: [([usize; 4], Option<usize>); 7] = [
        ([1, 3, 4, 4], Some(1)),    // batch 1, 3 channels, 4x4, const noise
        ([9, 5, 4, 4], Some(9)),    // per-sample noise
        ([2, 16, 33, 33], Some(1)), // odd map
        ([3, 32, 64, 64], Some(3)), // 64² layer
        ([2, 3, 7, 5], None),       // no noise, non-square, hw not a multiple of 16
        ([1, 1, 1, 1], Some(1)),
        ([4, 7, 8, 8], Some(1)),    // const noise summed over samples
    ];
    for (i, (s, nn)) in cases.into_iter().enumerate() {
        let e = check_demod(s, nn, g, 600 + i as u64);
        println!("demod_noise_bias_lrelu {s:?} noise {nn:?}: rel err y dx dd db dnoise {:?}", e.iter().map(|v| format!("{v:.2e}")).collect::<Vec<_>>());
        assert!(e.iter().all(|&v| v < TOL), "demod case {i}: {e:?}");
    }
}

#[test]
fn demod_noise_bias_lrelu_is_deterministic() {
    let (n, c, hw) = (6, 5, 77);
    let x: Vec<f32> = (0..n * c * hw).map(|i| ((i * 104729) % 17) as f32 * 0.37 - 3.0).collect();
    let y: Vec<f32> = (0..n * c * hw).map(|i| ((i * 31) % 11) as f32 * 0.5 - 2.0).collect();
    let dy: Vec<f32> = (0..n * c * hw).map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6).collect();
    let d: Vec<f32> = (0..n * c).map(|i| i as f32 * 0.01 + 0.5).collect();
    let a = limner_kernels::act::demod_noise_bias_lrelu_bwd(&x, &y, &dy, &d, 1, [n, c, hw], 0.2, 1.4);
    for _ in 0..3 {
        let b = limner_kernels::act::demod_noise_bias_lrelu_bwd(&x, &y, &dy, &d, 1, [n, c, hw], 0.2, 1.4);
        assert_eq!((&a.dx, &a.dd, &a.dnoise, &a.db), (&b.dx, &b.dd, &b.dnoise, &b.db));
    }
}

#[test]
fn scale_channels_matches_burn_forward_and_backward() {
    let dev = Device::flex().autodiff();
    for (i, shape) in [[1usize, 3, 4, 4], [9, 5, 4, 4], [2, 16, 33, 33], [3, 32, 64, 64], [2, 3, 7, 5], [1, 1, 1, 1]].into_iter().enumerate() {
        let [n, c, _, _] = shape;
        let mut rng = ChaCha8Rng::seed_from_u64(700 + i as u64);
        let x0 = randn(shape, &mut rng, &dev);
        let s0 = randn([n, c, 1, 1], &mut rng, &dev).reshape([n, c]);
        let r = randn(shape, &mut rng, &dev);
        let run = |fast: bool| {
            let (x, s) = (x0.clone().require_grad(), s0.clone().require_grad());
            // odd cases: a fresh (uniquely owned) input
            let xin = if i % 2 == 1 { x.clone().mul_scalar(1.0) } else { x.clone() };
            let y = if fast { limner_kernels::scale_channels(xin, s.clone()) } else { xin * s.clone().reshape([n, c, 1, 1]) };
            let g = (y.clone() * r.clone()).sum().backward();
            let f = |t: TensorData| t.try_to_vec::<f32>().unwrap();
            (vals(y), f(x.grad(&g).unwrap().into_data()), f(s.grad(&g).unwrap().into_data()))
        };
        let (a, b) = (run(true), run(false));
        assert_eq!(a.0, b.0, "forward must be bit-identical");
        let e = [rel(&a.1, &b.1), rel(&a.2, &b.2)];
        println!("scale_channels {shape:?}: rel err dx {:.2e} ds {:.2e}", e[0], e[1]);
        assert!(e.iter().all(|&v| v < TOL), "scale_channels case {i}: {e:?}");
    }
    // plain device, in place and not
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(799);
    let x = randn([3, 6, 9, 9], &mut rng, &dev);
    let s = randn([3, 6, 1, 1], &mut rng, &dev).reshape([3, 6]);
    let want = vals(x.clone() * s.clone().reshape([3, 6, 1, 1]));
    assert_eq!(vals(limner_kernels::scale_channels(x.clone(), s.clone())), want);
    assert_eq!(vals(limner_kernels::scale_channels(x.mul_scalar(1.0), s)), want);
}
