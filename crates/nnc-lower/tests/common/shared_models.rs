//! The shared models (`../shared/models` beside the checkout, or `$NNC_SHARED_DIR/models`) with
//! the inputs and reference outputs of their first test data set. Included with `#[path]` by the
//! backends' model tests (it needs `nnc-onnx`, which nnc-kernel's own tests do not use).

#![allow(dead_code)]

use nnc_ir::{Graph, TensorData};
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

/// The shared models' folder; absent → `None` after a loud message (a failure when `CI` is set).
pub fn shared_models() -> Option<PathBuf> {
    let shared = std::env::var_os("NNC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("models");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "the shared models must be present in CI ({})", dir.display());
    eprintln!("SKIPPED: the shared models not found at {}", dir.display());
    None
}

/// The model in `dir` imported with the input shapes of `test_data_set_0`, its inputs and its
/// reference outputs.
pub fn load_with_data(dir: &Path) -> (Graph, Vec<TensorData>, Vec<TensorData>) {
    let model = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let names = read_inputs(&model).unwrap_or_else(|e| panic!("{e}"));
    let inputs: Vec<_> =
        (0..names.len()).map(|i| read_tensor_file(&data.join(format!("input_{i}.pb"))).expect("input").1).collect();
    let shapes: HashMap<String, Vec<usize>> =
        names.iter().zip(&inputs).map(|((n, _), t)| (n.clone(), t.shape().to_vec())).collect();
    let graph = import_file_with(&model, &ImportOptions { input_shapes: shapes, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut expected = Vec::new();
    for i in 0.. {
        let path = data.join(format!("output_{i}.pb"));
        if !path.exists() {
            break;
        }
        expected.push(read_tensor_file(&path).expect("output").1);
    }
    (graph, inputs, expected)
}
