//! Recipes, `render`, `breed` and unlabelled sliders through the `limner` binary on the embedded
//! default model: every image gets a recipe, and `limner render` makes the same PNG bytes again.

mod cli_support;
use cli_support::{fails, ok};
use std::path::Path;

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

/// `limner animate` writes an APNG and a GIF that decode to the asked frame count and size; the
/// APNG's first and last frames are exactly the keyframes' renders, the GIF's close to them
/// (256-colour quantisation); every frame's recipe renders that frame.
#[test]
fn animate_writes_decodable_gif_and_apng_whose_ends_are_the_keyframes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    ok(&["generate", "--seeds", "5", "--slider", "smile=+1", "--out", &s("keys")]);
    let key = s("keys/seed0005.json");
    ok(&["generate", "--seeds", "12", "--out", &s("keys")]);
    // (seed 7 as the middle key makes a frame the copy check refuses: near training image 7131)
    let through = format!("12,seed:8,{key}");
    let out = ok(&["animate", "--through", &through, "--frames", "9", "--out", &s("morph.png")]);
    assert!(out.contains("9 frames"), "{out}");
    ok(&["animate", "--through", &through, "--frames", "9", "--out", &s("morph.gif")]);
    ok(&["render", &s("keys/seed0005.json"), "--out", &s("last.png")]);
    ok(&["render", &s("keys/seed0012.json"), "--out", &s("first.png")]);
    let rgb = |p: &str| limner_data::imageio::load_image_rgb(Path::new(&s(p)), 1 << 24).unwrap();
    let (first, last) = (rgb("first.png"), rgb("last.png"));
    // APNG
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(s("morph.png")).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let actl = reader.info().animation_control.expect("an animated PNG");
    assert_eq!(actl.num_frames, 9);
    let mut frames = vec![];
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    for _ in 0..9 {
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (first.0, first.1));
        frames.push(buf[..info.buffer_size()].to_vec());
    }
    assert_eq!(frames[0], first.2, "the APNG's first frame is not the first key's render");
    assert_eq!(frames[8], last.2, "the APNG's last frame is not the last key's render");
    assert_ne!(frames[4], frames[0]);
    // a middle frame's recipe renders it
    ok(&["render", &s("morph.json"), "--frame", "4", "--out", &s("f4.png")]);
    assert_eq!(rgb("f4.png").2, frames[4]);
    let e = fails(&["render", &s("morph.json"), "--out", &s("f.png")]);
    assert!(e.contains("--frame"), "{e}");
    // GIF
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut d = opts.read_info(std::fs::File::open(s("morph.gif")).unwrap()).unwrap();
    let mut gif_frames = vec![];
    while let Some(f) = d.read_next_frame().unwrap() {
        assert_eq!((f.width as u32, f.height as u32), (first.0, first.1));
        gif_frames.push(f.buffer.chunks(4).flat_map(|p| p[..3].to_vec()).collect::<Vec<u8>>());
    }
    assert_eq!(gif_frames.len(), 9);
    let mad = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64;
    let (d0, d8) = (mad(&gif_frames[0], &first.2), mad(&gif_frames[8], &last.2));
    eprintln!("GIF vs exact renders: mean |diff| first {d0:.2}, last {d8:.2} levels");
    assert!(d0 < 4.0 && d8 < 4.0, "{d0} {d8}");
    // a sweep and a loop
    let out = ok(&["animate", "--through", "3", "--sweep", "age=-3..3", "--frames", "6", "--loop", "--out", &s("sweep.gif")]);
    assert!(out.contains("6 frames"), "{out}");
    let e = fails(&["animate", "--through", "3,4", "--out", &s("x.mp4")]);
    assert!(e.contains("MP4"), "{e}");
}

/// `limner project` on a face rendered by random-face at 256 px (a photo-like face, so the test
/// runs on any clone after `limner models fetch`): the perceptual distance drops to under half
/// of w_avg's, face-api calls the projection the same person, and the recipe renders the same
/// bytes. Bad photos are clear errors. Needs random-face, face-api and InceptionV3 fetched
/// (under CI=true a missing one fails).
#[test]
fn project_a_photo_and_reject_bad_ones() {
    for net in ["random-face", "tiny-face-detector", "inception-v3"] {
        if limner_core::testing::fetched(limner_models::fetch::net_path(net)).is_none() {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    ok(&["generate", "--model", "random-face", "--size", "256", "--seeds", "21", "--out", &s("photo")]);
    let out = ok(&["project", &s("photo/seed0021.png"), "--steps", "120", "--no-encoder", "--out", &s("proj")]);
    assert!(out.contains("started from w_avg"), "{out}");
    eprintln!("{out}");
    let num = |key: &str| -> f32 {
        let i = out.find(key).unwrap_or_else(|| panic!("no `{key}` in {out}")) + key.len();
        out[i..].trim_start().split(|c: char| !(c.is_ascii_digit() || c == '.')).next().unwrap().parse().unwrap()
    };
    let (end, start) = (num("perceptual distance"), num("(from"));
    assert!(end < 0.5 * start, "perceptual distance {end} from {start}");
    let id = num("identity distance");
    assert!(id < 0.6, "face-api does not call the projection the same person: {id}");
    for f in ["projection.png", "projection.json", "aligned.png", "side_by_side.png"] {
        assert!(t.join("proj").join(f).is_file(), "{f}");
    }
    ok(&["render", &s("proj/projection.json"), "--out", &s("again.png")]);
    same_png(&t.join("proj/projection.png"), &t.join("again.png"));
    // the projected face breeds like any other
    ok(&["breed", "--parents", &format!("{},12", s("proj/projection.json")), "--children", "1", "--out", &s("kids")]);

    // an encoder trained here (a few steps) gives the start; --steps 0 is its guess alone
    let out = ok(&["models", "encoder", "--steps", "3", "--batch", "4", "--out", &s("enc.safetensors")]);
    assert!(out.contains("held-out w loss") && t.join("enc.ckpt.safetensors").is_file(), "{out}");
    let out = ok(&["models", "encoder", "--steps", "4", "--batch", "4", "--resume", "--out", &s("enc.safetensors")]);
    assert!(out.contains("to step 4"), "{out}");
    let out = ok(&["project", &s("photo/seed0021.png"), "--steps", "0", "--encoder", &s("enc.safetensors"), "--out", &s("guess")]);
    assert!(out.contains("0 steps") && out.contains("started from the encoder's guess"), "{out}");
    assert!(t.join("guess/projection.json").is_file());

    // bad photos
    let flat = vec![128u8; 96 * 96 * 3];
    limner_data::imageio::save_png_rgb(&t.join("flat.png"), 96, 96, &flat).unwrap();
    let e = fails(&["project", &s("flat.png"), "--out", &s("p2")]);
    assert!(e.contains("no face found"), "{e}");
    limner_data::imageio::save_png_rgb(&t.join("dot.png"), 1, 1, &[9, 9, 9]).unwrap();
    let e = fails(&["project", &s("dot.png"), "--out", &s("p2")]);
    assert!(e.contains("too small"), "{e}");
    let photo = std::fs::read(t.join("photo/seed0021.png")).unwrap();
    std::fs::write(t.join("cut.png"), &photo[..photo.len() / 2]).unwrap();
    let e = fails(&["project", &s("cut.png"), "--out", &s("p2")]);
    assert!(e.contains("cut.png"), "{e}");
    let e = fails(&["project", &s("photo/seed0021.png"), "--encoder", &s("cut.png"), "--out", &s("p2")]);
    assert!(e.contains("cut.png") && e.contains("limner models encoder"), "{e}");
    let e = fails(&["project", &s("photo/seed0021.png"), "--model", "random-face", "--size", "256", "--steps", "0", "--encoder", &s("none.safetensors"), "--out", &s("p2")]);
    assert!(e.contains("none.safetensors"), "{e}");
    assert!(!t.join("p2").exists());
}
