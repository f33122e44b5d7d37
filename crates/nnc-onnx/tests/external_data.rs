//! Initializers stored in a file next to the model (ONNX external data) are imported, and
//! locations that would leave the model's folder are refused.

mod common;

use common::tensor_input;
use nnc_onnx::proto::{
    tensor_proto::DataLocation, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, ValueInfoProto,
};
use prost::Message;
use std::path::PathBuf;

/// `y = x + w` with `w` (four f32 values at `offset` in `location`) stored externally.
fn model(location: &str, offset: usize) -> Vec<u8> {
    let entry = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    let mut w = TensorProto { name: Some("w".into()), dims: vec![4], data_type: Some(1), ..Default::default() };
    w.set_data_location(DataLocation::External);
    w.external_data =
        vec![entry("location", location.into()), entry("offset", offset.to_string()), entry("length", "16".into())];
    let graph = GraphProto {
        name: Some("external".into()),
        node: vec![NodeProto {
            op_type: Some("Add".into()),
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            ..Default::default()
        }],
        initializer: vec![w],
        input: vec![tensor_input("x", &[4])],
        output: vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-external-data-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn external_initializers_are_read_at_their_offset() {
    let dir = scratch_dir("ok");
    let mut blob = vec![0xAAu8; 8];
    for v in [1.0f32, 2.0, 3.0, 4.5] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("weights.bin"), &blob).unwrap();
    std::fs::write(dir.join("model.onnx"), model("weights.bin", 8)).unwrap();
    let graph = nnc_onnx::import_file(&dir.join("model.onnx")).expect("import");
    let x = nnc_ir::TensorData::from_vec(vec![4], &[10.0f32; 4]);
    let y = nnc_interp::run(&graph, &[x]).expect("run");
    assert_eq!(y[0].to_vec::<f32>().unwrap(), vec![11.0, 12.0, 13.0, 14.5]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn external_data_must_stay_inside_the_model_folder_and_file() {
    let dir = scratch_dir("bad");
    std::fs::write(dir.join("model.onnx"), model("../outside.bin", 0)).unwrap();
    let err = nnc_onnx::import_file(&dir.join("model.onnx")).unwrap_err().to_string();
    assert!(err.contains("relative path inside the model's folder"), "{err}");
    std::fs::write(dir.join("short.bin"), [0u8; 8]).unwrap();
    std::fs::write(dir.join("model.onnx"), model("short.bin", 0)).unwrap();
    let err = nnc_onnx::import_file(&dir.join("model.onnx")).unwrap_err().to_string();
    assert!(err.contains("runs past the end"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
