// Times face-api's networks in TensorFlow.js (wasm backend) on the shapes of limner's
// faces-bench (bench/faces.sh): prints `RESULT tfjs faces/<net> batch=B ms=<median>`.
//
//   node face_bench.js MODEL_DIR [--quick]
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const tf = faceapi.tf;

async function medianMs(runs, f) {
  const once = async () => { const t = f(); await Promise.all([].concat(t).map((x) => x.data())); tf.dispose(t); };
  await once();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    await once();
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function main() {
  const [modelDir, flag] = process.argv.slice(2);
  if (!modelDir) throw new Error('usage: node face_bench.js MODEL_DIR [--quick]');
  const runs = flag === '--quick' ? 3 : 9;
  await tf.setBackend('wasm');
  await tf.ready();
  const nets = faceapi.nets;
  for (const n of ['tinyFaceDetector', 'ssdMobilenetv1', 'faceLandmark68Net', 'faceLandmark68TinyNet', 'faceExpressionNet', 'ageGenderNet', 'faceRecognitionNet']) {
    await nets[n].loadFromDisk(modelDir);
  }
  console.log(`# face_bench.js: tfjs ${tf.version.tfjs} ${tf.getBackend()}, ${runs} runs per line (median)`);
  const input = (b, s) => tf.unstack(tf.randomUniform([b, s, s, 3], 0, 255));
  for (const batch of [1, 8]) {
    const report = (name, ms) => console.log(`RESULT tfjs faces/${name} batch=${batch} ms=${ms.toFixed(2)}`);
    let x = await faceapi.toNetInput(input(batch, 416));
    report('tiny_face_detector_416', await medianMs(runs, () => nets.tinyFaceDetector.forwardInput(x, 416)));
    x = await faceapi.toNetInput(input(batch, 160));
    report('tiny_face_detector_160', await medianMs(runs, () => nets.tinyFaceDetector.forwardInput(x, 160)));
    x = await faceapi.toNetInput(input(batch, 512));
    report('ssd_mobilenetv1_512', await medianMs(runs, () => { const o = nets.ssdMobilenetv1.forwardInput(x); return [...o.boxes, ...o.scores]; }));
    x = await faceapi.toNetInput(input(batch, 112));
    report('face_landmark_68', await medianMs(runs, () => nets.faceLandmark68Net.forwardInput(x)));
    report('face_landmark_68_tiny', await medianMs(runs, () => nets.faceLandmark68TinyNet.forwardInput(x)));
    report('face_expression', await medianMs(runs, () => nets.faceExpressionNet.forwardInput(x)));
    report('age_gender', await medianMs(runs, () => { const o = nets.ageGenderNet.forwardInput(x); return [o.age, o.gender]; }));
    x = await faceapi.toNetInput(input(batch, 150));
    report('face_recognition', await medianMs(runs, () => nets.faceRecognitionNet.forwardInput(x)));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
