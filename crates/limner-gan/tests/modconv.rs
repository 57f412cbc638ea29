//! The modulated convolution against a naive per-sample reference written with plain loops
//! in f64 (an independent implementation of the paper's equations), and the property that
//! demodulation restores unit variance.

use burn::tensor::{Device, Distribution, Tensor};
use limner_gan::layers::{NoiseMode, SynthesisLayer};
use limner_gan::params::{to_vec, tensor_from};

/// `y[o, y, x] = sum_{i,ky,kx} w[o,i,ky,kx] * x[i, y+ky-p, x+kx-p]` (cross-correlation).
fn conv2d_ref(x: &[f64], cin: usize, h: usize, w: &[f64], cout: usize, k: usize, pad: usize) -> Vec<f64> {
    let ho = h + 2 * pad + 1 - k;
    let mut y = vec![0.0; cout * ho * ho];
    for o in 0..cout {
        for oy in 0..ho {
            for ox in 0..ho {
                let mut s = 0.0;
                for i in 0..cin {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (oy as i64 + ky as i64 - pad as i64, ox as i64 + kx as i64 - pad as i64);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < h {
                                s += w[((o * cin + i) * k + ky) * k + kx] * x[(i * h + iy as usize) * h + ix as usize];
                            }
                        }
                    }
                }
                y[(o * ho + oy) * ho + ox] = s;
            }
        }
    }
    y
}

/// The README's description of the upsampling conv: zero-insert (size 2H-1), pad 2, true
/// convolution (kernel flipped), then pad 1 and filter with FIR*4 -> 2H.
fn up_conv_ref(x: &[f64], cin: usize, h: usize, w: &[f64], cout: usize) -> Vec<f64> {
    let hz = 2 * h - 1;
    let mut z = vec![0.0; cin * hz * hz];
    for i in 0..cin {
        for y in 0..h {
            for xx in 0..h {
                z[(i * hz + 2 * y) * hz + 2 * xx] = x[(i * h + y) * h + xx];
            }
        }
    }
    let mut wf = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for ky in 0..3 {
                for kx in 0..3 {
                    wf[((o * cin + i) * 3 + ky) * 3 + kx] = w[((o * cin + i) * 3 + 2 - ky) * 3 + 2 - kx];
                }
            }
        }
    }
    let y = conv2d_ref(&z, cin, hz, &wf, cout, 3, 2); // [cout, 2H+1, 2H+1]
    let k1 = [1.0, 3.0, 3.0, 1.0];
    let mut f = vec![0.0; 16];
    for a in 0..4 {
        for b in 0..4 {
            f[a * 4 + b] = k1[a] * k1[b] / 64.0 * 4.0;
        }
    }
    let hy = 2 * h + 1;
    let mut out = vec![];
    for o in 0..cout {
        out.extend(conv2d_ref(&y[o * hy * hy..(o + 1) * hy * hy], 1, hy, &f, 1, 4, 1));
    }
    out
}

fn check_layer(up: bool, n: usize, cin: usize, cout: usize, h: usize) {
    let device = Device::flex();
    let wdim = 8;
    let res = if up { 2 * h } else { h };
    let mut layer = SynthesisLayer::new(cin, cout, wdim, res, up, &mut limner_gan::layers::Init::new(1, &device));
    layer.bias = Tensor::random([cout], Distribution::Normal(0.0, 0.3), &device);
    let x = Tensor::<4>::random([n, cin, h, h], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<2>::random([n, wdim], Distribution::Normal(0.0, 1.0), &device);
    let got = to_vec(&layer.forward(x.clone(), w.clone(), &mut NoiseMode::None));

    let xs: Vec<f64> = to_vec(&x).iter().map(|&v| v as f64).collect();
    let styles: Vec<f64> = to_vec(&layer.affine.forward(w)).iter().map(|&v| v as f64).collect();
    let wt: Vec<f64> = to_vec(&layer.weight).iter().map(|&v| v as f64).collect();
    let bias: Vec<f64> = to_vec(&layer.bias).iter().map(|&v| v as f64).collect();
    let plane_in = cin * h * h;
    let mut want = vec![];
    for s in 0..n {
        // per-sample weights: modulate, demodulate
        let mut wm = vec![0.0; wt.len()];
        for o in 0..cout {
            let mut ss = 0.0;
            for i in 0..cin {
                for k in 0..9 {
                    let v = wt[(o * cin + i) * 9 + k] * styles[s * cin + i];
                    wm[(o * cin + i) * 9 + k] = v;
                    ss += v * v;
                }
            }
            let d = 1.0 / (ss + 1e-8).sqrt();
            for v in &mut wm[o * cin * 9..(o + 1) * cin * 9] {
                *v *= d;
            }
        }
        let xi = &xs[s * plane_in..(s + 1) * plane_in];
        let y = if up { up_conv_ref(xi, cin, h, &wm, cout) } else { conv2d_ref(xi, cin, h, &wm, cout, 3, 1) };
        let plane = res * res;
        for o in 0..cout {
            for p in 0..plane {
                let v = y[o * plane + p] + bias[o];
                want.push((if v < 0.0 { 0.2 * v } else { v }) * std::f64::consts::SQRT_2);
            }
        }
    }
    let max_err = got.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    let max_val = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    eprintln!("up={up} n={n} {cin}->{cout} {h}px: max error {max_err:.2e} (max |y| {max_val:.2})");
    assert!(max_err < 1e-4 * max_val.max(1.0), "max error {max_err}");
}

#[test]
fn modulated_conv_matches_per_sample_reference() {
    check_layer(false, 3, 5, 4, 6);
    check_layer(false, 1, 3, 3, 4);
}

#[test]
fn upsampling_modulated_conv_matches_per_sample_reference() {
    check_layer(true, 2, 4, 3, 4);
    check_layer(true, 1, 3, 5, 5);
}

/// Demodulation gives the conv output unit variance whatever the style magnitudes: with
/// unit-normal inputs the pre-activation output has std ~ 1 even for styles of scale 10.
#[test]
fn demodulation_keeps_unit_variance() {
    let device = Device::flex();
    let (n, cin, cout, h) = (8, 64, 64, 16);
    for style_scale in [0.1f32, 1.0, 10.0] {
        let mut layer = SynthesisLayer::new(cin, cout, 16, h, false, &mut limner_gan::layers::Init::new(2, &device));
        layer.affine.bias = layer.affine.bias.mul_scalar(style_scale);
        let x = Tensor::<4>::random([n, cin, h, h], Distribution::Normal(0.0, 1.0), &device);
        let w = tensor_from(vec![0.0; n * 16], [n, 16], &device).add(Tensor::random([n, 16], Distribution::Normal(0.0, 0.1), &device));
        let y = to_vec(&layer.forward(x, w, &mut NoiseMode::None));
        // undo lrelu * sqrt(2) to get the pre-activation values
        let pre: Vec<f64> = y.iter().map(|&v| { let v = v as f64 / std::f64::consts::SQRT_2; if v < 0.0 { v / 0.2 } else { v } }).collect();
        let mean = pre.iter().sum::<f64>() / pre.len() as f64;
        let std = (pre.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / pre.len() as f64).sqrt();
        eprintln!("style scale {style_scale}: output std {std:.3}");
        assert!((0.85..1.15).contains(&std), "style scale {style_scale}: std {std}");
    }
}

/// `Generator::prepare_inference` keeps each modulated conv's `Σ_k W²`: the images stay bit for
/// bit the same, and any visit of the parameters (here one that changes the weights, as loading
/// or an optimizer step does) drops the caches, so the changed weights are used.
#[test]
fn prepared_generator_is_bit_identical_and_a_parameter_visit_drops_the_cache() {
    use limner_gan::params::{ParamKind, ParamVisitor, Params};
    use limner_gan::Generator;
    let device = Device::flex();
    let cfg = limner_gan::config::tiny(32).0;
    let mut g = Generator::new(&cfg, &device);
    let z = tensor_from((0..2 * cfg.z_dim).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect(), [2, cfg.z_dim], &device);
    let plain = to_vec(&g.forward(z.clone(), 0.7, &mut NoiseMode::Const));
    g.prepare_inference();
    assert!(g.synthesis.blocks.iter().all(|b| b.conv1.demod_sq.is_some()));
    let cached = to_vec(&g.forward(z.clone(), 0.7, &mut NoiseMode::Const));
    assert!(plain == cached, "the cached demodulation changed the image");
    struct Scale;
    impl ParamVisitor for Scale {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, _: ParamKind) {
            if name.ends_with("conv1.weight") {
                *t = t.clone().mul_scalar(1.5) + 0.01;
            }
        }
    }
    g.visit_params("", &mut Scale);
    assert!(g.synthesis.blocks.iter().all(|b| b.conv1.demod_sq.is_none()), "a parameter visit kept a cache");
    let changed = to_vec(&g.forward(z.clone(), 0.7, &mut NoiseMode::Const));
    let mut fresh = g.clone();
    fresh.prepare_inference();
    let fresh = to_vec(&fresh.forward(z, 0.7, &mut NoiseMode::Const));
    assert!(changed != plain, "the weights' change did not show");
    assert!(changed == fresh, "the changed weights with a fresh cache give another image");
}
