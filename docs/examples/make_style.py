#!/usr/bin/env python3
"""Writes swirls.png, the style image of the README's examples: a 256x256 procedural
"painting" (blue/yellow swirling strokes, no third-party image, no dependencies)."""
import math, random, struct, sys, zlib

N = 256
random.seed(7)
img = [[(0.0, 0.0, 0.0)] * N for _ in range(N)]
centres = [(random.uniform(0, N), random.uniform(0, N), random.uniform(20, 70), random.choice((-1, 1))) for _ in range(9)]
palette = [(0.10, 0.18, 0.45), (0.16, 0.35, 0.70), (0.95, 0.85, 0.30), (0.85, 0.55, 0.15), (0.05, 0.08, 0.20)]
for y in range(N):
    for x in range(N):
        # flow angle from a sum of vortices; strokes are stripes along the flow
        a = 0.0
        for cx, cy, r, s in centres:
            dx, dy = x - cx, y - cy
            d2 = dx * dx + dy * dy
            a += s * math.exp(-d2 / (2 * r * r)) * math.atan2(dy, dx)
        t = math.sin(0.35 * (x * math.cos(a) + y * math.sin(a)) + 2.0 * math.sin(a * 3))
        u = 0.5 + 0.5 * math.sin(0.05 * x + 0.07 * y + 3 * a)
        k = (t * 0.5 + 0.5) * (len(palette) - 1) * u + (1 - u) * 1.2
        i = min(int(k), len(palette) - 2)
        f = k - i
        c0, c1 = palette[i], palette[i + 1]
        img[y][x] = tuple(c0[j] * (1 - f) + c1[j] * f for j in range(3))
raw = b"".join(b"\0" + bytes(int(max(0, min(1, v)) * 255 + 0.5) for px in row for v in px) for row in img)
def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
out = sys.argv[1] if len(sys.argv) > 1 else "swirls.png"
open(out, "wb").write(png)
print("wrote", out)
