//! Seeds: a seed's latent `z` and its noise stream. Every generator in limner (the GAN, the
//! fetched random-face) draws them here, so seed 7 means the same latent everywhere.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;


/// Draws `n` standard normal numbers from `rng`.
pub fn randn_host(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    use rand_distr::{Distribution as _, StandardNormal};
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// The latent `z` of a seed: `z_dim` standard normals from ChaCha8 seeded with the seed.
pub fn latent_for_seed(seed: u64, z_dim: usize) -> Vec<f32> {
    randn_host(&mut ChaCha8Rng::seed_from_u64(seed), z_dim)
}

/// The noise RNG of a seed (stream 1: independent of the latent, which uses stream 0).
pub fn noise_rng_for_seed(seed: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(1);
    r
}

/// Latents for a list of seeds, `[N, z_dim]`.
#[cfg(feature = "tensors")]
pub fn latents_for_seeds(seeds: &[u64], z_dim: usize, device: &burn::tensor::Device) -> burn::tensor::Tensor<2> {
    let data: Vec<f32> = seeds.iter().flat_map(|&s| latent_for_seed(s, z_dim)).collect();
    crate::tensor::tensor_from(data, [seeds.len(), z_dim], device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_deterministic_and_its_noise_differs_from_its_latent() {
        assert_eq!(latent_for_seed(7, 16), latent_for_seed(7, 16));
        assert_ne!(latent_for_seed(7, 16), latent_for_seed(8, 16));
        let noise = randn_host(&mut noise_rng_for_seed(7), 16);
        assert_ne!(noise, latent_for_seed(7, 16));
        // a longer latent starts with the shorter one (z_dim does not reshuffle the stream)
        assert_eq!(latent_for_seed(3, 32)[..16], latent_for_seed(3, 16)[..]);
    }
}
