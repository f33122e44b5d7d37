//! Builders shared by the importer's tests.

use nnc_ir::{Graph, TensorData};
use nnc_onnx::proto::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use nnc_onnx::tensor_to_proto;
use prost::Message;

/// A graph input `name: f32[dims]`.
pub fn tensor_input(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node `op(inputs) -> outputs` with `attribute`.
#[allow(dead_code)]
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// An integer attribute.
#[allow(dead_code)]
pub fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// An attribute of integers.
#[allow(dead_code)]
pub fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// Imports the opset-13 model of `nodes` and `initializers` with one input `x: f32[x_dims]` and
/// one output `y`.
#[allow(dead_code)]
pub fn import_single_io(nodes: Vec<NodeProto>, initializers: &[(&str, TensorData)], x_dims: &[i64]) -> Graph {
    let graph = GraphProto {
        name: Some("test".into()),
        node: nodes,
        initializer: initializers.iter().map(|(name, t)| tensor_to_proto(name, t)).collect(),
        input: vec![tensor_input("x", x_dims)],
        output: vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        ..Default::default()
    };
    let model = ModelProto {
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(13) }],
        graph: Some(graph),
        ..Default::default()
    };
    nnc_onnx::import_bytes(model.encode_to_vec().into(), "test.onnx", None, &Default::default()).unwrap()
}
