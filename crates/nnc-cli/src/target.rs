//! `--target`: the backend a command compiles for or runs on. The values, their help and the
//! default come from the runtime's one list of targets ([`nnc_runtime::Target::ALL`]), so every
//! subcommand offers the same targets and starts from the same default.

use clap::builder::PossibleValue;
use clap::ValueEnum;
use nnc_conformance::{Backend, OnTarget};
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
    pub fn backend(self, adapter: Option<String>, threads: Option<usize>) -> Box<dyn Backend> {
        Box::new(OnTarget { target: self.0, adapter, threads })
    }
}
