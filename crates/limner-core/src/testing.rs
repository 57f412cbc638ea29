//! The one rule for tests that need a fetched model (`limner models fetch`) or another
//! reference that is not in the repository: under CI (`CI=true`) a missing one fails the test;
//! elsewhere the test prints a note naming what to run and returns early.

use std::fmt::Display;

/// Whether this run is CI: the `CI` variable is `true` or `1` (CI services set `CI=true`; so
/// does whoever runs `.ci/run` as CI). The only place limner reads `CI`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A missing model or reference: panics under CI, else prints `note: skipped: …` and gives
/// `None` (the test returns).
pub fn missing<T>(what: impl Display) -> Option<T> {
    if in_ci() {
        panic!("CI=true and {what} (under CI every fetched model and reference must be there)");
    }
    eprintln!("note: skipped: {what}");
    None
}

/// `Some(value)` when loading the fetched model worked, else [`missing`] with the error (which
/// names the command to run).
pub fn fetched<T, E: Display>(loaded: Result<T, E>) -> Option<T> {
    match loaded {
        Ok(v) => Some(v),
        Err(e) => missing(format!("{e:#}")),
    }
}
