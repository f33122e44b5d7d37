//! nnc's CPU backend: Kernel IR compiled to native code (LLVM for the host's widest vectors,
//! Cranelift for what LLVM does not cover and as the whole backend without the `llvm` feature),
//! and an executor for compiled programs.
//!
//! - [`abi`]: the kernel function's signature, its status codes and the runtime helpers it calls;
//! - `plan`: what both code generators follow for one kernel (loops unrolled or vectorized,
//!   registers, bounds checks), computed once; `vmath`: the inline vector `exp`/`erf`, defined
//!   once for both;
//! - [`driver`]: one scheduled [`nnc_kernel::Kernel`] → one native function over a range of
//!   workgroups ([`compile_kernels`]), by [`llvm`] (inkwell, the host's widest vectors) where it
//!   covers the kernel, by `cranelift` otherwise;
//! - [`exec`]: [`CpuProgram`], a [`nnc_kernel::program::Program`] compiled once and run on
//!   caller data with one arena for intermediates and the grid split across a rayon pool;
//! - [`backend`]: [`CpuBackend`], the CPU behind the backend contract;
//! - [`aot`] and [`bundle`]: the same machine code written to a folder and loaded again
//!   without compiling ([`write_bundle`], [`load_bundle`]).

pub mod abi;
pub mod aot;
pub mod backend;
pub mod bundle;
mod cranelift;
pub mod driver;
pub mod exec;
pub mod link;
#[cfg(feature = "llvm")]
pub mod llvm;
mod plan;
mod scalar;
mod vmath;

pub use abi::{KernelFn, Status};
pub use backend::CpuBackend;
pub use bundle::{load_bundle, write_bundle, write_bundle_from, write_bundle_with};
pub use driver::{compile_kernels, EmitError, EmitOptions, JitCode};
pub use exec::{CpuError, CpuOptions, CpuProgram};

/// The device to schedule kernels for when they are compiled on this host (JIT or bundle):
/// vectors as wide as LLVM can fill here, else Cranelift's 128 bits.
pub fn jit_device() -> nnc_kernel::Device {
    #[cfg(feature = "llvm")]
    if let Some(lanes) = llvm::host_lanes() {
        return nnc_kernel::Device::cpu_with_vector(lanes);
    }
    nnc_kernel::Device::cpu()
}
