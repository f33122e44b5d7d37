//! Where test data lives, and skipping loudly: a check that cannot run here says
//! `SKIPPED: why` on stderr, and fails instead when `CI` is set and CI machines must have what
//! is missing (the shared models, the node tests, a wgpu adapter; not a CUDA driver).

use std::path::PathBuf;

/// Whether this is a CI run (`CI` set), where missing test data or a required target fails.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Says `SKIPPED: {why}`, or panics with `why` when `required_in_ci` and this is a CI run.
pub fn skip(why: &str, required_in_ci: bool) {
    assert!(!(required_in_ci && in_ci()), "CI must be able to run this: {why}");
    eprintln!("SKIPPED: {why}");
}

/// The workspace's root folder.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `Some(dir)` if it is a folder; otherwise a loud skip naming `what` (a failure in CI).
pub fn required_dir(dir: PathBuf, what: &str) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir);
    }
    skip(&format!("{what} not found at {}", dir.display()), true);
    None
}

/// The folder beside the checkout that holds the shared models (`../shared`), or
/// `$NNC_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("NNC_SHARED_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_dir().join("../shared"))
}

/// The ONNX backend node tests fetched by `scripts/fetch-onnx-tests.sh` (`.nnc-data/onnx-node`).
pub fn onnx_node_tests() -> Option<PathBuf> {
    required_dir(workspace_dir().join(".nnc-data/onnx-node"), "the ONNX node tests (scripts/fetch-onnx-tests.sh)")
}
