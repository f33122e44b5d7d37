//! The shared models compiled for the CUDA backend's device, and the ptxas report over all of
//! them (loading the models is the test kit's, `nnc_testkit::models`). Used by
//! `tests/ptx_models.rs` and `examples/ptx_report.rs`.

#![allow(dead_code)]

use nnc_cuda::report::{markdown, program_report, KernelReport};
use nnc_ir::{Graph, TensorData};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::Program;
use nnc_testkit::models::{selected, try_load, MODELS};
use std::path::{Path, PathBuf};

pub const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

/// The optimized model compiled for the CUDA backend's device.
pub fn program_for(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    nnc_testkit::models::program_for(graph, inputs, &nnc_cuda::CudaBackend.device())
}

/// Per model: its name and its kernels' reports (or what went wrong).
pub type ModelReports = Vec<(String, Result<Vec<KernelReport>, String>)>;

/// Every model (`NNC_CUDA_MODELS=a,b` limits them) with its report, and the whole report as
/// Markdown; errors name the model.
pub fn models_report(models: &Path) -> (ModelReports, String) {
    let mut all = Vec::new();
    let mut md = String::from("## ptxas report: every kernel of the shared models, NVRTC → PTX → ptxas -v\n\n");
    md.push_str("Registers and static shared memory per thread block; spill stores/loads in bytes.\n\n");
    for name in selected("NNC_CUDA_MODELS", &MODELS) {
        let result = try_load(&models.join(&name))
            .and_then(|m| program_for(&m.graph, &m.inputs))
            .and_then(|p| program_report(&p, &ARCHS).map_err(|e| e.to_string()));
        match &result {
            Ok(r) => md.push_str(&markdown(&name, r, &ARCHS)),
            Err(e) => md.push_str(&format!("### {name}\n\nERROR: {e}\n")),
        }
        md.push('\n');
        all.push((name, result));
    }
    (all, md)
}

/// Writes the report to `target/ptx-report.md` of the workspace; returns the path.
pub fn write_report(md: &str) -> std::io::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("ptx-report.md");
    std::fs::write(&path, md)?;
    Ok(path)
}
