//! `Einsum` lowers to transposes, diagonals, sums and batched matmuls that compute what numpy's
//! `einsum` computes. Expected values from `numpy.einsum` (numpy 2.4) on the inputs below:
//! operand `k` holds `(arange(start, start + n) % 7) - 3` with `start` counting on from the
//! previous operand's end (1 for the first), so every value is a small integer and results are
//! exact.

mod common;

use common::tensor_input;
use nnc_ir::TensorData;
use nnc_onnx::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    ValueInfoProto,
};
use prost::Message;

fn model(equation: &str, shapes: &[&[i64]]) -> Vec<u8> {
    let names: Vec<String> = (0..shapes.len()).map(|k| format!("x{k}")).collect();
    let node = NodeProto {
        op_type: Some("Einsum".into()),
        input: names.clone(),
        output: vec!["y".into()],
        attribute: vec![AttributeProto {
            name: Some("equation".into()),
            r#type: Some(AttributeType::String as i32),
            s: Some(equation.as_bytes().to_vec().into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let graph = GraphProto {
        name: Some("einsum".into()),
        node: vec![node],
        input: names.iter().zip(shapes).map(|(n, s)| tensor_input(n, s)).collect(),
        output: vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        ..Default::default()
    };
    ModelProto {
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(12) }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn run(equation: &str, shapes: &[&[i64]]) -> Result<TensorData, String> {
    let graph = nnc_onnx::import_bytes(model(equation, shapes).into(), "einsum.onnx", None, &Default::default())
        .map_err(|e| e.to_string())?;
    let mut start = 1i64;
    let inputs: Vec<TensorData> = shapes
        .iter()
        .map(|s| {
            let n: i64 = s.iter().product();
            let v: Vec<f32> = (start..start + n).map(|i| (i % 7 - 3) as f32).collect();
            start += n;
            TensorData::from_vec(s.iter().map(|&d| d as usize).collect(), &v)
        })
        .collect();
    let out = nnc_interp::run(&graph, &inputs).map_err(|e| e.to_string())?;
    Ok(out[0].clone())
}

type Case = (&'static str, &'static [&'static [i64]], &'static [usize], &'static [f32]);

const CASES: &[Case] = &[
    ("ij,jk->ik", &[&[2, 3], &[3, 2]], &[2, 2], &[7.0, 4.0, -2.0, 4.0]),
    ("bij,bkj->bik", &[&[2, 2, 3], &[2, 2, 3]], &[2, 2, 2], &[-3.0, 2.0, -9.0, 2.0, -9.0, 8.0, -3.0, -1.0]),
    ("i,j->ij", &[&[2], &[3]], &[2, 3], &[0.0, -2.0, -4.0, 0.0, -1.0, -2.0]),
    ("ii->", &[&[3, 3]], &[], &[-1.0]),
    ("ii->i", &[&[3, 3]], &[3], &[-2.0, 2.0, -1.0]),
    (
        "...ij,...jk",
        &[&[2, 1, 2, 3], &[4, 3, 2]],
        &[2, 4, 2, 2],
        &[
            -4.0, 7.0, -1.0, -2.0, -1.0, -4.0, -7.0, -1.0, -5.0, -1.0, 1.0, -7.0, -2.0, -5.0, -5.0, 1.0, -5.0, 10.0,
            -2.0, 1.0, 1.0, -5.0, -5.0, -2.0, -7.0, 1.0, -1.0, -5.0, -1.0, -7.0, -4.0, -1.0,
        ],
    ),
    ("ij,ij,ij->i", &[&[2, 3], &[2, 3], &[2, 3]], &[2], &[12.0, 6.0]),
    ("ijk->kj", &[&[2, 3, 2]], &[2, 3], &[-5.0, -1.0, 3.0, -3.0, 1.0, 5.0]),
    ("i,i", &[&[4], &[4]], &[], &[-9.0]),
    ("bii->b", &[&[2, 2, 2]], &[2], &[-1.0, 0.0]),
    ("ab,bc,cd->ad", &[&[2, 3], &[3, 2], &[2, 2]], &[2, 2], &[13.0, -25.0, -14.0, 2.0]),
    ("ij->", &[&[2, 3]], &[], &[3.0]),
    ("ibj,jb->bi", &[&[2, 3, 2], &[2, 3]], &[3, 2], &[-5.0, -7.0, 0.0, 3.0, -1.0, 0.0]),
    ("i...,i->...", &[&[3, 2], &[3]], &[2], &[4.0, -2.0]),
    ("ji", &[&[2, 3]], &[3, 2], &[-2.0, 1.0, -1.0, 2.0, 0.0, 3.0]),
    ("iij,jk->ik", &[&[2, 2, 3], &[3, 1]], &[2, 1], &[-3.0, -7.0]),
];

#[test]
fn einsum_matches_numpy() {
    for &(equation, shapes, shape, values) in CASES {
        let y = run(equation, shapes).unwrap_or_else(|e| panic!("{equation}: {e}"));
        assert_eq!(y.shape(), shape, "{equation}");
        assert_eq!(y.to_vec::<f32>().unwrap(), values, "{equation}");
    }
}

#[test]
fn bad_equations_are_import_errors() {
    let err = |eq: &str, shapes: &[&[i64]]| run(eq, shapes).unwrap_err();
    assert!(err("ij,jk", &[&[2, 3]]).contains("has 2 terms for 1 operands"));
    assert!(err("ijk", &[&[2, 3]]).contains("does not fit operand 0 of rank 2"));
    assert!(err("ij->k", &[&[2, 3]]).contains("output label `k` is in no input term"));
    assert!(err("ij,jk->ik", &[&[2, 3], &[4, 2]]).contains("label `j` has sizes 3 and 4"));
    assert!(err("i1", &[&[2, 3]]).contains("`1` is not a letter"));
}
