//! What the benchmarks share: where the shared models are, and importing a model specialized to
//! the input shapes of its test data (as `nnc run --data` does).

#![allow(dead_code)]

use nnc::onnx::{import_file_with, read_inputs, read_tensor_file, ImportOptions};
use std::path::{Path, PathBuf};

/// `../shared/models` beside the checkout (or `$NNC_SHARED_DIR/models`); `None`, said loudly,
/// where it is absent.
pub fn models_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NNC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("models");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: shared models not found at {}", dir.display());
        None
    }
}

/// Import options fixing a model folder's input shapes to those of `test_data_set_0`.
pub fn shapes_of_test_data(dir: &Path) -> ImportOptions {
    let inputs = read_inputs(&dir.join("model.onnx")).expect("model inputs");
    let input_shapes = inputs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let (_, t) = read_tensor_file(&dir.join(format!("test_data_set_0/input_{i}.pb"))).expect("input");
            (name.clone(), t.shape().to_vec())
        })
        .collect();
    ImportOptions { input_shapes, ..Default::default() }
}

/// The model in `dir`, specialized to its test data's shapes.
pub fn import_specialized(dir: &Path) -> nnc::ir::Graph {
    import_file_with(&dir.join("model.onnx"), &shapes_of_test_data(dir)).expect("import")
}
