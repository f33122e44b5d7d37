//! ONNX Runtime as a peer: runs an ONNX model that nnc wrote (an export, a quantized model)
//! through `scripts/ort_run.py`, with the ONNX Runtime and numpy that `scripts/setup.sh` unpacks
//! into `.nnc-data/py`. Where they are missing, a loud skip (a failure in CI).

use crate::skip::{skip, workspace_dir};
use nnc_ir::TensorData;
use std::path::Path;

/// ONNX Runtime's first output, as `f32`, for `model` on `inputs` (in the model's input order);
/// `None` after a loud skip where ONNX Runtime is not there.
pub fn run_first_output(model: &Path, inputs: &[TensorData]) -> Option<Vec<f32>> {
    let py = workspace_dir().join(".nnc-data/py");
    if !py.join("onnxruntime").is_dir() {
        skip(&format!("ONNX Runtime not found in {} (scripts/setup.sh fetches it)", py.display()), true);
        return None;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (k, t) in inputs.iter().enumerate() {
        let bytes = prost::Message::encode_to_vec(&nnc_onnx::tensor_to_proto(&format!("input_{k}"), t));
        std::fs::write(dir.path().join(format!("input_{k}.pb")), bytes).expect("write an input");
    }
    let scripts = workspace_dir().join("scripts");
    let status = std::process::Command::new("python3")
        .arg(scripts.join("ort_run.py"))
        .arg(model)
        .arg(dir.path())
        .env("PYTHONPATH", format!("{}:{}", py.display(), scripts.display()))
        .status()
        .expect("python3");
    assert!(status.success(), "ONNX Runtime could not run {}", model.display());
    let bytes = std::fs::read(dir.path().join("output_0.npy")).expect("ONNX Runtime's output");
    Some(npyz::NpyFile::new(&bytes[..]).expect("an .npy file").into_vec::<f32>().expect("f32 values"))
}
