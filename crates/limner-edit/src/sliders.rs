//! One slider type for every kind of direction in `w`:
//!
//! - **named** (gender, age, smile; [`crate::directions`], fitted on labelled faces),
//! - **SeFa** (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the
//!   eigenvectors of `Σ AᵀA` over the style-affine matrices `A` of the chosen style layers —
//!   the directions in `w` those layers' styles are most sensitive to; closed form, no sampling,
//! - **GANSpace** (Härkönen et al. 2020): principal components of sampled `w`s.
//!
//! A move is `(slider, value, rows)`: `w+` rows `rows` move by `value · sigma · direction`, where
//! `sigma` is one standard deviation of sampled faces' `w`s along the direction (so values of
//! every kind are in the same units). The one `--slider` syntax ([`parse_move`]):
//! `age=+1.5`, `sefa:0=+3` (SeFa over the `--layers` selection), `sefa:coarse:0=+3`,
//! `ganspace:2=-1`, `ganspace:fine:2=-1`.
//!
//! SeFa directions of any layer selection are computed when first asked for: the default
//! model and random-face "ship" theirs this way (under 0.2 s a selection; see
//! `bench/` and [`Catalogue::sefa`]), nothing is stored.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};
use limner_core::latent_for_seed;
use limner_core::{parse_safetensors, safetensors_bytes, write_atomic, HostTensor, Precision, StateDict};
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::directions::Directions;
use crate::model::{group_rows, map_host, parse_layers, LayerGroup, Model, WPlus};

/// How a slider's direction was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Named,
    Sefa,
    Ganspace,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sefa" => Ok(Method::Sefa),
            "ganspace" => Ok(Method::Ganspace),
            "named" => Ok(Method::Named),
            other => bail!("unknown slider method `{other}`: use sefa or ganspace"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Method::Named => "named",
            Method::Sefa => "sefa",
            Method::Ganspace => "ganspace",
        }
    }
}

/// A unit direction in `w` and the style rows it moves by default.
#[derive(Clone, Debug, PartialEq)]
pub struct Slider {
    /// `age`, `sefa:coarse:0`, `ganspace:all:3`
    pub id: String,
    pub method: Method,
    /// unit length, `w_dim`
    pub vector: Vec<f32>,
    /// one slider unit in `w`
    pub sigma: f32,
    /// the style rows it was found for (all rows for named ones)
    pub rows: Vec<usize>,
    /// what + means, where known
    pub positive: String,
}

/// One slider move as recipes record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliderMove {
    pub slider: String,
    pub value: f32,
    /// `w+` rows moved
    pub rows: Vec<usize>,
}

impl Slider {
    /// Moves `rows` of `ws` by `value` units.
    pub fn apply(&self, ws: &mut WPlus, value: f32, rows: &[usize]) {
        let s = value * self.sigma;
        for &r in rows {
            ws.row_mut(r).iter_mut().zip(&self.vector).for_each(|(o, d)| *o += s * d);
        }
    }
}

/// A set of directions found together (one method, one layer selection), as
/// `limner models sliders` writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct SliderSet {
    pub meta: SliderSetMeta,
    /// `[count][w_dim]`, orthonormal, strongest first
    pub vectors: Vec<Vec<f32>>,
    pub sigmas: Vec<f32>,
}

/// What a slider file records (safetensors metadata `limner_sliders`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliderSetMeta {
    pub method: Method,
    /// the selection as asked (`coarse`, `0-5`, `all`)
    pub layers: String,
    pub rows: Vec<usize>,
    pub model: crate::ModelId,
    pub w_dim: usize,
    /// eigenvalue of each direction (SeFa: of `Σ AᵀA`; GANSpace: the variance of `w` along it)
    pub eigenvalues: Vec<f32>,
    /// `w`s sampled for the sigmas (and for GANSpace's PCA)
    pub samples: usize,
}

impl SliderSet {
    pub fn slider(&self, i: usize) -> Result<Slider> {
        ensure!(i < self.vectors.len(), "{} slider {i}: only {} were computed (0-{})", self.meta.method.name(), self.vectors.len(), self.vectors.len().saturating_sub(1));
        Ok(Slider {
            id: format!("{}:{}:{i}", self.meta.method.name(), self.meta.layers),
            method: self.meta.method,
            vector: self.vectors[i].clone(),
            sigma: self.sigmas[i],
            rows: self.meta.rows.clone(),
            positive: String::new(),
        })
    }

    /// Largest |cosine| between two directions and largest |‖v‖ − 1|.
    pub fn orthonormality_error(&self) -> (f32, f32) {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let mut cos = 0f32;
        let mut norm = 0f32;
        for (i, a) in self.vectors.iter().enumerate() {
            norm = norm.max((dot(a, a).sqrt() - 1.0).abs());
            for b in &self.vectors[i + 1..] {
                cos = cos.max(dot(a, b).abs());
            }
        }
        (cos, norm)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut sd = StateDict::new();
        sd.insert("directions".into(), HostTensor { shape: vec![self.vectors.len(), self.meta.w_dim], data: self.vectors.concat() });
        sd.insert("sigmas".into(), HostTensor { shape: vec![self.sigmas.len()], data: self.sigmas.clone() });
        let mut meta = BTreeMap::new();
        meta.insert("limner_sliders".to_string(), serde_json::to_string(&self.meta)?);
        safetensors_bytes(&sd, &meta, Precision::F32)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (sd, meta) = parse_safetensors(bytes).context("not a safetensors file")?;
        let meta: SliderSetMeta = serde_json::from_str(meta.get("limner_sliders").context("no `limner_sliders` metadata: not a sliders file (make one with `limner models sliders`)")?)?;
        let d = sd.get("directions").context("no `directions` tensor")?;
        let s = sd.get("sigmas").context("no `sigmas` tensor")?;
        ensure!(d.shape.len() == 2 && d.shape[1] == meta.w_dim && s.data.len() == d.shape[0], "sliders file: directions {:?} and sigmas {:?} do not match w_dim {}", d.shape, s.shape, meta.w_dim);
        ensure!(d.data.iter().chain(&s.data).all(|v| v.is_finite()), "sliders file holds NaN or infinite values");
        Ok(Self { vectors: d.data.chunks(meta.w_dim).map(|c| c.to_vec()).collect(), sigmas: s.data.clone(), meta })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&b).with_context(|| format!("cannot load sliders {}", path.display()))
    }
}

/// Top eigenpairs of a symmetric `n × n` matrix (row-major, f64), largest first; each vector's
/// sign is fixed so that its largest-magnitude component is positive (deterministic output).
pub fn top_eigen(m: &[f64], n: usize, k: usize) -> (Vec<f64>, Vec<Vec<f32>>) {
    let mat = DMatrix::from_row_slice(n, n, m);
    let e = SymmetricEigen::new(mat);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
    let mut vals = vec![];
    let mut vecs = vec![];
    for &i in order.iter().take(k) {
        let col = e.eigenvectors.column(i);
        let big = col.iter().copied().fold(0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        let norm = col.norm().max(1e-300);
        vals.push(e.eigenvalues[i]);
        vecs.push(col.iter().map(|v| (v * sign / norm) as f32).collect());
    }
    (vals, vecs)
}

/// Seeds whose `w`s are sampled for slider units and GANSpace (fixed, so sliders are reproducible).
pub const SAMPLE_SEED0: u64 = 7_000_000;

/// Untruncated `w`s of `n` fixed seeds.
pub fn sample_ws(m: &dyn Model, n: usize) -> Vec<Vec<f32>> {
    let zs: Vec<Vec<f32>> = (0..n as u64).map(|i| latent_for_seed(SAMPLE_SEED0 + i, m.z_dim())).collect();
    map_host(m, &zs)
}

/// Standard deviation of the samples along each direction.
fn sigmas(samples: &[Vec<f32>], vectors: &[Vec<f32>]) -> Vec<f32> {
    vectors
        .iter()
        .map(|v| {
            let p: Vec<f64> = samples.iter().map(|w| w.iter().zip(v).map(|(a, b)| (*a as f64) * (*b as f64)).sum()).collect();
            let mean = p.iter().sum::<f64>() / p.len() as f64;
            ((p.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / p.len() as f64).sqrt()) as f32
        })
        .collect()
}

/// `w`s sampled for SeFa's slider units.
pub const SEFA_SAMPLES: usize = 256;
/// `w`s sampled for GANSpace's PCA.
pub const GANSPACE_SAMPLES: usize = 10_000;

/// SeFa over `rows` (`layers` names the selection): the top `count` eigenvectors of
/// `Σ_rows Σ_{A reading the row} AᵀA`; slider units from `samples` (see [`sample_ws`]).
pub fn sefa(m: &dyn Model, rows: &[usize], layers: &str, count: usize, samples: &[Vec<f32>]) -> Result<SliderSet> {
    let d = m.w_dim();
    ensure!(count >= 1 && count <= d, "--count {count}: between 1 and w_dim ({d})");
    let mut ata = vec![0f64; d * d];
    let mut matrices = 0;
    for &r in rows {
        for a in m.style_weights(r) {
            matrices += 1;
            for row in a.chunks(d) {
                let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                for i in 0..d {
                    let ri = row[i];
                    ata[i * d..(i + 1) * d].iter_mut().zip(&row).for_each(|(o, &x)| *o += ri * x);
                }
            }
        }
    }
    ensure!(matrices > 0, "no style layers selected");
    let (vals, vectors) = top_eigen(&ata, d, count);
    let sigmas = sigmas(samples, &vectors);
    Ok(SliderSet {
        meta: SliderSetMeta { method: Method::Sefa, layers: layers.into(), rows: rows.to_vec(), model: m.id().clone(), w_dim: d, eigenvalues: vals.iter().map(|&v| v as f32).collect(), samples: samples.len() },
        vectors,
        sigmas,
    })
}

/// GANSpace: the top `count` principal components of `samples` (untruncated `w`s), applied
/// to `rows`; a unit is one standard deviation along the component.
pub fn ganspace(m: &dyn Model, rows: &[usize], layers: &str, count: usize, samples: &[Vec<f32>]) -> Result<SliderSet> {
    let d = m.w_dim();
    ensure!(count >= 1 && count <= d, "--count {count}: between 1 and w_dim ({d})");
    ensure!(samples.len() > d, "GANSpace needs more samples ({}) than w dimensions ({d})", samples.len());
    let n = samples.len() as f64;
    let mut mean = vec![0f64; d];
    for w in samples {
        mean.iter_mut().zip(w).for_each(|(m, &x)| *m += x as f64 / n);
    }
    let mut cov = vec![0f64; d * d];
    let mut c = vec![0f64; d];
    for w in samples {
        c.iter_mut().zip(w).zip(&mean).for_each(|((o, &x), m)| *o = x as f64 - m);
        for i in 0..d {
            let ci = c[i] / n;
            cov[i * d..(i + 1) * d].iter_mut().zip(&c).for_each(|(o, &x)| *o += ci * x);
        }
    }
    let (vals, vectors) = top_eigen(&cov, d, count);
    let sigmas = sigmas(samples, &vectors);
    Ok(SliderSet {
        meta: SliderSetMeta { method: Method::Ganspace, layers: layers.into(), rows: rows.to_vec(), model: m.id().clone(), w_dim: d, eigenvalues: vals.iter().map(|&v| v as f32).collect(), samples: samples.len() },
        vectors,
        sigmas,
    })
}

/// SeFa directions computed per selection (the model's shipped unlabelled sliders).
pub const SHIPPED_SEFA: usize = 10;

/// Every slider of one model: its named directions (when it has them) and unlabelled ones,
/// computed on first use and kept.
pub struct Catalogue {
    pub named: Option<Directions>,
    /// extra slider files (`limner models sliders --out`), looked up before computing
    pub files: Vec<SliderSet>,
    sets: Mutex<BTreeMap<(Method, Vec<usize>), SliderSet>>,
    samples: Mutex<Option<Vec<Vec<f32>>>>,
}

impl Catalogue {
    /// `named`: the model's directions (see [`named_directions`]).
    pub fn new(named: Option<Directions>) -> Self {
        Self { named, files: vec![], sets: Mutex::new(BTreeMap::new()), samples: Mutex::new(None) }
    }

    fn samples(&self, m: &dyn Model, n: usize) -> Vec<Vec<f32>> {
        let mut s = self.samples.lock().expect("samples lock");
        if s.as_ref().is_none_or(|v| v.len() < n) {
            *s = Some(sample_ws(m, n));
        }
        s.as_ref().expect("set").iter().take(n).cloned().collect()
    }

    /// The unlabelled set of `method` over `rows` (computed once; SeFa's top
    /// [`SHIPPED_SEFA`], GANSpace's top 20).
    pub fn set(&self, m: &dyn Model, method: Method, rows: &[usize], layers: &str) -> Result<SliderSet> {
        if let Some(f) = self.files.iter().find(|f| f.meta.method == method && f.meta.rows == rows) {
            return Ok(f.clone());
        }
        let key = (method, rows.to_vec());
        if let Some(s) = self.sets.lock().expect("sets lock").get(&key) {
            return Ok(s.clone());
        }
        let set = match method {
            Method::Sefa => sefa(m, rows, layers, SHIPPED_SEFA, &self.samples(m, SEFA_SAMPLES))?,
            Method::Ganspace => ganspace(m, rows, layers, 20, &self.samples(m, GANSPACE_SAMPLES))?,
            Method::Named => bail!("named sliders are not computed"),
        };
        self.sets.lock().expect("sets lock").insert(key, set.clone());
        Ok(set)
    }

    /// SeFa's top sliders for a layer group.
    pub fn sefa(&self, m: &dyn Model, g: LayerGroup) -> Result<SliderSet> {
        self.set(m, Method::Sefa, &group_rows(m, g), g.name())
    }

    /// Resolves a slider id (`age`, `sefa:3`, `sefa:coarse:3`, `ganspace:0-5:1`); a bare
    /// unlabelled index uses `default_layers` (`all` when `None`).
    pub fn slider(&self, m: &dyn Model, id: &str, default_layers: Option<&str>) -> Result<Slider> {
        let parts: Vec<&str> = id.split(':').map(str::trim).collect();
        match parts.as_slice() {
            [name] => {
                let d = self.named.as_ref().with_context(|| {
                    format!("model `{}` has no named sliders yet (so no `{name}`): make them with `limner models directions --model {}`, or use sefa:N / ganspace:N", m.id().name, m.id().name)
                })?;
                let i = d.index(name)?;
                ensure!(d.meta.w_dim == m.w_dim(), "the named directions are for w_dim {}, model `{}` has w_dim {}", d.meta.w_dim, m.id().name, m.w_dim());
                let a = &d.meta.attributes[i];
                Ok(Slider { id: a.name.clone(), method: Method::Named, vector: d.vectors[i].clone(), sigma: a.sigma, rows: (0..m.num_ws()).collect(), positive: a.positive.clone() })
            }
            [method, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
                let method = Method::parse(method)?;
                ensure!(method != Method::Named, "write named sliders by name, e.g. age=+1");
                let (layers, idx) = match rest {
                    [i] => (default_layers.unwrap_or("all"), *i),
                    [l, i] => (*l, *i),
                    _ => unreachable!(),
                };
                let i: usize = idx.parse().with_context(|| format!("slider `{id}`: `{idx}` is not an index"))?;
                let rows = parse_layers(m, layers)?;
                self.set(m, method, &rows, layers)?.slider(i)
            }
            _ => bail!("slider `{id}`: write NAME (age, gender, smile), sefa:N, sefa:LAYERS:N, ganspace:N or ganspace:LAYERS:N"),
        }
    }
}

/// The model's stored named directions (`file` overrides; `None` when it has none).
pub fn named_directions(model: &str, file: Option<&Path>) -> Result<Option<Directions>> {
    if let Some(f) = file {
        return Directions::load(f).map(Some);
    }
    match limner_models::directions_bytes(model)? {
        Some(b) => Ok(Some(Directions::from_bytes(&b).with_context(|| format!("model `{model}`'s directions"))?)),
        None => Ok(None),
    }
}

/// Parses `SLIDER=VALUE` (e.g. `age=+1.5`, `sefa:coarse:0=-3`) into a move; the rows are the
/// slider's own unless `layers` selects others.
pub fn parse_move(c: &Catalogue, m: &dyn Model, s: &str, layers: Option<&str>) -> Result<(Slider, SliderMove)> {
    let (name, v) = s.split_once('=').with_context(|| format!("--slider `{s}`: write NAME=VALUE, e.g. age=+1.5 or sefa:0=+3"))?;
    let v: f32 = v.trim().trim_start_matches('+').parse().with_context(|| format!("--slider `{s}`: `{v}` is not a number"))?;
    if !v.is_finite() || v.abs() > 10.0 {
        bail!("--slider `{s}`: values are in standard deviations, between -10 and 10");
    }
    let slider = c.slider(m, name.trim(), layers)?;
    let rows = match layers {
        Some(l) if slider.method == Method::Named => parse_layers(m, l)?,
        _ => slider.rows.clone(),
    };
    let mv = SliderMove { slider: slider.id.clone(), value: v, rows };
    Ok((slider, mv))
}

/// Applies moves in order.
pub fn apply_moves(ws: &mut WPlus, moves: &[(Slider, SliderMove)]) {
    for (s, mv) in moves {
        s.apply(ws, mv.value, &mv.rows);
    }
}
