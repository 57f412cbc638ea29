//! `limner describe` and `limner dataset build --align` end to end on real faces, and `limner
//! nsfw` (nsfwjs' classifier; needs `limner models fetch --only inception-v3`).
//!
//! Needs `limner models fetch --only face-api` and `--only human-models` (under CI=true a missing model fails the test;
//! elsewhere it is skipped with a note). Faces: /work/shared/data/faces128 (or
//! `$LIMNER_TEST_FACES`) when present, else rendered with `limner generate --model random-face`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

fn ok(args: &[&str]) -> String {
    let o = limner(args);
    assert!(o.status.success(), "limner {args:?} failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn face_api_fetched() -> bool {
    ["tiny-face-detector", "human-blazeface"].iter().all(|n| limner_core::testing::fetched(limner_models::fetch::net_path(n)).is_some())
}

/// Two real face images copied (or rendered) into `dir`.
fn faces(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let shared = std::env::var_os("LIMNER_TEST_FACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/work/shared/data/faces128"));
    let names = ["0001_00004.jpg", "0001_00013.jpg"];
    if names.iter().all(|n| shared.join(n).is_file()) {
        return names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                std::fs::copy(shared.join(n), &p).unwrap();
                p
            })
            .collect();
    }
    ok(&["generate", "--model", "random-face", "--size", "128", "--seeds", "11,12", "--out", dir.to_str().unwrap()]);
    ["seed0011.png", "seed0012.png"].iter().map(|n| dir.join(n)).collect()
}

/// A 96×80 smooth colour ramp: no face.
fn no_face(path: &Path) {
    let (w, h) = (96u32, 80u32);
    let px: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| [(x * 2) as u8, (y * 3) as u8, 128])).collect();
    limner_data::imageio::save_png_rgb(path, w, h, &px).unwrap();
}

#[test]
fn describe_and_align_real_faces() {
    if !face_api_fetched() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let faces = faces(&tmp.path().join("faces"));
    let face = faces[0].to_str().unwrap();

    // one line of plain words, plus the numbers behind them
    let text = ok(&["describe", face]);
    let line = text.lines().next().unwrap();
    assert!(line.starts_with("a ") || line.starts_with("an "), "{text}");
    assert!(line.contains(", about ") && ["woman", "man", "girl", "boy", "person", "child"].iter().any(|w| line.contains(w)), "{text}");

    // the SSD detector boxes the face differently, but the face is described alike
    let ssd = ok(&["describe", "--detector", "ssd", face]);
    let age_of = |l: &str| l.split(", about ").nth(1).and_then(|r| r.split(' ').next()).and_then(|a| a.parse::<f32>().ok()).unwrap();
    let (words, ssd_words) = (line.split(", about").next().unwrap(), ssd.split(", about").next().unwrap());
    assert!(words == ssd_words && (age_of(line) - age_of(&ssd)).abs() <= 5.0, "tiny: {line} / ssd: {ssd}");

    // JSON: box, 68 landmarks, age, gender with probability, 7 expression probabilities
    let v: Value = serde_json::from_str(&ok(&["describe", "--json", "--descriptor", face])).unwrap();
    let f = &v["faces"][0];
    let b = &f["box"];
    let (bx, by, bw, bh) = (b["x"].as_f64().unwrap(), b["y"].as_f64().unwrap(), b["width"].as_f64().unwrap(), b["height"].as_f64().unwrap());
    assert!(bw > 30.0 && bh > 30.0 && bx > -20.0 && by > -20.0 && bx + bw < 150.0 && by + bh < 150.0, "box {b}");
    let lm = f["landmarks"].as_array().unwrap();
    assert_eq!(lm.len(), 68);
    // the eyes (36–47) lie inside the box, above the mouth (48–67)
    let y_of = |r: std::ops::Range<usize>| r.clone().map(|i| lm[i][1].as_f64().unwrap()).sum::<f64>() / r.len() as f64;
    assert!(y_of(36..48) < y_of(48..68) && y_of(36..48) > by, "eyes below the mouth? {lm:?}");
    let age = f["age"].as_f64().unwrap();
    assert!((0.0..110.0).contains(&age), "age {age}");
    assert!(["male", "female"].contains(&f["gender"].as_str().unwrap()));
    let gp = f["gender_probability"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&gp), "gender probability {gp}");
    let ex = f["expressions"].as_object().unwrap();
    assert_eq!(ex.len(), 7);
    let sum: f64 = ex.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "expression probabilities sum to {sum}");
    assert_eq!(f["descriptor"].as_array().unwrap().len(), 128);
    assert!(line.starts_with(f["description"].as_str().unwrap()), "text and JSON disagree: {line} / {}", f["description"]);

    // the second, independent reading (human-models), and whether the two agree
    let second = text.lines().nth(1).unwrap_or_default();
    assert!(second.starts_with("  second reading (human-models): a"), "{text}");
    let h = &v["human_models"];
    assert!(["male", "female"].contains(&h["gender"].as_str().unwrap()), "{h}");
    let hage = h["age"].as_f64().unwrap();
    assert!((1.0..99.0).contains(&hage), "independent age {hage}");
    assert_eq!(h["emotions"].as_object().unwrap().len(), 7);
    assert_eq!(h["face"], 0, "the reading is paired with face-api's face");
    assert!(second.contains(h["description"].as_str().unwrap()), "{second} / {h}");
    let disagree = f["disagreements"].as_array().unwrap();
    assert_eq!(disagree.is_empty(), second.ends_with("agrees"), "{second} / {disagree:?}");
    assert_eq!(!disagree.is_empty(), second.contains("DISAGREES"), "{second}");
    // a gender disagreement is said whenever the two genders differ
    assert_eq!(disagree.iter().any(|d| d.as_str().unwrap().starts_with("gender")), h["gender"] != f["gender"], "{disagree:?}");

    // no face: a clear message (an error in text mode, an empty list in JSON)
    let blank = tmp.path().join("blank.png");
    no_face(&blank);
    let o = limner(&["describe", blank.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.starts_with("error: no face found in") && err.contains("blank.png"), "{err}");
    let v: Value = serde_json::from_str(&ok(&["describe", "--json", blank.to_str().unwrap()])).unwrap();
    assert_eq!(v["faces"].as_array().unwrap().len(), 0);
    assert!(v["message"].as_str().unwrap().contains("no face found"));
    assert!(v["human_models"].is_null(), "BlazeFace found a face in a colour ramp: {}", v["human_models"]);

    // dataset build --align: faces kept (aligned), the blank reported
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    for p in &faces {
        std::fs::copy(p, input.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&blank, input.join("blank.png")).unwrap();
    let out = tmp.path().join("aligned.limner");
    let report = ok(&["dataset", "build", input.to_str().unwrap(), "--res", "64", "--out", out.to_str().unwrap(), "--align"]);
    assert!(report.contains("kept 2 of 3"), "{report}");
    assert!(report.contains("blank.png: no face found"), "{report}");
    let ds = limner_data::PackedDataset::open(&out).unwrap();
    assert_eq!((ds.len(), ds.res()), (2, 64));
    assert!(ds.meta().options.align);
}

/// `limner nsfw`: nsfwjs' classifier on files (needs `limner models fetch --only inception-v3`).
#[test]
fn nsfw_classifies_files_and_refuses_non_pictures() {
    if limner_core::testing::fetched(limner_models::fetch::net_path("nsfwjs-head")).is_none() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let face = repo.join("models/default/reference/seed0000.png");
    let out = ok(&["nsfw", "--json", face.to_str().unwrap()]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["top"], "Neutral", "{v}");
    let p = v["probabilities"].as_object().unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]);
    let explicit = v["explicit"].as_f64().unwrap();
    let sum = ["Porn", "Hentai", "Sexy"].iter().map(|k| p[*k].as_f64().unwrap()).sum::<f64>();
    assert!((explicit - sum).abs() < 1e-5 && explicit < 0.05, "{v}");
    let text = ok(&["nsfw", face.to_str().unwrap()]);
    assert!(text.contains("explicit (Porn+Hentai+Sexy)") && text.contains("top Neutral"), "{text}");
    // not a picture: a clear error naming the file
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let o = limner(&["nsfw", bad.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("notes.png"), "{}", String::from_utf8_lossy(&o.stderr));
}
