//! Gatys style transfer and DeepDream on the real InceptionV3 weights: the image must change
//! in the intended way (Gram distance to the style falls, the layer's activations rise), the
//! gradient through the network must match finite differences, runs are reproducible, and
//! bad layer names or sizes give clear errors.
//!
//! Needs the fetched model (`limner models fetch --only inception-v3`): under `CI=true` a
//! missing model fails these tests; elsewhere they print a note and pass.

use burn::tensor::Device;
use limner_art::dream::{self, DreamConfig};
use limner_art::gatys::{self, GatysConfig, Init, Optimizer};
use limner_art::Picture;
use limner_nets::{InceptionV3, Tap};

fn net() -> Option<InceptionV3> {
    limner_core::testing::fetched(InceptionV3::load_fetched(&Device::flex()))
}

/// A smooth "portrait-like" content image: a bright disc on a graded background.
fn content(size: usize) -> Picture {
    let mut data = vec![0.0; 3 * size * size];
    let c = size as f32 / 2.0;
    for y in 0..size {
        for x in 0..size {
            let r = (((x as f32 - c).powi(2) + (y as f32 - c * 0.9).powi(2)).sqrt()) / size as f32;
            let disc = if r < 0.3 { 1.0 } else { 0.0 };
            let bg = y as f32 / size as f32;
            let v = [0.2 + 0.6 * disc + 0.1 * bg, 0.3 + 0.4 * disc, 0.6 - 0.3 * disc + 0.2 * bg];
            for ch in 0..3 {
                data[(ch * size + y) * size + x] = v[ch];
            }
        }
    }
    Picture { width: size, height: size, data }
}

/// A high-frequency, strongly coloured style: diagonal blue/yellow stripes with a red grid.
fn style(size: usize) -> Picture {
    let mut data = vec![0.0; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            let s = 0.5 + 0.5 * ((x + 2 * y) as f32 * 0.6).sin();
            let grid = ((x % 9 == 0) || (y % 11 == 0)) as u8 as f32;
            let v = [0.95 * s + 0.8 * grid, 0.85 * s, 0.6 * (1.0 - s)];
            for ch in 0..3 {
                data[(ch * size + y) * size + x] = v[ch].min(1.0);
            }
        }
    }
    Picture { width: size, height: size, data }
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

fn small_gatys() -> GatysConfig {
    GatysConfig { steps: 20, size: 64, ..Default::default() }
}

#[test]
fn gatys_lowers_the_style_distance_and_keeps_the_content() {
    let Some(net) = net() else { return };
    let (c, s) = (content(64), style(80));
    let cfg = small_gatys();
    let before = gatys::losses(&net, &c, &c, &s, &cfg).unwrap();
    let mut seen = vec![];
    let out = gatys::stylize_with(&net, &c, &s, &cfg, &mut |p| seen.push(p.losses.total)).unwrap();
    let after = gatys::losses(&net, &out, &c, &s, &cfg).unwrap();
    eprintln!("before {before:?}\nafter  {after:?}");
    assert_eq!(seen.len(), cfg.steps, "one progress report per step");
    assert_eq!((out.width, out.height), (64, 64));
    assert!(before.content < 1e-6, "the start is the content image: {before:?}");
    assert!(after.style < 0.5 * before.style, "style (Gram) distance did not fall enough: {} -> {}", before.style, after.style);
    assert!(after.total < before.total, "{before:?} -> {after:?}");
    // the content moved but stays recognisable: much closer to the content than the style
    // image itself is
    let style_itself = gatys::losses(&net, &s, &c, &s, &cfg).unwrap();
    eprintln!("the style image itself: {style_itself:?}");
    assert!(after.content > 1e-4 && after.content < 0.8 && after.content < 0.85 * style_itself.content, "content distance {} (style image: {})", after.content, style_itself.content);
    assert!(mean_abs_diff(&out.data, &c.data) > 0.01, "the image hardly changed");
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn gatys_lbfgs_lowers_the_loss_too() {
    let Some(net) = net() else { return };
    let (c, s) = (content(64), style(64));
    let cfg = GatysConfig { steps: 10, optimizer: Optimizer::Lbfgs, ..small_gatys() };
    let before = gatys::losses(&net, &c, &c, &s, &cfg).unwrap();
    let mut totals = vec![];
    let out = gatys::stylize_with(&net, &c, &s, &cfg, &mut |p| totals.push(p.losses.total)).unwrap();
    let after = gatys::losses(&net, &out, &c, &s, &cfg).unwrap();
    eprintln!("L-BFGS: {before:?} -> {after:?}, per step {totals:?}");
    assert!(after.style < 0.5 * before.style && after.total < 0.5 * before.total, "{before:?} -> {after:?}");
    // the line search only accepts decreases
    assert!(totals.windows(2).all(|w| w[1] <= w[0]), "{totals:?}");
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn gatys_is_deterministic_per_seed_and_preserves_colour() {
    let Some(net) = net() else { return };
    let (c, s) = (content(64), style(64));
    let cfg = GatysConfig { steps: 4, size: 64, init: Init::Noise, seed: 7, ..Default::default() };
    let a = gatys::stylize_with(&net, &c, &s, &cfg, &mut |_| {}).unwrap();
    let b = gatys::stylize_with(&net, &c, &s, &cfg, &mut |_| {}).unwrap();
    assert_eq!(a, b, "same seed, same pixels");
    let other = gatys::stylize_with(&net, &c, &s, &GatysConfig { seed: 8, ..cfg.clone() }, &mut |_| {}).unwrap();
    assert!(mean_abs_diff(&a.data, &other.data) > 0.01, "another seed should start from other noise");

    // luminance-only transfer: the chroma (YIQ's I and Q) is the content's, the luminance changed
    let cfg = GatysConfig { preserve_colour: true, ..small_gatys() };
    let out = gatys::stylize_with(&net, &c, &s, &cfg, &mut |_| {}).unwrap();
    let [yo, io, qo] = out.to_yiq();
    let [yc, ic, qc] = c.to_yiq();
    assert!(mean_abs_diff(&io, &ic) < 0.01 && mean_abs_diff(&qo, &qc) < 0.01, "colours moved: I {} Q {}", mean_abs_diff(&io, &ic), mean_abs_diff(&qo, &qc));
    assert!(mean_abs_diff(&yo, &yc) > 0.01, "luminance unchanged");
}

#[test]
fn dream_raises_the_layer_activation() {
    let Some(net) = net() else { return };
    let img = content(96);
    let layers: Vec<Tap> = vec!["mixed3".parse().unwrap()];
    let cfg = DreamConfig { layers: layers.clone(), octaves: 2, steps: 8, jitter: 8, ..Default::default() };
    let before = dream::objective(&net, &img, &layers);
    let mut reports = 0;
    let out = dream::dream_with(&net, &img, &cfg, &mut |_| reports += 1).unwrap();
    let after = dream::objective(&net, &out, &layers);
    eprintln!("mixed3 mean square activation {before} -> {after}");
    assert_eq!(reports, cfg.octaves * cfg.steps);
    assert_eq!((out.width, out.height), (96, 96));
    assert!(after > 1.5 * before, "objective rose only {before} -> {after}");
    assert!(mean_abs_diff(&out.data, &img.data) > 0.01, "the image hardly changed");
    // reproducible per seed; another seed jitters differently
    let again = dream::dream_with(&net, &img, &cfg, &mut |_| {}).unwrap();
    assert_eq!(out, again, "same seed, same pixels");
    let other = dream::dream_with(&net, &img, &DreamConfig { seed: 1, ..cfg.clone() }, &mut |_| {}).unwrap();
    assert_ne!(out, other);
    // several layers at once
    let two: Vec<Tap> = vec!["conv2d_5".parse().unwrap(), "mixed1".parse().unwrap()];
    let out2 = dream::dream_with(&net, &img, &DreamConfig { layers: two.clone(), octaves: 1, steps: 4, ..cfg }, &mut |_| {}).unwrap();
    assert!(dream::objective(&net, &out2, &two) > dream::objective(&net, &img, &two));
}

/// The input gradient through the whole network (limner-kernels' conv input gradients,
/// stride-2 valid convs, pools, concatenations) against central finite differences.
#[test]
fn input_gradient_matches_finite_differences() {
    let Some(net) = net() else { return };
    // textured (no flat regions: max pools over exactly equal values have no derivative)
    let mut img = content(80);
    for (i, p) in img.data.iter_mut().enumerate() {
        *p = (*p * 0.8 + 0.1 + 0.08 * ((i as f32 * 12.9898).sin() * 43758.547).fract()).clamp(0.0, 1.0);
    }
    let (w, h) = (img.width, img.height);
    let ad = net.autodiff();
    for tap in ["conv2d_3", "mixed3", "mixed5"] {
        let layers = [tap.parse::<Tap>().unwrap()];
        let (_, g) = dream::objective_and_grad(&ad, &img.data, w, h, &layers);
        // direction: the gradient itself (unit length), so the directional derivative is
        // ‖g‖ with no cancellation; a wrongly routed or scaled gradient would miss it
        let norm = g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        let v: Vec<f32> = g.iter().map(|x| (*x as f64 / norm) as f32).collect();
        let eps = 3e-3f32;
        let shifted = |sign: f32| img.data.iter().zip(&v).map(|(x, d)| x + sign * eps * d).collect::<Vec<f32>>();
        let f = |x: Vec<f32>| dream::objective(&net, &Picture { width: w, height: h, data: x }, &layers) as f64;
        let fd = (f(shifted(1.0)) - f(shifted(-1.0))) / (2.0 * eps as f64);
        let an: f64 = g.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
        eprintln!("{tap}: analytic {an:.6e}, finite difference {fd:.6e}");
        assert!((an - fd).abs() <= 0.02 * fd.abs().max(an.abs()) + 1e-7, "{tap}: analytic {an} vs finite difference {fd}");
    }
}

#[test]
fn layer_names_and_sizes_are_checked() {
    // no weights needed
    for bad in ["mixed9", "conv2d_0", "conv2d_51", "pool", ""] {
        let err = bad.parse::<Tap>().unwrap_err().to_string();
        assert!(err.contains("unknown InceptionV3 layer") && err.contains("conv2d_1 ... conv2d_50") && err.contains("mixed5"), "{err}");
    }
    let all = Tap::all();
    assert_eq!(all.len(), 56);
    for t in &all {
        assert_eq!(t.to_string().parse::<Tap>().unwrap(), *t);
    }
    // network order: the stem convs, then mixed0's convs before mixed0, ..., mixed5 last
    assert_eq!(all[0].to_string(), "conv2d_1");
    assert_eq!(all[5].to_string(), "conv2d_6");
    assert_eq!(all[12].to_string(), "mixed0");
    assert_eq!(all.last().unwrap().to_string(), "mixed5");
    assert_eq!("mixed3".parse::<Tap>().unwrap().min_input_size(), 43);
    assert!("conv2d_1".parse::<Tap>().unwrap().min_input_size() <= "mixed0".parse::<Tap>().unwrap().min_input_size());

    let Some(net) = net() else { return };
    let err = net.forward_named(content(64).to_tensor(&Device::flex()), &["mixed2", "mixed7"]).unwrap_err().to_string();
    assert!(err.contains("mixed7") && err.contains("valid:"), "{err}");
    // taps inside blocks have the conv's shape: conv2d_1 is 3x3 stride 2 valid, 32 channels
    let x = content(128).to_tensor(&Device::flex());
    let acts = net.forward_named(x.clone(), &["conv2d_1", "conv2d_5", "conv2d_40", "mixed2"]).unwrap();
    let dims: Vec<[usize; 4]> = acts.iter().map(|a| a.dims()).collect();
    assert_eq!(dims, vec![[1, 32, 63, 63], [1, 192, 28, 28], [1, 192, 6, 6], [1, 288, 13, 13]]);
    // an image too small for the layer: a clear error, not a panic
    let tiny = DreamConfig { octaves: 4, ..Default::default() };
    let err = dream::dream_with(&net, &content(64), &tiny, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("smallest octave") && err.contains("mixed3"), "{err}");
    let err = gatys::stylize_with(&net, &content(64), &style(64), &GatysConfig { size: 32, ..Default::default() }, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("--size") && err.contains("needs at least"), "{err}");
}
