//! The statistics of the audit: percentiles, the Wilson interval of a copy rate, the
//! Mann–Whitney U test, k-means cells and Meehan et al.'s C_T, and Kynkäänniemi et al.'s
//! precision and recall.

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::knn::{inside_any_ball, knn, Matrix};

/// The `p`-th percentile (0–100) with linear interpolation between order statistics (numpy's
/// default). NaN for an empty slice.
pub fn percentile(values: &[f32], p: f64) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let t = (pos - lo as f64) as f32;
    v[lo] + (v[hi] - v[lo]) * t
}

/// The Wilson score interval of `k` successes in `n` trials at `z` (1.96: 95 %): `(low, high)`.
/// `(0, 1)` when `n` is 0.
pub fn wilson(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The Mann–Whitney U of `a` against `b` — the number of pairs with `a_i > b_j`, ties counting
/// one half — z-scored under the null hypothesis of one distribution (no tie correction):
/// negative when `a` tends to be smaller.
pub fn mann_whitney_z(a: &[f32], b: &[f32]) -> f64 {
    let (m, n) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut all: Vec<(f32, bool)> = a.iter().map(|&v| (v, true)).chain(b.iter().map(|&v| (v, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // rank sum of `a`, ties sharing their mean rank
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += all[i..=j].iter().filter(|e| e.1).count() as f64 * mean_rank;
        i = j + 1;
    }
    let u = rank_sum - m * (m + 1.0) / 2.0;
    (u - m * n / 2.0) / (m * n * (m + n + 1.0) / 12.0).sqrt()
}

/// k-means (k-means++ seeding from ChaCha8(`seed`), then Lloyd's iterations until no point
/// moves or `iters`): the centroids and each point's cell.
pub fn kmeans(x: &Matrix, k: usize, iters: usize, seed: u64, device: &Device) -> (Matrix, Vec<usize>) {
    let k = k.clamp(1, x.rows.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = vec![rng.random_range(0..x.rows)];
    let mut d2: Vec<f64> = (0..x.rows).map(|i| sq(x.row(i), x.row(centres[0]))).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        let next = if total <= 0.0 {
            rng.random_range(0..x.rows)
        } else {
            let mut t = rng.random::<f64>() * total;
            d2.iter().position(|&d| {
                t -= d;
                t <= 0.0
            })
            .unwrap_or(x.rows - 1)
        };
        centres.push(next);
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(sq(x.row(i), x.row(next)));
        }
    }
    let mut c = x.select(&centres);
    let mut cell = vec![usize::MAX; x.rows];
    for _ in 0..iters {
        let nearest = knn(x, &c, 1, false, device).nearest_index();
        if nearest == cell {
            break;
        }
        cell = nearest;
        let mut sum = vec![0.0f64; k * x.cols];
        let mut count = vec![0usize; k];
        for (i, &ci) in cell.iter().enumerate() {
            count[ci] += 1;
            for (s, &v) in sum[ci * x.cols..(ci + 1) * x.cols].iter_mut().zip(x.row(i)) {
                *s += v as f64;
            }
        }
        for ci in 0..k {
            if count[ci] > 0 {
                for (dst, s) in c.data[ci * x.cols..(ci + 1) * x.cols].iter_mut().zip(&sum[ci * x.cols..(ci + 1) * x.cols]) {
                    *dst = (*s / count[ci] as f64) as f32;
                }
            }
        }
    }
    if cell.contains(&usize::MAX) {
        cell = knn(x, &c, 1, false, device).nearest_index();
    }
    (c, cell)
}

fn sq(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
}

/// Meehan, Chaudhuri & Dasgupta (2020), "A Non-Parametric Test to Detect Data-Copying in
/// Generative Models": the training set is cut into k-means cells; in each cell the distances of
/// held-out images to their nearest training image (in that cell) are compared with the
/// samples' by the Mann–Whitney test, and the z-scores are averaged weighted by the held-out
/// share of each cell, over the cells holding at least `tau` samples and `tau` held-out images.
/// C_T ≪ 0: the samples sit closer to the training images than fresh images do (copying);
/// ≫ 0: farther (underfitting); about 0: neither.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DataCopying {
    pub c_t: f64,
    pub cells: usize,
    /// cells that held enough samples and held-out images to be counted
    pub cells_used: usize,
    pub tau: usize,
    /// the most negative cell's z-score (a local copying hot spot)
    pub min_cell_z: f64,
}

/// C_T of `samples` and `heldout` against `train` with `cells` k-means cells.
pub fn data_copying(train: &Matrix, heldout: &Matrix, samples: &Matrix, cells: usize, tau: usize, device: &Device) -> DataCopying {
    let (centres, train_cell) = kmeans(train, cells, 30, 7, device);
    let k = centres.rows;
    let cell_of = |x: &Matrix| knn(x, &centres, 1, false, device).nearest_index();
    let (held_cell, sample_cell) = (cell_of(heldout), cell_of(samples));
    let members = |cell: &[usize], c: usize| -> Vec<usize> { cell.iter().enumerate().filter(|e| *e.1 == c).map(|e| e.0).collect() };
    let (mut weighted, mut weight, mut used, mut min_z) = (0.0, 0.0, 0, f64::INFINITY);
    for c in 0..k {
        let (t, h, s) = (members(&train_cell, c), members(&held_cell, c), members(&sample_cell, c));
        if t.is_empty() || h.len() < tau || s.len() < tau {
            continue;
        }
        let tm = train.select(&t);
        let dh = knn(&heldout.select(&h), &tm, 1, false, device).nearest();
        let ds = knn(&samples.select(&s), &tm, 1, false, device).nearest();
        let z = mann_whitney_z(&ds, &dh);
        let w = h.len() as f64 / heldout.rows as f64;
        weighted += w * z;
        weight += w;
        used += 1;
        min_z = min_z.min(z);
    }
    DataCopying { c_t: if weight > 0.0 { weighted / weight } else { f64::NAN }, cells: k, cells_used: used, tau, min_cell_z: if used > 0 { min_z } else { f64::NAN } }
}

/// Kynkäänniemi et al. (2019), "Improved Precision and Recall Metric for Assessing Generative
/// Models": each set's manifold is the union of balls around its points reaching their `k`-th
/// nearest neighbour in the set. Precision: the share of samples inside the training manifold
/// (fidelity); recall: the share of training images inside the samples' manifold (diversity).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
    pub k: usize,
    /// training images used (an even spread of at most as many as the samples, as in the paper)
    pub train_used: usize,
}

pub fn precision_recall(train: &Matrix, samples: &Matrix, k: usize, device: &Device) -> PrecisionRecall {
    let take = train.rows.min(samples.rows.max(k + 1));
    let idx: Vec<usize> = (0..take).map(|i| i * train.rows / take).collect();
    let real = train.select(&idx);
    let r_real = knn(&real, &real, k, true, device).kth(k - 1);
    let r_fake = knn(samples, samples, k, true, device).kth(k - 1);
    let frac = |v: Vec<bool>| v.iter().filter(|&&b| b).count() as f64 / v.len().max(1) as f64;
    PrecisionRecall {
        precision: frac(inside_any_ball(samples, &real, &r_real, device)),
        recall: frac(inside_any_ball(&real, samples, &r_fake, device)),
        k,
        train_used: take,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        // numpy.percentile([1,2,3,4,5], 1) = 1.04
        assert!((percentile(&v, 1.0) - 1.04).abs() < 1e-6);
    }

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 0 of 10: (0, 0.2775); 5 of 10: (0.2366, 0.7634); 99 of 100: (0.9455, 0.9982)
        let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4;
        assert!(close(wilson(0, 10, 1.96), (0.0, 0.2775)), "{:?}", wilson(0, 10, 1.96));
        assert!(close(wilson(5, 10, 1.96), (0.2366, 0.7634)), "{:?}", wilson(5, 10, 1.96));
        assert!(close(wilson(99, 100, 1.96), (0.9455, 0.9982)), "{:?}", wilson(99, 100, 1.96));
    }

    #[test]
    fn mann_whitney_sign_and_size() {
        // scipy.stats.mannwhitneyu([1,2,3],[4,5,6]).statistic = 0 → z = (0 − 4.5)/sqrt(9·7/12)
        let z = mann_whitney_z(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((z - (-4.5 / (63.0f64 / 12.0).sqrt())).abs() < 1e-9, "{z}");
        assert!((mann_whitney_z(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]) + z).abs() < 1e-9);
        // all tied: U = mn/2 → 0
        assert_eq!(mann_whitney_z(&[1.0, 1.0], &[1.0, 1.0, 1.0]), 0.0);
    }

    fn gaussian(n: usize, d: usize, seed: u64, scale: f32) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Normal::new(0.0f32, scale).unwrap();
        Matrix::new(n, d, (0..n * d).map(|_| g.sample(&mut rng)).collect())
    }

    #[test]
    fn kmeans_finds_separated_clusters() {
        let device = Device::flex();
        let mut x = gaussian(200, 2, 1, 0.1);
        for i in 100..200 {
            x.data[i * 2] += 10.0;
        }
        let (_, cell) = kmeans(&x, 2, 20, 3, &device);
        assert!(cell[..100].iter().all(|&c| c == cell[0]) && cell[100..].iter().all(|&c| c == cell[100]) && cell[0] != cell[100]);
    }

    #[test]
    fn c_t_is_negative_for_copies_and_near_zero_for_fresh_draws() {
        let device = Device::flex();
        let train = gaussian(2000, 4, 1, 1.0);
        let heldout = gaussian(1000, 4, 2, 1.0);
        let fresh = gaussian(1000, 4, 3, 1.0);
        // copies: training points with a little noise
        let noise = gaussian(1000, 4, 4, 0.02);
        let copies = Matrix::new(1000, 4, train.data[..4000].iter().zip(&noise.data).map(|(a, b)| a + b).collect());
        let c_fresh = data_copying(&train, &heldout, &fresh, 5, 20, &device);
        let c_copy = data_copying(&train, &heldout, &copies, 5, 20, &device);
        assert!(c_fresh.c_t.abs() < 3.0, "{c_fresh:?}");
        assert!(c_copy.c_t < -10.0, "{c_copy:?}");
        assert_eq!(c_copy.cells_used, 5);
    }

    #[test]
    fn precision_and_recall_see_fidelity_and_diversity() {
        let device = Device::flex();
        let train = gaussian(500, 3, 1, 1.0);
        let same = gaussian(500, 3, 2, 1.0);
        let collapsed = gaussian(500, 3, 3, 0.05); // all samples near the mode: precise, no diversity
        let off = Matrix::new(500, 3, gaussian(500, 3, 4, 1.0).data.iter().map(|v| v + 20.0).collect());
        let pr = precision_recall(&train, &same, 3, &device);
        assert!(pr.precision > 0.85 && pr.recall > 0.85, "{pr:?}");
        let pr = precision_recall(&train, &collapsed, 3, &device);
        assert!(pr.precision > 0.95 && pr.recall < 0.2, "{pr:?}");
        let pr = precision_recall(&train, &off, 3, &device);
        assert!(pr.precision == 0.0 && pr.recall == 0.0, "{pr:?}");
    }
}
