//! Named parameters: every network in limner exposes its tensors under the official
//! StyleGAN2-ADA `state_dict()` names, so official checkpoints load by name and limner's
//! own checkpoints can be exported for the PyTorch ecosystem.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

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

/// A host copy of one tensor: shape and f32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Name → host tensor, sorted by name (the state dict).
pub type StateDict = BTreeMap<String, HostTensor>;

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

/// Reads a safetensors file into a state dict (f32, f16, bf16 and f64 are converted to f32).
pub fn read_safetensors(path: &Path) -> Result<(StateDict, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_safetensors(&bytes).with_context(|| format!("{} is not a valid safetensors file", path.display()))
}

/// Parses safetensors bytes into a state dict plus the file's metadata.
pub fn parse_safetensors(bytes: &[u8]) -> Result<(StateDict, BTreeMap<String, String>)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
    let metadata: BTreeMap<String, String> =
        meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => bail!("tensor `{name}` has unsupported dtype {other:?}"),
        };
        out.insert(name.to_string(), HostTensor { shape: view.shape().to_vec(), data });
    }
    Ok((out, metadata))
}

/// Storage precision for [`write_safetensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

/// Serialises a state dict (plus string metadata) to safetensors bytes.
pub fn safetensors_bytes(
    sd: &StateDict,
    metadata: &BTreeMap<String, String>,
    precision: Precision,
) -> Result<Vec<u8>> {
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = sd
        .iter()
        .map(|(k, t)| {
            let bytes: Vec<u8> = match precision {
                Precision::F32 => t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Precision::F16 => {
                    t.data.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
                }
            };
            (k.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let dtype = match precision {
        Precision::F32 => Dtype::F32,
        Precision::F16 => Dtype::F16,
    };
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(k, s, b)| Ok((k.clone(), TensorView::new(dtype, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    let meta: std::collections::HashMap<String, String> =
        metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Writes bytes atomically: a temporary file in the same directory, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename onto {}", path.display()))?;
    Ok(())
}

/// Writes a state dict as safetensors, atomically.
pub fn write_safetensors(
    path: &Path,
    sd: &StateDict,
    metadata: &BTreeMap<String, String>,
    precision: Precision,
) -> Result<()> {
    write_atomic(path, &safetensors_bytes(sd, metadata, precision)?)
}

/// Builds a device tensor from host data.
pub fn tensor_from<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Copies a tensor's values to the host.
pub fn to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor")
}
