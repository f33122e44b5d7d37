//! Fusion: which values get a buffer of their own, and which are recomputed inside their
//! consumers instead.
//!
//! Every node is first lowered to a compute definition ([`crate::lower`]). A node whose result
//! is not materialized is *inlined*: each load of it in a consumer is replaced by its expression
//! at the load's index. A group (one future kernel) is a materialized node together with
//! everything inlined into it, so elementwise chains, a reduction with its elementwise producers
//! and consumers (softmax, layer norm), and a matmul or convolution with its epilogue (bias,
//! activation, residual add) all become one group each.
//!
//! The decision is a cost comparison, recorded as a [`Decision`] so `nnc dump --explain` can
//! show it. Inlining saves writing the value and reading it back; it costs recomputing the
//! value's expression as often as consumers evaluate it beyond once per element, each
//! operation priced at its cost (`nnc_kernel::cost::relative_cost`: a `log` is some twenty
//! adds, so one recomputed for every output channel of a convolution stays a buffer).
//! Reductions are counted as the scheduler runs them: once per distinct value of the variables
//! their body depends on (so a row's maximum, needed by every element of the row, is computed
//! once), and equal ones once.
//!
//! Rules come before the comparison where schedules need them:
//! - a reduction to a few values (a whole tensor's minimum) is not inlined where it would reach
//!   a large consumer, which would then run as that few rows, on one thread;
//! - a convolution or matmul that an elementwise op broadcasts, directly or after elementwise
//!   steps of its own size (a squeeze-and-excitation gate, its bias and sigmoid)
//!   stays a buffer: inlined, it would run again for every element it is repeated over;
//! - where contractions are bound by arithmetic (`FuseOptions::reread_cost_limit`, a CPU), a
//!   value a contraction or broadcast re-reads is inlined only if it costs about a load;
//! - a CPU schedules one contraction per kernel, so a convolution, matmul or pooling window is
//!   not inlined into a consumer that reduces over it, nor into several consumers (each of which
//!   may fuse a contraction of its own) unless they all end in one node (SiLU's
//!   `x * sigmoid(x)`);
//! - a CPU register tile loads unmasked buffers, so a masked value (a padded input) that reaches
//!   a contraction, directly or through views, stays a buffer;
//! - a contraction that a transpose reads with the tile's column axis (a matmul's last, a
//!   convolution's channels) moved from the last place stays a buffer: inlined, the consumer's
//!   layout would scatter the tile's columns (an integer convolution's `[N, H, W, C]` product
//!   read back as `[N, C, H, W]`); and one moved by a transpose is stored before a pad that
//!   reads it, whose border would otherwise put every load of the tile under a mask;
//! - on a CPU, a value that overlapping slices take more than 1.5 times per element (a
//!   convolution's taps, gathered into its window matrix) stays a buffer where an evaluation
//!   costs arithmetic or gathers a vector's lanes from apart;
//! - a contraction reshaped into a concatenation (gradients flattened into one bucket for an
//!   all-reduce) stays a buffer: inlined, it would be computed in the concatenation's flat
//!   index space, one dot product per element, where its own kernel is tiled. (A contraction
//!   concatenated along one of its own axes, as squeezenet's expand convolutions are, keeps its
//!   axes and may still fuse.)

use crate::lower::{lower_node, LowerError};
use nnc_ir::composite::decompose;
use nnc_ir::{DType, Graph, Op, TensorData, ValueId};
use nnc_kernel::cost::{collect_loads, loads_per_element, work_per_element};
use nnc_kernel::expr::{canonical_key, BufId, Expr, Literal, Reduction, VarGen};
use nnc_kernel::kernel::Compute;
use nnc_kernel::program::{BufferKind, Decision, Fused, Group, ProgramBuffer};
use std::collections::BTreeMap;

/// What a fused expression may grow to before its producers are materialized instead, so
/// deep chains with many uses stay printable and fast to schedule.
const MAX_EXPR_NODES: usize = 4000;

/// A reduction to fewer results than this (a whole tensor's minimum) is not inlined where it
/// would reach a consumer of at least [`MIN_PARALLEL_ELEMENTS`]: the consumer would be
/// scheduled as one row per result (each computing it once), too few rows to spread over
/// threads or workgroups.
const MIN_PARALLEL_ROWS: f64 = 64.0;
const MIN_PARALLEL_ELEMENTS: f64 = 16384.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuseOptions {
    /// `false` gives one group per node: the unfused baseline that `--stats` compares against.
    pub fuse: bool,
    /// The target's machine balance: arithmetic operations it does in the time it moves one
    /// byte through device memory (`Device::ops_per_byte`). Recomputing `n` operations to save
    /// `b` bytes pays when `n <= b * ops_per_byte`.
    pub ops_per_byte: u32,
    /// Whether a value computed by a reduction over its own inputs (a convolution, a matmul)
    /// may be inlined into a consumer that reduces over it. A GPU schedules the nest as one
    /// invocation per element; a CPU schedules one contraction per kernel in register tiles, and
    /// a nest falls back to scalar code.
    pub nested_reductions: bool,
    /// Whether a value with masked loads (a zero-padded input) stays a buffer when a
    /// convolution or matmul reads it: a CPU register tile loads a buffer without a branch per
    /// element, which the masks would cost in every tile touching a border.
    pub unmasked_contractions: bool,
    /// Storage buffers one kernel may bind (`Device::max_buffers`): a value is not inlined
    /// where its consumer's kernel would then bind more.
    pub max_buffers: u32,
    /// Where contractions are bound by arithmetic (a CPU's register tiles): the most one
    /// evaluation of a value may cost, in adds, for it to be inlined where a contraction or a
    /// broadcast re-reads it. `None` leaves that to the priced comparison (a GPU, bound by
    /// memory).
    pub reread_cost_limit: Option<u32>,
}

impl Default for FuseOptions {
    fn default() -> Self {
        FuseOptions {
            fuse: true,
            ops_per_byte: 16,
            nested_reductions: true,
            unmasked_contractions: false,
            max_buffers: u32::MAX,
            reread_cost_limit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FuseError {
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error("graph `{graph}`: {message}")]
    Graph { graph: String, message: String },
}

/// How a value is available to its consumers.
#[derive(Clone, Debug)]
enum Avail {
    Buffer(BufId),
    Literal(Literal),
    /// Its fused expression over its own output axes.
    Inline(Expr),
}

/// Fuses `graph` (any graph with static shapes; composites are expanded first).
pub fn fuse(graph: &Graph, options: &FuseOptions) -> Result<Fused, FuseError> {
    let graph = decompose(graph).map_err(|e| graph_error(graph, e.to_string()))?;
    let graph = &graph;
    let shapes = static_shapes(graph)?;
    let mut vars = VarGen::new();
    let mut fused = Fused {
        name: graph.name.clone(),
        buffers: Vec::new(),
        groups: Vec::new(),
        outputs: Vec::new(),
        output_names: Vec::new(),
        decisions: Vec::new(),
    };
    let mut avail: BTreeMap<ValueId, Avail> = BTreeMap::new();
    for (n, &v) in graph.inputs.iter().enumerate() {
        let id = add_buffer(&mut fused, graph, &shapes, v, BufferKind::Input(n));
        avail.insert(v, Avail::Buffer(id));
    }

    // Lower every node first: a value's decision needs its consumers' load sites.
    let mut computes: Vec<Option<Compute>> = Vec::with_capacity(graph.nodes.len());
    let mut errors = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if matches!(node.op, Op::Constant(_)) {
            computes.push(None);
            continue;
        }
        match lower_node(graph, i, &mut vars) {
            Ok(c) => computes.push(Some(c)),
            Err(e) => {
                errors.push(e.to_string());
                computes.push(None);
            }
        }
    }
    if !errors.is_empty() {
        return Err(graph_error(graph, format!("cannot lower {} node(s):\n  {}", errors.len(), errors.join("\n  "))));
    }
    let users = users_of(graph);
    let producers = graph.producers();
    let mut contractions_into: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let is_output: Vec<bool> = (0..graph.values.len()).map(|v| graph.outputs.contains(&ValueId(v as u32))).collect();
    // Inlined nodes that feed each value, so a group can list what it covers.
    let mut covered: BTreeMap<ValueId, Vec<String>> = BTreeMap::new();

    for (i, node) in graph.nodes.iter().enumerate() {
        let describe = || format!("%{} = {}", graph.name_of(node.outputs[0]), node.op.name());
        if let Op::Constant(t) = &node.op {
            let v = node.outputs[0];
            if t.len() == 1 && !is_output[v.index()] {
                avail.insert(v, Avail::Literal(literal_of(t)));
            } else {
                let id = add_buffer(&mut fused, graph, &shapes, v, BufferKind::Constant(t.clone()));
                avail.insert(v, Avail::Buffer(id));
            }
            continue;
        }
        let mut covers: Vec<String> = Vec::new();
        for v in &node.inputs {
            if let (Some(Avail::Inline(_)), Some(c)) = (avail.get(v), covered.get(v)) {
                for name in c {
                    if !covers.contains(name) {
                        covers.push(name.clone());
                    }
                }
            }
        }
        covers.push(describe());
        match computes[i].take() {
            Some(Compute::Map(expr)) => {
                let expr = substitute(expr, &node.inputs, &avail, &mut vars);
                let v = node.outputs[0];
                let cx = DecideCx {
                    graph,
                    shapes: &shapes,
                    users: &users,
                    computes: &computes,
                    is_output: &is_output,
                    contractions_into: &contractions_into,
                    avail: &avail,
                    producers: &producers,
                };
                let decision = decide(&cx, v, &node.op, &expr, options, &mut vars);
                let inlined = decision.inlined;
                if inlined && per_element_reduction(&expr, &shapes[v.index()]) {
                    let keys = contraction_keys(&expr);
                    for &(n, _) in users.get(&v).into_iter().flatten() {
                        contractions_into.entry(n).or_default().extend(keys.iter().cloned());
                    }
                }
                fused.decisions.push(decision);
                if inlined {
                    avail.insert(v, Avail::Inline(expr));
                    covered.insert(v, covers);
                } else {
                    let out = add_buffer(&mut fused, graph, &shapes, v, BufferKind::Intermediate);
                    let mut reads = Vec::new();
                    collect_loads(&expr, &mut reads);
                    push_group(&mut fused, covers, Compute::Map(expr), reads, vec![out]);
                    avail.insert(v, Avail::Buffer(out));
                }
            }
            Some(program @ Compute::Program(_)) => {
                let reads: Vec<BufId> = node
                    .inputs
                    .iter()
                    .map(|v| materialize(&mut fused, graph, &shapes, *v, &mut avail, &mut vars))
                    .collect();
                let writes: Vec<BufId> = node
                    .outputs
                    .iter()
                    .map(|&v| {
                        let id = add_buffer(&mut fused, graph, &shapes, v, BufferKind::Intermediate);
                        avail.insert(v, Avail::Buffer(id));
                        id
                    })
                    .collect();
                push_group(&mut fused, covers, program, reads, writes);
            }
            None => return Err(graph_error(graph, format!("node {} was not lowered", describe()))),
        }
    }
    for &v in &graph.outputs {
        let id = materialize(&mut fused, graph, &shapes, v, &mut avail, &mut vars);
        fused.outputs.push(id);
        fused.output_names.push(graph.name_of(v).to_string());
    }
    Ok(fused)
}

fn add_buffer(fused: &mut Fused, graph: &Graph, shapes: &[Vec<i64>], v: ValueId, kind: BufferKind) -> BufId {
    fused.buffers.push(ProgramBuffer {
        name: graph.name_of(v).to_string(),
        dtype: graph.ty(v).dtype,
        shape: shapes[v.index()].clone(),
        kind,
    });
    BufId(fused.buffers.len() as u32 - 1)
}

fn push_group(fused: &mut Fused, covers: Vec<String>, compute: Compute, reads: Vec<BufId>, writes: Vec<BufId>) {
    let name = group_name(fused.groups.len(), &covers);
    fused.groups.push(Group { name, covers, compute, reads, writes });
}

/// `k<n>_<op>_<op>..`: the kernel's number and the ops it covers (at most three, then `etc`).
fn group_name(n: usize, covers: &[String]) -> String {
    let mut ops: Vec<&str> = Vec::new();
    for c in covers.iter().rev() {
        let op = c.rsplit(' ').next().unwrap_or("op");
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    let mut name = format!("k{n}");
    for op in ops.iter().take(3) {
        name.push('_');
        name.push_str(op);
    }
    if ops.len() > 3 {
        name.push_str("_etc");
    }
    name
}

/// The buffer holding `v`, writing one with a copy group if `v` was inlined or is a literal.
fn materialize(
    fused: &mut Fused,
    graph: &Graph,
    shapes: &[Vec<i64>],
    v: ValueId,
    avail: &mut BTreeMap<ValueId, Avail>,
    vars: &mut VarGen,
) -> BufId {
    let expr = match avail.get(&v) {
        Some(Avail::Buffer(b)) => return *b,
        Some(Avail::Literal(l)) => Expr::Lit(*l),
        Some(Avail::Inline(e)) => rename_bound(e.clone(), vars),
        None => Expr::lit(0.0, graph.ty(v).dtype),
    };
    let out = add_buffer(fused, graph, shapes, v, BufferKind::Intermediate);
    let mut reads = Vec::new();
    collect_loads(&expr, &mut reads);
    push_group(fused, vec![format!("%{} = materialize", graph.name_of(v))], Compute::Map(expr), reads, vec![out]);
    avail.insert(v, Avail::Buffer(out));
    out
}

fn graph_error(graph: &Graph, message: String) -> FuseError {
    FuseError::Graph { graph: graph.name.clone(), message }
}

/// Every value's concrete shape; an error names a value whose shape is symbolic or, once its
/// symbols are bound, too large ([`nnc_ir::size::MAX_TENSOR_BYTES`]), so buffer sizes and
/// offsets computed from these shapes cannot overflow.
fn static_shapes(graph: &Graph) -> Result<Vec<Vec<i64>>, FuseError> {
    graph
        .values
        .iter()
        .map(|v| {
            let shape = v.ty.shape.iter().map(|d| d.as_const()).collect::<Option<Vec<i64>>>().ok_or_else(|| {
                graph_error(
                    graph,
                    format!(
                        "value %{} has symbolic shape {}: kernels need static shapes (bind the symbols, e.g. with `--shape`)",
                        v.name,
                        nnc_ir::shape::format_shape(&v.ty.shape)
                    ),
                )
            })?;
            if shape.iter().any(|&d| d < 0) {
                return Err(graph_error(graph, format!("value %{} has a negative dimension: {}", v.name, v.ty)));
            }
            nnc_ir::size::check_type(&v.ty).map_err(|m| graph_error(graph, format!("value %{}: {m}", v.name)))?;
            Ok(shape)
        })
        .collect()
}

fn literal_of(t: &TensorData) -> Literal {
    let d = t.dtype();
    if d.is_float() {
        Literal::Float(t.to_f64_vec()[0], d)
    } else if d == DType::Bool {
        Literal::Bool(t.to_i64_vec()[0] != 0)
    } else {
        Literal::Int(t.to_i64_vec()[0], d)
    }
}

/// Replaces the node-local operand loads of `expr` (`BufId(k)` = operand k) by what each
/// operand is: a program buffer, a literal, or an inlined expression at the load's index.
fn substitute(expr: Expr, operands: &[ValueId], avail: &BTreeMap<ValueId, Avail>, vars: &mut VarGen) -> Expr {
    expr.rewrite(&mut |e| match e {
        Expr::Load { buf, dtype, index, mask } => {
            let value = match avail.get(&operands[buf.index()]) {
                Some(Avail::Buffer(b)) => return Expr::Load { buf: *b, dtype, index, mask },
                Some(Avail::Literal(l)) => Expr::Lit(*l),
                Some(Avail::Inline(body)) => instantiate(body, &index, vars),
                None => return Expr::Load { buf, dtype, index, mask },
            };
            match mask {
                Some(m) => Expr::select(*m, value, Expr::lit(0.0, dtype)),
                None => value,
            }
        }
        e => e,
    })
}

/// `body` (an expression over its own output axes) evaluated at `index`, with its reduction
/// variables renamed so they stay unique in the consumer.
fn instantiate(body: &Expr, index: &[Expr], vars: &mut VarGen) -> Expr {
    rename_bound(body.clone(), vars).rewrite(&mut |e| match e {
        Expr::Axis(a) => index[a as usize].clone(),
        e => e,
    })
}

/// Gives every reduction in `e` fresh variables.
fn rename_bound(e: Expr, vars: &mut VarGen) -> Expr {
    e.rewrite(&mut |e| match e {
        Expr::Reduce(r) => {
            let Reduction { combine, vars: old, body } = *r;
            let fresh: Vec<_> = old.iter().map(|(v, n)| (vars.fresh(v.dtype), *n)).collect();
            let body = body.rewrite(&mut |x| match x {
                Expr::Var(v) => match old.iter().position(|(o, _)| *o == v) {
                    Some(k) => Expr::Var(fresh[k].0),
                    None => Expr::Var(v),
                },
                x => x,
            });
            Expr::reduce(combine, fresh, body)
        }
        e => e,
    })
}

/// Who reads each value: (node, operand position) pairs, in graph order.
fn users_of(graph: &Graph) -> BTreeMap<ValueId, Vec<(usize, usize)>> {
    let mut users: BTreeMap<ValueId, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for (k, v) in node.inputs.iter().enumerate() {
            users.entry(*v).or_default().push((i, k));
        }
    }
    users
}

fn expr_size(e: &Expr) -> usize {
    let mut n = 0;
    e.any(&mut |_| {
        n += 1;
        false
    });
    n
}

/// What a fusion decision looks at.
struct DecideCx<'a> {
    graph: &'a Graph,
    shapes: &'a [Vec<i64>],
    users: &'a BTreeMap<ValueId, Vec<(usize, usize)>>,
    computes: &'a [Option<Compute>],
    is_output: &'a [bool],
    /// Consumers (nodes) that already take an inlined per-element reduction, with the keys
    /// ([`canonical_key`]) of the reductions they take.
    contractions_into: &'a BTreeMap<usize, Vec<String>>,
    /// How each value decided so far is available.
    avail: &'a BTreeMap<ValueId, Avail>,
    /// The node computing each value (`None` for graph inputs).
    producers: &'a [Option<usize>],
}

impl DecideCx<'_> {
    /// The axis a CPU tile of the contraction computing `v` (directly or through up to `depth`
    /// elementwise steps of its shape) takes its columns along: a matmul's last, a convolution's
    /// output channels.
    fn column_axis(&self, v: ValueId, depth: usize) -> Option<usize> {
        let node = &self.graph.nodes[self.producers[v.index()]?];
        let rank = self.shapes[v.index()].len();
        match node.op {
            Op::MatMul => Some(rank.checked_sub(1)?),
            Op::Conv { .. } => Some(1),
            _ if depth > 0 => node
                .inputs
                .iter()
                .filter(|i| self.shapes[i.index()] == self.shapes[v.index()])
                .find_map(|&i| self.column_axis(i, depth - 1)),
            _ => None,
        }
    }

    /// Whether `v`, or a value computed from it by elementwise ops of its size (up to `depth` of
    /// them: a bias, a sigmoid), is an operand of an elementwise binary op with at least twice
    /// its elements (a broadcast).
    fn broadcast_downstream(&self, v: ValueId, depth: usize) -> bool {
        let numel = |x: ValueId| self.shapes[x.index()].iter().map(|&d| d as f64).product::<f64>();
        let mut frontier = vec![v];
        for _ in 0..=depth {
            let mut next = Vec::new();
            for &x in &frontier {
                for &(node, _) in self.users.get(&x).into_iter().flatten() {
                    let n = &self.graph.nodes[node];
                    match n.op {
                        Op::Binary(_) if numel(n.outputs[0]) >= 2.0 * numel(v) => return true,
                        // Elementwise steps of the same size (a bias added to the gate) carry
                        // the value on.
                        Op::Unary(_) | Op::Binary(_) if !next.contains(&n.outputs[0]) => next.push(n.outputs[0]),
                        _ => {}
                    }
                }
            }
            frontier = next;
        }
        false
    }

    /// Whether the consumers of `v` all end in one of them through chains of elementwise nodes
    /// whose value has that one use (SiLU's `sigmoid(x)` into `x * _`, GELU's `erf` chain into
    /// its final product): inlined into all, `v` is computed once, in that node's kernel.
    fn users_converge(&self, v: ValueId) -> bool {
        let users: Vec<usize> = self.users.get(&v).into_iter().flatten().map(|&(n, _)| n).collect();
        if users.len() > 8 {
            return false;
        }
        let leads_to = |mut node: usize, join: usize| {
            for _ in 0..8 {
                if node == join {
                    return true;
                }
                let n = &self.graph.nodes[node];
                let elementwise =
                    matches!(&self.computes[node], Some(Compute::Map(c)) if !crate::lower_reduce::contains_reduce(c));
                let [out] = n.outputs.as_slice() else { return false };
                let next: Vec<usize> = self.users.get(out).into_iter().flatten().map(|&(m, _)| m).collect();
                if !elementwise || self.is_output[out.index()] || next.is_empty() || next.iter().any(|&m| m != next[0])
                {
                    return false;
                }
                node = next[0];
            }
            false
        };
        users.iter().any(|&join| users.iter().all(|&u| leads_to(u, join)))
    }

    /// The most elements of any consumer `v` can be inlined into: its consumers, and theirs
    /// through nodes without reductions (elementwise ops and views), up to `depth` steps (each
    /// node visited once).
    fn largest_reach(&self, v: ValueId, depth: usize) -> f64 {
        let mut largest: f64 = 0.0;
        let mut seen = std::collections::BTreeSet::new();
        let mut frontier = vec![v];
        for _ in 0..=depth {
            let mut next = Vec::new();
            for x in frontier {
                for &(node, _) in self.users.get(&x).into_iter().flatten() {
                    if !seen.insert(node) {
                        continue;
                    }
                    let reduces = match &self.computes[node] {
                        Some(Compute::Map(c)) => crate::lower_reduce::contains_reduce(c),
                        _ => true,
                    };
                    for &out in &self.graph.nodes[node].outputs {
                        largest = largest.max(self.shapes[out.index()].iter().map(|&d| d as f64).product());
                        if !reduces {
                            next.push(out);
                        }
                    }
                }
            }
            frontier = next;
        }
        largest
    }

    /// The storage buffers the kernel of consumer `node` would bind with `v` inlined as `expr`:
    /// what its other operands read so far (one buffer for each operand not yet decided), and
    /// the one it writes.
    fn consumer_buffers(&self, node: usize, v: ValueId, expr: &Expr) -> usize {
        let mut reads: Vec<BufId> = Vec::new();
        let mut undecided = 0;
        for &u in &self.graph.nodes[node].inputs {
            match (u == v, self.avail.get(&u)) {
                (true, _) => collect_loads(expr, &mut reads),
                (false, Some(Avail::Buffer(id))) if !reads.contains(id) => reads.push(*id),
                (false, Some(Avail::Inline(e))) => collect_loads(e, &mut reads),
                (false, Some(_)) => {}
                (false, None) => undecided += 1,
            }
        }
        reads.len() + undecided + 1
    }
}

/// The keys ([`canonical_key`]) of the reductions of `e` outside any other.
fn contraction_keys(e: &Expr) -> Vec<String> {
    let mut keys = Vec::new();
    fn go(e: &Expr, keys: &mut Vec<String>) {
        match e {
            Expr::Reduce(r) => keys.push(canonical_key(r)),
            _ => e.for_each_child(|c| go(c, keys)),
        }
    }
    go(e, &mut keys);
    keys
}

/// Whether `e` has a reduction, outside any other, whose body depends on every axis of extent
/// above 1: each output element reduces its own inputs (a convolution or matmul), as opposed to
/// a reduction a whole row shares (softmax's maximum).
fn per_element_reduction(e: &Expr, shape: &[i64]) -> bool {
    fn go(e: &Expr, shape: &[i64]) -> bool {
        match e {
            Expr::Reduce(r) => {
                let mut used = vec![false; shape.len()];
                r.body.any(&mut |x| {
                    if let Expr::Axis(a) = x {
                        if let Some(u) = used.get_mut(*a as usize) {
                            *u = true;
                        }
                    }
                    false
                });
                shape.iter().zip(&used).all(|(&n, &u)| n == 1 || u)
            }
            _ => {
                let mut found = false;
                e.for_each_child(|c| found = found || go(c, shape));
                found
            }
        }
    }
    go(e, shape)
}

/// Whether to inline value `v`, computed by `op`, whose fused expression is `expr`: compares
/// the work each consumer does with `expr` inlined (counted as the scheduler runs it, see
/// [`Counter`]) against computing it once into a buffer, priced against the bytes the buffer
/// costs.
fn decide(cx: &DecideCx<'_>, v: ValueId, op: &Op, expr: &Expr, options: &FuseOptions, vars: &mut VarGen) -> Decision {
    let value = cx.graph.name_of(v).to_string();
    let no = |reason: String| Decision { value: value.clone(), inlined: false, reason };
    if !options.fuse {
        return no("fusion is off".into());
    }
    if cx.is_output[v.index()] {
        return no("graph output".into());
    }
    let users = cx.users.get(&v).map(Vec::as_slice).unwrap_or(&[]);
    if users.is_empty() {
        return no("unused".into());
    }
    if narrow_integer_for_contractions(cx, v, op, users) {
        // Quantized activations: the contraction loads a quarter of the bytes and widens them
        // as it loads (the cast is cheap enough to inline), and 8-bit operands are what integer
        // dot products read.
        return no("8- or 16-bit integers that contractions read widened: kept narrow in memory".into());
    }
    let size = expr_size(expr);
    if size > MAX_EXPR_NODES {
        return no(format!("expression has {size} nodes (limit {MAX_EXPR_NODES})"));
    }
    let shape = &cx.shapes[v.index()];
    if matches!(op, Op::Conv { .. } | Op::MatMul) && cx.broadcast_downstream(v, 8) {
        // A squeeze-and-excitation gate scaling a feature map: inlined, the small contraction
        // would run again for every element it is repeated over (and become the consumer's
        // contraction, scheduled as one).
        return no("a convolution or matmul that a larger consumer broadcasts".into());
    }
    if per_element_reduction(expr, shape) {
        if !options.nested_reductions && users.len() > 1 && !cx.users_converge(v) {
            // Each consumer could fuse a contraction of its own (a residual add its
            // convolution), which an inlined reduction would take the place of. (Consumers
            // that all end in one node, as SiLU's `x * sigmoid(x)` does, share one.)
            return no("a reduction read by several consumers, which each may fuse one contraction".into());
        }
        let flattened_into_concat = |node: usize| {
            matches!(cx.graph.nodes[node].op, Op::Reshape { .. })
                && reaches_through_views(cx, node, 4, &|op| matches!(op, Op::Concat { .. }))
        };
        if users.iter().any(|&(node, _)| flattened_into_concat(node)) {
            return no("it is flattened into a concatenation: a contraction keeps its own (tiled) kernel".into());
        }
        let columns = cx.column_axis(v, 8);
        let scatters_columns = |node: usize| match (&cx.graph.nodes[node].op, columns) {
            (Op::Transpose { perm }, Some(axis)) => perm.last().is_some_and(|&p| p != axis),
            _ => false,
        };
        if users.iter().any(|&(node, _)| scatters_columns(node)) {
            // Inlined, the tile's columns would be stored apart.
            return no("a transpose moves its columns from the last axis: the contraction writes its own layout".into());
        }
        let pads = users.iter().any(|&(node, _)| matches!(cx.graph.nodes[node].op, Op::Pad { .. }));
        if matches!(op, Op::Transpose { .. }) && pads {
            // (A quantized convolution's output moved channels-last for the next one.) Inlined,
            // the tile's rows would run over the padded border, every load under a mask.
            return no("a contraction moved by a transpose is stored before the pad that reads it".into());
        }
        let own = contraction_keys(expr);
        for &(node, _) in users {
            if cx.contractions_into.get(&node).is_some_and(|keys| keys.iter().any(|k| !own.contains(k))) {
                return no("its consumer already fuses a convolution or matmul (one contraction per kernel)".into());
            }
            let reduces =
                matches!(&cx.computes[node], Some(Compute::Map(c)) if crate::lower_reduce::contains_reduce(c));
            if reduces && !options.nested_reductions {
                return no("its consumer reduces over it, and this device schedules one contraction per kernel".into());
            }
        }
    }
    if options.max_buffers != u32::MAX {
        for &(node, _) in users {
            let bound = cx.consumer_buffers(node, v, expr);
            if bound > options.max_buffers as usize {
                let consumer = cx.graph.name_of(cx.graph.nodes[node].outputs[0]);
                return no(format!(
                    "inlined, the kernel of %{consumer} would bind {bound} storage buffers (the device allows {})",
                    options.max_buffers
                ));
            }
        }
    }
    let masked = expr.any(&mut |e| matches!(e, Expr::Load { mask: Some(_), .. }));
    if options.unmasked_contractions && masked && users.iter().any(|&(node, _)| feeds_contraction(cx, node, 4)) {
        return no("a convolution or matmul reads it: its register tiles load a buffer without masks".into());
    }
    let numel: f64 = shape.iter().map(|&d| d as f64).product::<f64>().max(1.0);
    if numel < MIN_PARALLEL_ROWS && crate::lower_reduce::contains_reduce(expr) {
        let reach = cx.largest_reach(v, 16);
        if reach >= MIN_PARALLEL_ELEMENTS {
            return no(format!(
                "it reduces to {numel} value(s) that consumers of up to {} elements read: inlined, they would run in {numel} row(s)",
                human(reach)
            ));
        }
    }
    let per_evaluation = work_per_element(expr, shape);
    let own_work = numel * per_evaluation;
    let sliced = |&(node, _): &(usize, usize)| matches!(cx.graph.nodes[node].op, Op::Slice { .. });
    let costly = options
        .reread_cost_limit
        .is_some_and(|limit| per_evaluation > limit as f64 || loads_across_last_axis(expr, shape.len()));
    if costly && users.iter().all(sliced) {
        // Overlapping slices (a convolution's taps, gathered into its window matrix) each
        // evaluate it once per element they take: its arithmetic, or its loads where they
        // gather a vector's lanes from apart (a transposed read).
        let taken: f64 = users
            .iter()
            .map(|&(node, _)| {
                cx.shapes[cx.graph.nodes[node].outputs[0].index()].iter().map(|&d| d as f64).product::<f64>()
            })
            .sum();
        if taken > numel * 1.5 {
            return no(format!(
                "its slices take each element {:.1} times, each costing {per_evaluation:.0} ops",
                taken / numel
            ));
        }
    }
    let mut inlined_work = 0.0;
    for &(node, operand) in users {
        let Some(Compute::Map(consumer)) = &cx.computes[node] else {
            return no("read by a program (a kernel with no per-element form)".into());
        };
        let out = &cx.shapes[cx.graph.nodes[node].outputs[0].index()];
        let elements: f64 = out.iter().map(|&d| d as f64).product();
        if let Some(limit) = options.reread_cost_limit.filter(|&limit| per_evaluation > limit as f64) {
            // A contraction re-reads its operands for every output they contribute to, in a
            // register tile's inner loop, and a broadcast for every element it is repeated
            // over: a value recomputed there costs that arithmetic whatever the bytes it saves.
            // (Only there, and with a margin: a select's branches each count in full, so a
            // pad's several load sites would look like re-reads.)
            let evaluations = elements * loads_per_element(consumer, out, BufId(operand as u32));
            let re_reads = per_element_reduction(consumer, out) || elements >= 2.0 * numel;
            if re_reads && evaluations > numel * 1.5 {
                let consumer = cx.graph.name_of(cx.graph.nodes[node].outputs[0]);
                return no(format!(
                    "%{consumer} evaluates it {:.1} times per element, each costing {per_evaluation:.0} ops (more than {limit})",
                    evaluations / numel
                ));
            }
        }
        let with = consumer.clone().rewrite(&mut |e| match e {
            Expr::Load { buf, dtype, index, mask } if buf.index() == operand => {
                let value = instantiate(expr, &index, vars);
                match mask {
                    Some(m) => Expr::select(*m, value, Expr::lit(0.0, dtype)),
                    None => value,
                }
            }
            e => e,
        });
        inlined_work += elements * (work_per_element(&with, out) - work_per_element(consumer, out));
    }
    // Priced in bytes: an operation costs 1/ops_per_byte of a byte moved, a transcendental as
    // many operations as it takes (`relative_cost`). (Recomputation's loads are not priced:
    // they hit the cache the first evaluation filled.)
    let extra = (inlined_work - own_work).max(0.0) / options.ops_per_byte.max(1) as f64;
    let bytes = numel * cx.graph.ty(v).dtype.size_bytes() as f64;
    let saved = bytes * (1.0 + users.len() as f64);
    let why = format!(
        "{} read(s); inlined it costs {} ops, computed once {}: recompute priced {} vs {} bytes saved",
        users.len(),
        human(inlined_work),
        human(own_work),
        human(extra),
        human(saved)
    );
    Decision { value, inlined: extra <= saved, reason: why }
}

/// Whether `expr`, over an output of rank `rank`, loads along its last axis from elements apart:
/// some load indexes by that axis other than in its own last place (a transpose's read).
fn loads_across_last_axis(expr: &Expr, rank: usize) -> bool {
    let Some(last) = rank.checked_sub(1).and_then(|r| u8::try_from(r).ok()) else { return false };
    let by_last = |e: &Expr| e.any(&mut |x| matches!(x, Expr::Axis(a) if *a == last));
    expr.any(&mut |e| match e {
        Expr::Load { index, .. } => {
            index.split_last().is_some_and(|(tail, rest)| !by_last(tail) && rest.iter().any(by_last))
        }
        _ => false,
    })
}

/// Whether `v` holds 8- or 16-bit integers computed by arithmetic (not a view: packed weights
/// are read through theirs) whose every consumer is a cast to a wider integer that only
/// convolutions and matmuls read (through views): the activations of a quantized model's
/// integer contraction.
fn narrow_integer_for_contractions(cx: &DecideCx<'_>, v: ValueId, op: &Op, users: &[(usize, usize)]) -> bool {
    // A transpose of computed values is a copy worth making (into the channels-last rows a
    // 1×1 convolution's integer product reads); one of a constant is a packed weight's view.
    let of_constant = || {
        let node = cx.producers[v.index()].map(|n| &cx.graph.nodes[n]);
        let input = node.and_then(|n| n.inputs.first()).and_then(|i| cx.producers[i.index()]);
        input.is_some_and(|n| matches!(cx.graph.nodes[n].op, Op::Constant(_)))
    };
    let view = match op {
        Op::Reshape { .. } | Op::Slice { .. } | Op::Expand { .. } => true,
        Op::Transpose { .. } => of_constant(),
        _ => false,
    };
    if view {
        return false;
    }
    let narrow = |d: DType| d.is_int() && d.size_bytes() <= 2;
    let widening = |&(node, _): &(usize, usize)| {
        let n = &cx.graph.nodes[node];
        let Op::Cast { to } = n.op else { return false };
        let readers = cx.users.get(&n.outputs[0]).map(Vec::as_slice).unwrap_or(&[]);
        to.is_int()
            && to.size_bytes() > 2
            && !readers.is_empty()
            && readers.iter().all(|&(reader, _)| feeds_contraction(cx, reader, 4))
    };
    narrow(cx.graph.ty(v).dtype) && !users.is_empty() && users.iter().all(widening)
}

/// Whether node `node` is a convolution or matmul, or a view (slice, reshape, transpose) of
/// which one reads, within `depth` views.
fn feeds_contraction(cx: &DecideCx<'_>, node: usize, depth: usize) -> bool {
    reaches_through_views(cx, node, depth, &|op| matches!(op, Op::Conv { .. } | Op::MatMul))
}

/// Whether node `node`'s op is a `target`, or `node` is a view (slice, reshape, transpose)
/// whose result a `target` reads, within `depth` views.
fn reaches_through_views(cx: &DecideCx<'_>, node: usize, depth: usize, target: &dyn Fn(&Op) -> bool) -> bool {
    let n = &cx.graph.nodes[node];
    if target(&n.op) {
        return true;
    }
    let view = matches!(n.op, Op::Slice { .. } | Op::Reshape { .. } | Op::Transpose { .. });
    view && depth > 0
        && n.outputs.iter().any(|o| {
            cx.users.get(o).is_some_and(|us| us.iter().any(|&(m, _)| reaches_through_views(cx, m, depth - 1, target)))
        })
}

fn human(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
