//! Every shared model, optimized, compiled for the CPU and run natively, matches its reference
//! outputs (rtol 1e-3, atol 1e-4): JIT-compiled for this host (LLVM, wide vectors), with
//! Cranelift alone (128-bit vectors), and through a bundle. Skipped with a message when `../shared` is absent (a failure
//! when `CI` is set).

#[path = "../../nnc-lower/tests/common/shared_models.rs"]
mod shared_models;

use nnc_ir::TensorData;
use shared_models::{load_with_data, shared_models, MODELS};

fn close(name: &str, k: usize, expected: &TensorData, found: &TensorData) {
    assert_eq!(expected.shape(), found.shape(), "{name} output {k}: shape");
    let (e, f) = (expected.to_f64_vec(), found.to_f64_vec());
    let worst = e
        .iter()
        .zip(&f)
        .map(|(&x, &y)| if x.is_nan() && y.is_nan() { 0.0 } else { (x - y).abs() / (1e-4 + 1e-3 * x.abs()) })
        .fold(0.0f64, |a, b| if b.is_nan() { f64::INFINITY } else { a.max(b) });
    assert!(worst <= 1.0, "{name} output {k}: error {worst} times the tolerance");
}

#[test]
fn shared_models_match_their_references() {
    let Some(root) = shared_models() else { return };
    for name in MODELS {
        let dir = root.join(name);
        if !dir.is_dir() {
            eprintln!("SKIPPED: {name} (not in {})", root.display());
            continue;
        }
        let (graph, inputs, expected) = load_with_data(&dir);
        let opt = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let scheduled =
            nnc_lower::compile(&opt.graph, &nnc_cpu::jit_device(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let program = nnc_cpu::CpuProgram::new(&scheduled).unwrap_or_else(|e| panic!("{name}: {e}"));
        let start = std::time::Instant::now();
        let found = program.run(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} kernels ({} vector loops), compile {:.0} ms, run {:.1} ms, arena {} KiB",
            program.kernel_count(),
            program.vectorized_loops(),
            program.compile_time().as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3,
            program.arena_bytes() / 1024
        );
        let plan = program.memory_plan();
        assert!(
            plan.arena_bytes as f64 <= 1.2 * plan.lower_bound as f64,
            "{name}: arena {} bytes, more than 1.2x its lower bound {}",
            plan.arena_bytes,
            plan.lower_bound
        );
        assert_eq!(found.len(), expected.len(), "{name}: output count");
        for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
            close(name, k, e, f);
        }
        // Where LLVM runs, it compiles every kernel of these f32 models.
        if cfg!(feature = "llvm") && nnc_cpu::jit_device().vector > 4 {
            assert_eq!(program.llvm_kernels(), program.kernel_count(), "{name}: kernels left to Cranelift");
        }

        // Cranelift alone (128-bit vectors), as where LLVM is missing.
        let device = nnc_kernel::Device::cpu();
        let cranelift = nnc_lower::compile(&opt.graph, &device, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let emit = nnc_cpu::EmitOptions { llvm: false, ..Default::default() };
        let cranelift = nnc_cpu::CpuProgram::with_options(&cranelift, &nnc_cpu::CpuOptions { emit, threads: None })
            .unwrap_or_else(|e| panic!("{name} (cranelift): {e}"));
        assert_eq!(cranelift.llvm_kernels(), 0);
        let found = cranelift.run(&inputs).unwrap_or_else(|e| panic!("{name} (cranelift): {e}"));
        for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
            close(name, k, e, f);
        }

        // The same program through a bundle: machine code written, loaded back, run.
        let scheduled =
            nnc_lower::compile(&opt.graph, &nnc_cpu::jit_device(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dir = std::env::temp_dir().join(format!("nnc-models-bundle-{name}-{}", std::process::id()));
        let manifest = nnc_cpu::write_bundle(&scheduled, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (loaded, back) = nnc_cpu::load_bundle(&dir, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, manifest);
        let from_bundle = loaded.run(&inputs).unwrap_or_else(|e| panic!("{name} (bundle): {e}"));
        for (k, (e, f)) in expected.iter().zip(&from_bundle).enumerate() {
            close(name, k, e, f);
        }
        std::fs::remove_dir_all(&dir).expect("remove the bundle");
    }
}
