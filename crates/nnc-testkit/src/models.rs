//! The shared models (`../shared/models` beside the checkout, or `$NNC_SHARED_DIR/models`):
//! each imported with the input shapes of its first test data set, with that data set's inputs
//! and reference outputs (ONNX Runtime's), and compiled for a device the way a session does.

use crate::compare::{Tolerance, MODEL_TOLERANCE};
use nnc_ir::{Graph, TensorData};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_onnx::proto::ModelProto;
use nnc_onnx::{import_model, inputs_of, read_model, read_tensor_file, ImportOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The shared models, smallest first.
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

/// The public models `scripts/fetch-public-models.sh` fetches from their packages on PyPI into
/// `.nnc-data/models/public`, with ONNX Runtime's outputs for seeded inputs: models users bring,
/// that no one here chose. Each with the tolerance its comparison needs.
pub const PUBLIC_MODELS: [(&str, Tolerance); 4] = [
    ("nudenet_320n", MODEL_TOLERANCE),
    ("ddddocr_common", MODEL_TOLERANCE),
    ("ddddocr_common_det", MODEL_TOLERANCE),
    // Its posteriorgrams come from the log of a constant-Q transform's power: where the power is
    // tiny, ONNX Runtime and nnc (the interpreter as much as any target) differ by up to 2.5e-4.
    ("basic_pitch_nmp", Tolerance { rtol: 1e-3, atol: 1e-3 }),
];

/// Public models that run staged (their control flow is decided by an input's value), with
/// their tolerances: silero-vad's default model, one data set per sample rate.
pub const STAGED_PUBLIC_MODELS: [(&str, Tolerance); 2] =
    [("silero_vad_16k", MODEL_TOLERANCE), ("silero_vad_8k", MODEL_TOLERANCE)];

/// The public models' folder; absent → `None` after a loud skip (a failure in CI).
pub fn public_models() -> Option<PathBuf> {
    crate::skip::required_dir(
        crate::skip::workspace_dir().join(".nnc-data/models/public"),
        "the public models (scripts/fetch-public-models.sh)",
    )
}

/// The shared models' folder, or why it is not there.
pub fn shared_models_dir() -> Result<PathBuf, String> {
    let dir = crate::skip::shared_dir().join("models");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("the shared models not found at {}", dir.display()))
    }
}

/// The shared models' folder; absent → `None` after a loud skip (a failure in CI).
pub fn shared_models() -> Option<PathBuf> {
    crate::skip::required_dir(crate::skip::shared_dir().join("models"), "the shared models")
}

/// `names`, or the comma-separated list in the environment variable `var` when it is set and
/// not empty (to run a few models while debugging).
pub fn selected(var: &str, names: &[&str]) -> Vec<String> {
    match std::env::var(var) {
        Ok(s) if !s.is_empty() => s.split(',').map(str::to_string).collect(),
        _ => names.iter().map(|s| s.to_string()).collect(),
    }
}

/// A shared model with its first test data set.
pub struct SharedModel {
    pub name: String,
    /// Imported with the input shapes of the data set (as `nnc run --data` does).
    pub graph: Graph,
    pub inputs: Vec<TensorData>,
    /// ONNX Runtime's outputs for `inputs`.
    pub expected: Vec<TensorData>,
}

/// The model in the folder `dir` (`model.onnx`, `test_data_set_0/{input,output}_N.pb`).
pub fn try_load(dir: &Path) -> Result<SharedModel, String> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let what = dir.join("model.onnx").display().to_string();
    let (proto, inputs, expected) = read_case(dir)?;
    let names = inputs_of(&proto, &what).map_err(|e| format!("{name}: {e}"))?;
    let shapes: HashMap<String, Vec<usize>> =
        names.iter().zip(&inputs).map(|((n, _), t)| (n.clone(), t.shape().to_vec())).collect();
    let options = ImportOptions { input_shapes: shapes, ..Default::default() };
    let graph = import_model(&proto, &what, Some(dir), &options).map_err(|e| format!("{name}: {e}"))?;
    Ok(SharedModel { name, graph, inputs, expected })
}

/// The decoded `dir/model.onnx`, and the inputs and expected outputs of `dir/test_data_set_0`.
pub fn read_case(dir: &Path) -> Result<(ModelProto, Vec<TensorData>, Vec<TensorData>), String> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let model = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let what = model.display().to_string();
    let proto = read_model(&model).map_err(|e| format!("{name}: {e}"))?;
    let inputs = inputs_of(&proto, &what).map_err(|e| format!("{name}: {e}"))?;
    let read = |path: PathBuf| read_tensor_file(&path).map(|(_, t)| t).map_err(|e| format!("{}: {e}", path.display()));
    let inputs = (0..inputs.len()).map(|i| read(data.join(format!("input_{i}.pb")))).collect::<Result<_, _>>()?;
    let mut expected = Vec::new();
    for i in 0.. {
        let path = data.join(format!("output_{i}.pb"));
        if !path.exists() {
            break;
        }
        expected.push(read(path)?);
    }
    Ok((proto, inputs, expected))
}

/// [`try_load`], panicking with the reason.
pub fn load(dir: &Path) -> SharedModel {
    try_load(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The model's graph bound to the inputs' shapes, optimized, and compiled for `device`: what a
/// session compiles for that data.
pub fn program_for(graph: &Graph, inputs: &[TensorData], device: &Device) -> Result<Program, String> {
    let graph = nnc_lower::bind_input_shapes(graph, inputs);
    let optimized = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()).map_err(|e| format!("optimize: {e}"))?;
    nnc_lower::compile(&optimized.graph, device, None).map_err(|e| format!("compile: {e}"))
}
