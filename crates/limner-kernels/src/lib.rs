//! Fast dense convolutions for burn's pure-Rust CPU backend (`flex`).
//!
//! [`conv2d`] and [`conv_transpose2d`] have the same signature as `burn::tensor::module::conv2d`
//! / `conv_transpose2d`. On a flex device (plain or autodiff) with f32 data, groups 1,
//! dilation 1, square kernels, equal strides and symmetric padding, they run limner's own
//! kernels ([`cpu`]: per-sample im2col + AVX-512 `gemm`, batch-parallel, hand-written backward
//! passes). Depthwise convs (groups == channels, weight `[c, 1, k, k]`: StyleGAN2's FIR
//! filters) get their own autodiff node too: forward and stride-1 input gradient via burn
//! flex's direct depthwise kernel (flipped kernel for the gradient), stride-2 ones and the
//! weight gradient via [`cpu::dw_fwd`] / [`cpu::dw_xgrad`] / [`cpu::dw_wgrad`]. Everything else
//! (CUDA/ROCm/Metal devices, other grouped or dilated convs, other dtypes) goes to burn's own
//! op unchanged. `LIMNER_FAST_DWCONV=0` turns only the depthwise part off.
//!
//! The custom op is a burn backend extension ([`FastConv`]) implemented for `Flex` and for
//! `Autodiff<Flex>`; the autodiff implementation records one graph node whose backward
//! calls [`cpu::conv_xgrad`] / [`cpu::conv_wgrad`] (or [`cpu::conv_fwd`] for the transposed
//! conv), only for the inputs that need a gradient.
//!
//! [`pool`] adds max / average pooling kernels and [`act`] a fused `relu(x + bias)`, each with
//! its own backward (InceptionV3's pools and conv epilogues); [`conv_relu`] the whole
//! `relu(conv(x, w) + b)` of InceptionV3 with frozen weights (any kernel shape, input-only
//! backward). [`profile`] times every kernel call when `LIMNER_PROFILE=1`.
//!
//! `LIMNER_FAST_CONV=0` in the environment (or [`set_enabled(false)`](set_enabled)) turns the
//! fast path off at run time, for A/B comparisons.

pub mod act;
pub mod alloc;
pub mod bias_relu;
pub mod conv_relu;
pub mod cpu;
pub mod upconv;
pub mod direct;
pub mod mobile;
pub mod pool;
pub mod profile;
pub mod unit_dist;

/// What the kernels' unit tests share.
#[cfg(test)]
pub(crate) mod test_util {
    /// `n` values in [-0.5, 0.5) from a tiny LCG (deterministic, no dependency).
    pub fn rnd(n: usize, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (*seed >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    }
}

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{backend_extension, Autodiff, Backend, DispatchDevice, Flex};
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor, TensorData};

pub use alloc::keep_freed_memory;
pub use cpu::Geom;
pub use bias_relu::bias_relu;
pub use conv_relu::conv_bias_relu;
pub use pool::{avg_pool2d, max_pool2d};
pub use unit_dist::unit_channel_distance;

/// A run-time switch read once from an environment variable (`VAR=0` turns it off) and
/// settable from code, for A/B comparisons.
struct Switch {
    /// 0 = not read yet, 1 = on, 2 = off
    state: AtomicU8,
    var: &'static str,
}

impl Switch {
    const fn new(var: &'static str) -> Self {
        Self { state: AtomicU8::new(0), var }
    }

    fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var(self.var).map(|v| v != "0").unwrap_or(true);
                self.set(on);
                on
            }
        }
    }

    fn set(&self, on: bool) {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }
}

static ENABLED: Switch = Switch::new("LIMNER_FAST_CONV");
static DW_ENABLED: Switch = Switch::new("LIMNER_FAST_DWCONV");
static ACT_ENABLED: Switch = Switch::new("LIMNER_FAST_BIAS_ACT");
static SEP_ENABLED: Switch = Switch::new("LIMNER_SEP_FIR");

/// Whether depthwise convs whose kernel is one rank-1 filter for every channel (the FIR
/// filters) run as two 1-D passes ([`cpu::dw_fwd_sep`] / [`cpu::dw_xgrad_sep`]); default on,
/// `LIMNER_SEP_FIR=0` turns it off (they then use the 2-D depthwise kernels).
pub fn sep_fir_enabled() -> bool {
    SEP_ENABLED.get()
}

/// Turns the separable FIR path on or off for the whole process.
pub fn set_sep_fir_enabled(on: bool) {
    SEP_ENABLED.set(on);
}

/// The 1-D factors of the depthwise conv `a`'s weight when the separable path applies.
fn sep_factors(a: &[usize; 9], w: &FlexTensor) -> Option<(Vec<f32>, Vec<f32>)> {
    if !is_dw(a) || !sep_fir_enabled() {
        return None;
    }
    let g = geom_of(*a);
    cpu::separable_factors(&f32_data(w), g.cin, g.kh)
}

/// Whether the fast path is used (default on; `LIMNER_FAST_CONV=0` turns it off).
pub fn enabled() -> bool {
    ENABLED.get()
}

/// Turns the fast path on or off for the whole process (overrides `LIMNER_FAST_CONV`).
pub fn set_enabled(on: bool) {
    ENABLED.set(on);
}

/// Whether depthwise convs (the FIR filters) use the fast path (default on;
/// `LIMNER_FAST_DWCONV=0` turns only them off; [`enabled`] off turns them off too).
pub fn dw_enabled() -> bool {
    DW_ENABLED.get()
}

/// Turns the depthwise fast path on or off for the whole process.
pub fn set_dw_enabled(on: bool) {
    DW_ENABLED.set(on);
}

/// Whether [`bias_lrelu`] uses the fused op (default on; `LIMNER_FAST_BIAS_ACT=0` turns it
/// off; [`enabled`] off turns it off too).
pub fn bias_act_enabled() -> bool {
    ACT_ENABLED.get()
}

/// Turns the fused bias + leaky-ReLU on or off for the whole process.
pub fn set_bias_act_enabled(on: bool) {
    ACT_ENABLED.set(on);
}

/// The custom ops. `geom` packs `[n, cin, h, w, cout, k, stride, pad, depthwise]` of the
/// *forward convolution* (for the transposed conv: of the convolution it is the adjoint of);
/// `depthwise = 1` means groups == cin == cout with weight `[c, 1, k, k]`.
#[backend_extension(Flex, Autodiff)]
pub trait FastConv: Backend {
    /// `conv2d(x [n,cin,h,w], w [cout,cin,k,k])` -> `[n, cout, ho, wo]`
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 9]) -> FloatTensor<Self>;
    /// `conv_transpose2d(x [n,cout,ho,wo], w [cout,cin,k,k])` -> `[n, cin, h, w]`: the input
    /// gradient of the conv described by `geom` (burn's weight layout `[in, out, k, k]` of a
    /// transposed conv is exactly that conv's `[cout, cin, k, k]`).
    fn fast_conv_transpose2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 9]) -> FloatTensor<Self>;
}

fn geom_of(a: [usize; 9]) -> Geom {
    Geom::square(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
}

fn is_dw(a: &[usize; 9]) -> bool {
    a[8] == 1
}

/// A contiguous f32 view of a flex tensor's data.
fn f32_data(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    let n = t.layout().num_elements();
    if t.is_contiguous() {
        let off = t.layout().start_offset();
        std::borrow::Cow::Borrowed(&t.storage::<f32>()[off..off + n])
    } else {
        let c = t.to_contiguous();
        let off = c.layout().start_offset();
        std::borrow::Cow::Owned(c.storage::<f32>()[off..off + n].to_vec())
    }
}

fn flex_from(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

fn fwd(a: &[usize; 9], x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    profile::time_flops(|| conv_label(a, "fwd"), conv_flops(a), || fwd_unprofiled(a, x, w))
}

fn fwd_unprofiled(a: &[usize; 9], x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let g = geom_of(*a);
    if let Some((fy, fx)) = sep_factors(a, w) {
        return flex_from(cpu::dw_fwd_sep(&g, &f32_data(x), &fy, &fx), [g.n, g.cout, g.ho(), g.wo()]);
    }
    if is_dw(a) && !dw_fwd_own() {
        // burn flex's own direct depthwise forward was as fast or faster than `cpu::dw_fwd`
        // in `limner-bench kernels` (see bench/NOTES.md); only its backward is replaced.
        let o = ConvOptions::new([g.s, g.s], [g.ph, g.pw], [1, 1], g.cin);
        return <Flex as ModuleOps<Flex>>::conv2d(x.clone(), w.clone(), None, o);
    }
    if !is_dw(a) && g.is_pointwise() && g.cin <= cpu::SMALL_K && !dw_fwd_own() {
        // 1x1 convs with few input channels (fromrgb 3->16, D skips 16->32 at 32²): burn
        // flex's 1x1 forward beat both gemm-per-sample and `cpu`'s direct loop here
        // (`limner-bench kernels`: 2.4 vs 5.7 ms, 2.3 vs 15 ms); see bench/NOTES.md.
        let o = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        return <Flex as ModuleOps<Flex>>::conv2d(x.clone(), w.clone(), None, o);
    }
    let f = if is_dw(a) { cpu::dw_fwd } else { cpu::conv_fwd };
    flex_from(f(&g, &f32_data(x), &f32_data(w)), [g.n, g.cout, g.ho(), g.wo()])
}

/// `LIMNER_OWN_DWFWD=1`: use `cpu::dw_fwd` / `cpu::conv_fwd` for the depthwise and small 1x1
/// forwards instead of burn's.
fn dw_fwd_own() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| std::env::var("LIMNER_OWN_DWFWD").is_ok_and(|v| v == "1"))
}
fn xgrad(a: &[usize; 9], dy: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    profile::time_flops(|| conv_label(a, "bwd(input)"), conv_flops(a), || xgrad_unprofiled(a, dy, w))
}

fn xgrad_unprofiled(a: &[usize; 9], dy: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let g = geom_of(*a);
    if !is_dw(a) && upconv::applies(&g) {
        // StyleGAN2's up-conv passes its [out, in, 3, 3] weight swapped: read it in place
        let st = w.layout().strides();
        if st.len() == 4 && st[3] == 1 && st[2] == 3 && st[0] >= 0 && st[1] >= 0 {
            let wt = upconv::Weights { data: w.storage::<f32>(), offset: w.layout().start_offset(), co_stride: st[0] as usize, ci_stride: st[1] as usize };
            return flex_from(upconv::xgrad(&g, &f32_data(dy), wt), [g.n, g.cin, g.h, g.w]);
        }
    }
    if let Some((fy, fx)) = sep_factors(a, w) {
        return flex_from(cpu::dw_xgrad_sep(&g, &f32_data(dy), &fy, &fx), [g.n, g.cin, g.h, g.w]);
    }
    if is_dw(a) && g.s == 1 && g.ph < g.kh && !dw_fwd_own() {
        // stride-1 depthwise input gradient = depthwise forward conv of dy with the flipped
        // kernel and padding k-1-p: burn flex's direct depthwise forward (the FIR filters).
        let k = g.kh; // square: the extension's geometry
        let wv = f32_data(w);
        let mut wf = vec![0.0f32; wv.len()];
        for c in 0..g.cin {
            for t in 0..k * k {
                wf[c * k * k + t] = wv[c * k * k + (k * k - 1 - t)];
            }
        }
        let o = ConvOptions::new([1, 1], [k - 1 - g.ph, k - 1 - g.ph], [1, 1], g.cin);
        return <Flex as ModuleOps<Flex>>::conv2d(dy.clone(), flex_from(wf, [g.cin, 1, k, k]), None, o);
    }
    let f = if is_dw(a) { cpu::dw_xgrad } else { cpu::conv_xgrad };
    flex_from(f(&g, &f32_data(dy), &f32_data(w)), [g.n, g.cin, g.h, g.w])
}
fn wgrad(a: &[usize; 9], x: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    profile::time_flops(|| conv_label(a, "bwd(weight)"), conv_flops(a), || wgrad_unprofiled(a, x, dy))
}

fn wgrad_unprofiled(a: &[usize; 9], x: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    let g = geom_of(*a);
    if is_dw(a) {
        flex_from(cpu::dw_wgrad(&g, &f32_data(x), &f32_data(dy)), [g.cout, 1, g.kh, g.kw])
    } else {
        flex_from(cpu::conv_wgrad(&g, &f32_data(x), &f32_data(dy)), [g.cout, g.cin, g.kh, g.kw])
    }
}

/// A [`profile`] label for the conv `a`.
/// Floating-point operations of the conv `a` (a depthwise conv: one input plane per output).
fn conv_flops(a: &[usize; 9]) -> f64 {
    let g = geom_of(*a);
    if is_dw(a) { g.flops() / g.cin as f64 } else { g.flops() }
}

fn conv_label(a: &[usize; 9], what: &str) -> String {
    geom_of(*a).label(what)
}

impl FastConv for Flex {
    fn fast_conv2d(x: FlexTensor, weight: FlexTensor, geom: [usize; 9]) -> FlexTensor {
        fwd(&geom, &x, &weight)
    }
    fn fast_conv_transpose2d(x: FlexTensor, weight: FlexTensor, geom: [usize; 9]) -> FlexTensor {
        xgrad(&geom, &x, &weight)
    }
}

/// Backward of `y = conv(x, w)`: `dx = xgrad(dy, w)`, `dw = wgrad(x, dy)`.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (FlexTensor, FlexTensor, [usize; 9]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, geom) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, xgrad(&geom, &dy, &w));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, wgrad(&geom, &x, &dy));
        }
    }
}

/// Backward of `y = conv_transpose(x, w)` (= xgrad of the conv `geom` with `dy = x`):
/// `dx = conv(dy_y, w)`, `dw = wgrad(dy_y, x)`.
#[derive(Debug)]
struct ConvTransposeBackward;

impl Backward<Flex, 2> for ConvTransposeBackward {
    type State = (FlexTensor, FlexTensor, [usize; 9]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, w, geom) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, fwd(&geom, &gy, &w));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, wgrad(&geom, &gy, &x));
        }
    }
}

impl<C: CheckpointStrategy> FastConv for Autodiff<Flex, C> {
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 9]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (wp, wn) = weight.into_parts();
        match ConvBackward.prepare::<C>([xn, wn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = fwd(&geom, &xp, &wp);
                prep.finish((xp, wp, geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(fwd(&geom, &xp, &wp)),
        }
    }

    fn fast_conv_transpose2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 9]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (wp, wn) = weight.into_parts();
        match ConvTransposeBackward.prepare::<C>([xn, wn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = xgrad(&geom, &xp, &wp);
                prep.finish((xp, wp, geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(xgrad(&geom, &xp, &wp)),
        }
    }
}

/// The fused `bias + leaky_relu * gain` op (see [`act`]). `shape = [c, hw]`: channels
/// (dim 1 of `x`) and the product of the dims after it; `params = [alpha, gain]`, gain > 0.
#[backend_extension(Flex, Autodiff)]
pub trait FastAct: Backend {
    /// `x [n, c, ...]`, `bias [c]` -> `leaky_relu(x + bias, alpha) * gain`, same shape as `x`
    fn fast_bias_lrelu(x: FloatTensor<Self>, bias: FloatTensor<Self>, shape: [usize; 2], params: [f32; 2]) -> FloatTensor<Self>;
    /// `x [n, c, h, w]`, `d [n, c]`, `nadd [nn, 1, h, w]` (nn = 1 or n), `bias [c]` ->
    /// `leaky_relu(x * d + nadd + bias, alpha) * gain`; `geom = [n, c, h * w, nn]`.
    fn fast_demod_noise_bias_lrelu(
        x: FloatTensor<Self>,
        d: FloatTensor<Self>,
        nadd: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geom: [usize; 4],
        params: [f32; 2],
    ) -> FloatTensor<Self>;
    /// `x [n, c, ...]`, `s [n, c]` -> `x * s` (broadcast over the dims after 1); `hw` = the
    /// product of those dims.
    fn fast_scale_channels(x: FloatTensor<Self>, s: FloatTensor<Self>, hw: usize) -> FloatTensor<Self>;
}

/// The f32 storage of `t` when it can be written in place: uniquely owned, contiguous from
/// offset 0 (the autodiff graph holds no other reference to it).
fn unique_f32(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.layout().num_elements();
    if t.dtype() != DType::F32 || !t.is_contiguous() || t.layout().start_offset() != 0 || !t.is_unique() {
        return None;
    }
    t.try_storage_mut::<f32>().map(|s| &mut s[..n])
}

fn bias_lrelu_flex(mut x: FlexTensor, b: &FlexTensor, shape: [usize; 2], params: [f32; 2]) -> FlexTensor {
    let bv = f32_data(b);
    if let Some(buf) = unique_f32(&mut x) {
        act::bias_lrelu_fwd_inplace(buf, &bv, shape[0], shape[1], params[0], params[1]);
        return x;
    }
    let dims = x.layout().shape().to_vec();
    let y = act::bias_lrelu_fwd(&f32_data(&x), &bv, shape[0], shape[1], params[0], params[1]);
    FlexTensor::from_data(TensorData::new(y, dims))
}

/// The fused synthesis-layer tail, in place on `x` when it is unique (untracked forward).
fn demod_flex_owned(mut x: FlexTensor, d: &FlexTensor, nadd: &FlexTensor, b: &FlexTensor, g: [usize; 4], p: [f32; 2]) -> FlexTensor {
    let (dv, nv, bv) = (f32_data(d), f32_data(nadd), f32_data(b));
    if let Some(buf) = unique_f32(&mut x) {
        act::demod_noise_bias_lrelu_fwd_inplace(buf, &dv, &nv, &bv, [g[0], g[1], g[2]], p[0], p[1]);
        return x;
    }
    demod_flex(&x, d, nadd, b, g, p)
}

/// The fused synthesis-layer tail into a new tensor.
fn demod_flex(x: &FlexTensor, d: &FlexTensor, nadd: &FlexTensor, b: &FlexTensor, g: [usize; 4], p: [f32; 2]) -> FlexTensor {
    let dims = x.layout().shape().to_vec();
    let (xv, dv, nv, bv) = (f32_data(x), f32_data(d), f32_data(nadd), f32_data(b));
    let y = act::demod_noise_bias_lrelu_fwd(&xv, &dv, &nv, &bv, [g[0], g[1], g[2]], p[0], p[1]);
    FlexTensor::from_data(TensorData::new(y, dims))
}

impl FastAct for Flex {
    fn fast_bias_lrelu(x: FlexTensor, bias: FlexTensor, shape: [usize; 2], params: [f32; 2]) -> FlexTensor {
        bias_lrelu_flex(x, &bias, shape, params)
    }
    fn fast_scale_channels(x: FlexTensor, s: FlexTensor, hw: usize) -> FlexTensor {
        scale_flex(x, &s, hw)
    }
    fn fast_demod_noise_bias_lrelu(
        x: FlexTensor,
        d: FlexTensor,
        nadd: FlexTensor,
        bias: FlexTensor,
        geom: [usize; 4],
        params: [f32; 2],
    ) -> FlexTensor {
        demod_flex_owned(x, &d, &nadd, &bias, geom, params)
    }
}

fn scale_flex(mut x: FlexTensor, s: &FlexTensor, hw: usize) -> FlexTensor {
    let sv = f32_data(s);
    if let Some(buf) = unique_f32(&mut x) {
        act::scale_rows_to(None, buf, &sv, hw);
        return x;
    }
    let xv = f32_data(&x);
    let mut y = act::out_vec(xv.len());
    act::scale_rows_to(Some(&xv), &mut y, &sv, hw);
    FlexTensor::from_data(TensorData::new(y, x.layout().shape().to_vec()))
}

/// Backward of `y = x * s[n, c]`: `dx = dy * s`, `ds = sum_i dy * x`.
#[derive(Debug)]
struct ScaleBackward;

impl Backward<Flex, 2> for ScaleBackward {
    type State = (FlexTensor, FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_s] = ops.parents;
        let mut dy = grads.consume::<Flex>(&ops.node);
        let (x, s, hw) = ops.state;
        let (xv, sv) = (f32_data(&x), f32_data(&s));
        let want_ds = node_s.is_some();
        let (dx, ds) = match unique_f32(&mut dy) {
            Some(buf) => {
                let ds = act::scale_rows_bwd_inplace(&xv, buf, &sv, hw, want_ds);
                (dy, ds)
            }
            None => {
                let mut g = f32_data(&dy).into_owned();
                let ds = act::scale_rows_bwd_inplace(&xv, &mut g, &sv, hw, want_ds);
                (FlexTensor::from_data(TensorData::new(g, x.layout().shape().to_vec())), ds)
            }
        };
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(ds)) = (node_s, ds) {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(ds, s.layout().shape().to_vec())));
        }
    }
}

/// Backward of the fused synthesis-layer tail from its saved input, output and `d`.
#[derive(Debug)]
struct DemodBackward;

impl Backward<Flex, 4> for DemodBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, [usize; 4], [f32; 2]);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_d, node_z, node_b] = ops.parents;
        let mut dy = grads.consume::<Flex>(&ops.node);
        let (x, y, d, g, [alpha, gain]) = ops.state;
        let [n, c, hw, nn] = g;
        let xdims = x.layout().shape().to_vec();
        let (xv, yv, dv) = (f32_data(&x), f32_data(&y), f32_data(&d));
        let (dx, (dd, dnoise, db)) = match unique_f32(&mut dy) {
            // dy's buffer becomes dx
            Some(buf) => {
                let r = act::demod_noise_bias_lrelu_bwd_inplace(&xv, &yv, buf, &dv, nn, [n, c, hw], alpha, gain);
                (dy, r)
            }
            None => {
                let r = act::demod_noise_bias_lrelu_bwd(&xv, &yv, &f32_data(&dy), &dv, nn, [n, c, hw], alpha, gain);
                (FlexTensor::from_data(TensorData::new(r.dx, xdims.clone())), (r.dd, r.dnoise, r.db))
            }
        };
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_d {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dd, [n, c])));
        }
        if let Some(node) = node_z {
            let zd = [nn, 1, xdims[2], xdims[3]];
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dnoise, zd)));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [c])));
        }
    }
}

/// Backward of the fused op from its saved output: `dx` and `db` (see [`act`]).
#[derive(Debug)]
struct BiasLreluBackward;

impl Backward<Flex, 2> for BiasLreluBackward {
    type State = (FlexTensor, [usize; 2], [f32; 2]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_b] = ops.parents;
        let mut dy = grads.consume::<Flex>(&ops.node);
        let (y, [c, hw], [alpha, gain]) = ops.state;
        let yv = f32_data(&y);
        let (dx, db) = match unique_f32(&mut dy) {
            Some(buf) => {
                // dy's buffer becomes dx
                let db = act::bias_lrelu_bwd_inplace(&yv, buf, c, hw, alpha, gain, node_b.is_some());
                (dy, db)
            }
            None => {
                let (dx, db) = act::bias_lrelu_bwd(&yv, &f32_data(&dy), c, hw, alpha, gain, node_b.is_some());
                (FlexTensor::from_data(TensorData::new(dx, y.layout().shape().to_vec())), db)
            }
        };
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(db)) = (node_b, db) {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [c])));
        }
    }
}

impl<C: CheckpointStrategy> FastAct for Autodiff<Flex, C> {
    fn fast_bias_lrelu(x: FloatTensor<Self>, bias: FloatTensor<Self>, shape: [usize; 2], params: [f32; 2]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (bp, bn) = bias.into_parts();
        match BiasLreluBackward.prepare::<C>([xn, bn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = bias_lrelu_flex(xp, &bp, shape, params);
                prep.finish((y.clone(), shape, params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(bias_lrelu_flex(xp, &bp, shape, params)),
        }
    }

    fn fast_demod_noise_bias_lrelu(
        x: FloatTensor<Self>,
        d: FloatTensor<Self>,
        nadd: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geom: [usize; 4],
        params: [f32; 2],
    ) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (dp, dn) = d.into_parts();
        let (zp, zn) = nadd.into_parts();
        let (bp, bn) = bias.into_parts();
        match DemodBackward.prepare::<C>([xn, dn, zn, bn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = demod_flex(&xp, &dp, &zp, &bp, geom, params);
                prep.finish((xp, y.clone(), dp, geom, params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(demod_flex_owned(xp, &dp, &zp, &bp, geom, params)),
        }
    }

    fn fast_scale_channels(x: FloatTensor<Self>, s: FloatTensor<Self>, hw: usize) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (sp, sn) = s.into_parts();
        match ScaleBackward.prepare::<C>([xn, sn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                // x is kept for ds: the output is a new tensor
                let y = scale_flex(xp.clone(), &sp, hw);
                prep.finish((xp, sp, hw), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(scale_flex(xp, &sp, hw)),
        }
    }
}

/// StyleGAN2's modulation `x * s.reshape([n, c, 1, 1])` (`x [n, c, h, w]`, `s [n, c]`): on
/// flex with f32 data, one pass forward (in place when `x` is uniquely owned) and one pass
/// backward giving both `dx = dy * s` and `ds = sum_hw dy * x` (fixed summation order);
/// elsewhere (and with `LIMNER_FAST_BIAS_ACT=0`) burn's broadcast multiply. Bit-identical
/// forward.
pub fn scale_channels(x: Tensor<4>, s: Tensor<2>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    assert_eq!(s.dims(), [n, c], "scale_channels: s must be [n, c]");
    let fast = enabled()
        && bias_act_enabled()
        && x.dtype() == DType::F32
        && s.dtype() == DType::F32
        && on_flex(&x)
        && on_flex(&s);
    if !fast {
        return x * s.reshape([n, c, 1, 1]);
    }
    Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastAct>::fast_scale_channels(
        x.into_dispatch(),
        s.into_dispatch(),
        h * w,
    ))
}

/// The tail of a StyleGAN2 synthesis layer, `leaky_relu(x * d + noise + bias, alpha) * gain`
/// with `x [n, c, h, w]`, demodulation coefficients `d [n, c]` (broadcast over the pixels),
/// `noise [1 or n, 1, h, w]` (already scaled; broadcast over the channels; `None` = no noise)
/// and `bias [c]`. On flex with f32 data and `gain > 0`: one fused pass forward, one backward
/// (all four gradients, reductions in a fixed order); elsewhere (and with
/// `LIMNER_FAST_BIAS_ACT=0`) burn's composition, whose forward it matches bit for bit.
pub fn demod_noise_bias_lrelu(
    x: Tensor<4>,
    d: Tensor<2>,
    noise: Option<Tensor<4>>,
    bias: Tensor<1>,
    alpha: f64,
    gain: f64,
) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    assert_eq!(d.dims(), [n, c], "demod_noise_bias_lrelu: d must be [n, c]");
    assert_eq!(bias.dims(), [c], "demod_noise_bias_lrelu: bias must be [c]");
    let nn = match &noise {
        Some(z) => {
            let [nn, one, zh, zw] = z.dims();
            assert!((nn == 1 || nn == n) && one == 1 && [zh, zw] == [h, w], "noise must be [1 or n, 1, h, w]");
            nn
        }
        None => 1,
    };
    let f32s = x.dtype() == DType::F32 && d.dtype() == DType::F32 && bias.dtype() == DType::F32;
    let fast = enabled()
        && bias_act_enabled()
        && gain > 0.0
        && f32s
        && noise.as_ref().is_none_or(|z| z.dtype() == DType::F32 && on_flex(z))
        && on_flex(&x)
        && on_flex(&d)
        && on_flex(&bias);
    if !fast {
        let v = x * d.reshape([n, c, 1, 1]);
        let v = match noise {
            Some(z) => v + z,
            None => v,
        };
        return burn::tensor::activation::leaky_relu(v + bias.reshape([1, c, 1, 1]), alpha).mul_scalar(gain);
    }
    let z = noise.unwrap_or_else(|| Tensor::zeros([1, 1, h, w], &x.device()));
    Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastAct>::fast_demod_noise_bias_lrelu(
        x.into_dispatch(),
        d.into_dispatch(),
        z.into_dispatch(),
        bias.into_dispatch(),
        [n, c, h * w, nn],
        [alpha as f32, gain as f32],
    ))
}

/// `leaky_relu(x + bias (broadcast over dim 1), alpha) * gain`: on a flex device (plain or
/// autodiff) with f32 data and `gain > 0`, one fused multithreaded pass forward and one
/// backward (gradient from the sign of the saved output, bias gradient reduced in a fixed
/// order); elsewhere (other backends, dtypes, `LIMNER_FAST_BIAS_ACT=0`) burn's composition
/// `leaky_relu(x + b, alpha).mul_scalar(gain)`. The forward is bit-identical to that
/// composition.
pub fn bias_lrelu<const D: usize>(x: Tensor<D>, bias: Tensor<1>, alpha: f64, gain: f64) -> Tensor<D> {
    let dims = x.dims();
    let c = dims[1];
    assert_eq!(bias.dims()[0], c, "bias_lrelu: {} biases for {c} channels", bias.dims()[0]);
    let fast = enabled()
        && bias_act_enabled()
        && gain > 0.0
        && x.dtype() == DType::F32
        && bias.dtype() == DType::F32
        && on_flex(&x)
        && on_flex(&bias);
    if !fast {
        let mut shape = [1usize; D];
        shape[1] = c;
        return burn::tensor::activation::leaky_relu(x + bias.reshape(shape), alpha).mul_scalar(gain);
    }
    let hw: usize = dims[2..].iter().product();
    Tensor::<D>::from_dispatch(<burn::backend::Dispatch as FastAct>::fast_bias_lrelu(
        x.into_dispatch(),
        bias.into_dispatch(),
        [c, hw],
        [alpha as f32, gain as f32],
    ))
}

/// Is this a flex device (plain or autodiff)?
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    match t.device().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(a) => matches!(a.clone().inner(), DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Which fast kernel fits: `Some(false)` dense (groups 1), `Some(true)` depthwise
/// (groups == channels, weight `[c, 1, k, k]`), `None` = use burn's op.
/// `x_ch` = channels of `x`, `w_io` = the weight's (dim 0, dim 1).
fn fast_kind(x: &Tensor<4>, w: &Tensor<4>, stride: [usize; 2], dilation: [usize; 2], groups: usize) -> Option<bool> {
    let [_, x_ch, _, _] = x.dims();
    let [w0, w1, _, _] = w.dims();
    let dw = groups > 1 && groups == x_ch && w0 == x_ch && w1 == 1;
    (fast_ok(x, w, stride, dilation) && (groups == 1 || (dw && dw_enabled()))).then_some(dw)
}

fn fast_ok(x: &Tensor<4>, w: &Tensor<4>, stride: [usize; 2], dilation: [usize; 2]) -> bool {
    let [_, _, kh, kw] = w.dims();
    enabled()
        && dilation == [1, 1]
        && stride[0] == stride[1]
        && kh == kw
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && on_flex(x)
        && on_flex(w)
}

/// Drop-in for `burn::tensor::module::conv2d`.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    let pad = options.padding_begin();
    let symmetric = !options.is_asymmetric() && pad[0] == pad[1];
    let kind = if symmetric { fast_kind(&x, &weight, options.stride, options.dilation, options.groups) } else { None };
    let Some(dw) = kind else {
        return module::conv2d(x, weight, bias, options);
    };
    let [n, cin, h, w] = x.dims();
    let [cout, cin_w, k, _] = weight.dims();
    if !dw {
        assert_eq!(cin, cin_w, "conv2d: input has {cin} channels, weight expects {cin_w}");
    }
    let geom = [n, cin, h, w, cout, k, options.stride[0], pad[0], usize::from(dw)];
    let y = Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastConv>::fast_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        geom,
    ));
    match bias {
        Some(b) => y + b.reshape([1, cout, 1, 1]),
        None => y,
    }
}

/// Drop-in for `burn::tensor::module::conv_transpose2d` (weight `[in, out, k, k]`).
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<4> {
    let [n, cin_t, h_in, w_in] = x.dims();
    let [cin_w, cout_t, k, _] = weight.dims();
    let s = options.stride[0];
    let p = options.padding[0];
    let po = options.padding_out;
    let ok = options.padding[1] == p && po[0] == po[1] && po[0] < s;
    let kind = if ok { fast_kind(&x, &weight, options.stride, options.dilation, options.groups) } else { None };
    let Some(dw) = kind else {
        return module::conv_transpose2d(x, weight, bias, options);
    };
    assert_eq!(cin_t, cin_w, "conv_transpose2d: input has {cin_t} channels, weight expects {cin_w}");
    // depthwise: weight [c, 1, k, k], c output channels
    let cout_t = if dw { cin_t } else { cout_t };
    // output size of the transposed conv = input size of the conv it is the adjoint of
    let h = (h_in - 1) * s + k + po[0] - 2 * p;
    let w = (w_in - 1) * s + k + po[1] - 2 * p;
    // conv: [n, cout_t, h, w] -> [n, cin_t, h_in, w_in] with weight [cin_t, cout_t, k, k]
    let geom = [n, cout_t, h, w, cin_t, k, s, p, usize::from(dw)];
    let g = geom_of(geom);
    debug_assert_eq!((g.ho(), g.wo()), (h_in, w_in));
    let y = Tensor::<4>::from_dispatch(<burn::backend::Dispatch as FastConv>::fast_conv_transpose2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        geom,
    ));
    match bias {
        Some(b) => y + b.reshape([1, cout_t, 1, 1]),
        None => y,
    }
}
