//! Inference kernels for MobileStyleGAN's synthesis network (limner-photoreal's random-face):
//! forward only, f32 NCHW, plain flex device (no autodiff).
//!
//! * [`styled_conv`]: one whole `StyledConv2d` in one pass over row tiles: the (per-sample,
//!   already modulated) depthwise 3×3 conv into a cache-sized scratch tile, the 1×1 conv as a
//!   single-threaded AVX-512 `gemm` straight into the output, then `+ bias + noise` and the
//!   leaky ReLU on the tile while it is still in cache. burn's composition wrote and re-read
//!   five full-size tensors per layer (depthwise output, conv output, `+ bias`, `+ noise`,
//!   leaky ReLU), each also zero-filled first; at 512² × 64 channels one such tensor is 64 MiB.
//! * [`idwt`]: the inverse Haar wavelet upsampling with the per-band modulation `x * s` folded
//!   into its 16 coefficients per channel (burn's version: a broadcast multiply, a narrow +
//!   cat copy, a repeated weight and a grouped transposed conv).
//!
//! Threading: rayon tasks over (sample, row tile), each writing a disjoint part of the output,
//! every output element computed by one task in a fixed order (results independent of the
//! thread count). Inner loops are compiled for AVX-512 (runtime-detected) with a portable
//! fallback.

use rayon::prelude::*;

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, DispatchDevice, Flex};
use burn::tensor::{DType, Tensor};

use crate::{f32_data, flex_from};

/// Shapes of one [`styled_conv`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StyledGeom {
    pub n: usize,
    /// input channels
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// output channels
    pub o: usize,
    /// samples in the pointwise weight (1: shared, n: per sample)
    pub nw: usize,
    /// samples in the noise map (0: no noise, 1: shared, n: per sample)
    pub nn: usize,
    /// whether the depthwise 3×3 conv runs first (`kdw` given)
    pub dw: bool,
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *V.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

thread_local! {
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of at least `need` floats (contents unspecified;
/// a fresh one if it is in use, e.g. re-entered from a rayon wait).
fn with_tile<R>(need: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    TILE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < need {
                v.resize(need, 0.0);
            }
            f(&mut v[..need])
        }
        Err(_) => f(&mut vec![0.0f32; need]),
    })
}

/// Rows per tile: the depthwise scratch tile (`c × rows × w`) about 64K floats (256 KiB), at
/// least one row; fewer when that leaves fewer tasks than 4 per thread.
fn tile_rows(g: &StyledGeom) -> usize {
    let per_row = (g.c.max(g.o) * g.w).max(1);
    let mut tr = (65536 / per_row).clamp(1, g.h.max(1));
    let want = 4 * rayon::current_num_threads().max(1);
    while tr > 1 && g.n * g.h.div_ceil(tr) < want && g.c * tr * g.w > 8192 {
        tr = tr.div_ceil(2);
    }
    tr
}

/// An optional 1×1 conv applied to [`styled_conv`]'s output tile while it is in cache, so that
/// only its (fewer) channels reach memory: `z[b] = wt[b] · y[b] + bt` (MobileStyleGAN's last
/// `conv2` followed by `to_img`).
#[derive(Clone, Copy, Debug)]
pub struct Tail<'a> {
    /// `[nwt, ot, o]`, `nwt` = 1 or n
    pub w: &'a [f32],
    pub nwt: usize,
    pub ot: usize,
    /// `[ot]`
    pub bias: &'a [f32],
}

/// Inputs of [`styled_conv`] (see there).
#[derive(Clone, Copy)]
struct Args<'a> {
    g: StyledGeom,
    x: &'a [f32],
    kdw: &'a [f32],
    wpw: &'a [f32],
    bias: &'a [f32],
    noise: &'a [f32],
    slope: Option<f32>,
    tail: Option<Tail<'a>>,
    /// `[n, c, 16]`: `x` holds wavelet bands `[n, 4c, h/2, w/2]`, inverse-transformed per tile
    /// (see [`idwt`]) before the depthwise conv
    pre: Option<&'a [f32]>,
}

/// `y[b] = act(W[b] · dw(x[b], kdw[b]) + bias + noise)`:
///
/// * `x` `[n, c, h, w]`; `kdw` `[n, c, 9]` (the 3×3 depthwise kernels, zero padding 1), or
///   empty when `g.dw` is false (then the pointwise conv reads `x` directly);
/// * `wpw` `[nw, o, c]`; `bias` `[o]`; `noise` `[nn, h, w]` (added to every channel);
/// * `slope`: leaky ReLU negative slope, `None` for no activation.
///
/// Returns `[n, o, h, w]`, or with a [`Tail`] `tail.w · y + tail.bias`, `[n, ot, h, w]`.
#[allow(clippy::too_many_arguments)]
pub fn styled_conv(
    g: &StyledGeom,
    x: &[f32],
    kdw: &[f32],
    wpw: &[f32],
    bias: &[f32],
    noise: &[f32],
    slope: Option<f32>,
    tail: Option<Tail>,
    pre: Option<&[f32]>,
) -> Vec<f32> {
    let (n, c, h, w, o) = (g.n, g.c, g.h, g.w, g.o);
    let hw = h * w;
    assert_eq!(x.len(), n * c * hw, "styled_conv: x");
    if let Some(coef) = pre {
        assert!(g.dw && h % 2 == 0 && w % 2 == 0, "styled_conv: the idwt prologue needs the depthwise conv and an even size");
        assert_eq!(coef.len(), n * c * 16, "styled_conv: idwt coefficients");
    }
    if g.dw {
        assert_eq!(kdw.len(), n * c * 9, "styled_conv: kdw");
    }
    assert!(g.nw == 1 || g.nw == n);
    assert_eq!(wpw.len(), g.nw * o * c, "styled_conv: wpw");
    assert_eq!(bias.len(), o, "styled_conv: bias");
    assert!(g.nn <= 1 || g.nn == n);
    assert_eq!(noise.len(), g.nn * hw, "styled_conv: noise");
    let oy = match &tail {
        Some(t) => {
            assert!(t.nwt == 1 || t.nwt == n);
            assert_eq!(t.w.len(), t.nwt * t.ot * o, "styled_conv: tail weight");
            assert_eq!(t.bias.len(), t.ot, "styled_conv: tail bias");
            t.ot
        }
        None => o,
    };
    let mut y = crate::act::out_vec(n * oy * hw);
    if y.is_empty() {
        return y;
    }
    let a = Args { g: *g, x, kdw, wpw, bias, noise, slope, tail, pre };
    let tr = tile_rows(g);
    let tiles = h.div_ceil(tr);
    let yp = SendPtr(y.as_mut_ptr());
    let fast = avx512();
    (0..n * tiles).into_par_iter().with_max_len(1).for_each(|task| {
        let (b, t) = (task / tiles, task % tiles);
        let r0 = t * tr;
        let r1 = (r0 + tr).min(h);
        let yp = yp;
        let need = if g.dw { c * tr * w + w } else { 0 }
            + if a.pre.is_some() { (tr + 4) * w } else { 0 }
            + if a.tail.is_some() { o * tr * w } else { 0 };
        with_tile(need, |scratch| {
            // SAFETY: each task writes only rows r0..r1 of sample b's output planes (disjoint).
            unsafe {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    return tile_avx512(&a, b, r0, r1, yp.0, scratch);
                }
                let _ = fast;
                tile_generic::<false>(&a, b, r0, r1, yp.0, scratch)
            }
        });
    });
    y
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn tile_avx512(a: &Args, b: usize, r0: usize, r1: usize, y: *mut f32, scratch: &mut [f32]) {
    tile_generic::<true>(a, b, r0, r1, y, scratch)
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// One output row of the 3×3 depthwise conv (zero padding 1): `out[j] = Σ k[kh][kw] ·
/// rows[kh][j + kw - 1]` (rows outside the image are `zero`).
#[inline(always)]
fn dw_row<const FMA: bool>(k: &[f32], rows: [&[f32]; 3], out: &mut [f32]) {
    let w = out.len();
    let [a, m, z] = rows;
    let (a, m, z) = (&a[..w], &m[..w], &z[..w]);
    let edge = |j: usize| -> f32 {
        let mut s = 0.0f32;
        for (kh, r) in [a, m, z].iter().enumerate() {
            for kw in 0..3 {
                let jj = j as isize + kw as isize - 1;
                if jj >= 0 && (jj as usize) < w {
                    s = madd::<FMA>(k[kh * 3 + kw], r[jj as usize], s);
                }
            }
        }
        s
    };
    out[0] = edge(0);
    if w == 1 {
        return;
    }
    out[w - 1] = edge(w - 1);
    if w > 2 {
        let k: [f32; 9] = k[..9].try_into().unwrap();
        let inner = &mut out[1..w - 1];
        let (a0, a1, a2) = (&a[..w - 2], &a[1..w - 1], &a[2..]);
        let (m0, m1, m2) = (&m[..w - 2], &m[1..w - 1], &m[2..]);
        let (z0, z1, z2) = (&z[..w - 2], &z[1..w - 1], &z[2..]);
        for j in 0..w - 2 {
            let mut s = a0[j] * k[0];
            s = madd::<FMA>(k[1], a1[j], s);
            s = madd::<FMA>(k[2], a2[j], s);
            s = madd::<FMA>(k[3], m0[j], s);
            s = madd::<FMA>(k[4], m1[j], s);
            s = madd::<FMA>(k[5], m2[j], s);
            s = madd::<FMA>(k[6], z0[j], s);
            s = madd::<FMA>(k[7], z1[j], s);
            s = madd::<FMA>(k[8], z2[j], s);
            inner[j] = s;
        }
    }
}

/// `dst[m, tn] (row stride dst_rs) = lhs[m, k] (row-major) · rhs[k, tn] (row stride rhs_rs)`,
/// single-threaded.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn mm(m: usize, tn: usize, k: usize, dst: *mut f32, dst_rs: usize, lhs: &[f32], rhs: *const f32, rhs_rs: usize) {
    gemm::gemm(
        m,
        tn,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs.as_ptr(),
        1,
        k as isize,
        rhs,
        1,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// `row[j] = act(row[j] + bias (+ z[j]))` for `oc` rows of `tn` values, row stride `rs`.
#[inline(always)]
unsafe fn epilogue(dst: *mut f32, rs: usize, tn: usize, bias: &[f32], nz: Option<&[f32]>, slope: Option<f32>) {
    for (oc, &bv) in bias.iter().enumerate() {
        let row = std::slice::from_raw_parts_mut(dst.add(oc * rs), tn);
        match (nz, slope) {
            (Some(z), Some(a)) => {
                for (v, zv) in row.iter_mut().zip(z) {
                    let s = (*v + bv) + zv;
                    *v = s * if s < 0.0 { a } else { 1.0 };
                }
            }
            (None, Some(a)) => {
                for v in row.iter_mut() {
                    let s = *v + bv;
                    *v = s * if s < 0.0 { a } else { 1.0 };
                }
            }
            (Some(z), None) => {
                for (v, zv) in row.iter_mut().zip(z) {
                    *v = (*v + bv) + zv;
                }
            }
            (None, None) => {
                for v in row.iter_mut() {
                    *v += bv;
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn tile_generic<const FMA: bool>(a: &Args, b: usize, r0: usize, r1: usize, y: *mut f32, scratch: &mut [f32]) {
    let g = &a.g;
    let (c, h, w, o) = (g.c, g.h, g.w, g.o);
    let hw = h * w;
    let tn = (r1 - r0) * w;
    let xb = &a.x[b * c * hw..(b + 1) * c * hw];
    let wb = &a.wpw[if g.nw == 1 { 0 } else { b * o * c }..][..o * c];
    let (dws, rest) = scratch.split_at_mut(if g.dw { c * tn + w } else { 0 });
    let (pbuf, rest) = rest.split_at_mut(if a.pre.is_some() { (r1 - r0 + 4) * w } else { 0 });
    // where the conv's tile goes: the output, or (with a tail) a scratch tile
    let (ytile, yrs) = match &a.tail {
        Some(_) => (rest.as_mut_ptr(), tn),
        None => (y.add(b * o * hw + r0 * w), hw),
    };
    if g.dw {
        // one extra row of zeros for the padding
        let (t, zero) = dws.split_at_mut(c * tn);
        let zero = &mut zero[..w];
        zero.fill(0.0);
        let zero: &[f32] = zero;
        let kb = &a.kdw[b * c * 9..(b + 1) * c * 9];
        // with the idwt prologue: input rows r0-1..=r1 of channel ci made into `pbuf`, whose
        // row 0 is image row `base`
        let (ilo, ihi) = (r0.saturating_sub(1) / 2, r1.min(h - 1) / 2);
        for ci in 0..c {
            let (plane, base): (&[f32], usize) = match a.pre {
                None => (&xb[ci * hw..(ci + 1) * hw], 0),
                Some(coef) => {
                    let hwi = hw / 4;
                    let band = |ch: usize| &xb[ch * hwi..(ch + 1) * hwi];
                    let bands = [band(ci), band(c + 3 * ci), band(c + 3 * ci + 1), band(c + 3 * ci + 2)];
                    let k16: &[f32; 16] = coef[(b * c + ci) * 16..][..16].try_into().unwrap();
                    idwt_rows::<FMA>(bands, k16, w / 2, ilo, ihi + 1, pbuf);
                    (&*pbuf, 2 * ilo)
                }
            };
            let k = &kb[ci * 9..ci * 9 + 9];
            for r in r0..r1 {
                let up = if r == 0 { zero } else { &plane[(r - 1 - base) * w..(r - base) * w] };
                let mid = &plane[(r - base) * w..(r + 1 - base) * w];
                let down = if r + 1 >= h { zero } else { &plane[(r + 1 - base) * w..(r + 2 - base) * w] };
                let out = &mut t[ci * tn + (r - r0) * w..][..w];
                dw_row::<FMA>(k, [up, mid, down], out);
            }
        }
        mm(o, tn, c, ytile, yrs, wb, t.as_ptr(), tn);
    } else {
        mm(o, tn, c, ytile, yrs, wb, xb.as_ptr().add(r0 * w), hw);
    }
    // epilogue: + bias (+ noise), activation, on the tile while it is in cache
    let nz = match g.nn {
        0 => None,
        1 => Some(&a.noise[r0 * w..r0 * w + tn]),
        _ => Some(&a.noise[b * hw + r0 * w..b * hw + r0 * w + tn]),
    };
    epilogue(ytile, yrs, tn, a.bias, nz, a.slope);
    if let Some(t) = &a.tail {
        let wt = &t.w[if t.nwt == 1 { 0 } else { b * t.ot * o }..][..t.ot * o];
        let ztile = y.add(b * t.ot * hw + r0 * w);
        mm(t.ot, tn, o, ztile, hw, wt, ytile, tn);
        epilogue(ztile, hw, tn, t.bias, None, None);
    }
}

/// The inverse one-level Haar/2-tap wavelet transform with per-band scales folded in:
/// `x` `[n, 4c, h, w]` with bands `[ll (c) | (lh, hl, hh) per channel (3c)]`, `coef`
/// `[n, c, 16]` = `coef[b][ch][band * 4 + a * 2 + bb]` (band order ll, lh, hl, hh) ->
/// `y[b, ch, 2i + a, 2j + bb] = Σ_band coef[.., band, a, bb] · band[i, j]`, `[n, c, 2h, 2w]`.
pub fn idwt(n: usize, c: usize, h: usize, w: usize, x: &[f32], coef: &[f32]) -> Vec<f32> {
    let hw = h * w;
    assert_eq!(x.len(), n * 4 * c * hw, "idwt: x");
    assert_eq!(coef.len(), n * c * 16, "idwt: coef");
    let mut y = crate::act::out_vec(n * c * 4 * hw);
    if y.is_empty() {
        return y;
    }
    let fast = avx512();
    // tasks: (sample, channel) planes, split by rows when there are few planes
    let rows_per = {
        let planes = n * c;
        let want = 8 * rayon::current_num_threads().max(1);
        if planes >= want { h } else { (h * planes / want).max(1) }
    };
    let chunks = h.div_ceil(rows_per);
    let yp = SendPtr(y.as_mut_ptr());
    (0..n * c * chunks).into_par_iter().for_each(|task| {
        let (pl, ch) = (task / chunks, task % chunks);
        let (b, cc) = (pl / c, pl % c);
        let i0 = ch * rows_per;
        let i1 = (i0 + rows_per).min(h);
        let xb = &x[b * 4 * c * hw..];
        let bands = [
            &xb[cc * hw..(cc + 1) * hw],
            &xb[(c + 3 * cc) * hw..(c + 3 * cc + 1) * hw],
            &xb[(c + 3 * cc + 1) * hw..(c + 3 * cc + 2) * hw],
            &xb[(c + 3 * cc + 2) * hw..(c + 3 * cc + 3) * hw],
        ];
        let k: &[f32; 16] = coef[pl * 16..pl * 16 + 16].try_into().unwrap();
        let yp = yp;
        // SAFETY: rows 2*i0..2*i1 of plane pl are written by this task only.
        let out = unsafe { std::slice::from_raw_parts_mut(yp.0.add(pl * 4 * hw + 2 * i0 * 2 * w), (i1 - i0) * 4 * w) };
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if fast {
                return idwt_rows_avx512(bands, k, w, i0, i1, out);
            }
            let _ = fast;
            idwt_rows::<false>(bands, k, w, i0, i1, out)
        }
    });
    y
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn idwt_rows_avx512(bands: [&[f32]; 4], k: &[f32; 16], w: usize, i0: usize, i1: usize, out: &mut [f32]) {
    idwt_rows::<true>(bands, k, w, i0, i1, out)
}

#[inline(always)]
fn idwt_rows<const FMA: bool>(bands: [&[f32]; 4], k: &[f32; 16], w: usize, i0: usize, i1: usize, out: &mut [f32]) {
    for i in i0..i1 {
        let [ll, lh, hl, hh] = bands.map(|p| &p[i * w..(i + 1) * w]);
        for a in 0..2 {
            let row = &mut out[((i - i0) * 2 + a) * 2 * w..][..2 * w];
            let c = |band: usize, bb: usize| k[band * 4 + a * 2 + bb];
            let (e0, e1, e2, e3) = (c(0, 0), c(1, 0), c(2, 0), c(3, 0));
            let (o0, o1, o2, o3) = (c(0, 1), c(1, 1), c(2, 1), c(3, 1));
            for (j, pair) in row.chunks_exact_mut(2).enumerate() {
                let (p, q, r, s) = (ll[j], lh[j], hl[j], hh[j]);
                pair[0] = madd::<FMA>(e3, s, madd::<FMA>(e2, r, madd::<FMA>(e1, q, p * e0)));
                pair[1] = madd::<FMA>(o3, s, madd::<FMA>(o2, r, madd::<FMA>(o1, q, p * o0)));
            }
        }
    }
}

// ------------------------------------------------------------------ burn glue

#[backend_extension(Flex)]
pub trait FastMobile: Backend {
    /// [`styled_conv`]; `geom = [n, c, h, w, o, nw, nn, dw, nwt, ot, pre]` (`ot = 0`: no tail;
    /// `pre = 1`: `x` holds the wavelet bands and `coef` the idwt coefficients),
    /// `params = [slope, has_act]`.
    #[allow(clippy::too_many_arguments)]
    fn fast_styled_conv(
        x: FloatTensor<Self>,
        kdw: FloatTensor<Self>,
        wpw: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        wt: FloatTensor<Self>,
        bt: FloatTensor<Self>,
        coef: FloatTensor<Self>,
        geom: [usize; 11],
        params: [f32; 2],
    ) -> FloatTensor<Self>;
    /// [`idwt`]; `geom = [n, c, h, w]` (`x` has `4c` channels).
    fn fast_idwt(x: FloatTensor<Self>, coef: FloatTensor<Self>, geom: [usize; 4]) -> FloatTensor<Self>;
}

impl FastMobile for Flex {
    fn fast_styled_conv(
        x: FlexTensor,
        kdw: FlexTensor,
        wpw: FlexTensor,
        bias: FlexTensor,
        noise: FlexTensor,
        wt: FlexTensor,
        bt: FlexTensor,
        coef: FlexTensor,
        geom: [usize; 11],
        params: [f32; 2],
    ) -> FlexTensor {
        let [n, c, h, w, o, nw, nn, dw, nwt, ot, pre] = geom;
        let g = StyledGeom { n, c, h, w, o, nw, nn, dw: dw == 1 };
        let empty = || std::borrow::Cow::Borrowed(&[][..]);
        let kv = if g.dw { f32_data(&kdw) } else { empty() };
        let nv = if nn > 0 { f32_data(&noise) } else { empty() };
        let (wtv, btv) = if ot > 0 { (f32_data(&wt), f32_data(&bt)) } else { (empty(), empty()) };
        let tail = (ot > 0).then_some(Tail { w: &wtv, nwt, ot, bias: &btv });
        let cv = if pre == 1 { f32_data(&coef) } else { empty() };
        let slope = (params[1] != 0.0).then_some(params[0]);
        let y = styled_conv(&g, &f32_data(&x), &kv, &f32_data(&wpw), &f32_data(&bias), &nv, slope, tail, (pre == 1).then_some(&cv[..]));
        flex_from(y, [n, if ot > 0 { ot } else { o }, h, w])
    }

    fn fast_idwt(x: FlexTensor, coef: FlexTensor, geom: [usize; 4]) -> FlexTensor {
        let [n, c, h, w] = geom;
        flex_from(idwt(n, c, h, w, &f32_data(&x), &f32_data(&coef)), [n, c, 2 * h, 2 * w])
    }
}

static MOBILE_ENABLED: crate::Switch = crate::Switch::new("LIMNER_FAST_MOBILE");

/// Whether the MobileStyleGAN kernels are used (default on; `LIMNER_FAST_MOBILE=0` or
/// [`crate::enabled`] off turns them off) and `t` is an f32 tensor on a plain (not autodiff)
/// flex device.
pub fn usable<const D: usize>(t: &Tensor<D>) -> bool {
    crate::enabled()
        && MOBILE_ENABLED.get()
        && t.dtype() == DType::F32
        && matches!(t.device().as_dispatch(), DispatchDevice::Flex(_))
}

/// Turns the MobileStyleGAN kernels on or off for the whole process.
pub fn set_enabled(on: bool) {
    MOBILE_ENABLED.set(on);
}

/// [`styled_conv`] on tensors: `x [n, c, h, w]`, `kdw` `[n, c, 9]` or `None` (no depthwise
/// conv), `wpw [nw, o, c]`, `bias [o]`, `noise [1 or n, 1, h, w]` or `None`, `slope` `None` for
/// no activation; `tail` = `(wt [nwt, ot, o], bt [ot])`: returns `wt · y + bt` instead of `y`
/// (see [`Tail`]); `pre` = `coef [n, c, 16]`: `x` is `[n, 4c, h/2, w/2]` wavelet bands, run
/// through [`idwt`] with these coefficients first (fused, per tile; needs `kdw`). Call only
/// when [`usable`] holds for `x`.
#[allow(clippy::too_many_arguments)]
pub fn styled_conv_t(
    x: Tensor<4>,
    kdw: Option<Tensor<3>>,
    wpw: Tensor<3>,
    bias: Tensor<1>,
    noise: Option<Tensor<4>>,
    slope: Option<f64>,
    tail: Option<(Tensor<3>, Tensor<1>)>,
    pre: Option<Tensor<3>>,
) -> Tensor<4> {
    let [n, c, h, w] = match &pre {
        None => x.dims(),
        Some(coef) => {
            let [n, c4, hi, wi] = x.dims();
            assert_eq!(c4 % 4, 0, "styled_conv: idwt input channels must be a multiple of 4");
            assert_eq!(coef.dims(), [n, c4 / 4, 16], "styled_conv: idwt coef must be [n, c, 16]");
            assert!(kdw.is_some(), "styled_conv: the idwt prologue needs the depthwise conv");
            [n, c4 / 4, 2 * hi, 2 * wi]
        }
    };
    let [nw, o, cw] = wpw.dims();
    assert_eq!(cw, c, "styled_conv: weight expects {cw} channels, x has {c}");
    let nn = noise.as_ref().map_or(0, |z| z.dims()[0]);
    if let Some(z) = &noise {
        assert_eq!(z.dims()[1..], [1, h, w], "styled_conv: noise must be [1 or n, 1, h, w]");
    }
    if let Some(k) = &kdw {
        assert_eq!(k.dims(), [n, c, 9], "styled_conv: kdw must be [n, c, 9]");
    }
    let dev = x.device();
    let dummy = || Tensor::<1>::zeros([1], &dev);
    let kdw_d = kdw.as_ref().map_or_else(|| dummy().into_dispatch(), |k| k.clone().into_dispatch());
    let noise_d = noise.map_or_else(|| dummy().into_dispatch(), |z| z.into_dispatch());
    let (nwt, ot) = match &tail {
        Some((wt, bt)) => {
            let [nwt, ot, ow] = wt.dims();
            assert_eq!(ow, o, "styled_conv: tail weight expects {ow} channels, the conv gives {o}");
            assert_eq!(bt.dims(), [ot], "styled_conv: tail bias");
            (nwt, ot)
        }
        None => (0, 0),
    };
    let (wt_d, bt_d) = match tail {
        Some((wt, bt)) => (wt.into_dispatch(), bt.into_dispatch()),
        None => (dummy().into_dispatch(), dummy().into_dispatch()),
    };
    let has_pre = usize::from(pre.is_some());
    let coef_d = pre.map_or_else(|| dummy().into_dispatch(), |k| k.into_dispatch());
    Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastMobile>::fast_styled_conv(
        x.into_dispatch(),
        kdw_d,
        wpw.into_dispatch(),
        bias.into_dispatch(),
        noise_d,
        wt_d,
        bt_d,
        coef_d,
        [n, c, h, w, o, nw, nn, usize::from(kdw.is_some()), nwt, ot, has_pre],
        [slope.unwrap_or(0.0) as f32, if slope.is_some() { 1.0 } else { 0.0 }],
    ))
}

/// [`idwt`] on tensors: `x [n, 4c, h, w]`, `coef [n, c, 16]` -> `[n, c, 2h, 2w]`. Call only when
/// [`usable`] holds for `x`.
pub fn idwt_t(x: Tensor<4>, coef: Tensor<3>) -> Tensor<4> {
    let [n, c4, h, w] = x.dims();
    assert_eq!(c4 % 4, 0, "idwt: channels must be a multiple of 4");
    assert_eq!(coef.dims(), [n, c4 / 4, 16], "idwt: coef must be [n, c, 16]");
    Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastMobile>::fast_idwt(
        x.into_dispatch(),
        coef.into_dispatch(),
        [n, c4 / 4, h, w],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104729) % 1009) as f32 / 1009.0 - 0.5) * 2.0).collect()
    }

    fn naive_styled(g: &StyledGeom, x: &[f32], kdw: &[f32], wpw: &[f32], bias: &[f32], noise: &[f32], slope: Option<f32>) -> Vec<f64> {
        let (n, c, h, w, o) = (g.n, g.c, g.h, g.w, g.o);
        let hw = h * w;
        let mut t = vec![0.0f64; n * c * hw];
        for b in 0..n {
            for ci in 0..c {
                for i in 0..h {
                    for j in 0..w {
                        let idx = (b * c + ci) * hw + i * w + j;
                        if !g.dw {
                            t[idx] = x[idx] as f64;
                            continue;
                        }
                        let mut s = 0.0f64;
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (ii, jj) = (i as isize + kh as isize - 1, j as isize + kw as isize - 1);
                                if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                                    s += kdw[(b * c + ci) * 9 + kh * 3 + kw] as f64 * x[(b * c + ci) * hw + ii as usize * w + jj as usize] as f64;
                                }
                            }
                        }
                        t[idx] = s;
                    }
                }
            }
        }
        let mut y = vec![0.0f64; n * o * hw];
        for b in 0..n {
            let wb = if g.nw == 1 { 0 } else { b * o * c };
            for oc in 0..o {
                for p in 0..hw {
                    let mut s = 0.0f64;
                    for ci in 0..c {
                        s += wpw[wb + oc * c + ci] as f64 * t[(b * c + ci) * hw + p];
                    }
                    s += bias[oc] as f64;
                    if g.nn > 0 {
                        s += noise[if g.nn == 1 { p } else { b * hw + p }] as f64;
                    }
                    if let Some(a) = slope {
                        if s < 0.0 {
                            s *= a as f64;
                        }
                    }
                    y[(b * o + oc) * hw + p] = s;
                }
            }
        }
        y
    }

    #[test]
    fn styled_conv_matches_naive_odd_sizes() {
        for &(n, c, h, w, o, nw, nn, dw, act) in &[
            (1, 5, 7, 9, 3, 1, 1, true, true),
            (2, 17, 13, 11, 6, 2, 2, true, true),
            (3, 8, 1, 1, 4, 1, 0, true, false),
            (2, 19, 5, 2, 23, 1, 1, true, true),
            (1, 33, 70, 37, 20, 1, 1, true, true),
            (2, 9, 6, 7, 12, 2, 0, false, false),
            (1, 64, 64, 64, 40, 1, 1, true, true),
        ] {
            let g = StyledGeom { n, c, h, w, o, nw, nn, dw };
            let x = data(n * c * h * w, 1);
            let kdw = if dw { data(n * c * 9, 2) } else { vec![] };
            let wpw = data(nw * o * c, 3);
            let bias = data(o, 4);
            let noise = data(nn * h * w, 5);
            let slope = act.then_some(0.2f32);
            let y = styled_conv(&g, &x, &kdw, &wpw, &bias, &noise, slope, None, None);
            let want = naive_styled(&g, &x, &kdw, &wpw, &bias, &noise, slope);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(((*a as f64) - b).abs() / scale < 1e-5, "{g:?} at {i}: {a} vs {b}");
            }
        }
    }

    /// The idwt prologue equals idwt then styled_conv.
    #[test]
    fn styled_conv_with_idwt_prologue_matches_two_passes() {
        for &(n, c, hi, wi, o, nn) in &[(1, 3, 1, 1, 2, 1), (2, 5, 3, 7, 4, 2), (1, 8, 9, 5, 6, 0), (1, 16, 40, 33, 24, 1)] {
            let (h, w) = (2 * hi, 2 * wi);
            let g = StyledGeom { n, c, h, w, o, nw: 1, nn, dw: true };
            let x = data(n * 4 * c * hi * wi, 11);
            let coef = data(n * c * 16, 12);
            let kdw = data(n * c * 9, 13);
            let wpw = data(o * c, 14);
            let bias = data(o, 15);
            let noise = data(nn * h * w, 16);
            let up = idwt(n, c, hi, wi, &x, &coef);
            let want = styled_conv(&g, &up, &kdw, &wpw, &bias, &noise, Some(0.2), None, None);
            let got = styled_conv(&g, &x, &kdw, &wpw, &bias, &noise, Some(0.2), None, Some(&coef));
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() / scale < 1e-5, "{g:?} at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn idwt_matches_naive_odd_sizes() {
        for &(n, c, h, w) in &[(1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 33, 17), (3, 5, 4, 9)] {
            let x = data(n * 4 * c * h * w, 7);
            let coef = data(n * c * 16, 8);
            let y = idwt(n, c, h, w, &x, &coef);
            let hw = h * w;
            for b in 0..n {
                for cc in 0..c {
                    let chans = [cc, c + 3 * cc, c + 3 * cc + 1, c + 3 * cc + 2];
                    for i in 0..2 * h {
                        for j in 0..2 * w {
                            let mut s = 0.0f64;
                            for (band, ch) in chans.iter().enumerate() {
                                let k = coef[(b * c + cc) * 16 + band * 4 + (i % 2) * 2 + j % 2] as f64;
                                s += k * x[(b * 4 * c + ch) * hw + (i / 2) * w + j / 2] as f64;
                            }
                            let got = y[((b * c + cc) * 2 * h + i) * 2 * w + j] as f64;
                            assert!((got - s).abs() < 1e-5, "({n},{c},{h},{w}) at {b},{cc},{i},{j}: {got} vs {s}");
                        }
                    }
                }
            }
        }
    }
}
