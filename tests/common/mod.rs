//! Helpers shared by the integration tests: the test kit's (`nnc-testkit`) shared models and
//! node tests, skipped loudly when absent (and failing instead in CI, where they must be
//! present).

#![allow(dead_code)]

use nnc::ir::{Graph, TensorData};
use std::path::Path;

// Not every test binary uses both.
#[allow(unused_imports)]
pub use nnc_testkit::models::{shared_models, MODELS as SHARED_MODELS};
#[allow(unused_imports)]
pub use nnc_testkit::skip::onnx_node_tests;

/// A model folder's `model.onnx` imported with the input shapes of `test_data_set_0` (as
/// `nnc run --data` does), with that data set's inputs and reference outputs.
pub fn load_with_data(dir: &Path) -> (Graph, Vec<TensorData>, Vec<TensorData>) {
    let model = nnc_testkit::models::load(dir);
    (model.graph, model.inputs, model.expected)
}
