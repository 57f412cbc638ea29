//! Recipes, `render`, `breed` and unlabelled sliders through the `limner` binary on the embedded
//! default model: every image gets a recipe, and `limner render` makes the same PNG bytes again.

use std::path::Path;
use std::process::{Command, Output};

fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

fn ok(args: &[&str]) -> String {
    let o = limner(args);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "limner {args:?} failed:\n{text}");
    text
}

fn fails(args: &[&str]) -> String {
    let o = limner(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "limner {args:?} should have failed");
    assert!(err.starts_with("error: "), "unclear error for {args:?}: {err}");
    assert!(!err.contains("panicked"), "limner panicked: {err}");
    err
}

fn same_png(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[test]
fn generate_and_breed_write_recipes_that_render_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    // plain seeds, a named slider, an unlabelled slider on the coarse layers
    ok(&["generate", "--seeds", "12,40", "--out", &s("plain")]);
    ok(&["generate", "--seeds", "12", "--slider", "age=+1.5", "--out", &s("aged")]);
    ok(&["generate", "--seeds", "12", "--slider", "sefa:0=+3", "--layers", "coarse", "--out", &s("sefa")]);
    for (dir, seed) in [("plain", 12), ("plain", 40), ("aged", 12), ("sefa", 12)] {
        let png = t.join(format!("{dir}/seed{seed:04}.png"));
        let json = png.with_extension("json");
        assert!(json.is_file(), "no recipe beside {}", png.display());
        let again = t.join(format!("{dir}-again-{seed}.png"));
        ok(&["render", &json.to_string_lossy(), "--out", &again.to_string_lossy()]);
        same_png(&png, &again);
    }
    let sefa: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("sefa/seed0012.json")).unwrap()).unwrap();
    assert_eq!(sefa["edits"][0]["slider"], "sefa:coarse:0");
    assert_ne!(std::fs::read(t.join("sefa/seed0012.png")).unwrap(), std::fs::read(t.join("plain/seed0012.png")).unwrap());

    // breed two seeds and a kept recipe
    let kept = t.join("aged/seed0012.json");
    let out = ok(&[
        "breed", "--parents", &format!("12,seed:40,{}", kept.display()), "--genes", "coarse=0.7,middle=0.3,fine=0.5", "--mutation", "0.2", "--children", "3", "--seed", "9",
        "--out", &s("litter"), "--grid", &s("litter.png"),
    ]);
    assert!(out.contains("bred 3 children"), "{out}");
    assert!(t.join("litter.png").is_file());
    for k in 0..3 {
        let png = t.join(format!("litter/child{k:02}.png"));
        let again = t.join(format!("litter-again-{k}.png"));
        ok(&["render", &png.with_extension("json").to_string_lossy(), "--out", &again.to_string_lossy()]);
        same_png(&png, &again);
    }
    let child: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("litter/child00.json")).unwrap()).unwrap();
    assert_eq!(child["origin"]["kind"], "breed");
    assert_eq!(child["origin"]["parents"].as_array().unwrap().len(), 3);
    assert_eq!(child["origin"]["parents"][2]["edits"][0]["slider"], "age");
    // the same litter again is the same bytes
    ok(&["breed", "--parents", &format!("12,seed:40,{}", kept.display()), "--genes", "coarse=0.7,middle=0.3,fine=0.5", "--mutation", "0.2", "--children", "1", "--seed", "9", "--out", &s("litter2")]);
    same_png(&t.join("litter/child00.png"), &t.join("litter2/child00.png"));

    // unlabelled sliders to a file, then used by generate
    let out = ok(&["models", "sliders", "--method", "sefa", "--layers", "middle", "--count", "5", "--out", &s("sl.safetensors")]);
    assert!(out.contains("largest |cos|"), "{out}");
    ok(&["generate", "--seeds", "3", "--sliders", &s("sl.safetensors"), "--slider", "sefa:middle:4=-2", "--out", &s("fromfile")]);
}

#[test]
fn bad_recipes_sliders_and_parents_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    std::fs::write(t.join("v9.json"), r#"{"limner_recipe": 9}"#).unwrap();
    let e = fails(&["render", &s("v9.json"), "--out", &s("x.png")]);
    assert!(e.contains("v9.json") && e.contains("version 9 is not supported"), "{e}");
    std::fs::write(t.join("text.json"), "hello").unwrap();
    let e = fails(&["render", &s("text.json"), "--out", &s("x.png")]);
    assert!(e.contains("not JSON"), "{e}");
    let e = fails(&["render", &s("nope.json"), "--out", &s("x.png")]);
    assert!(e.contains("nope.json"), "{e}");
    assert!(!t.join("x.png").exists());
    let e = fails(&["generate", "--seeds", "1", "--slider", "sefa:99=+1", "--out", &s("o")]);
    assert!(e.contains("only 10 were computed"), "{e}");
    let e = fails(&["generate", "--seeds", "1", "--slider", "beard=+1", "--out", &s("o")]);
    assert!(e.contains("no slider `beard`"), "{e}");
    let e = fails(&["generate", "--seeds", "1", "--slider", "sefa:0=+1", "--layers", "ears", "--out", &s("o")]);
    assert!(e.contains("layer"), "{e}");
    let e = fails(&["breed", "--parents", "12", "--out", &s("l")]);
    assert!(e.contains("at least two"), "{e}");
    let e = fails(&["breed", "--parents", "12,missing.json", "--out", &s("l")]);
    assert!(e.contains("missing.json"), "{e}");
    let e = fails(&["breed", "--parents", "12,13", "--genes", "coarse=2", "--out", &s("l")]);
    assert!(e.contains("between 0 and 1"), "{e}");
}
