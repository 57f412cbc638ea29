//! The test on the photoreal model: `limner generate --model random-face --prompt ...`
//! on 32 seeds, judged by `limner describe`'s pipeline (detector, 68 landmarks, aligned crop,
//! attributes); at least 80 % (26/32) must be described back as asked. Rendered at 256 px
//! (box-downsampled from 1024) to keep it quick.
//!
//! The same runs are also judged by the independent judge (human-models' FaceRes and emotion
//! network, never used to steer): the gender prompts must be read as asked by it on at least
//! 24/32 seeds and on more seeds than the same seeds unsteered; "a neutral face" (steered along
//! the shipped neutral expression direction) on at least 16/32 and on 8 more than unsteered
//! (measured: 20/32 against 6/32; face-api reads 31/32 back).
//!
//! Needs `limner models fetch --only face-api`, `--only random-face` and `--only human-models`:
//! under CI=true a missing model fails the test; elsewhere it is skipped with a note.

use std::process::{Command, Output};

use serde_json::Value;

fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

fn fetched() -> bool {
    ["tiny-face-detector", "random-face", "human-faceres"].iter().all(|net| limner_core::testing::fetched(limner_models::fetch::net_path(net)).is_some())
}

/// What one prompt run on seeds 0-31 measured.
struct Rate {
    /// described back as asked by face-api's describe pipeline
    met: u64,
    /// faces face-api's detector found
    found: u64,
    /// as asked by the independent judge, steered and the same seeds unsteered
    independent: u64,
    independent_unsteered: u64,
    /// as asked by both
    done: u64,
    /// read happy by the independent emotion network (its top label)
    happy: u64,
}

/// Runs a prompt on seeds 0-31 at 256 px (with `extra` options).
fn prompt_rate(prompt: &str, extra: &[&str]) -> Rate {
    let t0 = std::time::Instant::now();
    let mut args = vec!["generate", "--model", "random-face", "--size", "256", "--prompt", prompt, "--seeds", "0-31", "--json"];
    args.extend_from_slice(extra);
    let o = limner(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let seeds = v["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 32);
    for s in seeds {
        if s["met"].as_bool().unwrap() {
            assert!(!s["description"].as_str().unwrap().is_empty());
        }
    }
    let count = |k: &str| seeds.iter().filter(|s| s[k].as_bool().unwrap()).count() as u64;
    let r = Rate {
        met: v["met"].as_u64().unwrap(),
        found: v["faces_found"].as_u64().unwrap(),
        independent: count("met_independent"),
        independent_unsteered: count("met_independent_before"),
        done: count("done"),
        happy: seeds.iter().filter(|s| s["independent"]["emotion"] == "happy").count() as u64,
    };
    assert_eq!(r.independent, v["met_independent"].as_u64().unwrap());
    assert_eq!(r.done, v["done"].as_u64().unwrap());
    assert!(seeds.iter().all(|s| !s["done"].as_bool().unwrap() || (s["met"].as_bool().unwrap() && s["met_independent"].as_bool().unwrap())), "a seed counted done without both readings");
    eprintln!(
        "{prompt:?} {extra:?}: face-api {}/32 (detector found {}/32); independent judge {}/32, unsteered {}/32; done {}/32; happy by the independent emotion network {}/32; {:.0} s",
        r.met,
        r.found,
        r.independent,
        r.independent_unsteered,
        r.done,
        r.happy,
        t0.elapsed().as_secs_f64()
    );
    r
}

#[test]
fn random_face_prompts_are_described_back_on_80_percent_of_32_seeds() {
    if !fetched() {
        return;
    }
    let mut failures = vec![];
    let mut floor = None;
    for prompt in ["a man", "a woman", "a smiling old man"] {
        let r = prompt_rate(prompt, &[]);
        assert!(r.found >= 30, "{prompt:?}: the detector found a face in only {}/32 images", r.found);
        if r.met < 26 {
            failures.push(format!("{prompt:?}: face-api {}/32", r.met));
        }
        // the independent judge: gender holds, measured against the same seeds unsteered
        if prompt == "a smiling old man" {
            floor = Some(r);
            continue;
        }
        if r.independent < 24 || r.independent <= r.independent_unsteered {
            failures.push(format!("{prompt:?}: independent judge {}/32, unsteered {}/32", r.independent, r.independent_unsteered));
        }
    }
    // the smile floor: face-api reads these faces happy either way; the independent emotion
    // network reads more of them happy, and more seeds as asked, from the floor (measured
    // 29 vs 17 happy, 24 vs 12 as asked, at the default floor of 3)
    let (floor, none) = (floor.expect("run above"), prompt_rate("a smiling old man", &["--smile-floor", "0"]));
    if floor.happy < none.happy + 3 || floor.independent <= none.independent {
        failures.push(format!("\"a smiling old man\": with the smile floor {} happy, {} as asked by the independent judge; without {} and {}", floor.happy, floor.independent, none.happy, none.independent));
    }
    // an expression beyond smiling, judged by the independent emotion network
    let r = prompt_rate("a neutral face", &[]);
    if r.independent < 16 || r.independent < r.independent_unsteered + 8 || r.met < 26 {
        failures.push(format!("\"a neutral face\": independent judge {}/32, unsteered {}/32, face-api {}/32", r.independent, r.independent_unsteered, r.met));
    }
    assert!(failures.is_empty(), "below the bar: {}", failures.join(", "));
}

#[test]
fn random_face_sliders_respect_size() {
    if !fetched() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("limner-rf-slider-{}", std::process::id()));
    let o = limner(&["generate", "--model", "random-face", "--size", "64", "--slider", "age=+2", "--seeds", "3", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (w, h, _) = limner_data::imageio::load_image_rgb(&dir.join("seed0003.png"), 1 << 24).unwrap();
    assert_eq!((w, h), (64, 64));
    let o = limner(&["generate", "--model", "random-face", "--size", "100", "--slider", "age=+2", "--seeds", "3", "--out", dir.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("power of two"), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--refine-age`: seeds the linear search left another person (face-api identity distance ≥
/// 0.55 to the unsteered face) are refined by gradient. On seeds 0-1 ("an old woman", 256 px,
/// both over 0.6 unrefined) every refined seed must come back under 0.6 and nearer than it
/// started, still read old by face-api (the steering network), and, by the independent judge
/// (FaceRes, never used to steer), at least 10 years older than the same seed unsteered.
#[test]
fn refined_age_keeps_the_person_and_ages_by_the_independent_judge() {
    if !fetched() {
        return;
    }
    let o = limner(&["generate", "--model", "random-face", "--size", "256", "--prompt", "an old woman", "--seeds", "0-1", "--json", "--refine-age", "10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut under = 0;
    for s in v["seeds"].as_array().unwrap() {
        let r = &s["refined"];
        assert!(r.is_object(), "seed {} was not refined: {s}", s["seed"]);
        let (start, now) = (r["start_identity"].as_f64().unwrap(), s["identity_distance"].as_f64().unwrap());
        let (fr, fr0) = (s["independent"]["age"].as_f64().unwrap(), s["independent_before"]["age"].as_f64().unwrap());
        eprintln!("seed {}: identity {start:.3} → {now:.3}; FaceRes age {fr0:.1} unsteered → {fr:.1}; face-api {}", s["seed"], s["description"]);
        // measured: seed 0 0.639 → 0.566, seed 1 0.883 → 0.599 (10 steps, the cap): the bound
        // leaves 0.02 for rounding on another CPU; at least one seed must end under 0.6 itself
        assert!(start >= 0.6 && now < 0.62 && now < start - 0.05, "seed {}: identity {start} → {now}", s["seed"]);
        under += (now < 0.6) as usize;
        assert!(s["met"].as_bool().unwrap(), "seed {}: face-api no longer reads it as asked: {}", s["seed"], s["description"]);
        assert!(fr >= fr0 + 10.0, "seed {}: the independent judge reads {fr:.1}, unsteered {fr0:.1}", s["seed"]);
    }
    assert!(under >= 1, "no refined seed came back under 0.6");
}

/// The refinement's gender floor (`--refine-gender`, default 0.97): face-api's probability of
/// the asked gender is flat once it is sure, and the independent judge (FaceRes) read aged
/// women male on many seeds. On seeds 1 and 3 ("an old woman", `--refine-age 20 --refine-aim
/// 80`), measured: FaceRes P(male) 0.71 and 0.56 with `--refine-gender off`, 0.18 and 0.35
/// with the floor. The floor must bring both under 0.5 (female) and the mean down by 0.15.
#[test]
fn the_gender_floor_keeps_aged_women_women_for_the_independent_judge() {
    if !fetched() {
        return;
    }
    let male = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec!["generate", "--model", "random-face", "--size", "256", "--prompt", "an old woman", "--seeds", "1,3", "--psi", "0.7", "--json", "--refine-age", "20", "--refine-aim", "80"];
        args.extend_from_slice(extra);
        let o = limner(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["seeds"].as_array().unwrap().iter().map(|s| s["independent"]["male"].as_f64().expect("FaceRes found the face")).collect()
    };
    let (with, without) = (male(&[]), male(&["--refine-gender", "off"]));
    eprintln!("FaceRes P(male), seeds 1 and 3: with the floor {with:?}, without {without:?}");
    assert!(with.iter().all(|&p| p < 0.5), "the independent judge reads a refined old woman male: {with:?}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&with) <= mean(&without) - 0.15, "with the floor {with:?}, without {without:?}");
}
