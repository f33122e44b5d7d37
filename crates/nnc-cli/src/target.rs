//! The `--target` of `run` and `conformance`: which backend executes a graph.

use clap::ValueEnum;
use nnc_conformance::{Backend, Interpreter};

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The reference interpreter: plain, exact, the oracle every backend is checked against.
    Interp,
}

impl Target {
    pub fn backend(self) -> Box<dyn Backend> {
        match self {
            Target::Interp => Box::new(Interpreter),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}
