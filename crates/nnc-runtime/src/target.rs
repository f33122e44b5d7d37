//! The targets a [`crate::Session`] can run on: the one list of them, with the names and
//! descriptions the command line shows, so a new target is added here once.

use nnc_kernel::{Device, DeviceKind};

/// Where a session runs its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The reference interpreter: exact (every op in f64), slow, the oracle of every backend.
    Interp,
    /// Native code for this CPU, on all cores.
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
    /// Every target, in the order the command line lists them.
    pub const ALL: [Target; 6] = [
        Target::Cpu,
        Target::Interp,
        Target::Wgsl,
        Target::Cuda,
        Target::KernelInterp(DeviceKind::Gpu),
        Target::KernelInterp(DeviceKind::Cpu),
    ];

    /// The target every command uses unless told otherwise: native code for this CPU.
    pub const DEFAULT: Target = Target::Cpu;

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

    /// The target named `name` (see [`Self::name`]).
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// One sentence on what the target is, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Target::Cpu => {
                "native code for this CPU (LLVM for its widest vectors, Cranelift for the rest), run on all \
                 cores; bundles run with `nnc run DIR`"
            }
            Target::Interp => "the reference interpreter: plain, exact, the oracle every backend is checked against",
            Target::Wgsl => {
                "WGSL compute shaders run with wgpu on the first GPU adapter (`--adapter` to choose); Mesa's \
                 lavapipe where there is no GPU"
            }
            Target::Cuda => "CUDA C++ compiled to PTX by NVRTC, run through the CUDA driver (needs an NVIDIA GPU)",
            Target::KernelInterp(DeviceKind::Gpu) => {
                "the compiler's kernels, scheduled for a GPU, run by the Kernel-IR interpreter, which checks \
                 their parallel semantics as it goes"
            }
            Target::KernelInterp(DeviceKind::Cpu) => {
                "as kernel-interp, with kernels scheduled for this CPU (rows, vector lanes)"
            }
        }
    }

    /// Whether `nnc compile -o DIR` writes code for this target (a bundle folder).
    pub fn writes_bundle(self) -> bool {
        matches!(self, Target::Cpu | Target::Wgsl | Target::Cuda)
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

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for t in Target::ALL {
            assert_eq!(Target::from_name(t.name()), Some(t));
            assert!(!t.about().is_empty());
        }
        let mut names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Target::ALL.len());
        assert_eq!(Target::ALL[0], Target::DEFAULT);
    }
}
