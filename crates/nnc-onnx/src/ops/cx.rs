//! [`NodeCx`]: what a converter sees of one ONNX node — its operands, constants and attributes.

use crate::import::{ir_message, Dequantized, Scope, Slot};
use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use crate::tensor::tensor_from_proto;
use nnc_ir::{DType, GraphBuilder, IrError, TensorData, TensorType, ValueId};
use std::path::Path;

/// A converter's view of one ONNX node.
pub struct NodeCx<'a> {
    pub node: &'a NodeProto,
    /// The model's default-domain opset version.
    pub opset: i64,
    pub b: &'a mut GraphBuilder,
    scope: &'a mut Scope,
    base_dir: Option<&'a Path>,
}

/// Converter results: `?` on a builder error gives a message without our source location.
pub type Res<T> = Result<T, String>;

impl<'a> NodeCx<'a> {
    pub(crate) fn new(
        node: &'a NodeProto,
        opset: i64,
        b: &'a mut GraphBuilder,
        scope: &'a mut Scope,
        base_dir: Option<&'a Path>,
    ) -> Self {
        NodeCx { node, opset, b, scope, base_dir }
    }

    /// True if operand `i` is given (ONNX marks omitted optional operands with an empty name).
    pub fn has_input(&self, i: usize) -> bool {
        self.node.input.get(i).is_some_and(|n| !n.is_empty())
    }

    /// The number of operand slots, including omitted optional ones.
    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Operand `i` as a graph value (materializing a known constant if needed).
    pub fn input(&mut self, i: usize) -> Res<ValueId> {
        let name =
            self.node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| format!("operand {i} is required"))?;
        match self.scope.slots.get_mut(name) {
            Some(Slot::Value(id)) => Ok(*id),
            Some(Slot::Known { data, value }) => {
                if value.is_none() {
                    *value = Some(self.b.constant(data.clone()));
                }
                Ok(value.expect("just set"))
            }
            None => Err(format!("operand {i} `{name}` is not defined")),
        }
    }

    /// Where operand `i` is a `DequantizeLinear` output with constant parameters: what it
    /// dequantizes (see [`Dequantized`]).
    pub(crate) fn dequantized(&self, i: usize) -> Option<Dequantized> {
        self.node.input.get(i).and_then(|name| self.scope.dequantized.get(name)).cloned()
    }

    /// The type of the value named `name`, and its data where known at import (nothing is
    /// added to the graph).
    pub(crate) fn peek(&self, name: &str) -> Option<(TensorType, Option<TensorData>)> {
        match self.scope.slots.get(name)? {
            Slot::Value(id) => Some((self.b.ty(*id).clone(), None)),
            Slot::Known { data, .. } => {
                Some((TensorType::new(data.dtype(), data.shape().iter().copied()), Some(data.clone())))
            }
        }
    }

    /// The value named `name` (materializing a known constant).
    pub(crate) fn value_named(&mut self, name: &str) -> Res<ValueId> {
        match self.scope.slots.get_mut(name) {
            Some(Slot::Value(id)) => Ok(*id),
            Some(Slot::Known { data, value }) => Ok(*value.get_or_insert_with(|| self.b.constant(data.clone()))),
            None => Err(format!("`{name}` is not defined")),
        }
    }

    pub fn opt_input(&mut self, i: usize) -> Res<Option<ValueId>> {
        if self.has_input(i) {
            self.input(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Operand `i`'s value, which nnc needs at compile time (a shape, axes, bounds, ...).
    pub fn const_input(&self, i: usize) -> Res<TensorData> {
        let name =
            self.node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| format!("operand {i} is required"))?;
        match self.scope.slots.get(name) {
            Some(Slot::Known { data, .. }) => Ok(data.clone()),
            _ => self.scope.hints.get(name).cloned().ok_or_else(|| {
                format!("operand {i} (`{name}`) must be a constant: nnc needs it at compile time, but it is computed at run time")
            }),
        }
    }

    pub fn opt_const_input(&self, i: usize) -> Res<Option<TensorData>> {
        if self.has_input(i) {
            self.const_input(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A constant operand as integers (shapes, axes, pads).
    pub fn const_ints(&self, i: usize) -> Res<Vec<i64>> {
        let t = self.const_input(i)?;
        if !t.dtype().is_int() {
            return Err(format!("operand {i} must be integers, found {}", t.dtype()));
        }
        Ok(t.to_i64_vec())
    }

    pub fn opt_const_ints(&self, i: usize) -> Res<Option<Vec<i64>>> {
        if self.has_input(i) {
            self.const_ints(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// True if operand `i` is known at import time.
    pub fn is_known(&self, i: usize) -> bool {
        self.node.input.get(i).is_some_and(|n| matches!(self.scope.slots.get(n), Some(Slot::Known { .. })))
    }

    pub fn ty(&self, v: ValueId) -> TensorType {
        self.b.ty(v).clone()
    }

    /// The type of operand `i` without materializing it.
    pub fn input_type(&self, i: usize) -> Res<TensorType> {
        let name =
            self.node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| format!("operand {i} is required"))?;
        match self.scope.slots.get(name) {
            Some(Slot::Value(id)) => Ok(self.b.ty(*id).clone()),
            Some(Slot::Known { data, .. }) => Ok(TensorType::new(data.dtype(), data.shape().iter().copied())),
            None => Err(format!("operand {i} `{name}` is not defined")),
        }
    }

    pub fn rank(&self, v: ValueId) -> usize {
        self.b.ty(v).rank()
    }

    // ---- attributes ----

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    fn typed_attr(&self, name: &str, want: AttributeType) -> Res<Option<&AttributeProto>> {
        match self.attr(name) {
            None => Ok(None),
            // Some exporters leave the type unset; trust the field then.
            Some(a) if a.r#type() == want || a.r#type() == AttributeType::Undefined => Ok(Some(a)),
            Some(a) => {
                Err(format!("attribute `{name}` should be {}, found {}", want.as_str_name(), a.r#type().as_str_name()))
            }
        }
    }

    pub fn attr_int(&self, name: &str) -> Res<Option<i64>> {
        Ok(self.typed_attr(name, AttributeType::Int)?.map(|a| a.i()))
    }

    pub fn attr_int_or(&self, name: &str, default: i64) -> Res<i64> {
        Ok(self.attr_int(name)?.unwrap_or(default))
    }

    pub fn attr_float_or(&self, name: &str, default: f32) -> Res<f32> {
        Ok(self.typed_attr(name, AttributeType::Float)?.map(|a| a.f()).unwrap_or(default))
    }

    pub fn attr_ints(&self, name: &str) -> Res<Option<Vec<i64>>> {
        Ok(self.typed_attr(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub fn attr_floats(&self, name: &str) -> Res<Option<Vec<f32>>> {
        Ok(self.typed_attr(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }

    pub fn attr_string(&self, name: &str) -> Res<Option<String>> {
        Ok(self.typed_attr(name, AttributeType::String)?.map(|a| String::from_utf8_lossy(a.s()).into_owned()))
    }

    pub fn attr_strings(&self, name: &str) -> Res<Option<Vec<String>>> {
        Ok(self
            .typed_attr(name, AttributeType::Strings)?
            .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()))
    }

    pub fn attr_tensor(&self, name: &str) -> Res<Option<TensorData>> {
        match self.typed_attr(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => {
                let t = a.t.as_ref().ok_or_else(|| format!("attribute `{name}` has no tensor"))?;
                tensor_from_proto(t, &format!("attribute `{name}`"), self.base_dir).map(Some).map_err(|e| e.to_string())
            }
        }
    }

    /// Fails if the node has an attribute this converter does not handle, so an unknown
    /// attribute is never silently ignored.
    pub fn only_attrs(&self, known: &[&str]) -> Res<()> {
        let extra: Vec<&str> = self.node.attribute.iter().map(|a| a.name()).filter(|n| !known.contains(n)).collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!("unsupported attribute(s): {}", extra.join(", ")))
        }
    }

    /// A rank-0 constant of `dtype`.
    pub fn scalar(&mut self, dtype: DType, v: f64) -> ValueId {
        self.b.scalar(dtype, v)
    }

    /// A result that is a graph value.
    pub fn value(v: ValueId) -> Slot {
        Slot::Value(v)
    }

    /// A result known at import time (no node is added).
    pub fn known(data: TensorData) -> Slot {
        Slot::Known { data, value: None }
    }
}

/// A converter's failure message. Converting from [`IrError`] drops the builder's source
/// location (ours, not the user's), so converters can use `?` on builder calls.
#[derive(Debug)]
pub struct Fail(pub String);

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail(s.to_string())
    }
}

impl From<IrError> for Fail {
    fn from(e: IrError) -> Fail {
        Fail(ir_message(e))
    }
}

/// What a converter returns: one slot per ONNX output it produces.
pub type Out = Result<Vec<Slot>, Fail>;

/// The largest tensor a converter builds itself at import time (tables, filters, base grids,
/// one-hot kernels): 2^24 elements.
pub const MAX_BUILT_ELEMENTS: i64 = 1 << 24;

/// The product of `sizes`, or an error naming `what` where it overflows (sizes come from the
/// model: a mutated one can hold `2^32 × 2^32`).
pub fn product(sizes: impl IntoIterator<Item = i64>, what: &str) -> Res<i64> {
    sizes
        .into_iter()
        .try_fold(1i64, |acc, d| acc.checked_mul(d))
        .ok_or_else(|| format!("{what}: the element count overflows"))
}

/// [`product`], for a tensor the converter builds itself: at most [`MAX_BUILT_ELEMENTS`].
pub fn built_size(sizes: impl IntoIterator<Item = i64>, what: &str) -> Res<i64> {
    let n = product(sizes, what)?;
    if n > MAX_BUILT_ELEMENTS {
        return Err(format!(
            "{what} would have {n} elements, more than nnc builds at import time ({MAX_BUILT_ELEMENTS})"
        ));
    }
    Ok(n)
}

/// `Err` naming `what` unless every value is within ±2^31, so that the index arithmetic done on
/// them at import time cannot overflow (a mutated model can hold any `i64`).
pub fn within_index_range(values: &[i64], what: &str) -> Res<()> {
    const LIMIT: i64 = 1 << 31;
    match values.iter().find(|v| !(-LIMIT..=LIMIT).contains(*v)) {
        Some(v) => Err(format!("{what}: {v} is out of range")),
        None => Ok(()),
    }
}

/// `keep · old + (1 − keep) · new`: a moving average (running statistics, optimizer moments).
pub fn blend(cx: &mut NodeCx, old: ValueId, new: ValueId, keep: f64) -> Res<ValueId> {
    let kept = cx.b.binary_scalar(nnc_ir::BinaryOp::Mul, old, keep).map_err(ir_message)?;
    let moved = cx.b.binary_scalar(nnc_ir::BinaryOp::Mul, new, 1.0 - keep).map_err(ir_message)?;
    cx.b.add(kept, moved).map_err(ir_message)
}
