//! Direct convolution with an AVX2 + FMA micro-kernel that reads the input planes in place:
//! no im2col matrix and no gemm packing of it (the fused conv + bias + ReLU of
//! [`crate::conv_relu`], forward and stride-1 input gradient).
//!
//! Each sample's input is copied once into zero-padded phase planes ([`Phases`], the same
//! layout as the im2col path; with the ReLU mask of the backward pass applied while copying),
//! each channel followed by a zero tail. Output pixel `(oh, ow)` is computed at the flat index
//! `j = oh * wq + ow` with `ow` running over the whole phase-plane width `wq` (the `wq - wo`
//! extra columns per row are computed and thrown away): then the input of tap `(ci, ky, kx)` for
//! pixels `j..j + 24` is the contiguous run `planes[ci][tap(ky, kx) + j..][..24]` of one plane,
//! whatever the rows, and the micro-kernel is `acc[4 output channels][24 pixels] +=
//! w[k][4] ⊗ x[k][24]` over `k = (ci, ky, kx)`: 3 unaligned loads, 4 broadcasts and 12 FMAs per
//! step, 12 accumulators in registers, no edge kernels (the flat range is padded to a multiple
//! of 24 and the output channels to a multiple of 4, with zero weights). The weights are
//! repacked per call as `[cout / 4][ckk][4]`.
//!
//! Work split: batch-parallel (one sample per task) when the batch has at least one sample per
//! thread; below, one sample after the other with its planes split in parallel over channels
//! and its superblocks of pixels as tasks. Every output element is one sequential sum over `k`
//! in a fixed order: results do not depend on the thread count. They differ from the gemm path
//! only by float rounding (another summation order; tests: `tests/direct_conv.rs`).
//!
//! On CPUs with AVX-512F the micro-tile is 48 pixels (3 zmm vectors) and two blocks of 4 output
//! channels share each pass over the input ([`micro512x8`]: 24 accumulators, 11 loads per 24
//! FMAs; the channel blocks are padded to an even number); every output element is still the same sequential sum, so the results
//! are bit-identical to the AVX2 kernel's (`LIMNER_DIRECT_AVX512=0` keeps the AVX2 kernel for
//! A/B runs). Without them the direct path ran at the AVX2 kernel's half width and lost to the
//! gemm crate's AVX-512 kernels on such CPUs (bench/NOTES.md, round 6).
//!
//! `LIMNER_DIRECT_CONV=0` (or [`set_enabled`]`(false)`) restores the im2col + gemm path for
//! same-process A/B runs; it also switches the RGB stem's stride-2 input gradient back (see
//! `conv_relu`). Without AVX2 + FMA the gemm path is used.

use rayon::prelude::*;

use crate::cpu::{out_vec, scratch, Geom, Phases};
use crate::Switch;

static DIRECT: Switch = Switch::new("LIMNER_DIRECT_CONV");
static DIRECT512: Switch = Switch::new("LIMNER_DIRECT_AVX512");

/// Output channels per micro-tile.
const MR: usize = 4;
/// Output pixels (flat, padded-width) per micro-tile with AVX2: 3 vectors of 8.
const NB: usize = 24;
/// Output pixels per micro-tile with AVX-512: 3 vectors of 16.
const NB512: usize = 48;
/// Micro-tiles of pixels per superblock at most (a task's unit of work).
const MAX_BLOCKS: usize = 8;

/// Whether this CPU has AVX2 and FMA (checked once).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *V.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512F (checked once).
fn available512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *V.get_or_init(|| std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the direct path uses the AVX-512 micro-kernel (48 pixels per micro-tile): on CPUs
/// with AVX-512F unless `LIMNER_DIRECT_AVX512=0` (or [`set_avx512`]`(false)`), which keeps the
/// AVX2 kernel (24 pixels) for same-process A/B runs. Both compute every output element as the
/// same sequential sum over `k`, so the results are bit-identical.
pub fn uses_avx512() -> bool {
    DIRECT512.get() && available512()
}

/// Turns the AVX-512 micro-kernel on or off for the whole process (same-process A/B runs).
pub fn set_avx512(on: bool) {
    DIRECT512.set(on);
}

/// Whether the direct path is on (default; `LIMNER_DIRECT_CONV=0` turns it off) and the CPU
/// supports it.
pub fn enabled() -> bool {
    DIRECT.get() && available()
}

/// Turns the direct path on or off for the whole process (same-process A/B runs).
pub fn set_enabled(on: bool) {
    DIRECT.set(on);
}

/// Whether `g` goes through the direct path when it is enabled: stride 1, not 1×1, and the
/// thrown-away columns (`wq - wo` per row) at most a sixth of the work. That takes InceptionV3's
/// 3×3 stem convs (forward and input gradient) and the 3×3 convs of the later blocks at 128 px
/// and above; the 5×5 and 1×7 / 7×1 convs on maps of 17 or less keep the gemm path. Measured
/// and left on the gemm path (bench/NOTES.md, round 5): the 1×1 convs (gemm reads the NCHW
/// buffer in place already; direct 36-47 vs gemm 38-55 GFLOP per CPU-s) and stride 2 (its
/// phase planes spread each step's reads over `s²` planes: 43 vs 65).
pub fn applies(g: &Geom) -> bool {
    let ps = Phases::of(g);
    let (wq, wo) = (ps.wq(), g.wo());
    g.s == 1 && g.kh * g.kw > 1 && g.n > 0 && g.cout > 0 && g.ho() > 0 && wo > 0 && g.cin > 0 && (wq - wo) * 6 <= wq
}

/// Floats per input channel in the plane buffer: the phase planes and a zero tail that covers
/// the reads of the last micro-tile (see the module docs).
fn chan_stride(ps: &Phases, g: &Geom) -> usize {
    ps.len() + NB512 + g.kw + g.kh
}

/// Blocks of [`MR`] output channels: with the AVX-512 kernel (`nb` = [`NB512`]) an even number,
/// since [`micro512x8`] computes two blocks at a time (the padding channels have zero weights
/// and are never written out).
fn channel_blocks(g: &Geom, nb: usize) -> usize {
    let cobs = g.cout.div_ceil(MR);
    if nb == NB512 { cobs.next_multiple_of(2) } else { cobs }
}

/// `wp[cb][k][r] = w[cb * MR + r][k]` (0 for the padding channels).
fn pack_weights(g: &Geom, w: &[f32], nb: usize) -> Vec<f32> {
    let ckk = g.ckk();
    let cobs = channel_blocks(g, nb);
    let mut wp = vec![0.0f32; cobs * ckk * MR];
    for co in 0..g.cout {
        let (cb, r) = (co / MR, co % MR);
        for k in 0..ckk {
            wp[(cb * ckk + k) * MR + r] = w[co * ckk + k];
        }
    }
    wp
}

/// The input offset of every `k = (ci, ky, kx)` for output index 0.
fn tap_offsets(g: &Geom, ps: &Phases, cs: usize) -> Vec<usize> {
    let mut offs = Vec::with_capacity(g.ckk());
    for ci in 0..g.cin {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                offs.push(ci * cs + ps.tap(ky, kx, 0));
            }
        }
    }
    offs
}

/// Copies channel plane `x` (times `[m > 0]` with a mask) into its padded phase planes and
/// zeroes the tail. `tmp` holds the masked plane (`h * w` floats) when there is a mask.
fn fill_channel(ps: &Phases, x: &[f32], m: Option<&[f32]>, dst: &mut [f32], tmp: &mut [f32]) {
    let len = ps.len();
    match m {
        None => ps.split(x, &mut dst[..len]),
        Some(m) => {
            crate::bias_relu::copy_masked(tmp, x, m);
            ps.split(tmp, &mut dst[..len]);
        }
    }
    dst[len..].fill(0.0);
}

/// The shared, read-only state of one call.
struct Plan<'a> {
    g: Geom,
    ps: Phases,
    cs: usize,
    offs: Vec<usize>,
    wp: Vec<f32>,
    bias: Option<&'a [f32]>,
    relu: bool,
    /// flat output length `ho * wq`
    l: usize,
    /// pixels per micro-tile: [`NB512`] with the AVX-512 kernel, else [`NB`]
    nb: usize,
}

impl Plan<'_> {
    /// Computes flat output indices `j0..j0 + jn` (`jn` a multiple of `nb`) of one sample
    /// from its planes into `tmp` (`[cout padded, jn]`), then writes the valid pixels to `yb`
    /// (`[cout, ho, wo]`) with bias and ReLU.
    fn superblock(&self, planes: &[f32], j0: usize, jn: usize, tmp: &mut [f32], yb: *mut f32) {
        let g = &self.g;
        let ckk = g.ckk();
        let nb = self.nb;
        let cobs = channel_blocks(g, nb);
        debug_assert!(jn % nb == 0 && tmp.len() >= cobs * MR * jn);
        debug_assert!(planes.len() >= g.cin * self.cs);
        // SAFETY (both kernels): every read `offs[k] + j0 + p + 0..nb` stays inside `planes` (the
        // zero tail of each channel covers the padded flat range; see `chan_stride`), and the
        // writes are rows `cb*MR..` (4 rows, or 8 for the AVX-512 kernel, which runs only when
        // `uses_avx512` found AVX-512F and `cobs` is even), columns `p..p+nb` of `tmp`.
        if nb == NB512 {
            for cb in (0..cobs).step_by(2) {
                let wk = &self.wp[cb * ckk * MR..(cb + 2) * ckk * MR];
                for p in (0..jn).step_by(nb) {
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        micro512x8(planes.as_ptr().add(j0 + p), &self.offs, wk.as_ptr(), wk[ckk * MR..].as_ptr(), tmp.as_mut_ptr().add(cb * MR * jn + p), jn)
                    };
                }
            }
        } else {
            for cb in 0..cobs {
                let wk = &self.wp[cb * ckk * MR..(cb + 1) * ckk * MR];
                for p in (0..jn).step_by(nb) {
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        micro(planes.as_ptr().add(j0 + p), &self.offs, wk.as_ptr(), tmp.as_mut_ptr().add(cb * MR * jn + p), jn)
                    };
                }
            }
        }
        let (ho, wo, wq) = (g.ho(), g.wo(), self.ps.wq());
        let hw = ho * wo;
        let end = (j0 + jn).min(self.l);
        let mut oh = j0 / wq;
        while oh * wq < end {
            let a = (oh * wq).max(j0);
            let b = (oh * wq + wo).min(end);
            if a < b {
                let (ow0, n) = (a - oh * wq, b - a);
                for co in 0..g.cout {
                    let src = &tmp[co * jn + (a - j0)..][..n];
                    // SAFETY: pixels (oh, ow0..ow0+n) of channel co; the caller gives each
                    // superblock of a sample to one task, and superblocks do not overlap
                    let dst = unsafe { std::slice::from_raw_parts_mut(yb.add(co * hw + oh * wo + ow0), n) };
                    let bv = self.bias.map(|b| b[co]);
                    match (bv, self.relu) {
                        (Some(bv), true) => dst.iter_mut().zip(src).for_each(|(d, v)| *d = (*v + bv).max(0.0)),
                        (Some(bv), false) => dst.iter_mut().zip(src).for_each(|(d, v)| *d = *v + bv),
                        (None, true) => dst.iter_mut().zip(src).for_each(|(d, v)| *d = v.max(0.0)),
                        (None, false) => dst.copy_from_slice(src),
                    }
                }
            }
            oh += 1;
        }
    }
}

/// `out[r][0..24] = Σ_k wk[k][r] · x[offs[k]..][0..24]` for `r < 4` (`out` rows `ld` apart),
/// `k` in order, one FMA chain per output element. The loop is written in assembly: with
/// intrinsics the compiler kept two broadcasts live at once and spilled an accumulator to the
/// stack every step (a store-to-load chain through memory: half the speed, measured).
/// Registers: ymm0-11 the 4 × 3 accumulators, ymm12-14 the 24 input floats, ymm15 the
/// broadcast weight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro(x: *const f32, offs: &[usize], wk: *const f32, out: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let (mut a00, mut a01, mut a02) = (z, z, z);
    let (mut a10, mut a11, mut a12) = (z, z, z);
    let (mut a20, mut a21, mut a22) = (z, z, z);
    let (mut a30, mut a31, mut a32) = (z, z, z);
    if !offs.is_empty() {
        std::arch::asm!(
            "2:",
            "mov {o}, qword ptr [{offs}]",
            "vmovups ymm12, ymmword ptr [{x} + 4*{o}]",
            "vmovups ymm13, ymmword ptr [{x} + 4*{o} + 32]",
            "vmovups ymm14, ymmword ptr [{x} + 4*{o} + 64]",
            "vbroadcastss ymm15, dword ptr [{w}]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 4]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 8]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 12]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "add {offs}, 8",
            "add {w}, 16",
            "dec {k}",
            "jnz 2b",
            x = in(reg) x,
            offs = inout(reg) offs.as_ptr() => _,
            w = inout(reg) wk => _,
            k = inout(reg) offs.len() => _,
            o = out(reg) _,
            inout("ymm0") a00, inout("ymm1") a01, inout("ymm2") a02,
            inout("ymm3") a10, inout("ymm4") a11, inout("ymm5") a12,
            inout("ymm6") a20, inout("ymm7") a21, inout("ymm8") a22,
            inout("ymm9") a30, inout("ymm10") a31, inout("ymm11") a32,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(readonly, nostack),
        );
    }
    for (r, [v0, v1, v2]) in [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22], [a30, a31, a32]].into_iter().enumerate() {
        let o = out.add(r * ld);
        _mm256_storeu_ps(o, v0);
        _mm256_storeu_ps(o.add(8), v1);
        _mm256_storeu_ps(o.add(16), v2);
    }
}

/// [`micro`] with AVX-512, two blocks at once: `out[r][0..48] = Σ_k wk[k][r] · x[offs[k]..][0..48]`
/// for output channels `4 * cb .. 4 * cb + 8` (weights `wk` for the first four, `wk2` for the
/// next four, as packed), `k` in order: the same sums in the same order as [`micro`], so the
/// results are bit-identical. The 3 input vectors are loaded once for 24 FMAs, the 4 weights of
/// a block broadcast into registers: 11 loads per 24 FMAs. (A 4-channel version broadcasting
/// inside each FMA, `{1to16}`: 15 loads per 12 FMAs, load-bound, 1.09× the gemm path's time on
/// the FID-like batch; with register broadcasts, 7 per 12: 0.99×; this one 0.91×.) Registers: zmm0-23 the 8 × 3
/// accumulators, zmm24-26 the input, zmm27-30 the broadcast weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn micro512x8(x: *const f32, offs: &[usize], wk: *const f32, wk2: *const f32, out: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    let mut a = [_mm512_setzero_ps(); 24];
    if !offs.is_empty() {
        std::arch::asm!(
            "2:",
            "mov {o}, qword ptr [{offs}]",
            "vmovups zmm24, zmmword ptr [{x} + 4*{o}]",
            "vmovups zmm25, zmmword ptr [{x} + 4*{o} + 64]",
            "vmovups zmm26, zmmword ptr [{x} + 4*{o} + 128]",
            "vbroadcastss zmm27, dword ptr [{w}]",
            "vbroadcastss zmm28, dword ptr [{w} + 4]",
            "vbroadcastss zmm29, dword ptr [{w} + 8]",
            "vbroadcastss zmm30, dword ptr [{w} + 12]",
            "vfmadd231ps zmm0, zmm27, zmm24",
            "vfmadd231ps zmm1, zmm27, zmm25",
            "vfmadd231ps zmm2, zmm27, zmm26",
            "vfmadd231ps zmm3, zmm28, zmm24",
            "vfmadd231ps zmm4, zmm28, zmm25",
            "vfmadd231ps zmm5, zmm28, zmm26",
            "vfmadd231ps zmm6, zmm29, zmm24",
            "vfmadd231ps zmm7, zmm29, zmm25",
            "vfmadd231ps zmm8, zmm29, zmm26",
            "vfmadd231ps zmm9, zmm30, zmm24",
            "vfmadd231ps zmm10, zmm30, zmm25",
            "vfmadd231ps zmm11, zmm30, zmm26",
            "vbroadcastss zmm27, dword ptr [{v}]",
            "vbroadcastss zmm28, dword ptr [{v} + 4]",
            "vbroadcastss zmm29, dword ptr [{v} + 8]",
            "vbroadcastss zmm30, dword ptr [{v} + 12]",
            "vfmadd231ps zmm12, zmm27, zmm24",
            "vfmadd231ps zmm13, zmm27, zmm25",
            "vfmadd231ps zmm14, zmm27, zmm26",
            "vfmadd231ps zmm15, zmm28, zmm24",
            "vfmadd231ps zmm16, zmm28, zmm25",
            "vfmadd231ps zmm17, zmm28, zmm26",
            "vfmadd231ps zmm18, zmm29, zmm24",
            "vfmadd231ps zmm19, zmm29, zmm25",
            "vfmadd231ps zmm20, zmm29, zmm26",
            "vfmadd231ps zmm21, zmm30, zmm24",
            "vfmadd231ps zmm22, zmm30, zmm25",
            "vfmadd231ps zmm23, zmm30, zmm26",
            "add {offs}, 8",
            "add {w}, 16",
            "add {v}, 16",
            "dec {k}",
            "jnz 2b",
            x = in(reg) x,
            offs = inout(reg) offs.as_ptr() => _,
            w = inout(reg) wk => _,
            v = inout(reg) wk2 => _,
            k = inout(reg) offs.len() => _,
            o = out(reg) _,
            inout("zmm0") a[0], inout("zmm1") a[1], inout("zmm2") a[2], inout("zmm3") a[3], inout("zmm4") a[4], inout("zmm5") a[5], inout("zmm6") a[6], inout("zmm7") a[7], inout("zmm8") a[8], inout("zmm9") a[9], inout("zmm10") a[10], inout("zmm11") a[11], inout("zmm12") a[12], inout("zmm13") a[13], inout("zmm14") a[14], inout("zmm15") a[15], inout("zmm16") a[16], inout("zmm17") a[17], inout("zmm18") a[18], inout("zmm19") a[19], inout("zmm20") a[20], inout("zmm21") a[21], inout("zmm22") a[22], inout("zmm23") a[23],
            out("zmm24") _, out("zmm25") _, out("zmm26") _,
            out("zmm27") _, out("zmm28") _, out("zmm29") _, out("zmm30") _,
            options(readonly, nostack),
        );
    }
    store8x48(&a, out, ld);
}

/// Stores the 8 × 3 accumulators of a micro-tile of 8 rows and 48 pixels (row `r`: vectors
/// `3r .. 3r + 3`) at `out + r · ld` (also [`crate::upconv`]'s kernel).
///
/// # Safety
/// `out + r · ld + 0..48` must be writable for `r < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store8x48(a: &[std::arch::x86_64::__m512; 24], out: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    for r in 0..8 {
        let o = out.add(r * ld);
        _mm512_storeu_ps(o, a[3 * r]);
        _mm512_storeu_ps(o.add(16), a[3 * r + 1]);
        _mm512_storeu_ps(o.add(32), a[3 * r + 2]);
    }
}

/// A raw output pointer the tasks share; each writes disjoint pixels.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `act(conv(x · [mask > 0], w) + bias)` for every sample (`mask` the shape of `x`, applied
/// while copying the planes; `relu` applies `max(0, ·)`). Call only when [`enabled`] and
/// [`applies`] hold.
pub fn fwd(g: &Geom, x: &[f32], mask: Option<&[f32]>, w: &[f32], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    assert!(available(), "direct conv without AVX2 + FMA");
    let (in_len, out_len, hw_in) = (g.in_len(), g.out_len(), g.h * g.w);
    assert_eq!(x.len(), g.n * in_len, "conv input length");
    assert_eq!(w.len(), g.cout * g.ckk(), "conv weight length");
    if let Some(m) = mask {
        assert_eq!(m.len(), x.len(), "conv mask length");
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), g.cout, "conv bias length");
    }
    let mut y = out_vec(g.n * out_len);
    if g.n == 0 || out_len == 0 {
        return y;
    }
    let ps = Phases::of(g);
    let cs = chan_stride(&ps, g);
    let l = g.ho() * ps.wq();
    let nb = if uses_avx512() { NB512 } else { NB };
    let lpad = l.div_ceil(nb) * nb;
    let plan = Plan { g: *g, ps, cs, offs: tap_offsets(g, &ps, cs), wp: pack_weights(g, w, nb), bias, relu, l, nb };
    let rows = channel_blocks(g, nb) * MR;
    let t = rayon::current_num_threads().max(1);
    let yp = Out(y.as_mut_ptr());
    if g.n >= t && t > 1 {
        let sb = nb * MAX_BLOCKS;
        (0..g.n).into_par_iter().with_max_len(1).for_each(|b| {
            let yp = yp;
            let xb = &x[b * in_len..(b + 1) * in_len];
            let mb = mask.map(|m| &m[b * in_len..(b + 1) * in_len]);
            scratch(g.cin * cs + hw_in, rows * sb, |pl, tmp| {
                let (planes, mt) = pl.split_at_mut(g.cin * cs);
                for ci in 0..g.cin {
                    let xs = &xb[ci * hw_in..(ci + 1) * hw_in];
                    fill_channel(&ps, xs, mb.map(|m| &m[ci * hw_in..(ci + 1) * hw_in]), &mut planes[ci * cs..(ci + 1) * cs], mt);
                }
                let mut j0 = 0;
                while j0 < lpad {
                    let jn = sb.min(lpad - j0);
                    // SAFETY: sample b's output, written by this task only
                    plan.superblock(planes, j0, jn, &mut tmp[..rows * jn], unsafe { yp.0.add(b * out_len) });
                    j0 += jn;
                }
            });
        });
        return y;
    }
    // below one sample per thread: superblocks of one sample as tasks, about 4 per thread
    let blocks = lpad / nb;
    let per = blocks.div_ceil(4 * t).clamp(1, MAX_BLOCKS);
    let starts: Vec<usize> = (0..blocks).step_by(per).map(|b| b * nb).collect();
    let mut planes = out_vec(g.cin * cs);
    for b in 0..g.n {
        let xb = &x[b * in_len..(b + 1) * in_len];
        let mb = mask.map(|m| &m[b * in_len..(b + 1) * in_len]);
        planes.par_chunks_mut(cs).enumerate().for_each(|(ci, dst)| {
            let xs = &xb[ci * hw_in..(ci + 1) * hw_in];
            let ms = mb.map(|m| &m[ci * hw_in..(ci + 1) * hw_in]);
            let mut mt = if ms.is_some() { out_vec(hw_in) } else { Vec::new() };
            fill_channel(&ps, xs, ms, dst, &mut mt);
        });
        let planes = &planes;
        let plan = &plan;
        starts.par_iter().with_max_len(1).for_each(|&j0| {
            let yp = yp;
            let jn = (per * nb).min(lpad - j0);
            scratch(rows * jn, 0, |tmp, _| {
                // SAFETY: superblocks of sample b do not overlap
                plan.superblock(planes, j0, jn, tmp, unsafe { yp.0.add(b * out_len) })
            });
        });
    }
    y
}
