//! Every call into generation lives here (through limner-edit's one `Model` abstraction): what a face request is, how it is checked, the
//! bounded pool of render workers (one per core by default, each with its own loaded models),
//! and the models the page may pick.
//!
//! The pool's queue is a bounded channel: when it is full a request is refused at once (the API
//! answers 503 with Retry-After), so memory never grows with the load. A queued render whose
//! client has gone (its reply receiver dropped) is skipped when a worker reaches it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use burn::tensor::Device;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use limner_edit::model::seed_ws;
use limner_edit::recipe::{NoiseSpec, Origin, Recipe};
use limner_edit::sliders::Catalogue;
use limner_edit::Model;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Largest seed the page and API take: JavaScript's largest exact integer.
pub const MAX_SEED: u64 = (1 << 53) - 1;
pub const PSI_RANGE: (f32, f32) = (-1.0, 2.0);
pub const NOISE_RANGE: (f32, f32) = (0.0, 2.0);

/// One face: everything that decides its pixels (its recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceRequest {
    pub model: String,
    pub seed: u64,
    pub psi: f32,
    pub noise: f32,
    /// output size (random-face: 256, 512 or 1024; other models: their own resolution)
    pub size: usize,
}

impl FaceRequest {
    /// The key of its image in the render cache.
    pub fn key(&self) -> String {
        format!("{}|{}|{}|{}|{}", self.model, self.seed, self.psi.to_bits(), self.noise.to_bits(), self.size)
    }
}

/// A model the page may pick.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub resolution: usize,
    /// the sizes a face can be asked for
    pub sizes: Vec<usize>,
    pub default_size: usize,
    pub licence: String,
    /// whether a photo can be projected onto it (`/api/photos`; not random-face yet)
    pub projectable: bool,
}

/// Whether a string can be a model name at all (no paths: a model is picked from the list).
pub fn is_model_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The models the page offers: the embedded default, random-face when fetched, and every
/// generator in the model folder (never an arbitrary path).
pub fn list_models() -> Vec<ModelInfo> {
    let device = Device::flex();
    limner_models::list(&device)
        .into_iter()
        .filter(|m| is_model_name(&m.name))
        .filter_map(|m| {
            let res = m.resolution?;
            let sizes = if m.name == limner_photoreal::MODEL_NAME { vec![256, 512, 1024] } else { vec![res] };
            let default_size = sizes[0];
            // every model limner opens has a differentiable path (random-face's since session 8)
            Some(ModelInfo { name: m.name, resolution: res, sizes, default_size, licence: m.licence, projectable: true })
        })
        .collect()
}

/// Checks a request against the models offered; fills in the size when 0.
pub fn check(req: &mut FaceRequest, models: &[ModelInfo]) -> Result<()> {
    ensure!(is_model_name(&req.model), "model: give a name from /api/models");
    let Some(m) = models.iter().find(|m| m.name == req.model) else { bail!("model `{}` is not offered here (see /api/models)", req.model) };
    ensure!(req.seed <= MAX_SEED, "seed: 0 to {MAX_SEED}");
    ensure!(req.psi.is_finite() && (PSI_RANGE.0..=PSI_RANGE.1).contains(&req.psi), "psi: a number from {} to {}", PSI_RANGE.0, PSI_RANGE.1);
    ensure!(req.noise.is_finite() && (NOISE_RANGE.0..=NOISE_RANGE.1).contains(&req.noise), "noise: a number from {} to {}", NOISE_RANGE.0, NOISE_RANGE.1);
    if req.size == 0 {
        req.size = m.default_size;
    }
    ensure!(m.sizes.contains(&req.size), "size: model `{}` makes {:?}", m.name, m.sizes);
    Ok(())
}

/// A rendered face.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub png: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
    /// its recipe (limner-edit's JSON)
    pub recipe: Arc<String>,
    /// milliseconds the render took on its worker (not the wait in the queue)
    pub render_ms: f64,
}

/// A worker's opened models, by (name, size) (a few at most), and their slider catalogues;
/// the networks of projection (face-api, the perceptual distance) and DeepDream (InceptionV3),
/// loaded on first use.
pub struct Models {
    device: Device,
    loaded: HashMap<(String, usize), Box<dyn Model>>,
    catalogues: HashMap<(String, usize), Arc<Catalogue>>,
    faces: Option<limner_faces::FaceAnalyzer>,
    perceptual: Option<limner_nets::perceptual::InceptionPerceptual>,
    inception: Option<limner_nets::InceptionV3>,
    /// the copy check of each model's kept and exported faces (`None`: no index applies)
    guards: HashMap<String, Option<limner_audit::guard::CopyGuard>>,
    nsfw: Option<limner_nets::NsfwClassifier>,
}

const MODELS_PER_WORKER: usize = 3;

impl Models {
    /// The model `name` at `size` and its slider catalogue (named directions when the model has
    /// them; unlabelled ones computed on first use and kept).
    pub fn with_catalogue(&mut self, name: &str, size: usize) -> Result<(&dyn Model, Arc<Catalogue>)> {
        self.get(name, size)?;
        let key = (name.to_string(), size);
        if !self.catalogues.contains_key(&key) {
            let c = Catalogue::new(limner_edit::sliders::named_directions(name, None)?);
            self.catalogues.insert(key.clone(), Arc::new(c));
        }
        Ok((self.loaded[&key].as_ref(), self.catalogues[&key].clone()))
    }

    /// The copy check of `model`'s faces (opened on first use; `None` when no training index
    /// applies or its networks are not fetched).
    pub fn guard(&mut self, model: &str) -> Result<Option<&mut limner_audit::guard::CopyGuard>> {
        if !self.guards.contains_key(model) {
            let g = limner_audit::guard::CopyGuard::open(model, None, false, &mut |n| eprintln!("limner studio: {n}"))?;
            self.guards.insert(model.to_string(), g);
        }
        Ok(self.guards.get_mut(model).and_then(|g| g.as_mut()))
    }

    /// The model `name` at `size` (opened on first use).
    pub fn get(&mut self, name: &str, size: usize) -> Result<&dyn Model> {
        let key = (name.to_string(), size);
        if !self.loaded.contains_key(&key) {
            ensure!(is_model_name(name), "bad model name");
            if self.loaded.len() >= MODELS_PER_WORKER {
                self.loaded.clear();
                self.catalogues.clear();
            }
            let m = limner_edit::open(name, Some(size), &self.device)?;
            self.loaded.insert(key.clone(), m);
        }
        Ok(self.loaded[&key].as_ref())
    }
}

/// What the copy check said of a face about to be kept or exported.
pub enum Checked {
    /// kept/exported: the label's record of its nearest training distances (`None` when no
    /// training index applies to its model, or the check's networks are not fetched)
    Passed(Option<serde_json::Value>),
    /// a near copy of a training image, refused
    Refused {
        /// why, and how to override
        message: String,
        /// the face beside the closest training thumbnail (PNG)
        side_by_side: Option<Vec<u8>>,
        /// the distances per space
        distances: serde_json::Value,
    },
}

/// How a studio request overrides a refusal.
pub const OVERRIDE: &str = "set \"allow_near_copy\": true in the request (export: ?allow_near_copy=true) to keep or export it anyway";

/// The copy check of a generated face (its PNG, made by `model`) against the model's training
/// index, as the CLI's exports are checked (`limner_audit::guard`).
pub fn copy_check(models: &mut Models, model: &str, png: &[u8], allow: bool) -> Result<Checked> {
    let Some(g) = models.guard(model)? else { return Ok(Checked::Passed(None)) };
    let rgb = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgb8();
    ensure!(rgb.width() == rgb.height(), "the copy check takes square faces");
    let face = limner_audit::Rgb8::new(rgb.width() as usize, rgb.into_raw());
    let checks = g.measure(std::slice::from_ref(&face))?;
    g.allowing(allow);
    match g.verdict(&checks, std::slice::from_ref(&face), &["face".to_string()], None, OVERRIDE) {
        Ok(mut records) => Ok(Checked::Passed(records.pop())),
        Err(e) => match e.downcast::<limner_audit::guard::NearCopies>() {
            Ok(n) => {
                let r = &n.refused[0];
                Ok(Checked::Refused {
                    message: format!("a near copy of a training image, refused: {}; {}", r.explanation, n.how_to_override),
                    side_by_side: r.side_by_side_png.clone(),
                    distances: r.check.to_json(),
                })
            }
            Err(e) => Err(e),
        },
    }
}

/// A kept face's PNG again, its label carrying the copy check's record (same pixels).
pub fn with_record(png: &[u8], recipe: &Recipe, record: &serde_json::Value) -> Result<Vec<u8>> {
    let rgb = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgb8();
    let prov = limner_audit::guard::labelled(&recipe.provenance()?, Some(record));
    limner_data::provenance::embed(&encode_png(rgb.as_raw(), rgb.width(), rgb.height())?, &prov)
}

/// Renders one face to PNG (on the calling thread), with its recipe (limner-edit's, which
/// `limner render` makes again byte for byte).
fn render(models: &mut Models, req: &FaceRequest) -> Result<Rendered> {
    let t = Instant::now();
    let m = models.get(&req.model, req.size)?;
    let ws = seed_ws(m, &[req.seed], req.psi);
    let img = m.render(&ws, &[req.seed], req.noise).pop().expect("one image");
    let recipe = Recipe::new(m, &ws[0], NoiseSpec { seed: req.seed, scale: req.noise }, Origin::Seed { seed: req.seed, psi: req.psi }, vec![]);
    let png = labelled_png(&img.to_rgb8(), img.width as u32, img.height as u32, &recipe)?;
    Ok(Rendered {
        png: Arc::new(png),
        width: img.width as u32,
        height: img.height as u32,
        recipe: Arc::new(serde_json::to_string(&recipe)?),
        render_ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// A recipe's image as PNG, with the recipe's JSON.
fn finish(rgb: &[u8], width: usize, height: usize, recipe: &Recipe, t: Instant) -> Result<Rendered> {
    let png = labelled_png(rgb, width as u32, height as u32, recipe)?;
    Ok(Rendered {
        png: Arc::new(png),
        width: width as u32,
        height: height as u32,
        recipe: Arc::new(serde_json::to_string(recipe)?),
        render_ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// Renders a recipe on its own model at its size (which the caller has checked is offered).
pub fn render_recipe(models: &mut Models, r: &Recipe) -> Result<Rendered> {
    let t = Instant::now();
    let m = models.get(&r.model.name, r.size)?;
    let img = limner_edit::recipe::render(r, m)?;
    finish(&img.to_rgb8(), img.width, img.height, r, t)
}

/// A litter to breed (as [`limner_edit::breed::breed`] takes it).
#[derive(Clone, Debug)]
pub struct BreedRequest {
    pub parents: Vec<Recipe>,
    pub options: limner_edit::breed::BreedOptions,
}

/// Breeds a litter with limner-edit and renders each child (its recipe names its parents).
pub fn breed(models: &mut Models, b: &BreedRequest) -> Result<Vec<Rendered>> {
    let t = Instant::now();
    let p0 = b.parents.first().ok_or_else(|| anyhow::anyhow!("no parents"))?;
    let m = models.get(&p0.model.name, p0.size)?;
    let litter = limner_edit::breed::breed(m, &b.parents, &b.options)?;
    let ws: Vec<_> = litter.iter().map(|(w, _)| w.clone()).collect();
    let seeds: Vec<u64> = litter.iter().map(|(_, r)| r.noise.seed).collect();
    let imgs = m.render(&ws, &seeds, p0.noise.scale);
    imgs.iter().zip(&litter).map(|(img, (_, r))| finish(&img.to_rgb8(), img.width, img.height, r, t)).collect()
}

/// Moves sliders (`(id, value)`, values in standard deviations) from `base`'s `w+` and renders
/// the result; the recipe keeps `base`'s origin and edits and adds these moves.
pub fn slide(models: &mut Models, base: &Recipe, moves: &[(String, f32)]) -> Result<Rendered> {
    let t = Instant::now();
    let (m, cat) = models.with_catalogue(&base.model.name, base.size)?;
    limner_edit::recipe::check_model(base, m)?;
    let parsed = moves
        .iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(id, v)| limner_edit::sliders::parse_move(&cat, m, &format!("{id}={v}"), None))
        .collect::<Result<Vec<_>>>()?;
    let mut ws = base.ws()?;
    limner_edit::sliders::apply_moves(&mut ws, &parsed);
    ensure!(ws.is_finite(), "the sliders moved the face out of range");
    let mut edits = base.edits.clone();
    edits.extend(parsed.iter().map(|(_, mv)| limner_edit::recipe::Edit::Slider(mv.clone())));
    let r = Recipe::new(m, &ws, base.noise, base.origin.clone(), edits);
    let img = m.render(&[ws], &[r.noise.seed], r.noise.scale).pop().expect("one image");
    finish(&img.to_rgb8(), img.width, img.height, &r, t)
}

/// One slider the page offers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SliderInfo {
    /// what `/api/slide` takes (`age`, `sefa:coarse:0`)
    pub id: String,
    /// `named`, `sefa` or `ganspace`
    pub kind: String,
    /// the layer group an unlabelled slider moves (`all` for named ones)
    pub group: String,
    /// what +1 means (named), or the slider's place (unlabelled)
    pub label: String,
}

/// Unlabelled sliders offered per layer group.
pub const SEFA_PER_GROUP: usize = 4;
/// GANSpace sliders offered (the top principal components of `w`, moving every layer; one PCA
/// per model, computed on a worker the first time one is moved).
pub const GANSPACE_OFFERED: usize = 4;

/// The sliders of a model: its named directions (when it has them), SeFa's top
/// [`SEFA_PER_GROUP`] per layer group it has layers in, and GANSpace's top [`GANSPACE_OFFERED`]
/// (limner-edit's [`limner_edit::sliders::Catalogue`] resolves every id).
pub fn sliders(models: &mut Models, name: &str, size: usize) -> Result<Vec<SliderInfo>> {
    let (m, cat) = models.with_catalogue(name, size)?;
    let mut out = vec![];
    if let Some(d) = &cat.named {
        if d.meta.w_dim == m.w_dim() {
            out.extend(d.meta.attributes.iter().map(|a| SliderInfo { id: a.name.clone(), kind: "named".into(), group: "all".into(), label: a.positive.clone() }));
        }
    }
    for g in limner_edit::LayerGroup::ALL {
        if limner_edit::model::group_rows(m, g).is_empty() {
            continue;
        }
        for i in 0..SEFA_PER_GROUP.min(limner_edit::sliders::SHIPPED_SEFA) {
            out.push(SliderInfo { id: format!("sefa:{}:{i}", g.name()), kind: "sefa".into(), group: g.name().into(), label: format!("{} {}", g.name(), i + 1) });
        }
    }
    for i in 0..GANSPACE_OFFERED {
        out.push(SliderInfo { id: format!("ganspace:all:{i}"), kind: "ganspace".into(), group: "all".into(), label: format!("component {}", i + 1) });
    }
    Ok(out)
}

/// PNG bytes of a generated face carrying limner's provenance label (XMP: IPTC digital source
/// type `trainedAlgorithmicMedia`, the recipe, the model's sha256), as every file the CLI
/// writes does; the label never changes the pixels, and the same recipe gives the same bytes.
fn labelled_png(rgb: &[u8], w: u32, h: u32, recipe: &Recipe) -> Result<Vec<u8>> {
    limner_data::provenance::embed(&encode_png(rgb, w, h)?, &recipe.provenance()?)
}

/// What a kept face is exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Png,
    Jpeg,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "png" => Some(Self::Png),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// A kept face as a file to take away: its pixels as PNG or JPEG (quality 92) with limner's
/// provenance label (AI-made, its recipe, the model's sha256) and the curator who kept it as
/// the creator (`dc:creator`), through the same labelling path as every file the CLI writes.
/// `record`: the copy check's (nearest training distances), added to the label.
pub fn export(png: &[u8], recipe: &serde_json::Value, creator: &str, format: ExportFormat, record: Option<&serde_json::Value>) -> Result<Vec<u8>> {
    let rgb = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgb8();
    let (w, h) = rgb.dimensions();
    let encoded = match format {
        ExportFormat::Png => encode_png(rgb.as_raw(), w, h)?,
        ExportFormat::Jpeg => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode(rgb.as_raw(), w, h, ExtendedColorType::Rgb8)?;
            out
        }
    };
    let prov = match serde_json::from_value::<Recipe>(recipe.clone()) {
        Ok(r) => r.provenance()?,
        // an art step's picture: a composite when a person's photo is at its root
        Err(_) => match limner_art::step::ArtRecipe::from_value(recipe) {
            Some(a) => a.provenance(),
            None => limner_data::provenance::Provenance::generated().with_recipe_json(recipe.clone()),
        },
    };
    let prov = limner_audit::guard::labelled(&prov, record);
    limner_data::provenance::embed(&encoded, &prov.with_creator(Some(creator.to_string())))
}

/// PNG bytes of an RGB8 image (deterministic: the same pixels give the same bytes).
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(rgb, w, h, ExtendedColorType::Rgb8)?;
    Ok(out)
}

/// A queued piece of work: it runs on a worker with that worker's models and answers its
/// client itself; `None` when its client had gone (the work was skipped).
type Job = Box<dyn FnOnce(&mut Models) -> Option<Outcome> + Send>;

/// How a job ended (for the counters).
enum Outcome {
    Done,
    Failed,
    Panicked,
}

/// Counters of the pool, as `/api/stats` shows them.
#[derive(Default)]
pub struct Stats {
    pub rendered: AtomicU64,
    pub rejected: AtomicU64,
    pub abandoned: AtomicU64,
    pub failed: AtomicU64,
    pub busy: AtomicUsize,
    pub max_queued: AtomicUsize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatsView {
    pub workers: usize,
    pub queue_capacity: usize,
    pub queued: usize,
    pub max_queued: usize,
    pub busy: usize,
    pub rendered: u64,
    pub rejected: u64,
    pub abandoned: u64,
    pub failed: u64,
}

/// The render queue is full.
#[derive(Debug)]
pub struct Busy;

/// The bounded render pool.
pub struct Pool {
    tx: crossbeam_channel::Sender<Job>,
    stats: Arc<Stats>,
    workers: usize,
    capacity: usize,
}

impl Pool {
    /// Starts `workers` render threads behind a queue of `capacity` waiting renders.
    pub fn new(workers: usize, capacity: usize) -> Self {
        let workers = workers.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(capacity);
        let stats = Arc::new(Stats::default());
        for i in 0..workers {
            let rx = rx.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("limner-render-{i}"))
                .spawn(move || {
                    let mut models = Models { device: Device::flex(), loaded: HashMap::new(), catalogues: HashMap::new(), faces: None, perceptual: None, inception: None, guards: HashMap::new(), nsfw: None };
                    while let Ok(job) = rx.recv() {
                        stats.busy.fetch_add(1, Ordering::Relaxed);
                        let outcome = job(&mut models);
                        // count the outcome before the worker reads as idle again, so that
                        // `busy == 0` in the stats means every finished job is counted
                        match outcome {
                            None => stats.abandoned.fetch_add(1, Ordering::Relaxed),
                            Some(Outcome::Done) => stats.rendered.fetch_add(1, Ordering::Relaxed),
                            Some(Outcome::Failed) => stats.failed.fetch_add(1, Ordering::Relaxed),
                            Some(Outcome::Panicked) => {
                                models.loaded.clear();
                                models.catalogues.clear();
                                stats.failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        stats.busy.fetch_sub(1, Ordering::Relaxed);
                    }
                })
                .expect("cannot start a render thread");
        }
        Self { tx, stats, workers, capacity }
    }

    /// Queues a face render; `Err(Busy)` when the queue is full.
    pub fn submit(&self, req: FaceRequest) -> Result<oneshot::Receiver<Result<Rendered, String>>, Busy> {
        self.submit_with(move |m| render(m, &req))
    }

    /// Queues any generation work (breeding, sliders, a recipe) on a worker with its models;
    /// `Err(Busy)` when the queue is full. Work whose receiver is dropped before a worker
    /// reaches it is skipped; a panic is caught and answered as an error.
    pub fn submit_with<T: Send + 'static>(&self, f: impl FnOnce(&mut Models) -> Result<T> + Send + 'static) -> Result<oneshot::Receiver<Result<T, String>>, Busy> {
        let (reply, rx) = oneshot::channel::<Result<T, String>>();
        let job: Job = Box::new(move |models: &mut Models| {
            if reply.is_closed() {
                return None;
            }
            let (r, outcome) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(models))) {
                Ok(Ok(v)) => (Ok(v), Outcome::Done),
                Ok(Err(e)) => (Err(format!("{e:#}")), Outcome::Failed),
                Err(_) => (Err("the render failed (a bug: please report it with the request)".into()), Outcome::Panicked),
            };
            let _ = reply.send(r);
            Some(outcome)
        });
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.max_queued.fetch_max(self.tx.len(), Ordering::Relaxed);
                Ok(rx)
            }
            Err(_) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    pub fn stats(&self) -> StatsView {
        let s = &self.stats;
        StatsView {
            workers: self.workers,
            queue_capacity: self.capacity,
            queued: self.tx.len(),
            max_queued: s.max_queued.load(Ordering::Relaxed),
            busy: s.busy.load(Ordering::Relaxed),
            rendered: s.rendered.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            abandoned: s.abandoned.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
        }
    }

    /// A conservative Retry-After: the time to drain a full queue at about one render per worker.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The last few renders, so keeping the face on screen does not render it again.
pub struct Cache {
    inner: Mutex<std::collections::VecDeque<(String, Rendered)>>,
    cap: usize,
}

impl Cache {
    pub fn new(cap: usize) -> Self {
        Self { inner: Mutex::new(Default::default()), cap }
    }

    pub fn get(&self, key: &str) -> Option<Rendered> {
        let q = self.inner.lock().unwrap();
        q.iter().find(|(k, _)| k == key).map(|(_, r)| r.clone())
    }

    pub fn put(&self, key: String, r: Rendered) {
        let mut q = self.inner.lock().unwrap();
        if q.iter().any(|(k, _)| *k == key) {
            return;
        }
        if q.len() >= self.cap {
            q.pop_front();
        }
        q.push_back((key, r));
    }
}

// ---------------------------------------------------------------------------------------
// Your photo: uploads, alignment, projection

/// Largest upload (a photo, a painting) in bytes.
pub const MAX_UPLOAD_BYTES: usize = 16 << 20;
/// Largest upload in pixels (declared in its header; refused before decoding).
pub const MAX_UPLOAD_PIXELS: u64 = 36_000_000;
/// A photo's longer side is brought down to this before its face is looked for.
pub const DETECT_SIDE: usize = 1024;
/// Projection steps by default: about 0.13 s a step for the 64 px default model on 2 cores, so
/// about 20 s (`limner project` takes 300 by default; the page lets the user choose).
pub const PROJECT_STEPS: usize = 150;
pub const MAX_PROJECT_STEPS: usize = 1000;
/// A projection preview is rendered every this many steps.
pub const PREVIEW_EVERY: usize = 5;

/// An uploaded picture, decoded.
pub struct Upload {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// sha256 of the bytes as uploaded
    pub sha256: String,
}

/// Decodes an upload (by its content, never a name or a header), refusing what is not a JPEG,
/// PNG or WebP picture, truncated or corrupt data, and pictures over [`MAX_UPLOAD_PIXELS`].
pub fn decode_upload(bytes: &[u8], what: &str) -> Result<Upload> {
    let (w, h, rgb) = limner_data::imageio::decode_image_rgb(bytes, MAX_UPLOAD_PIXELS).map_err(|e| anyhow::anyhow!("the {what} cannot be used: {e:#} (upload a JPEG, PNG or WebP picture)"))?;
    ensure!(w >= 16 && h >= 16, "the {what} is {w}×{h} px: too small (at least 16×16)");
    Ok(Upload { width: w as usize, height: h as usize, rgb, sha256: crate::blobs::hash_bytes(bytes) })
}

/// `w`×`h` scaled so the longer side is `side`.
fn fit(w: usize, h: usize, side: usize) -> (usize, usize) {
    let s = side as f64 / w.max(h) as f64;
    (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
}

/// The explicit-content threshold by default (`limner studio --nsfw-threshold`): an upload whose
/// probability of being explicit by nsfwjs' classifier, P(Porn) + P(Hentai) + P(Sexy), is above
/// it is refused. 0.6: clothed portraits score well under it (0.000–0.124 on 20 of the shared
/// 128 px faces); a picture nsfwjs finds more likely explicit than not, with some margin, is over it.
pub const NSFW_THRESHOLD: f32 = 0.6;

/// What screening an upload found.
#[derive(Clone, Debug, Serialize)]
pub struct Screening {
    /// P(Porn) + P(Hentai) + P(Sexy) (nsfwjs' InceptionV3 classifier)
    pub explicit: f32,
    /// the threshold it was held against
    pub threshold: f32,
    /// nsfwjs' most probable class
    pub top: &'static str,
    /// every class's probability, by name
    pub probabilities: std::collections::BTreeMap<&'static str, f32>,
    /// milliseconds the classifier took (the model's loading not counted)
    pub ms: f64,
}

impl Screening {
    pub fn refused(&self) -> bool {
        !(self.explicit <= self.threshold)
    }
    /// The message an upload refused for it gets.
    pub fn message(&self, what: &str) -> String {
        format!(
            "the {what} is refused as explicit: nsfwjs' classifier gives it P(Porn) + P(Hentai) + P(Sexy) = {:.3}, over this studio's threshold {:.3} (limner studio takes no explicit pictures; nothing was stored)",
            self.explicit, self.threshold
        )
    }
}

/// Screens an upload for explicit content with nsfwjs' classifier (limner-nets), loaded on
/// first use; a missing model is an error that says what to fetch (uploads are never taken
/// unscreened).
pub fn screen(models: &mut Models, up: &Upload, threshold: f32) -> Result<Screening> {
    if models.nsfw.is_none() {
        let net = limner_nets::NsfwClassifier::load_fetched(&models.device)
            .map_err(|e| anyhow::anyhow!("uploads are screened for explicit content with nsfwjs' classifier, which is not available here ({e:#})"))?;
        models.nsfw = Some(net);
    }
    // (a photo over 1024 px is brought down to that in 8-bit first; see classify_rgb8)
    let t = Instant::now();
    let scores = models.nsfw.as_ref().expect("loaded").classify_rgb8(up.width, up.height, &up.rgb)?;
    Ok(Screening {
        explicit: scores.explicit(),
        threshold,
        top: scores.top().0,
        probabilities: limner_nets::nsfw::CLASSES.iter().copied().zip(scores.probs).collect(),
        ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// A photo's face, aligned FFHQ-style to the size of the model it will be projected onto.
pub struct Aligned {
    pub image: limner_faces::Image,
    /// faces found in the photo (the largest is used)
    pub faces: usize,
    /// the aligned face as PNG (the person's own photo: no AI label)
    pub png: Vec<u8>,
}

/// Projection steps when the page asks for none: random-face's 1024² synthesis makes each step
/// costly, so fewer (as `limner project` does).
pub fn default_project_steps(name: &str) -> usize {
    if name == limner_photoreal::MODEL_NAME {
        60
    } else {
        PROJECT_STEPS
    }
}

/// Finds the largest face of `photo` (face-api) and aligns it to model `name` at `size`; a
/// photo without a face is an error that says so.
pub fn align(models: &mut Models, photo: &Upload, name: &str, size: usize) -> Result<Aligned> {
    let side = models.get(name, size)?.size();
    if models.faces.is_none() {
        let cfg = limner_faces::FaceAnalyzerConfig::default();
        models.faces = Some(limner_faces::FaceAnalyzer::load_fetched(cfg, &models.device)?);
    }
    // brought down in 8-bit before the float copy face-api works on (a 36-megapixel photo would
    // otherwise take 432 MB as floats)
    let img = if photo.width.max(photo.height) > DETECT_SIDE {
        let (w, h) = fit(photo.width, photo.height, DETECT_SIDE);
        let full = image::RgbImage::from_raw(photo.width as u32, photo.height as u32, photo.rgb.clone()).ok_or_else(|| anyhow::anyhow!("bad photo buffer"))?;
        let small = image::imageops::resize(&full, w as u32, h as u32, image::imageops::FilterType::Triangle);
        limner_faces::Image::from_rgb8(w, h, small.as_raw())
    } else {
        limner_faces::Image::from_rgb8(photo.width, photo.height, &photo.rgb)
    };
    let fa = models.faces.as_ref().expect("loaded");
    let (image, faces) = limner_edit::project::align_photo(fa, &img, side)?;
    let png = encode_png(&image.to_rgb8(), side as u32, side as u32)?;
    Ok(Aligned { image, faces, png })
}

/// One projection step as the page sees it.
pub struct ProjectStep {
    pub step: usize,
    pub distance: f32,
    /// a labelled PNG of the face reached so far (every [`PREVIEW_EVERY`] steps and the first)
    pub preview: Option<Vec<u8>>,
}

/// Projects an aligned photo onto model `name` at `size` (limner-edit's projection: w, then
/// w+); `on_step` sees every step and may stop it. The result is kept like any face: its recipe
/// records the photo's sha256 as its origin.
pub fn project(models: &mut Models, name: &str, size: usize, target: &limner_faces::Image, source_sha256: &str, steps: usize, on_step: &mut dyn FnMut(ProjectStep) -> std::ops::ControlFlow<()>) -> Result<(Rendered, f32, f32)> {
    let t = Instant::now();
    if models.perceptual.is_none() {
        models.perceptual = Some(limner_nets::perceptual::InceptionPerceptual::load_fetched(&models.device)?);
    }
    models.get(name, size)?;
    let m = models.loaded[&(name.to_string(), size)].as_ref();
    let dist = models.perceptual.as_ref().expect("loaded");
    // the model's encoder (beside it, in the cache, or the embedded default's) gives the start
    let start = match limner_edit::encoder::locate(m, &models.device)? {
        Some((e, _)) => Some(e.guess(std::slice::from_ref(target))?.pop().expect("one guess")),
        None => None,
    };
    let opts = limner_edit::project::ProjectOptions { steps, start, ..Default::default() };
    let mut failed = None;
    let p = limner_edit::project::project_steps(m, target, dist, &opts, &mut |s| {
        let preview = if s.step == 1 || s.step % PREVIEW_EVERY == 0 {
            let img = m.render(&[s.ws()], &[0], 0.0).pop().expect("one image");
            let label = limner_data::provenance::Provenance::generated().with_model_sha256(Some(m.id().sha256.clone()));
            match encode_png(&img.to_rgb8(), img.width as u32, img.height as u32).and_then(|png| limner_data::provenance::embed(&png, &label)) {
                Ok(png) => Some(png),
                Err(e) => {
                    failed = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            }
        } else {
            None
        };
        on_step(ProjectStep { step: s.step, distance: s.distance, preview })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let p = p?;
    let r = Recipe::new(m, &p.ws, NoiseSpec { seed: 0, scale: 0.0 }, Origin::Projection { source_sha256: source_sha256.to_string(), steps, space: "w+".into() }, vec![]);
    Ok((finish(&p.image.to_rgb8(), p.image.width, p.image.height, &r, t)?, p.start_distance, p.distance))
}

// ---------------------------------------------------------------------------------------
// Art

/// A painting's longer side is brought down to this when it is kept for style transfer.
pub const PAINTING_SIDE: usize = 512;

/// An uploaded painting, decoded, brought down to [`PAINTING_SIDE`] and re-encoded as PNG (what
/// is stored: pixels only, none of the upload's metadata).
pub fn painting_png(up: &Upload) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(up.width as u32, up.height as u32, up.rgb.clone()).ok_or_else(|| anyhow::anyhow!("bad painting buffer"))?;
    let img = if up.width.max(up.height) > PAINTING_SIDE {
        let (w, h) = fit(up.width, up.height, PAINTING_SIDE);
        image::imageops::resize(&img, w as u32, h as u32, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    encode_png(img.as_raw(), img.width(), img.height())
}

/// Applies an art step to a picture (8-bit RGB): `painting` is the style painting's PNG of a
/// painting step. The result is labelled with `recipe` (a [`limner_art::step::ArtRecipe`]).
pub fn art(models: &mut Models, rgb: &[u8], w: usize, h: usize, painting: Option<&[u8]>, recipe: &limner_art::step::ArtRecipe) -> Result<Rendered> {
    let t = Instant::now();
    let painting = match painting {
        Some(png) => {
            let p = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgb8();
            Some(limner_art::Image::from_rgb8(p.width() as usize, p.height() as usize, p.as_raw()))
        }
        None => None,
    };
    if matches!(recipe.art, limner_art::step::ArtStep::Dream { .. }) && models.inception.is_none() {
        models.inception = Some(limner_nets::InceptionV3::load_fetched(&models.device)?);
    }
    let (out, ow, oh) = recipe.art.apply(rgb, w, h, painting.as_ref(), models.inception.as_ref())?;
    let mut recipe = recipe.clone();
    recipe.width = ow;
    recipe.height = oh;
    let png = limner_data::provenance::embed(&encode_png(&out, ow as u32, oh as u32)?, &recipe.provenance())?;
    Ok(Rendered { png: Arc::new(png), width: ow as u32, height: oh as u32, recipe: Arc::new(serde_json::to_string(&recipe)?), render_ms: t.elapsed().as_secs_f64() * 1e3 })
}

// ---------------------------------------------------------------------------------------
// Animate

/// Largest number of frames an animation may have at 256 px (fewer at larger sizes: the
/// bound is on frames × pixels).
pub const MAX_FRAMES: usize = 120;
const MAX_FRAME_PIXELS: usize = MAX_FRAMES * 256 * 256;

/// An animation to make (with [`limner_edit::animate`]).
pub enum Animation {
    /// through kept faces (at least two), in order
    Through { keys: Vec<Recipe> },
    /// one kept face with a slider swept
    Sweep { key: Recipe, slider: String, from: f32, to: f32 },
}

/// Renders and encodes an animation, labelled (AI-made, the model, frames and fps).
/// Every frame is checked against the model's training index as `limner animate` does: a near
/// copy is an error unless `allow`, and the label records the closest frame per space.
#[allow(clippy::too_many_arguments)]
pub fn animate(models: &mut Models, a: &Animation, frames: usize, looped: bool, fps: u16, format: limner_edit::animate::Format, allow: bool) -> Result<Vec<u8>> {
    use limner_edit::animate;
    let key0 = match a {
        Animation::Through { keys } => keys.first().ok_or_else(|| anyhow::anyhow!("no keyframes"))?,
        Animation::Sweep { key, .. } => key,
    };
    ensure!(frames.saturating_mul(key0.size * key0.size) <= MAX_FRAME_PIXELS, "frames: at most {} at {} px", MAX_FRAME_PIXELS / (key0.size * key0.size), key0.size);
    let (name, size) = (key0.model.name.clone(), key0.size);
    let list = match a {
        Animation::Through { keys } => animate::through(models.get(&name, size)?, keys, frames, looped)?,
        Animation::Sweep { key, slider, from, to } => {
            let (m, cat) = models.with_catalogue(&name, size)?;
            let (s, mv) = limner_edit::sliders::parse_move(&cat, m, &format!("{slider}=0"), None)?;
            animate::sweep(m, key, &s, &mv.rows, *from, *to, frames, looped)?
        }
    };
    let m = models.get(&name, size)?;
    let images = animate::render_frames(m, &list, &mut |_| {});
    let record = match models.guard(&name)? {
        Some(g) => {
            let faces: Vec<limner_audit::Rgb8> = images.iter().map(|i| limner_audit::Rgb8::new(i.width, i.to_rgb8())).collect();
            let names: Vec<String> = (0..faces.len()).map(|i| format!("frame {i}")).collect();
            let checks = g.measure(&faces)?;
            g.allowing(allow).verdict(&checks, &faces, &names, None, OVERRIDE)?;
            Some(limner_audit::guard::frames_record(&checks, allow))
        }
        None => None,
    };
    let bytes = animate::encode(&images, format, fps)?;
    let recipes: Vec<Recipe> = list.into_iter().map(|f| f.recipe).collect();
    limner_data::provenance::embed(&bytes, &limner_audit::guard::labelled(&animate::provenance(&recipes, fps)?, record.as_ref()))
}
