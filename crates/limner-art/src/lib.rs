//! limner-art: style transfer for limner's portraits.
//!
//! * [`fast`]: feed-forward style transfer with pretrained ONNX networks (Magenta's arbitrary
//!   style transfer and a 26-style network) run by tract, in pure Rust. `limner style --method fast`.
//! * [`gatys`]: style transfer by image optimisation (Gatys et al. 2016), differentiating
//!   through limner-nets' InceptionV3. `limner gatys`, `limner style --method gatys`.
//! * [`dream`]: DeepDream (Mordvintsev et al. 2015): octaves of gradient ascent on a layer's
//!   activations. `limner dream`.
//! * [`step`]: one art step (style or dream) on a kept face, as the studio applies and records it.
//!
//! Images: [`Image`] (interleaved float RGB in [0, 1], loaded through limner-data's safe
//! decoder) for the networks run by tract; [`Picture`] (planar, with the tensor conversions and
//! colour-space helpers) for the image-optimisation tools.

pub mod dream;
pub mod fast;
pub mod gatys;
pub mod image;
pub mod picture;
pub mod step;

pub use fast::{stylize, FastOptions, Style};
pub use image::Image;
pub use picture::Picture;
