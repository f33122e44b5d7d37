//! A typed builder for framework authors: build a graph in a few lines, with every value's
//! type inferred as it is created and mistakes reported at the call that made them.
//!
//! ```
//! use nnc_ir::{DType, Dim, GraphBuilder, TensorData};
//! let mut b = GraphBuilder::new("affine");
//! let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(4)])?;
//! let w = b.constant(TensorData::from_vec(vec![4, 2], &[0.5f32; 8]));
//! let y = b.matmul(x, w)?;
//! let y = b.relu(y)?;
//! b.output(y);
//! let graph = b.finish()?;
//! assert_eq!(graph.ty(graph.outputs[0]).to_string(), "f32[batch, 2]");
//! # Ok::<(), nnc_ir::IrError>(())
//! ```

use crate::op::{ArgKind, BinaryOp, GeluApprox, PadMode, PoolKind, ReduceKind, UnaryOp, Window};
use crate::shape::normalize_axis;
use crate::{infer, verify, DType, Dim, Graph, IrError, Op, TensorData, TensorType, ValueId};
use std::collections::HashSet;
use std::panic::Location;

/// Builds a [`Graph`] node by node. Each method checks its operands at once and returns an
/// error naming the op and the caller's source location.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: Graph,
    taken: HashSet<String>,
    next_name: usize,
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder { graph: Graph::new(name), taken: HashSet::new(), next_name: 0 }
    }

    /// The type of a value built so far.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        self.graph.ty(v)
    }

    /// The graph so far (not yet verified as a whole).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Declares a graph input.
    #[track_caller]
    pub fn input(
        &mut self,
        name: &str,
        dtype: DType,
        shape: impl IntoIterator<Item = impl Into<Dim>>,
    ) -> Result<ValueId, IrError> {
        let at = Location::caller();
        if !self.taken.insert(name.to_string()) {
            return Err(build_error(at, "input", format!("the name `{name}` is already used")));
        }
        let id = self.graph.add_value(name.to_string(), TensorType::new(dtype, shape));
        self.graph.inputs.push(id);
        Ok(id)
    }

    /// Marks a value as a graph output (in call order).
    pub fn output(&mut self, v: ValueId) {
        self.graph.outputs.push(v);
    }

    /// Renames a value; names must be unique in the graph.
    #[track_caller]
    pub fn set_name(&mut self, v: ValueId, name: &str) -> Result<(), IrError> {
        let at = Location::caller();
        if !self.taken.insert(name.to_string()) {
            return Err(build_error(at, "set_name", format!("the name `{name}` is already used")));
        }
        let old = std::mem::replace(&mut self.graph.values[v.index()].name, name.to_string());
        self.taken.remove(&old);
        Ok(())
    }

    /// Verifies the whole graph and returns it, values numbered in definition order.
    pub fn finish(mut self) -> Result<Graph, IrError> {
        if self.graph.outputs.is_empty() {
            return Err(IrError::Graph { graph: self.graph.name, message: "has no outputs (call `output`)".into() });
        }
        self.graph.canonicalize();
        verify(&self.graph)?;
        Ok(self.graph)
    }

    /// Adds a node of any op and returns its results.
    #[track_caller]
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>, IrError> {
        let at = Location::caller();
        if let Some(bad) = inputs.iter().find(|v| v.index() >= self.graph.values.len()) {
            return Err(build_error(at, op.name(), format!("operand {bad:?} does not belong to this builder")));
        }
        let types: Vec<&TensorType> = inputs.iter().map(|&v| self.graph.ty(v)).collect();
        let out_types = infer(&op, &types).map_err(|m| build_error(at, op.name(), m))?;
        let outputs = out_types
            .into_iter()
            .map(|ty| {
                let name = self.fresh_name();
                self.graph.add_value(name, ty)
            })
            .collect::<Vec<_>>();
        self.graph.nodes.push(crate::Node { op, inputs: inputs.to_vec(), outputs: outputs.clone() });
        Ok(outputs)
    }

    /// Adds a node of a single-result op.
    #[track_caller]
    pub fn op1(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId, IrError> {
        Ok(self.op(op, inputs)?[0])
    }

    fn fresh_name(&mut self) -> String {
        loop {
            let name = self.next_name.to_string();
            self.next_name += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }

    #[track_caller]
    fn axis(&self, v: ValueId, axis: i64, op: &str) -> Result<usize, IrError> {
        normalize_axis(axis, self.ty(v).rank()).map_err(|m| build_error(Location::caller(), op, m))
    }

    #[track_caller]
    fn axes(&self, v: ValueId, axes: &[i64], op: &str) -> Result<Vec<usize>, IrError> {
        axes.iter().map(|&a| self.axis(v, a, op)).collect()
    }

    // ---- leaves ----

    /// A constant tensor; its data is shared, not copied.
    pub fn constant(&mut self, t: TensorData) -> ValueId {
        self.op1(Op::Constant(t), &[]).expect("a constant always has a type")
    }

    /// A rank-0 constant of `dtype` holding `value`.
    pub fn scalar(&mut self, dtype: DType, value: f64) -> ValueId {
        self.constant(TensorData::from_f64(dtype, vec![], &[value]))
    }

    #[track_caller]
    pub fn iota(&mut self, dtype: DType, shape: Vec<Dim>, axis: i64) -> Result<ValueId, IrError> {
        let axis = normalize_axis(axis, shape.len()).map_err(|m| build_error(Location::caller(), "iota", m))?;
        self.op1(Op::Iota { dtype, shape, axis }, &[])
    }

    // ---- elementwise ----

    #[track_caller]
    pub fn unary(&mut self, op: UnaryOp, x: ValueId) -> Result<ValueId, IrError> {
        self.op1(Op::Unary(op), &[x])
    }

    #[track_caller]
    pub fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.op1(Op::Binary(op), &[a, b])
    }

    #[track_caller]
    pub fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.binary(BinaryOp::Add, a, b)
    }

    #[track_caller]
    pub fn sub(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.binary(BinaryOp::Sub, a, b)
    }

    #[track_caller]
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.binary(BinaryOp::Mul, a, b)
    }

    #[track_caller]
    pub fn div(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.binary(BinaryOp::Div, a, b)
    }

    #[track_caller]
    pub fn max(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.binary(BinaryOp::Max, a, b)
    }

    #[track_caller]
    pub fn relu(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.unary(UnaryOp::Relu, x)
    }

    #[track_caller]
    pub fn exp(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.unary(UnaryOp::Exp, x)
    }

    #[track_caller]
    pub fn log(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.unary(UnaryOp::Log, x)
    }

    #[track_caller]
    pub fn tanh(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.unary(UnaryOp::Tanh, x)
    }

    #[track_caller]
    pub fn sigmoid(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.unary(UnaryOp::Sigmoid, x)
    }

    /// `x op scalar`, the scalar in `x`'s dtype: a common shorthand in expansions.
    #[track_caller]
    pub fn binary_scalar(&mut self, op: BinaryOp, x: ValueId, scalar: f64) -> Result<ValueId, IrError> {
        let s = self.scalar(self.ty(x).dtype, scalar);
        self.binary(op, x, s)
    }

    #[track_caller]
    pub fn select(&mut self, cond: ValueId, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.op1(Op::Select, &[cond, a, b])
    }

    #[track_caller]
    pub fn cast(&mut self, x: ValueId, to: DType) -> Result<ValueId, IrError> {
        self.op1(Op::Cast { to }, &[x])
    }

    // ---- reductions ----

    /// Reduces over `axes` (negative axes count from the end).
    #[track_caller]
    pub fn reduce(&mut self, kind: ReduceKind, x: ValueId, axes: &[i64], keep_dims: bool) -> Result<ValueId, IrError> {
        let axes = self.axes(x, axes, "reduce")?;
        self.op1(Op::Reduce { kind, axes, keep_dims }, &[x])
    }

    #[track_caller]
    pub fn reduce_sum(&mut self, x: ValueId, axes: &[i64], keep_dims: bool) -> Result<ValueId, IrError> {
        self.reduce(ReduceKind::Sum, x, axes, keep_dims)
    }

    #[track_caller]
    pub fn reduce_mean(&mut self, x: ValueId, axes: &[i64], keep_dims: bool) -> Result<ValueId, IrError> {
        self.reduce(ReduceKind::Mean, x, axes, keep_dims)
    }

    #[track_caller]
    pub fn argmax(&mut self, x: ValueId, axis: i64, keep_dims: bool) -> Result<ValueId, IrError> {
        let axis = self.axis(x, axis, "argmax")?;
        self.op1(Op::ArgReduce { kind: ArgKind::Max, axis, keep_dims, select_last: false }, &[x])
    }

    // ---- contractions ----

    #[track_caller]
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.op1(Op::MatMul, &[a, b])
    }

    #[track_caller]
    pub fn conv(&mut self, x: ValueId, w: ValueId, window: Window, groups: i64) -> Result<ValueId, IrError> {
        self.op1(Op::Conv { window, groups }, &[x, w])
    }

    #[track_caller]
    pub fn pool(&mut self, kind: PoolKind, x: ValueId, kernel: Vec<i64>, window: Window) -> Result<ValueId, IrError> {
        self.op1(Op::Pool { kind, kernel, window, ceil_mode: false, count_include_pad: false }, &[x])
    }

    // ---- data movement ----

    #[track_caller]
    pub fn reshape(&mut self, x: ValueId, shape: Vec<Dim>) -> Result<ValueId, IrError> {
        self.op1(Op::Reshape { shape }, &[x])
    }

    #[track_caller]
    pub fn transpose(&mut self, x: ValueId, perm: Vec<usize>) -> Result<ValueId, IrError> {
        self.op1(Op::Transpose { perm }, &[x])
    }

    /// Swaps the last two axes.
    #[track_caller]
    pub fn transpose_last2(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        let r = self.ty(x).rank();
        if r < 2 {
            return Err(build_error(
                Location::caller(),
                "transpose",
                format!("needs rank 2 or more, found {}", self.ty(x)),
            ));
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(x, perm)
    }

    /// `x[.., start..end, ..]` along one axis (step 1).
    #[track_caller]
    pub fn slice_axis(&mut self, x: ValueId, axis: usize, start: i64, end: i64) -> Result<ValueId, IrError> {
        self.op1(Op::Slice { axes: vec![axis], starts: vec![start], ends: vec![end], steps: vec![1] }, &[x])
    }

    #[track_caller]
    pub fn expand(&mut self, x: ValueId, shape: Vec<Dim>) -> Result<ValueId, IrError> {
        self.op1(Op::Expand { shape }, &[x])
    }

    #[track_caller]
    pub fn concat(&mut self, xs: &[ValueId], axis: i64) -> Result<ValueId, IrError> {
        let first = *xs
            .first()
            .ok_or_else(|| build_error(Location::caller(), "concat", "needs at least one operand".into()))?;
        let axis = self.axis(first, axis, "concat")?;
        self.op1(Op::Concat { axis }, xs)
    }

    #[track_caller]
    pub fn pad(&mut self, x: ValueId, pads: Vec<i64>, mode: PadMode, value: f64) -> Result<ValueId, IrError> {
        self.op1(Op::Pad { pads, mode, value }, &[x])
    }

    #[track_caller]
    pub fn gather(&mut self, data: ValueId, indices: ValueId, axis: i64) -> Result<ValueId, IrError> {
        let axis = self.axis(data, axis, "gather")?;
        self.op1(Op::Gather { axis }, &[data, indices])
    }

    // ---- composites ----

    #[track_caller]
    pub fn softmax(&mut self, x: ValueId, axis: i64) -> Result<ValueId, IrError> {
        let axis = self.axis(x, axis, "softmax")?;
        self.op1(Op::Softmax { axis }, &[x])
    }

    #[track_caller]
    pub fn log_softmax(&mut self, x: ValueId, axis: i64) -> Result<ValueId, IrError> {
        let axis = self.axis(x, axis, "log_softmax")?;
        self.op1(Op::LogSoftmax { axis }, &[x])
    }

    #[track_caller]
    pub fn layer_norm(
        &mut self,
        x: ValueId,
        scale: ValueId,
        bias: ValueId,
        axis: i64,
        epsilon: f64,
    ) -> Result<ValueId, IrError> {
        let axis = self.axis(x, axis, "layer_norm")?;
        self.op1(Op::LayerNorm { axis, epsilon }, &[x, scale, bias])
    }

    #[track_caller]
    pub fn gelu(&mut self, x: ValueId, approximate: GeluApprox) -> Result<ValueId, IrError> {
        self.op1(Op::Gelu { approximate }, &[x])
    }

    #[track_caller]
    pub fn attention(
        &mut self,
        q: ValueId,
        k: ValueId,
        v: ValueId,
        mask: Option<ValueId>,
        scale: Option<f64>,
        causal: bool,
    ) -> Result<ValueId, IrError> {
        let mut operands = vec![q, k, v];
        operands.extend(mask);
        self.op1(Op::Attention { scale, causal }, &operands)
    }
}

fn build_error(at: &Location<'_>, op: &str, message: String) -> IrError {
    IrError::Build { at: format!("{}:{}:{}", at.file(), at.line(), at.column()), op: op.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_faulty_call() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, [2, 3]).unwrap();
        let y = b.input("y", DType::F32, [4, 5]).unwrap();
        let line = line!() + 1;
        let err = b.matmul(x, y).unwrap_err().to_string();
        assert!(err.contains(&format!("builder.rs:{line}:")), "{err}");
        assert!(err.contains("`matmul`: contraction dimensions differ"), "{err}");
    }

    #[test]
    fn names_are_unique() {
        let mut b = GraphBuilder::new("g");
        b.input("x", DType::F32, [1]).unwrap();
        assert!(b.input("x", DType::F32, [1]).unwrap_err().to_string().contains("already used"));
    }

    #[test]
    fn finish_requires_outputs_and_numbers_values_in_order() {
        let mut b = GraphBuilder::new("g");
        let c = b.scalar(DType::F32, 2.0);
        let x = b.input("x", DType::F32, [3]).unwrap();
        assert!(b.clone().finish().is_err());
        let y = b.mul(x, c).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        assert_eq!(g.inputs[0].index(), 0, "inputs come first after canonicalize");
        assert_eq!(g.name_of(g.outputs[0]), "1");
    }
}
