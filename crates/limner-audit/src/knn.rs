//! Exact nearest neighbours by blocked matrix products.
//!
//! `|q − b|² = |q|² + |b|² − 2 q·b`: the dot products of a block of queries with a block of the
//! base come from one matrix product (burn's `matmul` on the flex CPU device, limner's gemm),
//! the norms are added on the host and each query keeps its `k` best. The `k` kept per query are
//! then measured again directly (in f64), so a near copy's tiny distance is exact rather than
//! the difference of two large norms. Memory stays at one `QUERY_BLOCK × BASE_BLOCK` block.
//!
//! Measured against an index: `bench/audit.sh` times this beside numpy brute force on the same
//! vectors (see `bench/results/audit.md`).

use burn::tensor::{Device, Tensor, TensorData};
use limner_core::to_vec;
use rayon::prelude::*;

/// Query rows per block.
pub const QUERY_BLOCK: usize = 1024;
/// Base rows per block.
pub const BASE_BLOCK: usize = 4096;

/// Row-major vectors of one length.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "Matrix: {} values for {rows}×{cols}", data.len());
        Self { rows, cols, data }
    }

    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R], cols: usize) -> Self {
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            assert_eq!(r.as_ref().len(), cols, "Matrix::from_rows: rows differ in length");
            data.extend_from_slice(r.as_ref());
        }
        Self { rows: rows.len(), cols, data }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix { rows: idx.len(), cols: self.cols, data }
    }

    fn sq_norms(&self) -> Vec<f32> {
        (0..self.rows).map(|i| self.row(i).iter().map(|v| v * v).sum()).collect()
    }
}

/// Euclidean distance in f64.
pub fn exact_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>().sqrt() as f32
}

/// The `k` nearest base rows of each query: `index[q * k + j]`, `dist[q * k + j]` (Euclidean,
/// ascending). Fewer than `k` base rows leave `usize::MAX` / infinity at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub index: Vec<usize>,
    pub dist: Vec<f32>,
}

impl Neighbours {
    /// The nearest distance of each query.
    pub fn nearest(&self) -> Vec<f32> {
        self.dist.chunks(self.k).map(|c| c[0]).collect()
    }
    /// The nearest base row of each query.
    pub fn nearest_index(&self) -> Vec<usize> {
        self.index.chunks(self.k).map(|c| c[0]).collect()
    }
    /// The `j`-th (0-based) nearest distance of each query.
    pub fn kth(&self, j: usize) -> Vec<f32> {
        self.dist.chunks(self.k).map(|c| c[j]).collect()
    }
}

/// Calls `f(q0, b0, block)` for every block: `block[i * nb + j]` is `|q|² + |b|² − 2 q·b` of
/// query `q0 + i` and base row `b0 + j` (`nb` = the block's base rows).
fn for_each_block(queries: &Matrix, base: &Matrix, device: &Device, mut f: impl FnMut(usize, usize, usize, &[f32])) {
    assert_eq!(queries.cols, base.cols, "queries have {} values, the base {}", queries.cols, base.cols);
    let d = queries.cols;
    let (qn, bn) = (queries.sq_norms(), base.sq_norms());
    // the base blocks, transposed once ([d, nb]) and kept on the device
    let base_blocks: Vec<(usize, usize, Tensor<2>)> = (0..base.rows)
        .step_by(BASE_BLOCK)
        .map(|b0| {
            let nb = BASE_BLOCK.min(base.rows - b0);
            let t = Tensor::<2>::from_data(TensorData::new(base.data[b0 * d..(b0 + nb) * d].to_vec(), [nb, d]), device).transpose();
            (b0, nb, t)
        })
        .collect();
    for q0 in (0..queries.rows).step_by(QUERY_BLOCK) {
        let nq = QUERY_BLOCK.min(queries.rows - q0);
        let q = Tensor::<2>::from_data(TensorData::new(queries.data[q0 * d..(q0 + nq) * d].to_vec(), [nq, d]), device);
        for (b0, nb, bt) in &base_blocks {
            let mut g = to_vec(&q.clone().matmul(bt.clone())); // [nq, nb] dot products
            g.par_chunks_mut(*nb).enumerate().for_each(|(i, row)| {
                let a = qn[q0 + i];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (a + bn[b0 + j] - 2.0 * *v).max(0.0);
                }
            });
            f(q0, *b0, *nb, &g);
        }
    }
}

/// The `k` nearest rows of `base` for every row of `queries` (exact). With `skip_self` the
/// queries are the base itself and row `i` is not its own neighbour.
pub fn knn(queries: &Matrix, base: &Matrix, k: usize, skip_self: bool, device: &Device) -> Neighbours {
    assert!(k >= 1, "knn: k must be at least 1");
    let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::with_capacity(k + 1); queries.rows];
    for_each_block(queries, base, device, |q0, b0, nb, block| {
        best[q0..q0 + block.len() / nb].par_iter_mut().enumerate().for_each(|(i, kept)| {
            let row = &block[i * nb..(i + 1) * nb];
            for (j, &v) in row.iter().enumerate() {
                if skip_self && q0 + i == b0 + j {
                    continue;
                }
                if kept.len() < k || v < kept[kept.len() - 1].0 {
                    let at = kept.partition_point(|&(d, _)| d <= v);
                    kept.insert(at, (v, b0 + j));
                    kept.truncate(k);
                }
            }
        });
    });
    let mut index = Vec::with_capacity(queries.rows * k);
    let mut dist = Vec::with_capacity(queries.rows * k);
    for (i, mut kept) in best.into_iter().enumerate() {
        for e in kept.iter_mut() {
            e.0 = exact_distance(queries.row(i), base.row(e.1));
        }
        kept.sort_by(|a, b| a.0.total_cmp(&b.0));
        for j in 0..k {
            let (d, ix) = kept.get(j).copied().unwrap_or((f32::INFINITY, usize::MAX));
            index.push(ix);
            dist.push(d);
        }
    }
    Neighbours { k, index, dist }
}

/// Whether each query lies inside at least one ball around a base row (`|q − b_j| ≤ radius_j`):
/// the k-NN manifold of Kynkäänniemi et al. (2019).
pub fn inside_any_ball(queries: &Matrix, base: &Matrix, radius: &[f32], device: &Device) -> Vec<bool> {
    assert_eq!(radius.len(), base.rows, "one radius per base row");
    let r2: Vec<f32> = radius.iter().map(|r| r * r).collect();
    let mut inside = vec![false; queries.rows];
    for_each_block(queries, base, device, |q0, b0, nb, block| {
        inside[q0..q0 + block.len() / nb].par_iter_mut().enumerate().for_each(|(i, hit)| {
            if !*hit {
                let row = &block[i * nb..(i + 1) * nb];
                *hit = row.iter().zip(&r2[b0..b0 + nb]).any(|(&d2, &r)| d2 <= r * (1.0 + 1e-6));
            }
        });
    });
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rows: usize, cols: usize, seed: u64) -> Matrix {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Matrix::new(rows, cols, (0..rows * cols).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect())
    }

    fn brute(q: &Matrix, b: &Matrix, k: usize, skip_self: bool) -> Vec<Vec<usize>> {
        (0..q.rows)
            .map(|i| {
                let mut all: Vec<(f32, usize)> = (0..b.rows).filter(|&j| !(skip_self && i == j)).map(|j| (exact_distance(q.row(i), b.row(j)), j)).collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                all.into_iter().take(k).map(|e| e.1).collect()
            })
            .collect()
    }

    #[test]
    fn blocked_search_equals_brute_force_across_block_edges() {
        let device = Device::flex();
        // more rows than one block on both sides, and a dimension that is not a power of two
        let (q, b) = (random(QUERY_BLOCK + 37, 19, 1), random(BASE_BLOCK + 301, 19, 2));
        let nn = knn(&q, &b, 3, false, &device);
        let want = brute(&q, &b, 3, false);
        for i in (0..q.rows).step_by(97) {
            assert_eq!(&nn.index[i * 3..i * 3 + 3], want[i].as_slice(), "query {i}");
            for j in 0..3 {
                assert!((nn.dist[i * 3 + j] - exact_distance(q.row(i), b.row(want[i][j]))).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn self_search_skips_the_query_and_near_copies_get_exact_distances() {
        let device = Device::flex();
        let mut b = random(300, 64, 3);
        // row 1 is row 0 shifted by 1e-4 in one value: distance 1e-4, far below f32 norm rounding
        let r0 = b.row(0).to_vec();
        b.data[64..128].copy_from_slice(&r0);
        b.data[64] += 1e-4;
        let nn = knn(&b, &b, 2, true, &device);
        assert_eq!(nn.index[0], 1);
        assert_eq!(nn.index[2], 0);
        assert!((nn.dist[0] - 1e-4).abs() < 1e-6, "{}", nn.dist[0]);
        assert!(nn.index.chunks(2).enumerate().all(|(i, c)| !c.contains(&i)));
        assert_eq!(brute(&b, &b, 2, true)[17], nn.index[34..36].to_vec());
    }

    #[test]
    fn balls_contain_what_lies_inside_them() {
        let device = Device::flex();
        let base = Matrix::new(2, 2, vec![0.0, 0.0, 10.0, 0.0]);
        let q = Matrix::new(3, 2, vec![0.5, 0.0, 9.0, 0.0, 5.0, 0.0]);
        assert_eq!(inside_any_ball(&q, &base, &[1.0, 1.0], &device), vec![true, true, false]);
        assert_eq!(inside_any_ball(&q, &base, &[5.0, 0.1], &device), vec![true, false, true]);
    }
}
