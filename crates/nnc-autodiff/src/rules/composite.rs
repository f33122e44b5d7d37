//! Composites: softmax and log-softmax have direct rules (shorter and better conditioned than
//! their expansion's); the others are differentiated through their expansion
//! (`nnc_ir::composite::expand`), which is re-emitted into the backward graph (recomputing the
//! forward intermediates the rules need) and then walked backwards like any subgraph.

use super::{Grads, NodeCtx};
use crate::util::R;
use nnc_ir::composite::expand;
use nnc_ir::{GraphBuilder, ValueId};

/// `y = softmax(x)`: `dx = y · (g - Σ_axis g·y)`.
pub(crate) fn softmax(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let y = n.outputs[0];
    let g = n.grad(b, 0)?;
    let gy = b.mul(g, y)?;
    let s = b.reduce_sum(gy, &[axis as i64], true)?;
    let d = b.sub(g, s)?;
    Ok(vec![Some(b.mul(y, d)?)])
}

/// `y = log_softmax(x)`: `dx = g - exp(y) · Σ_axis g`.
pub(crate) fn log_softmax(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let y = n.outputs[0];
    let g = n.grad(b, 0)?;
    let s = b.reduce_sum(g, &[axis as i64], true)?;
    let p = b.exp(y)?;
    let ps = b.mul(p, s)?;
    Ok(vec![Some(b.sub(g, ps)?)])
}

/// Re-emits the composite's expansion on the same operands, then back-propagates the results'
/// adjoints through it.
pub(crate) fn through_expansion(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    let start = b.graph().nodes.len();
    let outs = expand(n.op, b, n.inputs)?.ok_or_else(|| {
        crate::util::RuleError::Unsupported(format!("`{}` is not a composite with an expansion", n.op.name()))
    })?;
    let end = b.graph().nodes.len();
    let seeds: Vec<(ValueId, ValueId)> = outs.iter().zip(n.grads).filter_map(|(&o, g)| g.map(|g| (o, g))).collect();
    let sources: Vec<ValueId> = n.inputs.iter().zip(n.needs).filter(|(_, &need)| need).map(|(&v, _)| v).collect();
    let adj = crate::backprop(b, start..end, &seeds, &sources)?;
    // An operand used twice (attention(q, q, q)) has one adjoint: give it to the first use only.
    let mut out = Vec::with_capacity(n.inputs.len());
    for (i, v) in n.inputs.iter().enumerate() {
        let first = n.inputs.iter().position(|u| u == v) == Some(i);
        out.push(if first && n.needs[i] { adj.get(v).copied() } else { None });
    }
    Ok(out)
}
