//! Proof that the audit sees copies (issue 18 §2): a fake "model" that returns training images
//! with light noise, crops and colour shifts is flagged; one that returns images the training
//! set never held passes, near the 1 % calibration rate. The faces are the embedded default
//! model's (no download); the inception and identity spaces need `limner models fetch`.

use burn::tensor::Device;
use limner_audit::source::{Folder, InMemory, ModelSamples};
use limner_audit::{audit, AuditOptions, ImageSet, Rgb8, Space};
use rand::{Rng, SeedableRng};

fn faces(m: &ModelSamples, first: u64, n: usize) -> Vec<Rgb8> {
    let set = ModelSamples { model: limner_edit::model::open("default", None, &m.model.device()).unwrap(), first_seed: first, count: n, psi: 1.0, noise: 0.0 };
    set.load(&(0..n).collect::<Vec<_>>()).unwrap()
}

/// A training image disguised: a crop of 0–2 px per side (up to 3 % of a 64 px side) resized back, a colour cast (per
/// channel gain and offset) and ±6 levels of noise.
fn disguise(img: &Rgb8, rng: &mut impl Rng) -> Rgb8 {
    let s = img.size;
    let (l, t, r, b) = (rng.random_range(0..3), rng.random_range(0..3), rng.random_range(0..3), rng.random_range(0..3));
    let crop = limner_faces::Image::from_rgb8(s, s, &img.data).crop(l as f32, t as f32, (s - l - r) as f32, (s - t - b) as f32).unwrap().resize_bilinear(s, s);
    let gain = [rng.random_range(0.9..1.1f32), rng.random_range(0.9..1.1), rng.random_range(0.9..1.1)];
    let offset = [rng.random_range(-12.0..12.0f32), rng.random_range(-12.0..12.0), rng.random_range(-12.0..12.0)];
    let data = crop.data.iter().enumerate().map(|(i, &v)| (v * gain[i % 3] + offset[i % 3] + rng.random_range(-6.0..6.0f32)).round().clamp(0.0, 255.0) as u8).collect();
    Rgb8::new(s, data)
}

fn spaces() -> Vec<Space> {
    let device = Device::flex();
    let mut s = vec![Space::Pixels];
    if limner_core::testing::fetched(limner_nets::InceptionV3::load_fetched(&device)).is_some() {
        s.push(Space::Inception);
    }
    if limner_core::testing::fetched(limner_faces::recognition::FaceRecognitionNet::load_fetched(&device)).is_some() {
        s.push(Space::Identity);
    }
    s
}

#[test]
fn copies_are_flagged_and_new_faces_pass() {
    let device = Device::flex();
    let m = ModelSamples { model: limner_edit::model::open("default", None, &device).unwrap(), first_seed: 0, count: 0, psi: 1.0, noise: 0.0 };
    let train = InMemory { name: "train (default seeds 0–39)".into(), images: faces(&m, 0, 40) };
    let heldout = InMemory { name: "held-out (default seeds 1000–1099)".into(), images: faces(&m, 1000, 100) };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let copier = InMemory { name: "copier".into(), images: train.images.iter().map(|i| disguise(i, &mut rng)).collect() };
    let honest = InMemory { name: "honest (default seeds 5000–5039)".into(), images: faces(&m, 5000, 40) };
    let o = AuditOptions { spaces: spaces(), ..Default::default() };

    let c = audit(&train, &heldout, &copier, &o, &device, &mut |_, _, _| {}).unwrap();
    let best = c.spaces.iter().map(|s| s.copy_rate).fold(0.0, f64::max);
    for s in &c.spaces {
        eprintln!("copier {}: rate {:.3} threshold {:.4} median {:.4} C_T {:.2}", s.space.name(), s.copy_rate, s.threshold, s.median_sample, s.data_copying.c_t);
    }
    assert!(best >= 0.95, "the copier must be flagged in at least one space: {best}");
    let px = c.space(Space::Pixels).unwrap();
    assert!(px.copy_rate >= 0.9, "pixels see disguised copies: {}", px.copy_rate);
    assert!(px.data_copying.c_t < -2.0, "C_T sees copying: {:?}", px.data_copying);
    assert!(limner_audit::report::verdict(&c).contains("copying."), "{}", limner_audit::report::verdict(&c));
    // the closest pairs name the training image each copy was made from
    assert!(c.closest.iter().all(|p| p.sample == p.train), "{:?}", c.closest);

    let h = audit(&train, &heldout, &honest, &o, &device, &mut |_, _, _| {}).unwrap();
    for s in &h.spaces {
        eprintln!("honest {}: rate {:.3} threshold {:.4} median {:.4} C_T {:.2}", s.space.name(), s.copy_rate, s.threshold, s.median_sample, s.data_copying.c_t);
        // 40 samples against a 1 % threshold from 100 held-out images: 0–4 may fall below by chance
        assert!(s.copy_rate <= 0.1, "{}: new faces pass, near the calibration rate: {}", s.space.name(), s.copy_rate);
        assert!((s.heldout_rate - 0.01).abs() < 0.011, "calibration rate {}", s.heldout_rate);
    }
    assert!(limner_audit::report::verdict(&h).contains("no sign of copying"));

    // the report is written, each file there and readable
    let dir = tempfile::tempdir().unwrap();
    let files = limner_audit::report::write_report(dir.path(), &c, &copier, &train, "limner audit (test)").unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("Verdict: copying") && md.contains("limner audit (test)"), "{md}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(json["n_samples"], 40);
    for png in [&files.histograms, &files.closest] {
        let (w, h, _) = limner_data::imageio::load_image_rgb(png, 1 << 24).unwrap();
        assert!(w > 100 && h > 100, "{}", png.display());
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // an empty folder
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = format!("{:#}", Folder::open(&empty).err().unwrap());
    assert!(e.contains("holds no images") && e.contains("empty"), "{e}");
    // a file that is not an image, with an image's name
    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("a.png"), b"this is not a picture").unwrap();
    let e = format!("{:#}", Folder::open(&fake).err().unwrap());
    assert!(e.contains("a.png"), "{e}");
    // a stray non-image file in a folder of images
    let stray = dir.path().join("stray");
    std::fs::create_dir(&stray).unwrap();
    let ok = Rgb8::new(16, vec![128; 16 * 16 * 3]);
    limner_data::imageio::save_png_rgb(&stray.join("a.png"), 16, 16, &ok.data).unwrap();
    std::fs::write(stray.join("notes.txt"), b"hello").unwrap();
    let e = format!("{:#}", Folder::open(&stray).err().unwrap());
    assert!(e.contains("notes.txt") && e.contains("not an image"), "{e}");
    // a truncated PNG after a good one: the folder opens, loading the bad file names it
    std::fs::remove_file(stray.join("notes.txt")).unwrap();
    let bytes = std::fs::read(stray.join("a.png")).unwrap();
    std::fs::write(stray.join("b.png"), &bytes[..bytes.len() / 2]).unwrap();
    let f = Folder::open(&stray).unwrap();
    let e = format!("{:#}", f.load(&[0, 1]).err().unwrap());
    assert!(e.contains("b.png"), "{e}");
    // a non-square image
    let wide = dir.path().join("wide");
    std::fs::create_dir(&wide).unwrap();
    limner_data::imageio::save_png_rgb(&wide.join("w.png"), 20, 10, &[0; 600]).unwrap();
    let e = format!("{:#}", Folder::open(&wide).err().unwrap());
    assert!(e.contains("20×10"), "{e}");
    // too few images
    let one = InMemory { name: "one".into(), images: vec![ok.clone()] };
    let two = InMemory { name: "two".into(), images: vec![ok.clone(), ok] };
    let e = audit(&one, &two, &two, &AuditOptions { spaces: vec![Space::Pixels], ..Default::default() }, &Device::flex(), &mut |_, _, _| {}).err().unwrap();
    assert!(format!("{e}").contains("at least 2"), "{e}");
}

#[test]
fn a_training_index_catches_copies_at_export_and_round_trips() {
    let device = Device::flex();
    let spaces: Vec<Space> = spaces().into_iter().filter(|&s| s != Space::Pixels).collect();
    if spaces.is_empty() {
        return; // the note was printed by `fetched` (under CI it failed)
    }
    let m = ModelSamples { model: limner_edit::model::open("default", None, &device).unwrap(), first_seed: 0, count: 0, psi: 1.0, noise: 0.0 };
    let train = InMemory { name: "train".into(), images: faces(&m, 0, 40) };
    let heldout = InMemory { name: "held".into(), images: faces(&m, 1000, 100) };
    let samples = InMemory { name: "s".into(), images: faces(&m, 5000, 4) };
    let o = AuditOptions { spaces: spaces.clone(), ..Default::default() };
    let (_, emb) = limner_audit::audit::audit_full(&train, &heldout, &samples, &o, &device, &mut |_, _, _| {}).unwrap();
    let index = limner_audit::index::TrainingIndex::from_embedded(&emb, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("training-index.safetensors");
    index.save(&path).unwrap();
    let back = limner_audit::index::TrainingIndex::load(&path).unwrap();
    assert_eq!(back.labels, index.labels);
    assert_eq!(back.space_list(), index.space_list());
    let e = back.embedder(&device).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let copy = disguise(&train.images[7], &mut rng);
    let new_faces = faces(&m, 7000, 10);
    let checks = back.check(&e, &[vec![copy], new_faces].concat(), &device).unwrap();
    assert!(checks[0].near_copy, "{:?}", checks[0]);
    assert_eq!(checks[0].closest().unwrap().nearest, 7, "{:?}", checks[0]);
    assert!(checks[0].explain().contains("train #7"), "{}", checks[0].explain());
    let refused = checks[1..].iter().filter(|c| c.near_copy).count();
    assert!(refused <= 1, "new faces pass: {refused} of 10 refused");
    // the thumbnail of the nearest training image looks like it (mean colour within a few levels)
    let t = back.thumbnail(7).unwrap();
    let small = train.images[7].resized(limner_audit::index::THUMB);
    let diff: f64 = t.data.iter().zip(&small.data).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>() / t.data.len() as f64;
    assert!(diff < 8.0, "thumbnail differs by {diff} levels on average");
    // a file that is not an index
    std::fs::write(dir.path().join("bad.safetensors"), b"nope").unwrap();
    let err = format!("{:#}", limner_audit::index::TrainingIndex::load(&dir.path().join("bad.safetensors")).err().unwrap());
    assert!(err.contains("bad.safetensors") && err.contains("not a limner training index"), "{err}");
}
