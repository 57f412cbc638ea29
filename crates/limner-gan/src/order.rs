//! The data order: a fresh seeded permutation of the dataset every epoch.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seeded permutation of `0..len` for one epoch.
pub fn permutation(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    let mut v: Vec<usize> = (0..len).collect();
    v.shuffle(&mut rng);
    v
}
