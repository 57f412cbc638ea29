//! The exponential moving average of the generator (the network limner samples from).

use burn::tensor::{Device, Tensor};
use limner_core::{tensor_from, StateDict};

use crate::params::{state_dict, ParamKind, ParamVisitor, Params};
use crate::Generator;

/// The EMA decay for one step of `batch` images after `images_seen` images (official
/// `ema_kimg` half-life, capped by `ema_rampup` times the images seen so far).
pub fn ema_beta(ema_kimg: f64, ema_rampup: Option<f64>, images_seen: u64, batch: usize) -> f64 {
    let mut ema_nimg = ema_kimg * 1000.0;
    if let Some(r) = ema_rampup {
        ema_nimg = ema_nimg.min((images_seen + batch as u64) as f64 * r);
    }
    0.5f64.powf(batch as f64 / ema_nimg.max(1e-8))
}

/// `ema <- p + (ema - p) * beta` for trainable tensors; buffers are copied from `net`.
pub(crate) fn ema_update(ema: &mut Generator, net: &mut Generator, beta: f64) {
    let src = state_dict(net, false);
    struct E<'a>(&'a StateDict, f64, Device);
    impl ParamVisitor for E<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
            let h = &self.0[name];
            let p: Tensor<D> = tensor_from(h.data.clone(), t.dims(), &self.2);
            *t = match kind {
                ParamKind::Trainable => p.clone() + (t.clone() - p).mul_scalar(self.1),
                ParamKind::Buffer => p,
            };
        }
    }
    let device = net.mapping.w_avg.device();
    ema.visit_params("", &mut E(&src, beta, device));
}
