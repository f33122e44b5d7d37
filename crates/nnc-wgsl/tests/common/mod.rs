//! Helpers shared by the WGSL tests: nnc-kernel's helpers and graph families, and getting a
//! wgpu adapter or saying loudly that there is none (a failure in CI).

#![allow(dead_code)]

/// nnc-kernel's test helpers (compiling for a device, deterministic inputs, comparing with the
/// graph interpreter), used as they are rather than copied.
#[path = "../../../nnc-lower/tests/common/mod.rs"]
pub mod kernel_common;

// Not every test binary uses the families.
#[allow(unused_imports)]
pub use kernel_common::families;

use nnc_ir::TensorData;
use nnc_kernel::program::Program;
use nnc_wgsl::{WgslError, WgslProgram};

/// `program` prepared on the first wgpu adapter; `None` (after a loud message) when there is no
/// adapter, which fails the test when `CI` is set.
pub fn gpu(program: &Program) -> Option<WgslProgram> {
    match WgslProgram::new(program, None) {
        Ok(p) => Some(p),
        Err(WgslError::NoAdapter(m)) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have a wgpu adapter (lavapipe): {m}");
            eprintln!("SKIPPED: no wgpu adapter ({m}); install mesa-vulkan-drivers and libvulkan1");
            None
        }
        Err(e) => panic!("preparing `{}` for wgpu: {e}", program.fused.name),
    }
}

/// `|f - e| <= atol + rtol * |e|` elementwise (NaNs and infinities must agree; integers exact).
/// [`close`] on the elements whose expected value is finite. WGSL lets implementations assume
/// that no infinity or NaN occurs (WGSL §15.7, "Floating Point Evaluation"): lavapipe folds
/// `x / (y - y)` to 0, for one, so a random graph that divides by zero has no defined result there.
pub fn close_where_finite(
    what: &str,
    expected: &TensorData,
    found: &TensorData,
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    if !expected.dtype().is_float() || expected.shape() != found.shape() || expected.dtype() != found.dtype() {
        return close(what, expected, found, rtol, atol);
    }
    let (e, f) = (expected.to_f64_vec(), found.to_f64_vec());
    let keep: Vec<usize> = (0..e.len()).filter(|&i| e[i].is_finite()).collect();
    let pick = |v: &[f64]| {
        TensorData::from_f64(expected.dtype(), vec![keep.len()], &keep.iter().map(|&i| v[i]).collect::<Vec<_>>())
    };
    close(what, &pick(&e), &pick(&f), rtol, atol)
}

pub fn close(what: &str, expected: &TensorData, found: &TensorData, rtol: f64, atol: f64) -> Result<(), String> {
    if expected.dtype() != found.dtype() || expected.shape() != found.shape() {
        return Err(format!(
            "{what}: expected {}{:?}, found {}{:?}",
            expected.dtype().name(),
            expected.shape(),
            found.dtype().name(),
            found.shape()
        ));
    }
    if expected.dtype().is_float() {
        let (e, f) = (expected.to_f64_vec(), found.to_f64_vec());
        let mut worst: Option<(usize, f64)> = None;
        for (i, (&x, &y)) in e.iter().zip(&f).enumerate() {
            let ok = if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                (x - y).abs() <= atol + rtol * x.abs()
            };
            if !ok && worst.is_none() {
                worst = Some((i, y));
            }
        }
        if let Some((i, y)) = worst {
            return Err(format!("{what}: element {i} (of {}): expected {}, found {y}", e.len(), e[i]));
        }
    } else {
        let (e, f) = (expected.to_i64_vec(), found.to_i64_vec());
        if let Some(i) = (0..e.len()).find(|&i| e[i] != f[i]) {
            return Err(format!("{what}: element {i}: expected {}, found {}", e[i], f[i]));
        }
    }
    Ok(())
}
