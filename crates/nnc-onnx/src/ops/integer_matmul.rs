//! QDQ matrix products as integer work: a `MatMul` or `Gemm` whose operands are both
//! `DequantizeLinear` outputs — activations of 8-bit integers with one scale and zero point,
//! constant `int8` weights with a zero zero point and one scale per tensor or per output column —
//! imports as a matmul of the integers accumulated in `i32`, corrected for the activations'
//! zero point in `i32` and scaled once per column in `f32`:
//!
//! `y[m, n] = (Σ_k xq[m, k] · wq[k, n] − zp · Σ_k wq[k, n]) · (s_x · s_w[n])`.
//!
//! The dequantized form computes each product in `f32` and sums it in `f32`; the integer form
//! sums exactly and rounds once, so the two agree within `f32` rounding of the sum (ONNX Runtime
//! computes the integer form too). The CPU schedules such a product as an integer contraction
//! (u8 × i8 dot products where the host has them). The recognition happens at import because only
//! there is the quantized structure visible: the Graph IR has no dequantize op, and a folded
//! weight is plain `f32`.

use super::NodeCx;
use crate::import::Dequantized;
use nnc_ir::{DType, TensorData, TensorType, ValueId};

/// A dequantized operand in the form the integer product takes.
pub(super) struct Operand {
    /// The ONNX name of the integers, and their type.
    pub integers: String,
    pub ty: TensorType,
    /// Their values, where known at import (weights).
    pub known: Option<TensorData>,
    pub scale: Vec<f64>,
    pub zero_point: Vec<i64>,
    /// The axis the scale and zero point run along, where they are not one value.
    pub axis: Option<usize>,
}

pub(super) fn operand(cx: &mut NodeCx, i: usize) -> Option<Operand> {
    let dq: Dequantized = cx.dequantized(i)?;
    let (ty, known) = cx.peek(&dq.integers)?;
    let rank = ty.rank();
    let scale = dq.scale.to_f64_vec();
    let zero_point = dq.zero_point.as_ref().map_or_else(|| vec![0], |z| z.to_i64_vec());
    if scale.is_empty() || zero_point.is_empty() {
        return None;
    }
    let per_axis = scale.len() > 1 || zero_point.len() > 1;
    let axis = if per_axis {
        let a = if dq.axis < 0 { dq.axis + rank as i64 } else { dq.axis };
        Some(usize::try_from(a).ok().filter(|&a| a < rank)?)
    } else {
        None
    };
    (dq.block_size == 0 && dq.scale.dtype() == DType::F32).then_some(Operand {
        integers: dq.integers,
        ty,
        known,
        scale,
        zero_point,
        axis,
    })
}

/// The integer form of `MatMul(a, b)` (`Gemm` with `trans_b`: of `a · bᵀ`), or `None` where the
/// operands are not of the form the module docs describe (the caller then imports the float
/// product).
pub fn integer_matmul(cx: &mut NodeCx, trans_b: bool) -> Result<Option<ValueId>, super::Fail> {
    let (Some(x), Some(w)) = (operand(cx, 0), operand(cx, 1)) else { return Ok(None) };
    let Some(wq) = w.known.as_ref() else { return Ok(None) };
    let x_dtype = x.ty.dtype;
    let fits = matches!(x_dtype, DType::U8 | DType::I8)
        && x.axis.is_none()
        && wq.dtype() == DType::I8
        && wq.shape().len() == 2
        && w.zero_point.iter().all(|&z| z == 0);
    if !fits {
        return Ok(None);
    }
    let (rows, cols) = (wq.shape()[0], wq.shape()[1]);
    // The weights' output axis: columns of `b`, rows of `b` before `Gemm`'s transpose.
    let (k, n, out_axis) = if trans_b { (cols, rows, 0) } else { (rows, cols, 1) };
    if w.axis.is_some_and(|a| a != out_axis) || (w.scale.len() != 1 && w.scale.len() != n) {
        return Ok(None);
    }
    let values = wq.to_i64_vec();
    // The weights as `[k, n]` (`Gemm`'s transposed weights transposed here, once).
    let weights = if trans_b {
        let kn: Vec<i64> = (0..k * n).map(|i| values[(i % n) * k + i / n]).collect();
        TensorData::from_i64(DType::I8, vec![k, n], &kn)
    } else {
        wq.clone()
    };
    let xq = cx.value_named(&x.integers)?;
    let acc = centered_product(cx, xq, ZeroPoint::Known(x.zero_point[0]), &weights)?;
    Ok(Some(rescaled(cx, acc, &x, &w, n)?))
}

/// The integer-valued product `acc` (last axis: `columns` output columns) in `f32`, times each
/// column's scale `s_x · s_w[column]` (one scalar where they are all equal).
pub(super) fn rescaled(
    cx: &mut NodeCx,
    acc: ValueId,
    x: &Operand,
    w: &Operand,
    columns: usize,
) -> Result<ValueId, super::Fail> {
    let acc = if cx.ty(acc).dtype == DType::F32 { acc } else { cx.b.cast(acc, DType::F32)? };
    let scales: Vec<f64> = (0..columns).map(|c| x.scale[0] * w.scale[if w.scale.len() == 1 { 0 } else { c }]).collect();
    let scale = if scales.iter().all(|&s| s == scales[0]) {
        cx.b.scalar(DType::F32, scales[0])
    } else {
        cx.b.constant(TensorData::from_f64(DType::F32, vec![columns], &scales))
    };
    Ok(cx.b.mul(acc, scale)?)
}

/// The zero point of a product's activations: known at import, or a scalar computed at run
/// time (`DynamicQuantizeLinear`'s).
pub enum ZeroPoint {
    Known(i64),
    Value(ValueId),
}

/// `Σ_k (a[.., m, k] − zero_point) · w[k, n]` in `i32`, for 8-bit integers `a` and constant
/// `i8` weights `w` `[K, N]`, in the form integer dot products take: the product of the
/// integers as they are, less the zero point times each column's sum (`Σ_k w[k, n]`, computed
/// here). (Dot-product instructions take `u8` activations: the CPU code generator shifts `i8`
/// ones itself, as a shift written here is undone by the optimizer, which proves it changes
/// nothing.)
pub fn centered_product(
    cx: &mut NodeCx,
    a: ValueId,
    zero_point: ZeroPoint,
    w: &TensorData,
) -> Result<ValueId, super::Fail> {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let values = w.to_i64_vec();
    let column_sums: Vec<i64> = (0..n).map(|c| (0..k).map(|r| values[r * n + c]).sum()).collect();
    let ai = cx.b.cast(a, DType::I32)?;
    let wi = cx.b.constant(w.clone());
    let wi = cx.b.cast(wi, DType::I32)?;
    let acc = cx.b.matmul(ai, wi)?;
    let correction = match zero_point {
        ZeroPoint::Known(0) => return Ok(acc),
        ZeroPoint::Known(z) => {
            let c: Vec<i64> = column_sums.iter().map(|s| s * z).collect();
            cx.b.constant(TensorData::from_i64(DType::I32, vec![n], &c))
        }
        ZeroPoint::Value(z) => {
            let z = cx.b.cast(z, DType::I32)?;
            let z = cx.b.reshape(z, Vec::new())?;
            let sums = cx.b.constant(TensorData::from_i64(DType::I32, vec![n], &column_sums));
            cx.b.mul(sums, z)?
        }
    };
    Ok(cx.b.sub(acc, correction)?)
}
