// Runs a bundle under Node with Dawn (the `webgpu` package), on inputs given as raw host-layout
// files, and writes the outputs the same way: what the Rust test `browser.rs` drives to check
// the JavaScript runtime without a browser.
//
//   node test/run-node.mjs BUNDLE_DIR INPUT_DIR OUTPUT_DIR [RUNS]
//
// INPUT_DIR holds `<i>.bin` for the i-th input (the bytes of its host tensor, as `nnc serve`
// serves them); OUTPUT_DIR receives `<i>.bin` per output and `result.json` (adapter, load and
// run times).

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { fromHost, loadBundle, numel } from '../nnc-webgpu.js';

const [bundleDir, inputDir, outputDir, runsArg] = process.argv.slice(2);
if (!outputDir) {
  console.error('usage: node test/run-node.mjs BUNDLE_DIR INPUT_DIR OUTPUT_DIR [RUNS]');
  process.exit(2);
}
Object.assign(globalThis, globals);
const gpu = create([]);
const readBundleFile = async (path) => new Uint8Array(await readFile(join(bundleDir, path)));
const model = await loadBundle(bundleDir, { gpu, readFile: readBundleFile });
const inputs = await Promise.all(model.inputs.map(async (port, i) => {
  const bytes = new Uint8Array(await readFile(join(inputDir, `${i}.bin`)));
  return fromHost(port.dtype, bytes, numel(port.shape));
}));
const runs = Number(runsArg ?? 3);
const times = [];
let outputs;
for (let r = 0; r < runs; r += 1) {
  const start = performance.now();
  ({ outputs } = await model.run(inputs));
  times.push(performance.now() - start);
}
await mkdir(outputDir, { recursive: true });
await Promise.all(model.outputs.map((o, i) => {
  const values = outputs[o.name];
  return writeFile(join(outputDir, `${i}.bin`), new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}));
times.sort((a, b) => a - b);
const result = {
  adapter: model.adapterInfo.architecture || model.adapterInfo.description || 'unknown',
  loadMs: model.loadMs,
  msPerRun: times[Math.floor(times.length / 2)],
  bundleBytes: model.bundleBytes,
};
await writeFile(join(outputDir, 'result.json'), JSON.stringify(result));
console.log(JSON.stringify(result));
model.destroy();
process.exit(0);
