// Raw little-endian float32 files, the format the Rust parity tests and these scripts exchange.
const fs = require('fs');
const path = require('path');

function readF32(p) {
  const raw = fs.readFileSync(p);
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

// writes tensor `t` as OUTDIR/NAME.f32 and returns its shape
async function write(outDir, name, t) {
  const v = await t.data();
  fs.writeFileSync(path.join(outDir, name + '.f32'), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  return t.shape;
}

module.exports = { readF32, write };
