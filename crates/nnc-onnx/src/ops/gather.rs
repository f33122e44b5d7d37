//! Element-wise and N-d gathers and scatters: `GatherElements`, `ScatterElements` (and the
//! deprecated `Scatter`), `GatherND`, `ScatterND`, each one IR op; `ReverseSequence`, a
//! `GatherElements` by computed indices.

use super::{Fail, NodeCx, Out};
use nnc_ir::shape::normalize_axis;
use nnc_ir::{BinaryOp, DType, Dim, Op, ScatterReduction};

/// The `reduction` attribute (`none` when absent).
fn reduction(cx: &NodeCx) -> Result<ScatterReduction, Fail> {
    let name = cx.attr_string("reduction")?.unwrap_or_else(|| "none".into());
    ScatterReduction::from_name(&name)
        .ok_or_else(|| format!("reduction = `{name}` is not supported (none, add, mul, max, min)").into())
}

/// `GatherElements(data, indices)`.
pub fn gather_elements(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let (data, idx) = (cx.input(0)?, cx.input(1)?);
    let axis = normalize_axis(cx.attr_int_or("axis", 0)?, cx.rank(data))?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::GatherElements { axis }, &[data, idx])?)])
}

/// `ScatterElements(data, indices, updates)` and the deprecated `Scatter` (no reduction).
pub fn scatter_elements(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "reduction"])?;
    let (data, idx, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let axis = normalize_axis(cx.attr_int_or("axis", 0)?, cx.rank(data))?;
    let reduction = reduction(cx)?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::ScatterElements { axis, reduction }, &[data, idx, upd])?)])
}

/// `GatherND(data, indices)`.
pub fn gather_nd(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["batch_dims"])?;
    let (data, idx) = (cx.input(0)?, cx.input(1)?);
    let batch_dims = cx.attr_int_or("batch_dims", 0)?;
    let batch_dims = usize::try_from(batch_dims).map_err(|_| format!("batch_dims {batch_dims} is negative"))?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::GatherNd { batch_dims }, &[data, idx])?)])
}

/// `ScatterND(data, indices, updates)`.
pub fn scatter_nd(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["reduction"])?;
    let (data, idx, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let reduction = reduction(cx)?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::ScatterNd { reduction }, &[data, idx, upd])?)])
}

/// `ReverseSequence(input, sequence_lens)`: along `time_axis`, the first `sequence_lens[b]`
/// elements of each batch entry `b` (along `batch_axis`) reversed, the rest kept: a
/// `GatherElements` by `t < len ? len - 1 - t : t`.
pub fn reverse_sequence(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["batch_axis", "time_axis"])?;
    let (x, lens) = (cx.input(0)?, cx.input(1)?);
    let rank = cx.rank(x);
    let batch_axis = normalize_axis(cx.attr_int_or("batch_axis", 1)?, rank)?;
    let time_axis = normalize_axis(cx.attr_int_or("time_axis", 0)?, rank)?;
    if rank < 2 || batch_axis == time_axis || batch_axis > 1 || time_axis > 1 {
        return Err(format!(
            "batch_axis and time_axis must be 0 and 1 in some order, of a rank-2+ input ({})",
            cx.ty(x)
        )
        .into());
    }
    let shape = cx.ty(x).shape;
    let t = cx.b.iota(DType::I64, shape.clone(), time_axis as i64)?;
    let lens_shape: Vec<Dim> =
        (0..rank).map(|a| if a == batch_axis { shape[a].clone() } else { Dim::from(1usize) }).collect();
    let lens = cx.b.cast(lens, DType::I64)?;
    let lens = cx.b.reshape(lens, lens_shape)?;
    let inside = cx.b.binary(BinaryOp::Lt, t, lens)?;
    let last = cx.b.binary_scalar(BinaryOp::Sub, lens, 1.0)?;
    let reversed = cx.b.sub(last, t)?;
    let idx = cx.b.select(inside, reversed, t)?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::GatherElements { axis: time_axis }, &[x, idx])?)])
}
