//! Raw f32 NCHW convolution kernels: per-sample im2col + `gemm` (AVX-512 through the
//! `x86-v4` feature burn already enables on the shared `gemm` crate), with the two backward
//! passes written by hand.
//!
//! Geometry: square kernel `k`, stride `s`, symmetric zero padding `p`, dilation 1, groups 1.
//!
//! Threading: one rayon task per contiguous chunk of samples, each running a single-threaded
//! gemm (no nested parallelism, no per-tile scatter). When the batch is smaller than the pool,
//! the gemm itself is parallel instead. Forward and input-gradient results do not depend on
//! the partition. The weight gradient is a sum over the batch: it is accumulated in a fixed
//! number of fixed chunks (`WGRAD_CHUNKS`, independent of the thread count) and the partial
//! sums are added in chunk order, so it is bit-identical run to run.

use rayon::prelude::*;

/// Partial sums of the weight gradient (fixed, so the summation order never depends on
/// the number of threads).
pub const WGRAD_CHUNKS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

impl Geom {
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.p - self.k) / self.s + 1
    }
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.p - self.k) / self.s + 1
    }
    /// rows of the im2col matrix: `cin * k * k`
    pub fn ckk(&self) -> usize {
        self.cin * self.k * self.k
    }
    pub fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.cout * self.ho() * self.wo()
    }
    /// 1x1, stride 1, no padding: the input plane already is the im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.s == 1 && self.p == 0
    }
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `col[(ci, kh, kw), (oh, ow)] = x[ci, oh*s + kh - p, ow*s + kw - p]` (zero outside).
fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let hw = ho * wo;
    for ci in 0..g.cin {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for kh in 0..g.k {
            for kw in 0..g.k {
                let row = &mut col[((ci * g.k + kh) * g.k + kw) * hw..][..hw];
                for oh in 0..ho {
                    let dst = &mut row[oh * wo..(oh + 1) * wo];
                    let ih = (oh * g.s + kh) as isize - g.p as isize;
                    if ih < 0 || ih >= g.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[ih as usize * g.w..(ih as usize + 1) * g.w];
                    // valid ow: 0 <= ow*s + kw - p < w
                    let lo = if kw >= g.p { 0 } else { (g.p - kw).div_ceil(g.s) };
                    let hi = if g.w + g.p > kw { ((g.w + g.p - kw - 1) / g.s + 1).min(wo) } else { 0 };
                    let hi = hi.max(lo);
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if g.s == 1 {
                        let start = lo + kw - g.p;
                        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                    } else {
                        for ow in lo..hi {
                            dst[ow] = src[ow * g.s + kw - g.p];
                        }
                    }
                }
            }
        }
    }
}

/// `dx[ci, ih, iw] += col[(ci, kh, kw), (oh, ow)]`, the adjoint of [`im2col`]
/// (`dx` must be zeroed first). Fixed loop order: deterministic.
fn col2im(g: &Geom, col: &[f32], dx: &mut [f32]) {
    let (ho, wo) = (g.ho(), g.wo());
    let hw = ho * wo;
    for ci in 0..g.cin {
        let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for kh in 0..g.k {
            for kw in 0..g.k {
                let row = &col[((ci * g.k + kh) * g.k + kw) * hw..][..hw];
                let lo = if kw >= g.p { 0 } else { (g.p - kw).div_ceil(g.s) };
                let hi = if g.w + g.p > kw { ((g.w + g.p - kw - 1) / g.s + 1).min(wo) } else { 0 };
                for oh in 0..ho {
                    let ih = (oh * g.s + kh) as isize - g.p as isize;
                    if ih < 0 || ih >= g.h as isize || hi <= lo {
                        continue;
                    }
                    let src = &row[oh * wo..(oh + 1) * wo];
                    let dst = &mut plane[ih as usize * g.w..(ih as usize + 1) * g.w];
                    if g.s == 1 {
                        let start = lo + kw - g.p;
                        for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                            *d += *s;
                        }
                    } else {
                        for ow in lo..hi {
                            dst[ow * g.s + kw - g.p] += src[ow];
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (= or +=) lhs[m, k] * rhs[k, n]` with explicit (column, row) strides.
#[allow(clippy::too_many_arguments)]
unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m, n, k, dst, 1, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Splits `0..n` into `parts` contiguous ranges (the first ones one longer).
fn ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (q, r) = (n / parts, n % parts);
    let mut out = Vec::with_capacity(parts);
    let mut a = 0;
    for i in 0..parts {
        let b = a + q + usize::from(i < r);
        out.push(a..b);
        a = b;
    }
    out
}

/// Runs `f(sample range, its slice of out)` on contiguous sample chunks, one per thread;
/// returns the gemm parallelism each chunk should use.
fn per_sample_chunks<F>(n: usize, out: &mut [f32], per_sample: usize, f: F)
where
    F: Fn(std::ops::Range<usize>, &mut [f32], gemm::Parallelism) + Sync,
{
    let t = threads();
    if n >= t && t > 1 {
        let rs = ranges(n, t);
        let mut slices: Vec<(std::ops::Range<usize>, &mut [f32])> = Vec::with_capacity(rs.len());
        let mut rest = out;
        for r in rs {
            let (a, b) = rest.split_at_mut(r.len() * per_sample);
            slices.push((r, a));
            rest = b;
        }
        slices.into_par_iter().for_each(|(r, o)| f(r, o, gemm::Parallelism::None));
    } else {
        let par = if t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
        f(0..n, out, par);
    }
}

/// Forward: `y[b] = W[cout, ckk] * im2col(x[b])`. `w` is `[cout, cin, k, k]` contiguous.
pub fn conv_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    assert_eq!(x.len(), g.n * in_len);
    assert_eq!(w.len(), g.cout * ckk);
    let mut y = vec![0.0f32; g.n * out_len];
    per_sample_chunks(g.n, &mut y, out_len, |r, out, par| {
        let mut col = if g.is_pointwise() { Vec::new() } else { vec![0.0f32; ckk * hw] };
        for (i, b) in r.enumerate() {
            let xb = &x[b * in_len..(b + 1) * in_len];
            let rhs = if g.is_pointwise() {
                xb
            } else {
                im2col(g, xb, &mut col);
                &col
            };
            let yb = &mut out[i * out_len..(i + 1) * out_len];
            unsafe {
                mm(g.cout, hw, ckk, yb.as_mut_ptr(), hw as isize, false, w.as_ptr(), 1, ckk as isize, rhs.as_ptr(), 1, hw as isize, par);
            }
        }
    });
    y
}

/// Input gradient: `dx[b] = col2im(W^T * dy[b])`.
pub fn conv_xgrad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    if g.s == 1 && g.k > 1 && g.p < g.k {
        // Stride 1: the input gradient is a forward conv of dy with the spatially flipped,
        // in/out-swapped kernel and padding k-1-p. Its gemm has K = cout*k*k instead of
        // cout and needs no col2im scatter (much better for few channels at high resolution).
        let k = g.k;
        let mut wf = vec![0.0f32; w.len()];
        for co in 0..g.cout {
            for ci in 0..g.cin {
                for kh in 0..k {
                    for kw in 0..k {
                        wf[((ci * g.cout + co) * k + kh) * k + kw] = w[((co * g.cin + ci) * k + (k - 1 - kh)) * k + (k - 1 - kw)];
                    }
                }
            }
        }
        let gf = Geom { n: g.n, cin: g.cout, h: g.ho(), w: g.wo(), cout: g.cin, k, s: 1, p: k - 1 - g.p };
        debug_assert_eq!((gf.ho(), gf.wo()), (g.h, g.w));
        return conv_fwd(&gf, dy, &wf);
    }
    assert_eq!(dy.len(), g.n * out_len);
    assert_eq!(w.len(), g.cout * ckk);
    let mut dx = vec![0.0f32; g.n * in_len];
    per_sample_chunks(g.n, &mut dx, in_len, |r, out, par| {
        let mut col = if g.is_pointwise() { Vec::new() } else { vec![0.0f32; ckk * hw] };
        for (i, b) in r.enumerate() {
            let dyb = &dy[b * out_len..(b + 1) * out_len];
            let dxb = &mut out[i * in_len..(i + 1) * in_len];
            // lhs = W^T: element (row r, col o) at w[o * ckk + r]
            let dst = if g.is_pointwise() { dxb.as_mut_ptr() } else { col.as_mut_ptr() };
            unsafe {
                mm(ckk, hw, g.cout, dst, hw as isize, false, w.as_ptr(), ckk as isize, 1, dyb.as_ptr(), 1, hw as isize, par);
            }
            if !g.is_pointwise() {
                col2im(g, &col, dxb);
            }
        }
    });
    dx
}

/// Weight gradient: `dW = sum_b dy[b] * im2col(x[b])^T`, summed in a fixed order.
pub fn conv_wgrad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    assert_eq!(x.len(), g.n * in_len);
    assert_eq!(dy.len(), g.n * out_len);
    let wlen = g.cout * ckk;
    let chunks = ranges(g.n, WGRAD_CHUNKS);
    let t = threads();
    // gemm-level parallelism only when there are fewer chunks than threads
    let par = if chunks.len() < t && t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
    let partial = |r: std::ops::Range<usize>| -> Vec<f32> {
        let mut dw = vec![0.0f32; wlen];
        let mut col = if g.is_pointwise() { Vec::new() } else { vec![0.0f32; ckk * hw] };
        for (i, b) in r.enumerate() {
            let xb = &x[b * in_len..(b + 1) * in_len];
            let rhs = if g.is_pointwise() {
                xb
            } else {
                im2col(g, xb, &mut col);
                &col
            };
            let dyb = &dy[b * out_len..(b + 1) * out_len];
            // rhs = col^T: element (j, r) at col[r * hw + j]
            unsafe {
                mm(g.cout, ckk, hw, dw.as_mut_ptr(), ckk as isize, i > 0, dyb.as_ptr(), 1, hw as isize, rhs.as_ptr(), hw as isize, 1, par);
            }
        }
        dw
    };
    let parts: Vec<Vec<f32>> = if matches!(par, gemm::Parallelism::None) && t > 1 {
        chunks.into_par_iter().map(partial).collect()
    } else {
        chunks.into_iter().map(partial).collect()
    };
    let mut it = parts.into_iter();
    let mut dw = it.next().unwrap_or_else(|| vec![0.0; wlen]);
    for p in it {
        for (a, b) in dw.iter_mut().zip(&p) {
            *a += *b;
        }
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain loops, f64 accumulation.
    fn naive_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (ho, wo) = (g.ho(), g.wo());
        let mut y = vec![0.0; g.n * g.out_len()];
        for b in 0..g.n {
            for o in 0..g.cout {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut acc = 0.0f64;
                        for c in 0..g.cin {
                            for kh in 0..g.k {
                                for kw in 0..g.k {
                                    let ih = (oh * g.s + kh) as isize - g.p as isize;
                                    let iw = (ow * g.s + kw) as isize - g.p as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                        continue;
                                    }
                                    acc += x[((b * g.cin + c) * g.h + ih as usize) * g.w + iw as usize] as f64
                                        * w[((o * g.cin + c) * g.k + kh) * g.k + kw] as f64;
                                }
                            }
                        }
                        y[((b * g.cout + o) * ho + oh) * wo + ow] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn fwd_matches_naive_odd_geometries() {
        let mut seed = 1u32;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
                })
                .collect()
        };
        for &(n, cin, h, w, cout, k, s, p) in &[
            (1, 3, 4, 4, 5, 3, 1, 1),
            (3, 2, 7, 5, 4, 3, 2, 0),
            (2, 3, 9, 9, 2, 3, 2, 1),
            (1, 4, 4, 4, 3, 1, 1, 0),
            (2, 3, 5, 6, 2, 3, 1, 2),
        ] {
            let g = Geom { n, cin, h, w, cout, k, s, p };
            let x = rnd(g.n * g.in_len());
            let wt = rnd(g.cout * g.ckk());
            let a = conv_fwd(&g, &x, &wt);
            let b = naive_fwd(&g, &x, &wt);
            let err = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "{g:?}: {err}");
        }
    }
}
