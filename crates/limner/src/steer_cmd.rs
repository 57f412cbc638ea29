//! CLI glue for `limner generate` (plain seeds, `--slider`, `--prompt`) and `limner models
//! directions`: argument parsing, progress bars and printing; the work is in `limner_edit`
//! (the one generator abstraction, sliders, prompts, recipes).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use limner_data::imageio::save_seed_images;
use limner_edit::directions::{self, Directions};
use limner_edit::model::{self as edit_model, seed_ws, Model, STEER_SIZE};
use limner_edit::prompt::{self, SteerConfig};
use limner_edit::recipe::{Edit, NoiseSpec, Origin, Recipe};
use limner_edit::sliders::{self, apply_moves, Catalogue, SliderSet};
use limner_faces::{FaceAnalyzer, FaceAnalyzerConfig, Image};
use limner_core::progress::bar;

/// `limner models directions`
#[derive(Args)]
pub struct DirectionsArgs {
    /// `default`, a generator file, a run folder or a name from `limner models list`
    #[arg(long, default_value = "default")]
    pub model: String,
    /// faces to generate and label
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// first seed of the labelled faces (seeds FIRST..FIRST+COUNT)
    #[arg(long, default_value_t = 1_000_000)]
    pub first_seed: u64,
    /// truncation psi of the labelled faces
    #[arg(long, default_value_t = 0.7)]
    pub psi: f32,
    /// fraction of faces at each end of an attribute's scores used to fit (InterFaceGAN's extremes)
    #[arg(long, default_value_t = 0.3)]
    pub extreme: f32,
    /// output file (default: beside the model; for `default` and `random-face`, `$LIMNER_HOME/data/MODEL/` or `~/.cache/limner/data/MODEL/`, which then takes precedence over the built-in copy)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// keep the labels (w and readings of every face, JSON) in this file after every batch, and
    /// reuse them when it exists: an interrupted run resumes, a smaller --count fits on the first
    /// faces, another --extreme refits without relabelling (same --first-seed and --psi)
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// also label every face with the independent judge (human-models) and fit age only on the
    /// faces both judges agree on (same gender, ages within 10 years), on the mean of their ages
    #[arg(long)]
    pub both_judges: bool,
    /// also fit a direction for each of face-api's other expressions (neutral, sad, angry,
    /// fearful, disgusted, surprised; orthogonal to gender and age), which `--prompt` steers
    #[arg(long)]
    pub expressions: bool,
    /// with --expressions: keep gender, age and smile from this directions file (e.g. the
    /// shipped `models/random-face/directions.safetensors`) instead of fitting them again
    #[arg(long, requires = "expressions")]
    pub base: Option<PathBuf>,
}

fn analyzer() -> Result<FaceAnalyzer> {
    FaceAnalyzer::load_fetched(FaceAnalyzerConfig::default(), &Device::flex())
}

/// Opens a model through the one abstraction; `size` is random-face's output size (other models make their own).
pub fn open_model(model: &str, size: Option<usize>) -> Result<Box<dyn Model>> {
    edit_model::open(model, size, &Device::flex())
}

pub fn fit_directions(a: DirectionsArgs) -> Result<()> {
    if a.count < 100 {
        bail!("--count {}: label at least 100 faces (a few thousand for usable directions)", a.count);
    }
    if !(a.psi > 0.0 && a.psi <= 1.0) {
        bail!("--psi must be in (0, 1], got {}", a.psi);
    }
    let out = match &a.out {
        Some(p) => p.clone(),
        None => limner_models::directions_path(&a.model)?,
    };
    // a bad --base fails before the labelling
    let base = a.base.as_ref().map(|b| Directions::load(b)).transpose()?;
    // random-face is labelled at 256 px (box-downsampled from 1024), read as `describe` reads photos
    let g = open_model(&a.model, (a.model == limner_photoreal::MODEL_NAME).then_some(STEER_SIZE))?;
    let fa = analyzer()?;
    let seeds: Vec<u64> = (a.first_seed..a.first_seed + a.count as u64).collect();
    // labels so far (resumable: --labels keeps them after every batch)
    let mut l = match a.labels.as_ref().filter(|p| p.is_file()) {
        Some(p) => {
            let l: directions::Labelled = serde_json::from_slice(&std::fs::read(p)?).with_context(|| format!("cannot read labels {}", p.display()))?;
            println!("reusing {} labelled faces in {} (seeds from --first-seed on)", l.ws.len(), p.display());
            l
        }
        None => directions::Labelled { ws: vec![], attributes: vec![], seconds: 0.0, independent: vec![] },
    };
    if a.both_judges && l.independent.len() != l.ws.len() {
        bail!("the labels in {} were made without the independent judge: label again without them (another --labels file) for --both-judges", a.labels.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
    }
    if !a.both_judges {
        l.independent.clear();
    }
    l.ws.truncate(a.count);
    l.attributes.truncate(a.count);
    l.independent.truncate(a.count);
    let judge = if a.both_judges { Some(limner_faces::human::Judge::fetched(&burn::tensor::Device::flex())?) } else { None };
    let pb = bar(a.count as u64, "labelling");
    pb.set_position(l.ws.len() as u64);
    for chunk in seeds[l.ws.len()..].chunks(64) {
        let t0 = Instant::now();
        let more = directions::label(g.as_ref(), &fa, judge.as_ref(), chunk, a.psi, &mut |_| {});
        l.ws.extend(more.ws);
        l.attributes.extend(more.attributes);
        l.independent.extend(more.independent);
        l.seconds += t0.elapsed().as_secs_f64();
        pb.set_position(l.ws.len() as u64);
        if pb.is_hidden() {
            // not a terminal (a log file): a plain line per batch
            eprintln!("labelled {}/{} in {:.0} s", l.ws.len(), a.count, l.seconds);
        }
        if let Some(p) = &a.labels {
            limner_core::write_atomic(p, serde_json::to_string(&l)?.as_bytes())?;
        }
    }
    pb.finish_and_clear();
    let (labelled, secs) = (&l, l.seconds);
    let command = format!(
        "limner models directions --model {} --count {} --first-seed {} --psi {} --extreme {}{}{}",
        a.model,
        a.count,
        a.first_seed,
        a.psi,
        a.extreme,
        if a.both_judges { " --both-judges" } else { "" },
        if a.expressions { " --expressions" } else { "" }
    );
    let d = match base {
        Some(b) => b,
        None => directions::fit(labelled, a.extreme, &a.model, &command, a.psi, secs)?,
    };
    let d = if a.expressions { directions::fit_expressions(&d, labelled, a.extreme, &command)? } else { d };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    d.save(&out)?;
    println!("labelled {} faces in {secs:.0} s ({:.1} faces/s)", a.count, a.count as f64 / secs);
    print_directions(&d);
    println!("wrote {}", out.display());
    Ok(())
}

pub fn print_directions(d: &Directions) {
    for a in &d.meta.attributes {
        println!("  {:<7} + = {:<13} held-out accuracy {:.1}% (n={}), 1 unit = {:.3} in w, boundary {:.2}, score slope {:.2}/unit", a.name, a.positive, a.held_out_accuracy * 100.0, a.held_out, a.sigma, a.median, a.slope);
    }
    println!("  largest |cos| between directions: {:.2e}", d.meta.max_cosine);
}

/// The directions of a model (`--directions FILE` overrides), or an error that says how to make them.
pub fn load_directions(model: &str, file: Option<&Path>) -> Result<Directions> {
    if let Some(f) = file {
        return Directions::load(f);
    }
    match limner_models::directions_bytes(model)? {
        Some(b) => Directions::from_bytes(&b).with_context(|| format!("model `{model}`'s directions")),
        None => bail!("model `{model}` has no named directions yet: make them with `limner models directions --model {model}` (or pass --directions FILE)"),
    }
}

/// What `generate` passes over.
pub struct GenerateRequest<'a> {
    pub model: &'a str,
    pub seeds: &'a [u64],
    /// output size (random-face only; default 1024)
    pub size: Option<usize>,
    pub psi: f32,
    pub noise: f32,
    pub sliders: &'a [String],
    /// style rows the sliders move (`coarse`, `0-5`, ...)
    pub layers: Option<&'a str>,
    /// extra slider files (`limner models sliders --out`)
    pub slider_files: &'a [PathBuf],
    pub prompt: Option<&'a str>,
    pub directions: Option<&'a Path>,
    /// with a prompt: the layer groups age moves (`coarse,middle`, `all`)
    pub age_layers: &'a str,
    /// with a prompt asking an age: `off` or the identity cap ([`prompt::parse_identity_cap`])
    pub identity_cap: &'a str,
    /// with a prompt asking an age: Adam steps of the gradient refinement (0: off)
    pub refine_age: usize,
    /// with `refine_age`: the face-api age the refinement aims at (`None`: the band's default)
    pub refine_aim: Option<f32>,
    /// with `refine_age`: the head crop's scale ([`limner_edit::refine::RefineConfig::head_scale`])
    pub refine_head: &'a str,
    /// with `refine_age`: [`limner_edit::refine::RefineConfig::expression_hold`]
    pub refine_hold: f32,
    /// with `refine_age`: [`limner_edit::refine::RefineConfig::passes`]
    pub refine_passes: usize,
    /// with `refine_age`: [`limner_edit::refine::RefineConfig::gender_floor`]
    pub refine_gender: &'a str,
    /// with a prompt asking for a smile: the smile slider every seed starts from
    pub smile_floor: f32,
    pub out: Option<&'a Path>,
    pub grid: Option<&'a Path>,
    pub json: bool,
    /// the copy check (none when the model has no training index)
    pub guard: Option<&'a crate::copy_cmd::CopyGuard>,
}

/// Writes `dir/seedNNNN.png` with `dir/seedNNNN.json` (its recipe) per face, and the grid.
fn write_images(images: &[Image], recipes: &[Recipe], seeds: &[u64], out: Option<&Path>, grid: Option<&Path>, guard: Option<&crate::copy_cmd::CopyGuard>) -> Result<()> {
    let size = images[0].width;
    let rgb: Vec<Vec<u8>> = images.iter().map(|i| i.to_rgb8()).collect();
    // the copy check first: a refused near copy writes nothing
    let records = match guard {
        Some(g) => {
            let faces: Vec<limner_audit::Rgb8> = rgb.iter().map(|px| limner_audit::Rgb8::new(size, px.clone())).collect();
            let names: Vec<String> = seeds.iter().map(|&s| limner_data::imageio::seed_file_name(s).trim_end_matches(".png").to_string()).collect();
            Some(g.check(&faces, &names, out, crate::copy_cmd::OVERRIDE)?)
        }
        None => None,
    };
    // each face labelled with its own recipe (the JSON beside it); the grid with what they share
    let mut saved = save_seed_images(&rgb, size as u32, seeds, None, grid, &crate::label_cmd::grid_label(recipes)?)?;
    if let Some(dir) = out {
        for ((px, r), &s) in rgb.iter().zip(recipes).zip(seeds) {
            let png = dir.join(limner_data::imageio::seed_file_name(s));
            let i = saved.images.len();
            let prov = crate::copy_cmd::labelled(&r.provenance()?, records.as_ref().map(|v| &v[i]));
            limner_data::imageio::save_image_rgb(&png, size as u32, size as u32, px, &prov)?;
            r.save(&png.with_extension("json"))?;
            saved.images.push(png);
        }
    }
    crate::print_saved(&saved, size);
    if !saved.images.is_empty() {
        println!("(each with its recipe, seedNNNN.json: `limner render seedNNNN.json --out again.png`)");
    }
    Ok(())
}

/// A model's slider catalogue: its named directions (`--directions` overrides) and slider files.
pub fn catalogue(model: &str, directions: Option<&Path>, files: &[PathBuf]) -> Result<Catalogue> {
    let mut c = Catalogue::new(sliders::named_directions(model, directions)?);
    for f in files {
        c.files.push(SliderSet::load(f)?);
    }
    Ok(c)
}

/// `limner generate`: every model and every path (plain seeds, sliders, prompt) through the one
/// generator type; a recipe beside every image.
pub fn generate(r: GenerateRequest) -> Result<()> {
    // parse the prompt first: a bad prompt fails before anything loads
    let targets = r.prompt.map(prompt::parse).transpose()?;
    if let Some(size) = r.size.filter(|_| r.model == limner_photoreal::MODEL_NAME) {
        limner_photoreal::faces::check_size(size)?;
    }
    if targets.is_some() && !r.sliders.is_empty() {
        bail!("give either --prompt or --slider, not both (the prompt sets the sliders)");
    }
    let cat = catalogue(r.model, r.directions, r.slider_files)?;
    if targets.is_some() && cat.named.is_none() {
        bail!("model `{}` has no named directions yet: make them with `limner models directions --model {}` (or pass --directions FILE)", r.model, r.model);
    }
    let g = open_model(r.model, r.size)?;
    let g = g.as_ref();
    let Some(t) = targets else {
        let moves: Vec<_> = r.sliders.iter().map(|s| sliders::parse_move(&cat, g, s, r.layers)).collect::<Result<_>>()?;
        let mut ws = seed_ws(g, r.seeds, r.psi);
        ws.iter_mut().for_each(|w| apply_moves(w, &moves));
        let pb = bar(r.seeds.len() as u64, "generating");
        let mut images = vec![];
        for (wc, sc) in ws.chunks(16).zip(r.seeds.chunks(16)) {
            images.extend(g.render(wc, sc, r.noise));
            pb.inc(sc.len() as u64);
        }
        pb.finish_and_clear();
        let edits: Vec<Edit> = moves.iter().map(|(_, m)| Edit::Slider(m.clone())).collect();
        let recipes: Vec<Recipe> = ws
            .iter()
            .zip(r.seeds)
            .map(|(w, &s)| Recipe::new(g, w, NoiseSpec { seed: s, scale: r.noise }, Origin::Seed { seed: s, psi: r.psi }, edits.clone()))
            .collect();
        write_images(&images, &recipes, r.seeds, r.out, r.grid, r.guard)?;
        if r.model == limner_photoreal::MODEL_NAME {
            println!("licence: {}", limner_photoreal::LICENCE);
        }
        return Ok(());
    };
    let d = cat.named.as_ref().expect("checked above");
    if g.w_dim() != d.meta.w_dim {
        bail!("the directions are for w_dim {}, model `{}` has w_dim {}", d.meta.w_dim, r.model, g.w_dim());
    }
    if let Some(aim) = r.refine_aim {
        if r.refine_age == 0 {
            bail!("--refine-aim sets where --refine-age pulls a face's age: add --refine-age N (e.g. 10)");
        }
        if !(aim.is_finite() && (1.0..=100.0).contains(&aim)) {
            bail!("--refine-aim {aim}: give an age in years between 1 and 100");
        }
    }
    let refine_head = prompt::parse_off_or("--refine-head", r.refine_head, |f| (1.0..=3.0).contains(&f), "the head box's scale over the face's box, from 1 to 3 (e.g. 1.5)")?;
    let refine_gender = prompt::parse_off_or("--refine-gender", r.refine_gender, |p| (0.5..1.0).contains(&p), "a probability from 0.5 to under 1 (e.g. 0.97)")?;
    if !(1..=4).contains(&r.refine_passes) {
        bail!("--refine-passes {}: give 1 to 4 passes", r.refine_passes);
    }
    if !(r.refine_hold.is_finite() && (0.0..=100.0).contains(&r.refine_hold)) {
        bail!("--refine-hold {}: give a weight from 0 (off) to 100 (e.g. 1)", r.refine_hold);
    }
    // the floor is a slider value: inside the search's reach
    let reach = SteerConfig::default().reach;
    if !(r.smile_floor.is_finite() && (0.0..=reach).contains(&r.smile_floor)) {
        bail!("--smile-floor {}: give a smile slider between 0 and {reach} (sigma; 0 keeps each seed's own smile)", r.smile_floor);
    }
    let fa = analyzer()?;
    let cfg = SteerConfig {
        psi: r.psi,
        noise: r.noise,
        age_layers: prompt::parse_age_layers(r.age_layers)?,
        identity_cap: prompt::parse_identity_cap(r.identity_cap)?,
        refine: (r.refine_age > 0).then(|| limner_edit::refine::RefineConfig {
            steps: r.refine_age,
            age_aim: r.refine_aim,
            head_scale: refine_head,
            expression_hold: r.refine_hold,
            passes: r.refine_passes,
            gender_floor: refine_gender,
            ..Default::default()
        }),
        smile_floor: r.smile_floor,
        ..Default::default()
    };
    // face-api with identity descriptors: the identity cap and the report's identity distances
    let fa_id = FaceAnalyzer::load_fetched(FaceAnalyzerConfig { descriptors: true, ..Default::default() }, &Device::flex())?;
    let pb = bar(0, "steering");
    let t0 = Instant::now();
    let steered = prompt::steer(g, d, &fa, Some(&fa_id), r.seeds, &t, &cfg, &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    let images: Vec<Image> = steered.iter().map(|s| s.image.clone()).collect();
    // describe's pipeline, with face-api's identity descriptors (is the steered face the same person?)
    let judged = prompt::judge(&fa_id, &t, &images);
    // the unsteered faces, for the mouth-geometry comparison
    let before: Vec<Image> = steered.iter().map(|s| s.initial.clone()).collect();
    let judged_before = prompt::judge(&fa_id, &t, &before);
    // face-api's identity distance from each steered face to its unsteered self (< 0.6: the same person)
    let identity: Vec<Option<f32>> = judged
        .iter()
        .zip(&judged_before)
        .map(|(a, b)| {
            let (a, b) = (a.face.as_ref()?.descriptor.as_ref()?, b.face.as_ref()?.descriptor.as_ref()?);
            Some(a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt())
        })
        .collect();
    let same_person = identity.iter().filter(|d| d.is_some_and(|d| d < limner_faces::recognition::SAME_PERSON)).count();
    let identity_compared = identity.iter().filter(|d| d.is_some()).count();
    // the independent judge (human-models), on the steered and on the unsteered faces
    let independent = limner_faces::human::Judge::fetched(&burn::tensor::Device::flex())?;
    let ind = prompt::judge_independent(&independent, &t, &images);
    let ind_before = prompt::judge_independent(&independent, &t, &before);
    let ind_met = ind.iter().filter(|r| r.as_ref().is_some_and(|r| r.1)).count();
    let ind_met_before = ind_before.iter().filter(|r| r.as_ref().is_some_and(|r| r.1)).count();
    // a seed is done only when both readings agree it is as asked
    let done: Vec<bool> = judged.iter().zip(&ind).map(|(j, r)| j.met && r.as_ref().is_some_and(|r| r.1)).collect();
    let n_done = done.iter().filter(|d| **d).count();
    let secs = t0.elapsed().as_secs_f64();
    let recipes: Vec<Recipe> = steered
        .iter()
        .map(|s| {
            let ws = &s.w;
            let edit = Edit::Prompt { prompt: r.prompt.unwrap_or_default().to_string(), sliders: s.sliders.clone() };
            Recipe::new(g, ws, NoiseSpec { seed: s.seed, scale: r.noise }, Origin::Seed { seed: s.seed, psi: r.psi }, vec![edit])
        })
        .collect();
    write_images(&images, &recipes, r.seeds, r.out, r.grid, r.guard)?;
    let met = judged.iter().filter(|j| j.met).count();
    let found = judged.iter().filter(|j| j.face.is_some()).count();
    let steer_met = steered.iter().filter(|s| s.steering_met).count();
    let mouth: Vec<(f32, f32)> = judged_before.iter().zip(&judged).filter_map(|(b, a)| Some((b.mouth_smile?, a.mouth_smile?))).collect();
    let mouth_up = mouth.iter().filter(|(b, a)| a > b).count();
    if r.json {
        let rows: Vec<serde_json::Value> = steered
            .iter()
            .zip(&judged)
            .zip(&judged_before)
            .zip(ind.iter().zip(&ind_before).zip(done.iter().zip(&identity)))
            .map(|(((s, j), b), ((r, rb), (d, id)))| {
                let reading = |r: &Option<(limner_faces::human::Reading, bool)>| {
                    r.as_ref().map(|(r, met)| {
                        serde_json::json!({ "description": r.sentence(), "met": met, "male": r.male, "age": r.age, "age_human": r.age_human, "emotion": r.top_emotion().0, "happy": r.emotion("happy") })
                    })
                };
                serde_json::json!({
                    "done": d, "independent": reading(r), "independent_before": reading(rb), "identity_distance": id,
                    "met_independent": r.as_ref().is_some_and(|r| r.1), "met_independent_before": rb.as_ref().is_some_and(|r| r.1),
                    "seed": s.seed, "sliders": s.sliders, "age_layers": s.age_layers, "refined": s.refined, "steering_reading": s.steering.sentence(), "steering_met": s.steering_met,
                    "description": j.description, "met": j.met, "age": j.face.as_ref().map(|f| f.age),
                    "male_probability": j.face.as_ref().map(|f| f.male_probability),
                    "happy": j.face.as_ref().map(|f| f.expressions[1]),
                    "mouth_smile": j.mouth_smile, "mouth_smile_before": b.mouth_smile, "met_before": b.met, "description_before": b.description, "male_probability_before": b.face.as_ref().map(|f| f.male_probability),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "prompt": r.prompt, "targets": t, "seeds": rows, "met": met, "faces_found": found, "steering_met": steer_met,
                "done": n_done, "met_independent": ind_met, "met_independent_before": ind_met_before,
                "same_person": same_person, "identity_compared": identity_compared,
                "met_before": judged_before.iter().filter(|j| j.met).count(), "independent_models": limner_faces::human::LICENCE,
                "mouth_smile_increased": mouth_up, "mouth_smile_compared": mouth.len(), "seconds": secs,
            }))?
        );
        return Ok(());
    }
    println!("prompt: {:?} → {}", r.prompt.unwrap_or_default(), serde_json::to_string(&t)?);
    for ((s, j), (r, d)) in steered.iter().zip(&judged).zip(ind.iter().zip(&done)) {
        let sl: Vec<String> = s.sliders.iter().filter(|(_, v)| *v != 0.0).map(|(n, v)| format!("{n}={v:+.1}")).collect();
        let desc = j.description.clone().unwrap_or_else(|| "no face found by the detector".into());
        let asked = |m: bool| if m { "as asked" } else { "NOT as asked" };
        let second = match r {
            Some((r, m)) => format!("{} [{}]", r.sentence(), asked(*m)),
            None => "no face found by BlazeFace".into(),
        };
        println!(
            "seed {:>5}: {} — face-api: {} [{}]; human-models: {second}; sliders {}",
            s.seed,
            if *d { "done" } else { "NOT done" },
            desc,
            asked(j.met),
            if sl.is_empty() { "none".into() } else { sl.join(" ") }
        );
    }
    let n = r.seeds.len();
    println!("{n_done}/{n} done: as asked by both readings");
    println!("the same person as unsteered (face-api identity distance < {}): {same_person}/{identity_compared} compared", limner_faces::recognition::SAME_PERSON);
    println!(
        "independent judge (human-models, never used to steer): {ind_met}/{n} as asked; the same seeds unsteered: {ind_met_before}/{n}"
    );
    println!(
        "face-api (limner's own read-back): {met}/{n} described back as asked (describe pipeline at {}px: detector found a face in {found}; unsteered {}/{n}); the steering reading agreed on {steer_met}; {:.0} s",
        prompt::JUDGE_SIZE,
        judged_before.iter().filter(|j| j.met).count(),
        secs
    );
    if t.smiling.is_some() {
        println!(
            "mouth geometry (68 landmarks, independent of the expression net): corners lifted/wider than the unsteered face on {mouth_up}/{} seeds",
            mouth.len()
        );
    }
    if t.male.is_some() || t.age.is_some() {
        println!("note: face-api's read-back uses the age/gender network that steered (through a different crop); the independent judge is FaceRes (human-models), which limner never steers with");
    }
    Ok(())
}
