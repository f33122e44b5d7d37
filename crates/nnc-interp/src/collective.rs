//! The reference meaning of the collectives (`nnc_ir::collective`): given every rank's operand,
//! every rank's result.
//!
//! Reductions fold the ranks in rank order with the interpreter's own elementwise ops (so a sum
//! of `f32` values rounds after each addition, `max` of `u64` compares unsigned, integers wrap);
//! `mean` is that sum divided by the world size. An engine may combine ranks in another order,
//! so float sums over more than two ranks can differ from this by rounding.

use crate::elementwise as ew;
use crate::movement;
use crate::value::{internal, Data, Value};
use nnc_ir::{BinaryOp, Collective, CollectiveReduce};

/// The results of collective `c`, one per rank, from the operands `xs` (one per rank, in rank
/// order). `out` is the result shape of rank 0 (every rank's is the same).
pub fn run(c: &Collective, xs: &[&Value], out: &[usize]) -> Result<Vec<Value>, String> {
    if xs.len() != c.world() {
        return Err(format!(
            "spans {} ranks but the program runs on {} (`nnc_interp::run_ranks` runs several in one process)",
            c.world(),
            xs.len()
        ));
    }
    let first = xs.first().ok_or_else(|| internal("a collective over no ranks"))?;
    for (r, x) in xs.iter().enumerate() {
        if x.dtype != first.dtype || x.shape != first.shape {
            return Err(format!(
                "rank {r}'s operand is {}{:?} but rank 0's is {}{:?}: every rank must pass the same type",
                x.dtype, x.shape, first.dtype, first.shape
            ));
        }
    }
    match *c {
        Collective::AllReduce { op, world } => {
            let v = reduce(op, xs)?;
            Ok(vec![v; world])
        }
        Collective::AllGather { axis, world } => {
            let v = movement::concat(xs, axis, out)?;
            Ok(vec![v; world])
        }
        Collective::ReduceScatter { op, axis, world } => {
            let whole = reduce(op, xs)?;
            let part = out[axis] as i64;
            (0..world as i64)
                .map(|r| movement::slice(&whole, &[axis], &[r * part], &[(r + 1) * part], &[1], out))
                .collect()
        }
        Collective::Broadcast { root, world } => Ok(vec![xs[root].clone(); world]),
    }
}

/// `op` over the ranks' operands, elementwise, folded in rank order.
fn reduce(op: CollectiveReduce, xs: &[&Value]) -> Result<Value, String> {
    let binary = match op {
        CollectiveReduce::Sum | CollectiveReduce::Mean => BinaryOp::Add,
        CollectiveReduce::Max => BinaryOp::Max,
        CollectiveReduce::Min => BinaryOp::Min,
    };
    let (first, rest) = xs.split_first().ok_or_else(|| internal("a reduction over no ranks"))?;
    let mut acc = (*first).clone();
    for x in rest {
        acc = ew::binary(binary, &acc, x, &first.shape)?;
    }
    if op == CollectiveReduce::Mean {
        let Data::Float(_) = acc.data else { return Err(internal("mean of a non-float")) };
        let world = Value::float(acc.dtype, vec![], vec![xs.len() as f64]);
        acc = ew::binary(BinaryOp::Div, &acc, &world, &first.shape)?;
    }
    Ok(acc)
}
