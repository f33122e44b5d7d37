//! Every shared model imports, runs in the reference interpreter and matches ONNX Runtime's
//! stored outputs (rtol 1e-3, atol 1e-4); the digits models reach their reference accuracy.

mod common;

use nnc::interp;
use nnc::ir::TensorData;
use nnc_conformance::{compare, Tolerance};
use std::path::Path;

/// Imports and runs a shared model on its test data; returns the outputs and the reference ones.
fn run_model(dir: &Path) -> (Vec<TensorData>, Vec<TensorData>) {
    let (graph, inputs, expected) = common::load_with_data(dir);
    let outputs = interp::run(&graph, &inputs).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (outputs, expected)
}

#[test]
fn every_shared_model_matches_onnx_runtime() {
    let Some(models) = common::shared_models() else { return };
    let tol = Tolerance { rtol: 1e-3, atol: 1e-4 };
    let mut failures = Vec::new();
    for name in common::SHARED_MODELS {
        let (outputs, expected) = run_model(&models.join(name));
        assert_eq!(outputs.len(), expected.len(), "{name}: output count");
        for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            match compare(got, want, tol) {
                Ok(c) if c.passed() => {
                    eprintln!("{name} output {k}: max abs {:.2e}, max rel {:.2e}", c.max_abs, c.max_rel)
                }
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

/// Accuracy of argmax(logits) against `labels.npy` on the 450 held-out digits.
fn digits_accuracy(dir: &Path) -> f64 {
    let (outputs, _) = run_model(dir);
    let logits = outputs[0].to_f64_vec();
    let classes = outputs[0].shape()[1];
    let bytes = std::fs::read(dir.join("labels.npy")).expect("labels.npy");
    let labels: Vec<i64> = npyz::NpyFile::new(&bytes[..]).expect("npy header").into_vec().expect("i64 labels");
    let correct = logits
        .chunks(classes)
        .zip(&labels)
        .filter(|(row, &label)| {
            let best = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            best as i64 == label
        })
        .count();
    correct as f64 / labels.len() as f64
}

#[test]
fn digits_models_reach_reference_accuracy() {
    let Some(models) = common::shared_models() else { return };
    for (name, reference) in [("digits_mlp", 0.978), ("digits_cnn", 0.984)] {
        let acc = digits_accuracy(&models.join(name));
        eprintln!("{name}: accuracy {acc:.4} (reference {reference})");
        assert!((acc - reference).abs() < 0.0015, "{name}: accuracy {acc} differs from the reference {reference}");
    }
}
