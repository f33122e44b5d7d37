//! Gradients of the collectives. Each rank's adjoint is combined across the ranks, so the
//! backward of a collective is again a collective:
//!
//! - `all_reduce {sum}` → `all_reduce {sum}` of the adjoints; `{mean}` → `all_reduce {mean}`;
//! - `all_reduce {max|min}` → the summed adjoint to the ranks that hold the extreme, **ties
//!   shared equally** (as `reduce_max`);
//! - `all_gather` → `reduce_scatter {sum}` along the same axis;
//! - `reduce_scatter {sum}` → `all_gather`; `{mean}` → `all_gather` divided by the world;
//!   `{max|min}` as `all_reduce`'s, on the gathered parts;
//! - `broadcast`: unsupported (its adjoint is the sum on the root and zero elsewhere, which needs
//!   the rank's own index, and no graph value holds that).

use super::{Grads, NodeCtx};
use crate::util::{RuleError, R};
use nnc_ir::{BinaryOp, Collective, CollectiveReduce, GraphBuilder, Op, ValueId};

pub(crate) fn collective(b: &mut GraphBuilder, n: &NodeCtx, c: &Collective) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let (x, y) = (n.inputs[0], n.outputs[0]);
    let apply = |b: &mut GraphBuilder, c: Collective, v: ValueId| b.op1(Op::Collective(c), &[v]);
    let grad = match *c {
        Collective::AllReduce { op: op @ (CollectiveReduce::Sum | CollectiveReduce::Mean), world } => {
            apply(b, Collective::AllReduce { op, world }, g)?
        }
        Collective::AllReduce { world, .. } => {
            let total = apply(b, Collective::AllReduce { op: CollectiveReduce::Sum, world }, g)?;
            share_among_extremes(b, x, y, total, world)?
        }
        Collective::AllGather { axis, world } => {
            apply(b, Collective::ReduceScatter { op: CollectiveReduce::Sum, axis, world }, g)?
        }
        Collective::ReduceScatter { op, axis, world } => {
            let gathered = apply(b, Collective::AllGather { axis, world }, g)?;
            match op {
                CollectiveReduce::Sum => gathered,
                CollectiveReduce::Mean => b.binary_scalar(BinaryOp::Div, gathered, world as f64)?,
                CollectiveReduce::Max | CollectiveReduce::Min => {
                    let whole = apply(b, Collective::AllGather { axis, world }, y)?;
                    share_among_extremes(b, x, whole, gathered, world)?
                }
            }
        }
        Collective::Broadcast { .. } => {
            return Err(RuleError::Unsupported(
                "the gradient of `broadcast` (the adjoints' sum on the root rank, zero on the others) needs the \
                 rank's own index, which no graph value holds"
                    .into(),
            ))
        }
    };
    Ok(vec![Some(grad)])
}

/// `total` on the ranks whose `x` equals the reduced `extreme`, split equally among them, and
/// zero elsewhere.
fn share_among_extremes(
    b: &mut GraphBuilder,
    x: ValueId,
    extreme: ValueId,
    total: ValueId,
    world: usize,
) -> R<ValueId> {
    let dtype = b.ty(x).dtype;
    let hit = b.binary(BinaryOp::Eq, x, extreme)?;
    let mask = b.cast(hit, dtype)?;
    let holders = b.op1(Op::Collective(Collective::AllReduce { op: CollectiveReduce::Sum, world }), &[mask])?;
    let share = b.div(total, holders)?;
    Ok(b.mul(share, mask)?)
}
