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

/// The compiler's own pipeline, executed by the Kernel-IR interpreter: the graph is optimized
/// (`nnc-opt`), fused and scheduled for `device` (`nnc-kernel`), and every kernel runs with its
/// parallel semantics checked (out-of-bounds accesses, races across missing barriers).
pub struct KernelInterp {
    pub device: nnc_kernel::schedule::Device,
}

impl Backend for KernelInterp {
    fn name(&self) -> &str {
        match self.device.kind {
            nnc_kernel::schedule::DeviceKind::Gpu => "kernel-interp",
            nnc_kernel::schedule::DeviceKind::Cpu => "kernel-interp-cpu",
        }
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        let graph = nnc_kernel::program::bind_input_shapes(graph, inputs);
        let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).map_err(|e| e.to_string())?;
        let program = nnc_kernel::program::compile(&optimized.graph, &self.device, None).map_err(|e| e.to_string())?;
        program.run_interpreted(inputs).map_err(|e| e.to_string())
    }
}

/// The CPU backend: the graph optimized, fused and scheduled for the CPU, compiled to native
/// code with Cranelift (`nnc-cpu`), and run across the machine's cores.
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }

    fn run(&self, graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        let graph = nnc_kernel::program::bind_input_shapes(graph, inputs);
        let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).map_err(|e| e.to_string())?;
        let program = nnc_cpu::CpuProgram::from_graph(&optimized.graph).map_err(|e| e.to_string())?;
        program.run(inputs).map_err(|e| e.to_string())
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
        let graph = nnc_kernel::program::bind_input_shapes(graph, inputs);
        let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).map_err(|e| e.to_string())?;
        let device = nnc_kernel::schedule::Device::gpu();
        let program = nnc_kernel::program::compile(&optimized.graph, &device, None).map_err(|e| e.to_string())?;
        let mut gpu = nnc_wgsl::WgslProgram::new(&program, self.adapter.as_deref()).map_err(|e| e.to_string())?;
        eprintln!("wgsl: running on {}", gpu.adapter_name());
        gpu.run(inputs).map_err(|e| e.to_string())
    }
}
