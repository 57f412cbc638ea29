//! The three spaces the audit measures in.
//!
//! - **pixels**: the image box-downsampled to 16 × 16, each colour channel standardised (mean
//!   0, standard deviation 1), the whole vector scaled to unit length — so a brightness or colour cast, light noise and a few
//!   pixels of crop barely move it. Images are compared as framed: a model's samples and its
//!   training images share one alignment (limner's datasets are aligned crops), so no landmark
//!   alignment is run per image.
//! - **inception**: InceptionV3 `mixed5` features averaged over space (768-d, the FID-like
//!   network, [`limner_nets`]).
//! - **identity**: face-api's 128-d face descriptor (dlib's ResNet) of a fixed face box: the
//!   box is found once per audit, by running face-api's detector and landmarks on a few training
//!   images and taking the median of dlib's identity box ([`limner_faces::describe::dlib_rect`])
//!   relative to the image; every image of the audit is then cropped the same way. Two photos of
//!   one person are typically closer than 0.6.
//!
//! Every image is first brought to one comparison size (the samples' size), so a 64 px model
//! is compared with its 128 px training images at 64 px, not penalised for resolution.

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use limner_faces::recognition::{FaceRecognitionNet, DESCRIPTOR, INPUT_SIZE};
use limner_faces::{FaceAnalyzer, FaceAnalyzerConfig};
use limner_nets::features::rgb8_features;
use limner_nets::{InceptionV3, FEATURE_DIM};
use serde::{Deserialize, Serialize};

use crate::knn::Matrix;
use crate::source::Rgb8;

/// Side of the pixel-space thumbnail.
pub const PIXEL_SIDE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    Pixels,
    Inception,
    Identity,
}

impl Space {
    pub const ALL: [Space; 3] = [Space::Pixels, Space::Inception, Space::Identity];

    pub fn name(self) -> &'static str {
        match self {
            Space::Pixels => "pixels",
            Space::Inception => "inception",
            Space::Identity => "identity",
        }
    }

    pub fn dim(self) -> usize {
        match self {
            Space::Pixels => PIXEL_SIDE * PIXEL_SIDE * 3,
            Space::Inception => FEATURE_DIM,
            Space::Identity => DESCRIPTOR,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Space::Pixels => "pixels (16×16, channels standardised, unit length)",
            Space::Inception => "InceptionV3 mixed5 pooled (768-d)",
            Space::Identity => "face identity (face-api / dlib 128-d descriptor)",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "pixels" => Space::Pixels,
            "inception" => Space::Inception,
            "identity" => Space::Identity,
            o => bail!("`{o}` is not a space: use pixels, inception, identity"),
        })
    }

    /// A comma list (`pixels,identity`), in [`Space::ALL`] order, without repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        let mut v = s.split(',').filter(|p| !p.trim().is_empty()).map(Space::parse).collect::<Result<Vec<_>>>()?;
        v.sort();
        v.dedup();
        anyhow::ensure!(!v.is_empty(), "no spaces given: use pixels, inception, identity");
        Ok(v)
    }
}

/// The pixel-space vector of an image already at the comparison size.
pub fn pixel_vector(img: &Rgb8) -> Vec<f32> {
    let small = img.resized(PIXEL_SIDE);
    let mut v: Vec<f32> = small.data.iter().map(|&b| b as f32 / 255.0).collect();
    let n = (PIXEL_SIDE * PIXEL_SIDE) as f32;
    for c in 0..3 {
        let mean = v.iter().skip(c).step_by(3).sum::<f32>() / n;
        let sd = (v.iter().skip(c).step_by(3).map(|x| (x - mean) * (x - mean)).sum::<f32>() / n).sqrt().max(1e-3);
        v.iter_mut().skip(c).step_by(3).for_each(|x| *x = (*x - mean) / sd);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-6 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A face box relative to the image side: `[x, y, width, height]` in 0..1.
pub type RelBox = [f32; 4];

/// Computes embeddings of images in the chosen spaces.
pub struct Embedder {
    pub spaces: Vec<Space>,
    /// every image is resized to this side before embedding
    pub compare_size: usize,
    /// the identity crop (whole image until [`Embedder::find_face_box`] ran or none was found)
    pub face_box: RelBox,
    /// how the face box was found, for the report
    pub face_box_note: String,
    inception: Option<InceptionV3>,
    recognition: Option<FaceRecognitionNet>,
    device: Device,
}

impl Embedder {
    /// Loads the networks the spaces need (fetched by `limner models fetch`).
    pub fn new(spaces: &[Space], compare_size: usize, device: &Device) -> Result<Self> {
        let inception = if spaces.contains(&Space::Inception) {
            Some(InceptionV3::load_fetched(device).context("the inception space needs InceptionV3 (`limner models fetch --only inception-v3`, or leave it out with --spaces)")?)
        } else {
            None
        };
        let recognition = if spaces.contains(&Space::Identity) {
            Some(FaceRecognitionNet::load_fetched(device).context("the identity space needs face-api (`limner models fetch --only face-api`, or leave it out with --spaces)")?)
        } else {
            None
        };
        Ok(Self { spaces: spaces.to_vec(), compare_size, face_box: [0.0, 0.0, 1.0, 1.0], face_box_note: "whole image".into(), inception, recognition, device: device.clone() })
    }

    /// Finds the identity crop from a few images of the set (see the module docs). Keeps the
    /// whole image when face-api finds no face in any of them.
    pub fn find_face_box(&mut self, images: &[Rgb8]) -> Result<()> {
        if self.recognition.is_none() || images.is_empty() {
            return Ok(());
        }
        let fa = FaceAnalyzer::load_fetched(FaceAnalyzerConfig::default(), &self.device).context("the identity space finds the face box with face-api (`limner models fetch --only face-api`)")?;
        let faces: Vec<limner_faces::Image> = images.iter().map(|i| i.resized(self.compare_size).to_face_image()).collect();
        let found = fa.analyze(&faces);
        let s = self.compare_size as f32;
        let mut boxes: Vec<RelBox> = vec![];
        for (img, fs) in faces.iter().zip(&found) {
            if let Some(f) = fs.first() {
                let r = limner_faces::describe::dlib_rect(&f.landmarks, (img.width, img.height));
                boxes.push([r.x / s, r.y / s, r.width / s, r.height / s]);
            }
        }
        if boxes.is_empty() {
            self.face_box_note = format!("whole image (face-api found no face in {} training images)", images.len());
            return Ok(());
        }
        let median = |k: usize| {
            let mut v: Vec<f32> = boxes.iter().map(|b| b[k]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let mut b = [median(0), median(1), median(2), median(3)];
        // keep it inside the image
        b[0] = b[0].clamp(0.0, 0.9);
        b[1] = b[1].clamp(0.0, 0.9);
        b[2] = b[2].min(1.0 - b[0]).max(0.1);
        b[3] = b[3].min(1.0 - b[1]).max(0.1);
        self.face_box = b;
        self.face_box_note = format!(
            "median of dlib's identity box over the faces face-api found in {} of {} training images: x {:.3}, y {:.3}, side {:.3} × {:.3} of the image",
            boxes.len(),
            images.len(),
            b[0],
            b[1],
            b[2],
            b[3]
        );
        Ok(())
    }

    /// Sets the identity crop directly (a stored training index carries it).
    pub fn set_face_box(&mut self, b: RelBox, note: impl Into<String>) {
        self.face_box = b;
        self.face_box_note = note.into();
    }

    /// Embeddings of a batch, one matrix per space (in `self.spaces` order).
    pub fn embed(&self, images: &[Rgb8]) -> Vec<Matrix> {
        let imgs: Vec<Rgb8> = images.iter().map(|i| i.resized(self.compare_size)).collect();
        self.spaces
            .iter()
            .map(|&space| match space {
                Space::Pixels => Matrix::from_rows(&imgs.iter().map(pixel_vector).collect::<Vec<_>>(), space.dim()),
                Space::Inception => {
                    let net = self.inception.as_ref().expect("loaded in new");
                    let rows: Vec<Vec<f32>> = imgs
                        .chunks(32)
                        .flat_map(|c| rgb8_features(net, &c.iter().map(|i| i.data.as_slice()).collect::<Vec<_>>(), self.compare_size, &self.device))
                        .map(|f| f.to_vec())
                        .collect();
                    Matrix::from_rows(&rows, space.dim())
                }
                Space::Identity => {
                    let net = self.recognition.as_ref().expect("loaded in new");
                    let s = self.compare_size as f32;
                    let [x, y, w, h] = self.face_box;
                    let crops: Vec<limner_faces::Image> = imgs
                        .iter()
                        .map(|i| {
                            let im = i.to_face_image();
                            im.crop(x * s, y * s, w * s, h * s).unwrap_or(im).face_input(INPUT_SIZE)
                        })
                        .collect();
                    let rows: Vec<Vec<f32>> = crops.chunks(16).flat_map(|c| net.descriptors(limner_faces::image::batch(c, &self.device))).map(|d| d.to_vec()).collect();
                    Matrix::from_rows(&rows, space.dim())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(seed: u8) -> Rgb8 {
        Rgb8::new(64, (0..64 * 64 * 3).map(|i| ((i as u32 * 37 + seed as u32 * 101) % 251) as u8).collect())
    }

    #[test]
    fn pixel_vectors_ignore_colour_casts_and_see_other_images() {
        let a = face(1);
        let cast = Rgb8::new(64, a.data.iter().enumerate().map(|(i, &v)| if i % 3 == 0 { v.saturating_add(0) } else { v / 2 + 20 }).collect());
        let (va, vc, vb) = (pixel_vector(&a), pixel_vector(&cast), pixel_vector(&face(9)));
        let d = |x: &[f32], y: &[f32]| crate::knn::exact_distance(x, y);
        assert!((va.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(d(&va, &vc) < 0.5 * d(&va, &vb), "cast {} vs other {}", d(&va, &vc), d(&va, &vb));
    }

    #[test]
    fn spaces_parse_in_order() {
        assert_eq!(Space::parse_list("identity,pixels,pixels").unwrap(), vec![Space::Pixels, Space::Identity]);
        assert!(Space::parse_list("colour").is_err());
    }
}
