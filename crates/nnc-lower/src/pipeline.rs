//! The pipeline from a graph with static shapes to a [`Program`] for a device: weights laid out
//! for its vectors, fused, scheduled and legalized; and the binding of symbolic dimensions that
//! makes a graph's shapes static.

use crate::fuse::{fuse, FuseError, FuseOptions};
use crate::layout::pack_weights;
use crate::legalize::{legalize_all, split_wide_concats, LegalizeError};
use crate::schedule::{fuse_options, schedule_all, ScheduleError};
use nnc_ir::Graph;
use nnc_ir::TensorData;
use nnc_kernel::device::Device;
use nnc_kernel::program::{Fused, Program};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Fuse(#[from] FuseError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Legalize(#[from] LegalizeError),
}

/// Fuses `graph` (static shapes) for `device`: constant weights laid out for its vector tiles
/// ([`pack_weights`]), concatenations wider than its kernels may bind split
/// ([`split_wide_concats`]), fusion priced by [`fuse_options`] unless `options` says otherwise.
pub fn fuse_for(graph: &Graph, device: &Device, options: Option<&FuseOptions>) -> Result<Fused, FuseError> {
    let graph = split_wide_concats(&pack_weights(graph, device), device);
    fuse(&graph, &options.copied().unwrap_or_else(|| fuse_options(device)))
}

/// Fuses ([`fuse_for`]), schedules and legalizes `graph` (static shapes) for `device`.
pub fn compile(graph: &Graph, device: &Device, options: Option<&FuseOptions>) -> Result<Program, CompileError> {
    let fused = fuse_for(graph, device, options)?;
    let kernels = legalize_all(&schedule_all(&fused, device)?, device)?;
    Ok(Program { fused, kernels, device: *device })
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
