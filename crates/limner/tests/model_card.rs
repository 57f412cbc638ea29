//! The default model's card against its model: every row of MODEL_CARD.md's "Reproduce the
//! numbers" table is run as written (on the held-out faces128 images) and must print the
//! card's numbers (the FID-like score within 0.1, the sharpness, where the row gives one, within
//! 0.01), so a card that drifts from the committed model fails.
//!
//! Needs `limner models fetch --only inception-v3` and the held-out faces128 images
//! (/work/shared/data/faces128, or `$LIMNER_TEST_FACES`); under CI=true a missing one fails.

mod cli_support;
use cli_support::ok;
use std::path::{Path, PathBuf};

/// The card's `(command, FID-like, sharpness)` rows.
fn card_rows(card: &str) -> Vec<(String, f64, Option<f64>)> {
    let section = card.split("## Reproduce the numbers").nth(1).expect("MODEL_CARD.md has a 'Reproduce the numbers' section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let cmd = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let value: f64 = cells.get(2)?.parse().ok()?;
            let sharpness = cells.get(3).and_then(|c| c.parse().ok());
            cmd.starts_with("limner ").then(|| (cmd.to_string(), value, sharpness))
        })
        .collect()
}

/// A folder of links to the held-out faces128 images (index ending in 0).
fn heldout(dir: &Path) -> Option<PathBuf> {
    let faces = std::env::var_os("LIMNER_TEST_FACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/work/shared/data/faces128"));
    let Ok(entries) = std::fs::read_dir(&faces) else {
        return limner_core::testing::missing(format!("the faces128 images ({}; set LIMNER_TEST_FACES)", faces.display()));
    };
    let held = dir.join("held");
    std::fs::create_dir_all(&held).unwrap();
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.rsplit_once('.').is_some_and(|(stem, _)| stem.ends_with('0')) {
            std::os::unix::fs::symlink(e.path(), held.join(&name)).unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 500, "faces128 has 500 held-out images (index ending in 0), found {n} in {}", faces.display());
    Some(held)
}

#[test]
fn the_default_models_card_prints_what_its_commands_print() {
    let card = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default/MODEL_CARD.md")).unwrap();
    let rows = card_rows(&card);
    assert!(rows.len() >= 3, "the card's table has its score rows: {rows:?}");
    assert!(rows.iter().any(|r| r.2.is_some()), "the card's table gives the sharpness too: {rows:?}");
    if limner_core::testing::fetched(limner_nets::InceptionV3::load_fetched(&burn::tensor::Device::flex())).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(held) = heldout(tmp.path()) else { return };
    for (cmd, want, want_sharpness) in rows {
        let args: Vec<String> = cmd.split_whitespace().skip(1).map(|a| if a == "$HELD" { held.display().to_string() } else { a.to_string() }).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = ok(&args);
        let got: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("FID-like").and_then(|r| r.rsplit(": ").next()).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("`{cmd}` printed no FID-like score:\n{text}"));
        assert!((got - want).abs() <= 0.1, "`{cmd}` prints {got:.3}, the card says {want}");
        if let Some(want) = want_sharpness {
            let got: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("sharpness").and_then(|r| r.split(": ").nth(1)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()))
                .unwrap_or_else(|| panic!("`{cmd}` printed no sharpness:\n{text}"));
            assert!((got - want).abs() <= 0.01, "`{cmd}` prints sharpness {got:.3}, the card says {want}");
        }
    }
}
