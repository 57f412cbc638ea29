"""onnxruntime side of bench/style.sh: the same ONNX files and the same input tensors as
limner's `style_bench` (written by it as raw float32), timed the same way (first call, then the
median of N warm runs), and limner's outputs compared with onnxruntime's.

    python style_ort.py DIR [--iters N] [--threads 2]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def load(d, name, shape):
    return np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4").reshape(shape)


def diff(name, limner, ort_out):
    """(name, mean |diff|, max |diff|, relative L2 error ||limner - ort|| / ||ort||)"""
    d = (limner - ort_out).astype(np.float64)
    return (name, float(np.abs(d).mean()), float(np.abs(d).max()), float(np.linalg.norm(d) / np.linalg.norm(ort_out)))


def timed(iters, f):
    t = time.perf_counter()
    out = f()
    cold = (time.perf_counter() - t) * 1e3
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        out = f()
        times.append((time.perf_counter() - t) * 1e3)
    return cold, statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    lim = json.load(open(os.path.join(a.dir, "limner.json")))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3

    def session(path, free_hw=False):
        t = time.perf_counter()
        if free_hw:
            # arbitrary_transform's file fixes its input at 1x384x384x3; limner overrides the
            # shape in tract. Give onnxruntime the same freedom: the height and width become
            # symbolic (nothing else in the graph changes).
            import onnx

            m = onnx.load(path)
            for v, names in ((m.graph.input[0], ("h", "w")), (m.graph.output[0], ("oh", "ow"))):
                for d, n in zip(v.type.tensor_type.shape.dim[1:3], names):
                    d.ClearField("dim_value")
                    d.dim_param = n
            del m.graph.value_info[:]
            s = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        else:
            s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return s, (time.perf_counter() - t) * 1e3

    rows, checks = [], []
    pred, pred_load = session(lim["nets"]["predict"])
    style_in = load(a.dir, "style_in", (1, 256, 256, 3))
    cold, ms, vec = timed(a.iters, lambda: pred.run(None, {pred.get_inputs()[0].name: style_in})[0])
    rows.append({"what": "predict", "size": 256, "load_ms": pred_load, "cold_ms": cold, "ms": ms})
    lim_vec = load(a.dir, "style_vec", (1, 1, 1, 100))
    checks.append(diff("style vector", lim_vec, vec))
    trans, trans_load = session(lim["nets"]["transform"], free_hw=True)
    multi, multi_load = session(lim["nets"]["multi"])
    names = [i.name for i in trans.get_inputs()]
    weights = np.zeros(26, np.float32)
    weights[7] = 1.0
    for r in lim["rows"]:
        if r["what"] != "transform":
            continue
        s, w, h = r["size"], r["w"], r["h"]
        content = load(a.dir, f"content_{s}", (1, h, w, 3))
        try:
            cold, ms, out = timed(a.iters, lambda: trans.run(None, {names[0]: content, names[1]: vec})[0])
            rows.append({"what": "transform", "size": s, "load_ms": trans_load, "cold_ms": cold, "ms": ms})
            lo = load(a.dir, f"transform_{s}", (1, h, w, 3))
            checks.append(diff(f"transform {w}x{h}", lo, out))
        except Exception as e:  # noqa: BLE001
            print(f"onnxruntime cannot run the transformer at {w}x{h}: {e}", file=sys.stderr)
        x = np.ascontiguousarray(content.transpose(0, 3, 1, 2))
        cold, ms, out = timed(a.iters, lambda: multi.run(None, {"image": x, "style_weights": weights})[0])
        rows.append({"what": "multistyle", "size": s, "load_ms": multi_load, "cold_ms": cold, "ms": ms})
        lo = load(a.dir, f"multi_{s}", (1, 3, h, w))
        checks.append(diff(f"multistyle {w}x{h}", lo, np.clip(out, 0, 1)))
    json.dump({"onnxruntime": ort.__version__, "threads": a.threads, "rows": rows, "checks": checks},
              open(os.path.join(a.dir, "ort.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
