//! The 3×3 stride-2 transposed convolution (StyleGAN2's upsampling modulated conv; the input
//! gradient of a 3×3 stride-2 conv) as one direct pass with an AVX-512 micro-kernel that
//! computes all four output phases at once.
//!
//! With `ih + ph = 2m + q` and `iw + pw = 2l + r` (`q, r ∈ {0, 1}`), output pixel `(ih, iw)`
//! only meets the taps `ky = q + 2a`, `kx = r + 2b`, and
//! `dx[ci, ih, iw] = Σ_{co, a, b} w[co, ci, q + 2a, r + 2b] · dy[co, m − a, l − b]`. On `dy`'s
//! planes padded by one zero row and column before (and enough after), every phase reads the
//! same four shifted copies of the plane (`(a, b) ∈ {0, 1}²`, flat offsets `wq + 1`, `1`, `wq`,
//! `0` for a padded width `wq`), so one micro-kernel keeps 4 phases × 2 output channels × 48
//! pixels in 24 registers and, per input channel, loads the four shifted runs once (12 loads)
//! and the 18 weights of its two channels (18 broadcasts) for 54 FMAs: the 9 taps of a channel
//! plane are used while its lines are in L1. The four separate phase convs it replaces
//! ([`crate::cpu::conv_xgrad`]'s phase path) stream each plane from L2 once per phase with 1–4
//! taps each, and ran at about half the forward 3×3 conv's rate at the same FLOPs.
//!
//! Every output element is one sequential sum over `co` (taps in a fixed order): the results
//! do not depend on the thread count and differ from the other paths by float rounding only
//! (`tests/direct_conv.rs`). Used when [`applies`]: kernel 3×3, stride 2, padding 0 or 1, the
//! direct conv on (`LIMNER_DIRECT_CONV`) and AVX-512F (`LIMNER_DIRECT_AVX512`); else the phase
//! path runs.

use rayon::prelude::*;

use crate::cpu::{out_vec, scratch, Geom};
use crate::direct::Out;

/// Flat output pixels per micro-tile (3 zmm vectors).
const NB: usize = 48;
/// Micro-tiles per superblock at most.
const MAX_BLOCKS: usize = 8;
/// The micro-kernel reads, per input channel `co` of `dy`, the 3×3 kernels of an output-channel
/// pair at the offsets of its taps: for `(a, b) = (0, 0)` the phases 00, 01, 10, 11 (taps 00,
/// 01, 10, 11); `(1, 0)`: 00, 01 (taps 20, 21); `(0, 1)`: 00, 10 (taps 02, 12); `(1, 1)`: 00 (22).
/// Packed ([`pack`]): both kernels in one run of 18 floats per `co`.
const PAIR: usize = 18;

/// Whether [`xgrad`] handles `g`.
pub fn applies(g: &Geom) -> bool {
    g.s == 2 && g.kh == 3 && g.kw == 3 && g.ph <= 1 && g.pw <= 1 && crate::direct::enabled() && crate::direct::uses_avx512()
}

/// Where the conv's weights `w[co, ci, ky, kx]` lie (each 3×3 kernel contiguous):
/// `data[offset + co · co_stride + ci · ci_stride + 3ky + kx]`. The conv's own layout has
/// `co_stride = 9 cin`, `ci_stride = 9`; StyleGAN2's up-conv hands its `[out, in, 3, 3]` weight
/// swapped (`co_stride = 9`, `ci_stride = 9 cout`), read here in place instead of copied.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub co_stride: usize,
    pub ci_stride: usize,
}

impl<'a> Weights<'a> {
    /// The conv's own layout `[cout, cin, 3, 3]`.
    pub fn contiguous(g: &Geom, w: &'a [f32]) -> Self {
        Self { data: w, offset: 0, co_stride: 9 * g.cin, ci_stride: 9 }
    }
    fn at(&self, co: usize, ci: usize) -> usize {
        self.offset + co * self.co_stride + ci * self.ci_stride
    }
    /// Whether every kernel of `g` lies inside `data`.
    fn fits(&self, g: &Geom) -> bool {
        g.cout == 0 || g.cin == 0 || self.at(g.cout - 1, g.cin - 1) + 9 <= self.data.len()
    }
}

/// `wp[cp][co][..18]` = the kernels of channels `2cp`, `2cp + 1` for `co` (0 past `cin`).
fn pack(g: &Geom, w: &Weights) -> Vec<f32> {
    let cps = g.cin.div_ceil(2);
    let mut wp = vec![0.0f32; cps * g.cout * PAIR];
    wp.par_chunks_mut(g.cout * PAIR).enumerate().for_each(|(cp, dst)| {
        for co in 0..g.cout {
            for c in 0..(g.cin - 2 * cp).min(2) {
                dst[co * PAIR + 9 * c..][..9].copy_from_slice(&w.data[w.at(co, 2 * cp + c)..][..9]);
            }
        }
    });
    wp
}

struct Plan<'a> {
    g: Geom,
    /// padded plane width `wo + 2` and floats per padded channel plane
    wq: usize,
    cs: usize,
    /// flat output length `(ho + 1) · wq` rounded up to a multiple of [`NB`]
    lpad: usize,
    /// the weights as given, read in place when the pixels fit one micro-tile (each pair's
    /// weights read once) and `cin` is even; else packed by [`pack`] (read once per tile)
    w: Weights<'a>,
    wp: Option<Vec<f32>>,
}

impl<'a> Plan<'a> {
    fn of(g: &Geom, w: Weights<'a>) -> Self {
        let (ho, wo) = (g.ho(), g.wo());
        let wq = wo + 2;
        let cs = (ho + 2) * wq + NB;
        let lpad = ((ho + 1) * wq).div_ceil(NB) * NB;
        let wp = (lpad > NB || g.cin % 2 == 1).then(|| pack(g, &w));
        Self { g: *g, wq, cs, lpad, w, wp }
    }

    /// Plane `co` of one sample's `dy`, zero-padded: `p[m'][l'] = dy[m' − 1][l' − 1]`.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        let (ho, wo, wq) = (self.g.ho(), self.g.wo(), self.wq);
        dst[..wq + 1].fill(0.0);
        for m in 0..ho {
            let row = &mut dst[(m + 1) * wq + 1..][..wq];
            row[..wo].copy_from_slice(&src[m * wo..(m + 1) * wo]);
            row[wo..].fill(0.0); // this row's right pad and the next row's left pad
        }
        dst[(ho + 1) * wq + 1..].fill(0.0);
    }

    /// Channel pairs `cps`, flat pixels `j0..j0 + jn` of one sample (`planes`: its padded `dy`)
    /// into `dxb` (`[cin, h, w]`), through `tmp` (`[8, jn]`).
    fn task(&self, planes: &[f32], cps: std::ops::Range<usize>, j0: usize, jn: usize, tmp: &mut [f32], dxb: Out) {
        let g = &self.g;
        let (h, w, wq) = (g.h, g.w, self.wq);
        debug_assert!(jn % NB == 0 && tmp.len() >= 8 * jn && planes.len() >= g.cout * self.cs);
        for cp in cps {
            // the pair's first kernel for co = 0, the stride to the next co, the offset to the second
            let (wk, wco, wci) = match &self.wp {
                Some(wp) => (&wp[cp * g.cout * PAIR..(cp + 1) * g.cout * PAIR], PAIR, 9),
                None => (&self.w.data[self.w.at(0, 2 * cp)..], self.w.co_stride, self.w.ci_stride),
            };
            for p in (0..jn).step_by(NB) {
                // SAFETY: reads `planes[co * cs + j0 + p + off ..][..48]` with `off ≤ wq + 1` and
                // `j0 + p + 48 ≤ lpad`: inside each padded plane (see `Plan::of`), and
                // `wk[co · wco + c · wci ..][..9]`: inside `wp`, or inside `w.data` (`cin` even,
                // `Weights::fits` checked); writes rows
                // 0..8 of `tmp`, columns `p..p + 48`
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    micro(planes.as_ptr().add(j0 + p), self.cs, wq, g.cout, wk.as_ptr(), wco, wci, tmp.as_mut_ptr().add(p), jn)
                };
            }
            for c in 0..2 {
                let ci = 2 * cp + c;
                if ci >= g.cin {
                    break;
                }
                // rows 2m + q − ph of dx, each written left to right from phases (q, 0), (q, 1)
                for q in 0..2 {
                    let (s0, s1) = (&tmp[(q * 4 + c) * jn..][..jn], &tmp[(q * 4 + 2 + c) * jn..][..jn]);
                    let mut m = j0 / wq;
                    while m * wq < j0 + jn {
                        let ih = (2 * m + q) as isize - g.ph as isize;
                        if ih >= 0 && (ih as usize) < h {
                            let (l0, l1) = ((j0.max(m * wq)) - m * wq, (j0 + jn).min(m * wq + wq) - m * wq);
                            // SAFETY: row ih of channel ci, pixels 2l − pw and 2l + 1 − pw for l in
                            // l0..l1 (checked against w); tasks write disjoint pixels (each from
                            // one (m, l, q, r))
                            let row = unsafe { dxb.0.add((ci * h + ih as usize) * w) };
                            for l in l0..l1 {
                                let i = m * wq + l - j0;
                                for (r, src) in [s0, s1].into_iter().enumerate() {
                                    let iw = (2 * l + r) as isize - g.pw as isize;
                                    if iw >= 0 && (iw as usize) < w {
                                        unsafe { *row.add(iw as usize) = src[i] };
                                    }
                                }
                            }
                        }
                        m += 1;
                    }
                }
            }
        }
    }
}

/// The input gradient of the 3×3 stride-2 conv `g` (a transposed conv of `dy`) with weights
/// `w` (`[cout, cin, 3, 3]`, or strided: [`Weights`]); call only when [`applies`] holds.
pub fn xgrad(g: &Geom, dy: &[f32], w: Weights) -> Vec<f32> {
    assert!(applies(g), "upconv::xgrad on {g:?}");
    assert_eq!(dy.len(), g.n * g.out_len(), "dy length");
    assert!(w.fits(g), "weights {:?} do not hold {g:?}", (w.data.len(), w.offset, w.co_stride, w.ci_stride));
    if g.n == 0 || g.in_len() == 0 || g.out_len() == 0 {
        return vec![0.0f32; g.n * g.in_len()];
    }
    // every pixel of dx is written: pixel (ih, iw) is phase ((ih + ph) mod 2, (iw + pw) mod 2)'s
    // output (m, l) = ((ih + ph) / 2, (iw + pw) / 2), m ≤ ho, l ≤ wo, inside the flat range
    let mut dx = out_vec(g.n * g.in_len());
    let plan = Plan::of(g, w);
    let (in_len, out_len, hw) = (g.in_len(), g.out_len(), g.ho() * g.wo());
    let cps = g.cin.div_ceil(2);
    let t = rayon::current_num_threads().max(1);
    let blocks = plan.lpad / NB;
    if g.n >= t && t > 1 {
        dx.par_chunks_mut(in_len).enumerate().with_max_len(1).for_each(|(b, dxb)| {
            let dyb = &dy[b * out_len..(b + 1) * out_len];
            let sb = NB * MAX_BLOCKS;
            scratch(g.cout * plan.cs, 8 * sb, |planes, tmp| {
                for co in 0..g.cout {
                    plan.fill(&dyb[co * hw..(co + 1) * hw], &mut planes[co * plan.cs..(co + 1) * plan.cs]);
                }
                let out = Out(dxb.as_mut_ptr());
                let mut j0 = 0;
                while j0 < plan.lpad {
                    let jn = sb.min(plan.lpad - j0);
                    plan.task(planes, 0..cps, j0, jn, tmp, out);
                    j0 += jn;
                }
            });
        });
        return dx;
    }
    // below one sample per thread: superblocks × chunks of channel pairs as tasks, ~4 per thread
    let per = blocks.div_ceil(4 * t).clamp(1, MAX_BLOCKS);
    let nsb = blocks.div_ceil(per);
    let nch = (4 * t).div_ceil(nsb).clamp(1, cps);
    let chunk = cps.div_ceil(nch);
    let tasks: Vec<(usize, usize)> = (0..nsb).flat_map(|s| (0..cps).step_by(chunk).map(move |c| (s, c))).collect();
    let mut planes = vec![0.0f32; g.cout * plan.cs];
    for b in 0..g.n {
        let dyb = &dy[b * out_len..(b + 1) * out_len];
        planes.par_chunks_mut(plan.cs).enumerate().for_each(|(co, dst)| plan.fill(&dyb[co * hw..(co + 1) * hw], dst));
        let out = Out(dx[b * in_len..].as_mut_ptr());
        let (planes, plan) = (&planes, &plan);
        tasks.par_iter().with_max_len(1).for_each(|&(s, c)| {
            let out = out;
            let j0 = s * per * NB;
            let jn = (per * NB).min(plan.lpad - j0);
            scratch(8 * jn, 0, |tmp, _| plan.task(planes, c..(c + chunk).min(cps), j0, jn, tmp, out));
        });
    }
    dx
}

/// `out[(phase · 2 + c) · ld ..][..48] = Σ_co Σ_taps wk[co · ws + 9c + tap] · x[co · cs + off ..][..48]`
/// for the 4 phases and 2 channels of a pair (taps and offsets as [`PAIR`] says), `co` in order. Written in
/// assembly as [`crate::direct`]'s kernels are (intrinsics spilled accumulators). Registers:
/// zmm0-23 the accumulators (phase · 6 + channel · 3 + vector), zmm24-26 the input, zmm27-30 the
/// broadcast weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(x: *const f32, cs: usize, wq: usize, k: usize, wk: *const f32, wco: usize, wci: usize, out: *mut f32, ld: usize) {
    use std::arch::x86_64::*;
    let mut a = [_mm512_setzero_ps(); 24];
    if k > 0 {
        std::arch::asm!(
            "2:",
            "vmovups zmm24, zmmword ptr [{x} + {wqb} + 4]",
            "vmovups zmm25, zmmword ptr [{x} + {wqb} + 4 + 64]",
            "vmovups zmm26, zmmword ptr [{x} + {wqb} + 4 + 128]",
            "vbroadcastss zmm27, dword ptr [{w} + 0]",
            "vfmadd231ps zmm0, zmm27, zmm24",
            "vfmadd231ps zmm1, zmm27, zmm25",
            "vfmadd231ps zmm2, zmm27, zmm26",
            "vbroadcastss zmm28, dword ptr [{w} + {wci} + 0]",
            "vfmadd231ps zmm3, zmm28, zmm24",
            "vfmadd231ps zmm4, zmm28, zmm25",
            "vfmadd231ps zmm5, zmm28, zmm26",
            "vbroadcastss zmm29, dword ptr [{w} + 4]",
            "vfmadd231ps zmm6, zmm29, zmm24",
            "vfmadd231ps zmm7, zmm29, zmm25",
            "vfmadd231ps zmm8, zmm29, zmm26",
            "vbroadcastss zmm30, dword ptr [{w} + {wci} + 4]",
            "vfmadd231ps zmm9, zmm30, zmm24",
            "vfmadd231ps zmm10, zmm30, zmm25",
            "vfmadd231ps zmm11, zmm30, zmm26",
            "vbroadcastss zmm27, dword ptr [{w} + 12]",
            "vfmadd231ps zmm12, zmm27, zmm24",
            "vfmadd231ps zmm13, zmm27, zmm25",
            "vfmadd231ps zmm14, zmm27, zmm26",
            "vbroadcastss zmm28, dword ptr [{w} + {wci} + 12]",
            "vfmadd231ps zmm15, zmm28, zmm24",
            "vfmadd231ps zmm16, zmm28, zmm25",
            "vfmadd231ps zmm17, zmm28, zmm26",
            "vbroadcastss zmm29, dword ptr [{w} + 16]",
            "vfmadd231ps zmm18, zmm29, zmm24",
            "vfmadd231ps zmm19, zmm29, zmm25",
            "vfmadd231ps zmm20, zmm29, zmm26",
            "vbroadcastss zmm30, dword ptr [{w} + {wci} + 16]",
            "vfmadd231ps zmm21, zmm30, zmm24",
            "vfmadd231ps zmm22, zmm30, zmm25",
            "vfmadd231ps zmm23, zmm30, zmm26",
            "vmovups zmm24, zmmword ptr [{x} + 4]",
            "vmovups zmm25, zmmword ptr [{x} + 4 + 64]",
            "vmovups zmm26, zmmword ptr [{x} + 4 + 128]",
            "vbroadcastss zmm27, dword ptr [{w} + 24]",
            "vfmadd231ps zmm0, zmm27, zmm24",
            "vfmadd231ps zmm1, zmm27, zmm25",
            "vfmadd231ps zmm2, zmm27, zmm26",
            "vbroadcastss zmm28, dword ptr [{w} + {wci} + 24]",
            "vfmadd231ps zmm3, zmm28, zmm24",
            "vfmadd231ps zmm4, zmm28, zmm25",
            "vfmadd231ps zmm5, zmm28, zmm26",
            "vbroadcastss zmm29, dword ptr [{w} + 28]",
            "vfmadd231ps zmm6, zmm29, zmm24",
            "vfmadd231ps zmm7, zmm29, zmm25",
            "vfmadd231ps zmm8, zmm29, zmm26",
            "vbroadcastss zmm30, dword ptr [{w} + {wci} + 28]",
            "vfmadd231ps zmm9, zmm30, zmm24",
            "vfmadd231ps zmm10, zmm30, zmm25",
            "vfmadd231ps zmm11, zmm30, zmm26",
            "vmovups zmm24, zmmword ptr [{x} + {wqb}]",
            "vmovups zmm25, zmmword ptr [{x} + {wqb} + 64]",
            "vmovups zmm26, zmmword ptr [{x} + {wqb} + 128]",
            "vbroadcastss zmm27, dword ptr [{w} + 8]",
            "vfmadd231ps zmm0, zmm27, zmm24",
            "vfmadd231ps zmm1, zmm27, zmm25",
            "vfmadd231ps zmm2, zmm27, zmm26",
            "vbroadcastss zmm28, dword ptr [{w} + {wci} + 8]",
            "vfmadd231ps zmm3, zmm28, zmm24",
            "vfmadd231ps zmm4, zmm28, zmm25",
            "vfmadd231ps zmm5, zmm28, zmm26",
            "vbroadcastss zmm29, dword ptr [{w} + 20]",
            "vfmadd231ps zmm12, zmm29, zmm24",
            "vfmadd231ps zmm13, zmm29, zmm25",
            "vfmadd231ps zmm14, zmm29, zmm26",
            "vbroadcastss zmm30, dword ptr [{w} + {wci} + 20]",
            "vfmadd231ps zmm15, zmm30, zmm24",
            "vfmadd231ps zmm16, zmm30, zmm25",
            "vfmadd231ps zmm17, zmm30, zmm26",
            "vmovups zmm24, zmmword ptr [{x}]",
            "vmovups zmm25, zmmword ptr [{x} + 64]",
            "vmovups zmm26, zmmword ptr [{x} + 128]",
            "vbroadcastss zmm27, dword ptr [{w} + 32]",
            "vfmadd231ps zmm0, zmm27, zmm24",
            "vfmadd231ps zmm1, zmm27, zmm25",
            "vfmadd231ps zmm2, zmm27, zmm26",
            "vbroadcastss zmm28, dword ptr [{w} + {wci} + 32]",
            "vfmadd231ps zmm3, zmm28, zmm24",
            "vfmadd231ps zmm4, zmm28, zmm25",
            "vfmadd231ps zmm5, zmm28, zmm26",
            "add {x}, {csb}",
            "add {w}, {wco}",
            "dec {k}",
            "jnz 2b",
            x = inout(reg) x => _,
            w = inout(reg) wk => _,
            k = inout(reg) k => _,
            csb = in(reg) cs * 4,
            wqb = in(reg) wq * 4,
            wco = in(reg) wco * 4,
            wci = in(reg) wci * 4,
            inout("zmm0") a[0], inout("zmm1") a[1], inout("zmm2") a[2], inout("zmm3") a[3], inout("zmm4") a[4], inout("zmm5") a[5], inout("zmm6") a[6], inout("zmm7") a[7], inout("zmm8") a[8], inout("zmm9") a[9], inout("zmm10") a[10], inout("zmm11") a[11], inout("zmm12") a[12], inout("zmm13") a[13], inout("zmm14") a[14], inout("zmm15") a[15], inout("zmm16") a[16], inout("zmm17") a[17], inout("zmm18") a[18], inout("zmm19") a[19], inout("zmm20") a[20], inout("zmm21") a[21], inout("zmm22") a[22], inout("zmm23") a[23],
            out("zmm24") _, out("zmm25") _, out("zmm26") _,
            out("zmm27") _, out("zmm28") _, out("zmm29") _, out("zmm30") _,
            options(readonly, nostack),
        );
    }
    crate::direct::store8x48(&a, out, ld);
}
