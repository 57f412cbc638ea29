// Reference activations of nsfwjs' InceptionV3 from TensorFlow.js (wasm backend), for
// crates/limner-nets/tests/inception_parity.rs.
//
//   node inception_ref.js MODEL_DIR INPUT.f32 N H W SIZE OUT_DIR
//
// MODEL_DIR holds nsfwjs' model.min.js and group1-shard*.min.js (limner keeps them under
// ~/.cache/limner/nets/inception-v3/package/dist/models/inception_v3). INPUT.f32 is N×H×W×3
// little-endian float32 RGB in [0,1]. Like nsfwjs, the images are resized bilinearly with
// aligned corners to SIZE×SIZE and fed as they are (no rescaling). Writes resized.f32,
// mixed2.f32, mixed5.f32 (NHWC float32) and shapes.json to OUT_DIR.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

async function main() {
  const [modelDir, inputPath, n, h, w, size, outDir] = process.argv.slice(2);
  if (!outDir) throw new Error('usage: node inception_ref.js MODEL_DIR INPUT.f32 N H W SIZE OUT_DIR');
  await tf.setBackend('wasm');
  await tf.ready();

  const model = require(path.resolve(modelDir, 'model.min.js'));
  const topology = model.modelTopology;
  // the file fixes the input at 299x299; nsfwjs' layers are size-agnostic up to the head
  topology.model_config.config.layers[0].config.batch_input_shape = [null, null, null, 3];
  const weightSpecs = [];
  const shards = [];
  for (const group of model.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) shards.push(Buffer.from(require(path.resolve(modelDir, p + '.min.js')), 'base64'));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  // keep the layers up to mixed5 only (the head's Flatten needs a fixed size)
  const layers = topology.model_config.config.layers;
  const last = layers.findIndex((l) => l.name === 'mixed5');
  topology.model_config.config.layers = layers.slice(0, last + 1);
  topology.model_config.config.output_layers = [['mixed2', 0, 0], ['mixed5', 0, 0]];
  const kept = new Set(topology.model_config.config.layers.map((l) => l.name));
  const specs = [];
  let offset = 0;
  const pieces = [];
  for (const s of weightSpecs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * (s.quantization ? 1 : 4);
    if (s.quantization && s.quantization.dtype !== 'uint8') throw new Error('unexpected quantisation ' + s.quantization.dtype);
    if (kept.has(s.name.split('/')[0])) {
      specs.push(s);
      pieces.push(Buffer.from(weightData, offset, bytes));
    }
    offset += bytes;
  }
  if (offset !== weightData.byteLength) throw new Error(`manifest describes ${offset} bytes, shards hold ${weightData.byteLength}`);
  const kb = Buffer.concat(pieces);
  const net = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: topology,
    weightSpecs: specs,
    weightData: kb.buffer.slice(kb.byteOffset, kb.byteOffset + kb.byteLength),
  }));

  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const x = tf.tensor4d(data, [+n, +h, +w, 3]);
  const resized = tf.image.resizeBilinear(x, [+size, +size], true);
  const t0 = Date.now();
  const [mixed2, mixed5] = net.predict(resized);
  const out = { resized, mixed2, mixed5 };
  const shapes = {};
  fs.mkdirSync(outDir, { recursive: true });
  for (const [k, t] of Object.entries(out)) {
    const v = await t.data();
    fs.writeFileSync(path.join(outDir, k + '.f32'), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    shapes[k] = t.shape;
  }
  shapes.backend = tf.getBackend();
  shapes.predict_ms = Date.now() - t0;
  fs.writeFileSync(path.join(outDir, 'shapes.json'), JSON.stringify(shapes));
  console.log(JSON.stringify(shapes));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
