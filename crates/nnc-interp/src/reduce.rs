//! Reductions: `reduce_{sum,mean,max,min,prod}` over a set of axes and `argmax`/`argmin`.
//!
//! - Elements combine in row-major order of the input, floats in `f64` (rounded to the dtype once
//!   at the end), integers in wrapping `i64` (wrapped to the dtype once at the end; an integer
//!   mean is the `i64` sum divided by the count, truncating). `u64` computes in `u64`.
//! - An empty axis list is an identity copy; `keep_dims` only changes the result's shape.
//! - Over zero elements: sum 0, prod 1, max `-inf` (the dtype's minimum for integers), min
//!   `+inf` (the maximum), mean NaN for floats and an error for integers (ONNX's rules).
//! - `max`/`min` propagate NaN. `argmax`/`argmin` follow: a NaN wins over every number (so the
//!   index points at an element equal to `reduce_max`/`reduce_min`, NaN included, as numpy and
//!   PyTorch); ties and repeated NaNs pick the first occurrence, or the last with `select_last`.
//!   Indices are `i64`; an empty axis is an error.
//! - `cumulative`: running sums or products along an axis, each result element the combination of
//!   the elements before it (and itself unless `exclusive`; from the end with `reverse`); floats
//!   accumulate in `f64` and each result is rounded once (the running value is not rounded),
//!   integers wrap; an empty sum is 0, an empty product 1.
//! - `topk`: the `k` largest (or smallest) elements along an axis, most extreme first, with
//!   their `i64` indices. Ties keep the smaller index first; NaN counts as more extreme than
//!   every number in both directions (as for `argmax`/`argmin`, so `k = 1` gives their index).

use crate::value::{for_each_offset, int_range, internal, strides, with_int, Data, Int, Value};
use nnc_ir::{ArgKind, CumKind, DType, ReduceKind};

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

/// The integer part of [`reduce`], computed in `T`; returns the `i64` form.
fn int_reduce<T: Int>(
    kind: ReduceKind,
    x: &Value,
    v: &[i64],
    s: [&[usize]; 2],
    n_out: usize,
    count: usize,
) -> Vec<i64> {
    let (lo, hi) = int_range::<T>(x.dtype);
    let (init, f): (T, fn(T, T) -> T) = match kind {
        ReduceKind::Sum | ReduceKind::Mean => (T::ZERO, T::add),
        ReduceKind::Prod => (T::from_count(1), T::mul),
        ReduceKind::Max => (lo, |a, b| a.max(b)),
        ReduceKind::Min => (hi, |a, b| a.min(b)),
    };
    let mut acc = vec![init; n_out];
    for_each_offset(&x.shape, s, |[i, o]| acc[o] = f(acc[o], T::from_held(v[i])));
    if kind == ReduceKind::Mean {
        // Truncating division of the wide sum (wrapped to the dtype only afterwards).
        acc.iter_mut().for_each(|a| *a = a.div(T::from_count(count)));
    }
    acc.into_iter().map(T::held).collect()
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
            if kind == ReduceKind::Mean && count == 0 && n_out > 0 {
                return Err("integer reduce_mean over zero elements".into());
            }
            let acc = with_int!(x.dtype, T => int_reduce::<T>(kind, x, v, s, n_out, count));
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
        Data::Int(v) => with_int!(x.dtype, T => {
            scan(v, outer, len, inner, |c: i64, b: i64| {
                let (c, b) = (T::from_held(c), T::from_held(b));
                match (is_max, select_last) {
                    (true, false) => c > b,
                    (true, true) => c >= b,
                    (false, false) => c < b,
                    (false, true) => c <= b,
                }
            })
        }),
        Data::Bool(_) => return Err(internal("arg reduce of bool")),
    };
    Ok(Value::int(DType::I64, out_shape.to_vec(), idx))
}

/// `cumulative` of `x` along `axis`.
pub fn cumulative(x: &Value, axis: usize, kind: CumKind, exclusive: bool, reverse: bool) -> Result<Value, String> {
    let Some(&len) = x.shape.get(axis) else { return Err(internal("cumulative axis out of range")) };
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    fn scan<T: Copy>(
        v: &[T],
        (outer, len, inner): (usize, usize, usize),
        (exclusive, reverse): (bool, bool),
        init: T,
        f: impl Fn(T, T) -> T,
    ) -> Vec<T> {
        let mut out = vec![init; v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = init;
                for step in 0..len {
                    let j = if reverse { len - 1 - step } else { step };
                    let at = (o * len + j) * inner + i;
                    if exclusive {
                        out[at] = acc;
                        acc = f(acc, v[at]);
                    } else {
                        acc = f(acc, v[at]);
                        out[at] = acc;
                    }
                }
            }
        }
        out
    }
    let dims = (outer, len, inner);
    let flags = (exclusive, reverse);
    match &x.data {
        Data::Float(v) => {
            let out = match kind {
                // An inclusive sum starts from -0.0, the identity of + (so a sum of one -0.0
                // stays -0.0); an exclusive one from 0.0, its first (empty) sum.
                CumKind::Sum => scan(v, dims, flags, if exclusive { 0.0 } else { -0.0 }, |a, b| a + b),
                CumKind::Prod => scan(v, dims, flags, 1.0, |a, b| a * b),
            };
            Ok(Value::float(x.dtype, x.shape.clone(), out))
        }
        Data::Int(v) => {
            let out = match kind {
                CumKind::Sum => scan(v, dims, flags, 0, i64::wrapping_add),
                CumKind::Prod => scan(v, dims, flags, 1, i64::wrapping_mul),
            };
            Ok(Value::int(x.dtype, x.shape.clone(), out))
        }
        Data::Bool(_) => Err(internal("cumulative of bool")),
    }
}

/// `topk` of `x` along `axis`: the values and their indices. `out_shape` is the result shape
/// (`x`'s with `k` on `axis`).
pub fn topk(x: &Value, axis: usize, k: usize, largest: bool, out_shape: &[usize]) -> Result<Vec<Value>, String> {
    let Some(&len) = x.shape.get(axis) else { return Err(internal("topk axis out of range")) };
    if k > len {
        return Err(format!("k = {k} is larger than axis {axis} (length {len})"));
    }
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    /// For every line along the axis, the positions of its first `k` elements in the order
    /// `cmp` gives (stable, so ties keep the smaller index first).
    fn order<T: Copy>(
        v: &[T],
        (outer, len, inner, k): (usize, usize, usize, usize),
        cmp: impl Fn(T, T) -> std::cmp::Ordering,
    ) -> Vec<usize> {
        let mut picks = vec![0; outer * k * inner];
        let mut line: Vec<usize> = Vec::with_capacity(len);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| v[(o * len + j) * inner + i];
                line.clear();
                line.extend(0..len);
                line.sort_by(|&a, &b| cmp(at(a), at(b)));
                for (j, &p) in line.iter().take(k).enumerate() {
                    picks[(o * k + j) * inner + i] = p;
                }
            }
        }
        picks
    }
    let dims = (outer, len, inner, k);
    let picks = match &x.data {
        Data::Float(v) => order(v, dims, |a: f64, b: f64| match (a.is_nan(), b.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            // IEEE order: -0.0 and 0.0 tie.
            (false, false) if largest => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
            (false, false) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        }),
        Data::Int(v) => with_int!(x.dtype, T => order(v, dims, |a: i64, b: i64| {
            let (a, b) = (T::from_held(a), T::from_held(b));
            if largest { b.cmp(&a) } else { a.cmp(&b) }
        })),
        Data::Bool(_) => return Err(internal("topk of bool")),
    };
    let offsets: Vec<usize> = picks
        .iter()
        .enumerate()
        .map(|(n, &p)| {
            let (o, i) = (n / (k * inner), n % inner);
            (o * len + p) * inner + i
        })
        .collect();
    let values = Value { dtype: x.dtype, shape: out_shape.to_vec(), data: x.data.take(&offsets, None)? };
    let indices = Value::int(DType::I64, out_shape.to_vec(), picks.into_iter().map(|p| p as i64).collect());
    Ok(vec![values, indices])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_sums_and_products() {
        let x = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let run = |axis, kind, ex, rev| cumulative(&x, axis, kind, ex, rev).unwrap().floats().unwrap().to_vec();
        assert_eq!(run(1, CumKind::Sum, false, false), [1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
        assert_eq!(run(1, CumKind::Sum, true, false), [0.0, 1.0, 3.0, 0.0, 4.0, 9.0]);
        assert_eq!(run(1, CumKind::Sum, false, true), [6.0, 5.0, 3.0, 15.0, 11.0, 6.0]);
        assert_eq!(run(1, CumKind::Prod, true, true), [6.0, 3.0, 1.0, 30.0, 6.0, 1.0]);
        assert_eq!(run(0, CumKind::Prod, false, false), [1.0, 2.0, 3.0, 4.0, 10.0, 18.0]);
        let i = Value::int(DType::I8, vec![3], vec![100, 2, 3]);
        assert_eq!(cumulative(&i, 0, CumKind::Prod, false, false).unwrap().ints().unwrap(), [100, -56, 88]);
    }

    #[test]
    fn topk_orders_ties_and_nan() {
        let x = f(&[2, 4], &[1.0, 3.0, 3.0, 0.0, 2.0, f64::NAN, 9.0, -0.0]);
        let r = topk(&x, 1, 3, true, &[2, 3]).unwrap();
        assert_eq!(r[1].ints().unwrap(), [1, 2, 0, 1, 2, 0]);
        let v = r[0].floats().unwrap();
        assert_eq!(&v[..3], [3.0, 3.0, 1.0]);
        assert!(v[3].is_nan() && v[4] == 9.0 && v[5] == 2.0);
        let r = topk(&x, 1, 2, false, &[2, 2]).unwrap();
        assert_eq!(r[1].ints().unwrap(), [3, 0, 1, 3]);
        let r = topk(&x, 0, 1, true, &[1, 4]).unwrap();
        assert_eq!(r[1].ints().unwrap(), [1, 1, 1, 0]);
        // -0.0 and 0.0 tie: the first wins either way.
        let z = f(&[2], &[-0.0, 0.0]);
        assert_eq!(topk(&z, 0, 1, true, &[1]).unwrap()[1].ints().unwrap(), [0]);
        assert_eq!(topk(&z, 0, 1, false, &[1]).unwrap()[1].ints().unwrap(), [0]);
        assert!(topk(&x, 1, 5, true, &[2, 5]).unwrap_err().contains("larger than axis 1"));
        // u64 orders unsigned.
        let u = Value::int(DType::U64, vec![3], vec![-1, 5, 7]);
        assert_eq!(topk(&u, 0, 2, true, &[2]).unwrap()[1].ints().unwrap(), [0, 2]);
        assert_eq!(topk(&u, 0, 1, false, &[1]).unwrap()[0].ints().unwrap(), [5]);
    }

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
    fn new_integer_dtypes_reduce() {
        let top = 1u64 << 63;
        let x = Value::from_tensor(&nnc_ir::TensorData::from_vec(vec![2, 2], &[top, 1u64, 4, u64::MAX]));
        let red = |k, axes: &[usize], out: &[usize]| {
            reduce(k, &x, axes, out).unwrap().to_tensor().unwrap().to_vec::<u64>().unwrap()
        };
        assert_eq!(red(ReduceKind::Max, &[1], &[2]), [top, u64::MAX]);
        assert_eq!(red(ReduceKind::Min, &[0], &[2]), [4, 1]);
        assert_eq!(red(ReduceKind::Mean, &[0], &[2]), [top / 2 + 2, 0]);
        assert_eq!(red(ReduceKind::Sum, &[1], &[2]), [top + 1, 3]);
        let am = |k, axis, out: &[usize]| arg_reduce(k, &x, axis, false, out).unwrap().ints().unwrap().to_vec();
        assert_eq!(am(ArgKind::Max, 1, &[2]), [0, 1]);
        assert_eq!(am(ArgKind::Min, 0, &[2]), [1, 0]);
        let empty = Value::from_tensor(&nnc_ir::TensorData::from_vec::<u64>(vec![0], &[]));
        let m = reduce(ReduceKind::Min, &empty, &[0], &[]).unwrap();
        assert_eq!(m.to_tensor().unwrap().to_vec::<u64>().unwrap(), [u64::MAX]);
        let xi = Value::int(DType::I16, vec![3], vec![30000, 30000, 1]);
        assert_eq!(reduce(ReduceKind::Sum, &xi, &[0], &[]).unwrap().ints().unwrap(), [-5535]);
        assert_eq!(
            reduce(ReduceKind::Max, &Value::int(DType::I16, vec![0], vec![]), &[0], &[]).unwrap().ints().unwrap(),
            [-32768]
        );
        let xu = Value::int(DType::U16, vec![2], vec![65535, 2]);
        assert_eq!(reduce(ReduceKind::Prod, &xu, &[0], &[]).unwrap().ints().unwrap(), [65534]);
        assert_eq!(reduce(ReduceKind::Mean, &xu, &[0], &[]).unwrap().ints().unwrap(), [32768]);
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
