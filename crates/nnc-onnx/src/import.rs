//! Imports an ONNX model into the Graph IR.
//!
//! The importer walks the ONNX graph in order and hands each node to its converter in
//! [`crate::ops`]. Along the way it keeps every value that is known at import time (initializers,
//! `Constant` nodes, and small computations on them such as shape arithmetic) as a constant, so
//! that ops whose IR form needs a static attribute (`Reshape`'s target shape, `Slice`'s bounds)
//! can read it. Nodes whose operands are all known are folded by running the reference
//! interpreter on them. Problems are collected for every node, and reported all at once.

use crate::error::NodeProblem;
use crate::ops::{self, NodeCx};
use crate::proto::{tensor_shape_proto::dimension::Value as DimValue, type_proto, GraphProto, ModelProto};
use crate::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::OnnxError;
use bytes::Bytes;
use nnc_ir::{Dim, Graph, GraphBuilder, IrError, TensorData, TensorType, ValueId};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Options for [`import_file_with`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Values of graph inputs that may be used where an op needs a compile-time constant (for
    /// example a `Reshape` whose target shape is a graph input, as in the ONNX node tests).
    /// The graph stays correct only for these values; the inputs remain graph inputs.
    pub input_hints: HashMap<String, TensorData>,
    /// Concrete shapes for graph inputs, replacing the model's symbolic dimensions (for example
    /// the shapes of the data a model is about to run on). Shape computations and `If`
    /// conditions that depend on them are then resolved at import time.
    pub input_shapes: HashMap<String, Vec<usize>>,
}

/// Where an ONNX value lives during import.
#[derive(Clone)]
pub(crate) enum Slot {
    /// A value of the graph being built.
    Value(ValueId),
    /// A value known at import time; materialized as a `constant` node on first use as an operand.
    Known { data: TensorData, value: Option<ValueId> },
}

/// The ONNX values seen so far, by name.
#[derive(Default)]
pub(crate) struct Scope {
    pub slots: HashMap<String, Slot>,
    /// Input values usable as constants (see [`ImportOptions::input_hints`]).
    pub hints: HashMap<String, TensorData>,
    /// `DequantizeLinear` outputs with constant parameters, by name (see [`Dequantized`]).
    pub dequantized: HashMap<String, Dequantized>,
}

/// A `DequantizeLinear` output whose scale and zero point are constants: what it was computed
/// from, so a contraction reading it can compute in integers (`ops::integer_matmul`).
#[derive(Clone)]
pub(crate) struct Dequantized {
    /// The ONNX name of the integers it dequantizes.
    pub integers: String,
    pub scale: TensorData,
    pub zero_point: Option<TensorData>,
    /// The `axis` attribute (the scale's axis where it has several values), as written.
    pub axis: i64,
    pub block_size: i64,
}

/// What a `DequantizeLinear` node computes from, where its scale and zero point are constants
/// and its output is the scale's dtype.
fn dequantized(node: &crate::proto::NodeProto, scope: &Scope) -> Option<Dequantized> {
    if node.op_type() != "DequantizeLinear" || node.output.first().is_none_or(|o| o.is_empty()) {
        return None;
    }
    let known = |i: usize| match node.input.get(i).filter(|n| !n.is_empty()).map(|n| scope.slots.get(n)) {
        Some(Some(Slot::Known { data, .. })) => Some(Some(data.clone())),
        Some(_) => None,
        None => Some(None),
    };
    let int_attr = |name: &str, default: i64| {
        node.attribute.iter().find(|a| a.name() == name).map_or(Some(default), |a| a.ints.is_empty().then(|| a.i()))
    };
    if int_attr("output_dtype", 0)? != 0 {
        return None;
    }
    Some(Dequantized {
        integers: node.input.first()?.clone(),
        scale: known(1)??,
        zero_point: known(2)?,
        axis: int_attr("axis", 1)?,
        block_size: int_attr("block_size", 0)?,
    })
}

/// Imports an ONNX model file.
pub fn import_file(path: &Path) -> Result<Graph, OnnxError> {
    import_file_with(path, &ImportOptions::default())
}

/// Imports an ONNX model file with options.
pub fn import_file_with(path: &Path, options: &ImportOptions) -> Result<Graph, OnnxError> {
    import_model(&read_model(path)?, &path.display().to_string(), path.parent(), options)
}

/// The ONNX file at `path`, read and decoded once: [`inputs_of`] and [`import_model`] share it
/// (a large model's weights are not read, copied or decoded twice).
pub fn read_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let what = path.display().to_string();
    let bytes = nnc_ir::size::read_file(path).map_err(|source| OnnxError::Io { path: what.clone(), source })?;
    decode(Bytes::from(bytes), &what)
}

fn decode(bytes: Bytes, what: &str) -> Result<ModelProto, OnnxError> {
    ModelProto::decode(bytes).map_err(|source| OnnxError::Decode { what: what.to_string(), source })
}

/// Imports a serialized ONNX model. `what` names it in errors; `base_dir` is where external
/// data files live. Weights in `raw_data` are not copied: constants share the model's buffer.
pub fn import_bytes(
    bytes: Bytes,
    what: &str,
    base_dir: Option<&Path>,
    options: &ImportOptions,
) -> Result<Graph, OnnxError> {
    import_model(&decode(bytes, what)?, what, base_dir, options)
}

/// Imports a decoded ONNX model (see [`import_bytes`]).
pub fn import_model(
    model: &ModelProto,
    what: &str,
    base_dir: Option<&Path>,
    options: &ImportOptions,
) -> Result<Graph, OnnxError> {
    let opset =
        model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).map(|o| o.version()).unwrap_or(1);
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::invalid(what, "the model has no graph"))?;
    Importer { file: what.to_string(), base_dir, opset }.import_graph(graph, options)
}

/// The importer's fixed context: the file (for errors), where external data lives, and the
/// model's opset.
pub(crate) struct Importer<'a> {
    pub file: String,
    pub base_dir: Option<&'a Path>,
    pub opset: i64,
}

/// A stretch of a graph's nodes imported as a graph of its own (see
/// [`Importer::import_segment`]).
pub(crate) struct Segment {
    /// `None` where every output was known at import time.
    pub graph: Option<Graph>,
    /// Per requested output: the index of the graph output that computes it, or its value
    /// where the importer knew it (a folded constant).
    pub outputs: Vec<SegmentOutput>,
}

pub(crate) enum SegmentOutput {
    Computed(usize),
    Known(TensorData),
}

impl Importer<'_> {
    /// Imports `nodes`, a stretch of some graph, as a graph of its own for staged execution:
    /// the values they read from earlier stretches are graph `inputs` (with concrete types) or,
    /// where their values are `known`, constants. Every name in `outputs` must be computed by
    /// the stretch.
    pub(crate) fn import_segment(
        &self,
        nodes: &[crate::proto::NodeProto],
        inputs: &[(String, TensorType)],
        known: HashMap<String, TensorData>,
        outputs: &[String],
    ) -> Result<Segment, OnnxError> {
        let mut b = GraphBuilder::new("segment");
        let mut scope = Scope::default();
        for (name, data) in known {
            scope.slots.insert(name, Slot::Known { data, value: None });
        }
        for (name, ty) in inputs {
            let id =
                b.input(name, ty.dtype, ty.shape.clone()).map_err(|e| OnnxError::invalid(&self.file, e.to_string()))?;
            scope.slots.insert(name.clone(), Slot::Value(id));
        }
        let problems = self.import_nodes(nodes, &mut b, &mut scope);
        if !problems.is_empty() {
            return Err(OnnxError::Unsupported { file: self.file.clone(), problems });
        }
        let mut results = Vec::new();
        for name in outputs {
            match scope.slots.get(name).cloned() {
                Some(Slot::Known { data, .. }) => results.push(SegmentOutput::Known(data)),
                Some(Slot::Value(id)) => {
                    results.push(SegmentOutput::Computed(b.graph().outputs.len()));
                    b.output(id);
                }
                None => return Err(OnnxError::invalid(&self.file, format!("`{name}` is never computed"))),
            }
        }
        let computes = results.iter().any(|r| matches!(r, SegmentOutput::Computed(_)));
        let graph = match computes {
            true => Some(b.finish().map_err(|e| OnnxError::invalid(&self.file, e.to_string()))?),
            false => None,
        };
        Ok(Segment { graph, outputs: results })
    }

    fn import_graph(&self, g: &GraphProto, options: &ImportOptions) -> Result<Graph, OnnxError> {
        let name = if g.name().is_empty() { "main" } else { g.name() };
        let mut b = GraphBuilder::new(&sanitize_graph_name(name));
        let mut scope = Scope { hints: options.input_hints.clone(), ..Scope::default() };

        for init in &g.initializer {
            let what = format!("{}: initializer `{}`", self.file, init.name());
            let data = tensor_from_proto(init, &what, self.base_dir)?;
            scope.slots.insert(init.name().to_string(), Slot::Known { data, value: None });
        }
        // Older models list initializers among the inputs too; those are constants, not inputs.
        let initializers: HashSet<&str> = g.initializer.iter().map(|i| i.name()).collect();
        for input in g.input.iter().filter(|i| !initializers.contains(i.name())) {
            let ty = value_type(input, options.input_shapes.get(input.name()))
                .map_err(|m| OnnxError::invalid(format!("{}: graph input `{}`", self.file, input.name()), m))?;
            let id =
                b.input(input.name(), ty.dtype, ty.shape).map_err(|e| OnnxError::invalid(&self.file, e.to_string()))?;
            scope.slots.insert(input.name().to_string(), Slot::Value(id));
        }

        let problems = self.import_nodes(&g.node, &mut b, &mut scope);
        if !problems.is_empty() {
            return Err(OnnxError::Unsupported { file: self.file.clone(), problems });
        }

        for out in &g.output {
            let slot = scope.slots.get(out.name()).cloned();
            let Some(slot) = slot else {
                return Err(OnnxError::invalid(&self.file, format!("graph output `{}` is never computed", out.name())));
            };
            let id = materialize(&mut b, slot);
            b.output(id);
        }
        b.finish().map_err(|e| OnnxError::invalid(&self.file, e.to_string()))
    }

    /// Converts every node, returning the problems of all nodes that failed. A node whose
    /// operands come from a failed node is skipped silently: its cause is already reported.
    fn import_nodes(
        &self,
        nodes: &[crate::proto::NodeProto],
        b: &mut GraphBuilder,
        scope: &mut Scope,
    ) -> Vec<NodeProblem> {
        let mut problems = Vec::new();
        let mut poisoned: HashSet<String> = HashSet::new();
        // Unsupported op types are reported for every node up front (in branches too), even
        // those downstream of another failure, so one run lists everything that is missing.
        self.collect_unsupported(nodes, &mut problems);
        if !problems.is_empty() {
            return problems;
        }
        for (i, node) in nodes.iter().enumerate() {
            if node.input.iter().any(|n| poisoned.contains(n)) {
                poisoned.extend(node.output.iter().cloned());
                continue;
            }
            if let Err(failure) = self.import_node(node, b, scope) {
                problems.push(problem(node, i, failure));
                poisoned.extend(node.output.iter().cloned());
            }
        }
        problems
    }

    fn collect_unsupported(&self, nodes: &[crate::proto::NodeProto], problems: &mut Vec<NodeProblem>) {
        for (i, node) in nodes.iter().enumerate() {
            if let Err(message) = ops::check_supported(node, self.opset) {
                problems.push(problem(node, i, message.into()));
            }
            for sub in node.attribute.iter().filter_map(|a| a.g.as_ref()) {
                self.collect_unsupported(&sub.node, problems);
            }
        }
    }

    fn import_node(
        &self,
        node: &crate::proto::NodeProto,
        b: &mut GraphBuilder,
        scope: &mut Scope,
    ) -> Result<(), Failure> {
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            if !scope.slots.contains_key(name) {
                return Err(format!("input `{name}` is not defined before this node").into());
            }
        }
        match node.op_type() {
            "If" => return self.import_if(node, b, scope),
            "Loop" => return self.import_loop(node, b, scope),
            "Scan" => return self.import_scan(node, b, scope).map_err(Failure::from),
            op if crate::staged::runs_on_host(op) => return Err(Failure::run_time(crate::staged::why_on_host(op))),
            _ => {}
        }
        if let Some(dq) = dequantized(node, scope) {
            scope.dequantized.insert(node.output[0].clone(), dq);
        }
        let known_inputs =
            node.input.iter().filter(|n| !n.is_empty()).all(|n| matches!(scope.slots.get(n), Some(Slot::Known { .. })));
        if known_inputs && ops::foldable(node) {
            if let Some(values) = self.fold(node, scope)? {
                for (name, data) in node.output.iter().zip(values) {
                    scope.slots.insert(name.clone(), Slot::Known { data, value: None });
                }
                return Ok(());
            }
        }
        let outputs = {
            let mut cx = NodeCx::new(node, self.opset, b, scope, self.base_dir);
            ops::convert(&mut cx)?
        };
        for (k, name) in node.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match outputs.get(k) {
                Some(out) => {
                    scope.slots.insert(name.clone(), out.clone());
                    if let Slot::Value(id) = out {
                        name_value(b, *id, name);
                    }
                }
                None => return Err(format!("optional output {k} (`{name}`) is not supported").into()),
            }
        }
        Ok(())
    }

    /// `If`: with a condition known at import time, the taken branch is imported in place of
    /// the node. Otherwise both branches are imported and each output is a `select` on the
    /// condition, which needs both branches to give outputs of the same types.
    fn import_if(
        &self,
        node: &crate::proto::NodeProto,
        b: &mut GraphBuilder,
        scope: &mut Scope,
    ) -> Result<(), Failure> {
        let branch = |name: &str| {
            node.attribute
                .iter()
                .find(|a| a.name() == name)
                .and_then(|a| a.g.as_ref())
                .ok_or(format!("`{name}` is missing"))
        };
        let (then_g, else_g) = (branch("then_branch")?, branch("else_branch")?);
        let cond_name = node.input.first().filter(|n| !n.is_empty()).ok_or("the condition is missing")?;
        let known = match scope.slots.get(cond_name) {
            Some(Slot::Known { data, .. }) => Some(data.clone()),
            _ => scope.hints.get(cond_name).cloned(),
        };
        let outputs = match known {
            Some(cond) => {
                let taken = cond.to_i64_vec().first().copied().ok_or("the condition is empty")? != 0;
                self.import_branch(if taken { then_g } else { else_g }, b, scope)?
            }
            None => {
                // Both branches are computed and the condition selects; a branch that cannot
                // be built for these shapes is reported as such (ONNX Runtime fails there too
                // when that branch is taken).
                let unknown = |which: &str, e: Failure| {
                    Failure::run_time(format!(
                        "the condition `{cond_name}` is known only at run time, so a compiled graph holds both \
                         branches, and the {which} branch cannot be built for these input shapes: {}",
                        e.message
                    ))
                };
                let then_out = self.import_branch(then_g, b, scope).map_err(|e| unknown("then", e))?;
                let else_out = self.import_branch(else_g, b, scope).map_err(|e| unknown("else", e))?;
                let cond = match scope.slots.get(cond_name) {
                    Some(Slot::Value(id)) => *id,
                    _ => return Err(Failure::from("the condition is not a value")),
                };
                let mut merged = Vec::new();
                for (k, (t, e)) in then_out.into_iter().zip(else_out).enumerate() {
                    let (t, e) = (materialize(b, t), materialize(b, e));
                    if b.ty(t) != b.ty(e) {
                        return Err(Failure::run_time(format!(
                            "the condition is only known at run time and output {k} differs between branches ({} vs {}), \
                             so one compiled graph cannot hold both",
                            b.ty(t),
                            b.ty(e)
                        )));
                    }
                    merged.push(Slot::Value(b.select(cond, t, e).map_err(ir_message)?));
                }
                merged
            }
        };
        if outputs.len() != node.output.len() {
            return Err(format!("the branch has {} outputs, the node {}", outputs.len(), node.output.len()).into());
        }
        for (name, slot) in node.output.iter().zip(outputs) {
            if let Slot::Value(id) = slot {
                name_value(b, id, name);
            }
            scope.slots.insert(name.clone(), slot);
        }
        Ok(())
    }

    /// `Loop`, unrolled: its trip count and every condition must be known at import time (as
    /// they are in loops over shapes or fixed counts). Each iteration imports the body again with
    /// the iteration number, condition and loop-carried values bound to its inputs; scan outputs
    /// are stacked along a new first axis.
    fn import_loop(
        &self,
        node: &crate::proto::NodeProto,
        b: &mut GraphBuilder,
        scope: &mut Scope,
    ) -> Result<(), Failure> {
        const MAX_ITERATIONS: i64 = 4096;
        let body =
            node.attribute.iter().find(|a| a.name() == "body").and_then(|a| a.g.as_ref()).ok_or("`body` is missing")?;
        let known = |scope: &Scope, name: &str| -> Option<TensorData> {
            match scope.slots.get(name) {
                Some(Slot::Known { data, .. }) => Some(data.clone()),
                _ => scope.hints.get(name).cloned(),
            }
        };
        let operand = |i: usize| node.input.get(i).filter(|n| !n.is_empty());
        let trip_count = match operand(0) {
            Some(name) => {
                let t = known(scope, name).ok_or(Failure::run_time(
                    "the trip count is known only at run time (only a loop with a known count is unrolled)",
                ))?;
                Some(t.to_i64_vec().first().copied().ok_or("the trip count is empty")?)
            }
            None => None,
        };
        let uses_cond = operand(1).is_some();
        let mut cond = match operand(1) {
            Some(name) => known(scope, name).ok_or(Failure::run_time(
                "the loop condition is known only at run time (only a loop with known conditions is unrolled)",
            ))?,
            None => TensorData::scalar(true),
        };
        let carried_names: Vec<&String> = node.input.iter().skip(2).collect();
        let n_carried = carried_names.len();
        if body.input.len() != n_carried + 2 || body.output.len() < n_carried + 1 {
            return Err(format!(
                "the body has {} inputs and {} outputs for {n_carried} loop-carried values",
                body.input.len(),
                body.output.len()
            )
            .into());
        }
        let mut carried: Vec<Slot> = carried_names
            .iter()
            .map(|n| scope.slots.get(*n).cloned().ok_or_else(|| format!("`{n}` is not defined")))
            .collect::<Result<_, _>>()?;
        let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); body.output.len() - 1 - n_carried];
        let mut i = 0i64;
        while trip_count.is_none_or(|m| i < m) && cond.to_i64_vec().first().copied().unwrap_or(0) != 0 {
            if i >= MAX_ITERATIONS {
                return Err(Failure::run_time(format!(
                    "the loop runs more than {MAX_ITERATIONS} iterations, too many to unroll"
                )));
            }
            scope
                .slots
                .insert(body.input[0].name().to_string(), Slot::Known { data: TensorData::scalar(i), value: None });
            scope.slots.insert(body.input[1].name().to_string(), Slot::Known { data: cond.clone(), value: None });
            for (input, slot) in body.input[2..].iter().zip(&carried) {
                scope.slots.insert(input.name().to_string(), slot.clone());
            }
            let outputs = self.import_branch(body, b, scope)?;
            if uses_cond {
                cond = match &outputs[0] {
                    Slot::Known { data, .. } => data.clone(),
                    Slot::Value(_) => return Err(Failure::run_time("the loop condition is computed at run time")),
                };
            }
            carried = outputs[1..=n_carried].to_vec();
            for (scan, slot) in scans.iter_mut().zip(outputs.into_iter().skip(1 + n_carried)) {
                let v = materialize(b, slot);
                let mut shape = vec![nnc_ir::Dim::constant(1)];
                shape.extend(b.ty(v).shape.iter().cloned());
                scan.push(b.reshape(v, shape).map_err(ir_message)?);
            }
            i += 1;
        }
        let mut results = carried;
        for scan in scans {
            if scan.is_empty() {
                return Err(Failure::run_time("a loop with zero iterations has scan outputs of unknown shape"));
            }
            results.push(Slot::Value(b.concat(&scan, 0).map_err(ir_message)?));
        }
        for (name, slot) in node.output.iter().zip(results) {
            if let Slot::Value(id) = slot {
                name_value(b, id, name);
            }
            scope.slots.insert(name.clone(), slot);
        }
        Ok(())
    }

    /// `Scan` (opset 9 on), unrolled over its scan inputs' length, which their static shapes
    /// give: each step imports the body again with the state values and each scan input's slice
    /// (the scan axis removed, taken from the end for direction 1) bound to its inputs; the scan
    /// outputs' slices are stacked along their axes (in reverse for direction 1).
    fn import_scan(
        &self,
        node: &crate::proto::NodeProto,
        b: &mut GraphBuilder,
        scope: &mut Scope,
    ) -> Result<(), String> {
        const MAX_ITERATIONS: usize = 4096;
        if self.opset < 9 {
            return Err("Scan before opset 9 (with sequence_lens and a batch axis) is not supported".into());
        }
        let attr = |name: &str| node.attribute.iter().find(|a| a.name() == name);
        let body = attr("body").and_then(|a| a.g.as_ref()).ok_or("`body` is missing")?;
        let ints = |name: &str| attr(name).map(|a| a.ints.clone());
        let scan_count = attr("num_scan_inputs").and_then(|a| a.i).ok_or("`num_scan_inputs` is missing")?;
        let scan_count = usize::try_from(scan_count).ok().filter(|&m| m >= 1 && m <= node.input.len());
        let scan_count = scan_count.ok_or("`num_scan_inputs` does not fit the node's inputs")?;
        let state_count = node.input.len() - scan_count;
        let output_scans = body.output.len().checked_sub(state_count).ok_or("the body has too few outputs")?;
        if body.input.len() != node.input.len() {
            return Err(format!("the body has {} inputs, the node {}", body.input.len(), node.input.len()));
        }
        let per_input = |name: &str, count: usize| -> Result<Vec<i64>, String> {
            let v = ints(name).unwrap_or_default();
            match v.len() {
                0 => Ok(vec![0; count]),
                n if n == count => Ok(v),
                n => Err(format!("`{name}` has {n} entries for {count} scans")),
            }
        };
        let (in_axes, in_directions) =
            (per_input("scan_input_axes", scan_count)?, per_input("scan_input_directions", scan_count)?);
        let (out_axes, out_directions) =
            (per_input("scan_output_axes", output_scans)?, per_input("scan_output_directions", output_scans)?);
        let slot =
            |scope: &Scope, name: &String| scope.slots.get(name).cloned().ok_or(format!("`{name}` is not defined"));
        let mut states: Vec<Slot> =
            node.input[..state_count].iter().map(|n| slot(scope, n)).collect::<Result<_, _>>()?;
        let mut inputs = Vec::new();
        let mut length = None;
        for (k, name) in node.input[state_count..].iter().enumerate() {
            let x = materialize(b, slot(scope, name)?);
            let rank = b.ty(x).rank() as i64;
            let axis = in_axes[k] + if in_axes[k] < 0 { rank } else { 0 };
            let axis =
                usize::try_from(axis).ok().filter(|&a| (a as i64) < rank).ok_or("a scan axis is out of range")?;
            let len = b.ty(x).shape[axis]
                .as_const()
                .ok_or("the scanned axis must have a static length (nnc unrolls Scan)")?;
            if length.is_some_and(|l| l != len) {
                return Err("the scan inputs have different lengths".into());
            }
            length = Some(len);
            inputs.push((x, axis));
        }
        let length = length.unwrap_or(0) as usize;
        if length > MAX_ITERATIONS {
            return Err(format!("the scan runs {length} iterations, more than {MAX_ITERATIONS}; nnc unrolls Scan"));
        }
        let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); output_scans];
        for t in 0..length {
            for (input, state) in body.input.iter().zip(&states) {
                scope.slots.insert(input.name().to_string(), state.clone());
            }
            for (k, &(x, axis)) in inputs.iter().enumerate() {
                let i = if in_directions[k] == 1 { length - 1 - t } else { t } as i64;
                let piece = b.slice_axis(x, axis, i, i + 1).map_err(ir_message)?;
                let mut shape = b.ty(piece).shape.clone();
                shape.remove(axis);
                let piece = b.reshape(piece, shape).map_err(ir_message)?;
                scope.slots.insert(body.input[state_count + k].name().to_string(), Slot::Value(piece));
            }
            let outputs = self.import_branch(body, b, scope).map_err(|f| f.message)?;
            states = outputs[..state_count].to_vec();
            for (j, slot) in outputs.into_iter().skip(state_count).enumerate() {
                let v = materialize(b, slot);
                let mut shape = b.ty(v).shape.clone();
                let rank = shape.len() as i64 + 1;
                let axis = out_axes[j] + if out_axes[j] < 0 { rank } else { 0 };
                let axis = usize::try_from(axis)
                    .ok()
                    .filter(|&a| (a as i64) < rank)
                    .ok_or("a scan output axis is out of range")?;
                shape.insert(axis, nnc_ir::Dim::constant(1));
                scans[j].push(b.reshape(v, shape).map_err(ir_message)?);
            }
        }
        let mut results = states;
        for (j, mut scan) in scans.into_iter().enumerate() {
            if scan.is_empty() {
                return Err("a scan of length zero has scan outputs of unknown shape".into());
            }
            if out_directions[j] == 1 {
                scan.reverse();
            }
            let rank = b.ty(scan[0]).rank() as i64;
            let axis = out_axes[j] + if out_axes[j] < 0 { rank } else { 0 };
            results.push(Slot::Value(b.concat(&scan, axis).map_err(ir_message)?));
        }
        for (name, slot) in node.output.iter().zip(results) {
            if name.is_empty() {
                continue;
            }
            if let Slot::Value(id) = slot {
                name_value(b, id, name);
            }
            scope.slots.insert(name.clone(), slot);
        }
        Ok(())
    }

    /// Imports a subgraph's nodes into the enclosing scope (ONNX names are unique across
    /// subgraphs, and a subgraph may read any value of its enclosing graphs) and returns its outputs.
    fn import_branch(&self, g: &GraphProto, b: &mut GraphBuilder, scope: &mut Scope) -> Result<Vec<Slot>, Failure> {
        for init in &g.initializer {
            let data = tensor_from_proto(init, init.name(), self.base_dir).map_err(|e| e.to_string())?;
            scope.slots.insert(init.name().to_string(), Slot::Known { data, value: None });
        }
        let problems = self.import_nodes(&g.node, b, scope);
        if let Some(p) = problems.first() {
            return Err(Failure { message: format!("in a branch: {p}"), run_time: p.run_time });
        }
        g.output
            .iter()
            .map(|o| {
                scope
                    .slots
                    .get(o.name())
                    .cloned()
                    .ok_or_else(|| format!("branch output `{}` is never computed", o.name()).into())
            })
            .collect()
    }

    /// Computes a node whose operands are all known, by converting it into a scratch graph and
    /// running the reference interpreter. `None` if the operands are too large to be worth it,
    /// except for `DequantizeLinear`: a quantized weight becomes the float weight the kernels
    /// read (laid out for them at compile time like any other), whatever its size, since its
    /// result has as many elements as its input.
    fn fold(&self, node: &crate::proto::NodeProto, scope: &Scope) -> Result<Option<Vec<TensorData>>, String> {
        let dequantize = node.op_type() == "DequantizeLinear";
        let max_fold_elements: usize = if dequantize { usize::MAX } else { 1 << 16 };
        let mut total = 0;
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            if let Some(Slot::Known { data, .. }) = scope.slots.get(name) {
                total += data.len();
            }
        }
        if total > max_fold_elements {
            return Ok(None);
        }
        let mut scratch_scope = Scope { hints: scope.hints.clone(), ..Scope::default() };
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            if let Some(Slot::Known { data, .. }) = scope.slots.get(name) {
                scratch_scope.slots.insert(name.clone(), Slot::Known { data: data.clone(), value: None });
            }
        }
        let mut b = GraphBuilder::new("fold");
        let outputs = {
            let mut cx = NodeCx::new(node, self.opset, &mut b, &mut scratch_scope, self.base_dir);
            ops::convert(&mut cx)?
        };
        // Large results (a broadcast of a small constant, say) stay in the graph as ops rather
        // than being computed and stored here.
        for slot in &outputs {
            if let Slot::Value(id) = slot {
                let n = b.ty(*id).static_shape().map(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)));
                if !matches!(n, Some(Some(n)) if n <= max_fold_elements) {
                    return Ok(None);
                }
            }
        }
        let mut results = Vec::new();
        let mut pending = Vec::new();
        for slot in outputs.iter().take(node.output.len()) {
            match slot {
                Slot::Known { data, .. } => results.push(Some(data.clone())),
                Slot::Value(id) => {
                    pending.push(*id);
                    results.push(None);
                }
            }
        }
        if !pending.is_empty() {
            for id in &pending {
                b.output(*id);
            }
            let graph = b.finish().map_err(ir_message)?;
            let mut values =
                nnc_interp::run(&graph, &[]).map_err(|e| format!("while folding constants: {e}"))?.into_iter();
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = values.next();
            }
        }
        Ok(Some(results.into_iter().flatten().collect()))
    }
}

/// The value of a slot, adding a constant node for a known one.
fn materialize(b: &mut GraphBuilder, slot: Slot) -> ValueId {
    match slot {
        Slot::Value(id) => id,
        Slot::Known { data, .. } => b.constant(data),
    }
}

/// Gives value `id` the ONNX name `name` unless another value already has it, so dumps and
/// errors speak the model's names.
fn name_value(b: &mut GraphBuilder, id: ValueId, name: &str) {
    if b.graph().find(name).is_none() {
        // Cannot fail: the name was just checked to be free.
        let _ = b.set_name(id, name);
    }
}

fn problem(node: &crate::proto::NodeProto, index: usize, failure: Failure) -> NodeProblem {
    let name = if node.name().is_empty() { format!("#{index}") } else { node.name().to_string() };
    NodeProblem {
        node: name,
        op_type: node.op_type().to_string(),
        message: failure.message,
        run_time: failure.run_time,
    }
}

/// Why a node could not be imported, and whether values known at run time would let it run
/// (see [`NodeProblem::run_time`]).
pub(crate) struct Failure {
    message: String,
    run_time: bool,
}

impl Failure {
    fn run_time(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), run_time: true }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { message, run_time: false }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure { message: message.to_string(), run_time: false }
    }
}

/// A builder error as a message for a node problem (the builder's source location is ours, not
/// the user's, so it is left out).
pub(crate) fn ir_message(e: IrError) -> String {
    match e {
        IrError::Build { op, message, .. } => format!("`{op}`: {message}"),
        other => other.to_string(),
    }
}

/// The IR type of a graph input. Unnamed unknown dimensions become fresh symbols; `concrete`
/// replaces the declared shape (checked against it).
pub(crate) fn value_type(
    v: &crate::proto::ValueInfoProto,
    concrete: Option<&Vec<usize>>,
) -> Result<TensorType, String> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err("only tensor inputs are supported (this input has no tensor type)".into());
    };
    let dtype = dtype_from_onnx(t.elem_type())?;
    let mut shape = Vec::new();
    if let Some(s) = &t.shape {
        for (axis, d) in s.dim.iter().enumerate() {
            shape.push(match &d.value {
                Some(DimValue::DimValue(n)) if *n >= 0 => Dim::constant(*n),
                Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::sym(&sanitize_symbol(p)),
                _ => Dim::sym(&format!("{}_dim{axis}", sanitize_symbol(v.name()))),
            });
        }
    } else if concrete.is_none() {
        return Err("the input has no shape; nnc needs at least its rank".into());
    }
    if let Some(c) = concrete {
        let declared = TensorType { dtype, shape: shape.clone() };
        let fits = t.shape.is_none()
            || (c.len() == shape.len()
                && shape.iter().zip(c).all(|(d, &n)| d.as_const().is_none_or(|k| k == n as i64)));
        if !fits {
            return Err(format!("the model declares {declared}, which does not admit shape {c:?}"));
        }
        shape = c.iter().map(|&n| Dim::from(n)).collect();
    }
    Ok(TensorType { dtype, shape })
}

/// ONNX `dim_param`s may hold any text; symbols are identifiers.
fn sanitize_symbol(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

fn sanitize_graph_name(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out
    } else {
        format!("g_{out}")
    }
}

/// The names and declared types of a model's graph inputs (initializers excluded), in order,
/// without importing the graph.
pub fn read_inputs(path: &Path) -> Result<Vec<(String, TensorType)>, OnnxError> {
    inputs_of(&read_model(path)?, &path.display().to_string())
}

/// [`read_inputs`] of a decoded model (`what` names it in errors).
pub fn inputs_of(model: &ModelProto, what: &str) -> Result<Vec<(String, TensorType)>, OnnxError> {
    let g = model.graph.as_ref().ok_or_else(|| OnnxError::invalid(what, "the model has no graph"))?;
    let initializers: HashSet<&str> = g.initializer.iter().map(|i| i.name()).collect();
    g.input
        .iter()
        .filter(|i| !initializers.contains(i.name()))
        .map(|i| {
            let ty = value_type(i, None)
                .map_err(|m| OnnxError::invalid(format!("{what}: graph input `{}`", i.name()), m))?;
            Ok((i.name().to_string(), ty))
        })
        .collect()
}
