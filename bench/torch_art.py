"""PyTorch reference for `limner-bench art-gatys` / `art-dream` (bench/art.sh runs both).

The same algorithms as crates/limner-nets/src/gatys.rs and dream.rs, on torchvision's
InceptionV3 (random weights: only the time matters) truncated at Mixed_6c. torchvision's
modules correspond to Keras' names used by limner:

    Conv2d_1a_3x3 = conv2d_1   Conv2d_2a_3x3 = conv2d_2   Conv2d_2b_3x3 = conv2d_3
    Conv2d_3b_1x1 = conv2d_4   Conv2d_4a_3x3 = conv2d_5
    Mixed_5b/5c/5d = mixed0/1/2   Mixed_6a = mixed3   Mixed_6b/6c = mixed4/5

`shapes` prints every activation shape at the benchmark size (bench/art.sh compares them with
limner's). Every BasicConv2d's batch norm is folded into its conv (as limner's weights are),
so each conv is conv + bias + ReLU on both sides. One difference stays: torchvision's block
average pools count the zero padding (Keras' do not); the cost is the same.

Usage: torch_art.py gatys [SIZE] [STEPS] | dream [SIZE] [REPS] | perceptual [REPS] | fid [IMAGES]
Prints `SHAPE torch ...` and `RESULT torch ...` lines like limner-bench.
"""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from torch.nn.utils.fusion import fuse_conv_bn_eval

torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))

NAMES = {
    "Conv2d_1a_3x3": "conv2d_1", "Conv2d_2a_3x3": "conv2d_2", "Conv2d_2b_3x3": "conv2d_3",
    "Conv2d_3b_1x1": "conv2d_4", "Conv2d_4a_3x3": "conv2d_5", "Mixed_5b": "mixed0", "Mixed_5c": "mixed1",
    "Mixed_5d": "mixed2", "Mixed_6a": "mixed3", "Mixed_6b": "mixed4", "Mixed_6c": "mixed5",
}
ORDER = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
         "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c"]

STYLE_LAYERS = ["conv2d_2", "conv2d_4", "mixed0", "mixed1", "mixed2"]
CONTENT_LAYER = "mixed3"
EDGE_PAD = 16


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def make_net():
    torch.manual_seed(0)
    m = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True, transform_input=False).eval()
    for mod in m.modules():
        if isinstance(mod, torchvision.models.inception.BasicConv2d):
            mod.conv = fuse_conv_bn_eval(mod.conv, mod.bn)
            mod.bn = torch.nn.Identity()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def forward_taps(net, x, taps):
    """Activations at the Keras-named taps, stopping after the deepest."""
    out, want = {}, set(taps)
    for name in ORDER:
        x = getattr(net, name)(x)
        k = NAMES.get(name)
        if k in want:
            out[k] = x
            want.discard(k)
            if not want:
                break
    return [out[t] for t in taps]


def test_picture(size, phase):
    """The same deterministic image as limner-bench's `test_picture`, [1, 3, H, W]."""
    c = torch.arange(3, dtype=torch.float32).view(3, 1, 1)
    y = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    x = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    s = 0.5 + 0.4 * torch.sin(0.05 * x * (c + 1) + 0.03 * y + phase) * torch.cos(0.02 * y * (2 - c) + phase)
    xi, yi = torch.arange(size).view(1, size), torch.arange(size).view(size, 1)
    tex = torch.where(((xi // 3 + yi // 5) % 2) == 0, 0.05, -0.05)
    return (s + tex).clamp(0, 1).unsqueeze(0)


def gram(f):
    _, c, h, w = f.shape
    f = f.reshape(c, h * w)
    return f @ f.t() / (h * w)


def pad(x):
    return F.pad(x, (EDGE_PAD,) * 4, mode="reflect")


def gatys(size, steps):
    net = make_net()
    content, style = test_picture(size, 0.0), test_picture(size, 2.0)
    with torch.no_grad():
        targets = [gram(f) for f in forward_taps(net, pad(style), STYLE_LAYERS)]
        inv = [1.0 / float((g * g).sum()) for g in targets]
        cfeat = forward_taps(net, pad(content), [CONTENT_LAYER])[0]
        cinv = 1.0 / float((cfeat * cfeat).sum())
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02, betas=(0.9, 0.999), eps=1e-8)
    times, cpus = [], []
    t0 = time.perf_counter()
    for _ in range(steps + 2):
        t, c = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        feats = forward_taps(net, pad(x), STYLE_LAYERS + [CONTENT_LAYER])
        style_l = sum(((gram(f) - g) ** 2).sum() * n for f, g, n in zip(feats[:-1], targets, inv)) / len(targets)
        content_l = ((feats[-1] - cfeat) ** 2).sum() * cinv
        tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).mean()
        loss = 30.0 * style_l + 1.0 * content_l + 10.0 * tv
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        float(loss.detach())
        times.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    wall = time.perf_counter() - t0
    timed = times[2:]
    m = statistics.median(timed)
    total = sum(timed[:200]) / 1e3 if steps >= 200 else m * 200 / 1e3
    print(f"RESULT torch gatys_step size={size} n={len(timed)} median_ms={m:.2f} min_ms={min(timed):.2f} cpu_ms={statistics.median(cpus[2:]):.2f} "
          f"total200_s={total:.1f} extrapolated={'true' if steps < 200 else 'false'} wall_s={wall:.1f} loss={float(loss.detach()):.4f}", flush=True)


def dream_once(net, img, octaves=4, scale=1.4, steps=10, jitter=32, lr=0.006, layer="mixed3", seed=0):
    g = torch.Generator().manual_seed(seed)
    bases = [img]
    for _ in range(octaves - 1):
        h, w = bases[-1].shape[-2:]
        bases.append(F.interpolate(bases[-1], size=(round(h / scale), round(w / scale)), mode="bilinear", antialias=True, align_corners=False))
    detail = torch.zeros_like(bases[-1])
    x = None
    for base in reversed(bases):
        h, w = base.shape[-2:]
        detail = F.interpolate(detail, size=(h, w), mode="bilinear", align_corners=False) if detail.shape[-2:] != (h, w) else detail
        x = (base + detail).clamp(0, 1)
        for _ in range(steps):
            ox, oy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g))
            xr = torch.roll(x, (oy, ox), (2, 3)).requires_grad_(True)
            obj = forward_taps(net, xr, [layer])[0].pow(2).mean()
            obj.backward()
            gr = torch.roll(xr.grad, (-oy, -ox), (2, 3))
            x = (x + lr / gr.abs().mean().clamp_min(1e-12) * gr).clamp(0, 1).detach()
        detail = x - base
    return x


def dream(size, reps):
    net = make_net()
    img = test_picture(size, 1.0)
    dream_once(net, img, octaves=1, steps=1)
    totals, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        dream_once(net, img)
        totals.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    m = statistics.median(totals)
    print(f"RESULT torch dream_total size={size} octaves=4 steps=40 n={reps} median_ms={m:.1f} cpu_ms={statistics.median(cpus):.1f} min_ms={min(totals):.1f} "
          f"per_step_ms={m / 40:.2f}", flush=True)


def rand_images(shape, seed, lo, hi):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def unit_channels(f):
    return f / (f.square().sum(1, keepdim=True) + 1e-10).sqrt()


def perceptual(reps):
    """limner's perceptual distance (crates/limner-nets/src/perceptual.rs): conv2d_3, conv2d_5 and
    mixed0 at 128 px, batch 8, forward of target (no grad) and fake, backward to the fake."""
    net = make_net()
    taps = ["conv2d_3", "conv2d_5", "mixed0"]
    fake, target = rand_images((8, 3, 128, 128), 3, -1, 1), rand_images((8, 3, 128, 128), 4, -1, 1)

    def step():
        f = fake.clone().requires_grad_(True)
        want = forward_taps(net, (f + 1) * 0.5, taps)
        with torch.no_grad():
            have = forward_taps(net, (target + 1) * 0.5, taps)
        d = sum((unit_channels(a) - unit_channels(b)).square().sum(1).mean() for a, b in zip(want, have)) / len(taps)
        d.backward()
        return float(f.grad.abs().sum())

    for _ in range(2):
        step()
    times, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    print(f"RESULT torch perceptual size=128 batch=8 n={reps} median_ms={statistics.median(times):.2f} min_ms={min(times):.2f} "
          f"cpu_ms={statistics.median(cpus):.2f}", flush=True)


def fid(images):
    """FID-like features: mixed5 averaged over space, batch 32, 128 px, forward only."""
    net = make_net()
    x = rand_images((images, 3, 128, 128), 5, 0, 1)

    def run():
        out = []
        with torch.no_grad():
            for i in range(0, images, 32):
                out.append(forward_taps(net, x[i:i + 32], ["mixed5"])[0].mean((2, 3)))
        return torch.cat(out)

    with torch.no_grad():
        forward_taps(net, x[:32], ["mixed5"])
    times, cpus = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    print(f"RESULT torch fid_features size=128 batch=32 images={images} n=3 median_ms={statistics.median(times):.1f} min_ms={min(times):.1f} "
          f"cpu_ms={statistics.median(cpus):.1f}", flush=True)


def shapes(size):
    net = make_net()
    with torch.no_grad():
        acts = forward_taps(net, test_picture(size, 0.0), list(NAMES.values()))
    for name, a in zip(NAMES.values(), acts):
        print(f"SHAPE torch size={size} {name} {list(a.shape)}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "gatys"
    num = lambda i, d: int(sys.argv[i]) if len(sys.argv) > i else d
    print(f"# torch_art {what}: torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"threads={torch.get_num_threads()}, loadavg at start: {loadavg()}", flush=True)
    if what == "gatys":
        shapes(num(2, 256))
        gatys(num(2, 256), num(3, 20))
    elif what == "dream":
        dream(num(2, 256), num(3, 3))
    elif what == "perceptual":
        perceptual(num(2, 10))
    elif what == "fid":
        fid(num(2, 1000))
    else:
        sys.exit(f"unknown measurement {what} (gatys, dream, perceptual, fid)")
    print(f"# torch_art {what} done, loadavg at end: {loadavg()}", flush=True)
