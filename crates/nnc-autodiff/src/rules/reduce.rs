//! Reductions, running sums and products, top-k.

use super::{Grads, NodeCtx};
use crate::util::{cumulative, full, inverse_perm, product, reshape, transpose, R};
use nnc_ir::{BinaryOp, CumKind, Dim, GraphBuilder, Op, ReduceKind, ScatterReduction, ValueId};

/// `x`'s shape with the reduced axes set to 1.
fn kept_shape(shape: &[Dim], axes: &[usize]) -> Vec<Dim> {
    shape.iter().enumerate().map(|(a, d)| if axes.contains(&a) { Dim::constant(1) } else { d.clone() }).collect()
}

pub(crate) fn reduce(
    b: &mut GraphBuilder,
    n: &NodeCtx,
    kind: ReduceKind,
    axes: &[usize],
    _keep_dims: bool,
) -> R<Grads> {
    let (x, y) = (n.inputs[0], n.outputs[0]);
    let g = n.grad(b, 0)?;
    let xt = b.ty(x).clone();
    if axes.is_empty() {
        return Ok(vec![Some(g)]);
    }
    let keep = kept_shape(&xt.shape, axes);
    let gk = reshape(b, g, keep.clone())?;
    let iaxes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
    let gx = match kind {
        ReduceKind::Sum => b.expand(gk, xt.shape.clone())?,
        ReduceKind::Mean => {
            let reduced: Vec<Dim> = axes.iter().map(|&a| xt.shape[a].clone()).collect();
            let count = match product(&reduced).as_const() {
                Some(c) => b.scalar(xt.dtype, c as f64),
                None => {
                    let ones = full(b, xt.dtype, &xt.shape, 1.0)?;
                    b.reduce_sum(ones, &iaxes, true)?
                }
            };
            let scaled = b.div(gk, count)?;
            b.expand(scaled, xt.shape.clone())?
        }
        ReduceKind::Max | ReduceKind::Min => {
            // Ties share the gradient equally.
            let yk = reshape(b, y, keep)?;
            let hit = b.binary(BinaryOp::Eq, x, yk)?;
            let hit = b.cast(hit, xt.dtype)?;
            let count = b.reduce_sum(hit, &iaxes, true)?;
            let share = b.div(gk, count)?;
            b.mul(share, hit)?
        }
        ReduceKind::Prod => {
            // The product of the other elements: exclusive running products from both ends, so
            // zeros are handled exactly. The reduced axes are moved last and flattened.
            let rank = xt.rank();
            let kept: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
            let mut sorted = axes.to_vec();
            sorted.sort_unstable();
            let perm: Vec<usize> = kept.iter().copied().chain(sorted.iter().copied()).collect();
            let moved = transpose(b, x, perm.clone())?;
            let moved_shape = b.ty(moved).shape.clone();
            let mut flat_shape: Vec<Dim> = kept.iter().map(|&a| xt.shape[a].clone()).collect();
            let last = flat_shape.len();
            flat_shape.push(product(&sorted.iter().map(|&a| xt.shape[a].clone()).collect::<Vec<_>>()));
            let flat = reshape(b, moved, flat_shape.clone())?;
            let left = cumulative(b, flat, last, CumKind::Prod, true, false)?;
            let right = cumulative(b, flat, last, CumKind::Prod, true, true)?;
            let others = b.mul(left, right)?;
            let mut g_shape = flat_shape[..last].to_vec();
            g_shape.push(Dim::constant(1));
            let gf = reshape(b, g, g_shape)?;
            let gflat = b.mul(others, gf)?;
            let gm = reshape(b, gflat, moved_shape)?;
            transpose(b, gm, inverse_perm(&perm))?
        }
    };
    Ok(vec![Some(gx)])
}

pub(crate) fn cumulative_rule(
    b: &mut GraphBuilder,
    n: &NodeCtx,
    axis: usize,
    kind: CumKind,
    exclusive: bool,
    reverse: bool,
) -> R<Grads> {
    let (x, y) = (n.inputs[0], n.outputs[0]);
    let g = n.grad(b, 0)?;
    // Result i combines the elements of a set S_i; element j feeds every i with j in S_i,
    // which is the same kind of set running the other way.
    let gx = match kind {
        CumKind::Sum => cumulative(b, g, axis, CumKind::Sum, exclusive, !reverse)?,
        CumKind::Prod => {
            let gy = b.mul(g, y)?;
            let s = cumulative(b, gy, axis, CumKind::Sum, exclusive, !reverse)?;
            b.div(s, x)?
        }
    };
    Ok(vec![Some(gx)])
}

/// `topk`: the values' gradient goes back to the positions they came from; indices have none.
pub(crate) fn topk(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let Some(g) = n.grads[0] else { return Ok(n.none()) };
    let zeros = crate::util::zeros_like(b, n.inputs[0])?;
    let gx: ValueId =
        b.op1(Op::ScatterElements { axis, reduction: ScatterReduction::Add }, &[zeros, n.outputs[1], g])?;
    Ok(vec![Some(gx)])
}
