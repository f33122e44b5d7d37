//! The ONNX backend node tests (1,765 cases from the onnx 1.22 wheel) on the reference
//! interpreter: at least 1,000 pass, every case of every op the shared models use passes unless
//! its data uses a dtype nnc does not have, and `SUPPORTED_OPS.md` is up to date.

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

/// A backend passes every node case the interpreter passes; any difference is listed.
fn passes_what_the_interpreter_passes(backend: &dyn nnc_conformance::Backend) {
    let Some(dir) = common::onnx_node_tests() else { return };
    let cases = discover_cases(&dir).expect("node test folder");
    let mut regressions = Vec::new();
    let mut passed = 0;
    for case in &cases {
        let reference = run_case(case, &Interpreter);
        let result = run_case(case, backend);
        if matches!(result.outcome, CaseOutcome::Pass) {
            passed += 1;
        }
        if matches!(reference.outcome, CaseOutcome::Pass) && !matches!(result.outcome, CaseOutcome::Pass) {
            regressions.push(format!("{}: {:?}", case.display(), result.outcome));
        }
    }
    eprintln!("{}: {passed} of {} cases pass", backend.name(), cases.len());
    assert!(
        regressions.is_empty(),
        "{} fails cases the interpreter passes:\n{}",
        backend.name(),
        regressions.join("\n")
    );
}

#[test]
fn node_suite_on_the_kernel_interpreter_gpu() {
    passes_what_the_interpreter_passes(&nnc_conformance::KernelInterp { device: nnc::kernel::Device::gpu() });
}

#[test]
fn node_suite_on_the_kernel_interpreter_cpu() {
    passes_what_the_interpreter_passes(&nnc_conformance::KernelInterp { device: nnc::kernel::Device::cpu() });
}

#[test]
fn node_suite_on_the_cpu_backend() {
    passes_what_the_interpreter_passes(&nnc_conformance::Cpu);
}

/// Cases the interpreter passes that the WGSL backend does not: (a substring of the case's name,
/// text its failure must contain). Each is a tensor of a dtype WGSL does not have (the data, or
/// an output, is `double` or `bfloat16` in these ONNX cases), not a bug; every entry must be
/// needed. `crates/nnc-wgsl/README.md` explains them.
const WGSL_DIFFERENCES: &[(&str, &str)] = &[
    // Cast/CastLike from or to DOUBLE (12 cases).
    ("DOUBLE", "WGSL has no f64"),
    // Cast/CastLike from or to BFLOAT16 (6 cases), Range on bfloat16 (1).
    ("BFLOAT16", "WGSL has no bf16"),
    ("test_range_bfloat16", "WGSL has no bf16"),
    // Ops whose node tests use float64 data.
    ("test_cumsum_", "WGSL has no f64"),
    ("test_cumprod_", "WGSL has no f64"),
    ("test_einsum_", "WGSL has no f64"),
    ("test_eyelike_with_dtype", "WGSL has no f64"),
    ("test_flexattention_double", "WGSL has no f64"),
    ("test_reduce_log_sum_exp_", "WGSL has no f64"),
    // Max, Min, Mod on float64.
    ("_float64", "WGSL has no f64"),
];

#[test]
fn node_suite_on_wgsl() {
    let Some(dir) = common::onnx_node_tests() else { return };
    let backend = nnc_conformance::Wgsl { adapter: None };
    let cases = discover_cases(&dir).expect("node test folder");
    let probe = cases.iter().find(|c| c.ends_with("test_abs")).expect("test_abs");
    if let CaseOutcome::Fail(m) = run_case(probe, &backend).outcome {
        if m.contains("no wgpu adapter") {
            assert!(std::env::var_os("CI").is_none(), "CI must have a wgpu adapter (lavapipe): {m}");
            eprintln!("SKIPPED: no wgpu adapter ({m}); install mesa-vulkan-drivers and libvulkan1");
            return;
        }
    }
    let (mut passed, mut reference_passed) = (0, 0);
    let mut listed = Vec::new();
    let mut regressions = Vec::new();
    let mut used = vec![0; WGSL_DIFFERENCES.len()];
    for case in &cases {
        let reference = run_case(case, &Interpreter);
        let result = run_case(case, &backend);
        let pass = matches!(result.outcome, CaseOutcome::Pass);
        passed += pass as usize;
        if !matches!(reference.outcome, CaseOutcome::Pass) {
            continue;
        }
        reference_passed += 1;
        if pass {
            continue;
        }
        let message = match &result.outcome {
            CaseOutcome::Fail(m) | CaseOutcome::Skip(m) => m.as_str(),
            CaseOutcome::Pass => "",
        };
        let name = result.name.clone();
        match WGSL_DIFFERENCES.iter().position(|(pattern, reason)| name.contains(pattern) && message.contains(reason)) {
            Some(k) => {
                used[k] += 1;
                listed.push(name);
            }
            None => regressions.push(format!("{name}: {message}")),
        }
    }
    eprintln!(
        "wgsl: {passed} of {} cases pass (the interpreter passes {reference_passed}; {} listed differences)",
        cases.len(),
        listed.len()
    );
    assert!(
        regressions.is_empty(),
        "wgsl fails {} cases the interpreter passes, and they are not listed in WGSL_DIFFERENCES:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
    for ((pattern, reason), n) in WGSL_DIFFERENCES.iter().zip(&used) {
        eprintln!("  listed: {n:>2} case(s) named like `{pattern}`: {reason}");
    }
    let stale: Vec<_> = WGSL_DIFFERENCES.iter().zip(&used).filter(|(_, &n)| n == 0).map(|(d, _)| d).collect();
    assert!(stale.is_empty(), "entries of WGSL_DIFFERENCES that no failing case needs: {stale:?}");
}
