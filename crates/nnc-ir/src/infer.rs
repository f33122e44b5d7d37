//! Shape and dtype inference: each op's rule for the types of its results.
//!
//! [`infer`] is the single place that knows what shapes an op accepts and produces; the builder,
//! the verifier and the parser all call it. Errors are short sentences about the op's operands;
//! callers add which node and file they came from.

use crate::op::{BinaryClass, Op, RnnCell, RnnDirection, UnaryClass, Window};
use crate::shape::{broadcast_shapes, format_shape};
use crate::{DType, Dim, TensorType};

/// The types of `op`'s results given its operands' types.
pub fn infer(op: &Op, inputs: &[&TensorType]) -> Result<Vec<TensorType>, String> {
    let (min, max) = op.arity();
    if inputs.len() < min || inputs.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!("expects {want} operand(s), found {}", inputs.len()));
    }
    let one = |t: TensorType| Ok(vec![t]);
    match op {
        Op::Constant(t) => one(TensorType::new(t.dtype(), t.shape().iter().copied())),
        Op::Iota { dtype, shape, axis } => {
            check_axis(*axis, shape.len())?;
            if !dtype.is_numeric() {
                return Err(format!("iota needs a numeric dtype, found {dtype}"));
            }
            one(TensorType { dtype: *dtype, shape: shape.clone() })
        }
        Op::Unary(u) => {
            let x = inputs[0];
            let ok = match u.class() {
                UnaryClass::Numeric => x.dtype.is_numeric(),
                UnaryClass::Float | UnaryClass::FloatPredicate => x.dtype.is_float(),
                // `not` of a bool, or bitwise of an integer.
                UnaryClass::Logical => x.dtype == DType::Bool || x.dtype.is_int(),
            };
            if !ok {
                return Err(format!(
                    "operand 0 has dtype {}, which `{}` does not accept ({:?})",
                    x.dtype,
                    u.name(),
                    u.class()
                ));
            }
            let dtype = if u.class() == UnaryClass::FloatPredicate { DType::Bool } else { x.dtype };
            one(x.with_dtype(dtype))
        }
        Op::Binary(b) => {
            let (x, y) = (inputs[0], inputs[1]);
            same_dtype(x, y, 0, 1)?;
            let dtype = match b.class() {
                BinaryClass::Arithmetic if x.dtype.is_numeric() => x.dtype,
                // `and`/`or`/`xor` of bools, or bitwise of integers.
                BinaryClass::Logical if x.dtype == DType::Bool || x.dtype.is_int() => x.dtype,
                BinaryClass::Comparison => DType::Bool,
                class => return Err(format!("`{}` ({class:?}) does not accept dtype {}", b.name(), x.dtype)),
            };
            one(TensorType { dtype, shape: broadcast_shapes(&x.shape, &y.shape)? })
        }
        Op::Select => {
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype != DType::Bool {
                return Err(format!("operand 0 (condition) must be bool, found {}", c.dtype));
            }
            same_dtype(a, b, 1, 2)?;
            let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &a.shape)?, &b.shape)?;
            one(TensorType { dtype: a.dtype, shape })
        }
        Op::Cast { to } => one(inputs[0].with_dtype(*to)),
        Op::Reduce { axes, keep_dims, kind } => {
            let x = inputs[0];
            check_axes(axes, x.rank())?;
            if !x.dtype.is_numeric() {
                return Err(format!("reduce_{} needs numbers, found {}", kind.name(), x.dtype));
            }
            one(TensorType { dtype: x.dtype, shape: reduced_shape(&x.shape, axes, *keep_dims) })
        }
        Op::ArgReduce { axis, keep_dims, .. } => {
            let x = inputs[0];
            check_axis(*axis, x.rank())?;
            if !x.dtype.is_numeric() {
                return Err(format!("needs numbers, found {}", x.dtype));
            }
            one(TensorType { dtype: DType::I64, shape: reduced_shape(&x.shape, &[*axis], *keep_dims) })
        }
        Op::Cumulative { axis, kind, .. } => {
            let x = inputs[0];
            check_axis(*axis, x.rank())?;
            if !x.dtype.is_numeric() {
                return Err(format!("cumulative {} needs numbers, found {}", kind.name(), x.dtype));
            }
            one(x.clone())
        }
        Op::TopK { axis, k, .. } => {
            let x = inputs[0];
            check_axis(*axis, x.rank())?;
            if !x.dtype.is_numeric() {
                return Err(format!("needs numbers, found {}", x.dtype));
            }
            let k = i64::try_from(*k).map_err(|_| format!("k = {k} does not fit 64 bits"))?;
            if x.shape[*axis].as_const().is_some_and(|n| k > n) {
                return Err(format!("k = {k} is larger than axis {axis} of {x}"));
            }
            let mut shape = x.shape.clone();
            shape[*axis] = Dim::constant(k);
            Ok(vec![TensorType { dtype: x.dtype, shape: shape.clone() }, TensorType { dtype: DType::I64, shape }])
        }
        Op::MatMul => matmul(inputs[0], inputs[1]).map(|t| vec![t]),
        Op::Conv { window, groups } => conv(inputs[0], inputs[1], window, *groups).map(|t| vec![t]),
        Op::ConvTranspose { window, output_padding, groups } => {
            conv_transpose(inputs[0], inputs[1], window, output_padding, *groups).map(|t| vec![t])
        }
        Op::Pool { kernel, window, ceil_mode, .. } => one(pool(inputs[0], kernel, window, *ceil_mode)?),
        Op::ArgMaxPool { kernel, window, ceil_mode } => {
            one(pool(inputs[0], kernel, window, *ceil_mode)?.with_dtype(DType::I64))
        }
        Op::Reshape { shape } => {
            let x = inputs[0];
            let (from, to) = (num_elements(&x.shape)?, num_elements(shape)?);
            if from != to {
                return Err(format!(
                    "cannot reshape {x} ({from} elements) to [{}] ({to} elements)",
                    format_shape(shape)
                ));
            }
            one(TensorType { dtype: x.dtype, shape: shape.clone() })
        }
        Op::Transpose { perm } => {
            let x = inputs[0];
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..x.rank()).collect::<Vec<_>>() {
                return Err(format!("perm {perm:?} is not a permutation of the {} axes of {x}", x.rank()));
            }
            one(TensorType { dtype: x.dtype, shape: perm.iter().map(|&p| x.shape[p].clone()).collect() })
        }
        Op::Expand { shape } => {
            one(TensorType { dtype: inputs[0].dtype, shape: broadcast_shapes(&inputs[0].shape, shape)? })
        }
        Op::Slice { axes, starts, ends, steps } => {
            let x = inputs[0];
            if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
                return Err("axes, starts, ends and steps must have the same length".into());
            }
            check_axes(axes, x.rank())?;
            let mut shape = x.shape.clone();
            for (i, &axis) in axes.iter().enumerate() {
                shape[axis] = slice_len(&x.shape[axis], starts[i], ends[i], steps[i])
                    .map_err(|e| format!("axis {axis} of {x}: {e}"))?;
            }
            one(TensorType { dtype: x.dtype, shape })
        }
        Op::Concat { axis } => {
            let first = inputs[0];
            check_axis(*axis, first.rank())?;
            let mut total = Dim::constant(0);
            for (i, t) in inputs.iter().enumerate() {
                same_dtype(first, t, 0, i)?;
                let mismatch =
                    t.rank() != first.rank() || (0..first.rank()).any(|a| a != *axis && t.shape[a] != first.shape[a]);
                if mismatch {
                    return Err(format!(
                        "operand {i} has shape {t}, which does not match operand 0 ({first}) off axis {axis}"
                    ));
                }
                total = total
                    .checked_add(&t.shape[*axis])
                    .ok_or_else(|| format!("the length of axis {axis} overflows 64 bits"))?;
            }
            let mut shape = first.shape.clone();
            shape[*axis] = total;
            one(TensorType { dtype: first.dtype, shape })
        }
        Op::Pad { pads, .. } => {
            let x = inputs[0];
            if pads.len() != 2 * x.rank() {
                return Err(format!(
                    "pads needs {} entries (begin and end for each axis of {x}), found {}",
                    2 * x.rank(),
                    pads.len()
                ));
            }
            let mut shape = Vec::with_capacity(x.rank());
            for a in 0..x.rank() {
                let d = pads[a]
                    .checked_add(pads[a + x.rank()])
                    .and_then(|p| x.shape[a].checked_add(&Dim::constant(p)))
                    .ok_or_else(|| format!("padding axis {a} of {x} overflows 64 bits"))?;
                shape.push(d);
            }
            if shape.iter().any(|d| d.as_const().is_some_and(|v| v < 0)) {
                return Err(format!("negative pads crop more than the axis holds in {x}"));
            }
            one(TensorType { dtype: x.dtype, shape })
        }
        Op::Gather { axis } => {
            let (data, idx) = (inputs[0], inputs[1]);
            check_axis(*axis, data.rank())?;
            check_index_dtype(idx, 1)?;
            one(TensorType { dtype: data.dtype, shape: gathered_shape(data, idx, *axis) })
        }
        Op::ScatterAdd { axis } => {
            let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
            check_axis(*axis, data.rank())?;
            check_index_dtype(idx, 1)?;
            same_dtype(data, upd, 0, 2)?;
            let want = gathered_shape(data, idx, *axis);
            if upd.shape != want {
                return Err(format!(
                    "updates must have shape [{}] (what gather would give), found {upd}",
                    format_shape(&want)
                ));
            }
            one(data.clone())
        }
        Op::GatherElements { axis } => {
            let (data, idx) = (inputs[0], inputs[1]);
            check_axis(*axis, data.rank())?;
            check_index_dtype(idx, 1)?;
            elementwise_indices(data, idx, *axis)?;
            one(TensorType { dtype: data.dtype, shape: idx.shape.clone() })
        }
        Op::ScatterElements { axis, .. } => {
            let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
            check_axis(*axis, data.rank())?;
            check_index_dtype(idx, 1)?;
            same_dtype(data, upd, 0, 2)?;
            elementwise_indices(data, idx, *axis)?;
            if upd.shape != idx.shape {
                return Err(format!("updates must have the shape of the indices ({idx}), found {upd}"));
            }
            one(data.clone())
        }
        Op::Resize(r) => one(resize(inputs[0], r)?),
        Op::GatherNd { batch_dims } => {
            let (data, idx) = (inputs[0], inputs[1]);
            check_index_dtype(idx, 1)?;
            let shape = gathered_nd_shape(data, idx, *batch_dims)?;
            one(TensorType { dtype: data.dtype, shape })
        }
        Op::ScatterNd { .. } => {
            let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
            check_index_dtype(idx, 1)?;
            same_dtype(data, upd, 0, 2)?;
            let want = gathered_nd_shape(data, idx, 0)?;
            if upd.shape != want {
                return Err(format!(
                    "updates must have shape [{}] (what gather_nd would give), found {upd}",
                    format_shape(&want)
                ));
            }
            one(data.clone())
        }
        Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            check_axis(*axis, inputs[0].rank())?;
            float_operand(inputs[0], 0)?;
            one(inputs[0].clone())
        }
        Op::Gelu { .. } => {
            float_operand(inputs[0], 0)?;
            one(inputs[0].clone())
        }
        Op::LayerNorm { axis, .. } => {
            let x = inputs[0];
            check_axis(*axis, x.rank())?;
            float_operand(x, 0)?;
            for (i, param) in inputs.iter().enumerate().skip(1) {
                same_dtype(x, param, 0, i)?;
                broadcast_to(&param.shape, &x.shape[*axis..]).map_err(|e| format!("operand {i}: {e}"))?;
            }
            one(x.clone())
        }
        Op::BatchNorm { .. } => {
            let x = inputs[0];
            float_operand(x, 0)?;
            if x.rank() < 2 {
                return Err(format!("input must have rank 2 or more (N, C, ...), found {x}"));
            }
            for (i, param) in inputs.iter().enumerate().skip(1) {
                same_dtype(x, param, 0, i)?;
                if param.shape != [x.shape[1].clone()] {
                    return Err(format!(
                        "operand {i} must have shape [{}] (one value per channel), found {param}",
                        x.shape[1]
                    ));
                }
            }
            one(x.clone())
        }
        Op::Attention { .. } => attention(inputs).map(|t| vec![t]),
        Op::Recurrent { cell, hidden, direction, .. } => recurrent(inputs, *cell, *hidden, *direction),
        Op::Collective(c) => one(c.infer(inputs[0])?),
    }
}

/// The type of a pooling result: `[N, C]` then one windowed length per spatial axis.
fn pool(x: &TensorType, kernel: &[i64], window: &Window, ceil_mode: bool) -> Result<TensorType, String> {
    let n = kernel.len();
    if x.rank() != n + 2 {
        return Err(format!("input must have rank {} (N, C and {n} spatial axes), found {x}", n + 2));
    }
    check_window(window, n)?;
    let mut shape = x.shape[..2].to_vec();
    for (i, &k) in kernel.iter().enumerate() {
        shape.push(window_out(&x.shape[2 + i], k, window, i, ceil_mode)?);
    }
    if !x.dtype.is_numeric() {
        return Err(format!("needs numbers, found {}", x.dtype));
    }
    Ok(TensorType { dtype: x.dtype, shape })
}

fn check_axis(axis: usize, rank: usize) -> Result<(), String> {
    if axis < rank {
        Ok(())
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), String> {
    for (i, &a) in axes.iter().enumerate() {
        check_axis(a, rank)?;
        if axes[..i].contains(&a) {
            return Err(format!("axis {a} is listed twice"));
        }
    }
    Ok(())
}

fn same_dtype(a: &TensorType, b: &TensorType, ia: usize, ib: usize) -> Result<(), String> {
    if a.dtype == b.dtype {
        Ok(())
    } else {
        Err(format!("operand {ia} has dtype {} but operand {ib} has dtype {}", a.dtype, b.dtype))
    }
}

fn float_operand(t: &TensorType, i: usize) -> Result<(), String> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(format!("operand {i} must be floating point, found {}", t.dtype))
    }
}

fn check_index_dtype(t: &TensorType, i: usize) -> Result<(), String> {
    if matches!(t.dtype, DType::I64 | DType::I32) {
        Ok(())
    } else {
        Err(format!("operand {i} (indices) must be i64 or i32, found {}", t.dtype))
    }
}

/// `shape` can broadcast to `target` without changing `target`.
fn broadcast_to(shape: &[Dim], target: &[Dim]) -> Result<(), String> {
    if broadcast_shapes(shape, target)? == target {
        Ok(())
    } else {
        Err(format!("shape [{}] does not broadcast to [{}]", format_shape(shape), format_shape(target)))
    }
}

/// The element count of `shape` as a dimension; an error (not a panic) if it overflows `i64`.
fn num_elements(shape: &[Dim]) -> Result<Dim, String> {
    shape
        .iter()
        .try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d))
        .ok_or_else(|| format!("the element count of [{}] overflows 64 bits", format_shape(shape)))
}

fn reduced_shape(shape: &[Dim], axes: &[usize], keep_dims: bool) -> Vec<Dim> {
    let mut out = Vec::new();
    for (a, d) in shape.iter().enumerate() {
        if !axes.contains(&a) {
            out.push(d.clone());
        } else if keep_dims {
            out.push(Dim::constant(1));
        }
    }
    out
}

/// `data.shape[..axis] ++ indices.shape ++ data.shape[axis+1..]`.
pub(crate) fn gathered_shape(data: &TensorType, idx: &TensorType, axis: usize) -> Vec<Dim> {
    let mut shape = data.shape[..axis].to_vec();
    shape.extend(idx.shape.iter().cloned());
    shape.extend(data.shape[axis + 1..].iter().cloned());
    shape
}

/// `gather_elements`/`scatter_elements`: `indices` has `data`'s rank and, off `axis`, no
/// dimension larger than `data`'s (equal, or both concrete).
fn elementwise_indices(data: &TensorType, idx: &TensorType, axis: usize) -> Result<(), String> {
    if idx.rank() != data.rank() {
        return Err(format!("indices {idx} must have the rank of the data {data}"));
    }
    for (a, (i, d)) in idx.shape.iter().zip(&data.shape).enumerate() {
        if a == axis || i == d {
            continue;
        }
        match (i.as_const(), d.as_const()) {
            (Some(i), Some(d)) if i <= d => {}
            _ => {
                return Err(format!(
                    "indices {idx} must not be larger than the data {data} on axis {a} (other than axis {axis})"
                ))
            }
        }
    }
    Ok(())
}

/// The shape `gather_nd` gives: `indices.shape[..q-1] ++ data.shape[batch_dims + m..]`, where
/// `m = indices.shape[q-1]` is the length of each index tuple.
fn gathered_nd_shape(data: &TensorType, idx: &TensorType, batch_dims: usize) -> Result<Vec<Dim>, String> {
    let (r, q) = (data.rank(), idx.rank());
    if q == 0 || r == 0 {
        return Err(format!("data {data} and indices {idx} must have rank 1 or more"));
    }
    if batch_dims >= q.min(r) {
        return Err(format!("batch_dims {batch_dims} must be less than the ranks of data {data} and indices {idx}"));
    }
    if data.shape[..batch_dims] != idx.shape[..batch_dims] {
        return Err(format!("the first {batch_dims} axes of data {data} and indices {idx} must be equal"));
    }
    let m = idx.shape[q - 1]
        .as_const()
        .ok_or_else(|| format!("the last axis of the indices {idx} (the index length) must be concrete"))?;
    if m < 1 || m as u64 > (r - batch_dims) as u64 {
        return Err(format!(
            "the index length {m} (last axis of {idx}) must be between 1 and {} (the rank of {data} less batch_dims)",
            r - batch_dims
        ));
    }
    let mut shape = idx.shape[..q - 1].to_vec();
    shape.extend(data.shape[batch_dims + m as usize..].iter().cloned());
    Ok(shape)
}

fn matmul(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    same_dtype(a, b, 0, 1)?;
    if !a.dtype.is_numeric() {
        return Err(format!("matmul needs numbers, found {}", a.dtype));
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err(format!("matmul operands must have rank 1 or more, found {a} and {b}"));
    }
    // numpy: a 1-D left operand is a row vector, a 1-D right operand a column vector; the
    // promoted axis is dropped from the result.
    let sa: Vec<Dim> = if a.rank() == 1 { vec![1.into(), a.shape[0].clone()] } else { a.shape.clone() };
    let sb: Vec<Dim> = if b.rank() == 1 { vec![b.shape[0].clone(), 1.into()] } else { b.shape.clone() };
    let (m, k1) = (&sa[sa.len() - 2], &sa[sa.len() - 1]);
    let (k2, n) = (&sb[sb.len() - 2], &sb[sb.len() - 1]);
    if k1 != k2 {
        return Err(format!("contraction dimensions differ: {a} has {k1}, {b} has {k2}"));
    }
    let mut shape =
        broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2]).map_err(|e| format!("batch axes: {e}"))?;
    if a.rank() > 1 {
        shape.push(m.clone());
    }
    if b.rank() > 1 {
        shape.push(n.clone());
    }
    Ok(TensorType { dtype: a.dtype, shape })
}

fn check_window(w: &Window, n: usize) -> Result<(), String> {
    if w.strides.len() != n || w.dilations.len() != n || w.pads.len() != 2 * n {
        return Err(format!(
            "window for {n} spatial axes needs {n} strides, {n} dilations and {} pads, found {}, {} and {}",
            2 * n,
            w.strides.len(),
            w.dilations.len(),
            w.pads.len()
        ));
    }
    if w.strides.iter().chain(&w.dilations).any(|&s| s < 1) || w.pads.iter().any(|&p| p < 0) {
        return Err("strides and dilations must be at least 1 and pads non-negative".into());
    }
    Ok(())
}

/// Output length of a sliding window along spatial axis `i`:
/// `floor_or_ceil((len + pads - dilation*(kernel-1) - 1) / stride) + 1`.
fn window_out(len: &Dim, kernel: i64, w: &Window, i: usize, ceil_mode: bool) -> Result<Dim, String> {
    let n = w.strides.len();
    if kernel < 1 {
        return Err(format!("spatial axis {i}: kernel size must be at least 1, found {kernel}"));
    }
    // Attributes come from files: compute in i128 so no value overflows, then check the result
    // fits back in i64.
    let overflow = || format!("spatial axis {i}: window arithmetic overflows 64 bits");
    let span = i128::from(w.dilations[i]) * (i128::from(kernel) - 1) + 1;
    let pads = i64::try_from(i128::from(w.pads[i]) + i128::from(w.pads[i + n])).map_err(|_| overflow())?;
    let padded = len.checked_add(&Dim::constant(pads)).ok_or_else(overflow)?;
    let stride = i128::from(w.strides[i]);
    let Some(p) = padded.as_const() else {
        // Symbolic length: only stride 1 is exact.
        return if stride == 1 {
            let shrink = i64::try_from(span - 1).map_err(|_| overflow())?;
            padded.checked_sub(&Dim::constant(shrink)).ok_or_else(overflow)
        } else {
            Err(format!("spatial axis {i} has symbolic length {len}; stride {stride} needs a concrete length"))
        };
    };
    let p = i128::from(p);
    if p < span {
        return Err(format!("spatial axis {i}: window of span {span} does not fit in padded length {p}"));
    }
    let mut out = if ceil_mode { (p - span + stride - 1) / stride + 1 } else { (p - span) / stride + 1 };
    // With ceil_mode the last window must start inside the input or its begin padding
    // (the rule PyTorch and ONNX Runtime use).
    if ceil_mode && (out - 1) * stride >= i128::from(len.as_const().unwrap_or(0)) + i128::from(w.pads[i]) {
        out -= 1;
    }
    i64::try_from(out).map(Dim::constant).map_err(|_| overflow())
}

fn conv(x: &TensorType, w: &TensorType, window: &Window, groups: i64) -> Result<TensorType, String> {
    same_dtype(x, w, 0, 1)?;
    float_operand(x, 0)?;
    let n = window.strides.len();
    if x.rank() != n + 2 || w.rank() != n + 2 {
        return Err(format!("input {x} and weight {w} must both have rank {} (N, C and {n} spatial axes)", n + 2));
    }
    check_window(window, n)?;
    if groups < 1 {
        return Err(format!("groups must be at least 1, found {groups}"));
    }
    let c_per_group = x.shape[1].div_exact(groups);
    if c_per_group.as_ref() != Some(&w.shape[1]) {
        return Err(format!(
            "input channels {} / groups {groups} must equal weight axis 1 ({})",
            x.shape[1], w.shape[1]
        ));
    }
    if w.shape[0].div_exact(groups).is_none() {
        return Err(format!("output channels {} are not divisible by groups {groups}", w.shape[0]));
    }
    let mut shape = vec![x.shape[0].clone(), w.shape[0].clone()];
    for i in 0..n {
        let k = w.shape[2 + i].as_const().ok_or_else(|| format!("kernel size on axis {} must be concrete", 2 + i))?;
        shape.push(window_out(&x.shape[2 + i], k, window, i, false)?);
    }
    Ok(TensorType { dtype: x.dtype, shape })
}

fn resize(x: &TensorType, r: &crate::op::ResizeAttrs) -> Result<TensorType, String> {
    check_axes(&r.axes, x.rank())?;
    let n = r.axes.len();
    if r.sizes.len() != n || r.scales.len() != n || r.roi.len() != 2 * n {
        return Err(format!(
            "{n} resized axes need {n} sizes, {n} scales and {} roi entries, found {}, {} and {}",
            2 * n,
            r.sizes.len(),
            r.scales.len(),
            r.roi.len()
        ));
    }
    if r.mode != crate::op::ResizeMode::Nearest && !x.dtype.is_float() {
        return Err(format!("{} interpolation needs a floating-point operand, found {}", r.mode.name(), x.dtype));
    }
    if let Some(s) = r.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("scales must be positive and finite, found {s}"));
    }
    if let Some(s) = r.sizes.iter().find(|&&s| s < 0) {
        return Err(format!("sizes must not be negative, found {s}"));
    }
    if r.antialias && r.mode == crate::op::ResizeMode::Nearest {
        return Err("antialias needs linear or cubic interpolation".into());
    }
    let mut shape = x.shape.clone();
    for (&a, &size) in r.axes.iter().zip(&r.sizes) {
        shape[a] = Dim::constant(size);
    }
    Ok(TensorType { dtype: x.dtype, shape })
}

fn conv_transpose(
    x: &TensorType,
    w: &TensorType,
    window: &Window,
    output_padding: &[i64],
    groups: i64,
) -> Result<TensorType, String> {
    same_dtype(x, w, 0, 1)?;
    float_operand(x, 0)?;
    let n = window.strides.len();
    if x.rank() != n + 2 || w.rank() != n + 2 {
        return Err(format!("input {x} and weight {w} must both have rank {} (N, C and {n} spatial axes)", n + 2));
    }
    check_window(window, n)?;
    if output_padding.len() != n || output_padding.iter().any(|&p| p < 0) {
        return Err(format!("output_padding needs {n} non-negative entries, found {output_padding:?}"));
    }
    if groups < 1 {
        return Err(format!("groups must be at least 1, found {groups}"));
    }
    if x.shape[1] != w.shape[0] {
        return Err(format!("input channels {} must equal weight axis 0 ({})", x.shape[1], w.shape[0]));
    }
    if x.shape[1].div_exact(groups).is_none() {
        return Err(format!("input channels {} are not divisible by groups {groups}", x.shape[1]));
    }
    let overflow = || "output size overflows 64 bits".to_string();
    let m = w.shape[1].checked_mul(&Dim::constant(groups)).ok_or_else(overflow)?;
    let mut shape = vec![x.shape[0].clone(), m];
    for (i, &extra) in output_padding.iter().enumerate() {
        let k = w.shape[2 + i].as_const().ok_or_else(|| format!("kernel size on axis {} must be concrete", 2 + i))?;
        if k < 1 {
            return Err(format!("spatial axis {i}: kernel size must be at least 1, found {k}"));
        }
        let len = &x.shape[2 + i];
        if len.as_const().is_some_and(|l| l < 1) {
            return Err(format!("spatial axis {i} of the input {x} is empty"));
        }
        // s*(L - 1) + d*(K - 1) + 1 + output_padding - pads, in i128 for the constant part.
        let tail = i128::from(window.dilations[i]) * (i128::from(k) - 1) + 1 + i128::from(extra)
            - i128::from(window.pads[i])
            - i128::from(window.pads[i + n])
            - i128::from(window.strides[i]);
        let tail = i64::try_from(tail).map_err(|_| overflow())?;
        let out = len
            .checked_mul(&Dim::constant(window.strides[i]))
            .and_then(|d| d.checked_add(&Dim::constant(tail)))
            .ok_or_else(overflow)?;
        if out.as_const().is_some_and(|o| o < 0) {
            return Err(format!("spatial axis {i}: the pads crop more than the output holds"));
        }
        shape.push(out);
    }
    Ok(TensorType { dtype: x.dtype, shape })
}

/// Length of a slice with ONNX semantics; needs a concrete length unless the slice is a plain
/// `start..` or `start..end` with non-negative bounds and step 1.
fn slice_len(len: &Dim, start: i64, end: i64, step: i64) -> Result<Dim, String> {
    if step == 0 {
        return Err("step must not be 0".into());
    }
    let Some(n) = len.as_const() else {
        return match (start, end, step) {
            (s, i64::MAX, 1) if s >= 0 => {
                len.checked_sub(&Dim::constant(s)).ok_or_else(|| "slice length overflows 64 bits".to_string())
            }
            (s, e, 1) if s >= 0 && e >= s => Ok(Dim::constant(e - s)),
            _ => Err(format!("slicing symbolic length {len} needs non-negative start and end and step 1")),
        };
    };
    if n < 0 {
        return Err(format!("cannot slice an axis of negative length {n}"));
    }
    let (s, e) = slice_bounds(n, start, end, step);
    // i128: a step near i64::MAX or i64::MIN must not overflow the rounding arithmetic.
    let (s, e, step) = (i128::from(s), i128::from(e), i128::from(step));
    let count = if step > 0 { (e - s + step - 1) / step } else { (s - e - step - 1) / -step };
    // 0 <= count <= n + 1, so it fits.
    Ok(Dim::constant(i64::try_from(count.max(0)).unwrap_or(i64::MAX)))
}

/// Clamped `(start, end)` for a slice of an axis of length `n` (ONNX rules).
pub fn slice_bounds(n: i64, start: i64, end: i64, step: i64) -> (i64, i64) {
    let resolve = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = (resolve(start), resolve(end));
    if step > 0 {
        (s.clamp(0, n), e.clamp(0, n))
    } else {
        (s.clamp(-1, n - 1), e.clamp(-1, n - 1))
    }
}

/// Checks every operand of a recurrent layer against `[S, B, I]` and the hidden size.
fn recurrent(
    inputs: &[&TensorType],
    cell: RnnCell,
    hidden: usize,
    direction: RnnDirection,
) -> Result<Vec<TensorType>, String> {
    let x = inputs[0];
    float_operand(x, 0)?;
    let [s, b, i] = x.shape.as_slice() else {
        return Err(format!("operand 0 (x) must be [seq, batch, input], found {x}"));
    };
    let (d, h) = (Dim::from(direction.count()), Dim::from(hidden));
    let gh = Dim::from(cell.gates() * hidden);
    let mut expected = vec![
        ("w", vec![d.clone(), gh.clone(), i.clone()]),
        ("r", vec![d.clone(), gh.clone(), h.clone()]),
        ("b", vec![d.clone(), Dim::from(2 * cell.gates() * hidden)]),
        ("h0", vec![d.clone(), b.clone(), h.clone()]),
    ];
    if cell == RnnCell::Lstm {
        expected.push(("c0", vec![d.clone(), b.clone(), h.clone()]));
        expected.push(("p", vec![d.clone(), Dim::from(3 * hidden)]));
    }
    for (k, (name, shape)) in expected.into_iter().enumerate() {
        let t = inputs[k + 1];
        same_dtype(x, t, 0, k + 1)?;
        if t.shape != shape {
            return Err(format!("operand {} ({name}) must have shape [{}], found {t}", k + 1, format_shape(&shape)));
        }
    }
    let state = TensorType { dtype: x.dtype, shape: vec![d.clone(), b.clone(), h.clone()] };
    let mut out = vec![TensorType { dtype: x.dtype, shape: vec![s.clone(), d, b.clone(), h] }, state.clone()];
    if cell == RnnCell::Lstm {
        out.push(state);
    }
    Ok(out)
}

fn attention(inputs: &[&TensorType]) -> Result<TensorType, String> {
    let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
    float_operand(q, 0)?;
    same_dtype(q, k, 0, 1)?;
    same_dtype(q, v, 0, 2)?;
    if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        return Err("q, k and v must have rank 2 or more ([..., seq, dim])".into());
    }
    let (lq, d) = (&q.shape[q.rank() - 2], &q.shape[q.rank() - 1]);
    let (lk, dk) = (&k.shape[k.rank() - 2], &k.shape[k.rank() - 1]);
    let (lv, dv) = (&v.shape[v.rank() - 2], &v.shape[v.rank() - 1]);
    if d != dk {
        return Err(format!("q's last axis ({d}) must equal k's ({dk})"));
    }
    if lk != lv {
        return Err(format!("k's sequence length ({lk}) must equal v's ({lv})"));
    }
    let batch = broadcast_shapes(&q.shape[..q.rank() - 2], &k.shape[..k.rank() - 2])?;
    let batch = broadcast_shapes(&batch, &v.shape[..v.rank() - 2])?;
    if let Some(mask) = inputs.get(3) {
        same_dtype(q, mask, 0, 3)?;
        let mut scores = batch.clone();
        scores.extend([lq.clone(), lk.clone()]);
        broadcast_to(&mask.shape, &scores).map_err(|e| format!("mask: {e}"))?;
    }
    let mut shape = batch;
    shape.extend([lq.clone(), dv.clone()]);
    Ok(TensorType { dtype: q.dtype, shape })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{BinaryOp, PoolKind, ReduceKind};

    fn t(dtype: DType, dims: &[i64]) -> TensorType {
        TensorType::new(dtype, dims.iter().copied())
    }

    fn f32s(dims: &[i64]) -> TensorType {
        t(DType::F32, dims)
    }

    #[test]
    fn arity_is_checked() {
        let e = infer(&Op::Binary(BinaryOp::Add), &[&f32s(&[1])]).unwrap_err();
        assert_eq!(e, "expects 2 operand(s), found 1");
    }

    #[test]
    fn matmul_batches_and_promotes() {
        let r = infer(&Op::MatMul, &[&f32s(&[5, 1, 2, 3]), &f32s(&[4, 3, 7])]).unwrap();
        assert_eq!(r[0], f32s(&[5, 4, 2, 7]));
        assert_eq!(infer(&Op::MatMul, &[&f32s(&[3]), &f32s(&[3, 7])]).unwrap()[0], f32s(&[7]));
        assert_eq!(infer(&Op::MatMul, &[&f32s(&[2, 3]), &f32s(&[3])]).unwrap()[0], f32s(&[2]));
        assert!(infer(&Op::MatMul, &[&f32s(&[2, 3]), &f32s(&[4, 3])]).unwrap_err().contains("contraction"));
    }

    #[test]
    fn conv_output_size() {
        let w = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![3, 3, 3, 3] };
        let r = infer(&Op::Conv { window: w, groups: 1 }, &[&f32s(&[1, 3, 224, 224]), &f32s(&[64, 3, 7, 7])]).unwrap();
        assert_eq!(r[0], f32s(&[1, 64, 112, 112]));
        let depthwise = Op::Conv { window: Window::unit(2), groups: 8 };
        assert_eq!(infer(&depthwise, &[&f32s(&[1, 8, 5, 5]), &f32s(&[8, 1, 3, 3])]).unwrap()[0], f32s(&[1, 8, 3, 3]));
        assert!(infer(&depthwise, &[&f32s(&[1, 8, 5, 5]), &f32s(&[8, 2, 3, 3])]).is_err());
    }

    #[test]
    fn conv_transpose_output_size() {
        let w = Window { strides: vec![3, 2], dilations: vec![1, 1], pads: vec![1, 0, 1, 0] };
        let op = Op::ConvTranspose { window: w, output_padding: vec![1, 1], groups: 1 };
        // 3*(3-1) + 3 + 1 - 2 = 8; 2*(3-1) + 3 + 1 = 8.
        let r = infer(&op, &[&f32s(&[1, 1, 3, 3]), &f32s(&[1, 2, 3, 3])]).unwrap();
        assert_eq!(r[0], f32s(&[1, 2, 8, 8]));
        let grouped = Op::ConvTranspose { window: Window::unit(1), output_padding: vec![0], groups: 2 };
        assert_eq!(infer(&grouped, &[&f32s(&[1, 4, 5]), &f32s(&[4, 3, 2])]).unwrap()[0], f32s(&[1, 6, 6]));
        assert!(infer(&grouped, &[&f32s(&[1, 3, 5]), &f32s(&[3, 3, 2])]).unwrap_err().contains("divisible"));
        let sym = TensorType::new(DType::F32, [Dim::from(1), Dim::from(1), Dim::sym("n")]);
        let strided = Op::ConvTranspose {
            window: Window { strides: vec![2], dilations: vec![1], pads: vec![0, 0] },
            output_padding: vec![0],
            groups: 1,
        };
        assert_eq!(infer(&strided, &[&sym, &f32s(&[1, 1, 3])]).unwrap()[0].shape[2].to_string(), "2*n + 1");
    }

    #[test]
    fn pool_ceil_mode() {
        let w = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![0; 4] };
        let pool = |ceil_mode| Op::Pool {
            kind: PoolKind::Max,
            kernel: vec![3, 3],
            window: w.clone(),
            ceil_mode,
            count_include_pad: false,
        };
        assert_eq!(infer(&pool(false), &[&f32s(&[1, 1, 112, 112])]).unwrap()[0], f32s(&[1, 1, 55, 55]));
        assert_eq!(infer(&pool(true), &[&f32s(&[1, 1, 112, 112])]).unwrap()[0], f32s(&[1, 1, 56, 56]));
    }

    #[test]
    fn slices_clamp_like_onnx() {
        let op = |s, e, st| Op::Slice { axes: vec![0], starts: vec![s], ends: vec![e], steps: vec![st] };
        let x = f32s(&[10]);
        assert_eq!(infer(&op(2, 100, 1), &[&x]).unwrap()[0], f32s(&[8]));
        assert_eq!(infer(&op(-1, i64::MIN, -1), &[&x]).unwrap()[0], f32s(&[10]));
        assert_eq!(infer(&op(0, 10, 3), &[&x]).unwrap()[0], f32s(&[4]));
        assert_eq!(infer(&op(5, 2, 1), &[&x]).unwrap()[0], f32s(&[0]));
    }

    #[test]
    fn symbolic_dims_flow_through() {
        let x = TensorType::new(DType::F32, [Dim::sym("batch"), Dim::constant(4)]);
        let r = infer(&Op::Reshape { shape: vec![Dim::sym("batch") * 2.into(), 2.into()] }, &[&x]).unwrap();
        assert_eq!(r[0].shape[0].to_string(), "2*batch");
        let bad = infer(&Op::Reshape { shape: vec![Dim::sym("batch"), 3.into()] }, &[&x]).unwrap_err();
        assert!(bad.contains("cannot reshape"));
        let red = infer(&Op::Reduce { kind: ReduceKind::Sum, axes: vec![1], keep_dims: true }, &[&x]).unwrap();
        assert_eq!(red[0], TensorType::new(DType::F32, [Dim::sym("batch"), 1.into()]));
    }

    #[test]
    fn dtype_rules() {
        assert!(infer(&Op::Binary(BinaryOp::Add), &[&f32s(&[1]), &t(DType::I64, &[1])]).unwrap_err().contains("dtype"));
        assert_eq!(infer(&Op::Binary(BinaryOp::Lt), &[&f32s(&[2]), &f32s(&[1])]).unwrap()[0].dtype, DType::Bool);
        assert!(infer(&Op::Binary(BinaryOp::And), &[&f32s(&[2]), &f32s(&[1])]).is_err());
        assert!(infer(&Op::Gather { axis: 0 }, &[&f32s(&[2]), &f32s(&[1])]).unwrap_err().contains("indices"));
    }

    /// Extreme attribute values and sizes (from a parsed file) are errors, never overflow panics.
    #[test]
    fn extreme_values_are_errors_not_panics() {
        let big = i64::MAX;
        let slice = |s, e, st| Op::Slice { axes: vec![0], starts: vec![s], ends: vec![e], steps: vec![st] };
        assert_eq!(infer(&slice(0, 5, big), &[&f32s(&[5])]).unwrap()[0], f32s(&[1]));
        assert_eq!(infer(&slice(4, i64::MIN, i64::MIN), &[&f32s(&[5])]).unwrap()[0], f32s(&[1]));
        assert!(infer(&slice(0, 1, 1), &[&f32s(&[-3])]).unwrap_err().contains("negative length"));
        let huge = f32s(&[big, 2]);
        assert!(infer(&Op::Reshape { shape: vec![1.into()] }, &[&huge]).unwrap_err().contains("overflows"));
        assert!(infer(&Op::Concat { axis: 0 }, &[&huge, &huge]).unwrap_err().contains("overflows"));
        let pad = Op::Pad { pads: vec![big, big, 0, 0], mode: crate::PadMode::Constant, value: 0.0 };
        assert!(infer(&pad, &[&huge]).unwrap_err().contains("overflows"));
        let w = Window { strides: vec![big], dilations: vec![big], pads: vec![big, big] };
        let pool = |kernel| Op::Pool {
            kind: PoolKind::Max,
            kernel: vec![kernel],
            window: w.clone(),
            ceil_mode: true,
            count_include_pad: false,
        };
        assert!(infer(&pool(big), &[&f32s(&[1, 1, big])]).unwrap_err().contains("overflows"));
        assert!(infer(&pool(i64::MIN), &[&f32s(&[1, 1, 4])]).unwrap_err().contains("at least 1"));
        let sym = TensorType::new(DType::F32, [Dim::from(1), Dim::from(1), Dim::sym("n")]);
        let unit = Op::Pool {
            kind: PoolKind::Avg,
            kernel: vec![big],
            window: Window::unit(1),
            ceil_mode: false,
            count_include_pad: false,
        };
        assert!(infer(&unit, &[&sym]).is_ok(), "n - (2^63 - 2) is representable");
    }

    #[test]
    fn gather_and_scatter_add_are_adjoint_in_shape() {
        let data = f32s(&[5, 6]);
        let idx = t(DType::I64, &[2, 3]);
        let g = infer(&Op::Gather { axis: 1 }, &[&data, &idx]).unwrap();
        assert_eq!(g[0], f32s(&[5, 2, 3]));
        assert_eq!(infer(&Op::ScatterAdd { axis: 1 }, &[&data, &idx, &g[0]]).unwrap()[0], data);
    }

    #[test]
    fn gather_elements_and_nd_shapes() {
        use crate::op::ScatterReduction;
        let data = f32s(&[3, 4]);
        let idx = t(DType::I64, &[2, 4]);
        assert_eq!(infer(&Op::GatherElements { axis: 0 }, &[&data, &idx]).unwrap()[0], f32s(&[2, 4]));
        let e = infer(&Op::GatherElements { axis: 0 }, &[&data, &t(DType::I64, &[2, 5])]).unwrap_err();
        assert!(e.contains("must not be larger"), "{e}");
        let sc = Op::ScatterElements { axis: 0, reduction: ScatterReduction::Add };
        assert_eq!(infer(&sc, &[&data, &idx, &f32s(&[2, 4])]).unwrap()[0], data);
        assert!(infer(&sc, &[&data, &idx, &f32s(&[2, 3])]).unwrap_err().contains("updates"));
        let d3 = f32s(&[2, 3, 4]);
        let nd = t(DType::I64, &[2, 5, 1]);
        assert_eq!(infer(&Op::GatherNd { batch_dims: 1 }, &[&d3, &nd]).unwrap()[0], f32s(&[2, 5, 4]));
        assert_eq!(infer(&Op::GatherNd { batch_dims: 0 }, &[&d3, &nd]).unwrap()[0], f32s(&[2, 5, 3, 4]));
        let too_long = t(DType::I64, &[2, 3]);
        assert!(infer(&Op::GatherNd { batch_dims: 1 }, &[&d3, &too_long]).unwrap_err().contains("index length"));
        let snd = Op::ScatterNd { reduction: ScatterReduction::None };
        let idx2 = t(DType::I64, &[5, 2]);
        assert_eq!(infer(&snd, &[&d3, &idx2, &f32s(&[5, 4])]).unwrap()[0], d3);
        assert!(infer(&snd, &[&d3, &idx2, &f32s(&[5, 3])]).unwrap_err().contains("gather_nd"));
    }
}
