//! Locating the random-face model and the OpenVINO reference for the tests.
//!
//! Model: `$LIMNER_RANDOM_FACE_DIR` (a folder holding `MappingNetwork.xml` etc., i.e.
//! `random_face/data` of the wheel; converted into a tempdir by the test), else the registry:
//! `limner models fetch --only random-face` puts the converted file at
//! `limner_models::fetch::net_path("random-face")` and keeps the original IR next to it
//! (`limner_models::fetch::random_face_ir_dir()`), which the OpenVINO parity test runs.
//!
//! Under `CI=true` a missing model or reference fails the test; otherwise the test prints a note
//! and passes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use limner_core::testing::missing;

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
}

const IR_FILES: [&str; 4] = ["MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin"];

/// The random-face IR folder (`random_face/data`): `$LIMNER_RANDOM_FACE_DIR`, else the one kept
/// by `limner models fetch --only random-face`.
pub fn model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LIMNER_RANDOM_FACE_DIR").map(PathBuf::from) {
        if IR_FILES.iter().all(|f| dir.join(f).is_file()) {
            return Some(dir);
        }
        return missing(&format!("LIMNER_RANDOM_FACE_DIR={} lacks the random-face IR ({})", dir.display(), IR_FILES.join(", ")));
    }
    match limner_models::fetch::random_face_ir_dir() {
        Some(d) => Some(d),
        None => missing(&format!(
            "random-face IR not in {}: run `limner models fetch --only random-face` (or set LIMNER_RANDOM_FACE_DIR)",
            limner_models::fetch::nets_dir().display()
        )),
    }
}

/// The converted model file: converted from `$LIMNER_RANDOM_FACE_DIR` into a tempdir (kept alive
/// by the returned guard) when that is set, else the registry's `random-face.safetensors`.
pub fn model_file() -> Option<(PathBuf, Option<tempfile::TempDir>)> {
    if std::env::var_os("LIMNER_RANDOM_FACE_DIR").is_some() {
        let dir = model_dir()?;
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("random-face.safetensors");
        limner_photoreal::convert_random_face(&dir, &st).unwrap();
        return Some((st, Some(tmp)));
    }
    match limner_models::fetch::net_path("random-face") {
        Ok(p) => Some((p, None)),
        Err(e) => missing(&format!("{e:#}")),
    }
}

/// The loaded model (see [`model_file`]).
pub fn model() -> Option<limner_photoreal::MobileStyleGan> {
    let (p, _guard) = model_file()?;
    Some(limner_photoreal::MobileStyleGan::load(&p, &burn::tensor::Device::flex()).unwrap())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv holding OpenVINO (created if missing): `$LIMNER_OPENVINO_VENV` or
/// `~/.cache/limner-openvino-venv`.
pub fn openvino_python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("LIMNER_OPENVINO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/limner-openvino-venv"));
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py).args(["-c", "import openvino, numpy"]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    if py.is_file() && ok(&py) {
        return Ok(py);
    }
    eprintln!("creating the OpenVINO venv in {} ...", venv.display());
    let st = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("python3 -m venv {} failed", venv.display()));
    }
    let req = repo_root().join("tools/openvino-ref/requirements.txt");
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-r"])
        .arg(&req)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() || !ok(&py) {
        return Err(format!("pip install -r {} failed", req.display()));
    }
    Ok(py)
}

/// OpenVINO's outputs for the fixed inputs (see tools/openvino-ref/random_face_ref.py), cached in
/// `~/.cache/limner-openvino-ref/random-face-seed7`.
pub fn reference(model: &Path) -> Option<PathBuf> {
    let out = home().join(".cache/limner-openvino-ref/random-face-seed7");
    if out.join("meta.json").is_file() {
        return Some(out);
    }
    let py = match openvino_python() {
        Ok(p) => p,
        Err(e) => return missing(&format!("no OpenVINO reference: {e}")),
    };
    let script = repo_root().join("tools/openvino-ref/random_face_ref.py");
    let st = Command::new(py)
        .arg(&script)
        .arg("--model-dir")
        .arg(model)
        .arg("--out")
        .arg(&out)
        .args(["--seed", "7"])
        .status();
    match st {
        Ok(s) if s.success() && out.join("meta.json").is_file() => Some(out),
        other => missing(&format!("the OpenVINO reference script failed: {other:?}")),
    }
}

/// Reads `NAME.bin` (raw little-endian f32) and its shape from `meta.json`.
pub fn read_ref(dir: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let shape: Vec<usize> =
        meta[name].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let bytes = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
    let data: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}.bin size");
    (shape, data)
}

/// `max |a - b| / max |b|`
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let md = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let mr = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    md / mr
}
