//! `relu(conv2d(x, w) + b)` with frozen `w` and `b` as ONE op for burn's flex backend: every
//! conv of InceptionV3 (its batch norms are folded into `w` and `b` at conversion). Any
//! rectangular kernel (1×1, 3×3, 5×5, 1×7, 7×1), stride `s` in both directions, zero padding
//! `(ph, pw)` on both sides, groups 1, dilation 1.
//!
//! Direct conv first: with AVX2 + FMA, every stride-1 conv that is not 1×1 (and whose padded
//! rows waste at most a sixth, [`crate::direct::applies`]) runs through [`crate::direct`], forward
//! and input gradient, the ReLU mask applied while copying the input planes; the paths below are
//! then used for the others (1×1, stride 2, small maps with wide padding) and for all of them
//! with `LIMNER_DIRECT_CONV=0` (needed too for the `LIMNER_CONV_RELU_TILES` / row-tile A/B runs).
//!
//! Forward: [`crate::cpu::conv_fwd`] with the bias + ReLU fused in as its epilogue (phase-split
//! planes, row-tiled im2col + gemm; batch-parallel with the epilogue on each sample's output
//! right after its gemm, or gemm-parallel below one sample per thread). It took less CPU time
//! than the column tiles below in A/B runs (bench/NOTES.md, "InceptionV3 (issue 21)"). Below one
//! sample per thread (batch 1: Gatys, DeepDream, projection) its row tiles run side by side
//! instead, each a single-threaded gemm ([`fwd_row_tiles`], bit-identical;
//! `LIMNER_CONV_RELU_ROW_TILES=0` for the previous path).
//! Column tiles (`LIMNER_CONV_RELU_TILES=1`, or `=rect` for the 1×7 / 7×1 ones only, for A/B
//! runs): the output of every sample is cut into runs of output pixels; each tile is one rayon
//! task: its im2col block in a per-thread scratch buffer, one single-threaded `gemm`, then
//! bias + ReLU over the tile while it is in cache. No weight gradient.
//!
//! Backward (input only; the weights and the bias are constants in every use limner makes of
//! the network): `dy · [y > 0]` (from the saved output), then the input gradient: for stride 1
//! a forward conv of the masked gradient with the flipped, transposed kernel and padding
//! `(kh-1-ph, kw-1-pw)` (the same forward kernels, no scatter); for stride 2 `Wᵀ · dy` and a
//! col2im scatter, parallel over the input channels. Results never depend on the thread
//! count: each output element is summed by one task in a fixed order.
//!
//! [`conv_bias_relu`] falls back to [`crate::conv2d`] + [`crate::bias_relu`] (burn's conv for
//! non-square kernels) when the weights or the bias are tracked by autodiff, off flex, for
//! other dtypes, with `LIMNER_FAST_CONV=0`, or with `LIMNER_FAST_CONV_RELU=0` (A/B switch).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use crate::bias_relu::copy_masked;
use crate::cpu::{im2col_tile, mm, out_vec, scratch, tile_rows, Geom, Phases};
use crate::{f32_data, flex_from, on_flex, profile, Switch};

static FUSED: Switch = Switch::new("LIMNER_FAST_CONV_RELU");
static ROW_TILES: Switch = Switch::new("LIMNER_CONV_RELU_ROW_TILES");

/// Whether convs with fewer samples than threads (batch 1: Gatys, DeepDream, projection) run
/// their row tiles in parallel ([`fwd_row_tiles`]; default on, `LIMNER_CONV_RELU_ROW_TILES=0`
/// for the previous path: one tile after the other, each a 2-thread gemm).
pub fn row_tiles_enabled() -> bool {
    ROW_TILES.get()
}

/// Turns [`row_tiles_enabled`] on or off for the whole process (same-process A/B runs).
pub fn set_row_tiles_enabled(on: bool) {
    ROW_TILES.set(on);
}

/// Whether [`conv_bias_relu`] uses the fused op (default on; `LIMNER_FAST_CONV_RELU=0` turns it
/// off; [`crate::enabled`] off turns it off too).
pub fn fused_enabled() -> bool {
    FUSED.get()
}

/// Turns the fused conv + bias + ReLU on or off for the whole process.
pub fn set_fused_enabled(on: bool) {
    FUSED.set(on);
}

/// A raw pointer the tasks of one kernel share; each task writes a disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Output columns `ow` of output row `oh`-independent tap `(k, pad)` with a valid input
/// column (`0 <= ow*s + k - pad < len`), as the half-open range `[lo, hi)`.
#[inline]
fn valid_cols(k: usize, pad: usize, s: usize, len: usize) -> (usize, usize) {
    let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
    let hi = if len + pad > k { (len - 1 + pad - k) / s + 1 } else { 0 };
    (lo, hi.max(lo))
}

/// im2col of output pixels `j0..j1` (flat `oh * wo + ow`) of one sample:
/// `col[(ci, ky, kx), j - j0] = x[ci, oh*s + ky - ph, ow*s + kx - pw]` (0 in the padding);
/// with `mb` (same layout as `xb`), `x` is read as `x · [m > 0]` (the ReLU mask of the
/// backward pass, applied while gathering).
fn im2col_cols(g: &Geom, xb: &[f32], mb: Option<&[f32]>, j0: usize, j1: usize, col: &mut [f32]) {
    let (wo, tn, hw_in) = (g.wo(), j1 - j0, g.h * g.w);
    for ci in 0..g.cin {
        let plane = &xb[ci * hw_in..(ci + 1) * hw_in];
        let mplane = mb.map(|m| &m[ci * hw_in..(ci + 1) * hw_in]);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[((ci * g.kh + ky) * g.kw + kx) * tn..][..tn];
                let (lo, hi) = valid_cols(kx, g.pw, g.s, g.w);
                let mut j = j0;
                while j < j1 {
                    let (oh, ow0) = (j / wo, j % wo);
                    let ow1 = wo.min(ow0 + (j1 - j));
                    let seg = &mut row[j - j0..j - j0 + (ow1 - ow0)];
                    let ih = (oh * g.s + ky) as isize - g.ph as isize;
                    if ih < 0 || ih >= g.h as isize {
                        seg.fill(0.0);
                    } else {
                        let src = &plane[ih as usize * g.w..(ih as usize + 1) * g.w];
                        let msk = mplane.map(|m| &m[ih as usize * g.w..(ih as usize + 1) * g.w]);
                        let a = lo.clamp(ow0, ow1);
                        let b = hi.clamp(a, ow1);
                        seg[..a - ow0].fill(0.0);
                        seg[b - ow0..].fill(0.0);
                        let dst = &mut seg[a - ow0..b - ow0];
                        if dst.is_empty() {
                            // no valid column in this run (a may sit below `lo` then)
                        } else if g.s == 1 {
                            let i0 = a + kx - g.pw;
                            match msk {
                                None => dst.copy_from_slice(&src[i0..i0 + (b - a)]),
                                Some(m) => copy_masked(dst, &src[i0..i0 + (b - a)], &m[i0..i0 + (b - a)]),
                            }
                        } else {
                            for (t, d) in dst.iter_mut().enumerate() {
                                let i = (a + t) * g.s + kx - g.pw;
                                *d = match msk {
                                    Some(m) if m[i] <= 0.0 => 0.0,
                                    _ => src[i],
                                };
                            }
                        }
                    }
                    j += ow1 - ow0;
                }
            }
        }
    }
}

/// `dy · [y > 0]` as a new vector, one pass (parallel in 64 Ki-float chunks). Applying the mask
/// while gathering the im2col columns instead re-reads it `kh · kw` times and was slower.
fn mask(dy: &[f32], y: &[f32]) -> Vec<f32> {
    let mut out = out_vec(dy.len());
    out.par_chunks_mut(1 << 16).zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16))).for_each(|(o, (d, y))| copy_masked(o, d, y));
    out
}

/// Which forward kernels go through the column tiles instead of [`crate::cpu::conv_fwd`]
/// (`LIMNER_CONV_RELU_TILES`: unset = none, `rect` = the non-square ones (1×7 / 7×1), `1` = all;
/// for A/B runs).
fn via_tiles(g: &Geom) -> bool {
    static TILES: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    match TILES.get_or_init(|| match std::env::var("LIMNER_CONV_RELU_TILES").as_deref() {
        Ok("1") => 2,
        Ok("rect") => 1,
        _ => 0,
    }) {
        2 => true,
        1 => g.kh != g.kw || g.ph != g.pw,
        _ => false,
    }
}

/// `row = max(row + b, 0)` (ReLU only with `relu`, `+ b` only with a bias).
#[inline]
fn epilogue(row: &mut [f32], b: Option<f32>, relu: bool) {
    match (b, relu) {
        (Some(b), true) => row.iter_mut().for_each(|v| *v = (*v + b).max(0.0)),
        (Some(b), false) => row.iter_mut().for_each(|v| *v += b),
        (None, true) => row.iter_mut().for_each(|v| *v = v.max(0.0)),
        (None, false) => {}
    }
}


/// The adjoint of [`im2col_cols`] over all output pixels of one sample, for input channels
/// `c0..c0 + dx.len() / (h*w)`: `dx[ci] (zeroed first) += col rows of ci`, in a fixed order.
fn col2im_planes(g: &Geom, col: &[f32], c0: usize, dx: &mut [f32]) {
    let (ho, wo, hw_in) = (g.ho(), g.wo(), g.h * g.w);
    let hw = ho * wo;
    dx.fill(0.0);
    for (i, plane) in dx.chunks_exact_mut(hw_in).enumerate() {
        let ci = c0 + i;
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &col[((ci * g.kh + ky) * g.kw + kx) * hw..][..hw];
                let (lo, hi) = valid_cols(kx, g.pw, g.s, g.w);
                let hi = hi.min(wo);
                if lo >= hi {
                    continue;
                }
                for oh in 0..ho {
                    let ih = (oh * g.s + ky) as isize - g.ph as isize;
                    if ih < 0 || ih >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[ih as usize * g.w..(ih as usize + 1) * g.w];
                    let src = &row[oh * wo + lo..oh * wo + hi];
                    if g.s == 1 {
                        let i0 = lo + kx - g.pw;
                        for (d, v) in dst[i0..i0 + (hi - lo)].iter_mut().zip(src) {
                            *d += *v;
                        }
                    } else {
                        for (t, v) in src.iter().enumerate() {
                            dst[(lo + t) * g.s + kx - g.pw] += *v;
                        }
                    }
                }
            }
        }
    }
}

/// im2col tiles are kept around this many floats (512 KiB, in L2).
const TILE_FLOATS: usize = 128 * 1024;

/// Column tiles per sample: enough for about two tasks per thread over the batch, tiles of at
/// least 16 columns, each im2col block at most [`TILE_FLOATS`].
fn tiles_per_sample(g: &Geom, hw: usize) -> usize {
    let t = rayon::current_num_threads().max(1);
    let by_cache = if g.is_pointwise() { 1 } else { hw.div_ceil((TILE_FLOATS / g.ckk().max(1)).max(16)) };
    let by_threads = if t > 1 { (2 * t).div_ceil(g.n.max(1)) } else { 1 };
    by_cache.max(by_threads).min(hw.div_ceil(16)).max(1)
}

/// `y = act(W * im2col(x) + bias)` for every sample; `w` `[cout, cin, kh, kw]` contiguous,
/// `bias` `[cout]`, `relu` applies `max(0, ·)`.
pub fn fwd(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    fwd_masked(g, x, None, w, bias, relu)
}

/// [`fwd`] of `x · [mask > 0]` (`mask` the same shape as `x`), the mask applied while gathering.
fn fwd_masked(g: &Geom, x: &[f32], mask: Option<&[f32]>, w: &[f32], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    assert_eq!(x.len(), g.n * in_len, "conv input length");
    assert_eq!(w.len(), g.cout * ckk, "conv weight length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.cout, "conv bias length");
    }
    if hw == 0 || g.n == 0 || g.cout == 0 {
        return out_vec(g.n * out_len);
    }
    if crate::direct::enabled() && crate::direct::applies(g) {
        return crate::direct::fwd(g, x, mask, w, bias, relu);
    }
    let t = rayon::current_num_threads().max(1);
    // (a single row tile keeps the parallel gemm)
    if mask.is_none() && !via_tiles(g) && g.n < t && !g.is_pointwise() && g.ho() > tile_rows(g) && row_tiles_enabled() {
        return fwd_row_tiles(g, x, w, bias, relu);
    }
    if mask.is_none() && !via_tiles(g) {
        // `cpu::conv_fwd` (phase-split planes once per sample, row-tiled im2col;
        // batch-parallel, or a parallel gemm below one sample per thread) took less time than
        // the column tiles below (`perf stat -e task-clock`, FID batch 32: 3.8 vs 4.3 s;
        // DeepDream's batch-1 backward: 87 vs 116 ms per step in
        // bench/results/inception-profile.md); the epilogue runs per sample inside it
        if bias.is_none() && !relu {
            return crate::cpu::conv_fwd(g, x, w);
        }
        let epi = |o: usize, plane: &mut [f32]| epilogue(plane, bias.map(|b| b[o]), relu);
        return crate::cpu::conv_fwd_epi(g, x, w, Some(&epi));
    }
    fwd_tiles(g, x, mask, w, bias, relu)
}

/// The forward for fewer samples than threads (batch 1), one sample after the other: the
/// phase-split planes of the sample, parallel over input channels, then the im2col row tiles
/// of [`crate::cpu::conv_fwd`] (the same tiles, so the same gemm shapes and the same sums, bit
/// for bit) as parallel tasks, each a single-threaded gemm followed by bias + ReLU on the tile
/// while it is in cache. Before, the tiles ran one after the other with the gemm itself split
/// across the threads: at batch 1 the tiles are small (one to a few output rows; e.g. 70
/// columns for conv2d_5's input gradient, K = 1728), too small for two threads to share one
/// gemm well, and the im2col gathers and the phase split ran on one thread.
fn fwd_row_tiles(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let (ho, wo, ckk, in_len, out_len) = (g.ho(), g.wo(), g.ckk(), g.in_len(), g.out_len());
    let (hw, hw_in) = (ho * wo, g.h * g.w);
    let ps = Phases::of(g);
    let (pl, tr) = (ps.len(), tile_rows(g));
    let tiles: Vec<usize> = (0..ho).step_by(tr).collect();
    let mut y = out_vec(g.n * out_len);
    let mut planes = out_vec(g.cin * pl);
    for b in 0..g.n {
        let xb = &x[b * in_len..(b + 1) * in_len];
        planes.par_chunks_mut(pl).enumerate().for_each(|(ci, p)| ps.split(&xb[ci * hw_in..(ci + 1) * hw_in], p));
        let yp = SharedMut(y[b * out_len..].as_mut_ptr());
        let planes = &planes;
        tiles.par_iter().with_max_len(1).for_each(|&oh0| {
            let yp = yp;
            let oh1 = (oh0 + tr).min(ho);
            let tn = (oh1 - oh0) * wo;
            // SAFETY: the task of rows oh0..oh1 alone writes columns oh0*wo..oh1*wo of every
            // output plane of sample b
            let dst = unsafe { yp.0.add(oh0 * wo) };
            scratch(0, ckk * tn, |_, col| {
                im2col_tile(g, &ps, planes, oh0, oh1, col);
                unsafe { mm(g.cout, tn, ckk, dst, hw as isize, false, w.as_ptr(), 1, ckk as isize, col.as_ptr(), 1, tn as isize, gemm::Parallelism::None) };
            });
            if bias.is_some() || relu {
                for o in 0..g.cout {
                    epilogue(unsafe { std::slice::from_raw_parts_mut(dst.add(o * hw), tn) }, bias.map(|b| b[o]), relu);
                }
            }
        });
    }
    y
}

/// The column-tile forward (see the module docs).
fn fwd_tiles(g: &Geom, x: &[f32], mask: Option<&[f32]>, w: &[f32], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    let mut y = out_vec(g.n * out_len);
    let per = tiles_per_sample(g, hw);
    let (q, r) = (hw / per, hw % per);
    let start = |i: usize| i * q + i.min(r);
    let yp = SharedMut(y.as_mut_ptr());
    (0..g.n * per).into_par_iter().with_max_len(1).for_each(|item| {
        let (b, i) = (item / per, item % per);
        let (j0, j1) = (start(i), start(i + 1));
        let tn = j1 - j0;
        let xb = &x[b * in_len..(b + 1) * in_len];
        let mb = mask.map(|m| &m[b * in_len..(b + 1) * in_len]);
        let yp = yp;
        // SAFETY: task (b, i) alone writes columns j0..j1 of every row of sample b.
        let dst = unsafe { yp.0.add(b * out_len + j0) };
        let acc = false;
        if g.is_pointwise() && mb.is_none() {
            unsafe {
                mm(g.cout, tn, g.cin, dst, hw as isize, acc, w.as_ptr(), 1, g.cin as isize, xb[j0..].as_ptr(), 1, hw as isize, gemm::Parallelism::None);
            }
        } else {
            scratch(ckk * tn, 0, |col, _| {
                im2col_cols(g, xb, mb, j0, j1, col);
                unsafe { mm(g.cout, tn, ckk, dst, hw as isize, acc, w.as_ptr(), 1, ckk as isize, col.as_ptr(), 1, tn as isize, gemm::Parallelism::None) };
            });
        }
        // epilogue on the tile while it is in cache: + bias, ReLU
        if bias.is_some() || relu {
            for o in 0..g.cout {
                epilogue(unsafe { std::slice::from_raw_parts_mut(dst.add(o * hw), tn) }, bias.map(|b| b[o]), relu);
            }
        }
    });
    y
}

/// The input gradient of the conv `g` from `dy` (`[n, cout, ho, wo]`, already masked by the ReLU).
pub fn xgrad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    xgrad_masked(g, dy, None, w)
}

/// The input gradient of `relu(conv + b)` from `dy` and the saved output `y`: [`xgrad`] of
/// `dy · [y > 0]` (the mask in one pass, then the plain input gradient).
pub fn xgrad_relu(g: &Geom, dy: &[f32], y: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "saved output length");
    xgrad_masked(g, dy, Some(y), w)
}

fn xgrad_masked(g: &Geom, dy: &[f32], y: Option<&[f32]>, w: &[f32]) -> Vec<f32> {
    let (hw, ckk, in_len, out_len) = (g.ho() * g.wo(), g.ckk(), g.in_len(), g.out_len());
    assert_eq!(dy.len(), g.n * out_len, "conv output-gradient length");
    assert_eq!(w.len(), g.cout * ckk, "conv weight length");
    let (kh, kw) = (g.kh, g.kw);
    if g.s == 1 && g.ph < kh && g.pw < kw {
        // a forward conv of dy with wf[ci, co] = w[co, ci] flipped in both directions
        let (wf, gf) = crate::cpu::flipped(g, w);
        if crate::direct::enabled() && crate::direct::applies(&gf) {
            // the mask applied while copying the planes: no masked copy of dy
            return crate::direct::fwd(&gf, dy, y, &wf, None, false);
        }
        let masked = y.map(|y| mask(dy, y));
        return fwd(&gf, masked.as_deref().unwrap_or(dy), &wf, None, false);
    }
    let masked = y.map(|y| mask(dy, y));
    let dy = masked.as_deref().unwrap_or(dy);
    if g.cin <= 4 && crate::direct::enabled() {
        // the RGB stem (conv2d_1, 3x3 stride 2 onto 3 channels): the GAN's input gradient,
        // `Wᵀ · dy` per tile of output rows in a reused scratch, scattered into phase planes
        // with contiguous adds, then merged; below, a fresh `ckk × hw` column buffer per
        // sample and a strided scatter parallel over only 3 channels ran at 15-19 GFLOP per
        // CPU-s (bench/NOTES.md, round 5)
        return crate::cpu::conv_xgrad(g, dy, w);
    }
    // col = Wᵀ · dy[b] (lhs element (r, o) at w[o * ckk + r]), then col2im per input channel
    let mut dx = out_vec(g.n * in_len);
    let t = rayon::current_num_threads().max(1);
    let one = |b: usize, dxb: &mut [f32], par: bool| {
        let mut col = out_vec(ckk * hw);
        let dyb = &dy[b * out_len..(b + 1) * out_len];
        let p = if par && t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
        unsafe { mm(ckk, hw, g.cout, col.as_mut_ptr(), hw as isize, false, w.as_ptr(), ckk as isize, 1, dyb.as_ptr(), 1, hw as isize, p) };
        let hw_in = g.h * g.w;
        if par {
            let per = g.cin.div_ceil(4 * t).max(1);
            dxb.par_chunks_mut(per * hw_in).enumerate().for_each(|(i, d)| col2im_planes(g, &col, i * per, d));
        } else {
            col2im_planes(g, &col, 0, dxb);
        }
    };
    if g.n >= t && t > 1 {
        dx.par_chunks_mut(in_len).enumerate().for_each(|(b, d)| one(b, d, false));
    } else {
        for (b, d) in dx.chunks_mut(in_len).enumerate() {
            one(b, d, true);
        }
    }
    dx
}

/// The fused op. `geom` = [`Geom`] packed (`[n, cin, h, w, cout, kh, kw, s, ph, pw]`).
#[backend_extension(Flex, Autodiff)]
pub trait FastConvRelu: Backend {
    /// `relu(conv2d(x, weight) + bias)`; `x` `[n, cin, h, w]`, `weight` `[cout, cin, kh, kw]`,
    /// `bias` `[cout]` (constants: no gradient flows to them).
    fn fast_conv_bias_relu(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geom: [usize; 10]) -> FloatTensor<Self>;
}

fn fwd_flex(g: &Geom, x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let y = profile::time_flops(|| g.label("fwd+bias+relu"), g.flops(), || fwd(g, &f32_data(x), &f32_data(w), Some(&f32_data(b)), true));
    flex_from(y, [g.n, g.cout, g.ho(), g.wo()])
}

impl FastConvRelu for Flex {
    fn fast_conv_bias_relu(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, geom: [usize; 10]) -> FlexTensor {
        fwd_flex(&Geom::unpack(geom), &x, &weight, &bias)
    }
}

/// Backward of the fused op: input gradient only.
#[derive(Debug)]
struct ConvReluBackward;

impl Backward<Flex, 1> for ConvReluBackward {
    /// (output, weight, geometry)
    type State = (FlexTensor, FlexTensor, [usize; 10]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (y, w, geom) = ops.state;
        let Some(node) = node_x else { return };
        let g = Geom::unpack(geom);
        let (yv, dyv) = (f32_data(&y), f32_data(&dy));
        let dx = profile::time_flops(|| g.label("bwd(input)+relu mask"), g.flops(), || xgrad_relu(&g, &dyv, &yv, &f32_data(&w)));
        grads.register::<Flex>(node.id, flex_from(dx, [g.n, g.cin, g.h, g.w]));
    }
}

impl<C: CheckpointStrategy> FastConvRelu for Autodiff<Flex, C> {
    fn fast_conv_bias_relu(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geom: [usize; 10]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        // constants: `conv_bias_relu` checked that neither is tracked
        let (wp, _) = weight.into_parts();
        let (bp, _) = bias.into_parts();
        let g = Geom::unpack(geom);
        match ConvReluBackward.prepare::<C>([xn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = fwd_flex(&g, &xp, &wp, &bp);
                prep.finish((y.clone(), wp, geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(fwd_flex(&g, &xp, &wp, &bp)),
        }
    }
}

/// `relu(conv2d(x, weight, stride, padding) + bias)` (`x` `[n, cin, h, w]`, `weight`
/// `[cout, cin, kh, kw]`, `bias` `[cout]`, the same stride in both directions, `padding =
/// [ph, pw]` on both sides of each). On flex with f32 data and untracked `weight` and `bias`:
/// one fused op with an input-only backward (see the module docs); otherwise [`crate::conv2d`]
/// then [`crate::bias_relu`], whose values it matches to float rounding.
pub fn conv_bias_relu(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, stride: usize, padding: [usize; 2]) -> Tensor<4> {
    let [n, cin, h, w] = x.dims();
    let [cout, cin_w, kh, kw] = weight.dims();
    assert_eq!(cin, cin_w, "conv_bias_relu: input has {cin} channels, weight expects {cin_w}");
    assert_eq!(bias.dims(), [cout], "conv_bias_relu: {} biases for {cout} filters", bias.dims()[0]);
    assert!(stride >= 1, "conv_bias_relu: stride 0");
    assert!(h + 2 * padding[0] >= kh && w + 2 * padding[1] >= kw, "conv_bias_relu: {kh}x{kw} kernel larger than the padded {h}x{w} input");
    let fast = crate::enabled()
        && fused_enabled()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.dtype() == DType::F32
        && on_flex(&x)
        && on_flex(&weight)
        && on_flex(&bias)
        && !weight.is_tracked()
        && !bias.is_tracked();
    if !fast {
        let opts = ConvOptions::new([stride, stride], padding, [1, 1], 1);
        return crate::bias_relu(crate::conv2d(x, weight, None, opts), bias);
    }
    let g = Geom { n, cin, h, w, cout, kh, kw, s: stride, ph: padding[0], pw: padding[1] };
    Tensor::from_dispatch(<burn::backend::Dispatch as FastConvRelu>::fast_conv_bias_relu(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        g.pack(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::rnd;

    /// Plain loops in f64: the conv (no bias, no ReLU).
    fn naive(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (ho, wo) = (g.ho(), g.wo());
        let mut y = vec![0.0; g.n * g.out_len()];
        for b in 0..g.n {
            for o in 0..g.cout {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut acc = 0.0f64;
                        for c in 0..g.cin {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let ih = (oh * g.s + ky) as isize - g.ph as isize;
                                    let iw = (ow * g.s + kx) as isize - g.pw as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                        continue;
                                    }
                                    acc += x[((b * g.cin + c) * g.h + ih as usize) * g.w + iw as usize] as f64
                                        * w[((o * g.cin + c) * g.kh + ky) * g.kw + kx] as f64;
                                }
                            }
                        }
                        y[((b * g.cout + o) * ho + oh) * wo + ow] = acc;
                    }
                }
            }
        }
        y
    }

    const CASES: [(usize, usize, usize, usize, usize, usize, usize, usize, usize, usize); 10] = [
        // n, cin, h, w, cout, kh, kw, s, ph, pw
        (1, 5, 6, 7, 4, 1, 7, 1, 0, 3),
        (2, 4, 7, 5, 3, 7, 1, 1, 3, 0),
        (3, 6, 9, 9, 5, 3, 3, 2, 0, 0),
        (1, 3, 11, 10, 8, 3, 3, 2, 0, 0),
        (2, 7, 5, 5, 6, 1, 1, 1, 0, 0),
        (1, 4, 8, 8, 5, 5, 5, 1, 2, 2),
        (1, 3, 9, 9, 4, 3, 3, 1, 0, 0),
        (4, 20, 13, 13, 33, 3, 3, 1, 1, 1),
        (1, 2, 40, 37, 3, 3, 3, 2, 1, 1),
        (1, 3, 5, 33, 2, 1, 7, 1, 0, 3),
    ];

    #[test]
    fn fwd_matches_naive_with_bias_and_relu() {
        let mut seed = 7;
        for &(n, cin, h, w, cout, kh, kw, s, ph, pw) in &CASES {
            let g = Geom { n, cin, h, w, cout, kh, kw, s, ph, pw };
            let x = rnd(g.n * g.in_len(), &mut seed);
            let wt = rnd(g.cout * g.ckk(), &mut seed);
            let b = rnd(g.cout, &mut seed);
            let hw = g.ho() * g.wo();
            let want: Vec<f64> = naive(&g, &x, &wt).iter().enumerate().map(|(i, v)| (v + b[(i / hw) % cout] as f64).max(0.0)).collect();
            // the default path (cpu::conv_fwd with the fused epilogue) and the column tiles
            for (path, y) in [("default", fwd(&g, &x, &wt, Some(&b), true)), ("tiles", fwd_tiles(&g, &x, None, &wt, Some(&b), true))] {
                let err = y.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
                assert!(err < 1e-5, "{path} {g:?}: {err}");
            }
        }
    }

    /// The fused mask gives the gradient of the masked `dy`, bit for bit.
    #[test]
    fn xgrad_relu_is_xgrad_of_the_masked_gradient() {
        let mut seed = 5;
        for &(n, cin, h, w, cout, kh, kw, s, ph, pw) in &CASES {
            let g = Geom { n, cin, h, w, cout, kh, kw, s, ph, pw };
            let wt = rnd(g.cout * g.ckk(), &mut seed);
            let dy = rnd(g.n * g.out_len(), &mut seed);
            let y = rnd(g.n * g.out_len(), &mut seed); // about half <= 0
            let masked: Vec<f32> = dy.iter().zip(&y).map(|(d, y)| if *y > 0.0 { *d } else { 0.0 }).collect();
            assert_eq!(xgrad_relu(&g, &dy, &y, &wt), xgrad(&g, &masked, &wt), "{g:?}");
        }
    }

    /// Any column range (tiles start and end inside rows) gives the same columns as the whole.
    #[test]
    fn im2col_of_any_column_range_matches_the_whole() {
        let mut seed = 3;
        for g in [
            Geom { n: 1, cin: 2, h: 4, w: 9, cout: 1, kh: 1, kw: 7, s: 1, ph: 0, pw: 3 },
            Geom { n: 1, cin: 2, h: 9, w: 4, cout: 1, kh: 7, kw: 1, s: 1, ph: 3, pw: 0 },
            Geom { n: 1, cin: 1, h: 7, w: 8, cout: 1, kh: 3, kw: 3, s: 2, ph: 1, pw: 1 },
        ] {
            let hw = g.ho() * g.wo();
            let x = rnd(g.in_len(), &mut seed);
            let mut full = vec![f32::NAN; g.ckk() * hw];
            im2col_cols(&g, &x, None, 0, hw, &mut full);
            for j0 in 0..hw {
                for j1 in j0 + 1..=hw {
                    let tn = j1 - j0;
                    let mut part = vec![f32::NAN; g.ckk() * tn];
                    im2col_cols(&g, &x, None, j0, j1, &mut part);
                    for r in 0..g.ckk() {
                        assert_eq!(&part[r * tn..(r + 1) * tn], &full[r * hw + j0..r * hw + j1], "{g:?} {j0}..{j1}");
                    }
                }
            }
        }
    }

    /// `<conv(x), dy> == <x, xgrad(dy)>` for every geometry: the backward is the adjoint.
    #[test]
    fn xgrad_is_the_adjoint() {
        let mut seed = 11;
        for &(n, cin, h, w, cout, kh, kw, s, ph, pw) in &CASES {
            let g = Geom { n, cin, h, w, cout, kh, kw, s, ph, pw };
            let x = rnd(g.n * g.in_len(), &mut seed);
            let wt = rnd(g.cout * g.ckk(), &mut seed);
            let dy = rnd(g.n * g.out_len(), &mut seed);
            let y = naive(&g, &x, &wt);
            let dx = xgrad(&g, &dy, &wt);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{g:?}: {lhs} vs {rhs}");
        }
    }
}
