//! Pretrained feature networks in burn, loaded from the files `limner models fetch` converts
//! (see `limner_models::fetch`), and the metrics built on them.
//!
//! - [`inception`]: InceptionV3 up to `mixed5` (ImageNet weights, from npm nsfwjs).
//! - [`fid`]: the FID-like score (Fréchet distance of pooled `mixed5` features) and KID.
//! - [`gatys`]: neural style transfer by image optimisation (Gatys et al. 2016) on InceptionV3.
//! - [`dream`]: DeepDream (Mordvintsev et al. 2015): octaves of gradient ascent on a layer's activations.
//! - [`perceptual`]: an LPIPS-style distance on InceptionV3 features, for distilling a generator.
//! - [`picture`]: the planar RGB image type these two take and return.

pub mod dream;
pub mod fid;
pub mod gatys;
pub mod inception;
pub mod perceptual;
pub mod picture;

pub use inception::{InceptionV3, Layer, Tap, FEATURE_DIM, FEATURE_SIZE};
pub use picture::Picture;
