//! The batch-1 row tiles of the fused conv + bias + ReLU (`conv_relu::fwd_row_tiles`: the im2col
//! row tiles of one sample as parallel tasks, each a single-threaded gemm) give the same values
//! as the previous path (the same tiles one after the other, each gemm split across the
//! threads), bit for bit: forward with and without bias + ReLU, and the input gradient (whose
//! stride-1 case is a forward conv with the flipped kernel). Every kernel shape InceptionV3 uses,
//! with InceptionV3's channel counts at smaller maps, including tiles of one output row (K = 1728).

use limner_kernels::conv_relu::{fwd, set_row_tiles_enabled, xgrad_relu};
use limner_kernels::cpu::Geom;

fn rnd(n: usize, seed: &mut u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (*seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn row_tiles_equal_the_serial_tiles_bit_for_bit() {
    let geoms = [
        Geom::square(1, 3, 41, 41, 32, 3, 2, 0),   // conv2d_1: RGB, stride 2
        Geom::square(1, 32, 37, 37, 32, 3, 1, 0),  // conv2d_2: several rows per tile
        Geom::square(1, 32, 35, 35, 64, 3, 1, 1),  // conv2d_3
        Geom::square(1, 80, 20, 70, 192, 3, 1, 0), // conv2d_5 (its input gradient: K = 1728, one row per tile)
        Geom::square(1, 48, 17, 17, 64, 5, 1, 2),  // 5x5
        Geom::square(1, 288, 15, 15, 384, 3, 2, 0), // mixed3's stride-2 3x3
        Geom { n: 1, cin: 128, h: 14, w: 14, cout: 160, kh: 1, kw: 7, s: 1, ph: 0, pw: 3 },
        Geom { n: 1, cin: 160, h: 14, w: 14, cout: 192, kh: 7, kw: 1, s: 1, ph: 3, pw: 0 },
        Geom::square(2, 24, 17, 17, 40, 3, 1, 1), // two samples, one after the other
    ];
    // the row tiles belong to the im2col + gemm path: switch the direct conv off (its own
    // test is tests/direct_conv.rs)
    limner_kernels::direct::set_enabled(false);
    // two threads, so that batch 1 (and 2 in the 3-thread pool) is below one sample per thread
    for threads in [2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut seed = 17;
            for g in geoms {
                let x = rnd(g.n * g.in_len(), &mut seed);
                let w = rnd(g.cout * g.ckk(), &mut seed);
                let b = rnd(g.cout, &mut seed);
                let dy = rnd(g.n * g.out_len(), &mut seed);
                let run = |on: bool| {
                    set_row_tiles_enabled(on);
                    let y = fwd(&g, &x, &w, Some(&b), true);
                    let plain = fwd(&g, &x, &w, None, false);
                    let dx = xgrad_relu(&g, &dy, &y, &w);
                    (y, plain, dx)
                };
                let (on, off) = (run(true), run(false));
                set_row_tiles_enabled(true);
                assert!(on.0.iter().any(|v| *v > 0.0) && on.0.iter().any(|v| *v == 0.0), "{g:?}: ReLU neither clips nor passes");
                assert_eq!(on.0, off.0, "{g:?}, {threads} threads: forward + bias + ReLU");
                assert_eq!(on.1, off.1, "{g:?}, {threads} threads: plain forward");
                assert_eq!(on.2, off.2, "{g:?}, {threads} threads: input gradient");
            }
        });
    }
}
