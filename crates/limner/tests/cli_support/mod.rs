//! What the CLI tests share: run the `limner` binary as a user does, and check that it
//! succeeds, or fails with a clear `error:` line and no panic.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn limner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limner")).args(args).output().expect("run limner")
}

pub fn ok(args: &[&str]) -> String {
    let o = limner(args);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "limner {args:?} failed:\n{text}");
    text
}

pub fn fails(args: &[&str]) -> String {
    let o = limner(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "limner {args:?} should have failed");
    assert!(err.starts_with("error: "), "unclear error for {args:?}: {err}");
    assert!(!err.contains("panicked"), "limner panicked: {err}");
    err
}
