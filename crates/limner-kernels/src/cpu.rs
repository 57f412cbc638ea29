//! Raw f32 NCHW convolution kernels: per-sample im2col + `gemm` (AVX-512 through the
//! `x86-v4` feature burn already enables on the shared `gemm` crate), with the two backward
//! passes written by hand.
//!
//! Geometry ([`Geom`]): a `kh × kw` kernel, the same stride `s` in both directions, zero
//! padding `ph` rows above and below and `pw` columns left and right, dilation 1, groups 1.
//! burn's conv extension ([`crate::conv2d`]) uses square kernels; the fused conv + bias +
//! ReLU ([`crate::conv_bias_relu`]) any (InceptionV3's 1×7 / 7×1).
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

/// Geometry of a conv: `n` samples of `cin × h × w`, `cout` filters of `kh × kw`, stride `s`
/// in both directions, zero padding `ph` rows above and below, `pw` columns left and right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub s: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Geom {
    /// A square `k × k` kernel with padding `p` on every side.
    #[allow(clippy::too_many_arguments)]
    pub const fn square(n: usize, cin: usize, h: usize, w: usize, cout: usize, k: usize, s: usize, p: usize) -> Self {
        Self { n, cin, h, w, cout, kh: k, kw: k, s, ph: p, pw: p }
    }
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.ph - self.kh) / self.s + 1
    }
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.pw - self.kw) / self.s + 1
    }
    /// rows of the im2col matrix: `cin * kh * kw`
    pub fn ckk(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    pub fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.cout * self.ho() * self.wo()
    }
    /// Multiply-adds of the forward pass (the same for the input gradient).
    pub fn macs(&self) -> usize {
        self.n * self.out_len() * self.ckk()
    }
    /// Floating-point operations of the forward pass: 2 per multiply-add.
    pub fn flops(&self) -> f64 {
        2.0 * self.macs() as f64
    }
    /// 1x1, stride 1, no padding: the input plane already is the im2col matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.s == 1 && self.ph == 0 && self.pw == 0
    }
    pub(crate) fn pack(&self) -> [usize; 10] {
        [self.n, self.cin, self.h, self.w, self.cout, self.kh, self.kw, self.s, self.ph, self.pw]
    }
    pub(crate) fn unpack(a: [usize; 10]) -> Self {
        Self { n: a[0], cin: a[1], h: a[2], w: a[3], cout: a[4], kh: a[5], kw: a[6], s: a[7], ph: a[8], pw: a[9] }
    }
    /// A label for [`crate::profile`]: `conv 1x7 fwd cin=160 cout=160 in=[14, 14] n=1`.
    pub(crate) fn label(&self, what: &str) -> String {
        let s = if self.s > 1 { format!("/{}", self.s) } else { String::new() };
        format!("conv {}x{}{s} {what} cin={} cout={} in=[{}, {}] n={}", self.kh, self.kw, self.cin, self.cout, self.h, self.w, self.n)
    }
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// A `Vec<f32>` of length `n` whose contents are unspecified (the caller overwrites every
/// element before reading any): skips the memset of `vec![0.0; n]` for outputs gemm writes.
#[allow(clippy::uninit_vec)]
pub(crate) fn out_vec(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 has no invalid bit patterns; every caller writes all `n` elements before
    // any read (gemm with beta = 0 / full-plane loops).
    unsafe { v.set_len(n) };
    v
}

thread_local! {
    /// Per-thread scratch (im2col tiles, phase planes), reused across calls: no page faults
    /// and no memset per conv.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f(a, b)` with this thread's two scratch buffers resized to `na` and `nb`
/// (contents unspecified).
fn with_scratch<R>(na: usize, nb: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let [a, b] = &mut *s;
        if a.len() < na {
            a.resize(na, 0.0);
        }
        if b.len() < nb {
            b.resize(nb, 0.0);
        }
        f(&mut a[..na], &mut b[..nb])
    })
}

/// Phase-split padded planes: for stride `s`, the zero-padded input plane
/// `xp[i, j] = x[i - p, j - p]` is stored as `s * s` planes
/// `ph[(rh, rw)][i', j'] = xp[i' * s + rh, j' * s + rw]`, each `hq x wq`.
/// Then every tap `(kh, kw)` of output row `oh` reads the contiguous run
/// `ph[(kh % s, kw % s)][oh + kh / s][kw / s ..][.. wo]`: im2col, depthwise convs and their
/// adjoints become contiguous copies / axpys without bounds checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    s: usize,
    /// padding rows (above and below) and columns (left and right)
    pr: usize,
    pc: usize,
    h: usize,
    w: usize,
    hq: usize,
    wq: usize,
}

impl Phases {
    fn new(h: usize, w: usize, s: usize, pr: usize, pc: usize) -> Self {
        Self { s, pr, pc, h, w, hq: (h + 2 * pr).div_ceil(s), wq: (w + 2 * pc).div_ceil(s) }
    }
    /// The phase planes of the input of `g`.
    pub(crate) fn of(g: &Geom) -> Self {
        Self::new(g.h, g.w, g.s, g.ph, g.pw)
    }
    /// floats per input channel
    pub(crate) fn len(&self) -> usize {
        self.s * self.s * self.hq * self.wq
    }
    /// columns of each phase plane
    pub(crate) fn wq(&self) -> usize {
        self.wq
    }
    /// offset of row `r` of the phase plane for tap `(kh, kw)` plus column `kw / s`
    #[inline]
    pub(crate) fn tap(&self, kh: usize, kw: usize, r: usize) -> usize {
        let s = self.s;
        (((kh % s) * s + (kw % s)) * self.hq + r + kh / s) * self.wq + kw / s
    }
    /// Fills `ph` (one channel, `self.len()`) from plane `x` (`h x w`).
    pub(crate) fn split(&self, x: &[f32], ph: &mut [f32]) {
        let (s, pr, p, wq) = (self.s, self.pr, self.pc, self.wq);
        if s == 1 {
            ph[..pr * wq].fill(0.0);
            for i in 0..self.h {
                let row = &mut ph[(i + pr) * wq..(i + pr + 1) * wq];
                row[..p].fill(0.0);
                row[p..p + self.w].copy_from_slice(&x[i * self.w..(i + 1) * self.w]);
                row[p + self.w..].fill(0.0);
            }
            ph[(self.h + pr) * wq..].fill(0.0);
            return;
        }
        for rh in 0..s {
            for rw in 0..s {
                let plane = &mut ph[(rh * s + rw) * self.hq * wq..][..self.hq * wq];
                // valid columns j: 0 <= j*s + rw - p < w
                let jlo = if rw >= p { 0 } else { (p - rw).div_ceil(s) };
                let jhi = if self.w + p > rw { ((self.w + p - rw - 1) / s + 1).min(wq) } else { 0 }.max(jlo);
                for i in 0..self.hq {
                    let row = &mut plane[i * wq..(i + 1) * wq];
                    let ih = (i * s + rh) as isize - pr as isize;
                    if ih < 0 || ih >= self.h as isize {
                        row.fill(0.0);
                        continue;
                    }
                    let src = &x[ih as usize * self.w..(ih as usize + 1) * self.w];
                    row[..jlo].fill(0.0);
                    row[jhi..].fill(0.0);
                    let base = jlo * s + rw - p;
                    for (d, v) in row[jlo..jhi].iter_mut().zip(src[base..].iter().step_by(s)) {
                        *d = *v;
                    }
                }
            }
        }
    }
    /// `x[i, j] (= or +=) ph[..]` for the unpadded region: the adjoint of [`split`] (the
    /// padding entries are dropped).
    fn merge(&self, ph: &[f32], x: &mut [f32], add: bool) {
        let (s, p, wq) = (self.s, self.pc, self.wq);
        for i in 0..self.h {
            let dst = &mut x[i * self.w..(i + 1) * self.w];
            let ip = i + self.pr;
            if s == 1 {
                let src = &ph[ip * wq + p..][..self.w];
                if add {
                    for (d, v) in dst.iter_mut().zip(src) {
                        *d += *v;
                    }
                } else {
                    dst.copy_from_slice(src);
                }
                continue;
            }
            let (qi, rh) = (ip / s, ip % s);
            for rw in 0..s {
                // columns j with (j + p) % s == rw: j = j0, j0 + s, ...; phase column (j + p) / s
                let j0 = (rw + s - p % s) % s;
                if j0 >= self.w {
                    continue;
                }
                let q0 = (j0 + p) / s;
                let src = &ph[((rh * s + rw) * self.hq + qi) * wq + q0..];
                for (d, v) in dst[j0..].iter_mut().step_by(s).zip(src) {
                    if add {
                        *d += *v;
                    } else {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// im2col of output rows `oh0..oh1` from the phase planes of all input channels:
/// `col[(ci, kh, kw), (oh - oh0, ow)] = x[ci, oh*s + kh - p, ow*s + kw - p]`.
pub(crate) fn im2col_tile(g: &Geom, ps: &Phases, ph: &[f32], oh0: usize, oh1: usize, col: &mut [f32]) {
    let wo = g.wo();
    let tn = (oh1 - oh0) * wo;
    let pl = ps.len();
    for ci in 0..g.cin {
        let src = &ph[ci * pl..(ci + 1) * pl];
        for kh in 0..g.kh {
            for kw in 0..g.kw {
                let row = &mut col[((ci * g.kh + kh) * g.kw + kw) * tn..][..tn];
                for oh in oh0..oh1 {
                    let o = ps.tap(kh, kw, oh);
                    row[(oh - oh0) * wo..(oh - oh0 + 1) * wo].copy_from_slice(&src[o..o + wo]);
                }
            }
        }
    }
}

/// `ph[..] += col[..]`: the adjoint of [`im2col_tile`] (fixed loop order: deterministic).
fn col2im_tile(g: &Geom, ps: &Phases, col: &[f32], oh0: usize, oh1: usize, ph: &mut [f32]) {
    let wo = g.wo();
    let tn = (oh1 - oh0) * wo;
    let pl = ps.len();
    for ci in 0..g.cin {
        let dst = &mut ph[ci * pl..(ci + 1) * pl];
        for kh in 0..g.kh {
            for kw in 0..g.kw {
                let row = &col[((ci * g.kh + kh) * g.kw + kw) * tn..][..tn];
                for oh in oh0..oh1 {
                    let o = ps.tap(kh, kw, oh);
                    for (d, v) in dst[o..o + wo].iter_mut().zip(&row[(oh - oh0) * wo..(oh - oh0 + 1) * wo]) {
                        *d += *v;
                    }
                }
            }
        }
    }
}

/// Output rows per im2col tile: keeps a `ckk x tile` block around 512 KiB (in L2).
pub(crate) fn tile_rows(g: &Geom) -> usize {
    let wo = g.wo().max(1);
    let cols = (128 * 1024 / g.ckk().max(1)).max(wo);
    (cols / wo).clamp(1, g.ho().max(1))
}

/// `dst[m, n] (= or +=) lhs[m, k] * rhs[k, n]` with explicit (column, row) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn mm(
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

/// Chunks per thread for the batch-parallel kernels: more than one, so that rayon's work
/// stealing balances the load when a core is shared with another process (with exactly one
/// chunk per thread, the thread on the busy core finishes last and everyone waits for it).
const CHUNKS_PER_THREAD: usize = 8;

/// Runs `f(sample range, its slice of out)` on contiguous sample chunks (rayon tasks, a
/// single-threaded gemm inside each); when the batch is smaller than the pool, one call
/// with a parallel gemm instead. The chunking never changes the results: every output
/// element is computed by one task in a fixed order.
fn per_sample_chunks<F>(n: usize, out: &mut [f32], per_sample: usize, f: F)
where
    F: Fn(std::ops::Range<usize>, &mut [f32], gemm::Parallelism) + Sync,
{
    let t = threads();
    if n >= t && t > 1 {
        let rs = ranges(n, t * CHUNKS_PER_THREAD);
        let mut slices: Vec<(std::ops::Range<usize>, &mut [f32])> = Vec::with_capacity(rs.len());
        let mut rest = out;
        for r in rs {
            let (a, b) = rest.split_at_mut(r.len() * per_sample);
            slices.push((r, a));
            rest = b;
        }
        slices.into_par_iter().with_max_len(1).for_each(|(r, o)| f(r, o, gemm::Parallelism::None));
    } else {
        let par = if t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
        f(0..n, out, par);
    }
}

/// Reduction lengths up to this use the direct pointwise loop instead of gemm (a gemm with
/// K = 3..16 is dominated by packing; the direct loop streams each row once per output).
pub const SMALL_K: usize = 16;

/// `dst[o, :] = sum_i wt(o, i) * src[i, :]` for rows of length `hw`, `i` in fixed order.
fn pointwise_direct(m: usize, k: usize, hw: usize, wt: impl Fn(usize, usize) -> f32, src: &[f32], dst: &mut [f32]) {
    for o in 0..m {
        let d = &mut dst[o * hw..(o + 1) * hw];
        let a = wt(o, 0);
        for (d, s) in d.iter_mut().zip(&src[..hw]) {
            *d = a * *s;
        }
        for i in 1..k {
            let a = wt(o, i);
            for (d, s) in d.iter_mut().zip(&src[i * hw..(i + 1) * hw]) {
                *d += a * *s;
            }
        }
    }
}

/// Splits one sample's input by stride phase, then hands `f(oh0, tn, col)` each im2col tile of
/// output rows `oh0..oh0 + tn / wo` (`col` is `[ckk, tn]`), in order: the shared loop of the
/// forward pass and the weight gradient.
fn for_each_col_tile(g: &Geom, xb: &[f32], ckk: usize, mut f: impl FnMut(usize, usize, &[f32])) {
    let (ho, wo) = (g.ho(), g.wo());
    let ps = Phases::of(g);
    let (pl, tr) = (ps.len(), tile_rows(g));
    scratch(g.cin * pl, ckk * tr * wo, |ph, col| {
        for ci in 0..g.cin {
            ps.split(&xb[ci * g.h * g.w..(ci + 1) * g.h * g.w], &mut ph[ci * pl..(ci + 1) * pl]);
        }
        for oh0 in (0..ho).step_by(tr) {
            let oh1 = (oh0 + tr).min(ho);
            let tn = (oh1 - oh0) * wo;
            im2col_tile(g, &ps, ph, oh0, oh1, col);
            f(oh0, tn, col);
        }
    });
}

/// Takes this thread's scratch when it is free (else fresh buffers, e.g. if a rayon
/// worker re-entered while waiting inside a parallel gemm).
pub(crate) fn scratch<R>(na: usize, nb: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    let busy = SCRATCH.with(|s| s.try_borrow_mut().is_err());
    if busy {
        let (mut a, mut b) = (vec![0.0f32; na], vec![0.0f32; nb]);
        f(&mut a, &mut b)
    } else {
        with_scratch(na, nb, f)
    }
}

/// One sample of the forward conv: `yb = W * im2col(xb)`, tiled over output rows.
fn fwd_sample(g: &Geom, xb: &[f32], w: &[f32], yb: &mut [f32], par: gemm::Parallelism) {
    let (ho, wo, ckk) = (g.ho(), g.wo(), g.ckk());
    let hw = ho * wo;
    if g.is_pointwise() {
        if g.cin <= SMALL_K {
            pointwise_direct(g.cout, g.cin, hw, |o, i| w[o * g.cin + i], xb, yb);
        } else {
            unsafe { mm(g.cout, hw, g.cin, yb.as_mut_ptr(), hw as isize, false, w.as_ptr(), 1, g.cin as isize, xb.as_ptr(), 1, hw as isize, par) };
        }
        return;
    }
    for_each_col_tile(g, xb, ckk, |oh0, tn, col| unsafe {
        mm(g.cout, tn, ckk, yb[oh0 * wo..].as_mut_ptr(), hw as isize, false, w.as_ptr(), 1, ckk as isize, col.as_ptr(), 1, tn as isize, par);
    });
}

/// Forward: `y[b] = W[cout, ckk] * im2col(x[b])`. `w` is `[cout, cin, kh, kw]` contiguous.
///
/// Stride-1 convs that are not 1×1 go through the direct conv ([`crate::direct`]) when it is on
/// and applies (StyleGAN2's modulated 3×3 convs, their input gradients); `LIMNER_DIRECT_CONV=0`
/// keeps them on im2col + gemm.
pub fn conv_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    if crate::direct::enabled() && crate::direct::applies(g) {
        return crate::direct::fwd(g, x, None, w, None, false);
    }
    conv_fwd_epi(g, x, w, None)
}

/// A pass over each output plane after the conv: `epi(output channel, plane)` (the fused
/// bias + ReLU of [`crate::conv_bias_relu`]).
pub(crate) type Epilogue<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// [`conv_fwd`], then `epi` on every output plane: with batch parallelism right after each
/// sample's gemm, while its output is still in cache (not as a second pass over the whole
/// batch); below one sample per thread, as a parallel pass over the planes.
pub(crate) fn conv_fwd_epi(g: &Geom, x: &[f32], w: &[f32], epi: Option<Epilogue>) -> Vec<f32> {
    let (in_len, out_len, hw) = (g.in_len(), g.out_len(), g.ho() * g.wo());
    assert_eq!(x.len(), g.n * in_len);
    assert_eq!(w.len(), g.cout * g.ckk());
    let mut y = out_vec(g.n * out_len);
    per_sample_chunks(g.n, &mut y, out_len, |r, out, par| {
        for (i, b) in r.enumerate() {
            let yb = &mut out[i * out_len..(i + 1) * out_len];
            fwd_sample(g, &x[b * in_len..(b + 1) * in_len], w, yb, par);
            if let (Some(epi), gemm::Parallelism::None) = (epi, par) {
                if hw > 0 {
                    yb.chunks_exact_mut(hw).enumerate().for_each(|(o, plane)| epi(o, plane));
                }
            }
        }
    });
    let t = threads();
    if let Some(epi) = epi {
        // `per_sample_chunks` ran one call with a parallel gemm (batch below the pool size)
        if g.n < t && t > 1 && hw > 0 {
            y.par_chunks_mut(hw).enumerate().for_each(|(pl, plane)| epi(pl % g.cout, plane));
        }
    }
    y
}

/// The stride-1 input gradient of `g` as a forward conv: the kernel flipped in both directions
/// with input and output channels swapped (`wf[ci, co, y, x] = w[co, ci, kh-1-y, kw-1-x]`),
/// over `dy` with padding `(kh-1-ph, kw-1-pw)`; returns `(wf, its geometry)`.
pub(crate) fn flipped(g: &Geom, w: &[f32]) -> (Vec<f32>, Geom) {
    let (kh, kw) = (g.kh, g.kw);
    assert_eq!(w.len(), g.cout * g.ckk(), "conv weight length");
    let mut wf = vec![0.0f32; w.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * kh * kw..][..kh * kw];
            let dst = &mut wf[(ci * g.cout + co) * kh * kw..][..kh * kw];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    let gf = Geom { n: g.n, cin: g.cout, h: g.ho(), w: g.wo(), cout: g.cin, kh, kw, s: 1, ph: kh - 1 - g.ph, pw: kw - 1 - g.pw };
    debug_assert_eq!((gf.ho(), gf.wo()), (g.h, g.w));
    (wf, gf)
}

/// Input gradient: `dx[b] = col2im(W^T * dy[b])`.
pub fn conv_xgrad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo, ckk, in_len, out_len) = (g.ho(), g.wo(), g.ckk(), g.in_len(), g.out_len());
    let hw = ho * wo;
    if g.s == 1 && g.kh * g.kw > 1 && g.ph < g.kh && g.pw < g.kw {
        // Stride 1: the input gradient is a forward conv of dy with the spatially flipped,
        // in/out-swapped kernel and padding (kh-1-ph, kw-1-pw). Its gemm has K = cout*kh*kw
        // instead of cout and needs no col2im scatter (much better for few channels at high
        // resolution).
        let (wf, gf) = flipped(g, w);
        return conv_fwd(&gf, dy, &wf);
    }
    assert_eq!(dy.len(), g.n * out_len);
    assert_eq!(w.len(), g.cout * ckk);
    if crate::upconv::applies(g) {
        // 3×3 stride 2 (StyleGAN2's up-convs): all four phases in one pass
        return crate::upconv::xgrad(g, dy, crate::upconv::Weights::contiguous(g, w));
    }
    // the phases pay a weight rearrangement per call: on maps of dy under 16 × 16 (StyleGAN2's
    // 4 → 9 and 8 → 17 up-convs at 512 channels) it cost more than it saved (measured 2.3×)
    if g.s == 2 && g.kh * g.kw > 1 && g.ph < g.kh && g.pw < g.kw && g.cin >= 16 && ho * wo >= 256 && crate::direct::enabled() {
        return xgrad_s2_phases(g, dy, w);
    }
    let mut dx = out_vec(g.n * in_len);
    per_sample_chunks(g.n, &mut dx, in_len, |r, out, par| {
        for (i, b) in r.enumerate() {
            let dyb = &dy[b * out_len..(b + 1) * out_len];
            let dxb = &mut out[i * in_len..(i + 1) * in_len];
            if g.is_pointwise() {
                if g.cout <= SMALL_K {
                    pointwise_direct(g.cin, g.cout, hw, |ci, co| w[co * g.cin + ci], dyb, dxb);
                } else {
                    // lhs = W^T: element (row r, col o) at w[o * cin + r]
                    unsafe { mm(g.cin, hw, g.cout, dxb.as_mut_ptr(), hw as isize, false, w.as_ptr(), g.cin as isize, 1, dyb.as_ptr(), 1, hw as isize, par) };
                }
                continue;
            }
            // col tile = W^T * dy[:, tile], scattered into zeroed phase planes, then merged
            let ps = Phases::of(g);
            let (pl, tr) = (ps.len(), tile_rows(g));
            scratch(g.cin * pl, ckk * tr * wo, |ph, col| {
                ph.fill(0.0);
                for oh0 in (0..ho).step_by(tr) {
                    let oh1 = (oh0 + tr).min(ho);
                    let tn = (oh1 - oh0) * wo;
                    unsafe {
                        mm(ckk, tn, g.cout, col.as_mut_ptr(), tn as isize, false, w.as_ptr(), ckk as isize, 1, dyb[oh0 * wo..].as_ptr(), 1, hw as isize, par);
                    }
                    col2im_tile(g, &ps, col, oh0, oh1, ph);
                }
                for ci in 0..g.cin {
                    ps.merge(&ph[ci * pl..(ci + 1) * pl], &mut dxb[ci * g.h * g.w..(ci + 1) * g.h * g.w], false);
                }
            });
        }
    });
    dx
}

/// The input gradient of a stride-2 conv (a transposed conv: StyleGAN2's upsampling modulated
/// conv, the discriminator's downsampling convs' backward) as four stride-1 forward convs of
/// `dy`, one per output phase (sub-pixel decomposition). Output pixel `(ih, iw)` with
/// `q = (ih + ph) mod 2`, `r = (iw + pw) mod 2` only meets the taps `ky ≡ q`, `kx ≡ r (mod 2)`:
/// with `A = ⌈(kh − q) / 2⌉` and `B = ⌈(kw − r) / 2⌉` of them,
/// `dx[ci, ih, iw] = Σ_{co, a < A, b < B} w[co, ci, q + 2a, r + 2b] · dy[co, m − a, l − b]` where
/// `m = (ih + ph − q) / 2`, `l = (iw + pw − r) / 2`: a stride-1 conv of `dy` with the kernel
/// flipped and padding `(A − 1, B − 1)`, whose output `(m, l)` is scattered to `(ih, iw)`. Each
/// phase goes through [`conv_fwd`] (the direct conv where it applies, gemm for the 1×1 phase),
/// so there is no col2im scatter-add; the sums run in another order than the gemm + col2im
/// path's (float rounding only; `LIMNER_DIRECT_CONV=0` restores that path).
fn xgrad_s2_phases(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (ho, wo, h, wd) = (g.ho(), g.wo(), g.h, g.w);
    let (kh, kw) = (g.kh, g.kw);
    // every pixel of dx belongs to exactly one phase; phases with no taps (and pixels whose
    // dy rows all lie outside dy) stay 0
    let mut dx = out_vec(g.n * g.in_len());
    dx.fill(0.0);
    if g.n == 0 || g.in_len() == 0 || ho == 0 || wo == 0 {
        return dx;
    }
    for q in 0..2 {
        for r in 0..2 {
            let (a_n, b_n) = ((kh + 1 - q.min(kh)) / 2, (kw + 1 - r.min(kw)) / 2);
            if a_n == 0 || b_n == 0 {
                continue;
            }
            let gp = Geom { n: g.n, cin: g.cout, h: ho, w: wo, cout: g.cin, kh: a_n, kw: b_n, s: 1, ph: a_n - 1, pw: b_n - 1 };
            let mut wf = vec![0.0f32; g.cin * g.cout * a_n * b_n];
            for ci in 0..g.cin {
                for co in 0..g.cout {
                    for a2 in 0..a_n {
                        for b2 in 0..b_n {
                            let (ky, kx) = (q + 2 * (a_n - 1 - a2), r + 2 * (b_n - 1 - b2));
                            wf[((ci * g.cout + co) * a_n + a2) * b_n + b2] = w[((co * g.cin + ci) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
            let yp = conv_fwd(&gp, dy, &wf);
            let (mh, lw) = (gp.ho(), gp.wo());
            // rows m with 0 <= 2m + q - ph < h, columns l likewise
            let m0 = (g.ph.saturating_sub(q)).div_ceil(2);
            let l0 = (g.pw.saturating_sub(r)).div_ceil(2);
            dx.par_chunks_mut(h * wd).enumerate().for_each(|(plane, dst)| {
                let src = &yp[plane * mh * lw..(plane + 1) * mh * lw];
                let mut m = m0;
                while m < mh && 2 * m + q < h + g.ph {
                    let ih = 2 * m + q - g.ph;
                    let (srow, drow) = (&src[m * lw..(m + 1) * lw], &mut dst[ih * wd..(ih + 1) * wd]);
                    let mut l = l0;
                    while l < lw && 2 * l + r < wd + g.pw {
                        drow[2 * l + r - g.pw] = srow[l];
                        l += 1;
                    }
                    m += 1;
                }
            });
        }
    }
    dx
}

/// Weight gradient: `dW = sum_b dy[b] * im2col(x[b])^T`, summed in a fixed order.
pub fn conv_wgrad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ho, wo, ckk, in_len, out_len) = (g.ho(), g.wo(), g.ckk(), g.in_len(), g.out_len());
    let hw = ho * wo;
    assert_eq!(x.len(), g.n * in_len);
    assert_eq!(dy.len(), g.n * out_len);
    let wlen = g.cout * ckk;
    let chunks = ranges(g.n, WGRAD_CHUNKS);
    let t = threads();
    // gemm-level parallelism only when there are fewer chunks than threads
    let par = if chunks.len() < t && t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
    let partial = |r: std::ops::Range<usize>| -> Vec<f32> {
        let mut dw = vec![0.0f32; wlen];
        for b in r {
            let xb = &x[b * in_len..(b + 1) * in_len];
            let dyb = &dy[b * out_len..(b + 1) * out_len];
            if g.is_pointwise() {
                // rhs = x^T: element (j, c) at x[c * hw + j]
                unsafe {
                    mm(g.cout, g.cin, hw, dw.as_mut_ptr(), g.cin as isize, true, dyb.as_ptr(), 1, hw as isize, xb.as_ptr(), hw as isize, 1, par);
                }
                continue;
            }
            // rhs = col^T: element (j, r) at col[r * tn + j]
            for_each_col_tile(g, xb, ckk, |oh0, tn, col| unsafe {
                mm(g.cout, ckk, tn, dw.as_mut_ptr(), ckk as isize, true, dyb[oh0 * wo..].as_ptr(), 1, hw as isize, col.as_ptr(), tn as isize, 1, par);
            });
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

// ------------------------------------------------------------------ depthwise convs
//
// `g.cin == g.cout == c` channels, weight `[c, 1, k, k]`: each (sample, channel) plane is
// filtered independently (the FIR up/down-sampling filters of StyleGAN2). Direct loops over
// phase-split planes: every tap is a contiguous axpy. Parallel over planes; each output
// element is summed in a fixed tap order (deterministic, thread-count independent).

/// Depthwise forward: `y[b, c] = sum_{kh, kw} w[c, kh, kw] * xpad[b, c][oh*s + kh, ow*s + kw]`.
pub fn dw_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let c = g.cin;
    assert_eq!(g.cout, c);
    let (ho, wo, kk) = (g.ho(), g.wo(), g.kh * g.kw);
    let (hw_in, hw) = (g.h * g.w, ho * wo);
    assert_eq!(x.len(), g.n * c * hw_in);
    assert_eq!(w.len(), c * kk);
    let ps = Phases::of(g);
    let mut y = out_vec(g.n * c * hw);
    per_sample_chunks(g.n * c, &mut y, hw, |r, out, _| {
        scratch(ps.len(), 0, |ph, _| {
            for (i, pidx) in r.enumerate() {
                ps.split(&x[pidx * hw_in..(pidx + 1) * hw_in], ph);
                let wc = &w[(pidx % c) * kk..(pidx % c + 1) * kk];
                let yp = &mut out[i * hw..(i + 1) * hw];
                for oh in 0..ho {
                    let row = &mut yp[oh * wo..(oh + 1) * wo];
                    for kh in 0..g.kh {
                        for kw in 0..g.kw {
                            let a = wc[kh * g.kw + kw];
                            let o = ps.tap(kh, kw, oh);
                            let src = &ph[o..o + wo];
                            if kh == 0 && kw == 0 {
                                for (d, s) in row.iter_mut().zip(src) {
                                    *d = a * *s;
                                }
                            } else {
                                for (d, s) in row.iter_mut().zip(src) {
                                    *d += a * *s;
                                }
                            }
                        }
                    }
                }
            }
        })
    });
    y
}

/// Depthwise input gradient (= the depthwise transposed conv): the adjoint of [`dw_fwd`].
pub fn dw_xgrad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let c = g.cin;
    assert_eq!(g.cout, c);
    let (ho, wo, kk) = (g.ho(), g.wo(), g.kh * g.kw);
    let (hw_in, hw) = (g.h * g.w, ho * wo);
    assert_eq!(dy.len(), g.n * c * hw);
    assert_eq!(w.len(), c * kk);
    let ps = Phases::of(g);
    let mut dx = out_vec(g.n * c * hw_in);
    per_sample_chunks(g.n * c, &mut dx, hw_in, |r, out, _| {
        scratch(ps.len(), 0, |ph, _| {
            for (i, pidx) in r.enumerate() {
                ph.fill(0.0);
                let wc = &w[(pidx % c) * kk..(pidx % c + 1) * kk];
                let dyp = &dy[pidx * hw..(pidx + 1) * hw];
                for oh in 0..ho {
                    let src = &dyp[oh * wo..(oh + 1) * wo];
                    for kh in 0..g.kh {
                        for kw in 0..g.kw {
                            let a = wc[kh * g.kw + kw];
                            let o = ps.tap(kh, kw, oh);
                            for (d, s) in ph[o..o + wo].iter_mut().zip(src) {
                                *d += a * *s;
                            }
                        }
                    }
                }
                ps.merge(ph, &mut out[i * hw_in..(i + 1) * hw_in], false);
            }
        })
    });
    dx
}

/// Depthwise weight gradient `[c, 1, k, k]`: per channel, sums over samples and positions in
/// a fixed order (per-tap row accumulators, then one ordered reduction).
pub fn dw_wgrad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.cin;
    let (ho, wo, kk) = (g.ho(), g.wo(), g.kh * g.kw);
    let (hw_in, hw) = (g.h * g.w, ho * wo);
    let ps = Phases::of(g);
    let mut dw = vec![0.0f32; c * kk];
    per_sample_chunks(c, &mut dw, kk, |r, out, _| {
        let mut ph = vec![0.0f32; ps.len()];
        let mut acc = vec![0.0f32; kk * wo];
        for (i, ch) in r.enumerate() {
            acc.fill(0.0);
            for b in 0..g.n {
                let pidx = b * c + ch;
                ps.split(&x[pidx * hw_in..(pidx + 1) * hw_in], &mut ph);
                let dyp = &dy[pidx * hw..(pidx + 1) * hw];
                for oh in 0..ho {
                    let d = &dyp[oh * wo..(oh + 1) * wo];
                    for t in 0..kk {
                        let o = ps.tap(t / g.kw, t % g.kw, oh);
                        for ((a, s), v) in acc[t * wo..(t + 1) * wo].iter_mut().zip(&ph[o..o + wo]).zip(d) {
                            *a += *s * *v;
                        }
                    }
                }
            }
            for t in 0..kk {
                out[i * kk + t] = acc[t * wo..(t + 1) * wo].iter().sum();
            }
        }
    });
    dw
}

// ------------------------------------------------------------------ separable depthwise FIR
//
// StyleGAN2's resampling filters are one rank-1 kernel `outer([1,3,3,1], [1,3,3,1]) / 64 * gain`
// for every channel. A depthwise conv with such a kernel is a horizontal then a vertical 1-D
// pass: 2k instead of k² multiply-adds per output, and each pass is a few contiguous axpys
// over rows (phase-split rows for stride 2). At 128px (8-16 channels on 64-128² maps) the
// FIR convs and their adjoints were ~18% of a training step on the direct 2-D kernels.

/// The 1-D factors `(fy, fx)` of a depthwise weight `[c, 1, k, k]` when every channel holds
/// the same kernel and it is rank 1, `w[a, b] = fy[a] * fx[b]` to within `1e-6` of its largest
/// tap (the FIR filters); `None` otherwise (the caller then uses the 2-D kernels).
pub fn separable_factors(w: &[f32], c: usize, k: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let kk = k * k;
    if c == 0 || k < 2 || w.len() != c * kk {
        return None;
    }
    let w0 = &w[..kk];
    if w.chunks_exact(kk).any(|wc| wc != w0) {
        return None;
    }
    let (mut at, mut m) = (0, 0.0f32);
    for (t, v) in w0.iter().enumerate() {
        if v.abs() > m.abs() {
            (at, m) = (t, *v);
        }
    }
    if m == 0.0 || !m.is_finite() {
        return None;
    }
    let (a0, b0) = (at / k, at % k);
    let fy: Vec<f32> = (0..k).map(|a| w0[a * k + b0] / m).collect();
    let fx: Vec<f32> = w0[a0 * k..(a0 + 1) * k].to_vec();
    let tol = 1e-6 * m.abs();
    let ok = (0..kk).all(|t| (fy[t / k] * fx[t % k] - w0[t]).abs() <= tol);
    ok.then_some((fy, fx))
}

/// `dst (+)= a * src`, elementwise.
#[inline(always)]
fn axpy(dst: &mut [f32], a: f32, src: &[f32], first: bool) {
    if first {
        for (d, v) in dst.iter_mut().zip(src) {
            *d = a * *v;
        }
    } else {
        for (d, v) in dst.iter_mut().zip(src) {
            *d += a * *v;
        }
    }
}

/// Geometry of one padded, phase-split row: `wq` entries per phase, `s` phases; padded
/// position `j` (0..w + 2p) lives at `(j % s) * wq + j / s`.
fn sep_row_len(g: &Geom) -> usize {
    (g.w + 2 * g.pw).div_ceil(g.s)
}

/// Writes `src` (one unpadded row) into the phase-split padded `row` at offset `p`.
#[inline(always)]
fn sep_split_row(src: &[f32], row: &mut [f32], p: usize, s: usize, wq: usize) {
    match s {
        1 => row[p..p + src.len()].copy_from_slice(src),
        2 => {
            let (even, odd) = row.split_at_mut(wq);
            for (col, v) in src.iter().enumerate() {
                let j = col + p;
                if j & 1 == 0 { even[j >> 1] = *v } else { odd[j >> 1] = *v }
            }
        }
        _ => {
            for (col, v) in src.iter().enumerate() {
                let j = col + p;
                row[(j % s) * wq + j / s] = *v;
            }
        }
    }
}

/// The inverse of [`sep_split_row`]: `dst[col] = row[padded position col + p]`.
#[inline(always)]
fn sep_merge_row(row: &[f32], dst: &mut [f32], p: usize, s: usize, wq: usize) {
    match s {
        1 => dst.copy_from_slice(&row[p..p + dst.len()]),
        2 => {
            let (even, odd) = row.split_at(wq);
            for (col, d) in dst.iter_mut().enumerate() {
                let j = col + p;
                *d = if j & 1 == 0 { even[j >> 1] } else { odd[j >> 1] };
            }
        }
        _ => {
            for (col, d) in dst.iter_mut().enumerate() {
                let j = col + p;
                *d = row[(j % s) * wq + j / s];
            }
        }
    }
}

/// One plane of [`dw_fwd_sep`]; `row` must hold zeros outside `p..p + w` (padded positions).
#[inline(always)]
fn sep_fwd_plane(g: &Geom, fy: &[f32], fx: &[f32], xp: &[f32], yp: &mut [f32], hb: &mut [f32], row: &mut [f32]) {
    let (s, p, h, w, ho, wo, wq) = (g.s, g.ph, g.h, g.w, g.ho(), g.wo(), sep_row_len(g));
    // horizontal: hb[r][j] = sum_b fx[b] * xpad[r][j * s + b]
    for rr in 0..h {
        sep_split_row(&xp[rr * w..(rr + 1) * w], row, p, s, wq);
        let dst = &mut hb[rr * wo..(rr + 1) * wo];
        for (b, &f) in fx.iter().enumerate() {
            let o = (b % s) * wq + b / s;
            axpy(dst, f, &row[o..o + wo], b == 0);
        }
    }
    // vertical: y[i][j] = sum_a fy[a] * hb[i * s + a - p][j] (rows outside are 0)
    for oi in 0..ho {
        let dst = &mut yp[oi * wo..(oi + 1) * wo];
        let mut first = true;
        for (a, &f) in fy.iter().enumerate() {
            let Some(rr) = (oi * s + a).checked_sub(p).filter(|&rr| rr < h) else { continue };
            axpy(dst, f, &hb[rr * wo..(rr + 1) * wo], first);
            first = false;
        }
        if first {
            dst.fill(0.0);
        }
    }
}

/// One plane of [`dw_xgrad_sep`].
#[inline(always)]
fn sep_xgrad_plane(g: &Geom, fy: &[f32], fx: &[f32], dyp: &[f32], dxp: &mut [f32], hb: &mut [f32], row: &mut [f32]) {
    let (s, p, h, w, ho, wo, wq) = (g.s, g.ph, g.h, g.w, g.ho(), g.wo(), sep_row_len(g));
    // vertical adjoint: hb[i * s + a - p] += fy[a] * dy[i]
    hb.fill(0.0);
    for oi in 0..ho {
        let src = &dyp[oi * wo..(oi + 1) * wo];
        for (a, &f) in fy.iter().enumerate() {
            let Some(rr) = (oi * s + a).checked_sub(p).filter(|&rr| rr < h) else { continue };
            axpy(&mut hb[rr * wo..(rr + 1) * wo], f, src, false);
        }
    }
    // horizontal adjoint: xpad[r][j * s + b] += fx[b] * hb[r][j], then crop the padding
    for rr in 0..h {
        row.fill(0.0);
        let src = &hb[rr * wo..(rr + 1) * wo];
        for (b, &f) in fx.iter().enumerate() {
            let o = (b % s) * wq + b / s;
            axpy(&mut row[o..o + wo], f, src, false);
        }
        sep_merge_row(row, &mut dxp[rr * w..(rr + 1) * w], p, s, wq);
    }
}

/// The plane loops compiled for AVX2 (8-wide) where the CPU has it, baseline SSE2 otherwise.
/// Same operations in the same order either way (no FMA contraction): identical results.
macro_rules! sep_dispatch {
    ($name:ident, $avx2:ident, $body:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2(g: &Geom, fy: &[f32], fx: &[f32], a: &[f32], b: &mut [f32], hb: &mut [f32], row: &mut [f32]) {
            $body(g, fy, fx, a, b, hb, row)
        }
        fn $name(g: &Geom, fy: &[f32], fx: &[f32], a: &[f32], b: &mut [f32], hb: &mut [f32], row: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked above)
                return unsafe { $avx2(g, fy, fx, a, b, hb, row) };
            }
            $body(g, fy, fx, a, b, hb, row)
        }
    };
}
sep_dispatch!(sep_fwd_plane_dispatch, sep_fwd_plane_avx2, sep_fwd_plane);
sep_dispatch!(sep_xgrad_plane_dispatch, sep_xgrad_plane_avx2, sep_xgrad_plane);

/// Depthwise forward with the separable kernel `fy ⊗ fx` (see [`separable_factors`]): the
/// same result as [`dw_fwd`] up to rounding; each output summed in a fixed order.
pub fn dw_fwd_sep(g: &Geom, x: &[f32], fy: &[f32], fx: &[f32]) -> Vec<f32> {
    let (c, k) = (g.cin, g.kh);
    assert!(g.cout == c && g.kw == k && g.pw == g.ph && fy.len() == k && fx.len() == k);
    let (hw_in, hw, wq) = (g.h * g.w, g.ho() * g.wo(), sep_row_len(g));
    assert_eq!(x.len(), g.n * c * hw_in);
    let mut y = out_vec(g.n * c * hw);
    per_sample_chunks(g.n * c, &mut y, hw, |r, out, _| {
        scratch(g.h * g.wo(), g.s * wq, |hb, row| {
            row.fill(0.0); // the padding stays zero: only positions p..p + w are written
            for (i, pidx) in r.enumerate() {
                sep_fwd_plane_dispatch(g, fy, fx, &x[pidx * hw_in..(pidx + 1) * hw_in], &mut out[i * hw..(i + 1) * hw], hb, row);
            }
        })
    });
    y
}

/// The adjoint of [`dw_fwd_sep`] (the depthwise input gradient / transposed conv).
pub fn dw_xgrad_sep(g: &Geom, dy: &[f32], fy: &[f32], fx: &[f32]) -> Vec<f32> {
    let (c, k) = (g.cin, g.kh);
    assert!(g.cout == c && g.kw == k && g.pw == g.ph && fy.len() == k && fx.len() == k);
    let (hw_in, hw, wq) = (g.h * g.w, g.ho() * g.wo(), sep_row_len(g));
    assert_eq!(dy.len(), g.n * c * hw);
    let mut dx = out_vec(g.n * c * hw_in);
    per_sample_chunks(g.n * c, &mut dx, hw_in, |r, out, _| {
        scratch(g.h * g.wo(), g.s * wq, |hb, row| {
            for (i, pidx) in r.enumerate() {
                sep_xgrad_plane_dispatch(g, fy, fx, &dy[pidx * hw..(pidx + 1) * hw], &mut out[i * hw_in..(i + 1) * hw_in], hb, row);
            }
        })
    });
    dx
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
                            for kh in 0..g.kh {
                                for kw in 0..g.kw {
                                    let ih = (oh * g.s + kh) as isize - g.ph as isize;
                                    let iw = (ow * g.s + kw) as isize - g.pw as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                        continue;
                                    }
                                    acc += x[((b * g.cin + c) * g.h + ih as usize) * g.w + iw as usize] as f64
                                        * w[((o * g.cin + c) * g.kh + kh) * g.kw + kw] as f64;
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
        let mut geoms = vec![];
        for &(n, cin, h, w, cout, k, s, p) in &[
            (1, 3, 4, 4, 5, 3, 1, 1),
            (3, 2, 7, 5, 4, 3, 2, 0),
            (2, 3, 9, 9, 2, 3, 2, 1),
            (1, 4, 4, 4, 3, 1, 1, 0),
            (2, 3, 5, 6, 2, 3, 1, 2),
        ] {
            geoms.push(Geom::square(n, cin, h, w, cout, k, s, p));
        }
        // rectangular kernels (InceptionV3's 1x7 / 7x1) and uneven padding
        geoms.push(Geom { n: 2, cin: 3, h: 6, w: 7, cout: 4, kh: 1, kw: 7, s: 1, ph: 0, pw: 3 });
        geoms.push(Geom { n: 1, cin: 4, h: 9, w: 5, cout: 3, kh: 7, kw: 1, s: 1, ph: 3, pw: 0 });
        geoms.push(Geom { n: 1, cin: 2, h: 11, w: 10, cout: 3, kh: 3, kw: 5, s: 2, ph: 1, pw: 2 });
        for g in geoms {
            let x = rnd(g.n * g.in_len());
            let wt = rnd(g.cout * g.ckk());
            let a = conv_fwd(&g, &x, &wt);
            let b = naive_fwd(&g, &x, &wt);
            let err = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "{g:?}: {err}");
        }
    }
}
