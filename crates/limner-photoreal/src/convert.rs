//! IR → safetensors: finds every weight of the random-face MobileStyleGAN in its OpenVINO IR and
//! stores it under the PyTorch module name of MobileStyleGAN (`m.layers.3.conv1.conv.weight_dw`).
//!
//! Most constants of the synthesis IR still carry their PyTorch names. The export folded a few
//! into anonymous constants, which are named here from where they sit in the graph:
//!
//! | stored name | what it is in the IR |
//! |---|---|
//! | `P.conv.weight_permute` | the 1×1 conv after `P.conv.weight_dw`, demodulation folded in |
//! | `m.conv1.conv.weight` | the 4×4 block's 3×3 conv, demodulation folded in |
//! | `P.noise.const` | the `[1,1,R,R]` constant added after the conv: traced noise × `noise.weight` |
//! | `X.modulation.scale` | the scalar multiplying `X.modulation(w)` (`1/sqrt(fan_in)`; 1 for `up`) |
//! | `m.lrelu_slope` | the slope of every synthesis `PReLU` (0.2) |
//! | `idwt.g0`, `idwt.g1` | the inverse Haar synthesis filters of the `GroupConvolutionBackpropData`s |
//!
//! The mapping IR has numeric constant names only; its layers are stored as
//! `mapping.fcK.{weight,bias,slope,gain}` (K = 0..7 in graph order) plus `mapping.pixel_norm_eps`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use limner_core::{randn_host, tensor_from, to_vec, write_safetensors, HostTensor, Precision, StateDict};

use crate::ir::{Graph, Layer};
use crate::model::{check_mapping, check_synthesis, MappingNetwork, W_DIM};

/// Which network an IR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `var` [N,512] → `style` [N,512]
    Mapping,
    /// `style` [N,512] → `img` [N,3,1024,1024]
    Synthesis,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Mapping => "mapping",
            Part::Synthesis => "synthesis",
        }
    }
}

/// The licence note stored in every converted file's metadata.
pub const WEIGHTS_LICENSE: &str =
    "MobileStyleGAN weights of NVIDIA FFHQ lineage (PyPI random-face 2021.7.21.1): non-commercial use only";

/// Converts one OpenVINO IR of random-face (`MappingNetwork` or `SynthesisNetwork`, detected from
/// its input) to an f32 safetensors file (the IR stores f32; f16 IRs are widened).
///
/// Every weight is checked (present, right shape, finite, inside the `.bin`) before anything is
/// written; an error names the offending IR layer or tensor.
pub fn convert_ir(xml: &Path, bin: &Path, out_safetensors: &Path) -> Result<()> {
    let (part, sd) = read_ir(xml, bin)?;
    let mut meta = metadata(part);
    meta.insert("source".into(), file_name(xml));
    write_safetensors(out_safetensors, &sd, &meta, Precision::F32)
        .with_context(|| format!("cannot write {}", out_safetensors.display()))
}

/// Converts both IRs of the random-face package (`data_dir` holds `MappingNetwork.{xml,bin}` and
/// `SynthesisNetwork.{xml,bin}`, i.e. `random_face/data`) into one safetensors file, the form
/// [`crate::MobileStyleGan::load`] reads.
pub fn convert_random_face(data_dir: &Path, out_safetensors: &Path) -> Result<()> {
    let mut all = StateDict::new();
    for stem in ["MappingNetwork", "SynthesisNetwork"] {
        let (_, sd) = read_ir(&data_dir.join(format!("{stem}.xml")), &data_dir.join(format!("{stem}.bin")))?;
        all.extend(sd);
    }
    let w_avg = mean_w(&all, W_AVG_SAMPLES, W_AVG_SEED)?;
    all.insert("mapping.w_avg".into(), HostTensor { shape: vec![W_DIM], data: w_avg });
    let mut meta = metadata(Part::Synthesis);
    meta.insert("part".into(), "mapping+synthesis".into());
    meta.insert(
        "w_avg".into(),
        format!("mapping.w_avg: mean of map(z) over {W_AVG_SAMPLES} z ~ N(0, I) drawn from ChaCha8 seeded with {W_AVG_SEED}"),
    );
    meta.insert("source".into(), "random_face/data/{Mapping,Synthesis}Network.{xml,bin}".into());
    write_safetensors(out_safetensors, &all, &meta, Precision::F32)
        .with_context(|| format!("cannot write {}", out_safetensors.display()))
}

/// How many latents `mapping.w_avg` averages (random-face's `get_style_mean(n=4096)`).
pub const W_AVG_SAMPLES: usize = 4096;
/// The ChaCha8 seed of those latents (random-face draws them unseeded; limner fixes them so the
/// converted file is reproducible).
pub const W_AVG_SEED: u64 = 0x5EED_A1E5;

/// `mean over n z ~ N(0, I) of map(z)`, in f64, with the z drawn from ChaCha8(`seed`) (512 per z,
/// one after another). `sd` must hold the mapping tensors.
pub fn mean_w(sd: &StateDict, n: usize, seed: u64) -> Result<Vec<f32>> {
    use rand::SeedableRng;
    let device = burn::tensor::Device::flex();
    let mapping = MappingNetwork::from_state_dict(sd, &device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut sum = vec![0f64; W_DIM];
    let chunk = 512;
    let mut done = 0;
    while done < n {
        let b = chunk.min(n - done);
        let z = randn_host(&mut rng, b * W_DIM);
        let w = to_vec(&mapping.forward(tensor_from(z, [b, W_DIM], &device)));
        for row in w.chunks_exact(W_DIM) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        done += b;
    }
    let avg: Vec<f32> = sum.iter().map(|s| (s / n as f64) as f32).collect();
    if avg.iter().any(|v| !v.is_finite()) {
        bail!("the mapping network gives non-finite w");
    }
    Ok(avg)
}

/// Reads an IR into limner's named tensors, validated.
pub fn read_ir(xml: &Path, bin: &Path) -> Result<(Part, StateDict)> {
    let g = Graph::read(xml, bin)?;
    let ctx = || format!("converting {}", xml.display());
    let part = detect(&g).with_context(ctx)?;
    let sd = match part {
        Part::Mapping => mapping_state(&g).with_context(ctx)?,
        Part::Synthesis => synthesis_state(&g).with_context(ctx)?,
    };
    Ok((part, sd))
}

fn metadata(part: Part) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), "limner-photoreal/mobilestylegan-v1".to_string()),
        ("part".to_string(), part.name().to_string()),
        ("license".to_string(), WEIGHTS_LICENSE.to_string()),
    ])
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn detect(g: &Graph) -> Result<Part> {
    let params: Vec<&Layer> = g.of_kind("Parameter").collect();
    let [p] = params.as_slice() else { bail!("expected one input (Parameter), found {}", params.len()) };
    match (p.name.as_str(), p.out_dims(0)) {
        ("var", [_, 512]) => Ok(Part::Mapping),
        ("style", [_, 512]) => Ok(Part::Synthesis),
        (name, dims) => bail!(
            "input `{name}` {dims:?} is neither the mapping's `var` [N,512] nor the synthesis' `style` [N,512] \
             (network `{}`)",
            g.net_name
        ),
    }
}

/// `(constant, other)` inputs of a binary op with exactly one constant input.
fn split_const<'a>(g: &'a Graph, op: &'a Layer) -> Result<(&'a Layer, &'a Layer)> {
    let a = g.input(op, 0)?;
    let b = g.input(op, 1)?;
    let ca = g.const_input(op, 0).ok();
    let cb = g.const_input(op, 1).ok();
    match (ca, cb) {
        (None, Some(c)) => Ok((c, a)),
        (Some(c), None) => Ok((c, b)),
        _ => bail!("layer {} should combine one constant with one computed value", op.describe()),
    }
}

fn scalar(g: &Graph, c: &Layer) -> Result<HostTensor> {
    let t = g.const_f32(c)?;
    if t.data.len() != 1 {
        bail!("Const {} should be a scalar, has shape {:?}", c.describe(), t.shape);
    }
    Ok(HostTensor { shape: vec![1], data: t.data })
}

fn flat(t: HostTensor) -> HostTensor {
    HostTensor { shape: vec![t.data.len()], data: t.data }
}

fn mapping_state(g: &Graph) -> Result<StateDict> {
    let mut sd = StateDict::new();
    // pixel norm: z * (1 / sqrt(mean(z^2) + eps))
    let rm: Vec<&Layer> = g.of_kind("ReduceMean").collect();
    let [rm] = rm.as_slice() else { bail!("expected one ReduceMean (pixel norm), found {}", rm.len()) };
    let add = g.consumer(rm, "Add")?;
    let (eps, _) = split_const(g, add)?;
    sd.insert("mapping.pixel_norm_eps".into(), scalar(g, eps)?);
    for (k, mm) in g.of_kind("MatMul").enumerate() {
        let p = format!("mapping.fc{k}");
        let layer = || format!("mapping layer fc{k} (IR layer {})", mm.describe());
        let res: Result<()> = (|| {
            if mm.data.get("transpose_b").map(String::as_str) != Some("true") {
                bail!("expected transpose_b=true");
            }
            sd.insert(format!("{p}.weight"), g.const_f32(g.const_input(mm, 1)?)?);
            let add = g.consumer(mm, "Add")?;
            sd.insert(format!("{p}.bias"), flat(g.const_f32(split_const(g, add)?.0)?));
            let prelu = g.consumer(add, "PReLU")?;
            sd.insert(format!("{p}.slope"), scalar(g, g.const_input(prelu, 1)?)?);
            let mul = g.consumer(prelu, "Multiply")?;
            sd.insert(format!("{p}.gain"), scalar(g, split_const(g, mul)?.0)?);
            Ok(())
        })();
        res.with_context(layer)?;
    }
    check_mapping(&sd)?;
    Ok(sd)
}

fn synthesis_state(g: &Graph) -> Result<StateDict> {
    let mut sd = StateDict::new();
    let mut errors: Vec<String> = vec![];
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{e:#}"));
        }
    };
    if let Some(l) = g.by_name("m.input.input") {
        match g.const_f32(l) {
            Ok(t) => {
                sd.insert("m.input.input".into(), t);
            }
            Err(e) => note(Err(e)),
        }
    }

    // style affines: MatMul(style, X.modulation.weight) + X.modulation.bias [-> Reshape -> * scale]
    for mm in g.of_kind("MatMul") {
        note((|| {
            let wl = g.const_input(mm, 1)?;
            let Some(x) = wl.name.strip_suffix(".modulation.weight") else {
                bail!("MatMul {} reads {}, expected a `*.modulation.weight`", mm.describe(), wl.describe());
            };
            sd.insert(format!("{x}.modulation.weight"), g.const_f32(wl)?);
            let add = g.consumer(mm, "Add")?;
            sd.insert(format!("{x}.modulation.bias"), flat(g.const_f32(split_const(g, add)?.0)?));
            let reshape = g.consumer(add, "Reshape")?;
            let mut scale = HostTensor { shape: vec![1], data: vec![1.0] };
            for m in g.consumers(reshape).into_iter().filter(|l| l.kind == "Multiply") {
                if let Ok((c, _)) = split_const(g, m) {
                    scale = scalar(g, c)?;
                }
            }
            sd.insert(format!("{x}.modulation.scale"), scale);
            Ok(())
        })());
    }

    // styled convs: Convolution -> Add(noise const) -> Add(P.bias) -> PReLU
    let mut slopes: Vec<(String, f32)> = vec![];
    for prelu in g.of_kind("PReLU") {
        note((|| {
            slopes.push((prelu.name.clone(), scalar(g, g.const_input(prelu, 1)?)?.data[0]));
            let add_b = g.input(prelu, 0)?;
            let (bias, add_n) = split_const(g, add_b)?;
            let Some(p) = bias.name.strip_suffix(".bias") else {
                bail!("the bias before PReLU {} is {}, expected a `*.bias`", prelu.describe(), bias.describe());
            };
            sd.insert(format!("{p}.bias"), flat(g.const_f32(bias)?));
            let (noise, conv) = split_const(g, add_n)
                .with_context(|| format!("reading the noise of `{p}`"))?;
            sd.insert(format!("{p}.noise.const"), g.const_f32(noise)?);
            if conv.kind != "Convolution" {
                bail!("`{p}`: expected a Convolution before the noise, found {}", conv.describe());
            }
            let w = g.const_f32(g.const_input(conv, 1)?)?;
            let src = g.input(conv, 0)?;
            if src.kind == "GroupConvolution" {
                let dwl = g.const_input(src, 1)?;
                let want = format!("{p}.conv.weight_dw");
                if dwl.name != want {
                    bail!("`{p}`: the depthwise weight is {}, expected `{want}`", dwl.describe());
                }
                let dw = g.const_f32(dwl)?; // [C, 1, 1, k, k]
                let s = &dw.shape;
                if s.len() != 5 {
                    bail!("`{want}` has shape {s:?}, expected [C, 1, 1, k, k]");
                }
                sd.insert(want, HostTensor { shape: vec![s[0], 1, s[3], s[4]], data: dw.data });
                sd.insert(format!("{p}.conv.weight_permute"), w);
            } else {
                sd.insert(format!("{p}.conv.weight"), w);
            }
            Ok(())
        })());
    }
    if let Some((n0, s0)) = slopes.first() {
        if let Some((n, s)) = slopes.iter().find(|(_, s)| s != s0) {
            note(Err(anyhow::anyhow!("PReLU `{n}` has slope {s}, `{n0}` has {s0}: expected one slope")));
        }
        sd.insert("m.lrelu_slope".into(), HostTensor { shape: vec![1], data: vec![*s0] });
    }

    // to_img: Convolution(X.to_img.conv.weight) -> Add(X.to_img.bias)
    for conv in g.of_kind("Convolution") {
        let Ok(wl) = g.const_input(conv, 1) else { continue };
        let Some(x) = wl.name.strip_suffix(".to_img.conv.weight") else { continue };
        note((|| {
            sd.insert(wl.name.clone(), g.const_f32(wl)?);
            let add = g.consumer(conv, "Add")?;
            sd.insert(format!("{x}.to_img.bias"), flat(g.const_f32(split_const(g, add)?.0)?));
            Ok(())
        })());
    }

    // inverse DWT filters: the low band goes straight from a VariadicSplit into a
    // GroupConvolutionBackpropData along H (filter g0); every other filter must be g0 or g1.
    note((|| {
        let convt: Vec<&Layer> = g.of_kind("GroupConvolutionBackpropData").collect();
        if convt.is_empty() {
            bail!("no GroupConvolutionBackpropData (inverse DWT) found");
        }
        let taps = |l: &Layer| -> Result<Vec<[f32; 2]>> {
            let t = g.const_f32(g.const_input(l, 1)?)?;
            if t.data.len() != 2 * t.shape[0] {
                bail!("inverse-DWT filter of {} has shape {:?}, expected 2 taps per channel", l.describe(), t.shape);
            }
            Ok(t.data.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        };
        let low = convt
            .iter()
            .find(|l| g.input(l, 0).map(|s| s.kind == "VariadicSplit").unwrap_or(false))
            .context("no inverse-DWT filter applied to a low band")?;
        let g0 = taps(low)?[0];
        let mut g1: Option<[f32; 2]> = None;
        for l in &convt {
            for t in taps(l)? {
                if t == g0 {
                    continue;
                }
                match g1 {
                    None => g1 = Some(t),
                    Some(g1) if g1 == t => {}
                    Some(g1) => bail!(
                        "inverse-DWT filter {} has taps {t:?}; expected g0 {g0:?} or g1 {g1:?}",
                        l.describe()
                    ),
                }
            }
        }
        let g1 = g1.context("only one inverse-DWT filter found, expected two (g0, g1)")?;
        sd.insert("idwt.g0".into(), HostTensor { shape: vec![2], data: g0.to_vec() });
        sd.insert("idwt.g1".into(), HostTensor { shape: vec![2], data: g1.to_vec() });
        Ok(())
    })());

    let check = check_synthesis(&sd);
    if errors.is_empty() {
        check?;
        return Ok(sd);
    }
    if let Err(e) = check {
        errors.push(format!("{e:#}"));
    }
    bail!("{}", errors.join("\n"))
}
