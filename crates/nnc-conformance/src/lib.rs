//! The conformance harness: runs ONNX test cases (`model.onnx` plus
//! `test_data_set_*/{input,output}_N.pb`) on a [`Backend`] and reports per op.
//!
//! Every backend runs the same suite through one implementation of [`Backend`], so "passes
//! what the interpreter passes" is checked the same way for each.

pub mod compare;
pub mod report;
pub mod suite;

pub use compare::{compare, Comparison, Tolerance};
pub use report::Report;
pub use suite::{discover_cases, run_case, run_case_timed, CaseOutcome, CaseResult};

use nnc_ir::{Graph, TensorData};
use nnc_runtime::{Session, SessionOptions, Target};
use std::time::{Duration, Instant};

/// Something that executes a Graph IR graph: the interpreter, or a compiled backend.
pub trait Backend {
    /// The name used in reports and on the command line (`interp`, `cpu`, ...).
    fn name(&self) -> &str;
    /// Runs `graph` on `inputs` (in `graph.inputs` order) and returns its outputs.
    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String>;

    /// [`Backend::run`], then `runs` more runs of the same compiled graph (compile excluded),
    /// with the time of the fastest (`None` with no timed runs).
    fn run_timed(&self, graph: &Graph, inputs: &[TensorData], runs: usize) -> TimedRun;
}

/// The outputs of a run, and the time of the fastest of the timed runs after it.
pub type TimedRun = Result<(Vec<TensorData>, Option<Duration>), String>;

/// The fastest of `runs` calls of `f` (`None` for none), stopping at the first error.
fn fastest<T>(runs: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<Option<Duration>, String> {
    let mut best: Option<Duration> = None;
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        let t = start.elapsed();
        best = Some(best.map_or(t, |b| b.min(t)));
    }
    Ok(best)
}

/// The reference interpreter as a backend.
pub struct Interpreter;

impl Backend for Interpreter {
    fn name(&self) -> &str {
        "interp"
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        nnc_interp::run(graph, inputs).map_err(|e| e.to_string())
    }

    fn run_timed(&self, graph: &Graph, inputs: &[TensorData], runs: usize) -> TimedRun {
        let outputs = self.run(graph, inputs)?;
        Ok((outputs, fastest(runs, || self.run(graph, inputs))?))
    }
}

/// Any target of the runtime's registry, with its options: each case is one run of a
/// [`Session`].
pub struct OnTarget {
    pub target: Target,
    /// With [`Target::Wgsl`]: the adapter whose name contains this.
    pub adapter: Option<String>,
    /// With [`Target::Cpu`]: the thread count (one per core by default).
    pub threads: Option<usize>,
}

impl Backend for OnTarget {
    fn name(&self) -> &str {
        self.target.name()
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        self.run_timed(graph, inputs, 0).map(|(outputs, _)| outputs)
    }

    fn run_timed(&self, graph: &Graph, inputs: &[TensorData], runs: usize) -> TimedRun {
        let options = SessionOptions {
            target: self.target,
            adapter: self.adapter.clone(),
            threads: self.threads,
            ..SessionOptions::default()
        };
        let mut session = Session::new(graph.clone(), options).map_err(|e| e.to_string())?;
        let outputs = session.run(inputs).map_err(|e| e.to_string())?;
        let time = fastest(runs, || session.run(inputs).map_err(|e| e.to_string()))?;
        Ok((outputs, time))
    }
}
