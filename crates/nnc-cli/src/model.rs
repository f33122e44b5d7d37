//! Loading a model file into a verified [`Graph`], whatever its format.
//!
//! This is the one place that maps file extensions to front ends: `.nnir` (the text form) and
//! `.onnx` (through `nnc-onnx`). Every command that takes a model goes through [`open_model`], so
//! a new format becomes available to all of them at once.
//!
//! Opening and importing are two steps because an ONNX model can be specialized to the shapes of
//! the inputs it is about to run on: shape computations and `If` conditions that depend on them
//! are then resolved at import time. `nnc run` reads the inputs between the two steps;
//! [`load_for_shapes`] does both for the commands that compile for shapes given by flags.

use crate::shapes::{resolve, Resolved, ShapeFlags};
use anyhow::{anyhow, bail, Context};
use nnc_ir::{Graph, IrError, TensorType};
use nnc_onnx::staged::StagedModel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The model file extensions `nnc` accepts, for messages.
pub const MODEL_EXTENSIONS: &str = ".nnir, .onnx";

/// A model file, opened but (for ONNX) not yet imported.
pub enum Model {
    /// A parsed and verified `.nnir` graph.
    Nnir(Graph),
    /// An ONNX file, read and decoded once, with its graph inputs' names and declared types.
    Onnx { path: PathBuf, model: Box<nnc_onnx::proto::ModelProto>, inputs: Vec<(String, TensorType)> },
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
            Model::Onnx { path, model, .. } => match import_onnx(&path, &model, input_shapes) {
                Err(e) if nnc_onnx::staged::needs_staging(&e) => Err(anyhow!(
                    "{e}\n(these nodes need values known only at run time: `nnc run` runs such a model staged, \
                     as compiled graphs with the control flow between them; this command needs it as one graph)"
                )),
                imported => imported.map_err(|e| anyhow!(e)),
            },
        }
    }

    /// [`Self::into_graph`], except that an ONNX model whose control flow or shapes are decided
    /// by values known only at run time comes back prepared for staged runs.
    pub fn import(self, input_shapes: HashMap<String, Vec<usize>>) -> anyhow::Result<Imported> {
        match self {
            Model::Nnir(g) => Ok(Imported::Graph(g)),
            Model::Onnx { path, model, .. } => match import_onnx(&path, &model, input_shapes) {
                Ok(g) => Ok(Imported::Graph(g)),
                Err(e) if nnc_onnx::staged::needs_staging(&e) => {
                    let what = path.display().to_string();
                    let staged = StagedModel::new(*model, &what, path.parent()).map_err(|e| anyhow!(e))?;
                    Ok(Imported::Staged(Box::new(staged)))
                }
                Err(e) => Err(anyhow!(e)),
            },
        }
    }
}

/// Imports an ONNX model with `input_shapes` replacing the declared shapes of those inputs.
fn import_onnx(
    path: &Path,
    model: &nnc_onnx::proto::ModelProto,
    input_shapes: HashMap<String, Vec<usize>>,
) -> Result<Graph, nnc_onnx::OnnxError> {
    let options = nnc_onnx::ImportOptions { input_shapes, ..Default::default() };
    nnc_onnx::import_model(model, &path.display().to_string(), path.parent(), &options)
}

/// A model imported as one graph, or prepared for staged runs.
pub enum Imported {
    Graph(Graph),
    Staged(Box<StagedModel>),
}

/// Opens the model at `path`, choosing the front end by its extension.
pub fn open_model(path: &Path) -> anyhow::Result<Model> {
    let shown = path.display().to_string();
    if path.is_dir() {
        bail!("{shown} is a folder, not a model file (a model ends in {MODEL_EXTENSIONS})");
    }
    match extension(path).as_deref() {
        Some("nnir") => {
            let bytes = nnc_ir::size::read_file(path).with_context(|| format!("cannot read {shown}"))?;
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
            let model = nnc_onnx::read_model(path).map_err(|e| anyhow!(e))?;
            let inputs = nnc_onnx::inputs_of(&model, &shown).map_err(|e| anyhow!(e))?;
            Ok(Model::Onnx { path: path.to_path_buf(), model: Box::new(model), inputs })
        }
        _ => bail!("{shown}: unknown model format (expected a file ending in {MODEL_EXTENSIONS})"),
    }
}

/// Opens and imports the model at `path` with its declared shapes.
pub fn load_model(path: &Path) -> anyhow::Result<Graph> {
    open_model(path)?.into_graph(HashMap::new())
}

/// A model imported for concrete input shapes, with every symbol bound.
pub struct Specialized {
    pub graph: Graph,
    /// The inputs' names and declared types (symbols not bound), in order.
    pub interface: Vec<(String, TensorType)>,
    pub resolved: Resolved,
}

impl Specialized {
    /// `%x: f32[1, 64]`, one per input: the shapes the command uses.
    pub fn describe_shapes(&self) -> String {
        self.resolved.describe(&self.interface)
    }
}

/// Opens and imports the model at `path` for the input shapes `--shape` gives (`shape_flags`)
/// and, for inputs those do not give, the shapes of the files `data/input_N.pb`; every symbol
/// still unbound is bound to 1 (listed in `resolved.defaulted`), so it can be compiled.
pub fn load_for_shapes(path: &Path, shape_flags: &[String], data: Option<&Path>) -> anyhow::Result<Specialized> {
    let (model, interface, resolved) = open_for_shapes(path, shape_flags, data)?;
    let graph = model.into_graph(resolved.by_name(&interface))?;
    specialize(path, graph, interface, resolved)
}

/// [`load_for_shapes`], or for an ONNX model whose control flow or shapes are decided at run
/// time, the model prepared for staged runs (with the input shapes resolved the same way).
pub fn load_or_stage_for_shapes(path: &Path, shape_flags: &[String], data: Option<&Path>) -> anyhow::Result<Loaded> {
    let (model, interface, resolved) = open_for_shapes(path, shape_flags, data)?;
    match model.import(resolved.by_name(&interface))? {
        Imported::Graph(graph) => Ok(Loaded::Graph(specialize(path, graph, interface, resolved)?)),
        Imported::Staged(model) => Ok(Loaded::Staged { model, interface, resolved }),
    }
}

/// A model's graph inputs: names and declared types, in order.
pub type Interface = Vec<(String, TensorType)>;

/// What [`load_or_stage_for_shapes`] gives.
pub enum Loaded {
    Graph(Specialized),
    Staged { model: Box<StagedModel>, interface: Interface, resolved: Resolved },
}

/// Opens the model and resolves the input shapes (see [`load_for_shapes`]).
fn open_for_shapes(
    path: &Path,
    shape_flags: &[String],
    data: Option<&Path>,
) -> anyhow::Result<(Model, Interface, Resolved)> {
    let model = open_model(path)?;
    let interface = model.inputs();
    let mut flags = ShapeFlags::parse(shape_flags, &interface)?;
    if let Some(dir) = data {
        for (i, (name, _)) in interface.iter().enumerate() {
            let file = dir.join(format!("input_{i}.pb"));
            if file.exists() && !flags.inputs.contains_key(name) {
                let t = crate::tensor_io::read_pb(&file).with_context(|| format!("input %{name}"))?;
                flags.inputs.insert(name.clone(), t.shape().to_vec());
            }
        }
    }
    let resolved = resolve(&interface, &flags)?;
    Ok((model, interface, resolved))
}

/// `graph` with every symbol bound as `resolved` says, verified.
fn specialize(
    path: &Path,
    graph: Graph,
    interface: Vec<(String, TensorType)>,
    resolved: Resolved,
) -> anyhow::Result<Specialized> {
    let graph = nnc_lower::bind_symbols(&graph, &|s| resolved.bindings.get(s).copied());
    nnc_ir::verify(&graph)
        .map_err(|e| anyhow!("{}: with inputs {}: {e}", path.display(), resolved.describe(&interface)))?;
    Ok(Specialized { graph, interface, resolved })
}

/// The file's extension, lower-cased (`None` if it has none or it is not UTF-8).
pub fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}
