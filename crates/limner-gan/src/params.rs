//! Named parameters: every network in limner exposes its tensors under the official
//! StyleGAN2-ADA `state_dict()` names, so official checkpoints load by name and limner's
//! own checkpoints can be exported for the PyTorch ecosystem.

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor, TensorData};
pub use limner_core::weights::{HostTensor, StateDict};

// Host tensors, safetensors I/O and atomic writes live in limner-core (every crate uses them
// without depending on the GAN); re-exported here for limner-gan's own modules and tests.
pub use limner_core::fs::write_atomic;
pub use limner_core::tensor::{tensor_from, to_vec};
pub use limner_core::weights::{parse_safetensors, read_safetensors, safetensors_bytes, write_safetensors, Precision};

/// Whether the optimiser updates a tensor (`Trainable`) or it is state (`Buffer`: `w_avg`,
/// `noise_const`, FIR filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Trainable,
    Buffer,
}

/// Visits every named tensor of a network, mutably, in a fixed order.
pub trait ParamVisitor {
    fn visit<const D: usize>(&mut self, name: &str, tensor: &mut Tensor<D>, kind: ParamKind);
}

/// A network whose tensors can be visited by name.
pub trait Params {
    fn visit_params<V: ParamVisitor>(&mut self, prefix: &str, v: &mut V);
}

/// Joins a prefix and a name with a dot (`"" + "x" = "x"`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Copies every tensor of `net` to the host.
pub fn state_dict<P: Params>(net: &mut P, only_trainable: bool) -> StateDict {
    struct Collect<'a>(&'a mut StateDict, bool);
    impl ParamVisitor for Collect<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, kind: ParamKind) {
            if self.1 && kind != ParamKind::Trainable {
                return;
            }
            let data: Vec<f32> = t.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor");
            // scalars (`noise_strength`) are 0-d in the official state dict
            let shape = if name.ends_with("noise_strength") { vec![] } else { t.dims().to_vec() };
            self.0.insert(name.to_string(), HostTensor { shape, data });
        }
    }
    let mut out = StateDict::new();
    net.visit_params("", &mut Collect(&mut out, only_trainable));
    out
}

/// Replaces every tensor of `net` with the one of the same name in `sd`.
///
/// Every tensor of the network must be present with the same number of elements (a 0-d
/// tensor such as `noise_strength` loads into a `[1]` tensor). Names in `sd` that the network
/// does not have are an error too, so a wrong config is caught instead of silently ignored.
pub fn load_state_dict<P: Params>(net: &mut P, sd: &StateDict, device: &Device) -> Result<()> {
    struct Load<'a> {
        sd: &'a StateDict,
        device: &'a Device,
        errors: Vec<String>,
        seen: Vec<String>,
    }
    impl ParamVisitor for Load<'_> {
        fn visit<const D: usize>(&mut self, name: &str, t: &mut Tensor<D>, _kind: ParamKind) {
            self.seen.push(name.to_string());
            let dims = t.dims();
            let Some(h) = self.sd.get(name) else {
                self.errors.push(format!("missing tensor `{name}` (expected shape {dims:?})"));
                return;
            };
            let numel: usize = dims.iter().product();
            let same = h.shape == dims || (h.data.len() == numel && h.shape.is_empty());
            if !same {
                self.errors.push(format!(
                    "tensor `{name}` has shape {:?}, the network expects {dims:?}",
                    h.shape
                ));
                return;
            }
            if let Some(bad) = h.data.iter().position(|x| !x.is_finite()) {
                self.errors.push(format!("tensor `{name}` holds a non-finite value at {bad}"));
                return;
            }
            *t = Tensor::from_data(TensorData::new(h.data.clone(), dims), self.device);
        }
    }
    let mut l = Load { sd, device, errors: vec![], seen: vec![] };
    net.visit_params("", &mut l);
    let extra: Vec<&String> = sd.keys().filter(|k| !l.seen.contains(k)).collect();
    if !extra.is_empty() {
        l.errors.push(format!(
            "{} tensor(s) not used by this network, e.g. `{}` (wrong config?)",
            extra.len(),
            extra[0]
        ));
    }
    if !l.errors.is_empty() {
        bail!("{}", l.errors.join("; "));
    }
    Ok(())
}
