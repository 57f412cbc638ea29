//! Fast dense convolutions for burn's pure-Rust CPU backend (`flex`).
//!
//! [`conv2d`] and [`conv_transpose2d`] have the same signature as `burn::tensor::module::conv2d`
//! / `conv_transpose2d`. On a flex device (plain or autodiff) with f32 data, groups 1,
//! dilation 1, square kernels, equal strides and symmetric padding, they run limner's own
//! kernels ([`cpu`]: per-sample im2col + AVX-512 `gemm`, batch-parallel, hand-written backward
//! passes). Everything else (CUDA/ROCm/Metal devices, grouped / depthwise / dilated convs,
//! other dtypes) goes to burn's own op unchanged.
//!
//! The custom op is a burn backend extension ([`FastConv`]) implemented for `Flex` and for
//! `Autodiff<Flex>`; the autodiff implementation records one graph node whose backward
//! calls [`cpu::conv_xgrad`] / [`cpu::conv_wgrad`] (or [`cpu::conv_fwd`] for the transposed
//! conv), only for the inputs that need a gradient.
//!
//! `LIMNER_FAST_CONV=0` in the environment (or [`set_enabled(false)`](set_enabled)) turns the
//! fast path off at run time, for A/B comparisons.

pub mod cpu;

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, DispatchDevice, Flex};
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor, TensorData};

pub use cpu::Geom;

// 0 = not read yet, 1 = on, 2 = off
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Whether the fast path is used (default on; `LIMNER_FAST_CONV=0` turns it off).
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("LIMNER_FAST_CONV").map(|v| v != "0").unwrap_or(true);
            ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the fast path on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// The custom ops. `geom` packs `[n, cin, h, w, cout, k, stride, pad]` of the *forward
/// convolution* (for the transposed conv: of the convolution it is the adjoint of).
#[backend_extension(Flex, Autodiff)]
pub trait FastConv: Backend {
    /// `conv2d(x [n,cin,h,w], w [cout,cin,k,k])` -> `[n, cout, ho, wo]`
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 8]) -> FloatTensor<Self>;
    /// `conv_transpose2d(x [n,cout,ho,wo], w [cout,cin,k,k])` -> `[n, cin, h, w]`: the input
    /// gradient of the conv described by `geom` (burn's weight layout `[in, out, k, k]` of a
    /// transposed conv is exactly that conv's `[cout, cin, k, k]`).
    fn fast_conv_transpose2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 8]) -> FloatTensor<Self>;
}

fn geom_of(a: [usize; 8]) -> Geom {
    Geom { n: a[0], cin: a[1], h: a[2], w: a[3], cout: a[4], k: a[5], s: a[6], p: a[7] }
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

fn fwd(g: &Geom, x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    flex_from(cpu::conv_fwd(g, &f32_data(x), &f32_data(w)), [g.n, g.cout, g.ho(), g.wo()])
}
fn xgrad(g: &Geom, dy: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    flex_from(cpu::conv_xgrad(g, &f32_data(dy), &f32_data(w)), [g.n, g.cin, g.h, g.w])
}
fn wgrad(g: &Geom, x: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    flex_from(cpu::conv_wgrad(g, &f32_data(x), &f32_data(dy)), [g.cout, g.cin, g.k, g.k])
}

impl FastConv for Flex {
    fn fast_conv2d(x: FlexTensor, weight: FlexTensor, geom: [usize; 8]) -> FlexTensor {
        fwd(&geom_of(geom), &x, &weight)
    }
    fn fast_conv_transpose2d(x: FlexTensor, weight: FlexTensor, geom: [usize; 8]) -> FlexTensor {
        xgrad(&geom_of(geom), &x, &weight)
    }
}

/// Backward of `y = conv(x, w)`: `dx = xgrad(dy, w)`, `dw = wgrad(x, dy)`.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (FlexTensor, FlexTensor, [usize; 8]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, geom) = ops.state;
        let g = geom_of(geom);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, xgrad(&g, &dy, &w));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, wgrad(&g, &x, &dy));
        }
    }
}

/// Backward of `y = conv_transpose(x, w)` (= xgrad of the conv `geom` with `dy = x`):
/// `dx = conv(dy_y, w)`, `dw = wgrad(dy_y, x)`.
#[derive(Debug)]
struct ConvTransposeBackward;

impl Backward<Flex, 2> for ConvTransposeBackward {
    type State = (FlexTensor, FlexTensor, [usize; 8]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, w, geom) = ops.state;
        let g = geom_of(geom);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, fwd(&g, &gy, &w));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, wgrad(&g, &gy, &x));
        }
    }
}

impl<C: CheckpointStrategy> FastConv for Autodiff<Flex, C> {
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 8]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (wp, wn) = weight.into_parts();
        match ConvBackward.prepare::<C>([xn, wn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = fwd(&geom_of(geom), &xp, &wp);
                prep.finish((xp, wp, geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(fwd(&geom_of(geom), &xp, &wp)),
        }
    }

    fn fast_conv_transpose2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, geom: [usize; 8]) -> FloatTensor<Self> {
        let (xp, xn) = x.into_parts();
        let (wp, wn) = weight.into_parts();
        match ConvTransposeBackward.prepare::<C>([xn, wn]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = xgrad(&geom_of(geom), &xp, &wp);
                prep.finish((xp, wp, geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(xgrad(&geom_of(geom), &xp, &wp)),
        }
    }
}

/// Is this a flex device (plain or autodiff)?
fn on_flex(t: &Tensor<4>) -> bool {
    match t.device().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(a) => matches!(a.clone().inner(), DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn fast_ok(x: &Tensor<4>, w: &Tensor<4>, stride: [usize; 2], dilation: [usize; 2], groups: usize) -> bool {
    let [_, _, kh, kw] = w.dims();
    enabled()
        && groups == 1
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
    if !(symmetric && fast_ok(&x, &weight, options.stride, options.dilation, options.groups)) {
        return module::conv2d(x, weight, bias, options);
    }
    let [n, cin, h, w] = x.dims();
    let [cout, cin_w, k, _] = weight.dims();
    assert_eq!(cin, cin_w, "conv2d: input has {cin} channels, weight expects {cin_w}");
    let geom = [n, cin, h, w, cout, k, options.stride[0], pad[0]];
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
    let ok = options.padding[1] == p
        && po[0] == po[1]
        && po[0] < s
        && fast_ok(&x, &weight, options.stride, options.dilation, options.groups);
    if !ok {
        return module::conv_transpose2d(x, weight, bias, options);
    }
    assert_eq!(cin_t, cin_w, "conv_transpose2d: input has {cin_t} channels, weight expects {cin_w}");
    // output size of the transposed conv = input size of the conv it is the adjoint of
    let h = (h_in - 1) * s + k + po[0] - 2 * p;
    let w = (w_in - 1) * s + k + po[1] - 2 * p;
    // conv: [n, cout_t, h, w] -> [n, cin_t, h_in, w_in] with weight [cin_t, cout_t, k, k]
    let geom = [n, cout_t, h, w, cin_t, k, s, p];
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
