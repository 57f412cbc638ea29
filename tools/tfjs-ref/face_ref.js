// Reference outputs of face-api's networks from TensorFlow.js (wasm backend), for
// crates/limner-faces/tests/parity.rs.
//
//   node face_ref.js JOB.json OUT_DIR
//
// JOB.json: { "model_dir": face-api's model/ folder (limner keeps it under
// ~/.cache/limner/nets/face-api/package/model), "input_size": the detector's input side,
// "score_threshold": its threshold, "tensors": { NAME: { "file": F32 path, "shape": [N, H, W, 3] } }
// with NAME in det (N×S×S×3), ssd (N×512×512×3, optional, with "ssd_min_confidence"), face112 (N×112×112×3), face150 (N×150×150×3), all RGB 0..255
// already padded and resized, so that only the networks are compared; "images": [{ "file",
// "shape": [H, W, 3] }] whole images for the end-to-end pipeline (face-api pads, resizes and
// crops them itself) }. Writes NAME.f32 files (float32 little-endian, TF layouts) and
// results.json (detections per `det` input, end-to-end results per image).
const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const tf = faceapi.tf;
const rect = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });

const { readF32, write } = require('./f32io');

async function main() {
  const [jobPath, outDir] = process.argv.slice(2);
  if (!outDir) throw new Error('usage: node face_ref.js JOB.json OUT_DIR');
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  await tf.setBackend('wasm');
  await tf.ready();
  const nets = faceapi.nets;
  for (const n of ['tinyFaceDetector', 'ssdMobilenetv1', 'faceLandmark68Net', 'faceLandmark68TinyNet', 'faceExpressionNet', 'ageGenderNet', 'faceRecognitionNet']) {
    await nets[n].loadFromDisk(job.model_dir);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const input = {};
  for (const [k, spec] of Object.entries(job.tensors)) input[k] = tf.tensor4d(readF32(spec.file), spec.shape);
  const list = (t) => tf.unstack(t); // face-api batches an array of 3-d tensors
  const shapes = {};
  const results = { backend: tf.getBackend(), version: faceapi.version };

  // networks on identical inputs
  shapes.det_grid = await write(outDir, 'det_grid', nets.tinyFaceDetector.forwardInput(await faceapi.toNetInput(list(input.det)), job.tensors.det.shape[1]));
  const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: job.input_size, scoreThreshold: job.score_threshold });
  results.detections = [];
  for (const t of list(input.det)) {
    const dets = await nets.tinyFaceDetector.locateFaces(t, opts);
    results.detections.push(dets.map((d) => ({ score: d.score, box: rect(d.relativeBox) })));
  }
  if (input.ssd) {
    const out = nets.ssdMobilenetv1.forwardInput(await faceapi.toNetInput(list(input.ssd)));
    shapes.ssd_boxes = await write(outDir, 'ssd_boxes', tf.stack(out.boxes));
    shapes.ssd_scores = await write(outDir, 'ssd_scores', tf.stack(out.scores));
    const ssdOpts = new faceapi.SsdMobilenetv1Options({ minConfidence: job.ssd_min_confidence });
    results.ssd_detections = [];
    for (const t of list(input.ssd)) {
      const dets = await nets.ssdMobilenetv1.locateFaces(t, ssdOpts);
      results.ssd_detections.push(dets.map((d) => ({ score: d.score, box: rect(d.relativeBox) })));
    }
  }
  shapes.landmarks = await write(outDir, 'landmarks', await nets.faceLandmark68Net.forward(list(input.face112)));
  shapes.landmarks_tiny = await write(outDir, 'landmarks_tiny', await nets.faceLandmark68TinyNet.forward(list(input.face112)));
  shapes.expressions = await write(outDir, 'expressions', await nets.faceExpressionNet.forward(list(input.face112)));
  const ag = await nets.ageGenderNet.forward(list(input.face112));
  shapes.age = await write(outDir, 'age', ag.age);
  shapes.gender = await write(outDir, 'gender', ag.gender);
  shapes.descriptors = await write(outDir, 'descriptors', await nets.faceRecognitionNet.forward(list(input.face150)));

  // the whole pipeline on whole images
  results.end_to_end = [];
  for (const spec of job.images || []) {
    const img = tf.tensor3d(readF32(spec.file), spec.shape);
    const faces = await faceapi.detectAllFaces(img, opts).withFaceLandmarks().withFaceExpressions().withAgeAndGender().withFaceDescriptors();
    results.end_to_end.push(faces.map((f) => ({
      score: f.detection.score,
      box: rect(f.detection.box),
      landmarks: f.landmarks.positions.map((p) => [p.x, p.y]),
      aligned: rect(f.alignedRect.box),
      expressions: faceapi.FACE_EXPRESSION_LABELS.map((l) => f.expressions[l]),
      age: f.age,
      gender: f.gender,
      gender_probability: f.genderProbability,
      descriptor: Array.from(f.descriptor),
    })));
  }
  results.shapes = shapes;
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results));
  console.log(JSON.stringify({ backend: results.backend, shapes }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
