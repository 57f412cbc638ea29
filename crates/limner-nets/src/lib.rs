//! Pretrained feature networks in burn, loaded from the files `limner models fetch` converts
//! (see `limner_models::fetch`), and the metrics built on them.
//!
//! - [`inception`]: InceptionV3 up to `mixed5` (ImageNet weights, from npm nsfwjs).
//! - [`fid`]: the FID-like score (Fréchet distance of pooled `mixed5` features) and KID.
//! - [`features`]: those features of a dataset, a folder, a generator or a model, and the
//!   score a training run tracks.
//! - [`perceptual`]: an LPIPS-style distance on InceptionV3 features, for distilling a generator.
//! - [`nsfw`]: nsfwjs' full classifier (InceptionV3 to `mixed10` + its 5-class head), which the
//!   studio screens uploads with.
//!
//! The image-optimisation tools built on InceptionV3 (Gatys style transfer, DeepDream) are in
//! `limner_art`, with the rest of style transfer.

pub mod features;
pub mod fid;
pub mod inception;
pub mod nsfw;
pub mod perceptual;

pub use inception::{InceptionV3, Layer, Tap, FEATURE_DIM, FEATURE_SIZE};
pub use nsfw::{NsfwClassifier, NsfwScores};
