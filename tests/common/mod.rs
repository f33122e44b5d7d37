//! Helpers shared by the integration tests: where test data lives, and skipping loudly when it
//! is absent (and failing instead in CI, where it must be present).

#![allow(dead_code)]

use nnc::ir::{Graph, TensorData};
use nnc::onnx::{import_file_with, read_inputs, read_tensor_file, ImportOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The shared models, smallest first.
pub const SHARED_MODELS: [&str; 8] = [
    "digits_mlp",
    "digits_cnn",
    "lstm2",
    "silero_vad_16k_op15",
    "transformer_encoder",
    "squeezenet1_1",
    "mobilenet_v2",
    "resnet18",
];

/// A model folder's `model.onnx` imported with the input shapes of `test_data_set_0` (as
/// `nnc run --data` does), with that data set's inputs and reference outputs.
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

/// The shared models folder (`../shared/models` beside the checkout, or `$NNC_SHARED_DIR/models`).
pub fn shared_models() -> Option<PathBuf> {
    let shared = std::env::var_os("NNC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    require(shared.join("models"), "the shared models")
}

/// The ONNX backend node tests fetched by `scripts/fetch-onnx-tests.sh`.
pub fn onnx_node_tests() -> Option<PathBuf> {
    require(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".nnc-data/onnx-node"),
        "the ONNX node tests (scripts/fetch-onnx-tests.sh)",
    )
}

/// `Some(dir)` if it exists; otherwise a failure in CI and a printed skip elsewhere.
fn require(dir: PathBuf, what: &str) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "{what} must be present in CI, but {} does not exist", dir.display());
    eprintln!("SKIPPED: {what} not found at {}", dir.display());
    None
}
