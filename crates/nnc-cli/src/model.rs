//! Loading a model file into a verified [`Graph`], whatever its format.
//!
//! This is the one place that maps file extensions to front ends: `.nnir` (the text form) and
//! `.onnx` (through `nnc-onnx`). Every command that takes a model goes through [`open_model`], so
//! a new format becomes available to all of them at once.
//!
//! Opening and importing are two steps because an ONNX model can be specialized to the shapes of
//! the inputs it is about to run on: shape computations and `If` conditions that depend on them
//! are then resolved at import time. `nnc run` reads the inputs between the two steps.

use anyhow::{anyhow, bail, Context};
use nnc_ir::{Graph, IrError, TensorType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The model file extensions `nnc` accepts, for messages.
pub const MODEL_EXTENSIONS: &str = ".nnir, .onnx";

/// A model file, opened but (for ONNX) not yet imported.
pub enum Model {
    /// A parsed and verified `.nnir` graph.
    Nnir(Graph),
    /// An ONNX file, with its graph inputs' names and declared types.
    Onnx { path: PathBuf, inputs: Vec<(String, TensorType)> },
}

impl Model {
    /// The graph inputs' names and declared types, in order.
    pub fn inputs(&self) -> Vec<(String, TensorType)> {
        match self {
            Model::Nnir(g) => g.inputs.iter().map(|&id| (g.name_of(id).to_string(), g.ty(id).clone())).collect(),
            Model::Onnx { inputs, .. } => inputs.clone(),
        }
    }

    /// The verified graph; an ONNX model is imported with `input_shapes` replacing the declared
    /// shapes of those inputs.
    pub fn into_graph(self, input_shapes: HashMap<String, Vec<usize>>) -> anyhow::Result<Graph> {
        match self {
            Model::Nnir(g) => Ok(g),
            Model::Onnx { path, .. } => {
                let options = nnc_onnx::ImportOptions { input_shapes, ..Default::default() };
                nnc_onnx::import_file_with(&path, &options).map_err(|e| anyhow!(e))
            }
        }
    }
}

/// Opens the model at `path`, choosing the front end by its extension.
pub fn open_model(path: &Path) -> anyhow::Result<Model> {
    let shown = path.display().to_string();
    match extension(path).as_deref() {
        Some("nnir") => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
            let src = String::from_utf8(bytes).map_err(|e| {
                anyhow!("{shown}: not a text file (invalid UTF-8 at byte {})", e.utf8_error().valid_up_to())
            })?;
            let graph = nnc_ir::text::parse(&src, &shown).map_err(|e| match e {
                // Parse errors already start with `file:line:col`.
                IrError::Parse { .. } | IrError::At { .. } => anyhow!(e),
                other => anyhow!("{shown}: {other}"),
            })?;
            Ok(Model::Nnir(graph))
        }
        Some("onnx") => {
            std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
            let inputs = nnc_onnx::read_inputs(path).map_err(|e| anyhow!(e))?;
            Ok(Model::Onnx { path: path.to_path_buf(), inputs })
        }
        _ => bail!("{shown}: unknown model format (expected a file ending in {MODEL_EXTENSIONS})"),
    }
}

/// Opens and imports the model at `path` with its declared shapes.
pub fn load_model(path: &Path) -> anyhow::Result<Graph> {
    open_model(path)?.into_graph(HashMap::new())
}

/// Opens and imports the model at `path` with the input shapes `--shape NAME=D0,D1,..` gives,
/// and every symbolic dimension still left bound to 1, so it can be compiled to kernels.
pub fn load_model_static(path: &Path, shapes: &[String]) -> anyhow::Result<Graph> {
    let mut given: HashMap<String, Vec<usize>> = HashMap::new();
    for s in shapes {
        let (name, dims) = s.split_once('=').ok_or_else(|| anyhow!("--shape `{s}`: expected NAME=D0,D1,..."))?;
        let dims = dims
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.trim().parse::<usize>().map_err(|_| anyhow!("--shape `{s}`: `{d}` is not a dimension")))
            .collect::<anyhow::Result<Vec<usize>>>()?;
        given.insert(name.to_string(), dims);
    }
    let model = open_model(path)?;
    let declared = model.inputs();
    for name in given.keys() {
        if !declared.iter().any(|(n, _)| n == name) {
            let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
            bail!("--shape: {} has no input `{name}` (its inputs: {})", path.display(), names.join(", "));
        }
    }
    let shapes: Vec<Vec<usize>> = declared
        .iter()
        .map(|(n, ty)| {
            given.get(n).cloned().unwrap_or_else(|| ty.shape.iter().map(|d| d.as_usize().unwrap_or(1)).collect())
        })
        .collect();
    let graph = model.into_graph(given)?;
    Ok(nnc_kernel::program::bind_shapes(&graph, &shapes, Some(1)))
}

/// `--shape NAME=D0,D1,..` arguments for the inputs of the model at `path` that have a file
/// `dir/input_N.pb` (the N-th input), read from those files; appended after `explicit` ones,
/// which win.
pub fn shapes_from_data(path: &Path, dir: &Path, explicit: &[String]) -> anyhow::Result<Vec<String>> {
    let mut shapes = explicit.to_vec();
    for (i, (name, _)) in open_model(path)?.inputs().iter().enumerate() {
        let file = dir.join(format!("input_{i}.pb"));
        if !file.exists() || explicit.iter().any(|s| s.split_once('=').is_some_and(|(n, _)| n == name)) {
            continue;
        }
        let t = crate::tensor_io::read_pb(&file).with_context(|| format!("input %{name}"))?;
        let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
        shapes.push(format!("{name}={}", dims.join(",")));
    }
    Ok(shapes)
}

/// The file's extension, lower-cased (`None` if it has none or it is not UTF-8).
pub fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}
