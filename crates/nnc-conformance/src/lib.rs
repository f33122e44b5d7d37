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
use nnc_runtime::{Session, SessionOptions, Target};

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

/// Runs `graph` once through a [`Session`] for `target`: bound to the inputs' shapes,
/// optimized, fused, scheduled and compiled, then run.
fn run_session(
    target: Target,
    adapter: Option<&str>,
    graph: &Graph,
    inputs: &[TensorData],
) -> Result<Vec<TensorData>, String> {
    OnTarget { target, adapter: adapter.map(str::to_string), threads: None }.run(graph, inputs)
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
        let options = SessionOptions {
            target: self.target,
            adapter: self.adapter.clone(),
            threads: self.threads,
            ..SessionOptions::default()
        };
        let mut session = Session::new(graph.clone(), options).map_err(|e| e.to_string())?;
        session.run(inputs).map_err(|e| e.to_string())
    }
}

/// The compiler's own pipeline, executed by the Kernel-IR interpreter: the graph is optimized
/// (`nnc-opt`), fused and scheduled for `device` (`nnc-kernel`), and every kernel runs with its
/// parallel semantics checked (out-of-bounds accesses, races across missing barriers).
pub struct KernelInterp {
    pub device: nnc_kernel::Device,
}

impl Backend for KernelInterp {
    fn name(&self) -> &str {
        Target::KernelInterp(self.device.kind).name()
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        run_session(Target::KernelInterp(self.device.kind), None, graph, inputs)
    }
}

/// The CPU backend: the graph optimized, fused and scheduled for the CPU, compiled to native
/// code (`nnc-cpu`: LLVM for the host's widest vectors, Cranelift for the rest), and run across the
/// machine's cores.
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        run_session(Target::Cpu, None, graph, inputs)
    }
}

/// The WGSL backend: the graph optimized, fused and scheduled for a GPU, printed as WGSL and run
/// with wgpu on the first adapter (or the first whose name contains `adapter`).
pub struct Wgsl {
    pub adapter: Option<String>,
}

impl Backend for Wgsl {
    fn name(&self) -> &str {
        "wgsl"
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        run_session(Target::Wgsl, self.adapter.as_deref(), graph, inputs)
    }
}

/// The CUDA backend: scheduled for a GPU, printed as CUDA C++, compiled by NVRTC and run through
/// the CUDA driver (every case fails with the reason where there is no driver).
pub struct Cuda;

impl Backend for Cuda {
    fn name(&self) -> &str {
        "cuda"
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        run_session(Target::Cuda, None, graph, inputs)
    }
}
