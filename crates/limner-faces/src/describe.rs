//! The whole face pipeline as face-api's `detectAllFaces(...).withFaceLandmarks()
//! .withFaceExpressions().withAgeAndGender().withFaceDescriptors()` runs it, batched over
//! images and faces, and a plain-words description of each face.
//!
//! Steps: the tiny detector on every image (one batch); each box cropped (clipped to the
//! image) → 68 landmarks; the landmarks' bounding box padded by 20 % is the "aligned" box,
//! cropped again → expression, age/gender and (optionally) the identity descriptor.
//! What the models know is limited: apparent age, a binary gender guess with its
//! probability, 7 expressions, a 128-d identity embedding. Nothing else is inferred.

use anyhow::Result;
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use crate::age_gender::AgeGenderNet;
use crate::expression::{FaceExpressionNet, EXPRESSIONS};
use crate::image::{batch, Image};
use crate::landmarks68::{self, FaceLandmark68Net, LandmarkModel, Landmarks, POINTS};
use crate::recognition::{self, FaceRecognitionNet};
use crate::ssd_mobilenet::{SsdMobilenetV1, SsdMobilenetV1Config};
use crate::tiny_face_detector::{Detection, TinyFaceDetector, TinyFaceDetectorConfig};

/// Input side of the landmark, expression and age/gender networks.
pub const FACE_SIZE: usize = 112;

/// The canvas of the second look (see [`FaceAnalyzerConfig::zoom_out`]), in image sides.
const ZOOM_OUT: usize = 3;

/// Images per network call (also the detector's, whose 416–512 px inputs dominate memory).
const BATCH: usize = 16;

/// Settings of [`FaceAnalyzer`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaceAnalyzerConfig {
    pub detector: TinyFaceDetectorConfig,
    /// Use the SSD-MobileNetV1 detector (more accurate, several times slower) with these
    /// settings instead of the tiny one.
    pub ssd: Option<SsdMobilenetV1Config>,
    pub landmarks: LandmarkModel,
    /// Also compute the 128-d identity descriptor (loads the 22 MB recognition net).
    pub descriptors: bool,
    /// When an image yields no face, look again with the image shrunk to the middle third of
    /// the detector's input: the tiny detector misses faces that fill the frame, as in
    /// FFHQ-style portraits (not in face-api, which would report no face).
    pub zoom_out: bool,
}

impl Default for FaceAnalyzerConfig {
    fn default() -> Self {
        Self { detector: TinyFaceDetectorConfig::default(), ssd: None, landmarks: LandmarkModel::Full, descriptors: false, zoom_out: true }
    }
}

/// A box in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// What the attribute networks say about one face crop.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Attributes {
    /// Apparent age in years (a regression; often off by several years).
    pub age: f32,
    /// Probability that the model reads the face as male (1 − this: female).
    pub male_probability: f32,
    /// Probabilities in [`EXPRESSIONS`] order.
    pub expressions: [f32; 7],
    /// The 128-d identity descriptor, when asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub descriptor: Option<Vec<f32>>,
}

impl Attributes {
    /// Readings with the given age, male probability and happy probability; the rest of the
    /// expression mass is neutral and there is no descriptor (for tests and synthetic labels).
    pub fn from_readings(age: f32, male_probability: f32, happy: f32) -> Self {
        let mut expressions = [0.0; 7];
        expressions[1] = happy;
        expressions[0] = 1.0 - happy;
        Attributes { age, male_probability, expressions, descriptor: None }
    }

    /// "female" or "male", whichever the model finds more likely, and its probability.
    pub fn gender(&self) -> (&'static str, f32) {
        if self.male_probability > 0.5 {
            ("male", self.male_probability)
        } else {
            ("female", 1.0 - self.male_probability)
        }
    }

    /// The most likely expression and its probability.
    pub fn expression(&self) -> (&'static str, f32) {
        let (i, p) = self.expressions.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
        (EXPRESSIONS[i], p)
    }

    /// A few plain words: "a smiling woman, about 30". The gender word is used only when
    /// the model is at least 70 % sure ("person" otherwise); the expression only when it
    /// is the most likely at 50 % or more and not "neutral".
    pub fn sentence(&self) -> String {
        let (gender, gp) = self.gender();
        let age = self.age.round().max(1.0) as u32;
        let noun = match (gp >= 0.7, gender, age < 13) {
            (false, _, true) => "child",
            (false, _, false) => "person",
            (true, "female", true) => "girl",
            (true, "female", false) => "woman",
            (true, _, true) => "boy",
            (true, _, false) => "man",
        };
        let (expr, ep) = self.expression();
        let adjective = match expr {
            _ if ep < 0.5 => None,
            "happy" => Some("smiling"),
            "sad" => Some("sad-looking"),
            "angry" => Some("angry-looking"),
            "fearful" => Some("fearful-looking"),
            "disgusted" => Some("disgusted-looking"),
            "surprised" => Some("surprised-looking"),
            _ => None,
        };
        let phrase = match adjective {
            Some(a) => format!("{a} {noun}"),
            None => noun.to_string(),
        };
        let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {phrase}, about {age}")
    }
}

/// One face found in an image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Face {
    /// Detector score (0.5..1).
    pub score: f32,
    /// The detector's box.
    #[serde(rename = "box")]
    pub rect: Rect,
    /// The 68 points in image pixels.
    #[serde(serialize_with = "ser_points")]
    pub landmarks: Landmarks,
    /// The landmarks' bounding box padded by 20 %, from which the attributes were computed.
    pub aligned: Rect,
    #[serde(flatten)]
    pub attributes: Attributes,
}

fn ser_points<S: serde::Serializer>(p: &Landmarks, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter())
}

impl Face {
    /// The face as JSON: box, landmarks, age, gender with probability, expression
    /// probabilities by name, and the one-line description.
    pub fn to_json(&self) -> serde_json::Value {
        let (gender, gp) = self.attributes.gender();
        let mut v = serde_json::to_value(self).expect("serialisable");
        v["gender"] = gender.into();
        v["gender_probability"] = gp.into();
        v["expressions"] = EXPRESSIONS.iter().zip(self.attributes.expressions).map(|(k, p)| (k.to_string(), serde_json::json!(p))).collect();
        v["description"] = self.attributes.sentence().into();
        v
    }
}

/// One of face-api's two face detectors.
pub enum FaceDetector {
    Tiny(TinyFaceDetector),
    Ssd(SsdMobilenetV1),
}

impl FaceDetector {
    fn input_size(&self, cfg: &FaceAnalyzerConfig) -> usize {
        match (self, &cfg.ssd) {
            (FaceDetector::Ssd(_), Some(c)) => c.input_size,
            _ => cfg.detector.input_size,
        }
    }

    fn detect(&self, x: Tensor<4>, sizes: &[(usize, usize)], cfg: &FaceAnalyzerConfig) -> Vec<Vec<Detection>> {
        match self {
            FaceDetector::Tiny(d) => d.detect(x, sizes, &cfg.detector),
            FaceDetector::Ssd(d) => d.detect(x, sizes, &cfg.ssd.clone().unwrap_or_default()),
        }
    }
}

/// All of face-api's networks that [`FaceAnalyzer::analyze`] needs.
pub struct FaceAnalyzer {
    pub detector: FaceDetector,
    pub landmarks: FaceLandmark68Net,
    pub expression: FaceExpressionNet,
    pub age_gender: AgeGenderNet,
    pub recognition: Option<FaceRecognitionNet>,
    pub config: FaceAnalyzerConfig,
    device: Device,
}

impl FaceAnalyzer {
    /// Loads the fetched networks (`limner models fetch --only face-api`).
    pub fn load_fetched(config: FaceAnalyzerConfig, device: &Device) -> Result<Self> {
        Ok(Self {
            detector: if config.ssd.is_some() { FaceDetector::Ssd(SsdMobilenetV1::load_fetched(device)?) } else { FaceDetector::Tiny(TinyFaceDetector::load_fetched(device)?) },
            landmarks: FaceLandmark68Net::load_fetched(config.landmarks, device)?,
            expression: FaceExpressionNet::load_fetched(device)?,
            age_gender: AgeGenderNet::load_fetched(device)?,
            recognition: if config.descriptors { Some(FaceRecognitionNet::load_fetched(device)?) } else { None },
            config,
            device: device.clone(),
        })
    }

    /// Boxes of every face in every image (one detector batch per 16 images).
    pub fn detect(&self, images: &[Image]) -> Vec<Vec<(f32, Rect)>> {
        let mut out = self.detect_zoomed(images, 1);
        if self.config.zoom_out {
            let missed: Vec<usize> = (0..images.len()).filter(|&i| out[i].is_empty()).collect();
            let again = self.detect_zoomed(&missed.iter().map(|&i| images[i].clone()).collect::<Vec<_>>(), ZOOM_OUT);
            for (i, found) in missed.into_iter().zip(again) {
                out[i] = found;
            }
        }
        out
    }

    /// Detection with each image centred in a canvas `zoom` times its larger side (1: as
    /// face-api does, the image padded at the end to a square).
    fn detect_zoomed(&self, images: &[Image], zoom: usize) -> Vec<Vec<(f32, Rect)>> {
        let size = self.detector.input_size(&self.config);
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let (inputs, maps): (Vec<Image>, Vec<[f32; 4]>) = chunk
                .iter()
                .map(|im| if zoom == 1 { (im.detector_input(size), [0.0; 4]) } else { im.detector_input_zoomed_out(size, zoom) })
                .unzip();
            // zoomed out, boxes are decoded relative to the square canvas (size 1 × 1)
            let sizes: Vec<(usize, usize)> = chunk.iter().map(|im| if zoom == 1 { (im.width, im.height) } else { (1, 1) }).collect();
            for ((im, map), dets) in chunk.iter().zip(maps).zip(self.detector.detect(batch(&inputs, &self.device), &sizes, &self.config)) {
                let (w, h, s) = (im.width as f32, im.height as f32, size as f32);
                let [x0, y0, sx, sy] = map;
                let to_px = |r: &crate::tiny_face_detector::RelBox| {
                    if zoom == 1 {
                        Rect { x: r.x * w, y: r.y * h, width: r.width * w, height: r.height * h }
                    } else {
                        Rect { x: (r.x * s - x0) / sx, y: (r.y * s - y0) / sy, width: r.width * s / sx, height: r.height * s / sy }
                    }
                };
                out.push(dets.iter().map(|d| (d.score, to_px(&d.rel_box))).collect());
            }
        }
        out
    }

    /// The 68 points (image pixels) of each box; `None` where the box lies outside the image.
    pub fn landmarks(&self, faces: &[(&Image, Rect)]) -> Vec<Option<Landmarks>> {
        let crops: Vec<Option<Image>> = faces.iter().map(|(im, r)| im.crop(r.x, r.y, r.width, r.height)).collect();
        let inputs: Vec<Image> = crops.iter().flatten().map(|c| c.face_input(FACE_SIZE)).collect();
        let mut found = vec![];
        for chunk in inputs.chunks(BATCH) {
            found.extend(self.landmarks.landmarks(batch(chunk, &self.device)));
        }
        let mut found = found.into_iter();
        crops
            .iter()
            .zip(faces)
            .map(|(c, (_, r))| c.as_ref().map(|c| landmarks68::to_image(&found.next().expect("one per crop"), (c.width, c.height), (r.x, r.y))))
            .collect()
    }

    /// Age, gender, expression (and descriptor, if configured) of face crops: each image is
    /// taken as the face's box (padded to a centred square and resized, as face-api does).
    /// Generated portraits, already framed on the face, can go here directly.
    pub fn attributes(&self, crops: &[Image]) -> Vec<Attributes> {
        self.attributes_with(crops, crops)
    }

    /// As [`Self::attributes`], with the descriptors computed from other crops (face-api
    /// frames faces differently for identity: [`dlib_rect`]).
    fn attributes_with(&self, crops: &[Image], identity_crops: &[Image]) -> Vec<Attributes> {
        let descriptors = self.recognition.as_ref().map(|_| self.descriptors(identity_crops));
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(BATCH) {
            let x = batch(&chunk.iter().map(|c| c.face_input(FACE_SIZE)).collect::<Vec<_>>(), &self.device);
            let expressions = self.expression.expressions(x.clone()); // [n][7]
            let ag = self.age_gender.predict(x);
            for (e, a) in expressions.into_iter().zip(ag) {
                out.push(Attributes { age: a.age, male_probability: a.male, expressions: e, descriptor: None });
            }
        }
        if let Some(d) = descriptors {
            for (a, d) in out.iter_mut().zip(d) {
                a.descriptor = Some(d.to_vec());
            }
        }
        out
    }

    /// The 128-d identity descriptor of each face crop (needs `descriptors: true`; empty
    /// otherwise).
    pub fn descriptors(&self, crops: &[Image]) -> Vec<[f32; recognition::DESCRIPTOR]> {
        let Some(r) = &self.recognition else { return vec![] };
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(BATCH) {
            out.extend(r.descriptors(batch(&chunk.iter().map(|c| c.face_input(recognition::INPUT_SIZE)).collect::<Vec<_>>(), &self.device)));
        }
        out
    }

    /// Every face in every image, with landmarks and attributes.
    pub fn analyze(&self, images: &[Image]) -> Vec<Vec<Face>> {
        let boxes = self.detect(images);
        // (image index, score, box) of every face
        let flat: Vec<(usize, f32, Rect)> = boxes.iter().enumerate().flat_map(|(i, b)| b.iter().map(move |&(s, r)| (i, s, r))).collect();
        let landmarks = self.landmarks(&flat.iter().map(|&(i, _, r)| (&images[i], r)).collect::<Vec<_>>());
        let (mut kept, mut crops, mut identity_crops) = (vec![], vec![], vec![]);
        for (&(i, score, rect), lm) in flat.iter().zip(landmarks) {
            let Some(lm) = lm else { continue };
            let (_, _, cw, ch) = images[i].crop_rect(rect.x, rect.y, rect.width, rect.height).expect("landmarks come from a crop");
            let aligned = aligned_rect(&lm);
            let d = dlib_rect(&lm, (cw, ch));
            let (Some(crop), Some(identity)) = (images[i].crop(aligned.x, aligned.y, aligned.width, aligned.height), images[i].crop(d.x, d.y, d.width, d.height)) else { continue };
            kept.push((i, score, rect, lm, aligned));
            crops.push(crop);
            identity_crops.push(identity);
        }
        let attrs = self.attributes_with(&crops, &identity_crops);
        let mut out: Vec<Vec<Face>> = vec![vec![]; images.len()];
        for ((i, score, rect, landmarks, aligned), attributes) in kept.into_iter().zip(attrs) {
            out[i].push(Face { score, rect, landmarks, aligned, attributes });
        }
        out
    }
}

impl FaceAnalyzer {
    /// The most confident face of each image, FFHQ-aligned ([`crate::align`]) to `size`²;
    /// `None` where no face was found.
    pub fn align(&self, images: &[Image], size: usize) -> Vec<Option<Image>> {
        let boxes = self.detect(images);
        // detections come best first
        let best: Vec<(usize, Rect)> = boxes.iter().enumerate().filter_map(|(i, b)| b.first().map(|&(_, r)| (i, r))).collect();
        let landmarks = self.landmarks(&best.iter().map(|&(i, r)| (&images[i], r)).collect::<Vec<_>>());
        let mut out = vec![None; images.len()];
        for (&(i, _), lm) in best.iter().zip(landmarks) {
            out[i] = lm.map(|lm| crate::align::align(&images[i], &lm, size));
        }
        out
    }
}

/// The attribute networks' outputs as tensors (see [`FaceAnalyzer::attribute_tensors`]).
pub struct AttributeTensors {
    /// `[N]` apparent age in years
    pub age: Tensor<1>,
    /// `[N]` probability of "male"
    pub male: Tensor<1>,
    /// `[N, 7]` expression probabilities in [`EXPRESSIONS`] order
    pub expressions: Tensor<2>,
    /// `[N, 7]` their logits (before the softmax)
    pub expression_logits: Tensor<2>,
}

impl FaceAnalyzer {
    /// Age, gender and expression of a batch of square face crops `[N, 3, H, W]`, RGB in
    /// 0..255, resized to 112 px with burn's bilinear interpolation when needed. Only tensor
    /// ops: on an autodiff device (networks loaded on it) gradients flow back to the images,
    /// e.g. to steer a generator's latents along an attribute. Generated portraits are
    /// already framed like face-api's aligned crops.
    pub fn attribute_tensors(&self, x: Tensor<4>) -> AttributeTensors {
        let [_, _, h, w] = x.dims();
        let x = if (h, w) == (FACE_SIZE, FACE_SIZE) {
            x
        } else {
            interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([FACE_SIZE, FACE_SIZE])) // [N, 3, 112, 112]
        };
        let expression_logits = self.expression.logits(x.clone()); // [N, 7]
        let expressions = softmax(expression_logits.clone(), 1); //   [N, 7]
        let (age, gender) = self.age_gender.forward(x); //            [N], [N, 2]
        let n = gender.dims()[0];
        AttributeTensors { age, male: gender.slice_dim(1, 0..1).reshape([n]), expressions, expression_logits }
    }
}

/// face-api's box for the identity network (`align(null, { useDlibAlignment: true })`): a
/// square of side ⌊mean eye-to-mouth distance / 0.45⌋ around the mean of the two eye centres
/// and the mouth centre (at 50 % across, 43 % down), floored and clipped at 0. face-api also
/// caps the side at `crop + x` of the detection crop's size, reproduced here.
pub fn dlib_rect(lm: &Landmarks, crop: (usize, usize)) -> Rect {
    let [le, re, mouth] = [landmarks68::centre(lm, 36..42), landmarks68::centre(lm, 42..48), landmarks68::centre(lm, 48..68)];
    let dist = |p: [f32; 2]| ((mouth[0] - p[0]).powi(2) + (mouth[1] - p[1]).powi(2)).sqrt();
    let size = ((dist(le) + dist(re)) / 2.0 / 0.45).floor();
    let refp = [(le[0] + re[0] + mouth[0]) / 3.0, (le[1] + re[1] + mouth[1]) / 3.0];
    let x = (refp[0] - 0.5 * size).max(0.0).floor();
    let y = (refp[1] - 0.43 * size).max(0.0).floor();
    Rect { x, y, width: size.min(crop.0 as f32 + x), height: size.min(crop.1 as f32 + y) }
}

/// face-api's `alignedRect`: the landmarks' bounding box, padded by 20 % of its size (half on
/// each side).
pub fn aligned_rect(lm: &Landmarks) -> Rect {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::INFINITY, f32::INFINITY, 0.0f32, 0.0f32);
    for p in lm.iter().take(POINTS) {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let (w, h) = (x1 - x0, y1 - y0);
    // as face-api's Box.pad(w · 0.2, h · 0.2)
    let (px, py) = (w * 0.2, h * 0.2);
    Rect { x: x0 - px / 2.0, y: y0 - py / 2.0, width: w + px, height: h + py }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn attrs(age: f32, male: f32, happy: f32) -> Attributes {
        Attributes::from_readings(age, male, happy)
    }

    #[test]
    fn sentences_say_only_what_the_models_are_sure_of() {
        assert_eq!(attrs(30.2, 0.05, 0.9).sentence(), "a smiling woman, about 30");
        assert_eq!(attrs(44.6, 0.97, 0.1).sentence(), "a man, about 45");
        assert_eq!(attrs(7.0, 0.6, 0.2).sentence(), "a child, about 7");
        assert_eq!(attrs(25.0, 0.45, 0.2).sentence(), "a person, about 25");
        assert_eq!(attrs(9.0, 0.1, 0.7).sentence(), "a smiling girl, about 9");
        let mut a = attrs(50.0, 0.9, 0.0);
        a.expressions = [0.1, 0.0, 0.0, 0.8, 0.0, 0.0, 0.1];
        assert_eq!(a.sentence(), "an angry-looking man, about 50");
        assert_eq!(a.expression(), ("angry", 0.8));
        assert_eq!(a.gender(), ("male", 0.9));
    }

    #[test]
    fn aligned_rect_pads_the_landmark_box_by_a_fifth() {
        let mut lm = [[50.0f32, 50.0]; POINTS];
        lm[0] = [10.0, 20.0];
        lm[1] = [110.0, 70.0];
        let r = aligned_rect(&lm);
        assert_eq!((r.x, r.y, r.width, r.height), (0.0, 15.0, 120.0, 60.0));
    }
}
