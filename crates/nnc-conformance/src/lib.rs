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
pub use suite::{discover_cases, run_case, CaseOutcome, CaseResult};

use nnc_ir::{Graph, TensorData};

/// Something that executes a Graph IR graph: the interpreter, or a compiled backend.
pub trait Backend {
    /// The name used in reports and on the command line (`interp`, `cpu`, ...).
    fn name(&self) -> &str;
    /// Runs `graph` on `inputs` (in `graph.inputs` order) and returns its outputs.
    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String>;
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
}
