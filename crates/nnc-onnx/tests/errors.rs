//! Import errors name the file, node and op, and list every unsupported node at once.

use nnc_onnx::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
use prost::Message;

fn node(op: &str, name: &str, input: &str, output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>) -> Vec<u8> {
    let graph = GraphProto {
        name: Some("g".into()),
        node: nodes,
        output: vec![ValueInfoProto { name: Some("z".into()), ..Default::default() }],
        ..Default::default()
    };
    ModelProto {
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn import(bytes: Vec<u8>) -> String {
    nnc_onnx::import_bytes(bytes.into(), "m.onnx", None, &Default::default()).unwrap_err().to_string()
}

#[test]
fn all_unsupported_nodes_are_listed_at_once() {
    let err = import(model(vec![
        node("Constant", "c", "", "x"),
        node("FancyOp", "first", "x", "y"),
        node("Relu", "fine", "y", "y2"),
        node("OtherOp", "second", "y2", "z"),
    ]));
    assert!(err.starts_with("m.onnx: 2 node(s) cannot be imported"), "{err}");
    assert!(err.contains("node `first` (FancyOp): unsupported op"), "{err}");
    assert!(err.contains("node `second` (OtherOp): unsupported op"), "{err}");
}

#[test]
fn conversion_errors_name_the_node_and_keep_going() {
    // Two bad nodes on independent paths: both are reported; the node after the first is skipped
    // silently (its cause is already listed).
    let mut flatten = node("Flatten", "bad_axis", "x", "y");
    flatten.attribute.push(nnc_onnx::proto::AttributeProto {
        name: Some("axis".into()),
        r#type: Some(nnc_onnx::proto::attribute_proto::AttributeType::Int as i32),
        i: Some(9),
        ..Default::default()
    });
    let err = import(model(vec![
        NodeProto {
            op_type: Some("Constant".into()),
            output: vec!["x".into()],
            attribute: vec![nnc_onnx::proto::AttributeProto {
                name: Some("value_floats".into()),
                r#type: Some(nnc_onnx::proto::attribute_proto::AttributeType::Floats as i32),
                floats: vec![1.0, 2.0],
                ..Default::default()
            }],
            ..Default::default()
        },
        flatten,
        node("Relu", "after", "y", "y2"),
        node("Squeeze", "no_such_input", "missing", "z"),
    ]));
    assert!(err.contains("node `bad_axis` (Flatten): axis 9 is out of range"), "{err}");
    assert!(err.contains("node `no_such_input` (Squeeze): input `missing` is not defined"), "{err}");
    assert!(!err.contains("after"), "{err}");
}

#[test]
fn malformed_protobuf_is_a_clear_error() {
    let err = import(vec![0xff, 0xff, 0xff, 0x01, 0x02]);
    assert!(err.starts_with("m.onnx: not a valid ONNX protobuf message"), "{err}");
}
