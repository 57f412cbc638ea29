//! Named attribute directions in a generator's `w` space, as InterFaceGAN finds them: label
//! generated faces with the attribute networks, fit a linear classifier (logistic
//! regression) per attribute on the extremes, take its boundary's normal as the direction,
//! and orthogonalise the directions in order (gender, then age, then smile) so that moving
//! along one changes the others' classifier scores as little as a linear model can.
//!
//! A slider value of 1 moves `w` by one standard deviation of the labelled faces'
//! projections on that direction.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use limner_faces::describe::{Attributes, FaceAnalyzer};
use limner_faces::human::Judge;
use limner_core::{parse_safetensors, safetensors_bytes, write_atomic, HostTensor, Precision, StateDict};
use serde::{Deserialize, Serialize};

use crate::model::{read_faces, render_w, seed_w, Model};

/// The attributes with a direction, in orthogonalisation order, and what their positive
/// side means.
pub const ATTRIBUTES: [(&str, &str); 3] = [("gender", "more male"), ("age", "older"), ("smile", "more smiling")];

/// face-api's other six expressions, each with a direction (named by its label) when the
/// directions are fitted with `--expressions` ([`fit_expressions`]): orthogonal to gender and
/// age, not to smile or to each other (moving towards "surprised" is mostly moving away from
/// the smile face-api reads on most generated portraits).
pub const EXPRESSION_DIRECTIONS: [(&str, &str); 6] =
    [("neutral", "more neutral"), ("sad", "sadder"), ("angry", "angrier"), ("fearful", "more fearful"), ("disgusted", "more disgusted"), ("surprised", "more surprised")];

/// `ln(p / (1 − p))`, with p clamped to [1e-4, 1 − 1e-4].
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// The score an attribute is fitted on (label: above the median score) and steered by:
/// the logit of P(male), the apparent age, the logit of P(happy); for another expression the
/// logit of its probability, clamped at 1e-12.
pub fn score(name: &str, a: &Attributes) -> f32 {
    match name {
        "gender" => logit(a.male_probability),
        "age" => a.age,
        "smile" => logit(a.expressions[1]),
        // face-api reads most generated portraits as happy at 0.9999, the other expressions at
        // 1e-5 and below: clamped at 1e-4 as the logits above, most faces would tie at the bottom
        other => match limner_faces::expression::EXPRESSIONS.iter().position(|e| *e == other) {
            Some(i) => {
                let p = a.expressions[i].clamp(1e-12, 1.0 - 1e-6);
                (p / (1.0 - p)).ln()
            }
            None => panic!("no attribute `{other}`"),
        },
    }
}

/// What is recorded about one fitted direction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirectionInfo {
    pub name: String,
    /// what +1 means
    pub positive: String,
    /// the score's median over the labelled faces (the class boundary)
    pub median: f32,
    /// accuracy of the classifier on the held-out fifth of the extremes
    pub held_out_accuracy: f32,
    /// held-out faces the accuracy was measured on
    pub held_out: usize,
    /// standard deviation of the labelled `w`s' projections on the direction (one slider unit)
    pub sigma: f32,
    /// least-squares slope of the score ([`score`]) against the projection, in score units
    /// per slider unit (0 in files made before it was recorded): the steering's first guess
    /// of how far to move
    #[serde(default)]
    pub slope: f32,
}

/// Provenance of a directions file (safetensors metadata `limner_directions`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirectionsMeta {
    pub attributes: Vec<DirectionInfo>,
    pub w_dim: usize,
    /// faces generated and labelled
    pub labelled: usize,
    /// truncation psi of the labelled faces
    pub psi: f32,
    /// model the directions belong to
    pub model: String,
    /// the command that made the file
    pub command: String,
    /// seconds spent labelling
    pub label_seconds: f64,
    /// largest |cosine| between two stored directions
    pub max_cosine: f32,
}

/// Unit directions in `w`, one per attribute, near-orthogonal.
#[derive(Clone, Debug, PartialEq)]
pub struct Directions {
    pub meta: DirectionsMeta,
    /// `[attributes][w_dim]`, unit length
    pub vectors: Vec<Vec<f32>>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

impl Directions {
    /// Index of an attribute, or an error listing the known ones.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.meta.attributes.iter().position(|a| a.name == name).with_context(|| {
            format!("no slider `{name}`: this model has {}", self.meta.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "))
        })
    }

    /// `w + Σ value · sigma · direction` (values in slider units).
    pub fn apply(&self, w: &[f32], sliders: &[(usize, f32)]) -> Vec<f32> {
        let mut out = w.to_vec();
        for &(i, v) in sliders {
            let s = v * self.meta.attributes[i].sigma;
            out.iter_mut().zip(&self.vectors[i]).for_each(|(o, d)| *o += s * d);
        }
        out
    }

    /// Largest |cosine| between two directions.
    pub fn max_cosine(&self) -> f32 {
        let mut m = 0.0f32;
        for i in 0..self.vectors.len() {
            for j in i + 1..self.vectors.len() {
                m = m.max(dot(&self.vectors[i], &self.vectors[j]).abs());
            }
        }
        m
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut sd = StateDict::new();
        for (a, v) in self.meta.attributes.iter().zip(&self.vectors) {
            sd.insert(a.name.clone(), HostTensor { shape: vec![v.len()], data: v.clone() });
        }
        let mut meta = BTreeMap::new();
        meta.insert("limner_directions".to_string(), serde_json::to_string(&self.meta)?);
        safetensors_bytes(&sd, &meta, Precision::F32)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (sd, meta) = parse_safetensors(bytes).context("not a safetensors file")?;
        let meta: DirectionsMeta = serde_json::from_str(meta.get("limner_directions").context("no `limner_directions` metadata: not a directions file")?)?;
        let mut vectors = vec![];
        for a in &meta.attributes {
            let t = sd.get(&a.name).with_context(|| format!("direction `{}` missing", a.name))?;
            ensure!(t.data.len() == meta.w_dim, "direction `{}` has {} values, w_dim is {}", a.name, t.data.len(), meta.w_dim);
            vectors.push(t.data.clone());
        }
        Ok(Self { meta, vectors })
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&b).with_context(|| format!("cannot load directions {}", path.display()))
    }
}

/// Labelled faces: the `w` of each seed and what the attribute networks say of its image.
#[derive(Serialize, Deserialize)]
pub struct Labelled {
    pub ws: Vec<Vec<f32>>,
    pub attributes: Vec<Attributes>,
    /// seconds spent labelling (summed over resumed runs)
    #[serde(default)]
    pub seconds: f64,
    /// the independent judge's (human-models') (P(male), age) per face, `None` where it found
    /// no face; empty when labelled by face-api alone
    #[serde(default)]
    pub independent: Vec<Option<(f32, f32)>>,
}

/// The most the two judges' ages may differ for a face to count in the age fit, in years.
pub const AGREE_YEARS: f32 = 10.0;

/// Where the two judges agree on a face (same gender, ages within [`AGREE_YEARS`]): the age
/// both read (their mean). `None`: they disagree, or the face has no independent reading.
pub fn agreed_age(a: &Attributes, independent: Option<(f32, f32)>) -> Option<f32> {
    let (male, age) = independent?;
    ((a.male_probability > 0.5) == (male > 0.5) && (a.age - age).abs() <= AGREE_YEARS).then_some((a.age + age) / 2.0)
}

/// Generates the seeds' faces and labels them with [`read_faces`] (for limner's GANs the whole generated image is the face crop,
/// as generated portraits are framed on the face; labelling on [`crate::prompt::reading`]'s
/// aligned crop was tried and fitted no better: 67/65/60 % held-out accuracy on 3000 faces). `progress` is called with the number done.
/// With `judge`, each face is also read by the independent judge ([`Labelled::independent`]).
pub fn label(g: &dyn Model, fa: &FaceAnalyzer, judge: Option<&Judge>, seeds: &[u64], psi: f32, progress: &mut dyn FnMut(usize)) -> Labelled {
    let (mut ws, mut attributes, mut independent) = (vec![], vec![], vec![]);
    for chunk in seeds.chunks(32) {
        let w = seed_w(g, chunk, psi);
        let imgs = render_w(g, &w, chunk, 1.0);
        attributes.extend(read_faces(g, fa, &imgs));
        if let Some(j) = judge {
            independent.extend(j.read(&imgs).into_iter().map(|r| r.map(|r| (r.male, r.age))));
        }
        ws.extend(w);
        progress(chunk.len());
    }
    Labelled { ws, attributes, seconds: 0.0, independent }
}

/// L2-regularised logistic regression on standardised features by full-batch gradient
/// descent; returns the boundary normal in the original space (unit length) and the bias
/// in standardised space (with mean and std, for prediction).
struct Logistic {
    mean: Vec<f32>,
    std: Vec<f32>,
    a: Vec<f32>,
    b: f32,
}

impl Logistic {
    fn fit(x: &[&Vec<f32>], y: &[bool]) -> Self {
        let d = x[0].len();
        let n = x.len() as f32;
        let mean: Vec<f32> = (0..d).map(|j| x.iter().map(|v| v[j]).sum::<f32>() / n).collect();
        let std: Vec<f32> = (0..d).map(|j| (x.iter().map(|v| (v[j] - mean[j]).powi(2)).sum::<f32>() / n).sqrt().max(1e-6)).collect();
        let xs: Vec<Vec<f32>> = x.iter().map(|v| v.iter().enumerate().map(|(j, &t)| (t - mean[j]) / std[j]).collect()).collect();
        let (mut a, mut b) = (vec![0.0f32; d], 0.0f32);
        let (lr, l2) = (0.5f32, 1e-3f32);
        for _ in 0..400 {
            let mut ga = vec![0.0f32; d];
            let mut gb = 0.0;
            for (v, &t) in xs.iter().zip(y) {
                let p = 1.0 / (1.0 + (-(dot(&a, v) + b)).exp());
                let e = p - if t { 1.0 } else { 0.0 };
                ga.iter_mut().zip(v).for_each(|(g, x)| *g += e * x);
                gb += e;
            }
            a.iter_mut().zip(&ga).for_each(|(w, g)| *w -= lr * (g / n + l2 * *w));
            b -= lr * gb / n;
        }
        Self { mean, std, a, b }
    }

    fn predict(&self, v: &[f32]) -> bool {
        let z: f32 = v.iter().enumerate().map(|(j, &t)| self.a[j] * (t - self.mean[j]) / self.std[j]).sum::<f32>() + self.b;
        z > 0.0
    }

    /// The boundary's normal in the original space.
    fn normal(&self) -> Vec<f32> {
        let mut n: Vec<f32> = self.a.iter().zip(&self.std).map(|(a, s)| a / s).collect();
        normalise(&mut n);
        n
    }
}

/// Fits the [`ATTRIBUTES`] directions on labelled faces: for each, the faces whose score lies
/// in the lowest or highest `extreme` fraction (InterFaceGAN uses the extremes), shuffled
/// deterministically, four fifths to fit and one fifth held out; then Gram–Schmidt in
/// [`ATTRIBUTES`] order.
pub fn fit(l: &Labelled, extreme: f32, model: &str, command: &str, psi: f32, label_seconds: f64) -> Result<Directions> {
    let n = l.ws.len();
    ensure!(n >= 50, "{n} labelled faces are too few to fit directions (use at least a few hundred)");
    ensure!(extreme > 0.0 && extreme <= 0.5, "extreme fraction must be in (0, 0.5]");
    let w_dim = l.ws[0].len();
    let (mut infos, mut vectors): (Vec<DirectionInfo>, Vec<Vec<f32>>) = (vec![], vec![]);
    let both = !l.independent.is_empty();
    ensure!(!both || l.independent.len() == n, "{} independent readings for {n} labelled faces", l.independent.len());
    for (name, positive) in ATTRIBUTES {
        // with both judges, age is fitted on the faces they agree on, scored by the mean of their ages
        let (ws, s): (Vec<&Vec<f32>>, Vec<f32>) = if both && name == "age" {
            l.ws.iter().zip(&l.attributes).zip(&l.independent).filter_map(|((w, a), &r)| Some((w, agreed_age(a, r)?))).unzip()
        } else {
            l.ws.iter().zip(l.attributes.iter().map(|a| score(name, a))).unzip()
        };
        let (info, v) = fit_one(&ws, &s, extreme, &vectors, name, positive)?;
        infos.push(info);
        vectors.push(v);
    }
    let mut d = Directions {
        meta: DirectionsMeta { attributes: infos, w_dim, labelled: l.ws.len(), psi, model: model.into(), command: command.into(), label_seconds, max_cosine: 0.0 },
        vectors,
    };
    d.meta.max_cosine = d.max_cosine();
    Ok(d)
}

/// One direction: logistic regression on the faces whose score `s` lies in the lowest or
/// highest `extreme` fraction, shuffled deterministically, four fifths to fit and one fifth
/// held out; its normal made orthogonal to the unit vectors `against`.
fn fit_one(ws: &[&Vec<f32>], s: &[f32], extreme: f32, against: &[Vec<f32>], name: &str, positive: &str) -> Result<(DirectionInfo, Vec<f32>)> {
    let n = ws.len();
    ensure!(n >= 50, "only {n} faces to fit `{name}` on (the judges agree on too few: label more)");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| s[i].total_cmp(&s[j]));
    let median = s[order[n / 2]];
    let k = ((n as f32 * extreme) as usize).max(10);
    let mut chosen: Vec<(usize, bool)> = order[..k].iter().map(|&i| (i, false)).chain(order[n - k..].iter().map(|&i| (i, true))).collect();
    // deterministic shuffle (a fixed LCG) so the held-out fifth has both classes
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..chosen.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        chosen.swap(i, (state >> 33) as usize % (i + 1));
    }
    let held = chosen.len() / 5;
    let (test, train) = chosen.split_at(held);
    let model_fit = Logistic::fit(&train.iter().map(|&(i, _)| ws[i]).collect::<Vec<_>>(), &train.iter().map(|&(_, t)| t).collect::<Vec<_>>());
    let correct = test.iter().filter(|&&(i, t)| model_fit.predict(ws[i]) == t).count();
    let mut v = model_fit.normal();
    for u in against {
        let c = dot(&v, u);
        v.iter_mut().zip(u).for_each(|(x, y)| *x -= c * y);
    }
    normalise(&mut v);
    let proj: Vec<f32> = ws.iter().map(|w| dot(w, &v)).collect();
    let pm = proj.iter().sum::<f32>() / n as f32;
    let sigma = (proj.iter().map(|p| (p - pm).powi(2)).sum::<f32>() / n as f32).sqrt();
    if sigma <= 0.0 || !sigma.is_finite() {
        bail!("direction `{name}` is degenerate (the labelled faces do not vary along it)");
    }
    let sm = s.iter().sum::<f32>() / n as f32;
    let slope = proj.iter().zip(s).map(|(p, x)| (p - pm) * (x - sm)).sum::<f32>() / n as f32 / sigma;
let info = DirectionInfo { name: name.into(), positive: positive.into(), median, held_out_accuracy: correct as f32 / held.max(1) as f32, held_out: held, sigma, slope };
Ok((info, v))
}

/// `base` (gender, age and smile, as [`fit`] makes them or as shipped) with a direction for each
/// of [`EXPRESSION_DIRECTIONS`] fitted on `l` (score: the logit of face-api's probability of
/// that expression), orthogonal to `base`'s gender and age; `command` is recorded after
/// `base`'s own.
pub fn fit_expressions(base: &Directions, l: &Labelled, extreme: f32, command: &str) -> Result<Directions> {
    ensure!(l.ws.len() >= 50, "{} labelled faces are too few to fit directions (use at least a few hundred)", l.ws.len());
    ensure!(l.ws[0].len() == base.meta.w_dim, "the labelled w's have {} values, the directions {}", l.ws[0].len(), base.meta.w_dim);
    let against = vec![base.vectors[base.index("gender")?].clone(), base.vectors[base.index("age")?].clone()];
    let mut d = base.clone();
    for (name, positive) in EXPRESSION_DIRECTIONS {
        if let Ok(i) = d.index(name) {
            d.meta.attributes.remove(i);
            d.vectors.remove(i);
        }
        let ws: Vec<&Vec<f32>> = l.ws.iter().collect();
        let s: Vec<f32> = l.attributes.iter().map(|a| score(name, a)).collect();
        let (info, v) = fit_one(&ws, &s, extreme, &against, name, positive)?;
        d.meta.attributes.push(info);
        d.vectors.push(v);
    }
    d.meta.command = format!("{}; expressions: {command}", base.meta.command);
    d.meta.max_cosine = d.max_cosine();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use limner_faces::Attributes;

    /// Synthetic w's where each attribute is a known (correlated) linear function: the fit
    /// must recover directions close to the truth and orthogonal to each other.
    #[test]
    fn fit_recovers_planted_directions_and_orthogonalises() {
        let d = 16;
        let mut state = 1u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
        };
        let (mut ws, mut at) = (vec![], vec![]);
        for _ in 0..600 {
            let w: Vec<f32> = (0..d).map(|_| rnd()).collect();
            // gender on w0, age on w0 + w1 (correlated with gender), smile on w2
            let male = 1.0 / (1.0 + (-8.0 * w[0]).exp());
            at.push(Attributes::from_readings(40.0 + 20.0 * (w[0] + w[1]), male, 0.5 + 0.5 * w[2]));
            ws.push(w);
        }
        let dirs = fit(&Labelled { ws, attributes: at, seconds: 0.0, independent: vec![] }, 0.3, "synthetic", "test", 1.0, 0.0).unwrap();
        assert!(dirs.max_cosine() < 1e-4, "not orthogonal: {}", dirs.max_cosine());
        assert!(dirs.vectors[0][0] > 0.95, "gender should be ~e0: {:?}", &dirs.vectors[0][..3]);
        // age after removing gender: ~e1
        assert!(dirs.vectors[1][1] > 0.9, "age should be ~e1 after orthogonalisation: {:?}", &dirs.vectors[1][..3]);
        assert!(dirs.vectors[2][2] > 0.9);
        for a in &dirs.meta.attributes {
            assert!(a.held_out_accuracy > 0.9, "{a:?}");
        }
        let back = Directions::from_bytes(&dirs.to_bytes().unwrap()).unwrap();
        assert_eq!(back, dirs);
        // with both judges: age fitted only on the faces they agree on
        assert_eq!(agreed_age(&Attributes::from_readings(40.0, 0.9, 0.5), Some((0.8, 48.0))), Some(44.0));
        assert_eq!(agreed_age(&Attributes::from_readings(40.0, 0.9, 0.5), Some((0.2, 40.0))), None);
        assert_eq!(agreed_age(&Attributes::from_readings(40.0, 0.9, 0.5), Some((0.9, 55.0))), None);
        assert_eq!(agreed_age(&Attributes::from_readings(40.0, 0.9, 0.5), None), None);
        // expressions on top: surprised on w3 + w0 (correlated with gender), the others on w4
        let mut l = Labelled { ws: vec![], attributes: vec![], seconds: 0.0, independent: vec![] };
        for _ in 0..600 {
            let w: Vec<f32> = (0..d).map(|_| rnd()).collect();
            let mut a = Attributes::from_readings(40.0, 0.5, 0.5);
            a.expressions = [0.0; 7];
            let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
            a.expressions[6] = 1e-6 * (30.0 * (w[3] + w[0])).exp();
            for i in [0, 2, 3, 4, 5] {
                a.expressions[i] = 0.1 * sig(10.0 * w[4]);
            }
            l.ws.push(w);
            l.attributes.push(a);
        }
        let e = fit_expressions(&dirs, &l, 0.3, "expr").unwrap();
        assert_eq!(&e.vectors[..3], &dirs.vectors[..], "the base directions are kept as they were");
        assert_eq!(e.meta.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["gender", "age", "smile", "neutral", "sad", "angry", "fearful", "disgusted", "surprised"]);
        let s = &e.vectors[e.index("surprised").unwrap()];
        assert!(dot(s, &e.vectors[0]).abs() < 1e-4 && dot(s, &e.vectors[1]).abs() < 1e-4, "not orthogonal to gender and age");
        assert!(s[3] > 0.9, "surprised should be ~e3 once gender is taken out: {:?}", &s[..5]);
        assert!(e.meta.attributes[8].slope > 0.0 && e.meta.attributes[8].held_out_accuracy > 0.9, "{:?}", e.meta.attributes[8]);
        assert!(e.vectors[e.index("sad").unwrap()][4] > 0.9);
        assert!(e.meta.command.ends_with("; expressions: expr"));
        // refitting on the result replaces the expression directions, not adds more
        assert_eq!(fit_expressions(&e, &l, 0.3, "again").unwrap().vectors.len(), 9);
        let moved = dirs.apply(&vec![0.0; d], &[(1, 2.0)]);
        assert!((dot(&moved, &dirs.vectors[1]) - 2.0 * dirs.meta.attributes[1].sigma).abs() < 1e-4);
    }
}
