//! Staged execution on the reference interpreter: `If` and `Loop` decided by run-time values,
//! sequences, optionals and data-shaped ops, in small models built here.

use nnc_ir::TensorData;
use nnc_onnx::proto::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use nnc_onnx::staged::{needs_staging, HostValue, Interpreted, Staged, StagedModel};
use nnc_onnx::{import_model, ImportOptions};

const F32: i32 = 1;
const I64: i32 = 7;
const BOOL: i32 = 9;

/// A tensor value `name` of ONNX element type `elem` and shape `dims` (`None`: rank unknown).
fn value(name: &str, elem: i32, dims: Option<&[i64]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(elem), shape })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{}", outputs.first().copied().unwrap_or(""))),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

fn graph(nodes: Vec<NodeProto>, input: Vec<ValueInfoProto>, output: Vec<ValueInfoProto>) -> GraphProto {
    GraphProto { name: Some("g".into()), node: nodes, input, output, ..Default::default() }
}

fn model(g: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(g),
        ..Default::default()
    }
}

fn staged(m: ModelProto) -> Staged<Interpreted> {
    Staged::new(StagedModel::new(m, "test.onnx", None).unwrap(), Interpreted::default())
}

fn tensor(v: &HostValue) -> &TensorData {
    match v {
        HostValue::Tensor(t) => t,
        other => panic!("expected a tensor, got {}", other.kind()),
    }
}

fn t(v: &[f32]) -> HostValue {
    HostValue::Tensor(TensorData::from_vec(vec![v.len()], v))
}

/// `If (sum(x) > 0)`: then `concat(x, x)` (8 values), else the first two of `-x`: outputs of
/// different shapes, which one compiled graph cannot select between.
fn if_model() -> ModelProto {
    let then_g = graph(
        vec![node("Concat", &["x", "x"], &["twice"], vec![int_attr("axis", 0)])],
        vec![],
        vec![value("twice", F32, None)],
    );
    let else_g = graph(
        vec![
            node("Neg", &["x"], &["neg"], vec![]),
            node("Constant", &[], &["starts"], vec![tensor_attr("value", TensorData::from_vec(vec![1], &[0i64]))]),
            node("Constant", &[], &["ends"], vec![tensor_attr("value", TensorData::from_vec(vec![1], &[2i64]))]),
            node("Slice", &["neg", "starts", "ends"], &["head"], vec![]),
        ],
        vec![],
        vec![value("head", F32, None)],
    );
    let zero = TensorData::scalar(0f32);
    model(graph(
        vec![
            node("ReduceSum", &["x"], &["sum"], vec![int_attr("keepdims", 0)]),
            node("Constant", &[], &["zero"], vec![tensor_attr("value", zero)]),
            node("Greater", &["sum", "zero"], &["positive"], vec![]),
            node(
                "If",
                &["positive"],
                &["y"],
                vec![graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)],
            ),
            node("Relu", &["y"], &["out"], vec![]),
        ],
        vec![value("x", F32, Some(&[4]))],
        vec![value("out", F32, None)],
    ))
}

fn tensor_attr(name: &str, data: TensorData) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(nnc_onnx::tensor_to_proto(name, &data)),
        ..Default::default()
    }
}

#[test]
fn if_on_a_run_time_condition_runs_only_the_branch_taken() {
    let m = if_model();
    let err = import_model(&m, "test.onnx", None, &ImportOptions::default()).unwrap_err();
    assert!(needs_staging(&err), "{err}");
    let mut s = staged(m);
    let out = s.run(vec![t(&[1.0, -2.0, 3.0, 4.0])]).unwrap();
    assert_eq!(tensor(&out[0]).to_f64_vec(), vec![1.0, 0.0, 3.0, 4.0, 1.0, 0.0, 3.0, 4.0]);
    let compiled = s.stats().compiled;
    let out = s.run(vec![t(&[-1.0, 2.0, -3.0, -4.0])]).unwrap();
    assert_eq!(tensor(&out[0]).to_f64_vec(), vec![1.0, 0.0]);
    // The else branch's graph and the graph after the `If` for its shape are new; running the
    // then branch again compiles nothing.
    assert!(s.stats().compiled > compiled);
    let compiled = s.stats().compiled;
    s.run(vec![t(&[1.0, 1.0, 1.0, 1.0])]).unwrap();
    assert_eq!(s.stats().compiled, compiled);
}

#[test]
fn a_branch_not_taken_is_never_checked() {
    // The then branch multiplies `x` by a matrix of the wrong size: an error only when taken.
    let bad = graph(
        vec![
            node("Constant", &[], &["w"], vec![tensor_attr("value", TensorData::from_vec(vec![3, 3], &[1f32; 9]))]),
            node("MatMul", &["x", "w"], &["y1"], vec![]),
        ],
        vec![],
        vec![value("y1", F32, None)],
    );
    let good = graph(vec![node("Identity", &["x"], &["y2"], vec![])], vec![], vec![value("y2", F32, None)]);
    let m = model(graph(
        vec![node("If", &["c"], &["y"], vec![graph_attr("then_branch", bad), graph_attr("else_branch", good)])],
        vec![value("c", BOOL, Some(&[])), value("x", F32, Some(&[4]))],
        vec![value("y", F32, None)],
    ));
    let mut s = staged(m);
    let no = HostValue::Tensor(TensorData::scalar(false));
    let out = s.run(vec![no, t(&[1.0, 2.0, 3.0, 4.0])]).unwrap();
    assert_eq!(tensor(&out[0]).to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    let yes = HostValue::Tensor(TensorData::scalar(true));
    let err = s.run(vec![yes, t(&[1.0, 2.0, 3.0, 4.0])]).unwrap_err().to_string();
    assert!(err.contains("MatMul"), "{err}");
}

/// `Loop` with a trip count from an input and a condition from the body: doubles `x` while its
/// sum is below `limit`, with each iteration's sum as a scan output.
fn loop_model() -> ModelProto {
    let body = graph(
        vec![
            node("Add", &["acc_in", "acc_in"], &["acc_out"], vec![]),
            node("ReduceSum", &["acc_out"], &["s"], vec![int_attr("keepdims", 0)]),
            node("Less", &["s", "limit"], &["cond_out"], vec![]),
        ],
        vec![value("i", I64, Some(&[])), value("cond_in", BOOL, Some(&[])), value("acc_in", F32, None)],
        vec![value("cond_out", BOOL, Some(&[])), value("acc_out", F32, None), value("s", F32, Some(&[]))],
    );
    model(graph(
        vec![node("Loop", &["n", "", "x"], &["final", "sums"], vec![graph_attr("body", body)])],
        vec![value("n", I64, Some(&[])), value("limit", F32, Some(&[])), value("x", F32, Some(&[2]))],
        vec![value("final", F32, None), value("sums", F32, None)],
    ))
}

#[test]
fn loop_with_run_time_trip_count_and_condition() {
    let m = loop_model();
    let err = import_model(&m, "test.onnx", None, &ImportOptions::default()).unwrap_err();
    assert!(needs_staging(&err), "{err}");
    let mut s = staged(m);
    let run = |s: &mut Staged<Interpreted>, n: i64, limit: f32| {
        let inputs = vec![
            HostValue::Tensor(TensorData::scalar(n)),
            HostValue::Tensor(TensorData::scalar(limit)),
            t(&[1.0, 2.0]),
        ];
        let out = s.run(inputs).unwrap();
        (tensor(&out[0]).to_f64_vec(), tensor(&out[1]).to_f64_vec())
    };
    // The condition stops it: sums 6, 12, 24 (24 is not below 20).
    assert_eq!(run(&mut s, 100, 20.0), (vec![8.0, 16.0], vec![6.0, 12.0, 24.0]));
    // The trip count stops it.
    assert_eq!(run(&mut s, 2, 1000.0), (vec![4.0, 8.0], vec![6.0, 12.0]));
    // One graph for the body, compiled once for all iterations and runs.
    assert_eq!(s.stats().compiled, 1);
    assert_eq!(s.stats().graph_runs, 5);
    // No iteration: the scan output is empty, of its declared element type.
    let (last, sums) = run(&mut s, 0, 1.0);
    assert_eq!((last, sums), (vec![1.0, 2.0], vec![]));
}

#[test]
fn sequences_and_data_shaped_ops_run_on_the_host() {
    // NonZero of x, the rows of x as a sequence, the second row + 1, and all rows concatenated
    // back along a new axis.
    let one = TensorData::scalar(1i64);
    let m = model(graph(
        vec![
            node("NonZero", &["x"], &["nz"], vec![]),
            node("SplitToSequence", &["x"], &["rows"], vec![int_attr("keepdims", 0)]),
            node("Constant", &[], &["one"], vec![tensor_attr("value", one)]),
            node("SequenceAt", &["rows", "one"], &["row1"], vec![]),
            node("Cast", &["one"], &["onef"], vec![int_attr("to", F32 as i64)]),
            node("Add", &["row1", "onef"], &["row1p"], vec![]),
            node("SequenceLength", &["rows"], &["count"], vec![]),
            node("ConcatFromSequence", &["rows"], &["back"], vec![int_attr("axis", 0), int_attr("new_axis", 1)]),
        ],
        vec![value("x", F32, Some(&[2, 2]))],
        vec![value("nz", I64, None), value("row1p", F32, None), value("count", I64, None), value("back", F32, None)],
    ));
    let err = import_model(&m, "test.onnx", None, &ImportOptions::default()).unwrap_err();
    assert!(needs_staging(&err), "{err}");
    let x = TensorData::from_vec(vec![2, 2], &[0f32, 5.0, 6.0, 0.0]);
    let out = staged(m).run(vec![HostValue::Tensor(x.clone())]).unwrap();
    assert_eq!(tensor(&out[0]).to_i64_vec(), vec![0, 1, 1, 0]);
    assert_eq!(tensor(&out[1]).to_f64_vec(), vec![7.0, 1.0]);
    assert_eq!(tensor(&out[2]).to_i64_vec(), vec![2]);
    assert_eq!(tensor(&out[3]), &x);
}

#[test]
fn a_loop_builds_a_sequence() {
    // Each iteration appends `x * i` to a sequence carried through the loop.
    let body = graph(
        vec![
            node("Cast", &["i"], &["fi"], vec![int_attr("to", F32 as i64)]),
            node("Mul", &["x", "fi"], &["xi"], vec![]),
            node("SequenceInsert", &["seq_in", "xi"], &["seq_out"], vec![]),
            node("Identity", &["cond_in"], &["cond_out"], vec![]),
        ],
        vec![value("i", I64, Some(&[])), value("cond_in", BOOL, Some(&[])), value("seq_in", F32, None)],
        vec![value("cond_out", BOOL, Some(&[])), value("seq_out", F32, None)],
    );
    let m = model(graph(
        vec![
            node("SequenceEmpty", &[], &["empty"], vec![int_attr("dtype", F32 as i64)]),
            node("Loop", &["n", "", "empty"], &["seq"], vec![graph_attr("body", body)]),
            node("ConcatFromSequence", &["seq"], &["all"], vec![int_attr("axis", 0)]),
        ],
        vec![value("n", I64, Some(&[])), value("x", F32, Some(&[2]))],
        vec![value("all", F32, None)],
    ));
    let out = staged(m).run(vec![HostValue::Tensor(TensorData::scalar(3i64)), t(&[1.0, 2.0])]).unwrap();
    assert_eq!(tensor(&out[0]).to_f64_vec(), vec![0.0, 0.0, 1.0, 2.0, 2.0, 4.0]);
}

#[test]
fn staged_errors_name_the_node() {
    let m = if_model();
    let mut s = staged(m);
    let err = s.run(vec![t(&[1.0, 2.0])]).unwrap_err().to_string();
    assert!(err.contains("input `x` is declared f32[4]"), "{err}");
    let err = s.run(vec![]).unwrap_err().to_string();
    assert!(err.contains("the model has 1 inputs, 0 were given"), "{err}");
}
