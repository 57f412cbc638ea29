//! Transfer learning from the embedded default model (`limner train --init default`).

use burn::tensor::Device;
use limner_gan::ada::AdaConfig;
use limner_gan::augment::DiffAugment;
use limner_gan::config::{DiscriminatorConfig, GeneratorConfig};
use limner_gan::generate::{generate_seeds, GenerateOptions};
use limner_gan::params::state_dict;
use limner_gan::setup::{new_trainer, NewRun};
use limner_gan::train::{DataSource, TrainConfig};

/// Grey images with a bright square, at any resolution.
struct Squares {
    res: usize,
    n: usize,
}

impl DataSource for Squares {
    fn len(&self) -> usize {
        self.n
    }
    fn resolution(&self) -> usize {
        self.res
    }
    fn fill_batch(&self, indices: &[usize], _flips: &[bool], out: &mut Vec<f32>) {
        out.clear();
        let r = self.res;
        for &i in indices {
            for _c in 0..3 {
                for y in 0..r {
                    for x in 0..r {
                        let inside = (r / 4..r / 2 + i % (r / 4)).contains(&y) && (r / 4..3 * r / 4).contains(&x);
                        out.push(if inside { 0.8 } else { -0.3 });
                    }
                }
            }
        }
    }
}

fn run(init: limner_gan::setup::InitNetworks) -> NewRun<'static> {
    // the CLI's own defaults (z 128, channel_base 1024): --init replaces them by the model's
    NewRun {
        generator: GeneratorConfig::limner_default(64),
        discriminator: DiscriminatorConfig::limner_default(64),
        train: TrainConfig { batch: 4, ada: Some(AdaConfig { kimg: 100.0, ..Default::default() }), diffaugment: DiffAugment::none(), freeze_d: 2, ..Default::default() },
        teacher: None,
        init_generator: None,
        init: Some(init),
    }
}

/// `--init default`: the run takes the default model's architecture, and the generator the
/// first step trains (and its EMA) renders exactly the default model's images; D starts fresh
/// (the default ships none), sized like G, and the notes say so. A training step then runs
/// from there. A dataset at another resolution is refused with the fix in the message.
#[test]
fn init_default_starts_from_the_default_models_weights() {
    let device = Device::flex();
    let (mut default, _) = limner_models::load_default(&device).unwrap();
    let data = Squares { res: default.config.img_resolution, n: 8 };
    let mut notes = vec![];
    let init = limner_models::init_networks("default", None, &device).unwrap();
    let mut t = new_trainer(run(init), &data, &device, &mut |n| notes.push(n)).unwrap();
    assert_eq!(t.g.config, default.config);
    assert_eq!((t.d.config.channel_base, t.d.config.channel_max), (default.config.channel_base, default.config.channel_max));
    assert_eq!(state_dict(&mut t.g, false), state_dict(&mut default, false), "G is not the default's");
    let seeds = [0u64, 1, 2, 3];
    let opts = GenerateOptions { psi: 1.0, noise: 1.0, batch: 4 };
    let want = generate_seeds(&default, &seeds, &opts);
    assert_eq!(generate_seeds(&t.g, &seeds, &opts), want, "G's first-step output is not the default's");
    assert_eq!(generate_seeds(&t.g_ema, &seeds, &opts), want, "G_ema's output is not the default's");
    // D is the one trained beside the default generator, shipped with it (f16)
    assert!(notes.iter().any(|n| n.contains("D starts from default's discriminator")), "{notes:?}");
    let mut shipped = limner_gan::import::load_discriminator_bytes(limner_models::DEFAULT_DISCRIMINATOR.unwrap(), "shipped D", &device).unwrap();
    assert_eq!(state_dict(&mut t.d, false), state_dict(&mut shipped, false), "D is not the default's shipped discriminator");
    assert_eq!(t.d.config.img_resolution, default.config.img_resolution);
    assert!(notes.iter().any(|n| n.contains("FreezeD") && n.contains("b128, b64")), "{notes:?}");
    let s = t.step(&data).unwrap();
    assert_eq!(s.augment_p, Some(0.0));
    assert!(s.loss_g.is_finite() && s.loss_d.is_finite());
    assert_ne!(generate_seeds(&t.g, &seeds, &opts), want, "one step did not train G");

    let e = new_trainer(run(limner_models::init_networks("default", None, &device).unwrap()), &Squares { res: 32, n: 8 }, &device, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("128×128") && e.contains("32×32") && e.contains("--res 128"), "{e}");
    let e = limner_models::init_networks("random-face", None, &device).err().unwrap().to_string();
    assert!(e.contains("does not train"), "{e}");
}
