//! Lowering: what each primitive Graph IR node computes, as a [`Compute`] definition.
//!
//! [`lower_node`] turns one node with concrete shapes into a function of its output index
//! ([`Compute::Map`]) or, for the few ops with no per-element form, into a sequential program
//! ([`Compute::Program`]). The meaning of every op is the reference interpreter's
//! (`nnc-interp`); the topic modules say how each op's index arithmetic is built:
//!
//! - [`elementwise`]: `unary`, `binary`, `select`, `cast`, `iota`, `constant` (broadcasting);
//! - [`reduce`]: `reduce_*`, `argmax`/`argmin`, `cumulative`, `topk`;
//! - [`movement`]: `reshape`, `transpose`, `expand`, `slice`, `concat`, `pad`;
//! - [`linalg`]: `matmul`, `conv`, `conv_transpose`, `max_pool`/`avg_pool`, `argmax_pool`;
//! - [`indexing`]: `gather`, `gather_elements`, `gather_nd`, `scatter_add`,
//!   `scatter_elements`, `scatter_nd`;
//! - [`resize`]: `resize` (every mode, coordinate mode and nearest mode).
//!
//! Index arithmetic is `i64`; operand loads are row-major multi-indices, one expression per
//! operand axis. Gather-like ops normalize negative indices (`i < 0 ? i + n : i`) but do not
//! clamp: an index outside `[-n, n)` makes an out-of-bounds load, which the Kernel-IR
//! interpreter reports (the graph interpreter reports it as an error too).

mod elementwise;
mod indexing;
mod linalg;
mod movement;
mod reduce;
mod resize;
#[cfg(test)]
mod tests;

use nnc_ir::{BinaryOp, DType, Graph, Op};
use nnc_kernel::expr::{BufId, Expr, Literal, VarGen};
use nnc_kernel::kernel::Compute;

/// Why a node cannot be lowered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node `{node}`: {message}")]
pub struct LowerError {
    /// The node's description, as [`Graph::describe_node`] gives it.
    pub node: String,
    pub message: String,
}

/// What node `node` of `graph` computes, as a function of its output index.
///
/// Requires concrete shapes (every dimension of every operand and result a constant) and a
/// primitive op: composites are expanded first with [`nnc_ir::composite::decompose`]. A
/// composite, a symbolic shape or a node the lowering cannot express is a [`LowerError`]
/// naming the node, never a panic.
///
/// Conventions of the result (see [`Compute`]):
/// - `Compute::Map(e)`: `out[Axis(0), .., Axis(r-1)] = e`; `BufId(k)` is the node's `k`-th
///   operand.
/// - `Compute::Program(stmts)`: operands are `BufId(0..n)`, results `BufId(n..n+m)`; the
///   program writes every element of every result. Used only by `topk` (two results),
///   `scatter_elements` and `scatter_nd` (updates applied in order).
/// - A `constant` node has no operands: it lowers to `Map(load BufId(0))`, where the caller
///   binds **the constant's own data** as buffer 0 (so weights are never copied into code).
/// - `iota` lowers to `cast(Axis(axis))`.
///
/// ```
/// use nnc_ir::{DType, GraphBuilder, TensorData};
/// use nnc_kernel::{Compute, VarGen};
/// use nnc_lower::lower::lower_node;
/// let mut b = GraphBuilder::new("g");
/// let x = b.input("x", DType::F32, [2, 3])?;
/// let s = b.softmax(x, 1)?;
/// let c = b.constant(TensorData::from_vec(vec![2], &[1.0f32, 2.0]));
/// b.output(s);
/// b.output(c);
/// let g = b.finish()?;
/// // A composite is refused, naming the node.
/// let err = lower_node(&g, 0, &mut VarGen::new()).unwrap_err();
/// assert!(err.to_string().contains("softmax"), "{err}");
/// // A constant reads its own data, bound as buffer 0.
/// let c = lower_node(&g, 1, &mut VarGen::new())?;
/// assert_eq!(format!("{c}"), "  map b0[a0]\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lower_node(graph: &Graph, node: usize, vars: &mut VarGen) -> Result<Compute, LowerError> {
    let Some(n) = graph.nodes.get(node) else {
        return Err(LowerError { node: format!("#{node}"), message: "no such node".into() });
    };
    let cx = Ctx::new(graph, node)?;
    if n.op.is_composite() {
        return Err(cx.err(format!(
            "`{}` is a composite; expand it with nnc_ir::composite::decompose before lowering",
            n.op.name()
        )));
    }
    match &n.op {
        Op::Constant(_) | Op::Iota { .. } | Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast { .. } => {
            elementwise::lower(&cx, &n.op)
        }
        Op::Reduce { .. } | Op::ArgReduce { .. } | Op::Cumulative { .. } | Op::TopK { .. } => {
            reduce::lower(&cx, &n.op, vars)
        }
        Op::MatMul | Op::Conv { .. } | Op::ConvTranspose { .. } | Op::Pool { .. } | Op::ArgMaxPool { .. } => {
            linalg::lower(&cx, &n.op, vars)
        }
        Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. } => movement::lower(&cx, &n.op),
        Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::GatherElements { .. }
        | Op::ScatterElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterNd { .. } => indexing::lower(&cx, &n.op, vars),
        Op::Resize(r) => resize::lower(&cx, r, vars),
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::BatchNorm { .. }
        | Op::Gelu { .. }
        | Op::Attention { .. }
        | Op::Recurrent { .. } => Err(cx.err("composite".into())),
        // A collective over one rank is the identity (a reshape to its own shape).
        Op::Collective(c) if c.world() == 1 => {
            let shape = cx.outs[0].1.iter().map(|&d| nnc_ir::Dim::constant(d)).collect();
            movement::lower(&cx, &Op::Reshape { shape })
        }
        Op::Collective(c) => Err(cx.err(format!(
            "`{}` communicates between ranks, which no kernel does: run the graph with nnc-dist, which \
             splits it at its collectives (or with nnc_interp::run_ranks)",
            c.name()
        ))),
    }
}

/// The node being lowered, with its concrete operand and result types.
pub(crate) struct Ctx {
    pub node: String,
    pub ins: Vec<(DType, Vec<i64>)>,
    pub outs: Vec<(DType, Vec<i64>)>,
}

impl Ctx {
    fn new(graph: &Graph, i: usize) -> Result<Ctx, LowerError> {
        let n = &graph.nodes[i];
        let node = graph.describe_node(i);
        let concrete = |ids: &[nnc_ir::ValueId]| -> Result<Vec<(DType, Vec<i64>)>, LowerError> {
            ids.iter()
                .map(|&id| {
                    let ty = graph.values.get(id.index()).map(|v| &v.ty).ok_or_else(|| LowerError {
                        node: node.clone(),
                        message: format!("value {id:?} is not in the graph"),
                    })?;
                    let shape =
                        ty.shape.iter().map(|d| d.as_const()).collect::<Option<Vec<i64>>>().ok_or_else(|| {
                            LowerError {
                                node: node.clone(),
                                message: format!(
                                    "`%{}` has the symbolic type {ty}; lowering needs concrete shapes",
                                    graph.name_of(id)
                                ),
                            }
                        })?;
                    Ok((ty.dtype, shape))
                })
                .collect()
        };
        let ins = concrete(&n.inputs)?;
        let outs = concrete(&n.outputs)?;
        if outs.is_empty() {
            return Err(LowerError { node, message: "the node has no result".into() });
        }
        Ok(Ctx { node, ins, outs })
    }

    pub fn err(&self, message: String) -> LowerError {
        LowerError { node: self.node.clone(), message }
    }

    pub fn in_shape(&self, k: usize) -> Result<&[i64], LowerError> {
        self.ins.get(k).map(|(_, s)| s.as_slice()).ok_or_else(|| self.err(format!("missing operand {k}")))
    }

    pub fn in_dtype(&self, k: usize) -> Result<DType, LowerError> {
        self.ins.get(k).map(|(d, _)| *d).ok_or_else(|| self.err(format!("missing operand {k}")))
    }

    pub fn out_shape(&self) -> &[i64] {
        &self.outs[0].1
    }

    pub fn out_dtype(&self) -> DType {
        self.outs[0].0
    }

    /// A load of operand `k` at `index`.
    pub fn load(&self, k: usize, index: Vec<Expr>) -> Result<Expr, LowerError> {
        Ok(Expr::load(BufId(k as u32), self.in_dtype(k)?, index))
    }
}

// ---------------------------------------------------------------- shared helpers

/// The output axes `a0..a(r-1)`.
pub(crate) fn axes(rank: usize) -> Vec<Expr> {
    (0..rank).map(|a| Expr::Axis(a as u8)).collect()
}

/// The index into an operand of shape `shape` broadcast (numpy rules) to an output of rank
/// `out_rank`: a size-1 axis reads index 0.
pub(crate) fn broadcast_index(shape: &[i64], out_rank: usize) -> Vec<Expr> {
    let lead = out_rank - shape.len();
    shape.iter().enumerate().map(|(k, &d)| if d == 1 { Expr::i64(0) } else { Expr::Axis((lead + k) as u8) }).collect()
}

pub(crate) fn bin(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    Expr::binary(op, a, b)
}

/// `lo <= e < hi` on `i64`, folding what is known (`e` is often `Axis + c`).
pub(crate) fn in_range(e: &Expr, lo: i64, hi: i64) -> Expr {
    Expr::and(bin(BinaryOp::Ge, e.clone(), Expr::i64(lo)), bin(BinaryOp::Lt, e.clone(), Expr::i64(hi)))
}

/// `a && b` folding `true` on either side.
pub(crate) fn and_all(items: impl IntoIterator<Item = Expr>) -> Expr {
    items.into_iter().fold(Expr::bool(true), Expr::and)
}

/// A masked load: `mask` folded to `true` gives a plain load.
pub(crate) fn masked(load: Expr, mask: Expr) -> Expr {
    match (load, mask) {
        (load, Expr::Lit(Literal::Bool(true))) => load,
        (Expr::Load { buf, dtype, index, .. }, mask) => Expr::Load { buf, dtype, index, mask: Some(Box::new(mask)) },
        (other, mask) => Expr::select(mask, other, Expr::Lit(Literal::zero(DType::Bool))),
    }
}

/// `value` converted to `dtype` with `cast` semantics (floats rounded, integers truncated and
/// saturated, `bool` as `!= 0`), as the interpreter converts fill values.
pub(crate) fn literal(value: f64, dtype: DType) -> Expr {
    use nnc_interp::lanes::{float_to_int, round_float};
    Expr::Lit(if dtype.is_float() {
        Literal::Float(round_float(dtype, value), dtype)
    } else if dtype == DType::Bool {
        Literal::Bool(value != 0.0)
    } else {
        Literal::Int(float_to_int(dtype, value), dtype)
    })
}

/// The smallest (`max = false`) or largest value of `dtype`: `-inf`/`+inf` for floats, the
/// range ends for integers (in the `i64` form, `u64` as its bit pattern).
pub(crate) fn extreme(dtype: DType, max: bool) -> Expr {
    if dtype.is_float() {
        return Expr::Lit(Literal::Float(if max { f64::INFINITY } else { f64::NEG_INFINITY }, dtype));
    }
    let (lo, hi): (i64, i64) = match dtype {
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U64 => (0, -1),
        DType::U32 => (0, u32::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    Expr::Lit(Literal::Int(if max { hi } else { lo }, dtype))
}

/// An index operand read as `i64`, negative values counted from the end of an axis of length
/// `n`. Out-of-range values are left as they are (the load then fails bounds checking).
pub(crate) fn normalize_index(idx: Expr, n: i64) -> Expr {
    let i = Expr::cast(DType::I64, idx);
    Expr::select(bin(BinaryOp::Lt, i.clone(), Expr::i64(0)), Expr::add_index(i.clone(), Expr::i64(n)), i)
}

/// Row-major strides.
pub(crate) fn strides(shape: &[i64]) -> Vec<i64> {
    nnc_kernel::kernel::row_major_strides(shape)
}
