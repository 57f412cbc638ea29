#!/usr/bin/env python3
"""PyTorch reference for limner-bench: the same StyleGAN2 networks, training step and
measurements as bench/limner-bench, timed on the CPU with 2 threads.

This is an independent port written from the architecture notes in
/work/shared/fixtures/stylegan2-ref/README.md and limner's Rust code (crates/limner-gan);
it contains no NVIDIA code. Like limner it uses the *non-fused* modulated convolution
(scale the input by the styles, one plain conv for the whole batch, scale the output by the
demodulation coefficients), `conv_transpose2d` (stride 2) + FIR for the upsampling conv,
and depthwise convolutions for every FIR up/down-sampling.

Before timing, the port loads the res64 fixture weights (state-dict names must match
exactly) and checks its outputs against io_f64.safetensors.

Usage: torch_ref.py [all|check|modconv|gen|train-step|train-step128|parts|parts128|profile|profile128]... [--quick] [--cfg default|fixture|both]
Prints `RESULT torch <name> key=value ...` lines, the same as `limner-bench` with `limner`.
PyTorch is a benchmark-only dependency of limner.
"""

import copy
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)



def _peak_gflops():
    """This machine's fp32 peak, GFLOP/s: LIMNER_PEAK_GFLOPS (bench/run.sh measures it once with
    `limner-bench peak --gflops` and gives both sides the same number), else limner-bench's own
    measurement (FMA chains in the widest vector unit detected at run time), else NaN."""
    v = os.environ.get("LIMNER_PEAK_GFLOPS")
    if not v:
        import subprocess
        target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/limner-target"))
        try:
            v = subprocess.run([os.path.join(target, "release", "limner-bench"), "peak", "--gflops"],
                               capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return float("nan")
    return float(v)


PEAK_GFLOPS = _peak_gflops()
RES = 64
BATCH = 32
SQRT2 = math.sqrt(2.0)
SQRT_HALF = math.sqrt(0.5)
FIXTURE = os.environ.get("LIMNER_FIXTURE_DIR", "/work/shared/fixtures/stylegan2-ref/res64")


# ------------------------------------------------------------------------ configs

def gcfg(name):
    if name == "default":  # GeneratorConfig::limner_default(64)
        return dict(z_dim=128, w_dim=128, map_layers=4, res=RES, channel_base=1024, channel_max=128)
    if name == "fixture":  # res64/config.json
        return dict(z_dim=64, w_dim=64, map_layers=8, res=RES, channel_base=1024, channel_max=128)
    raise ValueError(name)


def dcfg(_name):
    # the fixture D equals limner's default D
    return dict(res=RES, channel_base=1024, channel_max=128, mbstd_group=4, mbstd_channels=1)


def channels(c, r):
    return min(c["channel_base"] // r, c["channel_max"])


def block_resolutions(res):
    r, out = 4, []
    while r <= res:
        out.append(r)
        r *= 2
    return out


def num_ws(res):
    return 2 * int(round(math.log2(res))) - 2


# ------------------------------------------------------------------------ layers

def fir_2d():
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(k, k) / 64.0  # [4, 4], sum 1


def fir_depthwise(f, c, gain):
    return (f * gain).reshape(1, 1, 4, 4).expand(c, 1, 4, 4)


def bias_act(x, b, act, gain=1.0):
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        return F.leaky_relu(x, 0.2) * (SQRT2 * gain)
    return x if gain == 1.0 else x * gain


def upsample2d(x, f):
    """zero-insert, pad 2 before / 1 after, FIR*4 == depthwise transposed conv (stride 2, pad 1)"""
    c = x.shape[1]
    return F.conv_transpose2d(x, fir_depthwise(f, c, 4.0), stride=2, padding=1, groups=c)


def downsample2d(x, f):
    """pad 1, FIR, keep every second sample from 0"""
    c = x.shape[1]
    return F.conv2d(x, fir_depthwise(f, c, 1.0), stride=2, padding=1, groups=c)


def fir_filter(x, f, pad, gain):
    c = x.shape[1]
    return F.conv2d(x, fir_depthwise(f, c, gain), padding=pad, groups=c)


class FullyConnectedLayer(nn.Module):
    def __init__(self, fin, fout, act="linear", lr_mul=1.0, bias_init=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin) / lr_mul)
        self.bias = nn.Parameter(torch.full([fout], float(bias_init)))
        self.act, self.wg, self.bg = act, lr_mul / math.sqrt(fin), lr_mul

    def forward(self, x):
        return bias_act(x @ (self.weight * self.wg).t(), self.bias * self.bg, self.act)


class Conv2dLayer(nn.Module):
    """Discriminator conv with equalised lr; `down` = FIR + stride 2 (3x3) or FIR down + 1x1."""

    def __init__(self, cin, cout, k, bias, act, down, act_gain):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("resample_filter", fir_2d())
        self.k, self.act, self.down, self.act_gain = k, act, down, act_gain
        self.wg = 1.0 / math.sqrt(cin * k * k)

    def forward(self, x):
        w = self.weight * self.wg
        if not self.down:
            y = F.conv2d(x, w, padding=self.k // 2)
        elif self.k == 1:
            y = F.conv2d(downsample2d(x, self.resample_filter), w)
        else:
            y = F.conv2d(fir_filter(x, self.resample_filter, 2, 1.0), w, stride=2)
        return bias_act(y, self.bias, self.act, self.act_gain)


class SynthesisLayer(nn.Module):
    """Modulated/demodulated 3x3 conv (non-fused), noise, bias, lrelu*sqrt(2)."""

    def __init__(self, cin, cout, w_dim, res, up):
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("resample_filter", fir_2d())
        self.register_buffer("noise_const", torch.randn(res, res))
        self.up, self.res = up, res

    def forward(self, x, w, noise_mode="const"):
        n, cin = x.shape[:2]
        cout = self.weight.shape[0]
        styles = self.affine(w)  # [N, in]
        w_sq = self.weight.square().sum(dim=[2, 3])  # [out, in]
        dcoefs = (styles.square() @ w_sq.t() + 1e-8).rsqrt()  # [N, out]
        x = x * styles.reshape(n, cin, 1, 1)
        if self.up:
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1), stride=2)  # [N, out, 2H+1, 2W+1]
            x = fir_filter(x, self.resample_filter, 1, 4.0)  # [N, out, 2H, 2W]
        else:
            x = F.conv2d(x, self.weight, padding=1)
        x = x * dcoefs.reshape(n, cout, 1, 1)
        if noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode == "random":
            x = x + torch.randn(n, 1, self.res, self.res) * self.noise_strength
        return bias_act(x, self.bias, "lrelu")


class ToRGBLayer(nn.Module):
    def __init__(self, cin, cout, w_dim):
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain = 1.0 / math.sqrt(cin)

    def forward(self, x, w):
        n, cin = x.shape[:2]
        styles = self.affine(w) * self.gain
        y = F.conv2d(x * styles.reshape(n, cin, 1, 1), self.weight)
        return bias_act(y, self.bias, "linear")


class SynthesisBlock(nn.Module):
    def __init__(self, cin, cout, w_dim, res):
        super().__init__()
        if res == 4:
            self.const = nn.Parameter(torch.randn(cout, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, res, up=True)
        self.register_buffer("resample_filter", fir_2d())
        self.conv1 = SynthesisLayer(cout, cout, w_dim, res, up=False)
        self.torgb = ToRGBLayer(cout, 3, w_dim)
        self.res = res
        self.num_conv = 1 if res == 4 else 2


class SynthesisNetwork(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resolutions = block_resolutions(c["res"])
        for r in self.resolutions:
            cin = channels(c, r // 2) if r > 4 else channels(c, r)
            setattr(self, f"b{r}", SynthesisBlock(cin, channels(c, r), c["w_dim"], r))
        self.num_ws = num_ws(c["res"])

    def forward(self, ws, noise_mode="const"):
        n = ws.shape[0]
        x = img = None
        k = 0
        for r in self.resolutions:
            b = getattr(self, f"b{r}")
            j = k
            if r == 4:
                x = b.const.unsqueeze(0).repeat(n, 1, 1, 1)
            else:
                x = b.conv0(x, ws[:, j], noise_mode)
                j += 1
            x = b.conv1(x, ws[:, j], noise_mode)
            j += 1
            y = b.torgb(x, ws[:, j])
            img = y if img is None else upsample2d(img, b.resample_filter) + y
            k += b.num_conv
        return img


class MappingNetwork(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n = c["map_layers"]
        for i in range(self.n):
            fin = c["z_dim"] if i == 0 else c["w_dim"]
            setattr(self, f"fc{i}", FullyConnectedLayer(fin, c["w_dim"], "lrelu", lr_mul=0.01))
        self.register_buffer("w_avg", torch.zeros(c["w_dim"]))
        self.num_ws = num_ws(c["res"])

    def forward_w(self, z):
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.n):
            x = getattr(self, f"fc{i}")(x)
        return x

    def broadcast_truncate(self, w, psi=1.0):
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return ws if psi == 1.0 else self.w_avg.lerp(ws, psi)

    def forward(self, z, psi=1.0):
        return self.broadcast_truncate(self.forward_w(z), psi)


class Generator(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cfg = c
        self.synthesis = SynthesisNetwork(c)
        self.mapping = MappingNetwork(c)

    def forward(self, z, psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z, psi), noise_mode)


class DiscriminatorBlock(nn.Module):
    def __init__(self, tmp, out, res, first):
        super().__init__()
        self.register_buffer("resample_filter", fir_2d())
        self.fromrgb = Conv2dLayer(3, tmp, 1, True, "lrelu", False, 1.0) if first else None
        self.conv0 = Conv2dLayer(tmp, tmp, 3, True, "lrelu", False, 1.0)
        self.conv1 = Conv2dLayer(tmp, out, 3, True, "lrelu", True, SQRT_HALF)
        self.skip = Conv2dLayer(tmp, out, 1, False, "linear", True, SQRT_HALF)

    def forward(self, x, img):
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return y + x


def minibatch_std(x, group, nch=1):
    n, c, h, w = x.shape
    g = min(group, n)
    m = n // g
    y = x.reshape(g, m, nch, (c // nch) * h * w)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [M, F, chw]
    y = y.mean(dim=2).reshape(m, nch, 1, 1).repeat(g, 1, h, w)  # sample k -> group k % M
    return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, c, mbstd_group, mbstd_channels):
        super().__init__()
        self.conv = Conv2dLayer(c + mbstd_channels, c, 3, True, "lrelu", False, 1.0)
        self.fc = FullyConnectedLayer(c * 16, c, "lrelu")
        self.out = FullyConnectedLayer(c, 1)
        self.group, self.nch = mbstd_group, mbstd_channels

    def forward(self, x, group=None):
        g = group if group is not None else min(self.group, x.shape[0])
        x = self.conv(minibatch_std(x, g, self.nch))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resolutions = []
        r = c["res"]
        while r > 4:
            setattr(self, f"b{r}", DiscriminatorBlock(channels(c, r), channels(c, r // 2), r, r == c["res"]))
            self.resolutions.append(r)
            r //= 2
        self.b4 = DiscriminatorEpilogue(channels(c, 4), c["mbstd_group"], c["mbstd_channels"])

    def features(self, img):
        x = None
        for r in self.resolutions:
            x = getattr(self, f"b{r}")(x, img)
        return x

    def forward(self, img):
        return self.b4(self.features(img))

    def forward_parts(self, parts):
        """Several equal batches in one pass, each keeping its own minibatch-std groups."""
        k = len(parts)
        n, c, h, w = parts[0].shape
        g = min(self.b4.group, n)
        x = torch.cat([p.reshape(g, n // g, c, h, w) for p in parts], dim=1).reshape(k * n, c, h, w)
        logits = self.b4(self.features(x), g).reshape(g, k, n // g)
        return [logits[:, i].reshape(n, 1) for i in range(k)]


# ------------------------------------------------------------------------ DiffAugment

def diff_augment(x, rng, color=True, translation=True, cutout=True):
    n, c, h, w = x.shape
    if color:
        x = x + torch.from_numpy(rng.uniform(-0.5, 0.5, n).astype(np.float32)).reshape(n, 1, 1, 1)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * torch.from_numpy(rng.uniform(0.0, 2.0, n).astype(np.float32)).reshape(n, 1, 1, 1) + mean
        mean = x.reshape(n, -1).mean(dim=1).reshape(n, 1, 1, 1)
        x = (x - mean) * torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)).reshape(n, 1, 1, 1) + mean
    mask = np.ones((n, h, w), np.float32)
    any_mask = False
    if translation:
        sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        ty = rng.integers(-sh, sh + 1, n)[:, None, None]
        tx = rng.integers(-sw, sw + 1, n)[:, None, None]
        yy = np.arange(h)[None, :, None] + ty
        xx = np.arange(w)[None, None, :] + tx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = np.where(inside, yy * w + xx, 0).reshape(n, 1, h * w)
        mask[~inside] = 0.0
        any_mask = any_mask or bool((~inside).any())
        idx = torch.from_numpy(idx).expand(n, c, h * w)
        x = x.reshape(n, c, h * w).gather(2, idx).reshape(n, c, h, w)
    if cutout:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        oy = rng.integers(0, h + (1 - ch % 2), n)
        ox = rng.integers(0, w + (1 - cw % 2), n)
        for i in range(n):
            mask[i, max(oy[i] - ch // 2, 0):min(oy[i] + ch // 2, h), max(ox[i] - cw // 2, 0):min(ox[i] + cw // 2, w)] = 0.0
        any_mask = True
    if any_mask:
        x = x * torch.from_numpy(mask).reshape(n, 1, h, w)
    return x


# ------------------------------------------------------------------------ training step

class Synthetic:
    """A fixed set of random images in [-1, 1]."""

    def __init__(self, n, res, seed=0):
        self.n, self.res = n, res
        self.data = torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, 3, res, res)).astype(np.float32))

    def batch(self, idx, flips):
        x = self.data[torch.from_numpy(idx)]
        f = torch.from_numpy(flips)
        return torch.where(f.reshape(-1, 1, 1, 1), x.flip(3), x)


class Trainer:
    """The same step as limner's `Trainer::step`."""

    def __init__(self, gc, dc, batch=BATCH, r1_gamma=0.05, r1_interval=16, lr=0.0025, style_mixing=0.9,
                 ema_kimg=10.0, xflip=True, seed=0):
        torch.manual_seed(seed)
        self.G = Generator(gc)
        self.D = Discriminator(dc)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.optG = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.optD = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.batch, self.r1_gamma, self.r1_interval = batch, r1_gamma, r1_interval
        self.style_mixing, self.ema_kimg, self.xflip = style_mixing, ema_kimg, xflip
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.order, self.pos = None, 0

    def next_indices(self, ln, n):
        out = []
        while len(out) < n:
            if self.order is None or self.pos >= ln:
                self.order, self.pos = self.rng.permutation(ln), 0
            out.append(self.order[self.pos])
            self.pos += 1
        return np.array(out)

    def mapped_ws(self, n):
        m = self.G.mapping
        z = torch.randn(n, self.G.cfg["z_dim"])
        w = m.forward_w(z)
        ws = m.broadcast_truncate(w)
        mix = self.rng.random() < self.style_mixing
        cutoff = int(self.rng.integers(1, m.num_ws))
        z2 = torch.randn(n, self.G.cfg["z_dim"])
        if not mix:
            return ws, w
        ws2 = m(z2)
        return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1), w

    def train_step(self, data):
        n, res = self.batch, self.G.cfg["res"]
        stats = {}
        # ---- D step: softplus(D(G(z))) + softplus(-D(x)) ----
        idx = self.next_indices(data.n, n)
        flips = self.rng.random(n) < 0.5 if self.xflip else np.zeros(n, bool)
        real = data.batch(idx, flips)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad():
            ws, _ = self.mapped_ws(n)
            fake = self.G.synthesis(ws, "random")
        fake_aug = diff_augment(fake, self.rng)
        real_aug = diff_augment(real, self.rng)
        r1_due = self.r1_gamma > 0 and self.step % self.r1_interval == 0
        eps = 1e-2
        parts = [fake_aug, real_aug]
        if r1_due:
            v = torch.randn(n, 3, res, res)
            parts += [real, real + v * eps]
        logits = self.D.forward_parts(parts)
        fl, rl = logits[0], logits[1]
        loss_d = F.softplus(fl).mean() + F.softplus(-rl).mean()
        stats["loss_d"], stats["d_fake"], stats["d_real"] = loss_d.item(), fl.mean().item(), rl.mean().item()
        total = loss_d
        if r1_due:
            pen = ((logits[3] - logits[2]) / eps).square().mean()
            stats["r1"] = pen.item()
            total = total + pen * (self.r1_gamma / 2.0 * self.r1_interval)
        self.optD.zero_grad(set_to_none=True)
        total.backward()
        self.optD.step()
        # ---- G step: softplus(-D(G(z))) ----
        self.D.requires_grad_(False)
        self.G.requires_grad_(True)
        ws, w = self.mapped_ws(n)
        fake = self.G.synthesis(ws, "random")
        loss_g = F.softplus(-self.D(diff_augment(fake, self.rng))).mean()
        stats["loss_g"] = loss_g.item()
        self.optG.zero_grad(set_to_none=True)
        loss_g.backward()
        self.optG.step()
        with torch.no_grad():
            m = self.G.mapping
            m.w_avg.copy_(w.detach().mean(0).lerp(m.w_avg, 0.995))
            # ---- EMA ----
            beta = 0.5 ** (n / max(self.ema_kimg * 1000.0, 1e-8))
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)
        self.step += 1
        return stats


# ------------------------------------------------------------------------ FLOPs (same formulas as limner-bench)

def g_macs(c):
    z, w = c["z_dim"], c["w_dim"]
    m = z * w + (c["map_layers"] - 1) * w * w
    for r in block_resolutions(c["res"]):
        co, rr = channels(c, r), r * r
        if r == 4:
            m += w * co + co * co + co * co * 9 * rr
        else:
            ci, hin = channels(c, r // 2), (r // 2) ** 2
            m += w * ci + ci * co + ci * co * 9 * hin + co * 16 * rr
            m += w * co + co * co + co * co * 9 * rr
            m += 3 * 16 * hin
        m += w * co + 3 * co * rr
    return float(m)


def d_macs(c):
    m, r = 0, c["res"]
    while r > 4:
        t, o = channels(c, r), channels(c, r // 2)
        rr, hh = r * r, (r // 2) ** 2
        if r == c["res"]:
            m += 3 * t * rr
        m += t * 16 * hh + t * o * hh
        m += t * t * 9 * rr
        m += t * 16 * (r + 1) ** 2 + t * o * 9 * hh
        r //= 2
    ch = channels(c, 4)
    m += (ch + 1) * ch * 9 * 16 + 16 * ch * ch + ch
    return float(m)


def train_gflop(gc, dc, n, r1_batches):
    gf, df = g_macs(gc) * n, d_macs(dc)
    return 2.0 * (gf + 3.0 * gf + 3.0 * df * (2.0 * n + r1_batches * n + n)) / 1e9


def modconv_gflop(n, c, r, w):
    return 2.0 * n * (w * c + c * c + c * c * 9 * r * r) / 1e9


def flop_check():
    """Cross-checks the analytic count with torch's FlopCounterMode (conv + matmul)."""
    from torch.utils.flop_counter import FlopCounterMode
    for name in ["default", "fixture"]:
        gc, dc = gcfg(name), dcfg(name)
        G, D = Generator(gc), Discriminator(dc)
        with torch.no_grad():
            with FlopCounterMode(display=False) as fc:
                G(torch.randn(8, gc["z_dim"]))
            gt = fc.get_total_flops() / 8
            with FlopCounterMode(display=False) as fc:
                D(torch.randn(8, 3, RES, RES))
            dt = fc.get_total_flops() / 8
        print(f"# FLOPCHECK cfg={name} G fwd/img analytic={2*g_macs(gc)/1e9:.5f} FlopCounterMode={gt/1e9:.5f} GFLOP; "
              f"D fwd/img analytic={2*d_macs(dc)/1e9:.5f} FlopCounterMode={dt/1e9:.5f} GFLOP", flush=True)


# ------------------------------------------------------------------------ fixture check

def fixture_check():
    from safetensors.torch import load_file
    gc, dc = gcfg("fixture"), dcfg("fixture")
    G, D = Generator(gc).eval(), Discriminator(dc).eval()
    G.load_state_dict(load_file(f"{FIXTURE}/G.safetensors"), strict=True)
    D.load_state_dict(load_file(f"{FIXTURE}/D.safetensors"), strict=True)
    io = load_file(f"{FIXTURE}/io.safetensors")
    ref = load_file(f"{FIXTURE}/io_f64.safetensors")
    with torch.no_grad():
        z = io["z"]
        out = {
            "w_psi1": G.mapping(z, 1.0),
            "w_psi07": G.mapping(z, 0.7),
            "img_psi1": G.synthesis(io["w_psi1"], "const"),
            "img_psi07": G.synthesis(io["w_psi07"], "const"),
            "img_mix": G.synthesis(io["ws_mix"], "const"),
            "img_psi1_nonoise": G.synthesis(io["w_psi1"], "none"),
            "img_G_end_to_end": G(z, 0.7, "const"),
            "d_logits": D(io["img_psi1"]),
            "d_logits_real": D(io["x_real"]),
            "d_logits_real8": D(io["x_real8"]),
        }
    ok = True
    worst = []
    for k, v in out.items():
        err = (v.double() - ref[k].double()).abs().max().item()
        tol = 1e-4 if k.startswith("img") else 2e-5
        ok &= err <= tol
        worst.append(f"{k}={err:.2e}")
    print(f"# FIXTURE CHECK res64 (state dicts loaded strict, vs io_f64; tol images 1e-4, ws/logits 2e-5): "
          f"{'PASS' if ok else 'FAIL'} max|diff| " + " ".join(worst), flush=True)
    if not ok:
        sys.exit("torch_ref.py: the port does not reproduce the fixture; refusing to time it")


# ------------------------------------------------------------------------ timing

def time_it(warm, iters, f):
    for _ in range(warm):
        f()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return ts


def report(name, tags, ts, gflop):
    m = statistics.median(ts)
    gflops = gflop / (m / 1e3)
    print(f"RESULT torch {name} {tags} n={len(ts)} median_ms={m:.2f} min_ms={min(ts):.2f} gflop={gflop:.4f} "
          f"gflops={gflops:.2f} pct_peak={100 * gflops / PEAK_GFLOPS:.2f}", flush=True)


def bench_modconv(quick):
    n, c, r, wd = BATCH, 128, 32, 128
    warm, iters = (1, 3) if quick else (2, 7)
    layer = SynthesisLayer(c, c, wd, r, up=False)
    gf = modconv_gflop(n, c, r, wd)
    tags = f"cin={c} cout={c} res={r} batch={n}"
    x, w = torch.randn(n, c, r, r), torch.randn(n, wd)

    def fwd():
        with torch.no_grad():
            layer(x, w, "const")
    report("modconv_fwd", tags, time_it(warm, iters, fwd), gf)
    xa = x.clone().requires_grad_(True)
    g = torch.randn(n, c, r, r)

    def fwdbwd():
        layer.zero_grad(set_to_none=True)
        xa.grad = None
        (layer(xa, w, "const") * g).sum().backward()
    report("modconv_fwd_bwd", tags, time_it(warm, iters, fwdbwd), 3 * gf)


def bench_gen(quick, cfgs):
    images = 64
    warm, iters = (1, 3) if quick else (1, 5)
    # issue 7: "generation of 64 images at 64px and at 128px" (the same config, one more block)
    for cfg in cfgs:
        for res in (RES, 2 * RES):
            gc = dict(gcfg(cfg), res=res)
            G = Generator(gc).eval()
            gf = 2.0 * g_macs(gc) * images / 1e9
            for b in [1, 8]:
                zs = [torch.randn(b, gc["z_dim"]) for _ in range(images // b)]

                def run():
                    with torch.no_grad():
                        for z in zs:
                            G(z, 1.0, "const")
                report("gen", f"cfg={cfg} res={res} batch={b} images={images}", time_it(warm, iters, run), gf)


def bench_train(quick, cfgs, res=RES):
    warm, iters = (1, 3) if quick else (2, 6)
    data = Synthetic(256, res)
    for cfg in cfgs:
        gc, dc = dict(gcfg(cfg), res=res), dict(dcfg(cfg), res=res)
        tags = f"cfg={cfg} res={res} batch={BATCH}"
        med = []
        for r1 in [False, True]:
            t = Trainer(gc, dc, r1_gamma=0.05 if r1 else 0.0)
            k = [0]

            cpu = []

            def step():
                if r1:  # make this step one of the lazy-R1 steps
                    t.step = 16 * k[0]
                    k[0] += 1
                c0 = time.process_time()
                t.train_step(data)
                cpu.append(1e3 * (time.process_time() - c0))
            ts = time_it(warm, iters, step)
            name = "train_step_r1" if r1 else "train_step_nor1"
            gf = train_gflop(gc, dc, BATCH, 2.0 if r1 else 0.0)
            report(name, tags, ts, gf)
            if res != RES:  # process CPU time per step, as limner-bench prints it
                report(f"{name}_cpu", tags, cpu[warm:], gf)
            med.append(statistics.median(ts))
        am = (15 * med[0] + med[1]) / 16
        gf = train_gflop(gc, dc, BATCH, 2.0 / 16)
        gflops = gf / (am / 1e3)
        print(f"RESULT torch train_step {tags} n=derived median_ms={am:.2f} min_ms={am:.2f} gflop={gf:.4f} "
              f"gflops={gflops:.2f} pct_peak={100 * gflops / PEAK_GFLOPS:.2f}", flush=True)


def bench_parts(quick, res=RES):
    warm, iters = (1, 3) if quick else (1, 5)
    gc, dc = dict(gcfg("default"), res=res), dict(dcfg("default"), res=res)
    G, D = Generator(gc), Discriminator(dc)
    n = BATCH
    gfwd, dfwd = 2 * g_macs(gc) * n / 1e9, 2 * d_macs(dc) * n / 1e9
    tags = f"cfg=default res={res} batch={BATCH}"
    z = torch.randn(n, gc["z_dim"])
    x2 = torch.randn(2 * n, 3, res, res)

    def gfwd_f():
        with torch.no_grad():
            G(z)
    report("part_g_fwd", tags, time_it(warm, iters, gfwd_f), gfwd)

    def dfwd_f():
        with torch.no_grad():
            D(x2)
    report("part_d_fwd_2n", tags, time_it(warm, iters, dfwd_f), 2 * dfwd)

    def dstep():
        G.requires_grad_(False)
        D.requires_grad_(True)
        D.zero_grad(set_to_none=True)
        D(x2).mean().backward()
    report("part_d_fwd_bwd_2n", tags, time_it(warm, iters, dstep), 3 * 2 * dfwd)

    def gstep():
        D.requires_grad_(False)
        G.requires_grad_(True)
        G.zero_grad(set_to_none=True)
        D(G(z)).mean().backward()
    report("part_g_step_fwd_bwd", tags, time_it(warm, iters, gstep), 3 * (gfwd + dfwd))

    rng = np.random.default_rng(0)
    x1, g1 = torch.randn(n, 3, res, res), torch.randn(n, 3, res, res)

    def augment():
        xa = x1.clone().requires_grad_(True)
        (diff_augment(xa, rng) * g1).sum().backward()
    report("part_augment_fwd_bwd", tags, time_it(warm, iters, augment), 0.0)


def profile(quick, res=RES):
    """Top ops by self CPU time over training steps (default config, no R1)."""
    from torch.profiler import ProfilerActivity, profile as tprof
    t = Trainer(dict(gcfg("default"), res=res), dict(dcfg("default"), res=res), r1_gamma=0.0)
    data = Synthetic(256, res)
    t.train_step(data)
    steps = 1 if quick else 2
    with tprof(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            t.train_step(data)
    ka = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ka)
    print(f"# PROFILE torch train_step cfg=default res={res} nor1, {steps} step(s), self CPU time by op (top 15):")
    for e in ka[:15]:
        print(f"# PROFILE {e.key:<40} {e.self_cpu_time_total / 1e3 / steps:9.1f} ms/step "
              f"{100 * e.self_cpu_time_total / total:5.1f}%  calls/step={e.count // steps}")


def main(argv):
    quick = "--quick" in argv
    cfg = "both"
    if "--cfg" in argv:
        cfg = argv[argv.index("--cfg") + 1]
    cfgs = ["default", "fixture"] if cfg == "both" else [cfg]
    what = [a for i, a in enumerate(argv) if not a.startswith("--") and not (i > 0 and argv[i - 1] == "--cfg")]
    if not what or "all" in what:
        what = ["check", "modconv", "gen", "train-step", "parts", "profile"]
    print(f"# torch_ref: torch {torch.__version__}, threads={torch.get_num_threads()}, quick={quick}, "
          f"loadavg at start: {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
    torch.manual_seed(0)
    for w in what:
        if w == "check":
            fixture_check()
            flop_check()
        elif w == "modconv":
            bench_modconv(quick)
        elif w == "gen":
            bench_gen(quick, cfgs)
        elif w == "train-step":
            bench_train(quick, cfgs)
        elif w == "train-step128":  # issue 19: the 128px step, limner_default(128), batch 32
            bench_train(quick, cfgs, 2 * RES)
        elif w == "parts":
            bench_parts(quick)
        elif w == "parts128":
            bench_parts(quick, 2 * RES)
        elif w == "profile":
            profile(quick)
        elif w == "profile128":
            profile(quick, 2 * RES)
        else:
            sys.exit(f"unknown measurement {w}")
    print(f"# torch_ref done, loadavg at end: {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
