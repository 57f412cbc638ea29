//! limner-pickle: reads Python pickles — the official StyleGAN2-ADA network snapshots
//! (`network-snapshot-*.pkl`) and the PyTorch tensors inside them — **without running
//! anything**.
//!
//! Python's own `pickle.load` calls whatever the file names: a pickle is a program, and a
//! `__reduce__` can ask for `os.system`. This crate interprets the pickle opcodes (protocols
//! 0–5) itself. A `GLOBAL` is looked up in a short allow-list ([`vm::Global`]: the
//! `torch_utils.persistence` reconstructor, `collections.OrderedDict`, `dnnlib.util.EasyDict`,
//! torch's tensor/parameter rebuild functions, storage types and dtypes,
//! `torch.storage._load_from_bytes`, numpy's `dtype` and `scalar`), and calling one only builds
//! data (a dict, a tensor view over bytes, an object's name and state); nothing else is
//! accepted, and the error names the refused global. Every length field is checked against
//! the bytes that remain, and the memo, stack and nesting of payloads are bounded
//! ([`Limits`]), so a truncated file, a 10 GB length field or a deep nest is a clear error.
//!
//! Why not a crate: `serde-pickle` (the well-kept Rust pickle reader) refuses or replaces
//! globals, so it cannot rebuild torch tensors, and it has no limits on the memo or on nested
//! payloads; candle's pickle reader lives inside candle-core (a second tensor library). This is
//! about 900 lines that do only what these files need.
//!
//! - [`vm`]: the opcode interpreter and its values;
//! - [`torch`]: storages and tensors (legacy `torch.save` payloads and zip archives, fp16,
//!   bf16, fp32, fp64);
//! - [`stylegan2`]: a snapshot's networks (`G`, `D`, `G_ema`, `augment_pipe`) as state dicts
//!   under their official names, with their constructor arguments.

pub mod stylegan2;
pub mod torch;
pub mod vm;

pub use vm::{Limits, Value};

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Reads a pickle file (a plain pickle, or a `torch.save` zip archive) into a [`Value`],
/// within `limits`. Nothing in the file is run; errors name the file.
pub fn load_file(path: &Path, limits: &Limits) -> Result<Value> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > limits.max_file_bytes {
        bail!(
            "{}: {} bytes is more than the {} bytes limit for a pickle (raise it with LIMNER_PICKLE_MAX_BYTES if the file is genuine)",
            path.display(),
            meta.len(),
            limits.max_file_bytes
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    load_bytes(&bytes, limits).with_context(|| format!("{}: not loaded (nothing in it was run)", path.display()))
}

/// As [`load_file`], from bytes.
pub fn load_bytes(bytes: &[u8], limits: &Limits) -> Result<Value> {
    if bytes.len() as u64 > limits.max_file_bytes {
        bail!("{} bytes is more than the {} bytes limit for a pickle", bytes.len(), limits.max_file_bytes);
    }
    if torch::is_zip(bytes) {
        return torch::load_zip(bytes, limits, 0);
    }
    let mut u = vm::Unpickler::new(bytes, limits, 0);
    let v = u.load()?;
    Ok(v)
}
