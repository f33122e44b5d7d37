//! Quantized convolutions import as integer products of the input's windows (`i32` matmuls of
//! the 8-bit integers), depthwise ones as sums of their taps, and compute what the dequantized
//! convolution computes: QDQ `Conv` with per-channel weight scales, `u8` and `i8` activations
//! with a zero point, padding, strides, dilations, a non-square kernel and a window depth that is
//! not a multiple of four, against the convolution of the dequantized values computed here in
//! `f64`.

mod common;

use common::{import_single_io, int_attribute, ints_attribute, node};
use nnc_ir::{DType, Op, TensorData};

/// One convolution's shapes and window.
struct Case {
    x_dtype: DType,
    x_zero: i64,
    channels: usize,
    outputs: usize,
    size: [usize; 2],
    kernel: [usize; 2],
    /// Begin and end pads, ONNX order: `[top, left, bottom, right]`.
    pads: [usize; 4],
    strides: [usize; 2],
    dilations: [usize; 2],
    /// 1, or `channels` (depthwise: `outputs == channels`).
    groups: usize,
}

/// A 3×3 convolution padded by one: each case below changes what it tests.
const BASE: Case = Case {
    x_dtype: DType::U8,
    x_zero: 128,
    channels: 16,
    outputs: 5,
    size: [6, 5],
    kernel: [3, 3],
    pads: [1, 1, 1, 1],
    strides: [1, 1],
    dilations: [1, 1],
    groups: 1,
};

impl Case {
    fn out(&self, a: usize) -> usize {
        let padded = self.size[a] + self.pads[a] + self.pads[a + 2];
        (padded - (self.kernel[a] - 1) * self.dilations[a] - 1) / self.strides[a] + 1
    }
}

/// `QuantizeLinear` as ONNX defines it: round half to even, then saturate.
fn quantize(x: f32, scale: f32, zero: i64, dtype: DType) -> i64 {
    let (lo, hi) = if dtype == DType::I8 { (-128, 127) } else { (0, 255) };
    ((x / scale).round_ties_even() as i64 + zero).clamp(lo, hi)
}

#[test]
fn qdq_convolutions_become_integer_products_of_the_same_value() {
    let cases = [
        BASE,
        // Uneven pads, stride 2, and 17 × 9 = 153 window bytes (padded to 156).
        Case {
            x_dtype: DType::I8,
            x_zero: -5,
            channels: 17,
            outputs: 3,
            size: [7, 6],
            pads: [0, 1, 2, 1],
            strides: [2, 2],
            ..BASE
        },
        // A 2 × 3 kernel dilated by 2, no padding.
        Case {
            x_zero: 3,
            channels: 20,
            outputs: 4,
            size: [6, 8],
            kernel: [2, 3],
            pads: [0; 4],
            dilations: [2, 2],
            ..BASE
        },
        // 1 × 1: the window matrix is the input moved channels-last.
        Case { x_zero: 100, outputs: 6, size: [3, 4], kernel: [1, 1], pads: [0; 4], ..BASE },
        // Depthwise, padded, and strided with `i8` activations.
        Case { outputs: 16, groups: 16, ..BASE },
        Case { x_dtype: DType::I8, x_zero: -5, outputs: 16, groups: 16, strides: [2, 2], pads: [0, 1, 1, 0], ..BASE },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(i, case);
    }
}

fn check(index: usize, case: &Case) {
    let (c, o, [h, w], [kh, kw]) = (case.channels, case.outputs, case.size, case.kernel);
    // Input channels per group.
    let cg = c / case.groups;
    let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 29 + 3) % 64) as f32 / 32.0 - 1.0).collect();
    let weights: Vec<i64> = (0..o * cg * kh * kw).map(|i| ((i * 37 + 11) % 256) as i64 - 128).collect();
    let x_scale = 1.0f32 / 100.0;
    let w_scales: Vec<f32> = (0..o).map(|n| 0.01 + 0.002 * n as f32).collect();
    let bias: Vec<f32> = (0..o).map(|n| n as f32 * 0.25 - 0.5).collect();
    let nodes = vec![
        node("QuantizeLinear", &["x", "xs", "xz"], &["xq"], vec![]),
        node("DequantizeLinear", &["xq", "xs", "xz"], &["xd"], vec![]),
        node("DequantizeLinear", &["wq", "ws"], &["wd"], vec![int_attribute("axis", 0)]),
        node(
            "Conv",
            &["xd", "wd", "b"],
            &["y"],
            vec![
                ints_attribute("pads", &case.pads.map(|p| p as i64)),
                ints_attribute("strides", &case.strides.map(|s| s as i64)),
                ints_attribute("dilations", &case.dilations.map(|d| d as i64)),
                int_attribute("group", case.groups as i64),
            ],
        ),
    ];
    let initializers = [
        ("xs", TensorData::from_vec(vec![], &[x_scale])),
        ("xz", TensorData::from_i64(case.x_dtype, vec![], &[case.x_zero])),
        ("wq", TensorData::from_i64(DType::I8, vec![o, cg, kh, kw], &weights)),
        ("ws", TensorData::from_vec(vec![o], &w_scales)),
        ("b", TensorData::from_vec(vec![o], &bias)),
    ];
    let graph = import_single_io(nodes, &initializers, &[1, c as i64, h as i64, w as i64]);
    let convolves = graph.nodes.iter().any(|n| matches!(n.op, Op::Conv { .. }));
    let integer = graph.nodes.iter().any(|n| n.op == Op::MatMul && graph.ty(n.outputs[0]).dtype == DType::I32);
    assert!(!convolves, "case {index}: a float convolution in\n{}", nnc_ir::text::print(&graph));
    assert_eq!(integer, case.groups == 1, "case {index}: integer matmul\n{}", nnc_ir::text::print(&graph));

    // The dequantized convolution, in f64.
    let xd: Vec<f64> = x
        .iter()
        .map(|&v| (quantize(v, x_scale, case.x_zero, case.x_dtype) - case.x_zero) as f64 * x_scale as f64)
        .collect();
    let (oh, ow) = (case.out(0), case.out(1));
    let mut expected = vec![0f64; o * oh * ow];
    for (i, want) in expected.iter_mut().enumerate() {
        let (n, y, x_) = (i / (oh * ow), i / ow % oh, i % ow);
        *want = bias[n] as f64;
        // The input channels output channel `n`'s group reads.
        for ci in n / (o / case.groups) * cg..(n / (o / case.groups) + 1) * cg {
            for (ky, kx) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))) {
                let iy = (y * case.strides[0] + ky * case.dilations[0]) as i64 - case.pads[0] as i64;
                let ix = (x_ * case.strides[1] + kx * case.dilations[1]) as i64 - case.pads[1] as i64;
                if (0..h as i64).contains(&iy) && (0..w as i64).contains(&ix) {
                    let wd = weights[((n * cg + ci % cg) * kh + ky) * kw + kx] as f64 * w_scales[n] as f64;
                    *want += xd[(ci * h + iy as usize) * w + ix as usize] * wd;
                }
            }
        }
    }
    let input = TensorData::from_vec(vec![1, c, h, w], &x);
    let got = nnc_interp::run(&graph, &[input]).unwrap()[0].to_vec::<f32>().unwrap();
    assert_eq!(got.len(), expected.len(), "case {index}");
    for (i, (&got, &want)) in got.iter().zip(&expected).enumerate() {
        assert!((got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "case {index}, element {i}: {got} vs {want}");
    }
}
