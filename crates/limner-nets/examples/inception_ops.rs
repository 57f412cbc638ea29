//! Per-op timings (forward, and forward + input gradient) of the op kinds InceptionV3 runs,
//! at the shapes of a 256 px input: `cargo run --release -p limner-nets --example inception_ops`.
//! Used once to see which ops dominate a Gatys / DeepDream step (bench/NOTES.md).
use std::time::Instant;

use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    }).fold(f64::INFINITY, f64::min)
}

fn bench(name: &str, shape: [usize; 4], op: &dyn Fn(Tensor<4>) -> Tensor<4>) {
    let dev = Device::flex();
    let x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &dev);
    let fwd = time(10, || {
        let _ = op(x.clone()).into_data();
    });
    let both = time(10, || {
        let xa = x.clone().autodiff().require_grad();
        let y = op(xa.clone());
        let g = y.sum().backward();
        let _ = xa.grad(&g).unwrap().into_data();
    });
    println!("{name:<44} fwd {fwd:7.2} ms  fwd+bwd {both:7.2} ms  (bwd ~{:7.2})", both - fwd);
}

fn main() {
    let dev = Device::flex();
    let w = |o: usize, i: usize, kh: usize, kw: usize, ad: bool| {
        let t = Tensor::<4>::random([o, i, kh, kw], Distribution::Uniform(-0.1, 0.1), &dev);
        if ad { t.autodiff() } else { t }
    };
    let conv = |o, i, kh: usize, kw: usize, s: usize, valid: bool| {
        let (w0, w1) = (w(o, i, kh, kw, false), w(o, i, kh, kw, true));
        move |x: Tensor<4>| {
            let ad = x.is_require_grad() || matches!(x.device().as_dispatch(), burn::backend::DispatchDevice::Autodiff(_));
            let pad = if valid { [0, 0] } else { [kh / 2, kw / 2] };
            let wt = if ad { w1.clone() } else { w0.clone() };
            limner_kernels::conv2d(x, wt, None, ConvOptions::new([s, s], pad, [1, 1], 1))
        }
    };
    bench("relu 64x125x125", [1, 64, 125, 125], &|x| relu(x));
    bench("relu 192x29x29 (x7 per block A)", [1, 192, 29, 29], &|x| relu(x));
    bench("max_pool 3x3 s2 64x125x125", [1, 64, 125, 125], &|x| max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2])));
    bench("max_pool 3x3 s2 192x60x60", [1, 192, 60, 60], &|x| max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2])));
    bench("max_pool 3x3 s2 288x29x29 (mixed3)", [1, 288, 29, 29], &|x| max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2])));
    bench("fast max_pool 3x3 s2 64x125x125", [1, 64, 125, 125], &|x| limner_kernels::max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2])));
    bench("fast max_pool 3x3 s2 192x60x60", [1, 192, 60, 60], &|x| limner_kernels::max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2])));
    let fast_avg = |x| limner_kernels::avg_pool2d(x, AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false));
    bench("fast avg_pool 3x3 same 288x29x29", [1, 288, 29, 29], &fast_avg);
    bench("fast avg_pool 3x3 same 768x14x14", [1, 768, 14, 14], &fast_avg);
    let avg = |x| avg_pool2d(x, AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false));
    bench("avg_pool 3x3 same 288x29x29 (mixed1/2)", [1, 288, 29, 29], &avg);
    bench("avg_pool 3x3 same 768x14x14 (mixed4/5)", [1, 768, 14, 14], &avg);
    bench("cat 4 x [64..96]x29x29", [1, 96, 29, 29], &|x| Tensor::cat(vec![x.clone(), x.clone(), x.clone(), x], 1));
    bench("conv2d_1 3->32 3x3 s2 valid @256", [1, 3, 256, 256], &conv(32, 3, 3, 3, 2, true));
    bench("conv2d_2 32->32 3x3 valid @127", [1, 32, 127, 127], &conv(32, 32, 3, 3, 1, true));
    bench("conv2d_3 32->64 3x3 same @125", [1, 32, 125, 125], &conv(64, 32, 3, 3, 1, false));
    bench("conv2d_4 64->80 1x1 @62", [1, 64, 62, 62], &conv(80, 64, 1, 1, 1, true));
    bench("conv2d_5 80->192 3x3 valid @62", [1, 80, 62, 62], &conv(192, 80, 3, 3, 1, true));
    bench("mixed0 5x5 48->64 @29", [1, 48, 29, 29], &conv(64, 48, 5, 5, 1, false));
    bench("mixed0 3x3 96->96 @29", [1, 96, 29, 29], &conv(96, 96, 3, 3, 1, false));
    bench("mixed3 3x3 s2 288->384 @29", [1, 288, 29, 29], &conv(384, 288, 3, 3, 2, true));
    bench("mixed4 1x1 768->192 @14", [1, 768, 14, 14], &conv(192, 768, 1, 1, 1, false));
    bench("mixed4 1x7 128->128 @14 (burn conv)", [1, 128, 14, 14], &conv(128, 128, 1, 7, 1, false));
    bench("mixed4 7x1 128->192 @14 (burn conv)", [1, 128, 14, 14], &conv(192, 128, 7, 1, 1, false));
    bench("mixed5 1x7 160->160 @14 (burn conv)", [1, 160, 14, 14], &conv(160, 160, 1, 7, 1, false));
}
