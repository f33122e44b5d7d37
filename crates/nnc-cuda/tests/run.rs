//! Running on a GPU: without a CUDA driver, preparing a program is a clear
//! [`CudaError::NoDriver`], never a panic; with one, small programs and the digits models match
//! the Kernel-IR interpreter. Tests that need a GPU skip with a printed reason when there is no
//! driver (CI machines have none).

mod common;

use common::kernel_common::*;
use nnc_cuda::runtime::check_driver_library;
use nnc_cuda::{CudaError, CudaProgram};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::Program;
use nnc_lower::compile;

fn gpu_program(graph: &nnc_ir::Graph) -> Program {
    compile(graph, &nnc_cuda::CudaBackend.device(), None).unwrap_or_else(|e| panic!("{e}"))
}

/// `program` on the GPU, or `None` after saying why not (no driver or no device).
fn on_gpu(program: &Program) -> Option<CudaProgram> {
    match CudaProgram::new(program) {
        Ok(p) => Some(p),
        Err(CudaError::NoDriver(m)) => {
            eprintln!("SKIPPED: no CUDA driver ({m})");
            None
        }
        Err(e) => panic!("preparing `{}` for CUDA: {e}", program.fused.name),
    }
}

#[test]
fn a_missing_driver_library_is_an_error_not_a_panic() {
    let e = check_driver_library("libcuda-nnc-does-not-exist.so.1").unwrap_err();
    assert!(matches!(e, CudaError::NoDriver(_)), "{e}");
    assert!(e.to_string().contains("libcuda-nnc-does-not-exist.so.1"), "{e}");
}

#[test]
fn preparing_without_a_driver_is_no_driver() {
    let program = gpu_program(&softmax(&[4, 32], -1));
    let result = std::panic::catch_unwind(|| CudaProgram::new(&program).map(|_| ()));
    let result = result.expect("CudaProgram::new must not panic");
    if nnc_cuda::runtime::check_driver().is_err() {
        match result {
            Err(CudaError::NoDriver(m)) => assert!(m.contains("libcuda.so.1"), "{m}"),
            Err(e) => panic!("expected NoDriver, got {e}"),
            Ok(()) => panic!("prepared a program without a driver"),
        }
    } else {
        eprintln!("a CUDA driver is present: {result:?}");
    }
}

#[test]
fn small_programs_match_the_kernel_interpreter_on_a_gpu() {
    for (i, g) in [
        elementwise_chain(),
        softmax(&[4, 32], -1),
        layer_norm(&[2, 600], -1),
        matmul_bias_relu(33, 17, 9),
        conv_bias_relu([1, 3, 9, 9], 4, 3, 1),
        argmax(&[3, 700], 1),
        topk(&[2, 9], 3),
    ]
    .into_iter()
    .enumerate()
    {
        let program = gpu_program(&g);
        let Some(mut gpu) = on_gpu(&program) else { return };
        let inputs = inputs_for(&g, i as u64);
        let want = program.run_interpreted(&inputs).unwrap_or_else(|e| panic!("{e}"));
        let got = gpu.run(&inputs).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(got.len(), want.len());
        for (k, (w, f)) in want.iter().zip(&got).enumerate() {
            compare(&format!("{} output {k} on {}", g.name, gpu.device_name()), w, f).unwrap();
        }
    }
}
