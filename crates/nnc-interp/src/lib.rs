//! nnc's reference interpreter: the meaning of a Graph IR graph, by direct execution.
//!
//! Every backend and every rewrite rule is checked against [`run`], so it favours obvious
//! correctness over speed (while still running a ResNet-18 in seconds).
//!
//! ```
//! use nnc_ir::{DType, Dim, GraphBuilder, TensorData};
//! let mut b = GraphBuilder::new("affine");
//! let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(2)])?;
//! let w = b.constant(TensorData::from_vec(vec![2, 1], &[1.0f32, 10.0]));
//! let y = b.matmul(x, w)?;
//! b.output(y);
//! let graph = b.finish()?;
//! let out = nnc_interp::run(&graph, &[TensorData::from_vec(vec![3, 2], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])])?;
//! assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![21.0, 43.0, 65.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics
//!
//! - Inputs are checked against the declared types: dtype, rank and every dimension. Symbols
//!   (`batch`) are bound from the actual shapes, in input order, and must agree across inputs;
//!   a dimension that is an expression (`2*batch + 1`) binds its one unknown symbol if it is
//!   linear in it.
//! - Each node runs with concrete shapes: its result types are re-inferred from the actual
//!   operands (so runtime shapes are checked by the same rules as the verifier) and must equal
//!   the declared types under the bindings.
//! - Values are computed in a wide form (module `value`): floats in `f64`, rounded to their
//!   dtype after every op; integers in `i64`, wrapped to their width after every op (`u64` held
//!   as its bit pattern and compared, divided and converted as `u64`); `bool` as `bool`.
//!   Op-by-op rules are documented in the modules `elementwise`, `reduce`, `linalg`, `movement`,
//!   `indexing` and `resize`.
//! - Composites (`softmax`, `layer_norm`, `attention`, ...) run their expansion from
//!   [`nnc_ir::composite::expand`], built for the concrete operand types: the expansion IS the
//!   definition.
//! - Failures are errors, never panics: integer division by zero, a gather or scatter index out
//!   of range, a tensor of more than 2^31 elements, shapes that contradict the declared types.
//!   Each names the node (`%y = div(%a, %b)`) or input.

mod collective;
mod elementwise;
mod erf;
mod indexing;
mod linalg;
mod movement;
mod reduce;
mod resize;
mod value;

pub use erf::erf;

/// The interpreter's elementwise semantics on flat vectors of values, for other interpreters
/// (the Kernel-IR interpreter evaluates one expression over many invocations at once with
/// these, so a kernel means exactly what the graph op means).
pub mod lanes {
    pub use crate::elementwise::{binary, cast, select, unary};
    pub use crate::value::{float_to_int, round_float, wrap_int, Data, Int, Value};
}

use nnc_ir::composite::expand;
use nnc_ir::{verify, Dim, Graph, GraphBuilder, IrError, Op, TensorData, TensorType};
use std::borrow::Cow;
use std::collections::BTreeMap;
use value::{checked_numel, internal, Value};

/// Why a graph could not be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// The graph is malformed (it failed [`nnc_ir::verify()`]).
    #[error(transparent)]
    Graph(#[from] IrError),
    /// The wrong number of inputs was given.
    #[error("graph `{graph}` takes {expected} input(s), {found} given")]
    InputCount { graph: String, expected: usize, found: usize },
    /// An input does not match its declared type.
    #[error("input `%{name}`: {message}")]
    Input { name: String, message: String },
    /// A node failed: `node` is its description, such as `%y = div(%a, %b)`.
    #[error("node `{node}`: {message}")]
    Node { node: String, message: String },
    /// Something failed on one rank of a [`run_ranks`].
    #[error("rank {rank}: {source}")]
    Rank { rank: usize, source: Box<InterpError> },
}

/// Values of the dimension symbols, bound from the input shapes.
type Bindings = BTreeMap<String, i64>;

/// Runs `graph` on `inputs` (in `graph.inputs` order) and returns its outputs (in
/// `graph.outputs` order).
pub fn run(graph: &Graph, inputs: &[TensorData]) -> Result<Vec<TensorData>, InterpError> {
    run_with_trace(graph, inputs, |_, _| {})
}

/// [`run`], calling `trace(i, results)` after node `i` of `graph` has run, with its results.
/// Useful to find the first node where a backend and the interpreter disagree.
pub fn run_with_trace(
    graph: &Graph,
    inputs: &[TensorData],
    mut trace: impl FnMut(usize, &[TensorData]),
) -> Result<Vec<TensorData>, InterpError> {
    verify(graph)?;
    let bindings = bind_inputs(graph, inputs)?;
    let values = inputs.iter().map(Value::from_tensor).collect();
    let outputs = execute(graph, vec![values], &[bindings], Some(&mut trace))?;
    output_tensors(graph, &outputs[0])
}

/// Runs `graph` as a program of `inputs.len()` ranks in one process (SPMD): `inputs[r]` are rank
/// `r`'s inputs, and the result's `[r]` its outputs. Every node but a collective runs on each
/// rank as in [`run`]; a collective combines the operands of all ranks (module `collective`),
/// and must span exactly this many ranks. [`run`] is this with one rank.
pub fn run_ranks(graph: &Graph, inputs: &[Vec<TensorData>]) -> Result<Vec<Vec<TensorData>>, InterpError> {
    verify(graph)?;
    if inputs.is_empty() {
        return Err(InterpError::InputCount { graph: graph.name.clone(), expected: graph.inputs.len(), found: 0 });
    }
    let rank_err = |rank: usize, e: InterpError| InterpError::Rank { rank, source: Box::new(e) };
    let bindings: Vec<Bindings> = inputs
        .iter()
        .enumerate()
        .map(|(r, ins)| bind_inputs(graph, ins).map_err(|e| rank_err(r, e)))
        .collect::<Result<_, _>>()?;
    let values = inputs.iter().map(|ins| ins.iter().map(Value::from_tensor).collect()).collect();
    let outputs = execute(graph, values, &bindings, None)?;
    outputs.iter().enumerate().map(|(r, outs)| output_tensors(graph, outs).map_err(|e| rank_err(r, e))).collect()
}

fn output_tensors(graph: &Graph, outputs: &[Value]) -> Result<Vec<TensorData>, InterpError> {
    outputs
        .iter()
        .zip(&graph.outputs)
        .map(|(v, id)| {
            v.to_tensor()
                .map_err(|message| InterpError::Node { node: format!("output %{}", graph.name_of(*id)), message })
        })
        .collect()
}

// ---------------------------------------------------------------- inputs and symbols

fn format_dims(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// ` (with batch = 3)`: the bound values of the symbols `ty` mentions, for messages.
fn bindings_note(ty: &TensorType, bindings: &Bindings) -> String {
    let mut syms: Vec<String> = ty.shape.iter().flat_map(|d| d.symbols()).map(|s| s.to_string()).collect();
    syms.sort();
    syms.dedup();
    let bound: Vec<String> = syms.iter().filter_map(|s| bindings.get(s).map(|v| format!("{s} = {v}"))).collect();
    if bound.is_empty() {
        String::new()
    } else {
        format!(" (with {})", bound.join(", "))
    }
}

/// Binds the symbols of the input types from the actual shapes and checks every input.
fn bind_inputs(graph: &Graph, inputs: &[TensorData]) -> Result<Bindings, InterpError> {
    if inputs.len() != graph.inputs.len() {
        return Err(InterpError::InputCount {
            graph: graph.name.clone(),
            expected: graph.inputs.len(),
            found: inputs.len(),
        });
    }
    let mut bindings = Bindings::new();
    let mismatch = |id: nnc_ir::ValueId, t: &TensorData, bindings: &Bindings, why: &str| {
        let ty = graph.ty(id);
        InterpError::Input {
            name: graph.name_of(id).to_string(),
            message: format!(
                "expected {ty}, found {}[{}]{}{why}",
                t.dtype(),
                format_dims(t.shape()),
                bindings_note(ty, bindings)
            ),
        }
    };
    let pairs: Vec<_> = graph.inputs.iter().copied().zip(inputs).collect();
    for &(id, t) in &pairs {
        let ty = graph.ty(id);
        if ty.dtype != t.dtype() || ty.rank() != t.shape().len() {
            return Err(mismatch(id, t, &bindings, ""));
        }
    }
    // Bind symbols from dimensions with exactly one unknown symbol, in input order, until
    // nothing changes.
    loop {
        let mut progress = false;
        for &(id, t) in &pairs {
            for (d, &actual) in graph.ty(id).shape.iter().zip(t.shape()) {
                let unbound: Vec<_> = d.symbols().into_iter().filter(|s| !bindings.contains_key(&**s)).collect();
                let [s] = unbound.as_slice() else { continue };
                let Some((a, c0)) = linear_in(d, s, &bindings) else { continue };
                let solution = (actual as i64).checked_sub(c0).and_then(|diff| {
                    (diff.checked_rem(a) == Some(0)).then(|| diff.checked_div(a)).flatten().filter(|&v| v >= 0)
                });
                let Some(value) = solution else {
                    let why = format!(" (no non-negative integer `{s}` gives {actual} for {d})");
                    return Err(mismatch(id, t, &bindings, &why));
                };
                bindings.insert(s.to_string(), value);
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    for &(id, t) in &pairs {
        for (d, &actual) in graph.ty(id).shape.iter().zip(t.shape()) {
            match d.eval(&|name| bindings.get(name).copied()) {
                Some(v) if v == actual as i64 => {}
                Some(_) => return Err(mismatch(id, t, &bindings, "")),
                None => {
                    let why = format!(" (cannot determine the symbols of {d} from the input shapes)");
                    return Err(mismatch(id, t, &bindings, &why));
                }
            }
        }
    }
    Ok(bindings)
}

/// `Some((a, c))` if `d = a*s + c` once the bound symbols take their values, with `a != 0`.
/// Uses only exact, overflow-checked evaluation: `d` splits into the terms without `s`
/// (`d` at `s = 0`) and the rest, which divided by `s` must no longer mention `s`.
fn linear_in(d: &Dim, s: &str, bindings: &Bindings) -> Option<(i64, i64)> {
    let at_zero = d.substitute(&|name| (name == s).then_some(0));
    let slope = (d.clone() - at_zero.clone()).div_exact_dim(&Dim::sym(s))?;
    if slope.symbols().iter().any(|x| &**x == s) {
        return None;
    }
    let value = |e: &Dim| e.eval(&|name| bindings.get(name).copied());
    Some((value(&slope).filter(|&a| a != 0)?, value(&at_zero)?))
}

/// The concrete shape of a declared type under `bindings`.
fn resolve(ty: &TensorType, bindings: &Bindings) -> Result<Vec<usize>, String> {
    ty.shape
        .iter()
        .map(|d| match d.eval(&|name| bindings.get(name).copied()) {
            Some(v) => usize::try_from(v).map_err(|_| format!("dimension {d} of {ty} is negative ({v})")),
            None => Err(format!("the symbols of {d} in {ty} are not bound by the graph's inputs")),
        })
        .collect()
}

fn concrete_dims(dims: &[Dim], bindings: &Bindings) -> Result<Vec<Dim>, String> {
    dims.iter()
        .map(|d| {
            d.eval(&|name| bindings.get(name).copied())
                .map(Dim::constant)
                .ok_or_else(|| format!("the symbols of {d} are not bound by the graph's inputs"))
        })
        .collect()
}

/// `op` with the symbols in its attributes replaced by their values.
fn concretize<'a>(op: &'a Op, bindings: &Bindings) -> Result<Cow<'a, Op>, String> {
    Ok(match op {
        Op::Reshape { shape } => Cow::Owned(Op::Reshape { shape: concrete_dims(shape, bindings)? }),
        Op::Expand { shape } => Cow::Owned(Op::Expand { shape: concrete_dims(shape, bindings)? }),
        Op::Iota { dtype, shape, axis } => {
            Cow::Owned(Op::Iota { dtype: *dtype, shape: concrete_dims(shape, bindings)?, axis: *axis })
        }
        Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Select
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::MatMul
        | Op::Conv { .. }
        | Op::ConvTranspose { .. }
        | Op::Pool { .. }
        | Op::ArgMaxPool { .. }
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::GatherElements { .. }
        | Op::Resize(_)
        | Op::ScatterElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterNd { .. }
        | Op::TopK { .. }
        | Op::Cumulative { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::BatchNorm { .. }
        | Op::Gelu { .. }
        | Op::Attention { .. }
        | Op::Recurrent { .. }
        | Op::Collective(_) => Cow::Borrowed(op),
    })
}

// ---------------------------------------------------------------- the node loop

type Trace<'a> = Option<&'a mut dyn FnMut(usize, &[TensorData])>;

/// Runs the nodes of `graph` in order on the inputs of every rank (`inputs[r]` are rank `r`'s),
/// in lockstep, so a collective sees every rank's operand; values are dropped after their last
/// use. `trace` sees rank 0's results.
fn execute(
    graph: &Graph,
    inputs: Vec<Vec<Value>>,
    bindings: &[Bindings],
    mut trace: Trace<'_>,
) -> Result<Vec<Vec<Value>>, InterpError> {
    let ranks = inputs.len();
    let mut slots: Vec<Vec<Option<Value>>> = vec![vec![None; graph.values.len()]; ranks];
    for (rank_slots, rank_inputs) in slots.iter_mut().zip(inputs) {
        for (id, v) in graph.inputs.iter().zip(rank_inputs) {
            rank_slots[id.index()] = Some(v);
        }
    }
    let mut uses = graph.use_counts();
    for (i, node) in graph.nodes.iter().enumerate() {
        let node_err = |message: String| InterpError::Node { node: graph.describe_node(i), message };
        let in_rank =
            |rank: usize, e: InterpError| if ranks == 1 { e } else { InterpError::Rank { rank, source: Box::new(e) } };
        let operands =
            |rank_slots| operands_of(node, rank_slots).ok_or_else(|| node_err(internal("an operand was not computed")));
        let results: Vec<Vec<Value>> = if let Op::Collective(c) = &node.op {
            let xs = slots.iter().map(|s| operands(s).map(|o| o[0])).collect::<Result<Vec<_>, _>>()?;
            let out = collective_shape(graph, i, &xs, &bindings[0]).map_err(node_err)?;
            collective::run(c, &xs, &out).map_err(node_err)?.into_iter().map(|v| vec![v]).collect()
        } else {
            slots
                .iter()
                .zip(bindings)
                .enumerate()
                .map(|(rank, (s, b))| {
                    eval_node(graph, i, &operands(s).map_err(|e| in_rank(rank, e))?, b)
                        .map_err(|e| in_rank(rank, node_err(e)))
                })
                .collect::<Result<_, _>>()?
        };
        if let Some(trace) = trace.as_mut() {
            let tensors = results[0].iter().map(Value::to_tensor).collect::<Result<Vec<_>, _>>().map_err(node_err)?;
            trace(i, &tensors);
        }
        for id in &node.inputs {
            if let Some(u) = uses.get_mut(id.index()) {
                *u = u.saturating_sub(1);
                if *u == 0 {
                    slots.iter_mut().for_each(|s| s[id.index()] = None);
                }
            }
        }
        for (rank_slots, rank_results) in slots.iter_mut().zip(results) {
            for (id, v) in node.outputs.iter().zip(rank_results) {
                rank_slots[id.index()] = Some(v);
            }
        }
    }
    slots
        .iter()
        .map(|rank_slots| {
            graph
                .outputs
                .iter()
                .map(|id| {
                    rank_slots.get(id.index()).and_then(Option::clone).ok_or_else(|| InterpError::Node {
                        node: format!("output %{}", graph.name_of(*id)),
                        message: internal("output was not computed"),
                    })
                })
                .collect()
        })
        .collect()
}

fn operands_of<'a>(node: &nnc_ir::Node, slots: &'a [Option<Value>]) -> Option<Vec<&'a Value>> {
    node.inputs.iter().map(|id| slots.get(id.index()).and_then(Option::as_ref)).collect()
}

/// The result shape of collective node `i` on rank 0's operand, checked against its declared
/// type (every rank's operand is checked against rank 0's by the collective itself).
fn collective_shape(graph: &Graph, i: usize, xs: &[&Value], bindings: &Bindings) -> Result<Vec<usize>, String> {
    let node = &graph.nodes[i];
    let x = xs.first().ok_or_else(|| internal("a collective over no ranks"))?;
    let ty = nnc_ir::infer(&node.op, &[&TensorType::new(x.dtype, x.shape.iter().copied())])?;
    let declared = graph.ty(node.outputs[0]);
    let shape = ty[0].static_shape().ok_or_else(|| internal("symbolic shape at run time"))?;
    if declared.dtype != ty[0].dtype || resolve(declared, bindings)? != shape {
        return Err(format!("result is declared {declared} but its operand gives {}", ty[0]));
    }
    Ok(shape)
}

/// Runs node `i`: re-infers its result types from the concrete operands, checks them against
/// the declared types and the size limit, then computes the results.
fn eval_node(graph: &Graph, i: usize, operands: &[&Value], bindings: &Bindings) -> Result<Vec<Value>, String> {
    let node = &graph.nodes[i];
    let op = concretize(&node.op, bindings)?;
    let types: Vec<TensorType> = operands.iter().map(|v| TensorType::new(v.dtype, v.shape.iter().copied())).collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let inferred = nnc_ir::infer(&op, &refs)?;
    if inferred.len() != node.outputs.len() {
        return Err(internal("result count differs from shape inference"));
    }
    let mut shapes = Vec::with_capacity(inferred.len());
    for (ty, &id) in inferred.iter().zip(&node.outputs) {
        let declared = graph.ty(id);
        let shape = ty.static_shape().ok_or_else(|| internal("symbolic shape at run time"))?;
        let want = resolve(declared, bindings)?;
        if declared.dtype != ty.dtype || want != shape {
            return Err(format!(
                "result `%{}` is declared {declared}{} but its operands give {ty}",
                graph.name_of(id),
                bindings_note(declared, bindings)
            ));
        }
        checked_numel(&shape)?;
        shapes.push(shape);
    }
    // Kernels build their results in many small steps, each of which would abort the process
    // on failure: check once that the results (widened to 8 bytes an element, and a working
    // copy) fit in the memory the process can have.
    let elements: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    nnc_ir::size::ensure_available(elements as u64 * 16, || {
        format!("the results of node `%{}`", graph.name_of(node.outputs[0]))
    })
    .map_err(|e| e.to_string())?;
    let results = compute(&op, operands, &shapes)?;
    for (v, shape) in results.iter().zip(&shapes) {
        if &v.shape != shape || v.numel() != shape.iter().product::<usize>() {
            return Err(internal("kernel result has the wrong shape"));
        }
    }
    Ok(results)
}

/// The kernel of every op. `shapes` are the result shapes from shape inference.
fn compute(op: &Op, operands: &[&Value], shapes: &[Vec<usize>]) -> Result<Vec<Value>, String> {
    use elementwise as ew;
    let arg = |k: usize| operands.get(k).copied().ok_or_else(|| internal("missing operand"));
    let out = shapes.first().map(Vec::as_slice).ok_or_else(|| internal("no result shape"))?;
    let one = |v: Value| Ok(vec![v]);
    match op {
        Op::Constant(t) => one(Value::from_tensor(t)),
        Op::Iota { dtype, axis, .. } => one(ew::iota(*dtype, out, *axis)?),
        Op::Unary(u) => one(ew::unary(*u, arg(0)?)?),
        Op::Binary(b) => one(ew::binary(*b, arg(0)?, arg(1)?, out)?),
        Op::Select => one(ew::select(arg(0)?, arg(1)?, arg(2)?, out)?),
        Op::Cast { to } => one(ew::cast(arg(0)?, *to)?),
        Op::Reduce { kind, axes, keep_dims: _ } => one(reduce::reduce(*kind, arg(0)?, axes, out)?),
        Op::ArgReduce { kind, axis, keep_dims: _, select_last } => {
            one(reduce::arg_reduce(*kind, arg(0)?, *axis, *select_last, out)?)
        }
        Op::Cumulative { axis, kind, exclusive, reverse } => {
            one(reduce::cumulative(arg(0)?, *axis, *kind, *exclusive, *reverse)?)
        }
        Op::TopK { axis, k, largest } => reduce::topk(arg(0)?, *axis, *k, *largest, out),
        Op::MatMul => one(linalg::matmul(arg(0)?, arg(1)?, out)?),
        Op::Conv { window, groups } => one(linalg::conv(arg(0)?, arg(1)?, window, *groups, out)?),
        Op::ConvTranspose { window, output_padding: _, groups } => {
            one(linalg::conv_transpose(arg(0)?, arg(1)?, window, *groups, out)?)
        }
        Op::Pool { kind, kernel, window, ceil_mode: _, count_include_pad } => {
            one(linalg::pool(*kind, arg(0)?, kernel, window, *count_include_pad, out)?)
        }
        Op::ArgMaxPool { kernel, window, ceil_mode: _ } => one(linalg::argmax_pool(arg(0)?, kernel, window, out)?),
        Op::Reshape { shape: _ } => one(arg(0)?.clone().with_shape(out.to_vec())),
        Op::Transpose { perm } => one(movement::transpose(arg(0)?, perm, out)?),
        Op::Expand { shape: _ } => one(movement::expand(arg(0)?, out)?),
        Op::Slice { axes, starts, ends, steps } => one(movement::slice(arg(0)?, axes, starts, ends, steps, out)?),
        Op::Concat { axis } => one(movement::concat(operands, *axis, out)?),
        Op::Pad { pads, mode, value } => one(movement::pad(arg(0)?, pads, *mode, *value, out)?),
        Op::Gather { axis } => one(movement::gather(arg(0)?, arg(1)?, *axis, out)?),
        Op::ScatterAdd { axis } => one(movement::scatter_add(arg(0)?, arg(1)?, arg(2)?, *axis)?),
        Op::Resize(r) => one(resize::resize(arg(0)?, r, out)?),
        Op::GatherElements { axis } => one(indexing::gather_elements(arg(0)?, arg(1)?, *axis)?),
        Op::ScatterElements { axis, reduction } => {
            one(indexing::scatter_elements(arg(0)?, arg(1)?, arg(2)?, *axis, *reduction)?)
        }
        Op::GatherNd { batch_dims } => one(indexing::gather_nd(arg(0)?, arg(1)?, *batch_dims, out)?),
        Op::ScatterNd { reduction } => one(indexing::scatter_nd(arg(0)?, arg(1)?, arg(2)?, *reduction)?),
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::BatchNorm { .. }
        | Op::Gelu { .. }
        | Op::Attention { .. }
        | Op::Recurrent { .. } => run_expansion(op, operands),
        Op::Collective(_) => Err(internal("a collective outside the rank loop")),
    }
}

/// Runs composite `op` as its expansion, built for the operands' concrete types.
fn run_expansion(op: &Op, operands: &[&Value]) -> Result<Vec<Value>, String> {
    let mut b = GraphBuilder::new(&format!("{} expansion", op.name()));
    let ids = operands
        .iter()
        .enumerate()
        .map(|(k, v)| b.input(&format!("x{k}"), v.dtype, v.shape.iter().copied()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("building its expansion: {e}"))?;
    let outs = expand(op, &mut b, &ids)
        .map_err(|e| format!("building its expansion: {e}"))?
        .ok_or_else(|| internal("expansion of a primitive"))?;
    for o in outs {
        b.output(o);
    }
    let g = b.finish().map_err(|e| format!("building its expansion: {e}"))?;
    let values = operands.iter().map(|v| (*v).clone()).collect();
    let mut outputs =
        execute(&g, vec![values], &[Bindings::new()], None).map_err(|e| format!("in its expansion: {e}"))?;
    Ok(outputs.swap_remove(0))
}
