//! Signed C2PA manifests from the command line: a throw-away certificate, every written image
//! signed when the certificate is set in the environment, `limner sign` for images already made,
//! and `limner inspect` reading the signature (trusted with `--trust`, invalid after an edit).
#![cfg(feature = "c2pa")]

mod cli_support;
use cli_support::{fails, ok};
use std::path::Path;
use std::process::Command;

fn run_env(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_limner"));
    c.args(args).env_remove("LIMNER_C2PA_CERT").env_remove("LIMNER_C2PA_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn inspect(path: &Path, trust: Option<&Path>) -> serde_json::Value {
    let mut args = vec!["inspect", "--json", path.to_str().unwrap()];
    if let Some(t) = trust {
        args.extend(["--trust", t.to_str().unwrap()]);
    }
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn every_image_is_signed_when_a_certificate_is_set_and_inspect_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let text = ok(&["c2pa-cert", "--out", certs.to_str().unwrap()]);
    assert!(text.contains("THROW-AWAY"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(certs.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let err = fails(&["c2pa-cert", "--out", certs.to_str().unwrap()]);
    assert!(err.contains("never overwritten"), "{err}");

    // generate with the certificate in the environment: signed
    let faces = dir.path().join("faces");
    let env = [("LIMNER_C2PA_CERT", certs.join("cert.pem")), ("LIMNER_C2PA_KEY", certs.join("key.pem"))];
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let o = run_env(&["--creator", "Ada", "generate", "--seeds", "4", "--out", faces.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let face = faces.join("seed0004.png");
    let j = inspect(&face, None);
    assert_eq!(j["c2pa"]["state"], "valid", "{j}");
    assert_eq!(j["c2pa"]["author"], "Ada");
    assert_eq!(j["c2pa"]["digital_source_type"], "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
    assert_eq!(j["limner_label"], true, "the XMP label is kept beside the signature");
    assert_eq!(inspect(&face, Some(&certs.join("ca.pem")))["c2pa"]["state"], "trusted");

    // the same seed unsigned has the same pixels
    let plain = dir.path().join("plain");
    let o = run_env(&["--creator", "Ada", "generate", "--seeds", "4", "--out", plain.to_str().unwrap()], &[]);
    assert!(o.status.success());
    let a = image::open(&face).unwrap().to_rgb8();
    let b = image::open(plain.join("seed0004.png")).unwrap().to_rgb8();
    assert_eq!(a.as_raw(), b.as_raw(), "signing changed pixels");
    assert!(inspect(&plain.join("seed0004.png"), None)["c2pa"].is_null());

    // `limner sign` signs an image made earlier
    let signed = dir.path().join("signed.png");
    ok(&["sign", plain.join("seed0004.png").to_str().unwrap(), "--cert", certs.join("cert.pem").to_str().unwrap(), "--key", certs.join("key.pem").to_str().unwrap(), "--out", signed.to_str().unwrap()]);
    assert_eq!(inspect(&signed, Some(&certs.join("ca.pem")))["c2pa"]["state"], "trusted");

    // re-encoding the pixels (one changed) under the old manifest: invalid. Here: flip one byte
    // inside the image data region, which any C2PA reader must catch by its hash.
    let mut bytes = std::fs::read(&signed).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    bytes[idat + 10] ^= 0x40;
    let tampered = dir.path().join("tampered.png");
    std::fs::write(&tampered, &bytes).unwrap();
    let j = inspect(&tampered, None);
    assert_eq!(j["c2pa"]["state"], "invalid", "{j}");

    // bad input: only one of the two variables, a non-limner image, a missing key
    let o = run_env(&["generate", "--seeds", "1", "--out", dir.path().join("x").to_str().unwrap()], &env[..1]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("LIMNER_C2PA_KEY is not"), "{}", String::from_utf8_lossy(&o.stderr));
    let foreign = dir.path().join("foreign.png");
    image::RgbImage::new(8, 8).save(&foreign).unwrap();
    let err = fails(&["sign", foreign.to_str().unwrap(), "--cert", certs.join("cert.pem").to_str().unwrap(), "--key", certs.join("key.pem").to_str().unwrap()]);
    assert!(err.contains("no limner label"), "{err}");
    let err = fails(&["sign", signed.to_str().unwrap(), "--cert", certs.join("cert.pem").to_str().unwrap(), "--key", dir.path().join("nope.pem").to_str().unwrap()]);
    assert!(err.contains("nope.pem"), "{err}");
}
