//! `limner models import network-snapshot.pkl --out NAME`: an official StyleGAN2-ADA snapshot
//! (made with NVIDIA's code by tools/stylegan2-pickle/make.py) becomes a model that generate,
//! sliders, breed, render and project use by name; hostile and unsupported pickles are refused
//! with clear errors and nothing in them runs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../limner-pickle/tests/fixtures").join(name).to_string_lossy().into_owned()
}

/// Runs limner with `LIMNER_HOME` = `home`: (success, stdout + stderr).
fn run(home: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_limner")).env("LIMNER_HOME", home).args(args).output().expect("run limner");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn ok(home: &Path, args: &[&str]) -> String {
    let (good, text) = run(home, args);
    assert!(good, "limner {args:?} failed:\n{text}");
    text
}

fn fails(home: &Path, args: &[&str]) -> String {
    let (good, text) = run(home, args);
    assert!(!good, "limner {args:?} should have failed:\n{text}");
    assert!(text.contains("error: ") && !text.contains("panicked"), "unclear error for {args:?}: {text}");
    text
}

#[test]
fn import_an_official_snapshot_and_use_it_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.as_path();
    let s = |p: &str| tmp.path().join(p).to_string_lossy().into_owned();
    let out = ok(h, &["models", "import", &fixture("tiny.pkl"), "--out", "sg2-tiny"]);
    assert!(out.contains("imported G_ema of") && out.contains("16px") && out.contains("2 mapping layers"), "{out}");
    let file: PathBuf = home.join("models/sg2-tiny.safetensors");
    assert!(file.is_file(), "{out}");
    // an existing model is kept unless --force
    let e = fails(h, &["models", "import", &fixture("tiny.pkl"), "--out", "sg2-tiny"]);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    let out = ok(h, &["models", "import", &fixture("tiny.pkl"), "--out", "sg2-tiny", "--force", "--network", "G", "--discriminator", &s("D.safetensors")]);
    assert!(out.contains("discriminator (D) ->") && tmp.path().join("D.safetensors").is_file(), "{out}");

    let list = ok(h, &["models", "list"]);
    let row = list.lines().find(|l| l.starts_with("sg2-tiny")).unwrap_or_else(|| panic!("not listed:\n{list}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["16px", "2", "0.05M"], "{row}");
    assert!(row.contains("imported from tiny.pkl (G, stored F32; trained on faces.zip at 16px)"), "{row}");

    // generate, then the recipe renders the same pixels
    ok(h, &["generate", "--model", "sg2-tiny", "--seeds", "0-1", "--out", &s("g")]);
    let png = tmp.path().join("g/seed0000.png");
    ok(h, &["render", &png.with_extension("json").to_string_lossy(), "--out", &s("again.png")]);
    assert_eq!(std::fs::read(&png).unwrap(), std::fs::read(tmp.path().join("again.png")).unwrap());
    assert_ne!(std::fs::read(&png).unwrap(), std::fs::read(tmp.path().join("g/seed0001.png")).unwrap());
    // unlabelled sliders (SeFa) move it
    ok(h, &["generate", "--model", "sg2-tiny", "--seeds", "0", "--slider", "sefa:0=+3", "--layers", "coarse", "--out", &s("moved")]);
    assert_ne!(std::fs::read(&png).unwrap(), std::fs::read(tmp.path().join("moved/seed0000.png")).unwrap());
    let out = ok(h, &["models", "sliders", "--model", "sg2-tiny", "--method", "sefa", "--count", "3", "--out", &s("sl.safetensors")]);
    assert!(out.contains("largest |cos|"), "{out}");
    // breed two of its faces
    let out = ok(h, &["breed", "--model", "sg2-tiny", "--parents", "3,4", "--children", "2", "--seed", "1", "--out", &s("kids")]);
    assert!(out.contains("bred 2 children") && tmp.path().join("kids/child01.png").is_file(), "{out}");

    // project a face onto it (needs face-api and InceptionV3; under CI=true a missing one fails)
    let fetched = ["tiny-face-detector", "inception-v3"].iter().all(|n| limner_core::testing::fetched(limner_models::fetch::net_path(n)).is_some());
    if fetched {
        // (the fetched networks live in the user's own LIMNER_HOME: the model is named by its file)
        let user = |args: &[&str]| {
            let o = Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner");
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success(), "limner {args:?} failed:\n{text}");
            text
        };
        user(&["generate", "--seeds", "12", "--out", &s("photo")]);
        let out = user(&["project", &s("photo/seed0012.png"), "--model", &file.to_string_lossy(), "--steps", "5", "--out", &s("proj")]);
        assert!(out.contains("perceptual distance") && tmp.path().join("proj/projection.json").is_file(), "{out}");
    }
}

#[test]
fn hostile_and_unsupported_snapshots_are_refused_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path();
    let marker = Path::new("/tmp/limner-pickle-evil-marker");
    let _ = std::fs::remove_file(marker);
    let e = fails(h, &["models", "import", &fixture("evil_system.pkl"), "--out", "evil"]);
    assert!(e.contains("refused the global `posix.system`") && e.contains("evil_system.pkl"), "{e}");
    assert!(!marker.exists(), "the pickle's os.system ran");
    assert!(!h.join("models/evil.safetensors").exists());
    let e = fails(h, &["models", "import", &fixture("cond.pkl"), "--out", "cond"]);
    assert!(e.contains("conditional generator (c_dim = 4") && e.contains("mapping.embed"), "{e}");
    let e = fails(h, &["models", "import", &fixture("orig.pkl"), "--out", "orig"]);
    assert!(e.contains("'orig' and 'resnet' generators are not supported"), "{e}");
    let e = fails(h, &["models", "import", &fixture("tiny.pkl"), "--out", "../escape"]);
    assert!(e.contains("give a model name, or a path ending in .safetensors"), "{e}");
    let e = fails(h, &["models", "import", &fixture("tiny.pkl"), "--out", "my model!"]);
    assert!(e.contains("not a model name"), "{e}");
    let e = fails(h, &["models", "import", &fixture("tiny.pkl"), "--out", "default"]);
    assert!(e.contains("built-in model"), "{e}");
    let e = fails(h, &["models", "import", &fixture("missing.pkl"), "--out", "m"]);
    assert!(e.contains("missing.pkl"), "{e}");
    // a truncated snapshot
    let b = std::fs::read(fixture("tiny.pkl")).unwrap();
    std::fs::write(h.join("cut.pkl"), &b[..b.len() / 2]).unwrap();
    let e = fails(h, &["models", "import", &h.join("cut.pkl").to_string_lossy(), "--out", "cut"]);
    assert!(e.contains("cut.pkl") && e.contains("truncated"), "{e}");
    assert!(!h.join("models").exists() || std::fs::read_dir(h.join("models")).unwrap().next().is_none(), "a refused import left a file");
}
