//! `limner generate --prompt` and `--slider` end to end on the default model.
//!
//! Needs `limner models fetch --only face-api` (under CI=true a missing model fails the
//! test; elsewhere it is skipped with a note).

use std::process::{Command, Output};

use serde_json::Value;

fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

fn face_api_fetched() -> bool {
    match limner_models::fetch::net_path("tiny-face-detector") {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true and face-api is not fetched: {e:#}"),
        Err(e) => {
            eprintln!("note: skipped: {e:#}");
            false
        }
    }
}

#[test]
fn unknown_words_fail_with_the_vocabulary() {
    // parsed before any model loads: no face-api needed
    let o = limner(&["generate", "--prompt", "an old man with glasses and a hat", "--seeds", "0-3"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("`glasses` (no model here measures it)") && e.contains("`hat`"), "{e}");
    assert!(e.contains("middle-aged") && e.contains("smiling") && e.contains("woman"), "the error should list what is understood: {e}");
    let o = limner(&["generate", "--prompt", "a man and a woman", "--seeds", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("both genders"));
    let o = limner(&["generate", "--slider", "beard=+1", "--seeds", "0", "--out", "/tmp/limner-never"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("gender, age, smile"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs a prompt on seeds 0-31 and returns (described back as asked, faces found).
fn prompt_rate(prompt: &str) -> (u64, u64) {
    let o = limner(&["generate", "--prompt", prompt, "--seeds", "0-31", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["seeds"].as_array().unwrap().len(), 32);
    for s in v["seeds"].as_array().unwrap() {
        // every met seed's description must say what was asked
        if s["met"].as_bool().unwrap() {
            let d = s["description"].as_str().unwrap();
            assert!(!d.is_empty());
        }
    }
    let (met, found) = (v["met"].as_u64().unwrap(), v["faces_found"].as_u64().unwrap());
    eprintln!("{prompt:?}: {met}/32 described back as asked, detector found {found}/32");
    (met, found)
}

/// Measured on this default model (64 px, attempt 4: distilled from random-face, sharing its w
/// space and so its named directions), seeds 0-31: "a man" 22/32, "a woman" 29/32, "a young
/// man" 19/32, "an old woman" 2/32, "a smiling old man" 3/32 (the soft 64 px faces read young).
/// With directions fitted on its own renders instead, "a man" fell to 3/32. This asserts what
/// the measurements hold for gender, with margin: "a man" and "a woman" land at least 16/32.
#[test]
fn prompt_a_man_or_a_woman_is_described_back_on_at_least_16_of_32_seeds() {
    if !face_api_fetched() {
        return;
    }
    for prompt in ["a man", "a woman"] {
        let (met, found) = prompt_rate(prompt);
        assert!(found >= 26, "the detector found a face in only {found}/32 generated images");
        assert!(met >= 16, "{met}/32 described back as {prompt:?}");
    }
}
