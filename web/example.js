// The example page: loads the bundle `nnc serve` serves, runs it on the served inputs (or
// pseudo-random ones), and shows the outputs, their difference from the expected outputs and
// the time per run. The result is also left in `window.nncResult` for tests that drive the page.

import { arrayType, describeAdapter, fromHost, loadBundle, numel } from './nnc-webgpu.js';

const params = new URLSearchParams(location.search);
const runs = Math.max(1, Number(params.get('runs') ?? 10));
const bundleUrl = params.get('bundle') ?? 'bundle/';
const $ = (id) => document.getElementById(id);

function fact(name, value) {
  const row = $('facts').insertRow();
  row.insertCell().outerHTML = `<th>${name}</th>`;
  row.insertCell().textContent = value;
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  return response;
}

/** Pseudo-random inputs (a fixed seed per input), for bundles served without data. */
function randomInput(port, seed) {
  let state = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0;
    return state / 4294967296;
  };
  const values = Array.from({ length: numel(port.shape) }, next);
  switch (port.dtype) {
    case 'f32': return Float32Array.from(values, (v) => 2 * v - 1);
    case 'i64': return BigInt64Array.from(values, (v) => BigInt(Math.floor(4 * v)));
    case 'u64': return BigUint64Array.from(values, (v) => BigInt(Math.floor(4 * v)));
    case 'bool': return Uint8Array.from(values, (v) => (v < 0.5 ? 0 : 1));
    // Small integers (indices, token ids) of the input's own typed array.
    default: return arrayType(port.dtype).from(values, (v) => Math.floor(4 * v));
  }
}

function base64(values) {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function maxAbsDiff(a, b) {
  let max = 0;
  for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs(Number(a[i]) - Number(b[i])));
  return max;
}

function showOutput(port, values, expected) {
  const section = document.createElement('div');
  const first = Array.from(values.slice(0, 8), (v) => (typeof v === 'number' ? v.toPrecision(5) : String(v)));
  let text = `${port.name}: ${port.dtype}[${port.shape.join(', ')}]\nfirst values: ${first.join(', ')}`;
  const classes = port.shape.at(-1);
  if (port.shape.length === 2 && classes > 1 && port.dtype === 'f32') {
    const row = Array.from(values.slice(0, classes));
    const top = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    text += `\ntop classes of the first row: ${top.map(([v, i]) => `${i} (${v.toFixed(3)})`).join(', ')}`;
  }
  if (expected) text += `\nlargest difference from the expected output: ${maxAbsDiff(values, expected).toExponential(2)}`;
  section.innerHTML = '<pre></pre>';
  section.firstChild.textContent = text;
  $('outputs').append(section);
}

async function main() {
  if (navigator.gpu) {
    const adapter = await navigator.gpu.requestAdapter();
    if (adapter) $('adapter').textContent = JSON.stringify(describeAdapter(adapter), null, 2);
  }
  const model = await loadBundle(bundleUrl, { onProgress: (what) => { $('status').textContent = `${what}…`; } });
  const info = model.adapterInfo;
  const adapterName = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown';
  fact('adapter', adapterName);
  fact('program', model.manifest.program);
  fact('kernels', `${model.manifest.kernels.length} (${model.pipelineCount} distinct pipelines)`);
  fact('bundle size', `${(model.bundleBytes / 1e6).toFixed(2)} MB (manifest, weights, shaders)`);
  fact('load', `${model.loadMs.toFixed(0)} ms (fetch, pipelines, weights uploaded)`);
  const mb = (bytes) => `${(bytes / 1e6).toFixed(2)} MB`;
  fact('GPU memory', `${mb(model.gpuBytes)} (${mb(model.gpuBytesUnshared)} with a buffer per tensor)`);

  const index = await (await fetchOk('data/index.json')).json().catch(() => ({ inputs: [], expected: [] }));
  const inputs = await Promise.all(model.inputs.map(async (port, i) => {
    if (!index.inputs.includes(i)) return randomInput(port, i + 1);
    const bytes = new Uint8Array(await (await fetchOk(`data/input_${i}.bin`)).arrayBuffer());
    return fromHost(port.dtype, bytes, numel(port.shape));
  }));
  const given = model.inputs.map((p, i) => `${p.name}: ${p.dtype}[${p.shape}] ${index.inputs.includes(i) ? 'served' : 'pseudo-random'}`);
  fact('inputs', given.join('; '));
  const expected = await Promise.all(model.outputs.map(async (port, i) => {
    if (!index.expected.includes(i)) return null;
    const bytes = new Uint8Array(await (await fetchOk(`data/output_${i}.bin`)).arrayBuffer());
    return fromHost(port.dtype, bytes, numel(port.shape));
  }));

  $('status').textContent = 'running…';
  let { outputs } = await model.run(inputs); // warm-up
  const times = [];
  for (let r = 0; r < runs; r += 1) {
    const start = performance.now();
    ({ outputs } = await model.run(inputs));
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  fact('time per run', `${median.toFixed(2)} ms (median of ${runs}, inputs written and outputs read back included)`);
  model.outputs.forEach((port, i) => showOutput(port, outputs[port.name], expected[i]));
  const profile = model.timestamps ? await model.profile(inputs, 3) : null;
  if (profile) {
    const rows = profile.slice(0, 15).map((k) => `${k.ms.toFixed(3).padStart(9)} ms ${(100 * k.share).toFixed(1).padStart(5)}%  ${k.name}`);
    $('profile').textContent = `GPU time per kernel (median of 3 runs, the slowest ${rows.length} of ${profile.length}):\n${rows.join('\n')}`;
  } else {
    $('profile').textContent = 'this adapter has no timestamp queries: no per-kernel times';
  }
  window.nncResult = {
    ok: true,
    adapter: adapterName,
    program: model.manifest.program,
    kernels: model.manifest.kernels.length,
    bundleBytes: model.bundleBytes,
    loadMs: model.loadMs,
    gpuBytes: model.gpuBytes,
    gpuBytesUnshared: model.gpuBytesUnshared,
    msPerRun: median,
    outputs: model.outputs.map((port) => ({ ...port, base64: base64(outputs[port.name]) })),
    profile,
  };
  $('status').textContent = 'done';
  $('status').className = 'done';
}

main().catch((e) => {
  $('status').textContent = `error: ${e.message}`;
  $('status').className = 'error';
  window.nncResult = { ok: false, error: e.message };
});
