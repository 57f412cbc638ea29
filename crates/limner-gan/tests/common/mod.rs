//! Shared helpers for the training tests: a synthetic dataset made by the test itself.

use limner_gan::train::DataSource;

/// Coloured discs on a grey background: each image has one disc of a random colour,
/// radius and position. Values are NCHW in [-1, 1].
pub struct Discs {
    pub res: usize,
    pub images: Vec<Vec<f32>>,
}

impl Discs {
    pub fn new(count: usize, res: usize, seed: u64) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let images = (0..count)
            .map(|_| {
                let colour: [f32; 3] = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)];
                let r = rng.random_range(0.2..0.35) * res as f32;
                let cx = rng.random_range(0.35..0.65) * res as f32;
                let cy = rng.random_range(0.35..0.65) * res as f32;
                let mut img = vec![0.0f32; 3 * res * res];
                for c in 0..3 {
                    for y in 0..res {
                        for x in 0..res {
                            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                            img[c * res * res + y * res + x] = if d < r { colour[c] } else { -0.2 };
                        }
                    }
                }
                img
            })
            .collect();
        Self { res, images }
    }
}

impl DataSource for Discs {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn resolution(&self) -> usize {
        self.res
    }
    fn fill_batch(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        fill_batch(&self.images, self.res, indices, flips, out)
    }
}

/// Copies images (each NCHW-flattened `3 × res × res`) into a batch, mirrored where `flips` says.
pub fn fill_batch(images: &[Vec<f32>], res: usize, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
    out.clear();
    let r = res;
    for (&i, &f) in indices.iter().zip(flips) {
        let img = &images[i];
        for c in 0..3 {
            for y in 0..r {
                for x in 0..r {
                    let sx = if f { r - 1 - x } else { x };
                    out.push(img[c * r * r + y * r + sx]);
                }
            }
        }
    }
}
