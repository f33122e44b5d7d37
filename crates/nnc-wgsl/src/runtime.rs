//! Running a compiled [`Program`] on a wgpu adapter.
//!
//! The wgpu device is created once per process and adapter, and shared by every program.
//! Everything else is created once, in [`WgslProgram::new`]: one storage buffer per program
//! buffer (weights uploaded then), one pipeline per distinct WGSL text, one bind group per
//! kernel, and a staging buffer per output. [`WgslProgram::run`] writes the inputs, records every kernel into
//! one command encoder followed by the copies of the outputs, submits once, and maps back only
//! the outputs.
//!
//! Data layout on the GPU (see [`crate::print`]): `f32`, `f16`, `i32`, `u32` as on the host;
//! `i64` as its little-endian bytes, read as (low, high) `i32` pairs (uploaded values must fit
//! in `i32`), `u64` likewise (values must fit in `u32`); `i8`/`i16` sign-extended and
//! `u8`/`u16`/`bool` zero-extended to 32-bit words.

use crate::print::{bound_twice, compile_kernel, PrintOptions};
use crate::WgslError;
use bytes::Bytes;
use nnc_ir::{DType, TensorData};
use nnc_kernel::backend::Interface;
use nnc_kernel::program::BufferKind;
use nnc_kernel::program::Program;
use nnc_kernel::Access;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgpu::util::DeviceExt;

/// How long a run waits for its read-backs once the device reports its work done: generous, since
/// a software adapter on a loaded machine can be slow to run the callbacks.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits of the adapter `gpu(adapter)` picks (the first one, or the first whose name
/// contains `adapter`).
pub fn adapter_limits(adapter: Option<&str>) -> Result<wgpu::Limits, WgslError> {
    Ok(gpu(adapter)?.limits)
}

/// The adapter `gpu(adapter)` picks, as one line: its name, backend, driver and driver version.
pub fn adapter_fingerprint(adapter: Option<&str>) -> Result<String, WgslError> {
    let info = gpu(adapter)?.info;
    Ok(format!("{} ({:?}, {} {})", info.name, info.backend, info.driver, info.driver_info))
}

/// The names of the adapters wgpu finds (all backends compiled in).
pub fn adapters() -> Vec<String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())).iter().map(|a| a.get_info().name).collect()
}

struct KernelRun {
    pipeline: usize,
    bind_group: wgpu::BindGroup,
    grid: [u32; 3],
}

/// A program ready to run on one wgpu device.
pub struct WgslProgram {
    info: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    program: Program,
    /// One per program buffer.
    buffers: Vec<wgpu::Buffer>,
    pipelines: Vec<wgpu::ComputePipeline>,
    kernels: Vec<KernelRun>,
    wgsl: Vec<String>,
    /// Per program output: a staging buffer to map.
    staging: Vec<wgpu::Buffer>,
    submissions: u64,
    interface: Interface,
    /// The device writes timestamps at the start and end of a compute pass.
    timestamps: bool,
}

fn wgpu_err(e: impl std::fmt::Display) -> WgslError {
    WgslError::Wgpu(e.to_string())
}

/// Bytes a program buffer takes on the GPU (at least 4, a multiple of 4).
pub(crate) fn gpu_bytes(dtype: DType, numel: i64) -> u64 {
    let per = match dtype {
        DType::F16 => 2,
        DType::I64 | DType::U64 => 8,
        _ => 4,
    };
    ((numel.max(0) as u64 * per).div_ceil(4) * 4).max(4)
}

/// Why the GPU layout has no place for tensors of `d`.
fn unsupported(d: DType) -> String {
    let why = match d {
        DType::F64 => "WGSL has no f64",
        DType::BF16 => "WGSL has no bf16",
        d if d.is_minifloat() => "WGSL has no float8 or float4",
        d if d.is_sub_byte_int() => "WGSL has no 4- or 2-bit integers",
        _ => "no GPU layout",
    };
    format!("{} tensors are not supported by the WGSL backend: {why}", d.name())
}

/// A tensor in the GPU layout.
fn encode(name: &str, t: &TensorData) -> Result<Vec<u8>, WgslError> {
    let raw = t.bytes();
    let mut out: Vec<u8> = match t.dtype() {
        DType::F32 | DType::F16 | DType::I32 | DType::U32 => raw.to_vec(),
        DType::I64 => {
            if let Some(v) = t.to_i64_vec().into_iter().find(|&v| i32::try_from(v).is_err()) {
                return Err(WgslError::Data(format!(
                    "`{name}` holds the i64 value {v}, which does not fit in the i32 the WGSL backend computes with"
                )));
            }
            raw.to_vec()
        }
        DType::U64 => {
            if let Some(v) = t.to_i64_vec().into_iter().map(|v| v as u64).find(|&v| u32::try_from(v).is_err()) {
                return Err(WgslError::Data(format!(
                    "`{name}` holds the u64 value {v}, which does not fit in the u32 the WGSL backend computes with"
                )));
            }
            raw.to_vec()
        }
        DType::I8 | DType::I16 => t.to_i64_vec().into_iter().flat_map(|v| (v as i32).to_le_bytes()).collect(),
        DType::U8 | DType::U16 | DType::Bool => {
            t.to_i64_vec().into_iter().flat_map(|v| (v as u32).to_le_bytes()).collect()
        }
        d => return Err(WgslError::Data(format!("`{name}`: {}", unsupported(d)))),
    };
    out.resize(gpu_bytes(t.dtype(), t.len() as i64) as usize, 0);
    Ok(out)
}

/// A tensor from its GPU layout.
fn decode(dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Result<TensorData, WgslError> {
    let n: usize = shape.iter().product();
    let words = || bytes.chunks_exact(4).take(n).map(|c| [c[0], c[1], c[2], c[3]]);
    let data: Vec<u8> = match dtype {
        DType::F32 | DType::I32 | DType::U32 => bytes[..4 * n].to_vec(),
        DType::F16 => bytes[..2 * n].to_vec(),
        DType::I64 | DType::U64 => bytes[..8 * n].to_vec(),
        DType::I8 => words().map(|w| i32::from_le_bytes(w) as i8 as u8).collect(),
        DType::U8 => words().map(|w| w[0]).collect(),
        DType::Bool => words().map(|w| (u32::from_le_bytes(w) != 0) as u8).collect(),
        DType::I16 | DType::U16 => words().flat_map(|w| [w[0], w[1]]).collect(),
        d => return Err(WgslError::Data(unsupported(d))),
    };
    TensorData::from_bytes(dtype, shape, Bytes::from(data)).map_err(|e| WgslError::Data(e.to_string()))
}

/// A device on one adapter, shared by every [`WgslProgram`] of the process that asks for that
/// adapter: creating a wgpu instance and device takes longer than preparing a small program.
#[derive(Clone)]
struct Gpu {
    info: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// The device has `SHADER_F16`.
    f16: bool,
    /// The device has `TIMESTAMP_QUERY` (kernels are timed on the GPU's clock).
    timestamps: bool,
    limits: wgpu::Limits,
    /// Set when wgpu reports the device lost: the next program gets a new one.
    lost: Arc<AtomicBool>,
}

/// The device for `adapter` (the first adapter, or the first whose name contains it), created on
/// first use. A lost device is replaced on the next call.
fn gpu(adapter: Option<&str>) -> Result<Gpu, WgslError> {
    static DEVICES: Mutex<Vec<(Option<String>, Gpu)>> = Mutex::new(Vec::new());
    let key = adapter.map(str::to_string);
    let mut devices = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    devices.retain(|(_, gpu)| !gpu.lost.load(Ordering::Relaxed));
    if let Some((_, gpu)) = devices.iter().find(|(k, _)| *k == key) {
        return Ok(gpu.clone());
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
    let chosen = match adapter {
        Some(want) => all.into_iter().find(|a| a.get_info().name.contains(want)),
        None => all.into_iter().next(),
    };
    let Some(adapter_handle) = chosen else {
        return Err(WgslError::NoAdapter(match adapter {
            Some(want) => format!("none named like `{want}` among {names:?}"),
            None => "wgpu found none (on Linux, install mesa-vulkan-drivers and libvulkan1 for lavapipe)".into(),
        }));
    };
    let info = adapter_handle.get_info();
    let f16 = adapter_handle.features().contains(wgpu::Features::SHADER_F16);
    let timestamps = adapter_handle.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    let limits = adapter_handle.limits();
    let mut features = wgpu::Features::empty();
    features.set(wgpu::Features::SHADER_F16, f16);
    features.set(wgpu::Features::TIMESTAMP_QUERY, timestamps);
    let (device, queue) = pollster::block_on(adapter_handle.request_device(&wgpu::DeviceDescriptor {
        label: Some("nnc"),
        required_features: features,
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .map_err(wgpu_err)?;
    // Errors are caught by scopes (thread-local, so programs on other threads do not see each
    // other's); anything else is printed, never a panic.
    device.on_uncaptured_error(std::sync::Arc::new(|e| eprintln!("nnc-wgsl: uncaptured wgpu error: {e}")));
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::Relaxed));
    let gpu = Gpu { info, device, queue, f16, timestamps, limits, lost };
    devices.push((key, gpu.clone()));
    Ok(gpu)
}

impl WgslProgram {
    /// Prepares `program` (compiled for `Device::gpu()`) on the first adapter, or the first whose
    /// name contains `adapter`: prints and validates every kernel, creates the pipelines (one per
    /// distinct WGSL text), buffers and bind groups, and uploads the weights.
    pub fn new(program: &Program, adapter: Option<&str>) -> Result<WgslProgram, WgslError> {
        let Gpu { info, device, queue, f16, timestamps, limits, .. } = gpu(adapter)?;
        // llvmpipe ends every loop after 65,535 iterations per invocation, silently: the
        // program must have been legalized for that (`Device::max_loop_iterations`).
        let limit = program.device.max_loop_iterations;
        if info.name.contains("llvmpipe") && !(1..=65_535).contains(&limit) {
            return Err(WgslError::Data(format!(
                "program `{}` was compiled for loops of up to {limit} iterations (0: any), which llvmpipe \
                 stops at 65,535; compile it for `WgslBackend::device()`",
                program.fused.name
            )));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);

        let fused = &program.fused;
        let mut buffers = Vec::with_capacity(fused.buffers.len());
        for b in &fused.buffers {
            let size = gpu_bytes(b.dtype, b.numel());
            if size > limits.max_storage_buffer_binding_size {
                return Err(WgslError::Data(format!(
                    "buffer `{}` takes {size} bytes, more than the adapter's {} per storage binding",
                    b.name, limits.max_storage_buffer_binding_size
                )));
            }
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
            let buffer = match &b.kind {
                BufferKind::Constant(t) => device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&b.name),
                    contents: &encode(&b.name, t)?,
                    usage,
                }),
                _ => device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&b.name),
                    size,
                    usage,
                    mapped_at_creation: false,
                }),
            };
            buffers.push(buffer);
        }

        let mut cache: HashMap<String, usize> = HashMap::new();
        let mut pipelines = Vec::new();
        let mut kernels = Vec::new();
        let mut wgsl = Vec::new();
        for (group, kernel) in fused.groups.iter().zip(&program.kernels) {
            let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
            let params: Vec<_> = kernel.params().collect();
            if params.len() != ids.len() {
                return Err(WgslError::Unsupported {
                    kernel: kernel.name.clone(),
                    message: format!("{} global buffers for {} program buffers", params.len(), ids.len()),
                });
            }
            if params.len() as u32 > limits.max_storage_buffers_per_shader_stage {
                return Err(WgslError::Unsupported {
                    kernel: kernel.name.clone(),
                    message: format!(
                        "{} storage buffers, more than the adapter's {} per shader stage",
                        params.len(),
                        limits.max_storage_buffers_per_shader_stage
                    ),
                });
            }
            let force_read_write = bound_twice(&ids);
            let options = PrintOptions { f16, force_read_write: force_read_write.clone() };
            let text = compile_kernel(kernel, &options)?;
            let read_only: Vec<bool> =
                params.iter().zip(&force_read_write).map(|((_, b), &rw)| b.access == Access::Read && !rw).collect();
            let entries: Vec<wgpu::BindGroupLayoutEntry> = read_only
                .iter()
                .enumerate()
                .map(|(k, &ro)| wgpu::BindGroupLayoutEntry {
                    binding: k as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: ro },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&kernel.name),
                entries: &entries,
            });
            let pipeline = match cache.get(&text) {
                Some(&p) => p,
                None => {
                    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&kernel.name),
                        source: wgpu::ShaderSource::Wgsl(text.clone().into()),
                    });
                    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&kernel.name),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&kernel.name),
                        layout: Some(&pipeline_layout),
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    });
                    pipelines.push(pipeline);
                    cache.insert(text.clone(), pipelines.len() - 1);
                    pipelines.len() - 1
                }
            };
            let bind_entries: Vec<wgpu::BindGroupEntry> = ids
                .iter()
                .enumerate()
                .map(|(k, &id)| wgpu::BindGroupEntry { binding: k as u32, resource: buffers[id].as_entire_binding() })
                .collect();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&kernel.name),
                layout: &pipelines[pipeline].get_bind_group_layout(0),
                entries: &bind_entries,
            });
            kernels.push(KernelRun { pipeline, bind_group, grid: kernel.launch.grid });
            wgsl.push(text);
        }
        let staging = fused
            .outputs
            .iter()
            .map(|b| {
                let pb = &fused.buffers[b.index()];
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&pb.name),
                    size: gpu_bytes(pb.dtype, pb.numel()),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(wgpu_err(e));
        }
        Ok(WgslProgram {
            info,
            device,
            queue,
            program: program.clone(),
            buffers,
            pipelines,
            kernels,
            wgsl,
            staging,
            submissions: 0,
            interface: Interface::of(&program.fused),
            timestamps,
        })
    }

    /// The adapter's name and backend, for printing (`llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`).
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// How many times a command buffer was submitted to the queue (one per run).
    pub fn submissions(&self) -> u64 {
        self.submissions
    }

    /// The WGSL of each kernel, in execution order.
    pub fn wgsl(&self) -> &[String] {
        &self.wgsl
    }

    /// The program's inputs and outputs.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The kernels' names, in launch order.
    pub fn kernel_names(&self) -> Vec<String> {
        self.program.kernels.iter().map(|k| k.name.clone()).collect()
    }

    /// Runs the program once on `inputs`, then kernel `k` alone `repeats` times, each in a
    /// submission of its own waited for; returns the time of each: between the GPU's
    /// timestamps at the start and end of its compute pass where the adapter has timestamp
    /// queries, else the host's wall time of the submission (dispatch and wait included).
    pub fn time_kernel(&mut self, inputs: &[TensorData], k: usize, repeats: u32) -> Result<Vec<Duration>, WgslError> {
        self.run_reading(inputs, &[], false)?;
        let run = self.kernels.get(k).ok_or_else(|| WgslError::Data(format!("no kernel {k}")))?;
        let (pipeline, grid) = (&self.pipelines[run.pipeline], run.grid);
        // With timestamp queries, the GPU's own clock at the start and end of the pass;
        // otherwise the host's around a submission and its completion.
        let queries = self.timestamps.then(|| {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("nnc kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let buffer = |usage| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: 16,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
            let read = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
            (set, resolved, read)
        });
        let mut times = Vec::with_capacity(repeats as usize);
        for _ in 0..repeats {
            let start = Instant::now();
            let mut encoder =
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nnc timing") });
            {
                let timestamp_writes = queries.as_ref().map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                });
                let mut pass =
                    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
                if !grid.contains(&0) {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &run.bind_group, &[]);
                    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                }
            }
            if let Some((set, resolved, read)) = &queries {
                encoder.resolve_query_set(set, 0..2, resolved, 0);
                encoder.copy_buffer_to_buffer(resolved, 0, read, 0, 16);
            }
            self.queue.submit([encoder.finish()]);
            self.submissions += 1;
            self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).map_err(wgpu_err)?;
            let host = start.elapsed();
            let Some((_, _, read)) = &queries else {
                times.push(host);
                continue;
            };
            self.map_for_reading(&[read])?;
            let ticks = {
                let view = read.get_mapped_range(..).map_err(wgpu_err)?;
                let at = |i: usize| u64::from_le_bytes(view[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                at(1).saturating_sub(at(0))
            };
            read.unmap();
            let ns = ticks as f64 * f64::from(self.queue.get_timestamp_period());
            times.push(Duration::from_nanos(ns as u64));
        }
        Ok(times)
    }

    /// Whether [`Self::time_kernel`] reads the GPU's clock (timestamp queries) rather than the
    /// host's.
    pub fn timestamps(&self) -> bool {
        self.timestamps
    }

    /// How many distinct pipelines the kernels share.
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    /// Runs the program: one submission; only the outputs are read back.
    pub fn run(&mut self, inputs: &[TensorData]) -> Result<Vec<TensorData>, WgslError> {
        let outputs: Vec<usize> = self.program.fused.outputs.iter().map(|b| b.index()).collect();
        self.run_reading(inputs, &outputs, true)
    }

    /// Runs the program and reads back every program buffer (inputs, weights, intermediates and
    /// outputs, in [`nnc_kernel::program::Fused::buffers`] order): for checking kernels one by one.
    pub fn run_all_buffers(&mut self, inputs: &[TensorData]) -> Result<Vec<TensorData>, WgslError> {
        let all: Vec<usize> = (0..self.program.fused.buffers.len()).collect();
        self.run_reading(inputs, &all, false)
    }

    fn run_reading(
        &mut self,
        inputs: &[TensorData],
        read: &[usize],
        staged: bool,
    ) -> Result<Vec<TensorData>, WgslError> {
        let fused = &self.program.fused;
        self.interface.check(inputs).map_err(|e| WgslError::Data(e.to_string()))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        for (i, b) in fused.buffers.iter().enumerate() {
            if let BufferKind::Input(n) = b.kind {
                let t = &inputs[n];
                self.queue.write_buffer(&self.buffers[i], 0, &encode(&b.name, t)?);
            }
        }
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nnc run") });
        for k in &self.kernels {
            if k.grid.contains(&0) {
                continue;
            }
            // One pass per kernel: each pass boundary orders the storage writes before the next
            // kernel's reads.
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.pipelines[k.pipeline]);
            pass.set_bind_group(0, &k.bind_group, &[]);
            pass.dispatch_workgroups(k.grid[0], k.grid[1], k.grid[2]);
            drop(pass);
            if std::env::var_os("NNC_WGSL_SUBMIT_EACH").is_some() {
                // Debugging aid: one submission per kernel, each waited for.
                let done = std::mem::replace(
                    &mut encoder,
                    self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nnc run") }),
                );
                self.queue.submit([done.finish()]);
                self.submissions += 1;
                let _ = self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: None });
            }
        }
        let temp: Vec<wgpu::Buffer>;
        let targets: Vec<&wgpu::Buffer> = if staged {
            self.staging.iter().collect()
        } else {
            temp = read
                .iter()
                .map(|&i| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: self.buffers[i].size(),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .collect();
            temp.iter().collect()
        };
        for (&i, dst) in read.iter().zip(&targets) {
            encoder.copy_buffer_to_buffer(&self.buffers[i], 0, dst, 0, self.buffers[i].size());
        }
        self.queue.submit([encoder.finish()]);
        self.submissions += 1;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(wgpu_err(e));
        }
        self.map_for_reading(&targets)?;
        let mut out = Vec::with_capacity(read.len());
        for (&i, dst) in read.iter().zip(&targets) {
            let b = &fused.buffers[i];
            let t = {
                let view = dst.get_mapped_range(..).map_err(wgpu_err)?;
                decode(b.dtype, b.shape.iter().map(|&d| d as usize).collect(), &view)?
            };
            dst.unmap();
            out.push(t);
        }
        Ok(out)
    }

    /// Maps every read-back buffer and waits until each mapping has reported. The device is shared
    /// between threads (`DEVICES`), and whichever thread polls runs the callbacks: our poll can
    /// return while another thread is still inside our callback, so the wait is on the callbacks
    /// themselves, polling again until they arrive or `READ_BACK_TIMEOUT` passes.
    fn map_for_reading(&self, targets: &[&wgpu::Buffer]) -> Result<(), WgslError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        for dst in targets {
            let sender = sender.clone();
            dst.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = sender.send(r);
            });
        }
        drop(sender);
        let deadline = Instant::now() + READ_BACK_TIMEOUT;
        let mut mapped = 0;
        while mapped < targets.len() {
            self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(wgpu_err)?;
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => {
                    r.map_err(wgpu_err)?;
                    mapped += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    return Err(WgslError::Wgpu(format!(
                        "{} of {} read-backs completed within {:?}",
                        mapped,
                        targets.len(),
                        READ_BACK_TIMEOUT
                    )))
                }
            }
        }
        Ok(())
    }
}
