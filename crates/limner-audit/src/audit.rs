//! The audit itself: embed the training set, the held-out set and the samples; find each
//! sample's nearest training image per space; calibrate the copy threshold on held-out images;
//! count suspected copies; add C_T and precision/recall.

use std::time::Instant;

use anyhow::{ensure, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::embed::{Embedder, Space};
use crate::knn::{knn, Matrix};
use crate::source::ImageSet;
use crate::stats::{data_copying, percentile, precision_recall, wilson, DataCopying, PrecisionRecall};

/// Settings of an audit.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub spaces: Vec<Space>,
    /// the calibration percentile of held-out → training nearest distances (1: the 1st)
    pub percentile: f64,
    /// k of the precision/recall manifolds (Kynkäänniemi et al.: 3)
    pub pr_k: usize,
    /// closest sample/training pairs to show
    pub closest: usize,
    /// images embedded per step
    pub batch: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self { spaces: Space::ALL.to_vec(), percentile: 1.0, pr_k: 3, closest: 16, batch: 64 }
    }
}

/// What the audit found in one space.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpaceResult {
    pub space: Space,
    pub description: String,
    /// below this nearest-training distance a sample is a suspected copy
    pub threshold: f32,
    pub heldout_nearest: Vec<f32>,
    pub sample_nearest: Vec<f32>,
    /// each sample's nearest training image
    pub sample_nearest_index: Vec<usize>,
    pub copies: usize,
    pub copy_rate: f64,
    /// Wilson 95 % interval of the copy rate
    pub copy_rate_ci: (f64, f64),
    /// the held-out images' own rate below the threshold (the calibration rate, by construction)
    pub heldout_rate: f64,
    pub data_copying: DataCopying,
    pub precision_recall: PrecisionRecall,
    pub median_sample: f32,
    pub median_heldout: f32,
}

/// One sample beside its nearest training image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pair {
    pub sample: usize,
    pub sample_label: String,
    pub train: usize,
    pub train_label: String,
    pub space: Space,
    pub distance: f32,
    /// distance / the space's threshold (below 1: a suspected copy)
    pub ratio: f32,
}

/// The whole audit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditResult {
    pub samples: String,
    pub train: String,
    pub heldout: String,
    pub n_samples: usize,
    pub n_train: usize,
    pub n_heldout: usize,
    pub compare_size: usize,
    pub face_box: String,
    pub percentile: f64,
    pub spaces: Vec<SpaceResult>,
    /// samples flagged in at least one space
    pub any_copies: usize,
    pub any_rate: f64,
    pub closest: Vec<Pair>,
    pub seconds_embedding: f64,
    pub seconds_search: f64,
    pub warnings: Vec<String>,
}

impl AuditResult {
    pub fn space(&self, s: Space) -> Option<&SpaceResult> {
        self.spaces.iter().find(|r| r.space == s)
    }
}

/// Embeds every image of a set in batches; `progress(images_done)`.
pub fn embed_set(e: &Embedder, set: &dyn ImageSet, batch: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<Matrix>> {
    Ok(embed_set_with_thumbs(e, set, batch, 0, progress)?.0)
}

/// As [`embed_set`], also keeping a `thumb`-pixel thumbnail of every image (RGB8, in order;
/// none when `thumb` is 0).
pub fn embed_set_with_thumbs(e: &Embedder, set: &dyn ImageSet, batch: usize, thumb: usize, progress: &mut dyn FnMut(usize)) -> Result<(Vec<Matrix>, Vec<u8>)> {
    let mut parts: Vec<Vec<f32>> = vec![vec![]; e.spaces.len()];
    let mut thumbs = vec![];
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let imgs = set.load(chunk)?;
        if thumb > 0 {
            for im in &imgs {
                thumbs.extend(im.resized(thumb).data);
            }
        }
        for (p, m) in parts.iter_mut().zip(e.embed(&imgs)) {
            p.extend(m.data);
        }
        progress(chunk.len());
    }
    Ok((e.spaces.iter().zip(parts).map(|(s, data)| Matrix::new(set.len(), s.dim(), data)).collect(), thumbs))
}

/// What an audit embedded, for a training index ([`crate::index`]).
pub struct Embedded {
    pub spaces: Vec<Space>,
    pub compare_size: usize,
    pub face_box: crate::embed::RelBox,
    pub train: Vec<Matrix>,
    pub heldout: Vec<Matrix>,
    /// [`crate::index::THUMB`]-pixel thumbnails of the training images
    pub train_thumbs: Vec<u8>,
    pub train_labels: Vec<String>,
}

/// Progress of an audit: `(stage, done, total)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// Runs the audit of `samples` against `train`, calibrated on `heldout` (images of the same kind
/// the model never saw).
pub fn audit(train: &dyn ImageSet, heldout: &dyn ImageSet, samples: &dyn ImageSet, o: &AuditOptions, device: &Device, progress: Progress) -> Result<AuditResult> {
    Ok(audit_full(train, heldout, samples, o, device, progress)?.0)
}

/// [`audit`], also giving back the training and held-out embeddings (to write a training index).
pub fn audit_full(train: &dyn ImageSet, heldout: &dyn ImageSet, samples: &dyn ImageSet, o: &AuditOptions, device: &Device, progress: Progress) -> Result<(AuditResult, Embedded)> {
    ensure!(train.len() >= 2, "the training set ({}) needs at least 2 images", train.describe());
    ensure!(heldout.len() >= 2, "the held-out set ({}) needs at least 2 images", heldout.describe());
    ensure!(samples.len() >= 2, "the audit needs at least 2 samples");
    ensure!(o.percentile > 0.0 && o.percentile < 100.0, "the calibration percentile must lie in (0, 100)");
    let compare_size = samples.size().min(train.size()).min(heldout.size());
    let mut e = Embedder::new(&o.spaces, compare_size, device)?;
    if o.spaces.contains(&Space::Identity) {
        let n = train.len().min(16);
        let idx: Vec<usize> = (0..n).map(|i| i * train.len() / n).collect();
        e.find_face_box(&train.load(&idx)?)?;
    }
    let t0 = Instant::now();
    let mut embed = |set: &dyn ImageSet, stage: &str, thumb: usize| {
        let total = set.len();
        let mut done = 0;
        progress(stage, 0, total);
        embed_set_with_thumbs(&e, set, o.batch, thumb, &mut |k| {
            done += k;
            progress(stage, done, total)
        })
    };
    let (et, train_thumbs) = embed(train, "embedding the training images", crate::index::THUMB)?;
    let eh = embed(heldout, "embedding the held-out images", 0)?.0;
    let es = embed(samples, "embedding the samples", 0)?.0;
    let seconds_embedding = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut spaces = vec![];
    let mut warnings = vec![];
    for (si, &space) in o.spaces.iter().enumerate() {
        progress(&format!("nearest neighbours, {}", space.name()), si, o.spaces.len());
        let (t, h, s) = (&et[si], &eh[si], &es[si]);
        let hn = knn(h, t, 1, false, device).nearest();
        let sn = knn(s, t, 1, false, device);
        let threshold = percentile(&hn, o.percentile);
        if threshold <= 1e-6 {
            warnings.push(format!("{}: held-out images have exact copies in the training set (threshold {threshold}); the held-out set must be images the model never trained on", space.name()));
        }
        let sd = sn.nearest();
        let copies = sd.iter().filter(|&&d| d < threshold).count();
        let heldout_rate = hn.iter().filter(|&&d| d < threshold).count() as f64 / hn.len() as f64;
        let tau = if heldout.len() >= 200 { 20 } else { (heldout.len() / 10).max(3) };
        let cells = (heldout.len() / (2 * tau)).clamp(1, 50);
        let dc = data_copying(t, h, s, cells, tau, device);
        let pr = precision_recall(t, s, o.pr_k, device);
        spaces.push(SpaceResult {
            space,
            description: space.describe().to_string(),
            threshold,
            median_sample: percentile(&sd, 50.0),
            median_heldout: percentile(&hn, 50.0),
            heldout_nearest: hn,
            sample_nearest_index: sn.nearest_index(),
            sample_nearest: sd,
            copies,
            copy_rate: copies as f64 / samples.len() as f64,
            copy_rate_ci: wilson(copies, samples.len(), 1.96),
            heldout_rate,
            data_copying: dc,
            precision_recall: pr,
        });
    }
    let seconds_search = t1.elapsed().as_secs_f64();
    // a sample is flagged when any space flags it; the closest pairs rank by distance / threshold
    let mut any = 0;
    let mut best: Vec<(f32, usize, usize)> = vec![]; // (ratio, sample, space index)
    for i in 0..samples.len() {
        let (mut r, mut at) = (f32::INFINITY, 0);
        for (k, sr) in spaces.iter().enumerate() {
            let ratio = sr.sample_nearest[i] / sr.threshold.max(1e-12);
            if ratio < r {
                (r, at) = (ratio, k);
            }
        }
        if r < 1.0 {
            any += 1;
        }
        best.push((r, i, at));
    }
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    let closest = best
        .iter()
        .take(o.closest)
        .map(|&(ratio, i, k)| {
            let sr = &spaces[k];
            let ti = sr.sample_nearest_index[i];
            Pair { sample: i, sample_label: samples.label(i), train: ti, train_label: train.label(ti), space: sr.space, distance: sr.sample_nearest[i], ratio }
        })
        .collect();
    let result = AuditResult {
        samples: samples.describe(),
        train: train.describe(),
        heldout: heldout.describe(),
        n_samples: samples.len(),
        n_train: train.len(),
        n_heldout: heldout.len(),
        compare_size,
        face_box: e.face_box_note.clone(),
        percentile: o.percentile,
        spaces,
        any_copies: any,
        any_rate: any as f64 / samples.len() as f64,
        closest,
        seconds_embedding,
        seconds_search,
        warnings,
    };
    let embedded = Embedded {
        spaces: o.spaces.clone(),
        compare_size,
        face_box: e.face_box,
        train: et,
        heldout: eh,
        train_thumbs,
        train_labels: (0..train.len()).map(|i| train.label(i)).collect(),
    };
    Ok((result, embedded))
}
