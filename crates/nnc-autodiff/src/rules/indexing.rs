//! Gathers and scatters. Index operands never have a gradient.

use super::{Grads, NodeCtx};
use crate::concrete;
use crate::util::{full, mask, zeros_like, R};
use nnc_ir::{BinaryOp, DType, GraphBuilder, Op, ScatterReduction, TensorData, ValueId};

pub(crate) fn gather(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let zeros = zeros_like(b, n.inputs[0])?;
    let gx = b.op1(Op::ScatterAdd { axis }, &[zeros, n.inputs[1], g])?;
    Ok(vec![Some(gx), None])
}

pub(crate) fn scatter_add(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let gu = if n.needs[2] { Some(b.gather(g, n.inputs[1], axis as i64)?) } else { None };
    Ok(vec![Some(g), None, gu])
}

pub(crate) fn gather_elements(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let zeros = zeros_like(b, n.inputs[0])?;
    let gx = b.op1(Op::ScatterElements { axis, reduction: ScatterReduction::Add }, &[zeros, n.inputs[1], g])?;
    Ok(vec![Some(gx), None])
}

pub(crate) fn gather_nd(b: &mut GraphBuilder, n: &NodeCtx, batch_dims: usize) -> R<Grads> {
    let (data, idx) = (n.inputs[0], n.inputs[1]);
    let g = n.grad(b, 0)?;
    // Batch axes become leading index columns, so scatter_nd (which has no batch axes) applies.
    let idx = if batch_dims == 0 {
        idx
    } else {
        let it = b.ty(idx).clone();
        let q = it.rank();
        let mut prefix = it.shape[..q - 1].to_vec();
        prefix.push(1.into());
        let mut cols = Vec::new();
        for k in 0..batch_dims {
            cols.push(b.iota(it.dtype, prefix.clone(), k as i64)?);
        }
        cols.push(idx);
        b.concat(&cols, (q - 1) as i64)?
    };
    let zeros = zeros_like(b, data)?;
    let gx = b.op1(Op::ScatterNd { reduction: ScatterReduction::Add }, &[zeros, idx, g])?;
    Ok(vec![Some(gx), None])
}

/// Which pair of gather and scatter ops a scatter rule uses.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Elements(usize),
    Nd,
}

impl Kind {
    fn gather(self, b: &mut GraphBuilder, data: ValueId, idx: ValueId) -> R<ValueId> {
        Ok(match self {
            Kind::Elements(axis) => b.op1(Op::GatherElements { axis }, &[data, idx])?,
            Kind::Nd => b.op1(Op::GatherNd { batch_dims: 0 }, &[data, idx])?,
        })
    }

    fn scatter(
        self,
        b: &mut GraphBuilder,
        data: ValueId,
        idx: ValueId,
        upd: ValueId,
        reduction: ScatterReduction,
    ) -> R<ValueId> {
        Ok(match self {
            Kind::Elements(axis) => b.op1(Op::ScatterElements { axis, reduction }, &[data, idx, upd])?,
            Kind::Nd => b.op1(Op::ScatterNd { reduction }, &[data, idx, upd])?,
        })
    }
}

/// `scatter_elements` and `scatter_nd` with each reduction.
pub(crate) fn scatter(b: &mut GraphBuilder, n: &NodeCtx, kind: Kind, reduction: ScatterReduction) -> R<Grads> {
    let (data, idx, upd, y) = (n.inputs[0], n.inputs[1], n.inputs[2], n.outputs[0]);
    let g = n.grad(b, 0)?;
    let dtype = b.ty(data).dtype;
    let (gd, gu) = match reduction {
        ScatterReduction::Add => {
            let gu = if n.needs[2] { Some(kind.gather(b, g, idx)?) } else { None };
            (Some(g), gu)
        }
        ScatterReduction::None => {
            // Overwritten positions of data get nothing; each update gets its gradient only if it
            // is the one written (the last in row-major order wins).
            let gd = if n.needs[0] {
                let z = zeros_like(b, upd)?;
                Some(kind.scatter(b, g, idx, z, ScatterReduction::None)?)
            } else {
                None
            };
            let gu = if n.needs[2] {
                let ut = b.ty(upd).clone();
                let dims = concrete(&ut.shape, "the update gradient of a scatter with reduction none")?;
                let count: i64 = dims.iter().product();
                let ids: Vec<i64> = (0..count).collect();
                let pos = b.constant(TensorData::from_vec(dims.iter().map(|&d| d as usize).collect(), &ids));
                let dshape = b.ty(data).shape.clone();
                let none = full(b, DType::I64, &dshape, -1.0)?;
                let winner = kind.scatter(b, none, idx, pos, ScatterReduction::None)?;
                let written = kind.gather(b, winner, idx)?;
                let mine = b.binary(BinaryOp::Eq, written, pos)?;
                let gg = kind.gather(b, g, idx)?;
                Some(mask(b, mine, gg, true)?)
            } else {
                None
            };
            (gd, gu)
        }
        ScatterReduction::Mul => {
            // y = data · Π updates at the position: d/d data = Π updates; d/d update = y / update
            // (undefined where an update is zero).
            let gd = if n.needs[0] {
                let ones = full(b, dtype, &b.ty(data).shape.clone(), 1.0)?;
                let prods = kind.scatter(b, ones, idx, upd, ScatterReduction::Mul)?;
                Some(b.mul(g, prods)?)
            } else {
                None
            };
            let gu = if n.needs[2] {
                let gy = b.mul(g, y)?;
                let at = kind.gather(b, gy, idx)?;
                Some(b.div(at, upd)?)
            } else {
                None
            };
            (gd, gu)
        }
        ScatterReduction::Max | ScatterReduction::Min => {
            // The gradient goes to whatever equals the result; ties share it equally.
            let hit_d = b.binary(BinaryOp::Eq, data, y)?;
            let hit_d = b.cast(hit_d, dtype)?;
            let yu = kind.gather(b, y, idx)?;
            let hit_u = b.binary(BinaryOp::Eq, upd, yu)?;
            let hit_u = b.cast(hit_u, dtype)?;
            let zeros = zeros_like(b, data)?;
            let hits = kind.scatter(b, zeros, idx, hit_u, ScatterReduction::Add)?;
            let count = b.add(hit_d, hits)?;
            let share = b.div(g, count)?;
            let gd = if n.needs[0] { Some(b.mul(share, hit_d)?) } else { None };
            let gu = if n.needs[2] {
                let s = kind.gather(b, share, idx)?;
                Some(b.mul(s, hit_u)?)
            } else {
                None
            };
            (gd, gu)
        }
    };
    Ok(vec![gd, None, gu])
}
