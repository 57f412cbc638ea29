//! Hyper-parameters of the networks, with the official StyleGAN2-ADA names.

use serde::{Deserialize, Serialize};

/// Generator hyper-parameters (`training.networks.Generator`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub z_dim: usize,
    pub w_dim: usize,
    /// number of fully connected layers in the mapping network
    pub mapping_layers: usize,
    pub img_resolution: usize,
    pub img_channels: usize,
    /// channels at resolution R are `min(channel_base / R, channel_max)`
    pub channel_base: usize,
    pub channel_max: usize,
    /// learning-rate multiplier of the mapping network
    pub mapping_lr_multiplier: f64,
    /// decay of the running average `w_avg` (training only)
    pub w_avg_beta: f64,
    /// `conv_clamp` of the official networks: the synthesis convs' and ToRGB's outputs are
    /// clamped to ±this (official configs use 256 with mixed precision); `None` = no clamp
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_clamp: Option<f64>,
}

impl GeneratorConfig {
    /// limner's default generator for a resolution (sized for 2 CPU cores).
    pub fn limner_default(res: usize) -> Self {
        Self {
            z_dim: 128,
            w_dim: 128,
            mapping_layers: 4,
            img_resolution: res,
            img_channels: 3,
            channel_base: 1024,
            channel_max: 128,
            mapping_lr_multiplier: 0.01,
            w_avg_beta: 0.995,
            conv_clamp: None,
        }
    }

    pub fn channels(&self, res: usize) -> usize {
        (self.channel_base / res).min(self.channel_max)
    }

    /// Resolutions of the synthesis blocks: 4, 8, ..., img_resolution.
    pub fn block_resolutions(&self) -> Vec<usize> {
        block_resolutions(self.img_resolution)
    }

    /// Number of w vectors the synthesis network consumes: `2 log2(R) - 2`.
    pub fn num_ws(&self) -> usize {
        2 * (self.img_resolution.trailing_zeros() as usize) - 2
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        validate_res(self.img_resolution)?;
        anyhow::ensure!(self.z_dim > 0 && self.w_dim > 0, "z_dim and w_dim must be positive");
        anyhow::ensure!(self.mapping_layers >= 1, "the mapping network needs at least one layer");
        anyhow::ensure!(self.channels(self.img_resolution) >= 1, "channel_base too small for the resolution");
        if let Some(c) = self.conv_clamp {
            anyhow::ensure!(c.is_finite() && c > 0.0, "conv_clamp must be a positive number, not {c}");
        }
        Ok(())
    }
}

/// Discriminator hyper-parameters (`training.networks.Discriminator`, resnet).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    pub img_resolution: usize,
    pub img_channels: usize,
    pub channel_base: usize,
    pub channel_max: usize,
    pub mbstd_group_size: usize,
    pub mbstd_num_channels: usize,
    /// `conv_clamp` of the official networks: fromrgb, conv0, conv1 and the epilogue conv
    /// clamp their outputs to ±this (times the layer's gain); `None` = no clamp
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_clamp: Option<f64>,
}

impl DiscriminatorConfig {
    pub fn limner_default(res: usize) -> Self {
        Self {
            img_resolution: res,
            img_channels: 3,
            channel_base: 1024,
            channel_max: 128,
            mbstd_group_size: 4,
            mbstd_num_channels: 1,
            conv_clamp: None,
        }
    }

    pub fn channels(&self, res: usize) -> usize {
        (self.channel_base / res).min(self.channel_max)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        validate_res(self.img_resolution)
    }
}

fn validate_res(res: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        res.is_power_of_two() && (8..=1024).contains(&res),
        "resolution {res} is not supported: use a power of two from 8 to 1024"
    );
    Ok(())
}

/// 4, 8, ..., res
pub fn block_resolutions(res: usize) -> Vec<usize> {
    let mut v = vec![];
    let mut r = 4;
    while r <= res {
        v.push(r);
        r *= 2;
    }
    v
}

/// A tiny generator/discriminator pair at `res` (32-d latents, 2 mapping layers, at most 64
/// channels): a training step takes milliseconds, for tests and smoke runs.
pub fn tiny(res: usize) -> (GeneratorConfig, DiscriminatorConfig) {
    let g = GeneratorConfig { z_dim: 32, w_dim: 32, mapping_layers: 2, channel_base: 512, channel_max: 64, ..GeneratorConfig::limner_default(res) };
    let d = DiscriminatorConfig { channel_base: 512, channel_max: 64, ..DiscriminatorConfig::limner_default(res) };
    (g, d)
}
