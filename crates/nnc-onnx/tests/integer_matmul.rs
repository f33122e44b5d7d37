//! Quantized matrix products import as integer products (`i32` matmuls of the 8-bit integers,
//! which CPUs with dot products run four steps at a time) and compute what the float forms
//! compute: a QDQ `MatMul` and `Gemm` (per-column weight scales, an activation zero point) against
//! the dequantized product computed here in `f64`, and `MatMulInteger` after
//! `DynamicQuantizeLinear` (a zero point known only at run time) against the centered integer
//! product.

mod common;

use common::{import_single_io, int_attribute, node};
use nnc_ir::{DType, Graph, Op, TensorData};
use nnc_onnx::proto::NodeProto;

const M: usize = 5;
const K: usize = 12;
const N: usize = 7;

fn import(nodes: Vec<NodeProto>, initializers: Vec<(&str, TensorData)>) -> Graph {
    import_single_io(nodes, &initializers, &[M as i64, K as i64])
}

/// Integer weights `[K, N]` in -128..=127, and inputs in [-1, 1).
fn weights() -> Vec<i64> {
    (0..K * N).map(|i| ((i * 37 + 11) % 256) as i64 - 128).collect()
}

fn inputs() -> Vec<f32> {
    (0..M * K).map(|i| ((i * 29 + 3) % 64) as f32 / 32.0 - 1.0).collect()
}

/// Whether `graph` multiplies matrices of `i32` (the integer form).
fn has_integer_matmul(graph: &Graph) -> bool {
    graph.nodes.iter().any(|n| n.op == Op::MatMul && graph.ty(n.outputs[0]).dtype == DType::I32)
}

fn run(graph: &Graph) -> Vec<f32> {
    let x = TensorData::from_vec(vec![M, K], &inputs());
    nnc_interp::run(graph, &[x]).unwrap()[0].to_vec::<f32>().unwrap()
}

/// `QuantizeLinear` as ONNX defines it: round half to even, then saturate to `u8` (or `i8`).
fn quantize(x: f32, scale: f32, zero: i64, dtype: DType) -> i64 {
    let (lo, hi) = if dtype == DType::I8 { (-128, 127) } else { (0, 255) };
    ((x / scale).round_ties_even() as i64 + zero).clamp(lo, hi)
}

/// QDQ `MatMul` (or `Gemm` with `transB`, the weights given `[N, K]`) with per-column weight
/// scales, activations of `u8` (zero point 128) or `i8` (zero point -5): the integer form, and
/// the dequantized product.
#[test]
fn qdq_matmuls_and_gemms_become_integer_products_of_the_same_value() {
    for (x_dtype, x_zero) in [(DType::U8, 128), (DType::I8, -5)] {
        for gemm in [false, true] {
            check_qdq_product(x_dtype, x_zero, gemm);
        }
    }
}

fn check_qdq_product(x_dtype: DType, x_zero: i64, gemm: bool) {
    let x_scale = 1.0f32 / 100.0;
    let w_scales: Vec<f32> = (0..N).map(|n| 0.01 + 0.002 * n as f32).collect();
    let w = weights();
    let xq: Vec<i64> = inputs().iter().map(|&v| quantize(v, x_scale, x_zero, x_dtype)).collect();
    let expected: Vec<f64> = (0..M * N)
        .map(|i| {
            let (m, n) = (i / N, i % N);
            (0..K)
                .map(|k| (xq[m * K + k] - x_zero) as f64 * x_scale as f64 * w[k * N + n] as f64 * w_scales[n] as f64)
                .sum()
        })
        .collect();
    let (weight_data, product) = if gemm {
        let transposed: Vec<i64> = (0..N * K).map(|i| w[(i % K) * N + i / K]).collect();
        let attribute = vec![int_attribute("transB", 1)];
        (TensorData::from_i64(DType::I8, vec![N, K], &transposed), node("Gemm", &["xd", "wd"], &["y"], attribute))
    } else {
        (TensorData::from_i64(DType::I8, vec![K, N], &w), node("MatMul", &["xd", "wd"], &["y"], vec![]))
    };
    let nodes = vec![
        node("QuantizeLinear", &["x", "xs", "xz"], &["xq"], vec![]),
        node("DequantizeLinear", &["xq", "xs", "xz"], &["xd"], vec![]),
        node("DequantizeLinear", &["wq", "ws"], &["wd"], vec![int_attribute("axis", if gemm { 0 } else { 1 })]),
        product,
    ];
    let graph = import(
        nodes,
        vec![
            ("xs", TensorData::from_vec(vec![], &[x_scale])),
            ("xz", TensorData::from_i64(x_dtype, vec![], &[x_zero])),
            ("wq", weight_data),
            ("ws", TensorData::from_vec(vec![N], &w_scales)),
        ],
    );
    let case = format!("{x_dtype} activations, gemm {gemm}");
    assert!(has_integer_matmul(&graph), "{case}: no integer matmul in\n{}", nnc_ir::text::print(&graph));
    for (i, (&got, &want)) in run(&graph).iter().zip(&expected).enumerate() {
        assert!((got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "{case}, element {i}: {got} vs {want}");
    }
}

/// `MatMulInteger` of `DynamicQuantizeLinear`'s output (its zero point computed at run time) by
/// constant `i8` weights: the dot-product form equals the centered product.
#[test]
fn matmul_integer_after_dynamic_quantization_is_the_centered_product() {
    let w = weights();
    let nodes = vec![
        node("DynamicQuantizeLinear", &["x"], &["xq", "xs", "xz"], vec![]),
        node("MatMulInteger", &["xq", "wq", "xz"], &["acc"], vec![]),
        node("Cast", &["acc"], &["y"], vec![int_attribute("to", 1)]),
    ];
    let graph = import(nodes, vec![("wq", TensorData::from_i64(DType::I8, vec![K, N], &w))]);
    assert!(has_integer_matmul(&graph), "no integer matmul in\n{}", nnc_ir::text::print(&graph));
    // DynamicQuantizeLinear's scale and zero point, as ONNX defines them.
    let x = inputs();
    let (lo, hi) = x.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = (hi - lo) / 255.0;
    let zero = ((0.0 - lo / scale).round_ties_even() as i64).clamp(0, 255);
    let xq: Vec<i64> = x.iter().map(|&v| quantize(v, scale, zero, DType::U8)).collect();
    for (i, got) in run(&graph).into_iter().enumerate() {
        let (m, n) = (i / N, i % N);
        let want: i64 = (0..K).map(|k| (xq[m * K + k] - zero) * w[k * N + n]).sum();
        assert_eq!(got, want as f32, "element {i}");
    }
}
