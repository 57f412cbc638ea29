//! The copy check on exports (issue 18 §3): a compact index of a model's training set and the
//! check of one image against it.
//!
//! A [`TrainingIndex`] holds, per training image, the identity descriptor (128 values) and the
//! InceptionV3 features reduced by PCA to [`INCEPTION_DIMS`] values, both in half precision,
//! plus a [`THUMB`]-pixel thumbnail (all thumbnails in one JPEG mosaic), and per space the copy
//! threshold calibrated on held-out images as the audit does (their nearest training distances'
//! 1st percentile, measured in the stored, reduced space). 9,611 training images take about 4 MB.
//! [`TrainingIndex::check`] embeds one image and says how close its nearest training image is
//! in each space; below a threshold it is a near copy, which exports refuse unless the user
//! overrides (and the override is recorded in the image's label).
//!
//! The pixel space is not used here: the default model's audit shows it flags typical faces,
//! not copies (`models/default/audit/report.md`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::Device;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::audit::{embed_set_with_thumbs, Embedded};
use crate::source::ImageSet;
use crate::embed::{Embedder, RelBox, Space};
use crate::knn::{knn, Matrix};
use crate::source::Rgb8;
use crate::stats::percentile;

/// Thumbnail side.
pub const THUMB: usize = 16;
/// InceptionV3 features kept after PCA.
pub const INCEPTION_DIMS: usize = 32;
/// The index file a model folder carries.
pub const INDEX_FILE: &str = "training-index.safetensors";
const FORMAT: &str = "limner-training-index/1";

/// The embedded default model's training index (its 9,611 distillation images; written by
/// `limner audit --index-out`, see `models/default/audit/`).
pub static DEFAULT_INDEX: &[u8] = include_bytes!("../../../models/default/training-index.safetensors");

/// One space of the index.
#[derive(Clone, Debug)]
pub struct IndexSpace {
    pub space: Space,
    pub threshold: f32,
    pub vectors: Matrix,
}

/// A model's training set, compactly (see the module docs).
#[derive(Clone, Debug)]
pub struct TrainingIndex {
    pub compare_size: usize,
    pub face_box: RelBox,
    pub labels: Vec<String>,
    pub spaces: Vec<IndexSpace>,
    /// PCA of the inception features: mean `[768]`, basis `[INCEPTION_DIMS][768]` row-major
    pub pca: Option<(Vec<f32>, Vec<f32>)>,
    /// the thumbnails as one JPEG mosaic, [`THUMB`]-pixel tiles in rows of `mosaic_cols`
    pub mosaic_jpeg: Vec<u8>,
    pub mosaic_cols: usize,
    /// how the thresholds were calibrated ([`CALIBRATED_HELDOUT`] or [`CALIBRATED_LOO`])
    pub calibration: String,
}

/// Thresholds from held-out images' nearest training distances (as the audit does).
pub const CALIBRATED_HELDOUT: &str = "held-out images";
/// Thresholds from the training images' nearest distances to the *other* training images (when
/// no held-out set is given: each training image stands in for a new image of its kind).
pub const CALIBRATED_LOO: &str = "leave-one-out: each training image's nearest other training image";

/// What the check found for one image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CopyCheck {
    /// per space: nearest training distance, threshold, nearest training image's label
    pub spaces: Vec<SpaceCheck>,
    pub near_copy: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpaceCheck {
    pub space: Space,
    pub distance: f32,
    pub threshold: f32,
    pub nearest: usize,
    pub nearest_label: String,
}

impl CopyCheck {
    /// The space where the image is closest to a training image relative to the threshold.
    pub fn closest(&self) -> Option<&SpaceCheck> {
        self.spaces.iter().min_by(|a, b| (a.distance / a.threshold.max(1e-12)).total_cmp(&(b.distance / b.threshold.max(1e-12))))
    }

    /// The label's record: `{"identity": {"distance": …, "threshold": …, "nearest": "…"}, …}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for s in &self.spaces {
            m.insert(s.space.name().into(), serde_json::json!({"distance": round4(s.distance), "threshold": round4(s.threshold), "nearest": s.nearest_label}));
        }
        serde_json::Value::Object(m)
    }

    /// Why it was refused, in words.
    pub fn explain(&self) -> String {
        let parts: Vec<String> = self
            .spaces
            .iter()
            .filter(|s| s.distance < s.threshold)
            .map(|s| format!("{} distance {:.4} to training image {} is below {:.4}, closer than 99 % of new images come", s.space.name(), s.distance, s.nearest_label, s.threshold))
            .collect();
        parts.join("; ")
    }
}

fn round4(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}

/// PCA of the rows: (mean, basis of the top `k` directions, `k × cols` row-major).
fn pca(x: &Matrix, k: usize) -> (Vec<f32>, Vec<f32>) {
    let take = x.rows.min(4000);
    let idx: Vec<usize> = (0..take).map(|i| i * x.rows / take).collect();
    let s = x.select(&idx);
    let mean: Vec<f32> = (0..x.cols).map(|j| (0..s.rows).map(|i| s.row(i)[j] as f64).sum::<f64>() as f32 / s.rows as f32).collect();
    let c = DMatrix::from_fn(s.rows, s.cols, |i, j| (s.row(i)[j] - mean[j]) as f64);
    let cov = c.transpose() * &c / (s.rows.max(2) - 1) as f64;
    let e = cov.symmetric_eigen();
    let mut order: Vec<usize> = (0..e.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
    let basis = order.iter().take(k).flat_map(|&o| e.eigenvectors.column(o).iter().map(|&v| v as f32).collect::<Vec<_>>()).collect();
    (mean, basis)
}

fn project(x: &Matrix, mean: &[f32], basis: &[f32]) -> Matrix {
    let k = basis.len() / x.cols;
    let mut out = Vec::with_capacity(x.rows * k);
    for i in 0..x.rows {
        let r = x.row(i);
        for b in basis.chunks(x.cols) {
            out.push(r.iter().zip(mean).zip(b).map(|((v, m), w)| (v - m) * w).sum());
        }
    }
    Matrix::new(x.rows, k, out)
}

impl TrainingIndex {
    /// Builds the index from an audit's embeddings (identity and inception, where measured).
    pub fn from_embedded(e: &Embedded, device: &Device) -> Result<Self> {
        let mut spaces = vec![];
        let mut pca_out = None;
        for (i, &space) in e.spaces.iter().enumerate() {
            let (t, h) = match space {
                Space::Pixels => continue,
                Space::Identity => (e.train[i].clone(), e.heldout[i].clone()),
                Space::Inception => {
                    let (mean, basis) = pca(&e.train[i], INCEPTION_DIMS);
                    let pair = (project(&e.train[i], &mean, &basis), project(&e.heldout[i], &mean, &basis));
                    pca_out = Some((mean, basis));
                    pair
                }
            };
            // stored in half precision: calibrate on what is stored
            let t = Matrix::new(t.rows, t.cols, t.data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect());
            let nearest = if h.rows == 0 { knn(&t, &t, 1, true, device).nearest() } else { knn(&h, &t, 1, false, device).nearest() };
            let threshold = percentile(&nearest, 1.0);
            spaces.push(IndexSpace { space, threshold, vectors: t });
        }
        ensure!(!spaces.is_empty(), "a training index needs the identity or the inception space");
        let n = e.train_labels.len();
        ensure!(e.train_thumbs.len() == n * THUMB * THUMB * 3, "the audit kept no thumbnails");
        let cols = 128usize;
        let rows = n.div_ceil(cols);
        let (w, h) = (cols * THUMB, rows * THUMB);
        let mut mosaic = vec![0u8; w * h * 3];
        for i in 0..n {
            let (x0, y0) = ((i % cols) * THUMB, (i / cols) * THUMB);
            for y in 0..THUMB {
                let src = (i * THUMB * THUMB + y * THUMB) * 3;
                let dst = ((y0 + y) * w + x0) * 3;
                mosaic[dst..dst + THUMB * 3].copy_from_slice(&e.train_thumbs[src..src + THUMB * 3]);
            }
        }
        let mut jpeg = vec![];
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode(&mosaic, w as u32, h as u32, image::ExtendedColorType::Rgb8)?;
        let calibration = if e.heldout.iter().all(|h| h.rows == 0) { CALIBRATED_LOO } else { CALIBRATED_HELDOUT }.to_string();
        Ok(Self { compare_size: e.compare_size, face_box: e.face_box, labels: e.train_labels.clone(), spaces, pca: pca_out, mosaic_jpeg: jpeg, mosaic_cols: cols, calibration })
    }

    /// Builds the index of a training set (identity and InceptionV3 features; needs the fetched
    /// networks), its thresholds calibrated on `heldout` (images of the same kind the model
    /// never saw), or without one leave-one-out on the training set ([`CALIBRATED_LOO`]).
    /// `progress(done, total)` counts embedded images.
    pub fn build(train: &dyn ImageSet, heldout: Option<&dyn ImageSet>, device: &Device, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        ensure!(train.len() >= 2, "a training index needs at least 2 training images ({} has {})", train.describe(), train.len());
        let spaces = vec![Space::Inception, Space::Identity];
        let compare_size = heldout.map_or(train.size(), |h| h.size().min(train.size()));
        let mut e = Embedder::new(&spaces, compare_size, device)?;
        let n = train.len().min(16);
        let idx: Vec<usize> = (0..n).map(|i| i * train.len() / n).collect();
        e.find_face_box(&train.load(&idx)?)?;
        let total = train.len() + heldout.map_or(0, |h| h.len());
        let mut done = 0;
        let (t, thumbs) = embed_set_with_thumbs(&e, train, 64, THUMB, &mut |k| {
            done += k;
            progress(done, total)
        })?;
        let h = match heldout {
            Some(h) => embed_set_with_thumbs(&e, h, 64, 0, &mut |k| {
                done += k;
                progress(done, total)
            })?
            .0,
            None => spaces.iter().map(|s| Matrix::new(0, s.dim(), vec![])).collect(),
        };
        let embedded = Embedded {
            spaces,
            compare_size,
            face_box: e.face_box,
            train: t,
            heldout: h,
            train_thumbs: thumbs,
            train_labels: (0..train.len()).map(|i| train.label(i)).collect(),
        };
        Self::from_embedded(&embedded, device)
    }

    /// The bytes of the index file (safetensors: f16 vectors, u8 JPEG mosaic, JSON metadata).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        use safetensors::tensor::{Dtype, TensorView};
        let mut bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![];
        let f16 = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect() };
        for s in &self.spaces {
            bufs.push((s.space.name().into(), Dtype::F16, vec![s.vectors.rows, s.vectors.cols], f16(&s.vectors.data)));
        }
        if let Some((mean, basis)) = &self.pca {
            let f32b = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
            bufs.push(("inception.pca_mean".into(), Dtype::F32, vec![mean.len()], f32b(mean)));
            bufs.push(("inception.pca_basis".into(), Dtype::F32, vec![basis.len() / mean.len(), mean.len()], f32b(basis)));
        }
        bufs.push(("thumbnails.jpeg".into(), Dtype::U8, vec![self.mosaic_jpeg.len()], self.mosaic_jpeg.clone()));
        let views: Vec<(String, TensorView)> = bufs.iter().map(|(k, d, s, b)| Ok((k.clone(), TensorView::new(*d, s.clone(), b)?))).collect::<Result<_>>()?;
        let thresholds: BTreeMap<&str, f32> = self.spaces.iter().map(|s| (s.space.name(), s.threshold)).collect();
        let meta: std::collections::HashMap<String, String> = [
            ("format".to_string(), FORMAT.to_string()),
            ("compare_size".into(), self.compare_size.to_string()),
            ("face_box".into(), serde_json::to_string(&self.face_box)?),
            ("thresholds".into(), serde_json::to_string(&thresholds)?),
            ("labels".into(), serde_json::to_string(&self.labels)?),
            ("mosaic_cols".into(), self.mosaic_cols.to_string()),
            ("thumb".into(), THUMB.to_string()),
            ("calibration".into(), self.calibration.clone()),
        ]
        .into();
        Ok(safetensors::serialize(views, Some(meta))?)
    }

    /// Writes the index atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        limner_core::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads an index file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the training index {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("{} is not a limner training index (write one with `limner audit --index-out`)", path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        use safetensors::tensor::Dtype;
        let st = safetensors::SafeTensors::deserialize(bytes)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).with_context(|| format!("no `{k}` in the index metadata"));
        ensure!(get("format")? == FORMAT, "index format {} (this limner reads {FORMAT})", get("format")?);
        let thresholds: BTreeMap<String, f32> = serde_json::from_str(get("thresholds")?)?;
        let labels: Vec<String> = serde_json::from_str(get("labels")?)?;
        let f32s = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = st.tensor(name)?;
            let data = match t.dtype() {
                Dtype::F16 => t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                d => bail!("{name} has dtype {d:?}"),
            };
            Ok((t.shape().to_vec(), data))
        };
        let mut spaces = vec![];
        for (name, &threshold) in &thresholds {
            let space = Space::parse(name)?;
            let (shape, data) = f32s(name)?;
            ensure!(shape.len() == 2 && shape[0] == labels.len(), "{name}: shape {shape:?} for {} labels", labels.len());
            spaces.push(IndexSpace { space, threshold, vectors: Matrix::new(shape[0], shape[1], data) });
        }
        let pca = if thresholds.contains_key("inception") { Some((f32s("inception.pca_mean")?.1, f32s("inception.pca_basis")?.1)) } else { None };
        Ok(Self {
            compare_size: get("compare_size")?.parse()?,
            face_box: serde_json::from_str(get("face_box")?)?,
            labels,
            spaces,
            pca,
            mosaic_jpeg: st.tensor("thumbnails.jpeg")?.data().to_vec(),
            mosaic_cols: get("mosaic_cols")?.parse()?,
            calibration: meta.get("calibration").cloned().unwrap_or_else(|| CALIBRATED_HELDOUT.to_string()),
        })
    }

    /// The spaces the index holds (what an [`Embedder`] for [`Self::check`] must compute).
    pub fn space_list(&self) -> Vec<Space> {
        let mut v: Vec<Space> = self.spaces.iter().map(|s| s.space).collect();
        v.sort();
        v
    }

    /// An embedder for this index (loads the fetched networks its spaces need).
    pub fn embedder(&self, device: &Device) -> Result<Embedder> {
        let mut e = Embedder::new(&self.space_list(), self.compare_size, device)?;
        e.set_face_box(self.face_box, "from the training index");
        Ok(e)
    }

    /// Checks images against the index. `e` comes from [`Self::embedder`].
    pub fn check(&self, e: &Embedder, images: &[Rgb8], device: &Device) -> Result<Vec<CopyCheck>> {
        let emb = e.embed(images);
        let mut out: Vec<CopyCheck> = images.iter().map(|_| CopyCheck { spaces: vec![], near_copy: false }).collect();
        for (si, &space) in e.spaces.iter().enumerate() {
            let Some(ix) = self.spaces.iter().find(|s| s.space == space) else { continue };
            let q = match (&self.pca, space) {
                (Some((mean, basis)), Space::Inception) => project(&emb[si], mean, basis),
                _ => emb[si].clone(),
            };
            let nn = knn(&q, &ix.vectors, 1, false, device);
            for (i, c) in out.iter_mut().enumerate() {
                let (d, j) = (nn.dist[i], nn.index[i]);
                c.near_copy |= d < ix.threshold;
                c.spaces.push(SpaceCheck { space, distance: d, threshold: ix.threshold, nearest: j, nearest_label: self.labels[j].clone() });
            }
        }
        Ok(out)
    }

    /// The thumbnail of training image `i`.
    pub fn thumbnail(&self, i: usize) -> Result<Rgb8> {
        let img = image::load_from_memory_with_format(&self.mosaic_jpeg, image::ImageFormat::Jpeg)?.to_rgb8();
        let w = img.width() as usize;
        let (x0, y0) = ((i % self.mosaic_cols) * THUMB, (i / self.mosaic_cols) * THUMB);
        ensure!(i < self.labels.len(), "no training image {i}");
        let raw = img.as_raw();
        let mut data = Vec::with_capacity(THUMB * THUMB * 3);
        for y in 0..THUMB {
            let s = ((y0 + y) * w + x0) * 3;
            data.extend_from_slice(&raw[s..s + THUMB * 3]);
        }
        Ok(Rgb8::new(THUMB, data))
    }
}
