//! Comparing an actual tensor with an expected one, in the manner of numpy's `allclose`.
//!
//! Elements match when `|actual - expected| <= atol + rtol * |expected|`, or when they are equal
//! (so equal infinities match), or when both are NaN. Dtype and shape must be equal. The report
//! gives the largest absolute error and the largest relative error `|actual - expected| / |expected|`
//! (over elements whose expected value is nonzero), and how many elements do not match.

use nnc_ir::{DType, TensorData};

/// Tolerances for [`compare`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    /// The tolerance the conformance suite uses for a dtype: ONNX's `rtol = 1e-3` for floats
    /// (with `atol = 1e-5` rather than ONNX's 1e-7, since nnc may sum in another order), looser
    /// for half precision, exact for integers and booleans.
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 | DType::F64 => Tolerance { rtol: 1e-3, atol: 1e-5 },
            DType::F16 | DType::BF16 => Tolerance { rtol: 1e-2, atol: 1e-3 },
            _ => Tolerance { rtol: 0.0, atol: 0.0 },
        }
    }
}

/// The outcome of comparing two tensors of equal dtype and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Largest `|actual - expected|` (infinite where one is infinite or NaN and the other is not).
    pub max_abs: f64,
    /// Largest `|actual - expected| / |expected|` over elements with a nonzero expected value.
    pub max_rel: f64,
    /// Elements outside the tolerance.
    pub mismatches: usize,
    /// Elements compared.
    pub total: usize,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.mismatches == 0
    }
}

/// Compares `actual` with `expected`; an `Err` says why they cannot be compared (dtype or shape).
pub fn compare(actual: &TensorData, expected: &TensorData, tol: Tolerance) -> Result<Comparison, String> {
    if actual.dtype() != expected.dtype() {
        return Err(format!("dtype {} differs from the expected {}", actual.dtype(), expected.dtype()));
    }
    if actual.shape() != expected.shape() {
        return Err(format!("shape {:?} differs from the expected {:?}", actual.shape(), expected.shape()));
    }
    if !actual.dtype().is_float() {
        // Integers compare exactly, without a detour through f64 (which rounds beyond 2^53).
        let (a, b) = (actual.to_i64_vec(), expected.to_i64_vec());
        let mut out = Comparison { max_abs: 0.0, max_rel: 0.0, mismatches: 0, total: a.len() };
        for (&x, &y) in a.iter().zip(&b).filter(|(x, y)| x != y) {
            let abs = (x as f64 - y as f64).abs();
            out.max_abs = out.max_abs.max(abs);
            if y != 0 {
                out.max_rel = out.max_rel.max(abs / (y as f64).abs());
            }
            out.mismatches += 1;
        }
        return Ok(out);
    }
    let (a, b) = (actual.to_f64_vec(), expected.to_f64_vec());
    let mut out = Comparison { max_abs: 0.0, max_rel: 0.0, mismatches: 0, total: a.len() };
    for (&x, &y) in a.iter().zip(&b) {
        if x == y || (x.is_nan() && y.is_nan()) {
            continue;
        }
        let abs = (x - y).abs();
        // NaN against a number, or an infinity against anything else, never matches.
        let abs = if abs.is_nan() { f64::INFINITY } else { abs };
        out.max_abs = out.max_abs.max(abs);
        if y != 0.0 && !y.is_nan() {
            out.max_rel = out.max_rel.max(abs / y.abs());
        }
        // Unequal values with an infinity or a NaN among them never match.
        if !abs.is_finite() || !y.is_finite() || abs > tol.atol + tol.rtol * y.abs() {
            out.mismatches += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance { rtol: 1e-3, atol: 1e-4 };

    fn f32s(v: &[f32]) -> TensorData {
        TensorData::from_vec(vec![v.len()], v)
    }

    #[test]
    fn close_values_pass() {
        let c = compare(&f32s(&[1.0, 2.0005, 0.00005]), &f32s(&[1.0, 2.0, 0.0]), TOL).unwrap();
        assert!(c.passed(), "{c:?}");
        assert!((c.max_abs - 0.0005).abs() < 1e-6);
        assert!((c.max_rel - 0.00025).abs() < 1e-6);
        assert_eq!(c.total, 3);
    }

    #[test]
    fn far_values_fail() {
        let c = compare(&f32s(&[1.0, 3.0, 0.001]), &f32s(&[1.0, 2.0, 0.0]), TOL).unwrap();
        assert!(!c.passed());
        assert_eq!(c.mismatches, 2);
        assert_eq!(c.max_abs, 1.0);
        assert_eq!(c.max_rel, 0.5);
    }

    #[test]
    fn nan_and_infinity() {
        let inf = f32::INFINITY;
        assert!(compare(&f32s(&[f32::NAN, inf]), &f32s(&[f32::NAN, inf]), TOL).unwrap().passed());
        let c = compare(&f32s(&[f32::NAN]), &f32s(&[1.0]), TOL).unwrap();
        assert!(!c.passed());
        assert_eq!(c.max_abs, f64::INFINITY);
        assert!(!compare(&f32s(&[inf]), &f32s(&[-inf]), TOL).unwrap().passed());
        assert!(!compare(&f32s(&[1.0]), &f32s(&[f32::NAN]), TOL).unwrap().passed());
        assert!(!compare(&f32s(&[1.0]), &f32s(&[inf]), TOL).unwrap().passed());
    }

    #[test]
    fn dtype_and_shape_must_match() {
        let i = TensorData::from_vec(vec![1], &[1i64]);
        assert!(compare(&i, &f32s(&[1.0]), TOL).unwrap_err().contains("dtype"));
        assert!(compare(&f32s(&[1.0, 2.0]), &f32s(&[1.0]), TOL).unwrap_err().contains("shape"));
        let m = TensorData::from_vec(vec![1, 2], &[1.0f32, 2.0]);
        assert!(compare(&m, &f32s(&[1.0, 2.0]), TOL).is_err());
    }

    #[test]
    fn integers_compare_exactly_with_zero_tolerance() {
        let a = TensorData::from_vec(vec![2], &[3i32, 4]);
        let b = TensorData::from_vec(vec![2], &[3i32, 5]);
        let exact = Tolerance { rtol: 0.0, atol: 0.0 };
        assert!(!compare(&a, &b, exact).unwrap().passed());
        assert!(compare(&a, &a, exact).unwrap().passed());
    }
}
