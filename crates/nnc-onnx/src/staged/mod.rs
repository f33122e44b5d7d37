//! Staged execution: ONNX models whose control flow or shapes are decided by values known only
//! at run time.
//!
//! The importer turns a model into one graph when everything that shapes it is known before it
//! runs. Where it is not (an `If` whose condition or a `Loop` whose trip count is computed from
//! the inputs, sequence and optional values, ops whose output shape depends on data) the model
//! runs staged: [`Staged`] walks the ONNX graph, imports each maximal stretch of ordinary nodes
//! as a graph of its own, for the concrete types of the values it reads, has a [`GraphRunner`]
//! (any target) compile it once per such types and run it, and runs control flow and the
//! [`host`] nodes itself between those graphs, holding values as [`HostValue`]s. An `If` runs only
//! the branch taken and a `Loop` its body once per iteration, each compiled once; a branch
//! never taken is never imported, so it is never checked against shapes it would not see.
//!
//! What it costs: each such node is a graph boundary, where values pass through host memory
//! (a read-back on a GPU) and fusion stops. A stretch that fails to import as it is (an op
//! needs a constant: a `Reshape` to a shape computed before an `If`, a `Slice` by a loop's
//! iteration number) is imported again with its small integer operands as constants, and
//! compiled once per distinct values of them.

mod host;
mod values;

pub(crate) use host::{runs_on_host, why_on_host};
pub use values::read_value;

use crate::import::{value_type, Importer, Segment, SegmentOutput};
use crate::proto::{type_proto, GraphProto, ModelProto, NodeProto, TypeProto, ValueInfoProto};
use crate::tensor::tensor_from_proto;
use crate::OnnxError;
use nnc_ir::{DType, Dim, Graph, TensorData, TensorType};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// A value of a staged run: a tensor, a sequence of tensors, or an optional value.
#[derive(Clone, Debug, PartialEq)]
pub enum HostValue {
    Tensor(TensorData),
    Sequence(Vec<TensorData>),
    Optional(Option<Box<HostValue>>),
}

impl HostValue {
    /// `a tensor`, `a sequence`, `an optional value`: for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            HostValue::Tensor(_) => "a tensor",
            HostValue::Sequence(_) => "a sequence",
            HostValue::Optional(_) => "an optional value",
        }
    }

    /// The tensor this value is, or an error saying what it is instead.
    pub fn into_tensor(self) -> Result<TensorData, String> {
        match self {
            HostValue::Tensor(t) => Ok(t),
            other => Err(format!("{}, not a tensor", other.kind())),
        }
    }
}

/// Compiles and runs the graphs of a staged model on some target.
pub trait GraphRunner {
    /// Compiles `graph` (all of whose shapes are static); returns a handle for [`Self::run`].
    fn compile(&mut self, graph: Graph) -> Result<usize, String>;
    /// Runs compiled graph `handle` on `inputs` (in its inputs' order); returns its outputs.
    fn run(&mut self, handle: usize, inputs: &[TensorData]) -> Result<Vec<TensorData>, String>;
}

/// The reference interpreter as a [`GraphRunner`].
#[derive(Default)]
pub struct Interpreted {
    graphs: Vec<Graph>,
}

impl GraphRunner for Interpreted {
    fn compile(&mut self, graph: Graph) -> Result<usize, String> {
        self.graphs.push(graph);
        Ok(self.graphs.len() - 1)
    }

    fn run(&mut self, handle: usize, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        nnc_interp::run(&self.graphs[handle], inputs).map_err(|e| e.to_string())
    }
}

/// Whether `error`, from importing a whole model, is one that staged execution removes: every
/// node it lists needs values known only at run time.
pub fn needs_staging(error: &OnnxError) -> bool {
    matches!(error, OnnxError::Unsupported { problems, .. } if !problems.is_empty() && problems.iter().all(|p| p.run_time))
}

/// Why a staged run failed.
#[derive(Debug, thiserror::Error)]
pub enum StagedError {
    #[error(transparent)]
    Import(#[from] OnnxError),
    #[error("{file}: node `{node}` ({op}): {message}")]
    Node { file: String, node: String, op: String, message: String },
    #[error("{file}: {message}")]
    Run { file: String, message: String },
}

/// A decoded ONNX model ready for staged runs: its interface and its initializers, decoded once.
pub struct StagedModel {
    model: ModelProto,
    file: String,
    base_dir: Option<PathBuf>,
    opset: i64,
    inputs: Vec<(String, Option<TensorType>)>,
    outputs: Vec<String>,
    initializers: HashMap<String, TensorData>,
}

impl StagedModel {
    /// `what` names the model in errors; `base_dir` is where its external data lives.
    pub fn new(model: ModelProto, what: &str, base_dir: Option<&Path>) -> Result<StagedModel, OnnxError> {
        let opset =
            model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).map(|o| o.version()).unwrap_or(1);
        let graph = model.graph.as_ref().ok_or_else(|| OnnxError::invalid(what, "the model has no graph"))?;
        let initialized: HashSet<&str> = graph.initializer.iter().map(|i| i.name()).collect();
        let mut inputs = Vec::new();
        for input in graph.input.iter().filter(|i| !initialized.contains(i.name())) {
            let ty = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::SequenceType(_) | type_proto::Value::OptionalType(_)) => None,
                _ => Some(
                    value_type(input, None)
                        .map_err(|m| OnnxError::invalid(format!("{what}: graph input `{}`", input.name()), m))?,
                ),
            };
            inputs.push((input.name().to_string(), ty));
        }
        let outputs = graph.output.iter().map(|o| o.name().to_string()).collect();
        let mut initializers = HashMap::new();
        for init in &graph.initializer {
            let data = tensor_from_proto(init, &format!("{what}: initializer `{}`", init.name()), base_dir)?;
            initializers.insert(init.name().to_string(), data);
        }
        let base_dir = base_dir.map(Path::to_path_buf);
        Ok(StagedModel { model, file: what.to_string(), base_dir, opset, inputs, outputs, initializers })
    }

    /// The graph inputs' names and declared types, in order (`None` for a sequence or
    /// optional value).
    pub fn inputs(&self) -> &[(String, Option<TensorType>)] {
        &self.inputs
    }

    /// The declared types of the graph's inputs and outputs, in order (for [`read_value`]).
    pub fn io_types(&self) -> (Vec<Option<&TypeProto>>, Vec<Option<&TypeProto>>) {
        let g = self.graph();
        let initialized: HashSet<&str> = g.initializer.iter().map(|i| i.name()).collect();
        let inputs = g.input.iter().filter(|i| !initialized.contains(i.name())).map(|i| i.r#type.as_ref()).collect();
        (inputs, g.output.iter().map(|o| o.r#type.as_ref()).collect())
    }

    /// The graph outputs' names, in order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn graph(&self) -> &GraphProto {
        self.model.graph.as_ref().expect("checked in new")
    }
}

/// Counts of what staged runs did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StagedStats {
    /// Graphs compiled (stretches of nodes, once per distinct operand types).
    pub compiled: usize,
    /// Runs of compiled graphs.
    pub graph_runs: usize,
    /// Nodes run on the host (control flow, sequences, data-shaped ops).
    pub host_nodes: usize,
}

/// More compiled graphs than this means the shapes change at every step (a loop growing a
/// tensor): an error rather than unbounded compiling.
const MAX_COMPILED: usize = 1024;
/// Iterations of one `Loop` before the run stops with an error.
const MAX_ITERATIONS: i64 = 1 << 20;
/// Bytes a `Loop`'s scan outputs may hold before the run stops with an error.
const MAX_SCAN_BYTES: usize = 1 << 30;
/// Integer operands with at most this many elements may be made constants (see the module
/// documentation).
const MAX_SPECIALIZED_ELEMENTS: usize = 64;

/// A model being run staged on one runner, with the graphs compiled so far.
pub struct Staged<R> {
    model: Arc<StagedModel>,
    runner: R,
    segments: HashMap<SegmentKey, Cached>,
    lists: HashMap<usize, Rc<ListInfo>>,
    plans: HashMap<(usize, usize, usize), Rc<StretchPlan>>,
    subgraph_initializers: HashMap<usize, Rc<Vec<(String, TensorData)>>>,
    stats: StagedStats,
}

/// A stretch of one node list (`list` is the list's address, a key only), for operands of
/// these types.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SegmentKey {
    list: usize,
    start: usize,
    end: usize,
    types: Vec<(DType, Vec<usize>)>,
}

enum Cached {
    Ready(Rc<Compiled>),
    /// Imported with its small integer operands' values as constants, once per such values.
    ByValue(HashMap<Vec<TensorData>, Rc<Compiled>>),
}

struct Compiled {
    /// `None` where every output was known at import time.
    handle: Option<usize>,
    /// The stretch's operands that are the graph's inputs, by position (the others are
    /// constants in it).
    args: Vec<usize>,
    outputs: Vec<(String, SegmentOutput)>,
}

/// A stretch's operands (names read from before it) and results (names read after it).
struct StretchPlan {
    reads: Vec<String>,
    outputs: Vec<String>,
}

/// What the executor needs to know about a node list: the names each node reads (its
/// subgraphs' included), and the last node reading each name (`usize::MAX` for the list's
/// outputs).
struct ListInfo {
    reads: Vec<Vec<String>>,
    last_use: HashMap<String, usize>,
}

/// The values of a run: the model's initializers, values known at import time, and values
/// computed.
struct Env<'a> {
    initializers: &'a HashMap<String, TensorData>,
    known: HashMap<String, TensorData>,
    values: HashMap<String, HostValue>,
    /// How many of `values` are sequences or optionals (while none are, no node reads one).
    non_tensors: usize,
}

impl Env<'_> {
    fn known(&self, name: &str) -> Option<&TensorData> {
        self.initializers.get(name).or_else(|| self.known.get(name))
    }

    fn get(&self, name: &str) -> Option<HostValue> {
        self.known(name).map(|t| HostValue::Tensor(t.clone())).or_else(|| self.values.get(name).cloned())
    }

    /// Sets a computed value. A name holds one value at a time, known or computed (a loop body's
    /// values change kind between iterations where their stretches are specialized).
    fn set(&mut self, name: String, value: HostValue) {
        self.known.remove(&name);
        self.non_tensors += usize::from(!matches!(value, HostValue::Tensor(_)));
        let old = self.values.insert(name, value);
        self.forget(old);
    }

    fn set_known(&mut self, name: String, value: TensorData) {
        let old = self.values.remove(&name);
        self.forget(old);
        self.known.insert(name, value);
    }

    fn forget(&mut self, old: Option<HostValue>) {
        self.non_tensors -= usize::from(matches!(old, Some(HostValue::Sequence(_) | HostValue::Optional(_))));
    }

    fn tensor(&self, name: &str) -> Result<TensorData, String> {
        let value = self.get(name).ok_or(format!("`{name}` is not defined"))?;
        value.into_tensor().map_err(|what| format!("`{name}` is {what}"))
    }
}

impl<R: GraphRunner> Staged<R> {
    pub fn new(model: StagedModel, runner: R) -> Staged<R> {
        Staged {
            model: Arc::new(model),
            runner,
            segments: HashMap::new(),
            lists: HashMap::new(),
            plans: HashMap::new(),
            subgraph_initializers: HashMap::new(),
            stats: StagedStats::default(),
        }
    }

    pub fn model(&self) -> &StagedModel {
        &self.model
    }

    pub fn stats(&self) -> StagedStats {
        self.stats
    }

    /// The runner, with what it compiled.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Runs the model on `inputs` (in its inputs' order); returns its outputs in order.
    pub fn run(&mut self, inputs: Vec<HostValue>) -> Result<Vec<HostValue>, StagedError> {
        let model = self.model.clone();
        let fail = |message: String| StagedError::Run { file: model.file.clone(), message };
        if inputs.len() != model.inputs.len() {
            return Err(fail(format!("the model has {} inputs, {} were given", model.inputs.len(), inputs.len())));
        }
        let mut env =
            Env { initializers: &model.initializers, known: HashMap::new(), values: HashMap::new(), non_tensors: 0 };
        for ((name, declared), value) in model.inputs.iter().zip(inputs) {
            if let (Some(declared), HostValue::Tensor(t)) = (declared, &value) {
                check_input(name, declared, t).map_err(fail)?;
            }
            env.set(name.clone(), value);
        }
        let graph = model.graph();
        self.run_list(&graph.node, &model.outputs, &mut env)?;
        model
            .outputs
            .iter()
            .map(|name| env.get(name).ok_or_else(|| fail(format!("graph output `{name}` is never computed"))))
            .collect()
    }

    /// Runs `nodes`, whose values named `outputs` are read after them.
    fn run_list(&mut self, nodes: &[NodeProto], outputs: &[String], env: &mut Env) -> Result<(), StagedError> {
        let info = self.list_info(nodes, outputs);
        let mut start = None;
        for (i, node) in nodes.iter().enumerate() {
            if on_host(node, env) {
                if let Some(s) = start.take() {
                    self.run_stretch(nodes, s, i, &info, env)?;
                }
                self.stats.host_nodes += 1;
                self.host_node(node, env).map_err(|message| self.node_error(node, i, message))?;
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            self.run_stretch(nodes, s, nodes.len(), &info, env)?;
        }
        Ok(())
    }

    /// Runs a subgraph (a branch or loop body) in `env`; returns its outputs.
    fn run_graph(&mut self, g: &GraphProto, env: &mut Env) -> Result<Vec<HostValue>, String> {
        let key = g as *const GraphProto as usize;
        let inits = match self.subgraph_initializers.get(&key) {
            Some(i) => i.clone(),
            None => {
                let decoded = g
                    .initializer
                    .iter()
                    .map(|i| {
                        let data = tensor_from_proto(i, i.name(), self.model.base_dir.as_deref());
                        data.map(|d| (i.name().to_string(), d)).map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let decoded = Rc::new(decoded);
                self.subgraph_initializers.insert(key, decoded.clone());
                decoded
            }
        };
        for (name, data) in inits.iter() {
            env.set_known(name.clone(), data.clone());
        }
        let outputs: Vec<String> = g.output.iter().map(|o| o.name().to_string()).collect();
        self.run_list(&g.node, &outputs, env).map_err(|e| e.to_string())?;
        outputs.iter().map(|n| env.get(n).ok_or_else(|| format!("subgraph output `{n}` is never computed"))).collect()
    }

    fn list_info(&mut self, nodes: &[NodeProto], outputs: &[String]) -> Rc<ListInfo> {
        let key = nodes.as_ptr() as usize;
        if let Some(info) = self.lists.get(&key) {
            return info.clone();
        }
        let reads: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| {
                let mut names: Vec<String> = n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
                for g in n.attribute.iter().filter_map(|a| a.g.as_ref()) {
                    subgraph_reads(g, &mut names);
                }
                names
            })
            .collect();
        let mut last_use = HashMap::new();
        for (i, names) in reads.iter().enumerate() {
            for name in names {
                last_use.insert(name.clone(), i);
            }
        }
        for name in outputs {
            last_use.insert(name.clone(), usize::MAX);
        }
        let info = Rc::new(ListInfo { reads, last_use });
        self.lists.insert(key, info.clone());
        info
    }

    /// Imports (once per operand types), compiles and runs `nodes[start..end]`, keeping the
    /// values read after it.
    fn run_stretch(
        &mut self,
        nodes: &[NodeProto],
        start: usize,
        end: usize,
        info: &ListInfo,
        env: &mut Env,
    ) -> Result<(), StagedError> {
        let stretch = &nodes[start..end];
        let plan = self.stretch_plan(nodes, start, end, info);
        if plan.outputs.is_empty() {
            return Ok(());
        }
        // Values known at import are only gathered to compile (a cache miss), by name.
        let (mut known, mut inputs) = (Vec::new(), Vec::new());
        for name in &plan.reads {
            if env.known(name).is_some() {
                known.push(name.as_str());
                continue;
            }
            match env.values.get(name) {
                Some(HostValue::Tensor(t)) => inputs.push((name.clone(), t.clone())),
                Some(other) => {
                    let message = format!("reads `{name}`, which is {}, as a tensor", other.kind());
                    return Err(self.node_error(&nodes[start], start, message));
                }
                // A name defined inside a subgraph of the stretch.
                None => {}
            }
        }
        let key = SegmentKey {
            list: nodes.as_ptr() as usize,
            start,
            end,
            types: inputs.iter().map(|(_, t)| (t.dtype(), t.shape().to_vec())).collect(),
        };
        let compiled = self.compiled(key, stretch, &inputs, &known, env, &plan.outputs)?;
        let mut results = match compiled.handle {
            Some(handle) => {
                let args: Vec<TensorData> = compiled.args.iter().map(|&k| inputs[k].1.clone()).collect();
                self.stats.graph_runs += 1;
                let results = self.runner.run(handle, &args).map_err(|m| self.stretch_error(stretch, start, m))?;
                results.into_iter().map(Some).collect()
            }
            None => Vec::new(),
        };
        for (name, output) in &compiled.outputs {
            match output {
                SegmentOutput::Known(data) => {
                    env.set_known(name.clone(), data.clone());
                }
                SegmentOutput::Computed(k) => {
                    let t = results.get_mut(*k).and_then(Option::take);
                    let t = t.ok_or_else(|| self.stretch_error(stretch, start, format!("output {k} is missing")))?;
                    env.set(name.clone(), HostValue::Tensor(t));
                }
            }
        }
        Ok(())
    }

    /// What a stretch reads from before it (names in first-read order, its subgraphs' reads
    /// included) and what is read after it, worked out once per stretch.
    fn stretch_plan(&mut self, nodes: &[NodeProto], start: usize, end: usize, info: &ListInfo) -> Rc<StretchPlan> {
        let key = (nodes.as_ptr() as usize, start, end);
        if let Some(plan) = self.plans.get(&key) {
            return plan.clone();
        }
        let stretch = &nodes[start..end];
        let defined: HashSet<&str> = stretch.iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
        let outputs = stretch
            .iter()
            .flat_map(|n| n.output.iter())
            .filter(|name| !name.is_empty() && info.last_use.get(*name).is_some_and(|&u| u >= end))
            .cloned()
            .collect();
        let mut seen = HashSet::new();
        let reads = info.reads[start..end]
            .iter()
            .flatten()
            .filter(|name| !defined.contains(name.as_str()) && seen.insert(name.as_str()))
            .cloned()
            .collect();
        let plan = Rc::new(StretchPlan { reads, outputs });
        self.plans.insert(key, plan.clone());
        plan
    }

    /// The compiled graph of a stretch, importing and compiling it on first use.
    fn compiled(
        &mut self,
        key: SegmentKey,
        stretch: &[NodeProto],
        inputs: &[(String, TensorData)],
        known: &[&str],
        env: &Env,
        outputs: &[String],
    ) -> Result<Rc<Compiled>, StagedError> {
        // The operands a specialized stretch is keyed by (computed only where one is looked up).
        let values = || inputs.iter().filter(|(_, t)| is_small_int(t)).map(|(_, t)| t.clone()).collect::<Vec<_>>();
        match self.segments.get(&key) {
            Some(Cached::Ready(c)) => return Ok(c.clone()),
            Some(Cached::ByValue(by_value)) => {
                if let Some(c) = by_value.get(&values()) {
                    return Ok(c.clone());
                }
            }
            None => {}
        }
        let known: HashMap<String, TensorData> =
            known.iter().filter_map(|&n| env.known(n).map(|t| (n.to_string(), t.clone()))).collect();
        if !self.segments.contains_key(&key) {
            match self.compile(stretch, key.start, inputs, known.clone(), false, outputs) {
                Ok(c) => {
                    self.segments.insert(key, Cached::Ready(c.clone()));
                    return Ok(c);
                }
                Err(e) if !inputs.iter().any(|(_, t)| is_small_int(t)) => return Err(e),
                Err(_) => {}
            }
        }
        let c = self.compile(stretch, key.start, inputs, known, true, outputs)?;
        let Cached::ByValue(by_value) = self.segments.entry(key).or_insert_with(|| Cached::ByValue(HashMap::new()))
        else {
            unreachable!("a stretch that imports without values is never imported with them")
        };
        by_value.insert(values(), c.clone());
        Ok(c)
    }

    fn compile(
        &mut self,
        stretch: &[NodeProto],
        start: usize,
        inputs: &[(String, TensorData)],
        mut known: HashMap<String, TensorData>,
        specialize: bool,
        outputs: &[String],
    ) -> Result<Rc<Compiled>, StagedError> {
        if self.stats.compiled >= MAX_COMPILED {
            return Err(StagedError::Run {
                file: self.model.file.clone(),
                message: format!(
                    "more than {MAX_COMPILED} graphs compiled: the model's shapes change at every step of its \
                     control flow"
                ),
            });
        }
        let importer = Importer {
            file: self.model.file.clone(),
            base_dir: self.model.base_dir.as_deref(),
            opset: self.model.opset,
        };
        let mut types = Vec::new();
        let mut args = Vec::new();
        for (k, (name, t)) in inputs.iter().enumerate() {
            if specialize && is_small_int(t) {
                known.insert(name.clone(), t.clone());
            } else {
                types.push((name.clone(), TensorType::new(t.dtype(), t.shape().iter().map(|&d| Dim::from(d)))));
                args.push(k);
            }
        }
        let Segment { graph, outputs: results } = importer.import_segment(stretch, &types, known, outputs)?;
        let handle = match graph {
            Some(graph) => {
                let handle = self.runner.compile(graph).map_err(|m| self.stretch_error(stretch, start, m))?;
                self.stats.compiled += 1;
                Some(handle)
            }
            None => None,
        };
        Ok(Rc::new(Compiled { handle, args, outputs: outputs.iter().cloned().zip(results).collect() }))
    }

    /// Runs control flow or a host node.
    fn host_node(&mut self, node: &NodeProto, env: &mut Env) -> Result<(), String> {
        let outputs = match node.op_type() {
            "If" => {
                let cond_name = node.input.first().filter(|n| !n.is_empty()).ok_or("the condition is missing")?;
                let cond = env.tensor(cond_name)?;
                let &[c] = cond.to_i64_vec().as_slice() else {
                    return Err(format!("the condition has {} values, not one", cond.len()));
                };
                let branch = subgraph(node, if c != 0 { "then_branch" } else { "else_branch" })?;
                self.run_graph(branch, env)?
            }
            "Loop" => self.run_loop(node, env)?,
            "SequenceMap" => self.run_sequence_map(node, env)?,
            _ => {
                let operands: Vec<Option<HostValue>> = node
                    .input
                    .iter()
                    .map(|n| match n.is_empty() {
                        true => Ok(None),
                        false => env.get(n).map(Some).ok_or(format!("`{n}` is not defined")),
                    })
                    .collect::<Result<_, String>>()?;
                host::run(node, &operands)?
            }
        };
        if outputs.len() < node.output.iter().filter(|n| !n.is_empty()).count() {
            return Err(format!("{} outputs for the node's {}", outputs.len(), node.output.len()));
        }
        for (name, value) in node.output.iter().zip(outputs) {
            if !name.is_empty() {
                env.set(name.clone(), value);
            }
        }
        Ok(())
    }

    /// `Loop`: the body runs once per iteration while the trip count and the condition allow;
    /// scan outputs are stacked along a new first axis.
    fn run_loop(&mut self, node: &NodeProto, env: &mut Env) -> Result<Vec<HostValue>, String> {
        let body = subgraph(node, "body")?;
        let operand = |i: usize| node.input.get(i).filter(|n| !n.is_empty());
        let scalar = |env: &Env, name: &str| -> Result<i64, String> {
            let t = env.tensor(name)?;
            t.to_i64_vec().first().copied().ok_or(format!("`{name}` is empty"))
        };
        let trip_count = operand(0).map(|n| scalar(env, n)).transpose()?;
        let mut cond = operand(1).map(|n| scalar(env, n)).transpose()?.is_none_or(|c| c != 0);
        let n_carried = node.input.len().saturating_sub(2);
        if body.input.len() != n_carried + 2 || body.output.len() < n_carried + 1 {
            return Err(format!(
                "the body has {} inputs and {} outputs for {n_carried} loop-carried values",
                body.input.len(),
                body.output.len()
            ));
        }
        let mut carried: Vec<HostValue> = node.input[2..]
            .iter()
            .map(|n| env.get(n).ok_or(format!("`{n}` is not defined")))
            .collect::<Result<_, _>>()?;
        let mut scans: Vec<Vec<TensorData>> = vec![Vec::new(); body.output.len() - 1 - n_carried];
        let mut scan_bytes = 0usize;
        let mut i = 0i64;
        while trip_count.is_none_or(|m| i < m) && cond {
            if i >= MAX_ITERATIONS {
                return Err(format!("the loop ran {MAX_ITERATIONS} iterations without ending"));
            }
            env.set(body.input[0].name().to_string(), HostValue::Tensor(TensorData::scalar(i)));
            env.set(body.input[1].name().to_string(), HostValue::Tensor(TensorData::scalar(cond)));
            for (input, value) in body.input[2..].iter().zip(carried) {
                env.set(input.name().to_string(), value);
            }
            let mut outputs = self.run_graph(body, env)?.into_iter();
            cond = match outputs.next() {
                Some(HostValue::Tensor(c)) => c.to_i64_vec().first().is_some_and(|&c| c != 0),
                _ => return Err("the body's condition output is not a tensor".into()),
            };
            carried = outputs.by_ref().take(n_carried).collect();
            for (scan, value) in scans.iter_mut().zip(outputs) {
                let t = value.into_tensor().map_err(|what| format!("a scan output is {what}"))?;
                scan_bytes = scan_bytes.saturating_add(t.bytes().len());
                if scan_bytes > MAX_SCAN_BYTES {
                    return Err(format!("the loop's scan outputs exceed {} MiB", MAX_SCAN_BYTES >> 20));
                }
                scan.push(t);
            }
            i += 1;
        }
        let mut results = carried;
        for (items, declared) in scans.iter().zip(&body.output[1 + n_carried..]) {
            let stacked = match items.is_empty() {
                true => empty_scan(declared)?,
                false => host::stack(items)?,
            };
            results.push(HostValue::Tensor(stacked));
        }
        Ok(results)
    }

    /// `SequenceMap`: the body runs once per element of the input sequence, reading the same
    /// element of every sequence operand (tensor operands whole); each output is a sequence.
    fn run_sequence_map(&mut self, node: &NodeProto, env: &mut Env) -> Result<Vec<HostValue>, String> {
        let body = subgraph(node, "body")?;
        let operands: Vec<HostValue> =
            node.input.iter().map(|n| env.get(n).ok_or(format!("`{n}` is not defined"))).collect::<Result<_, _>>()?;
        let Some(HostValue::Sequence(first)) = operands.first() else {
            return Err("operand 0 is not a sequence".into());
        };
        let len = first.len();
        if operands.iter().any(|o| matches!(o, HostValue::Sequence(s) if s.len() != len)) {
            return Err("the sequences have different lengths".into());
        }
        if body.input.len() != operands.len() {
            return Err(format!("the body has {} inputs for {} operands", body.input.len(), operands.len()));
        }
        let mut results = vec![Vec::new(); body.output.len()];
        for k in 0..len {
            for (input, operand) in body.input.iter().zip(&operands) {
                let value = match operand {
                    HostValue::Sequence(s) => HostValue::Tensor(s[k].clone()),
                    other => other.clone(),
                };
                env.set(input.name().to_string(), value);
            }
            for (result, value) in results.iter_mut().zip(self.run_graph(body, env)?) {
                result.push(value.into_tensor().map_err(|what| format!("the body gives {what}"))?);
            }
        }
        Ok(results.into_iter().map(HostValue::Sequence).collect())
    }

    fn node_error(&self, node: &NodeProto, index: usize, message: String) -> StagedError {
        let name = if node.name().is_empty() { format!("#{index}") } else { node.name().to_string() };
        StagedError::Node { file: self.model.file.clone(), node: name, op: node.op_type().to_string(), message }
    }

    fn stretch_error(&self, stretch: &[NodeProto], start: usize, message: String) -> StagedError {
        let first = stretch.first().map_or(String::new(), |n| format!("`{}` ({})", n.name(), n.op_type()));
        StagedError::Run {
            file: self.model.file.clone(),
            message: format!("the graph of {} nodes from node {first} (#{start}): {message}", stretch.len()),
        }
    }
}

/// Whether a stretch may be specialized to the value of operand `t` (see the module
/// documentation).
fn is_small_int(t: &TensorData) -> bool {
    (t.dtype().is_int() || t.dtype() == DType::Bool) && t.len() <= MAX_SPECIALIZED_ELEMENTS
}

/// Whether `node` runs on the host: control flow, the host ops, and any node reading a
/// sequence or optional value (an `Identity` of one).
fn on_host(node: &NodeProto, env: &Env) -> bool {
    matches!(node.op_type(), "If" | "Loop" | "SequenceMap")
        || runs_on_host(node.op_type())
        || (env.non_tensors > 0
            && node
                .input
                .iter()
                .any(|n| matches!(env.values.get(n), Some(HostValue::Sequence(_) | HostValue::Optional(_)))))
}

fn subgraph<'n>(node: &'n NodeProto, name: &str) -> Result<&'n GraphProto, String> {
    node.attribute.iter().find(|a| a.name() == name).and_then(|a| a.g.as_ref()).ok_or(format!("`{name}` is missing"))
}

/// Every name read inside `g` and its subgraphs (its own values included: they are never
/// defined outside it, so they do no harm).
fn subgraph_reads(g: &GraphProto, names: &mut Vec<String>) {
    for node in &g.node {
        names.extend(node.input.iter().filter(|s| !s.is_empty()).cloned());
        for sub in node.attribute.iter().filter_map(|a| a.g.as_ref()) {
            subgraph_reads(sub, names);
        }
    }
    names.extend(g.output.iter().map(|o| o.name().to_string()));
}

/// The scan output of a loop that ran no iteration: empty, of the body output's declared type.
fn empty_scan(declared: &ValueInfoProto) -> Result<TensorData, String> {
    let ty = value_type(declared, None)?;
    let mut shape = vec![0];
    for d in &ty.shape {
        shape.push(d.as_const().ok_or("a loop that runs no iteration has a scan output of unknown shape")? as usize);
    }
    TensorData::from_bytes(ty.dtype, shape, Vec::new().into()).map_err(|e| e.to_string())
}

/// Checks a tensor input against its declared type (element type, rank, fixed dimensions).
fn check_input(name: &str, declared: &TensorType, t: &TensorData) -> Result<(), String> {
    let fits = t.dtype() == declared.dtype
        && t.shape().len() == declared.shape.len()
        && declared.shape.iter().zip(t.shape()).all(|(d, &n)| d.as_const().is_none_or(|k| k == n as i64));
    match fits {
        true => Ok(()),
        false => {
            Err(format!("input `{name}` is declared {declared}, and a {}{:?} tensor was given", t.dtype(), t.shape()))
        }
    }
}
