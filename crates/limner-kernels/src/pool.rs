//! Max and average pooling for burn's flex backend, forward and input gradient, one rayon task
//! per (sample, channel) plane. [`max_pool2d`] and [`avg_pool2d`] have burn's semantics
//! (`burn::tensor::module::max_pool2d` / `avg_pool2d` with square windows, equal strides,
//! symmetric padding, dilation 1, floor output size); InceptionV3's pools (3×3 stride 2
//! "valid" max pools, 3×3 stride 1 "same" average pools that do not count the padding) ran
//! 5–20× slower through burn 0.22's flex pools than their convolutions (bench/NOTES.md).
//!
//! The max pool's autodiff node stores the flat argmax of every output (the first maximum
//! of its window, like burn and PyTorch); its backward scatters `dy` there. The average pool's
//! backward spreads `dy / count` back over each window. Both sum in a fixed order, so results
//! are bit-identical run to run. Off the fast path (other devices or dtypes, or
//! `LIMNER_FAST_CONV=0`) burn's pools run unchanged.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};
use burn::tensor::module;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use crate::{f32_data, flex_from, on_flex, profile};

/// Pool geometry: planes `n * c` of `h x w`, window `k`, stride `s`, padding `p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

impl PoolGeom {
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.p - self.k) / self.s + 1
    }
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.p - self.k) / self.s + 1
    }
    /// Input rows (or columns) covered by output row `o`: `[lo, hi)`, clipped to the image.
    fn span(&self, o: usize, len: usize) -> (usize, usize) {
        let start = (o * self.s) as isize - self.p as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + self.k as isize).max(0) as usize).min(len);
        (lo, hi)
    }
    fn pack(&self) -> [usize; 6] {
        [self.planes, self.h, self.w, self.k, self.s, self.p]
    }
    fn unpack(a: [usize; 6]) -> Self {
        Self { planes: a[0], h: a[1], w: a[2], k: a[3], s: a[4], p: a[5] }
    }
}

/// Max pool forward: the outputs and, per output, the flat in-plane index of its maximum.
pub fn max_fwd(g: &PoolGeom, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (ho, wo, plane) = (g.ho(), g.wo(), g.h * g.w);
    let mut y = vec![0.0f32; g.planes * ho * wo];
    let mut idx = vec![0u32; g.planes * ho * wo];
    y.par_chunks_mut(ho * wo).zip(idx.par_chunks_mut(ho * wo)).enumerate().for_each(|(pl, (yp, ip))| {
        let xp = &x[pl * plane..][..plane];
        for oh in 0..ho {
            let (r0, r1) = g.span(oh, g.h);
            let (yr, ir) = (&mut yp[oh * wo..][..wo], &mut ip[oh * wo..][..wo]);
            if g.p == 0 && g.k == 3 {
                // InceptionV3's pools: every window lies inside; three rows, three taps each
                let (a, b, c) = (&xp[r0 * g.w..][..g.w], &xp[(r0 + 1) * g.w..][..g.w], &xp[(r0 + 2) * g.w..][..g.w]);
                // selects instead of branches (the same first maximum in row-major order: the
                // winner of a window is a coin flip per cell, and the mispredicted branches took
                // most of this loop's time at batch 8)
                for ow in 0..wo {
                    let c0 = ow * g.s;
                    let (mut best, mut at) = (a[c0], (r0 * g.w + c0) as u32);
                    for (dr, row) in [a, b, c].into_iter().enumerate() {
                        let base = ((r0 + dr) * g.w + c0) as u32;
                        for dc in 0..3 {
                            let v = row[c0 + dc];
                            let gt = v > best;
                            at = if gt { base + dc as u32 } else { at };
                            best = if gt { v } else { best };
                        }
                    }
                    yr[ow] = best;
                    ir[ow] = at;
                }
                continue;
            }
            for ow in 0..wo {
                let (c0, c1) = g.span(ow, g.w);
                let (mut best, mut at) = (f32::NEG_INFINITY, r0 * g.w + c0);
                for r in r0..r1 {
                    for (c, &v) in xp[r * g.w + c0..r * g.w + c1].iter().enumerate() {
                        if v > best {
                            best = v;
                            at = r * g.w + c0 + c;
                        }
                    }
                }
                yr[ow] = best;
                ir[ow] = at as u32;
            }
        }
    });
    (y, idx)
}

/// Max pool input gradient: `dx[argmax(o)] += dy[o]`.
pub fn max_bwd(g: &PoolGeom, dy: &[f32], idx: &[u32]) -> Vec<f32> {
    let (out, plane) = (g.ho() * g.wo(), g.h * g.w);
    let mut dx = vec![0.0f32; g.planes * plane];
    dx.par_chunks_mut(plane).enumerate().for_each(|(pl, dxp)| {
        for (d, &i) in dy[pl * out..][..out].iter().zip(&idx[pl * out..][..out]) {
            dxp[i as usize] += d;
        }
    });
    dx
}

/// The number of window cells an average divides by.
fn count(g: &PoolGeom, oh: usize, ow: usize, include_pad: bool) -> f32 {
    if include_pad {
        // burn / PyTorch: the window clipped to the padded image
        let hi = |o: usize, len: usize| ((o * g.s + g.k).min(len + 2 * g.p) - o * g.s) as f32;
        return hi(oh, g.h) * hi(ow, g.w);
    }
    let (r0, r1) = g.span(oh, g.h);
    let (c0, c1) = g.span(ow, g.w);
    ((r1 - r0) * (c1 - c0)) as f32
}

/// Planes per rayon task of the separable kernels: about 16 Ki input floats (one task per
/// 6×6 plane of a batch-32 block C spent more time scheduling than summing).
fn planes_per_task(plane: usize) -> usize {
    (16 * 1024 / plane.max(1)).max(1)
}

/// Output positions `o` whose tap `t` reads input `o * s + t - p` inside `0..len`: `[lo, hi)`
/// (stride 1 only).
fn tap_range(t: usize, p: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = p.saturating_sub(t);
    let hi = (len + p).saturating_sub(t).min(out);
    (lo, hi.max(lo))
}

/// Average pool forward. Stride 1 (InceptionV3's "same" pools) is separable: the column sums
/// of each window row, then the sum over the window's rows, each added in the same order as
/// the general loop (so the values are the same), as contiguous vector adds.
pub fn avg_fwd(g: &PoolGeom, x: &[f32], include_pad: bool) -> Vec<f32> {
    if g.s == 1 {
        return avg_fwd_s1(g, x, include_pad);
    }
    avg_fwd_loop(g, x, include_pad)
}

/// Average pool forward, any stride: one window at a time.
fn avg_fwd_loop(g: &PoolGeom, x: &[f32], include_pad: bool) -> Vec<f32> {
    let (ho, wo, plane) = (g.ho(), g.wo(), g.h * g.w);
    let mut y = vec![0.0f32; g.planes * ho * wo];
    y.par_chunks_mut(ho * wo).enumerate().for_each(|(pl, yp)| {
        let xp = &x[pl * plane..][..plane];
        for oh in 0..ho {
            let (r0, r1) = g.span(oh, g.h);
            for ow in 0..wo {
                let (c0, c1) = g.span(ow, g.w);
                let mut sum = 0.0f32;
                for r in r0..r1 {
                    sum += xp[r * g.w + c0..r * g.w + c1].iter().sum::<f32>();
                }
                yp[oh * wo + ow] = sum / count(g, oh, ow, include_pad);
            }
        }
    });
    y
}

fn avg_fwd_s1(g: &PoolGeom, x: &[f32], include_pad: bool) -> Vec<f32> {
    let (ho, wo, plane) = (g.ho(), g.wo(), g.h * g.w);
    let out = ho * wo;
    let cnt: Vec<f32> = (0..out).map(|i| count(g, i / wo, i % wo, include_pad)).collect();
    let per = planes_per_task(plane);
    let mut y = crate::cpu::out_vec(g.planes * out);
    y.par_chunks_mut(out * per).zip(x.par_chunks(plane * per)).for_each(|(yc, xc)| {
        // hs[r, ow]: the window's columns summed along input row r
        let mut hs = vec![0.0f32; g.h * wo];
        for (yp, xp) in yc.chunks_exact_mut(out).zip(xc.chunks_exact(plane)) {
            for (hr, row) in hs.chunks_exact_mut(wo).zip(xp.chunks_exact(g.w)) {
                hr.fill(0.0);
                for t in 0..g.k {
                    let (lo, hi) = tap_range(t, g.p, g.w, wo);
                    for (d, v) in hr[lo..hi].iter_mut().zip(&row[lo + t - g.p..]) {
                        *d += *v;
                    }
                }
            }
            yp.fill(0.0);
            for t in 0..g.k {
                let (lo, hi) = tap_range(t, g.p, g.h, ho);
                for oh in lo..hi {
                    let src = &hs[(oh + t - g.p) * wo..][..wo];
                    for (d, v) in yp[oh * wo..][..wo].iter_mut().zip(src) {
                        *d += *v;
                    }
                }
            }
            for (v, c) in yp.iter_mut().zip(&cnt) {
                *v /= *c;
            }
        }
    });
    y
}

/// Max pool forward without the argmax (the plain device: nothing differentiates it).
/// InceptionV3's 3×3 stride-2 valid pools are separable: the max of each window row's three
/// columns, then of the window's three rows (the same values as [`max_fwd`]).
pub fn max_fwd_values(g: &PoolGeom, x: &[f32]) -> Vec<f32> {
    if !(g.k == 3 && g.p == 0) {
        return max_fwd(g, x).0;
    }
    let (ho, wo, plane) = (g.ho(), g.wo(), g.h * g.w);
    let out = ho * wo;
    let per = planes_per_task(plane);
    let mut y = crate::cpu::out_vec(g.planes * out);
    y.par_chunks_mut(out * per).zip(x.par_chunks(plane * per)).for_each(|(yc, xc)| {
        let rows = (ho - 1) * g.s + 3; // input rows any window reads
        let mut hm = vec![0.0f32; rows * wo];
        for (yp, xp) in yc.chunks_exact_mut(out).zip(xc.chunks_exact(plane)) {
            for (hr, row) in hm.chunks_exact_mut(wo).zip(xp.chunks_exact(g.w)) {
                for (ow, d) in hr.iter_mut().enumerate() {
                    let c = &row[ow * g.s..][..3];
                    *d = c[0].max(c[1]).max(c[2]);
                }
            }
            for (oh, yr) in yp.chunks_exact_mut(wo).enumerate() {
                let r = oh * g.s;
                let (a, b, c) = (&hm[r * wo..][..wo], &hm[(r + 1) * wo..][..wo], &hm[(r + 2) * wo..][..wo]);
                for (((d, a), b), c) in yr.iter_mut().zip(a).zip(b).zip(c) {
                    *d = a.max(*b).max(*c);
                }
            }
        }
    });
    y
}

/// Average pool input gradient: every input cell gets `dy / count` of each window holding it.
pub fn avg_bwd(g: &PoolGeom, dy: &[f32], include_pad: bool) -> Vec<f32> {
    let (ho, wo, plane) = (g.ho(), g.wo(), g.h * g.w);
    let mut dx = vec![0.0f32; g.planes * plane];
    dx.par_chunks_mut(plane).enumerate().for_each(|(pl, dxp)| {
        let dyp = &dy[pl * ho * wo..][..ho * wo];
        for oh in 0..ho {
            let (r0, r1) = g.span(oh, g.h);
            for ow in 0..wo {
                let (c0, c1) = g.span(ow, g.w);
                let v = dyp[oh * wo + ow] / count(g, oh, ow, include_pad);
                for r in r0..r1 {
                    dxp[r * g.w + c0..r * g.w + c1].iter_mut().for_each(|d| *d += v);
                }
            }
        }
    });
    dx
}

/// The pooling ops. `geom` = [`PoolGeom`] packed, `[n, c]` the leading dims of the output.
#[backend_extension(Flex, Autodiff)]
pub trait FastPool: Backend {
    /// max pool `[n, c, h, w] -> [n, c, ho, wo]`
    fn fast_max_pool2d(x: FloatTensor<Self>, geom: [usize; 6], nc: [usize; 2]) -> FloatTensor<Self>;
    /// average pool `[n, c, h, w] -> [n, c, ho, wo]`; `include_pad` = 1 counts the padding
    fn fast_avg_pool2d(x: FloatTensor<Self>, geom: [usize; 6], nc: [usize; 2], include_pad: usize) -> FloatTensor<Self>;
}

/// A [`profile`] label: `max pool fwd 3x3/2 planes=192 in=[60, 60]`.
fn label(what: &str, g: &PoolGeom) -> String {
    format!("{what} {}x{}/{} planes={} in=[{}, {}]", g.k, g.k, g.s, g.planes, g.h, g.w)
}

fn out_shape(g: &PoolGeom, nc: [usize; 2]) -> [usize; 4] {
    [nc[0], nc[1], g.ho(), g.wo()]
}

impl FastPool for Flex {
    fn fast_max_pool2d(x: FlexTensor, geom: [usize; 6], nc: [usize; 2]) -> FlexTensor {
        let g = PoolGeom::unpack(geom);
        profile::time(|| label("max pool fwd", &g), || flex_from(max_fwd_values(&g, &f32_data(&x)), out_shape(&g, nc)))
    }
    fn fast_avg_pool2d(x: FlexTensor, geom: [usize; 6], nc: [usize; 2], include_pad: usize) -> FlexTensor {
        let g = PoolGeom::unpack(geom);
        profile::time(|| label("avg pool fwd", &g), || flex_from(avg_fwd(&g, &f32_data(&x), include_pad == 1), out_shape(&g, nc)))
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// (argmax indices, geometry, input shape)
    type State = (std::sync::Arc<Vec<u32>>, [usize; 6], [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (idx, geom, shape) = ops.state;
        if let Some(node) = node {
            let g = PoolGeom::unpack(geom);
            let dx = profile::time(|| label("max pool bwd", &g), || flex_from(max_bwd(&g, &f32_data(&dy), &idx), shape));
            grads.register::<Flex>(node.id, dx);
        }
    }
}

#[derive(Debug)]
struct AvgPoolBackward;

impl Backward<Flex, 1> for AvgPoolBackward {
    /// (geometry, input shape, include_pad)
    type State = ([usize; 6], [usize; 4], bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (geom, shape, include_pad) = ops.state;
        if let Some(node) = node {
            let g = PoolGeom::unpack(geom);
            let dx = profile::time(|| label("avg pool bwd", &g), || flex_from(avg_bwd(&g, &f32_data(&dy), include_pad), shape));
            grads.register::<Flex>(node.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> FastPool for Autodiff<Flex, C> {
    fn fast_max_pool2d(x: FloatTensor<Self>, geom: [usize; 6], nc: [usize; 2]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let g = PoolGeom::unpack(geom);
        let (y, idx) = profile::time(|| label("max pool fwd", &g), || max_fwd(&g, &f32_data(&xp)));
        let y = flex_from(y, out_shape(&g, nc));
        match MaxPoolBackward.prepare::<C>([xn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((std::sync::Arc::new(idx), geom, [nc[0], nc[1], g.h, g.w]), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fast_avg_pool2d(x: FloatTensor<Self>, geom: [usize; 6], nc: [usize; 2], include_pad: usize) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let g = PoolGeom::unpack(geom);
        let y = profile::time(|| label("avg pool fwd", &g), || flex_from(avg_fwd(&g, &f32_data(&xp), include_pad == 1), out_shape(&g, nc)));
        match AvgPoolBackward.prepare::<C>([xn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((geom, [nc[0], nc[1], g.h, g.w], include_pad == 1), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// Square window, equal strides and padding, dilation 1, f32 on flex, fast path on.
fn fast_ok(x: &Tensor<4>, k: [usize; 2], s: [usize; 2], p: [usize; 2], dilation: [usize; 2], ceil_mode: bool) -> bool {
    crate::enabled() && k[0] == k[1] && s[0] == s[1] && p[0] == p[1] && dilation == [1, 1] && !ceil_mode && x.dtype() == DType::F32 && on_flex(x)
}

fn geom_for(x: &Tensor<4>, k: usize, s: usize, p: usize) -> (PoolGeom, [usize; 2]) {
    let [n, c, h, w] = x.dims();
    (PoolGeom { planes: n * c, h, w, k, s, p }, [n, c])
}

/// Drop-in for `burn::tensor::module::max_pool2d`.
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    let pad = options.padding;
    let symmetric = pad.iter().all(|&(a, b)| a == b);
    let p = [pad[0].0, pad[1].0];
    if !symmetric || !fast_ok(&x, options.kernel_size, options.stride, p, options.dilation, options.ceil_mode) {
        return module::max_pool2d(x, options);
    }
    let (g, nc) = geom_for(&x, options.kernel_size[0], options.stride[0], p[0]);
    Tensor::from_dispatch(<burn::backend::Dispatch as FastPool>::fast_max_pool2d(x.into_dispatch(), g.pack(), nc))
}

/// Drop-in for `burn::tensor::module::avg_pool2d`.
pub fn avg_pool2d(x: Tensor<4>, options: AvgPoolOptions<2>) -> Tensor<4> {
    let pad = options.padding;
    let symmetric = pad.iter().all(|&(a, b)| a == b);
    let p = [pad[0].0, pad[1].0];
    if !symmetric || !fast_ok(&x, options.kernel_size, options.stride, p, [1, 1], options.ceil_mode) {
        return module::avg_pool2d(x, options);
    }
    let (g, nc) = geom_for(&x, options.kernel_size[0], options.stride[0], p[0]);
    let include = usize::from(options.count_include_pad);
    Tensor::from_dispatch(<burn::backend::Dispatch as FastPool>::fast_avg_pool2d(x.into_dispatch(), g.pack(), nc, include))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::rnd;

    /// The separable kernels give exactly the values of the window-at-a-time loops.
    #[test]
    fn separable_pools_equal_the_window_loops() {
        let mut seed = 17;
        for (planes, h, w, k, p) in [(3, 6, 6, 3, 1), (40, 13, 13, 3, 1), (2, 7, 5, 3, 1), (2, 9, 8, 5, 2), (1, 4, 9, 2, 0), (2, 5, 5, 3, 0)] {
            let g = PoolGeom { planes, h, w, k, s: 1, p };
            let x = rnd(planes * h * w, &mut seed);
            for inc in [false, true] {
                assert_eq!(avg_fwd_s1(&g, &x, inc), avg_fwd_loop(&g, &x, inc), "{g:?} include_pad={inc}");
            }
        }
        for (planes, h, w, s) in [(5, 61, 61, 2), (3, 28, 28, 2), (2, 13, 13, 2), (2, 7, 10, 1), (1, 3, 3, 2)] {
            let g = PoolGeom { planes, h, w, k: 3, s, p: 0 };
            let x = rnd(planes * h * w, &mut seed);
            assert_eq!(max_fwd_values(&g, &x), max_fwd(&g, &x).0, "{g:?}");
        }
    }
}
