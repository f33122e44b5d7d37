//! Graph IR back to ONNX, so a graph nnc trained (or built) runs elsewhere: ONNX Runtime, other
//! compilers. Constants become initializers; every op with a standard ONNX counterpart at
//! opset 20 is written as that node. Ops without one (and symbolic shapes in attributes) are
//! reported all at once, each with its node, and nothing is written.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::TensorProto;
use crate::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use crate::tensor_to_proto;
use nnc_ir::{BinaryOp, Dim, Graph, Op, PoolKind, ReduceKind, TensorData, TensorType, UnaryOp, ValueId};
use prost::Message;

/// The opset the exported model imports (`Gelu` needs 20).
pub const EXPORT_OPSET: i64 = 20;

/// Why a graph could not be exported: every node that has no ONNX form, described.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("graph `{graph}` cannot be written as ONNX:\n{}", problems.join("\n"))]
pub struct ExportError {
    pub graph: String,
    pub problems: Vec<String>,
}

/// `graph` as an ONNX model.
pub fn export_model(graph: &Graph) -> Result<ModelProto, ExportError> {
    let mut w = Writer { graph, nodes: Vec::new(), initializers: Vec::new(), fresh: 0 };
    let mut problems = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let Err(why) = w.node(node) {
            problems.push(format!("  node `{}`: {why}", graph.describe_node(i)));
        }
    }
    if !problems.is_empty() {
        return Err(ExportError { graph: graph.name.clone(), problems });
    }
    let info = |v: &ValueId| value_info(graph.name_of(*v), graph.ty(*v));
    let proto = GraphProto {
        name: Some(graph.name.clone()),
        node: w.nodes,
        initializer: w.initializers,
        input: graph.inputs.iter().map(info).collect(),
        output: graph.outputs.iter().map(info).collect(),
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: Some(9),
        producer_name: Some("nnc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(EXPORT_OPSET) }],
        graph: Some(proto),
        ..ModelProto::default()
    })
}

/// `graph` as the bytes of an `.onnx` file.
pub fn export_bytes(graph: &Graph) -> Result<Vec<u8>, ExportError> {
    Ok(export_model(graph)?.encode_to_vec())
}

fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    let dim = |d: &Dim| Dimension {
        value: Some(match d.as_const() {
            Some(n) => dimension::Value::DimValue(n),
            None => dimension::Value::DimParam(d.to_string()),
        }),
        ..Dimension::default()
    };
    let elem_type = tensor_to_proto("", &TensorData::from_f64(ty.dtype, vec![0], &[])).data_type;
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim: ty.shape.iter().map(dim).collect() }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// An integer attribute (shared with `qdq.rs`).
pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..AttributeProto::default()
    }
}

fn float(name: &str, v: f64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v as f32),
        ..AttributeProto::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec().into()),
        ..AttributeProto::default()
    }
}

struct Writer<'g> {
    graph: &'g Graph,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    fresh: usize,
}

impl Writer<'_> {
    fn name(&self, v: ValueId) -> String {
        self.graph.name_of(v).to_string()
    }

    /// An initializer holding `values` (for the shape, axes and pads operands ONNX takes as
    /// tensors); returns its name.
    fn i64s(&mut self, values: &[i64]) -> String {
        self.fresh += 1;
        let name = format!("nnc_export_const_{}", self.fresh);
        self.initializers.push(tensor_to_proto(&name, &TensorData::from_vec(vec![values.len()], values)));
        name
    }

    fn emit(&mut self, op_type: &str, inputs: Vec<String>, outputs: Vec<String>, attribute: Vec<AttributeProto>) {
        let name = format!("{op_type}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            op_type: Some(op_type.into()),
            name: Some(name),
            input: inputs,
            output: outputs,
            attribute,
            ..NodeProto::default()
        });
    }

    fn node(&mut self, node: &nnc_ir::Node) -> Result<(), String> {
        let ins: Vec<String> = node.inputs.iter().map(|&v| self.name(v)).collect();
        let out = vec![self.name(node.outputs[0])];
        let static_dims = |dims: &[Dim]| -> Result<Vec<i64>, String> {
            dims.iter()
                .map(|d| d.as_const().ok_or_else(|| format!("the symbolic dimension {d} has no ONNX attribute form")))
                .collect()
        };
        let window = |w: &nnc_ir::Window| {
            vec![ints("strides", &w.strides), ints("dilations", &w.dilations), ints("pads", &w.pads)]
        };
        match &node.op {
            Op::Constant(t) => self.initializers.push(tensor_to_proto(&out[0], t)),
            Op::Unary(UnaryOp::Rsqrt) => {
                let root = format!("{}_sqrt", out[0]);
                self.emit("Sqrt", ins, vec![root.clone()], vec![]);
                self.emit("Reciprocal", vec![root], out, vec![]);
            }
            Op::Unary(u) => self.emit(unary_name(*u), ins, out, vec![]),
            Op::Binary(BinaryOp::Ne) => {
                let eq = format!("{}_eq", out[0]);
                self.emit("Equal", ins, vec![eq.clone()], vec![]);
                self.emit("Not", vec![eq], out, vec![]);
            }
            // nnc's remainder truncates (C's fmod), which is ONNX's `Mod` with `fmod = 1`.
            Op::Binary(BinaryOp::Rem) => self.emit("Mod", ins, out, vec![int("fmod", 1)]),
            Op::Binary(b) => {
                let op_type =
                    binary_name(*b).ok_or_else(|| format!("internal: `{}` has no single ONNX node", b.name()))?;
                self.emit(op_type, ins, out, vec![]);
            }
            Op::Select => self.emit("Where", ins, out, vec![]),
            Op::Cast { to } => {
                let code = tensor_to_proto("", &TensorData::from_f64(*to, vec![0], &[])).data_type.unwrap_or(0);
                self.emit("Cast", ins, out, vec![int("to", code as i64)]);
            }
            Op::Reduce { kind, axes, keep_dims } => {
                let op_type = match kind {
                    ReduceKind::Sum => "ReduceSum",
                    ReduceKind::Mean => "ReduceMean",
                    ReduceKind::Max => "ReduceMax",
                    ReduceKind::Min => "ReduceMin",
                    ReduceKind::Prod => "ReduceProd",
                };
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let axes = self.i64s(&axes);
                self.emit(op_type, vec![ins[0].clone(), axes], out, vec![int("keepdims", *keep_dims as i64)]);
            }
            Op::MatMul => self.emit("MatMul", ins, out, vec![]),
            Op::Conv { window: w, groups } => {
                let mut attrs = window(w);
                attrs.push(int("group", *groups));
                self.emit("Conv", ins, out, attrs);
            }
            Op::Pool { kind, kernel, window: w, ceil_mode, count_include_pad } => {
                let mut attrs = window(w);
                attrs.push(ints("kernel_shape", kernel));
                attrs.push(int("ceil_mode", *ceil_mode as i64));
                let op_type = match kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Avg => {
                        attrs.push(int("count_include_pad", *count_include_pad as i64));
                        "AveragePool"
                    }
                };
                self.emit(op_type, ins, out, attrs);
            }
            Op::Reshape { shape } => {
                let shape = self.i64s(&static_dims(shape)?);
                self.emit("Reshape", vec![ins[0].clone(), shape], out, vec![]);
            }
            Op::Expand { shape } => {
                let shape = self.i64s(&static_dims(shape)?);
                self.emit("Expand", vec![ins[0].clone(), shape], out, vec![]);
            }
            Op::Transpose { perm } => {
                let perm: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
                self.emit("Transpose", ins, out, vec![ints("perm", &perm)]);
            }
            Op::Slice { axes, starts, ends, steps } => {
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let operands =
                    vec![ins[0].clone(), self.i64s(starts), self.i64s(ends), self.i64s(&axes), self.i64s(steps)];
                self.emit("Slice", operands, out, vec![]);
            }
            Op::Concat { axis } => self.emit("Concat", ins, out, vec![int("axis", *axis as i64)]),
            Op::Gather { axis } => self.emit("Gather", ins, out, vec![int("axis", *axis as i64)]),
            Op::GatherElements { axis } => self.emit("GatherElements", ins, out, vec![int("axis", *axis as i64)]),
            Op::Softmax { axis } => self.emit("Softmax", ins, out, vec![int("axis", *axis as i64)]),
            Op::LogSoftmax { axis } => self.emit("LogSoftmax", ins, out, vec![int("axis", *axis as i64)]),
            Op::LayerNorm { axis, epsilon } => {
                self.emit("LayerNormalization", ins, out, vec![int("axis", *axis as i64), float("epsilon", *epsilon)])
            }
            Op::BatchNorm { epsilon } => self.emit("BatchNormalization", ins, out, vec![float("epsilon", *epsilon)]),
            Op::Gelu { approximate } => self.emit("Gelu", ins, out, vec![string("approximate", approximate.name())]),
            other => return Err(format!("`{}` has no ONNX counterpart that nnc writes", other.name())),
        }
        Ok(())
    }
}

fn unary_name(u: UnaryOp) -> &'static str {
    use UnaryOp::*;
    match u {
        Neg => "Neg",
        Abs => "Abs",
        Sign => "Sign",
        Relu => "Relu",
        Exp => "Exp",
        Log => "Log",
        Sqrt => "Sqrt",
        Rsqrt => "Rsqrt",
        Reciprocal => "Reciprocal",
        Sin => "Sin",
        Cos => "Cos",
        Tan => "Tan",
        Asin => "Asin",
        Acos => "Acos",
        Atan => "Atan",
        Sinh => "Sinh",
        Cosh => "Cosh",
        Tanh => "Tanh",
        Asinh => "Asinh",
        Acosh => "Acosh",
        Atanh => "Atanh",
        Sigmoid => "Sigmoid",
        Erf => "Erf",
        Floor => "Floor",
        Ceil => "Ceil",
        Round => "Round",
        Not => "Not",
        IsNan => "IsNaN",
        IsInf => "IsInf",
    }
}

/// The ONNX node of `b`, where it is one node without attributes (`ne` and `rem` are not).
fn binary_name(b: BinaryOp) -> Option<&'static str> {
    use BinaryOp::*;
    Some(match b {
        Add => "Add",
        Sub => "Sub",
        Mul => "Mul",
        Div => "Div",
        Pow => "Pow",
        Max => "Max",
        Min => "Min",
        And => "And",
        Or => "Or",
        Xor => "Xor",
        Eq => "Equal",
        Lt => "Less",
        Le => "LessOrEqual",
        Gt => "Greater",
        Ge => "GreaterOrEqual",
        Ne | Rem => return None,
    })
}
