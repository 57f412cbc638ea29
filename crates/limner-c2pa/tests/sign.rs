//! Signed C2PA manifests: sign a labelled limner image with a throw-away certificate, read it back
//! with our reader and with an independent one (PyPI `c2pa-python`, the CAI's own bindings), and
//! show that editing one pixel breaks it.

use limner_c2pa::{read, sign, throwaway, Claim, Credentials, State};
use limner_data::provenance::{embed, read_xmp, Label, Provenance};
use std::io::{Read, Write};
use std::path::PathBuf;

/// A small labelled limner PNG (a gradient face stand-in), as `limner generate` writes them.
fn labelled_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 128]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let prov = Provenance::generated().with_recipe(r#"{"model":"default","seed":7,"psi":0.7}"#).with_creator(Some("Ada Curator".into())).with_model_sha256(Some("ab".repeat(32)));
    embed(&png, &prov).unwrap()
}

fn claim() -> Claim {
    Claim {
        title: "seed0007.png".into(),
        composite: false,
        software: "limner test".into(),
        creator: Some("Ada Curator".into()),
        recipe: Some(r#"{"model":"default","seed":7,"psi":0.7}"#.into()),
        model_sha256: Some("ab".repeat(32)),
    }
}

/// Changes one pixel of a PNG and keeps every other chunk (the C2PA store included): inflates
/// the image data, flips one byte of pixel 0's red channel, deflates, rewrites the IDAT chunks
/// as one with a fresh CRC.
fn edit_one_pixel(png: &[u8]) -> Vec<u8> {
    let mut chunks = Vec::new();
    let mut i = 8;
    while i + 12 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        chunks.push((png[i + 4..i + 8].to_vec(), png[i + 8..i + 8 + len].to_vec()));
        i += 12 + len;
    }
    let idat: Vec<u8> = chunks.iter().filter(|c| c.0 == b"IDAT").flat_map(|c| c.1.clone()).collect();
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    raw[1] ^= 0x01; // row 0's filter byte is raw[0]; raw[1] is pixel (0,0)'s red (or its filtered form)
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).unwrap();
    let idat = z.finish().unwrap();
    let mut out = png[..8].to_vec();
    let mut wrote_idat = false;
    for (ty, data) in &chunks {
        let data = if ty == b"IDAT" {
            if wrote_idat {
                continue;
            }
            wrote_idat = true;
            &idat
        } else {
            data
        };
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(ty);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(ty);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}

#[test]
fn signed_image_reads_valid_trusted_with_its_root_and_invalid_after_one_pixel() {
    let t = throwaway("limner test signer").unwrap();
    let png = labelled_png();
    let signed = sign(&png, &claim(), &t.credentials).unwrap();
    assert!(signed.len() > png.len() + 1000, "a manifest store was added");

    // the pixels and the XMP label are kept
    let a = image::load_from_memory(&png).unwrap().to_rgb8();
    let b = image::load_from_memory(&signed).unwrap().to_rgb8();
    assert_eq!(a.as_raw(), b.as_raw(), "signing must not change a pixel");
    let label = Label::parse(&read_xmp(&signed).unwrap().expect("XMP kept"));
    assert!(label.is_limner());

    // an unknown signer: valid, not trusted
    let v = read(&signed, None).unwrap().expect("a manifest");
    assert_eq!(v.state, State::Valid, "{v:?}");
    assert!(v.failures.iter().all(|f| f == "signingCredential.untrusted"), "only the throw-away signer is unknown: {:?}", v.failures);
    assert_eq!(v.digital_source_type.as_deref(), Some("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"));
    assert_eq!(v.author.as_deref(), Some("Ada Curator"));
    assert_eq!(v.recipe.as_ref().unwrap()["recipe"]["seed"], 7);
    assert_eq!(v.recipe.as_ref().unwrap()["model_sha256"], "ab".repeat(32));
    // with its root as a trust anchor: trusted
    assert_eq!(read(&signed, Some(&t.ca_pem)).unwrap().unwrap().state, State::Trusted);

    // one pixel changed: invalid, and the reader says why
    let edited = edit_one_pixel(&signed);
    assert_ne!(image::load_from_memory(&edited).unwrap().to_rgb8().as_raw(), b.as_raw(), "the edit changed a pixel");
    let v = read(&edited, None).unwrap().expect("the manifest is still there");
    assert_eq!(v.state, State::Invalid);
    assert!(v.failures.iter().any(|f| f.contains("dataHash.mismatch")), "{:?}", v.failures);

    // an unsigned image has no manifest
    assert!(read(&png, None).unwrap().is_none());
}

#[test]
fn jpeg_and_gif_are_signed_too() {
    let t = throwaway("limner test signer").unwrap();
    let img = image::RgbImage::from_fn(24, 24, |x, y| image::Rgb([(x * 10) as u8, (y * 10) as u8, 60]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    // a 1x1 GIF89a (limner's animations are GIFs; the `image` build here has no GIF encoder)
    let gif: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    for (name, bytes) in [("jpeg", jpeg.as_slice()), ("gif", gif)] {
        let labelled = embed(bytes, &Provenance::generated()).unwrap();
        let signed = sign(&labelled, &claim(), &t.credentials).unwrap();
        let v = read(&signed, Some(&t.ca_pem)).unwrap().unwrap_or_else(|| panic!("{name}: no manifest"));
        assert_eq!(v.state, State::Trusted, "{name}: {v:?}");
        assert!(read_xmp(&signed).unwrap().is_some(), "{name}: XMP kept");
    }
}

#[test]
fn bad_credentials_and_inputs_get_clear_errors() {
    let t = throwaway("x").unwrap();
    let err = sign(b"not an image at all", &claim(), &t.credentials).unwrap_err().to_string();
    assert!(err.contains("not a PNG, JPEG, GIF or WebP"), "{err}");
    let err = Credentials::from_pem(b"garbage".to_vec(), t.credentials.private_key_pem.clone()).unwrap_err().to_string();
    assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
    let sec1 = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n".to_vec();
    let err = Credentials::from_pem(t.credentials.cert_chain_pem.clone(), sec1).unwrap_err().to_string();
    assert!(err.contains("PKCS#8"), "{err}");
    // a key that does not match the certificate is refused when signing, not silently used
    let other = throwaway("y").unwrap();
    let mismatched = Credentials::from_pem(t.credentials.cert_chain_pem.clone(), other.credentials.private_key_pem.clone()).unwrap();
    let signed = sign(&labelled_png(), &claim(), &mismatched);
    match signed {
        Err(_) => {}
        Ok(bytes) => assert_ne!(read(&bytes, None).unwrap().unwrap().state, State::Valid, "a wrong key must not give a valid signature"),
    }
    // a leaf that is its own issuer (self-signed) is refused by C2PA's certificate profile
    let err = Credentials::from_pem(t.ca_pem.clone().into_bytes(), t.credentials.private_key_pem.clone()).and_then(|c| sign(&labelled_png(), &claim(), &c));
    if let Ok(bytes) = err {
        assert_ne!(read(&bytes, None).unwrap().unwrap().state, State::Valid, "a CA certificate as signer must not read valid");
    }
}

/// The CAI's own Python bindings (`c2pa-python` from PyPI, a separate build of the SDK) in
/// `$LIMNER_C2PA_VENV` (default `~/.cache/limner-c2pa-venv`; `.ci/run` makes it).
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("LIMNER_C2PA_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/limner-c2pa-venv"));
    let py = venv.join("bin/python");
    let ok = std::process::Command::new(&py).args(["-c", "import c2pa"]).output().is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        limner_core::testing::missing(format!("c2pa-python is not installed in {} (pip install c2pa-python==0.38.1 there)", venv.display()))
    }
}

const PY_READ: &str = r#"
import json, sys, c2pa
with open(sys.argv[1], "rb") as f:
    reader = c2pa.Reader("image/png", f)
    print(reader.json())
"#;

#[test]
fn an_independent_reader_agrees() {
    let Some(py) = python() else { return };
    let t = throwaway("limner test signer").unwrap();
    let signed = sign(&labelled_png(), &claim(), &t.credentials).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("signed.png");
    let bad = dir.path().join("edited.png");
    std::fs::write(&good, &signed).unwrap();
    std::fs::write(&bad, edit_one_pixel(&signed)).unwrap();
    let run = |p: &PathBuf| -> serde_json::Value {
        let out = std::process::Command::new(&py).args(["-c", PY_READ]).arg(p).output().unwrap();
        assert!(out.status.success(), "c2pa-python failed on {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("c2pa-python printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    };
    let codes = |report: &serde_json::Value| -> Vec<String> {
        let mut v = Vec::new();
        for key in ["validation_status"] {
            if let Some(a) = report[key].as_array() {
                v.extend(a.iter().filter_map(|s| s["code"].as_str().map(str::to_string)));
            }
        }
        if let Some(a) = report["validation_results"]["activeManifest"]["failure"].as_array() {
            v.extend(a.iter().filter_map(|s| s["code"].as_str().map(str::to_string)));
        }
        v
    };
    let g = run(&good);
    let label = g["active_manifest"].as_str().expect("an active manifest");
    let m = &g["manifests"][label];
    let text = m.to_string();
    assert!(text.contains("trainedAlgorithmicMedia"), "the AI-made source type: {text}");
    assert!(text.contains("dev.limner.recipe"), "limner's recipe assertion: {text}");
    assert!(text.contains("Ada Curator"), "the author: {text}");
    let good_codes = codes(&g);
    assert!(good_codes.iter().all(|c| c == "signingCredential.untrusted"), "only the throw-away signer is unknown to it: {good_codes:?}");
    let b = run(&bad);
    let bad_codes = codes(&b);
    assert!(bad_codes.iter().any(|c| c.contains("dataHash.mismatch")), "one changed pixel must break it: {bad_codes:?}");
}
