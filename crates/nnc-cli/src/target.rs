//! The `--target` of `run` and `conformance`: which backend executes a graph.

use clap::ValueEnum;
use nnc_conformance::{Backend, Cpu, Cuda, Interpreter, KernelInterp, Wgsl};
use nnc_kernel::schedule::Device;

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The reference interpreter: plain, exact, the oracle every backend is checked against.
    Interp,
    /// Native code for this CPU: the graph optimized, fused, scheduled and compiled with
    /// Cranelift, run on all cores.
    Cpu,
    /// WGSL compute shaders run with wgpu on the first GPU adapter (`--adapter` to choose);
    /// Mesa's lavapipe where there is no GPU.
    Wgsl,
    /// CUDA C++ compiled to PTX with NVRTC, run through the CUDA driver (needs an NVIDIA GPU).
    Cuda,
    /// The compiler's pipeline (optimize, fuse, schedule for a GPU) run by the Kernel-IR
    /// interpreter, which checks every kernel's parallel semantics as it goes.
    KernelInterp,
    /// As `kernel-interp`, with kernels scheduled for a CPU (one invocation per row, vector lanes).
    KernelInterpCpu,
}

impl Target {
    /// The conformance backend of this target.
    pub fn backend(self) -> Box<dyn Backend> {
        match self {
            Target::Wgsl => Box::new(Wgsl { adapter: None }),
            Target::Interp => Box::new(Interpreter),
            Target::Cpu => Box::new(Cpu),
            Target::Cuda => Box::new(Cuda),
            Target::KernelInterp => Box::new(KernelInterp { device: Device::gpu() }),
            Target::KernelInterpCpu => Box::new(KernelInterp { device: Device::cpu() }),
        }
    }

    /// The runtime's target of the same name.
    pub fn runtime(self) -> nnc_runtime::Target {
        use nnc_kernel::schedule::DeviceKind;
        match self {
            Target::Interp => nnc_runtime::Target::Interp,
            Target::Cpu => nnc_runtime::Target::Cpu,
            Target::Wgsl => nnc_runtime::Target::Wgsl,
            Target::Cuda => nnc_runtime::Target::Cuda,
            Target::KernelInterp => nnc_runtime::Target::KernelInterp(DeviceKind::Gpu),
            Target::KernelInterpCpu => nnc_runtime::Target::KernelInterp(DeviceKind::Cpu),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}
