//! Composite ops and their expansion into primitives.
//!
//! A composite (softmax, layer norm, attention, ...) means exactly what its expansion computes:
//! the interpreter runs the expansion, and backends see it after [`decompose`] unless they
//! recognise the composite first. Keeping the definition in one place means every backend and
//! the gradient rules agree on it.

use crate::op::{BinaryOp, GeluApprox, ReduceKind, UnaryOp};
use crate::{DType, Dim, Graph, GraphBuilder, IrError, Op, ValueId};
use std::collections::HashMap;

mod recurrent;

/// Appends the expansion of composite `op` applied to `inputs` to `b` and returns its results;
/// `None` if `op` is a primitive.
pub fn expand(op: &Op, b: &mut GraphBuilder, inputs: &[ValueId]) -> Result<Option<Vec<ValueId>>, IrError> {
    let out = match op {
        Op::Softmax { axis } => softmax(b, inputs[0], *axis, false)?,
        Op::LogSoftmax { axis } => softmax(b, inputs[0], *axis, true)?,
        Op::LayerNorm { axis, epsilon } => layer_norm(b, inputs, *axis, *epsilon)?,
        Op::BatchNorm { epsilon } => batch_norm(b, inputs, *epsilon)?,
        Op::Gelu { approximate } => gelu(b, inputs[0], *approximate)?,
        Op::Attention { scale, causal } => attention(b, inputs, *scale, *causal)?,
        Op::Recurrent { .. } => return recurrent::expand(op, b, inputs).map(Some),
        Op::Constant(_)
        | Op::Collective(_)
        | Op::Iota { .. }
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Select
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::TopK { .. }
        | Op::Cumulative { .. }
        | Op::MatMul
        | Op::Conv { .. }
        | Op::ConvTranspose { .. }
        | Op::Pool { .. }
        | Op::ArgMaxPool { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::GatherElements { .. }
        | Op::Resize(_)
        | Op::ScatterElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterNd { .. } => return Ok(None),
    };
    Ok(Some(vec![out]))
}

/// Rewrites every composite node of `graph` into primitives. Value names of the composites'
/// results are kept, so a dump before and after can be compared by name.
pub fn decompose(graph: &Graph) -> Result<Graph, IrError> {
    let mut b = GraphBuilder::new(&graph.name);
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &id in &graph.inputs {
        let v = graph.value(id);
        map.insert(id, b.input(&v.name, v.ty.dtype, v.ty.shape.clone())?);
    }
    let mut renames = Vec::new();
    for node in &graph.nodes {
        let inputs: Vec<ValueId> = node.inputs.iter().map(|v| map[v]).collect();
        let outputs = match expand(&node.op, &mut b, &inputs)? {
            Some(outs) => outs,
            None => b.op(node.op.clone(), &inputs)?,
        };
        for (&old, &new) in node.outputs.iter().zip(&outputs) {
            map.insert(old, new);
            renames.push((new, graph.name_of(old).to_string()));
        }
    }
    // Give results their original names; auto-generated names of the expansion's inner values
    // may collide with them, so those are moved aside first.
    let taken: std::collections::HashSet<&str> = renames.iter().map(|(_, n)| n.as_str()).collect();
    let inner: Vec<ValueId> = (0..b.graph().values.len() as u32)
        .map(ValueId)
        .filter(|v| taken.contains(b.graph().name_of(*v)) && !renames.iter().any(|(r, _)| r == v))
        .collect();
    for (k, v) in inner.into_iter().enumerate() {
        b.set_name(v, &format!("decomposed{k}"))?;
    }
    // Two steps, because a result may currently hold a name another result is about to take.
    let moving: Vec<&(ValueId, String)> = renames.iter().filter(|(v, name)| b.graph().name_of(*v) != name).collect();
    for (k, (v, _)) in moving.iter().enumerate() {
        b.set_name(*v, &format!("decompose_tmp{k}"))?;
    }
    for (v, name) in moving {
        b.set_name(*v, name)?;
    }
    for id in &graph.outputs {
        b.output(map[id]);
    }
    b.finish()
}

fn softmax(b: &mut GraphBuilder, x: ValueId, axis: usize, log: bool) -> Result<ValueId, IrError> {
    let axes = [axis as i64];
    // Subtracting the maximum keeps exp from overflowing; it cancels out mathematically.
    let m = b.reduce(ReduceKind::Max, x, &axes, true)?;
    let shifted = b.sub(x, m)?;
    let e = b.exp(shifted)?;
    let s = b.reduce_sum(e, &axes, true)?;
    if log {
        let ls = b.log(s)?;
        b.sub(shifted, ls)
    } else {
        b.div(e, s)
    }
}

fn layer_norm(b: &mut GraphBuilder, inputs: &[ValueId], axis: usize, epsilon: f64) -> Result<ValueId, IrError> {
    let (x, scale, bias) = (inputs[0], inputs[1], inputs[2]);
    let axes: Vec<i64> = (axis as i64..b.ty(x).rank() as i64).collect();
    let mean = b.reduce_mean(x, &axes, true)?;
    let centered = b.sub(x, mean)?;
    let sq = b.mul(centered, centered)?;
    let var = b.reduce_mean(sq, &axes, true)?;
    let var_eps = b.binary_scalar(BinaryOp::Add, var, epsilon)?;
    let inv = b.unary(UnaryOp::Rsqrt, var_eps)?;
    let normed = b.mul(centered, inv)?;
    let scaled = b.mul(normed, scale)?;
    b.add(scaled, bias)
}

fn batch_norm(b: &mut GraphBuilder, inputs: &[ValueId], epsilon: f64) -> Result<ValueId, IrError> {
    let x = inputs[0];
    let rank = b.ty(x).rank();
    // Parameters are per channel (axis 1): reshape [C] to [C, 1, ..., 1] to broadcast.
    let mut per_channel = Vec::new();
    for &p in &inputs[1..] {
        let mut shape = b.ty(p).shape.clone();
        shape.extend(std::iter::repeat_n(Dim::constant(1), rank - 2));
        per_channel.push(b.reshape(p, shape)?);
    }
    let [scale, bias, mean, var] = per_channel[..] else { unreachable!("batch_norm has five operands") };
    let var_eps = b.binary_scalar(BinaryOp::Add, var, epsilon)?;
    let inv = b.unary(UnaryOp::Rsqrt, var_eps)?;
    let factor = b.mul(scale, inv)?;
    let centered = b.sub(x, mean)?;
    let scaled = b.mul(centered, factor)?;
    b.add(scaled, bias)
}

fn gelu(b: &mut GraphBuilder, x: ValueId, approximate: GeluApprox) -> Result<ValueId, IrError> {
    let inner = match approximate {
        // erf(x / sqrt(2))
        GeluApprox::None => {
            let scaled = b.binary_scalar(BinaryOp::Mul, x, std::f64::consts::FRAC_1_SQRT_2)?;
            b.unary(UnaryOp::Erf, scaled)?
        }
        // tanh(sqrt(2/pi) * (x + 0.044715 x^3))
        GeluApprox::Tanh => {
            let x2 = b.mul(x, x)?;
            let x3 = b.mul(x2, x)?;
            let cubic = b.binary_scalar(BinaryOp::Mul, x3, 0.044715)?;
            let sum = b.add(x, cubic)?;
            let scaled = b.binary_scalar(BinaryOp::Mul, sum, (2.0 / std::f64::consts::PI).sqrt())?;
            b.tanh(scaled)?
        }
    };
    let one_plus = b.binary_scalar(BinaryOp::Add, inner, 1.0)?;
    let half_x = b.binary_scalar(BinaryOp::Mul, x, 0.5)?;
    b.mul(half_x, one_plus)
}

fn attention(b: &mut GraphBuilder, inputs: &[ValueId], scale: Option<f64>, causal: bool) -> Result<ValueId, IrError> {
    let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
    let q_ty = b.ty(q).clone();
    let scale = match scale {
        Some(s) => s,
        None => {
            let d = q_ty.shape[q_ty.rank() - 1].as_const().filter(|&d| d > 0).ok_or_else(|| IrError::Build {
                at: "attention expansion".into(),
                op: "attention".into(),
                message: format!("the default scale 1/sqrt(d) needs a concrete head size; q is {q_ty}"),
            })?;
            1.0 / (d as f64).sqrt()
        }
    };
    let kt = b.transpose_last2(k)?;
    let scores = b.matmul(q, kt)?;
    let mut scores = b.binary_scalar(BinaryOp::Mul, scores, scale)?;
    if causal {
        // Query i may attend to keys 0..=i (top-left aligned, as PyTorch's is_causal).
        let s_ty = b.ty(scores).clone();
        let (lq, lk) = (s_ty.shape[s_ty.rank() - 2].clone(), s_ty.shape[s_ty.rank() - 1].clone());
        let rows = b.iota(DType::I64, vec![lq.clone(), lk.clone()], 0)?;
        let cols = b.iota(DType::I64, vec![lq, lk], 1)?;
        let allowed = b.binary(BinaryOp::Le, cols, rows)?;
        let neg_inf = b.scalar(s_ty.dtype, f64::NEG_INFINITY);
        scores = b.select(allowed, scores, neg_inf)?;
    }
    if let Some(&mask) = inputs.get(3) {
        scores = b.add(scores, mask)?;
    }
    // Expand softmax here too (not `b.softmax`, a composite), so `decompose` leaves only primitives.
    let last = b.ty(scores).rank() - 1;
    let probs = softmax(b, scores, last, false)?;
    b.matmul(probs, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompose_leaves_only_primitives_and_keeps_names() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, [2, 5]).unwrap();
        let y = b.softmax(x, -1).unwrap();
        b.set_name(y, "probs").unwrap();
        let z = b.gelu(y, GeluApprox::Tanh).unwrap();
        b.output(z);
        let g = b.finish().unwrap();
        let d = decompose(&g).unwrap();
        assert!(d.nodes.iter().all(|n| !n.op.is_composite()));
        assert!(d.find("probs").is_some());
        assert_eq!(d.ty(d.outputs[0]), g.ty(g.outputs[0]));
    }

    #[test]
    fn decomposed_attention_has_no_composites_left() {
        let mut b = GraphBuilder::new("g");
        let q = b.input("q", DType::F32, [2, 4, 8]).unwrap();
        let y = b.attention(q, q, q, None, None, true).unwrap();
        b.output(y);
        let d = decompose(&b.finish().unwrap()).unwrap();
        let left: Vec<&str> = d.nodes.iter().filter(|n| n.op.is_composite()).map(|n| n.op.name()).collect();
        assert!(left.is_empty(), "still composite: {left:?}");
    }

    #[test]
    fn attention_default_scale_needs_concrete_head_size() {
        let mut b = GraphBuilder::new("g");
        let q = b.input("q", DType::F32, [Dim::from(4), Dim::sym("d")]).unwrap();
        let y = b.attention(q, q, q, None, None, true).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        assert!(decompose(&g).unwrap_err().to_string().contains("concrete head size"));
    }
}
