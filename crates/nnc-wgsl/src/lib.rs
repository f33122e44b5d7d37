//! nnc's WGSL backend: Kernel IR printed as WGSL compute shaders ([`print`]), validated with
//! naga, and run with wgpu ([`runtime`]); [`WgslBackend`] puts it behind the backend contract.
//!
//! ```no_run
//! # fn demo(graph: &nnc_ir::Graph, inputs: &[nnc_ir::TensorData]) -> Result<(), Box<dyn std::error::Error>> {
//! use nnc_kernel::Device;
//! use nnc_lower::compile;
//! let program = compile(graph, &Device::gpu(), None)?;
//! let mut gpu = nnc_wgsl::WgslProgram::new(&program, None)?;
//! println!("running on {}", gpu.adapter_name());
//! let outputs = gpu.run(inputs)?;
//! # let _ = outputs; Ok(()) }
//! ```

pub mod backend;
pub mod print;
pub mod runtime;
pub mod webgpu;

pub use backend::WgslBackend;
pub use print::{compile_kernel, print_kernel, print_program, validate, PrintOptions};
pub use runtime::{adapters, WgslProgram};
pub use webgpu::{WebGpuDevice, WebGpuLimits};

/// Everything that can go wrong printing or running WGSL.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WgslError {
    /// The kernel uses something WGSL (or this backend) cannot express.
    #[error("kernel `{kernel}`: {message}")]
    Unsupported { kernel: String, message: String },
    /// naga rejected a printed shader (a bug in the printer).
    #[error("kernel `{kernel}`: naga rejected the WGSL at line {line} (`{text}`):\n{message}")]
    Naga { kernel: String, line: usize, text: String, message: String },
    /// No wgpu adapter (or none whose name matched).
    #[error("no wgpu adapter: {0}")]
    NoAdapter(String),
    /// wgpu reported an error creating or running something.
    #[error("wgpu: {0}")]
    Wgpu(String),
    /// Inputs that do not match the program, or data the GPU representation cannot hold.
    #[error("{0}")]
    Data(String),
}
