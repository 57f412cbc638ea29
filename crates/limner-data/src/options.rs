//! The settings of a dataset build: what [`crate::build_dataset`] takes and what a `.limner`
//! file's header records ([`crate::DatasetMeta::options`]).

use std::path::PathBuf;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::imageio::{DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS};

/// Settings of [`crate::build_dataset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildOptions {
    /// Side of the square output images: a power of two from 8 to 4096.
    pub res: u32,
    /// The `.limner` file to write. Not recorded in the file's header (where a dataset was
    /// written says nothing about its contents, and would carry the builder's paths).
    #[serde(skip)]
    pub out: PathBuf,
    /// Glob patterns (e.g. `"*0.jpg"`); a file is excluded when one matches its
    /// file name or its path relative to the input.
    pub exclude: Vec<String>,
    /// Images whose shorter side is below this are skipped; `None` means `res / 2`.
    pub min_size: Option<u32>,
    /// Largest pHash Hamming distance (of 64 bits) counted as a near duplicate;
    /// 0 detects exact duplicates only.
    pub near_dup_threshold: u32,
    /// Images declaring more pixels are skipped (decompression-bomb guard).
    pub max_pixels: u64,
    /// Files with more bytes are skipped.
    pub max_file_bytes: u64,
    /// Frame each image on its face (FFHQ-style alignment) instead of the centred square:
    /// needs a [`crate::Framer`] ([`crate::build_dataset_with`]); images without a face are skipped.
    pub align: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            res: 64,
            out: PathBuf::from("dataset.limner"),
            exclude: Vec::new(),
            min_size: None,
            near_dup_threshold: 4,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            align: false,
        }
    }
}

impl BuildOptions {
    /// The effective minimum shorter side: `min_size`, or `res / 2` when unset.
    pub fn min_size(&self) -> u32 {
        self.min_size.unwrap_or(self.res / 2)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        ensure!(
            self.res.is_power_of_two() && (8..=4096).contains(&self.res),
            "res must be a power of two from 8 to 4096 (e.g. 32, 64, 128, 256), got {}",
            self.res
        );
        ensure!(self.max_pixels > 0, "max_pixels must be positive");
        ensure!(self.max_file_bytes > 0, "max_file_bytes must be positive");
        Ok(())
    }
}
