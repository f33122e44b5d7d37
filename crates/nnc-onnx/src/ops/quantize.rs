//! `QuantizeLinear`, `DequantizeLinear`, `DynamicQuantizeLinear` and the integer contractions
//! (`MatMulInteger`, `ConvInteger`, `QLinearMatMul`, `QLinearConv`) with ONNX's exact
//! semantics. Q/DQ are float arithmetic: per-tensor, per-axis and blocked scales; 8- and 16-bit
//! integers, the 4- and 2-bit integers, float8 and float4. The arithmetic follows ONNX's
//! reference step by step (the division in the inputs' common precision, round half to even,
//! the zero point added, then saturation), so the interpreter is bit-exact against it. The
//! contractions accumulate in `i32` and requantize in `f64`, as the reference does; matrix
//! products of constant `int8` weights take the dot-product form of `integer_matmul`
//! (`ConvInteger` and `QLinearConv` still convolve in `f64`). QDQ pairs around `MatMul`, `Gemm`
//! and `Conv` become integer products in `integer_matmul` and `integer_conv`.

use super::elementwise::convert;
use super::integer_matmul::{centered_product, ZeroPoint};
use super::nn::{add_channel_bias, conv_of};
use super::{product, Fail, NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::{BinaryOp, DType, Dim, ReduceKind, UnaryOp, ValueId};

/// The range of an integer quantization target.
fn integer_range(d: DType) -> Option<(f64, f64)> {
    Some(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::U2 => (0.0, 3.0),
        DType::I2 => (-2.0, 1.0),
        _ => return None,
    })
}

/// `value` (a scale or zero point) shaped to broadcast against `x`: a scalar or one element as
/// a scalar; a vector as `x`'s axis `axis` (attribute `axis`, negative from the end: per-axis);
/// with `block_size`, each element repeated `block_size` times along `axis` and cut to `x`'s
/// length there (blocked).
fn broadcastable(cx: &mut NodeCx, value: ValueId, x: ValueId, block_size: i64) -> Result<ValueId, Fail> {
    let x_ty = cx.ty(x);
    let v_ty = cx.ty(value);
    let rank = x_ty.rank();
    let shape =
        v_ty.static_shape().ok_or_else(|| format!("the scale and zero point need static shapes, found {v_ty}"))?;
    let count = product(shape.iter().map(|&d| d as i64), "the scale or zero point")? as usize;
    if count == 1 {
        return Ok(cx.b.reshape(value, Vec::new())?);
    }
    let attr = cx.attr_int_or("axis", 1)?;
    let axis = usize::try_from(if attr < 0 { attr + rank as i64 } else { attr })
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {attr} is out of range for the input's rank {rank}"))?;
    let x_dim = |a: usize| x_ty.shape[a].clone();
    if block_size <= 0 {
        if shape.len() != 1 {
            return Err(format!("a per-axis scale or zero point must be a vector, found {v_ty}").into());
        }
        let dims: Vec<Dim> = (0..rank).map(|a| if a == axis { Dim::from(count) } else { Dim::from(1usize) }).collect();
        return Ok(cx.b.reshape(value, dims)?);
    }
    if shape.len() != rank {
        return Err(format!("a blocked scale or zero point must have the input's rank {rank}, found {v_ty}").into());
    }
    let length = x_dim(axis)
        .as_const()
        .ok_or_else(|| format!("blocked quantization needs a static length on axis {axis}, found {x_ty}"))?;
    let blocks = shape[axis];
    let needed = (length as usize).div_ceil(block_size as usize);
    if blocks != needed {
        return Err(format!(
            "{blocks} blocks of {block_size} on axis {axis} do not cover its {length} elements ({needed} are needed)"
        )
        .into());
    }
    // [.., blocks, ..] -> [.., blocks, 1, ..] -> [.., blocks, block_size, ..] -> [.., blocks * block_size, ..].
    let mut split: Vec<Dim> = shape.iter().map(|&d| Dim::from(d)).collect();
    split.insert(axis + 1, Dim::from(1usize));
    let v = cx.b.reshape(value, split.clone())?;
    split[axis + 1] = Dim::from(block_size);
    let v = cx.b.expand(v, split)?;
    let mut merged: Vec<Dim> = shape.iter().map(|&d| Dim::from(d)).collect();
    merged[axis] = Dim::from(blocks * block_size as usize);
    let v = cx.b.reshape(v, merged)?;
    Ok(if blocks * block_size as usize != length as usize { cx.b.slice_axis(v, axis, 0, length)? } else { v })
}

/// The dtype numpy computes `a op b` in for two float dtypes (the common one, or `f32`).
fn common_float(a: DType, b: DType) -> DType {
    if a == b {
        a
    } else if a == DType::F64 || b == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// `y = (x - zero_point) * scale`: `x` read as `f32` (integers beyond 2^24 round, as in ONNX's
/// reference), the result in the scale's dtype or `output_dtype`.
pub fn dequantize_linear(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "block_size", "output_dtype"])?;
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let zero_point = cx.opt_input(2)?;
    let x_dtype = cx.ty(x).dtype;
    let scale_dtype = cx.ty(scale).dtype;
    if !scale_dtype.is_float() {
        return Err(format!("the scale must be a float, found {scale_dtype}").into());
    }
    let out_dtype = match cx.attr_int("output_dtype")? {
        Some(code) if code != 0 => dtype_from_onnx(code as i32)?,
        _ => scale_dtype,
    };
    let block_size = cx.attr_int_or("block_size", 0)?;
    // numpy: `f32 - i32` is `f64`; every narrower integer subtracts in `f32`.
    let compute = if x_dtype == DType::I32 && zero_point.is_some() { DType::F64 } else { DType::F32 };
    let mut dx = cx.b.cast(x, DType::F32)?;
    dx = cx.b.cast(dx, compute)?;
    // Float8 and float4 have no zero point (ONNX requires it to be zero).
    if let Some(zp) = zero_point.filter(|_| !x_dtype.is_float()) {
        let zp_dtype = cx.ty(zp).dtype;
        if zp_dtype != x_dtype {
            return Err(format!("the zero point is {zp_dtype}, the input {x_dtype}: they must match").into());
        }
        let zp = broadcastable(cx, zp, x, block_size)?;
        let zp = cx.b.cast(zp, compute)?;
        dx = cx.b.sub(dx, zp)?;
    }
    let scale = broadcastable(cx, scale, x, block_size)?;
    let scale = cx.b.cast(scale, compute)?;
    let y = cx.b.mul(dx, scale)?;
    Ok(vec![NodeCx::value(cx.b.cast(y, out_dtype)?)])
}

/// `y = saturate(round_half_even(x / scale) + zero_point)` for integer targets; a (saturating)
/// cast of `x / scale` for float8 and of `x / scale + zero_point` for float4.
pub fn quantize_linear(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "block_size", "output_dtype", "saturate", "precision"])?;
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let zero_point = cx.opt_input(2)?;
    let attr_dtype = match cx.attr_int("output_dtype")? {
        Some(code) if code != 0 => Some(dtype_from_onnx(code as i32)?),
        _ => None,
    };
    let target = match (zero_point.map(|zp| cx.ty(zp).dtype), attr_dtype) {
        (Some(z), Some(a)) if z != a => {
            return Err(format!("output_dtype {a} differs from the zero point's {z}").into());
        }
        (Some(z), _) => z,
        (None, Some(a)) => a,
        (None, None) => DType::U8,
    };
    let precision = match cx.attr_int("precision")? {
        Some(code) if code != 0 => dtype_from_onnx(code as i32)?,
        _ => common_float(cx.ty(x).dtype, cx.ty(scale).dtype),
    };
    let block_size = cx.attr_int_or("block_size", 0)?;
    let saturate = cx.attr_int_or("saturate", 1)? != 0;
    let scale = broadcastable(cx, scale, x, block_size)?;
    let (xp, sp) = (cx.b.cast(x, precision)?, cx.b.cast(scale, precision)?);
    let q = cx.b.div(xp, sp)?;
    let zero_point = match zero_point {
        Some(zp) => Some(broadcastable(cx, zp, x, block_size)?),
        None => None,
    };
    if let Some((lo, hi)) = integer_range(target) {
        // Rounded in the division's precision, then widened (exact) to add and clamp.
        let r = cx.b.unary(UnaryOp::Round, q)?;
        let mut r = cx.b.cast(r, DType::F32)?;
        if let Some(zp) = zero_point {
            let zp = cx.b.cast(zp, DType::F32)?;
            r = cx.b.add(r, zp)?;
        }
        let r = cx.b.binary_scalar(BinaryOp::Max, r, lo)?;
        let r = cx.b.binary_scalar(BinaryOp::Min, r, hi)?;
        return Ok(vec![NodeCx::value(cx.b.cast(r, target)?)]);
    }
    let y = match target {
        DType::F4E2M1 => {
            let q = match zero_point {
                Some(zp) => {
                    let zp = cx.b.cast(zp, precision)?;
                    cx.b.add(q, zp)?
                }
                None => q,
            };
            cx.b.cast(q, target)?
        }
        d if d.is_minifloat() && d != DType::F8E8M0 => convert(cx, q, d, saturate)?,
        d => return Err(format!("{d} is not a quantized type").into()),
    };
    Ok(vec![NodeCx::value(y)])
}

/// `DynamicQuantizeLinear`: the `u8` scale and zero point that map `[min(x, 0), max(x, 0)]` onto
/// `[0, 255]`, and `x` quantized with them.
pub fn dynamic_quantize_linear(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let x = cx.input(0)?;
    if cx.ty(x).dtype != DType::F32 {
        return Err(format!("the input must be f32, found {}", cx.ty(x).dtype).into());
    }
    let rank = cx.ty(x).rank() as i64;
    let axes: Vec<i64> = (0..rank).collect();
    let hi = cx.b.reduce(ReduceKind::Max, x, &axes, false)?;
    let hi = cx.b.binary_scalar(BinaryOp::Max, hi, 0.0)?;
    let lo = cx.b.reduce(ReduceKind::Min, x, &axes, false)?;
    let lo = cx.b.binary_scalar(BinaryOp::Min, lo, 0.0)?;
    let span = cx.b.sub(hi, lo)?;
    let scale = cx.b.binary_scalar(BinaryOp::Div, span, 255.0)?;
    // zero_point = saturate(round(0 - min / scale)) in [0, 255].
    let shifted = cx.b.div(lo, scale)?;
    let zero = cx.scalar(DType::F32, 0.0);
    let shifted = cx.b.sub(zero, shifted)?;
    let zp = cx.b.unary(UnaryOp::Round, shifted)?;
    let zp = cx.b.binary_scalar(BinaryOp::Max, zp, 0.0)?;
    let zp = cx.b.binary_scalar(BinaryOp::Min, zp, 255.0)?;
    let q = cx.b.div(x, scale)?;
    let q = cx.b.unary(UnaryOp::Round, q)?;
    let q = cx.b.add(q, zp)?;
    let q = cx.b.binary_scalar(BinaryOp::Max, q, 0.0)?;
    let q = cx.b.binary_scalar(BinaryOp::Min, q, 255.0)?;
    let y = cx.b.cast(q, DType::U8)?;
    let zp = cx.b.cast(zp, DType::U8)?;
    Ok(vec![NodeCx::value(y), NodeCx::value(scale), NodeCx::value(zp)])
}

/// `x - zero_point` in `i32`. A zero point of more than one element applies along `axis` of `x`
/// (a matrix's rows, a weight's output channels); one of one element, everywhere.
fn centered(cx: &mut NodeCx, x: ValueId, zero_point: Option<ValueId>, axis: usize) -> Result<ValueId, Fail> {
    let xi = cx.b.cast(x, DType::I32)?;
    let Some(zp) = zero_point else { return Ok(xi) };
    let rank = cx.ty(x).rank();
    let zp_ty = cx.ty(zp);
    let count = match zp_ty.static_shape() {
        Some(s) => Some(product(s.iter().map(|&d| d as i64), "the zero point")? as usize),
        None => None,
    };
    let zp = match count {
        Some(1) => cx.b.reshape(zp, Vec::new())?,
        Some(n) if zp_ty.rank() == 1 && axis < rank => {
            let dims = (0..rank).map(|a| Dim::from(if a == axis { n } else { 1 })).collect();
            cx.b.reshape(zp, dims)?
        }
        _ => {
            return Err(
                format!("zero point {zp_ty} must be a scalar or a vector along axis {axis} of the operand").into()
            )
        }
    };
    let zp = cx.b.cast(zp, DType::I32)?;
    Ok(cx.b.sub(xi, zp)?)
}

/// The `i32` accumulator `acc` requantized: `acc * scale + zero_point` in `f64`, rounded half to
/// even and saturated to `zero_point`'s dtype (`fallback` without one). `scale` is already shaped
/// to broadcast against `acc`.
fn requantize(
    cx: &mut NodeCx,
    acc: ValueId,
    scale: ValueId,
    zero_point: Option<ValueId>,
    fallback: DType,
) -> Result<ValueId, Fail> {
    let target = zero_point.map_or(fallback, |zp| cx.ty(zp).dtype);
    let (lo, hi) = integer_range(target).ok_or_else(|| format!("{target} is not an integer quantized type"))?;
    let wide = cx.b.cast(acc, DType::F64)?;
    let scale = cx.b.cast(scale, DType::F64)?;
    let mut y = cx.b.mul(wide, scale)?;
    if let Some(zp) = zero_point {
        let zp = cx.b.reshape(zp, Vec::new())?;
        let zp = cx.b.cast(zp, DType::F64)?;
        y = cx.b.add(y, zp)?;
    }
    let y = cx.b.unary(UnaryOp::Round, y)?;
    let y = cx.b.binary_scalar(BinaryOp::Max, y, lo)?;
    let y = cx.b.binary_scalar(BinaryOp::Min, y, hi)?;
    Ok(cx.b.cast(y, target)?)
}

/// `a_scale * b_scale / y_scale` in the scales' dtype, the first factor's vector (if any)
/// along `axis` of a rank-`rank` result.
fn combined_scale(
    cx: &mut NodeCx,
    first: ValueId,
    second: ValueId,
    out: ValueId,
    rank: usize,
    first_axis: usize,
    second_axis: usize,
) -> Result<ValueId, Fail> {
    let shaped = |cx: &mut NodeCx, s: ValueId, axis: usize| -> Result<ValueId, Fail> {
        let ty = cx.ty(s);
        let count = match ty.static_shape() {
            Some(s) => Some(product(s.iter().map(|&d| d as i64), "a scale")? as usize),
            None => None,
        };
        Ok(match count {
            Some(1) => cx.b.reshape(s, Vec::new())?,
            Some(n) if ty.rank() == 1 => {
                let dims = (0..rank).map(|a| Dim::from(if a == axis { n } else { 1 })).collect();
                cx.b.reshape(s, dims)?
            }
            _ => return Err(format!("scale {ty} must be a scalar or a vector").into()),
        })
    };
    let (a, b, y) = (shaped(cx, first, first_axis)?, shaped(cx, second, second_axis)?, shaped(cx, out, 0)?);
    let ab = cx.b.mul(a, b)?;
    Ok(cx.b.div(ab, y)?)
}

/// `MatMulInteger(A, B, a_zero_point?, b_zero_point?)`: `(A - a_zp) @ (B - b_zp)` in `i32`,
/// `a_zp` per tensor or per row of A, `b_zp` per tensor or per column of B.
pub fn matmul_integer(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    if let Some(y) = product_of_constant_weights(cx, [0, 2, 1, 3])? {
        return Ok(vec![NodeCx::value(y)]);
    }
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let (a_zp, b_zp) = (cx.opt_input(2)?, cx.opt_input(3)?);
    let (ra, rb) = (cx.ty(a).rank(), cx.ty(b).rank());
    let a = centered(cx, a, a_zp, ra.saturating_sub(2))?;
    let b = centered(cx, b, b_zp, rb.saturating_sub(1))?;
    Ok(vec![NodeCx::value(cx.b.matmul(a, b)?)])
}

/// `(a - a_zp) @ (b - b_zp)` in the form integer dot products take
/// ([`centered_product`]) where `b` is a constant `i8` matrix whose zero point is zero and
/// `a_zp` one value (known or computed: `DynamicQuantizeLinear`'s); `None` otherwise. `operands`
/// are the node's operand positions of `a`, `a_zp`, `b`, `b_zp`.
fn product_of_constant_weights(cx: &mut NodeCx, operands: [usize; 4]) -> Result<Option<ValueId>, Fail> {
    let [a, a_zp, b, b_zp] = operands;
    let Ok(Some(weights)) = cx.opt_const_input(b) else { return Ok(None) };
    let zero_weights = match cx.opt_const_input(b_zp) {
        Ok(None) => true,
        Ok(Some(z)) => z.to_i64_vec().iter().all(|&v| v == 0),
        Err(_) => false,
    };
    let a_dtype = cx.input_type(a)?.dtype;
    if weights.dtype() != DType::I8
        || weights.shape().len() != 2
        || !zero_weights
        || !matches!(a_dtype, DType::U8 | DType::I8)
    {
        return Ok(None);
    }
    let zero_point = match cx.opt_const_input(a_zp) {
        Ok(None) => ZeroPoint::Known(0),
        Ok(Some(z)) if z.len() == 1 => ZeroPoint::Known(z.to_i64_vec()[0]),
        Ok(Some(_)) => return Ok(None),
        Err(_) => {
            let z = cx.input(a_zp)?;
            if cx.ty(z).static_shape().is_none_or(|s| s.iter().product::<usize>() != 1) {
                return Ok(None);
            }
            ZeroPoint::Value(z)
        }
    };
    let a = cx.input(a)?;
    Ok(Some(centered_product(cx, a, zero_point, &weights)?))
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)`: the integer product
/// requantized with `a_scale * b_scale / y_scale`.
pub fn qlinear_matmul(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let (a, a_scale, a_zp) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2)?);
    let (b, b_scale, b_zp) = (cx.input(3)?, cx.input(4)?, cx.opt_input(5)?);
    let (y_scale, y_zp) = (cx.input(6)?, cx.opt_input(7)?);
    let a_dtype = cx.ty(a).dtype;
    let acc = match product_of_constant_weights(cx, [0, 2, 3, 5])? {
        Some(acc) => acc,
        None => {
            let (ra, rb) = (cx.ty(a).rank(), cx.ty(b).rank());
            let ai = centered(cx, a, a_zp, ra.saturating_sub(2))?;
            let bi = centered(cx, b, b_zp, rb.saturating_sub(1))?;
            cx.b.matmul(ai, bi)?
        }
    };
    let rank = cx.ty(acc).rank();
    let scale = combined_scale(cx, a_scale, b_scale, y_scale, rank, rank.saturating_sub(2), rank.saturating_sub(1))?;
    Ok(vec![NodeCx::value(requantize(cx, acc, scale, y_zp, a_dtype)?)])
}

/// `ConvInteger(x, w, x_zero_point?, w_zero_point?)`: the convolution of the centered operands
/// in `i32` (`w_zp` per tensor or per output channel).
pub fn conv_integer(cx: &mut NodeCx) -> Out {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (x_zp, w_zp) = (cx.opt_input(2)?, cx.opt_input(3)?);
    let xi = centered(cx, x, x_zp, 1)?;
    let wi = centered(cx, w, w_zp, 0)?;
    Ok(vec![NodeCx::value(integer_conv(cx, xi, wi)?)])
}

/// The `i32` convolution of `i32` operands, computed in `f64` (the Graph IR convolves floats):
/// exact, since every product and partial sum of 8- and 16-bit operands is far below 2^53.
fn integer_conv(cx: &mut NodeCx, x: ValueId, w: ValueId) -> Result<ValueId, Fail> {
    let (xf, wf) = (cx.b.cast(x, DType::F64)?, cx.b.cast(w, DType::F64)?);
    let y = conv_of(cx, xf, wf)?;
    Ok(cx.b.cast(y, DType::I32)?)
}

/// `QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?)`: the integer convolution
/// plus the `i32` bias, requantized with `x_scale * w_scale / y_scale` (`w_scale` per tensor or
/// per output channel).
pub fn qlinear_conv(cx: &mut NodeCx) -> Out {
    let (x, x_scale, x_zp) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2)?);
    let (w, w_scale, w_zp) = (cx.input(3)?, cx.input(4)?, cx.opt_input(5)?);
    let (y_scale, y_zp) = (cx.input(6)?, cx.opt_input(7)?);
    let x_dtype = cx.ty(x).dtype;
    let xi = centered(cx, x, x_zp, 1)?;
    let wi = centered(cx, w, w_zp, 0)?;
    let mut acc = integer_conv(cx, xi, wi)?;
    if let Some(bias) = cx.opt_input(8)? {
        acc = add_channel_bias(cx, acc, bias)?;
    }
    let rank = cx.ty(acc).rank();
    let scale = combined_scale(cx, x_scale, w_scale, y_scale, rank, 1, 1)?;
    Ok(vec![NodeCx::value(requantize(cx, acc, scale, y_zp, x_dtype)?)])
}
