//! Provenance labels for what the CLI writes (the label itself is `limner_data::provenance`),
//! and `limner inspect`, which reads them back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use limner_data::provenance::{check_complete, read_xmp, sha256_hex, Container, Label, Provenance, SourceType};
use serde_json::{json, Value};

/// Sets the `dc:creator` of every image this run writes (`--creator`, or `$LIMNER_CREATOR`).
pub fn set_creator(creator: Option<String>) {
    limner_data::provenance::set_default_creator(creator.or_else(|| std::env::var("LIMNER_CREATOR").ok()));
}

/// The label of an image made with `recipe`; `model` (a name or path, as `--model` takes it)
/// adds the model file's sha256.
pub fn label(source: SourceType, mut recipe: Value, model: Option<&str>) -> Result<Provenance> {
    if let (Some(m), Some(obj)) = (model, recipe.as_object_mut()) {
        obj.insert("model".into(), json!(limner_models::model_label(m)?));
    }
    let sha = model.map(limner_models::model_sha256).transpose()?;
    Ok(Provenance::new(source)
        .with_recipe_json(recipe)
        .with_model_sha256(sha))
}

/// How an input picture goes into a recipe: `seed:N` as it is, a file by its name only (a
/// label should not reveal the folders of the user's disk).
pub fn input_name(spec: &str) -> String {
    if spec.starts_with("seed:") {
        return spec.to_string();
    }
    Path::new(spec).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| spec.to_string())
}

/// A picture limner made from a user's photo is a composite; from a `seed:N` face, or from a file
/// whose own limner label says it was wholly generated, it is wholly generated.
pub fn source_of_input(spec: &str) -> SourceType {
    let generated = spec.starts_with("seed:")
        || std::fs::read(spec).ok().and_then(|b| read_xmp(&b).ok().flatten()).map(|x| Label::parse(&x)).is_some_and(|l| {
            l.is_limner() && l.source_code() == Some(SourceType::TrainedAlgorithmicMedia.code())
        });
    if generated {
        SourceType::TrainedAlgorithmicMedia
    } else {
        SourceType::CompositeWithTrainedAlgorithmicMedia
    }
}

/// The label of a grid of recipe-made faces: the model, the seeds, and the number of faces.
pub fn grid_label(recipes: &[limner_edit::recipe::Recipe]) -> Result<Provenance> {
    let Some(first) = recipes.first() else { return Ok(Provenance::generated()) };
    let mut v = json!({"command": "grid", "model": {"name": first.model.name, "sha256": first.model.sha256}, "faces": recipes.len()});
    limner_edit::recipe::name_models(&mut v);
    let same_model = recipes.iter().all(|r| r.model.sha256 == first.model.sha256);
    Ok(Provenance::generated().with_recipe_json(v).with_model_sha256(same_model.then(|| first.model.sha256.clone())))
}

/// The label of an animation (GIF/APNG): its model, frame count and fps; every frame's recipe
/// is in the JSON beside it.
pub fn animation_label(frames: &[limner_edit::recipe::Recipe], fps: u16) -> Result<Provenance> {
    limner_edit::animate::provenance(frames, fps)
}

/// The model behind a `seed:N` input (the embedded default), none for a file.
pub fn seed_model(spec: &str) -> Option<&'static str> {
    spec.starts_with("seed:").then_some(limner_models::DEFAULT_NAME)
}

/// `limner inspect`
#[derive(Args)]
pub struct InspectArgs {
    /// a PNG, JPEG, GIF or WebP file
    pub image: PathBuf,
    /// print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// a PEM file of certificate authorities to trust when checking a C2PA signature
    #[arg(long, value_name = "CA.pem")]
    pub trust: Option<PathBuf>,
}

/// What `limner inspect` found.
#[derive(serde::Serialize)]
struct Report {
    file: String,
    format: Option<&'static str>,
    width: Option<u32>,
    height: Option<u32>,
    /// a problem with the file itself (truncated, XMP unreadable); the label may still be shown
    problem: Option<String>,
    has_xmp: bool,
    limner_label: bool,
    label: Option<Label>,
    /// "matches", "does not match" or "unknown model" (when the recipe names a model and the
    /// label holds its sha256)
    model_check: Option<String>,
    model_check_detail: Option<String>,
    /// the signed C2PA manifest, when the file has one
    #[cfg(feature = "c2pa")]
    c2pa: Option<limner_c2pa::Verdict>,
}

const MAX_INSPECT_BYTES: u64 = 256 << 20;

pub fn inspect(a: InspectArgs) -> Result<()> {
    let meta = std::fs::metadata(&a.image).with_context(|| format!("cannot read {}", a.image.display()))?;
    if meta.is_dir() {
        bail!("{} is a folder; give an image file", a.image.display());
    }
    if meta.len() > MAX_INSPECT_BYTES {
        bail!("{} is {} MB; limner inspects files up to {} MB", a.image.display(), meta.len() >> 20, MAX_INSPECT_BYTES >> 20);
    }
    let bytes = std::fs::read(&a.image).with_context(|| format!("cannot read {}", a.image.display()))?;
    let Some(format) = Container::sniff(&bytes) else {
        bail!("{} is not an image limner can read (PNG, JPEG, GIF or WebP){}", a.image.display(), if bytes.is_empty() { ": the file is empty" } else { "" });
    };
    let dims = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok()).or_else(|| {
        // limner's `image` has no GIF decoder: the logical screen size is in the header
        (format == Container::Gif && bytes.len() >= 10).then(|| (u32::from(u16::from_le_bytes([bytes[6], bytes[7]])), u32::from(u16::from_le_bytes([bytes[8], bytes[9]]))))
    });
    let mut r = Report {
        file: a.image.display().to_string(),
        format: Some(format.name()),
        width: dims.map(|d| d.0),
        height: dims.map(|d| d.1),
        problem: None,
        has_xmp: false,
        limner_label: false,
        label: None,
        model_check: None,
        model_check_detail: None,
        #[cfg(feature = "c2pa")]
        c2pa: None,
    };
    if let Err(e) = check_complete(&bytes) {
        r.problem = Some(format!("{e:#}"));
    }
    match read_xmp(&bytes) {
        Ok(Some(xmp)) => {
            r.has_xmp = true;
            let l = Label::parse(&xmp);
            r.limner_label = l.is_limner();
            r.label = Some(l);
        }
        Ok(None) => {}
        Err(e) => r.problem = r.problem.or(Some(format!("{e:#}"))),
    }
    if let Some(l) = r.label.as_ref().filter(|l| l.is_limner()) {
        (r.model_check, r.model_check_detail) = check_model(l);
    }
    #[cfg(feature = "c2pa")]
    {
        let anchors = a.trust.as_ref().map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read the trust anchors {}", p.display()))).transpose()?;
        match limner_c2pa::read(&bytes, anchors.as_deref()) {
            Ok(v) => r.c2pa = v,
            Err(e) => r.problem = r.problem.or(Some(format!("{e:#}"))),
        }
    }
    #[cfg(not(feature = "c2pa"))]
    if a.trust.is_some() {
        bail!("--trust checks C2PA signatures: this limner was built without the `c2pa` feature");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    Ok(())
}

/// Compares the label's model sha256 with the model its recipe names, when that model is here.
fn check_model(l: &Label) -> (Option<String>, Option<String>) {
    let Some(want) = l.model_sha256.as_deref() else { return (None, None) };
    // `"model": "NAME"` (generate, style…) or `"model": {"name": "NAME", "sha256": …}` (recipes)
    let model = l.recipe.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()).and_then(|v| {
        let m = v.get("model")?;
        m.as_str().or_else(|| m.get("name").and_then(|n| n.as_str())).map(str::to_string)
    });
    let Some(model) = model else {
        return (Some("unknown model".into()), Some("the recipe names no model".into()));
    };
    let got = if model == limner_models::DEFAULT_NAME {
        Ok(sha256_hex(limner_models::DEFAULT_GENERATOR))
    } else {
        limner_models::model_sha256(&model)
    };
    match got {
        Ok(got) if got.eq_ignore_ascii_case(want) => (Some("matches".into()), Some(format!("model `{model}` here has sha256 {got}"))),
        Ok(got) => (
            Some("does not match".into()),
            Some(format!("the label says sha256 {want}, but model `{model}` here has {got}: the image was made by another version of the model, or the label is forged")),
        ),
        Err(e) => (Some("unknown model".into()), Some(format!("cannot open model `{model}` here to check: {e:#}"))),
    }
}

fn print_report(r: &Report) {
    let size = match (r.width, r.height) {
        (Some(w), Some(h)) => format!(", {w}x{h}"),
        _ => String::new(),
    };
    println!("{}: {}{size}", r.file, r.format.unwrap_or("?"));
    if let Some(p) = &r.problem {
        println!("problem: {p}");
    }
    match &r.label {
        None if r.problem.is_some() => println!("no limner label could be read"),
        None => println!("no limner label: this image carries no XMP metadata (limner labels every image it writes, so limner did not write this file, or the label was stripped)"),
        Some(l) if !l.is_limner() => {
            println!("no limner label: the image has XMP written by {}", l.software.as_deref().unwrap_or("another program"));
            if let Some(t) = &l.digital_source_type {
                println!("digital source type (not limner's): {t}");
            }
        }
        Some(l) => {
            println!("limner label: {}", describe_source(l));
            if let Some(s) = &l.software {
                println!("software: {s}");
            }
            if let Some(c) = &l.creator {
                println!("creator: {c}");
            }
            if let Some(m) = &l.model_sha256 {
                println!("model sha256: {m}");
            }
            match (&r.model_check, &r.model_check_detail) {
                (Some(c), Some(d)) => println!("model check: {c} ({d})"),
                (Some(c), None) => println!("model check: {c}"),
                _ => {}
            }
            if let Some(nt) = l.recipe.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()).map(|v| v["nearest_training"].clone()).filter(|v| !v.is_null()) {
                let spaces: Vec<String> = nt["distances"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, d)| {
                                let frame = d["frame"].as_u64().map(|f| format!(", frame {f}")).unwrap_or_default();
                                format!("{k} {} (copy threshold {}, {}{frame})", d["distance"], d["threshold"], d["nearest"].as_str().unwrap_or("?"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!("nearest training images: {}", spaces.join("; "));
                if nt["allowed_by_user"] == true {
                    println!("near copy: written anyway, the user allowed it (--allow-near-copy)");
                } else if nt["near_copy"] == false {
                    println!("near copy: no (farther from every training image than the copy thresholds)");
                }
            }
            if let Some(recipe) = &l.recipe {
                let pretty = serde_json::from_str::<Value>(recipe).ok().and_then(|v| serde_json::to_string_pretty(&v).ok());
                println!("recipe: {}", pretty.as_deref().unwrap_or(recipe));
            }
        }
    }
    #[cfg(feature = "c2pa")]
    match &r.c2pa {
        None => println!("C2PA: none (not signed; set $LIMNER_C2PA_CERT and $LIMNER_C2PA_KEY, or run `limner sign`)"),
        Some(v) => {
            let state = match v.state {
                limner_c2pa::State::Trusted => "signed, valid, and the signer is trusted".to_string(),
                limner_c2pa::State::Valid => "signed and valid; the signer is not among the trusted (give --trust CA.pem)".to_string(),
                limner_c2pa::State::Invalid => format!("INVALID: the file changed after signing or the signature is bad ({})", v.failures.join(", ")),
            };
            println!("C2PA: {state}");
            if let Some(s) = &v.signer {
                println!("C2PA signer: {s}");
            }
            if let Some(t) = &v.digital_source_type {
                println!("C2PA source type: {t}");
            }
        }
    }
}

fn describe_source(l: &Label) -> String {
    match l.source_code() {
        Some("trainedAlgorithmicMedia") => "made by a trained model (IPTC trainedAlgorithmicMedia)".into(),
        Some("compositeWithTrainedAlgorithmicMedia") => "a photo changed by a trained model (IPTC compositeWithTrainedAlgorithmicMedia)".into(),
        Some(other) => format!("IPTC {other}"),
        None => match &l.digital_source_type {
            Some(t) => format!("digital source type {t}"),
            None => "no digital source type".into(),
        },
    }
}
