//! face-api's 68-point face landmark networks (`FaceLandmark68Net`, `FaceLandmark68TinyNet`):
//! the dense-block [`FaceFeatureExtractor`] and one fully connected layer to 136 values, the
//! (x, y) of the 68 iBUG-300W points relative to the input square.
//!
//! Points: 0–16 jaw, 17–21 right brow, 22–26 left brow (the subject's), 27–35 nose,
//! 36–41 right eye, 42–47 left eye, 48–67 mouth (as seen in the image: 36–41 is on the
//! image's left).

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};
use limner_core::to_vec;

use crate::face_feature_extractor::{FaceFeatureExtractor, FaceFeatureExtractorConfig};
use crate::layers::{Fc, Weights};

/// Number of points.
pub const POINTS: usize = 68;

/// Which of the two landmark networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LandmarkModel {
    /// `face_landmark_68_model` (4 dense blocks, 350 kB).
    #[default]
    Full,
    /// `face_landmark_68_tiny_model` (3 dense blocks, 75 kB).
    Tiny,
}

impl LandmarkModel {
    pub fn net(self) -> &'static str {
        match self {
            LandmarkModel::Full => "face-landmark-68",
            LandmarkModel::Tiny => "face-landmark-68-tiny",
        }
    }
    fn extractor(self) -> FaceFeatureExtractorConfig {
        match self {
            LandmarkModel::Full => FaceFeatureExtractorConfig::default(),
            LandmarkModel::Tiny => FaceFeatureExtractorConfig::tiny(),
        }
    }
}

/// 68 points, each (x, y).
pub type Landmarks = [[f32; 2]; POINTS];

#[derive(Clone, Debug)]
pub struct FaceLandmark68Net {
    extractor: FaceFeatureExtractor,
    fc: Fc,
    pub model: LandmarkModel,
}

impl FaceLandmark68Net {
    pub fn load(path: &Path, model: LandmarkModel, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open(path, model.net(), device)?, model)
    }

    pub fn load_fetched(model: LandmarkModel, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::fetched(model.net(), device)?, model)
    }

    fn from_weights(w: &Weights, model: LandmarkModel) -> Result<Self> {
        let extractor = FaceFeatureExtractor::from_weights(w, model.extractor())?;
        let fc = w.fc("fc")?;
        let [fin, fout] = fc.weights.dims();
        if fin != extractor.features() || fout != 2 * POINTS {
            bail!("{}: fc is {fin}→{fout}, expected {}→{}", w.path().display(), extractor.features(), 2 * POINTS);
        }
        Ok(Self { extractor, fc, model })
    }

    /// `[N, 3, 112, 112]` RGB 0..255 → `[N, 136]`: x0, y0, x1, y1, ... relative to the input
    /// square (0..1 inside it).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.extractor.forward(x); // [N, 256]
        self.fc.forward(f) //                 [N, 136]
    }

    /// The points of each input, relative to its square (0..1).
    pub fn landmarks(&self, x: Tensor<4>) -> Vec<Landmarks> {
        let v = to_vec(&self.forward(x));
        v.chunks_exact(2 * POINTS)
            .map(|c| std::array::from_fn(|i| [c[2 * i], c[2 * i + 1]]))
            .collect()
    }
}

/// Mean of some points.
pub fn centre(points: &Landmarks, range: std::ops::Range<usize>) -> [f32; 2] {
    let n = range.len() as f32;
    let (sx, sy) = points[range].iter().fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
    [sx / n, sy / n]
}

/// Maps points found in a face network's input square back to image pixels as face-api does
/// (`postProcess`, then `shiftBy` the detection box): `crop` is the (width, height) of the
/// cropped pixels, which were padded to a centred square; `shift` is the top-left corner of
/// the detection box (face-api shifts by the unclipped, unfloored box).
pub fn to_image(points: &Landmarks, crop: (usize, usize), shift: (f32, f32)) -> Landmarks {
    let (w, h) = (crop.0 as f32, crop.1 as f32);
    let side = w.max(h);
    // face-api removes half the padding, unrounded
    let (px, py) = ((side - w) / 2.0, (side - h) / 2.0);
    std::array::from_fn(|i| [points[i][0] * side - px + shift.0, points[i][1] * side - py + shift.1])
}
