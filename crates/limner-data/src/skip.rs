//! Why an input file did not make it into a dataset.

use std::fmt;

/// The reason one input file was skipped by [`crate::build_dataset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The file has zero bytes.
    Empty,
    /// The file name matched one of the `exclude` glob patterns.
    Excluded,
    /// The content is not a recognised image format.
    NotAnImage,
    /// A recognised image format that limner cannot decode (only JPEG, PNG and WebP are).
    Unsupported(String),
    /// The file ends before the image data does.
    Truncated,
    /// The decoder rejected the file.
    Corrupt(String),
    /// The file, or the image it declares, is over a limit (decompression-bomb guard).
    TooLarge(Oversize),
    /// The shorter side (after EXIF rotation) is below `min_size`.
    TooSmall { w: u32, h: u32 },
    /// Same or nearly the same picture as an earlier file (in sorted order), which was kept.
    Duplicate { of: String },
    /// The framer (`--align`: the face aligner) could not frame it, e.g. no face was found.
    NotFramed(String),
}

/// Which limit a [`SkipReason::TooLarge`] file broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// The file has more than `max` bytes.
    Bytes { len: u64, max: u64 },
    /// The image declares more than `max` pixels.
    Pixels { w: u32, h: u32, max: u64 },
}

impl SkipReason {
    /// A short, payload-free name of the reason, used to count skips per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::Empty => "empty",
            SkipReason::Excluded => "excluded",
            SkipReason::NotAnImage => "not an image",
            SkipReason::Unsupported(_) => "unsupported format",
            SkipReason::Truncated => "truncated",
            SkipReason::Corrupt(_) => "corrupt",
            SkipReason::TooLarge(_) => "too large",
            SkipReason::TooSmall { .. } => "too small",
            SkipReason::Duplicate { .. } => "duplicate",
            SkipReason::NotFramed(_) => "not framed (no face)",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Empty => write!(f, "empty file (0 bytes)"),
            SkipReason::Excluded => write!(f, "excluded by pattern"),
            SkipReason::NotAnImage => write!(f, "not an image"),
            SkipReason::Unsupported(format) => {
                write!(f, "unsupported format {format} (use JPEG, PNG or WebP)")
            }
            SkipReason::Truncated => write!(f, "truncated (file ends before the image data)"),
            SkipReason::Corrupt(msg) => write!(f, "corrupt: {msg}"),
            SkipReason::TooLarge(Oversize::Bytes { len, max }) => {
                write!(f, "too large: {len} bytes (limit {max})")
            }
            SkipReason::TooLarge(Oversize::Pixels { w, h, max }) => {
                write!(f, "too large: {w}x{h} pixels (limit {max} pixels)")
            }
            SkipReason::TooSmall { w, h } => write!(f, "too small: {w}x{h}"),
            SkipReason::Duplicate { of } => write!(f, "duplicate of {of}"),
            SkipReason::NotFramed(msg) => write!(f, "{msg}"),
        }
    }
}

/// Counts skips per [`SkipReason::kind`], most frequent first (ties by name).
pub(crate) fn count_by_kind(skipped: &[(String, SkipReason)]) -> Vec<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for (_, reason) in skipped {
        match counts.iter_mut().find(|(kind, _)| *kind == reason.kind()) {
            Some((_, n)) => *n += 1,
            None => counts.push((reason.kind(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
}
