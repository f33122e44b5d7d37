//! Helpers shared by the integration tests: where test data lives, and skipping loudly when it
//! is absent (and failing instead in CI, where it must be present).

#![allow(dead_code)]

use std::path::PathBuf;

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
