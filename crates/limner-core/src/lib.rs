//! limner-core: the small common base every limner crate can use without depending on a model.
//!
//! - [`weights`]: host tensors ([`HostTensor`], [`StateDict`]) and safetensors read/write in
//!   f32 or f16 ([`Precision`]);
//! - [`tensor`]: host data ↔ device tensors ([`tensor_from`], [`to_vec`]);
//! - [`fs`]: atomic file writes ([`write_atomic`], [`write_atomic_with`]);
//! - [`seed`]: a seed's latent and noise stream, the same for every generator;
//! - [`perceptual`]: the [`PerceptualDistance`] trait a trainer uses and a network implements;
//! - [`progress`]: the one progress-bar style;
//! - [`dirs`]: where limner keeps fetched networks, imported models and user data;
//! - [`testing`]: what a test does when a fetched model is missing (note locally, fail under CI).

pub mod dirs;
pub mod fs;
pub mod perceptual;
pub mod progress;
pub mod seed;
pub mod tensor;
pub mod testing;
pub mod weights;

pub use fs::{write_atomic, write_atomic_with};
pub use perceptual::PerceptualDistance;
pub use seed::{latent_for_seed, latents_for_seeds, noise_rng_for_seed, randn_host};
pub use tensor::{tensor_from, to_vec};
pub use weights::{parse_safetensors, read_safetensors, safetensors_bytes, write_safetensors, HostTensor, Precision, StateDict};
