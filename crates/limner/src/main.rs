//! The `limner` command line: argument parsing and progress bars over the library crates.

mod art_cmd;
#[cfg(feature = "c2pa")]
mod c2pa_cmd;
mod audit_cmd;
mod copy_cmd;
mod edit_cmd;
mod faces_cmd;
mod label_cmd;
mod nets_cmd;
mod photoreal_cmd;
mod steer_cmd;
mod studio_cmd;
mod style_cmd;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use limner_core::progress::{bar, bar_with_template};
use limner_core::Precision;
use limner_data::imageio::SavedImages;
use limner_gan::augment::DiffAugment;
use limner_gan::config::{DiscriminatorConfig, GeneratorConfig};
use limner_gan::generate::{parse_seeds, save_generator, GeneratorInfo};
use limner_gan::run::{run_training, RunEnd, RunOptions};
use limner_gan::setup;
use limner_gan::train::{DataSource, TrainConfig};

#[derive(Parser)]
#[command(name = "limner", version, about = "limner: an AI portrait studio. Train portrait GANs on a CPU and make new faces.")]
struct Cli {
    /// worker threads for the tensor kernels (default: all cores)
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// your name, written as the creator (dc:creator) in every image this run makes (default: $LIMNER_CREATOR)
    #[arg(long, global = true, value_name = "NAME")]
    creator: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and inspect training datasets
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Train a StyleGAN2-ADA portrait GAN (resumable)
    Train(TrainArgs),
    /// Generate new faces from seeds
    Generate(GenerateArgs),
    /// Import, export and list models
    #[command(subcommand)]
    Models(ModelsCmd),
    /// FID-like score and KID between two image sets (.limner datasets, image folders or models)
    Score(nets_cmd::ScoreArgs),
    /// Classify pictures with nsfwjs' classifier: Drawing, Hentai, Neutral, Porn, Sexy probabilities (needs `limner models fetch`)
    Nsfw(nets_cmd::NsfwArgs),
    /// Style transfer by image optimisation on InceptionV3 (Gatys et al.; needs `limner models fetch`)
    Gatys(art_cmd::GatysArgs),
    /// DeepDream on a photo or a generated face (InceptionV3; needs `limner models fetch`)
    Dream(art_cmd::DreamArgs),
    /// Describe the faces in images: box, 68 landmarks, apparent age, gender, expression (face-api's models)
    Describe(faces_cmd::DescribeArgs),
    /// Restyle a portrait in the look of a painting or a built-in style (`--list` shows them)
    Style(style_cmd::StyleArgs),
    /// The web studio: meet new faces, breed and slide them, project your photo, style and dream, animate, and curate a gallery (open the printed address)
    Studio(studio_cmd::StudioArgs),
    /// Show the provenance label limner wrote into an image (source type, recipe, model sha256)
    Inspect(label_cmd::InspectArgs),
    /// Make an image again from its recipe (the NAME.json written beside every image)
    Render(edit_cmd::RenderArgs),
    /// Crossbreed faces by layer group (coarse / middle / fine) with a seeded mutation
    Breed(edit_cmd::BreedArgs),
    /// Animate: morph through kept faces and seeds, or sweep a slider (GIF or APNG)
    Animate(edit_cmd::AnimateArgs),
    /// Project a photo's face into a model (align, then optimise w and w+), to breed, slide and animate it
    Project(edit_cmd::ProjectArgs),
    /// Sign limner images with a C2PA manifest (Content Credentials) using your certificate
    #[cfg(feature = "c2pa")]
    Sign(c2pa_cmd::SignArgs),
    /// Make a throw-away test certificate for C2PA signing (trusted by nobody)
    #[cfg(feature = "c2pa")]
    C2paCert(c2pa_cmd::CertArgs),
    /// Memorization audit: does a model make new faces or copies of its training images? (report.md, report.json, pictures)
    Audit(audit_cmd::AuditArgs),
}

#[derive(Subcommand)]
enum DatasetCmd {
    /// Decode, crop, resize and deduplicate a folder or .zip of photos into a .limner file
    Build {
        /// a folder (searched recursively) or a .zip of JPEG/PNG/WebP images
        input: PathBuf,
        /// output resolution (a power of two, 8 to 1024)
        #[arg(long, default_value_t = 64)]
        res: u32,
        #[arg(long)]
        out: PathBuf,
        /// skip files whose name matches this glob (repeatable), e.g. '*0.jpg'
        #[arg(long)]
        exclude: Vec<String>,
        /// near-duplicate threshold: Hamming distance of perceptual hashes (0 = exact only)
        #[arg(long, default_value_t = 4)]
        near_dup: u32,
        /// frame each image on its face, FFHQ-style (eyes level, same place); images without a face are skipped (needs `limner models fetch --only face-api`)
        #[arg(long)]
        align: bool,
        /// face detector for --align: tiny (fast) or ssd (more accurate, slower)
        #[arg(long, default_value = "tiny")]
        detector: String,
        /// tiny face detector input side for --align (a multiple of 32)
        #[arg(long, default_value_t = 416)]
        detector_size: usize,
    },
    /// Show a packed dataset's header and verify its checksum
    Info { path: PathBuf },
    /// Render a folder of seeded faces from a pretrained model (random-face), with a manifest (resumable)
    Distill(photoreal_cmd::DistillArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// packed dataset from `limner dataset build`
    #[arg(long)]
    data: PathBuf,
    /// run folder (checkpoints, grids, metrics)
    #[arg(long)]
    out: PathBuf,
    /// continue from OUT/latest.safetensors (exactly where it stopped)
    #[arg(long)]
    resume: bool,
    /// total length of training in thousands of images
    #[arg(long, default_value_t = 1000.0)]
    kimg: f64,
    /// snapshot (checkpoint, grid, metrics) every this many kimg
    #[arg(long, default_value_t = 2.0)]
    snap_kimg: f64,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// G's Adam learning rate (default 0.0025); given with --resume, it changes the run's
    /// rate from here on (e.g. lower it for the last kimg of a transfer)
    #[arg(long)]
    g_lr: Option<f64>,
    /// D's Adam learning rate (default 0.0025); with --resume, as --g-lr
    #[arg(long)]
    d_lr: Option<f64>,
    /// EMA half-life in kimg
    #[arg(long, default_value_t = 10.0)]
    ema_kimg: f64,
    /// EMA ramp-up: the half-life is at most this fraction of the images seen (0 = off;
    /// default 0.05, off with --init as the official code does when transferring)
    #[arg(long)]
    ema_rampup: Option<f64>,
    /// R1 weight (0 turns it off)
    #[arg(long, default_value_t = 0.05)]
    r1_gamma: f64,
    /// what D sees: `diffaugment` (DiffAugment, the default), `ada` (adaptive discriminator
    /// augmentation: StyleGAN2-ADA's pipeline with p tuned from D's outputs on reals) or `none`
    #[arg(long, default_value = "diffaugment", value_parser = ["diffaugment", "ada", "none"])]
    aug: String,
    /// DiffAugment policy (--aug diffaugment): any of color,translation,cutout, or none
    /// [default: color,translation,cutout]
    #[arg(long)]
    diffaugment: Option<String>,
    /// ADA's pipeline (--aug ada): bgc (the official default), bg, blit, geom or color
    #[arg(long, default_value = "bgc")]
    augpipe: String,
    /// ADA's target for E[sign(D(real))]: p rises while D is surer than this on the reals
    #[arg(long, default_value_t = 0.6)]
    ada_target: f64,
    /// ADA's speed: p can move by 1 in this many kimg [default: 500, 100 with --init]
    #[arg(long)]
    ada_kimg: Option<f64>,
    /// ADA adjusts p every this many minibatches
    #[arg(long, default_value_t = 4)]
    ada_interval: u64,
    /// ADA's p at the start of the run
    #[arg(long, default_value_t = 0.0)]
    augment_p: f64,
    /// transfer learning: start G, its EMA and (where the source has one) D from a pretrained
    /// model: `default`, a run folder, a checkpoint or generator file, or an imported model's
    /// name; the run takes its architecture (--z-dim, --channel-* … are ignored)
    #[arg(long)]
    init: Option<String>,
    /// with --init: start D from this file (`limner models import PKL --discriminator FILE`)
    #[arg(long, requires = "init")]
    init_discriminator: Option<PathBuf>,
    /// FreezeD: keep the first N discriminator blocks (highest resolutions) as they start
    #[arg(long, default_value_t = 0)]
    freeze_d: usize,
    /// with --init: weight of the cross-domain consistency loss (CDC, Ojha et al. 2021), which
    /// keeps the batch's pairwise feature similarities close to the source model's so the
    /// adapted model keeps its variety (0 = off)
    #[arg(long, default_value_t = 0.0)]
    cdc: f64,
    /// keep G's first N synthesis blocks (b4, b8, ...: layout, pose, shape) as they start
    #[arg(long, default_value_t = 0)]
    freeze_g: usize,
    /// keep G's mapping network (and w_avg) as it starts
    #[arg(long)]
    freeze_mapping: bool,
    #[arg(long, default_value_t = 0.9)]
    style_mixing: f64,
    #[arg(long)]
    no_xflip: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 128)]
    z_dim: usize,
    #[arg(long, default_value_t = 128)]
    w_dim: usize,
    #[arg(long, default_value_t = 4)]
    mapping_layers: usize,
    /// channels at resolution R are min(channel_base / R, channel_max)
    #[arg(long, default_value_t = 1024)]
    channel_base: usize,
    #[arg(long, default_value_t = 128)]
    channel_max: usize,
    /// log the FID-like score (InceptionV3 mixed5; needs `limner models fetch`) every this many kimg
    #[arg(long)]
    score_every: Option<f64>,
    /// images per side for --score-every
    #[arg(long, default_value_t = 500)]
    score_n: usize,
    /// start G (and its EMA) from this generator file instead of random weights (a new run
    /// from a committed EMA generator; D and the optimiser start fresh)
    #[arg(long)]
    init_generator: Option<PathBuf>,
    /// paired distillation: weight of the mean absolute pixel distance between G(z_seed) and the
    /// teacher's image of the same seed (needs a dataset from `limner dataset distill` and
    /// --teacher-mapping); 0 = plain GAN training
    #[arg(long, default_value_t = 0.0)]
    distill: f64,
    /// copy this teacher's mapping network (`random-face`) into G and keep it frozen, so G lives
    /// in the teacher's w space (sets --z-dim 512 --w-dim 512 --mapping-layers 8)
    #[arg(long)]
    teacher_mapping: Option<String>,
    /// noise inputs off: hold every noise strength at 0 (a deterministic generator); with
    /// --resume it switches an existing run's noise off from here on (one-way)
    #[arg(long)]
    noise_off: bool,
    /// weight of the adversarial loss in the G step (default 1); 0 with --distill: no
    /// discriminator, regression onto the teacher's images only. Given with --resume, it
    /// changes the run's weight from here on
    #[arg(long)]
    adversarial: Option<f64>,
    /// paired distillation: weight of an LPIPS-style distance on InceptionV3 features to the
    /// teacher's image, beside the pixel L1 (needs `limner models fetch --only inception-v3`).
    /// Given with --resume, it changes the run's weight from here on
    #[arg(long)]
    perceptual: Option<f64>,
    /// Adam's beta1 for G and D (StyleGAN2: 0)
    #[arg(long, default_value_t = 0.0)]
    beta1: f64,
    /// images of the same kind the model never trains on (a folder or a .limner dataset): they
    /// calibrate the copy thresholds of the training index written at the end (default:
    /// leave-one-out on the training images)
    #[arg(long)]
    heldout: Option<String>,
}

#[derive(Args)]
struct GenerateArgs {
    /// `default` (the embedded model), `random-face` (1024px photoreal, after `limner models fetch --only random-face`), a generator or checkpoint (.safetensors), a run folder, or a name from `limner models list`
    #[arg(long, default_value = "default")]
    model: String,
    /// output size (random-face only: 1024, or 512, 256, ... box-downsampled from 1024)
    #[arg(long)]
    size: Option<usize>,
    /// seeds, e.g. 0-63 or 1,5,9
    #[arg(long, default_value = "0-15")]
    seeds: String,
    /// truncation psi ("temperature"): 1 = full variety, 0 = the average face
    #[arg(long, default_value_t = 0.7)]
    psi: f32,
    /// per-pixel noise scale (0 = none)
    #[arg(long, default_value_t = 1.0)]
    noise: f32,
    /// folder for one PNG per seed
    #[arg(long)]
    out: Option<PathBuf>,
    /// also write all images as one grid PNG
    #[arg(long)]
    grid: Option<PathBuf>,
    /// move along a slider, in standard deviations (repeatable): a named one (age=+1.5, see
    /// `limner models list`) or an unlabelled one: sefa:0=+3, sefa:coarse:0=+3, ganspace:2=-1
    #[arg(long)]
    slider: Vec<String>,
    /// style layers the sliders move: all, coarse, middle, fine, a range 0-5 (unlabelled
    /// sliders are computed for this selection)
    #[arg(long)]
    layers: Option<String>,
    /// slider files made by `limner models sliders --out` (repeatable)
    #[arg(long)]
    sliders: Vec<PathBuf>,
    /// steer each seed until the face models read it as described, e.g. "a smiling old man" (gender, age, smiling or another expression)
    #[arg(long)]
    prompt: Option<String>,
    /// named directions file (default: the model's own, from `limner models directions`)
    #[arg(long)]
    directions: Option<PathBuf>,
    /// with --prompt: the layer groups the age direction moves (coarse, middle, fine, comma
    /// separated, or all); the fine layers left alone keep the unsteered face's skin and colour
    #[arg(long, default_value = "all")]
    age_layers: String,
    /// with --prompt asking an age: the largest face-api identity distance a steered face may
    /// keep from its unsteered self (faces past it are retried with age in fewer layers and
    /// smaller steps), or `off`
    #[arg(long, default_value = "off")]
    identity_cap: String,
    /// with --prompt asking an age: refine each seed the linear search left another person
    /// (face-api identity distance ≥ 0.55) by gradient for this many steps (0: off)
    #[arg(long, default_value_t = 0)]
    refine_age: usize,
    /// with --refine-age: the face-api age (years) the refinement pulls an older or younger
    /// face to, met from 3 years short of it (default: 3 years inside the asked band's
    /// steering range, 68 for "old", met from 65)
    #[arg(long, value_name = "YEARS")]
    refine_aim: Option<f32>,
    /// with --refine-age: also read face-api's age (and gender) on the face's box enlarged by
    /// SCALE about its centre (hair and the head's outline in view) and hold those readings
    /// to the targets too, or `off`
    #[arg(long, value_name = "SCALE", default_value = "1.5")]
    refine_head: String,
    /// with --refine-age and a smile (or another expression) asked: weight of a term keeping
    /// face-api's log-odds of it where the search left it while the person is restored (0: off)
    #[arg(long, value_name = "WEIGHT", default_value_t = 1.0)]
    refine_hold: f32,
    /// with --refine-age: refinement passes per seed; a further pass runs where face-api,
    /// finding the refined face again, still reads another person (identity distance ≥ 0.6),
    /// and is kept only where that distance comes down
    #[arg(long, value_name = "N", default_value_t = 2)]
    refine_passes: usize,
    /// with --refine-age and a gender asked: hold face-api's probability of it at P or more on
    /// every crop the refinement reads, by its log-odds (which do not saturate), or `off`
    #[arg(long, value_name = "P", default_value = "0.97")]
    refine_gender: String,
    /// with --prompt asking for a smile: the smile slider (sigma) every seed starts from before
    /// the search (face-api reads most portraits happy already; 0: the seed's own smile)
    #[arg(long, value_name = "SIGMA", default_value_t = limner_edit::prompt::SMILE_FLOOR)]
    smile_floor: f32,
    /// with --prompt: print the per-seed report as JSON
    #[arg(long)]
    json: bool,
    /// the training index for the copy check (default: training-index.safetensors in the model's folder, if there)
    #[arg(long, value_name = "FILE")]
    copy_index: Option<PathBuf>,
    /// write images even when they are near copies of training images (recorded in each image's label)
    #[arg(long)]
    allow_near_copy: bool,
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Import an official StyleGAN2-ADA generator: a network snapshot pickle
    /// (network-snapshot-*.pkl from stylegan2-ada-pytorch, read without running anything in
    /// it), or a state dict in safetensors under the PyTorch names (--stylegan2)
    Import {
        /// network-snapshot-*.pkl written by stylegan2-ada-pytorch's training loop
        #[arg(value_name = "SNAPSHOT.pkl", required_unless_present = "stylegan2", conflicts_with = "stylegan2")]
        pickle: Option<PathBuf>,
        #[arg(long, value_name = "G.safetensors")]
        stylegan2: Option<PathBuf>,
        /// with --stylegan2: config JSON (z_dim, w_dim, img_resolution, mapping_layers, channel_base, channel_max); inferred from the shapes if omitted
        #[arg(long, requires = "stylegan2")]
        config: Option<PathBuf>,
        /// which generator of a snapshot: G_ema (the one to generate with) or G (the raw training generator)
        #[arg(long, default_value = "G_ema", value_parser = ["G_ema", "G"])]
        network: String,
        /// a model name (saved in the models folder, then `--model NAME` works everywhere) or a path ending in .safetensors
        #[arg(long)]
        out: String,
        /// with a snapshot: also write its discriminator (D) here, official names (.safetensors)
        #[arg(long, value_name = "D.safetensors", conflicts_with = "stylegan2")]
        discriminator: Option<PathBuf>,
        /// replace an existing model file
        #[arg(long)]
        force: bool,
    },
    /// List the embedded default model and imported ones
    List,
    /// Download (or import with --from) and convert the pretrained feature networks
    Fetch(nets_cmd::FetchArgs),
    /// Fit named attribute directions (gender, age, smile) for a model: label generated faces with face-api's networks, fit, orthogonalise
    Directions(steer_cmd::DirectionsArgs),
    /// Find unlabelled sliders: SeFa (closed form, from the style layers' weights) or GANSpace (PCA of sampled w's)
    Sliders(edit_cmd::SlidersArgs),
    /// Train a model's projection encoder (a first guess of w from a face, for `limner project`) on pairs it renders itself; resumable
    Encoder(edit_cmd::EncoderArgs),
    /// Freeze a training run's EMA generator into a compact half-precision file, with a
    /// sample grid and reference images (this is how models/default is made)
    Freeze {
        /// run folder or checkpoint
        #[arg(long)]
        run: PathBuf,
        /// output folder (generator.safetensors, grid.png, reference/)
        #[arg(long)]
        out: PathBuf,
        /// provenance recorded in the file (data, command)
        #[arg(long)]
        notes: Option<String>,
        /// images of the same kind the model never trained on, to calibrate the training
        /// index's copy thresholds when the run has no index yet (default: leave-one-out)
        #[arg(long)]
        heldout: Option<String>,
    },
    /// Write the model card (MODEL_CARD.md's generated part, model-card.json) and the training
    /// index for a model trained before cards existed or elsewhere (this is how models/default's is made)
    Card {
        /// the model's folder (the card goes here; a hand-written MODEL_CARD.md is kept around the generated part)
        #[arg(long)]
        dir: PathBuf,
        /// the generator file (default: DIR/generator.safetensors)
        #[arg(long)]
        weights: Option<PathBuf>,
        /// the `.limner` dataset the model was trained on
        #[arg(long)]
        data: PathBuf,
        /// the command that trained it, as recorded on the card
        #[arg(long)]
        command: String,
        /// how many thousand images it saw
        #[arg(long)]
        kimg: Option<f64>,
        /// held-out images of the same kind to calibrate a new training index (default: leave-one-out)
        #[arg(long)]
        heldout: Option<String>,
    },
    /// Export a limner generator under the official StyleGAN2-ADA state-dict names
    Export {
        #[arg(long, default_value = "default")]
        model: String,
        /// export in the official StyleGAN2-ADA naming (the only format for now)
        #[arg(long)]
        stylegan2: bool,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    limner_kernels::keep_freed_memory();
    let cli = Cli::parse();
    label_cmd::set_creator(cli.creator.clone());
    #[cfg(feature = "c2pa")]
    if let Err(e) = c2pa_cmd::init_from_env() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
            eprintln!("warning: could not set {n} threads: {e}");
        }
    }
    if let Err(e) = run(cli.command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Dataset(DatasetCmd::Build { input, res, out, exclude, near_dup, align, detector, detector_size }) => {
            dataset_build(&input, res, out, exclude, near_dup, align.then_some((detector, detector_size)))
        }
        Command::Describe(a) => faces_cmd::describe(a),
        Command::Studio(a) => studio_cmd::studio(a),
        Command::Dataset(DatasetCmd::Distill(a)) => photoreal_cmd::distill(a),
        Command::Dataset(DatasetCmd::Info { path }) => {
            let ds = limner_data::PackedDataset::open(&path)?;
            ds.verify()?;
            println!("{}: {} images, {}px, checksum ok", path.display(), ds.len(), ds.res());
            println!("source: {}\nbuilt by: {}\nmean RGB: {:?}", ds.meta().source, ds.meta().created_by, ds.meta().mean_rgb);
            Ok(())
        }
        Command::Train(a) => train(a),
        Command::Generate(a) => generate(a),
        Command::Models(ModelsCmd::Import { pickle: Some(src), network, out, discriminator, force, .. }) => {
            let device = Device::flex();
            let m = limner_models::import_pickle(&src, &network, &out, discriminator.as_deref(), force, &device)?;
            let c = &m.config;
            println!(
                "imported {network} of {}: {}px, z {} / w {}, {} mapping layers, channel_base {} / channel_max {}{}, {} parameters -> {}",
                src.display(),
                c.img_resolution,
                c.z_dim,
                c.w_dim,
                c.mapping_layers,
                c.channel_base,
                c.channel_max,
                c.conv_clamp.map(|x| format!(", conv_clamp {x}")).unwrap_or_default(),
                m.params,
                m.file.display()
            );
            println!("{}", m.notes);
            if let Some(d) = &discriminator {
                println!("discriminator (D) -> {}", d.display());
            }
            Ok(())
        }
        Command::Models(ModelsCmd::Import { pickle: None, stylegan2, config, out, force, .. }) => {
            let device = Device::flex();
            let stylegan2 = stylegan2.context("give a snapshot .pkl or --stylegan2 G.safetensors")?;
            let out = limner_models::import_target(&out)?;
            if out.exists() && !force {
                bail!("{} already exists: choose another --out, or pass --force to replace it", out.display());
            }
            let cfg = config.as_deref().map(limner_gan::import::read_config_json).transpose()?.map(|c| c.0);
            let mut g = limner_gan::import::load_generator(&stylegan2, cfg.as_ref(), &device)?;
            let info = GeneratorInfo { notes: Some(format!("imported from {}", stylegan2.display())), ..Default::default() };
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            save_generator(&out, &mut g, &info, Precision::F32)?;
            println!("imported {}px generator ({} ws) -> {}", g.config.img_resolution, g.num_ws(), out.display());
            Ok(())
        }
        Command::Score(a) => nets_cmd::score(a),
        Command::Nsfw(a) => nets_cmd::nsfw(a),
        Command::Gatys(a) => art_cmd::gatys(&a),
        Command::Dream(a) => art_cmd::dream(&a),
        Command::Style(a) => style_cmd::style(a),
        Command::Inspect(a) => label_cmd::inspect(a),
        Command::Models(ModelsCmd::Fetch(a)) => nets_cmd::models_fetch(a),
        Command::Models(ModelsCmd::Directions(a)) => steer_cmd::fit_directions(a),
        Command::Models(ModelsCmd::Sliders(a)) => edit_cmd::sliders(a),
        Command::Models(ModelsCmd::Encoder(a)) => edit_cmd::encoder(a),
        Command::Render(a) => edit_cmd::render(a),
        Command::Breed(a) => edit_cmd::breed(a),
        Command::Animate(a) => edit_cmd::animate(a),
        Command::Project(a) => edit_cmd::project(a),
        #[cfg(feature = "c2pa")]
        Command::Sign(a) => c2pa_cmd::sign(a),
        #[cfg(feature = "c2pa")]
        Command::C2paCert(a) => c2pa_cmd::cert(a),
        Command::Audit(a) => audit_cmd::run(a),
        Command::Models(ModelsCmd::List) => {
            let device = Device::flex();
            println!("{:<16} {:>6} {:>7} {:>7} {:>9}  {:<40} licence", "name", "res", "mapping", "params", "kimg", "location");
            for m in limner_models::list(&device) {
                let res = m.resolution.map(|r| format!("{r}px")).unwrap_or_else(|| "?".into());
                let kimg = m.kimg.map(|k| format!("{k:.1}")).unwrap_or_else(|| "-".into());
                let mapping = m.mapping_layers.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                let params = m.params.map(|p| format!("{:.2}M", p as f64 / 1e6)).unwrap_or_else(|| "-".into());
                println!("{:<16} {:>6} {:>7} {:>7} {:>9}  {:<40} {}", m.name, res, mapping, params, kimg, m.location, m.licence);
                if let Ok(d) = steer_cmd::load_directions(&m.name, None) {
                    let names: Vec<String> = d.meta.attributes.iter().map(|a| format!("{} ({:.0}%)", a.name, a.held_out_accuracy * 100.0)).collect();
                    println!("{:<16} sliders: {} [held-out accuracy; from {} labelled faces]", "", names.join(", "), d.meta.labelled);
                }
            }
            println!("(imported models live in {})", limner_models::models_dir().display());
            Ok(())
        }
        Command::Models(ModelsCmd::Freeze { run, out, notes, heldout }) => freeze(&run, &out, notes, heldout.as_deref()),
        Command::Models(ModelsCmd::Card { dir, weights, data, command, kimg, heldout }) => {
            let weights = weights.unwrap_or_else(|| dir.join("generator.safetensors"));
            let device = Device::flex();
            let mut pb: Option<indicatif::ProgressBar> = None;
            let c = limner_audit::card::card_for_model(&dir, &weights, &data, &command, kimg, heldout.as_deref(), &device, &mut |n| eprintln!("note: {n}"), &mut |done, total| {
                pb.get_or_insert_with(|| bar(total as u64, "training index: embedding the training images")).set_position(done as u64);
            })?;
            if let Some(b) = pb {
                b.finish_and_clear();
            }
            print_card(&dir, &c);
            Ok(())
        }
        Command::Models(ModelsCmd::Export { model, stylegan2, out }) => {
            if !stylegan2 {
                bail!("choose an export format: --stylegan2");
            }
            let device = Device::flex();
            let (mut g, info) = limner_models::load(Some(&model), &device)?;
            let sd = limner_gan::params::state_dict(&mut g, false);
            limner_core::write_safetensors(&out, &sd, &Default::default(), Precision::F32)?;
            println!("exported {} tensors (official StyleGAN2-ADA names) -> {}", sd.len(), out.display());
            if let Some(c) = info.config {
                println!("config: {}", serde_json::to_string(&c)?);
            }
            Ok(())
        }
    }
}

fn dataset_build(input: &Path, res: u32, out: PathBuf, exclude: Vec<String>, near_dup: u32, align: Option<(String, usize)>) -> Result<()> {
    let opts = limner_data::BuildOptions { res, out: out.clone(), exclude, near_dup_threshold: near_dup, align: align.is_some(), ..Default::default() };
    let framer = align.as_ref().map(|(d, s)| faces_cmd::face_framer(d, *s)).transpose()?;
    let pb = bar(0, if align.is_some() { "aligning" } else { "decoding" });
    let report = limner_data::build_dataset_with(input, &opts, framer.as_deref(), &|done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    let report = report?;
    println!("{report}");
    println!("wrote {}", out.display());
    Ok(())
}

/// Adapts a packed dataset to the trainer.
struct Packed(limner_data::PackedDataset);

impl DataSource for Packed {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn resolution(&self) -> usize {
        self.0.res() as usize
    }
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        self.0.fill_batch_nchw_flip(indices, flips, out)
    }
    fn pair_seed(&self, i: usize) -> Option<u64> {
        limner_photoreal::distill::seed_of_file(&self.0.names()[i])
    }
}

/// The step's losses for the progress line: G and D, then the distillation terms in use.
fn losses(s: &limner_gan::train::StepStats) -> String {
    let mut out = format!("G {:.3}  D {:.3}", s.loss_g, s.loss_d);
    if let Some(l1) = s.distill {
        out += &format!("  L1 {l1:.4}");
    }
    if let Some(p) = s.perceptual {
        out += &format!("  perceptual {p:.4}");
    }
    if let Some(p) = s.augment_p {
        out += &format!("  p {p:.3}");
    }
    if let Some(c) = s.cdc {
        out += &format!("  CDC {c:.4}");
    }
    out
}

fn train(a: TrainArgs) -> Result<()> {
    let device = Device::flex();
    let data = Packed(limner_data::PackedDataset::open(&a.data)?);
    let ckpt = setup::checkpoint_path(&a.out, a.resume)?;
    let note = &mut |line: String| eprintln!("{line}");
    let mut trainer = if a.resume {
        if a.init.is_some() {
            bail!("--init starts a new run from a pretrained model; --resume continues {} from its checkpoint: give one of them", a.out.display());
        }
        let overrides = setup::ResumeOverrides { noise_off: a.noise_off, adversarial: a.adversarial, perceptual: a.perceptual, g_lr: a.g_lr, d_lr: a.d_lr };
        setup::resume_trainer(&ckpt, &overrides, &device, note)?
    } else {
        let res = data.resolution();
        let teacher = match a.teacher_mapping.as_deref() {
            None => None,
            Some(limner_photoreal::MODEL_NAME) => Some(limner_models::load_random_face(&device)?),
            Some(other) => bail!("--teacher-mapping {other}: the only teacher is `{}`", limner_photoreal::MODEL_NAME),
        };
        let generator = GeneratorConfig {
            z_dim: a.z_dim,
            w_dim: a.w_dim,
            mapping_layers: a.mapping_layers,
            channel_base: a.channel_base,
            channel_max: a.channel_max,
            ..GeneratorConfig::limner_default(res)
        };
        let discriminator = DiscriminatorConfig { channel_base: a.channel_base, channel_max: a.channel_max, ..DiscriminatorConfig::limner_default(res) };
        let transfer = a.init.is_some();
        let (diffaugment, ada) = match a.aug.as_str() {
            "ada" => {
                if a.diffaugment.is_some() {
                    bail!("--diffaugment sets DiffAugment's policy, but --aug ada replaces DiffAugment: drop one of them");
                }
                let ada = limner_gan::ada::AdaConfig {
                    pipe: limner_gan::ada::AugmentPipe::preset(&a.augpipe)?,
                    target: a.ada_target,
                    interval: a.ada_interval,
                    // official: ada_kimg 100 when resuming a pretrained network, to react faster
                    kimg: a.ada_kimg.unwrap_or(if transfer { 100.0 } else { 500.0 }),
                    initial_p: a.augment_p,
                };
                ada.validate()?;
                (DiffAugment::none(), Some(ada))
            }
            "none" => (DiffAugment::none(), None),
            _ => (DiffAugment::parse(a.diffaugment.as_deref().unwrap_or("color,translation,cutout"))?, None),
        };
        // official: no EMA ramp-up when starting from a pretrained network
        let ema_rampup = a.ema_rampup.unwrap_or(if transfer { 0.0 } else { 0.05 });
        let init = match &a.init {
            Some(name) => Some(limner_models::init_networks(name, a.init_discriminator.as_deref(), &device)?),
            None => None,
        };
        // options that may also change on --resume are Options here; unset, they take the defaults
        let defaults = TrainConfig::default();
        let train = TrainConfig {
            batch: a.batch,
            g_lr: a.g_lr.unwrap_or(defaults.g_lr),
            d_lr: a.d_lr.unwrap_or(defaults.d_lr),
            ema_kimg: a.ema_kimg,
            ema_rampup: (ema_rampup > 0.0).then_some(ema_rampup),
            r1_gamma: a.r1_gamma,
            style_mixing: a.style_mixing,
            diffaugment,
            ada,
            freeze_d: a.freeze_d,
            cdc: a.cdc,
            freeze_g: a.freeze_g,
            freeze_mapping: a.freeze_mapping,
            xflip: !a.no_xflip,
            seed: a.seed,
            distill_l1: a.distill,
            noise_off: a.noise_off,
            adversarial: a.adversarial.unwrap_or(defaults.adversarial),
            perceptual: a.perceptual.unwrap_or(defaults.perceptual),
            beta1: a.beta1,
            ..defaults
        };
        let run = setup::NewRun {
            generator,
            discriminator,
            train,
            teacher: teacher.as_ref().map(|t| t as &dyn setup::TeacherMapping),
            init_generator: a.init_generator.as_deref(),
            init,
        };
        setup::new_trainer(run, &data, &device, note)?
    };
    if trainer.train.perceptual > 0.0 {
        trainer.perceptual_net = Some(Box::new(limner_nets::perceptual::InceptionPerceptual::load_fetched(&device)?));
    }
    setup::write_run_json(&a.out, &std::env::args().collect::<Vec<_>>().join(" "), &a.data, data.len(), &trainer)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: finishing the step and saving a checkpoint (Ctrl-C again to abort)");
        })?;
    }
    let scorer = match a.score_every {
        Some(_) => Some(limner_nets::features::TrainScorer::new(&data.0, a.score_n, &device)?),
        None => None,
    };
    let mut score_fn = |g: &limner_gan::Generator| scorer.as_ref().expect("scorer").score(g);
    let opts = RunOptions {
        out: a.out.clone(),
        total_kimg: a.kimg,
        snap_kimg: a.snap_kimg,
        grid_seeds: (0..64).collect(),
        grid_psi: 0.7,
        score_every: a.score_every,
    };
    let pb = bar_with_template((a.kimg * 1000.0) as u64, "{elapsed_precise} [{bar:30}] {msg} eta {eta}");
    pb.enable_steady_tick(Duration::from_millis(500));
    let mut last_line = trainer.kimg();
    let end = run_training(&mut trainer, &data, &opts, &stop, &mut |t, s, ips| {
        if pb.is_hidden() && t.kimg() - last_line >= 1.0 {
            // not a terminal (a log file): one plain line per kimg instead of a bar
            last_line = t.kimg();
            eprintln!("kimg {:.2}  step {}  {:.1} img/s  {}", t.kimg(), t.step, ips, losses(s));
        }
        pb.set_position(t.images_seen);
        pb.set_message(format!("{:.2}/{} kimg  {:.1} img/s  {}", t.kimg(), a.kimg, ips, losses(s)));
    }, a.score_every.map(|_| &mut score_fn as limner_gan::run::Scorer))?;
    pb.finish_and_clear();
    match end {
        RunEnd::Finished => println!("finished {:.1} kimg; generator: {}", trainer.kimg(), a.out.join("generator.safetensors").display()),
        RunEnd::Interrupted => println!("stopped at {:.2} kimg; checkpoint saved: resume with --resume", trainer.kimg()),
    }
    let generator = a.out.join("generator.safetensors");
    if generator.is_file() {
        model_card(&a.out, &a.out, &generator, Some(trainer.kimg()), a.heldout.as_deref(), &device)?;
    }
    Ok(())
}

/// Writes the model card and the training index beside a model (`limner_audit::card`) and says so.
fn model_card(run: &Path, dir: &Path, weights: &Path, kimg: Option<f64>, heldout: Option<&str>, device: &Device) -> Result<()> {
    let mut pb: Option<indicatif::ProgressBar> = None;
    let card = limner_audit::card::card_for_run(run, dir, weights, kimg, heldout, device, &mut |n| eprintln!("note: {n}"), &mut |done, total| {
        pb.get_or_insert_with(|| bar(total as u64, "training index: embedding the training images")).set_position(done as u64);
    })?;
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    if let Some(c) = card {
        print_card(dir, &c);
    }
    Ok(())
}

fn print_card(dir: &Path, c: &limner_audit::card::ModelCard) {
    let index = match &c.training_index {
        Some(ix) => format!("; training index {} ({} images)", dir.join(&ix.file).display(), ix.images),
        None => String::new(),
    };
    println!(
        "model card: {} (this model is {} of the size of the {} training images it learned from){index}",
        dir.join(limner_audit::card::CARD_MD).display(),
        limner_audit::card::percent(c.ratio),
        c.dataset.images
    );
}

fn generate(a: GenerateArgs) -> Result<()> {
    if a.out.is_none() && a.grid.is_none() && a.prompt.is_none() {
        bail!("nothing to write: give --out DIR and/or --grid FILE.png");
    }
    if !a.psi.is_finite() || !a.noise.is_finite() {
        bail!("--psi and --noise must be finite numbers");
    }
    let seeds = parse_seeds(&a.seeds)?;
    let guard = copy_cmd::open(&a.model, a.copy_index.as_deref(), a.allow_near_copy)?;
    steer_cmd::generate(steer_cmd::GenerateRequest {
        model: &a.model,
        seeds: &seeds,
        size: a.size,
        psi: a.psi,
        noise: a.noise,
        sliders: &a.slider,
        layers: a.layers.as_deref(),
        slider_files: &a.sliders,
        prompt: a.prompt.as_deref(),
        directions: a.directions.as_deref(),
        age_layers: &a.age_layers,
        identity_cap: &a.identity_cap,
        refine_age: a.refine_age,
        refine_aim: a.refine_aim,
        refine_head: &a.refine_head,
        refine_hold: a.refine_hold,
        refine_passes: a.refine_passes,
        refine_gender: &a.refine_gender,
        smile_floor: a.smile_floor,
        out: a.out.as_deref(),
        grid: a.grid.as_deref(),
        json: a.json,
        guard: guard.as_ref(),
    })
}

/// Says where [`limner_data::imageio::save_seed_images`] wrote.
pub fn print_saved(saved: &SavedImages, size: usize) {
    if let Some(dir) = saved.images.first().and_then(|p| p.parent()) {
        println!("wrote {} {size}px images to {}", saved.images.len(), dir.display());
    }
    if let Some(grid) = &saved.grid {
        println!("wrote grid {}", grid.display());
    }
}

fn freeze(run: &Path, out: &Path, notes: Option<String>, heldout: Option<&str>) -> Result<()> {
    let device = Device::flex();
    let f = limner_models::freeze(run, out, notes, &device)?;
    println!("froze {:.1} kimg, {}px, {:.2} MB -> {}", f.kimg.unwrap_or(0.0), f.resolution, f.bytes as f64 / 1e6, f.file.display());
    if let Some(d) = &f.discriminator {
        let mb = std::fs::metadata(d).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
        println!("kept its discriminator ({mb:.2} MB, for `train --init`) -> {}", d.display());
    }
    let run_dir = if run.is_dir() { run } else { run.parent().unwrap_or(Path::new(".")) };
    model_card(run_dir, out, &f.file, f.kimg, heldout, &device)
}
