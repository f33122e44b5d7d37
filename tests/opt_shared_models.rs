//! Every shared model, optimized by `nnc::opt`, still matches ONNX Runtime's stored outputs
//! (rtol 1e-3, atol 1e-4, as `shared_models.rs` checks the unoptimized graphs), keeps its
//! inputs and outputs, never costs more than before, and optimizes identically twice.

mod common;

use nnc::interp;
use nnc::ir::{text, Graph, TensorData};
use nnc::onnx::{import_file_with, read_inputs, read_tensor_file, ImportOptions};
use nnc::opt::{optimize, OptOptions};
use nnc_conformance::{compare, Tolerance};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

const MODELS: [&str; 8] = [
    "digits_mlp",
    "digits_cnn",
    "lstm2",
    "silero_vad_16k_op15",
    "transformer_encoder",
    "squeezenet1_1",
    "mobilenet_v2",
    "resnet18",
];

/// The model imported with the data set's input shapes, its inputs and reference outputs.
fn load(dir: &Path) -> (Graph, Vec<TensorData>, Vec<TensorData>) {
    let model = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let names = read_inputs(&model).unwrap_or_else(|e| panic!("{e}"));
    let inputs: Vec<_> =
        (0..names.len()).map(|i| read_tensor_file(&data.join(format!("input_{i}.pb"))).expect("input").1).collect();
    let shapes: HashMap<String, Vec<usize>> =
        names.iter().zip(&inputs).map(|((n, _), t)| (n.clone(), t.shape().to_vec())).collect();
    let graph = import_file_with(&model, &ImportOptions { input_shapes: shapes, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut expected = Vec::new();
    for i in 0.. {
        let path = data.join(format!("output_{i}.pb"));
        if !path.exists() {
            break;
        }
        expected.push(read_tensor_file(&path).expect("output").1);
    }
    (graph, inputs, expected)
}

fn io_signature(g: &Graph) -> Vec<String> {
    g.inputs.iter().chain(&g.outputs).map(|&v| format!("%{}: {}", g.name_of(v), g.ty(v))).collect()
}

#[test]
fn every_shared_model_still_matches_onnx_runtime_after_optimization() {
    let Some(models) = common::shared_models() else { return };
    let tol = Tolerance { rtol: 1e-3, atol: 1e-4 };
    let mut failures = Vec::new();
    for name in MODELS {
        let (graph, inputs, expected) = load(&models.join(name));
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
