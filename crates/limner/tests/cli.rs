//! The `limner` binary end to end, as a user runs it: a real process, real files.

mod cli_support;
use cli_support::{fails, ok};
use std::process::Command;
use std::path::Path;

/// Writes `n` distinct 24x24 PNG faces-to-be: coloured blobs on varied backgrounds.
fn write_photos(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let mut px = vec![0u8; 24 * 24 * 3];
        for y in 0..24 {
            for x in 0..24 {
                let inside = (x as i32 - 12 + (i % 5) as i32 - 2).pow(2) + (y as i32 - 12).pow(2) < 40 + (i * 7 % 30) as i32;
                let p = (y * 24 + x) * 3;
                let c = if inside { [(i * 37 % 256) as u8, (i * 91 % 256) as u8, (255 - i * 53 % 256) as u8] } else { [(x * 10) as u8, 40, (y * 10) as u8] };
                px[p..p + 3].copy_from_slice(&c);
            }
        }
        limner_data::imageio::save_png_rgb(&dir.join(format!("{i:03}.png")), 24, 24, &px).unwrap();
    }
}

#[test]
fn dataset_train_resume_generate_export() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    write_photos(&t.join("photos"), 40);
    let out = ok(&["dataset", "build", &s("photos"), "--res", "16", "--out", &s("d.limner"), "--near-dup", "0"]);
    assert!(out.contains("kept"), "{out}");
    ok(&["dataset", "info", &s("d.limner")]);

    let small = ["--batch", "8", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "32"];
    let (d, r) = (s("d.limner"), s("run"));
    let mut args = vec!["train", "--data", &d, "--out", &r, "--kimg", "0.048", "--snap-kimg", "0.024"];
    args.extend(small);
    ok(&args);
    for f in ["latest.safetensors", "generator.safetensors", "grid-latest.png", "metrics.csv", "loss.png", "run.json"] {
        assert!(t.join("run").join(f).exists(), "{f} missing after training");
    }
    let metrics = std::fs::read_to_string(t.join("run/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "header + 2 snapshots:\n{metrics}");

    // a second start on the same folder without --resume refuses to overwrite
    let err = fails(&args);
    assert!(err.contains("--resume"), "{err}");
    // resume continues to a longer total
    ok(&["train", "--data", &d, "--out", &r, "--kimg", "0.072", "--snap-kimg", "0.024", "--resume"]);
    let metrics = std::fs::read_to_string(t.join("run/metrics.csv")).unwrap();
    assert!(metrics.lines().last().unwrap().starts_with("0.072"), "{metrics}");

    // same seed, same settings: byte-identical images
    ok(&["generate", "--model", &r, "--seeds", "0-3", "--psi", "0.7", "--out", &s("g1"), "--grid", &s("grid.png")]);
    ok(&["generate", "--model", &s("run/generator.safetensors"), "--seeds", "3,0-2", "--psi", "0.7", "--out", &s("g2")]);
    for i in 0..4 {
        let f = format!("seed{i:04}.png");
        assert_eq!(std::fs::read(t.join("g1").join(&f)).unwrap(), std::fs::read(t.join("g2").join(&f)).unwrap(), "{f} differs");
    }
    assert_ne!(std::fs::read(t.join("g1/seed0000.png")).unwrap(), std::fs::read(t.join("g1/seed0001.png")).unwrap());
    // the label names the model without the folders of the disk, and its sha256 matches
    let label: serde_json::Value = serde_json::from_str(&ok(&["inspect", "--json", &s("g1/seed0000.png")])).unwrap();
    let recipe = label["label"]["recipe"].as_str().unwrap();
    assert!(recipe.contains(r#""name":"run/generator.safetensors""#) && !recipe.contains(&*t.to_string_lossy()), "{recipe}");
    assert!(t.join("grid.png").exists());

    // export under official names, re-import, same pixels
    ok(&["models", "export", "--stylegan2", "--model", &r, "--out", &s("official.safetensors")]);
    ok(&["models", "import", "--stylegan2", &s("official.safetensors"), "--out", &s("imported.safetensors")]);
    ok(&["generate", "--model", &s("imported.safetensors"), "--seeds", "0", "--out", &s("g3")]);
    // (the labels differ: another model file, with its own name and sha256)
    let pixels = |p: &str| limner_data::imageio::load_image_rgb(&t.join(p), 1 << 20).unwrap();
    assert!(pixels("g1/seed0000.png") == pixels("g3/seed0000.png"), "the re-imported model renders other pixels");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    std::fs::create_dir_all(t.join("texts")).unwrap();
    for i in 0..3 {
        std::fs::write(t.join(format!("texts/{i}.txt")), "not a picture").unwrap();
    }
    let err = fails(&["dataset", "build", &s("texts"), "--out", &s("x.limner")]);
    assert!(err.contains("no decodable images") || err.contains("not an image"), "{err}");
    assert!(!t.join("x.limner").exists());

    // a truncated dataset and a checkpoint that is not one
    std::fs::write(t.join("bad.limner"), b"LIMNERDS\x01\x00").unwrap();
    let err = fails(&["train", "--data", &s("bad.limner"), "--out", &s("run")]);
    assert!(err.contains("bad.limner"), "{err}");
    std::fs::write(t.join("bad.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let err = fails(&["generate", "--model", &s("bad.safetensors"), "--seeds", "0", "--out", &s("o")]);
    assert!(err.contains("bad.safetensors"), "{err}");
    let err = fails(&["generate", "--model", &s("missing.safetensors"), "--seeds", "0", "--out", &s("o")]);
    assert!(err.contains("not found"), "{err}");
    let err = fails(&["generate", "--model", &s("bad.safetensors"), "--seeds", "9-1", "--out", &s("o")]);
    assert!(err.contains("backwards"), "{err}");
    let err = fails(&["train", "--data", &s("bad.limner"), "--out", &s("run"), "--resume"]);
    assert!(err.contains("bad.limner") || err.contains("--resume"), "{err}");
}

/// Whether the fetched InceptionV3 is there; under `CI=true` its absence fails the test.
fn inception_fetched() -> bool {
    limner_core::testing::fetched(limner_models::fetch::net_path("inception-v3")).is_some()
}

/// Writes a `w`x`h` PNG whose pixels are `f(x, y)`.
fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    let px: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| f(x, y)).collect();
    limner_data::imageio::save_png_rgb(path, w, h, &px).unwrap();
}

#[test]
fn gatys_and_dream_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    // an unknown layer is refused before anything is loaded (no weights needed)
    let err = fails(&["dream", "--in", &s("none.png"), "--layer", "mixed3,mixed9", "--out", &s("d.png")]);
    assert!(err.contains("mixed9") && err.contains("valid: conv2d_1"), "{err}");
    let err = fails(&["gatys", "--content", &s("a.png"), "--style", &s("b.png"), "--out", &s("o.png"), "--content-layer", "pool5"]);
    assert!(err.contains("pool5") && err.contains("mixed5"), "{err}");
    let err = fails(&["dream", "--in", "seed:x", "--out", &s("d.png")]);
    assert!(err.contains("seed:"), "{err}");
    if !inception_fetched() {
        return;
    }
    // a 96x80 content image (not square) and a striped style image
    write_png(&t.join("content.png"), 96, 80, |x, y| {
        let inside = (x as i32 - 48).pow(2) + (y as i32 - 40).pow(2) < 600;
        if inside { [220, 170, 140] } else { [40, (y * 2) as u8, 120] }
    });
    write_png(&t.join("style.png"), 64, 64, |x, y| if (x + 2 * y) % 8 < 4 { [240, 200, 30] } else { [20, 40, 160] });
    let err = fails(&["gatys", "--content", &s("missing.png"), "--style", &s("style.png"), "--out", &s("o.png")]);
    assert!(err.contains("missing.png"), "{err}");

    let out = ok(&["gatys", "--content", &s("content.png"), "--style", &s("style.png"), "--out", &s("g.png"), "--size", "96", "--steps", "3"]);
    assert!(out.contains("wrote"), "{out}");
    let (w, h, g) = limner_data::imageio::load_image_rgb(&t.join("g.png"), 1 << 20).unwrap();
    assert_eq!((w, h), (96, 80));
    let (_, _, c) = limner_data::imageio::load_image_rgb(&t.join("content.png"), 1 << 20).unwrap();
    assert_ne!(g, c, "gatys left the content unchanged");
    ok(&["gatys", "--content", &s("content.png"), "--style", &s("style.png"), "--out", &s("g2.png"), "--size", "64", "--steps", "2", "--optimizer", "lbfgs", "--preserve-colour"]);
    let (w, h, _) = limner_data::imageio::load_image_rgb(&t.join("g2.png"), 1 << 20).unwrap();
    assert_eq!((w, h), (64, 53));

    ok(&["dream", "--in", &s("content.png"), "--layer", "mixed3,conv2d_4", "--octaves", "2", "--steps", "2", "--out", &s("d.png")]);
    let (w, h, d) = limner_data::imageio::load_image_rgb(&t.join("d.png"), 1 << 20).unwrap();
    assert_eq!((w, h), (96, 80));
    assert_ne!(d, c, "dream left the image unchanged");
    // from a generated face, twice with the same seed: the same pixels
    for f in ["s1.png", "s2.png"] {
        ok(&["dream", "--in", "seed:3", "--size", "96", "--octaves", "2", "--steps", "2", "--out", &s(f)]);
    }
    assert_eq!(std::fs::read(t.join("s1.png")).unwrap(), std::fs::read(t.join("s2.png")).unwrap());
    // too many octaves for the image: a clear error
    let err = fails(&["dream", "--in", &s("content.png"), "--octaves", "6", "--out", &s("x.png")]);
    assert!(err.contains("smallest octave"), "{err}");
}

/// Writes a `w`×`h` PNG: a soft radial "face" (`painting = false`) or saturated colour bands.
fn write_picture(path: &Path, w: usize, h: usize, painting: bool) {
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
            let r = (u * u + v * v).sqrt();
            let c = if painting {
                let t = 0.5 + 0.5 * (40.0 * r + 3.0 * v.atan2(u)).sin();
                [255.0 * t, 200.0 * (1.0 - t), 255.0 * (1.0 - t * t)]
            } else {
                let skin = (1.0 - 2.2 * r).clamp(0.0, 1.0);
                [60.0 + 170.0 * skin, 70.0 + 120.0 * skin, 90.0 + 80.0 * skin]
            };
            px.extend(c.map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    limner_data::imageio::save_png_rgb(path, w as u32, h as u32, &px).unwrap();
}

/// Size of a PNG from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

#[test]
fn style_end_to_end_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    write_picture(&t.join("face.png"), 200, 160, false);
    write_picture(&t.join("painting.png"), 300, 300, true);

    // --list needs no model
    let list = ok(&["style", "--list"]);
    for want in ["style-00", "style-25", "fast", "gatys", "Apache-2.0", "limner models fetch --only style-transfer"] {
        assert!(list.contains(want), "--list lacks {want}:\n{list}");
    }

    // errors that need no model
    let err = fails(&["style", "--content", &s("face.png"), "--out", &s("o.png")]);
    assert!(err.contains("--style") && err.contains("--preset"), "{err}");
    let err = fails(&["style", "--content", &s("face.png"), "--preset", "style-01", "--method", "gatys", "--out", &s("o.png")]);
    assert!(err.contains("--method gatys needs --style"), "{err}");
    let err = fails(&["style", "--content", &s("face.png"), "--preset", "starry-night", "--out", &s("o.png")]);
    assert!(err.contains("limner style --list"), "{err}");
    let err = fails(&["style", "--content", &s("face.png"), "--preset", "style-01", "--strength", "2", "--out", &s("o.png")]);
    assert!(err.contains("--strength"), "{err}");
    let err = fails(&["style", "--content", &s("missing.png"), "--preset", "style-01", "--out", &s("o.png")]);
    assert!(err.contains("missing.png"), "{err}");
    let err = fails(&["style", "--content", &s("face.png"), "--preset", "style-01", "--out", &s("o.jpg")]);
    assert!(err.contains("PNG"), "{err}");
    std::fs::write(t.join("notes.jpg"), "not a picture").unwrap();
    let err = fails(&["style", "--content", &s("face.png"), "--style", &s("notes.jpg"), "--out", &s("o.png")]);
    assert!(err.contains("notes.jpg") && err.contains("not an image"), "{err}");
    // a PNG whose header claims 20000x20000: refused before decoding
    let mut huge = std::fs::read(t.join("face.png")).unwrap();
    huge[16..24].copy_from_slice(&[0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20]);
    let crc = {
        let mut c = 0xFFFF_FFFFu32;
        for &b in &huge[12..29] {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    };
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(t.join("huge.png"), &huge).unwrap();
    let err = fails(&["style", "--content", &s("huge.png"), "--preset", "style-01", "--out", &s("o.png")]);
    assert!(err.contains("huge.png") && err.contains("20000"), "{err}");
    assert!(!t.join("o.png").exists());

    // a corrupted network in the cache (LIMNER_HOME elsewhere): one line saying what to run
    let home = t.join("home");
    std::fs::create_dir_all(home.join("nets/style-transfer")).unwrap();
    for n in ["arbitrary_predict", "arbitrary_transform", "multistyle26"] {
        std::fs::write(home.join(format!("nets/style-transfer/{n}.onnx")), b"\x08\x07trunc").unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_limner"))
        .args(["style", "--content", &s("face.png"), "--style", &s("painting.png"), "--out", &s("o.png")])
        .env("LIMNER_HOME", &home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("corrupt") && err.contains("limner models fetch --only style-transfer") && err.trim().lines().count() == 1, "{err}");

    // the real thing (needs `limner models fetch --only style-transfer`)
    if limner_core::testing::fetched(limner_models::fetch::net_path("arbitrary_transform")).is_none() {
        return;
    }
    let out = ok(&["style", "--content", &s("face.png"), "--style", &s("painting.png"), "--out", &s("a.png")]);
    assert!(out.contains("a.png"), "{out}");
    assert_eq!(png_size(&t.join("a.png")), (200, 160));
    ok(&["style", "--content", &s("face.png"), "--style", &s("painting.png"), "--out", &s("b.png"), "--strength", "0.5", "--size", "128", "--preserve-colour"]);
    assert_eq!(png_size(&t.join("b.png")), (128, 102));
    ok(&["style", "--content", &s("face.png"), "--preset", "style-07", "--out", &s("p7.png")]);
    ok(&["style", "--content", &s("face.png"), "--preset", "style-03:0.5,style-12:0.5", "--out", &s("mix.png")]);
    ok(&["style", "--content", "seed:42", "--preset", "style-07", "--out", &s("seed.png")]);
    assert_eq!(png_size(&t.join("seed.png")), (256, 256));
    // same command, same bytes
    ok(&["style", "--content", &s("face.png"), "--style", &s("painting.png"), "--out", &s("a2.png")]);
    assert_eq!(std::fs::read(t.join("a.png")).unwrap(), std::fs::read(t.join("a2.png")).unwrap());
    assert_ne!(std::fs::read(t.join("p7.png")).unwrap(), std::fs::read(t.join("mix.png")).unwrap());
    // --method gatys goes through limner_art::gatys (InceptionV3)
    if inception_fetched() {
        let out = ok(&["style", "--method", "gatys", "--content", &s("face.png"), "--style", &s("painting.png"), "--size", "64", "--steps", "2", "--out", &s("g.png")]);
        assert!(out.contains("wrote"), "{out}");
        assert_eq!(png_size(&t.join("g.png")).0.max(png_size(&t.join("g.png")).1), 64);
    }
}

/// `limner train --init default --aug ada --freeze-d 1` end to end: it starts from the embedded
/// model (saying D starts fresh), logs ADA's p in metrics.csv, and resumes; the wrong
/// resolution, DiffAugment's policy with ADA, and --init with --resume are refused clearly.
#[test]
fn train_transfer_with_ada() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    std::fs::create_dir_all(t.join("mine")).unwrap();
    for i in 0..12u32 {
        // the default model's size (128 px)
        write_png(&t.join(format!("mine/{i:02}.png")), 128, 128, |x, y| {
            let inside = (x as i32 - 64).pow(2) + (y as i32 - 60).pow(2) < 1200 + (i as i32 * 160);
            if inside { [200, (150 + i * 7) as u8, 120] } else { [(x * 3 / 2) as u8, (60 + i * 5) as u8, (y * 3 / 2) as u8] }
        });
    }
    ok(&["dataset", "build", &s("mine"), "--res", "128", "--out", &s("mine.limner"), "--near-dup", "0"]);
    ok(&["dataset", "build", &s("mine"), "--res", "32", "--out", &s("mine32.limner"), "--near-dup", "0"]);
    let err = fails(&["train", "--data", &s("mine32.limner"), "--out", &s("r32"), "--init", "default", "--aug", "ada"]);
    assert!(err.contains("128×128") && err.contains("--res 128"), "{err}");
    let err = fails(&["train", "--data", &s("mine.limner"), "--out", &s("rx"), "--aug", "ada", "--diffaugment", "color"]);
    assert!(err.contains("--aug ada"), "{err}");

    let run = s("run");
    let args = ["train", "--data", &s("mine.limner"), "--out", &run, "--init", "default", "--aug", "ada", "--augment-p", "0.25", "--ada-interval", "1", "--ada-kimg", "0.1", "--freeze-d", "1", "--batch", "4", "--kimg", "0.008", "--snap-kimg", "0.004"];
    let out = ok(&args);
    assert!(out.contains("D starts from default's discriminator") && out.contains("FreezeD: D's blocks b128"), "{out}");
    let metrics = std::fs::read_to_string(t.join("run/metrics.csv")).unwrap();
    assert!(metrics.lines().next().unwrap().ends_with(",augment_p"), "{metrics}");
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    let p: f64 = last.last().unwrap().parse().unwrap_or_else(|_| panic!("no p in {metrics}"));
    assert!((0.0..=1.0).contains(&p) && p != 0.25, "p {p} did not adapt: {metrics}");
    let run_json = std::fs::read_to_string(t.join("run/run.json")).unwrap();
    assert!(run_json.contains("\"ada\"") && run_json.contains("\"freeze_d\": 1"), "{run_json}");
    let err = fails(&["train", "--data", &s("mine.limner"), "--out", &run, "--init", "default", "--resume"]);
    assert!(err.contains("--init") && err.contains("--resume"), "{err}");
    ok(&["train", "--data", &s("mine.limner"), "--out", &run, "--kimg", "0.012", "--snap-kimg", "0.004", "--resume"]);
    let metrics = std::fs::read_to_string(t.join("run/metrics.csv")).unwrap();
    assert!(metrics.lines().last().unwrap().starts_with("0.012"), "{metrics}");
}
