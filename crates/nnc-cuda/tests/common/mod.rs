//! Helpers shared by the CUDA tests: nnc-kernel's test helpers and random graph
//! families (used as they are rather than copied), the shared models, and skipping loudly when
//! NVRTC or ptxas are missing (a failure in CI).

#![allow(dead_code)]

/// nnc-kernel's test helpers (compiling for a device, deterministic inputs, small graphs).
#[path = "../../../nnc-lower/tests/common/mod.rs"]
pub mod kernel_common;

// Not every test binary uses the families.
#[allow(unused_imports)]
pub use kernel_common::families;

pub mod models;

/// `Some(())` when NVRTC and ptxas are both available; otherwise a loud skip (`None`), or a
/// failure when `CI` is set.
pub fn tools() -> Option<()> {
    match nnc_cuda::nvrtc::tools_available() {
        Ok(()) => Some(()),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have NVRTC and ptxas (run scripts/setup.sh): {e}");
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}
