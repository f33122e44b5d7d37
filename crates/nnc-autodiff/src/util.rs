//! Helpers shared by the gradient rules: zeros, scalars, undoing broadcasting.

use crate::GradError;
use nnc_ir::{BinaryOp, DType, Dim, GraphBuilder, IrError, Op, TensorData, ValueId};

/// Why a rule could not produce a gradient: the builder rejected an op, or the case is not
/// supported (the message says why). Turned into a [`GradError`] naming the node.
#[derive(Debug)]
pub(crate) enum RuleError {
    Ir(IrError),
    Unsupported(String),
    Grad(Box<GradError>),
}

impl From<IrError> for RuleError {
    fn from(e: IrError) -> Self {
        RuleError::Ir(e)
    }
}

impl From<GradError> for RuleError {
    fn from(e: GradError) -> Self {
        RuleError::Grad(Box::new(e))
    }
}

impl RuleError {
    pub(crate) fn into_grad_error(self, node: &str) -> GradError {
        match self {
            RuleError::Ir(source) => GradError::Build { node: node.to_string(), source },
            RuleError::Unsupported(reason) => GradError::Unsupported { node: node.to_string(), reason },
            RuleError::Grad(e) => *e,
        }
    }

    pub(crate) fn into_ir(self) -> IrError {
        match self {
            RuleError::Ir(e) => e,
            other => IrError::Graph { graph: "autodiff".into(), message: format!("{other:?}") },
        }
    }
}

pub(crate) type R<T> = Result<T, RuleError>;

/// A tensor of `shape` filled with `value` (a broadcast scalar, so it works for symbolic shapes).
pub(crate) fn full(b: &mut GraphBuilder, dtype: DType, shape: &[Dim], value: f64) -> R<ValueId> {
    let s = b.scalar(dtype, value);
    if shape.is_empty() {
        return Ok(s);
    }
    Ok(b.expand(s, shape.to_vec())?)
}

/// Zeros of `v`'s type.
pub(crate) fn zeros_like(b: &mut GraphBuilder, v: ValueId) -> R<ValueId> {
    let t = b.ty(v).clone();
    full(b, t.dtype, &t.shape, 0.0)
}

/// A scalar of `v`'s dtype.
pub(crate) fn scalar_like(b: &mut GraphBuilder, v: ValueId, value: f64) -> ValueId {
    let dt = b.ty(v).dtype;
    b.scalar(dt, value)
}

/// `x op c` for a scalar `c` in `x`'s dtype.
pub(crate) fn bs(b: &mut GraphBuilder, op: BinaryOp, x: ValueId, c: f64) -> R<ValueId> {
    Ok(b.binary_scalar(op, x, c)?)
}

/// `c op x` for a scalar `c` in `x`'s dtype.
pub(crate) fn sb(b: &mut GraphBuilder, op: BinaryOp, c: f64, x: ValueId) -> R<ValueId> {
    let s = scalar_like(b, x, c);
    Ok(b.binary(op, s, x)?)
}

pub(crate) fn neg(b: &mut GraphBuilder, x: ValueId) -> R<ValueId> {
    Ok(b.unary(nnc_ir::UnaryOp::Neg, x)?)
}

/// `select(cond, a, 0)` or `select(cond, 0, a)`.
pub(crate) fn mask(b: &mut GraphBuilder, cond: ValueId, g: ValueId, keep_where_true: bool) -> R<ValueId> {
    let z = scalar_like(b, g, 0.0);
    Ok(if keep_where_true { b.select(cond, g, z)? } else { b.select(cond, z, g)? })
}

/// Sums `g` (of a broadcast result's shape) down to `target`, undoing numpy broadcasting: over
/// the leading axes `target` lacks and the axes where `target` has 1, then reshapes.
pub(crate) fn unbroadcast(b: &mut GraphBuilder, g: ValueId, target: &[Dim]) -> R<ValueId> {
    let gs = b.ty(g).shape.clone();
    if gs == target {
        return Ok(g);
    }
    let lead = gs.len() - target.len();
    let one = Dim::constant(1);
    let mut axes: Vec<i64> = (0..lead as i64).collect();
    for (i, d) in target.iter().enumerate() {
        if *d == one && gs[lead + i] != one {
            axes.push((lead + i) as i64);
        }
    }
    let s = if axes.is_empty() { g } else { b.reduce_sum(g, &axes, true)? };
    if b.ty(s).shape == target {
        Ok(s)
    } else {
        Ok(b.reshape(s, target.to_vec())?)
    }
}

/// A constant `i64` tensor.
pub(crate) fn const_i64(b: &mut GraphBuilder, shape: Vec<usize>, values: &[i64]) -> ValueId {
    b.constant(TensorData::from_vec(shape, values))
}

/// The inverse of a permutation.
pub(crate) fn inverse_perm(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `transpose` that skips the identity permutation.
pub(crate) fn transpose(b: &mut GraphBuilder, x: ValueId, perm: Vec<usize>) -> R<ValueId> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        Ok(x)
    } else {
        Ok(b.transpose(x, perm)?)
    }
}

/// `reshape` that skips a reshape to the same shape.
pub(crate) fn reshape(b: &mut GraphBuilder, x: ValueId, shape: Vec<Dim>) -> R<ValueId> {
    if b.ty(x).shape == shape {
        Ok(x)
    } else {
        Ok(b.reshape(x, shape)?)
    }
}

/// `cumulative` along `axis`.
pub(crate) fn cumulative(
    b: &mut GraphBuilder,
    x: ValueId,
    axis: usize,
    kind: nnc_ir::CumKind,
    exclusive: bool,
    reverse: bool,
) -> R<ValueId> {
    Ok(b.op1(Op::Cumulative { axis, kind, exclusive, reverse }, &[x])?)
}

/// The product of `dims` as a dimension.
pub(crate) fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::constant(1), |acc, d| acc * d.clone())
}
