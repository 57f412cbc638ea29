//! Official StyleGAN2-ADA network snapshots (`training/training_loop.py` writes a dict with
//! `training_set_kwargs`, `G`, `D`, `G_ema`, `augment_pipe`; each network is a
//! `torch_utils.persistence` object): each network's state dict under its official names and
//! its constructor arguments (`init_kwargs`), read from the pickle's data alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use limner_core::weights::{HostTensor, StateDict};

use crate::torch::DType;
use crate::vm::{Limits, Object, Value};

/// One network of a snapshot.
#[derive(Clone, Debug)]
pub struct Network {
    /// the official class (`Generator`, `Discriminator`, `AugmentPipe`)
    pub class_name: String,
    /// the constructor's keyword arguments (`_init_kwargs`), a dict
    pub init_kwargs: Value,
    /// parameters and persistent buffers, as `state_dict()` names them, in f32
    pub state_dict: StateDict,
    /// the element types the tensors were stored in
    pub stored_dtypes: BTreeSet<DType>,
}

/// A snapshot: its networks by key (`G`, `D`, `G_ema`, `augment_pipe`).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub networks: BTreeMap<String, Network>,
    /// `training_set_kwargs` (the data it was trained on), when present
    pub training_set_kwargs: Option<Value>,
}

impl Snapshot {
    /// A network by key, with an error listing what the file has.
    pub fn network(&self, key: &str) -> Result<&Network> {
        self.networks.get(key).ok_or_else(|| {
            anyhow!("the snapshot has no `{key}` network (it has: {})", self.networks.keys().cloned().collect::<Vec<_>>().join(", "))
        })
    }
}

/// Reads a snapshot file; nothing in it is run. A file that holds one network (a pickled
/// `Generator`, say) gives a snapshot with that network under `G_ema` if it is a generator.
pub fn read_snapshot(path: &Path, limits: &Limits) -> Result<Snapshot> {
    let v = crate::load_file(path, limits)?;
    snapshot_from_value(&v, limits).with_context(|| format!("{}: not a StyleGAN2-ADA network snapshot", path.display()))
}

/// As [`read_snapshot`], from a loaded value.
pub fn snapshot_from_value(v: &Value, limits: &Limits) -> Result<Snapshot> {
    let mut networks = BTreeMap::new();
    let mut training_set_kwargs = None;
    match v {
        Value::Dict(_) => {
            for (k, val) in v.items() {
                let Some(k) = k.as_str() else { continue };
                match &val {
                    Value::Object(o) => {
                        networks.insert(k.to_string(), network(&o.borrow(), limits).with_context(|| format!("network `{k}`"))?);
                    }
                    _ if k == "training_set_kwargs" => training_set_kwargs = Some(val.clone()),
                    _ => {}
                }
            }
        }
        Value::Object(o) => {
            let n = network(&o.borrow(), limits)?;
            let key = if n.class_name == "Generator" { "G_ema".to_string() } else { n.class_name.clone() };
            networks.insert(key, n);
        }
        other => bail!("the pickle holds {}, not a snapshot dict", other.kind()),
    }
    if networks.is_empty() {
        bail!("no networks in the pickle (expected `G`, `D`, `G_ema` saved by stylegan2-ada-pytorch)");
    }
    Ok(Snapshot { networks, training_set_kwargs })
}

fn network(o: &Object, limits: &Limits) -> Result<Network> {
    let mut sd = StateDict::new();
    let mut dtypes = BTreeSet::new();
    collect(&o.state, "", 0, limits, &mut sd, &mut dtypes)?;
    let init_kwargs = o.state.get("_init_kwargs").unwrap_or(Value::None);
    Ok(Network { class_name: o.class_name.clone(), init_kwargs, state_dict: sd, stored_dtypes: dtypes })
}

/// Walks a module's `__dict__` as `nn.Module.state_dict()` does: `_parameters`, the
/// `_buffers` not in `_non_persistent_buffers_set`, then `_modules` recursively.
fn collect(state: &Value, prefix: &str, depth: usize, limits: &Limits, sd: &mut StateDict, dtypes: &mut BTreeSet<DType>) -> Result<()> {
    if depth > limits.max_depth {
        bail!("modules nested deeper than {} at `{prefix}`", limits.max_depth);
    }
    let non_persistent: Vec<String> = state
        .get("_non_persistent_buffers_set")
        .and_then(|s| s.elements())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    for field in ["_parameters", "_buffers"] {
        for (k, v) in state.get(field).map(|d| d.items()).unwrap_or_default() {
            let Some(name) = k.as_str() else { continue };
            if field == "_buffers" && non_persistent.iter().any(|n| n == name) {
                continue;
            }
            let full = format!("{prefix}{name}");
            match &v {
                Value::Tensor(t) => {
                    let total: u64 = sd.values().map(|h| h.data.len() as u64).sum::<u64>() + t.numel() as u64;
                    if total > limits.max_network_elems {
                        bail!("the network's tensors add up to more than {} elements at `{full}` (limit): refusing", limits.max_network_elems);
                    }
                    dtypes.insert(t.storage.dtype);
                    let data = t.to_f32();
                    sd.insert(full, HostTensor { shape: t.shape.clone(), data });
                }
                Value::None => {}
                other => bail!("`{full}` is {}, not a tensor", other.kind()),
            }
        }
    }
    for (k, v) in state.get("_modules").map(|d| d.items()).unwrap_or_default() {
        let Some(name) = k.as_str() else { continue };
        match &v {
            Value::Object(child) => {
                let child = child.borrow();
                collect(&child.state, &format!("{prefix}{name}."), depth + 1, limits, sd, dtypes)?
            }
            Value::None => {}
            other => bail!("submodule `{prefix}{name}` is {}, not a saved module", other.kind()),
        }
    }
    Ok(())
}

/// A keyword argument, looked up in `init_kwargs` and then in the nested kwargs dicts named
/// (e.g. `["synthesis_kwargs"]`).
pub fn kwarg(kwargs: &Value, path: &[&str]) -> Option<Value> {
    let mut v = kwargs.clone();
    for p in path {
        v = v.get(p)?;
    }
    Some(v)
}
