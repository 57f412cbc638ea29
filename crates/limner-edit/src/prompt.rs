//! `limner generate --prompt`: a prompt is parsed into attribute targets (gender, an age
//! band or number, smiling or not), and each sample is moved along the named directions
//! ([`crate::directions`]) until the attribute networks agree, by a per-sample line search
//! with bounded steps. Only what the face networks can measure is understood; anything
//! else is an error that lists the words the prompt understands.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use limner_faces::describe::{Attributes, Face, FaceAnalyzer};
use limner_faces::human::{Judge, Reading};
use limner_faces::landmarks68::Landmarks;
use limner_faces::Image;

use crate::directions::Directions;
use crate::model::{group_rows, read_faces, seed_w, LayerGroup, Model, WPlus};

/// An apparent-age target in years, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AgeRange {
    pub min: f32,
    pub max: f32,
}

/// What a prompt asks for. `None`: not asked, left as the seed made it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Targets {
    /// `Some(true)`: male
    pub male: Option<bool>,
    pub age: Option<AgeRange>,
    /// `Some(true)`: smiling; `Some(false)`: not smiling
    pub smiling: Option<bool>,
    /// another expression, by face-api's label (`surprised`, `angry`, `sad`, `neutral`: see
    /// [`EXPRESSIONS_STEERED`]), steered along the direction of that name
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<&'static str>,
}

const GENDER_WORDS: [(&str, bool); 12] = [
    ("man", true),
    ("men", true),
    ("male", true),
    ("guy", true),
    ("gentleman", true),
    ("boy", true),
    ("woman", false),
    ("women", false),
    ("female", false),
    ("lady", false),
    ("girl", false),
    ("gal", false),
];
const AGE_WORDS: [(&str, f32, f32); 10] = [
    ("young", 0.0, 29.0),
    ("younger", 0.0, 29.0),
    ("youthful", 0.0, 29.0),
    ("child", 0.0, 12.0),
    ("kid", 0.0, 12.0),
    ("teenage", 13.0, 19.0),
    ("teenager", 13.0, 19.0),
    ("old", 50.0, 120.0),
    ("elderly", 50.0, 120.0),
    ("senior", 50.0, 120.0),
];
const SMILE_WORDS: [(&str, bool); 7] =
    [("smiling", true), ("smile", true), ("smiles", true), ("happy", true), ("grinning", true), ("serious", false), ("unsmiling", false)];
/// Expressions other than smiling that a prompt can ask for: face-api's label (also the name of
/// the direction steered along, [`crate::directions::EXPRESSION_DIRECTIONS`]), the independent
/// emotion network's label for it, and the words that ask for it.
pub const EXPRESSIONS_STEERED: [(&str, &str, &[&str]); 4] = [
    ("surprised", "surprise", &["surprised", "astonished", "amazed", "shocked"]),
    ("angry", "angry", &["angry", "furious", "annoyed", "cross"]),
    ("sad", "sad", &["sad", "unhappy", "sorrowful", "gloomy"]),
    ("neutral", "neutral", &["neutral", "expressionless", "deadpan"]),
];
const FILLER: [&str; 20] = [
    "a", "an", "the", "of", "with", "and", "person", "face", "portrait", "photo", "picture", "who", "is", "looking", "aged", "age", "years", "year", "old-looking", "in",
];
/// Expressions both emotion networks can read but no prompt steers: why, per word.
const UNSTEERED_EXPRESSIONS: [(&str, &str); 4] = [("fearful", "fear"), ("scared", "fear"), ("afraid", "fear"), ("disgusted", "disgust")];
/// Things people ask for that no network here can judge, and the words that ask for them.
const UNMEASURABLE: [(&str, &[&str]); 7] = [
    ("crying or laughing (the emotion networks' nearest labels are sad and happy)", &["crying", "tearful", "laughing"]),
    ("glasses", &["glasses", "spectacles", "sunglasses", "eyeglasses"]),
    ("facial hair", &["beard", "bearded", "moustache", "mustache", "stubble"]),
    ("hair colour or style", &["hair", "blonde", "blond", "brunette", "redhead", "red-haired", "bald", "curly", "grey-haired", "gray-haired"]),
    ("headwear", &["hat", "cap", "headscarf"]),
    ("makeup or jewellery", &["makeup", "lipstick", "earrings"]),
    ("skin tone or ethnicity", &["black", "white", "asian", "african", "caucasian", "latino", "indian", "pale", "tanned"]),
];
/// Why none of them can be judged here.
const UNMEASURABLE_WHY: &str = "face-api reads age, gender, 7 expressions and an identity descriptor, human-models' converted networks age, gender and the same 7 emotions, so it would be steered blind and could not be checked";

/// Every word a prompt understands, for error messages.
pub fn vocabulary() -> String {
    let g: Vec<&str> = GENDER_WORDS.iter().map(|w| w.0).collect();
    let a: Vec<&str> = AGE_WORDS.iter().map(|w| w.0).collect();
    let mut s: Vec<&str> = SMILE_WORDS.iter().map(|w| w.0).collect();
    s.extend(EXPRESSIONS_STEERED.iter().flat_map(|e| e.2.iter().copied()));
    format!(
        "gender: {}; age: {}, middle-aged, a number (\"40\", \"40-year-old\", \"40s\", \"in his 40s\"); expression: {} (and \"not smiling\"); ignored: {}",
        g.join(", "),
        a.join(", "),
        s.join(", "),
        FILLER.join(", ")
    )
}

/// Parses a prompt such as "a smiling old man" or "a 30-year-old woman, not smiling".
pub fn parse(prompt: &str) -> Result<Targets> {
    let mut t = Targets::default();
    let lower = prompt.to_lowercase();
    let words: Vec<String> = lower.split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == ';').filter(|w| !w.is_empty()).map(str::to_string).collect();
    if words.is_empty() {
        bail!("the prompt is empty; it understands {}", vocabulary());
    }
    let mut unknown = vec![];
    let mut negate = false;
    let set_age = |t: &mut Targets, r: AgeRange, w: &str| -> Result<()> {
        if let Some(old) = t.age.filter(|o| *o != r) {
            bail!("the prompt asks for two ages ({}–{} and `{w}`)", old.min, old.max);
        }
        t.age = Some(r);
        Ok(())
    };
    for w in &words {
        let w = w.as_str();
        if matches!(w, "not" | "no" | "without") {
            negate = true;
            continue;
        }
        let neg = std::mem::take(&mut negate);
        if let Some(&(_, male)) = GENDER_WORDS.iter().find(|g| g.0 == w) {
            if t.male.is_some_and(|m| m != male) {
                bail!("the prompt asks for both genders");
            }
            t.male = Some(male);
            if matches!(w, "boy" | "girl") {
                set_age(&mut t, AgeRange { min: 0.0, max: 12.0 }, w)?;
            }
        } else if w == "his" || w == "her" {
            t.male = t.male.or(Some(w == "his"));
        } else if let Some(&(_, lo, hi)) = AGE_WORDS.iter().find(|a| a.0 == w) {
            set_age(&mut t, AgeRange { min: lo, max: hi }, w)?;
        } else if w == "middle-aged" {
            set_age(&mut t, AgeRange { min: 35.0, max: 55.0 }, w)?;
        } else if let Some(r) = age_number(w) {
            set_age(&mut t, r, w)?;
        } else if let Some(&(_, s)) = SMILE_WORDS.iter().find(|s| s.0 == w) {
            t.smiling = Some(s != neg);
        } else if let Some(&(label, _, _)) = EXPRESSIONS_STEERED.iter().find(|e| e.2.contains(&w)) {
            if neg {
                bail!("`not {w}`: a prompt can ask for an expression but not for its absence (except \"not smiling\")");
            }
            if t.expression.is_some_and(|e| e != label) {
                bail!("the prompt asks for two expressions ({} and `{w}`)", t.expression.unwrap_or_default());
            }
            t.expression = Some(label);
        } else if FILLER.contains(&w) {
        } else if let Some((_, what)) = UNSTEERED_EXPRESSIONS.iter().find(|e| e.0 == w) {
            unknown.push(format!("`{w}` (both emotion networks read {what}, but face-api reads it on almost none of the portraits the directions were fitted on, so prompts do not steer it: they steer smiling, surprised, angry, sad and neutral)"));
        } else if let Some((what, _)) = UNMEASURABLE.iter().find(|u| u.1.contains(&w)) {
            unknown.push(format!("`{w}` (no network limner runs judges {what}: {UNMEASURABLE_WHY})"));
        } else {
            unknown.push(format!("`{w}`"));
        }
    }
    if !unknown.is_empty() {
        bail!("the prompt has words it does not understand: {}. It understands {}", unknown.join(", "), vocabulary());
    }
    if t.expression.is_some() && t.smiling == Some(true) {
        bail!("the prompt asks for two expressions (smiling and {})", t.expression.unwrap_or_default());
    }
    if t == Targets::default() {
        bail!("the prompt asks for nothing measurable; it understands {}", vocabulary());
    }
    Ok(t)
}

/// "40", "40-year-old", "40s", "40-something": an age (±5 years) or a decade.
fn age_number(w: &str) -> Option<AgeRange> {
    let w = w.trim_end_matches("-year-old").trim_end_matches("-years-old").trim_end_matches("yo").trim_end_matches("-something");
    if let Some(d) = w.strip_suffix("s").and_then(|d| d.parse::<u32>().ok()).filter(|d| d % 10 == 0 && *d <= 90) {
        return Some(AgeRange { min: d as f32, max: d as f32 + 9.0 });
    }
    let n: f32 = w.parse::<u32>().ok().filter(|&n| (1..=100).contains(&n))? as f32;
    Some(AgeRange { min: n - 5.0, max: n + 5.0 })
}

/// The age band the steering aims face-api's reading into: the asked range shrunk by a quarter
/// of its width (at most [`AGE_MARGIN`] years) at each bounded end (a lower bound of 0 is left
/// as it is). face-api's age network reads random-face's faces about ten years older than the
/// independent FaceRes does (median 54 vs 44 on seeds 0–31; 10–20 years on most seeds steered
/// to "an old woman"), so steering that stops as soon as face-api reads "50" leaves most "old"
/// faces in their thirties and forties by the other judge (6/32 old by it); "old" (50+) is
/// steered until face-api reads 65, "young" (≤ 29) until it reads 21.
pub fn steering_range(r: AgeRange) -> AgeRange {
    let m = ((r.max - r.min) / 4.0).min(AGE_MARGIN);
    AgeRange { min: if r.min > 0.0 { r.min + m } else { r.min }, max: r.max - m }
}

/// The largest margin [`steering_range`] keeps inside an asked age range, in years.
pub const AGE_MARGIN: f32 = 15.0;

/// How far an attribute reading is from one target (0 when met; positive distances), and
/// the sign of the step along its direction that would help. Age is measured against
/// [`steering_range`].
fn gaps(t: &Targets, a: &Attributes) -> [(f32, f32); 3] {
    let gender = match t.male {
        // the description says "man"/"woman" from 70 % on
        Some(m) => {
            let p = if m { a.male_probability } else { 1.0 - a.male_probability };
            ((0.75 - p).max(0.0), if m { 1.0 } else { -1.0 })
        }
        None => (0.0, 0.0),
    };
    let age = match t.age.map(steering_range) {
        Some(r) => {
            let age = a.age.round();
            if age < r.min {
                ((r.min - age) / 10.0, 1.0)
            } else if age > r.max {
                ((age - r.max) / 10.0, -1.0)
            } else {
                (0.0, 0.0)
            }
        }
        None => (0.0, 0.0),
    };
    let (e, p) = a.expression();
    let smile = match (t.expression, t.smiling) {
        // another expression: the most likely at 55 % (the description says it from 50 %)
        (Some(x), _) => (if e == x && p >= 0.55 { 0.0 } else { (0.6 - a.expressions[expression_index(x)]).max(0.01) }, 1.0),
        (None, Some(true)) => (if e == "happy" && p >= 0.55 { 0.0 } else { (0.6 - a.expressions[1]).max(0.01) }, 1.0),
        (None, Some(false)) => (if e == "happy" && p >= 0.5 { a.expressions[1] } else { 0.0 }, -1.0),
        (None, None) => (0.0, 0.0),
    };
    [gender, age, smile]
}

/// face-api's index of an expression label ([`limner_faces::expression::EXPRESSIONS`]).
fn expression_index(label: &str) -> usize {
    limner_faces::expression::EXPRESSIONS.iter().position(|e| *e == label).expect("a face-api expression label")
}

/// The direction the third slider moves along: the asked expression's, else smile's.
pub fn expression_direction(t: &Targets) -> &'static str {
    t.expression.unwrap_or("smile")
}

/// Whether a reading meets the targets as the one-line description would say it: "man" or
/// "woman" (≥ 70 %), "about N" inside the age range, "smiling" (happy the most likely at
/// ≥ 50 %) or not, another asked expression the most likely at ≥ 50 %.
pub fn satisfied(t: &Targets, a: &Attributes) -> bool {
    let (g, gp) = a.gender();
    let (e, ep) = a.expression();
    let smiling = e == "happy" && ep >= 0.5;
    t.male.is_none_or(|m| gp >= 0.7 && (g == "male") == m)
        && t.age.is_none_or(|r| (r.min..=r.max).contains(&a.age.round().max(1.0)))
        && t.smiling.is_none_or(|s| s == smiling)
        && t.expression.is_none_or(|x| e == x && ep >= 0.5)
}

/// Settings of the search.
#[derive(Clone, Debug)]
pub struct SteerConfig {
    /// step sizes tried along a direction, in slider units (sigma), smallest first
    pub steps: Vec<f32>,
    /// the largest total move along one direction, in slider units (the step-grid search)
    pub max_total: f32,
    /// the largest total move along one direction in the per-seed search, in slider units
    /// (random-face's faces stay faces to about ±8: seed 11 reads as a man only from gender +8)
    pub reach: f32,
    /// passes over the targets
    pub rounds: usize,
    /// the largest move along one direction in one iteration of the per-seed search, in slider units
    pub max_step: f32,
    /// iterations of the per-seed search (used when the directions record slopes)
    pub iterations: usize,
    pub psi: f32,
    pub noise: f32,
    /// the layer groups the age direction moves (gender and smile move every style layer);
    /// empty: every layer (the default). Measured on random-face, seeds 0-31: age in the
    /// coarse and middle layers only keeps the person a little more often but makes fewer
    /// faces old by the independent judge ("an old woman": 16/32 and 8/32 the same person,
    /// against 22/32 and 6/32 in every layer); coarse alone 4/32 old, 24/32 the same person.
    pub age_layers: Vec<LayerGroup>,
    /// with an age asked: the largest face-api identity distance a steered face may keep from
    /// its unsteered self (see [`keep_identity`]); `None`: no cap
    pub identity_cap: Option<f32>,
    /// with an age asked: refine every seed the linear search left at a face-api identity
    /// distance of [`REFINE_ABOVE`] or more by gradient ([`crate::refine`]) before the cap's
    /// re-renders; `None`: off
    pub refine: Option<crate::refine::RefineConfig>,
    /// with "smiling" asked: the smile slider every seed starts from, in slider units (sigma),
    /// before the per-seed search. face-api reads most generated portraits happy at 0.99+, so
    /// its reading alone leaves the smile as the seed had it, and the independent emotion
    /// network reads many of those faces (old ones most) angry or neutral. The refinement does
    /// not lock it as it locks the age move (locking both kept the person on fewer seeds: 25 vs
    /// 29 of 32 for "a smiling old man", README).
    pub smile_floor: f32,
}

/// [`SteerConfig::smile_floor`] where the prompt asks for a smile, else 0.
fn smile_floor(t: &Targets, cfg: &SteerConfig) -> f32 {
    if t.smiling == Some(true) && t.expression.is_none() { cfg.smile_floor } else { 0.0 }
}

/// The default [`SteerConfig::smile_floor`].
pub const SMILE_FLOOR: f32 = 3.0;

/// The identity distance from which [`steer`] refines a seed (with `refine` on).
pub const REFINE_ABOVE: f32 = 0.55;

impl Default for SteerConfig {
    fn default() -> Self {
        Self {
            steps: vec![0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
            max_total: 5.0,
            rounds: 3,
            reach: 8.0,
            max_step: 3.0,
            iterations: 6,
            psi: 0.7,
            noise: 1.0,
            age_layers: vec![],
            identity_cap: None,
            refine: None,
            smile_floor: SMILE_FLOOR,
        }
    }
}

/// `--age-layers`: `all` (every layer: none named) or comma-separated layer groups.
pub fn parse_age_layers(s: &str) -> Result<Vec<LayerGroup>> {
    if s.trim() == "all" {
        return Ok(vec![]);
    }
    s.split(',').filter(|p| !p.trim().is_empty()).map(LayerGroup::parse).collect::<Result<Vec<_>>>().and_then(|v| {
        if v.is_empty() {
            bail!("--age-layers names no layer group: use all, or coarse, middle, fine (comma separated)")
        }
        Ok(v)
    })
}

/// `--identity-cap`: `off` or a face-api identity distance in (0, 2].
pub fn parse_identity_cap(s: &str) -> Result<Option<f32>> {
    parse_off_or("--identity-cap", s, |d| d > 0.0 && d <= 2.0, "a face-api identity distance in (0, 2] (0.6: the same person)")
}

/// A flag's value that is a number for which `ok` holds, or `off` (`None`); anything else is an
/// error naming the flag, the value and what to give (`want`).
pub fn parse_off_or(flag: &str, s: &str, ok: impl Fn(f32) -> bool, want: &str) -> Result<Option<f32>> {
    if s.trim() == "off" {
        return Ok(None);
    }
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(Some(x)),
        _ => bail!("{flag} `{s}`: give {want} or `off`"),
    }
}

/// The style rows the age direction moves: `cfg.age_layers`' rows, or every row when none is
/// named (or the model has no rows in them).
pub fn age_rows(g: &dyn Model, cfg: &SteerConfig) -> Vec<usize> {
    rows_of(g, &cfg.age_layers)
}

/// The style rows of layer groups, or every row when none is named (or the model has no rows
/// in them).
fn rows_of(g: &dyn Model, groups: &[LayerGroup]) -> Vec<usize> {
    let mut rows: Vec<usize> = groups.iter().flat_map(|&l| group_rows(g, l)).collect();
    rows.sort_unstable();
    rows.dedup();
    if rows.is_empty() {
        (0..g.num_ws()).collect()
    } else {
        rows
    }
}

/// `w` moved along gender and smile in every style row and along age in `age_rows` only
/// (slider values in gender, age, smile order; `idx`: their directions).
pub fn steered_w(dirs: &Directions, idx: &[usize], w: &[f32], v: &[f32; 3], rows: usize, age_rows: &[usize]) -> WPlus {
    let mut p = WPlus::broadcast(&dirs.apply(w, &[(idx[0], v[0]), (idx[2], v[2])]), rows);
    let step = v[1] * dirs.meta.attributes[idx[1]].sigma;
    if step != 0.0 {
        for &r in age_rows {
            p.row_mut(r).iter_mut().zip(&dirs.vectors[idx[1]]).for_each(|(o, d)| *o += step * d);
        }
    }
    p
}

/// One steered seed.
#[derive(Clone, Debug, Serialize)]
pub struct Steered {
    pub seed: u64,
    /// slider values reached (gender, age, smile order of the directions)
    pub sliders: Vec<(String, f32)>,
    /// the steering model's reading of the final image (the whole image as the face crop)
    pub steering: Attributes,
    /// whether the steering reading meets the targets
    pub steering_met: bool,
    #[serde(skip)]
    pub image: Image,
    /// the unsteered face
    #[serde(skip)]
    pub initial: Image,
    /// the steered face's `w+` (age moves only [`age_rows`]), for its recipe
    #[serde(skip)]
    pub w: WPlus,
    /// the layer groups age moved in for this seed (empty: as configured), when
    /// [`keep_identity`] narrowed them
    pub age_layers: Vec<LayerGroup>,
    /// the gradient refinement's trace (face-api's in-graph age and identity distance per
    /// step) and the step kept, when it moved this seed's `w+` ([`crate::refine`])
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refined: Option<RefinedReport>,
}

/// What [`crate::refine`] did to one seed, for the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct RefinedReport {
    pub kept: usize,
    pub start_identity: f32,
    pub trace: Vec<crate::refine::RefineStep>,
}

fn total_gap(g: &[(f32, f32); 3]) -> f32 {
    g.iter().map(|x| x.0).sum()
}

/// Moves each seed's `w` along the directions until the attribute networks (on the whole
/// portrait as the crop, as the directions were labelled) read the targets (or the step budget is spent). For every round and every direction whose target
/// is unmet, all step sizes are tried at once (one batch over seeds × steps) and the
/// smallest step that meets that target without undoing the others is kept, else the step
/// that closes most of the total gap.
/// With `cfg.identity_cap` and an age asked, `identity` (face-api with descriptors) then
/// checks every steered face against its unsteered self ([`keep_identity`]).
#[allow(clippy::too_many_arguments)]
pub fn steer(
    g: &dyn Model,
    dirs: &Directions,
    fa: &FaceAnalyzer,
    identity: Option<&FaceAnalyzer>,
    seeds: &[u64],
    t: &Targets,
    cfg: &SteerConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Steered>> {
    let names = ["gender", "age", expression_direction(t)];
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            dirs.index(n).with_context(|| {
                format!("these directions cannot steer `{n}`: fit them with `limner models directions --model {} --expressions` (or pass --directions FILE)", dirs.meta.model)
            })
        })
        .collect::<Result<_>>()?;
    let base = seed_w(g, seeds, cfg.psi);
    let mut sliders = vec![[0.0f32; 3]; seeds.len()];
    let rows = age_rows(g, cfg);
    let ws_of = |s: usize, v: &[f32; 3]| steered_w(dirs, &idx, &base[s], v, g.num_ws(), &rows);
    let eval = |pairs: &[(usize, [f32; 3])]| -> Vec<(Image, Attributes)> {
        let ws: Vec<WPlus> = pairs.iter().map(|(s, v)| ws_of(*s, v)).collect();
        let sd: Vec<u64> = pairs.iter().map(|(s, _)| seeds[*s]).collect();
        let imgs = g.render(&ws, &sd, cfg.noise);
        let at = read_faces(g, fa, &imgs);
        imgs.into_iter().zip(at).collect()
    };
    let mut current = eval(&(0..seeds.len()).map(|s| (s, [0.0; 3])).collect::<Vec<_>>());
    if idx.iter().all(|&i| dirs.meta.attributes[i].slope > 0.0) {
        let mut out = steer_secant(&eval, dirs, &idx, seeds, t, cfg, current, progress);
        for (s, st) in out.iter_mut().enumerate() {
            st.w = steered_w(dirs, &idx, &base[s], &[st.sliders[0].1, st.sliders[1].1, st.sliders[2].1], g.num_ws(), &rows);
        }
        if let (Some(rc), Some(id), Some(_)) = (&cfg.refine, identity, t.age) {
            refine_seeds(g, fa, id, t, cfg, rc, &dirs.vectors[idx[1]], &mut out)?;
        }
        if let (Some(cap), Some(id), Some(_)) = (cfg.identity_cap, identity, t.age) {
            let render = |c: &[(usize, [f32; 3], Vec<usize>)]| -> Vec<(Image, Attributes)> {
                let ws: Vec<WPlus> = c.iter().map(|(s, v, rows)| steered_w(dirs, &idx, &base[*s], v, g.num_ws(), rows)).collect();
                let sd: Vec<u64> = c.iter().map(|(s, _, _)| seeds[*s]).collect();
                let imgs = g.render(&ws, &sd, cfg.noise);
                let at = read_faces(g, id, &imgs);
                imgs.into_iter().zip(at).collect()
            };
            let masks: Vec<(Vec<LayerGroup>, Vec<usize>)> = IDENTITY_MASKS.iter().map(|m| (m.to_vec(), rows_of(g, m))).collect();
            keep_identity(&render, &|imgs| describe_reading(id, &imgs), &masks, t, cap, &mut out);
        }
        for (s, st) in out.iter_mut().enumerate() {
            if !st.age_layers.is_empty() {
                st.w = steered_w(dirs, &idx, &base[s], &[st.sliders[0].1, st.sliders[1].1, st.sliders[2].1], g.num_ws(), &rows_of(g, &st.age_layers));
            }
        }
        return Ok(out);
    }
    let initial: Vec<Image> = current.iter().map(|c| c.0.clone()).collect();
    let total_work = cfg.rounds * 3;
    for round in 0..cfg.rounds {
        for k in 0..3 {
            progress(round * 3 + k, total_work);
            // seeds whose target k is unmet
            let todo: Vec<usize> = (0..seeds.len()).filter(|&s| gaps(t, &current[s].1)[k].0 > 0.0).collect();
            if todo.is_empty() {
                continue;
            }
            let mut pairs = vec![];
            for &s in &todo {
                let sign = gaps(t, &current[s].1)[k].1;
                for &st in &cfg.steps {
                    let mut v = sliders[s];
                    v[k] = (v[k] + sign * st).clamp(-cfg.max_total, cfg.max_total);
                    pairs.push((s, v));
                }
            }
            let results = eval(&pairs);
            let per = cfg.steps.len();
            for (j, &s) in todo.iter().enumerate() {
                let cands = &pairs[j * per..(j + 1) * per];
                let res = &results[j * per..(j + 1) * per];
                let now = total_gap(&gaps(t, &current[s].1));
                // smallest step meeting target k without raising the other gaps
                let pick = (0..per).find(|&c| {
                    let gg = gaps(t, &res[c].1);
                    gg[k].0 == 0.0 && total_gap(&gg) <= now
                });
                let pick = pick.or_else(|| {
                    let best = (0..per).min_by(|&a, &b| total_gap(&gaps(t, &res[a].1)).total_cmp(&total_gap(&gaps(t, &res[b].1))))?;
                    (total_gap(&gaps(t, &res[best].1)) < now).then_some(best)
                });
                if let Some(c) = pick {
                    sliders[s] = cands[c].1;
                    current[s] = res[c].clone();
                }
            }
        }
    }
    progress(total_work, total_work);
    Ok(seeds
        .iter()
        .enumerate()
        .zip(current)
        .zip(initial)
        .map(|(((s, &seed), (image, steering)), initial)| Steered {
            seed,
            sliders: names.iter().zip(sliders[s]).map(|(n, v)| (n.to_string(), v)).collect(),
            steering_met: satisfied(t, &steering),
            steering,
            image,
            initial,
            w: ws_of(s, &sliders[s]),
            age_layers: vec![],
            refined: None,
        })
        .collect())
}

/// The layer groups [`keep_identity`] tries age in, narrowest last, with the multiples of the
/// age slider the search reached that it tries in each (a narrower group needs more).
const IDENTITY_MASKS: [&[LayerGroup]; 3] = [&[LayerGroup::Coarse, LayerGroup::Middle, LayerGroup::Fine], &[LayerGroup::Coarse, LayerGroup::Middle], &[LayerGroup::Coarse]];
const IDENTITY_FACTORS: [&[f32]; 3] = [&[0.8, 0.6, 0.4], &[1.25, 1.0, 0.75, 0.5], &[2.0, 1.5, 1.0]];

/// face-api's identity distance between two readings' descriptors; `None` without one.
fn identity_distance(a: &Attributes, b: &Attributes) -> Option<f32> {
    let (a, b) = (a.descriptor.as_ref()?, b.descriptor.as_ref()?);
    Some(a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt())
}

/// The identity cap on age: every steered face whose face-api identity distance to its
/// unsteered self is `cap` or more is tried again with age in fewer layer groups
/// ([`IDENTITY_MASKS`]: all, coarse + middle, coarse) and at several multiples of its age
/// slider ([`IDENTITY_FACTORS`]), one batch over all such seeds; of the tries that stay under
/// `cap` and still meet the other targets, the one nearest the asked age by face-api (then the
/// nearest person) replaces it. A seed with no such try keeps its face (as asked, another
/// person). `render` renders (seed index, sliders, age rows) and reads with descriptors, as
/// `read` reads images; `masks` are [`IDENTITY_MASKS`] with their rows.
fn keep_identity(
    render: &dyn Fn(&[(usize, [f32; 3], Vec<usize>)]) -> Vec<(Image, Attributes)>,
    read: &dyn Fn(Vec<Image>) -> Vec<Attributes>,
    masks: &[(Vec<LayerGroup>, Vec<usize>)],
    t: &Targets,
    cap: f32,
    out: &mut [Steered],
) {
    let before = read(out.iter().map(|s| s.initial.clone()).collect());
    let after = read(out.iter().map(|s| s.image.clone()).collect());
    let mut tries = vec![];
    for (s, st) in out.iter().enumerate() {
        if identity_distance(&after[s], &before[s]).is_none_or(|d| d < cap) {
            continue;
        }
        let v = [st.sliders[0].1, st.sliders[1].1, st.sliders[2].1];
        for ((_, rows), factors) in masks.iter().zip(IDENTITY_FACTORS) {
            for f in factors {
                tries.push((s, [v[0], v[1] * f, v[2]], rows.clone()));
            }
        }
    }
    if tries.is_empty() {
        return;
    }
    let results = render(&tries);
    let mut best: Vec<Option<(f32, f32, usize)>> = vec![None; out.len()];
    for (i, ((s, _, _), (_, a))) in tries.iter().zip(&results).enumerate() {
        let Some(d) = identity_distance(a, &before[*s]) else { continue };
        let gp = gaps(t, a);
        if d >= cap || gp[0].0 > 0.0 || gp[2].0 > 0.0 {
            continue;
        }
        if best[*s].is_none_or(|(ga, db, _)| (gp[1].0, d) < (ga, db)) {
            best[*s] = Some((gp[1].0, d, i));
        }
    }
    for (s, b) in best.into_iter().enumerate() {
        let Some((_, _, i)) = b else { continue };
        let (_, v, rows) = &tries[i];
        let mask = masks.iter().find(|m| &m.1 == rows).map(|m| m.0.clone()).unwrap_or_default();
        let (image, mut steering) = results[i].clone();
        steering.descriptor = None;
        let st = &mut out[s];
        st.sliders[1].1 = v[1];
        st.steering_met = satisfied(t, &steering);
        st.steering = steering;
        st.image = image;
        st.age_layers = mask;
        st.refined = None;
    }
}

/// The gradient refinement of [`steer`] (`cfg.refine`): every seed whose face-api identity
/// distance to its unsteered self (`identity`'s descriptors, as the report measures it) is
/// [`REFINE_ABOVE`] or more is refined from the `w+` the search reached ([`crate::refine`]);
/// the result replaces it when face-api (the steering reading) still reads the targets met, or
/// when the start did not meet them either. With `rc.passes` > 1, a seed that face-api, finding
/// the refined face again, still reads as another person is refined again on the crops found
/// there, and that pass is kept only where the distance comes down.
#[allow(clippy::too_many_arguments)]
fn refine_seeds(g: &dyn Model, fa: &FaceAnalyzer, identity: &FaceAnalyzer, t: &Targets, cfg: &SteerConfig, rc: &crate::refine::RefineConfig, age: &[f32], out: &mut [Steered]) -> Result<()> {
    use crate::refine::{refine, RefineTarget};
    let Some(r) = t.age.map(steering_range) else { return Ok(()) };
    let up = |im: &Image| if im.width < JUDGE_SIZE { im.resize_bilinear(JUDGE_SIZE, JUDGE_SIZE) } else { im.clone() };
    let before = identity.analyze(&out.iter().map(|s| up(&s.initial)).collect::<Vec<_>>());
    let after = identity.analyze(&out.iter().map(|s| up(&s.image)).collect::<Vec<_>>());
    let todo: Vec<usize> = (0..out.len())
        .filter(|&s| {
            let (Some(b), Some(a)) = (before[s].first(), after[s].first()) else { return false };
            identity_distance(&a.attributes, &b.attributes).is_some_and(|d| d >= REFINE_ABOVE)
        })
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let dm = g.differentiable()?;
    let fa_ad = FaceAnalyzer::load_fetched(limner_faces::FaceAnalyzerConfig { descriptors: true, ..Default::default() }, &dm.device())?;
    // the crops of a seed's face as face-api finds it in `image` (`a`, its detection there)
    let target_of = |image: &Image, a: &limner_faces::Face, b: &limner_faces::Face, st: &Steered| -> Option<RefineTarget> {
        let big = up(image);
        let f = image.width as f32 / big.width as f32;
        let scale = |q: limner_faces::describe::Rect| limner_faces::describe::Rect { x: q.x * f, y: q.y * f, width: q.width * f, height: q.height * f };
        let (_, _, cw, ch) = big.crop_rect(a.rect.x, a.rect.y, a.rect.width, a.rect.height)?;
        let sign = if st.steering.age.round() > r.max { -1.0 } else { 1.0 };
        // the default aim is 3 years inside the band's steering range and counts as met from
        // its edge; a given aim counts as met from 3 years short of it (never outside the range)
        let edge = if sign > 0.0 { r.min } else { r.max };
        let inset = 3.0f32.min((r.max - r.min) / 2.0);
        Some(RefineTarget {
            age_aim: rc.age_aim.unwrap_or(edge + sign * inset),
            age_sign: sign,
            age_met: rc.age_aim.map_or(edge, |aim| if sign > 0.0 { (aim - 3.0).max(edge) } else { (aim + 3.0).min(edge) }),
            male: t.male,
            expression: match (t.expression, t.smiling) {
                (Some(x), _) => Some((expression_index(x), false)),
                (None, Some(sm)) => Some((1, !sm)),
                (None, None) => None,
            },
            descriptor: b.attributes.descriptor.clone().expect("descriptors on"),
            attribute_rect: scale(a.aligned),
            identity_rect: scale(limner_faces::describe::dlib_rect(&a.landmarks, (cw, ch))),
            locked: rc.lock_age.then(|| age.to_vec()),
        })
    };
    for s in todo {
        let b = &before[s][0];
        let start_identity = identity_distance(&after[s][0].attributes, &b.attributes).expect("checked");
        let Some(target) = target_of(&out[s].image, &after[s][0], b, &out[s]) else { continue };
        let st = &out[s];
        let mut res = refine(dm.as_ref(), &fa_ad, st.seed, cfg.noise, &st.w, &target, rc)?;
        if res.kept == 0 {
            continue;
        }
        let mut image = g.render(std::slice::from_ref(&res.w), &[st.seed], cfg.noise).pop().expect("one");
        // the in-graph distance is measured on the start image's crops; face-api finds the
        // refined face a little elsewhere, and the report measures it there: where that reads
        // another person still, refine once more on the crops found in the refined face
        let find = |im: &Image| -> Option<(limner_faces::Face, f32)> {
            let found = identity.analyze(std::slice::from_ref(&up(im))).pop()?.into_iter().next()?;
            let d = identity_distance(&found.attributes, &b.attributes)?;
            Some((found, d))
        };
        let mut now = if rc.passes > 1 { find(&image) } else { None };
        for _ in 1..rc.passes {
            let Some((found, d)) = now.take() else { break };
            if d < limner_faces::recognition::SAME_PERSON {
                break;
            }
            let Some(target) = target_of(&image, &found, b, &out[s]) else { break };
            let again = refine(dm.as_ref(), &fa_ad, st.seed, cfg.noise, &res.w, &target, rc)?;
            if again.kept == 0 {
                break;
            }
            let next = g.render(std::slice::from_ref(&again.w), &[st.seed], cfg.noise).pop().expect("one");
            // kept only where the report's measurement agrees that it is nearer
            let Some((f2, d2)) = find(&next).filter(|(_, d2)| *d2 < d) else { break };
            res.kept = res.trace.len() + again.kept;
            res.trace.extend(again.trace);
            res.w = again.w;
            image = next;
            now = Some((f2, d2));
        }
        let steering = describe_reading(fa, std::slice::from_ref(&image)).pop().expect("one");
        let met = satisfied(t, &steering);
        let st = &mut out[s];
        if met || !st.steering_met {
            st.steering_met = met;
            st.steering = steering;
            st.image = image;
            st.w = res.w;
            st.refined = Some(RefinedReport { kept: res.kept, start_identity, trace: res.trace });
        }
    }
    Ok(())
}

/// Where the secant search aims for each attribute (a score as [`crate::directions::score`]
/// measures it), a little inside the target so that reading noise does not flip it back;
/// `None`: not asked.
fn aims(t: &Targets) -> [Option<f32>; 3] {
    use crate::directions::logit;
    [
        t.male.map(|m| if m { logit(0.85) } else { -logit(0.85) }),
        t.age.map(steering_range).map(|r| {
            // aim 3 years inside the range (its middle when narrower than 6 years); the side is
            // chosen per reading in `steer_secant`
            r.min + 3.0f32.min((r.max - r.min) / 2.0)
        }),
        t.expression.map(|_| logit(0.8)).or(t.smiling.map(|s| if s { logit(0.8) } else { logit(0.2) })),
    ]
}

/// The per-seed search used when every direction records its [`slope`](crate::directions::DirectionInfo::slope):
/// each iteration moves every seed along each direction whose target it misses by
/// `(aim − score) / slope` slider units (the slope first the labelled faces' one, then the
/// seed's own secant once it has moved), at most `max_step` per iteration and `reach` in
/// all, and renders only the seeds still missing a target. Each seed keeps the best state seen
/// (all targets met, else the smallest total gap). `cfg.iterations` iterations.
#[allow(clippy::too_many_arguments)]
fn steer_secant(
    eval: &dyn Fn(&[(usize, [f32; 3])]) -> Vec<(Image, Attributes)>,
    dirs: &Directions,
    idx: &[usize],
    seeds: &[u64],
    t: &Targets,
    cfg: &SteerConfig,
    start: Vec<(Image, Attributes)>,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Steered> {
    use crate::directions::score;
    let names = ["gender", "age", expression_direction(t)];
    let aim = aims(t);
    let global: Vec<f32> = idx.iter().map(|&i| dirs.meta.attributes[i].slope).collect();
    let n = seeds.len();
    let initial: Vec<Image> = start.iter().map(|c| c.0.clone()).collect();
    let mut sliders = vec![[0.0f32; 3]; n];
    let mut current = start;
    // "smiling": every seed starts at the smile floor (face-api reads most portraits happy
    // already, so its reading alone would leave the smile where the seed had it)
    let floor = smile_floor(t, cfg);
    if floor != 0.0 {
        let pairs: Vec<(usize, [f32; 3])> = (0..n).map(|s| (s, [0.0, 0.0, floor])).collect();
        current = eval(&pairs);
        sliders.iter_mut().for_each(|v| v[2] = floor);
    }
    // per seed and attribute: the previous (slider, score) for the secant
    let mut prev: Vec<[Option<(f32, f32)>; 3]> = vec![[None; 3]; n];
    let mut best: Vec<(f32, [f32; 3], (Image, Attributes))> = current.iter().zip(&sliders).map(|(c, v)| (total_gap(&gaps(t, &c.1)), *v, c.clone())).collect();
    for it in 0..cfg.iterations {
        progress(it, cfg.iterations);
        let mut pairs = vec![];
        for s in 0..n {
            let g = gaps(t, &current[s].1);
            if total_gap(&g) == 0.0 {
                continue;
            }
            let mut v = sliders[s];
            for k in 0..3 {
                let Some(mut target) = aim[k] else { continue };
                if g[k].0 == 0.0 {
                    continue;
                }
                let sc = score(names[k], &current[s].1);
                if k == 1 {
                    // too old: aim below the range's top instead
                    let r = steering_range(t.age.expect("age asked"));
                    if g[k].1 < 0.0 {
                        target = r.max - 3.0f32.min((r.max - r.min) / 2.0);
                    }
                }
                let mut slope = global[k];
                if let Some((v0, s0)) = prev[s][k] {
                    let dv = v[k] - v0;
                    if dv.abs() > 0.05 {
                        let own = (sc - s0) / dv;
                        // trust the seed's own slope when it has the right sign and a sane size
                        if own > 0.2 * global[k] {
                            slope = own.min(5.0 * global[k]);
                        }
                    }
                }
                let mut dv = (target - sc) / slope;
                // at least a quarter unit in the helpful direction, at most max_step
                dv = dv.abs().clamp(0.25, cfg.max_step) * g[k].1;
                prev[s][k] = Some((v[k], sc));
                v[k] = (v[k] + dv).clamp(-cfg.reach, cfg.reach);
            }
            if v != sliders[s] {
                sliders[s] = v;
                pairs.push((s, v));
            }
        }
        if pairs.is_empty() {
            break;
        }
        for ((s, v), res) in pairs.iter().zip(eval(&pairs)) {
            let gap = total_gap(&gaps(t, &res.1));
            if gap < best[*s].0 || (gap == 0.0 && best[*s].0 > 0.0) {
                best[*s] = (gap, *v, res.clone());
            }
            current[*s] = res;
        }
    }
    progress(cfg.iterations, cfg.iterations);
    seeds
        .iter()
        .zip(best)
        .zip(initial)
        .map(|((&seed, (_, v, (image, steering))), initial)| Steered {
            seed,
            sliders: names.iter().zip(v).map(|(n, v)| (n.to_string(), v)).collect(),
            steering_met: satisfied(t, &steering),
            steering,
            image,
            initial,
            w: WPlus::broadcast(&[], 0),
            age_layers: vec![],
            refined: None,
        })
        .collect()
}

/// `limner describe`'s reading of generated faces (see [`judge`]): the most confident face's
/// attributes, or, where the detector finds none, the whole image read as the face crop.
pub fn describe_reading(fa: &FaceAnalyzer, images: &[Image]) -> Vec<Attributes> {
    let up: Vec<Image> = images.iter().map(|im| if im.width < JUDGE_SIZE { im.resize_bilinear(JUDGE_SIZE, JUDGE_SIZE) } else { im.clone() }).collect();
    let found = fa.analyze(&up);
    let missed: Vec<usize> = (0..images.len()).filter(|&i| found[i].is_empty()).collect();
    let mut whole = fa.attributes(&missed.iter().map(|&i| images[i].clone()).collect::<Vec<_>>()).into_iter();
    found.into_iter().map(|f| match f.into_iter().next() {
        Some(face) => face.attributes,
        None => whole.next().expect("one per missed image"),
    }).collect()
}

/// A reading of generated portraits close to how `describe` crops them, without the
/// detector (not used for steering: the default model's directions, labelled on whole
/// portraits, move it no better than chance; see tests/directions.rs): the 68 landmarks on the whole image (upscaled to
/// [`READ_SIZE`]), their aligned box (padded by 20 %), then the attribute networks on it.
pub fn reading(fa: &FaceAnalyzer, images: &[Image]) -> Vec<Attributes> {
    let up: Vec<Image> = images.iter().map(|im| if im.width < READ_SIZE { im.resize_bilinear(READ_SIZE, READ_SIZE) } else { im.clone() }).collect();
    let boxes: Vec<(&Image, limner_faces::describe::Rect)> =
        up.iter().map(|im| (im, limner_faces::describe::Rect { x: 0.0, y: 0.0, width: im.width as f32, height: im.height as f32 })).collect();
    let lms = fa.landmarks(&boxes);
    let crops: Vec<Image> = up
        .iter()
        .zip(lms)
        .map(|(im, lm)| {
            lm.and_then(|lm| {
                let r = limner_faces::describe::aligned_rect(&lm);
                im.crop(r.x, r.y, r.width, r.height)
            })
            .unwrap_or_else(|| im.clone())
        })
        .collect();
    fa.attributes(&crops)
}

/// The side [`reading`] upscales generated faces to before cropping.
pub const READ_SIZE: usize = 128;

/// The side the judge works at: generated faces are upscaled to it before detection, so
/// the landmark and attribute crops are not a handful of pixels.
pub const JUDGE_SIZE: usize = 256;

/// The judge's reading of one image: `limner describe`'s pipeline (detector, 68 landmarks,
/// aligned crop, attributes) on the image upscaled to [`JUDGE_SIZE`], plus the mouth
/// geometry from the landmarks.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    /// the most confident face; `None`: the detector found none
    pub face: Option<Attributes>,
    pub description: Option<String>,
    /// describe's reading meets the targets
    pub met: bool,
    /// [`mouth_smile`] of the landmarks
    pub mouth_smile: Option<f32>,
}

/// Judges images with the describe pipeline.
pub fn judge(fa: &FaceAnalyzer, t: &Targets, images: &[Image]) -> Vec<Judged> {
    let up: Vec<Image> = images.iter().map(|im| if im.width < JUDGE_SIZE { im.resize_bilinear(JUDGE_SIZE, JUDGE_SIZE) } else { im.clone() }).collect();
    fa.analyze(&up)
        .into_iter()
        .map(|faces: Vec<Face>| match faces.into_iter().next() {
            Some(f) => Judged {
                met: satisfied(t, &f.attributes),
                description: Some(f.attributes.sentence()),
                mouth_smile: Some(mouth_smile(&f.landmarks)),
                face: Some(f.attributes),
            },
            None => Judged { face: None, description: None, met: false, mouth_smile: None },
        })
        .collect()
}

/// Whether the independent reading (human-models, [`limner_faces::human`]) meets the targets,
/// read the way human says it: gender by FaceRes (male when P(male) > 0.5), age the expected
/// value over its 100 bins (rounded) inside the range, smiling when the emotion network's most
/// likely label is `happy` (and not smiling otherwise), another asked expression when it is the
/// emotion network's most likely label.
pub fn satisfied_independent(t: &Targets, r: &Reading) -> bool {
    let top = r.top_emotion().0;
    t.male.is_none_or(|m| r.is_male() == m)
        && t.age.is_none_or(|a| (a.min..=a.max).contains(&r.age.round().max(1.0)))
        && t.smiling.is_none_or(|s| s == (top == "happy"))
        && t.expression.is_none_or(|x| EXPRESSIONS_STEERED.iter().any(|e| e.0 == x && e.1 == top))
}

/// The independent judge's reading of each image (upscaled to [`JUDGE_SIZE`] as [`judge`]
/// does), with whether it meets the targets; `None` where BlazeFace finds no face.
pub fn judge_independent(j: &Judge, t: &Targets, images: &[Image]) -> Vec<Option<(Reading, bool)>> {
    let up: Vec<Image> = images.iter().map(|im| if im.width < JUDGE_SIZE { im.resize_bilinear(JUDGE_SIZE, JUDGE_SIZE) } else { im.clone() }).collect();
    j.read(&up).into_iter().map(|r| r.map(|r| {
        let met = satisfied_independent(t, &r);
        (r, met)
    })).collect()
}

/// A smile measure from mouth geometry alone (independent of the expression network):
/// how far the mouth corners (points 48, 54) sit above the middle of the lips (mean of the
/// inner-lip midpoints 62, 66), plus how wide the mouth is against the distance between the
/// eye centres, each relative to that distance. Larger = more smile-shaped.
pub fn mouth_smile(lm: &Landmarks) -> f32 {
    let eye = |r: std::ops::Range<usize>| limner_faces::landmarks68::centre(lm, r);
    let (le, re) = (eye(36..42), eye(42..48));
    let iod = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt().max(1e-3);
    let (l, r) = (lm[48], lm[54]);
    let mid_y = (lm[62][1] + lm[66][1]) / 2.0;
    let lift = (mid_y - (l[1] + r[1]) / 2.0) / iod;
    let width = ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt() / iod;
    lift + width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_can_measure() {
        let t = parse("a smiling old man").unwrap();
        assert_eq!(t, Targets { male: Some(true), age: Some(AgeRange { min: 50.0, max: 120.0 }), smiling: Some(true), expression: None });
        let t = parse("A 30-year-old woman, not smiling").unwrap();
        assert_eq!(t, Targets { male: Some(false), age: Some(AgeRange { min: 25.0, max: 35.0 }), smiling: Some(false), expression: None });
        assert_eq!(parse("a man in his 40s").unwrap().age, Some(AgeRange { min: 40.0, max: 49.0 }));
        assert_eq!(parse("young woman").unwrap().male, Some(false));
        let t = parse("a surprised old woman").unwrap();
        assert_eq!((t.expression, t.male, t.smiling), (Some("surprised"), Some(false), None));
        assert_eq!(parse("an Angry man").unwrap().expression, Some("angry"));
        assert_eq!(parse("a sad face").unwrap().expression, Some("sad"));
        assert_eq!(parse("a neutral woman").unwrap().expression, Some("neutral"));
        assert_eq!(expression_direction(&parse("a shocked man").unwrap()), "surprised");
        assert_eq!(expression_direction(&parse("a smiling man").unwrap()), "smile");
        assert_eq!(parse("a sad woman, not smiling").unwrap().smiling, Some(false));
        assert!(parse("a smiling sad man").unwrap_err().to_string().contains("two expressions"));
        assert!(parse("a sad angry man").unwrap_err().to_string().contains("two expressions"));
        assert!(parse("a man, not sad").unwrap_err().to_string().contains("not for its absence"));
    }

    #[test]
    fn unknown_words_are_errors_that_list_the_vocabulary() {
        let e = parse("an old man with glasses").unwrap_err().to_string();
        assert!(e.contains("`glasses` (no network limner runs judges glasses: face-api reads age, gender, 7 expressions") && e.contains("elderly") && e.contains("smiling") && e.contains("surprised"), "{e}");
        let e = parse("a bearded blonde man").unwrap_err().to_string();
        assert!(e.contains("`bearded` (no network limner runs judges facial hair") && e.contains("`blonde` (no network limner runs judges hair colour or style"), "{e}");
        let e = parse("a fearful woman").unwrap_err().to_string();
        assert!(e.contains("`fearful` (both emotion networks read fear, but face-api reads it on almost none of the portraits"), "{e}");
        let e = parse("a purple dragon").unwrap_err().to_string();
        assert!(e.contains("`purple`") && e.contains("`dragon`"), "{e}");
        assert!(parse("a man and a woman").is_err());
        assert!(parse("young old").is_err());
        assert!(parse("the").is_err());
        assert!(parse("").is_err());
    }

    /// Gender, age and smile along the three axes of a 3-d `w`, with these (sigma, slope)s.
    fn synthetic_directions(sigma_slope: [(f32, f32); 3]) -> Directions {
        use crate::directions::{DirectionInfo, DirectionsMeta};
        let names = ["gender", "age", "smile"];
        let attributes = names
            .iter()
            .zip(sigma_slope)
            .map(|(name, (sigma, slope))| DirectionInfo { name: (*name).into(), positive: String::new(), median: 0.0, held_out_accuracy: 1.0, held_out: 100, sigma, slope })
            .collect();
        Directions {
            meta: DirectionsMeta { attributes, w_dim: 3, labelled: 100, psi: 0.7, model: "synthetic".into(), command: "test".into(), label_seconds: 0.0, max_cosine: 0.0 },
            vectors: vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]],
        }
    }

    /// Age moves only the rows it is given; gender every row.
    #[test]
    fn age_moves_only_its_layers() {
        let dirs = synthetic_directions([(1.0, 1.0), (2.0, 1.0), (1.0, 1.0)]);
        let p = steered_w(&dirs, &[0, 1, 2], &[0.0; 3], &[1.0, 1.5, 0.0], 4, &[0, 2]);
        assert_eq!(p.row(0), &[1.0, 3.0, 0.0]);
        assert_eq!(p.row(1), &[1.0, 0.0, 0.0]);
        assert_eq!(p.row(2), &[1.0, 3.0, 0.0]);
        assert_eq!(p.row(3), &[1.0, 0.0, 0.0]);
        assert_eq!(parse_age_layers("coarse, middle").unwrap(), vec![LayerGroup::Coarse, LayerGroup::Middle]);
        assert_eq!(parse_age_layers("all").unwrap(), vec![]);
        assert!(parse_age_layers("wrinkles").unwrap_err().to_string().contains("not a layer group"));
        assert!(parse_age_layers(",").is_err());
    }

    /// The per-seed search on a synthetic model whose readings are nonlinear functions of the
    /// slider values (with per-seed sensitivities the global slope only roughly predicts):
    /// every seed must end up meeting a compound target.
    #[test]
    fn secant_search_meets_compound_targets_on_a_synthetic_model() {
        let dirs = synthetic_directions([(1.0, 1.5), (1.0, 6.0), (1.0, 1.2)]);
        let seeds: Vec<u64> = (0..20).collect();
        // seed s starts at w = (-1 + s/10, -1.5, -1) and reacts with gain 0.5..1.5
        let base: Vec<[f32; 3]> = seeds.iter().map(|&s| [-1.0 + s as f32 / 10.0, -1.5, -1.0]).collect();
        let gain = |s: usize| 0.5 + s as f32 / 19.0;
        let read = |s: usize, v: &[f32; 3]| {
            let w: Vec<f32> = (0..3).map(|k| base[s][k] + v[k]).collect();
            let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
            let mut e = [0.0f32; 7];
            e[1] = sig(1.2 * gain(s) * w[2] - 0.3 * w[1]);
            e[0] = 1.0 - e[1];
            // age saturates (tanh) and is pulled by the smile a little
            Attributes { age: 35.0 + 30.0 * (0.25 * gain(s) * w[1]).tanh() + 2.0 * w[2], male_probability: sig(1.5 * gain(s) * w[0]), expressions: e, descriptor: None }
        };
        let renders = std::cell::Cell::new(0usize);
        let eval = |pairs: &[(usize, [f32; 3])]| -> Vec<(Image, Attributes)> {
            renders.set(renders.get() + pairs.len());
            pairs.iter().map(|(s, v)| (Image { width: 1, height: 1, data: vec![0.0; 3] }, read(*s, v))).collect()
        };
        let t = parse("a smiling old man").unwrap();
        let start = eval(&seeds.iter().map(|&s| (s as usize, [0.0; 3])).collect::<Vec<_>>());
        let cfg = SteerConfig { iterations: 8, ..Default::default() };
        let out = steer_secant(&eval, &dirs, &[0, 1, 2], &seeds, &t, &cfg, start, &mut |_, _| {});
        let met = out.iter().filter(|s| s.steering_met).count();
        assert_eq!(met, seeds.len(), "{:?}", out.iter().filter(|s| !s.steering_met).map(|s| (&s.sliders, s.steering.sentence())).collect::<Vec<_>>());
        assert!(renders.get() <= seeds.len() * 6, "{} renders for {} seeds", renders.get(), seeds.len());
        // "a young woman" from the same start moves the other way
        let t = parse("a young woman").unwrap();
        let start = eval(&seeds.iter().map(|&s| (s as usize, [0.0; 3])).collect::<Vec<_>>());
        let out = steer_secant(&eval, &dirs, &[0, 1, 2], &seeds, &t, &cfg, start, &mut |_, _| {});
        assert!(out.iter().all(|s| s.steering_met), "{:?}", out.iter().map(|s| s.steering.sentence()).collect::<Vec<_>>());
    }

    #[test]
    fn steering_aims_inside_the_asked_age_range() {
        assert_eq!(steering_range(parse("old").unwrap().age.unwrap()), AgeRange { min: 65.0, max: 105.0 });
        assert_eq!(steering_range(parse("young").unwrap().age.unwrap()), AgeRange { min: 0.0, max: 21.75 });
        assert_eq!(steering_range(parse("40s").unwrap().age.unwrap()), AgeRange { min: 42.25, max: 46.75 });
        // a reading of 55 meets "old" but the steering still has a way to go
        let a = Attributes::from_readings(55.0, 0.1, 0.0);
        assert!(satisfied(&parse("an old woman").unwrap(), &a));
        assert_eq!(gaps(&parse("an old woman").unwrap(), &a)[1], (1.0, 1.0));
    }

    #[test]
    fn the_independent_reading_is_judged_as_human_says_it() {
        let mut emotions = [0.0; 7];
        emotions[3] = 0.4; // happy, the most likely at 40 %
        emotions[6] = 0.35;
        let r = Reading { box_xyxy: [0.0; 4], box_score: 0.9, male: 0.6, age: 50.4, age_human: 52.0, emotions, };
        assert!(satisfied_independent(&parse("a smiling old man").unwrap(), &r));
        assert!(!satisfied_independent(&parse("a smiling old woman").unwrap(), &r));
        assert!(!satisfied_independent(&parse("a young man").unwrap(), &r));
        assert!(!satisfied_independent(&parse("a neutral man").unwrap(), &r));
        let r = Reading { age: 49.4, ..r };
        assert!(!satisfied_independent(&parse("an old man").unwrap(), &r));
        // human's label for surprised is "surprise"
        let mut emotions = [0.0; 7];
        emotions[5] = 0.3;
        emotions[3] = 0.25;
        let r = Reading { emotions, ..r };
        assert!(satisfied_independent(&parse("a surprised man").unwrap(), &r));
        assert!(!satisfied_independent(&parse("an angry man").unwrap(), &r));
        assert!(!satisfied_independent(&parse("a smiling man").unwrap(), &r));
    }

    #[test]
    fn satisfied_matches_the_description() {
        let mut e = [0.0; 7];
        e[1] = 0.8;
        e[0] = 0.2;
        let a = Attributes { age: 61.4, male_probability: 0.9, expressions: e, descriptor: None };
        assert_eq!(a.sentence(), "a smiling man, about 61");
        assert!(satisfied(&parse("a smiling old man").unwrap(), &a));
        assert!(!satisfied(&parse("a smiling young man").unwrap(), &a));
        assert!(!satisfied(&parse("a neutral old man").unwrap(), &a));
        assert!(!satisfied(&parse("old woman").unwrap(), &a));
        assert_eq!(gaps(&parse("young").unwrap(), &a)[1].1, -1.0);
        // another expression: face-api's most likely at 50 % for the description, 55 % for the search
        let mut e = [0.0; 7];
        e[6] = 0.52;
        e[1] = 0.48;
        let a = Attributes { expressions: e, ..a };
        assert_eq!(a.sentence(), "a surprised-looking man, about 61");
        assert!(satisfied(&parse("a surprised man").unwrap(), &a) && !satisfied(&parse("a sad man").unwrap(), &a));
        assert!(gaps(&parse("a surprised man").unwrap(), &a)[2].0 > 0.0);
    }

    /// The identity cap on a synthetic model: an image is (seed, age slider, age rows) and its
    /// reading's age grows with the slider times the rows moved, its identity descriptor with
    /// the slider times the fine rows moved (rows 2 and 3 of 4). Faces over the cap come back
    /// under it, as old as the cap allows; faces under it are left alone.
    #[test]
    fn identity_cap_trades_layers_and_strength_for_the_person() {
        let masks: Vec<(Vec<LayerGroup>, Vec<usize>)> = vec![
            (vec![LayerGroup::Coarse, LayerGroup::Middle, LayerGroup::Fine], vec![0, 1, 2, 3]),
            (vec![LayerGroup::Coarse, LayerGroup::Middle], vec![0, 1, 2]),
            (vec![LayerGroup::Coarse], vec![0, 1]),
        ];
        let read_one = |d: &[f32]| {
            let (v, rows) = (d[1], d[2] as usize);
            let fine = rows.saturating_sub(2) as f32;
            let mut a = Attributes::from_readings(30.0 + 3.0 * v * rows as f32, 0.1, 0.9);
            a.descriptor = Some(vec![0.1 * v * fine, 0.0]);
            a
        };
        let image = |s: usize, v: f32, rows: usize| Image { width: 1, height: 1, data: vec![s as f32, v, rows as f32] };
        let render = |c: &[(usize, [f32; 3], Vec<usize>)]| -> Vec<(Image, Attributes)> {
            c.iter().map(|(s, v, rows)| {
                let im = image(*s, v[1], rows.len());
                let a = read_one(&im.data);
                (im, a)
            }).collect()
        };
        let read = |imgs: Vec<Image>| -> Vec<Attributes> { imgs.iter().map(|im| read_one(&im.data)).collect() };
        let t = parse("an old woman").unwrap();
        // seed 0 at age slider 4 in all 4 rows: age 78, identity 0.8; seed 1 at 1: age 42, identity 0.2
        let mut out: Vec<Steered> = [4.0f32, 1.0]
            .iter()
            .enumerate()
            .map(|(s, &v)| {
                let a = read_one(&[s as f32, v, 4.0]);
                Steered {
                    seed: s as u64,
                    sliders: vec![("gender".into(), 0.0), ("age".into(), v), ("smile".into(), 0.0)],
                    steering_met: satisfied(&t, &a),
                    steering: a,
                    image: image(s, v, 4),
                    initial: image(s, 0.0, 4),
                    w: WPlus::broadcast(&[], 0),
                    age_layers: vec![],
                    refined: None,
                }
            })
            .collect();
        keep_identity(&render, &read, &masks, &t, 0.6, &mut out);
        // seed 0: all rows at 0.6 x 4 = 2.4 reads identity 0.48 (age 58.8); coarse + middle at 1.25 x 4 = 5
        // reads 0.5 (age 75); coarse at 2 x 4 = 8 and 1.5 x 4 = 6 read 0 (ages 78, 66): of the tries
        // face-api reads in the steering range (65+), the nearest person (the first of a tie) wins
        assert_eq!(out[0].age_layers, vec![LayerGroup::Coarse]);
        assert_eq!(out[0].sliders[1].1, 8.0);
        assert_eq!(out[0].steering.age, 78.0);
        assert!(out[0].steering.descriptor.is_none() && out[0].steering_met);
        assert_eq!(out[0].image.data, vec![0.0, 8.0, 2.0]);
        // seed 1 was under the cap: untouched
        assert!(out[1].age_layers.is_empty() && out[1].sliders[1].1 == 1.0);
        // a cap nothing meets leaves the face as it was
        let mut out2 = out.clone();
        out2[0] = Steered { image: image(0, 4.0, 4), age_layers: vec![], sliders: vec![("gender".into(), 0.0), ("age".into(), 4.0), ("smile".into(), 0.0)], ..out[0].clone() };
        keep_identity(&render, &read, &masks[..1], &t, 0.01, &mut out2);
        assert_eq!(out2[0].sliders[1].1, 4.0);
        assert!(out2[0].age_layers.is_empty());
    }
}
