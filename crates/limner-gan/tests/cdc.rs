//! Adapting a pretrained generator while keeping its variety: the cross-domain consistency
//! loss (`limner_gan::cdc`) and frozen parts of G (`freeze_g`, `freeze_mapping`).

mod common;

use burn::tensor::{Device, Tensor};
use limner_gan::cdc::cdc_loss;
use limner_gan::config::tiny;
use limner_gan::layers::Init;
use limner_gan::params::{state_dict, tensor_from, to_vec};
use limner_gan::setup::{new_trainer, InitNetworks, NewRun};
use limner_gan::train::{TrainConfig, Trainer};
use limner_gan::Generator;
use rand::SeedableRng;

fn randn(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    tensor_from(limner_core::randn_host(&mut rng, shape.iter().product()), shape, device)
}

fn scalar(t: Tensor<1>) -> f32 {
    to_vec(&t)[0]
}

#[test]
fn cdc_is_zero_for_the_same_relations_and_positive_for_a_collapsed_batch() {
    let device = Device::flex();
    let layers = [randn([6, 4, 3, 3], 1, &device), randn([6, 8, 2, 2], 2, &device)];
    // the same features, and the same features scaled per sample (cosine similarities ignore
    // each sample's magnitude): no loss
    assert_eq!(scalar(cdc_loss(&layers, &layers)), 0.0);
    let scale = tensor_from(vec![0.5, 1.0, 2.0, 3.0, 0.25, 7.0], [6, 1, 1, 1], &device);
    let scaled: Vec<Tensor<4>> = layers.iter().map(|l| l.clone() * scale.clone()).collect();
    assert!(scalar(cdc_loss(&layers, &scaled)).abs() < 1e-5);
    // a batch collapsed onto its first sample (plus a little noise): every similarity is ~1,
    // the distributions flat, the source's structure lost
    let collapsed: Vec<Tensor<4>> = layers
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let dims = l.dims();
            let first = l.clone().narrow(0, 0, 1).repeat_dim(0, dims[0]);
            first + randn(dims, 10 + k as u64, &device).mul_scalar(0.01)
        })
        .collect();
    let c = scalar(cdc_loss(&layers, &collapsed));
    // near-zero cosine similarities already give a near-flat softmax, so the collapse costs
    // ~0.015 here: far above the 1e-5 of a mere rescaling
    assert!(c > 1e-3, "a collapsed batch costs {c}");
    // half-way between the two costs less than the collapse
    let half: Vec<Tensor<4>> = layers.iter().zip(&collapsed).map(|(a, b)| (a.clone() + b.clone()).mul_scalar(0.5)).collect();
    let h = scalar(cdc_loss(&layers, &half));
    assert!(h > 0.0 && h < c, "half-collapsed {h}, collapsed {c}");
    // the gradient flows into the adapted side and a step along it lowers the loss
    let adapted = collapsed[0].clone().autodiff().require_grad();
    let loss = cdc_loss(&layers[..1], &[adapted.clone()]);
    let before = scalar(loss.clone().inner());
    let grads = loss.backward();
    let g = adapted.grad(&grads).expect("a gradient on the adapted features");
    assert!(to_vec(&g).iter().any(|v| *v != 0.0));
    let gmax = to_vec(&g).iter().map(|v| v.abs()).fold(0.0, f32::max);
    let stepped = collapsed[0].clone() - g.mul_scalar(0.05 / gmax);
    let after = scalar(cdc_loss(&layers[..1], &[stepped]));
    assert!(after < before, "a gradient step moved the loss from {before} to {after}");
}

/// A transfer run with CDC: the loss is 0 on the first step (G is its source), positive once G
/// has moved, the source never trains, and a resumed run continues bit for bit (the source
/// is in the checkpoint).
#[test]
fn cdc_runs_against_a_frozen_source_and_resumes_exactly() {
    let device = Device::flex();
    let data = common::Discs::new(12, 16, 3);
    let (gcfg, dcfg) = tiny(16);
    let source = Generator::init(&gcfg, &mut Init::new(42, &device));
    let train = TrainConfig { batch: 4, cdc: 10.0, seed: 3, r1_interval: 2, ..Default::default() };
    let start = |device: &Device| {
        let run = NewRun { generator: gcfg.clone(), discriminator: dcfg.clone(), train: train.clone(), teacher: None, init_generator: None, init: Some(InitNetworks::generator("src", source.clone())) };
        let mut notes = vec![];
        let t = new_trainer(run, &data, device, &mut |n| notes.push(n)).unwrap();
        assert!(notes.iter().any(|n| n.contains("CDC")), "{notes:?}");
        t
    };
    let mut a = start(&device);
    let first = a.step(&data).unwrap().cdc.expect("CDC reported");
    assert!(first.abs() < 1e-6, "G is its source on the first step, yet CDC is {first}");
    let mut later = vec![];
    for _ in 0..5 {
        later.push(a.step(&data).unwrap().cdc.unwrap());
    }
    assert!(later.iter().all(|c| c.is_finite()) && later.iter().any(|c| *c > 0.0), "{later:?}");
    let mut src = source.clone();
    assert_eq!(state_dict(a.source.as_mut().unwrap(), false), state_dict(&mut src, false), "the source trained");

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("half.safetensors");
    let mut b = start(&device);
    for _ in 0..3 {
        b.step(&data).unwrap();
    }
    b.save(&ckpt).unwrap();
    let mut b = Trainer::load(&ckpt, &device).unwrap();
    assert!(b.source.is_some(), "the checkpoint lost the source");
    for _ in 0..3 {
        b.step(&data).unwrap();
    }
    assert_eq!(a.checkpoint_bytes().unwrap(), b.checkpoint_bytes().unwrap(), "a resumed CDC run differs");

    // CDC without a source is refused, before and during a run
    let run = NewRun { generator: gcfg.clone(), discriminator: dcfg.clone(), train: train.clone(), teacher: None, init_generator: None, init: None };
    let e = new_trainer(run, &data, &device, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("--cdc") && e.contains("--init"), "{e}");
    let mut t = Trainer::new(train.clone(), &gcfg, &dcfg, &device).unwrap();
    let e = t.step(&data).unwrap_err().to_string();
    assert!(e.contains("no source generator"), "{e}");
    let e = Trainer::new(TrainConfig { batch: 2, ..train }, &gcfg, &dcfg, &device).err().unwrap().to_string();
    assert!(e.contains("at least 3"), "{e}");
}

/// `freeze_g` keeps the first synthesis blocks and `freeze_mapping` the mapping network
/// exactly as they start (in G and its EMA); the finer blocks train.
#[test]
fn frozen_g_blocks_and_mapping_stay_unchanged() {
    let device = Device::flex();
    let data = common::Discs::new(8, 16, 5);
    let (gcfg, dcfg) = tiny(16); // blocks b4, b8, b16
    let train = TrainConfig { batch: 4, freeze_g: 2, freeze_mapping: true, ema_kimg: 0.01, ..Default::default() };
    let mut t = Trainer::new(train, &gcfg, &dcfg, &device).unwrap();
    let (g0, ema0) = (state_dict(&mut t.g, false), state_dict(&mut t.g_ema, false));
    for _ in 0..3 {
        t.step(&data).unwrap();
    }
    for (net, before, after) in [("G", &g0, state_dict(&mut t.g, false)), ("G_ema", &ema0, state_dict(&mut t.g_ema, false))] {
        let mut trained = 0;
        for (k, v) in before {
            let frozen = k.starts_with("mapping.") || k.starts_with("synthesis.b4.") || k.starts_with("synthesis.b8.");
            if frozen {
                assert_eq!(v.data, after[k].data, "{net}.{k} changed although frozen");
            } else if v.data != after[k].data {
                trained += 1;
            }
        }
        assert!(trained >= 4, "{net}: only {trained} tensors of b16 trained");
    }
    let e = Trainer::new(TrainConfig { freeze_g: 3, ..Default::default() }, &gcfg, &dcfg, &device).err().unwrap().to_string();
    assert!(e.contains("--freeze-g 3") && e.contains("3 synthesis blocks"), "{e}");
}
