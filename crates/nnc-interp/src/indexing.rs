//! Element-wise and N-d indexing: `gather_elements`, `scatter_elements`, `gather_nd`,
//! `scatter_nd`.
//!
//! - Negative indices count from the end of the axis they index (`i + n`); an index outside
//!   `[-n, n)` is an error naming it and its position in the indices.
//! - The scatters start from `data` and apply the updates one by one in row-major order of
//!   `updates`, each combined with the element it lands on by the reduction: `none` replaces
//!   it (so of repeated indices the last update wins), `add`/`mul` accumulate (floats in `f64`,
//!   rounded to the dtype once at the end; integers wrap), `max`/`min` keep the larger/smaller
//!   (NaN wins, as `max`/`min`; `u64` compares unsigned). For `bool`, `add` and `max` are `or`,
//!   `mul` and `min` are `and`.

use crate::movement::normalize_indices;
use crate::value::{for_each_offset, internal, strides, with_int, Data, Int, Value};
use nnc_ir::ScatterReduction;

/// The row-major position of flat element `flat` of `shape`.
fn position(shape: &[usize], flat: usize) -> Vec<usize> {
    shape.iter().zip(strides(shape)).map(|(&d, s)| (flat / s) % d.max(1)).collect()
}

/// For every position `p` of `indices` (row-major), the flat offset into `data` of `p` with
/// axis `axis` replaced by `indices[p]`.
fn element_offsets(data_shape: &[usize], indices: &Value, axis: usize) -> Result<Vec<usize>, String> {
    let &n = data_shape.get(axis).ok_or_else(|| internal("axis out of range"))?;
    if indices.shape.len() != data_shape.len() {
        return Err(internal("indices of the wrong rank"));
    }
    let idx = normalize_indices(indices, n, axis)?;
    let ds = strides(data_shape);
    let mut base = ds.clone();
    base[axis] = 0;
    let mut out = Vec::with_capacity(idx.len());
    let mut k = 0;
    for_each_offset(&indices.shape, [&base], |[o]| {
        out.push(o + idx[k] * ds[axis]);
        k += 1;
    });
    if out.len() != idx.len() || out.iter().any(|&o| o >= data_shape.iter().product::<usize>()) {
        return Err(internal("gather_elements offsets"));
    }
    Ok(out)
}

pub fn gather_elements(data: &Value, indices: &Value, axis: usize) -> Result<Value, String> {
    let offsets = element_offsets(&data.shape, indices, axis)?;
    Ok(Value { dtype: data.dtype, shape: indices.shape.clone(), data: data.data.take(&offsets, None)? })
}

pub fn scatter_elements(
    data: &Value,
    indices: &Value,
    updates: &Value,
    axis: usize,
    reduction: ScatterReduction,
) -> Result<Value, String> {
    let targets = element_offsets(&data.shape, indices, axis)?;
    scatter(data, updates, &targets, reduction)
}

/// For `gather_nd`/`scatter_nd`: the flat offset into `data` of the start of every slice the
/// indices address, in row-major order of the index tuples, and the slice length.
fn nd_offsets(data_shape: &[usize], indices: &Value, batch_dims: usize) -> Result<(Vec<usize>, usize), String> {
    let q = indices.shape.len();
    let (Some(&m), true) = (indices.shape.last(), batch_dims < q) else {
        return Err(internal("gather_nd indices rank"));
    };
    let ds = strides(data_shape);
    let sliced = data_shape.get(batch_dims..batch_dims + m).ok_or_else(|| internal("gather_nd index length"))?;
    let inner: usize = data_shape[batch_dims + m..].iter().product();
    let batches: usize = data_shape[..batch_dims].iter().product();
    let batch_stride: usize = data_shape[batch_dims..].iter().product();
    let tuples_per_batch: usize = indices.shape[batch_dims..q - 1].iter().product();
    let idx = indices.indices()?;
    let mut out = Vec::with_capacity(batches * tuples_per_batch);
    for b in 0..batches {
        for t in 0..tuples_per_batch {
            let start = (b * tuples_per_batch + t) * m;
            let mut off = b * batch_stride;
            for (k, &n) in sliced.iter().enumerate() {
                let v = *idx.get(start + k).ok_or_else(|| internal("gather_nd indices too short"))?;
                let r = if v < 0 { v as i128 + n as i128 } else { v as i128 };
                if !(0..n as i128).contains(&r) {
                    let at = position(&indices.shape, start + k);
                    return Err(format!(
                        "index {v} (at {at:?} of the indices) is out of range for axis {} of length {n}",
                        batch_dims + k
                    ));
                }
                off += r as usize * ds[batch_dims + k];
            }
            out.push(off);
        }
    }
    Ok((out, inner))
}

pub fn gather_nd(data: &Value, indices: &Value, batch_dims: usize, out_shape: &[usize]) -> Result<Value, String> {
    let (starts, inner) = nd_offsets(&data.shape, indices, batch_dims)?;
    let offsets: Vec<usize> = starts.iter().flat_map(|&s| s..s + inner).collect();
    Ok(Value { dtype: data.dtype, shape: out_shape.to_vec(), data: data.data.take(&offsets, None)? })
}

pub fn scatter_nd(
    data: &Value,
    indices: &Value,
    updates: &Value,
    reduction: ScatterReduction,
) -> Result<Value, String> {
    let (starts, inner) = nd_offsets(&data.shape, indices, 0)?;
    let targets: Vec<usize> = starts.iter().flat_map(|&s| s..s + inner).collect();
    scatter(data, updates, &targets, reduction)
}

/// `data` with `updates[k]` combined into element `targets[k]`, for `k` in order.
fn scatter(data: &Value, updates: &Value, targets: &[usize], reduction: ScatterReduction) -> Result<Value, String> {
    fn apply<T: Copy>(out: &mut [T], upd: &[T], targets: &[usize], f: impl Fn(T, T) -> T) -> Result<(), String> {
        if upd.len() != targets.len() {
            return Err(internal("scatter updates and targets differ in length"));
        }
        for (&t, &u) in targets.iter().zip(upd) {
            let slot = out.get_mut(t).ok_or_else(|| internal("scatter target out of range"))?;
            *slot = f(*slot, u);
        }
        Ok(())
    }
    use ScatterReduction as R;
    let shape = data.shape.clone();
    match (&data.data, &updates.data) {
        (Data::Float(d), Data::Float(u)) => {
            let mut out = d.clone();
            let f: fn(f64, f64) -> f64 = match reduction {
                R::None => |_, b| b,
                R::Add => |a, b| a + b,
                R::Mul => |a, b| a * b,
                R::Max => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) },
                R::Min => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) },
            };
            apply(&mut out, u, targets, f)?;
            Ok(Value::float(data.dtype, shape, out))
        }
        (Data::Int(d), Data::Int(u)) => {
            let mut out = d.clone();
            with_int!(data.dtype, T => {
                let f: fn(i64, i64) -> i64 = match reduction {
                    R::None => |_, b| b,
                    R::Add => i64::wrapping_add,
                    R::Mul => i64::wrapping_mul,
                    R::Max => |a, b| T::from_held(a).max(T::from_held(b)).held(),
                    R::Min => |a, b| T::from_held(a).min(T::from_held(b)).held(),
                };
                apply(&mut out, u, targets, f)?;
            });
            Ok(Value::int(data.dtype, shape, out))
        }
        (Data::Bool(d), Data::Bool(u)) => {
            let mut out = d.clone();
            let f: fn(bool, bool) -> bool = match reduction {
                R::None => |_, b| b,
                R::Add | R::Max => |a, b| a || b,
                R::Mul | R::Min => |a, b| a && b,
            };
            apply(&mut out, u, targets, f)?;
            Ok(Value::bool(shape, out))
        }
        _ => Err(internal("scatter of values of different kinds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    fn iv(shape: &[usize], v: &[i64]) -> Value {
        Value::int(DType::I64, shape.to_vec(), v.to_vec())
    }

    fn fv(shape: &[usize], v: &[f64]) -> Value {
        Value::float(DType::F32, shape.to_vec(), v.to_vec())
    }

    #[test]
    fn gather_elements_along_each_axis() {
        // ONNX's example: data [[1, 2], [3, 4]], indices [[0, 0], [1, 0]], axis 1.
        let data = iv(&[2, 2], &[1, 2, 3, 4]);
        let r = gather_elements(&data, &iv(&[2, 2], &[0, 0, 1, 0]), 1).unwrap();
        assert_eq!(r.ints().unwrap(), [1, 1, 4, 3]);
        // Axis 0 with a smaller, negative-index indices tensor.
        let data = iv(&[3, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let r = gather_elements(&data, &iv(&[2, 3], &[1, 2, 0, 2, 0, -3]), 0).unwrap();
        assert_eq!(r.shape, [2, 3]);
        assert_eq!(r.ints().unwrap(), [4, 8, 3, 7, 2, 3]);
        let e = gather_elements(&data, &iv(&[1, 1], &[3]), 0).unwrap_err();
        assert_eq!(e, "index 3 (at [0, 0] of the indices) is out of range for axis 0 of length 3");
    }

    #[test]
    fn scatter_elements_reductions() {
        let data = fv(&[1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let idx = iv(&[1, 2], &[1, 1]);
        let upd = fv(&[1, 2], &[1.1, 2.1]);
        let run = |r| scatter_elements(&data, &idx, &upd, 1, r).unwrap().floats().unwrap().to_vec();
        let f = |x: f64| x as f32 as f64;
        assert_eq!(run(ScatterReduction::None), [1.0, f(2.1), 3.0, 4.0, 5.0]);
        assert_eq!(run(ScatterReduction::Add), [1.0, f(2.0 + f(1.1) + f(2.1)), 3.0, 4.0, 5.0]);
        assert_eq!(run(ScatterReduction::Mul), [1.0, f(2.0 * f(1.1) * f(2.1)), 3.0, 4.0, 5.0]);
        assert_eq!(run(ScatterReduction::Max), [1.0, f(2.1), 3.0, 4.0, 5.0]);
        assert_eq!(run(ScatterReduction::Min), [1.0, f(1.1), 3.0, 4.0, 5.0]);
        // u64 max compares unsigned.
        let d = Value::int(DType::U64, vec![2], vec![1, 2]);
        let u = Value::int(DType::U64, vec![1], vec![-1]);
        let r = scatter_elements(&d, &iv(&[1], &[-1]), &u, 0, ScatterReduction::Max).unwrap();
        assert_eq!(r.ints().unwrap(), [1, -1]);
        let b = Value::bool(vec![2], vec![true, false]);
        let ub = Value::bool(vec![2], vec![false, true]);
        let r = scatter_elements(&b, &iv(&[2], &[0, 1]), &ub, 0, ScatterReduction::Mul).unwrap();
        assert_eq!(r.bools().unwrap(), [false, false]);
    }

    #[test]
    fn gather_nd_with_batch_dims() {
        // ONNX's examples.
        let data = iv(&[2, 2], &[0, 1, 2, 3]);
        let r = gather_nd(&data, &iv(&[2, 2], &[0, 0, 1, 1]), 0, &[2]).unwrap();
        assert_eq!(r.ints().unwrap(), [0, 3]);
        let r = gather_nd(&data, &iv(&[2, 1], &[1, 0]), 0, &[2, 2]).unwrap();
        assert_eq!(r.ints().unwrap(), [2, 3, 0, 1]);
        let data = iv(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]);
        let r = gather_nd(&data, &iv(&[2, 1], &[1, 0]), 1, &[2, 2]).unwrap();
        assert_eq!(r.ints().unwrap(), [2, 3, 4, 5]);
        let e = gather_nd(&data, &iv(&[2, 1], &[1, -3]), 1, &[2, 2]).unwrap_err();
        assert_eq!(e, "index -3 (at [1, 0] of the indices) is out of range for axis 1 of length 2");
    }

    #[test]
    fn scatter_nd_slices_and_repeats() {
        let data = iv(&[4, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let idx = iv(&[3, 1], &[3, 0, 3]);
        let upd = iv(&[3, 2], &[10, 20, 30, 40, 50, 60]);
        let r = scatter_nd(&data, &idx, &upd, ScatterReduction::None).unwrap();
        assert_eq!(r.ints().unwrap(), [30, 40, 3, 4, 5, 6, 50, 60]);
        let r = scatter_nd(&data, &idx, &upd, ScatterReduction::Add).unwrap();
        assert_eq!(r.ints().unwrap(), [31, 42, 3, 4, 5, 6, 67, 88]);
    }
}
