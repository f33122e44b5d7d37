//! ONNX reductions (`Reduce*`) and `ArgMax`/`ArgMin`.

use super::{NodeCx, Out};
use nnc_ir::{Op, ReduceKind, UnaryOp};

/// `Reduce*`: axes are an attribute before opset 18 (13 for `ReduceSum`) and an optional input
/// after. No axes means all axes, unless `noop_with_empty_axes` says to do nothing.
pub fn reduce(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes", "keepdims", "noop_with_empty_axes"])?;
    let x = cx.input(0)?;
    let rank = cx.rank(x) as i64;
    let axes = match cx.attr_ints("axes")? {
        Some(a) => Some(a),
        None => cx.opt_const_ints(1)?,
    };
    let keep = cx.attr_int_or("keepdims", 1)? != 0;
    let axes: Vec<i64> = match axes {
        Some(a) if !a.is_empty() => a,
        _ if cx.attr_int_or("noop_with_empty_axes", 0)? != 0 => return Ok(vec![NodeCx::value(x)]),
        _ => (0..rank).collect(),
    };
    let op_type = cx.node.op_type().to_string();
    let (pre, kind): (Option<UnaryOp>, ReduceKind) = match op_type.as_str() {
        "ReduceSum" => (None, ReduceKind::Sum),
        "ReduceMean" => (None, ReduceKind::Mean),
        "ReduceMax" => (None, ReduceKind::Max),
        "ReduceMin" => (None, ReduceKind::Min),
        "ReduceProd" => (None, ReduceKind::Prod),
        "ReduceL1" => (Some(UnaryOp::Abs), ReduceKind::Sum),
        "ReduceL2" | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => (None, ReduceKind::Sum),
        other => return Err(format!("`{other}` is not a reduction").into()),
    };
    let input = match (pre, op_type.as_str()) {
        (Some(u), _) => cx.b.unary(u, x)?,
        (None, "ReduceL2" | "ReduceSumSquare") => cx.b.mul(x, x)?,
        _ => x,
    };
    // Max and min of booleans are "any" and "all": reduce them as 0/1 bytes.
    if cx.ty(x).dtype == nnc_ir::DType::Bool && matches!(kind, ReduceKind::Max | ReduceKind::Min) {
        let bytes = cx.b.cast(x, nnc_ir::DType::U8)?;
        let r = cx.b.reduce(kind, bytes, &axes, keep)?;
        return Ok(vec![NodeCx::value(cx.b.cast(r, nnc_ir::DType::Bool)?)]);
    }
    let y = if op_type == "ReduceLogSumExp" {
        // log(sum(exp(x - m))) + m with m the maximum, so large inputs do not overflow.
        let m = cx.b.reduce(ReduceKind::Max, x, &axes, true)?;
        let zero = cx.scalar(cx.ty(m).dtype, 0.0);
        let m_finite = {
            let is_inf = cx.b.unary(UnaryOp::IsInf, m)?;
            cx.b.select(is_inf, zero, m)?
        };
        let shifted = cx.b.sub(x, m_finite)?;
        let e = cx.b.exp(shifted)?;
        let s = cx.b.reduce_sum(e, &axes, keep)?;
        let l = cx.b.log(s)?;
        let m_out = if keep { m_finite } else { cx.b.reduce(ReduceKind::Max, m_finite, &axes, false)? };
        cx.b.add(l, m_out)?
    } else {
        let r = cx.b.reduce(kind, input, &axes, keep)?;
        match op_type.as_str() {
            "ReduceL2" => cx.b.unary(UnaryOp::Sqrt, r)?,
            "ReduceLogSum" => cx.b.log(r)?,
            _ => r,
        }
    };
    Ok(vec![NodeCx::value(y)])
}

pub fn arg_reduce(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "keepdims", "select_last_index"])?;
    let x = cx.input(0)?;
    let axis = nnc_ir::shape::normalize_axis(cx.attr_int_or("axis", 0)?, cx.rank(x))?;
    let kind = if cx.node.op_type() == "ArgMax" { nnc_ir::ArgKind::Max } else { nnc_ir::ArgKind::Min };
    let op = Op::ArgReduce {
        kind,
        axis,
        keep_dims: cx.attr_int_or("keepdims", 1)? != 0,
        select_last: cx.attr_int_or("select_last_index", 0)? != 0,
    };
    Ok(vec![NodeCx::value(cx.b.op1(op, &[x])?)])
}

/// `TopK(X, K)`: values and `i64` indices of the `K` largest (or smallest) elements along
/// `axis`. `K` (an attribute before opset 10) must be known at import time. The IR always
/// returns them sorted, which `sorted = 0` (any order) allows.
pub fn topk(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "largest", "sorted", "k"])?;
    let x = cx.input(0)?;
    let axis = nnc_ir::shape::normalize_axis(cx.attr_int_or("axis", -1)?, cx.rank(x))?;
    let k = match cx.attr_int("k")? {
        Some(k) if !cx.has_input(1) => k,
        _ => {
            let k = cx.const_ints(1)?;
            match k.as_slice() {
                [k] => *k,
                _ => return Err(format!("K must hold one value, found {k:?}").into()),
            }
        }
    };
    let k = usize::try_from(k).map_err(|_| format!("K = {k} is negative"))?;
    let op = Op::TopK { axis, k, largest: cx.attr_int_or("largest", 1)? != 0 };
    let outs = cx.b.op(op, &[x])?;
    Ok(outs.into_iter().map(NodeCx::value).collect())
}
