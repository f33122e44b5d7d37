//! The targets a [`crate::Session`] can run on: the one registry of them, with the names and
//! descriptions the command line shows and the backend behind each, so a new target is added
//! here once.

use nnc_kernel::interpreted::InterpretedBackend;
use nnc_kernel::{Backend, Device, DeviceKind};

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

/// What every backend may be told: the GPU adapter to use, the CPU's thread count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// With [`Target::Wgsl`]: the adapter whose name contains this (the first one otherwise).
    pub adapter: Option<String>,
    /// With [`Target::Cpu`]: threads to run kernels on (one per core by default).
    pub threads: Option<usize>,
    /// With [`Target::Wgsl`]: schedule for this WebGPU device (a browser's) rather than the
    /// local adapter.
    pub webgpu: Option<nnc_wgsl::WebGpuDevice>,
}

/// Makes a target's backend with the options given.
type MakeBackend = fn(&BackendOptions) -> Box<dyn Backend>;

/// A target's entry in the registry.
struct Entry {
    name: &'static str,
    about: &'static str,
    /// `None` for the graph interpreter, which runs graphs, not compiled programs.
    backend: Option<MakeBackend>,
    /// Whether `nnc compile` writes a bundle for it.
    writes_bundle: bool,
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

    /// The registry: one entry per target. Adding a target is adding its backend crate, a
    /// variant, an entry here, and its suite line (`nnc_testkit::backend_suite!` in the crate's
    /// `tests/suite.rs`: the random graph families, the shared models and the ONNX node suite).
    fn entry(self) -> Entry {
        match self {
            Target::Cpu => Entry {
                name: "cpu",
                about: "native code for this CPU (LLVM for its widest vectors, Cranelift for the rest), run on all \
                        cores; bundles run with `nnc run DIR`",
                backend: Some(|o| {
                    let options = nnc_cpu::CpuOptions { threads: o.threads, ..Default::default() };
                    Box::new(nnc_cpu::CpuBackend { options })
                }),
                writes_bundle: true,
            },
            Target::Interp => Entry {
                name: "interp",
                about: "the reference interpreter: plain, exact, the oracle every backend is checked against",
                backend: None,
                writes_bundle: false,
            },
            Target::Wgsl => Entry {
                name: "wgsl",
                about: "WGSL compute shaders run with wgpu on the first GPU adapter (`--adapter` to choose); Mesa's \
                        lavapipe where there is no GPU",
                backend: Some(|o| {
                    Box::new(nnc_wgsl::WgslBackend { adapter: o.adapter.clone(), webgpu: o.webgpu.clone() })
                }),
                writes_bundle: true,
            },
            Target::Cuda => Entry {
                name: "cuda",
                about: "CUDA C++ compiled to PTX by NVRTC, run through the CUDA driver (needs an NVIDIA GPU)",
                backend: Some(|_| Box::new(nnc_cuda::CudaBackend)),
                writes_bundle: true,
            },
            Target::KernelInterp(DeviceKind::Gpu) => Entry {
                name: "kernel-interp",
                about: "the compiler's kernels, scheduled for a GPU, run by the Kernel-IR interpreter, which checks \
                        their parallel semantics as it goes",
                backend: Some(|_| Box::new(InterpretedBackend { device: Device::gpu() })),
                writes_bundle: false,
            },
            Target::KernelInterp(DeviceKind::Cpu) => Entry {
                name: "kernel-interp-cpu",
                about: "as kernel-interp, with kernels scheduled for a CPU (rows, vector lanes, integer dot products)",
                // With integer dot products, whatever the host: the interpreter checks the
                // grouped reductions they schedule everywhere.
                backend: Some(|_| Box::new(InterpretedBackend { device: Device { int8_dot: true, ..Device::cpu() } })),
                writes_bundle: false,
            },
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// The target named `name` (see [`Self::name`]).
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// One sentence on what the target is, for `--help`.
    pub fn about(self) -> &'static str {
        self.entry().about
    }

    /// Whether `nnc compile -o DIR` writes code for this target (a bundle folder).
    pub fn writes_bundle(self) -> bool {
        self.entry().writes_bundle
    }

    /// The target's backend (`None` for the graph interpreter).
    pub fn backend(self, options: &BackendOptions) -> Option<Box<dyn Backend>> {
        self.entry().backend.map(|make| make(options))
    }

    /// The device kernels are scheduled for (none for the graph interpreter).
    pub fn device(self) -> Option<Device> {
        self.backend(&BackendOptions::default()).map(|b| b.device())
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
