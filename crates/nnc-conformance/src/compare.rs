//! Comparing results with references: numpy's `allclose` rule with NaN equal to NaN.

use nnc_ir::{DType, TensorData};

/// `|actual - expected| <= atol + rtol * |expected|`, elementwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    /// The tolerance the conformance suite uses for a dtype: ONNX's `rtol = 1e-3` for floats
    /// (with `atol = 1e-5` rather than ONNX's 1e-7, since we compute in a different order), looser
    /// for half precision, exact for integers and booleans.
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 | DType::F64 => Tolerance { rtol: 1e-3, atol: 1e-5 },
            DType::F16 | DType::BF16 => Tolerance { rtol: 1e-2, atol: 1e-3 },
            _ => Tolerance { rtol: 0.0, atol: 0.0 },
        }
    }
}

/// The result of comparing one tensor with its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub max_abs: f64,
    pub max_rel: f64,
    /// Why the tensors cannot be compared elementwise (dtype or shape differ), if so.
    pub mismatch: Option<String>,
    pub passed: bool,
}

pub fn compare(actual: &TensorData, expected: &TensorData, tol: Tolerance) -> Comparison {
    let fail =
        |m: String| Comparison { max_abs: f64::INFINITY, max_rel: f64::INFINITY, mismatch: Some(m), passed: false };
    if actual.dtype() != expected.dtype() {
        return fail(format!("dtype {} differs from the reference's {}", actual.dtype(), expected.dtype()));
    }
    if actual.shape() != expected.shape() {
        return fail(format!("shape {:?} differs from the reference's {:?}", actual.shape(), expected.shape()));
    }
    let (mut max_abs, mut max_rel, mut passed) = (0.0f64, 0.0f64, true);
    let exact = !actual.dtype().is_float();
    let (a, e) = if exact {
        let conv = |t: &TensorData| t.to_i64_vec().into_iter().map(|v| v as f64).collect::<Vec<_>>();
        (conv(actual), conv(expected))
    } else {
        (actual.to_f64_vec(), expected.to_f64_vec())
    };
    for (&x, &y) in a.iter().zip(&e) {
        if x.is_nan() && y.is_nan() || x == y {
            continue;
        }
        let diff = (x - y).abs();
        let diff = if diff.is_nan() { f64::INFINITY } else { diff };
        max_abs = max_abs.max(diff);
        if y != 0.0 {
            max_rel = max_rel.max(diff / y.abs());
        }
        if !(diff <= tol.atol + tol.rtol * y.abs()) {
            passed = false;
        }
    }
    Comparison { max_abs, max_rel, mismatch: None, passed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allclose_rule() {
        let tol = Tolerance { rtol: 1e-3, atol: 1e-5 };
        let a = TensorData::from_vec(vec![3], &[1.0f32, f32::NAN, 100.05]);
        let e = TensorData::from_vec(vec![3], &[1.0f32, f32::NAN, 100.0]);
        let c = compare(&a, &e, tol);
        assert!(c.passed, "{c:?}");
        let e2 = TensorData::from_vec(vec![3], &[1.0f32, 0.0, 100.0]);
        assert!(!compare(&a, &e2, tol).passed);
    }

    #[test]
    fn shapes_and_dtypes_must_match() {
        let a = TensorData::from_vec(vec![2], &[1i64, 2]);
        assert!(compare(&a, &TensorData::from_vec(vec![1, 2], &[1i64, 2]), Tolerance::for_dtype(DType::I64))
            .mismatch
            .is_some());
        assert!(compare(&a, &TensorData::from_vec(vec![2], &[1i32, 2]), Tolerance::for_dtype(DType::I64))
            .mismatch
            .is_some());
        assert!(!compare(&a, &TensorData::from_vec(vec![2], &[1i64, 3]), Tolerance::for_dtype(DType::I64)).passed);
    }
}
