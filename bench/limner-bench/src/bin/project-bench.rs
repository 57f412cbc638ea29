//! project-bench: `limner project` on photos of real people, on the default model (64 px) and
//! on random-face (256 px): for each photo the time, the perceptual distance
//! (`limner_nets::perceptual`) and face-api's identity distance (photo vs projection, < 0.6 =
//! the same person) of the encoder's guess alone, the guess + optimisation, and optimisation
//! alone from `w_avg`; and, per model, the encoder's guess against `w_avg` on renders of
//! held-out seeds. Prints `ROW` lines (`bench/project.sh` tabulates them).
//!
//! Usage: project-bench [--steps N] [--rf-steps N] [--models default,random-face]
//!                      [--encoder-default FILE] [--modes w_avg,encoder,encoder+opt,opt] PHOTO...

use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use limner_edit::encoder::{self, Encoder};
use limner_edit::model::open;
use limner_edit::project::{self, ProjectOptions};
use limner_faces::Image;

/// CPU seconds this process has used (user + system): the machine is shared, so wall time
/// alone says little.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name, in ticks
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<()> {
    limner_kernels::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = arg(&args, "--steps").map_or(Ok(300), |s| s.parse())?;
    let rf_steps: usize = arg(&args, "--rf-steps").map_or(Ok(60), |s| s.parse())?;
    let models = arg(&args, "--models").unwrap_or_else(|| "default,random-face".into());
    let enc_default = arg(&args, "--encoder-default");
    let only = arg(&args, "--modes"); // e.g. `encoder,encoder+opt` (default: all four)
    let mut photos = vec![];
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if a.starts_with("--") {
            skip = true;
        } else {
            photos.push(std::path::PathBuf::from(a));
        }
    }
    let dev = Device::flex();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# project-bench: {} cores, loadavg at start {}", std::thread::available_parallelism().map_or(0, |n| n.get()), load.trim());
    let fa = limner_faces::FaceAnalyzer::load_fetched(limner_faces::FaceAnalyzerConfig { descriptors: true, ..Default::default() }, &dev)?;
    let dist = limner_nets::perceptual::InceptionPerceptual::load_fetched(&dev)?;
    for name in models.split(',') {
        let rf = name == limner_photoreal::MODEL_NAME;
        let m = open(name, rf.then_some(256), &dev)?;
        let m = m.as_ref();
        let n_steps = if rf { rf_steps } else { steps };
        let enc: Option<(Encoder, String)> = match (&enc_default, rf) {
            (Some(f), false) => {
                let e = Encoder::load(f.as_ref(), &dev)?;
                e.check_model(m, f)?;
                Some((e, f.clone()))
            }
            _ => encoder::locate(m, &dev)?,
        };
        let label = format!("{name}-{}", m.size());
        match &enc {
            Some((e, f)) => {
                println!("# {label}: encoder {f} ({} steps)", e.steps);
                let seeds: Vec<u64> = (0..16).map(|i| 900_000 + i).collect();
                let (a, g) = encoder::compare_on_renders(m, e, &dist, &seeds)?;
                println!("HELDOUT {label} w_avg={a:.4} encoder={g:.4}");
                let face = m.render(&limner_edit::model::seed_ws(m, &[900_100], 0.7), &[0], 0.0);
                e.guess(&face)?;
                let t0 = Instant::now();
                for _ in 0..5 {
                    e.guess(&face)?;
                }
                println!("RESULT limner project/{label}/encoder-guess ms={:.1}", t0.elapsed().as_secs_f64() * 1e3 / 5.0);
            }
            None => println!("# {label}: no encoder (train one with `limner models encoder --model {name}`)"),
        }
        for photo in &photos {
            let (w, h, rgb) = limner_data::imageio::load_image_rgb(photo, 64 << 20).with_context(|| format!("{}", photo.display()))?;
            let img = Image::from_rgb8(w as usize, h as usize, &rgb);
            let (aligned, _) = project::align_photo(&fa, &img, m.size()).with_context(|| format!("{}", photo.display()))?;
            let pname = photo.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let mut modes: Vec<(&str, usize, bool)> = vec![("w_avg", 0, false)];
            if enc.is_some() {
                modes.push(("encoder", 0, true));
                modes.push(("encoder+opt", n_steps, true));
            }
            modes.push(("opt", n_steps, false));
            if let Some(only) = &only {
                modes.retain(|(name, _, _)| only.split(',').any(|o| o == *name));
            }
            for (mode, st, use_enc) in modes {
                let t0 = Instant::now();
                let c0 = cpu_secs();
                let start = match (&enc, use_enc) {
                    (Some((e, _)), true) => Some(e.guess(std::slice::from_ref(&aligned))?.pop().expect("one")),
                    _ if st == 0 => Some(m.w_avg()),
                    _ => None,
                };
                let p = project::project(m, &aligned, &dist, &ProjectOptions { steps: st, start, ..Default::default() }, &mut |_, _| {})?;
                let secs = t0.elapsed().as_secs_f64();
                let cpu = cpu_secs() - c0;
                let up = |i: &Image| i.resize_bilinear(256, 256);
                let id = project::identity_distance(&fa, &up(&aligned), &up(&p.image)).map_or("none".to_string(), |d| format!("{d:.3}"));
                println!("ROW {label} {pname} {mode} steps={st} s={secs:.1} cpu={cpu:.1} perceptual={:.4} identity={id}", p.distance);
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# loadavg at the end {}", load.trim());
    Ok(())
}
