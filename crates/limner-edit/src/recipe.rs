//! Recipes: the small versioned JSON written beside every image limner makes, from which
//! `limner render` makes the same pixels again (schema: docs/recipe.md).
//!
//! A recipe holds the model (name + sha256 of its weights), the output size, the noise (seed
//! and scale), the final per-layer `w`s (runs of equal rows, each row as base64 of its
//! little-endian f32s, so they round-trip exactly) and how they came about: the origin (a
//! seed and psi, a crossbreed of parents' recipes, a projection of a photo, an animation
//! frame) and the edits applied in order (slider moves, mutation, prompt steering).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use burn::tensor::Device;
use limner_faces::Image;
use serde::{Deserialize, Serialize};

use crate::model::{model_hint, open, Model, ModelId, WPlus};
use crate::sliders::SliderMove;

/// The schema version this limner writes and reads.
pub const RECIPE_VERSION: u32 = 1;

/// The largest recipe file read (a recipe is a few kB; lineages of bred faces grow it).
pub const MAX_RECIPE_BYTES: u64 = 16 << 20;

/// Rows `first..=last` of `w+` all hold `w`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WRun {
    pub rows: [usize; 2],
    /// base64 of `w_dim` little-endian f32s
    pub w: String,
}

/// Where a face's `w+` started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// `w = w_avg + psi (map(z(seed)) − w_avg)` in every row
    Seed { seed: u64, psi: f32 },
    /// crossbreed: per-layer mix of the parents (their recipes), plus a seeded mutation
    Breed {
        parents: Vec<Recipe>,
        /// per style row, each parent's weight
        weights: Vec<Vec<f32>>,
        /// the `--genes` as given
        genes: String,
        mutation: f32,
        /// the litter's seed and this child's place in it
        seed: u64,
        child: usize,
    },
    /// inversion of a photo
    Projection { source_sha256: String, steps: usize, space: String },
    /// one frame of an animation between keyframes
    Frame { keys: Vec<Recipe>, frame: usize, frames: usize },
}

/// An edit applied after the origin, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Edit {
    Slider(SliderMove),
    /// steered by `limner generate --prompt` (the slider values it reached)
    Prompt { prompt: String, sliders: Vec<(String, f32)> },
}

/// The noise of a face.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseSpec {
    pub seed: u64,
    pub scale: f32,
}

/// Everything needed to make one image again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub limner_recipe: u32,
    pub limner_version: String,
    pub model: ModelId,
    pub size: usize,
    pub noise: NoiseSpec,
    pub origin: Origin,
    #[serde(default)]
    pub edits: Vec<Edit>,
    /// `[num_ws, w_dim]`
    pub w_shape: [usize; 2],
    /// the final `w+`; absent only in ancestors' copies inside a lineage
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<Vec<WRun>>,
}

/// Encodes `w+` as runs of equal rows.
pub fn encode_ws(ws: &WPlus) -> Vec<WRun> {
    let mut runs: Vec<WRun> = vec![];
    let mut start = 0;
    for r in 1..=ws.rows {
        if r == ws.rows || ws.row(r) != ws.row(start) {
            let bytes: Vec<u8> = ws.row(start).iter().flat_map(|v| v.to_le_bytes()).collect();
            runs.push(WRun { rows: [start, r - 1], w: B64.encode(bytes) });
            start = r;
        }
    }
    runs
}

/// Decodes runs into `w+` of `shape`, checking coverage, lengths and finiteness.
pub fn decode_ws(runs: &[WRun], shape: [usize; 2]) -> Result<WPlus> {
    let [rows, dim] = shape;
    ensure!(rows > 0 && dim > 0 && rows <= 64 && dim <= 4096, "w_shape {shape:?} is not a generator's (rows ≤ 64, w_dim ≤ 4096)");
    let mut out = WPlus { rows, dim, data: vec![0.0; rows * dim] };
    let mut next = 0;
    for run in runs {
        let [a, b] = run.rows;
        ensure!(a == next && b >= a && b < rows, "ws rows {a}-{b}: runs must cover rows 0-{} in order", rows - 1);
        let bytes = B64.decode(run.w.as_bytes()).with_context(|| format!("ws rows {a}-{b}: not base64"))?;
        ensure!(bytes.len() == 4 * dim, "ws rows {a}-{b}: {} values, the model's w_dim is {dim}", bytes.len() / 4);
        let w: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        ensure!(w.iter().all(|v| v.is_finite()), "ws rows {a}-{b} hold NaN or infinite values");
        for r in a..=b {
            out.row_mut(r).copy_from_slice(&w);
        }
        next = b + 1;
    }
    ensure!(next == rows, "ws cover rows 0-{} of {rows}", next as isize - 1);
    Ok(out)
}

impl Recipe {
    /// A recipe for `ws` rendered by `m` with `noise`.
    pub fn new(m: &dyn Model, ws: &WPlus, noise: NoiseSpec, origin: Origin, edits: Vec<Edit>) -> Self {
        Self {
            limner_recipe: RECIPE_VERSION,
            limner_version: env!("CARGO_PKG_VERSION").to_string(),
            model: m.id().clone(),
            size: m.size(),
            noise,
            origin,
            edits,
            w_shape: [ws.rows, ws.dim],
            ws: Some(encode_ws(ws)),
        }
    }

    /// The final `w+`.
    pub fn ws(&self) -> Result<WPlus> {
        let runs = self.ws.as_ref().context("this recipe has no ws (an ancestor's copy inside a lineage): render the ancestor's own recipe")?;
        decode_ws(runs, self.w_shape)
    }

    /// Parses and checks a recipe (version, shape, values).
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
        let version = v.get("limner_recipe").context("no `limner_recipe` version field: not a limner recipe")?;
        let version = version.as_u64().with_context(|| format!("`limner_recipe` is {version}, not a version number"))?;
        if version != RECIPE_VERSION as u64 {
            bail!("recipe version {version} is not supported: this limner ({}) reads version {RECIPE_VERSION}", env!("CARGO_PKG_VERSION"));
        }
        let r: Recipe = serde_json::from_value(v).context("malformed recipe")?;
        ensure!(r.noise.scale.is_finite(), "the noise scale is not a finite number");
        r.ws()?;
        Ok(r)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("recipes serialise")
    }

    /// Reads a recipe file (at most [`MAX_RECIPE_BYTES`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_limited(path)?;
        Self::from_json(&text).with_context(|| format!("bad recipe {}", path.display()))
    }

    /// Writes the recipe atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        limner_core::write_atomic(path, self.to_json().as_bytes())
    }

    /// A copy for a lineage: the parents keep their `ws`, ancestors further back only their
    /// provenance (so lineages stay small).
    pub fn as_parent(&self) -> Recipe {
        let mut r = self.clone();
        strip_ancestors(&mut r.origin);
        r
    }
}

fn strip_ancestors(o: &mut Origin) {
    let list = match o {
        Origin::Breed { parents, .. } => parents,
        Origin::Frame { keys, .. } => keys,
        _ => return,
    };
    for p in list {
        p.ws = None;
        strip_ancestors(&mut p.origin);
    }
}

/// What `limner animate` writes beside an animation (`NAME.json`): every frame's recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Animation {
    /// schema version ([`RECIPE_VERSION`])
    pub limner_animation: u32,
    pub fps: u16,
    pub frames: Vec<Recipe>,
}

fn read_limited(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read recipe {}", path.display()))?.len();
    ensure!(len <= MAX_RECIPE_BYTES, "recipe {} is {:.1} MB: recipes are at most {} MB (is it a recipe?)", path.display(), len as f64 / 1e6, MAX_RECIPE_BYTES >> 20);
    std::fs::read_to_string(path).with_context(|| format!("cannot read recipe {} (not UTF-8 text?)", path.display()))
}

/// A recipe file or one frame of an animation's recipes (`frame`; required for those).
pub fn load_for_render(path: &Path, frame: Option<usize>) -> Result<Recipe> {
    let text = read_limited(path)?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("bad recipe {}: not JSON", path.display()))?;
    if v.get("limner_animation").is_none() {
        ensure!(frame.is_none(), "{} is one image's recipe: drop --frame", path.display());
        return Recipe::from_json(&text).with_context(|| format!("bad recipe {}", path.display()));
    }
    let version = v["limner_animation"].as_u64().unwrap_or(0);
    ensure!(version == RECIPE_VERSION as u64, "{}: animation recipe version {version} is not supported (this limner reads {RECIPE_VERSION})", path.display());
    let frames = v.get("frames").and_then(|f| f.as_array()).with_context(|| format!("{}: no frames", path.display()))?;
    let i = frame.with_context(|| format!("{} holds the recipes of {} animation frames: pick one with --frame N", path.display(), frames.len()))?;
    let f = frames.get(i).with_context(|| format!("{}: frame {i} of {} (frames count from 0)", path.display(), frames.len()))?;
    Recipe::from_json(&f.to_string()).with_context(|| format!("bad recipe {} frame {i}", path.display()))
}

/// Opens the recipe's model and checks it is the same weights.
pub fn open_model(r: &Recipe, device: &Device) -> Result<Box<dyn Model>> {
    let name = &r.model.name;
    let m = open(name, Some(r.size), device).with_context(|| format!("the recipe's model `{name}` (sha256 {}) is not here: {}", short(&r.model.sha256), model_hint(name)))?;
    check_model(r, m.as_ref())?;
    Ok(m)
}

/// Errors unless `m` is the recipe's model (same weights) at the recipe's size.
pub fn check_model(r: &Recipe, m: &dyn Model) -> Result<()> {
    ensure!(
        m.id().sha256 == r.model.sha256,
        "the recipe was made with model `{}` sha256 {}, but `{}` here is sha256 {}: get the same model (a retrained or replaced model makes other faces)",
        r.model.name,
        short(&r.model.sha256),
        m.id().name,
        short(&m.id().sha256)
    );
    ensure!(m.size() == r.size, "the recipe is {}px, model `{}` renders {}px", r.size, m.id().name, m.size());
    r.ws()?.check(m)
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// Renders a recipe on its (already opened) model.
pub fn render(r: &Recipe, m: &dyn Model) -> Result<Image> {
    check_model(r, m)?;
    let ws = r.ws()?;
    Ok(m.render(&[ws], &[r.noise.seed], r.noise.scale).pop().expect("one image"))
}

/// Writes an image as PNG, labelled with its recipe ([`Recipe::provenance`]), and the recipe
/// beside it (`NAME.png` → `NAME.json`), atomically.
pub fn save_with_recipe(png: &Path, img: &Image, r: &Recipe) -> Result<()> {
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    limner_data::imageio::save_image_rgb(png, img.width as u32, img.height as u32, &img.to_rgb8(), &r.provenance()?)?;
    r.save(&png.with_extension("json"))
}

impl Recipe {
    /// The provenance label of an image made from this recipe: the recipe itself (as in the
    /// JSON beside the image, but every model named by `limner_models::model_label`, never by
    /// the folders of the user's disk) and the model's sha256. Wholly generated, projections of a
    /// photo included: all their pixels come from the generator.
    pub fn provenance(&self) -> Result<limner_data::provenance::Provenance> {
        let mut v = serde_json::to_value(self)?;
        name_models(&mut v);
        Ok(limner_data::provenance::Provenance::generated().with_recipe_json(v).with_model_sha256(Some(self.model.sha256.clone())))
    }
}

/// Replaces every `"model": {"name": …}` in a recipe's JSON by the model's label name
/// (`limner_models::model_label`; a file's name when the model cannot be found here).
pub fn name_models(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "model" {
                    if let Some(Value::String(name)) = x.get_mut("name") {
                        let label = limner_models::model_label(name).ok().unwrap_or_else(|| {
                            Path::new(name.as_str()).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
                        });
                        *name = label;
                    }
                }
                name_models(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(name_models),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_round_trip_exactly_in_runs() {
        let mut ws = WPlus::broadcast(&[0.1, -2.5e-7, f32::MAX, 3.0], 6);
        ws.row_mut(4).copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let runs = encode_ws(&ws);
        assert_eq!(runs.iter().map(|r| r.rows).collect::<Vec<_>>(), vec![[0, 3], [4, 4], [5, 5]]);
        assert_eq!(decode_ws(&runs, [6, 4]).unwrap(), ws);
        // wrong shape, gaps and NaN are errors
        assert!(decode_ws(&runs, [6, 5]).unwrap_err().to_string().contains("w_dim is 5"));
        assert!(decode_ws(&runs, [7, 4]).unwrap_err().to_string().contains("cover"));
        assert!(decode_ws(&runs[1..], [6, 4]).is_err());
        let nan = encode_ws(&WPlus::broadcast(&[f32::NAN, 0.0, 0.0, 0.0], 6));
        assert!(decode_ws(&nan, [6, 4]).unwrap_err().to_string().contains("NaN"));
    }
}
