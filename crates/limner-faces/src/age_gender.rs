//! face-api's `AgeGenderNet`: a small Xception (Chollet 2017; face-api's `TinyXception` with 2
//! middle blocks) over a 112 px face, 7×7 average pooling, and two fully connected heads: age
//! in years (a regression) and gender (softmax over male, female).
//!
//! The model estimates apparent age and binary gender presentation from appearance; it was
//! trained on research-only data, knows nothing else about a person, and is often wrong by
//! years, more so for faces unlike its training set.

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::layers::{avg_pool_valid, max_pool_same, normalize, Conv, Fc, Padding, SeparableConv, Weights, FACE_MEAN_RGB};

/// The shape of the Xception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TinyXceptionConfig {
    /// Residual blocks at 14×14 (face-api: 2).
    pub main_blocks: usize,
    /// Input side (face-api: 112).
    pub input_size: usize,
}

impl Default for TinyXceptionConfig {
    fn default() -> Self {
        Self { main_blocks: 2, input_size: 112 }
    }
}

/// Two separable convs, a 3×3/2 max pool, plus a strided 1×1 "expansion" shortcut.
#[derive(Clone, Debug)]
struct ReductionBlock {
    separable_conv0: SeparableConv,
    separable_conv1: SeparableConv,
    expansion_conv: Conv,
}

impl ReductionBlock {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        Ok(Self {
            separable_conv0: w.separable(&format!("{p}/separable_conv0"))?,
            separable_conv1: w.separable(&format!("{p}/separable_conv1"))?,
            expansion_conv: w.conv(&format!("{p}/expansion_conv"))?,
        })
    }

    /// `[N, C, H, W] -> [N, C', H/2, W/2]`.
    fn forward(&self, x: Tensor<4>, activate_input: bool) -> Tensor<4> {
        let out = if activate_input { relu(x.clone()) } else { x.clone() };
        let out = self.separable_conv0.forward(out, 1, Padding::Same); //        [N, C', H, W]
        let out = self.separable_conv1.forward(relu(out), 1, Padding::Same); //  [N, C', H, W]
        let out = max_pool_same(out, 3, 2); //                                    [N, C', H/2, W/2]
        out + self.expansion_conv.forward(x, 2, Padding::Same) //                [N, C', H/2, W/2]
    }
}

/// Three ReLU + separable convs with an identity shortcut.
#[derive(Clone, Debug)]
struct MainBlock {
    convs: [SeparableConv; 3],
}

impl MainBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = x.clone();
        for c in &self.convs {
            out = c.forward(relu(out), 1, Padding::Same); // [N, 128, 14, 14]
        }
        out + x
    }
}

#[derive(Clone, Debug)]
pub struct AgeGenderNet {
    conv_in: Conv,
    reduction_block_0: ReductionBlock,
    reduction_block_1: ReductionBlock,
    main_blocks: Vec<MainBlock>,
    exit_reduction_block: ReductionBlock,
    exit_separable_conv: SeparableConv,
    fc_age: Fc,
    fc_gender: Fc,
    pub config: TinyXceptionConfig,
}

/// One face's prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgeGender {
    /// Apparent age in years.
    pub age: f32,
    /// Probability of "male" (1 − this is "female").
    pub male: f32,
}

impl AgeGenderNet {
    pub const NET: &'static str = "age-gender";

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, Self::NET, device)?, TinyXceptionConfig::default())
    }

    pub fn load_fetched(device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(Self::NET, device)?, TinyXceptionConfig::default())
    }

    fn from_weights(w: &Weights, config: TinyXceptionConfig) -> Result<Self> {
        let main_blocks = (0..config.main_blocks)
            .map(|i| {
                let s = |k: usize| w.separable(&format!("middle_flow/main_block_{i}/separable_conv{k}"));
                Ok(MainBlock { convs: [s(0)?, s(1)?, s(2)?] })
            })
            .collect::<Result<Vec<_>>>()?;
        let net = Self {
            conv_in: w.conv("entry_flow/conv_in")?,
            reduction_block_0: ReductionBlock::load(w, "entry_flow/reduction_block_0")?,
            reduction_block_1: ReductionBlock::load(w, "entry_flow/reduction_block_1")?,
            main_blocks,
            exit_reduction_block: ReductionBlock::load(w, "exit_flow/reduction_block")?,
            exit_separable_conv: w.separable("exit_flow/separable_conv")?,
            fc_age: w.fc("fc/age")?,
            fc_gender: w.fc("fc/gender")?,
            config,
        };
        if net.fc_age.weights.dims() != [512, 1] || net.fc_gender.weights.dims() != [512, 2] {
            bail!("{}: unexpected head shapes {:?} / {:?}", w.path().display(), net.fc_age.weights.dims(), net.fc_gender.weights.dims());
        }
        Ok(net)
    }

    /// `[N, 3, 112, 112]` RGB 0..255 → (age `[N]` in years, gender `[N, 2]` probabilities
    /// of male, female).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<2>) {
        let x = normalize(x, FACE_MEAN_RGB); //                              [N, 3, 112, 112]
        let x = relu(self.conv_in.forward(x, 2, Padding::Same)); //          [N, 32, 56, 56]
        let x = self.reduction_block_0.forward(x, false); //                 [N, 64, 28, 28]
        let mut x = self.reduction_block_1.forward(x, true); //              [N, 128, 14, 14]
        for b in &self.main_blocks {
            x = b.forward(x); //                                              [N, 128, 14, 14]
        }
        let x = self.exit_reduction_block.forward(x, true); //               [N, 256, 7, 7]
        let x = relu(self.exit_separable_conv.forward(x, 1, Padding::Same)); // [N, 512, 7, 7]
        let [n, c, _, _] = x.dims();
        let pooled = avg_pool_valid(x, 7, 2).reshape([n, c]); //             [N, 512]
        let age = self.fc_age.forward(pooled.clone()).reshape([n]); //       [N]
        let gender = softmax(self.fc_gender.forward(pooled), 1); //          [N, 2]
        (age, gender)
    }

    /// Predictions per input.
    pub fn predict(&self, x: Tensor<4>) -> Vec<AgeGender> {
        let (age, gender) = self.forward(x);
        let (age, gender) = (to_vec(&age), to_vec(&gender));
        age.iter().zip(gender.chunks_exact(2)).map(|(&age, g)| AgeGender { age, male: g[0] }).collect()
    }
}
