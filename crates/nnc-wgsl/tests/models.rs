//! Every shared model, optimized, compiled for `Device::gpu()` and run on wgpu (lavapipe in CI),
//! matches its stored references (rtol 1e-3, atol 1e-4); and every kernel's WGSL result equals
//! the Kernel-IR interpreter's result for that kernel, given the same inputs.
//!
//! `NNC_WGSL_MODELS=a,b` limits the models (all by default).

mod common;

use common::{close, gpu};
use nnc_interp::lanes::Value;
use nnc_ir::{Graph, TensorData};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_lower::{bind_input_shapes, compile};
use std::time::Instant;

#[path = "../../nnc-lower/tests/common/shared_models.rs"]
mod shared_models;

use shared_models::{load_with_data as load, shared_models, MODELS};

fn selected() -> Vec<String> {
    match std::env::var("NNC_WGSL_MODELS") {
        Ok(s) if !s.is_empty() => s.split(',').map(str::to_string).collect(),
        _ => MODELS.iter().map(|s| s.to_string()).collect(),
    }
}

fn program_for(graph: &Graph, inputs: &[TensorData]) -> Program {
    let graph = bind_input_shapes(graph, inputs);
    let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    compile(&optimized.graph, &Device::gpu(), None).unwrap_or_else(|e| panic!("{e}"))
}

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
            if let Err(m) = close(&format!("{name} kernel {g} `{}`", kernel.name), &want, &all[id], 1e-3, 1e-4) {
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
fn every_shared_model_matches_its_references_on_wgpu() {
    let Some(models) = shared_models() else { return };
    let mut failures = Vec::new();
    for name in selected() {
        let (graph, inputs, expected) = load(&models.join(&name));
        let start = Instant::now();
        let program = program_for(&graph, &inputs);
        let compile_time = start.elapsed();
        let Some(mut wgpu) = gpu(&program) else { return };
        let prepare_time = start.elapsed() - compile_time;
        let outputs = match wgpu.run(&inputs) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let t = Instant::now();
        let runs = 3;
        for _ in 0..runs {
            wgpu.run(&inputs).unwrap();
        }
        let per_run = t.elapsed() / runs;
        eprintln!(
            "{name} on {}: {} kernels ({} pipelines), compile {compile_time:.2?}, prepare {prepare_time:.2?}, run {per_run:.2?}",
            wgpu.adapter_name(),
            program.kernels.len(),
            wgpu.pipeline_count()
        );
        if std::env::var_os("NNC_WGSL_SUBMIT_EACH").is_none() {
            assert_eq!(wgpu.submissions(), 1 + runs as u64);
        }
        for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            let want = want.reshaped(got.shape().to_vec()).unwrap_or_else(|| want.clone());
            if let Err(m) = close(&format!("{name} output {k}"), &want, got, 1e-3, 1e-4) {
                failures.push(m);
            }
        }
        let all = wgpu.run_all_buffers(&inputs).unwrap();
        kernels_agree(&name, &program, &all, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
