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
pub(crate) fn out_vec(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 has no invalid bit patterns; the callers overwrite every element.
    unsafe { v.set_len(n) };
    v
}

/// Elements per rayon task (about 64 KiB of f32 per input stream).
const TASK_ELEMS: usize = 16 * 1024;

/// Passes over fewer elements than this run on the calling thread (same tasks, in order):
/// handing a memory-bound pass to the rayon pool costs thread wake-ups, which dominate small
/// passes and, on a loaded machine, even large ones (see bench/NOTES.md).
/// `LIMNER_ACT_PAR_MIN` overrides it.
fn par_min_elems() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var("LIMNER_ACT_PAR_MIN").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20))
}

/// `with_min_len` for a pass over `elems` elements in `tasks` tasks: all of them (no split:
/// rayon folds on the calling thread) below [`par_min_elems`], else 1.
fn min_len(elems: usize, tasks: usize) -> usize {
    if elems < par_min_elems() {
        tasks.max(1)
    } else {
        1
    }
}

fn rows_per_task(hw: usize) -> usize {
    (TASK_ELEMS / hw.max(1)).max(1)
}

// Both are written as a multiply by a selected constant rather than an `if` around the
// multiply: LLVM vectorises the select (an `if` compiled to a branch, mispredicted on random
// signs, made the pass ~15x slower). `v * 1.0 == v` exactly, so the results are the same
// bits as burn's `v < 0 ? v * alpha : v` then `* gain`.
#[inline(always)]
fn act(v: f32, alpha: f32, gain: f32) -> f32 {
    let m = if v < 0.0 { alpha } else { 1.0 };
    (v * m) * gain
}

#[inline(always)]
fn act_grad(y: f32, dy: f32, alpha: f32, gain: f32) -> f32 {
    let m = if y < 0.0 { alpha } else { 1.0 };
    (dy * gain) * m
}

/// `y = act(x + b) * gain` (see the module docs). `x.len() == n * c * hw`, `b.len() == c`.
pub fn bias_lrelu_fwd(x: &[f32], b: &[f32], c: usize, hw: usize, alpha: f32, gain: f32) -> Vec<f32> {
    let mut y = out_vec(x.len());
    bias_lrelu_fwd_to(Some(x), &mut y, b, c, hw, alpha, gain);
    y
}

/// [`bias_lrelu_fwd`] in place: `xy` holds `x` on entry and `y` on return.
pub fn bias_lrelu_fwd_inplace(xy: &mut [f32], b: &[f32], c: usize, hw: usize, alpha: f32, gain: f32) {
    bias_lrelu_fwd_to(None, xy, b, c, hw, alpha, gain);
}

/// `dst = act(src + b) * gain`, `src = None`: `dst` itself.
fn bias_lrelu_fwd_to(src: Option<&[f32]>, dst: &mut [f32], b: &[f32], c: usize, hw: usize, alpha: f32, gain: f32) {
    assert_eq!(b.len(), c);
    assert_eq!(dst.len() % (c * hw).max(1), 0);
    if let Some(x) = src {
        assert_eq!(x.len(), dst.len());
    }
    map_rows(src, dst, hw, |row| {
        let bc = b[row % c];
        move |v: f32| act(v + bc, alpha, gain)
    });
}

/// `dst[row, i] = f(row)(src[row, i])` over rows of `hw` values (`src = None`: `dst` itself),
/// in parallel over contiguous blocks of rows ([`rows_per_task`]); `f(row)` is called once per
/// row, its result once per element.
fn map_rows<F, G>(src: Option<&[f32]>, dst: &mut [f32], hw: usize, f: F)
where
    F: Fn(usize) -> G + Sync,
    G: Fn(f32) -> f32,
{
    let rpt = rows_per_task(hw);
    let ml = min_len(dst.len(), dst.len().div_ceil(rpt * hw));
    dst.par_chunks_mut(rpt * hw).enumerate().with_min_len(ml).for_each(|(t, yc)| {
        let row0 = t * rpt;
        let xc = src.map(|x| &x[row0 * hw..][..yc.len()]);
        for (r, yr) in yc.chunks_mut(hw).enumerate() {
            let g = f(row0 + r);
            match xc {
                Some(xc) => {
                    for (yo, &xi) in yr.iter_mut().zip(&xc[r * hw..(r + 1) * hw]) {
                        *yo = g(xi);
                    }
                }
                None => {
                    for yo in yr.iter_mut() {
                        *yo = g(*yo);
                    }
                }
            }
        }
    });
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
    let mut dx = dy.to_vec();
    let db = bias_lrelu_bwd_inplace(y, &mut dx, c, hw, alpha, gain, want_db);
    (dx, db)
}

/// [`bias_lrelu_bwd`] in place: `g` holds `dy` on entry and `dx` on return; returns `db`.
pub fn bias_lrelu_bwd_inplace(
    y: &[f32],
    g: &mut [f32],
    c: usize,
    hw: usize,
    alpha: f32,
    gain: f32,
    want_db: bool,
) -> Option<Vec<f32>> {
    assert_eq!(y.len(), g.len());
    let rows = y.len() / hw.max(1);
    assert_eq!(rows * hw, y.len());
    assert_eq!(rows % c.max(1), 0);
    let mut row_sums = vec![0.0f32; if want_db { rows } else { 0 }];
    let rpt = rows_per_task(hw);
    let body = |gc: &mut [f32], yc: &[f32], sums: Option<&mut [f32]>| {
        for (go, &yi) in gc.iter_mut().zip(yc) {
            *go = act_grad(yi, *go, alpha, gain);
        }
        if let Some(sums) = sums {
            for (s, r) in sums.iter_mut().zip(gc.chunks(hw)) {
                *s = fixed_sum(r);
            }
        }
    };
    let ml = min_len(g.len(), g.len().div_ceil(rpt * hw));
    let blocks = g.par_chunks_mut(rpt * hw).zip(y.par_chunks(rpt * hw));
    if want_db {
        blocks.zip(row_sums.par_chunks_mut(rpt)).with_min_len(ml).for_each(|((gc, yc), s)| body(gc, yc, Some(s)));
    } else {
        blocks.with_min_len(ml).for_each(|(gc, yc)| body(gc, yc, None));
    }
    want_db.then(|| {
        let mut db = vec![0.0f32; c];
        for row in row_sums.chunks(c) {
            for (d, s) in db.iter_mut().zip(row) {
                *d += *s;
            }
        }
        db
    })
}

/// Per-(sample, channel) scaling, StyleGAN2's modulation `y = x * s[n, c]` on `[n, c, hw]`
/// (burn's `x * s.reshape([n, c, 1, 1])`, bit-identical), into `dst`; `src = None`: in place.
pub fn scale_rows_to(src: Option<&[f32]>, dst: &mut [f32], s: &[f32], hw: usize) {
    let rows = dst.len() / hw.max(1);
    assert_eq!(rows * hw, dst.len());
    assert_eq!(s.len(), rows);
    if let Some(x) = src {
        assert_eq!(x.len(), dst.len());
    }
    map_rows(src, dst, hw, |row| {
        let sr = s[row];
        move |v: f32| v * sr
    });
}

/// Backward of [`scale_rows_to`] in place: `g` holds `dy` on entry and `dx = dy * s` on
/// return; returns `ds[row] = sum_i dy * x` (16 fixed lanes per row, then the lanes in
/// order: independent of the partition) when `want_ds`.
pub fn scale_rows_bwd_inplace(x: &[f32], g: &mut [f32], s: &[f32], hw: usize, want_ds: bool) -> Option<Vec<f32>> {
    assert_eq!(x.len(), g.len());
    let rows = g.len() / hw.max(1);
    assert_eq!(rows * hw, g.len());
    assert_eq!(s.len(), rows);
    let mut ds = vec![0.0f32; if want_ds { rows } else { 0 }];
    let rpt = rows_per_task(hw);
    let body = |t: usize, gc: &mut [f32], dsc: Option<&mut [f32]>| {
        let row0 = t * rpt;
        let xc = &x[row0 * hw..][..gc.len()];
        if let Some(dsc) = dsc {
            for (r, d) in dsc.iter_mut().enumerate() {
                let (gr, xr) = (&gc[r * hw..(r + 1) * hw], &xc[r * hw..(r + 1) * hw]);
                let mut acc = [0.0f32; 16];
                let full = hw / 16 * 16;
                for (gb, xb) in gr[..full].chunks_exact(16).zip(xr[..full].chunks_exact(16)) {
                    for l in 0..16 {
                        acc[l] += gb[l] * xb[l];
                    }
                }
                let mut sum = 0.0f32;
                for a in acc {
                    sum += a;
                }
                for i in full..hw {
                    sum += gr[i] * xr[i];
                }
                *d = sum;
            }
        }
        for (r, gr) in gc.chunks_mut(hw).enumerate() {
            let sr = s[row0 + r];
            for v in gr.iter_mut() {
                *v *= sr;
            }
        }
    };
    let ml = min_len(g.len(), g.len().div_ceil(rpt * hw));
    if want_ds {
        g.par_chunks_mut(rpt * hw)
            .zip(ds.par_chunks_mut(rpt))
            .enumerate()
            .with_min_len(ml)
            .for_each(|(t, (gc, dc))| body(t, gc, Some(dc)));
    } else {
        g.par_chunks_mut(rpt * hw).enumerate().with_min_len(ml).for_each(|(t, gc)| body(t, gc, None));
    }
    want_ds.then_some(ds)
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

/// The tail of a StyleGAN2 synthesis layer, fused: demodulation (a per-(sample, channel)
/// scale `d`), per-pixel noise shared by the channels (`nadd [nn, hw]`, `nn` = 1 or `n`),
/// bias and leaky ReLU: `v = ((x * d[n,c]) + nadd[n or 0, i]) + b[c]`,
/// `y = (v < 0 ? v * alpha : v) * gain` (burn's operation order: bit-identical to the
/// composition). One pass, one rayon task per sample.
pub fn demod_noise_bias_lrelu_fwd(
    x: &[f32],
    d: &[f32],
    nadd: &[f32],
    b: &[f32],
    geom: [usize; 3],
    alpha: f32,
    gain: f32,
) -> Vec<f32> {
    let mut y = out_vec(x.len());
    demod_fwd_to(Some(x), &mut y, d, nadd, b, geom, alpha, gain);
    y
}

/// [`demod_noise_bias_lrelu_fwd`] in place (`xy`: `x` on entry, `y` on return).
pub fn demod_noise_bias_lrelu_fwd_inplace(
    xy: &mut [f32],
    d: &[f32],
    nadd: &[f32],
    b: &[f32],
    geom: [usize; 3],
    alpha: f32,
    gain: f32,
) {
    demod_fwd_to(None, xy, d, nadd, b, geom, alpha, gain);
}

#[allow(clippy::too_many_arguments)]
fn demod_fwd_to(
    src: Option<&[f32]>,
    dst: &mut [f32],
    d: &[f32],
    nadd: &[f32],
    b: &[f32],
    [n, c, hw]: [usize; 3],
    alpha: f32,
    gain: f32,
) {
    assert_eq!(dst.len(), n * c * hw);
    if let Some(x) = src {
        assert_eq!(x.len(), dst.len());
    }
    assert_eq!(d.len(), n * c);
    assert_eq!(b.len(), c);
    let nn = nadd.len() / hw.max(1);
    assert!(nadd.len() == hw * nn && (nn == 1 || nn == n), "noise must be [1 or n, hw]");
    if dst.is_empty() {
        return;
    }
    let ml = min_len(dst.len(), n);
    dst.par_chunks_mut(c * hw).enumerate().with_min_len(ml).for_each(|(s, ys)| {
        let z = &nadd[if nn == 1 { 0 } else { s * hw }..][..hw];
        let xs = src.map(|x| &x[s * c * hw..(s + 1) * c * hw]);
        for (ch, yr) in ys.chunks_mut(hw).enumerate() {
            let (dc, bc) = (d[s * c + ch], b[ch]);
            match xs {
                Some(xs) => {
                    for ((yo, &xi), &zi) in yr.iter_mut().zip(&xs[ch * hw..(ch + 1) * hw]).zip(z) {
                        *yo = act(((xi * dc) + zi) + bc, alpha, gain);
                    }
                }
                None => {
                    for (yo, &zi) in yr.iter_mut().zip(z) {
                        *yo = act(((*yo * dc) + zi) + bc, alpha, gain);
                    }
                }
            }
        }
    });
}

/// Gradients of [`demod_noise_bias_lrelu_fwd`], from its input `x`, output `y` and output
/// gradient `dy`.
pub struct DemodGrads {
    /// `[n, c, hw]`
    pub dx: Vec<f32>,
    /// `[n, c]`: `sum_i dv * x`
    pub dd: Vec<f32>,
    /// `[nn, hw]`: `sum_c dv` (and over the samples when `nn == 1`)
    pub dnoise: Vec<f32>,
    /// `[c]`: `sum_{n, i} dv`
    pub db: Vec<f32>,
}

/// Backward of [`demod_noise_bias_lrelu_fwd`]: `dv = y < 0 ? (dy * gain) * alpha : dy * gain`,
/// `dx = dv * d`, and the three reductions of [`DemodGrads`], in a fixed order (per sample
/// in one task: 16 lanes over each row, channels in order; then the samples in order).
#[allow(clippy::too_many_arguments)]
pub fn demod_noise_bias_lrelu_bwd(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    d: &[f32],
    nn: usize,
    geom: [usize; 3],
    alpha: f32,
    gain: f32,
) -> DemodGrads {
    let mut dx = dy.to_vec();
    let (dd, dnoise, db) = demod_noise_bias_lrelu_bwd_inplace(x, y, &mut dx, d, nn, geom, alpha, gain);
    DemodGrads { dx, dd, dnoise, db }
}

/// [`demod_noise_bias_lrelu_bwd`] in place: `dx` holds `dy` on entry and `dx` on return;
/// returns `(dd, dnoise, db)`.
#[allow(clippy::too_many_arguments)]
pub fn demod_noise_bias_lrelu_bwd_inplace(
    x: &[f32],
    y: &[f32],
    dx: &mut [f32],
    d: &[f32],
    nn: usize,
    [n, c, hw]: [usize; 3],
    alpha: f32,
    gain: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), n * c * hw);
    assert_eq!(y.len(), x.len());
    assert_eq!(dx.len(), x.len());
    assert_eq!(d.len(), n * c);
    assert!(nn == 1 || nn == n);
    let mut dd = vec![0.0f32; n * c];
    let mut row_sums = vec![0.0f32; n * c];
    let mut nsum = vec![0.0f32; n * hw];
    if n * c * hw == 0 {
        return (dd, vec![0.0; nn * hw], vec![0.0; c]);
    }
    let sample = |s: usize, dxs: &mut [f32], dds: &mut [f32], rs: &mut [f32], ns: &mut [f32]| {
        let base = s * c * hw;
        ns.fill(0.0);
        for ch in 0..c {
            let o = base + ch * hw;
            let (xr, yr) = (&x[o..o + hw], &y[o..o + hw]);
            let dxr = &mut dxs[ch * hw..(ch + 1) * hw];
            let dc = d[s * c + ch];
            let mut acc_d = [0.0f32; 16];
            let mut acc_b = [0.0f32; 16];
            let full = hw / 16 * 16;
            let mut i = 0;
            while i < full {
                for l in 0..16 {
                    let dv = act_grad(yr[i + l], dxr[i + l], alpha, gain);
                    dxr[i + l] = dv * dc;
                    acc_d[l] += dv * xr[i + l];
                    acc_b[l] += dv;
                    ns[i + l] += dv;
                }
                i += 16;
            }
            let (mut sd, mut sb) = (0.0f32, 0.0f32);
            for l in 0..16 {
                sd += acc_d[l];
                sb += acc_b[l];
            }
            for i in full..hw {
                let dv = act_grad(yr[i], dxr[i], alpha, gain);
                dxr[i] = dv * dc;
                sd += dv * xr[i];
                sb += dv;
                ns[i] += dv;
            }
            dds[ch] = sd;
            rs[ch] = sb;
        }
    };
    dx.par_chunks_mut(c * hw)
        .zip(dd.par_chunks_mut(c))
        .zip(row_sums.par_chunks_mut(c))
        .zip(nsum.par_chunks_mut(hw))
        .enumerate()
        .with_min_len(min_len(x.len(), n))
        .for_each(|(s, (((dxs, dds), rs), ns))| sample(s, dxs, dds, rs, ns));
    let mut db = vec![0.0f32; c];
    for row in row_sums.chunks(c) {
        for (a, v) in db.iter_mut().zip(row) {
            *a += *v;
        }
    }
    let dnoise = if nn == 1 {
        let mut acc = vec![0.0f32; hw];
        for row in nsum.chunks(hw) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += *v;
            }
        }
        acc
    } else {
        nsum
    };
    (dd, dnoise, db)
}
