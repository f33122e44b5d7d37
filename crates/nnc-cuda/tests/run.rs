//! Without a CUDA driver, preparing a program is a clear [`CudaError::NoDriver`], never a
//! panic. What runs on a GPU where there is one is the suite line's (`suite.rs`).

use nnc_cuda::runtime::check_driver_library;
use nnc_cuda::{CudaError, CudaProgram};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::Program;
use nnc_lower::compile;
use nnc_testkit::graphs::softmax;

fn gpu_program(graph: &nnc_ir::Graph) -> Program {
    compile(graph, &nnc_cuda::CudaBackend.device(), None).unwrap_or_else(|e| panic!("{e}"))
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
