//! Official StyleGAN2-ADA pickles (made with NVIDIA's own classes and saved as
//! training_loop.py saves them, by tools/stylegan2-pickle/make.py) load into limner's
//! generator and reproduce the official outputs recorded beside them, within the parity
//! thresholds of `stylegan2_parity.rs` (w 2e-5, images 1e-4, absolute).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use limner_gan::import::load_generator_pickle;
use limner_gan::layers::NoiseMode;
use limner_gan::params::{read_safetensors, tensor_from, to_vec, StateDict};
use limner_gan::Generator;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../limner-pickle/tests/fixtures").join(name)
}

fn t<const D: usize>(sd: &StateDict, k: &str, device: &Device) -> Tensor<D> {
    let h = &sd[k];
    tensor_from(h.data.clone(), h.shape.clone().try_into().unwrap(), device)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every recorded output of `<name>.io.safetensors`, from limner's generator.
fn outputs(g: &Generator, io: &StateDict, device: &Device) -> Vec<(&'static str, Vec<f32>)> {
    let z: Tensor<2> = t(io, "z", device);
    let w1 = g.mapping.forward(z.clone(), 1.0, None);
    let w07 = g.mapping.forward(z.clone(), 0.7, None);
    vec![
        ("w_psi1", to_vec(&w1)),
        ("w_psi07", to_vec(&w07)),
        ("img_psi1", to_vec(&g.synthesis.forward(t(io, "w_psi1", device), &mut NoiseMode::Const))),
        ("img_psi07", to_vec(&g.forward(z, 0.7, &mut NoiseMode::Const))),
        ("img_psi1_nonoise", to_vec(&g.synthesis.forward(t(io, "w_psi1", device), &mut NoiseMode::None))),
    ]
}

fn check_against_official(name: &str, network: &str) -> Generator {
    let device = Device::flex();
    let p = load_generator_pickle(&fixture(&format!("{name}.pkl")), network, &device).unwrap();
    let (io, _) = read_safetensors(&fixture(&format!("{name}.io.safetensors"))).unwrap();
    for (out, got) in outputs(&p.generator, &io, &device) {
        let d = max_abs_diff(&got, &io[out].data);
        let tol = if out.starts_with('w') { 2e-5 } else { 1e-4 };
        let scale = io[out].data.iter().map(|v| v.abs()).fold(0.0, f32::max);
        eprintln!("{name} {network} {out:>17}: max |limner - official| = {d:.2e} (tolerance {tol:.0e}; values up to {scale:.2})");
        assert!(d <= tol, "{name} {network} {out}: {d} > {tol}");
        assert!(scale > 0.1, "{out} is too small to test anything");
    }
    p.generator
}

#[test]
fn tiny_snapshot_reproduces_the_official_outputs() {
    let g = check_against_official("tiny", "G_ema");
    let c = &g.config;
    assert_eq!((c.z_dim, c.w_dim, c.mapping_layers, c.img_resolution, c.channel_base, c.channel_max), (16, 16, 2, 16, 512, 32));
    assert_eq!(c.conv_clamp, None);
    // the training generator of the snapshot is the same network (the fixture copied it)
    check_against_official("tiny", "G");
}

#[test]
fn conv_clamp_and_fp16_storage_reproduce_the_official_outputs() {
    let device = Device::flex();
    let p = load_generator_pickle(&fixture("clamp16.pkl"), "G_ema", &device).unwrap();
    assert_eq!(p.stored_dtypes, ["F16"]);
    assert_eq!(p.num_fp16_res, 2);
    assert_eq!(p.generator.config.conv_clamp, Some(0.5));
    let g = check_against_official("clamp16", "G_ema");
    // the clamp matters here: without it the images are far from the official ones
    let mut cfg = g.config.clone();
    cfg.conv_clamp = None;
    let mut unclamped = Generator::new(&cfg, &device);
    let sd = limner_gan::params::state_dict(&mut g.clone(), false);
    limner_gan::params::load_state_dict(&mut unclamped, &sd, &device).unwrap();
    let (io, _) = read_safetensors(&fixture("clamp16.io.safetensors")).unwrap();
    let img = to_vec(&unclamped.synthesis.forward(t(&io, "w_psi1", &device), &mut NoiseMode::Const));
    let d = max_abs_diff(&img, &io["img_psi1"].data);
    assert!(d > 1e-2, "the fixture's clamp never cuts (diff without it {d})");
}

#[test]
fn conditional_and_orig_generators_are_refused_by_name() {
    let device = Device::flex();
    let e = format!("{:#}", load_generator_pickle(&fixture("cond.pkl"), "G_ema", &device).err().expect("refused"));
    assert!(e.contains("conditional generator (c_dim = 4") && e.contains("mapping.embed") && e.contains("cond.pkl"), "{e}");
    let e = format!("{:#}", load_generator_pickle(&fixture("orig.pkl"), "G_ema", &device).err().expect("refused"));
    assert!(e.contains("architecture = \"orig\"") && e.contains("orig.pkl"), "{e}");
    let e = format!("{:#}", load_generator_pickle(&fixture("tiny.pkl"), "D", &device).err().expect("refused"));
    assert!(e.contains("is a Discriminator, not a Generator"), "{e}");
    let e = format!("{:#}", load_generator_pickle(&fixture("tiny.pkl"), "G_avg", &device).err().expect("refused"));
    assert!(e.contains("no `G_avg` network (it has: D, G, G_ema, augment_pipe)"), "{e}");
}

#[test]
fn discriminators_reproduce_the_official_logits() {
    let device = Device::flex();
    for name in ["tiny", "clamp16"] {
        let d = limner_gan::import::load_discriminator_pickle(&fixture(&format!("{name}.pkl")), &device).unwrap();
        let (io, _) = read_safetensors(&fixture(&format!("{name}.io.safetensors"))).unwrap();
        let logits = to_vec(&d.forward(t(&io, "img_psi1", &device)));
        let diff = max_abs_diff(&logits, &io["d_logits"].data);
        eprintln!("{name} D d_logits: max |limner - official| = {diff:.2e} (tolerance 2e-5; logits {:?})", io["d_logits"].data);
        assert!(diff <= 2e-5, "{name}: {diff}");
        assert_eq!(d.config.conv_clamp, if name == "clamp16" { Some(0.5) } else { None });
    }
    let e = format!("{:#}", limner_gan::import::load_discriminator_pickle(&fixture("cond.pkl"), &device).err().expect("refused"));
    assert!(e.contains("conditional discriminator (c_dim = 4"), "{e}");
}
