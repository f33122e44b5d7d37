//! Data movement: `transpose`, `expand`, `slice`, `concat`, `pad`, `gather`, `scatter_add`.
//! (`reshape` keeps the row-major elements and only changes the shape.)
//!
//! Most of these are "separable" index maps (see [`separable_offsets`]): each output axis reads
//! a list of source offsets, and an element reads the sum of its axes' entries.
//!
//! - `slice`: ONNX rules via [`nnc_ir::infer::slice_bounds`] (negative starts/ends count from
//!   the end and are clamped; negative steps walk backwards).
//! - `pad`: `pads` are the begin pads of every axis then the end pads; negative pads crop.
//!   `constant` fills with `value` (converted to the dtype like `cast`); `edge` repeats the
//!   border element; `reflect` mirrors without repeating the border (numpy's `reflect`),
//!   repeatedly if the pad is longer than the axis; `wrap` repeats the axis periodically (numpy's
//!   `wrap`: position `p` reads `p mod n`). Like `reflect`, `edge` and `wrap` index the whole input
//!   axis, cropped or not. `edge`/`reflect`/`wrap` of an empty axis is an error.
//! - `gather`: ONNX `Gather`; negative indices count from the end; an index outside `[-n, n)` is
//!   an error naming it.
//! - `scatter_add`: the adjoint of gather: `out = data`, then for every position `(.., j.., ..)`
//!   of `updates`, `out[.., idx[j..], ..] += updates[.., j.., ..]`; repeated indices accumulate
//!   (floats in `f64`, rounded once at the end; integers wrap; `bool` adds as `or`, as numpy).

use crate::value::{internal, separable_offsets, strides, Data, Value, FILL};
use nnc_ir::infer::slice_bounds;
use nnc_ir::PadMode;

/// Reads `x` through a separable index map with the given per-axis offset lists.
/// The tensor of `x`'s dtype and shape `out_shape` when that shape has no elements: an empty
/// tensor may declare other dimensions of any size, so nothing is built per index of them.
fn empty(x: &Value, out_shape: &[usize]) -> Option<Result<Value, String>> {
    out_shape
        .contains(&0)
        .then(|| Ok(Value { dtype: x.dtype, shape: out_shape.to_vec(), data: x.data.take(&[], None)? }))
}

fn take_separable(
    x: &Value,
    lists: &[Vec<usize>],
    out_shape: &[usize],
    fill: Option<crate::value::Scalar>,
) -> Result<Value, String> {
    let idx = separable_offsets(lists);
    Ok(Value { dtype: x.dtype, shape: out_shape.to_vec(), data: x.data.take(&idx, fill)? })
}

pub fn transpose(x: &Value, perm: &[usize], out_shape: &[usize]) -> Result<Value, String> {
    if let Some(e) = empty(x, out_shape) {
        return e;
    }
    let st = strides(&x.shape);
    let lists: Vec<Vec<usize>> = perm
        .iter()
        .map(|&p| match (x.shape.get(p), st.get(p)) {
            (Some(&n), Some(&s)) => Ok((0..n).map(|i| i * s).collect()),
            _ => Err(internal("transpose perm out of range")),
        })
        .collect::<Result<_, _>>()?;
    take_separable(x, &lists, out_shape, None)
}

pub fn expand(x: &Value, out_shape: &[usize]) -> Result<Value, String> {
    if let Some(e) = empty(x, out_shape) {
        return e;
    }
    let bs = crate::value::broadcast_strides(&x.shape, out_shape)?;
    let lists: Vec<Vec<usize>> = out_shape.iter().zip(&bs).map(|(&n, &s)| (0..n).map(|i| i * s).collect()).collect();
    take_separable(x, &lists, out_shape, None)
}

pub fn slice(
    x: &Value,
    axes: &[usize],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
    out_shape: &[usize],
) -> Result<Value, String> {
    if let Some(e) = empty(x, out_shape) {
        return e;
    }
    let st = strides(&x.shape);
    let mut lists: Vec<Vec<usize>> = x.shape.iter().zip(&st).map(|(&n, &s)| (0..n).map(|i| i * s).collect()).collect();
    for (k, &axis) in axes.iter().enumerate() {
        let (Some(&n), Some(&count), Some(&stride)) = (x.shape.get(axis), out_shape.get(axis), st.get(axis)) else {
            return Err(internal("slice axis out of range"));
        };
        let (Some(&start), Some(&end), Some(&step)) = (starts.get(k), ends.get(k), steps.get(k)) else {
            return Err(internal("slice attribute lists of different lengths"));
        };
        let (s, _) = slice_bounds(n as i64, start, end, step);
        lists[axis] = (0..count)
            .map(|i| {
                let p = s as i128 + i as i128 * step as i128;
                if (0..n as i128).contains(&p) {
                    Ok(p as usize * stride)
                } else {
                    Err(internal("slice position out of range"))
                }
            })
            .collect::<Result<_, _>>()?;
    }
    take_separable(x, &lists, out_shape, None)
}

fn concat_parts<T: Copy>(parts: &[&[T]], outer: usize, chunks: &[usize]) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(chunks.iter().sum::<usize>() * outer);
    for o in 0..outer {
        for (part, &chunk) in parts.iter().zip(chunks) {
            let piece = part.get(o * chunk..(o + 1) * chunk).ok_or_else(|| internal("concat part too short"))?;
            out.extend_from_slice(piece);
        }
    }
    Ok(out)
}

pub fn concat(xs: &[&Value], axis: usize, out_shape: &[usize]) -> Result<Value, String> {
    let Some(first) = xs.first() else { return Err(internal("concat of nothing")) };
    let outer: usize = out_shape.get(..axis).ok_or_else(|| internal("concat axis"))?.iter().product();
    let inner: usize = out_shape.get(axis + 1..).ok_or_else(|| internal("concat axis"))?.iter().product();
    let chunks: Vec<usize> = xs.iter().map(|x| x.shape.get(axis).copied().unwrap_or(0) * inner).collect();
    macro_rules! parts {
        ($variant:ident) => {{
            let parts = xs
                .iter()
                .map(|x| match &x.data {
                    Data::$variant(v) => Ok(v.as_slice()),
                    _ => Err(internal("concat of values of different kinds")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Data::$variant(concat_parts(&parts, outer, &chunks)?)
        }};
    }
    let data = match &first.data {
        Data::Float(_) => parts!(Float),
        Data::Int(_) => parts!(Int),
        Data::Bool(_) => parts!(Bool),
    };
    Ok(Value { dtype: first.dtype, shape: out_shape.to_vec(), data })
}

/// numpy `reflect`: mirror about the first and last element without repeating them.
fn reflect(p: i128, n: i128) -> i128 {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = p.rem_euclid(period);
    if m < n {
        m
    } else {
        period - m
    }
}

pub fn pad(x: &Value, pads: &[i64], mode: PadMode, value: f64, out_shape: &[usize]) -> Result<Value, String> {
    let st = strides(&x.shape);
    let nonempty = !out_shape.contains(&0);
    let mut lists = Vec::with_capacity(x.shape.len());
    for (a, (&n, &stride)) in x.shape.iter().zip(&st).enumerate() {
        let (n, out_len) = (n as i128, out_shape.get(a).copied().unwrap_or(0));
        let begin = *pads.get(a).ok_or_else(|| internal("pads too short"))? as i128;
        if n == 0 && nonempty && mode != PadMode::Constant {
            return Err(format!("cannot {}-pad axis {a}, which is empty", mode.name()));
        }
        let list = (0..out_len as i128)
            .map(|o| {
                let p = o - begin;
                let src = if (0..n).contains(&p) {
                    p
                } else {
                    match mode {
                        PadMode::Constant => return FILL,
                        PadMode::Edge => p.clamp(0, n - 1),
                        PadMode::Reflect => reflect(p, n),
                        PadMode::Wrap => p.rem_euclid(n),
                    }
                };
                src as usize * stride
            })
            .collect();
        lists.push(list);
    }
    take_separable(x, &lists, out_shape, Some(Value::scalar_like(x.dtype, value)))
}

/// `indices` made non-negative and checked against an axis of length `n`.
pub(crate) fn normalize_indices(indices: &Value, n: usize, axis: usize) -> Result<Vec<usize>, String> {
    let idx_strides = strides(&indices.shape);
    indices
        .indices()?
        .iter()
        .enumerate()
        .map(|(pos, &v)| {
            let r = if v < 0 { v as i128 + n as i128 } else { v as i128 };
            if (0..n as i128).contains(&r) {
                Ok(r as usize)
            } else {
                let at: Vec<usize> =
                    indices.shape.iter().zip(&idx_strides).map(|(&d, &s)| (pos / s) % d.max(1)).collect();
                Err(format!("index {v} (at {at:?} of the indices) is out of range for axis {axis} of length {n}"))
            }
        })
        .collect()
}

/// `(outer, n, inner)`: the sizes before, at and after `axis` of `shape`.
fn split_at_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize), String> {
    let &n = shape.get(axis).ok_or_else(|| internal("axis out of range"))?;
    Ok((shape[..axis].iter().product(), n, shape[axis + 1..].iter().product()))
}

pub fn gather(data: &Value, indices: &Value, axis: usize, out_shape: &[usize]) -> Result<Value, String> {
    let (outer, n, inner) = split_at_axis(&data.shape, axis)?;
    let idx = normalize_indices(indices, n, axis)?;
    let mut offsets = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in &idx {
            let base = (o * n + j) * inner;
            offsets.extend(base..base + inner);
        }
    }
    Ok(Value { dtype: data.dtype, shape: out_shape.to_vec(), data: data.data.take(&offsets, None)? })
}

pub fn scatter_add(data: &Value, indices: &Value, updates: &Value, axis: usize) -> Result<Value, String> {
    let (outer, n, inner) = split_at_axis(&data.shape, axis)?;
    let idx = normalize_indices(indices, n, axis)?;
    fn add_into<T: Copy>(
        out: &mut [T],
        upd: &[T],
        idx: &[usize],
        (outer, n, inner): (usize, usize, usize),
        add: impl Fn(T, T) -> T,
    ) -> Result<(), String> {
        let mut u = upd.iter();
        for o in 0..outer {
            for &j in idx {
                let base = (o * n + j) * inner;
                let dst = out.get_mut(base..base + inner).ok_or_else(|| internal("scatter_add target"))?;
                for d in dst {
                    *d = add(*d, *u.next().ok_or_else(|| internal("scatter_add updates too short"))?);
                }
            }
        }
        Ok(())
    }
    let dims = (outer, n, inner);
    let shape = data.shape.clone();
    match (&data.data, &updates.data) {
        (Data::Float(d), Data::Float(u)) => {
            let mut out = d.clone();
            add_into(&mut out, u, &idx, dims, |a, b| a + b)?;
            Ok(Value::float(data.dtype, shape, out))
        }
        (Data::Int(d), Data::Int(u)) => {
            let mut out = d.clone();
            add_into(&mut out, u, &idx, dims, i64::wrapping_add)?;
            Ok(Value::int(data.dtype, shape, out))
        }
        (Data::Bool(d), Data::Bool(u)) => {
            let mut out = d.clone();
            add_into(&mut out, u, &idx, dims, |a, b| a || b)?;
            Ok(Value::bool(shape, out))
        }
        _ => Err(internal("scatter_add of values of different kinds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    fn iv(shape: &[usize], v: &[i64]) -> Value {
        Value::int(DType::I64, shape.to_vec(), v.to_vec())
    }

    fn range(shape: &[usize]) -> Value {
        let n: usize = shape.iter().product();
        iv(shape, &(0..n as i64).collect::<Vec<_>>())
    }

    #[test]
    fn transpose_and_expand() {
        let x = range(&[2, 3]);
        assert_eq!(transpose(&x, &[1, 0], &[3, 2]).unwrap().ints().unwrap(), [0, 3, 1, 4, 2, 5]);
        let col = iv(&[2, 1], &[7, 8]);
        assert_eq!(expand(&col, &[2, 2, 3]).unwrap().ints().unwrap(), [7, 7, 7, 8, 8, 8, 7, 7, 7, 8, 8, 8]);
    }

    #[test]
    fn slices_with_negative_steps_and_clamping() {
        let x = range(&[10]);
        let s = |st, e, step, n| slice(&x, &[0], &[st], &[e], &[step], &[n]).unwrap().ints().unwrap().to_vec();
        assert_eq!(s(-1, i64::MIN, -1, 10), (0..10).rev().collect::<Vec<_>>());
        assert_eq!(s(8, 1, -3, 3), [8, 5, 2]);
        assert_eq!(s(2, 100, 3, 3), [2, 5, 8]);
        assert_eq!(s(-3, -1, 1, 2), [7, 8]);
        assert_eq!(s(5, 2, 1, 0), Vec::<i64>::new());
        let m = range(&[3, 4]);
        let r = slice(&m, &[1, 0], &[-1, 2], &[0, -10], &[-2, -1], &[3, 2]).unwrap();
        assert_eq!(r.ints().unwrap(), [11, 9, 7, 5, 3, 1]);
    }

    #[test]
    fn concat_along_middle_axis() {
        let a = range(&[2, 1, 2]);
        let b = iv(&[2, 2, 2], &[10, 11, 12, 13, 14, 15, 16, 17]);
        let r = concat(&[&a, &b], 1, &[2, 3, 2]).unwrap();
        assert_eq!(r.ints().unwrap(), [0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17]);
    }

    #[test]
    fn pad_modes_and_cropping() {
        let x = iv(&[4], &[1, 2, 3, 4]);
        let p = |pads: &[i64], mode, n| pad(&x, pads, mode, 9.7, &[n]).unwrap().ints().unwrap().to_vec();
        assert_eq!(p(&[2, 1], PadMode::Constant, 7), [9, 9, 1, 2, 3, 4, 9]);
        assert_eq!(p(&[2, 1], PadMode::Edge, 7), [1, 1, 1, 2, 3, 4, 4]);
        assert_eq!(p(&[3, 2], PadMode::Reflect, 9), [4, 3, 2, 1, 2, 3, 4, 3, 2]);
        assert_eq!(p(&[5, 0], PadMode::Reflect, 9), [2, 3, 4, 3, 2, 1, 2, 3, 4]);
        assert_eq!(p(&[-1, 1], PadMode::Constant, 4), [2, 3, 4, 9]);
        assert_eq!(p(&[0, -3], PadMode::Edge, 1), [1]);
        assert_eq!(p(&[2, 3], PadMode::Wrap, 9), [3, 4, 1, 2, 3, 4, 1, 2, 3]);
        // Pads longer than the axis keep repeating it.
        assert_eq!(p(&[5, 6], PadMode::Wrap, 15), [4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2]);
        assert_eq!(p(&[-1, 2], PadMode::Wrap, 5), [2, 3, 4, 1, 2]);
        let one = iv(&[1], &[7]);
        assert_eq!(pad(&one, &[2, 1], PadMode::Wrap, 0.0, &[4]).unwrap().ints().unwrap(), [7, 7, 7, 7]);
        let m = range(&[2, 3]);
        let r = pad(&m, &[1, 1, 0, 1], PadMode::Wrap, 0.0, &[3, 5]).unwrap();
        assert_eq!(r.ints().unwrap(), [5, 3, 4, 5, 3, 2, 0, 1, 2, 0, 5, 3, 4, 5, 3]);
        let e = iv(&[0], &[]);
        assert!(pad(&e, &[1, 0], PadMode::Edge, 0.0, &[1]).unwrap_err().contains("empty"));
        assert_eq!(pad(&e, &[1, 0], PadMode::Wrap, 0.0, &[1]).unwrap_err(), "cannot wrap-pad axis 0, which is empty");
        assert_eq!(pad(&e, &[1, 0], PadMode::Constant, 2.0, &[1]).unwrap().ints().unwrap(), [2]);
        let f = Value::float(DType::F32, vec![1], vec![1.0]);
        assert_eq!(pad(&f, &[1, 0], PadMode::Constant, 0.1, &[2]).unwrap().floats().unwrap()[0], 0.1f32 as f64);
    }

    #[test]
    fn gather_negative_and_out_of_range() {
        let x = range(&[2, 3]);
        let idx = iv(&[2], &[-1, 0]);
        assert_eq!(gather(&x, &idx, 1, &[2, 2]).unwrap().ints().unwrap(), [2, 0, 5, 3]);
        let idx2 = iv(&[1, 2], &[1, 1]);
        assert_eq!(gather(&x, &idx2, 0, &[1, 2, 3]).unwrap().ints().unwrap(), [3, 4, 5, 3, 4, 5]);
        let bad = iv(&[2, 2], &[0, 1, 2, -4]);
        let e = gather(&x, &bad, 1, &[2, 2, 2]).unwrap_err();
        assert_eq!(e, "index -4 (at [1, 1] of the indices) is out of range for axis 1 of length 3");
    }

    #[test]
    fn scatter_add_accumulates_repeats() {
        let data = Value::float(DType::F32, vec![2, 3], vec![0.0; 6]);
        let idx = iv(&[3], &[2, -1, 0]);
        let upd = Value::float(DType::F32, vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let r = scatter_add(&data, &idx, &upd, 1).unwrap();
        assert_eq!(r.floats().unwrap(), [3.0, 0.0, 3.0, 6.0, 0.0, 9.0]);
        let bad = iv(&[1], &[3]);
        let u1 = Value::float(DType::F32, vec![2, 1], vec![1.0, 1.0]);
        assert!(scatter_add(&data, &bad, &u1, 1).unwrap_err().contains("out of range"));
    }
}
