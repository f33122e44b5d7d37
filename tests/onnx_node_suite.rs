//! The ONNX backend node tests (1,765 cases from the onnx 1.22 wheel) on the reference
//! interpreter: at least 1,000 pass, every case of every op the shared models use passes unless
//! its data uses a dtype nnc does not have, and `SUPPORTED_OPS.md` is up to date. Each backend's
//! line (every case the interpreter passes passes there, but for its listed differences) is in
//! its suite, made by the test kit (`nnc_testkit::backend_suite!` in `crates/*/tests/suite.rs`).

mod common;

use nnc_conformance::{discover_cases, run_case, CaseOutcome, Interpreter, Report};

/// The ONNX ops used by the shared models (from their `index.json`).
const SHARED_MODEL_OPS: &[&str] = &[
    "Add",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Equal",
    "Erf",
    "Gather",
    "Gemm",
    "Identity",
    "If",
    "LayerNormalization",
    "LSTM",
    "MatMul",
    "MaxPool",
    "Mul",
    "Not",
    "Pad",
    "Pow",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Size",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

#[test]
fn node_suite_on_the_interpreter() {
    let Some(dir) = common::onnx_node_tests() else { return };
    let cases = discover_cases(&dir).expect("node test folder");
    assert_eq!(cases.len(), 1765, "the onnx 1.22 wheel ships 1,765 node test cases");
    let results: Vec<_> = cases.iter().map(|c| run_case(c, &Interpreter)).collect();
    let report = Report { backend: "interp".into(), results };
    let (passed, failed, skipped) = report.totals();
    eprintln!("{passed} passed, {failed} failed, {skipped} skipped");
    assert!(passed >= 1000, "only {passed} node test cases pass");

    // Ops of the shared models: every failure must be a dtype the IR does not have.
    let mut unexplained = Vec::new();
    for (op, summary) in report.by_op() {
        if !SHARED_MODEL_OPS.contains(&op.as_str()) {
            continue;
        }
        for (reason, cases) in &summary.reasons {
            let dtype_gap = reason.contains("is not supported") && reason.contains("data type");
            let non_tensor = reason.contains("the Graph IR has tensors only");
            if !dtype_gap && !non_tensor {
                unexplained.push(format!("{op}: {reason} ({})", cases.join(", ")));
            }
        }
    }
    assert!(unexplained.is_empty(), "cases of shared-model ops fail:\n{}", unexplained.join("\n"));

    // SUPPORTED_OPS.md must be the report of this very code.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SUPPORTED_OPS.md")).expect("SUPPORTED_OPS.md");
    let line = format!("**{passed} passed, {failed} failed, {skipped} skipped**");
    assert!(
        doc.contains(&line),
        "SUPPORTED_OPS.md is stale: regenerate it with `cargo run --release -p nnc-cli -- conformance .nnc-data/onnx-node --report SUPPORTED_OPS.md` (this run: {line})"
    );
    assert!(!report.results.iter().any(|r| matches!(&r.outcome, CaseOutcome::Fail(m) if m.contains("panic"))));
}
