"""Where PyTorch's time goes in InceptionV3 (torchvision, truncated like bench/torch_art.py), per op
kind, for the four workloads limner runs the network in (`limner-bench inception-profile` prints
the same table for limner; bench/inception_profile.sh runs both).

    gatys       288 px (256 + 2 x 16 reflect padding), batch 1, up to mixed3, forward + input gradient
    dream       256 px, batch 1, up to mixed3, forward + input gradient
    perceptual  128 px, batch 8: conv2d_3, conv2d_5, mixed0 of the fake (forward + input gradient)
                and of the target (forward, no gradient)
    fid         128 px, batch 32, up to mixed5, forward only

Usage: torch_inception_profile.py WORKLOAD [ITERS]
Prints `PROFILE torch <workload> <kind> ms=<per iteration>` lines and `TOTAL torch <workload> ms=...`
(the median wall time of an un-profiled iteration).
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_art import forward_taps, make_net  # noqa: E402

torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))

WORKLOADS = {
    # size, batch, taps, backward
    "gatys": (288, 1, ["conv2d_2", "conv2d_4", "mixed0", "mixed1", "mixed2", "mixed3"], True),
    "dream": (256, 1, ["mixed3"], True),
    "perceptual": (128, 8, ["conv2d_3", "conv2d_5", "mixed0"], True),
    "fid": (128, 32, ["mixed5"], False),
}


def step(net, x, taps, backward, target=None):
    if not backward:
        with torch.no_grad():
            return sum(float(f.mean()) for f in forward_taps(net, x, taps))
    if target is not None:
        with torch.no_grad():
            forward_taps(net, target, taps)
    xr = x.clone().requires_grad_(True)
    loss = sum(f.square().mean() for f in forward_taps(net, xr, taps))
    loss.backward()
    return float(xr.grad.abs().sum())


def kind(name, shapes):
    """A readable op kind: convs by kernel and channels, everything else by aten name."""
    w = None
    if name in ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d") and len(shapes) > 1:
        w, what = shapes[1], "fwd"
    elif name == "aten::convolution_backward" and len(shapes) > 2:
        w, what = shapes[2], "bwd(input)"
    if w is not None and len(w) == 4:
        o, i, kh, kw = w
        return f"conv {kh}x{kw} {what} cin={i} cout={o} in={shapes[0 if what == 'fwd' else 1][2:]}"
    return name


def main():
    what = sys.argv[1]
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size, batch, taps, backward = WORKLOADS[what]
    net = make_net()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g)
    target = torch.rand(batch, 3, size, size, generator=g) if what == "perceptual" else None
    for _ in range(2):
        step(net, x, taps, backward, target)
    times, cpus = [], []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        step(net, x, taps, backward, target)
        times.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    print(f"TOTAL torch {what} size={size} batch={batch} ms={statistics.median(times):.2f} min_ms={min(times):.2f} "
          f"cpu_ms={statistics.median(cpus):.2f} n={iters}", flush=True)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(iters):
            step(net, x, taps, backward, target)
    acc = {}
    for ev in prof.key_averages(group_by_input_shape=True):
        shapes = [s for s in ev.input_shapes if isinstance(s, list)]
        k = kind(ev.key, shapes)
        acc[k] = acc.get(k, 0.0) + ev.self_cpu_time_total / 1e3 / iters
    for k, ms in sorted(acc.items(), key=lambda kv: -kv[1]):
        if ms >= 0.05:
            print(f"PROFILE torch {what} {k} ms={ms:.3f}")


if __name__ == "__main__":
    main()
