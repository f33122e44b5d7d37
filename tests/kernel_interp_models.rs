//! Every shared model compiled by the pipeline (optimize, fuse, schedule) and run by the
//! Kernel-IR interpreter matches ONNX Runtime's stored outputs (rtol 1e-3, atol 1e-4), with GPU
//! schedules (workgroups, workgroup memory, barriers, all checked for races and out-of-bounds
//! accesses) and, for the models that run quickly that way, CPU schedules; and compiling twice
//! gives the same kernels.

mod common;

use nnc::kernel::Device;
use nnc_conformance::{compare, Backend, KernelInterp, Tolerance};
use std::time::Instant;

fn check(name: &str, device: Device, failures: &mut Vec<String>) {
    let Some(models) = common::shared_models() else { return };
    let (graph, inputs, expected) = common::load_with_data(&models.join(name));
    let backend = KernelInterp { device };
    let start = Instant::now();
    let outputs = match backend.run(&graph, &inputs) {
        Ok(o) => o,
        Err(e) => return failures.push(format!("{name} on {}: {e}", backend.name())),
    };
    eprintln!("{name} on {}: {:.2?}", backend.name(), start.elapsed());
    for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
        match compare(got, want, Tolerance { rtol: 1e-3, atol: 1e-4 }) {
            Ok(c) if c.passed() => {}
            Ok(c) => failures.push(format!(
                "{name} on {} output {k}: {} of {} values differ (max abs {:.2e})",
                backend.name(),
                c.mismatches,
                c.total,
                c.max_abs
            )),
            Err(e) => failures.push(format!("{name} on {} output {k}: {e}", backend.name())),
        }
    }
}

#[test]
fn every_shared_model_passes_on_the_kernel_interpreter_with_gpu_schedules() {
    let mut failures = Vec::new();
    for name in common::SHARED_MODELS {
        check(name, Device::gpu(), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn small_shared_models_pass_on_the_kernel_interpreter_with_cpu_schedules() {
    let mut failures = Vec::new();
    for name in ["digits_mlp", "lstm2", "silero_vad_16k_op15", "transformer_encoder"] {
        check(name, Device::cpu(), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compiling_twice_gives_the_same_kernels() {
    let Some(models) = common::shared_models() else { return };
    let (graph, _, _) = common::load_with_data(&models.join("transformer_encoder"));
    let print = || {
        let opt = nnc::opt::optimize(&graph, &Default::default()).expect("optimize");
        let program = nnc::lower::compile(&opt.graph, &Device::gpu(), None).expect("compile");
        program.kernels.iter().map(|k| k.to_string()).collect::<String>()
    };
    assert_eq!(print(), print());
}
