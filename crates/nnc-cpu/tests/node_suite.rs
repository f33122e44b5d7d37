//! The ONNX backend node tests on the native CPU backend: every case the reference interpreter
//! passes must pass natively (differences are listed). Skipped with a message when the test data
//! (`scripts/fetch-onnx-tests.sh`) is absent, a failure when `CI` is set.

use nnc_conformance::{discover_cases, run_case, Backend, CaseOutcome, Interpreter};
use nnc_ir::{Graph, TensorData};
use std::path::PathBuf;

/// Optimize, fuse and schedule for the CPU, JIT-compile with Cranelift, run natively.
struct Native;

impl Backend for Native {
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

#[test]
fn node_suite_natively_passes_what_the_interpreter_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.nnc-data/onnx-node");
    if !dir.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "the ONNX node tests must be present in CI");
        eprintln!("SKIPPED: the ONNX node tests not found at {}", dir.display());
        return;
    }
    let cases = discover_cases(&dir).expect("node test folder");
    let (mut passed, mut reference_passed) = (0, 0);
    let mut regressions = Vec::new();
    for case in &cases {
        let reference = run_case(case, &Interpreter);
        let result = run_case(case, &Native);
        passed += matches!(result.outcome, CaseOutcome::Pass) as usize;
        if matches!(reference.outcome, CaseOutcome::Pass) {
            reference_passed += 1;
            if !matches!(result.outcome, CaseOutcome::Pass) {
                regressions.push(format!("{}: {:?}", case.display(), result.outcome));
            }
        }
    }
    eprintln!("cpu: {passed} of {} cases pass (the interpreter passes {reference_passed})", cases.len());
    assert!(
        regressions.is_empty(),
        "native code fails {} cases the interpreter passes:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
