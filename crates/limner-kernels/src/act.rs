//! Fused `bias + leaky_relu(alpha) * gain` on f32 NC(HW) data, with its backward.
//!
//! Layout: `x [n, c, hw]` (row-major; `hw` = product of the dims after the channel dim, 1 for
//! fully connected layers), bias `[c]` broadcast over dim 1.
//!
//! Forward (the same float operations, in the same order, as burn's composition
//! `leaky_relu(x + b, alpha).mul_scalar(gain)`, so bit-identical to it):
//! `v = x + b[c]`, `y = (v < 0 ? v * alpha : v) * gain`.
//!
//! Backward from the saved *output* (gain > 0, so `y < 0` exactly when `v < 0`, up to
//! denormals flushing to -0): `dx = y < 0 ? (dy * gain) * alpha : dy * gain` (again burn's
//! operation order), `db[c] = sum over n and hw of dx`. No mask tensor is stored.
//!
//! Threading: rayon tasks over contiguous blocks of `(sample, channel)` rows. The bias
//! gradient is reduced in a fixed order independent of the partition and of the thread
//! count: each row is summed by one task (16 fixed lanes, then the lanes in order), and the
//! row sums are added per channel sequentially over the samples. So it is bit-identical run
//! to run (the trainer's bit-exact resume relies on this).

use rayon::prelude::*;

/// A `Vec<f32>` of length `n` with unspecified contents; every caller writes all of it
/// before reading (skips a memset pass).
#[allow(clippy::uninit_vec)]
fn out_vec(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 has no invalid bit patterns; the callers overwrite every element.
    unsafe { v.set_len(n) };
    v
}

/// Elements per rayon task (about 64 KiB of f32 per input stream).
const TASK_ELEMS: usize = 16 * 1024;

fn rows_per_task(hw: usize) -> usize {
    (TASK_ELEMS / hw.max(1)).max(1)
}

#[inline(always)]
fn act(v: f32, alpha: f32, gain: f32) -> f32 {
    (if v < 0.0 { v * alpha } else { v }) * gain
}

#[inline(always)]
fn act_grad(y: f32, dy: f32, alpha: f32, gain: f32) -> f32 {
    let g = dy * gain;
    if y < 0.0 {
        g * alpha
    } else {
        g
    }
}

/// `y = act(x + b) * gain` (see the module docs). `x.len() == n * c * hw`, `b.len() == c`.
pub fn bias_lrelu_fwd(x: &[f32], b: &[f32], c: usize, hw: usize, alpha: f32, gain: f32) -> Vec<f32> {
    assert_eq!(b.len(), c);
    assert_eq!(x.len() % (c * hw).max(1), 0);
    let mut y = out_vec(x.len());
    let rpt = rows_per_task(hw);
    y.par_chunks_mut(rpt * hw).zip(x.par_chunks(rpt * hw)).enumerate().for_each(|(t, (yc, xc))| {
        let row0 = t * rpt;
        for (r, (yr, xr)) in yc.chunks_mut(hw).zip(xc.chunks(hw)).enumerate() {
            let bc = b[(row0 + r) % c];
            for (yo, &xi) in yr.iter_mut().zip(xr) {
                *yo = act(xi + bc, alpha, gain);
            }
        }
    });
    y
}

/// Sum of `v` in a fixed order: 16 lane accumulators over the full 16-blocks, then the
/// lanes in order, then the tail.
#[inline]
fn fixed_sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut blocks = v.chunks_exact(16);
    for blk in &mut blocks {
        for (a, x) in acc.iter_mut().zip(blk) {
            *a += *x;
        }
    }
    let mut s = 0.0f32;
    for a in acc {
        s += a;
    }
    for x in blocks.remainder() {
        s += *x;
    }
    s
}

/// Backward of [`bias_lrelu_fwd`] from its output `y` and the output gradient `dy`:
/// returns `(dx, db)` (see the module docs). `db` is `None` when not wanted.
pub fn bias_lrelu_bwd(
    y: &[f32],
    dy: &[f32],
    c: usize,
    hw: usize,
    alpha: f32,
    gain: f32,
    want_db: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(y.len(), dy.len());
    let rows = y.len() / hw.max(1);
    assert_eq!(rows * hw, y.len());
    assert_eq!(rows % c.max(1), 0);
    let mut dx = out_vec(y.len());
    let mut row_sums = vec![0.0f32; if want_db { rows } else { 0 }];
    let rpt = rows_per_task(hw);
    let body = |dxc: &mut [f32], yc: &[f32], dyc: &[f32], sums: Option<&mut [f32]>| {
        for ((dxo, &yi), &gi) in dxc.iter_mut().zip(yc).zip(dyc) {
            *dxo = act_grad(yi, gi, alpha, gain);
        }
        if let Some(sums) = sums {
            for (s, r) in sums.iter_mut().zip(dxc.chunks(hw)) {
                *s = fixed_sum(r);
            }
        }
    };
    let blocks = dx.par_chunks_mut(rpt * hw).zip(y.par_chunks(rpt * hw)).zip(dy.par_chunks(rpt * hw));
    if want_db {
        blocks.zip(row_sums.par_chunks_mut(rpt)).for_each(|(((dxc, yc), dyc), s)| body(dxc, yc, dyc, Some(s)));
    } else {
        blocks.for_each(|((dxc, yc), dyc)| body(dxc, yc, dyc, None));
    }
    let db = want_db.then(|| {
        let mut db = vec![0.0f32; c];
        for row in row_sums.chunks(c) {
            for (d, s) in db.iter_mut().zip(row) {
                *d += *s;
            }
        }
        db
    });
    (dx, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_finite_reasoning_and_is_deterministic() {
        let (n, c, hw) = (3, 5, 37);
        let x: Vec<f32> = (0..n * c * hw).map(|i| ((i * 7919) % 23) as f32 * 0.25 - 2.9).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * 0.1 - 0.2).collect();
        let y = bias_lrelu_fwd(&x, &b, c, hw, 0.2, 1.5);
        let dy: Vec<f32> = (0..n * c * hw).map(|i| ((i * 104729) % 13) as f32 - 6.0).collect();
        let (dx, db) = bias_lrelu_bwd(&y, &dy, c, hw, 0.2, 1.5, true);
        let db = db.unwrap();
        let mut want = vec![0.0f64; c];
        for i in 0..x.len() {
            let ch = (i / hw) % c;
            let v = x[i] + b[ch];
            let d = dy[i] as f64 * 1.5 * if v < 0.0 { 0.2 } else { 1.0 };
            assert!((dx[i] as f64 - d).abs() < 1e-5, "dx[{i}]");
            want[ch] += d;
        }
        for ch in 0..c {
            assert!((db[ch] as f64 - want[ch]).abs() < 1e-3, "db[{ch}] {} vs {}", db[ch], want[ch]);
        }
        for _ in 0..3 {
            let (dx2, db2) = bias_lrelu_bwd(&y, &dy, c, hw, 0.2, 1.5, true);
            assert_eq!(dx, dx2);
            assert_eq!(db, db2.unwrap());
        }
    }
}
