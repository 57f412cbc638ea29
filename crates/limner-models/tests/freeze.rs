//! `limner models freeze` (`limner_models::freeze`): a run becomes a shippable model folder whose
//! reference images are exactly what the half-precision file renders.

use burn::tensor::Device;
use limner_data::imageio::{load_image_rgb, seed_file_name};
use limner_gan::config::{DiscriminatorConfig, GeneratorConfig};
use limner_gan::generate::{generate_seeds_rgb8, load_generator_file, GenerateOptions};
use limner_gan::train::{TrainConfig, Trainer};
use limner_models::REFERENCE_SEEDS;

#[test]
fn a_frozen_run_is_half_precision_with_its_grid_and_reference_images() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let g = GeneratorConfig { z_dim: 32, w_dim: 32, mapping_layers: 2, channel_base: 512, channel_max: 64, ..GeneratorConfig::limner_default(16) };
    let d = DiscriminatorConfig { channel_base: 512, channel_max: 64, ..DiscriminatorConfig::limner_default(16) };
    Trainer::new(TrainConfig::default(), &g, &d, &device).unwrap().save(&run.join(limner_gan::setup::CHECKPOINT_FILE)).unwrap();

    let out = dir.path().join("model");
    let f = limner_models::freeze(&run, &out, Some("a test".into()), &device).unwrap();
    assert_eq!((f.file.clone(), f.resolution, f.kimg), (out.join("generator.safetensors"), 16, Some(0.0)));
    assert_eq!(f.bytes, std::fs::metadata(&f.file).unwrap().len());
    let st = std::fs::read(&f.file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert!(st.tensors().iter().all(|(_, v)| v.dtype() == safetensors::Dtype::F16), "not half precision");
    let (w, h, _) = load_image_rgb(&out.join("grid.png"), 1 << 20).unwrap();
    assert_eq!((w, h), (8 * 18 + 2, 8 * 18 + 2), "an 8x8 grid of 16 px faces, 2 px apart");

    // the references are what the frozen file renders, pixel for pixel
    let (frozen, info) = load_generator_file(&f.file, &device).unwrap();
    assert_eq!(info.notes.as_deref(), Some("a test"));
    let want = generate_seeds_rgb8(&frozen, &REFERENCE_SEEDS, &GenerateOptions { psi: 0.7, noise: 1.0, batch: 16 }, &mut |_| {});
    for (s, want) in REFERENCE_SEEDS.iter().zip(&want) {
        let (_, _, got) = load_image_rgb(&out.join("reference").join(seed_file_name(*s)), 1 << 20).unwrap();
        assert_eq!(&got, want, "reference seed {s}");
    }
    // a folder without a run is an error naming it
    let e = format!("{:#}", limner_models::freeze(dir.path(), &out, None, &device).unwrap_err());
    assert!(e.contains(limner_gan::setup::CHECKPOINT_FILE), "{e}");
}
