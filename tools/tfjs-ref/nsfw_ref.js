// Reference class probabilities of nsfwjs' InceptionV3 classifier from the nsfwjs package itself
// (npm nsfwjs@4.3.0 on TensorFlow.js, wasm backend), for
// crates/limner-nets/tests/nsfw_parity.rs.
//
//   node nsfw_ref.js OUT.json IMAGE.rgb W H [IMAGE.rgb W H ...]
//
// Each IMAGE.rgb is W×H×3 8-bit RGB, row-major (a decoded picture, what tf.browser.fromPixels
// gives nsfwjs in a page). nsfwjs.infer does the preprocessing (/255, bilinear resize with
// aligned corners to 299) and returns the softmax; OUT.json gets the probabilities in nsfwjs'
// class order and the class names (NSFW_CLASSES).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const nsfwjs = require('nsfwjs/core');
const { InceptionV3Model } = require('nsfwjs/models/inception_v3');
// the class names are not among the package's exports: read from its own file beside index.js
const { NSFW_CLASSES } = require(path.join(path.dirname(require.resolve('nsfwjs')), 'nsfw_classes.js'));

async function main() {
  const [out, ...rest] = process.argv.slice(2);
  if (!out || rest.length === 0 || rest.length % 3 !== 0) throw new Error('usage: node nsfw_ref.js OUT.json IMAGE.rgb W H [...]');
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await nsfwjs.load('InceptionV3', { modelDefinitions: [InceptionV3Model] });
  const probs = [];
  const t0 = Date.now();
  for (let i = 0; i < rest.length; i += 3) {
    const [file, w, h] = [rest[i], +rest[i + 1], +rest[i + 2]];
    const raw = fs.readFileSync(file);
    if (raw.length !== w * h * 3) throw new Error(`${file}: ${raw.length} bytes, not ${w}x${h}x3`);
    const img = tf.tensor3d(new Int32Array(raw), [h, w, 3], 'int32');
    const p = model.infer(img);
    probs.push(Array.from(await p.data()));
    p.dispose();
    img.dispose();
  }
  const classes = Object.keys(NSFW_CLASSES).sort((a, b) => a - b).map((k) => NSFW_CLASSES[k]);
  const res = { classes, probs, backend: tf.getBackend(), ms_per_image: (Date.now() - t0) / probs.length };
  fs.writeFileSync(out, JSON.stringify(res));
  console.log(JSON.stringify(res));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
