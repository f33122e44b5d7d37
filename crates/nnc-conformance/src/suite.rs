//! Finding and running ONNX test cases.

use crate::compare::{compare, Tolerance};
use crate::Backend;
use nnc_ir::{Graph, TensorData};
use nnc_onnx::proto::{type_proto, ModelProto};
use nnc_onnx::staged::{needs_staging, read_value, GraphRunner, HostValue, Staged, StagedModel};
use nnc_onnx::{import_file_with, read_tensor_file, ImportOptions};
use prost_free::decode_model;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What happened to one case.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseOutcome {
    Pass,
    /// The reason, starting with a short category (`import:`, `run:`, `output 0:`).
    Fail(String),
    /// The case is outside what a tensor IR can express (sequence, map or optional values).
    Skip(String),
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's folder name (`test_conv_with_strides_padding`).
    pub name: String,
    /// The op types of the model's nodes, in order.
    pub node_ops: Vec<String>,
    pub outcome: CaseOutcome,
    pub seconds: f64,
    /// With timed runs ([`run_case_timed`]) of a passing case: the time of its fastest run,
    /// compile excluded, summed over its data sets.
    pub run_seconds: Option<f64>,
}

/// The case folders under `root` (folders holding a `model.onnx`), sorted by name; `root`
/// itself if it is a case.
pub fn discover_cases(root: &Path) -> Result<Vec<PathBuf>, String> {
    if root.join("model.onnx").is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut cases: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("model.onnx").is_file()).collect();
    cases.sort();
    Ok(cases)
}

/// Runs every data set of the case in `dir` on `backend`.
pub fn run_case(dir: &Path, backend: &dyn Backend) -> CaseResult {
    run_case_timed(dir, backend, 0)
}

/// [`run_case`], each data set run `runs` more times after the first and its fastest run
/// timed (none with 0).
pub fn run_case_timed(dir: &Path, backend: &dyn Backend, runs: usize) -> CaseResult {
    let start = Instant::now();
    let mut run_seconds = (runs > 0).then_some(0.0);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (node_ops, outcome) = match decode_model(&dir.join("model.onnx")) {
        Err(e) => (Vec::new(), CaseOutcome::Fail(format!("import: {e}"))),
        Ok(model) => {
            let ops = model
                .graph
                .as_ref()
                .map(|g| g.node.iter().map(|n| n.op_type().to_string()).collect())
                .unwrap_or_default();
            let outcome = match run_data_sets(dir, &model, backend, runs, &mut run_seconds) {
                // Paths inside the case folder are shown relative to it, so reasons of
                // different cases read (and group) alike.
                CaseOutcome::Fail(why) => CaseOutcome::Fail(why.replace(&format!("{}/", dir.display()), "")),
                other => other,
            };
            (ops, outcome)
        }
    };
    let run_seconds = run_seconds.filter(|_| outcome == CaseOutcome::Pass);
    CaseResult { name, node_ops, outcome, seconds: start.elapsed().as_secs_f64(), run_seconds }
}

/// Whether the model's interface holds values other than tensors (sequences, optionals).
fn non_tensor_io(model: &ModelProto) -> bool {
    let Some(g) = model.graph.as_ref() else { return false };
    g.input.iter().chain(&g.output).any(|v| {
        !matches!(v.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(type_proto::Value::TensorType(_)) | None)
    })
}

fn run_data_sets(
    dir: &Path,
    model: &ModelProto,
    backend: &dyn Backend,
    runs: usize,
    run_seconds: &mut Option<f64>,
) -> CaseOutcome {
    let mut sets: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(e) => e.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir() && is_data_set(p)).collect(),
        Err(e) => return CaseOutcome::Fail(format!("io: {e}")),
    };
    sets.sort();
    if sets.is_empty() {
        return CaseOutcome::Fail("no test_data_set_* folder".into());
    }
    if non_tensor_io(model) {
        // Sequence and optional values exist only in staged runs (not timed).
        *run_seconds = None;
        let mut outcomes = sets.iter().map(|set| staged_data_set(dir, model, set, backend));
        return outcomes.find(|o| *o != CaseOutcome::Pass).unwrap_or(CaseOutcome::Pass);
    }
    let graph_inputs = graph_input_names(model);
    for set in sets {
        let (inputs, outputs) = match (read_numbered(&set, "input"), read_numbered(&set, "output")) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => return CaseOutcome::Fail(format!("data: {e}")),
        };
        // Inputs may stand in where an op needs a constant (a `Reshape` shape given as input).
        // The graph is specialized to the data's shapes, as `nnc run` does.
        let hints: HashMap<String, TensorData> = graph_inputs.iter().cloned().zip(inputs.iter().cloned()).collect();
        let input_shapes = hints.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
        let path = dir.join("model.onnx");
        let results = match import_file_with(&path, &ImportOptions { input_hints: hints, input_shapes }) {
            Ok(graph) => match backend.run_timed(&graph, &inputs, runs) {
                Ok((r, fastest)) => {
                    if let (Some(total), Some(t)) = (run_seconds.as_mut(), fastest) {
                        *total += t.as_secs_f64();
                    }
                    r
                }
                Err(e) => return CaseOutcome::Fail(format!("run: {}", one_line(&e))),
            },
            // Control flow decided by run-time values: the case runs staged (not timed).
            Err(e) if needs_staging(&e) => {
                *run_seconds = None;
                match run_staged(model, &path, backend, inputs) {
                    Ok(r) => r,
                    Err(e) => return CaseOutcome::Fail(format!("staged: {}", one_line(&e))),
                }
            }
            Err(e) => return CaseOutcome::Fail(format!("import: {}", one_line(&e.to_string()))),
        };
        if results.len() != outputs.len() {
            return CaseOutcome::Fail(format!("run: {} outputs, the reference has {}", results.len(), outputs.len()));
        }
        for (k, (got, want)) in results.iter().zip(&outputs).enumerate() {
            match compare(got, want, Tolerance::for_dtype(want.dtype())) {
                Err(why) => return CaseOutcome::Fail(format!("output {k}: {why}")),
                Ok(c) if !c.passed() => {
                    return CaseOutcome::Fail(format!(
                        "output {k}: {} of {} values differ (max abs error {:.3e}, max rel error {:.3e})",
                        c.mismatches, c.total, c.max_abs, c.max_rel
                    ))
                }
                Ok(_) => {}
            }
        }
    }
    CaseOutcome::Pass
}

/// Runs the case's model staged (see `nnc_onnx::staged`), each compiled stretch on `backend`.
fn run_staged(
    model: &ModelProto,
    path: &Path,
    backend: &dyn Backend,
    inputs: Vec<TensorData>,
) -> Result<Vec<TensorData>, String> {
    let outputs = run_staged_values(model, path, backend, inputs.into_iter().map(HostValue::Tensor).collect())?;
    outputs.into_iter().map(|v| v.into_tensor().map_err(|what| format!("an output is {what}"))).collect()
}

fn run_staged_values(
    model: &ModelProto,
    path: &Path,
    backend: &dyn Backend,
    inputs: Vec<HostValue>,
) -> Result<Vec<HostValue>, String> {
    let staged =
        StagedModel::new(model.clone(), &path.display().to_string(), path.parent()).map_err(|e| e.to_string())?;
    let runner = OnBackend { backend, graphs: Vec::new() };
    Staged::new(staged, runner).run(inputs).map_err(|e| e.to_string())
}

/// One data set of a case whose inputs or outputs include sequences or optionals: read by
/// their declared types, run staged, compared element by element.
fn staged_data_set(dir: &Path, model: &ModelProto, set: &Path, backend: &dyn Backend) -> CaseOutcome {
    let path = dir.join("model.onnx");
    let staged = match StagedModel::new(model.clone(), &path.display().to_string(), Some(dir)) {
        Ok(s) => s,
        Err(e) => return CaseOutcome::Fail(format!("staged: {}", one_line(&e.to_string()))),
    };
    let (input_types, output_types) = staged.io_types();
    let read = |prefix: &str, types: &[Option<&nnc_onnx::proto::TypeProto>]| {
        (0..types.len())
            .map(|i| read_value(&set.join(format!("{prefix}_{i}.pb")), types[i]))
            .collect::<Result<Vec<_>, _>>()
    };
    let (inputs, expected) = match (read("input", &input_types), read("output", &output_types)) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return CaseOutcome::Fail(format!("data: {e}")),
    };
    let found = match run_staged_values(model, &path, backend, inputs) {
        Ok(f) => f,
        Err(e) => return CaseOutcome::Fail(format!("staged: {}", one_line(&e))),
    };
    for (k, (got, want)) in found.iter().zip(&expected).enumerate() {
        if let Err(why) = same_value(got, want) {
            return CaseOutcome::Fail(format!("output {k}: {why}"));
        }
    }
    CaseOutcome::Pass
}

/// Whether two values have the same structure and their tensors match within their dtype's
/// tolerance.
fn same_value(got: &HostValue, want: &HostValue) -> Result<(), String> {
    match (got, want) {
        (HostValue::Tensor(g), HostValue::Tensor(w)) => match compare(g, w, Tolerance::for_dtype(w.dtype()))? {
            c if c.passed() => Ok(()),
            c => Err(format!("{} of {} values differ (max abs error {:.3e})", c.mismatches, c.total, c.max_abs)),
        },
        (HostValue::Sequence(g), HostValue::Sequence(w)) if g.len() == w.len() => {
            g.iter().zip(w).enumerate().try_for_each(|(k, (g, w))| {
                same_value(&HostValue::Tensor(g.clone()), &HostValue::Tensor(w.clone()))
                    .map_err(|e| format!("[{k}]: {e}"))
            })
        }
        (HostValue::Optional(None), HostValue::Optional(None)) => Ok(()),
        (HostValue::Optional(Some(g)), HostValue::Optional(Some(w))) => same_value(g, w),
        // An optional holding a value matches the value itself (the data may store either).
        (HostValue::Optional(Some(g)), w) => same_value(g, w),
        (g, HostValue::Optional(Some(w))) => same_value(g, w),
        (g, w) => Err(format!("{} where the reference has {}", describe(g), describe(w))),
    }
}

fn describe(v: &HostValue) -> String {
    match v {
        HostValue::Sequence(s) => format!("a sequence of {}", s.len()),
        HostValue::Optional(None) => "an empty optional".into(),
        other => other.kind().to_string(),
    }
}

/// A conformance [`Backend`] as the runner of staged stretches.
struct OnBackend<'a> {
    backend: &'a dyn Backend,
    graphs: Vec<Graph>,
}

impl GraphRunner for OnBackend<'_> {
    fn compile(&mut self, graph: Graph) -> Result<usize, String> {
        self.graphs.push(graph);
        Ok(self.graphs.len() - 1)
    }

    fn run(&mut self, handle: usize, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        self.backend.run(&self.graphs[handle], inputs)
    }
}

fn is_data_set(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
}

/// `input_0.pb`, `input_1.pb`, ... until the first missing number.
fn read_numbered(set: &Path, prefix: &str) -> Result<Vec<TensorData>, String> {
    let mut out = Vec::new();
    for i in 0.. {
        let path = set.join(format!("{prefix}_{i}.pb"));
        if !path.is_file() {
            break;
        }
        out.push(read_tensor_file(&path).map_err(|e| e.to_string())?.1);
    }
    Ok(out)
}

/// The graph's real inputs (not initializers), in order.
fn graph_input_names(model: &ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|i| i.name()).collect();
    g.input.iter().map(|i| i.name()).filter(|n| !inits.contains(n)).map(str::to_string).collect()
}

fn one_line(s: &str) -> String {
    s.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

mod prost_free {
    //! Decoding the model once to look at its interface (the importer decodes it again).
    use nnc_onnx::proto::ModelProto;
    use std::path::Path;

    pub fn decode_model(path: &Path) -> Result<ModelProto, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        <ModelProto as prost::Message>::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))
    }
}
