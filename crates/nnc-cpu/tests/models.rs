//! The shared models in what the CPU backend's suite line (`suite.rs`: each model JIT-compiled
//! for this host, run, and run again from a bundle) does not check: with LLVM built, it compiles
//! every kernel of these f32 models; the memory plan's arena stays within 1.2x its lower bound;
//! and Cranelift alone (128-bit vectors, as where LLVM is missing) matches the references too
//! (rtol 1e-3, atol 1e-4). Skipped with a message when `../shared` is absent (a failure when
//! `CI` is set).

use nnc_cpu::{CpuOptions, CpuProgram, EmitOptions};
use nnc_testkit::compare::{close, MODEL_TOLERANCE};
use nnc_testkit::models::{load, program_for, shared_models, MODELS};

#[test]
fn shared_models_plan_memory_tightly_and_match_their_references_on_cranelift() {
    let Some(root) = shared_models() else { return };
    for name in MODELS {
        let model = load(&root.join(name));
        let program =
            program_for(&model.graph, &model.inputs, &nnc_cpu::jit_device()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let native = CpuProgram::new(&program).unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = native.memory_plan();
        assert!(
            plan.arena_bytes as f64 <= 1.2 * plan.lower_bound as f64,
            "{name}: arena {} bytes, more than 1.2x its lower bound {}",
            plan.arena_bytes,
            plan.lower_bound
        );
        // Where LLVM runs, it compiles every kernel of these f32 models.
        if cfg!(feature = "llvm") && nnc_cpu::jit_device().vector > 4 {
            assert_eq!(native.llvm_kernels(), native.kernel_count(), "{name}: kernels left to Cranelift");
        }

        let program = program_for(&model.graph, &model.inputs, &nnc_kernel::Device::cpu())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let emit = EmitOptions { llvm: false, ..Default::default() };
        let cranelift = CpuProgram::with_options(&program, &CpuOptions { emit, threads: None })
            .unwrap_or_else(|e| panic!("{name} (cranelift): {e}"));
        assert_eq!(cranelift.llvm_kernels(), 0);
        let found = cranelift.run(&model.inputs).unwrap_or_else(|e| panic!("{name} (cranelift): {e}"));
        assert_eq!(found.len(), model.expected.len(), "{name}: output count");
        for (k, (e, f)) in model.expected.iter().zip(&found).enumerate() {
            close(&format!("{name} output {k} (cranelift)"), e, f, MODEL_TOLERANCE).unwrap_or_else(|m| panic!("{m}"));
        }
    }
}
