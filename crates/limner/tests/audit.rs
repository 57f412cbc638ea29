//! `limner audit` end to end: a real process, real files. A model audited against the very
//! images it made is a perfect copier and must be flagged; the same model's other seeds must
//! not be; bad inputs fail with an `error:` line naming the file.

mod cli_support;
use cli_support::{fails, ok};
use std::path::Path;

fn generate(dir: &Path, name: &str, seeds: &str) -> String {
    let out = dir.join(name);
    // psi 1 on the default's own training seeds: a few are near copies of its training images
    // (seed 2 is, in inception space), which the default's embedded index would refuse
    ok(&["generate", "--seeds", seeds, "--psi", "1", "--out", out.to_str().unwrap(), "--allow-near-copy"]);
    out.to_str().unwrap().to_string()
}

#[test]
fn audit_flags_a_model_that_returns_its_training_images() {
    let dir = tempfile::tempdir().unwrap();
    // "training set": the default model's own seeds 0–29 (the folder also holds the JSON recipes)
    let train = generate(dir.path(), "train", "0-29");
    let held = generate(dir.path(), "held", "1000-1059");
    let out = dir.path().join("copying");
    let text = ok(&["audit", "--model", "default", "--data", &train, "--heldout", &held, "--samples", "20", "--first-seed", "0", "--psi", "1", "--spaces", "pixels", "--out", out.to_str().unwrap()]);
    assert!(text.contains("Verdict: copying"), "{text}");
    assert!(text.contains("20/20"), "{text}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("limner audit --model default"), "the report names its command: {md}");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["spaces"][0]["copies"], 20);
    // each closest pair is a seed beside the training file of the same seed
    let num = |v: &serde_json::Value| v.as_str().unwrap().chars().filter(char::is_ascii_digit).collect::<String>().parse::<u64>().unwrap();
    for p in j["closest"].as_array().unwrap() {
        assert_eq!(num(&p["sample_label"]), num(&p["train_label"]), "{p}");
    }
    for png in ["histograms.png", "closest.png"] {
        assert!(out.join(png).is_file(), "{png}");
    }
    // the closest pairs carry a label: AI-made media inside
    let label = ok(&["inspect", out.join("closest.png").to_str().unwrap()]);
    assert!(label.contains("compositeWithTrainedAlgorithmicMedia"), "{label}");

    // seeds it was not "trained" on: no copying
    let out2 = dir.path().join("fresh");
    let text = ok(&["audit", "--model", "default", "--data", &train, "--heldout", &held, "--samples", "20", "--first-seed", "5000", "--psi", "1", "--spaces", "pixels", "--out", out2.to_str().unwrap()]);
    assert!(!text.contains("Verdict: copying"), "{text}");
}

#[test]
fn audit_rejects_bad_inputs_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = dir.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let good = generate(dir.path(), "good", "0-3");
    let out = dir.path().join("out");
    let run = |data: &str, held: &str| fails(&["audit", "--model", "default", "--data", data, "--heldout", held, "--samples", "4", "--spaces", "pixels", "--out", out.to_str().unwrap()]);
    // an empty folder
    let empty = d("empty");
    let e = run(empty.to_str().unwrap(), &good);
    assert!(e.contains("holds no images"), "{e}");
    // a non-image with an image's name
    let fake = d("fake");
    std::fs::write(fake.join("face.png"), b"not a picture at all").unwrap();
    let e = run(fake.to_str().unwrap(), &good);
    assert!(e.contains("face.png"), "{e}");
    // a stray text file
    let stray = d("stray");
    std::fs::copy(Path::new(&good).join("seed0000.png"), stray.join("a.png")).unwrap();
    std::fs::write(stray.join("notes.txt"), b"x").unwrap();
    let e = run(&good, stray.to_str().unwrap());
    assert!(e.contains("notes.txt") && e.contains("not an image"), "{e}");
    // a truncated PNG
    let trunc = d("trunc");
    let bytes = std::fs::read(Path::new(&good).join("seed0000.png")).unwrap();
    std::fs::write(trunc.join("a.png"), &bytes).unwrap();
    std::fs::write(trunc.join("b.png"), &bytes[..bytes.len() / 3]).unwrap();
    let e = run(trunc.to_str().unwrap(), &good);
    assert!(e.contains("b.png"), "{e}");
    // a path that does not exist, one image instead of a folder
    let e = run(dir.path().join("nowhere").to_str().unwrap(), &good);
    assert!(e.contains("nowhere"), "{e}");
    let e = run(Path::new(&good).join("seed0001.png").to_str().unwrap(), &good);
    assert!(e.contains("one image"), "{e}");
    assert!(!out.join("report.md").exists(), "no report from a failed audit");
}

#[test]
fn generate_refuses_near_copies_of_an_indexed_training_set() {
    let device = burn::tensor::Device::flex();
    if limner_core::testing::fetched(limner_faces::recognition::FaceRecognitionNet::load_fetched(&device)).is_none()
        || limner_core::testing::fetched(limner_nets::InceptionV3::load_fetched(&device)).is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let train = generate(dir.path(), "train", "0-29");
    let held = generate(dir.path(), "held", "1000-1059");
    let index = dir.path().join("training-index.safetensors");
    let text = ok(&[
        "audit", "--model", "default", "--data", &train, "--heldout", &held, "--samples", "4", "--first-seed", "5000", "--psi", "1",
        "--spaces", "inception,identity", "--out", dir.path().join("report").to_str().unwrap(), "--index-out", index.to_str().unwrap(),
    ]);
    assert!(text.contains("training index:"), "{text}");
    let out = dir.path().join("out");
    let idx = index.to_str().unwrap();
    // seed 5 is training image seed0005.png itself: refused, nothing written, the pair shown
    let e = fails(&["generate", "--seeds", "5", "--psi", "1", "--out", out.to_str().unwrap(), "--copy-index", idx]);
    assert!(e.contains("near copy") && e.contains("seed0005.png") && e.contains("--allow-near-copy"), "{e}");
    assert!(!out.join("seed0005.png").exists());
    assert!(out.join("near-copy-seed0005.png").is_file());
    // allowed: written, and the label says so
    ok(&["generate", "--seeds", "5", "--psi", "1", "--out", out.to_str().unwrap(), "--copy-index", idx, "--allow-near-copy"]);
    let label = ok(&["inspect", out.join("seed0005.png").to_str().unwrap()]);
    assert!(label.contains("nearest training images: ") && label.contains("written anyway, the user allowed it"), "{label}");
    // a new face passes and carries its distances
    ok(&["generate", "--seeds", "7000", "--psi", "1", "--out", out.to_str().unwrap(), "--copy-index", idx]);
    let label = ok(&["inspect", out.join("seed7000.png").to_str().unwrap()]);
    assert!(label.contains("identity") && label.contains("near copy: no"), "{label}");
    // a bad index file is a clear error
    std::fs::write(dir.path().join("bad.safetensors"), b"x").unwrap();
    let e = fails(&["generate", "--seeds", "1", "--out", out.to_str().unwrap(), "--copy-index", dir.path().join("bad.safetensors").to_str().unwrap()]);
    assert!(e.contains("bad.safetensors"), "{e}");
}
