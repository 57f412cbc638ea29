//! limner-edit: latent-space editing on every limner generator.
//!
//! - [`model`]: the one generator abstraction ([`Model`]): `z → w`, per-layer `w+`
//!   ([`WPlus`]), synthesis from `w+` with seeded noise, layer groups, size, identity; [`open`]
//!   opens any model by name (`default`, `random-face`, a run folder, a file);
//! - [`directions`]: named sliders (gender, age, smile) fitted InterFaceGAN-style;
//! - [`prompt`]: steering to "a smiling old man" with the named sliders;
//! - [`refine`]: a steered face's `w+` refined by gradient (face-api's age against its
//!   identity distance to the unsteered face);
//! - [`sliders`]: one slider type for named and unlabelled (SeFa, GANSpace) directions, one
//!   `--slider` syntax;
//! - [`recipe`]: the small versioned JSON that makes any image again;
//! - [`breed`]: crossbreeding faces by layer group (style mixing) with seeded mutation;
//! - [`project`]: a photo's face aligned and inverted into `w+` (perceptual + L1 + regulariser);
//! - [`encoder`]: a small conv net trained on the model's own renders that guesses a face's
//!   `w` in one pass, the projection's start;
//! - [`animate`]: morphs through kept faces and slider sweeps, as GIF or APNG.

pub mod animate;
pub mod breed;
pub mod directions;
pub mod encoder;
pub mod model;
pub mod project;
pub mod prompt;
pub mod recipe;
pub mod refine;
pub mod sliders;

pub use model::{open, LayerGroup, Model, ModelId, WPlus};
