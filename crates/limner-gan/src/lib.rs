//! limner-gan: StyleGAN2-ADA networks on burn, their training loop and generation.

pub mod ada;
pub mod augment;
pub mod cdc;
pub mod checkpoint;
pub mod config;
pub mod discriminator;
pub mod ema;
pub mod generate;
pub mod generator;
pub mod import;
pub mod layers;
pub mod optim;
pub mod order;
pub mod params;
pub mod plot;
pub mod run;
pub mod setup;
pub mod train;

pub use config::{DiscriminatorConfig, GeneratorConfig};
pub use discriminator::Discriminator;
pub use generator::Generator;
