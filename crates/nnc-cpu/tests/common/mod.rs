//! Helpers shared by the integration tests: nnc-kernel's test helpers (compiling for a device,
//! deterministic inputs, comparing with the graph interpreter), with `check` running the
//! program natively instead of on the Kernel-IR interpreter.

#![allow(dead_code)]

#[path = "../../../nnc-kernel/tests/common/mod.rs"]
mod kernel_common;

pub use kernel_common::*;
use nnc_ir::{Graph, TensorData};
use nnc_kernel::program::Program;
use nnc_kernel::schedule::Device;

/// Runs `graph` through the graph interpreter and natively (compiled for the CPU), and compares
/// every output.
pub fn check_native(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    let expected = nnc_interp::run(graph, inputs).map_err(|e| format!("graph interpreter: {e}\n{}", text(graph)))?;
    let program = try_compile(graph, &Device::cpu()).map_err(|e| format!("compile: {e}\n{}", text(graph)))?;
    let native = nnc_cpu::CpuProgram::new(&program).map_err(|e| format!("jit: {e}\n{}", dump(&program)))?;
    let found = native.run(inputs).map_err(|e| format!("run: {e}\n{}\n{}", text(graph), dump(&program)))?;
    if found.len() != expected.len() {
        return Err(format!("{} outputs, expected {}", found.len(), expected.len()));
    }
    for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
        compare(&format!("output {k}"), e, f).map_err(|m| format!("{m}\n{}\n{}", text(graph), dump(&program)))?;
    }
    Ok(program)
}

/// [`check_native`] under the name the shared graph families use.
pub fn check(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    check_native(graph, inputs)
}
