//! Reductions: `reduce_{sum,mean,max,min,prod}` over a set of axes and `argmax`/`argmin`.
//!
//! - Elements combine in row-major order of the input, floats in `f64` (rounded to the dtype once
//!   at the end), integers in wrapping `i64` (wrapped to the dtype once at the end; an integer
//!   mean is the `i64` sum divided by the count, truncating).
//! - An empty axis list is an identity copy; `keep_dims` only changes the result's shape.
//! - Over zero elements: sum 0, prod 1, max `-inf` (the dtype's minimum for integers), min
//!   `+inf` (the maximum), mean NaN for floats and an error for integers (ONNX's rules).
//! - `max`/`min` propagate NaN. `argmax`/`argmin` follow: a NaN wins over every number (so the
//!   index points at an element equal to `reduce_max`/`reduce_min`, NaN included, as numpy and
//!   PyTorch); ties and repeated NaNs pick the first occurrence, or the last with `select_last`.
//!   Indices are `i64`; an empty axis is an error.

use crate::value::{for_each_offset, internal, strides, Data, Value};
use nnc_ir::{ArgKind, DType, ReduceKind};

/// Strides that send each input element to its output element: the output in keep-dims
/// layout, with stride 0 on the reduced axes.
fn output_strides(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept: Vec<usize> = shape.iter().enumerate().map(|(a, &d)| if axes.contains(&a) { 1 } else { d }).collect();
    let mut s = strides(&kept);
    for &a in axes {
        if let Some(slot) = s.get_mut(a) {
            *slot = 0;
        }
    }
    s
}

fn int_range(dtype: DType) -> (i64, i64) {
    match dtype {
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I64 | DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool => (i64::MIN, i64::MAX),
    }
}

/// `reduce_<kind>` of `x` over `axes`; `out_shape` is the inferred result shape.
pub fn reduce(kind: ReduceKind, x: &Value, axes: &[usize], out_shape: &[usize]) -> Result<Value, String> {
    if axes.is_empty() {
        return Ok(x.clone().with_shape(out_shape.to_vec()));
    }
    let n_out: usize = out_shape.iter().product();
    let count: usize = axes.iter().filter_map(|&a| x.shape.get(a)).product();
    let in_strides = strides(&x.shape);
    let out_strides = output_strides(&x.shape, axes);
    let s = [in_strides.as_slice(), out_strides.as_slice()];
    match &x.data {
        Data::Float(v) => {
            let (init, f): (f64, fn(f64, f64) -> f64) = match kind {
                // -0.0 is the identity of + (so the sum of one -0.0 stays -0.0).
                ReduceKind::Sum | ReduceKind::Mean => (-0.0, |a, b| a + b),
                ReduceKind::Prod => (1.0, |a, b| a * b),
                ReduceKind::Max => {
                    (f64::NEG_INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
                }
                ReduceKind::Min => (f64::INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }),
            };
            let mut acc = vec![init; n_out];
            for_each_offset(&x.shape, s, |[i, o]| acc[o] = f(acc[o], v[i]));
            match kind {
                ReduceKind::Mean => acc.iter_mut().for_each(|a| *a /= count as f64),
                ReduceKind::Sum if count == 0 => acc.iter_mut().for_each(|a| *a = 0.0),
                ReduceKind::Sum | ReduceKind::Prod | ReduceKind::Max | ReduceKind::Min => {}
            }
            Ok(Value::float(x.dtype, out_shape.to_vec(), acc))
        }
        Data::Int(v) => {
            let (lo, hi) = int_range(x.dtype);
            let (init, f): (i64, fn(i64, i64) -> i64) = match kind {
                ReduceKind::Sum | ReduceKind::Mean => (0, i64::wrapping_add),
                ReduceKind::Prod => (1, i64::wrapping_mul),
                ReduceKind::Max => (lo, |a, b| a.max(b)),
                ReduceKind::Min => (hi, |a, b| a.min(b)),
            };
            if kind == ReduceKind::Mean && count == 0 && n_out > 0 {
                return Err("integer reduce_mean over zero elements".into());
            }
            let mut acc = vec![init; n_out];
            for_each_offset(&x.shape, s, |[i, o]| acc[o] = f(acc[o], v[i]));
            if kind == ReduceKind::Mean {
                // Truncating division of the i64 sum (wrapped to the dtype only afterwards).
                acc.iter_mut().for_each(|a| *a = a.wrapping_div(count as i64));
            }
            Ok(Value::int(x.dtype, out_shape.to_vec(), acc))
        }
        Data::Bool(_) => Err(internal("reduce of bool")),
    }
}

/// `argmax`/`argmin` of `x` along `axis`.
pub fn arg_reduce(
    kind: ArgKind,
    x: &Value,
    axis: usize,
    select_last: bool,
    out_shape: &[usize],
) -> Result<Value, String> {
    let Some(&len) = x.shape.get(axis) else { return Err(internal("arg reduce axis out of range")) };
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    if len == 0 && outer * inner > 0 {
        return Err(format!("{} over an empty axis", kind.name()));
    }
    // `better(candidate, best)`: does the candidate replace the current best?
    fn scan<T: Copy>(v: &[T], outer: usize, len: usize, inner: usize, better: impl Fn(T, T) -> bool) -> Vec<i64> {
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| v[(o * len + k) * inner + i];
                let mut best = 0;
                for k in 1..len {
                    if better(at(k), at(best)) {
                        best = k;
                    }
                }
                out.push(best as i64);
            }
        }
        out
    }
    let is_max = kind == ArgKind::Max;
    let idx = match &x.data {
        Data::Float(v) => scan(v, outer, len, inner, |c: f64, b: f64| {
            if b.is_nan() {
                select_last && c.is_nan()
            } else if c.is_nan() {
                true
            } else if select_last {
                if is_max {
                    c >= b
                } else {
                    c <= b
                }
            } else if is_max {
                c > b
            } else {
                c < b
            }
        }),
        Data::Int(v) => scan(v, outer, len, inner, |c: i64, b: i64| match (is_max, select_last) {
            (true, false) => c > b,
            (true, true) => c >= b,
            (false, false) => c < b,
            (false, true) => c <= b,
        }),
        Data::Bool(_) => return Err(internal("arg reduce of bool")),
    };
    Ok(Value::int(DType::I64, out_shape.to_vec(), idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(shape: &[usize], v: &[f64]) -> Value {
        Value::float(DType::F64, shape.to_vec(), v.to_vec())
    }

    #[test]
    fn sums_and_means_over_axes() {
        let x = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(reduce(ReduceKind::Sum, &x, &[0], &[3]).unwrap().floats().unwrap(), [5.0, 7.0, 9.0]);
        assert_eq!(reduce(ReduceKind::Mean, &x, &[1], &[2, 1]).unwrap().floats().unwrap(), [2.0, 5.0]);
        assert_eq!(reduce(ReduceKind::Prod, &x, &[0, 1], &[]).unwrap().floats().unwrap(), [720.0]);
        assert_eq!(reduce(ReduceKind::Max, &x, &[1, 0], &[1, 1]).unwrap().floats().unwrap(), [6.0]);
        assert_eq!(reduce(ReduceKind::Min, &x, &[1], &[2]).unwrap().floats().unwrap(), [1.0, 4.0]);
        let same = reduce(ReduceKind::Sum, &x, &[], &[2, 3]).unwrap();
        assert_eq!(same, x);
    }

    #[test]
    fn empty_reductions() {
        let x = f(&[0, 2], &[]);
        assert_eq!(reduce(ReduceKind::Sum, &x, &[0], &[2]).unwrap().floats().unwrap(), [0.0, 0.0]);
        assert!(reduce(ReduceKind::Sum, &x, &[0], &[2]).unwrap().floats().unwrap()[0].is_sign_positive());
        assert_eq!(reduce(ReduceKind::Prod, &x, &[0], &[2]).unwrap().floats().unwrap(), [1.0, 1.0]);
        assert_eq!(reduce(ReduceKind::Max, &x, &[0], &[2]).unwrap().floats().unwrap()[0], f64::NEG_INFINITY);
        assert!(reduce(ReduceKind::Mean, &x, &[0], &[2]).unwrap().floats().unwrap()[0].is_nan());
        let xi = Value::int(DType::I8, vec![0], vec![]);
        assert_eq!(reduce(ReduceKind::Max, &xi, &[0], &[]).unwrap().ints().unwrap(), [-128]);
        assert!(reduce(ReduceKind::Mean, &xi, &[0], &[]).is_err());
    }

    #[test]
    fn nan_propagates_and_ints_wrap() {
        let x = f(&[3], &[1.0, f64::NAN, 3.0]);
        assert!(reduce(ReduceKind::Max, &x, &[0], &[]).unwrap().floats().unwrap()[0].is_nan());
        let xi = Value::int(DType::I8, vec![3], vec![100, 100, -7]);
        assert_eq!(reduce(ReduceKind::Sum, &xi, &[0], &[]).unwrap().ints().unwrap(), [-63]);
        // The mean divides the i64 sum, then wraps: 193 / 3 = 64.
        assert_eq!(reduce(ReduceKind::Mean, &xi, &[0], &[]).unwrap().ints().unwrap(), [64]);
    }

    #[test]
    fn argmax_ties_nan_and_select_last() {
        let x = f(&[2, 4], &[1.0, 3.0, 3.0, 0.0, 2.0, f64::NAN, 9.0, f64::NAN]);
        let am = |k, last| arg_reduce(k, &x, 1, last, &[2]).unwrap().ints().unwrap().to_vec();
        assert_eq!(am(ArgKind::Max, false), [1, 1]);
        assert_eq!(am(ArgKind::Max, true), [2, 3]);
        assert_eq!(am(ArgKind::Min, false), [3, 1]);
        assert_eq!(am(ArgKind::Min, true), [3, 3]);
        let cols = arg_reduce(ArgKind::Max, &x, 0, false, &[1, 4]).unwrap();
        assert_eq!(cols.ints().unwrap(), [1, 1, 1, 1]);
        let empty = f(&[2, 0], &[]);
        assert!(arg_reduce(ArgKind::Max, &empty, 1, false, &[2]).unwrap_err().contains("empty axis"));
    }
}
