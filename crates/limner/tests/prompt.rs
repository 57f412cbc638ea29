//! `limner generate --prompt` and `--slider` end to end on the default model.
//!
//! Needs `limner models fetch --only face-api` and `--only human-models` (under CI=true a missing model fails the
//! test; elsewhere it is skipped with a note).

use std::process::{Command, Output};

use serde_json::Value;

fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

fn face_api_fetched() -> bool {
    ["tiny-face-detector", "human-faceres"].iter().all(|n| limner_core::testing::fetched(limner_models::fetch::net_path(n)).is_some())
}

#[test]
fn unknown_words_fail_with_the_vocabulary() {
    // parsed before any model loads: no face-api needed
    let o = limner(&["generate", "--prompt", "an old man with glasses and a hat", "--seeds", "0-3"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("`glasses` (no network limner runs judges glasses: face-api reads age, gender, 7 expressions") && e.contains("`hat` (no network limner runs judges headwear"), "{e}");
    assert!(e.contains("surprised") && e.contains("neutral"), "the error should list the expressions it steers: {e}");
    assert!(e.contains("middle-aged") && e.contains("smiling") && e.contains("woman"), "the error should list what is understood: {e}");
    let o = limner(&["generate", "--prompt", "a man and a woman", "--seeds", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("both genders"));
    let o = limner(&["generate", "--slider", "beard=+1", "--seeds", "0", "--out", "/tmp/limner-never"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("gender, age, smile"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `--refine-aim` only means something with `--refine-age`, and only as an age in years:
/// both are refused before any network loads, naming what to add or give.
#[test]
fn refine_aim_needs_refine_age_and_an_age() {
    let o = limner(&["generate", "--prompt", "an old woman", "--seeds", "0", "--refine-aim", "80"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("add --refine-age N"), "{e}");
    for bad in ["0", "140", "NaN"] {
        let o = limner(&["generate", "--prompt", "an old woman", "--seeds", "0", "--refine-age", "5", "--refine-aim", bad]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("between 1 and 100"), "--refine-aim {bad}: {e}");
    }
}

/// The refinement's options are refused outside their ranges, naming what to give, before
/// any network loads.
#[test]
fn refine_options_are_checked() {
    for (flag, bad, says) in [
        ("--refine-head", "5", "from 1 to 3"),
        ("--refine-head", "wide", "or `off`"),
        ("--refine-gender", "1", "under 1"),
        ("--refine-gender", "NaN", "or `off`"),
        ("--refine-passes", "0", "1 to 4 passes"),
        ("--refine-hold", "-1", "from 0 (off) to 100"),
    ] {
        let arg = format!("{flag}={bad}");
        let o = limner(&["generate", "--prompt", "an old woman", "--seeds", "0", "--refine-age", "5", &arg]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(says), "{flag} {bad}: {e}");
    }
}

/// `--smile-floor` is a smile slider in sigma between 0 and 8: anything else is refused
/// before any network loads.
#[test]
fn smile_floor_must_be_a_slider_value() {
    for bad in ["-1", "9", "NaN"] {
        let arg = format!("--smile-floor={bad}");
        let o = limner(&["generate", "--prompt", "a smiling man", "--seeds", "0", &arg]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("between 0 and 8"), "--smile-floor {bad}: {e}");
    }
}

/// What a prompt run on seeds 0-31 measured.
struct Rate {
    /// steered faces described back as asked
    met: usize,
    /// the same seeds unsteered, described back as asked
    met_unsteered: usize,
    /// steered faces the detector found
    found: u64,
    /// seeds met unsteered but not steered
    lost: usize,
    /// mean P(male) of the steered and the unsteered faces (where the detector found both)
    male: (f64, f64),
    /// as asked by the independent judge (human-models), steered and the same seeds unsteered
    independent: usize,
    independent_unsteered: usize,
}

/// Whether a description ("a smiling woman, about 30") names the gender the prompt asked for,
/// as a word ("man" is not found in "woman").
fn names_gender(description: &str, male: bool) -> bool {
    let nouns: &[&str] = if male { &["man", "boy"] } else { &["woman", "girl"] };
    description.split(|c: char| !c.is_alphanumeric()).any(|w| nouns.contains(&w))
}

/// Runs a gender prompt on seeds 0-31; every face described back as asked must be described
/// with the asked gender's noun.
fn prompt_rate(prompt: &str, male: bool) -> Rate {
    let o = limner(&["generate", "--prompt", prompt, "--seeds", "100000-100031", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let seeds = v["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 32);
    let count = |k: &str| seeds.iter().filter(|s| s[k].as_bool().unwrap()).count();
    let mut rate = Rate {
        met: 0,
        met_unsteered: 0,
        found: v["faces_found"].as_u64().unwrap(),
        lost: 0,
        male: (0.0, 0.0),
        independent: count("met_independent"),
        independent_unsteered: count("met_independent_before"),
    };
    assert_eq!(rate.independent as u64, v["met_independent"].as_u64().unwrap());
    // done: both readings as asked
    assert_eq!(seeds.iter().filter(|s| s["done"].as_bool().unwrap()).count(), seeds.iter().filter(|s| s["met"].as_bool().unwrap() && s["met_independent"].as_bool().unwrap()).count());
    let pairs: Vec<(f64, f64)> = seeds.iter().filter_map(|s| Some((s["male_probability"].as_f64()?, s["male_probability_before"].as_f64()?))).collect();
    let n = pairs.len().max(1) as f64;
    rate.male = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    for s in seeds {
        for (met, description, count) in [("met", "description", &mut rate.met), ("met_before", "description_before", &mut rate.met_unsteered)] {
            if s[met].as_bool().unwrap() {
                *count += 1;
                let d = s[description].as_str().unwrap_or_default();
                assert!(names_gender(d, male), "seed {}: {met} for {prompt:?}, but described as {d:?}", s["seed"]);
            }
        }
    }
    assert_eq!(rate.met as u64, v["met"].as_u64().unwrap());
    rate.lost = seeds.iter().filter(|s| s["met_before"].as_bool().unwrap() && !s["met"].as_bool().unwrap()).count();
    eprintln!(
        "{prompt:?}: {}/32 described back as asked (unsteered: {}/32), detector found {}/32; mean P(male) {:.3} (unsteered {:.3}); independent judge {}/32 (unsteered {}/32)",
        rate.met, rate.met_unsteered, rate.found, rate.male.0, rate.male.1, rate.independent, rate.independent_unsteered
    );
    rate
}

#[test]
fn gender_nouns_are_matched_as_words() {
    assert!(names_gender("a smiling woman, about 30", false) && !names_gender("a smiling woman, about 30", true));
    assert!(names_gender("a man, about 45", true) && names_gender("a boy, about 9", true));
    assert!(!names_gender("a person, about 25", true) && !names_gender("a person, about 25", false));
}

/// Measured on this default model (128 px, attempt 6: distilled from random-face, sharing its
/// w space and so its named directions) on seeds 100000-100031 (its training seeds are 0-7713,
/// and a few of those are refused as near copies of their teacher images): "a man" 26/32 by the
/// steering judge (unsteered 11/32), 27/32 by the independent one (unsteered 11/32); "a woman"
/// 19/32 (unsteered 15/32), independent 26/32 (21/32); "a young man" 25/32. Unsteered, many of
/// these faces read as women, so a count alone proves little for "a woman": each prompt must be
/// met on more seeds than the same seeds unsteered and on at least 16/32, lose none of the seeds
/// that were already as asked, and move the mean P(male) the asked way (measured: "a man" 0.423
/// -> 0.812; "a woman" 0.423 -> 0.302).
#[test]
fn prompt_a_man_or_a_woman_is_described_back_more_often_than_unsteered() {
    if !face_api_fetched() {
        return;
    }
    for (prompt, male) in [("a man", true), ("a woman", false)] {
        let r = prompt_rate(prompt, male);
        assert!(r.found >= 26, "the detector found a face in only {}/32 generated images", r.found);
        assert!(r.met >= 16, "{}/32 described back as {prompt:?}", r.met);
        assert!(r.met > r.met_unsteered, "{prompt:?}: steering met {}/32, the same seeds unsteered {}/32", r.met, r.met_unsteered);
        assert_eq!(r.lost, 0, "{prompt:?}: steering undid {} seed(s) that were already as asked", r.lost);
        let (steered, unsteered) = r.male;
        assert!(if male { steered > unsteered + 0.3 } else { steered < unsteered }, "{prompt:?}: mean P(male) {steered:.3}, unsteered {unsteered:.3}");
        // the independent judge (never used to steer), against the same seeds unsteered: "a man"
        // measured 27/32 vs 11/32; "a woman" 26/32 vs 21/32 (many of these faces already read as women)
        if male {
            assert!(r.independent >= 16 && r.independent > r.independent_unsteered + 8, "{prompt:?}: independent judge {}/32, unsteered {}/32", r.independent, r.independent_unsteered);
        } else {
            assert!(r.independent >= r.independent_unsteered, "{prompt:?}: independent judge {}/32, unsteered {}/32", r.independent, r.independent_unsteered);
        }
    }
}
