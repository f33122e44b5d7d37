//! Every kernel of every shared model, compiled for `Device::gpu()` and run on wgpu (lavapipe
//! in CI), computes what the Kernel-IR interpreter computes for that kernel given the same
//! inputs (rtol 1e-3, atol 1e-4), which points at the kernel where a model goes wrong. The
//! models' outputs against their stored references are the suite line's (`suite.rs`).
//!
//! `NNC_WGSL_MODELS=a,b` limits the models (all by default); `NNC_WGSL_DUMP=1` prints each
//! disagreeing kernel and its WGSL.

mod common;

use common::gpu;
use nnc_interp::lanes::Value;
use nnc_ir::TensorData;
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_testkit::compare::{close, MODEL_TOLERANCE};
use nnc_testkit::models::{load, program_for, selected, shared_models, MODELS};

/// Each kernel run by the Kernel-IR interpreter on the buffers the GPU run left (its inputs),
/// compared with what the GPU wrote.
fn kernels_agree(name: &str, program: &Program, all: &[TensorData], failures: &mut Vec<String>) {
    for (g, (group, kernel)) in program.fused.groups.iter().zip(&program.kernels).enumerate() {
        let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
        if group.writes.iter().any(|w| group.reads.contains(w)) {
            continue; // updated in place: its inputs are gone after the run
        }
        let mut globals: Vec<Value> = ids.iter().map(|&i| Value::from_tensor(&all[i])).collect();
        if let Err(e) = nnc_kernel::interp::run_kernel(kernel, &mut globals) {
            failures.push(format!("{name} kernel {g} `{}` on the Kernel-IR interpreter: {e}", kernel.name));
            continue;
        }
        for (k, &id) in ids.iter().enumerate().skip(group.reads.len()) {
            let Ok(want) = globals[k].to_tensor() else { continue };
            let want = want.reshaped(all[id].shape().to_vec()).unwrap_or(want);
            if let Err(m) = close(&format!("{name} kernel {g} `{}`", kernel.name), &want, &all[id], MODEL_TOLERANCE) {
                if std::env::var_os("NNC_WGSL_DUMP").is_some() {
                    eprintln!(
                        "{m}\n{kernel}\n{}",
                        nnc_wgsl::compile_kernel(kernel, &Default::default()).unwrap_or_default()
                    );
                }
                failures.push(m);
            }
        }
    }
}

#[test]
fn every_kernel_of_every_shared_model_agrees_with_the_kernel_interpreter_on_wgpu() {
    let Some(models) = shared_models() else { return };
    let mut failures = Vec::new();
    for name in selected("NNC_WGSL_MODELS", &MODELS) {
        let model = load(&models.join(&name));
        let program =
            program_for(&model.graph, &model.inputs, &Device::gpu()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(mut wgpu) = gpu(&program) else { return };
        match wgpu.run_all_buffers(&model.inputs) {
            Ok(all) => kernels_agree(&name, &program, &all, &mut failures),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
