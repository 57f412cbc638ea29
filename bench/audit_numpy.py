"""Brute-force nearest neighbours in numpy on the vectors knn_bench (crates/limner-audit/examples) wrote (blocked like limner,
|q|^2 + |b|^2 - 2 q.b, float32 BLAS), timed; checks the answers against limner's.
Usage: audit_numpy.py DIR TRAIN QUERIES DIM"""
import sys, time
import numpy as np

d, n, m, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
train = np.fromfile(f"{d}/train.f32", dtype="<f4").reshape(n, dim)
queries = np.fromfile(f"{d}/queries.f32", dtype="<f4").reshape(m, dim)
limner = np.fromfile(f"{d}/limner_index.f32", dtype="<f4").astype(np.int64)
# warm-up
_ = queries[:256] @ train.T
t = time.perf_counter()
bn = (train * train).sum(1)
out = np.empty(m, dtype=np.int64)
for q0 in range(0, m, 1024):
    q = queries[q0:q0 + 1024]
    d2 = (q * q).sum(1)[:, None] + bn[None, :] - 2.0 * (q @ train.T)
    out[q0:q0 + 1024] = d2.argmin(1)
s = time.perf_counter() - t
agree = float((out == limner).mean())
print(f"RESULT numpy knn train={n} queries={m} dim={dim} s={s:.3f} agree={agree:.4f}")
