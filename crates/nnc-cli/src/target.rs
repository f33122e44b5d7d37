//! The `--target` of `run` and `conformance`: which backend executes a graph.

use clap::ValueEnum;
use nnc_conformance::{Backend, Interpreter, KernelInterp};
use nnc_kernel::schedule::Device;

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The reference interpreter: plain, exact, the oracle every backend is checked against.
    Interp,
    /// The compiler's pipeline (optimize, fuse, schedule for a GPU) run by the Kernel-IR
    /// interpreter, which checks every kernel's parallel semantics as it goes.
    KernelInterp,
    /// As `kernel-interp`, with kernels scheduled for a CPU (one invocation per row, vector lanes).
    KernelInterpCpu,
}

impl Target {
    pub fn backend(self) -> Box<dyn Backend> {
        match self {
            Target::Interp => Box::new(Interpreter),
            Target::KernelInterp => Box::new(KernelInterp { device: Device::gpu() }),
            Target::KernelInterpCpu => Box::new(KernelInterp { device: Device::cpu() }),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}
