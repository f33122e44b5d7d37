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
//!   caller data with one arena for intermediates and the grid split across a pool's threads,
//!   which spin beside a run as its team (`team`);
//! - [`backend`]: [`CpuBackend`], the CPU behind the backend contract;
//! - [`aot`] and [`bundle`]: the same machine code written to a folder and loaded again
//!   without compiling ([`write_bundle`], [`load_bundle`]);
//! - [`code_cache`]: LLVM's code of each kernel kept in the user's cache directory, so a model
//!   compiled once compiles again without LLVM.

pub mod abi;
pub mod aot;
pub mod backend;
pub mod bundle;
pub mod code_cache;
mod cranelift;
pub mod driver;
pub mod exec;
pub mod link;
#[cfg(feature = "llvm")]
pub mod llvm;
mod plan;
mod scalar;
mod team;
mod vmath;

pub use abi::{KernelFn, Status};
pub use backend::CpuBackend;
pub use bundle::{load_bundle, write_bundle, write_bundle_from, write_bundle_with};
pub use driver::{compile_kernels, EmitError, EmitOptions, JitCode};
pub use exec::{CpuError, CpuOptions, CpuProgram};

/// The device to schedule kernels for when they are compiled on this host (JIT or bundle):
/// vectors as wide as LLVM can fill here (with its `u8 × i8` dot products where the host has
/// them), else Cranelift's 128 bits.
pub fn jit_device() -> nnc_kernel::Device {
    #[cfg(feature = "llvm")]
    if let Some(lanes) = llvm::host_lanes() {
        let int8_dot = llvm::host_int8_dot(lanes) && std::env::var_os("NNC_CPU_NO_INT8_DOT").is_none();
        return nnc_kernel::Device { int8_dot, ..nnc_kernel::Device::cpu_with_vector(lanes) };
    }
    nnc_kernel::Device::cpu()
}

/// The host processor's model name (Linux's `/proc/cpuinfo`), or its architecture.
pub fn host_cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The vector features kernels are generated for, as LLVM names them (`avx2,fma`, the
/// AVX-512 and AMX families, F16C; on aarch64 NEON and SVE), or the architecture's baseline
/// without LLVM.
pub fn host_features() -> String {
    #[cfg(feature = "llvm")]
    {
        const KEPT: [&str; 6] = ["avx", "fma", "amx", "f16c", "neon", "sve"];
        let all = llvm::host_features();
        let mut on: Vec<&str> = all
            .split(',')
            .filter_map(|f| f.strip_prefix('+'))
            .filter(|f| KEPT.iter().any(|k| f.starts_with(k)))
            .collect();
        on.sort_unstable();
        on.join(",")
    }
    #[cfg(not(feature = "llvm"))]
    {
        format!("{} baseline", std::env::consts::ARCH)
    }
}
