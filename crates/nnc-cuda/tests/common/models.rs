//! The shared models (`../shared/models` beside the checkout, or `$NNC_SHARED_DIR/models`),
//! imported with the input shapes of their first test data set, optimized and compiled for
//! the CUDA backend's device; and the ptxas report over all of them. Used by `tests/ptx_models.rs` and
//! `examples/ptx_report.rs`.

#![allow(dead_code)]

use nnc_cuda::report::{markdown, program_report, KernelReport};
use nnc_ir::{Graph, TensorData};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::Program;
use nnc_lower::{bind_input_shapes, compile};
use nnc_onnx::{import_file_with, read_inputs, read_tensor_file, ImportOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const MODELS: [&str; 8] = [
    "digits_mlp",
    "digits_cnn",
    "lstm2",
    "silero_vad_16k_op15",
    "transformer_encoder",
    "squeezenet1_1",
    "mobilenet_v2",
    "resnet18",
];

pub const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

/// `NNC_CUDA_MODELS=a,b` limits the models (all by default).
pub fn selected() -> Vec<String> {
    match std::env::var("NNC_CUDA_MODELS") {
        Ok(s) if !s.is_empty() => s.split(',').map(str::to_string).collect(),
        _ => MODELS.iter().map(|s| s.to_string()).collect(),
    }
}

/// The shared models' directory, if present.
pub fn shared_models() -> Result<PathBuf, String> {
    let shared = std::env::var_os("NNC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("models");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("the shared models not found at {}", dir.display()))
    }
}

/// The model with the input shapes of `test_data_set_0`, and those inputs.
pub fn load(dir: &Path) -> Result<(Graph, Vec<TensorData>), String> {
    let model = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let names = read_inputs(&model).map_err(|e| e.to_string())?;
    let mut inputs = Vec::new();
    for i in 0..names.len() {
        inputs.push(read_tensor_file(&data.join(format!("input_{i}.pb"))).map_err(|e| e.to_string())?.1);
    }
    let shapes: HashMap<String, Vec<usize>> =
        names.iter().zip(&inputs).map(|((n, _), t)| (n.clone(), t.shape().to_vec())).collect();
    let graph = import_file_with(&model, &ImportOptions { input_shapes: shapes, ..Default::default() })
        .map_err(|e| e.to_string())?;
    Ok((graph, inputs))
}

/// The optimized model compiled for the CUDA backend's device.
pub fn program_for(graph: &Graph, inputs: &[TensorData]) -> Result<Program, String> {
    let graph = bind_input_shapes(graph, inputs);
    let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).map_err(|e| e.to_string())?;
    compile(&optimized.graph, &nnc_cuda::CudaBackend.device(), None).map_err(|e| e.to_string())
}

/// Per model: its name and its kernels' reports (or what went wrong).
pub type ModelReports = Vec<(String, Result<Vec<KernelReport>, String>)>;

/// Every selected model's report, and the whole report as Markdown; errors name the model.
pub fn models_report(models: &Path) -> (ModelReports, String) {
    let mut all = Vec::new();
    let mut md = String::from("## ptxas report: every kernel of the shared models, NVRTC → PTX → ptxas -v\n\n");
    md.push_str("Registers and static shared memory per thread block; spill stores/loads in bytes.\n\n");
    for name in selected() {
        let result = load(&models.join(&name))
            .and_then(|(g, inputs)| program_for(&g, &inputs))
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
