//! The targets a [`crate::Session`] can run on.

use nnc_kernel::schedule::{Device, DeviceKind};

/// Where a session runs its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The reference interpreter: exact (every op in f64), slow, the oracle of every backend.
    Interp,
    /// Native code for this CPU (Cranelift), on all cores.
    Cpu,
    /// WGSL compute shaders through wgpu, on the first adapter or the one named in the options.
    Wgsl,
    /// CUDA C++ compiled to PTX by NVRTC and run through the CUDA driver (needs a GPU and its
    /// driver; without them compiling reports why).
    Cuda,
    /// The Kernel-IR interpreter running kernels scheduled for a device, checking their parallel
    /// semantics (races, out-of-bounds accesses) as it goes.
    KernelInterp(DeviceKind),
}

impl Target {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Interp => "interp",
            Target::Cpu => "cpu",
            Target::Wgsl => "wgsl",
            Target::Cuda => "cuda",
            Target::KernelInterp(DeviceKind::Gpu) => "kernel-interp",
            Target::KernelInterp(DeviceKind::Cpu) => "kernel-interp-cpu",
        }
    }

    /// The device kernels are scheduled for (none for the graph interpreter).
    pub fn device(self) -> Option<Device> {
        match self {
            Target::Interp => None,
            Target::Cpu => Some(nnc_cpu::jit_device()),
            Target::KernelInterp(DeviceKind::Cpu) => Some(Device::cpu()),
            Target::Wgsl | Target::Cuda | Target::KernelInterp(DeviceKind::Gpu) => Some(Device::gpu()),
        }
    }
}
