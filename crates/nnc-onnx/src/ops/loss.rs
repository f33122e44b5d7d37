//! Loss ops: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`.
//!
//! Both pick each sample's class by a one-hot mask (`labels == iota(C)`) rather than a gather,
//! so labels equal to `ignore_index` (possibly outside `0..C`) simply pick nothing.

use super::{Fail, NodeCx, Out};
use nnc_ir::{BinaryOp, DType, Dim, ReduceKind, ValueId};

/// `loss[n, d...] = -input[n, label[n, d...], d...] * weight[label]`, then reduced.
fn nll(cx: &mut NodeCx, input: ValueId, labels: ValueId, weight: Option<ValueId>) -> Result<ValueId, Fail> {
    cx.only_attrs(&["reduction", "ignore_index"])?;
    let reduction = cx.attr_string("reduction")?.unwrap_or_else(|| "mean".into());
    let ignore = cx.attr_int("ignore_index")?;
    let ty = cx.ty(input);
    if ty.rank() < 2 {
        return Err(format!("input must be [N, C, ...], found {ty}").into());
    }
    let dtype = ty.dtype;
    let labels = match cx.ty(labels).dtype {
        DType::I64 => labels,
        _ => cx.b.cast(labels, DType::I64)?,
    };
    // labels [N, d...] -> [N, 1, d...]; classes [C] -> [1, C, 1...].
    let mut lab_shape = cx.ty(labels).shape;
    if lab_shape.len() + 1 != ty.rank() {
        return Err(format!("labels must be [N, d...] for input {ty}, found {}", cx.ty(labels)).into());
    }
    lab_shape.insert(1, Dim::constant(1));
    let lab = cx.b.reshape(labels, lab_shape)?;
    let mut class_shape = vec![Dim::constant(1); ty.rank()];
    class_shape[1] = ty.shape[1].clone();
    let classes = cx.b.iota(DType::I64, class_shape, 1)?;
    let onehot = cx.b.binary(BinaryOp::Eq, lab, classes)?;
    let zero = cx.scalar(dtype, 0.0);
    let masked = cx.b.select(onehot, input, zero)?;
    let picked = cx.b.reduce_sum(masked, &[1], false)?;
    let mut w = match weight {
        Some(weight) => {
            let mut wshape = vec![Dim::constant(1); ty.rank()];
            wshape[1] = ty.shape[1].clone();
            let wb = cx.b.reshape(weight, wshape)?;
            let wm = cx.b.select(onehot, wb, zero)?;
            cx.b.reduce_sum(wm, &[1], false)?
        }
        None => {
            let one = cx.scalar(dtype, 1.0);
            let shape = cx.ty(picked).shape;
            cx.b.expand(one, shape)?
        }
    };
    if let Some(ignore) = ignore {
        let ig = cx.scalar(DType::I64, ignore as f64);
        let valid = cx.b.binary(BinaryOp::Ne, labels, ig)?;
        w = cx.b.select(valid, w, zero)?;
    }
    let weighted = cx.b.mul(picked, w)?;
    let loss = cx.b.unary(nnc_ir::UnaryOp::Neg, weighted)?;
    let all: Vec<i64> = (0..cx.rank(loss) as i64).collect();
    Ok(match reduction.as_str() {
        "none" => loss,
        "sum" => cx.b.reduce(ReduceKind::Sum, loss, &all, false)?,
        "mean" => {
            let total = cx.b.reduce(ReduceKind::Sum, loss, &all, false)?;
            let wsum = cx.b.reduce(ReduceKind::Sum, w, &all, false)?;
            cx.b.div(total, wsum)?
        }
        other => return Err(format!("reduction `{other}` is not supported").into()),
    })
}

pub fn nll_loss(cx: &mut NodeCx) -> Out {
    let (input, labels, weight) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2)?);
    Ok(vec![NodeCx::value(nll(cx, input, labels, weight)?)])
}

/// `SoftmaxCrossEntropyLoss`: NLL of `log_softmax(scores, axis 1)`; the second output is the
/// log-probabilities.
pub fn softmax_cross_entropy(cx: &mut NodeCx) -> Out {
    let (scores, labels, weight) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2)?);
    let log_prob = cx.b.log_softmax(scores, 1)?;
    let loss = nll(cx, log_prob, labels, weight)?;
    Ok(vec![NodeCx::value(loss), NodeCx::value(log_prob)])
}
