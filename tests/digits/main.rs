//! The digits example's tests, one binary (each test binary links LLVM through the CPU
//! backend): training through the compiled CPU path (`training`), data-parallel training on two
//! MPI processes with checkpoints (`mpi`), and the trained models exported to ONNX (`export`).

// The example's `main` and helpers a test does not call are unused in this build.
#[allow(dead_code)]
#[path = "../../examples/train_digits.rs"]
mod example;

mod export;
mod mpi;
mod training;
