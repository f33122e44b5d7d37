//! Element-wise and N-d gathers and scatters: `GatherElements`, `ScatterElements` (and the
//! deprecated `Scatter`), `GatherND`, `ScatterND`, each one IR op.

use super::{Fail, NodeCx, Out};
use nnc_ir::shape::normalize_axis;
use nnc_ir::{Op, ScatterReduction};

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
