//! Helpers shared by the CUDA backend's own tests (beyond its suite line, `suite.rs`): the
//! shared models' ptxas report, and skipping loudly when NVRTC or ptxas are missing (a failure
//! in CI, where `scripts/setup.sh` fetches them).

#![allow(dead_code)]

pub mod models;

/// `Some(())` when NVRTC and ptxas are both available; otherwise a loud skip (`None`), or a
/// failure when `CI` is set.
pub fn tools() -> Option<()> {
    match nnc_cuda::nvrtc::tools_available() {
        Ok(()) => Some(()),
        Err(e) => {
            nnc_testkit::skip::skip(&format!("{e} (run scripts/setup.sh)"), true);
            None
        }
    }
}
