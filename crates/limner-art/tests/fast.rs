//! Fast style transfer with the real networks (`limner models fetch --only style-transfer`;
//! the style checks also need `--only inception-v3`). Under CI=true a missing model fails.

mod common;

use common::*;
use limner_art::fast::{self, FastOptions, Style};
use limner_art::Image;

fn opts(strength: f32) -> FastOptions {
    FastOptions { strength, size: None, preserve_colour: false }
}

#[test]
fn output_is_sane_and_deterministic() {
    if !have_style_nets() {
        return;
    }
    // an odd, non-square size: padded to a multiple of 4 inside, cropped back
    let content = face(1, 256).resize(250, 190);
    let style = Style::Image(swirl_painting(300, 200));
    let a = fast::stylize(&content, &style, &opts(1.0)).unwrap();
    assert_eq!((a.w, a.h), (250, 190));
    assert_eq!(a.data.len(), 250 * 190 * 3);
    assert!(a.data.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    let mean = a.data.iter().sum::<f32>() / a.data.len() as f32;
    let var = a.data.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / a.data.len() as f32;
    assert!((0.05..0.95).contains(&mean) && var > 1e-3, "a flat or blown-out image: mean {mean}, var {var}");
    // same inputs, same pixels (a second call reuses the cached plans)
    let b = fast::stylize(&content, &style, &opts(1.0)).unwrap();
    assert_eq!(a.to_rgb8(), b.to_rgb8(), "two runs differ");
    // --size: the longer side
    let s = fast::stylize(&content, &style, &FastOptions { size: Some(128), ..opts(1.0) }).unwrap();
    assert_eq!((s.w, s.h), (128, 97));
    // presets: the output size and range, too
    let p = fast::stylize(&content, &Style::Presets(fast::parse_presets("style-07").unwrap()), &opts(1.0)).unwrap();
    assert_eq!((p.w, p.h), (250, 190));
    assert!(p.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn the_style_really_transfers() {
    if !have_style_nets() || !have("inception-v3") {
        return;
    }
    let grams = Grams::load();
    let content = face(3, 256);
    let painting = swirl_painting(256, 256);
    let style = Style::Image(painting.clone());
    let full = fast::stylize(&content, &style, &opts(1.0)).unwrap();
    let none = fast::stylize(&content, &style, &opts(0.0)).unwrap();
    let half = fast::stylize(&content, &style, &opts(0.5)).unwrap();

    let d_content = grams.distance(&content, &painting);
    let d_full = grams.distance(&full, &painting);
    let d_half = grams.distance(&half, &painting);
    let d_none = grams.distance(&none, &painting);
    eprintln!("Gram distance to the style: content {d_content:.3}, strength 0 {d_none:.3}, 0.5 {d_half:.3}, 1 {d_full:.3}");
    assert!(d_full < 0.8 * d_content, "styling did not move the Gram matrices toward the style: {d_full} vs {d_content}");
    assert!(d_full < d_half && d_half < d_none, "strength is not monotone: {d_full} {d_half} {d_none}");

    // strength 0 stays close to the content, strength 1 does not
    let px_none = none.mean_abs_diff(&content);
    let px_full = full.mean_abs_diff(&content);
    let g_none = grams.distance(&none, &content);
    let g_full = grams.distance(&full, &content);
    eprintln!("to the content: pixels {px_none:.4} vs {px_full:.4}, Gram {g_none:.3} vs {g_full:.3} (strength 0 vs 1)");
    assert!(px_none < 0.5 * px_full && g_none < g_full, "strength 0 is not closer to the content");

    // --preserve-colour: the colours of the content (chroma close), the style's luminance
    let kept = fast::stylize(&content, &style, &FastOptions { preserve_colour: true, ..opts(1.0) }).unwrap();
    let chroma = |img: &Image| -> Vec<f32> {
        img.data.chunks_exact(3).flat_map(|p| [-0.1687 * p[0] - 0.3313 * p[1] + 0.5 * p[2], 0.5 * p[0] - 0.4187 * p[1] - 0.0813 * p[2]]).collect()
    };
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    let (c_kept, c_full) = (dist(&chroma(&kept), &chroma(&content)), dist(&chroma(&full), &chroma(&content)));
    eprintln!("chroma distance to the content: preserve-colour {c_kept:.4}, plain {c_full:.4}");
    assert!(c_kept < 0.5 * c_full, "--preserve-colour did not keep the content's colours");
}

#[test]
fn presets_differ_and_mix() {
    if !have_style_nets() {
        return;
    }
    let content = face(5, 128);
    let run = |spec: &str| fast::stylize(&content, &Style::Presets(fast::parse_presets(spec).unwrap()), &opts(1.0)).unwrap();
    let a = run("style-00");
    let b = run("style-19");
    let d = a.mean_abs_diff(&b);
    assert!(d > 0.05, "two presets look the same (mean |diff| {d})");
    // a half/half mix lies between them, different from both
    let m = run("style-00:0.5,style-19:0.5");
    assert!(m.mean_abs_diff(&a) > 0.01 && m.mean_abs_diff(&b) > 0.01);
    // strength blends with the content
    let faint = fast::stylize(&content, &Style::Presets(fast::parse_presets("style-19").unwrap()), &opts(0.25)).unwrap();
    assert!(faint.mean_abs_diff(&content) < b.mean_abs_diff(&content));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // a text file as an image
    let txt = tmp.path().join("style.jpg");
    std::fs::write(&txt, "this is not a painting").unwrap();
    let e = format!("{:#}", Image::load(&txt).unwrap_err());
    assert!(e.contains("style.jpg") && e.contains("not an image"), "{e}");
    // a PNG claiming 20000x20000 pixels: refused from its header, before any allocation
    let big = tmp.path().join("huge.png");
    std::fs::write(&big, png_claiming(20000, 20000)).unwrap();
    let e = format!("{:#}", Image::load(&big).unwrap_err());
    assert!(e.contains("huge.png") && e.contains("20000"), "{e}");
    // tiny images and bad options
    let tiny = Image { w: 16, h: 16, data: vec![0.5; 16 * 16 * 3] };
    let fine = Image { w: 64, h: 64, data: vec![0.5; 64 * 64 * 3] };
    let e = fast::stylize(&tiny, &Style::Image(fine.clone()), &opts(1.0)).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
    let e = fast::stylize(&fine, &Style::Image(tiny.clone()), &opts(1.0)).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
    for s in [-0.1, 1.5, f32::NAN] {
        let e = fast::stylize(&fine, &Style::Image(fine.clone()), &opts(s)).unwrap_err().to_string();
        assert!(e.contains("strength"), "{e}");
    }
}
