//! Data side of limner: build a packed `.limner` dataset from a folder or zip of
//! portraits ([`build_dataset`]), read it back memory-mapped ([`PackedDataset`]),
//! and the image I/O helpers the rest of limner uses ([`imageio`]).
//!
//! The file format is described in `FORMAT.md` next to this crate's `Cargo.toml`.

mod build;
mod format;
mod options;
mod phash;
mod skip;
mod source;

pub mod imageio;

pub use build::{build_dataset, build_dataset_with, BuildReport, Framer};
pub use options::BuildOptions;
/// The decoded image type a [`Framer`] receives and returns.
pub use image::RgbImage;
pub use format::{DatasetMeta, PackedDataset, FORMAT_VERSION, MAGIC};
pub use skip::{Oversize, SkipReason};
