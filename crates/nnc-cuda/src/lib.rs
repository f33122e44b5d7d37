//! nnc's CUDA backend: Kernel IR printed as CUDA C++ ([`print`]), compiled to PTX by NVRTC and
//! assembled by `ptxas` to check registers and spills ([`nvrtc`]), and run through the CUDA
//! driver with cudarc ([`runtime`]).
//!
//! Nothing here needs a GPU except [`CudaProgram::run`]: NVRTC and `ptxas` come from NVIDIA's
//! PyPI wheels (`nvidia-cuda-nvrtc-cu12`, `nvidia-cuda-nvcc-cu12`; `scripts/setup.sh` unpacks
//! them into `.nnc-data/cuda/`), so CI checks every generated kernel with NVIDIA's own compiler.
//! The tools are found without configuration (see [`nvrtc::nvrtc_library`] and
//! [`nvrtc::ptxas_path`]); `NNC_NVRTC_LIB` and `NNC_PTXAS` override the search. A missing
//! library is an error ([`CudaError::NoNvrtc`], [`CudaError::NoDriver`]), never a panic.
//!
//! # How it is checked without a GPU
//!
//! - `tests/ptx_models.rs`: every kernel of every shared model through NVRTC and `ptxas -v` for
//!   sm_80 and sm_90, no errors and no spills in matmul/conv kernels; the table is written to
//!   `target/ptx-report.md` (also `cargo run -p nnc-cuda --example ptx_report`).
//! - `tests/print.rs`: random graph families, every dtype and every float unary op through
//!   NVRTC and ptxas; insta snapshots of typical kernels; warp-shuffle tails; lazy selects.
//! - `tests/host_emulation.rs`: the printed CUDA C++ compiled as host C++20 by `g++` under a
//!   small emulation of the CUDA execution model and compared with the Kernel-IR interpreter.
//! - `tests/run.rs`: a missing driver is [`CudaError::NoDriver`], never a panic.
//!
//! With a driver and a GPU, `tests/suite.rs` (the backend's line of the `nnc-testkit` test kit)
//! runs the random graph families, the fixed graphs, the shared models and the ONNX node suite
//! on it, against the interpreters and the stored references; without one it says it is skipped.
//!
//! # Not done
//!
//! No vectorised (`float4`) loads: the CUDA device schedules one element per invocation
//! (`vector = 1`) and the Kernel IR has no alignment facts to justify them. No dynamic shared
//! memory, streams per kernel, CUDA graphs or buffer reuse in the runtime.
//!
//! ```no_run
//! # fn demo(graph: &nnc_ir::Graph, inputs: &[nnc_ir::TensorData]) -> Result<(), Box<dyn std::error::Error>> {
//! use nnc_kernel::backend::Backend;
//! let program = nnc_lower::compile(graph, &nnc_cuda::CudaBackend.device(), None)?;
//! // Without a GPU: the CUDA C++, its PTX, and what ptxas says about it.
//! let source = nnc_cuda::print_program(&program)?;
//! let ptx = nnc_cuda::compile_ptx(&source, "sm_80")?;
//! for stats in nnc_cuda::ptxas_report(&ptx, "sm_80")? {
//!     println!("{}: {} registers, {} bytes spilled", stats.function, stats.registers, stats.spill_stores);
//! }
//! // With a GPU and its driver:
//! let mut gpu = nnc_cuda::CudaProgram::new(&program)?;
//! let outputs = gpu.run(inputs)?;
//! # let _ = outputs; Ok(()) }
//! ```

pub mod backend;
pub mod nvrtc;
pub mod print;
pub mod report;
pub mod runtime;

pub use backend::CudaBackend;
pub use nvrtc::{compile_ptx, ptxas_report, PtxasStats};
pub use print::{entry_name, launch_dims, print_kernel, print_program, LaunchDims, PrintOptions};
pub use report::{markdown, program_report, KernelClass, KernelReport};
pub use runtime::CudaProgram;

/// Everything that can go wrong printing, compiling or running CUDA.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// The kernel uses something this backend cannot express.
    #[error("kernel `{kernel}`: {message}")]
    Unsupported { kernel: String, message: String },
    /// NVRTC (`libnvrtc.so.12`) could not be found or loaded.
    #[error("NVRTC not available: {0}")]
    NoNvrtc(String),
    /// NVRTC rejected the source (a bug in the printer); `log` is NVRTC's message.
    #[error("NVRTC failed to compile `{name}` for {arch}:\n{log}")]
    Nvrtc { name: String, arch: String, log: String },
    /// `ptxas` could not be found or run.
    #[error("ptxas not available: {0}")]
    NoPtxas(String),
    /// `ptxas` rejected the PTX.
    #[error("ptxas failed for {arch}:\n{log}")]
    Ptxas { arch: String, log: String },
    /// No CUDA driver (`libcuda.so.1`) or no device.
    #[error("no CUDA driver: {0}")]
    NoDriver(String),
    /// The CUDA driver reported an error.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// Inputs that do not match the program.
    #[error("{0}")]
    Data(String),
}
