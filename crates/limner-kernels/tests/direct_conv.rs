//! The direct conv (`limner_kernels::direct`, the default for the fused conv + bias + ReLU on
//! AVX2 + FMA machines) against f64 loops and against the im2col + gemm path it replaces
//! (`direct::set_enabled(false)`): forward with bias + ReLU, plain forward, and the input
//! gradient with the ReLU mask (stride 1: a forward conv of the masked gradient with the
//! flipped kernel, the mask applied while copying the planes). Every kernel shape InceptionV3
//! uses at small maps, stride 2, output-channel counts that are not a multiple of 4, batch 1
//! (superblocks as tasks) and batches of at least one sample per thread; results do not depend
//! on the thread count (bit for bit).
//!
//! Error measure: |y - y_f64| / Σ_k |w_k x_k| (the size of the terms summed, so that a sum that
//! cancels does not make the bound meaningless); bound 1e-6.

use limner_kernels::conv_relu::{fwd, xgrad_relu};
use limner_kernels::cpu::Geom;
use limner_kernels::direct;

fn rnd(n: usize, seed: &mut u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (*seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect()
}

/// f64 loops: (conv, Σ|terms|) per output element, no bias.
fn naive(g: &Geom, x: &[f32], w: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (ho, wo) = (g.ho(), g.wo());
    let mut y = vec![0.0; g.n * g.out_len()];
    let mut mag = vec![0.0; g.n * g.out_len()];
    for b in 0..g.n {
        for o in 0..g.cout {
            for oh in 0..ho {
                for ow in 0..wo {
                    let (mut acc, mut m) = (0.0f64, 0.0f64);
                    for c in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let ih = (oh * g.s + ky) as isize - g.ph as isize;
                                let iw = (ow * g.s + kx) as isize - g.pw as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let t = x[((b * g.cin + c) * g.h + ih as usize) * g.w + iw as usize] as f64
                                    * w[((o * g.cin + c) * g.kh + ky) * g.kw + kx] as f64;
                                acc += t;
                                m += t.abs();
                            }
                        }
                    }
                    let i = ((b * g.cout + o) * ho + oh) * wo + ow;
                    (y[i], mag[i]) = (acc, m);
                }
            }
        }
    }
    (y, mag)
}

/// f64 input gradient: `dx[ci, ih, iw] = Σ dy[co, oh, ow] w[co, ci, ky, kx]` over the taps that
/// read `(ih, iw)`; with Σ|terms|.
fn naive_xgrad(g: &Geom, dy: &[f32], w: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (ho, wo) = (g.ho(), g.wo());
    let mut dx = vec![0.0; g.n * g.in_len()];
    let mut mag = vec![0.0; g.n * g.in_len()];
    for b in 0..g.n {
        for o in 0..g.cout {
            for oh in 0..ho {
                for ow in 0..wo {
                    let d = dy[((b * g.cout + o) * ho + oh) * wo + ow] as f64;
                    for c in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let ih = (oh * g.s + ky) as isize - g.ph as isize;
                                let iw = (ow * g.s + kx) as isize - g.pw as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let i = ((b * g.cin + c) * g.h + ih as usize) * g.w + iw as usize;
                                let t = d * w[((o * g.cin + c) * g.kh + ky) * g.kw + kx] as f64;
                                dx[i] += t;
                                mag[i] += t.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, mag)
}

/// max over elements of |a - want| / (mag + tiny)
fn worst(a: &[f32], want: &[f64], mag: &[f64]) -> f64 {
    assert_eq!(a.len(), want.len());
    a.iter().zip(want).zip(mag).map(|((a, w), m)| (*a as f64 - w).abs() / (m + 1e-30)).fold(0.0, f64::max)
}

/// The tests switch the direct path on and off for the whole process: one at a time.
static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn geoms() -> Vec<Geom> {
    vec![
        Geom::square(1, 3, 41, 41, 32, 3, 2, 0),    // conv2d_1: RGB, stride 2
        Geom::square(3, 3, 21, 20, 32, 3, 2, 0),    // the same, batch 3
        Geom::square(1, 32, 29, 29, 32, 3, 1, 0),   // conv2d_2
        Geom::square(4, 32, 19, 19, 64, 3, 1, 1),   // conv2d_3, batch 4
        Geom::square(2, 64, 15, 15, 80, 1, 1, 0),   // conv2d_4: 1x1
        Geom::square(1, 80, 16, 16, 192, 3, 1, 0),  // conv2d_5 (input gradient: K = 1728)
        Geom::square(3, 48, 13, 13, 64, 5, 1, 2),   // mixed 5x5
        Geom::square(1, 96, 13, 13, 96, 3, 1, 1),   // mixed 3x3
        Geom::square(2, 40, 15, 15, 38, 3, 2, 0),   // stride 2, cout not a multiple of 4
        Geom::square(5, 7, 9, 11, 5, 3, 1, 1),      // odd everything, batch 5
        Geom { n: 1, cin: 12, h: 9, w: 40, cout: 10, kh: 1, kw: 7, s: 1, ph: 0, pw: 3 },
        Geom { n: 2, cin: 12, h: 30, w: 30, cout: 6, kh: 7, kw: 1, s: 1, ph: 3, pw: 0 },
        Geom::square(1, 2, 1, 30, 3, 1, 1, 0),      // one row
    ]
}

#[test]
fn direct_conv_matches_f64_loops_and_the_gemm_path() {
    let _one = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    assert!(direct::enabled(), "this machine lacks AVX2 + FMA or LIMNER_DIRECT_CONV=0: the test needs the direct path");
    let mut seed = 23;
    let (mut worst_y, mut worst_dx, mut worst_gemm) = (0.0f64, 0.0f64, 0.0f64);
    let mut covered = 0;
    for g in geoms() {
        let x = rnd(g.n * g.in_len(), &mut seed);
        let w = rnd(g.cout * g.ckk(), &mut seed);
        let b = rnd(g.cout, &mut seed);
        let dy = rnd(g.n * g.out_len(), &mut seed);
        let applies = direct::applies(&g);
        covered += usize::from(applies);
        let run = |on: bool| {
            direct::set_enabled(on);
            let plain = fwd(&g, &x, &w, None, false);
            let y = fwd(&g, &x, &w, Some(&b), true);
            let dx = xgrad_relu(&g, &dy, &y, &w);
            direct::set_enabled(true);
            (plain, y, dx)
        };
        let (d, old) = (run(true), run(false));
        let (want, mag) = naive(&g, &x, &w);
        let e = worst(&d.0, &want, &mag);
        assert!(e < 1e-6, "{g:?}: plain forward {e:e}");
        worst_y = worst_y.max(e);
        // bias + ReLU: the same elements (bias added once, in f32, like the gemm path)
        let hw = g.ho() * g.wo();
        for (i, (v, p)) in d.1.iter().zip(&d.0).enumerate().filter(|_| applies) {
            assert_eq!(*v, (*p + b[(i / hw) % g.cout]).max(0.0), "{g:?}: epilogue at {i}");
        }
        assert!(d.1.iter().any(|v| *v > 0.0) && d.1.iter().any(|v| *v == 0.0), "{g:?}: ReLU neither clips nor passes");
        // the input gradient of the masked dy (mask from the direct forward's output, the same
        // for both paths up to rounding: use the direct one's mask for both references)
        let masked: Vec<f32> = dy.iter().zip(&d.1).map(|(d, y)| if *y > 0.0 { *d } else { 0.0 }).collect();
        let (want_dx, mag_dx) = naive_xgrad(&g, &masked, &w);
        let e = worst(&d.2, &want_dx, &mag_dx);
        assert!(e < 1e-6, "{g:?}: input gradient {e:e}");
        worst_dx = worst_dx.max(e);
        // against the gemm path (forward only: its ReLU mask may differ where y rounds to 0)
        let e = worst(&d.0, &old.0.iter().map(|v| *v as f64).collect::<Vec<_>>(), &mag);
        assert!(e < 2e-6, "{g:?}: direct vs gemm {e:e}");
        worst_gemm = worst_gemm.max(e);
    }
    assert!(covered >= 6, "only {covered} geometries take the direct path");
    println!("worst relative error: forward {worst_y:e}, input gradient {worst_dx:e}, direct vs gemm {worst_gemm:e}");
}

#[test]
fn direct_conv_does_not_depend_on_the_thread_count() {
    let _one = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let mut seed = 41;
    for g in geoms() {
        let x = rnd(g.n * g.in_len(), &mut seed);
        let w = rnd(g.cout * g.ckk(), &mut seed);
        let b = rnd(g.cout, &mut seed);
        let dy = rnd(g.n * g.out_len(), &mut seed);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = direct::fwd(&g, &x, None, &w, Some(&b), true);
                let dx = xgrad_relu(&g, &dy, &y, &w);
                (y, dx)
            })
        };
        let one = run(1);
        for t in [2, 3, 8] {
            assert_eq!(run(t), one, "{g:?}: {t} threads");
        }
    }
}

/// The AVX-512 micro-kernel (48 pixels per tile) computes the same sums in the same order as
/// the AVX2 one (24 pixels): the outputs are bit-identical, forward and input gradient. On a
/// CPU without AVX-512F the switch cannot turn it on.
#[test]
fn avx512_kernel_is_bit_identical_to_the_avx2_kernel() {
    let _one = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    direct::set_avx512(true);
    #[cfg(target_arch = "x86_64")]
    if !std::is_x86_feature_detected!("avx512f") {
        assert!(!direct::uses_avx512(), "the AVX-512 kernel claimed on a CPU without AVX-512F");
        println!("this CPU has no AVX-512F: only the AVX2 kernel runs here");
        return;
    }
    assert!(direct::uses_avx512());
    let mut seed = 77;
    let mut compared = 0;
    for g in geoms().into_iter().filter(direct::applies) {
        let x = rnd(g.n * g.in_len(), &mut seed);
        let w = rnd(g.cout * g.ckk(), &mut seed);
        let b = rnd(g.cout, &mut seed);
        let dy = rnd(g.n * g.out_len(), &mut seed);
        let run = |wide: bool| {
            direct::set_avx512(wide);
            let y = direct::fwd(&g, &x, None, &w, Some(&b), true);
            let dx = xgrad_relu(&g, &dy, &y, &w);
            direct::set_avx512(true);
            (y, dx)
        };
        let (wide, narrow) = (run(true), run(false));
        assert!(wide.0.iter().any(|v| *v > 0.0), "{g:?}: empty output");
        assert_eq!(wide, narrow, "{g:?}: AVX-512 vs AVX2 kernel");
        compared += 1;
    }
    assert!(compared >= 6, "only {compared} geometries compared");
}

/// The input gradient of stride-2 convs (StyleGAN2's upsampling conv, the discriminator's
/// downsampling convs) as four stride-1 phase convs (`cpu::conv_xgrad` with the direct conv
/// on; its 3×3 geometries with padding 0 or 1 go through `upconv` on AVX-512 machines, tested
/// below) against f64 loops and against the gemm + col2im path, for kernels 3×3, 4×4, 2×3 and
/// 1×3, paddings 0–2, odd and even sizes, batch 1 and 3, and rows / columns dy never reaches.
#[test]
fn stride2_input_gradient_by_phases_matches_f64_loops_and_col2im() {
    let _one = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    use limner_kernels::cpu::conv_xgrad;
    let geoms = [
        Geom::square(1, 16, 65, 65, 24, 3, 2, 0),  // StyleGAN2's up-conv: 32 -> 65
        Geom::square(3, 20, 33, 32, 18, 3, 2, 1),
        Geom::square(1, 32, 34, 34, 16, 4, 2, 1),
        Geom::square(2, 16, 31, 36, 8, 3, 2, 2),
        Geom { n: 1, cin: 16, h: 35, w: 38, cout: 12, kh: 2, kw: 3, s: 2, ph: 1, pw: 0 },
        Geom { n: 1, cin: 16, h: 34, w: 33, cout: 12, kh: 1, kw: 3, s: 2, ph: 0, pw: 1 },
        Geom::square(1, 16, 34, 34, 8, 3, 2, 0),   // the last row and column get no dy
    ];
    let mut seed = 91;
    let mut differ = 0;
    for g in geoms {
        assert!(g.ho() * g.wo() >= 256, "{g:?}: below the phase path's size");
        let dy = rnd(g.n * g.out_len(), &mut seed);
        let w = rnd(g.cout * g.ckk(), &mut seed);
        direct::set_enabled(true);
        let phases = conv_xgrad(&g, &dy, &w);
        direct::set_enabled(false);
        let col2im = conv_xgrad(&g, &dy, &w);
        direct::set_enabled(true);
        let (want, mag) = naive_xgrad(&g, &dy, &w);
        let e = worst(&phases, &want, &mag);
        assert!(e < 1e-6, "{g:?}: phases vs f64 {e:e}");
        let e2 = worst(&col2im, &want, &mag);
        assert!(e2 < 1e-6, "{g:?}: col2im vs f64 {e2:e}");
        assert!(phases.iter().any(|v| *v != 0.0), "{g:?}: all zero");
        differ += usize::from(phases != col2im);
        // the pixels no tap reaches are exactly 0 on both paths
        for (i, m) in mag.iter().enumerate() {
            if *m == 0.0 {
                assert_eq!(phases[i], 0.0, "{g:?}: pixel {i} unreached but {}", phases[i]);
            }
        }
    }
    // the two paths sum in different orders: identical bits everywhere would mean the phase
    // path never ran
    assert!(differ >= 4, "only {differ} geometries differ from the col2im path");
}

/// The 3×3 stride-2 transposed conv with all four phases in one pass (`upconv`, on AVX-512
/// machines: StyleGAN2's up-convs) against f64 loops and the gemm + col2im path: maps from
/// 1×1 to 33×33 of dy (one micro-tile, where the weights are read in place, and many, where
/// they are packed), odd and even channel counts, paddings 0 and 1 (mixed too), batch 1
/// (superblocks × channel pairs as tasks) and batches of at least one sample per thread; every
/// pixel written (none is left from the allocation), and bit for bit the same on 1 and 3 threads.
#[test]
fn upconv_matches_f64_loops_and_does_not_depend_on_the_thread_count() {
    let _one = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    use limner_kernels::cpu::conv_xgrad;
    use limner_kernels::upconv;
    direct::set_enabled(true);
    if !direct::uses_avx512() {
        eprintln!("no AVX-512F here: upconv does not run (the phase path does, tested above)");
        return;
    }
    let geoms = [
        Geom::square(1, 16, 9, 9, 24, 3, 2, 0),   // dy 4x4: one micro-tile, weights in place
        Geom::square(1, 15, 9, 9, 8, 3, 2, 0),    // odd cin: packed
        Geom::square(1, 4, 3, 3, 6, 3, 2, 0),     // dy 1x1
        Geom::square(2, 10, 17, 17, 12, 3, 2, 0), // batch 2 (one sample per thread on 2 cores)
        Geom::square(1, 6, 33, 31, 5, 3, 2, 1),   // padding 1, odd sizes
        Geom::square(3, 8, 8, 8, 4, 3, 2, 1),     // padding 1, even size: last row and column get no dy
        Geom { n: 1, cin: 9, h: 67, w: 66, cout: 16, kh: 3, kw: 3, s: 2, ph: 0, pw: 1 },
    ];
    let mut seed = 7;
    for g in geoms {
        assert!(upconv::applies(&g), "{g:?}");
        let dy = rnd(g.n * g.out_len(), &mut seed);
        let w = rnd(g.cout * g.ckk(), &mut seed);
        // fill the allocator's free memory with NaN first: a pixel left unwritten would show
        drop(vec![f32::NAN; 4 * g.n * g.in_len()]);
        let got = conv_xgrad(&g, &dy, &w);
        let (want, mag) = naive_xgrad(&g, &dy, &w);
        let e = worst(&got, &want, &mag);
        assert!(e < 1e-6, "{g:?}: upconv vs f64 {e:e}");
        assert!(got.iter().all(|v| v.is_finite()), "{g:?}: a pixel left unwritten");
        for (i, m) in mag.iter().enumerate() {
            if *m == 0.0 {
                assert_eq!(got[i], 0.0, "{g:?}: pixel {i} unreached but {}", got[i]);
            }
        }
        direct::set_enabled(false);
        let col2im = conv_xgrad(&g, &dy, &w);
        direct::set_enabled(true);
        assert!(worst(&col2im, &want, &mag) < 1e-6);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let again = pool.install(|| conv_xgrad(&g, &dy, &w));
            assert!(again == got, "{g:?}: {threads} threads give other bits");
        }
    }
}
