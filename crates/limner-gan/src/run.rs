//! A training run on disk: checkpoints, the EMA generator, sample grids, metrics.csv and a
//! loss plot, written at every snapshot; resumable after a crash or Ctrl-C.
//!
//! Layout of `OUT/`:
//! - `latest.safetensors`: the full training state (resume from it)
//! - `generator.safetensors`: the EMA generator alone (official names; `generate --model`)
//! - `grid-latest.png`, `grids/grid-KKKKKK.png`: samples of fixed seeds at each snapshot
//! - `metrics.csv`, `loss.png`: losses per snapshot and their plot
//! - `run.json`: the command-line options of the run

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use limner_data::imageio::{make_grid, nchw_to_rgb8, save_image_rgb, save_png_rgb};

use crate::generate::{generate_seeds, save_generator, GenerateOptions, GeneratorInfo};
use crate::params::{write_atomic, Precision};
use crate::plot::{ema_smooth, render_line_plot, Series};
use crate::train::{DataSource, StepStats, Trainer};

/// How long to train and how often to snapshot.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    /// stop when this many thousand images have been shown to D
    pub total_kimg: f64,
    /// snapshot every this many thousand images
    pub snap_kimg: f64,
    /// seeds of the sample grid
    pub grid_seeds: Vec<u64>,
    pub grid_psi: f32,
    /// compute the FID-like score every this many kimg (needs a scorer)
    pub score_every: Option<f64>,
}

/// Scores the EMA generator (lower is better), e.g. the FID-like score of limner-nets.
pub type Scorer<'a> = &'a mut dyn FnMut(&crate::Generator) -> Result<f64>;

/// Running means of the step statistics between two snapshots.
#[derive(Default)]
pub struct Accum {
    n: u32,
    loss_g: f64,
    loss_d: f64,
    d_real: f64,
    d_fake: f64,
    r1: f64,
    r1_n: u32,
    distill: f64,
    distill_n: u32,
    perceptual: f64,
    perceptual_n: u32,
    /// ADA's p at the latest step
    augment_p: Option<f64>,
}

impl Accum {
    fn add(&mut self, s: &StepStats) {
        self.n += 1;
        self.loss_g += s.loss_g as f64;
        self.loss_d += s.loss_d as f64;
        self.d_real += s.d_real as f64;
        self.d_fake += s.d_fake as f64;
        if let Some(r) = s.r1 {
            self.r1 += r as f64;
            self.r1_n += 1;
        }
        if let Some(l) = s.distill {
            self.distill += l as f64;
            self.distill_n += 1;
        }
        if let Some(p) = s.perceptual {
            self.perceptual += p as f64;
            self.perceptual_n += 1;
        }
        if s.augment_p.is_some() {
            self.augment_p = s.augment_p;
        }
    }
    fn mean(&self, x: f64) -> f64 {
        x / self.n.max(1) as f64
    }
}

/// Why a run stopped.
#[derive(Debug, PartialEq)]
pub enum RunEnd {
    Finished,
    Interrupted,
}

const CSV_HEADER: &str = "kimg,step,seconds,images_per_s,loss_g,loss_d,d_real,d_fake,r1,fid_like,distill_l1,perceptual,augment_p";

/// Trains until `total_kimg` or until `stop` is set, snapshotting every `snap_kimg` and at
/// the end. `on_step` sees every step (for a progress bar).
pub fn run_training(
    t: &mut Trainer,
    data: &dyn DataSource,
    opts: &RunOptions,
    stop: &AtomicBool,
    on_step: &mut dyn FnMut(&Trainer, &StepStats, f64),
    mut scorer: Option<Scorer>,
) -> Result<RunEnd> {
    std::fs::create_dir_all(opts.out.join("grids")).with_context(|| format!("cannot create {}", opts.out.display()))?;
    truncate_metrics(&opts.out.join("metrics.csv"), t.kimg())?;
    let mut acc = Accum::default();
    let mut next_snap = (t.kimg() / opts.snap_kimg).floor() * opts.snap_kimg + opts.snap_kimg;
    let mut clock = Instant::now();
    let mut images_since = 0u64;
    let mut next_score = opts.score_every.map(|e| (t.kimg() / e).floor() * e + e);
    if t.step == 0 {
        snapshot(t, opts, &acc, 0.0, 0.0, None)?;
    }
    let end = loop {
        if stop.load(Ordering::SeqCst) {
            break RunEnd::Interrupted;
        }
        if t.kimg() >= opts.total_kimg {
            break RunEnd::Finished;
        }
        let s = t.step(data)?;
        acc.add(&s);
        images_since += t.train.batch as u64;
        let secs = clock.elapsed().as_secs_f64();
        on_step(t, &s, images_since as f64 / secs.max(1e-9));
        if t.kimg() >= next_snap {
            let mut score = None;
            if let (Some(ns), Some(sc)) = (next_score.as_mut(), scorer.as_mut()) {
                if t.kimg() >= *ns {
                    score = Some(sc(&t.g_ema)?);
                    *ns += opts.score_every.unwrap_or(f64::INFINITY);
                }
            }
            snapshot(t, opts, &acc, secs, images_since as f64 / secs.max(1e-9), score)?;
            acc = Accum::default();
            clock = Instant::now();
            images_since = 0;
            next_snap += opts.snap_kimg;
        }
    };
    let secs = clock.elapsed().as_secs_f64();
    if acc.n > 0 || end == RunEnd::Interrupted {
        snapshot(t, opts, &acc, secs, images_since as f64 / secs.max(1e-9), None)?;
    }
    Ok(end)
}

/// Writes the checkpoint, the EMA generator, a grid, a metrics row and the plot.
pub fn snapshot(t: &mut Trainer, opts: &RunOptions, acc: &Accum, secs: f64, ips: f64, score: Option<f64>) -> Result<()> {
    t.save(&opts.out.join(crate::setup::CHECKPOINT_FILE))?;
    let info = GeneratorInfo { config: None, kimg: Some(t.kimg()), notes: None };
    save_generator(&opts.out.join("generator.safetensors"), &mut t.g_ema, &info, Precision::F32)?;
    write_grid(t, opts)?;
    if acc.n > 0 {
        let row = format!(
            "{:.3},{},{:.1},{:.2},{:.5},{:.5},{:.5},{:.5},{},{},{},{},{}",
            t.kimg(),
            t.step,
            secs,
            ips,
            acc.mean(acc.loss_g),
            acc.mean(acc.loss_d),
            acc.mean(acc.d_real),
            acc.mean(acc.d_fake),
            if acc.r1_n > 0 { format!("{:.5}", acc.r1 / acc.r1_n as f64) } else { String::new() },
            score.map(|s| format!("{s:.3}")).unwrap_or_default(),
            if acc.distill_n > 0 { format!("{:.5}", acc.distill / acc.distill_n as f64) } else { String::new() },
            if acc.perceptual_n > 0 { format!("{:.5}", acc.perceptual / acc.perceptual_n as f64) } else { String::new() },
            acc.augment_p.map(|p| format!("{p:.4}")).unwrap_or_default()
        );
        append_metrics(&opts.out.join("metrics.csv"), &row)?;
        write_loss_plot(&opts.out)?;
    }
    Ok(())
}

fn write_grid(t: &Trainer, opts: &RunOptions) -> Result<()> {
    let res = t.g_ema.config.img_resolution;
    let gopts = GenerateOptions { psi: opts.grid_psi, noise: 1.0, batch: 16 };
    let imgs = generate_seeds(&t.g_ema, &opts.grid_seeds, &gopts);
    let rgb = nchw_to_rgb8(&imgs, opts.grid_seeds.len(), res, res);
    let cols = (opts.grid_seeds.len() as f64).sqrt().ceil() as u32;
    let (w, h, px) = make_grid(&rgb, res as u32, cols, 2);
    // the training run's EMA generator at this point made these faces
    let recipe = serde_json::json!({"command": "train", "run": opts.out.file_name().map(|n| n.to_string_lossy()), "kimg": t.kimg(), "seeds": opts.grid_seeds, "psi": opts.grid_psi, "noise": 1.0});
    let prov = limner_data::provenance::Provenance::generated().with_recipe_json(recipe);
    save_image_rgb(&opts.out.join(format!("grids/grid-{:06}.png", (t.kimg() * 1000.0).round() as u64 / 1000)), w, h, &px, &prov)?;
    save_image_rgb(&opts.out.join("grid-latest.png"), w, h, &px, &prov)
}

fn append_metrics(path: &Path, row: &str) -> Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() {
        text = format!("{CSV_HEADER}\n");
    }
    text.push_str(row);
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// On resume, drop metric rows past the checkpoint (they belong to a lost future).
fn truncate_metrics(path: &Path, kimg: f64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with("kimg") { CSV_HEADER } else { l }) // upgrade an older header
        .filter(|l| l.starts_with("kimg") || l.split(',').next().and_then(|k| k.parse::<f64>().ok()).is_some_and(|k| k <= kimg + 1e-9))
        .collect();
    write_atomic(path, format!("{}\n", kept.join("\n")).as_bytes())
}

/// Reads `metrics.csv` into columns by name.
pub fn read_metrics(path: &Path) -> Result<Vec<(String, Vec<f64>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap_or("").split(',').map(String::from).collect();
    let mut cols: Vec<(String, Vec<f64>)> = header.into_iter().map(|h| (h, vec![])).collect();
    for l in lines {
        for (i, v) in l.split(',').enumerate() {
            if let Some(c) = cols.get_mut(i) {
                c.1.push(v.parse().unwrap_or(f64::NAN));
            }
        }
    }
    Ok(cols)
}

fn write_loss_plot(out: &Path) -> Result<()> {
    let cols = read_metrics(&out.join("metrics.csv"))?;
    let col = |name: &str| cols.iter().find(|c| c.0 == name).map(|c| c.1.clone()).unwrap_or_default();
    let kimg = col("kimg");
    let pts = |name: &str| ema_smooth(&kimg.iter().copied().zip(col(name)).collect::<Vec<_>>(), 0.5);
    let (g, d, r1, l1, pd) = (pts("loss_g"), pts("loss_d"), pts("r1"), pts("distill_l1"), pts("perceptual"));
    // ADA's p, unsmoothed (it is already a slow controller)
    let ap: Vec<(f64, f64)> = kimg.iter().copied().zip(col("augment_p")).filter(|(_, p)| p.is_finite()).collect();
    let series = [
        Series { name: "G loss", points: &g, color: [220, 60, 40] },
        Series { name: "D loss", points: &d, color: [40, 90, 220] },
        Series { name: "R1", points: &r1, color: [40, 160, 80] },
        Series { name: "distill L1", points: &l1, color: [150, 60, 170] },
        Series { name: "perceptual", points: &pd, color: [200, 150, 20] },
        Series { name: "ADA p", points: &ap, color: [30, 30, 30] },
    ];
    let px = render_line_plot("limner training losses", "kimg", &series, 800, 480);
    save_png_rgb(&out.join("loss.png"), 800, 480, &px)
}
