//! CLI glue for `limner describe` and `limner dataset build --align` (arguments and printing;
//! the work is in `limner_faces`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use burn::tensor::Device;
use clap::Args;
use limner_data::imageio::{load_image_rgb, DEFAULT_MAX_PIXELS};
use limner_faces::ssd_mobilenet::SsdMobilenetV1Config;
use limner_faces::tiny_face_detector::TinyFaceDetectorConfig;
use limner_faces::human::{disagreements, Judge, Reading, AGE_GAP};
use limner_faces::{Face, FaceAnalyzer, FaceAnalyzerConfig, Image};

/// `limner describe`
#[derive(Args)]
pub struct DescribeArgs {
    /// one or more images (JPEG, PNG, WebP)
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// print JSON (box, 68 landmarks, age, gender with probability, expression probabilities;
    /// `human_models`: the independent reading, and per face where the two disagree)
    #[arg(long)]
    pub json: bool,
    /// also compute the 128-d identity descriptor (JSON only)
    #[arg(long)]
    pub descriptor: bool,
    /// face detector: `tiny` (fast) or `ssd` (SSD-MobileNetV1 at 512 px: more accurate, slower)
    #[arg(long, default_value = "tiny")]
    pub detector: String,
    /// tiny detector input side (a multiple of 32; larger finds smaller faces, slower)
    #[arg(long, default_value_t = 416)]
    pub detector_size: usize,
    /// minimum detector score (0..1)
    #[arg(long, default_value_t = 0.5)]
    pub min_score: f32,
}

fn analyzer(detector: &str, detector_size: usize, min_score: f32, descriptors: bool) -> Result<FaceAnalyzer> {
    if detector_size == 0 || !detector_size.is_multiple_of(32) {
        bail!("--detector-size must be a positive multiple of 32 (e.g. 160, 320, 416), got {detector_size}");
    }
    if !(min_score > 0.0 && min_score < 1.0) {
        bail!("--min-score must be between 0 and 1, got {min_score}");
    }
    let ssd = match detector {
        "tiny" => None,
        "ssd" => Some(SsdMobilenetV1Config { min_confidence: min_score, ..Default::default() }),
        other => bail!("unknown --detector `{other}`: use tiny or ssd"),
    };
    let tiny = TinyFaceDetectorConfig { input_size: detector_size, score_threshold: min_score, ..Default::default() };
    FaceAnalyzer::load_fetched(FaceAnalyzerConfig { detector: tiny, ssd, descriptors, ..Default::default() }, &Device::flex())
}

pub fn describe(a: DescribeArgs) -> Result<()> {
    let fa = analyzer(&a.detector, a.detector_size, a.min_score, a.descriptor)?;
    let mut images = vec![];
    for p in &a.images {
        let (w, h, rgb) = load_image_rgb(p, DEFAULT_MAX_PIXELS)?;
        images.push(Image::from_rgb8(w as usize, h as usize, &rgb));
    }
    let found = fa.analyze(&images);
    // the second, independent reading (human-models: BlazeFace, FaceRes, emotion), one face per image
    let judge = Judge::fetched(&Device::flex())?;
    let second = judge.read(&images);
    let paired: Vec<Option<usize>> = found.iter().zip(&second).map(|(faces, r)| r.as_ref().and_then(|r| pair(faces, r))).collect();
    let none = |p: &PathBuf| format!("no face found in {} (the detector looks for faces seen roughly from the front; try --min-score 0.3 or a larger --detector-size for small faces)", p.display());
    if a.json {
        let out: Vec<serde_json::Value> = a
            .images
            .iter()
            .zip(&images)
            .zip(&found)
            .zip(second.iter().zip(&paired))
            .map(|(((p, im), faces), (r, pk))| {
                let faces_json: Vec<serde_json::Value> = faces
                    .iter()
                    .enumerate()
                    .map(|(k, f)| {
                        let mut v = f.to_json();
                        if let (Some(r), true) = (r, *pk == Some(k)) {
                            v["disagreements"] = serde_json::json!(disagreements(&f.attributes, r, AGE_GAP));
                        }
                        v
                    })
                    .collect();
                let mut v = serde_json::json!({
                    "image": p.display().to_string(),
                    "width": im.width,
                    "height": im.height,
                    "faces": faces_json,
                    "models": limner_faces::LICENCE,
                    "human_models": r.as_ref().map(|r| {
                        let mut j = r.to_json();
                        j["face"] = serde_json::json!(pk);
                        j
                    }),
                });
                if faces.is_empty() {
                    v["message"] = none(p).into();
                }
                v
            })
            .collect();
        let out = if out.len() == 1 { out.into_iter().next().unwrap() } else { serde_json::Value::Array(out) };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut missing = vec![];
    for (((p, faces), r), pk) in a.images.iter().zip(&found).zip(&second).zip(&paired) {
        let prefix = if a.images.len() > 1 { format!("{}: ", p.display()) } else { String::new() };
        if faces.is_empty() {
            missing.push(none(p));
            if let Some(r) = r {
                println!("{prefix}face-api finds no face; human-models reads {}", second_line(r));
            }
            continue;
        }
        for (k, f) in faces.iter().enumerate() {
            let (g, gp) = f.attributes.gender();
            let (e, ep) = f.attributes.expression();
            let which = if faces.len() > 1 { format!(" (face {} of {})", k + 1, faces.len()) } else { String::new() };
            println!(
                "{prefix}{}{which} [{g} {:.0}%, {e} {:.0}%, age {:.1}, box {:.0},{:.0} {:.0}x{:.0}]",
                f.attributes.sentence(),
                gp * 100.0,
                ep * 100.0,
                f.attributes.age,
                f.rect.x,
                f.rect.y,
                f.rect.width,
                f.rect.height
            );
            if *pk == Some(k) {
                let r = r.as_ref().expect("paired");
                let d = disagreements(&f.attributes, r, AGE_GAP);
                let verdict = if d.is_empty() { "agrees".to_string() } else { format!("DISAGREES on {}", d.join("; ")) };
                println!("{prefix}  second reading (human-models): {} — {verdict}", second_line(r));
            }
        }
        if r.is_some() && pk.is_none() {
            println!("{prefix}  second reading (human-models): {} — its face is not one face-api found", second_line(r.as_ref().unwrap()));
        } else if r.is_none() {
            println!("{prefix}  second reading (human-models): its detector (BlazeFace) finds no face");
        }
    }
    if missing.len() == a.images.len() {
        bail!("{}", missing.join("; "));
    }
    for m in missing {
        eprintln!("{m}");
    }
    Ok(())
}

fn second_line(r: &Reading) -> String {
    let (e, ep) = r.top_emotion();
    let gp = if r.is_male() { r.male } else { 1.0 - r.male };
    format!("{} [{} {:.0}%, {e} {:.0}%, age {:.1}]", r.sentence(), r.gender(), gp * 100.0, ep * 100.0, r.age)
}

/// The face-api face the independent reading is about: the one whose box centre is closest to
/// the centre of BlazeFace's box, if inside it.
fn pair(faces: &[Face], r: &Reading) -> Option<usize> {
    let [x1, y1, x2, y2] = r.box_xyxy;
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    faces
        .iter()
        .enumerate()
        .map(|(k, f)| (k, f.rect.x + f.rect.width / 2.0, f.rect.y + f.rect.height / 2.0))
        .filter(|&(_, x, y)| (x1..=x2).contains(&x) && (y1..=y2).contains(&y))
        .min_by(|a, b| ((a.1 - cx).powi(2) + (a.2 - cy).powi(2)).total_cmp(&((b.1 - cx).powi(2) + (b.2 - cy).powi(2))))
        .map(|(k, _, _)| k)
}

/// The `--align` framer of `limner dataset build`: the most confident face, FFHQ-aligned.
pub fn face_framer(detector: &str, detector_size: usize) -> Result<Box<limner_data::Framer>> {
    let fa = analyzer(detector, detector_size, 0.5, false)?;
    Ok(Box::new(move |img: &limner_data::RgbImage, res: u32| {
        let (w, h) = img.dimensions();
        let im = Image::from_rgb8(w as usize, h as usize, img.as_raw());
        match fa.align(&[im], res as usize).pop().flatten() {
            Some(a) => Ok(limner_data::RgbImage::from_raw(res, res, a.to_rgb8()).expect("size")),
            None => Err("no face found".to_string()),
        }
    }))
}
