// nnc's WebGPU runtime: runs a bundle written by
//   nnc compile MODEL --target wgsl --device webgpu -o DIR
// in a web page (or under Node with the `webgpu` package). No framework, no build step.
//
//   import { loadBundle } from './nnc-webgpu.js';
//   const model = await loadBundle('bundle/');          // a URL, relative to the page
//   const { outputs } = await model.run({ input: new Float32Array(3 * 224 * 224) });
//
// Loading checks the manifest against `manifest.schema.js` (generated from the Rust types
// that write it) and the bundle format, checks the adapter against the features and limits the
// manifest requires, then creates every buffer, pipeline and bind group once and uploads the
// weights. `run` writes the inputs, records every kernel into one command submission, and reads
// back only the outputs.
//
// Data layout on the GPU, as nnc's Rust runtime (crates/nnc-wgsl/src/runtime.rs) lays it out:
// f32, f16, i32 and u32 as on the host; i64 and u64 as their 8 bytes (values must fit in 32
// bits, which WGSL computes with); i8 and i16 sign-extended, u8, u16 and bool zero-extended to
// 32-bit words. Each buffer takes a multiple of 4 bytes, at least 4.

import schema from './manifest.schema.js';
import { validate } from './schema.js';

/** The bundle format this runtime reads (`nnc_kernel::bundle::FORMAT`). */
export const FORMAT = 2;

/** Everything that can go wrong loading or running a bundle, said in words. */
export class NncError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NncError';
  }
}

/** Per dtype: the typed array inputs and outputs use, and the bytes per element on the host. */
const DTYPES = {
  f32: { array: Float32Array, host: 4 },
  f16: { array: Uint16Array, host: 2 },
  i32: { array: Int32Array, host: 4 },
  u32: { array: Uint32Array, host: 4 },
  i64: { array: BigInt64Array, host: 8 },
  u64: { array: BigUint64Array, host: 8 },
  i16: { array: Int16Array, host: 2 },
  u16: { array: Uint16Array, host: 2 },
  i8: { array: Int8Array, host: 1 },
  u8: { array: Uint8Array, host: 1 },
  bool: { array: Uint8Array, host: 1 },
};

function dtypeInfo(dtype, what) {
  const info = DTYPES[dtype];
  if (!info) throw new NncError(`${what} is ${dtype}, which WGSL has no layout for`);
  return info;
}

/** The number of elements of a tensor of `shape`. */
export const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** The typed array class that holds tensors of `dtype` (see the top of this file). */
export function arrayType(dtype) {
  return dtypeInfo(dtype, 'a tensor').array;
}

/** Bytes a tensor takes on the GPU (a multiple of 4, at least 4). */
export function gpuBytes(dtype, count) {
  const per = dtype === 'f16' ? 2 : dtype === 'i64' || dtype === 'u64' ? 8 : 4;
  return Math.max(4, Math.ceil((count * per) / 4) * 4);
}

/** A typed array of `dtype` as the bytes of its GPU layout (see the top of this file). */
export function toGpu(dtype, values, what) {
  const out = new ArrayBuffer(gpuBytes(dtype, values.length));
  switch (dtype) {
    case 'f32': case 'f16': case 'i32': case 'u32':
      new values.constructor(out).set(values);
      break;
    case 'i64': case 'u64': {
      const [lo, hi] = dtype === 'i64' ? [-(2n ** 31n), 2n ** 31n - 1n] : [0n, 2n ** 32n - 1n];
      const bad = values.find((v) => v < lo || v > hi);
      if (bad !== undefined) {
        throw new NncError(`${what} holds the ${dtype} value ${bad}, which does not fit the 32 bits WGSL computes with`);
      }
      new values.constructor(out).set(values);
      break;
    }
    case 'i8': case 'i16':
      new Int32Array(out).set(values);
      break;
    case 'u8': case 'u16':
      new Uint32Array(out).set(values);
      break;
    case 'bool':
      new Uint32Array(out).set(values.map((v) => (v ? 1 : 0)));
      break;
    default:
      throw new NncError(`${what} is ${dtype}, which WGSL has no layout for`);
  }
  return new Uint8Array(out);
}

/** The typed array of `count` elements of `dtype` from the bytes of its GPU layout. */
export function fromGpu(dtype, bytes, count) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (dtype) {
    case 'f32': case 'f16': case 'i32': case 'u32': case 'i64': case 'u64':
      return new DTYPES[dtype].array(buffer, 0, count);
    case 'i8': case 'i16': case 'u8': case 'u16':
      return DTYPES[dtype].array.from(new Int32Array(buffer, 0, count));
    case 'bool':
      return Uint8Array.from(new Uint32Array(buffer, 0, count), (w) => (w !== 0 ? 1 : 0));
    default:
      throw new NncError(`an output of ${dtype}, which WGSL has no layout for`);
  }
}

/** The host bytes of a tensor (as `weights.bin` holds them) as a typed array of `dtype`. */
export function fromHost(dtype, bytes, count) {
  const { array, host } = dtypeInfo(dtype, 'a weight');
  const copy = bytes.slice(0, count * host);
  return new array(copy.buffer, copy.byteOffset, count);
}

/**
 * Which GPU buffer each intermediate shares: intermediates whose kernels do not overlap (from
 * the first kernel that binds one to the last, or to the end for an output) take the same
 * buffer, best fit first. Returns `{ of: { bufferIndex: slot }, sizes: [bytes per slot] }`;
 * inputs, weights and unbound buffers get buffers of their own.
 */
export function shareIntermediates(manifest) {
  const first = new Map();
  const last = new Map();
  manifest.kernels.forEach((k, at) => {
    for (const b of k.params) {
      if (!first.has(b)) first.set(b, at);
      last.set(b, at);
    }
  });
  for (const o of manifest.outputs) last.set(o.buffer, Infinity);
  const candidates = manifest.buffers
    .map((b, i) => ({ i, bytes: gpuBytes(b.dtype, numel(b.shape)), arena: b.place.arena !== undefined }))
    .filter((b) => b.arena && first.has(b.i))
    .sort((a, b) => first.get(a.i) - first.get(b.i) || a.i - b.i);
  const slots = []; // { bytes, busyUntil }
  const of = {};
  for (const b of candidates) {
    let best = -1;
    slots.forEach((slot, s) => {
      const free = slot.busyUntil < first.get(b.i);
      if (free && slot.bytes >= b.bytes && (best < 0 || slot.bytes < slots[best].bytes)) best = s;
    });
    if (best < 0) {
      slots.push({ bytes: b.bytes, busyUntil: -1 });
      best = slots.length - 1;
    }
    slots[best].busyUntil = last.get(b.i);
    of[b.i] = best;
  }
  return { of, sizes: slots.map((s) => s.bytes) };
}

/** What the adapter lacks of `requires` (features, then limits), each in words. */
export function unmetRequirements(adapter, requires) {
  const missing = [];
  for (const feature of requires?.features ?? []) {
    if (!adapter.features.has(feature)) missing.push(`the feature \`${feature}\``);
  }
  for (const [name, need] of Object.entries(requires?.limits ?? {})) {
    const have = adapter.limits[name];
    if (have === undefined) missing.push(`the limit ${name} (the adapter does not report it)`);
    else if (have < need) missing.push(`${name} of ${need} (the adapter offers ${have})`);
  }
  return missing;
}

/**
 * An adapter as `{ limits, features }` with WebGPU's names: what `nnc compile --device FILE.json`
 * reads to schedule for that adapter.
 */
export function describeAdapter(adapter) {
  const limits = {};
  // The limits are getters on the prototype: `for ... in` walks them.
  for (const name in adapter.limits) {
    if (typeof adapter.limits[name] === 'number') limits[name] = adapter.limits[name];
  }
  return { limits, features: [...adapter.features].sort() };
}

/**
 * Checks a parsed manifest: that it conforms to the schema, is of this runtime's format and for
 * the wgsl target. Throws an NncError saying what is wrong.
 */
export function checkManifest(manifest, where = 'manifest.json') {
  const errors = validate(schema, manifest);
  if (errors.length > 0) {
    const shown = errors.slice(0, 5).join('; ');
    const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
    throw new NncError(`${where} is not a bundle manifest: ${shown}${more}`);
  }
  if (manifest.format !== FORMAT) {
    throw new NncError(
      `${where}: bundle format ${manifest.format}, and this runtime reads format ${FORMAT} ` +
        `(compile the model with the nnc this runtime came with)`,
    );
  }
  if (manifest.target !== 'wgsl') {
    throw new NncError(`${where}: a bundle for the ${manifest.target} target; this runtime runs wgsl bundles`);
  }
  const listed = new Set(manifest.files.map((f) => f.path));
  const unlisted = manifest.kernels.find((k) => !listed.has(k.code.file?.path));
  if (unlisted) throw new NncError(`${where}: kernel \`${unlisted.name}\` names no shader file the bundle lists`);
}

async function fetchBytes(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new NncError(`cannot fetch ${url}: ${e.message}`);
  }
  if (!response.ok) throw new NncError(`cannot fetch ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Loads the bundle at `base` (a folder URL; a relative one resolves against the page) onto a
 * WebGPU device.
 * @param {string | URL} base
 * @param {{ gpu?: GPU, readFile?: (path: string) => Promise<Uint8Array>, powerPreference?: string,
 *           onProgress?: (what: string) => void }} [options]
 *   `gpu`: `navigator.gpu` by default; `readFile`: how to read a bundle file by its path
 *   relative to the folder (fetch by default); `onProgress`: told each step as it starts.
 * @returns {Promise<Model>}
 */
export async function loadBundle(base, options = {}) {
  const gpu = options.gpu ?? globalThis.navigator?.gpu;
  const folder = String(base).endsWith('/') ? String(base) : `${base}/`;
  const baseUrl = globalThis.location ? new URL(folder, globalThis.location.href) : folder;
  const readFile = options.readFile ?? ((path) => fetchBytes(new URL(path, baseUrl)));
  const started = performance.now();
  const progress = options.onProgress ?? (() => {});
  progress('fetching the bundle');

  const manifestBytes = await readFile('manifest.json');
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (e) {
    throw new NncError(`${folder}manifest.json is not JSON: ${e.message}`);
  }
  checkManifest(manifest, `${folder}manifest.json`);
  let fetched = 0;
  const counted = async (bytes) => {
    fetched += 1;
    progress(`fetching the bundle: ${fetched} of ${manifest.files.length + 1} files`);
    return bytes;
  };
  const [weights, ...texts] = await Promise.all([
    readFile('weights.bin').then(counted),
    ...manifest.files.map(async (f) => new TextDecoder().decode(await counted(await readFile(f.path)))),
  ]);
  progress('fetched the bundle');
  if (weights.byteLength !== manifest.weights_bytes) {
    throw new NncError(`${folder}weights.bin has ${weights.byteLength} bytes; the manifest says ${manifest.weights_bytes}`);
  }
  const code = new Map(manifest.files.map((f, i) => [f.path, texts[i]]));

  if (!gpu) {
    throw new NncError(
      'this browser has no WebGPU (navigator.gpu is missing): use a browser with WebGPU enabled, on a secure ' +
        'origin (https or localhost)',
    );
  }
  progress('requesting a WebGPU adapter');
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new NncError('WebGPU is there but offers no adapter (no usable GPU or software renderer)');
  const unmet = unmetRequirements(adapter, manifest.requires);
  if (unmet.length > 0) {
    throw new NncError(
      `this adapter cannot run the bundle: it needs ${unmet.join(', ')}. Compile for this adapter with ` +
        '`nnc compile --device FILE.json` (the example page shows the adapter\'s description)',
    );
  }
  const device = await adapter.requestDevice({
    // Timestamp queries where the adapter has them, for `Model.profile`; never required.
    requiredFeatures: [
      ...(manifest.requires?.features ?? []),
      ...(adapter.features.has('timestamp-query') ? ['timestamp-query'] : []),
    ],
    requiredLimits: manifest.requires?.limits ?? {},
  });
  const model = await Model.create(device, adapter, manifest, weights, code, progress);
  // Held for the model's life: under Node, Dawn frees the device when its GPU object is
  // collected, and a later run would crash.
  model.gpu = gpu;
  model.loadMs = performance.now() - started;
  model.bundleBytes = manifestBytes.byteLength + weights.byteLength + manifest.files.reduce((a, f) => a + f.bytes, 0);
  return model;
}

/** A bundle on a WebGPU device, ready to run. */
export class Model {
  static async create(device, adapter, manifest, weights, code, progress = () => {}) {
    const model = new Model();
    model.device = device;
    model.adapter = adapter;
    model.adapterInfo = adapter.info ?? {};
    model.manifest = manifest;
    model.lost = null;
    device.lost.then((info) => {
      model.lost = info.message || info.reason || 'the device was lost';
    });
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const slots = shareIntermediates(manifest);
    const shared = slots.sizes.map((size, i) => device.createBuffer({ label: `intermediates ${i}`, size, usage }));
    model.buffers = manifest.buffers.map((b, i) => {
      const count = numel(b.shape);
      dtypeInfo(b.dtype, `buffer \`${b.name}\``);
      if (slots.of[i] !== undefined) return shared[slots.of[i]];
      const buffer = device.createBuffer({ label: b.name, size: gpuBytes(b.dtype, count), usage });
      if (b.place.weight) {
        const { offset, bytes } = b.place.weight;
        const host = fromHost(b.dtype, weights.subarray(offset, offset + bytes), count);
        device.queue.writeBuffer(buffer, 0, toGpu(b.dtype, host, `weight \`${b.name}\``));
      }
      return buffer;
    });
    model.gpuBytes = [...new Set(model.buffers)].reduce((a, b) => a + b.size, 0);
    model.gpuBytesUnshared = manifest.buffers.reduce((a, b) => a + gpuBytes(b.dtype, numel(b.shape)), 0);

    // One pipeline per distinct shader text, compiled in parallel.
    const pipelines = new Map();
    let compiled = 0;
    for (const k of manifest.kernels) {
      const text = code.get(k.code.file.path);
      if (pipelines.has(text)) continue;
      const module = device.createShaderModule({ label: k.name, code: text });
      pipelines.set(text, (async () => {
        const info = await module.getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === 'error');
        if (errors.length > 0) {
          const m = errors[0];
          throw new NncError(`kernel \`${k.name}\`: the browser rejected its WGSL at line ${m.lineNum}: ${m.message}`);
        }
        const pipeline = await device.createComputePipelineAsync({
          label: k.name,
          layout: 'auto',
          compute: { module, entryPoint: k.code.file.entry },
        });
        compiled += 1;
        progress(`compiling kernels: ${compiled} of ${pipelines.size} done`);
        return pipeline;
      })());
    }
    progress(`compiling kernels: 0 of ${pipelines.size} done`);
    model.kernels = await Promise.all(manifest.kernels.map(async (k) => {
      const pipeline = await pipelines.get(code.get(k.code.file.path));
      const bindGroup = device.createBindGroup({
        label: k.name,
        layout: pipeline.getBindGroupLayout(0),
        entries: k.params.map((b, i) => {
          // A shared buffer may be larger than this tensor: bind just the tensor's bytes.
          const size = gpuBytes(manifest.buffers[b].dtype, numel(manifest.buffers[b].shape));
          return { binding: i, resource: { buffer: model.buffers[b], offset: 0, size } };
        }),
      });
      return { name: k.name, pipeline, bindGroup, grid: k.grid };
    }));
    model.staging = manifest.outputs.map((o) => device.createBuffer({
      label: `${o.name} (read back)`,
      size: gpuBytes(o.dtype, numel(o.shape)),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    }));
    const [memory, validation] = [await device.popErrorScope(), await device.popErrorScope()];
    if (memory || validation) {
      throw new NncError(`creating the bundle's buffers and pipelines failed: ${(memory || validation).message}`);
    }
    model.pending = Promise.resolve();
    model.pipelineCount = pipelines.size;
    return model;
  }

  /** The inputs as `{ name, dtype, shape }`. */
  get inputs() {
    return this.manifest.inputs.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  }

  /** The outputs as `{ name, dtype, shape }`. */
  get outputs() {
    return this.manifest.outputs.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  }

  /**
   * Runs the model once: `inputs` maps each input's name to a typed array of its dtype (see
   * `DTYPES`) and element count, or is an array in the manifest's order. Resolves to
   * `{ outputs: { name: TypedArray } }`. Runs queue one after another.
   */
  run(inputs) {
    const result = this.pending.then(() => this.runNow(inputs));
    this.pending = result.catch(() => {});
    return result;
  }

  async runNow(inputs) {
    this.writeInputs(inputs);
    const device = this.device;
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: 'nnc run' });
    this.encodeKernels(encoder);
    this.manifest.outputs.forEach((o, i) => {
      encoder.copyBufferToBuffer(this.buffers[o.buffer], 0, this.staging[i], 0, this.staging[i].size);
    });
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new NncError(`running the bundle failed: ${error.message}`);
    await Promise.all(this.staging.map((s) => s.mapAsync(GPUMapMode.READ)));
    const outputs = {};
    this.manifest.outputs.forEach((o, i) => {
      const bytes = new Uint8Array(this.staging[i].getMappedRange()).slice();
      this.staging[i].unmap();
      outputs[o.name] = fromGpu(o.dtype, bytes, numel(o.shape));
    });
    return { outputs };
  }

  /** Checks the inputs (as `run` takes them) and writes them to their buffers. */
  writeInputs(inputs) {
    if (this.lost) throw new NncError(`the WebGPU device was lost: ${this.lost}`);
    this.manifest.inputs.forEach((port, i) => {
      const values = Array.isArray(inputs) ? inputs[i] : inputs?.[port.name];
      const { array } = dtypeInfo(port.dtype, `input \`${port.name}\``);
      const want = numel(port.shape);
      if (!(values instanceof array) || values.length !== want) {
        const got = values === undefined ? 'nothing' : `${values?.constructor?.name} of ${values?.length}`;
        throw new NncError(
          `input \`${port.name}\` (${port.dtype}[${port.shape}]) needs a ${array.name} of ${want} elements; got ${got}`,
        );
      }
      this.device.queue.writeBuffer(this.buffers[port.buffer], 0, toGpu(port.dtype, values, `input \`${port.name}\``));
    });
  }

  /**
   * Records every kernel with work into `encoder`, one compute pass each (a pass boundary orders
   * one kernel's writes before the next's reads); with `querySet`, kernel k's pass writes
   * timestamps 2k and 2k + 1 at its start and end.
   */
  encodeKernels(encoder, querySet) {
    this.kernels.forEach((k, at) => {
      if (k.grid.includes(0)) return;
      const timestampWrites = querySet
        ? { querySet, beginningOfPassWriteIndex: 2 * at, endOfPassWriteIndex: 2 * at + 1 }
        : undefined;
      const pass = encoder.beginComputePass({ label: k.name, timestampWrites });
      pass.setPipeline(k.pipeline);
      pass.setBindGroup(0, k.bindGroup);
      pass.dispatchWorkgroups(k.grid[0], k.grid[1], k.grid[2]);
      pass.end();
    });
  }

  /** Whether `profile` can time kernels (the adapter has timestamp queries). */
  get timestamps() {
    return this.device.features.has('timestamp-query');
  }

  /**
   * Each kernel's GPU time: `runs` runs on `inputs` with timestamps around every kernel's pass,
   * the median per kernel. Resolves to `[{ name, ms, share }]`, slowest first (`share`: of the
   * kernels' total). Browsers may round timestamps (Chrome to 100 µs unless its developer
   * features are on).
   */
  async profile(inputs, runs = 5) {
    const result = this.pending.then(() => this.profileNow(inputs, runs));
    this.pending = result.catch(() => {});
    return result;
  }

  async profileNow(inputs, runs) {
    if (!this.timestamps) {
      throw new NncError('this adapter has no timestamp queries (the `timestamp-query` feature): no kernel times');
    }
    const device = this.device;
    const count = 2 * this.kernels.length;
    const querySet = device.createQuerySet({ type: 'timestamp', count });
    const resolved = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const samples = this.kernels.map(() => []);
    try {
      for (let r = 0; r < runs; r += 1) {
        this.writeInputs(inputs);
        const encoder = device.createCommandEncoder({ label: 'nnc profile' });
        this.encodeKernels(encoder, querySet);
        encoder.resolveQuerySet(querySet, 0, count, resolved, 0);
        encoder.copyBufferToBuffer(resolved, 0, read, 0, 8 * count);
        device.queue.submit([encoder.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const ticks = new BigUint64Array(read.getMappedRange().slice(0));
        read.unmap();
        this.kernels.forEach((k, at) => {
          if (!k.grid.includes(0)) samples[at].push(Number(ticks[2 * at + 1] - ticks[2 * at]) / 1e6);
        });
      }
    } finally {
      querySet.destroy();
      resolved.destroy();
      read.destroy();
    }
    const medians = samples.map((s) => [...s].sort((a, b) => a - b)[Math.floor(s.length / 2)] ?? 0);
    const total = medians.reduce((a, b) => a + b, 0) || 1;
    return this.kernels
      .map((k, at) => ({ name: k.name, ms: medians[at], share: medians[at] / total }))
      .sort((a, b) => b.ms - a.ms);
  }

  /** Frees the GPU buffers (the model cannot run afterwards). */
  destroy() {
    for (const b of [...this.buffers, ...this.staging]) b.destroy();
    this.device.destroy();
  }
}
