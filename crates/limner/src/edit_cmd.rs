//! CLI glue for latent-space editing: `limner render`, `limner breed`, `limner models sliders`
//! (argument parsing and printing; the work is in `limner_edit`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use limner_data::imageio::{make_grid, save_image_rgb, save_png_rgb};
use limner_core::progress::bar;
use limner_edit::animate::{self, Format};
use limner_edit::breed::{self, BreedOptions, ParentSpec};
use limner_edit::model::parse_layers;
use limner_edit::recipe::{self, Recipe};
use limner_edit::sliders::{self, Method};

use crate::steer_cmd::open_model;

/// `limner render`
#[derive(Args)]
pub struct RenderArgs {
    /// a recipe (the NAME.json beside an image limner made)
    pub recipe: PathBuf,
    /// the PNG to write
    #[arg(long)]
    pub out: PathBuf,
    /// for an animation's recipes (`limner animate` writes NAME.json): which frame, from 0
    #[arg(long)]
    pub frame: Option<usize>,
    /// the training index for the copy check (default: the model's own, as `generate` finds it)
    #[arg(long, value_name = "FILE")]
    pub copy_index: Option<PathBuf>,
    /// write the image even when it is a near copy of a training image (recorded in its label)
    #[arg(long)]
    pub allow_near_copy: bool,
}

pub fn render(a: RenderArgs) -> Result<()> {
    let r = recipe::load_for_render(&a.recipe, a.frame)?;
    let m = recipe::open_model(&r, &Device::flex())?;
    let img = recipe::render(&r, m.as_ref())?;
    let rgb = img.to_rgb8();
    // the same copy check as `generate`, so a recipe renders the same bytes (label included)
    let guard = crate::copy_cmd::open(&r.model.name, a.copy_index.as_deref(), a.allow_near_copy)?;
    let record = match &guard {
        Some(g) => {
            let name = a.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            g.check(&[limner_audit::Rgb8::new(img.width, rgb.clone())], &[name], a.out.parent(), crate::copy_cmd::OVERRIDE)?.pop()
        }
        None => None,
    };
    let prov = crate::copy_cmd::labelled(&r.provenance()?, record.as_ref());
    save_image_rgb(&a.out, img.width as u32, img.height as u32, &rgb, &prov)?;
    println!("rendered {} ({}, {}px) -> {}", a.recipe.display(), r.model.name, r.size, a.out.display());
    Ok(())
}

/// `limner breed`
#[derive(Args)]
pub struct BreedArgs {
    /// `default`, `random-face`, a generator file, a run folder or a name from `limner models list`
    #[arg(long, default_value = "default")]
    pub model: String,
    /// output size (random-face only)
    #[arg(long)]
    pub size: Option<usize>,
    /// two or more parents: seeds (12 or seed:12) or recipes (kept.json), comma-separated
    #[arg(long)]
    pub parents: String,
    /// each layer group's weight toward the first parent (coarse=0.7,middle=0.3,fine=0.5), or
    /// one weight per parent (coarse=0.5/0.3/0.2); groups not named mix equally
    #[arg(long, default_value = "")]
    pub genes: String,
    /// size of a random step in w added to each child (0 = none)
    #[arg(long, default_value_t = 0.0)]
    pub mutation: f32,
    /// the litter's seed: the same parents, genes, mutation and seed give the same litter
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub children: usize,
    /// truncation psi of seed parents
    #[arg(long, default_value_t = 0.7)]
    pub psi: f32,
    /// per-pixel noise scale of seed parents (children take the first parent's noise)
    #[arg(long, default_value_t = 1.0)]
    pub noise: f32,
    /// folder for childNN.png and childNN.json (its recipe, naming its parents)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// also write the litter as one grid PNG
    #[arg(long)]
    pub grid: Option<PathBuf>,
}

pub fn breed(a: BreedArgs) -> Result<()> {
    if a.out.is_none() && a.grid.is_none() {
        bail!("nothing to write: give --out DIR and/or --grid FILE.png");
    }
    if !a.psi.is_finite() || !a.noise.is_finite() {
        bail!("--psi and --noise must be finite numbers");
    }
    let specs: Vec<ParentSpec> = a.parents.split(',').filter(|p| !p.trim().is_empty()).map(ParentSpec::parse).collect::<Result<_>>()?;
    if specs.len() < 2 {
        bail!("--parents: give at least two (seeds or recipes), e.g. 12,seed:40,kept.json");
    }
    breed::parse_genes(&a.genes, specs.len())?;
    let m = open_model(&a.model, a.size)?;
    let m = m.as_ref();
    let parents: Vec<Recipe> = specs.iter().map(|p| p.recipe(m, a.psi, a.noise)).collect::<Result<_>>()?;
    let t0 = Instant::now();
    let litter = breed::breed(m, &parents, &BreedOptions { genes: a.genes.clone(), mutation: a.mutation, seed: a.seed, children: a.children })?;
    let ws: Vec<_> = litter.iter().map(|(w, _)| w.clone()).collect();
    let noise = vec![parents[0].noise.seed; ws.len()];
    let images = m.render(&ws, &noise, parents[0].noise.scale);
    let secs = t0.elapsed().as_secs_f64();
    if let Some(dir) = &a.out {
        let guard = crate::copy_cmd::open(&m.id().name, None, false)?;
        for (k, (img, (_, r))) in images.iter().zip(&litter).enumerate() {
            crate::copy_cmd::save_checked(guard.as_ref(), &dir.join(format!("child{k:02}.png")), img, r)?;
        }
        println!("wrote {} children (childNN.png + childNN.json recipes) to {}", images.len(), dir.display());
    }
    if let Some(g) = &a.grid {
        let rgb: Vec<Vec<u8>> = images.iter().map(|i| i.to_rgb8()).collect();
        let cols = (rgb.len() as f64).sqrt().ceil() as u32;
        let (w, h, px) = make_grid(&rgb, m.size() as u32, cols, 2);
        let recipes: Vec<Recipe> = litter.iter().map(|(_, r)| r.clone()).collect();
        save_image_rgb(g, w, h, &px, &crate::label_cmd::grid_label(&recipes)?)?;
        println!("wrote grid {}", g.display());
    }
    println!("bred {} children of {} parents in {secs:.2} s", images.len(), parents.len());
    Ok(())
}

/// `limner models sliders`
#[derive(Args)]
pub struct SlidersArgs {
    #[arg(long, default_value = "default")]
    pub model: String,
    /// sefa (closed form from the style weights) or ganspace (PCA of 10,000 sampled w's)
    #[arg(long, default_value = "sefa")]
    pub method: String,
    /// style layers: all, coarse, middle, fine, a range 0-5
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// the slider file to write (use it with `limner generate --sliders FILE --slider sefa:0=+3`)
    #[arg(long)]
    pub out: PathBuf,
}

pub fn sliders(a: SlidersArgs) -> Result<()> {
    let method = sliders::Method::parse(&a.method)?;
    if method == Method::Named {
        bail!("named sliders are fitted by `limner models directions`");
    }
    // random-face's sliders do not depend on the output size: open it at its smallest
    let size = (a.model == limner_photoreal::MODEL_NAME).then_some(8);
    let m = open_model(&a.model, size)?;
    let m = m.as_ref();
    let rows = parse_layers(m, &a.layers)?;
    let t0 = Instant::now();
    let set = match method {
        Method::Sefa => sliders::sefa(m, &rows, &a.layers, a.count, &sliders::sample_ws(m, sliders::SEFA_SAMPLES))?,
        _ => {
            eprintln!("sampling {} w's...", sliders::GANSPACE_SAMPLES);
            sliders::ganspace(m, &rows, &a.layers, a.count, &sliders::sample_ws(m, sliders::GANSPACE_SAMPLES))?
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    set.save(&a.out)?;
    let (cos, norm) = set.orthonormality_error();
    println!("{} {} sliders of `{}` over style layers {:?} in {secs:.2} s", set.vectors.len(), method.name(), a.model, rows);
    for (i, (e, s)) in set.meta.eigenvalues.iter().zip(&set.sigmas).enumerate() {
        println!("  {}:{}:{i:<3} eigenvalue {e:>12.4}  1 unit = {s:.3} in w", method.name(), a.layers);
    }
    println!("orthonormal: largest |cos| {cos:.1e}, largest | |v| - 1 | {norm:.1e}");
    println!("wrote {} (use: limner generate --model {} --sliders {} --slider {}:{}:0=+3)", a.out.display(), a.model, a.out.display(), method.name(), a.layers);
    Ok(())
}

/// `limner animate`
#[derive(Args)]
pub struct AnimateArgs {
    #[arg(long, default_value = "default")]
    pub model: String,
    /// output size (random-face only)
    #[arg(long)]
    pub size: Option<usize>,
    /// keyframes: seeds (7 or seed:7) and recipes (a.json), comma-separated; with --sweep, the one face swept
    #[arg(long)]
    pub through: String,
    /// sweep one slider instead, e.g. age=-3..3 or sefa:coarse:0=-4..4
    #[arg(long)]
    pub sweep: Option<String>,
    /// style layers the sweep moves (all, coarse, middle, fine, 0-5)
    #[arg(long)]
    pub layers: Option<String>,
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// return to the first keyframe (or sweep back), so the animation loops seamlessly
    #[arg(long = "loop")]
    pub looped: bool,
    #[arg(long, default_value_t = 20)]
    pub fps: u16,
    /// truncation psi of seed keyframes
    #[arg(long, default_value_t = 0.7)]
    pub psi: f32,
    /// per-pixel noise scale of seed keyframes
    #[arg(long, default_value_t = 1.0)]
    pub noise: f32,
    /// the animation: NAME.gif or NAME.png (APNG); every frame's recipe goes to NAME.json
    #[arg(long)]
    pub out: PathBuf,
    /// the training index for the copy check (default: the model's own, as `generate` finds it)
    #[arg(long, value_name = "FILE")]
    pub copy_index: Option<PathBuf>,
    /// write the animation even when a frame is a near copy of a training image (recorded in its label)
    #[arg(long)]
    pub allow_near_copy: bool,
}

pub fn animate(a: AnimateArgs) -> Result<()> {
    let format = Format::from_path(&a.out)?;
    if !a.psi.is_finite() || !a.noise.is_finite() {
        bail!("--psi and --noise must be finite numbers");
    }
    let specs: Vec<ParentSpec> = a.through.split(',').filter(|p| !p.trim().is_empty()).map(ParentSpec::parse).collect::<Result<_>>()?;
    let m = open_model(&a.model, a.size)?;
    let m = m.as_ref();
    let keys: Vec<Recipe> = specs.iter().map(|p| p.recipe(m, a.psi, a.noise)).collect::<Result<_>>()?;
    let frames = match &a.sweep {
        Some(sw) => {
            if keys.len() != 1 {
                bail!("--sweep animates one face: give one --through (a seed or a recipe)");
            }
            let (name, range) = sw.split_once('=').with_context(|| format!("--sweep `{sw}`: write SLIDER=FROM..TO, e.g. age=-3..3"))?;
            let (from, to) = range.split_once("..").with_context(|| format!("--sweep `{sw}`: write SLIDER=FROM..TO, e.g. age=-3..3"))?;
            let num = |x: &str| x.trim().trim_start_matches('+').parse::<f32>().with_context(|| format!("--sweep `{sw}`: `{x}` is not a number"));
            let (from, to) = (num(from)?, num(to)?);
            let cat = crate::steer_cmd::catalogue(&a.model, None, &[])?;
            let (slider, mv) = sliders::parse_move(&cat, m, &format!("{name}=0"), a.layers.as_deref())?;
            animate::sweep(m, &keys[0], &slider, &mv.rows, from, to, a.frames, a.looped)?
        }
        None => animate::through(m, &keys, a.frames, a.looped)?,
    };
    let pb = bar(frames.len() as u64, "rendering frames");
    let t0 = Instant::now();
    let images = animate::render_frames(m, &frames, &mut |d| pb.set_position(d as u64));
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    // the copy check on every frame (in-between frames are new images too), before anything is written
    let guard = crate::copy_cmd::open(&m.id().name, a.copy_index.as_deref(), a.allow_near_copy)?;
    let record = match &guard {
        Some(g) => {
            let faces: Vec<limner_audit::Rgb8> = images.iter().map(|i| limner_audit::Rgb8::new(i.width, i.to_rgb8())).collect();
            let names: Vec<String> = (0..faces.len()).map(|i| format!("frame{i:03}")).collect();
            let checks = g.measure(&faces)?;
            let dir = a.out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            g.verdict(&checks, &faces, &names, Some(dir), crate::copy_cmd::OVERRIDE)?;
            Some(limner_audit::guard::frames_record(&checks, g.allows()))
        }
        None => None,
    };
    let bytes = animate::encode(&images, format, a.fps)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let anim = recipe::Animation { limner_animation: recipe::RECIPE_VERSION, fps: a.fps, frames: frames.into_iter().map(|f| f.recipe).collect() };
    // the label: the model, frame count and fps (every frame's full recipe is in NAME.json)
    let label = crate::copy_cmd::labelled(&crate::label_cmd::animation_label(&anim.frames, a.fps)?, record.as_ref());
    limner_data::imageio::write_labeled(&a.out, &bytes, &label)?;
    let json = a.out.with_extension("json");
    limner_core::write_atomic(&json, serde_json::to_string(&anim)?.as_bytes())?;
    println!(
        "wrote {} ({} frames, {}px, {} fps, {:.1} kB) in {secs:.1} s; frame recipes in {} (limner render {} --frame N --out f.png)",
        a.out.display(),
        images.len(),
        m.size(),
        a.fps,
        bytes.len() as f64 / 1e3,
        json.display(),
        json.display()
    );
    Ok(())
}

/// `limner project`
#[derive(Args)]
pub struct ProjectArgs {
    /// a photo with a face (JPEG, PNG or WebP)
    pub photo: PathBuf,
    /// `default`, `random-face`, a generator file, a run folder or a name from `limner models list`
    #[arg(long, default_value = "default")]
    pub model: String,
    /// output side for random-face (a power of two up to 1024; 256 recommended)
    #[arg(long)]
    pub size: Option<usize>,
    /// output folder: projection.png + projection.json (its recipe), aligned.png, side_by_side.png
    #[arg(long)]
    pub out: PathBuf,
    /// optimisation steps after the encoder's guess (0 = the guess alone); default 300, 60 for random-face
    #[arg(long)]
    pub steps: Option<usize>,
    /// w (one w for every layer) or w+ (w first, then every layer its own)
    #[arg(long, default_value = "w+")]
    pub space: String,
    /// start from w_avg instead of the model's encoder (`limner models encoder`)
    #[arg(long)]
    pub no_encoder: bool,
    /// the encoder file to start from (default: beside the model, in the cache, or embedded)
    #[arg(long, conflicts_with = "no_encoder")]
    pub encoder: Option<PathBuf>,
}

/// `limner models encoder`
#[derive(Args)]
pub struct EncoderArgs {
    #[arg(long, default_value = "default")]
    pub model: String,
    /// random-face's render size while training (faces are read at 64 px)
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// total training steps (a resumed run continues up to this)
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// faces per step
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// the encoder file (default: the cache, where `limner project` finds it); the resumable
    /// checkpoint is written beside it as NAME.ckpt.safetensors
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// continue from the checkpoint beside --out
    #[arg(long)]
    pub resume: bool,
    /// start from this encoder file's weights (e.g. the encoder of an earlier model in the same
    /// w space) instead of a fresh net
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
}

pub fn encoder(a: EncoderArgs) -> Result<()> {
    use limner_edit::encoder::{self, TrainOptions};
    let size = (a.model == limner_photoreal::MODEL_NAME).then_some(a.size);
    let m = open_model(&a.model, size)?;
    let m = m.as_ref();
    let out = a.out.clone().unwrap_or_else(|| encoder::cache_path(m));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let o = TrainOptions { steps: a.steps, batch: a.batch, init: a.init.clone(), ..Default::default() };
    let held: Vec<u64> = (0..64).map(|i| 1_000_000 + i).collect();
    let pb = bar(a.steps, "training the encoder");
    let t0 = Instant::now();
    let mut avg = None::<f32>;
    let e = encoder::train(m, &out, a.resume, &o, &mut |s, l| {
        let v = avg.map_or(l, |x| 0.98 * x + 0.02 * l);
        avg = Some(v);
        pb.set_position(s);
        pb.set_message(format!("training the encoder (w loss {v:.3})"));
    })?;
    pb.finish_and_clear();
    let (loss, base) = encoder::w_loss(m, &e.net, &held, o.psi);
    println!("trained the encoder of `{}` to step {} in {:.0} s: held-out w loss {loss:.3} (guessing w_avg: {base:.3}; standardised w)", a.model, e.steps, t0.elapsed().as_secs_f64());
    println!("wrote {} ({:.1} MB, f16) and its checkpoint {} (--resume continues)", out.display(), std::fs::metadata(&out)?.len() as f64 / 1e6, out.with_extension("ckpt.safetensors").display());
    Ok(())
}

pub fn project(a: ProjectArgs) -> Result<()> {
    use limner_edit::project::{self, ProjectOptions};
    let w_plus = match a.space.as_str() {
        "w" => false,
        "w+" => true,
        other => bail!("--space `{other}`: use w or w+"),
    };
    let bytes = std::fs::read(&a.photo).with_context(|| format!("cannot read {}", a.photo.display()))?;
    let (w, h, rgb) = limner_data::imageio::load_image_rgb(&a.photo, 64 << 20).with_context(|| format!("cannot use {} as a photo", a.photo.display()))?;
    let photo = limner_faces::Image::from_rgb8(w as usize, h as usize, &rgb);
    let device = Device::flex();
    let m = open_model(&a.model, a.size)?;
    let m = m.as_ref();
    let steps = a.steps.unwrap_or(if a.model == limner_photoreal::MODEL_NAME { 60 } else { 300 });
    if steps > 0 {
        m.differentiable()?;
    }
    let enc = match (&a.encoder, a.no_encoder) {
        (_, true) => None,
        (Some(p), _) => {
            let e = limner_edit::encoder::Encoder::load(p, &device)?;
            e.check_model(m, &p.display().to_string())?;
            Some((e, p.display().to_string()))
        }
        (None, false) => limner_edit::encoder::locate(m, &device)?,
    };
    if enc.is_none() && steps == 0 {
        bail!("--steps 0 projects with the encoder alone, and model `{}` has none: train one with `limner models encoder --model {}`", a.model, a.model);
    }
    let fa = limner_faces::FaceAnalyzer::load_fetched(limner_faces::FaceAnalyzerConfig { descriptors: true, ..Default::default() }, &device)?;
    let (aligned, faces) = project::align_photo(&fa, &photo, m.size()).with_context(|| format!("{}", a.photo.display()))?;
    if faces > 1 {
        eprintln!("note: {faces} faces in {}: projecting the largest", a.photo.display());
    }
    let dist = limner_nets::perceptual::InceptionPerceptual::load_fetched(&device)?;
    let t0 = Instant::now();
    let start = match &enc {
        Some((e, _)) => Some(e.guess(std::slice::from_ref(&aligned))?.pop().expect("one")),
        None => None,
    };
    let guess_secs = t0.elapsed().as_secs_f64();
    let pb = bar(steps as u64, "projecting");
    let opts = ProjectOptions { steps, w_plus, start, ..Default::default() };
    let p = project::project(m, &aligned, &dist, &opts, &mut |s, d| {
        pb.set_position(s as u64);
        pb.set_message(format!("projecting (distance {d:.4})"));
    })?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let sha = limner_edit::model::sha256_hex(&bytes);
    let r = Recipe::new(m, &p.ws, recipe::NoiseSpec { seed: 0, scale: 0.0 }, recipe::Origin::Projection { source_sha256: sha, steps, space: a.space.clone() }, vec![]);
    let guard = crate::copy_cmd::open(&m.id().name, None, false)?;
    crate::copy_cmd::save_checked(guard.as_ref(), &a.out.join("projection.png"), &p.image, &r)?;
    save_png_rgb(&a.out.join("aligned.png"), aligned.width as u32, aligned.height as u32, &aligned.to_rgb8())?;
    let sbs = project::side_by_side(&aligned, &p.image);
    // the user's photo beside the generated projection: a composite
    let sbs_label = limner_data::provenance::Provenance::new(limner_data::provenance::SourceType::CompositeWithTrainedAlgorithmicMedia)
        .with_recipe_json(serde_json::json!({"command": "project", "picture": "the aligned photo (left) and its projection (right)", "projection": "projection.png"}))
        .with_model_sha256(Some(r.model.sha256.clone()));
    save_image_rgb(&a.out.join("side_by_side.png"), sbs.width as u32, sbs.height as u32, &sbs.to_rgb8(), &sbs_label)?;
    // identity is read at 256 px (face-api's networks want more than 64 px faces)
    let up = |i: &limner_faces::Image| i.resize_bilinear(256, 256);
    let id = project::identity_distance(&fa, &up(&aligned), &up(&p.image));
    let from = match &enc {
        Some((_, f)) => format!("the encoder's guess ({f}, {:.0} ms)", guess_secs * 1e3),
        None => "w_avg".to_string(),
    };
    println!("projected {} onto `{}` in {secs:.1} s ({steps} steps, {}; started from {from})", a.photo.display(), a.model, a.space);
    println!("perceptual distance {:.4} (from {:.4} at the start)", p.distance, p.start_distance);
    match id {
        Some(d) => println!("face-api identity distance {d:.3} ({} by face-api's 0.6 rule)", if d < 0.6 { "the same person" } else { "not the same person" }),
        None => println!("face-api identity distance: no face found in the projection"),
    }
    println!("wrote {}/projection.png (+ projection.json recipe), aligned.png, side_by_side.png", a.out.display());
    Ok(())
}
