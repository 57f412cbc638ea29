//! The FID-like score and KID between two sets of image features.
//!
//! **FID-like (InceptionV3 `mixed5` pooled, not the published pool3 FID).** The published FID
//! (Heusel et al. 2017) uses the 2048-d `pool3` features of a particular TF InceptionV3 at
//! 299 px; limner has the ImageNet weights only up to `mixed5`, so its features are `mixed5`
//! averaged over space (768-d) at 128 px ([`crate::InceptionV3::pooled_features`]). The
//! formula is the same, the numbers are not comparable with published FIDs: compare limner's
//! own runs with each other, on the same number of images (the estimate is biased by `1/n`).
//!
//! `FD = |μ₁ − μ₂|² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁^½ Σ₂ Σ₁^½)^½)`, with the covariances'
//! square roots from symmetric eigendecompositions (`tr((Σ₁Σ₂)^½)` equals the last trace,
//! whose matrix is symmetric positive semi-definite, so no complex square roots appear).
//!
//! KID (Bińkowski et al. 2018): the unbiased MMD² with the polynomial kernel
//! `k(x, y) = (xᵀy / d + 1)³`, averaged over random subsets; unbiased at any sample size.

use anyhow::{bail, Result};
use nalgebra::{DMatrix, DVector};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Mean and covariance of a set of feature vectors (float64).
#[derive(Clone, Debug)]
pub struct FeatureStats {
    pub n: usize,
    pub mean: DVector<f64>,
    /// Unbiased (`n − 1`) covariance.
    pub cov: DMatrix<f64>,
}

impl FeatureStats {
    /// Statistics of `n ≥ 2` feature vectors of equal length.
    pub fn new<F: AsRef<[f32]>>(features: &[F]) -> Result<Self> {
        let x = to_matrix(features)?;
        let n = x.nrows();
        if n < 2 {
            bail!("need at least 2 feature vectors for a covariance, got {n}");
        }
        let mean = DVector::from_iterator(x.ncols(), x.column_iter().map(|c| c.mean()));
        let centred = DMatrix::from_fn(n, x.ncols(), |i, j| x[(i, j)] - mean[j]);
        let cov = centred.transpose() * &centred / (n as f64 - 1.0);
        Ok(Self { n, mean, cov })
    }
}

fn to_matrix<F: AsRef<[f32]>>(features: &[F]) -> Result<DMatrix<f64>> {
    let d = features.first().map(|f| f.as_ref().len()).unwrap_or(0);
    if d == 0 {
        bail!("no features");
    }
    if let Some(bad) = features.iter().position(|f| f.as_ref().len() != d) {
        bail!("feature vector {bad} has {} values, the first has {d}", features[bad].as_ref().len());
    }
    if features.iter().any(|f| f.as_ref().iter().any(|v| !v.is_finite())) {
        bail!("a feature vector holds a non-finite value");
    }
    Ok(DMatrix::from_fn(features.len(), d, |i, j| features[i].as_ref()[j] as f64))
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are clamped to 0).
pub fn sqrtm_psd(a: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (a + a.transpose()) * 0.5;
    let e = sym.symmetric_eigen();
    let s = DVector::from_iterator(e.eigenvalues.len(), e.eigenvalues.iter().map(|&l| l.max(0.0).sqrt()));
    &e.eigenvectors * DMatrix::from_diagonal(&s) * e.eigenvectors.transpose()
}

/// `tr((Σ₁^½ Σ₂ Σ₁^½)^½)` = `tr((Σ₁ Σ₂)^½)`.
fn trace_sqrt_product(s1: &DMatrix<f64>, s2: &DMatrix<f64>) -> f64 {
    let r = sqrtm_psd(s1);
    let m = &r * s2 * &r;
    let m = (&m + m.transpose()) * 0.5;
    m.symmetric_eigenvalues().iter().map(|&l| l.max(0.0).sqrt()).sum()
}

/// The Fréchet distance between two Gaussians.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.mean.len() != b.mean.len() {
        bail!("feature lengths differ: {} vs {}", a.mean.len(), b.mean.len());
    }
    let d_mean = (&a.mean - &b.mean).norm_squared();
    let fd = d_mean + a.cov.trace() + b.cov.trace() - 2.0 * trace_sqrt_product(&a.cov, &b.cov);
    // rounding can leave −1e-12 for identical sets
    Ok(fd.max(0.0))
}

/// The FID-like score between two feature sets (see the module docs for what it is and is not).
pub fn fid_like<F: AsRef<[f32]>, G: AsRef<[f32]>>(a: &[F], b: &[G]) -> Result<f64> {
    frechet_distance(&FeatureStats::new(a)?, &FeatureStats::new(b)?)
}

/// KID over subsets: the mean of the per-subset unbiased MMD², its standard deviation over the
/// subsets and the standard error of the mean (`std / sqrt(subsets)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kid {
    pub mean: f64,
    pub std: f64,
    pub std_error: f64,
    pub subsets: usize,
    pub subset_size: usize,
}

/// KID with `subsets` random subsets of `subset_size` (clamped to the smaller set) drawn
/// without replacement from each set, from ChaCha8 seeded with `seed`. torch-fidelity's
/// defaults are 100 subsets of 1000.
pub fn kid<F: AsRef<[f32]>, G: AsRef<[f32]>>(a: &[F], b: &[G], subsets: usize, subset_size: usize, seed: u64) -> Result<Kid> {
    let x = to_matrix(a)?;
    let y = to_matrix(b)?;
    if x.ncols() != y.ncols() {
        bail!("feature lengths differ: {} vs {}", x.ncols(), y.ncols());
    }
    let m = subset_size.min(x.nrows()).min(y.nrows());
    if m < 2 || subsets == 0 {
        bail!("KID needs subsets of at least 2 vectors and at least one subset");
    }
    let d = x.ncols() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut vals = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let ix = sample(&mut rng, x.nrows(), m);
        let iy = sample(&mut rng, y.nrows(), m);
        let xs = x.select_rows(ix.iter().collect::<Vec<_>>().iter());
        let ys = y.select_rows(iy.iter().collect::<Vec<_>>().iter());
        vals.push(mmd2_unbiased(&xs, &ys, d));
    }
    let k = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / k;
    let std = if vals.len() > 1 { (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt() } else { 0.0 };
    Ok(Kid { mean, std, std_error: std / k.sqrt(), subsets, subset_size: m })
}

/// The polynomial kernel matrix `(X Yᵀ / d + 1)³`.
fn poly_kernel(x: &DMatrix<f64>, y: &DMatrix<f64>, d: f64) -> DMatrix<f64> {
    (x * y.transpose()).map(|v| (v / d + 1.0).powi(3))
}

/// Unbiased MMD² of two equal-size samples (diagonals of the within-set kernels excluded).
fn mmd2_unbiased(x: &DMatrix<f64>, y: &DMatrix<f64>, d: f64) -> f64 {
    let m = x.nrows() as f64;
    let kxx = poly_kernel(x, x, d);
    let kyy = poly_kernel(y, y, d);
    let kxy = poly_kernel(x, y, d);
    (kxx.sum() - kxx.trace()) / (m * (m - 1.0)) + (kyy.sum() - kyy.trace()) / (m * (m - 1.0)) - 2.0 * kxy.sum() / (m * m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// `n` vectors of length `d`: `x = A z + shift`, z ~ N(0, I).
    fn gaussian(n: usize, d: usize, shift: f32, mix: f32, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
                (0..d).map(|j| z[j] + mix * z[(j + 1) % d] + shift).collect()
            })
            .collect()
    }

    #[test]
    fn identical_sets_score_zero() {
        let a = gaussian(300, 16, 0.0, 0.5, 1);
        let fd = fid_like(&a, &a).unwrap();
        assert!(fd.abs() < 1e-9, "FD of a set with itself = {fd}");
        // the unbiased MMD² of a set with itself is not exactly 0 but −2(tr K − ΣK/m)/(m(m−1)),
        // O(1/m) and far below a real difference (checked in `shifted_set_scores_higher`)
        let k = kid(&a, &a, 1, 300, 0).unwrap();
        let x = to_matrix(&a).unwrap();
        let kxx = poly_kernel(&x, &x, 16.0);
        let m = 300.0;
        let expect = -2.0 * (kxx.trace() - kxx.sum() / m) / (m * (m - 1.0));
        assert!((k.mean - expect).abs() < 1e-9 * expect.abs(), "KID of a set with itself {} vs {expect}", k.mean);
        let c = gaussian(300, 16, 0.5, 0.5, 3);
        let shifted = kid(&a, &c, 1, 300, 0).unwrap().mean;
        assert!(k.mean.abs() < 0.1 * shifted, "KID self {} vs shifted {shifted}", k.mean);
    }

    #[test]
    fn shifted_set_scores_higher() {
        let a = gaussian(400, 16, 0.0, 0.5, 1);
        let b = gaussian(400, 16, 0.0, 0.5, 2); // same distribution, new samples
        let c = gaussian(400, 16, 0.5, 0.5, 3); // mean shifted by 0.5 in every dim: |Δμ|² = 4
        let (fab, fac) = (fid_like(&a, &b).unwrap(), fid_like(&a, &c).unwrap());
        // same distribution: only the O(d²/n) estimation bias; shifted: that plus |Δμ|² = 4
        assert!(fab < 1.0 && (fac - fab - 4.0).abs() < 0.3, "FD same {fab}, shifted {fac}");
        let (kab, kac) = (kid(&a, &b, 20, 200, 7).unwrap(), kid(&a, &c, 20, 200, 7).unwrap());
        assert!(kab.mean.abs() < 3.0 * kab.std_error.max(1e-3), "KID same {kab:?}");
        assert!(kac.mean > kab.mean + 10.0 * kac.std_error, "KID shifted {kac:?} vs same {kab:?}");
    }

    #[test]
    fn frechet_matches_closed_forms() {
        // 1-d: FD = (μ₁ − μ₂)² + (σ₁ − σ₂)²
        let s = |m: f64, v: f64| FeatureStats { n: 2, mean: DVector::from_element(1, m), cov: DMatrix::from_element(1, 1, v) };
        let fd = frechet_distance(&s(1.0, 4.0), &s(-2.0, 9.0)).unwrap();
        assert!((fd - (9.0 + 1.0)).abs() < 1e-12, "{fd}");
        // 2×2, non-commuting covariances: for a 2×2 matrix with non-negative eigenvalues,
        // tr(M^½) = sqrt(tr M + 2 sqrt(det M)), and M = Σ₁Σ₂ has det = det Σ₁ det Σ₂.
        let s1: DMatrix<f64> = DMatrix::from_row_slice(2, 2, &[2.0, 0.7, 0.7, 1.0]);
        let s2: DMatrix<f64> = DMatrix::from_row_slice(2, 2, &[0.5, -0.2, -0.2, 3.0]);
        let tr_sqrt = ((&s1 * &s2).trace() + 2.0 * (s1.determinant() * s2.determinant()).sqrt()).sqrt();
        let mu1 = DVector::from_row_slice(&[0.3, -1.0]);
        let mu2 = DVector::from_row_slice(&[1.0, 0.5]);
        let direct = (&mu1 - &mu2).norm_squared() + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
        let fd = frechet_distance(&FeatureStats { n: 2, mean: mu1, cov: s1.clone() }, &FeatureStats { n: 2, mean: mu2, cov: s2 }).unwrap();
        assert!((fd - direct).abs() < 1e-10, "FD {fd} vs direct {direct}");
        // and the matrix square root squares back
        let r = sqrtm_psd(&s1);
        assert!((&r * &r - &s1).abs().max() < 1e-12);
    }

    #[test]
    fn stats_and_kid_match_direct_sums() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let a: Vec<[f32; 3]> = (0..6).map(|_| [rng.random(), rng.random(), rng.random()]).collect();
        let b: Vec<[f32; 3]> = (0..6).map(|_| [rng.random::<f32>() + 0.3, rng.random(), rng.random()]).collect();
        // covariance by the textbook double loop
        let st = FeatureStats::new(&a).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let mi = a.iter().map(|v| v[i] as f64).sum::<f64>() / 6.0;
                let mj = a.iter().map(|v| v[j] as f64).sum::<f64>() / 6.0;
                let c = a.iter().map(|v| (v[i] as f64 - mi) * (v[j] as f64 - mj)).sum::<f64>() / 5.0;
                assert!((st.cov[(i, j)] - c).abs() < 1e-12);
            }
        }
        // one subset holding every vector = the plain unbiased MMD², written out
        let k = |x: &[f32; 3], y: &[f32; 3]| ((0..3).map(|i| x[i] as f64 * y[i] as f64).sum::<f64>() / 3.0 + 1.0).powi(3);
        let mut xx = 0.0;
        let mut yy = 0.0;
        let mut xy = 0.0;
        for i in 0..6 {
            for j in 0..6 {
                if i != j {
                    xx += k(&a[i], &a[j]);
                    yy += k(&b[i], &b[j]);
                }
                xy += k(&a[i], &b[j]);
            }
        }
        let direct = xx / 30.0 + yy / 30.0 - 2.0 * xy / 36.0;
        let got = kid(&a, &b, 1, 6, 9).unwrap();
        assert!((got.mean - direct).abs() < 1e-12, "KID {} vs direct {direct}", got.mean);
        assert!(got.mean > 0.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(fid_like(&[[1.0f32, 2.0]], &[[1.0f32, 2.0], [0.0, 1.0]]).is_err());
        assert!(fid_like(&[vec![1.0f32, 2.0], vec![1.0]], &[vec![1.0f32, 2.0], vec![0.0, 1.0]]).is_err());
        assert!(fid_like(&[[f32::NAN, 2.0], [1.0, 1.0]], &[[1.0f32, 2.0], [0.0, 1.0]]).is_err());
    }
}
