//! HSE FaceRes (A. Savchenko, HSE_FaceRec_tf) as human-models ships it (`faceres.json`): a
//! MobileNet v1 (Howard et al. 2017; 13 depthwise-separable blocks, batch norm as a multiply and
//! an add, ReLU6) over a 224 px face, global average pooling (the 1024-d descriptor), a 256-unit
//! ReLU layer and two heads: gender (sigmoid: the probability of "male") and age (softmax over
//! 100 one-year bins, 0–99).
//!
//! Input as human's `faceres.ts` makes it: the face crop (0..1) resized to 224² (legacy
//! bilinear), × 255. The reading of age is the expected value over the bins; human
//! itself interpolates around the arg max ([`human_age`]).
//!
//! The model estimates apparent age and binary gender presentation from appearance, is often
//! wrong by years, and knows nothing else about a person.

use anyhow::{ensure, Result};
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Device, Tensor};

use super::graph::{GConv, Graph};

/// The network's input side.
pub const INPUT_SIZE: usize = 224;
/// Age bins (years 0..99).
pub const AGE_BINS: usize = 100;

/// A conv followed by the batch norm TF left as `x · mul + sub` (or just `+ sub` when the
/// multiplier was folded into the conv), ReLU and the clip at 6.
#[derive(Clone, Debug)]
struct ConvBnRelu6 {
    conv: GConv,
    mul: Option<Tensor<1>>,
    add: Tensor<1>,
}

impl ConvBnRelu6 {
    fn load(g: &Graph, conv: GConv, bn: &str, act: &str) -> Result<Self> {
        let mul = match g.node(&format!("{bn}/batchnorm_1/mul_1"), "Mul") {
            Ok(n) => Some(g.tensor::<1>(&n.inputs[1])?),
            Err(_) => None, // folded into the conv, which then computes `mul_1` itself
        };
        let add = g.node(&format!("{bn}/batchnorm_1/add_1"), "Add")?;
        let add = g.tensor::<1>(&add.inputs[1])?;
        g.node(&format!("{act}/Relu"), "Relu")?;
        ensure!(g.scalar(&format!("{act}/Cast"))? == 6.0 && g.scalar(&format!("{act}/Const_1"))? == 0.0, "{}: `{act}` is not a ReLU6", g.path().display());
        Ok(Self { conv, mul, add })
    }

    /// `[N, C, H, W] -> [N, C', H / s, W / s]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = self.conv.forward(x);
        if let Some(m) = &self.mul {
            y = y * m.clone().reshape([1, -1, 1, 1]);
        }
        let y = y + self.add.clone().reshape([1, -1, 1, 1]);
        relu(y).clamp_max(6.0)
    }
}

/// FaceRes' three outputs.
#[derive(Clone, Debug)]
pub struct FaceResOutput {
    /// `[N]`: P(male).
    pub gender: Tensor<1>,
    /// `[N, 100]`: the age distribution.
    pub age: Tensor<2>,
    /// `[N, 1024]`: the pooled features (human's descriptor).
    pub descriptor: Tensor<2>,
}

#[derive(Clone, Debug)]
pub struct FaceRes {
    conv1: ConvBnRelu6,
    /// 13 × (depthwise, pointwise)
    blocks: Vec<(ConvBnRelu6, ConvBnRelu6)>,
    feats: (Tensor<2>, Tensor<1>),
    gender: (Tensor<2>, Tensor<1>),
    age: (Tensor<2>, Tensor<1>),
}

impl FaceRes {
    pub fn load(g: &Graph) -> Result<Self> {
        let conv1 = ConvBnRelu6::load(g, g.conv("conv1_bn/batchnorm_1/mul_1")?, "conv1_bn", "conv1_relu")?;
        let mut blocks = vec![];
        for i in 1..=13 {
            let dw = ConvBnRelu6::load(g, g.depthwise(&format!("conv_dw_{i}/depthwise"))?, &format!("conv_dw_{i}_bn"), &format!("conv_dw_{i}_relu"))?;
            let pw = ConvBnRelu6::load(g, g.conv(&format!("conv_pw_{i}_bn/batchnorm_1/mul_1"))?, &format!("conv_pw_{i}_bn"), &format!("conv_pw_{i}_relu"))?;
            blocks.push((dw, pw));
        }
        let head = |name: &str, want_relu: bool| -> Result<(Tensor<2>, Tensor<1>)> {
            let (w, b, r) = g.matmul(name)?;
            ensure!(r == want_relu, "{}: `{name}` {} a ReLU", g.path().display(), if r { "has" } else { "lacks" });
            Ok((w, b))
        };
        g.node("global_pooling/Mean", "Mean")?;
        g.node("gender_pred/Sigmoid", "Sigmoid")?;
        g.node("age_pred/Softmax", "Softmax")?;
        Ok(Self { conv1, blocks, feats: head("feats/Relu", true)?, gender: head("gender_pred/BiasAdd", false)?, age: head("age_pred/BiasAdd", false)? })
    }

    pub fn fetched(device: &Device) -> Result<Self> {
        Self::load(&Graph::fetched("human-faceres", device)?)
    }

    /// `[N, 3, 224, 224]` RGB in 0..255 → gender, age bins, descriptor.
    pub fn forward(&self, x: Tensor<4>) -> FaceResOutput {
        let mut x = self.conv1.forward(x); //                      [N, 32, 112, 112]
        for (dw, pw) in &self.blocks {
            x = pw.forward(dw.forward(x)); //                      → [N, 1024, 7, 7]
        }
        let [n, c, _, _] = x.dims();
        let desc: Tensor<2> = x.mean_dim(3).mean_dim(2).reshape([n, c]); // [N, 1024]
        let f = relu(desc.clone().matmul(self.feats.0.clone()) + self.feats.1.clone().unsqueeze()); // [N, 256]
        let gender = sigmoid(f.clone().matmul(self.gender.0.clone()) + self.gender.1.clone().unsqueeze()).reshape([n]); // [N]
        let age = softmax(f.matmul(self.age.0.clone()) + self.age.1.clone().unsqueeze(), 1); // [N, 100]
        FaceResOutput { gender, age, descriptor: desc }
    }
}

/// The expected age over the 100 one-year bins (the reading).
pub fn expected_age(bins: &[f32]) -> f32 {
    bins.iter().enumerate().map(|(i, p)| i as f32 * p).sum::<f32>() / bins.iter().sum::<f32>().max(1e-12)
}

/// human's own age (`faceres.ts`): the arg max, moved towards the larger neighbour by ten times
/// its probability, rounded to 0.1 years.
pub fn human_age(bins: &[f32]) -> f32 {
    let i = bins.iter().enumerate().fold(0, |b, (i, &p)| if p > bins[b] { i } else { b });
    // JS reads all[-1] / all[100] as undefined, and a comparison with undefined is false
    let before = if i > 0 { bins[i - 1] } else { f32::NAN };
    let after = bins.get(i + 1).copied().unwrap_or(f32::NAN);
    let v = if before > after { 10.0 * i as f64 - 100.0 * before as f64 } else { 10.0 * i as f64 + 100.0 * after as f64 };
    ((v + 0.5).floor() / 10.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_from_bins() {
        let mut b = vec![0.0f32; AGE_BINS];
        b[30] = 0.5;
        b[31] = 0.3;
        b[29] = 0.2;
        assert!((expected_age(&b) - (15.0 + 9.3 + 5.8)).abs() < 1e-4);
        // arg max 30, larger neighbour 31 (0.3): 30 + 0.3·10/10 → (300 + 30) / 10 = 33.0
        assert_eq!(human_age(&b), 33.0);
        b[29] = 0.4;
        assert_eq!(human_age(&b), 26.0);
    }
}
