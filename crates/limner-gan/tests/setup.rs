//! Setting up a run as `limner train` does (`limner_gan::setup`): the run folder's guard rails,
//! a teacher's frozen mapping, a starting generator, and the resume overrides, each checked
//! before any step runs.

mod common;

use burn::tensor::Device;
use limner_gan::config::{tiny, DiscriminatorConfig, GeneratorConfig};
use limner_gan::generator::MappingNetwork;
use limner_gan::layers::Init;
use limner_gan::params::state_dict;
use limner_gan::setup::{checkpoint_path, new_trainer, resume_trainer, NewRun, ResumeOverrides, TeacherMapping, CHECKPOINT_FILE};
use limner_gan::train::{TrainConfig, Trainer};

/// A teacher with a 3-layer, 24-d mapping network of its own.
struct Teacher(MappingNetwork);

impl Teacher {
    fn new(device: &Device) -> Self {
        let cfg = GeneratorConfig { z_dim: 24, w_dim: 24, mapping_layers: 3, ..tiny(16).0 };
        Self(MappingNetwork::new(&cfg, &mut Init::new(99, device)))
    }
}

impl TeacherMapping for Teacher {
    fn name(&self) -> &str {
        "teacher"
    }
    fn mapping_dims(&self) -> (usize, usize, usize) {
        (24, 24, 3)
    }
    fn mapping_network(&self, _lr: f64, num_ws: usize, w_avg_beta: f64) -> anyhow::Result<MappingNetwork> {
        Ok(MappingNetwork { num_ws, w_avg_beta, ..self.0.clone() })
    }
}

fn new_run<'a>(train: TrainConfig, teacher: Option<&'a dyn TeacherMapping>) -> NewRun<'a> {
    let (generator, discriminator) = tiny(16);
    NewRun { generator, discriminator, train, teacher, init_generator: None, init: None }
}

#[test]
fn the_run_folder_guards_new_and_resumed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let e = checkpoint_path(dir.path(), true).unwrap_err().to_string();
    assert!(e.contains("--resume") && e.contains(CHECKPOINT_FILE), "{e}");
    assert_eq!(checkpoint_path(dir.path(), false).unwrap(), dir.path().join(CHECKPOINT_FILE));
    std::fs::write(dir.path().join(CHECKPOINT_FILE), b"x").unwrap();
    let e = checkpoint_path(dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("already holds a run"), "{e}");
    assert!(checkpoint_path(dir.path(), true).is_ok());
}

#[test]
fn nothing_to_train_is_refused_when_the_trainer_is_made() {
    let device = Device::flex();
    let (g, d) = tiny(16);
    let e = Trainer::new(TrainConfig { adversarial: 0.0, ..Default::default() }, &g, &d, &device).err().unwrap().to_string();
    assert!(e.contains("nothing to train"), "{e}");
    let e = Trainer::new(TrainConfig { perceptual: 1.0, ..Default::default() }, &g, &d, &device).err().unwrap().to_string();
    assert!(e.contains("distillation"), "{e}");
}

#[test]
fn a_teachers_mapping_is_adopted_frozen_and_distillation_needs_one() {
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 1);
    let mut notes = vec![];
    // distillation without a teacher, or on images without seeds: refused before any step
    let e = new_trainer(new_run(TrainConfig { distill_l1: 1.0, ..Default::default() }, None), &data, &device, &mut |n| notes.push(n)).err().unwrap();
    assert!(e.to_string().contains("--teacher-mapping"), "{e}");
    let teacher = Teacher::new(&device);
    let e = new_trainer(new_run(TrainConfig { distill_l1: 1.0, ..Default::default() }, Some(&teacher)), &data, &device, &mut |n| notes.push(n)).err().unwrap();
    assert!(e.to_string().contains("limner dataset distill"), "{e}");
    // a plain run with the teacher's mapping: G takes its dims and weights, frozen
    let mut t = new_trainer(new_run(TrainConfig::default(), Some(&teacher)), &data, &device, &mut |n| notes.push(n)).unwrap();
    assert_eq!((t.g.config.z_dim, t.g.config.w_dim, t.g.config.mapping_layers), (24, 24, 3));
    assert!(t.train.freeze_mapping);
    let (want, got) = (state_dict(&mut Teacher::new(&device).0, false), state_dict(&mut t.g.mapping, false));
    assert_eq!(want, got, "G's mapping is not the teacher's");
    assert_eq!(state_dict(&mut t.g_ema.mapping, false), want);
    assert!(notes.iter().any(|n| n.contains("teacher's (frozen)")), "{notes:?}");
}

#[test]
fn a_starting_generator_must_match_the_run() {
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 1);
    let dir = tempfile::tempdir().unwrap();
    let (g, d) = tiny(16);
    let mut src = Trainer::new(TrainConfig { seed: 5, ..Default::default() }, &g, &d, &device).unwrap();
    let file = dir.path().join("g.safetensors");
    limner_gan::generate::save_generator(&file, &mut src.g, &Default::default(), limner_core::Precision::F32).unwrap();
    let run = NewRun { init_generator: Some(&file), ..new_run(TrainConfig::default(), None) };
    let mut t = new_trainer(run, &data, &device, &mut |_| {}).unwrap();
    assert_eq!(state_dict(&mut t.g, false), state_dict(&mut src.g, false));
    assert_eq!(state_dict(&mut t.g_ema, false), state_dict(&mut src.g, false));
    let (mut other, _) = tiny(16);
    other.w_dim = 16;
    let run = NewRun { generator: other, init_generator: Some(&file), ..new_run(TrainConfig::default(), None) };
    let e = new_trainer(run, &data, &device, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("g.safetensors") && e.contains("--w-dim"), "{e}");
}

#[test]
fn a_starting_generator_at_half_the_resolution_grows_and_renders_its_image_upsampled() {
    use burn::tensor::{Distribution, Tensor};
    use limner_gan::layers::{upsample2d, NoiseMode};
    let device = Device::flex();
    let data = common::Discs::new(8, 32, 1);
    let dir = tempfile::tempdir().unwrap();
    let (g16, d16) = tiny(16);
    let mut src = Trainer::new(TrainConfig { seed: 5, ..Default::default() }, &g16, &d16, &device).unwrap();
    let file = dir.path().join("g16.safetensors");
    limner_gan::generate::save_generator(&file, &mut src.g, &Default::default(), limner_core::Precision::F32).unwrap();
    let (g32, d32) = tiny(32);
    let run = NewRun { generator: g32, discriminator: d32, init_generator: Some(&file), ..new_run(TrainConfig::default(), None) };
    let mut notes = vec![];
    let t = new_trainer(run, &data, &device, &mut |n| notes.push(n)).unwrap();
    assert!(notes.iter().any(|n| n.contains("grow") && n.contains("b32")), "{notes:?}");
    assert_eq!(t.g.config.img_resolution, 32);
    assert_eq!(t.g.num_ws(), src.g.num_ws() + 2);
    let top = t.g.synthesis.blocks.last().unwrap();
    assert_eq!(top.resolution, 32);
    assert_eq!(top.torgb.weight.clone().abs().max().into_scalar::<f32>(), 0.0);
    // same seed, same person: the grown G's image is the source's image upsampled
    let z: Tensor<2> = Tensor::random([3, 32], Distribution::Normal(0.0, 1.0), &device);
    let small = src.g.forward(z.clone(), 1.0, &mut NoiseMode::None); // [3, 3, 16, 16]
    for g in [&t.g, &t.g_ema] {
        let big = g.forward(z.clone(), 1.0, &mut NoiseMode::None); // [3, 3, 32, 32]
        assert_eq!(big.dims(), [3, 3, 32, 32]);
        let diff: f32 = (big - upsample2d(small.clone())).abs().max().into_scalar();
        assert!(diff < 1e-5, "grown image differs from the upsampled source by {diff}");
    }
    // two octaves is refused, naming the file
    let (g64, d64) = tiny(64);
    let data64 = common::Discs::new(8, 64, 1);
    let run = NewRun { generator: g64, discriminator: d64, init_generator: Some(&file), ..new_run(TrainConfig::default(), None) };
    let e = new_trainer(run, &data64, &device, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("g16.safetensors") && e.contains("twice its resolution"), "{e}");
}

#[test]
fn resuming_applies_the_overrides_and_checks_them() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join(CHECKPOINT_FILE);
    let (g, d) = tiny(16);
    Trainer::new(TrainConfig::default(), &g, &d, &device).unwrap().save(&ckpt).unwrap();
    let mut notes = vec![];
    let o = ResumeOverrides { noise_off: true, adversarial: Some(0.5), g_lr: Some(0.0005), ..Default::default() };
    let t = resume_trainer(&ckpt, &o, &device, &mut |n| notes.push(n)).unwrap();
    assert!(t.train.noise_off && t.train.adversarial == 0.5);
    // a learning rate given on resume replaces the run's; the one not given stays
    assert!(t.train.g_lr == 0.0005 && t.train.d_lr == TrainConfig::default().d_lr, "{:?}", (t.train.g_lr, t.train.d_lr));
    assert!(notes.iter().any(|n| n.contains("adversarial weight 0.5")) && notes.iter().any(|n| n.contains("noise inputs switched off")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("G learning rate 0.0005 from 0.0 kimg on")) && !notes.iter().any(|n| n.contains("D learning rate")), "{notes:?}");
    // a learning rate that is not a positive number is refused
    for bad in [0.0, -1.0, f64::NAN] {
        let o = ResumeOverrides { d_lr: Some(bad), ..Default::default() };
        let e = format!("{:#}", resume_trainer(&ckpt, &o, &device, &mut |_| {}).err().unwrap());
        assert!(e.contains("D's learning rate must be a number > 0"), "{bad}: {e}");
    }
    // an override that leaves nothing to train is refused, naming the checkpoint
    let o = ResumeOverrides { adversarial: Some(0.0), ..Default::default() };
    let e = format!("{:#}", resume_trainer(&ckpt, &o, &device, &mut |_| {}).err().unwrap());
    assert!(e.contains("nothing to train") && e.contains(CHECKPOINT_FILE), "{e}");
}

/// `--init RUN`: a new run starts from a training run's checkpoint with its G, G_ema and D
/// (and their configs, whatever the run's own options said), a fresh optimiser and step 0;
/// a dataset at another resolution is refused.
#[test]
fn transfer_from_a_run_takes_g_g_ema_and_d() {
    use limner_gan::setup::InitNetworks;
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 1);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join(CHECKPOINT_FILE);
    let (g, d) = tiny(16);
    let mut src = Trainer::new(TrainConfig { batch: 4, seed: 5, ..Default::default() }, &g, &d, &device).unwrap();
    src.step(&data).unwrap();
    src.save(&ckpt).unwrap();
    let init = InitNetworks::checkpoint("src", &ckpt, &device).unwrap();
    // the run's own configs differ (CLI defaults): the source's win
    let run = NewRun { generator: GeneratorConfig::limner_default(16), discriminator: DiscriminatorConfig::limner_default(16), init: Some(init), ..new_run(TrainConfig::default(), None) };
    let mut notes = vec![];
    let mut t = new_trainer(run, &data, &device, &mut |n| notes.push(n)).unwrap();
    assert_eq!(t.step, 0);
    assert_eq!(state_dict(&mut t.g, false), state_dict(&mut src.g, false));
    assert_eq!(state_dict(&mut t.g_ema, false), state_dict(&mut src.g_ema, false));
    assert_eq!(state_dict(&mut t.d, false), state_dict(&mut src.d, false));
    assert!(notes.iter().any(|n| n.contains("D starts from src's discriminator")), "{notes:?}");
    let init = InitNetworks::checkpoint("src", &ckpt, &device).unwrap();
    let run = NewRun { init: Some(init), ..new_run(TrainConfig::default(), None) };
    let e = new_trainer(run, &common::Discs::new(8, 32, 1), &device, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("16×16") && e.contains("32×32") && e.contains("--res 16"), "{e}");
}
