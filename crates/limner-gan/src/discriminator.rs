//! The StyleGAN2 residual discriminator with minibatch standard deviation.

use burn::tensor::{Device, Tensor};

use crate::config::DiscriminatorConfig;
use crate::generator::{record, Trace};
use crate::layers::{assert_shape, fir_buffer, Activation, Conv2dConfig, Conv2dLayer, FullyConnectedLayer, Init};
use crate::params::{join, ParamKind, ParamVisitor, Params};

const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// One resnet block `bR`: R -> R/2.
#[derive(Clone, Debug)]
pub struct DiscriminatorBlock {
    pub resolution: usize,
    /// image -> features, first (highest-resolution) block only
    pub fromrgb: Option<Conv2dLayer>,
    pub conv0: Conv2dLayer,
    /// stride-2 3x3 after FIR
    pub conv1: Conv2dLayer,
    /// FIR downsample + 1x1, no bias, gain sqrt(0.5)
    pub skip: Conv2dLayer,
    pub resample_filter: Tensor<2>,
}

impl DiscriminatorBlock {
    /// `(x [N, C, R, R] | None, img [N, 3, R, R])` -> `[N, C', R/2, R/2]`
    pub fn forward(&self, x: Option<Tensor<4>>, img: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let name = format!("D.b{}", self.resolution);
        let (n, r) = (img.dims()[0], self.resolution);
        let [tmp, _, _, _] = self.conv0.weight.dims();
        let [out, _, _, _] = self.conv1.weight.dims();
        let x = match (&self.fromrgb, x) {
            (Some(f), _) => {
                let x = f.forward(img); // [N, tmp, R, R]
                record(trace, &format!("{name}.fromrgb"), &x);
                x
            }
            (None, Some(x)) => x,
            (None, None) => panic!("block b{} needs an input", self.resolution),
        };
        assert_shape(&x, [n, tmp, r, r], &name);
        let y = self.skip.forward(x.clone()); // [N, out, R/2, R/2]
        record(trace, &format!("{name}.skip"), &y);
        let x = self.conv0.forward(x); // [N, tmp, R, R]
        record(trace, &format!("{name}.conv0"), &x);
        let x = self.conv1.forward(x); // [N, out, R/2, R/2]
        record(trace, &format!("{name}.conv1"), &x);
        let x = y + x;
        assert_shape(&x, [n, out, r / 2, r / 2], &name);
        record(trace, &format!("{name}.x"), &x);
        x
    }
}

impl Params for DiscriminatorBlock {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        v.visit(&join(prefix, "resample_filter"), &mut self.resample_filter, ParamKind::Buffer);
        if let Some(f) = &mut self.fromrgb {
            f.visit_params(&join(prefix, "fromrgb"), v);
        }
        self.conv0.visit_params(&join(prefix, "conv0"), v);
        self.conv1.visit_params(&join(prefix, "conv1"), v);
        self.skip.visit_params(&join(prefix, "skip"), v);
    }
}

/// Minibatch standard deviation (`MinibatchStdLayer`): appends `num_channels` feature maps
/// holding the std of each group of `group_size` samples. Groups are strided: sample k
/// belongs to group `k % (N / G)`.
pub fn minibatch_std(x: Tensor<4>, group_size: usize, num_channels: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let g = group_size.min(n);
    assert!(n % g == 0, "batch {n} is not divisible by the minibatch-std group size {g}");
    let f = num_channels;
    let y = x.clone().reshape([g, n / g, f, (c / f) * h * w]); // [G, M, F, c*H*W]
    let y = y.clone() - y.mean_dim(0); // [G, M, F, c*H*W]
    let y = y.square().mean_dim(0); // [1, M, F, c*H*W]
    let y = (y + 1e-8).sqrt(); // [1, M, F, c*H*W]
    let y = y.mean_dim(3); // [1, M, F, 1]
    let y = y.reshape([n / g, f, 1, 1]).repeat_dim(0, g); // [N, F, 1, 1]
    let y = y.repeat_dim(2, h).repeat_dim(3, w); // [N, F, H, W]
    Tensor::cat(vec![x, y], 1) // [N, C+F, H, W]
}

/// The 4x4 epilogue: mbstd, conv, fc, out -> one raw logit per image.
#[derive(Clone, Debug)]
pub struct DiscriminatorEpilogue {
    pub mbstd_group_size: usize,
    pub mbstd_num_channels: usize,
    pub conv: Conv2dLayer,
    pub fc: FullyConnectedLayer,
    pub out: FullyConnectedLayer,
}

impl DiscriminatorEpilogue {
    /// `[N, C, 4, 4]` -> `[N, 1]`, minibatch-std groups of `min(group_size, N)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let g = self.mbstd_group_size.min(x.dims()[0]);
        self.forward_grouped(x, g)
    }

    /// As [`forward`](Self::forward) with an explicit minibatch-std group size.
    pub fn forward_grouped(&self, x: Tensor<4>, group_size: usize) -> Tensor<2> {
        self.forward_traced(x, group_size, &mut None)
    }

    /// As [`forward_grouped`](Self::forward_grouped), reporting `D.b4.mbstd/conv/fc/out`.
    pub fn forward_traced(&self, x: Tensor<4>, group_size: usize, trace: &mut Trace) -> Tensor<2> {
        let [_, c_in, _, _] = self.conv.weight.dims();
        assert_shape(&x, [x.dims()[0], c_in - self.mbstd_num_channels, 4, 4], "D.b4");
        let x = minibatch_std(x, group_size, self.mbstd_num_channels); // [N, C+1, 4, 4]
        record(trace, "D.b4.mbstd", &x);
        let x = self.conv.forward(x); // [N, C, 4, 4]
        record(trace, "D.b4.conv", &x);
        let [n, c, h, w] = x.dims();
        let x = self.fc.forward(x.reshape([n, c * h * w])); // [N, C]
        record(trace, "D.b4.fc", &x);
        let x = self.out.forward(x); // [N, 1]
        record(trace, "D.b4.out", &x);
        x
    }
}

impl Params for DiscriminatorEpilogue {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        self.conv.visit_params(&join(prefix, "conv"), v);
        self.fc.visit_params(&join(prefix, "fc"), v);
        self.out.visit_params(&join(prefix, "out"), v);
    }
}

/// Image -> realness logit.
#[derive(Clone, Debug)]
pub struct Discriminator {
    pub config: DiscriminatorConfig,
    pub blocks: Vec<DiscriminatorBlock>,
    pub b4: DiscriminatorEpilogue,
}

impl Discriminator {
    /// A discriminator with weights drawn from a fixed seed (0).
    pub fn new(cfg: &DiscriminatorConfig, device: &Device) -> Self {
        Self::init(cfg, &mut Init::new(0, device))
    }

    /// A freshly initialised discriminator drawn from `init`.
    pub fn init(cfg: &DiscriminatorConfig, init: &mut Init) -> Self {
        let device = &init.device().clone();
        let mut blocks = vec![];
        let mut res = cfg.img_resolution;
        // the official skip conv has no clamp
        let clamp = cfg.conv_clamp;
        while res > 4 {
            let tmp = cfg.channels(res);
            let out = cfg.channels(res / 2);
            let first = res == cfg.img_resolution;
            blocks.push(DiscriminatorBlock {
                resolution: res,
                // initialised in this order (the RNG stream of `init` fixes the weights)
                fromrgb: first.then(|| Conv2dConfig::new(cfg.img_channels, tmp, 1).with_activation(Activation::Lrelu).init(init).with_conv_clamp(clamp)),
                conv0: Conv2dConfig::new(tmp, tmp, 3).with_activation(Activation::Lrelu).init(init).with_conv_clamp(clamp),
                // resnet branch: downsampling, scaled by sqrt(0.5) so branch + skip keeps the variance
                conv1: Conv2dConfig::new(tmp, out, 3).with_activation(Activation::Lrelu).with_down(true).with_act_gain(SQRT_HALF).init(init).with_conv_clamp(clamp),
                skip: Conv2dConfig::new(tmp, out, 1).with_bias(false).with_down(true).with_act_gain(SQRT_HALF).init(init),
                resample_filter: fir_buffer(device),
            });
            res /= 2;
        }
        let c = cfg.channels(4);
        let f = cfg.mbstd_num_channels;
        let b4 = DiscriminatorEpilogue {
            mbstd_group_size: cfg.mbstd_group_size,
            mbstd_num_channels: f,
            conv: Conv2dConfig::new(c + f, c, 3).with_activation(Activation::Lrelu).init(init).with_conv_clamp(clamp),
            fc: FullyConnectedLayer::new(c * 16, c, Activation::Lrelu, 1.0, 0.0, init),
            out: FullyConnectedLayer::new(c, 1, Activation::Linear, 1.0, 0.0, init),
        };
        Self { config: cfg.clone(), blocks, b4 }
    }

    /// `img [N, 3, R, R]` -> logits `[N, 1]`
    pub fn forward(&self, img: Tensor<4>) -> Tensor<2> {
        self.b4.forward(self.features(img))
    }

    /// Logits of several equally sized batches in ONE forward pass, each batch keeping
    /// exactly the minibatch-std groups it would have on its own.
    ///
    /// The batches are interleaved as `[G, K * N/G]` so that every group holds members of one
    /// batch only. One pass means every parameter takes a single gradient contribution,
    /// which keeps training bit-for-bit reproducible (burn sums several contributions in an
    /// order that varies from run to run) and uses larger, faster GEMMs.
    pub fn forward_parts(&self, parts: Vec<Tensor<4>>) -> Vec<Tensor<2>> {
        let k = parts.len();
        let [n, c, h, w] = parts[0].dims();
        let g = self.b4.mbstd_group_size.min(n);
        assert!(n % g == 0, "batch {n} is not divisible by the minibatch-std group size {g}");
        let stacked: Vec<Tensor<5>> = parts.into_iter().map(|p| p.reshape([g, n / g, c, h, w])).collect();
        let x = Tensor::cat(stacked, 1).reshape([k * n, c, h, w]); // [K*N, C, H, W]
        let logits = self.b4.forward_grouped(self.features(x), g); // [K*N, 1]
        let logits = logits.reshape([g, k, n / g]);
        (0..k).map(|i| logits.clone().narrow(1, i, 1).reshape([n, 1])).collect()
    }

    /// The blocks alone: `img [N, 3, R, R]` -> `[N, C, 4, 4]` (the epilogue's input).
    pub fn features(&self, img: Tensor<4>) -> Tensor<4> {
        self.features_traced(img, &mut None)
    }

    fn features_traced(&self, img: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        let mut x = None;
        for b in &self.blocks {
            x = Some(b.forward(x, img.clone(), trace));
        }
        x.expect("resolution >= 8")
    }

    /// The whole discriminator, reporting every module's output under the official names.
    pub fn forward_traced(&self, img: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let g = self.b4.mbstd_group_size.min(img.dims()[0]);
        let x = self.features_traced(img, trace);
        self.b4.forward_traced(x, g, trace)
    }
}

impl Params for Discriminator {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V) {
        for b in &mut self.blocks {
            let name = format!("b{}", b.resolution);
            b.visit_params(&join(prefix, &name), v);
        }
        self.b4.visit_params(&join(prefix, "b4"), v);
    }
}
