//! limner-core: the small common base every limner crate can use without depending on a model.
//! The burn-tensor parts (marked below) come with the default feature `tensors`; without it
//! (limner-data) the crate needs no burn.
//!
//! - [`weights`]: host tensors ([`HostTensor`], [`StateDict`]) and safetensors read/write in
//!   f32 or f16 ([`Precision`]);
//! - `tensor` (feature `tensors`): host data ↔ device tensors (`tensor_from`, `to_vec`);
//! - [`fs`]: atomic file writes ([`write_atomic`], [`write_atomic_with`]);
//! - [`seed`]: a seed's latent and noise stream, the same for every generator;
//! - `perceptual` (feature `tensors`): the `PerceptualDistance` trait a trainer uses and a
//!   network implements;
//! - [`progress`]: the one progress-bar style;
//! - [`dirs`]: where limner keeps fetched networks, imported models and user data;
//! - [`testing`]: what a test does when a fetched model is missing (note locally, fail under CI).

pub mod dirs;
pub mod fs;
#[cfg(feature = "tensors")]
pub mod perceptual;
pub mod progress;
pub mod seed;
#[cfg(feature = "tensors")]
pub mod tensor;
pub mod testing;
pub mod weights;

pub use fs::{write_atomic, write_atomic_with};
#[cfg(feature = "tensors")]
pub use perceptual::PerceptualDistance;
#[cfg(feature = "tensors")]
pub use seed::latents_for_seeds;
pub use seed::{latent_for_seed, noise_rng_for_seed, randn_host};
#[cfg(feature = "tensors")]
pub use tensor::{tensor_from, to_vec};
pub use weights::{parse_safetensors, read_safetensors, safetensors_bytes, write_safetensors, HostTensor, Precision, StateDict};
