#!/usr/bin/env python3
"""The official side of bench/pickle.sh: NVIDIA's stylegan2-ada-pytorch on the CPU.

    torch_pickle.py make --official PATH --res 256 --out ffhq256.pkl --io ffhq256.io.safetensors
    torch_pickle.py time --official PATH --pkl ffhq256.pkl --reps 5

`make` builds a generator with the official classes in the FFHQ configuration of train.py
(`--cfg stylegan2`: z = w = 512, 8 mapping layers, channel_base 32768, channel_max 512,
num_fp16_res 4, conv_clamp 256; random weights, torch.manual_seed(0)), pickles it as the
training loop does (`{'G_ema': G_ema}` by `pickle.dump`) and records one official image
(`z = torch.randn(1, 512)` after `torch.manual_seed(1)`, `noise_mode='const'`,
`force_fp32=True`) for limner to compare with. `time` loads the pickle as the official
`legacy.load_network_pkl` does (Python's pickle and `torch_utils.persistence`) and times `G(z, None, noise_mode='const', force_fp32=True)`, one
image per call, 2 threads, after one warm-up call.
"""
import argparse
import copy
import os
import pickle
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('what', choices=['make', 'time'])
    ap.add_argument('--official', required=True)
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--out')
    ap.add_argument('--io')
    ap.add_argument('--pkl')
    ap.add_argument('--reps', type=int, default=5)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.official))
    import torch
    import dnnlib
    import legacy  # noqa: F401  (registers the official modules the pickles name)
    torch.set_num_threads(2)
    if a.what == 'make':
        from safetensors.torch import save_file
        G_kwargs = dnnlib.EasyDict(class_name='training.networks.Generator', z_dim=512, w_dim=512,
                                   mapping_kwargs=dnnlib.EasyDict(num_layers=8),
                                   synthesis_kwargs=dnnlib.EasyDict(channel_base=32768, channel_max=512,
                                                                    num_fp16_res=4, conv_clamp=256))
        torch.manual_seed(0)
        G = dnnlib.util.construct_class_by_name(**G_kwargs, c_dim=0, img_resolution=a.res, img_channels=3)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        with open(a.out, 'wb') as f:
            pickle.dump({'G_ema': G_ema}, f)
        torch.manual_seed(1)
        z = torch.randn(1, 512)
        with torch.no_grad():
            img = G_ema(z, None, noise_mode='const', force_fp32=True)
        save_file({'z': z.contiguous(), 'img': img.contiguous()}, a.io)
        n = sum(p.numel() for p in G_ema.parameters())
        print(f'# made {a.out}: {a.res}px FFHQ-config generator, {n} parameters, {os.path.getsize(a.out)} bytes')
        return
    with open(a.pkl, 'rb') as f:
        t0 = time.perf_counter()
        # what legacy.load_network_pkl does for a snapshot (it also insists on G and D, which
        # this generator-only pickle leaves out): Python's pickle + torch_utils.persistence
        G = pickle.load(f)['G_ema'].eval()
        load_s = time.perf_counter() - t0
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3))
    times = []
    with torch.no_grad():
        G(z, None, noise_mode='const', force_fp32=True)
        for _ in range(a.reps):
            t0 = time.perf_counter()
            G(z, None, noise_mode='const', force_fp32=True)
            times.append(time.perf_counter() - t0)
    print(f'RESULT torch pickle-gen res={G.img_resolution} load_s={load_s:.2f} median_s={statistics.median(times):.3f} '
          f'times={",".join(f"{t:.3f}" for t in times)} torch={torch.__version__} threads={torch.get_num_threads()}')


if __name__ == '__main__':
    main()
