//! Building a packed dataset from a directory or zip of images.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, ensure, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use image::imageops::{self, FilterType};
use image::RgbImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use crate::format::{self, DatasetMeta};
use crate::options::BuildOptions;
use crate::imageio::decode_rgb;
use crate::phash::phash;
use crate::skip::{count_by_kind, SkipReason};
use crate::source::Source;

/// Near duplicates must also agree on mean colour within this many levels (0..255)
/// per channel: pHash sees only grey structure, so a recoloured picture is kept.
const NEAR_DUP_MAX_COLOUR_DIFF: f32 = 12.0;

/// Files decoded in parallel between two progress reports, per rayon thread.
const FILES_PER_THREAD_PER_CHUNK: usize = 8;

/// How many skipped files the report lists by name.
const REPORT_LISTED_SKIPS: usize = 20;

/// Frames one decoded image as a `res`×`res` square (e.g. a face aligner); an `Err` skips the
/// image with that reason (e.g. "no face found"). Called from several threads at once.
pub type Framer = dyn Fn(&RgbImage, u32) -> std::result::Result<RgbImage, String> + Sync;

/// What [`build_dataset`] did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Images written to the dataset.
    pub kept: usize,
    /// Every skipped file with its reason, in sorted file order.
    pub skipped: Vec<(String, SkipReason)>,
    /// Mean colour of the kept images, each channel in 0..1.
    pub mean_rgb: [f32; 3],
    /// Size of the written `.limner` file.
    pub out_bytes: u64,
    /// Side of the square images.
    pub res: u32,
    /// Wall-clock time of the build.
    pub seconds: f64,
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.kept + self.skipped.len();
        writeln!(
            f,
            "kept {} of {total} files as {res}x{res} RGB, skipped {} ({:.1} s)",
            self.kept,
            self.skipped.len(),
            self.seconds,
            res = self.res
        )?;
        for (kind, n) in count_by_kind(&self.skipped) {
            writeln!(f, "  {n:>6}  {kind}")?;
        }
        for (name, reason) in self.skipped.iter().take(REPORT_LISTED_SKIPS) {
            writeln!(f, "    {name}: {reason}")?;
        }
        if self.skipped.len() > REPORT_LISTED_SKIPS {
            writeln!(
                f,
                "    ... and {} more",
                self.skipped.len() - REPORT_LISTED_SKIPS
            )?;
        }
        let [r, g, b] = self.mean_rgb;
        writeln!(f, "mean colour: R {r:.3}  G {g:.3}  B {b:.3}")?;
        write!(
            f,
            "output: {:.1} MiB ({} bytes)",
            self.out_bytes as f64 / (1u64 << 20) as f64,
            self.out_bytes
        )
    }
}

/// Builds a `.limner` dataset at `opts.out` from the images in `input`, a directory
/// (recursive) or a zip file. Files are taken in sorted path order, decoded in
/// parallel, cropped to a centred square and resized to `opts.res`; unusable files
/// and duplicates are skipped and reported. `progress(done, total)` is called (on the
/// calling thread) as files are processed.
///
/// Fails, writing nothing, when the input cannot be read or holds no usable image.
pub fn build_dataset(
    input: &Path,
    opts: &BuildOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<BuildReport> {
    build_dataset_with(input, opts, None, progress)
}

/// [`build_dataset`] with `framer` cutting each square instead of the centred crop (required
/// when `opts.align` is set: limner-data knows no faces; the CLI passes limner-faces'
/// aligner). The framer sees the full decoded image after the size check.
pub fn build_dataset_with(
    input: &Path,
    opts: &BuildOptions,
    framer: Option<&Framer>,
    progress: &dyn Fn(usize, usize),
) -> Result<BuildReport> {
    let start = Instant::now();
    opts.validate()?;
    ensure!(
        !opts.align || framer.is_some(),
        "align needs a face aligner: use `limner dataset build --align` (limner-faces)"
    );
    let exclude = compile_globs(&opts.exclude)?;
    let mut source = Source::open(input)?;
    let total = source.len();

    let out_dir = match opts.out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    // Pixels are spilled to an anonymous temp file: the header, which comes first,
    // is only known at the end.
    let mut spill = BufWriter::with_capacity(
        1 << 20,
        tempfile::tempfile_in(out_dir)
            .with_context(|| format!("cannot create a temp file in {}", out_dir.display()))?,
    );
    let mut checksum = Xxh3::new();
    let mut dedup = Dedup::new(opts.near_dup_threshold);
    let mut names: Vec<String> = Vec::new();
    let mut skipped: Vec<(String, SkipReason)> = Vec::new();
    let mut colour_sum = [0f64; 3];

    let chunk = rayon::current_num_threads() * FILES_PER_THREAD_PER_CHUNK;
    for first in (0..total).step_by(chunk) {
        let range = first..total.min(first + chunk);
        let loaded: Vec<(String, Result<Vec<u8>, SkipReason>)> = range
            .clone()
            .map(|i| {
                let name = source.name(i).to_string();
                let bytes = if is_excluded(&exclude, &name) {
                    Err(SkipReason::Excluded)
                } else {
                    source.read(i, opts.max_file_bytes)
                };
                (name, bytes)
            })
            .collect();
        let processed: Vec<(String, Result<Processed, SkipReason>)> = loaded
            .into_par_iter()
            .map(|(name, bytes)| (name, bytes.and_then(|b| process(&b, opts, framer))))
            .collect();
        for (name, result) in processed {
            let outcome = result.and_then(|img| match dedup.find(&img) {
                Some(first) => Err(SkipReason::Duplicate {
                    of: names[first].clone(),
                }),
                None => Ok(img),
            });
            match outcome {
                Ok(img) => {
                    spill
                        .write_all(&img.pixels)
                        .context("cannot write the temp file")?;
                    checksum.update(&img.pixels);
                    for (sum, mean) in colour_sum.iter_mut().zip(img.mean) {
                        *sum += f64::from(mean);
                    }
                    dedup.insert(&img, names.len());
                    names.push(name);
                }
                Err(reason) => skipped.push((name, reason)),
            }
        }
        progress(range.end, total);
    }

    if names.is_empty() {
        return Err(nothing_usable(input, total, &skipped));
    }
    let kept = names.len();
    let mean_rgb = colour_sum.map(|s| (s / kept as f64 / 255.0) as f32);
    let mut pixels = spill
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the temp file")?;
    pixels.rewind()?;
    let meta = DatasetMeta {
        source: input.display().to_string(),
        options: opts.clone(),
        names,
        mean_rgb,
        created_by: format!("limner-data {}", env!("CARGO_PKG_VERSION")),
        checksum: format::CHECKSUM_NAME.to_string(),
    };
    format::write_packed(&opts.out, &meta, opts.res, &mut pixels, checksum.digest())?;
    Ok(BuildReport {
        kept,
        skipped,
        mean_rgb,
        out_bytes: fs::metadata(&opts.out)?.len(),
        res: opts.res,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn compile_globs(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(
            Glob::new(pattern).with_context(|| format!("invalid exclude pattern {pattern:?}"))?,
        );
    }
    Ok(set.build()?)
}

/// Matches the file name, and the relative path (so `raw/**` works too).
fn is_excluded(globs: &GlobSet, name: &str) -> bool {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    globs.is_match(file_name) || globs.is_match(name)
}

fn nothing_usable(input: &Path, total: usize, skipped: &[(String, SkipReason)]) -> anyhow::Error {
    if total == 0 {
        return anyhow!("no decodable images in {}: no files found", input.display());
    }
    let counts: Vec<String> = count_by_kind(skipped)
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    anyhow!(
        "no decodable images in {}: {total} file{}, {}",
        input.display(),
        if total == 1 { "" } else { "s" },
        counts.join(", ")
    )
}

/// One decoded input image, ready to be written.
struct Processed {
    /// `res * res * 3` bytes, HWC RGB.
    pixels: Vec<u8>,
    /// SHA-256 of the full decoded image (size and pixels), for exact duplicates.
    sha: [u8; 32],
    phash: u64,
    /// Mean of each channel of `pixels`, 0..255.
    mean: [f32; 3],
}

/// Decodes, checks the size, crops to a centred square (or frames with `framer`) and resizes.
fn process(bytes: &[u8], opts: &BuildOptions, framer: Option<&Framer>) -> Result<Processed, SkipReason> {
    let img = decode_rgb(bytes, opts.max_pixels)?;
    let (w, h) = img.dimensions();
    if w.min(h) < opts.min_size() {
        return Err(SkipReason::TooSmall { w, h });
    }
    let mut sha = Sha256::new();
    sha.update(w.to_le_bytes());
    sha.update(h.to_le_bytes());
    sha.update(img.as_raw());

    let small = match framer {
        Some(f) => {
            let framed = f(&img, opts.res).map_err(SkipReason::NotFramed)?;
            if framed.dimensions() != (opts.res, opts.res) {
                return Err(SkipReason::NotFramed(format!("the framer returned {}x{}", framed.width(), framed.height())));
            }
            framed
        }
        None => crop_and_resize(&img, opts.res),
    };
    let mut sums = [0u64; 3];
    for p in small.pixels() {
        for c in 0..3 {
            sums[c] += u64::from(p[c]);
        }
    }
    let n = f64::from(opts.res * opts.res);
    Ok(Processed {
        phash: phash(&small),
        mean: sums.map(|s| (s as f64 / n) as f32),
        sha: sha.finalize().into(),
        pixels: small.into_raw(),
    })
}

/// Crops the centred square and resizes it to `res` x `res`. Large images are first
/// reduced by a k x k box average to at most about twice `res` (fast and alias-free,
/// like Pillow's `reducing_gap`), then resampled with Lanczos3.
fn crop_and_resize(img: &RgbImage, res: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let k = (w.min(h) / (2 * res)).max(1);
    let side = w.min(h) / k * k;
    let (x0, y0) = ((w - side) / 2, (h - side) / 2);
    let square = if k > 1 {
        box_reduce(img, x0, y0, side, k)
    } else {
        imageops::crop_imm(img, x0, y0, side, side).to_image()
    };
    if square.width() == res {
        square
    } else {
        imageops::resize(&square, res, res, FilterType::Lanczos3)
    }
}

/// Averages k x k blocks of the `side` x `side` square at (`x0`, `y0`); `side` is a
/// multiple of `k`.
fn box_reduce(img: &RgbImage, x0: u32, y0: u32, side: u32, k: u32) -> RgbImage {
    let (out_side, k, side) = ((side / k) as usize, k as usize, side as usize);
    let (width, raw) = (img.width() as usize, img.as_raw());
    let area = (k * k) as u32;
    let mut out = Vec::with_capacity(out_side * out_side * 3);
    let mut sums = vec![0u32; out_side * 3];
    for out_y in 0..out_side {
        sums.fill(0);
        for y in y0 as usize + out_y * k..y0 as usize + (out_y + 1) * k {
            let row = &raw[(y * width + x0 as usize) * 3..][..side * 3];
            for (block, sum) in row.chunks_exact(k * 3).zip(sums.chunks_exact_mut(3)) {
                for px in block.chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += u32::from(px[c]);
                    }
                }
            }
        }
        out.extend(sums.iter().map(|&s| ((s + area / 2) / area) as u8));
    }
    RgbImage::from_raw(out_side as u32, out_side as u32, out).expect("buffer size matches")
}

/// Exact (SHA-256) and near (pHash + mean colour) duplicate detection against the
/// images kept so far.
struct Dedup {
    threshold: u32,
    exact: HashMap<[u8; 32], usize>,
    near: Vec<(u64, [f32; 3], usize)>,
}

impl Dedup {
    fn new(threshold: u32) -> Self {
        Dedup {
            threshold,
            exact: HashMap::new(),
            near: Vec::new(),
        }
    }

    /// The index of the kept image that `img` duplicates, if any.
    fn find(&self, img: &Processed) -> Option<usize> {
        if let Some(&first) = self.exact.get(&img.sha) {
            return Some(first);
        }
        if self.threshold == 0 {
            return None;
        }
        self.near
            .iter()
            .find(|(hash, mean, _)| {
                (hash ^ img.phash).count_ones() <= self.threshold
                    && mean
                        .iter()
                        .zip(img.mean)
                        .all(|(a, b)| (a - b).abs() <= NEAR_DUP_MAX_COLOUR_DIFF)
            })
            .map(|&(_, _, first)| first)
    }

    fn insert(&mut self, img: &Processed, index: usize) {
        self.exact.insert(img.sha, index);
        self.near.push((img.phash, img.mean, index));
    }
}
