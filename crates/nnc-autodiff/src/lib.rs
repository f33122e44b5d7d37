//! Reverse-mode automatic differentiation as a Graph IR transformation, and training steps.
//!
//! - [`grad`] turns a graph into one that also computes a scalar loss and its gradients with
//!   respect to chosen values; [`backward`] does the same inside a [`GraphBuilder`] being built.
//! - [`train`] builds losses, optimizer updates and a whole [`train::training_step`] (forward,
//!   backward and update in one graph, so a compiled step needs no host round trip).
//!
//! The backward graph is built with [`GraphBuilder`] calls only, so it verifies like any graph
//! and goes through the same optimizer and fusion.
//!
//! # How gradients are formed
//!
//! The pass walks the nodes backwards from the loss, keeping one adjoint per value (contributions
//! are summed with `add`). A node is visited only if one of its results reaches the loss and one
//! of its operands depends on a `wrt` value; only floating-point values carry gradients. Each op's
//! rule lives in [`rules`] (one module per op family) and is reached through one exhaustive
//! `match` over [`Op`], so a new op variant does not compile until it has a rule or is declared
//! non-differentiable. The table of rules, zero-gradient ops and ops without a gradient is in the
//! [`rules`] module documentation.

use nnc_ir::{DType, Dim, Graph, GraphBuilder, IrError, Node, ValueId};
use std::collections::{HashMap, HashSet};
use std::ops::Range;

pub mod rules;
pub mod train;
mod util;

pub use train::{adam, mse, sgd_momentum, softmax_cross_entropy, training_step, Optimizer};

/// Why a gradient graph could not be built. Every variant names the value or node at fault.
#[derive(Debug, thiserror::Error)]
pub enum GradError {
    /// The loss is not a floating-point scalar.
    #[error("the loss `{name}` must be a scalar floating-point value, but it has type {ty}")]
    LossNotScalar { name: String, ty: String },
    /// A value id (or name) that the graph does not hold.
    #[error("{what} is not a value of graph `{graph}`")]
    NotInGraph { what: String, graph: String },
    /// Gradients exist only for floating-point values.
    #[error("cannot differentiate with respect to `{name}`: it has dtype {dtype}, and only floating-point values have gradients")]
    WrtNotFloat { name: String, dtype: DType },
    /// The node's op (or this use of it) has no gradient rule.
    #[error("no gradient for node `{node}`: {reason}")]
    Unsupported { node: String, reason: String },
    /// A gradient rule produced ops the builder rejected (a bug in the rule, or a case it does
    /// not handle); names the node being differentiated.
    #[error("building the gradient of node `{node}`: {source}")]
    Build { node: String, source: IrError },
    /// A rule's result does not have its operand's type (a bug in the rule).
    #[error(
        "internal error: the gradient of node `{node}` for operand {operand} has type {found}, expected {expected}"
    )]
    WrongType { node: String, operand: usize, found: String, expected: String },
    /// Building or finishing the result graph failed.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// A training-step request that does not fit the forward graph.
    #[error("training step: {0}")]
    Train(String),
}

/// `graph` extended to compute `d loss / d w` for each `w` of `wrt`.
///
/// The result has the inputs of `graph`, and as outputs the original outputs, then `loss`, then
/// one gradient per `wrt` value, in order, named `grad_<name>` (with a numeric suffix if that
/// name is taken). `loss` must be a floating-point scalar; every `wrt` value must be a
/// floating-point value of `graph` (an input, a constant or any intermediate value). A `wrt`
/// value the loss does not depend on gets a zero gradient.
pub fn grad(graph: &Graph, loss: ValueId, wrt: &[ValueId]) -> Result<Graph, GradError> {
    let in_graph = |v: ValueId, what: &str| {
        if v.index() < graph.values.len() {
            Ok(())
        } else {
            Err(GradError::NotInGraph { what: format!("{what} {v:?}"), graph: graph.name.clone() })
        }
    };
    in_graph(loss, "the loss")?;
    for &w in wrt {
        in_graph(w, "the `wrt` value")?;
    }
    let mut b = GraphBuilder::new(&graph.name);
    let map = copy_graph(&mut b, graph, &graph.inputs)?;
    let grads = backward(&mut b, map[&loss], &wrt.iter().map(|w| map[w]).collect::<Vec<_>>())?;
    for o in &graph.outputs {
        b.output(map[o]);
    }
    b.output(map[&loss]);
    let mut claimed: HashSet<ValueId> = map.values().copied().collect();
    for (&w, g) in wrt.iter().zip(grads) {
        let g = name_result(&mut b, g, &format!("grad_{}", graph.name_of(w)), &mut claimed)?;
        b.output(g);
    }
    Ok(b.finish()?)
}

/// `graph` with the loss `sum of every element of every floating-point output` and its gradient
/// with respect to `wrt` (by default every floating-point weight: constants of more than one
/// element), as [`grad`] builds it: what `nnc dump --after grad` prints, and how whole models'
/// backward graphs are checked.
pub fn grad_of_output_sum(graph: &Graph, wrt: Option<&[ValueId]>) -> Result<Graph, GradError> {
    let mut b = GraphBuilder::new(&graph.name);
    let map = copy_graph(&mut b, graph, &graph.inputs)?;
    let mut loss: Option<ValueId> = None;
    for o in &graph.outputs {
        let ty = b.ty(map[o]).clone();
        if !ty.dtype.is_float() {
            continue;
        }
        let axes: Vec<i64> = (0..ty.rank() as i64).collect();
        let mut s = b.reduce_sum(map[o], &axes, false).map_err(GradError::Ir)?;
        if ty.dtype != nnc_ir::DType::F32 {
            s = b.cast(s, nnc_ir::DType::F32).map_err(GradError::Ir)?;
        }
        loss = Some(match loss {
            None => s,
            Some(l) => b.add(l, s).map_err(GradError::Ir)?,
        });
    }
    let loss = loss.ok_or_else(|| GradError::Train(format!("graph `{}` has no floating-point output", graph.name)))?;
    b.set_name(loss, "loss").map_err(GradError::Ir)?;
    for o in &graph.outputs {
        b.output(map[o]);
    }
    let extended = b.finish()?;
    let wrt: Vec<ValueId> = match wrt {
        Some(w) => w.iter().map(|v| extended.find(graph.name_of(*v)).unwrap_or(*v)).collect(),
        None => weights(&extended),
    };
    let loss = extended.find("loss").unwrap_or(loss);
    grad(&extended, loss, &wrt)
}

/// The floating-point constants of more than one element: a model's weights.
pub fn weights(graph: &Graph) -> Vec<ValueId> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(&n.op, nnc_ir::Op::Constant(t) if t.dtype().is_float() && t.len() > 1))
        .map(|n| n.outputs[0])
        .collect()
}

/// Differentiates the nodes built so far in `b`: appends the backward nodes and returns
/// `d loss / d w` for each `w` of `wrt` (zeros for a `w` the loss does not depend on).
///
/// This is the building block of [`grad`] and [`train::training_step`]; use it directly to add
/// a gradient (and, say, an update) to a graph being built.
pub fn backward(b: &mut GraphBuilder, loss: ValueId, wrt: &[ValueId]) -> Result<Vec<ValueId>, GradError> {
    let n_values = b.graph().values.len();
    let graph_name = b.graph().name.clone();
    for &v in std::iter::once(&loss).chain(wrt) {
        if v.index() >= n_values {
            return Err(GradError::NotInGraph { what: format!("value {v:?}"), graph: graph_name });
        }
    }
    let lt = b.ty(loss).clone();
    if lt.rank() != 0 || !lt.dtype.is_float() {
        return Err(GradError::LossNotScalar { name: b.graph().name_of(loss).to_string(), ty: lt.to_string() });
    }
    for &w in wrt {
        let dtype = b.ty(w).dtype;
        if !dtype.is_float() {
            return Err(GradError::WrtNotFloat { name: b.graph().name_of(w).to_string(), dtype });
        }
    }
    let seed = b.scalar(lt.dtype, 1.0);
    let end = b.graph().nodes.len();
    // The seed constant is node `end`; the forward nodes are before it.
    let adj = backprop(b, 0..end, &[(loss, seed)], wrt)?;
    let mut out = Vec::with_capacity(wrt.len());
    for &w in wrt {
        out.push(match adj.get(&w) {
            Some(&g) => g,
            None => {
                let ty = b.ty(w).clone();
                util::full(b, ty.dtype, &ty.shape, 0.0).map_err(|e| GradError::Ir(e.into_ir()))?
            }
        });
    }
    Ok(out)
}

/// Copies `graph` into `b`: its inputs in the order `inputs` (a permutation of `graph.inputs`),
/// then every node, keeping value names. Returns the map from `graph`'s values to `b`'s.
pub(crate) fn copy_graph(
    b: &mut GraphBuilder,
    graph: &Graph,
    inputs: &[ValueId],
) -> Result<HashMap<ValueId, ValueId>, GradError> {
    let mut map = HashMap::new();
    for &id in inputs {
        let v = graph.value(id);
        map.insert(id, b.input(&v.name, v.ty.dtype, v.ty.shape.clone())?);
    }
    let mut tmp = 0usize;
    for node in &graph.nodes {
        let ins: Vec<ValueId> = node.inputs.iter().map(|v| map[v]).collect();
        let outs = b.op(node.op.clone(), &ins)?;
        if outs.len() > 1 {
            // Siblings hold fresh names that may be the names the others want: move them aside.
            for &o in &outs {
                b.set_name(o, &format!("__nnc_autodiff_tmp{tmp}"))?;
                tmp += 1;
            }
        }
        for (&old, &new) in node.outputs.iter().zip(&outs) {
            if b.graph().name_of(new) != graph.name_of(old) {
                b.set_name(new, graph.name_of(old))?;
            }
            map.insert(old, new);
        }
    }
    Ok(map)
}

/// Gives `v` the name `want` (or `want_1`, `want_2`, ... if taken), first copying it (a free
/// reshape) if it already belongs to someone else.
pub(crate) fn name_result(
    b: &mut GraphBuilder,
    v: ValueId,
    want: &str,
    claimed: &mut HashSet<ValueId>,
) -> Result<ValueId, GradError> {
    let v = if claimed.contains(&v) || b.graph().inputs.contains(&v) {
        let shape = b.ty(v).shape.clone();
        b.reshape(v, shape)?
    } else {
        v
    };
    claimed.insert(v);
    let taken: HashSet<&str> = b.graph().values.iter().map(|x| x.name.as_str()).collect();
    let mut name = want.to_string();
    let mut k = 0;
    while taken.contains(name.as_str()) {
        k += 1;
        name = format!("{want}_{k}");
    }
    b.set_name(v, &name)?;
    Ok(v)
}

/// Reverse-mode accumulation over the nodes `range` of `b`'s graph: starting from the adjoints
/// `seeds` (value, its gradient), returns the adjoint of every value that lies on a path from one
/// of `sources` to a seeded value (only those are computed). Used for the whole graph and, for
/// composites, for their expansion.
pub(crate) fn backprop(
    b: &mut GraphBuilder,
    range: Range<usize>,
    seeds: &[(ValueId, ValueId)],
    sources: &[ValueId],
) -> Result<HashMap<ValueId, ValueId>, GradError> {
    let nodes: Vec<Node> = b.graph().nodes[range.clone()].to_vec();
    let is_float = |b: &GraphBuilder, v: ValueId| b.ty(v).dtype.is_float();
    // Values that depend on a source...
    let mut depends: HashSet<ValueId> = sources.iter().copied().filter(|&v| is_float(b, v)).collect();
    for n in &nodes {
        if n.inputs.iter().any(|v| depends.contains(v)) {
            depends.extend(n.outputs.iter().copied().filter(|&v| is_float(b, v)));
        }
    }
    // ...and values a seeded value depends on.
    let mut reaches: HashSet<ValueId> = seeds.iter().map(|s| s.0).collect();
    for n in nodes.iter().rev() {
        if n.outputs.iter().any(|v| reaches.contains(v)) {
            reaches.extend(n.inputs.iter().copied().filter(|&v| is_float(b, v)));
        }
    }
    let mut adj: HashMap<ValueId, ValueId> = HashMap::new();
    for &(v, g) in seeds {
        accumulate(b, &mut adj, v, g).map_err(|e| GradError::Ir(e.into_ir()))?;
    }
    for (k, n) in nodes.iter().enumerate().rev() {
        let grads: Vec<Option<ValueId>> = n.outputs.iter().map(|o| adj.get(o).copied()).collect();
        if grads.iter().all(Option::is_none) {
            continue;
        }
        let needs: Vec<bool> =
            n.inputs.iter().map(|v| depends.contains(v) && reaches.contains(v) && is_float(b, *v)).collect();
        if !needs.iter().any(|&x| x) {
            continue;
        }
        let describe = b.graph().describe_node(range.start + k);
        let ctx = rules::NodeCtx {
            op: &n.op,
            inputs: &n.inputs,
            outputs: &n.outputs,
            grads: &grads,
            needs: &needs,
            describe: &describe,
        };
        let result = rules::rule(b, &ctx).map_err(|e| e.into_grad_error(&describe))?;
        for (i, (&input, g)) in n.inputs.iter().zip(result).enumerate() {
            let Some(g) = g else { continue };
            if !needs[i] {
                continue;
            }
            if b.ty(g) != b.ty(input) {
                return Err(GradError::WrongType {
                    node: describe,
                    operand: i,
                    found: b.ty(g).to_string(),
                    expected: b.ty(input).to_string(),
                });
            }
            accumulate(b, &mut adj, input, g).map_err(|e| e.into_grad_error(&describe))?;
        }
    }
    Ok(adj)
}

fn accumulate(
    b: &mut GraphBuilder,
    adj: &mut HashMap<ValueId, ValueId>,
    v: ValueId,
    g: ValueId,
) -> Result<(), util::RuleError> {
    let total = match adj.get(&v) {
        Some(&prev) => b.add(prev, g)?,
        None => g,
    };
    adj.insert(v, total);
    Ok(())
}

/// The dimensions of `shape` as integers, or an error saying what needs them.
pub(crate) fn concrete(shape: &[Dim], what: &str) -> Result<Vec<i64>, util::RuleError> {
    shape
        .iter()
        .map(|d| {
            d.as_const().ok_or_else(|| util::RuleError::Unsupported(format!("{what} needs concrete sizes, found {d}")))
        })
        .collect()
}
