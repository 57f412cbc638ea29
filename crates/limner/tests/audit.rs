//! `limner audit` end to end: a real process, real files. A model audited against the very
//! images it made is a perfect copier and must be flagged; the same model's other seeds must
//! not be; bad inputs fail with an `error:` line naming the file.

mod cli_support;
use cli_support::{fails, ok};
use std::path::Path;

fn generate(dir: &Path, name: &str, seeds: &str) -> String {
    let out = dir.join(name);
    // psi 1 on the default's own training seeds: a few are near copies of its training images
    // (seed 38 is, in inception space), which the default's embedded index would refuse
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

/// `limner animate` checks every frame against the model's training index (the default's is
/// embedded): psi 1 seed 38 is a near copy of its training image `seed00000038.png`, so an
/// animation starting there is refused (nothing written, the frame shown beside the training
/// thumbnail) unless `--allow-near-copy`, which its label records; other seeds pass with the
/// closest distances per space in the label.
#[test]
fn animate_refuses_a_near_copy_frame_unless_allowed_and_records_it() {
    let device = burn::tensor::Device::flex();
    if limner_core::testing::fetched(limner_faces::recognition::FaceRecognitionNet::load_fetched(&device)).is_none()
        || limner_core::testing::fetched(limner_nets::InceptionV3::load_fetched(&device)).is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("a.gif");
    let g = gif.to_str().unwrap();
    let e = fails(&["animate", "--through", "38,100000", "--psi", "1", "--frames", "4", "--out", g]);
    assert!(e.contains("near copy") && e.contains("frame000") && e.contains("seed00000038") && e.contains("--allow-near-copy"), "{e}");
    assert!(!gif.exists() && !gif.with_extension("json").exists(), "a refused animation writes nothing");
    assert!(dir.path().join("near-copy-frame000.png").is_file());
    ok(&["animate", "--through", "38,100000", "--psi", "1", "--frames", "4", "--out", g, "--allow-near-copy"]);
    let label = ok(&["inspect", g]);
    assert!(label.contains("nearest training images: ") && label.contains("frame 0") && label.contains("written anyway, the user allowed it"), "{label}");
    let j: serde_json::Value = serde_json::from_str(&ok(&["inspect", "--json", g])).unwrap();
    let recipe: serde_json::Value = serde_json::from_str(j["label"]["recipe"].as_str().unwrap()).unwrap();
    let nt = &recipe["nearest_training"];
    assert_eq!(nt["frames_checked"], 4, "{nt}");
    assert_eq!(nt["near_copy_frames"][0], 0, "{nt}");
    // new faces: written, with the distances
    let gif2 = dir.path().join("b.gif");
    ok(&["animate", "--through", "100001,100002", "--psi", "0.7", "--frames", "4", "--out", gif2.to_str().unwrap()]);
    let label = ok(&["inspect", gif2.to_str().unwrap()]);
    assert!(label.contains("identity") && label.contains("near copy: no"), "{label}");
}

/// Writes `n` distinct 24×24 PNGs: coloured blobs on varied backgrounds (`offset` varies the set).
fn write_blobs(dir: &Path, n: usize, offset: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        let i = k + offset;
        let mut px = vec![0u8; 24 * 24 * 3];
        for y in 0..24 {
            for x in 0..24 {
                let inside = (x as i32 - 12 + (i % 5) as i32 - 2).pow(2) + (y as i32 - 12).pow(2) < 40 + (i * 7 % 30) as i32;
                let p = (y * 24 + x) * 3;
                let c = if inside { [(i * 37 % 256) as u8, (i * 91 % 256) as u8, (255 - i * 53 % 256) as u8] } else { [(x * 10) as u8, (40 + i * 3 % 50) as u8, (y * 10) as u8] };
                px[p..p + 3].copy_from_slice(&c);
            }
        }
        limner_data::imageio::save_png_rgb(&dir.join(format!("{i:03}.png")), 24, 24, &px).unwrap();
    }
}

fn sha256_file(p: &Path) -> String {
    limner_data::provenance::sha256_file(p).unwrap()
}

/// `limner train` and `limner models freeze` write MODEL_CARD.md and model-card.json beside the
/// model (dataset sha256, image count and bytes, weights bytes, their ratio, the training
/// command, the latest audit once one exists) and the training index for the copy check, which
/// `generate` then uses. A hand-written card keeps its text; the generated part is replaced.
#[test]
fn train_and_freeze_write_the_model_card_and_the_training_index() {
    let device = burn::tensor::Device::flex();
    let nets = limner_core::testing::fetched(limner_faces::recognition::FaceRecognitionNet::load_fetched(&device)).is_some()
        && limner_core::testing::fetched(limner_nets::InceptionV3::load_fetched(&device)).is_some();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &str| t.join(p).to_string_lossy().to_string();
    write_blobs(&t.join("photos"), 40, 0);
    write_blobs(&t.join("held"), 12, 100);
    ok(&["dataset", "build", &s("photos"), "--res", "16", "--out", &s("d.limner"), "--near-dup", "0"]);
    let small = ["--batch", "8", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "32"];
    let (d, r) = (s("d.limner"), s("run"));
    let mut args = vec!["train", "--data", &d, "--out", &r, "--kimg", "0.024", "--snap-kimg", "0.024"];
    args.extend(small);
    let text = ok(&args);
    assert!(text.contains("model card: ") && text.contains("% of the size of the 40 training images"), "{text}");
    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("run/model-card.json")).unwrap()).unwrap();
    assert_eq!(card["dataset"]["sha256"], sha256_file(&t.join("d.limner")), "{card}");
    assert_eq!(card["dataset"]["images"], 40);
    assert_eq!(card["dataset"]["pixel_bytes"], 40 * 16 * 16 * 3);
    let weights = std::fs::metadata(t.join("run/generator.safetensors")).unwrap().len();
    assert_eq!(card["weights_bytes"], weights);
    assert!((card["ratio"].as_f64().unwrap() - weights as f64 / (40.0 * 16.0 * 16.0 * 3.0)).abs() < 1e-9, "{card}");
    assert!(card["training_command"].as_str().unwrap().starts_with("limner train --data"), "{card}");
    assert!(card["audit"].is_null(), "no audit yet: {card}");
    let md = std::fs::read_to_string(t.join("run/MODEL_CARD.md")).unwrap();
    assert!(md.contains("of the size of the images it learned from") && md.contains(card["dataset"]["sha256"].as_str().unwrap()), "{md}");
    if nets {
        assert_eq!(card["training_index"]["images"], 40, "{card}");
        assert!(card["training_index"]["calibration"].as_str().unwrap().starts_with("leave-one-out"), "{card}");
        assert!(t.join("run/training-index.safetensors").is_file());
    }

    // an audit of the run, then a freeze: the frozen model's card shows the audit's numbers,
    // keeps the hand-written text, and its index is the run's
    ok(&["audit", "--model", &r, "--data", &d, "--heldout", &s("held"), "--samples", "8", "--spaces", "pixels", "--out", &s("run/audit")]);
    std::fs::create_dir_all(t.join("frozen")).unwrap();
    std::fs::write(t.join("frozen/MODEL_CARD.md"), "# blobs\n\nHand-written notes stay.\n").unwrap();
    for _ in 0..2 {
        let text = ok(&["models", "freeze", "--run", &r, "--out", &s("frozen")]);
        assert!(text.contains("model card: ") && text.contains("kept its discriminator"), "{text}");
    }
    // the run's D is kept beside G (half precision), and a transfer run can start from both
    let dfile = s("frozen/discriminator.safetensors");
    let text = ok(&["train", "--data", &d, "--out", &s("again"), "--init", &s("frozen/generator.safetensors"), "--init-discriminator", &dfile, "--kimg", "0.008", "--snap-kimg", "0.008", "--batch", "8"]);
    assert!(text.contains("D starts from") && !text.contains("random weights"), "{text}");
    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("frozen/model-card.json")).unwrap()).unwrap();
    assert_eq!(card["weights_bytes"], std::fs::metadata(t.join("frozen/generator.safetensors")).unwrap().len());
    assert!(card["weights_bytes"].as_u64().unwrap() < weights, "half precision: {card}");
    assert_eq!(card["audit"]["samples"], 8, "{card}");
    assert_eq!(card["audit"]["spaces"][0]["space"], "pixels", "{card}");
    let md = std::fs::read_to_string(t.join("frozen/MODEL_CARD.md")).unwrap();
    assert!(md.starts_with("# blobs\n\nHand-written notes stay."), "{md}");
    assert_eq!(md.matches("limner model card: generated").count(), 1, "one generated part after two freezes: {md}");
    assert!(md.contains("| pixels | "), "{md}");
    if nets {
        assert_eq!(std::fs::read(t.join("frozen/training-index.safetensors")).unwrap(), std::fs::read(t.join("run/training-index.safetensors")).unwrap());
        // the frozen model's exports are checked against it
        ok(&["generate", "--model", &s("frozen/generator.safetensors"), "--seeds", "0", "--out", &s("g"), "--allow-near-copy"]);
        let label = ok(&["inspect", &s("g/seed0000.png")]);
        assert!(label.contains("nearest training images: ") && label.contains("identity"), "{label}");
    }

    // a model trained elsewhere (as models/default was): `models card` writes its card from the
    // dataset and the command given, keeps the hand-written text, and links an audit beside it
    // relative to the card
    let e = t.join("elsewhere");
    std::fs::create_dir_all(e.join("audit")).unwrap();
    std::fs::copy(t.join("frozen/generator.safetensors"), e.join("generator.safetensors")).unwrap();
    std::fs::copy(t.join("run/audit/report.json"), e.join("audit/report.json")).unwrap();
    std::fs::write(e.join("MODEL_CARD.md"), "# elsewhere\n\nTrained on another machine.\n").unwrap();
    let text = ok(&["models", "card", "--dir", &s("elsewhere"), "--data", &d, "--command", "limner train --data d.limner --kimg 0.024", "--kimg", "0.024"]);
    assert!(text.contains("% of the size of the 40 training images"), "{text}");
    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(e.join("model-card.json")).unwrap()).unwrap();
    assert_eq!(card["training_command"], "limner train --data d.limner --kimg 0.024", "{card}");
    assert_eq!(card["dataset"]["sha256"], sha256_file(&t.join("d.limner")), "{card}");
    assert_eq!(card["weights_sha256"], sha256_file(&e.join("generator.safetensors")), "{card}");
    assert_eq!(card["audit"]["report"], "audit/report.json", "{card}");
    let md = std::fs::read_to_string(e.join("MODEL_CARD.md")).unwrap();
    assert!(md.starts_with("# elsewhere\n\nTrained on another machine.") && md.contains("(audit/report.json)"), "{md}");
    if nets {
        assert_eq!(card["training_index"]["images"], 40, "{card}");
    }
    let missing = fails(&["models", "card", "--dir", &s("elsewhere"), "--data", &s("nowhere.limner"), "--command", "x"]);
    assert!(missing.contains("nowhere.limner") && missing.contains("is not here"), "{missing}");
}
