//! random-face (the photoreal MobileStyleGAN of `limner_photoreal`) as a steerable
//! [`WGenerator`]: a seed's truncated w (512-d, one per face, broadcast to the 23 style
//! layers) and the seed's own per-pixel noise, rendered at 1024² and box-downsampled to
//! `size`. Its faces are FFHQ-framed (hair, neck and background around the face), so they are
//! read as `limner describe` reads photos ([`crate::prompt::describe_reading`]: detector,
//! landmarks, aligned crop), not with the whole image as the crop.

use anyhow::Result;
use burn::tensor::Device;
use limner_core::tensor_from;
use limner_photoreal::faces::{box_downsample, check_size, face_from_ws, w_for_seed};
use limner_photoreal::{MobileStyleGan, NATIVE_SIZE, W_DIM};

use crate::describe::{Attributes, FaceAnalyzer};
use crate::directions::{nchw_to_image, WGenerator};
use crate::image::Image;

/// The size faces are rendered at for labelling and steering when none is asked for: the
/// face-api networks read 112–160 px crops, which a 256 px portrait comfortably holds.
pub const STEER_SIZE: usize = 256;

/// random-face rendering at `size` (a power of two up to 1024).
pub struct RandomFace {
    pub model: MobileStyleGan,
    pub size: usize,
    strengths: Vec<f32>,
}

impl RandomFace {
    pub fn new(model: MobileStyleGan, size: usize) -> Result<Self> {
        check_size(size)?;
        let strengths = model.synthesis.noise_strengths();
        Ok(Self { model, size, strengths })
    }

    /// The model fetched by `limner models fetch --only random-face` (the error says so when it is missing).
    pub fn load_fetched(size: usize, device: &Device) -> Result<Self> {
        let path = limner_models::fetch::net_path(limner_photoreal::MODEL_NAME)?;
        Self::new(MobileStyleGan::load(&path, device)?, size)
    }
}

impl WGenerator for RandomFace {
    fn w_dim(&self) -> usize {
        W_DIM
    }

    fn ws(&self, seeds: &[u64], psi: f32) -> Vec<Vec<f32>> {
        seeds.iter().map(|&s| w_for_seed(&self.model, s, psi)).collect()
    }

    /// One face at a time (an image depends only on its w and seed).
    fn render(&self, ws: &[Vec<f32>], seeds: &[u64], noise: f32) -> Vec<Image> {
        let device = self.model.w_avg().device();
        ws.iter()
            .zip(seeds)
            .map(|(w, &seed)| {
                let w = tensor_from(w.clone(), [1, W_DIM], &device);
                let chw = face_from_ws(&self.model, self.model.broadcast_w(w), seed, noise, &self.strengths);
                nchw_to_image(&box_downsample(&chw, 3, NATIVE_SIZE, self.size), self.size)
            })
            .collect()
    }

    fn read(&self, fa: &FaceAnalyzer, images: &[Image]) -> Vec<Attributes> {
        crate::prompt::describe_reading(fa, images)
    }
}
