//! A compiled program: a graph fused into groups and scheduled into kernels for one device, with
//! the buffers the kernels share; and its execution through the Kernel-IR interpreter.

use crate::fuse::{fuse, BufferKind, FuseError, FuseOptions, Fused};
use crate::interp::{run_kernel, KernelError};
use crate::kernel::Kernel;
use crate::layout::pack_weights;
use crate::schedule::{schedule_all, Device, ScheduleError};
use nnc_interp::lanes::{Data, Value};
use nnc_ir::{Graph, TensorData};

/// Kernels in execution order over the buffers of [`Fused`].
#[derive(Clone, Debug)]
pub struct Program {
    pub fused: Fused,
    /// `kernels[g]` computes `fused.groups[g]`; its global buffers are the group's reads, then
    /// its writes.
    pub kernels: Vec<Kernel>,
    pub device: Device,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Fuse(#[from] FuseError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("program `{program}` takes {expected} input(s), {found} given")]
    InputCount { program: String, expected: usize, found: usize },
    #[error("input `%{name}`: expected {expected}, found {found}")]
    Input { name: String, expected: String, found: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Fuses `graph` (static shapes) for `device`: constant weights laid out for its vector tiles
/// ([`pack_weights`]), fusion priced by [`Device::fuse_options`] unless `options` says otherwise.
pub fn fuse_for(graph: &Graph, device: &Device, options: Option<&FuseOptions>) -> Result<Fused, FuseError> {
    fuse(&pack_weights(graph, device), &options.copied().unwrap_or_else(|| device.fuse_options()))
}

/// Fuses ([`fuse_for`]) and schedules `graph` (static shapes) for `device`.
pub fn compile(graph: &Graph, device: &Device, options: Option<&FuseOptions>) -> Result<Program, CompileError> {
    let fused = fuse_for(graph, device, options)?;
    let kernels = schedule_all(&fused, device)?;
    Ok(Program { fused, kernels, device: *device })
}

impl Program {
    /// Runs every kernel through the Kernel-IR interpreter and returns the outputs.
    pub fn run_interpreted(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>, RunError> {
        let fused = &self.fused;
        let expected = fused.buffers.iter().filter(|b| matches!(b.kind, BufferKind::Input(_))).count();
        if inputs.len() != expected {
            return Err(RunError::InputCount { program: fused.name.clone(), expected, found: inputs.len() });
        }
        // Every buffer is held at once, widened to 8 bytes an element: check that fits before
        // building them in steps that would abort the process on failure.
        let elements = fused.buffers.iter().map(|b| b.numel().max(0) as u64).fold(0u64, u64::saturating_add);
        nnc_ir::size::ensure_available(elements.saturating_mul(8), || {
            format!("the buffers of program `{}`", fused.name)
        })
        .map_err(|e| RunError::Kernel(KernelError { kernel: "buffers".into(), message: e.to_string() }))?;
        let mut values: Vec<Value> = Vec::with_capacity(fused.buffers.len());
        for b in &fused.buffers {
            let value = match &b.kind {
                BufferKind::Input(n) => {
                    let t = &inputs[*n];
                    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                    if t.dtype() != b.dtype || shape != b.shape {
                        return Err(RunError::Input {
                            name: b.name.clone(),
                            expected: format!("{}{:?}", b.dtype.name(), b.shape),
                            found: format!("{}{:?}", t.dtype().name(), shape),
                        });
                    }
                    Value::from_tensor(t)
                }
                BufferKind::Constant(t) => Value::from_tensor(t),
                // Never-written elements stay visible: NaN for floats.
                BufferKind::Intermediate => poison(b.dtype, b.shape.iter().map(|&d| d as usize).collect()),
            };
            values.push(value);
        }
        for (group, kernel) in fused.groups.iter().zip(&self.kernels) {
            let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
            // Take each bound buffer out of the table (a buffer bound twice is copied).
            let mut globals: Vec<Value> = Vec::with_capacity(ids.len());
            for (k, &id) in ids.iter().enumerate() {
                if ids[..k].contains(&id) {
                    let first = ids.iter().position(|&x| x == id).unwrap_or(k);
                    globals.push(globals[first].clone());
                } else {
                    globals.push(std::mem::replace(&mut values[id], empty()));
                }
            }
            let result = run_kernel(kernel, &mut globals);
            for (k, (&id, value)) in ids.iter().zip(globals).enumerate() {
                if !ids[..k].contains(&id) {
                    values[id] = value;
                }
            }
            result?;
        }
        fused
            .outputs
            .iter()
            .map(|b| {
                values[b.index()]
                    .to_tensor()
                    .map_err(|message| RunError::Kernel(KernelError { kernel: "outputs".into(), message }))
            })
            .collect()
    }
}

fn empty() -> Value {
    Value::bool(vec![0], Vec::new())
}

fn poison(dtype: nnc_ir::DType, shape: Vec<usize>) -> Value {
    let n = shape.iter().product();
    if dtype.is_float() {
        Value::float(dtype, shape, vec![f64::NAN; n])
    } else if dtype == nnc_ir::DType::Bool {
        Value::bool(shape, vec![false; n])
    } else {
        Value { dtype, shape, data: Data::Int(vec![0; n]) }
    }
}

/// `graph` with its symbolic dimensions bound from the shapes of `inputs` (each input dimension
/// that is a plain symbol binds it), so it can be compiled to kernels. Inputs whose rank or
/// fixed dimensions disagree are left for [`Program::run_interpreted`] to report.
pub fn bind_input_shapes(graph: &Graph, inputs: &[TensorData]) -> Graph {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    bind_shapes(graph, &shapes, None)
}

/// `graph` with the symbols of its input shapes bound from `shapes` (one per input, in order;
/// missing ones bind nothing), and every symbol still unbound set to `default` if given.
pub fn bind_shapes(graph: &Graph, shapes: &[Vec<usize>], default: Option<i64>) -> Graph {
    let mut bindings: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for (&v, shape) in graph.inputs.iter().zip(shapes) {
        for (d, &actual) in graph.ty(v).shape.iter().zip(shape) {
            if let [s] = d.symbols().as_slice() {
                if d == &nnc_ir::Dim::sym(s) {
                    bindings.entry(s.to_string()).or_insert(actual as i64);
                }
            }
        }
    }
    if bindings.is_empty() && default.is_none() {
        return graph.clone();
    }
    bind_symbols(graph, &|s: &str| bindings.get(s).copied().or(default))
}

/// `graph` with every symbol `lookup` gives a size for replaced by that size, in value types
/// and in the attributes that hold dimensions.
pub fn bind_symbols(graph: &Graph, lookup: &dyn Fn(&str) -> Option<i64>) -> Graph {
    let mut g = graph.clone();
    for v in &mut g.values {
        for d in &mut v.ty.shape {
            *d = d.substitute(lookup);
        }
    }
    for node in &mut g.nodes {
        node.op = bind_op_dims(&node.op, lookup);
    }
    g
}

/// Ops whose attributes hold dimensions (reshape, expand, iota) with the symbols bound.
fn bind_op_dims(op: &nnc_ir::Op, lookup: &dyn Fn(&str) -> Option<i64>) -> nnc_ir::Op {
    use nnc_ir::Op;
    let bind = |dims: &[nnc_ir::Dim]| dims.iter().map(|d| d.substitute(lookup)).collect();
    match op {
        Op::Reshape { shape } => Op::Reshape { shape: bind(shape) },
        Op::Expand { shape } => Op::Expand { shape: bind(shape) },
        Op::Iota { dtype, shape, axis } => Op::Iota { dtype: *dtype, shape: bind(shape), axis: *axis },
        op => op.clone(),
    }
}
