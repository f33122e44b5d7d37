//! Helpers shared by the integration tests: nnc-kernel's test helpers (compiling for a device,
//! deterministic inputs, comparing with the graph interpreter), with `check` running the
//! program natively instead of on the Kernel-IR interpreter.

#![allow(dead_code)]

#[path = "../../../nnc-lower/tests/common/mod.rs"]
mod kernel_common;

pub use kernel_common::*;
use nnc_cpu::{CpuOptions, EmitOptions};
use nnc_ir::{Graph, TensorData};
use nnc_kernel::program::Program;
use nnc_kernel::Device;

/// Runs `graph` through the graph interpreter and natively, and compares every output: once
/// scheduled for 128-bit vectors and compiled by Cranelift, once scheduled for the host's widest
/// vectors and compiled by LLVM (where built). Returns the first program.
pub fn check_native(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    let expected = nnc_interp::run(graph, inputs).map_err(|e| format!("graph interpreter: {e}\n{}", text(graph)))?;
    let cranelift = EmitOptions { llvm: false, ..EmitOptions::default() };
    let mut first = None;
    for (device, emit) in [(Device::cpu(), cranelift), (nnc_cpu::jit_device(), EmitOptions::default())] {
        let backend = if emit.llvm { "llvm" } else { "cranelift" };
        let program = try_compile(graph, &device).map_err(|e| format!("compile: {e}\n{}", text(graph)))?;
        let options = CpuOptions { emit, threads: None };
        let native = nnc_cpu::CpuProgram::with_options(&program, &options)
            .map_err(|e| format!("{backend} jit: {e}\n{}", dump(&program)))?;
        let found =
            native.run(inputs).map_err(|e| format!("{backend} run: {e}\n{}\n{}", text(graph), dump(&program)))?;
        if found.len() != expected.len() {
            return Err(format!("{backend}: {} outputs, expected {}", found.len(), expected.len()));
        }
        for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
            compare(&format!("{backend} output {k}"), e, f)
                .map_err(|m| format!("{m}\n{}\n{}", text(graph), dump(&program)))?;
        }
        first.get_or_insert(program);
    }
    Ok(first.expect("two configurations ran"))
}

/// [`check_native`] under the name the shared graph families use.
pub fn check(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    check_native(graph, inputs)
}
