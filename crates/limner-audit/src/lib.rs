//! limner's memorization audit: does a model make new faces, or training images in disguise?
//!
//! For every sample of a model, [`audit::audit`] finds the nearest training image in three
//! spaces ([`embed::Space`]: pixels, InceptionV3 features, face identity) by exact blocked
//! matrix products ([`knn`]), calls a sample a **suspected copy** when it is closer than the
//! 1st percentile of held-out images' nearest training distances, and reports the copy rate
//! with a Wilson interval, Meehan et al.'s C_T data-copying statistic and Kynkäänniemi et
//! al.'s precision and recall ([`stats`]); [`report`] writes `report.md`, `report.json` and
//! the pictures. Image sets of any kind sit behind [`source::ImageSet`], so tests feed fakes.

pub mod audit;
pub mod card;
pub mod embed;
pub mod guard;
pub mod index;
pub mod knn;
pub mod report;
pub mod source;
pub mod stats;

pub use audit::{audit, AuditOptions, AuditResult, SpaceResult};
pub use embed::{Embedder, Space};
pub use source::{open_set, ImageSet, Rgb8};
