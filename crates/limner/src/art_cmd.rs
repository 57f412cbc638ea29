//! CLI glue for the image-optimisation art tools: `limner gatys` (to become
//! `limner style --method gatys`) and `limner dream`. Argument structs, image files and
//! progress bars only; the work is in `limner_art::gatys` and `limner_art::dream`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use limner_art::dream::{DreamConfig, DreamProgress};
use limner_art::gatys::{GatysConfig, GatysProgress, Init, Optimizer};
use limner_art::Picture;
use limner_data::imageio::save_image_rgb;
use limner_nets::{InceptionV3, Tap};
use limner_core::progress::bar_with_template;

/// `limner style --method gatys` / `limner gatys`: style transfer by optimising the image.
#[derive(Args, Clone, Debug)]
pub struct GatysArgs {
    /// the photo whose content to keep
    #[arg(long)]
    pub content: PathBuf,
    /// the image whose style (textures, colours) to transfer
    #[arg(long)]
    pub style: PathBuf,
    /// output PNG
    #[arg(long)]
    pub out: PathBuf,
    /// optimisation steps
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// longest side of the output in px (the style image is resized to it too)
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    #[arg(long, default_value_t = GatysConfig::default().style_weight)]
    pub style_weight: f32,
    #[arg(long, default_value_t = GatysConfig::default().content_weight)]
    pub content_weight: f32,
    /// total-variation weight (smoothness)
    #[arg(long, default_value_t = GatysConfig::default().tv_weight)]
    pub tv_weight: f32,
    /// Adam step size (pixels in [0, 1])
    #[arg(long, default_value_t = GatysConfig::default().lr)]
    pub lr: f64,
    /// transfer luminance only: keep the content's colours
    #[arg(long, alias = "preserve-color")]
    pub preserve_colour: bool,
    /// optimiser: adam, or lbfgs (fewer steps needed; each may cost several passes)
    #[arg(long, default_value = "adam", value_parser = ["adam", "lbfgs"])]
    pub optimizer: String,
    /// start from noise (seeded by --seed) instead of the content image
    #[arg(long)]
    pub init_noise: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// style layers, InceptionV3 names, comma-separated [default: conv2d_2,conv2d_4,mixed0,mixed1,mixed2]
    #[arg(long, value_delimiter = ',')]
    pub style_layers: Option<Vec<String>>,
    /// content layer [default: mixed3]
    #[arg(long)]
    pub content_layer: Option<String>,
}

impl GatysArgs {
    /// The library settings these arguments ask for (layer names checked).
    pub fn config(&self) -> Result<GatysConfig> {
        let defaults = GatysConfig::default();
        Ok(GatysConfig {
            steps: self.steps,
            size: self.size,
            style_layers: match &self.style_layers {
                Some(names) => parse_layers(names)?,
                None => defaults.style_layers,
            },
            content_layer: match &self.content_layer {
                Some(name) => name.parse()?,
                None => defaults.content_layer,
            },
            style_weight: self.style_weight,
            content_weight: self.content_weight,
            tv_weight: self.tv_weight,
            lr: self.lr,
            preserve_colour: self.preserve_colour,
            init: if self.init_noise { Init::Noise } else { Init::Content },
            optimizer: if self.optimizer == "lbfgs" { Optimizer::Lbfgs } else { Optimizer::Adam },
            seed: self.seed,
        })
    }
}

pub fn gatys(args: &GatysArgs) -> Result<()> {
    let cfg = args.config()?;
    check_size(cfg.size)?;
    gatys_on(args, &Picture::load(&args.content)?)
}

/// `limner gatys` on a content picture already in memory (`limner style --method gatys` renders
/// `seed:N` faces); `args.content` is not read.
pub fn gatys_on(args: &GatysArgs, content: &Picture) -> Result<()> {
    let cfg = args.config()?;
    check_size(cfg.size)?;
    let style = Picture::load(&args.style)?;
    let pb = bar_with_template(cfg.steps as u64, "{elapsed_precise} [{bar:30}] step {pos}/{len} {msg} eta {eta}");
    let out = limner_art::gatys::stylize(content, &style, &cfg, &mut |p: &GatysProgress| {
        let l = p.losses;
        pb.set_position(p.step as u64);
        if pb.is_hidden() && (p.step.is_multiple_of(20) || p.step == 1 || p.step == p.steps) {
            // not a terminal (a log file): a plain line every 20 steps instead of a bar
            eprintln!("step {}/{}  loss {:.4}  style {:.4}  content {:.4}  tv {:.5}", p.step, p.steps, l.total, l.style, l.content, l.tv);
        }
        pb.set_message(format!("loss {:.4} (style {:.4}, content {:.4}, tv {:.5})", l.total, l.style, l.content, l.tv));
    })?;
    pb.finish_and_clear();
    let content = args.content.display().to_string();
    let recipe = serde_json::json!({
        "command": "gatys", "content": crate::label_cmd::input_name(&content), "style": crate::label_cmd::input_name(&args.style.display().to_string()),
        "steps": cfg.steps, "size": cfg.size, "style_weight": cfg.style_weight, "content_weight": cfg.content_weight, "tv_weight": cfg.tv_weight,
        "lr": cfg.lr, "preserve_colour": cfg.preserve_colour, "init_noise": args.init_noise, "optimizer": args.optimizer, "seed": cfg.seed,
        "style_layers": args.style_layers, "content_layer": args.content_layer, "network": "inception-v3",
    });
    let prov = crate::label_cmd::label(crate::label_cmd::source_of_input(&content), recipe, crate::label_cmd::seed_model(&content))?;
    save_image_rgb(&args.out, out.width as u32, out.height as u32, &out.to_rgb8(), &prov)?;
    println!("wrote {} ({}x{}, {} steps)", args.out.display(), out.width, out.height, cfg.steps);
    Ok(())
}

/// `limner dream`: DeepDream on a photo or a generated face.
#[derive(Args, Clone, Debug)]
pub struct DreamArgs {
    /// input image, or `seed:N` for face N of the embedded default model (psi 0.7, upscaled)
    #[arg(long = "in", value_name = "FILE|seed:N")]
    pub input: String,
    /// output PNG
    #[arg(long)]
    pub out: PathBuf,
    /// InceptionV3 layer(s) to amplify, comma-separated (mixed0..mixed5, conv2d_1..conv2d_50)
    #[arg(long, value_delimiter = ',', default_value = "mixed3")]
    pub layer: Vec<String>,
    /// pyramid levels
    #[arg(long, default_value_t = 4)]
    pub octaves: usize,
    /// size ratio between octaves
    #[arg(long, default_value_t = 1.4)]
    pub octave_scale: f64,
    /// largest random shift (px) before each step
    #[arg(long, default_value_t = 32)]
    pub jitter: usize,
    /// gradient steps per octave
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// mean pixel change per step (pixels in [0, 1]; 0.006 = the original notebook's 1.5/255)
    #[arg(long, default_value_t = DreamConfig::default().lr)]
    pub lr: f64,
    /// longest side in px (default: the input file's size, at most 512; 256 for seed:N)
    #[arg(long)]
    pub size: Option<usize>,
    /// seeds the jitter
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn dream(args: &DreamArgs) -> Result<()> {
    let cfg = DreamConfig {
        layers: parse_layers(&args.layer)?,
        octaves: args.octaves,
        octave_scale: args.octave_scale,
        jitter: args.jitter,
        steps: args.steps,
        lr: args.lr,
        seed: args.seed,
    };
    if let Some(s) = args.size {
        check_size(s)?;
    }
    let image = match args.input.strip_prefix("seed:") {
        Some(n) => {
            let seed: u64 = n.parse().with_context(|| format!("--in {}: `seed:` takes a number, e.g. seed:7", args.input))?;
            generated_face(seed, args.size.unwrap_or(256))?
        }
        None => {
            let p = Picture::load(Path::new(&args.input))?;
            match args.size {
                Some(s) => p.fit_longest(s),
                None if p.width.max(p.height) > 512 => {
                    eprintln!("note: {} is {}x{}; dreaming at 512 px on the longer side (--size to choose)", args.input, p.width, p.height);
                    p.fit_longest(512)
                }
                None => p,
            }
        }
    };
    let net = InceptionV3::load_fetched(&Device::flex())?;
    let pb = bar_with_template((cfg.octaves * cfg.steps) as u64, "{elapsed_precise} [{bar:30}] {msg} eta {eta}");
    let out = limner_art::dream::dream_with(&net, &image, &cfg, &mut |p: &DreamProgress| {
        pb.inc(1);
        if pb.is_hidden() && p.step == p.steps {
            eprintln!("octave {}/{} ({}x{})  objective {:.4}", p.octave, p.octaves, p.width, p.height, p.objective);
        }
        pb.set_message(format!("octave {}/{} ({}x{}) step {}/{} objective {:.4}", p.octave, p.octaves, p.width, p.height, p.step, p.steps, p.objective));
    })?;
    pb.finish_and_clear();
    let recipe = serde_json::json!({
        "command": "dream", "input": crate::label_cmd::input_name(&args.input), "layers": args.layer, "octaves": cfg.octaves,
        "octave_scale": cfg.octave_scale, "jitter": cfg.jitter, "steps": cfg.steps, "lr": cfg.lr, "seed": cfg.seed, "size": args.size,
        "network": "inception-v3",
    });
    let prov = crate::label_cmd::label(crate::label_cmd::source_of_input(&args.input), recipe, crate::label_cmd::seed_model(&args.input))?;
    save_image_rgb(&args.out, out.width as u32, out.height as u32, &out.to_rgb8(), &prov)?;
    println!("wrote {} ({}x{}, {} octaves x {} steps on {})", args.out.display(), out.width, out.height, cfg.octaves, cfg.steps, args.layer.join(","));
    Ok(())
}

/// Face `seed` of the embedded default model at psi 0.7, upscaled so its side is `size`.
fn generated_face(seed: u64, size: usize) -> Result<Picture> {
    let (res, img) = limner_models::default_face(seed, &Device::flex())?; // [1, 3, res, res] in [-1, 1]
    let data = img.iter().map(|v| ((v + 1.0) * 0.5).clamp(0.0, 1.0)).collect();
    Ok(Picture { width: res, height: res, data }.resized(size, size))
}

fn parse_layers(names: &[String]) -> Result<Vec<Tap>> {
    if names.is_empty() {
        bail!("give at least one layer; valid: {}", Tap::valid_names());
    }
    names.iter().map(|n| n.parse()).collect()
}

fn check_size(size: usize) -> Result<()> {
    if !(16..=4096).contains(&size) {
        bail!("--size {size}: choose 16 to 4096 px");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        g: GatysArgs,
    }

    #[test]
    fn gatys_defaults_are_the_library_defaults() {
        let w = Wrap::try_parse_from(["t", "--content", "a.png", "--style", "b.png", "--out", "o.png"]).unwrap();
        let cfg = w.g.config().unwrap();
        let lib = GatysConfig::default();
        assert_eq!(cfg.style_layers, lib.style_layers);
        assert_eq!(cfg.content_layer, lib.content_layer);
        assert_eq!((cfg.steps, cfg.size, cfg.lr, cfg.init, cfg.optimizer), (lib.steps, lib.size, lib.lr, lib.init, lib.optimizer));
        assert_eq!((cfg.style_weight, cfg.content_weight, cfg.tv_weight), (lib.style_weight, lib.content_weight, lib.tv_weight));
        // the help text states the library's default layers
        let help = Wrap::command().render_long_help().to_string();
        let names: Vec<String> = lib.style_layers.iter().map(|t| t.to_string()).collect();
        assert!(help.contains(&format!("[default: {}]", names.join(","))), "{help}");
        assert!(help.contains(&format!("[default: {}]", lib.content_layer)), "{help}");
        let bad = Wrap::try_parse_from(["t", "--content", "a", "--style", "b", "--out", "o", "--style-layers", "mixed0,nope"]).unwrap();
        assert!(bad.g.config().unwrap_err().to_string().contains("nope"));
    }
}
