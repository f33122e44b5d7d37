//! Helpers of the WGSL backend's own tests (beyond its suite line, `suite.rs`): getting a wgpu
//! adapter or saying loudly that there is none (a failure in CI, which has lavapipe), and
//! checking a graph on wgpu against both interpreters.

#![allow(dead_code)]

use nnc_ir::{Graph, TensorData};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_testkit::check::{availability, check_on, Oracles};
use nnc_testkit::skip::skip;
use nnc_testkit::NonFinite;
use nnc_wgsl::{WgslBackend, WgslError, WgslProgram};

const NO_ADAPTER_HINT: &str = "install mesa-vulkan-drivers and libvulkan1";

/// `program` prepared on the first wgpu adapter; `None` (after a loud message) when there is no
/// adapter, which fails the test when `CI` is set.
pub fn gpu(program: &Program) -> Option<WgslProgram> {
    match WgslProgram::new(program, None) {
        Ok(p) => Some(p),
        Err(WgslError::NoAdapter(m)) => {
            skip(&format!("no wgpu adapter ({m}); {NO_ADAPTER_HINT}"), true);
            None
        }
        Err(e) => panic!("preparing `{}` for wgpu: {e}", program.fused.name),
    }
}

/// Compiles `graph` for `Device::gpu()`, runs it on wgpu and compares it with the graph
/// interpreter and the Kernel-IR interpreter (where the reference is finite: WGSL promises
/// nothing about infinities and NaNs). `Ok(false)`: no adapter, after a loud message (a failure
/// in CI).
pub fn check_gpu(graph: &Graph, inputs: &[TensorData]) -> Result<bool, String> {
    let backend = WgslBackend::default();
    if let Err(why) = availability(&backend) {
        skip(&format!("{why}; {NO_ADAPTER_HINT}"), true);
        return Ok(false);
    }
    check_on(&backend, &Device::gpu(), graph, inputs, Oracles::Both, NonFinite::Undefined).map(|_| true)
}
