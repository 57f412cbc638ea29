//! The optimiser side of training: lifting a network onto the autodiff device, collecting its
//! gradients, and Adam (with its moments saved in checkpoints by name).

use std::collections::HashMap;

use burn::tensor::{Device, Tensor};
use limner_core::{tensor_from, to_vec, HostTensor, StateDict};

use crate::params::{ParamKind, ParamVisitor, Params};

/// Adam moments per parameter name (flattened).
#[derive(Clone, Debug, Default)]
pub struct Adam {
    pub m: HashMap<String, Tensor<1>>,
    pub v: HashMap<String, Tensor<1>>,
    pub t: u64,
}

/// Lifts a network onto the autodiff device; trainable tensors become tracked leaves when
/// `track` is set, everything else is a constant.
pub fn lift<P: Params + Clone>(net: &P, track: bool) -> P {
    struct Lift(bool);
    impl ParamVisitor for Lift {
        fn visit<const D: usize>(&mut self, _: &str, t: &mut Tensor<D>, kind: ParamKind) {
            let a = t.clone().autodiff();
            *t = if self.0 && kind == ParamKind::Trainable { a.require_grad() } else { a };
        }
    }
    let mut n = net.clone();
    n.visit_params("", &mut Lift(track));
    n
}

/// Collects the gradients of a lifted network's trainable tensors, flattened.
pub fn grads_of<P: Params>(net: &mut P, grads: &burn::tensor::Gradients) -> HashMap<String, Tensor<1>> {
    struct G<'a>(&'a burn::tensor::Gradients, HashMap<String, Tensor<1>>);
    impl ParamVisitor for G<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
            if kind != ParamKind::Trainable {
                return;
            }
            let n: usize = t.dims().iter().product();
            if let Some(g) = t.grad(self.0) {
                self.1.insert(name.to_string(), g.reshape([n]));
            }
        }
    }
    let mut v = G(grads, HashMap::new());
    net.visit_params("", &mut v);
    v.1
}

impl Adam {
    /// One Adam step on `net`'s trainable tensors.
    pub fn step<P: Params>(&mut self, net: &mut P, grads: &HashMap<String, Tensor<1>>, lr: f64, b1: f64, b2: f64) {
        self.t += 1;
        struct Upd<'a> {
            adam: &'a mut Adam,
            grads: &'a HashMap<String, Tensor<1>>,
            lr: f64,
            b1: f64,
            b2: f64,
        }
        impl ParamVisitor for Upd<'_> {
            fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
                if kind != ParamKind::Trainable {
                    return;
                }
                let Some(g) = self.grads.get(name) else { return };
                let dims = t.dims();
                let n: usize = dims.iter().product();
                let m = match self.adam.m.remove(name) {
                    Some(m) => m.mul_scalar(self.b1) + g.clone().mul_scalar(1.0 - self.b1),
                    None => g.clone().mul_scalar(1.0 - self.b1),
                };
                let v = match self.adam.v.remove(name) {
                    Some(v) => v.mul_scalar(self.b2) + g.clone().square().mul_scalar(1.0 - self.b2),
                    None => g.clone().square().mul_scalar(1.0 - self.b2),
                };
                let step = self.adam.t as i32;
                let mhat = 1.0 / (1.0 - self.b1.powi(step));
                let vhat = 1.0 / (1.0 - self.b2.powi(step));
                let upd = m.clone().mul_scalar(mhat) / (v.clone().mul_scalar(vhat).sqrt() + 1e-8);
                *t = t.clone() - upd.mul_scalar(self.lr).reshape(dims);
                debug_assert_eq!(n, m.dims()[0]);
                self.adam.m.insert(name.to_string(), m);
                self.adam.v.insert(name.to_string(), v);
            }
        }
        net.visit_params("", &mut Upd { adam: self, grads, lr, b1, b2 });
    }

    pub fn export(&self, prefix: &str, out: &mut StateDict) {
        for (k, t) in self.m.iter().map(|(k, t)| (format!("{prefix}.m.{k}"), t)).chain(self.v.iter().map(|(k, t)| (format!("{prefix}.v.{k}"), t))) {
            out.insert(k, HostTensor { shape: t.dims().to_vec(), data: to_vec(t) });
        }
    }

    pub fn import(prefix: &str, sd: &StateDict, t: u64, device: &Device) -> Self {
        let mut a = Adam { t, ..Default::default() };
        for (k, h) in sd {
            let mk = |_: &str| tensor_from(h.data.clone(), [h.data.len()], device);
            if let Some(rest) = k.strip_prefix(&format!("{prefix}.m.")) {
                a.m.insert(rest.to_string(), mk(rest));
            } else if let Some(rest) = k.strip_prefix(&format!("{prefix}.v.")) {
                a.v.insert(rest.to_string(), mk(rest));
            }
        }
        a
    }
}
