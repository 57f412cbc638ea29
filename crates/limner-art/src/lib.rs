//! limner-art: style transfer for limner's portraits.
//!
//! * [`fast`]: feed-forward style transfer with pretrained ONNX networks (Magenta's arbitrary
//!   style transfer and a 26-style network) run by tract, in pure Rust. `limner style --method fast`.
//! * Optimisation-based (Gatys et al.) style transfer and DeepDream live in `limner_nets`
//!   (they differentiate through its InceptionV3); `limner style --method gatys` dispatches there.
//!
//! Images are [`Image`]: float RGB in [0, 1], loaded through limner-data's safe decoder.

pub mod fast;
pub mod image;

pub use fast::{stylize, FastOptions, Style};
pub use image::Image;
