//! A model trained by nnc leaves as ONNX: the digits MLP and CNN, trained for two epochs
//! through the compiled CPU path, are frozen (parameters as constants) and exported; the file
//! imports back into nnc with the same logits, and ONNX Runtime (`nnc_testkit::onnx_runtime`)
//! computes the same logits from it.

use crate::example::*;
use nnc::ir::{GraphBuilder, Op, TensorData};
use std::path::Path;

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{what}: {x} vs {y}");
    }
}

#[test]
fn trained_digits_models_export_to_onnx_and_run_in_onnx_runtime() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz");
    let (train_set, test_set) = split(&load(&path).unwrap());
    for model in [Model::Mlp, Model::Cnn] {
        let step = Compiled::new(&step_graph(model).unwrap()).unwrap();
        let eval_graph = eval_graph(model, test_set.len()).unwrap();
        let eval = Compiled::new(&eval_graph).unwrap();
        let mut trained = Vec::new();
        let fresh = (initial_state(model), 0);
        train(
            &step,
            &eval,
            &train_set,
            &test_set,
            2,
            Shard::WHOLE,
            fresh,
            || {},
            |_, _, _, state| {
                trained = state[..4].to_vec();
                Ok(())
            },
        )
        .unwrap();
        let logits = inference_graph(model, test_set.len(), &trained).unwrap();
        let images = TensorData::from_vec(vec![test_set.len(), PIXELS], &test_set.x);
        let expected = nnc::interp::run(&logits, std::slice::from_ref(&images)).unwrap()[0].to_vec::<f32>().unwrap();
        let bytes = nnc::onnx::export_bytes(&logits).unwrap();
        let back = nnc::onnx::import_bytes(bytes.clone().into(), "exported", None, &Default::default()).unwrap();
        let reimported = nnc::interp::run(&back, std::slice::from_ref(&images)).unwrap()[0].to_vec::<f32>().unwrap();
        close(&reimported, &expected, &format!("{model:?} re-imported"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.onnx");
        std::fs::write(&file, &bytes).unwrap();
        if let Some(ort) = nnc_testkit::onnx_runtime::run_first_output(&file, &[images]) {
            close(&ort, &expected, &format!("{model:?} in ONNX Runtime"));
        }
    }
}

#[test]
fn ops_without_an_onnx_form_are_all_listed() {
    let mut b = GraphBuilder::new("no_onnx");
    let x = b.input("x", nnc::ir::DType::F32, [4usize]).unwrap();
    let c = nnc::ir::Collective::AllReduce { op: nnc::ir::CollectiveReduce::Sum, world: 2 };
    let y = b.op1(Op::Collective(c), &[x]).unwrap();
    let z =
        b.op1(Op::Cumulative { axis: 0, kind: nnc::ir::CumKind::Sum, exclusive: false, reverse: false }, &[y]).unwrap();
    b.output(z);
    let err = nnc::onnx::export_bytes(&b.finish().unwrap()).unwrap_err().to_string();
    assert!(err.contains("all_reduce") && err.contains("cumulative"), "{err}");
}
