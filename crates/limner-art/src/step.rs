//! One art step on a picture, as the studio applies it to a kept face: style transfer (one of the
//! 26 presets or a mix of them, or a painting given as a picture; strength; keep colours) or
//! DeepDream (a layer, a strength). [`ArtStep`] is the small JSON a kept image's recipe records
//! ([`ArtRecipe`]: the step and its source), [`ArtStep::apply`] does the work (at [`ART_SIDE`] to
//! [`ART_MAX_SIDE`] px: the default model's 64 px faces are scaled up first, as `limner style
//! --content seed:N` does), and [`provenance`] labels the result.

use anyhow::{ensure, Context, Result};
use limner_data::provenance::{Provenance, SourceType};
use limner_nets::InceptionV3;
use serde::{Deserialize, Serialize};

use crate::dream::{dream_with, DreamConfig};
use crate::fast::{self, FastOptions, Style};
use crate::{Image, Picture};

/// The side the art step works at: a smaller face is scaled up to it first, a face larger than
/// [`ART_MAX_SIDE`] scaled down to that (DeepDream's cost grows with the pixels).
pub const ART_SIDE: usize = 256;
pub const ART_MAX_SIDE: usize = 512;
/// DeepDream's gradient steps per octave at strength 1 (3 octaves).
pub const DREAM_STEPS_AT_FULL: usize = 12;
pub const DREAM_OCTAVES: usize = 3;
/// The layers a dream may amplify (limner's InceptionV3 runs up to `mixed5`).
pub const DREAM_LAYERS: [&str; 6] = ["mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5"];

/// What the art step does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ArtStep {
    /// feed-forward style transfer (`limner style --method fast`)
    Style {
        /// a preset or a mix (`style-07`, `style-03:0.5,style-12:0.5`), or
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preset: Option<String>,
        /// the sha256 of the painting whose style is taken (arbitrary style transfer)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        painting_sha256: Option<String>,
        /// 0 to 1
        strength: f32,
        keep_colours: bool,
    },
    /// DeepDream on one InceptionV3 layer (`limner dream`)
    Dream {
        layer: String,
        /// 0 to 1: the number of gradient steps, up to [`DREAM_STEPS_AT_FULL`] per octave
        strength: f32,
        /// seeds the jitter
        seed: u64,
    },
}

impl ArtStep {
    /// Checks the settings (before any work is queued).
    pub fn check(&self) -> Result<()> {
        match self {
            ArtStep::Style { preset, painting_sha256, strength, .. } => {
                ensure!(strength.is_finite() && (0.0..=1.0).contains(strength), "strength: a number from 0 to 1");
                ensure!(preset.is_some() != painting_sha256.is_some(), "style: give a preset or a painting, one of them");
                if let Some(p) = preset {
                    ensure!(p.len() <= 400, "preset: at most 400 characters");
                    fast::parse_presets(p)?;
                }
            }
            ArtStep::Dream { layer, strength, .. } => {
                ensure!(DREAM_LAYERS.contains(&layer.as_str()), "layer `{}`: one of {}", layer.chars().take(40).collect::<String>(), DREAM_LAYERS.join(", "));
                ensure!(strength.is_finite() && *strength > 0.0 && *strength <= 1.0, "strength: a number above 0, at most 1");
            }
        }
        Ok(())
    }

    /// DeepDream's settings for this step (`None` for style transfer).
    pub fn dream_config(&self) -> Option<DreamConfig> {
        let ArtStep::Dream { layer, strength, seed } = self else { return None };
        let steps = ((*strength * DREAM_STEPS_AT_FULL as f32).round() as usize).max(1);
        Some(DreamConfig { layers: vec![layer.parse().ok()?], octaves: DREAM_OCTAVES, steps, seed: *seed, ..DreamConfig::default() })
    }

    /// Applies the step to `face` (8-bit RGB, `w`×`h`): `painting` is the style picture of a
    /// painting step, `net` the InceptionV3 a dream runs on. Returns 8-bit RGB and its size.
    pub fn apply(&self, face: &[u8], w: usize, h: usize, painting: Option<&Image>, net: Option<&InceptionV3>) -> Result<(Vec<u8>, usize, usize)> {
        self.check()?;
        let content = Image::from_rgb8(w, h, face);
        let side = w.max(h).clamp(ART_SIDE, ART_MAX_SIDE);
        match self {
            ArtStep::Style { preset, strength, keep_colours, .. } => {
                let style = match preset {
                    Some(p) => Style::Presets(fast::parse_presets(p)?),
                    None => Style::Image(painting.context("this style step needs its painting")?.clone()),
                };
                let out = fast::stylize(&content, &style, &FastOptions { strength: *strength, size: Some(side), preserve_colour: *keep_colours })?;
                Ok((out.to_rgb8(), out.w, out.h))
            }
            ArtStep::Dream { .. } => {
                let cfg = self.dream_config().context("a dream layer")?;
                let net = net.context("a dream needs InceptionV3 (`limner models fetch --only inception-v3`)")?;
                let (ow, oh) = crate::image::fit_size(w, h, side);
                let pic = Picture::from_rgb8(w, h, face)?.resized(ow, oh);
                let out = dream_with(net, &pic, &cfg, &mut |_| {})?;
                Ok((out.to_rgb8(), out.width, out.height))
            }
        }
    }
}

/// The schema version of [`ArtRecipe`].
pub const ART_RECIPE_VERSION: u32 = 1;

/// What an art step was applied to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ArtSource {
    /// a kept image: its id in the gallery, the sha256 of its PNG and its recipe
    Image { image: i64, sha256: String, recipe: serde_json::Value },
    /// a person's own photo (its face, aligned), by the sha256 of the uploaded file
    Photo { sha256: String },
}

/// The recipe of a picture made by an art step: the step, its source, the output size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtRecipe {
    pub limner_art: u32,
    pub art: ArtStep,
    pub source: ArtSource,
    pub width: usize,
    pub height: usize,
}

impl ArtRecipe {
    pub fn new(art: ArtStep, source: ArtSource) -> Self {
        Self { limner_art: ART_RECIPE_VERSION, art, source, width: 0, height: 0 }
    }

    /// Parses a recipe that is an art step's (`None` for any other JSON).
    pub fn from_value(v: &serde_json::Value) -> Option<Self> {
        v.get("limner_art")?;
        serde_json::from_value(v.clone()).ok()
    }

    /// Whether a person's own photo is at the root of this picture (directly, or through the
    /// art steps its source went through).
    pub fn on_a_photo(&self) -> bool {
        match &self.source {
            ArtSource::Photo { .. } => true,
            ArtSource::Image { recipe, .. } => Self::from_value(recipe).is_some_and(|r| r.on_a_photo()),
        }
    }

    /// The model that made the face at the root (its sha256), when there is one.
    pub fn model_sha256(&self) -> Option<String> {
        match &self.source {
            ArtSource::Photo { .. } => None,
            ArtSource::Image { recipe, .. } => match Self::from_value(recipe) {
                Some(r) => r.model_sha256(),
                None => recipe.pointer("/model/sha256").and_then(|s| s.as_str()).map(String::from),
            },
        }
    }

    /// The provenance label of the picture ([`provenance`]).
    pub fn provenance(&self) -> Provenance {
        let mut v = serde_json::to_value(self).expect("art recipes serialise");
        if let Some(r) = v.pointer_mut("/source/recipe") {
            // the label names models by their label name, as every recipe label does
            name_models(r);
        }
        provenance(v, self.on_a_photo(), self.model_sha256())
    }
}

/// `"model": {"name": …}` → the model's label name (a generator file's name, never a folder
/// of the user's disk), as `limner_edit::recipe::name_models` does.
fn name_models(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "model" {
                    if let Some(Value::String(name)) = x.get_mut("name") {
                        if let Ok(label) = limner_models::model_label(name) {
                            *name = label;
                        }
                    }
                }
                name_models(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(name_models),
        _ => {}
    }
}

/// The label of an art step's result: `recipe` (the step and its source) as the recipe; a
/// composite (`compositeWithTrainedAlgorithmicMedia`) when the source was a person's own photo,
/// wholly generated (`trainedAlgorithmicMedia`) when it was a generated face (issue 18 §5).
pub fn provenance(recipe: serde_json::Value, on_a_photo: bool, model_sha256: Option<String>) -> Provenance {
    let source = if on_a_photo { SourceType::CompositeWithTrainedAlgorithmicMedia } else { SourceType::TrainedAlgorithmicMedia };
    Provenance::new(source).with_recipe_json(recipe).with_model_sha256(model_sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_checked_and_round_trip_as_json() {
        let s = ArtStep::Style { preset: Some("style-07".into()), painting_sha256: None, strength: 0.8, keep_colours: true };
        s.check().unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["kind"], "style");
        assert_eq!(serde_json::from_value::<ArtStep>(v).unwrap(), s);
        let both = ArtStep::Style { preset: Some("style-07".into()), painting_sha256: Some("ab".into()), strength: 0.8, keep_colours: false };
        assert!(both.check().unwrap_err().to_string().contains("one of them"));
        let bad = ArtStep::Style { preset: Some("style-99".into()), painting_sha256: None, strength: 0.5, keep_colours: false };
        assert!(bad.check().is_err());
        let nan = ArtStep::Style { preset: Some("style-01".into()), painting_sha256: None, strength: f32::NAN, keep_colours: false };
        assert!(nan.check().is_err());
        let d = ArtStep::Dream { layer: "mixed3".into(), strength: 0.5, seed: 1 };
        d.check().unwrap();
        let cfg = d.dream_config().unwrap();
        assert_eq!((cfg.steps, cfg.octaves), (6, DREAM_OCTAVES));
        assert!(ArtStep::Dream { layer: "mixed9".into(), strength: 0.5, seed: 1 }.check().is_err());
        assert!(ArtStep::Dream { layer: "mixed3".into(), strength: 0.0, seed: 1 }.check().is_err());
    }

    #[test]
    fn a_photo_makes_a_composite_and_a_generated_face_does_not() {
        let dream = ArtStep::Dream { layer: "mixed3".into(), strength: 0.5, seed: 0 };
        let face = serde_json::json!({"limner_recipe": 1, "model": {"name": "default", "sha256": "abc"}});
        let on_face = ArtRecipe::new(dream.clone(), ArtSource::Image { image: 3, sha256: "f".into(), recipe: face });
        assert!(!on_face.on_a_photo());
        assert_eq!(on_face.provenance().source, SourceType::TrainedAlgorithmicMedia);
        assert_eq!(on_face.model_sha256().as_deref(), Some("abc"));
        let on_photo = ArtRecipe::new(dream.clone(), ArtSource::Photo { sha256: "p".into() });
        assert_eq!(on_photo.provenance().source, SourceType::CompositeWithTrainedAlgorithmicMedia);
        // a second step on the first's result: still a composite of the photo
        let again = ArtRecipe::new(dream, ArtSource::Image { image: 4, sha256: "g".into(), recipe: serde_json::to_value(&on_photo).unwrap() });
        assert!(again.on_a_photo());
        assert_eq!(ArtRecipe::from_value(&serde_json::to_value(&again).unwrap()), Some(again));
        assert_eq!(ArtRecipe::from_value(&serde_json::json!({"limner_recipe": 1})), None);
    }
}
