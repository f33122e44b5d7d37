//! Ops built from index arithmetic on `iota`: triangular masks, one-hot encodings, `EyeLike`,
//! `Hardmax`; and `CumSum`/`CumProd` (an IR `cumulative`).

use super::{Fail, NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::shape::normalize_axis;
use nnc_ir::{BinaryOp, CumKind, DType, Dim, Op, ValueId};

/// `keep(col - row)` over a `[rows, cols]` grid of indices, as a bool tensor.
fn diagonal_mask(cx: &mut NodeCx, rows: Dim, cols: Dim, k: i64, op: BinaryOp) -> Result<ValueId, Fail> {
    let r = cx.b.iota(DType::I64, vec![rows.clone(), cols.clone()], 0)?;
    let c = cx.b.iota(DType::I64, vec![rows, cols], 1)?;
    let diff = cx.b.sub(c, r)?;
    let k = cx.scalar(DType::I64, k as f64);
    Ok(cx.b.binary(op, diff, k)?)
}

/// `Trilu(x, k)`: keep elements on and above (`upper`) or below the `k`-th diagonal.
pub fn trilu(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["upper"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.rank() < 2 {
        return Err(format!("input must have rank 2 or more, found {ty}").into());
    }
    let k = cx.opt_const_ints(1)?.and_then(|v| v.first().copied()).unwrap_or(0);
    let upper = cx.attr_int_or("upper", 1)? != 0;
    let (rows, cols) = (ty.shape[ty.rank() - 2].clone(), ty.shape[ty.rank() - 1].clone());
    let keep = diagonal_mask(cx, rows, cols, k, if upper { BinaryOp::Ge } else { BinaryOp::Le })?;
    let zero = cx.scalar(ty.dtype, 0.0);
    Ok(vec![NodeCx::value(cx.b.select(keep, x, zero)?)])
}

/// `EyeLike(x)`: ones on the `k`-th diagonal of a matrix shaped like `x`.
pub fn eye_like(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["dtype", "k"])?;
    let ty = cx.input_type(0)?;
    if ty.rank() != 2 {
        return Err(format!("input must be a matrix, found {ty}").into());
    }
    let dtype = match cx.attr_int("dtype")? {
        Some(code) => dtype_from_onnx(code as i32)?,
        None => ty.dtype,
    };
    let k = cx.attr_int_or("k", 0)?;
    let on = diagonal_mask(cx, ty.shape[0].clone(), ty.shape[1].clone(), k, BinaryOp::Eq)?;
    Ok(vec![NodeCx::value(cx.b.cast(on, dtype)?)])
}

/// `indices == iota` along a new axis `axis` of length `depth`.
fn one_hot_mask(cx: &mut NodeCx, indices: ValueId, depth: i64, axis: usize) -> Result<ValueId, Fail> {
    let ty = cx.ty(indices);
    let mut idx_shape = ty.shape.clone();
    idx_shape.insert(axis, Dim::constant(1));
    let idx = cx.b.reshape(indices, idx_shape)?;
    let mut iota_shape = vec![Dim::constant(1); ty.rank() + 1];
    iota_shape[axis] = Dim::constant(depth);
    let classes = cx.b.iota(ty.dtype, iota_shape, axis as i64)?;
    Ok(cx.b.binary(BinaryOp::Eq, idx, classes)?)
}

/// `OneHot(indices, depth, values)`: `values[1]` where the index matches, `values[0]` elsewhere;
/// negative indices count from `depth`.
pub fn one_hot(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let indices = cx.input(0)?;
    let depth = cx.const_input(1)?.to_f64_vec().first().copied().ok_or("depth must hold one value")? as i64;
    if depth < 1 {
        return Err(format!("depth must be positive, found {depth}").into());
    }
    let values = cx.input(2)?;
    let rank = cx.rank(indices);
    let axis = normalize_axis(cx.attr_int_or("axis", -1)?, rank + 1)?;
    let dtype = cx.ty(indices).dtype;
    let idx = if dtype.is_float() { cx.b.cast(indices, DType::I64)? } else { indices };
    let idx_dtype = cx.ty(idx).dtype;
    // Negative indices wrap once: i < 0 -> i + depth.
    let zero = cx.scalar(idx_dtype, 0.0);
    let neg = cx.b.binary(BinaryOp::Lt, idx, zero)?;
    let wrapped = cx.b.binary_scalar(BinaryOp::Add, idx, depth as f64)?;
    let idx = cx.b.select(neg, wrapped, idx)?;
    let mask = one_hot_mask(cx, idx, depth, axis)?;
    let off = slice_scalar(cx, values, 0)?;
    let on = slice_scalar(cx, values, 1)?;
    Ok(vec![NodeCx::value(cx.b.select(mask, on, off)?)])
}

/// Element `i` of a 1-D tensor as a rank-0 value.
fn slice_scalar(cx: &mut NodeCx, v: ValueId, i: i64) -> Result<ValueId, Fail> {
    let op = nnc_ir::Op::Slice { axes: vec![0], starts: vec![i], ends: vec![i + 1], steps: vec![1] };
    let s = cx.b.op1(op, &[v])?;
    Ok(cx.b.reshape(s, vec![])?)
}

/// `Hardmax`: 1 at the first maximum along `axis`, 0 elsewhere. Before opset 13 the input is
/// flattened to 2-D at `axis` first.
pub fn hardmax(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let (v, axis) = if cx.opset >= 13 {
        (x, normalize_axis(cx.attr_int_or("axis", -1)?, ty.rank())?)
    } else {
        let axis = normalize_axis(cx.attr_int_or("axis", 1)?, ty.rank())?;
        let outer = ty.shape[..axis].iter().cloned().fold(Dim::constant(1), |a, b| a * b);
        let inner = ty.shape[axis..].iter().cloned().fold(Dim::constant(1), |a, b| a * b);
        (cx.b.reshape(x, vec![outer, inner])?, 1)
    };
    let vty = cx.ty(v);
    let arg = cx.b.argmax(v, axis as i64, false)?;
    let depth = vty.shape[axis].as_const().ok_or("Hardmax needs a concrete length on its axis")?;
    let mask = one_hot_mask(cx, arg, depth, axis)?;
    let out = cx.b.cast(mask, ty.dtype)?;
    Ok(vec![NodeCx::value(cx.b.reshape(out, ty.shape)?)])
}

/// `CumSum(x, axis)` and `CumProd(x, axis)`: an IR `cumulative`. `exclusive` leaves out the
/// element itself, `reverse` runs from the end. The axis must be known at import time.
pub fn cumulative(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["exclusive", "reverse"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let axis = match cx.const_ints(1)?.as_slice() {
        [a] => *a,
        other => return Err(format!("axis must hold one value, found {other:?}").into()),
    };
    let axis = normalize_axis(axis, ty.rank())?;
    let kind = if cx.node.op_type() == "CumProd" { CumKind::Prod } else { CumKind::Sum };
    let op = Op::Cumulative {
        axis,
        kind,
        exclusive: cx.attr_int_or("exclusive", 0)? != 0,
        reverse: cx.attr_int_or("reverse", 0)? != 0,
    };
    Ok(vec![NodeCx::value(cx.b.op1(op, &[x])?)])
}
