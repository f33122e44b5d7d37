//! Comparing a target's tensors with a reference's: elementwise `|found - expected| <= atol +
//! rtol * |expected|`, integers exactly, and what a target promises where the exact result is
//! infinite or NaN.

use nnc_ir::TensorData;

/// How far a float element may be from the reference's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

/// Programs of a few ops against the interpreters: both sides compute in f32 (or exactly), in
/// nearly the same order.
pub const PROGRAM_TOLERANCE: Tolerance = Tolerance { rtol: 1e-4, atol: 1e-5 };

/// Whole models against their stored references (ONNX Runtime's outputs): long f32 chains summed
/// in another order.
pub const MODEL_TOLERANCE: Tolerance = Tolerance { rtol: 1e-3, atol: 1e-4 };

/// What a target promises where the exact result is infinite or NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// IEEE arithmetic: infinities and NaNs must be where the reference has them.
    Ieee,
    /// Nothing: the target may assume no infinity or NaN occurs (WGSL §15.7, "Floating Point
    /// Evaluation"; lavapipe folds `x / (y - y)` to 0), so elements whose reference is not
    /// finite have no defined result and are not compared.
    Undefined,
}

/// [`close`] with [`PROGRAM_TOLERANCE`] and IEEE infinities and NaNs.
pub fn compare(what: &str, expected: &TensorData, found: &TensorData) -> Result<(), String> {
    close(what, expected, found, PROGRAM_TOLERANCE)
}

/// Dtype and shape must be equal; float elements within `tolerance` (NaNs where the reference
/// has NaNs, equal infinities), integers exactly. The error names the first element that differs.
pub fn close(what: &str, expected: &TensorData, found: &TensorData, tolerance: Tolerance) -> Result<(), String> {
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
        let differs = |(&x, &y): (&f64, &f64)| {
            if x.is_nan() || y.is_nan() {
                !(x.is_nan() && y.is_nan())
            } else if x.is_infinite() || y.is_infinite() {
                x != y
            } else {
                (x - y).abs() > tolerance.atol + tolerance.rtol * x.abs()
            }
        };
        if let Some(i) = e.iter().zip(&f).position(differs) {
            return Err(format!("{what}: element {i} (of {}): expected {}, found {}", e.len(), e[i], f[i]));
        }
    } else {
        let (e, f) = (expected.to_i64_vec(), found.to_i64_vec());
        if let Some(i) = (0..e.len()).find(|&i| e[i] != f[i]) {
            return Err(format!("{what}: element {i}: expected {}, found {}", e[i], f[i]));
        }
    }
    Ok(())
}

/// [`close`] under a target's [`NonFinite`] promise: with [`NonFinite::Undefined`], only the
/// float elements whose reference is finite are compared.
pub fn close_under(
    what: &str,
    expected: &TensorData,
    found: &TensorData,
    tolerance: Tolerance,
    non_finite: NonFinite,
) -> Result<(), String> {
    let comparable = expected.dtype() == found.dtype() && expected.shape() == found.shape();
    if non_finite == NonFinite::Ieee || !expected.dtype().is_float() || !comparable {
        return close(what, expected, found, tolerance);
    }
    let (e, f) = (expected.to_f64_vec(), found.to_f64_vec());
    let finite: Vec<usize> = (0..e.len()).filter(|&i| e[i].is_finite()).collect();
    let pick = |v: &[f64]| {
        let values: Vec<f64> = finite.iter().map(|&i| v[i]).collect();
        TensorData::from_f64(expected.dtype(), vec![finite.len()], &values)
    };
    close(what, &pick(&e), &pick(&f), tolerance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> TensorData {
        TensorData::from_vec(vec![v.len()], v)
    }

    #[test]
    fn floats_within_the_tolerance_are_close() {
        let t = Tolerance { rtol: 1e-3, atol: 1e-4 };
        assert!(close("x", &f32s(&[1.0, -2.0]), &f32s(&[1.0009, -2.0019]), t).is_ok());
        let e = close("x", &f32s(&[1.0, -2.0]), &f32s(&[1.0, -2.01]), t).unwrap_err();
        assert_eq!(e, "x: element 1 (of 2): expected -2, found -2.009999990463257");
    }

    #[test]
    fn nans_and_infinities_must_agree_unless_undefined() {
        let t = PROGRAM_TOLERANCE;
        let reference = f32s(&[f32::NAN, f32::INFINITY, 1.0]);
        assert!(close("x", &reference, &f32s(&[f32::NAN, f32::INFINITY, 1.0]), t).is_ok());
        let found = f32s(&[0.0, 7.0, 1.0]);
        assert!(close("x", &reference, &found, t).is_err());
        assert!(close_under("x", &reference, &found, t, NonFinite::Ieee).is_err());
        assert!(close_under("x", &reference, &found, t, NonFinite::Undefined).is_ok());
        let wrong = f32s(&[0.0, 7.0, 2.0]);
        assert!(close_under("x", &reference, &wrong, t, NonFinite::Undefined).is_err());
        // A NaN where the reference is finite is still wrong.
        assert!(close_under("x", &f32s(&[1.0]), &f32s(&[f32::NAN]), t, NonFinite::Undefined).is_err());
    }

    #[test]
    fn shapes_dtypes_and_integers_are_exact() {
        let t = PROGRAM_TOLERANCE;
        assert!(close("x", &f32s(&[1.0, 2.0]), &TensorData::from_vec(vec![1, 2], &[1.0f32, 2.0]), t).is_err());
        let ints = |v: &[i64]| TensorData::from_i64(nnc_ir::DType::I64, vec![v.len()], v);
        assert!(close("x", &ints(&[1 << 60]), &ints(&[(1 << 60) + 1]), t).is_err());
        assert!(close("x", &ints(&[3]), &f32s(&[3.0]), t).is_err());
    }
}
