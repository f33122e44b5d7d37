//! Every shared model, optimized by `nnc::opt`, still matches ONNX Runtime's stored outputs
//! (rtol 1e-3, atol 1e-4, as `shared_models.rs` checks the unoptimized graphs), keeps its
//! inputs and outputs, never costs more than before, and optimizes identically twice.

mod common;

use nnc::interp;
use nnc::ir::{text, Graph};
use nnc::opt::{optimize, OptOptions};
use nnc_conformance::{compare, Tolerance};
use std::time::Instant;

fn io_signature(g: &Graph) -> Vec<String> {
    g.inputs.iter().chain(&g.outputs).map(|&v| format!("%{}: {}", g.name_of(v), g.ty(v))).collect()
}

#[test]
fn every_shared_model_still_matches_onnx_runtime_after_optimization() {
    let Some(models) = common::shared_models() else { return };
    let tol = Tolerance { rtol: 1e-3, atol: 1e-4 };
    let mut failures = Vec::new();
    for name in common::SHARED_MODELS {
        let (graph, inputs, expected) = common::load_with_data(&models.join(name));
        let start = Instant::now();
        let opt = optimize(&graph, &OptOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let took = start.elapsed();
        let model = &OptOptions::default().cost;
        eprintln!(
            "{name}: {} -> {} nodes, cost {:.3e} -> {:.3e} ({:.1}% bytes), {:?} in {took:.2?}; applied {:?}",
            graph.nodes.len(),
            opt.graph.nodes.len(),
            opt.cost_before.total(model),
            opt.cost_after.total(model),
            100.0 * opt.cost_after.bytes / opt.cost_before.bytes.max(1.0),
            opt.stop,
            opt.applied
        );
        assert_eq!(io_signature(&graph), io_signature(&opt.graph), "{name}: inputs and outputs changed");
        assert!(opt.cost_after.total(model) <= opt.cost_before.total(model), "{name}: cost grew");
        let again = optimize(&graph, &OptOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text::print(&opt.graph), text::print(&again.graph), "{name}: optimizing twice differs");
        let outputs = interp::run(&opt.graph, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outputs.len(), expected.len(), "{name}: output count");
        for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            match compare(got, want, tol) {
                Ok(c) if c.passed() => {}
                Ok(c) => failures.push(format!(
                    "{name} output {k}: {} of {} values differ (max abs {:.2e})",
                    c.mismatches, c.total, c.max_abs
                )),
                Err(e) => failures.push(format!("{name} output {k}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
