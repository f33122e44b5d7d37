//! `--target`: the backend a command compiles for or runs on. The values, their help and the
//! default come from the runtime's one list of targets ([`nnc_runtime::Target::ALL`]), so every
//! subcommand offers the same targets and starts from the same default.

use clap::builder::PossibleValue;
use clap::ValueEnum;
use nnc_conformance::{Backend, Cpu, Cuda, Interpreter, KernelInterp, Wgsl};
use nnc_kernel::schedule::DeviceKind;
use nnc_runtime::Target;

/// A `--target` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetArg(pub Target);

/// Every target as a `--target` value, in the registry's order.
static VARIANTS: [TargetArg; Target::ALL.len()] = {
    let mut out = [TargetArg(Target::DEFAULT); Target::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = TargetArg(Target::ALL[i]);
        i += 1;
    }
    out
};

impl ValueEnum for TargetArg {
    fn value_variants<'a>() -> &'a [Self] {
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.about()))
    }
}

impl Default for TargetArg {
    fn default() -> TargetArg {
        TargetArg(Target::DEFAULT)
    }
}

impl std::fmt::Display for TargetArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl TargetArg {
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The conformance backend of this target.
    pub fn backend(self) -> Box<dyn Backend> {
        match self.0 {
            Target::Wgsl => Box::new(Wgsl { adapter: None }),
            Target::Interp => Box::new(Interpreter),
            Target::Cpu => Box::new(Cpu),
            Target::Cuda => Box::new(Cuda),
            Target::KernelInterp(DeviceKind::Gpu) => {
                Box::new(KernelInterp { device: nnc_kernel::schedule::Device::gpu() })
            }
            Target::KernelInterp(DeviceKind::Cpu) => {
                Box::new(KernelInterp { device: nnc_kernel::schedule::Device::cpu() })
            }
        }
    }
}
