#!/usr/bin/env python3
"""OpenVINO reference outputs of the random-face MobileStyleGAN IR (PyPI `random-face`).

Runs `MappingNetwork.{xml,bin}` and `SynthesisNetwork.{xml,bin}` on fixed inputs, in float32
(`INFERENCE_PRECISION_HINT=f32`: this CPU would otherwise pick bf16), and writes raw
little-endian float32 files plus `meta.json` (shapes) into OUT:

    z.bin      [2, 512]            mapping input (numpy RandomState(seed).randn)
    w.bin      [2, 512]            mapping output `style`
    ws_in.bin  [2, 512]            synthesis input: w[0] and a truncated w[1]
    img.bin    [2, 3, 1024, 1024]  synthesis output `img` (range about [-1, 1])

With --bench K it instead times K single-face syntheses (after a warm-up) and prints
`openvino synthesis: best X s, median Y s` with --threads threads.

Usage (from a venv outside the repo, see requirements.txt):
    python random_face_ref.py --model-dir .../random_face/data --out DIR [--threads 2]
    python random_face_ref.py --model-dir .../random_face/data --bench 10 --threads 2
"""
import argparse
import json
import os
import time

import numpy as np
import openvino as ov


def compile_model(core, xml, batch, threads):
    model = core.read_model(xml)
    name = model.inputs[0].get_any_name()
    model.reshape({name: [batch, 512]})
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(threads)}
    return core.compile_model(model, "CPU", cfg)


def run(compiled, x):
    req = compiled.create_infer_request()
    res = req.infer({0: x})
    return np.asarray(next(iter(res.values())), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", type=int, default=0)
    a = ap.parse_args()
    core = ov.Core()
    mxml = os.path.join(a.model_dir, "MappingNetwork.xml")
    sxml = os.path.join(a.model_dir, "SynthesisNetwork.xml")

    if a.bench:
        synth = compile_model(core, sxml, 1, a.threads)
        req = synth.create_infer_request()
        style = np.random.RandomState(a.seed).randn(1, 512).astype(np.float32)
        req.infer({0: style})  # warm-up
        times = []
        for _ in range(a.bench):
            t = time.perf_counter()
            req.infer({0: style})
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"openvino synthesis: best {times[0]:.3f} s, median {times[len(times) // 2]:.3f} s "
              f"({a.threads} threads, {a.bench} runs)")
        return

    os.makedirs(a.out, exist_ok=True)
    z = np.random.RandomState(a.seed).randn(2, 512).astype(np.float32)
    w = run(compile_model(core, mxml, 2, a.threads), z)
    ws_in = w.copy()
    ws_in[1] = w.mean(axis=0) + 0.7 * (w[1] - w.mean(axis=0))
    img = run(compile_model(core, sxml, 2, a.threads), ws_in)
    meta = {}
    for name, arr in [("z", z), ("w", w), ("ws_in", ws_in), ("img", img)]:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        arr.tofile(os.path.join(a.out, f"{name}.bin"))
        meta[name] = list(arr.shape)
    meta["openvino"] = ov.__version__
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {a.out}: img range [{img.min():.3f}, {img.max():.3f}]")


if __name__ == "__main__":
    main()
