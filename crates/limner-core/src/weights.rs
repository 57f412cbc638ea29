//! Host tensors and safetensors files: the state dict every limner network loads from and
//! saves to (f32, f16, bf16 and f64 read; f32 or f16 written).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

use crate::fs::write_atomic;

/// A host copy of one tensor: shape and f32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Name → host tensor, sorted by name (the state dict).
pub type StateDict = BTreeMap<String, HostTensor>;

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
    canonical_header(safetensors::serialize(views, Some(meta))?)
}

/// The safetensors crate takes the metadata as a `HashMap`, so its keys come out in a random
/// order and the same weights would hash differently from run to run (recipes name a model by
/// its file's SHA-256). Rewrites only the header's leading `"__metadata__"` object with its keys
/// sorted; every other byte stays as the crate wrote it (so files with one metadata key are
/// unchanged), and the header keeps its length, so the data's offsets hold.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header = &bytes[8..8 + n];
    if !header.starts_with(PREFIX) {
        return Ok(bytes);
    }
    let mut stream = serde_json::Deserializer::from_slice(&header[PREFIX.len()..]).into_iter::<BTreeMap<String, String>>();
    let meta = stream.next().context("safetensors header: no metadata object")??;
    let end = PREFIX.len() + stream.byte_offset();
    let sorted = serde_json::to_vec(&meta)?;
    anyhow::ensure!(sorted.len() == end - PREFIX.len(), "safetensors header: the metadata changed length when sorted");
    let mut out = bytes;
    out[8 + PREFIX.len()..8 + end].copy_from_slice(&sorted);
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trips_exactly_and_f16_to_half_precision() {
        let mut sd = StateDict::new();
        sd.insert("a".into(), HostTensor { shape: vec![2, 2], data: vec![0.1, -2.5, 1e-3, 65504.0] });
        sd.insert("s".into(), HostTensor { shape: vec![], data: vec![3.0] });
        let meta: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let (back, m) = parse_safetensors(&safetensors_bytes(&sd, &meta, Precision::F32).unwrap()).unwrap();
        assert_eq!(back, sd);
        assert_eq!(m, meta);
        let (half, _) = parse_safetensors(&safetensors_bytes(&sd, &meta, Precision::F16).unwrap()).unwrap();
        for (x, y) in sd["a"].data.iter().zip(&half["a"].data) {
            assert!((x - y).abs() <= x.abs() * 1e-3, "{x} vs {y}");
        }
        assert_eq!(half["s"].shape, Vec::<usize>::new());
    }

    #[test]
    fn the_same_weights_and_metadata_are_the_same_bytes() {
        let mut sd = StateDict::new();
        sd.insert("w".into(), HostTensor { shape: vec![3], data: vec![1.0, 2.0, 3.0] });
        sd.insert("b".into(), HostTensor { shape: vec![1], data: vec![0.5] });
        let meta: BTreeMap<String, String> = (0..12).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let first = safetensors_bytes(&sd, &meta, Precision::F16).unwrap();
        // HashMap iteration order differs between maps (random seeds): many tries would catch it
        for _ in 0..20 {
            assert_eq!(safetensors_bytes(&sd, &meta, Precision::F16).unwrap(), first);
        }
        let (back, m) = parse_safetensors(&first).unwrap();
        assert_eq!(m, meta);
        assert_eq!(back["w"].data, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, b"not a safetensors file").unwrap();
        let e = read_safetensors(&p).unwrap_err();
        assert!(format!("{e:#}").contains("bad.safetensors"), "{e:#}");
    }
}
