// Unit tests of the WebGPU runtime, under Node: `node --test test/runtime.test.mjs`, with
// NNC_WGSL_BUNDLE and NNC_CPU_BUNDLE naming bundles nnc compiled and NNC_FORMAT the format the
// Rust side writes (the Rust test `browser.rs` sets them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import {
  FORMAT, NncError, checkManifest, fromGpu, fromHost, gpuBytes, loadBundle, numel, shareIntermediates, toGpu,
  unmetRequirements,
} from '../nnc-webgpu.js';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set (run these tests through the Rust test browser.rs)`);
  return value;
};
const manifestOf = async (dir) => JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
const readerOf = (dir) => async (path) => new Uint8Array(await readFile(join(dir, path)));

test('the runtime reads the format the Rust side writes', () => {
  assert.equal(FORMAT, Number(env('NNC_FORMAT')));
});

test('manifests nnc writes conform to the schema generated from the Rust types', async () => {
  checkManifest(await manifestOf(env('NNC_WGSL_BUNDLE')));
  const cpu = await manifestOf(env('NNC_CPU_BUNDLE'));
  // Schema-valid, but for another target: refused by name, not by a schema error.
  assert.throws(() => checkManifest(cpu), /a bundle for the cpu target; this runtime runs wgsl bundles/);
});

test('a damaged manifest is refused, naming what is wrong', async () => {
  const good = await manifestOf(env('NNC_WGSL_BUNDLE'));
  const broken = (edit) => {
    const m = structuredClone(good);
    edit(m);
    return m;
  };
  assert.throws(() => checkManifest(broken((m) => delete m.kernels)), /`kernels` is missing/);
  assert.throws(() => checkManifest(broken((m) => { m.kernels[0].grid = [1, 2]; })), /manifest\.kernels\[0\]\.grid: 2 items, fewer than 3/);
  assert.throws(() => checkManifest(broken((m) => { m.buffers[0].place = { disk: 3 }; })), /manifest\.buffers\[0\]\.place: matches none/);
  assert.throws(() => checkManifest(broken((m) => { m.weights_bytes = -1; })), /manifest\.weights_bytes: -1 < 0/);
  assert.throws(() => checkManifest(broken((m) => { m.kernels[0].code.file.path = 'kernels/gone.wgsl'; })), /kernel `.*` names no shader file the bundle lists/);
  assert.throws(() => checkManifest(broken((m) => { m.format = FORMAT + 1; })), new RegExp(`bundle format ${FORMAT + 1}, and this runtime reads format ${FORMAT}`));
});

test('tensors round-trip through the GPU layout for every dtype', () => {
  const cases = {
    f32: Float32Array.of(1.5, -2, 3e-8), i32: Int32Array.of(-7, 0, 2147483647), u32: Uint32Array.of(0, 4294967295),
    i64: BigInt64Array.of(-5n, 2147483647n), u64: BigUint64Array.of(0n, 4294967295n), i16: Int16Array.of(-32768, 5),
    u16: Uint16Array.of(65535, 1), i8: Int8Array.of(-128, 127, 0), u8: Uint8Array.of(255, 0, 9), bool: Uint8Array.of(1, 0, 1),
    f16: Uint16Array.of(0x3c00, 0xc000),
  };
  for (const [dtype, values] of Object.entries(cases)) {
    const bytes = toGpu(dtype, values, dtype);
    assert.equal(bytes.byteLength, gpuBytes(dtype, values.length), dtype);
    assert.equal(bytes.byteLength % 4, 0, dtype);
    assert.deepEqual(fromGpu(dtype, bytes, values.length), values, dtype);
    const host = new Uint8Array(values.buffer.slice(0));
    assert.deepEqual(fromHost(dtype, host, values.length), values, dtype);
  }
  assert.throws(() => toGpu('i64', BigInt64Array.of(1n << 40n), 'input `ids`'), /input `ids` holds the i64 value 1099511627776/);
  assert.throws(() => toGpu('f64', new Float64Array(1), 'input `x`'), /input `x` is f64, which WGSL has no layout for/);
});

test('an adapter that lacks a feature or a limit is named', () => {
  const adapter = { features: new Set(['timestamp-query']), limits: { maxStorageBuffersPerShaderStage: 8 } };
  const requires = { features: ['shader-f16'], limits: { maxStorageBuffersPerShaderStage: 10, maxBufferSize: 4 } };
  assert.deepEqual(unmetRequirements(adapter, requires), [
    'the feature `shader-f16`',
    'maxStorageBuffersPerShaderStage of 10 (the adapter offers 8)',
    'the limit maxBufferSize (the adapter does not report it)',
  ]);
});

test('intermediates share buffers only when their kernels do not overlap', () => {
  const buffer = (n, place) => ({ name: `b${n}`, dtype: 'f32', shape: [n], place });
  // b0 input -> k0 -> b1 -> k1 -> b2 -> k2 -> b3 (output); b4 is written by k0 and read by k2.
  const manifest = {
    buffers: [buffer(4, { input: 0 }), buffer(8, { arena: 0 }), buffer(4, { arena: 64 }), buffer(8, { arena: 128 }),
      buffer(2, { arena: 192 }), buffer(1, 'unplaced')],
    kernels: [{ params: [0, 1, 4] }, { params: [1, 2] }, { params: [2, 4, 3] }],
    outputs: [{ buffer: 3 }],
  };
  const { of, sizes } = shareIntermediates(manifest);
  // b1 (k0-k1) and b3 (k2 onwards) share; b2 (k1-k2) and b4 (k0-k2) overlap everything else.
  assert.equal(of[1], of[3]);
  assert.equal(new Set([of[1], of[2], of[4]]).size, 3);
  assert.equal(of[0], undefined);
  assert.equal(of[5], undefined);
  assert.deepEqual([...sizes].sort((a, b) => a - b), [8, 16, 32]);
});

test('without WebGPU, loading says so; a manifest that is not JSON is named', async () => {
  const dir = env('NNC_WGSL_BUNDLE');
  const garbage = async () => new TextEncoder().encode('{ not json');
  await assert.rejects(loadBundle(dir, { gpu: null, readFile: garbage }), (e) => e instanceof NncError && /manifest\.json is not JSON/.test(e.message));
  await assert.rejects(loadBundle(dir, { gpu: null, readFile: readerOf(dir) }), (e) => e instanceof NncError && /has no WebGPU/.test(e.message));
});

test('a loaded bundle runs, and refuses inputs of the wrong type or size', async () => {
  Object.assign(globalThis, globals);
  const dir = env('NNC_WGSL_BUNDLE');
  const model = await loadBundle(dir, { gpu: create([]), readFile: readerOf(dir) });
  const [port] = model.inputs;
  const count = numel(port.shape);
  await assert.rejects(model.run({ [port.name]: new Float32Array(count - 1) }), new RegExp(`input \`${port.name}\` .* needs a Float32Array of ${count} elements; got Float32Array of ${count - 1}`));
  await assert.rejects(model.run({}), /got nothing/);
  const { outputs } = await model.run([new Float32Array(count).fill(0.5)]);
  const [out] = model.outputs;
  assert.equal(outputs[out.name].length, numel(out.shape));
  assert.ok(outputs[out.name].every(Number.isFinite));
  assert.ok(model.gpuBytes <= model.gpuBytesUnshared, `${model.gpuBytes} > ${model.gpuBytesUnshared}`);
  model.destroy();
});
