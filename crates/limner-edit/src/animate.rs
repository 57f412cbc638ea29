//! Animations: one face becoming another through kept faces (keyframes), or one slider swept,
//! each frame rendered at the model's size, written as GIF (`gif` crate: quantised to 256
//! colours per frame) or APNG (`png` crate: lossless).
//!
//! Between two keys that are both plain seeds (same psi, no edits) the path is spherical in
//! `z` (slerp, then the mapping network and truncation), so intermediate faces stay as typical
//! as the keys; otherwise linear in `w+`, row by row. Each frame takes the noise of its nearest
//! key, so the first and last frames are exactly the keys' renders.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use limner_faces::Image;
use limner_core::latent_for_seed;

use crate::model::{map_each, Model, WPlus};
use crate::recipe::{Edit, NoiseSpec, Origin, Recipe};
use crate::sliders::{Slider, SliderMove};

/// The `z` of a key that is a plain seed (no edits), with its psi.
fn plain_seed(r: &Recipe) -> Option<(u64, f32)> {
    match (&r.origin, r.edits.is_empty()) {
        (Origin::Seed { seed, psi }, true) => Some((*seed, *psi)),
        _ => None,
    }
}

fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = (dot / (na * nb).max(1e-30)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let t = t as f64;
    if omega.abs() < 1e-6 {
        return a.iter().zip(b).map(|(x, y)| (*x as f64 * (1.0 - t) + *y as f64 * t) as f32).collect();
    }
    let (sa, sb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
    a.iter().zip(b).map(|(x, y)| (*x as f64 * sa + *y as f64 * sb) as f32).collect()
}

/// One frame: its `w+`, noise and recipe.
pub struct Frame {
    pub ws: WPlus,
    pub noise: NoiseSpec,
    pub recipe: Recipe,
}

/// `frames` frames through `keys` (at least two; the same model). Without `looped` the first
/// frame is the first key and the last the last key; with it the path returns to the first key
/// and the last frame is the one before it (so the animation loops seamlessly).
pub fn through(m: &dyn Model, keys: &[Recipe], frames: usize, looped: bool) -> Result<Vec<Frame>> {
    ensure!(keys.len() >= 2, "an animation needs at least two keyframes (got {})", keys.len());
    ensure!((2..=2000).contains(&frames), "--frames {frames}: between 2 and 2000");
    for k in keys {
        crate::recipe::check_model(k, m)?;
    }
    let mut path: Vec<&Recipe> = keys.iter().collect();
    if looped {
        path.push(&keys[0]);
    }
    let segs = path.len() - 1;
    let ws: Vec<WPlus> = path.iter().map(|k| k.ws()).collect::<Result<_>>()?;
    let lineage: Vec<Recipe> = keys.iter().map(Recipe::as_parent).collect();
    let denom = if looped { frames } else { frames - 1 } as f64;
    let avg = m.w_avg();
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        let u = i as f64 / denom * segs as f64;
        let s = (u.floor() as usize).min(segs - 1);
        let t = (u - s as f64) as f32;
        let (a, b) = (path[s], path[s + 1]);
        let w = if t == 0.0 {
            ws[s].clone()
        } else if t == 1.0 {
            ws[s + 1].clone()
        } else if let (Some((sa, pa)), Some((sb, pb))) = (plain_seed(a), plain_seed(b)) {
            if pa == pb {
                let z = slerp(&latent_for_seed(sa, m.z_dim()), &latent_for_seed(sb, m.z_dim()), t);
                let w = map_each(m, &[z]).pop().expect("one");
                let w: Vec<f32> = w.iter().zip(&avg).map(|(x, a)| a + (x - a) * pa).collect();
                WPlus::broadcast(&w, m.num_ws())
            } else {
                lerp(&ws[s], &ws[s + 1], t)
            }
        } else {
            lerp(&ws[s], &ws[s + 1], t)
        };
        let noise = if t < 0.5 { a.noise } else { b.noise };
        let recipe = Recipe::new(m, &w, noise, Origin::Frame { keys: lineage.clone(), frame: i, frames }, vec![]);
        out.push(Frame { ws: w, noise, recipe });
    }
    Ok(out)
}

fn lerp(a: &WPlus, b: &WPlus, t: f32) -> WPlus {
    WPlus { rows: a.rows, dim: a.dim, data: a.data.iter().zip(&b.data).map(|(x, y)| x + (y - x) * t).collect() }
}

/// `frames` frames of `key` with `slider` swept from `from` to `to` (and back when `looped`).
pub fn sweep(m: &dyn Model, key: &Recipe, slider: &Slider, rows: &[usize], from: f32, to: f32, frames: usize, looped: bool) -> Result<Vec<Frame>> {
    ensure!((2..=2000).contains(&frames), "--frames {frames}: between 2 and 2000");
    ensure!(from.is_finite() && to.is_finite() && from.abs() <= 10.0 && to.abs() <= 10.0, "--sweep values are in standard deviations, between -10 and 10");
    crate::recipe::check_model(key, m)?;
    let base = key.ws()?;
    Ok((0..frames)
        .map(|i| {
            let t = if looped {
                let u = i as f32 / frames as f32 * 2.0;
                if u <= 1.0 { u } else { 2.0 - u }
            } else {
                i as f32 / (frames - 1) as f32
            };
            let v = from + (to - from) * t;
            let mut w = base.clone();
            slider.apply(&mut w, v, rows);
            let mut edits = key.edits.clone();
            edits.push(Edit::Slider(SliderMove { slider: slider.id.clone(), value: v, rows: rows.to_vec() }));
            let recipe = Recipe::new(m, &w, key.noise, key.origin.clone(), edits);
            Frame { ws: w, noise: key.noise, recipe }
        })
        .collect())
}

/// Renders frames (one at a time, calling `progress` with the number done).
pub fn render_frames(m: &dyn Model, frames: &[Frame], progress: &mut dyn FnMut(usize)) -> Vec<Image> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let img = m.render(std::slice::from_ref(&f.ws), &[f.noise.seed], f.noise.scale).pop().expect("one");
            progress(i + 1);
            img
        })
        .collect()
}

/// The provenance label of an animation (GIF/APNG): wholly generated, its model (when every
/// frame has the same one), the frame count and fps; every frame's recipe goes beside it.
pub fn provenance(frames: &[Recipe], fps: u16) -> Result<limner_data::provenance::Provenance> {
    let first = frames.first().context("no frames")?;
    let mut v = serde_json::json!({"command": "animate", "model": {"name": first.model.name, "sha256": first.model.sha256}, "fps": fps, "frames": frames.len()});
    crate::recipe::name_models(&mut v);
    let same_model = frames.iter().all(|r| r.model.sha256 == first.model.sha256);
    Ok(limner_data::provenance::Provenance::generated().with_recipe_json(v).with_model_sha256(same_model.then(|| first.model.sha256.clone())))
}

/// The animation formats written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gif,
    Apng,
}

impl Format {
    /// From the output's extension: `.gif`, `.png`/`.apng`; `.mp4` is explained.
    pub fn from_path(p: &Path) -> Result<Self> {
        match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("gif") => Ok(Format::Gif),
            Some("png") | Some("apng") => Ok(Format::Apng),
            Some("mp4") => bail!(
                "MP4 is not written: no maintained pure-Rust crate encodes H.264 into MP4 without a C library; write .gif or .png (APNG, lossless) and convert with ffmpeg if you need MP4"
            ),
            _ => bail!("{}: write the animation as .gif or .png (APNG)", p.display()),
        }
    }
}

/// Encodes frames (all the same size) at `fps` frames per second, looping forever.
pub fn encode(images: &[Image], format: Format, fps: u16) -> Result<Vec<u8>> {
    ensure!(!images.is_empty(), "no frames");
    ensure!((1..=100).contains(&fps), "--fps {fps}: between 1 and 100");
    let (w, h) = (images[0].width, images[0].height);
    ensure!(images.iter().all(|i| i.width == w && i.height == h), "frames differ in size");
    let mut out = vec![];
    match format {
        Format::Gif => {
            ensure!(w <= u16::MAX as usize && h <= u16::MAX as usize, "{w}x{h} is too large for GIF");
            let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &[]).context("GIF encoder")?;
            enc.set_repeat(gif::Repeat::Infinite).context("GIF repeat")?;
            // GIF delays are in 1/100 s
            let delay = (100.0 / fps as f32).round() as u16;
            for img in images {
                let mut f = gif::Frame::from_rgb_speed(w as u16, h as u16, &img.to_rgb8(), 10);
                f.delay = delay;
                enc.write_frame(&f).context("GIF frame")?;
            }
        }
        Format::Apng => {
            let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_animated(images.len() as u32, 0).context("APNG")?;
            enc.set_frame_delay(1, fps).context("APNG frame delay")?;
            let mut wr = enc.write_header().context("APNG header")?;
            for img in images {
                wr.write_image_data(&img.to_rgb8()).context("APNG frame")?;
            }
            wr.finish().context("APNG end")?;
        }
    }
    Ok(out)
}
