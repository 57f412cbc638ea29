//! A missing or corrupted style network in the cache gives a one-line error that says to run
//! `limner models fetch`. (Its own test binary: it points LIMNER_HOME at a temporary folder.)

use limner_art::fast::{self, FastOptions, Style};
use limner_art::Image;
use limner_models::fetch::{nets_dir, STYLE_MULTI, STYLE_PREDICT, STYLE_TRANSFORM};

#[test]
fn missing_and_corrupt_networks() {
    // the real networks, when fetched, to make a truncated copy of
    let real = limner_models::fetch::net_path(STYLE_TRANSFORM).ok();
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("LIMNER_HOME", home.path());
    let img = Image { w: 64, h: 64, data: (0..64 * 64 * 3).map(|i| (i % 97) as f32 / 96.0).collect() };
    let style = Style::Image(img.clone());

    // missing
    let e = format!("{:#}", fast::stylize(&img, &style, &FastOptions::default()).unwrap_err());
    assert!(e.contains("limner models fetch --only style-transfer") && !e.contains('\n'), "{e}");
    let e = format!("{:#}", fast::stylize(&img, &Style::Presets(fast::parse_presets("style-01").unwrap()), &FastOptions::default()).unwrap_err());
    assert!(e.contains("limner models fetch --only style-transfer"), "{e}");

    // corrupt: garbage, and a truncated copy of the real file
    let dir = nets_dir().join("style-transfer");
    std::fs::create_dir_all(&dir).unwrap();
    for n in [STYLE_PREDICT, STYLE_TRANSFORM, STYLE_MULTI] {
        std::fs::write(dir.join(format!("{n}.onnx")), b"\x08\x07\x12\x04junk").unwrap();
    }
    if let Some(real) = real {
        let bytes = std::fs::read(real).unwrap();
        std::fs::write(dir.join(format!("{STYLE_TRANSFORM}.onnx")), &bytes[..bytes.len() / 2]).unwrap();
    }
    let e = format!("{:#}", fast::stylize(&img, &style, &FastOptions::default()).unwrap_err());
    assert!(e.contains("corrupt") && e.contains("limner models fetch --only style-transfer") && e.contains(".onnx") && !e.contains('\n'), "{e}");
    let e = format!("{:#}", fast::transform(&img, &[0.0; 100]).unwrap_err());
    assert!(e.contains("arbitrary_transform.onnx") && e.contains("corrupt") && e.contains("limner models fetch --only style-transfer"), "{e}");
}
