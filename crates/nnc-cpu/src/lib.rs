//! nnc's CPU backend: Kernel IR compiled to native code with Cranelift (JIT), and an executor
//! for compiled programs.
//!
//! - [`emit`]: one scheduled [`nnc_kernel::Kernel`] → one native function over a range of
//!   workgroups ([`emit::compile_kernels`]);
//! - [`exec`]: [`CpuProgram`], a [`nnc_kernel::program::Program`] compiled once and run on
//!   caller data with one arena for intermediates and the grid split across a rayon pool.

pub mod emit;
pub mod exec;

pub use emit::{compile_kernels, EmitError, EmitOptions, JitCode, KernelFn, Status};
pub use exec::{CpuError, CpuOptions, CpuProgram};
