//! Tensor parallelism for one transformer layer (Megatron-LM's split): the attention heads and
//! the MLP's hidden units are divided among the ranks, so each rank holds `1/world` of the
//! layer's large weights, and two `all_reduce {sum}` per layer combine the partial results.
//!
//! The layer (pre-norm, as GPT-2): `x1 = x + attn(ln1(x))·Wo + bo`,
//! `y = x1 + gelu(ln2(x1)·W1 + c1)·W2 + c2`, with `attn` multi-head attention over `heads`
//! heads. Split over `world` ranks: `Wq Wk Wv` by columns (whole heads per rank), `Wo` by rows,
//! `W1 c1` by columns, `W2` by rows; the norms and the biases `bo c2` are on every rank. The
//! products through `Wo` and `W2` are partial sums, completed by an all-reduce before their bias.

use crate::DistError;
use nnc_ir::{Collective, CollectiveReduce, DType, Dim, GeluApprox, Graph, GraphBuilder, Op, TensorData, ValueId};

/// The layer's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub seq: usize,
    pub dim: usize,
    pub heads: usize,
    pub hidden: usize,
}

/// The weights' names and their whole shapes, in the layer graph's input order (after `x`).
pub fn weight_shapes(s: LayerShape) -> Vec<(&'static str, Vec<usize>)> {
    let (d, f) = (s.dim, s.hidden);
    vec![
        ("ln1_scale", vec![d]),
        ("ln1_bias", vec![d]),
        ("wq", vec![d, d]),
        ("wk", vec![d, d]),
        ("wv", vec![d, d]),
        ("wo", vec![d, d]),
        ("bo", vec![d]),
        ("ln2_scale", vec![d]),
        ("ln2_bias", vec![d]),
        ("w1", vec![d, f]),
        ("c1", vec![f]),
        ("w2", vec![f, d]),
        ("c2", vec![d]),
    ]
}

/// How each weight is divided: by columns (the last axis), by rows (the first), or copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Columns,
    Rows,
    Copied,
}

fn split_of(name: &str) -> Split {
    match name {
        "wq" | "wk" | "wv" | "w1" | "c1" => Split::Columns,
        "wo" | "w2" => Split::Rows,
        _ => Split::Copied,
    }
}

fn check(s: LayerShape, world: usize) -> Result<(), DistError> {
    if world == 0
        || s.heads == 0
        || !s.dim.is_multiple_of(s.heads)
        || !s.heads.is_multiple_of(world)
        || !s.hidden.is_multiple_of(world)
    {
        return Err(DistError::Program(format!(
            "a layer of dim {} with {} heads and {} hidden units does not split over {world} ranks (the heads must divide \
             the dim, and the world must divide the heads and the hidden units)",
            s.dim, s.heads, s.hidden
        )));
    }
    Ok(())
}

/// The layer as one rank of `world` runs it: inputs `x [seq, dim]` then each rank's shard of
/// the weights of [`weight_shapes`]; output `y [seq, dim]`. `world = 1` is the whole layer.
pub fn layer_graph(s: LayerShape, world: usize) -> Result<Graph, DistError> {
    check(s, world)?;
    let mut b = GraphBuilder::new(&format!("transformer_layer_tp{world}"));
    let x = b.input("x", DType::F32, [s.seq, s.dim])?;
    let mut w = std::collections::HashMap::new();
    for (name, shape) in weight_shapes(s) {
        let local = shard_shape(name, &shape, world);
        w.insert(name, b.input(name, DType::F32, local)?);
    }
    let heads = s.heads / world;
    let head_dim = s.dim / s.heads;
    let all_reduce = |b: &mut GraphBuilder, v: ValueId| -> Result<ValueId, nnc_ir::IrError> {
        if world == 1 {
            return Ok(v);
        }
        b.op1(Op::Collective(Collective::AllReduce { op: CollectiveReduce::Sum, world }), &[v])
    };
    let h = b.layer_norm(x, w["ln1_scale"], w["ln1_bias"], -1, 1e-5)?;
    let split_heads = |b: &mut GraphBuilder, v: ValueId| -> Result<ValueId, nnc_ir::IrError> {
        let v = b.reshape(v, vec![Dim::from(s.seq), Dim::from(heads), Dim::from(head_dim)])?;
        b.transpose(v, vec![1, 0, 2])
    };
    let q = b.matmul(h, w["wq"])?;
    let q = split_heads(&mut b, q)?;
    let k = b.matmul(h, w["wk"])?;
    let k = split_heads(&mut b, k)?;
    let v = b.matmul(h, w["wv"])?;
    let v = split_heads(&mut b, v)?;
    let a = b.attention(q, k, v, None, None, false)?;
    let a = b.transpose(a, vec![1, 0, 2])?;
    let a = b.reshape(a, vec![Dim::from(s.seq), Dim::from(heads * head_dim)])?;
    let o = b.matmul(a, w["wo"])?;
    let o = all_reduce(&mut b, o)?;
    let o = b.add(o, w["bo"])?;
    let x1 = b.add(x, o)?;
    let h2 = b.layer_norm(x1, w["ln2_scale"], w["ln2_bias"], -1, 1e-5)?;
    let f = b.matmul(h2, w["w1"])?;
    let f = b.add(f, w["c1"])?;
    let f = b.gelu(f, GeluApprox::None)?;
    let f = b.matmul(f, w["w2"])?;
    let f = all_reduce(&mut b, f)?;
    let f = b.add(f, w["c2"])?;
    let y = b.add(x1, f)?;
    b.set_name(y, "y")?;
    b.output(y);
    Ok(b.finish()?)
}

fn shard_shape(name: &str, shape: &[usize], world: usize) -> Vec<usize> {
    let mut local = shape.to_vec();
    match split_of(name) {
        Split::Columns => {
            if let Some(last) = local.last_mut() {
                *last /= world;
            }
        }
        Split::Rows => local[0] /= world,
        Split::Copied => {}
    }
    local
}

/// Rank `rank`'s shards of the whole weights `whole` (in [`weight_shapes`] order).
pub fn shard_weights(
    s: LayerShape,
    whole: &[TensorData],
    rank: usize,
    world: usize,
) -> Result<Vec<TensorData>, DistError> {
    check(s, world)?;
    let shapes = weight_shapes(s);
    if whole.len() != shapes.len() || rank >= world {
        return Err(DistError::Program(format!(
            "{} weights for rank {rank} of {world}; the layer has {}",
            whole.len(),
            shapes.len()
        )));
    }
    shapes
        .iter()
        .zip(whole)
        .map(|((name, shape), t)| {
            let values = t.to_vec::<f32>().filter(|_| t.shape() == shape.as_slice()).ok_or_else(|| {
                DistError::Program(format!("weight `{name}` must be f32{shape:?}, found {}{:?}", t.dtype(), t.shape()))
            })?;
            let local = shard_shape(name, shape, world);
            let cols = *shape.last().unwrap_or(&1);
            let part: Vec<f32> = match split_of(name) {
                Split::Copied => values,
                Split::Rows => {
                    let per = local[0] * cols;
                    values[rank * per..(rank + 1) * per].to_vec()
                }
                Split::Columns => {
                    let width = *local.last().unwrap_or(&1);
                    values.chunks(cols).flat_map(|row| row[rank * width..(rank + 1) * width].iter().copied()).collect()
                }
            };
            Ok(TensorData::from_vec(local, &part))
        })
        .collect()
}
