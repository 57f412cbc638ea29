//! The fused LPIPS-style distance (`unit_channel_distance`, `LIMNER_FAST_PERCEPTUAL`) against
//! plain f64 loops of its formula and against burn's tensor formula (the previous code path):
//! value and gradient to `f`, on the autodiff flex device and on the plain one, shapes of the
//! perceptual distance's taps (64 / 192 / 256 channels) and odd ones, batch 1 and more, with
//! all-zero pixels (the norm's epsilon) and a pixel where `f == t` (zero distance).

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rnd(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The distance and its gradient to `f` in f64: the formula of the module docs.
fn naive(f: &[f32], t: &[f32], [n, c, h, w]: [usize; 4]) -> (f64, Vec<f64>) {
    let hw = h * w;
    let (mut d, mut g) = (0.0f64, vec![0.0f64; f.len()]);
    for b in 0..n {
        for p in 0..hw {
            let at = |ch: usize| (b * c + ch) * hw + p;
            let nf = ((0..c).map(|ch| (f[at(ch)] as f64).powi(2)).sum::<f64>() + 1e-10).sqrt();
            let nt = ((0..c).map(|ch| (t[at(ch)] as f64).powi(2)).sum::<f64>() + 1e-10).sqrt();
            let u: Vec<f64> = (0..c).map(|ch| f[at(ch)] as f64 / nf).collect();
            let e: Vec<f64> = (0..c).map(|ch| u[ch] - t[at(ch)] as f64 / nt).collect();
            d += e.iter().map(|v| v * v).sum::<f64>();
            let dot: f64 = e.iter().zip(&u).map(|(a, b)| a * b).sum();
            for ch in 0..c {
                g[at(ch)] = 2.0 / (n * hw) as f64 / nf * (e[ch] - u[ch] * dot);
            }
        }
    }
    (d / (n * hw) as f64, g)
}

/// max |a - b| / max |b|
fn rel(a: &[f32], b: &[f64]) -> f64 {
    let d = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max);
    d / b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-30)
}

#[test]
fn fused_distance_matches_the_formula_and_the_tensor_ops() {
    let cases = [[8, 64, 9, 11], [2, 192, 7, 7], [1, 256, 13, 13], [3, 5, 4, 6], [1, 1, 3, 3], [2, 700, 2, 3]];
    let ad = Device::flex().autodiff();
    for (i, &dims) in cases.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let len: usize = dims.iter().product();
        let (mut f, mut t) = (rnd(len, &mut rng), rnd(len, &mut rng));
        let hw = dims[2] * dims[3];
        for ch in 0..dims[1] {
            f[ch * hw] = 0.0; // pixel 0 of sample 0: f is zero (|f| = sqrt(1e-10))
            t[ch * hw + 1] = 0.0; // pixel 1: t is zero
            if hw > 2 {
                t[ch * hw + 2] = f[ch * hw + 2]; // pixel 2: no difference
            }
        }
        let (want, want_g) = naive(&f, &t, dims);
        let run = |fused: bool| {
            limner_kernels::unit_dist::set_fused_enabled(fused);
            let fr = Tensor::<4>::from_data(TensorData::new(f.clone(), dims), &ad).require_grad();
            let tt = Tensor::<4>::from_data(TensorData::new(t.clone(), dims), &Device::flex()).autodiff();
            let d = limner_kernels::unit_channel_distance(fr.clone(), tt);
            let v = d.clone().into_scalar::<f32>();
            let g = d.backward();
            // and on the plain device (no autodiff)
            let plain = limner_kernels::unit_channel_distance(
                Tensor::<4>::from_data(TensorData::new(f.clone(), dims), &Device::flex()),
                Tensor::<4>::from_data(TensorData::new(t.clone(), dims), &Device::flex()),
            )
            .into_scalar::<f32>();
            (v, plain, vals(fr.grad(&g).unwrap()))
        };
        let (vf, pf, gf) = run(true);
        let (vr, pr, gr) = run(false);
        limner_kernels::unit_dist::set_fused_enabled(true);
        let (ef, er) = ((vf as f64 - want).abs() / want, (vr as f64 - want).abs() / want);
        let (egf, egr) = (rel(&gf, &want_g), rel(&gr, &want_g));
        eprintln!("{dims:?}: value {want:.6}: fused rel err {ef:.1e} (tensor ops {er:.1e}); gradient fused {egf:.1e} (tensor ops {egr:.1e})");
        assert!(ef < 1e-6, "{dims:?}: fused value {vf} vs {want}");
        assert_eq!(vf.to_bits(), pf.to_bits(), "{dims:?}: the plain device gives the same value");
        assert!(egf < 1e-6, "{dims:?}: fused gradient rel err {egf}");
        // the tensor formula agrees too (its own f32 rounding)
        assert!(er < 1e-5 && egr < 1e-5 && (pr - vr).abs() <= 1e-6 * vr.abs(), "{dims:?}: tensor ops {er} {egr}");
    }
}

/// Deterministic: the same bits on every run and with any number of threads.
#[test]
fn fused_distance_is_deterministic_across_thread_counts() {
    let dims = [4, 64, 19, 23];
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let len: usize = dims.iter().product();
    let (f, t) = (rnd(len, &mut rng), rnd(len, &mut rng));
    let hw = dims[2] * dims[3];
    let run = || {
        let (d, nf, nt) = limner_kernels::unit_dist::forward(&f, &t, dims[0], dims[1], hw);
        (d, limner_kernels::unit_dist::backward(&f, &t, &nf, &nt, dims[0], dims[1], hw, 1.5))
    };
    let (d1, g1) = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
    let (d3, g3) = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(run);
    assert_eq!(d1.to_bits(), d3.to_bits());
    assert!(g1.iter().zip(&g3).all(|(a, b)| a.to_bits() == b.to_bits()));
}
