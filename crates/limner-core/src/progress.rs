//! The one progress-bar style of limner's long jobs (indicatif).

use indicatif::{ProgressBar, ProgressStyle};

/// The default layout: `what pos/len [=====>    ] elapsed eta`.
pub const DEFAULT_TEMPLATE: &str = "{msg} {pos}/{len} [{bar:40}] {elapsed_precise} eta {eta}";

/// A bar of `len` steps labelled `what` (len 0: set it later with `set_length`).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = bar_with_template(len, DEFAULT_TEMPLATE);
    pb.set_message(what.to_string());
    pb
}

/// A bar with its own indicatif template (same bar characters), for jobs whose message
/// changes as they go (a loss, an octave).
pub fn bar_with_template(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template(template).expect("valid progress template").progress_chars("=> "));
    pb
}
