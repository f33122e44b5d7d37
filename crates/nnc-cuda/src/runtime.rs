//! Running a compiled [`Program`] on a CUDA GPU through the driver API (cudarc).
//!
//! [`CudaProgram::new`] first checks that the driver library (`libcuda.so.1`) can be loaded and
//! returns [`CudaError::NoDriver`] if not (cudarc would panic), then creates the context, prints
//! the program as one translation unit, compiles it with NVRTC for the device's compute
//! capability, loads the module, allocates one device buffer per program buffer and uploads the
//! weights, all once. [`CudaProgram::run`] copies the inputs in, launches every kernel on one
//! stream in order, and copies only the outputs back.
//!
//! Device buffers hold tensors in the host's layout (see [`crate::print`]), so tensors are copied
//! as raw bytes in both directions.

use crate::print::{entry_name, launch_dims, print_program, LaunchDims};
use crate::CudaError;
use bytes::Bytes;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use nnc_ir::TensorData;
use nnc_kernel::backend::Interface;
use nnc_kernel::program::BufferKind;
use nnc_kernel::program::Program;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name the driver library is loaded by.
pub const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// Checks that the CUDA driver library can be loaded (cudarc panics if it cannot): the one
/// check to make before any driver call.
pub fn check_driver() -> Result<(), CudaError> {
    check_driver_library(DRIVER_LIBRARY)?;
    Ok(())
}

/// Checks that the library `name` can be loaded and keeps it loaded (so cudarc's `dlopen` of
/// the same name finds it); [`CudaError::NoDriver`] otherwise.
pub fn check_driver_library(name: &str) -> Result<(), CudaError> {
    // SAFETY: loading the driver library runs its initialisers, which have no preconditions.
    match unsafe { libloading::Library::new(name) } {
        Ok(lib) => {
            std::mem::forget(lib);
            Ok(())
        }
        Err(e) => Err(CudaError::NoDriver(format!(
            "cannot load {name} ({e}): this machine has no NVIDIA driver; the CUDA backend can still print \
             CUDA C++ and check it with NVRTC and ptxas"
        ))),
    }
}

fn driver_err(e: impl std::fmt::Debug) -> CudaError {
    CudaError::Driver(format!("{e:?}"))
}

struct KernelRun {
    function: CudaFunction,
    dims: LaunchDims,
    /// Program buffers bound to the kernel's parameters, in order.
    params: Vec<usize>,
}

/// A program ready to run on one CUDA device.
pub struct CudaProgram {
    _context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    _module: Arc<CudaModule>,
    program: Program,
    buffers: Vec<CudaSlice<u8>>,
    kernels: Vec<KernelRun>,
    source: String,
    arch: String,
    device_name: String,
    interface: Interface,
}

impl CudaProgram {
    /// Prepares `program` (compiled for [`crate::CudaBackend`]'s device) on device 0.
    pub fn new(program: &Program) -> Result<CudaProgram, CudaError> {
        check_driver()?;
        let context = CudaContext::new(0).map_err(|e| CudaError::NoDriver(format!("no usable CUDA device: {e:?}")))?;
        let (major, minor) = context.compute_capability().map_err(driver_err)?;
        let arch = format!("sm_{major}{minor}");
        let device_name = context.name().unwrap_or_else(|_| "CUDA device".into());
        let stream = context.default_stream();

        let source = print_program(program)?;
        let ptx = crate::nvrtc::compile_ptx_named(&source, &arch, &format!("{}.cu", program.fused.name))?;
        let module = context.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(driver_err)?;

        let fused = &program.fused;
        let mut buffers = Vec::with_capacity(fused.buffers.len());
        for b in &fused.buffers {
            let bytes = (b.numel().max(0) as usize * b.dtype.size_bytes()).max(1);
            let slice = match &b.kind {
                BufferKind::Constant(t) => {
                    let mut raw = t.bytes().to_vec();
                    raw.resize(bytes, 0);
                    stream.clone_htod(&raw).map_err(driver_err)?
                }
                _ => stream.alloc_zeros::<u8>(bytes).map_err(driver_err)?,
            };
            buffers.push(slice);
        }
        let mut kernels = Vec::with_capacity(program.kernels.len());
        for (g, (group, kernel)) in fused.groups.iter().zip(&program.kernels).enumerate() {
            let params: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
            if kernel.params().count() != params.len() {
                return Err(CudaError::Unsupported {
                    kernel: kernel.name.clone(),
                    message: format!("{} global buffers for {} program buffers", kernel.params().count(), params.len()),
                });
            }
            let function = module.load_function(&entry_name(g, kernel)).map_err(driver_err)?;
            kernels.push(KernelRun { function, dims: launch_dims(kernel)?, params });
        }
        Ok(CudaProgram {
            _context: context,
            stream,
            _module: module,
            program: program.clone(),
            buffers,
            kernels,
            source,
            arch,
            device_name,
            interface: Interface::of(&program.fused),
        })
    }

    /// The device's name and architecture (`NVIDIA A100-SXM4-40GB (sm_80)`).
    pub fn device_name(&self) -> String {
        format!("{} ({})", self.device_name, self.arch)
    }

    /// The CUDA C++ the program runs.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the program and returns its outputs.
    pub fn run(&mut self, inputs: &[TensorData]) -> Result<Vec<TensorData>, CudaError> {
        let fused = &self.program.fused;
        self.interface.check(inputs).map_err(|e| CudaError::Data(e.to_string()))?;
        for (i, b) in fused.buffers.iter().enumerate() {
            if let BufferKind::Input(n) = b.kind {
                let t = &inputs[n];
                let raw = t.bytes();
                if !raw.is_empty() {
                    let mut view = self.buffers[i].slice_mut(0..raw.len());
                    self.stream.memcpy_htod(raw.as_ref(), &mut view).map_err(driver_err)?;
                }
            }
        }
        for k in 0..self.kernels.len() {
            self.launch(k)?;
        }
        let mut out = Vec::with_capacity(fused.outputs.len());
        for o in &fused.outputs {
            let b = &fused.buffers[o.index()];
            let n = b.numel().max(0) as usize * b.dtype.size_bytes();
            let mut host = self.stream.clone_dtoh(&self.buffers[o.index()]).map_err(driver_err)?;
            host.truncate(n);
            let shape = b.shape.iter().map(|&d| d as usize).collect();
            out.push(
                TensorData::from_bytes(b.dtype, shape, Bytes::from(host))
                    .map_err(|e| CudaError::Data(e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// Launches kernel `k` on the program's stream (asynchronously).
    fn launch(&self, k: usize) -> Result<(), CudaError> {
        let k = &self.kernels[k];
        if k.dims.grid.contains(&0) {
            return Ok(());
        }
        let config = LaunchConfig {
            grid_dim: (k.dims.grid[0], k.dims.grid[1], k.dims.grid[2]),
            block_dim: (k.dims.block[0], k.dims.block[1], k.dims.block[2]),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&k.function);
        for &p in &k.params {
            launch.arg(&self.buffers[p]);
        }
        // SAFETY: the parameters are the kernel's global buffers in order, each as large as
        // the program buffer the kernel was printed for.
        unsafe { launch.launch(config) }.map_err(driver_err)?;
        Ok(())
    }

    /// The program's inputs and outputs.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The kernels' names, in launch order.
    pub fn kernel_names(&self) -> Vec<String> {
        self.program.kernels.iter().map(|k| k.name.clone()).collect()
    }

    /// Runs the program once on `inputs`, then kernel `k` alone `repeats` times, each launch
    /// synchronized; returns the wall time of each.
    pub fn time_kernel(&mut self, inputs: &[TensorData], k: usize, repeats: u32) -> Result<Vec<Duration>, CudaError> {
        self.run(inputs)?;
        if k >= self.kernels.len() {
            return Err(CudaError::Data(format!("no kernel {k}")));
        }
        (0..repeats)
            .map(|_| {
                let start = Instant::now();
                self.launch(k)?;
                self.stream.synchronize().map_err(driver_err)?;
                Ok(start.elapsed())
            })
            .collect()
    }
}
