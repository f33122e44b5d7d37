//! Whole graphs through the public API: symbol binding, input checking, node errors,
//! composites against hand-written formulas, and a few ops end to end.

use nnc_interp::{run, run_with_trace, InterpError};
use nnc_ir::{
    BinaryOp, DType, Dim, GeluApprox, Graph, GraphBuilder, Op, PadMode, PoolKind, TensorData, UnaryOp, Window,
};

fn f32s(shape: &[usize], v: &[f32]) -> TensorData {
    TensorData::from_vec(shape.to_vec(), v)
}

fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol * w.abs().max(1.0), "element {i}: got {g}, want {w}");
    }
}

/// `y = x * 2 + row_sum(x)`, with `x: f32[batch, 4]`.
fn batch_graph() -> Graph {
    let mut b = GraphBuilder::new("batched");
    let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(4)]).unwrap();
    let two = b.scalar(DType::F32, 2.0);
    let y = b.mul(x, two).unwrap();
    let s = b.reduce_sum(x, &[1], true).unwrap();
    let z = b.add(y, s).unwrap();
    b.output(z);
    b.finish().unwrap()
}

#[test]
fn symbolic_batch_binds_per_run() {
    let g = batch_graph();
    for batch in [3usize, 5] {
        let data: Vec<f32> = (0..batch * 4).map(|i| i as f32).collect();
        let out = run(&g, &[f32s(&[batch, 4], &data)]).unwrap();
        assert_eq!(out[0].shape(), &[batch, 4]);
        let got = out[0].to_vec::<f32>().unwrap();
        for r in 0..batch {
            let row_sum: f32 = data[r * 4..r * 4 + 4].iter().sum();
            for c in 0..4 {
                assert_eq!(got[r * 4 + c], data[r * 4 + c] * 2.0 + row_sum);
            }
        }
    }
}

#[test]
fn mismatched_inputs_are_named() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(64)]).unwrap();
    let y = b.input("y", DType::F32, [Dim::sym("batch")]).unwrap();
    let r = b.reduce_sum(x, &[1], false).unwrap();
    let z = b.add(r, y).unwrap();
    b.output(z);
    let g = b.finish().unwrap();

    let bad_shape = run(&g, &[f32s(&[2, 63], &[0.0; 126]), f32s(&[2], &[0.0; 2])]).unwrap_err();
    assert!(matches!(bad_shape, InterpError::Input { .. }));
    let msg = bad_shape.to_string();
    assert!(msg.starts_with("input `%x`: expected f32[batch, 64], found f32[2, 63]"), "{msg}");

    let inconsistent = run(&g, &[f32s(&[3, 64], &[0.0; 192]), f32s(&[2], &[0.0; 2])]).unwrap_err().to_string();
    assert_eq!(inconsistent, "input `%y`: expected f32[batch], found f32[2] (with batch = 3)");

    let dtype = run(&g, &[TensorData::from_vec(vec![1, 64], &[0i64; 64]), f32s(&[1], &[0.0])]).unwrap_err();
    assert!(dtype.to_string().contains("expected f32[batch, 64], found i64[1, 64]"), "{dtype}");

    let rank = run(&g, &[f32s(&[64], &[0.0; 64]), f32s(&[1], &[0.0])]).unwrap_err();
    assert!(rank.to_string().contains("found f32[64]"), "{rank}");

    let count = run(&g, &[f32s(&[1, 64], &[0.0; 64])]).unwrap_err();
    assert_eq!(count, InterpError::InputCount { graph: "g".into(), expected: 2, found: 1 });
}

#[test]
fn linear_dim_expressions_bind() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [Dim::sym("n") * Dim::from(2) + Dim::from(1)]).unwrap();
    let y = b.input("y", DType::F32, [Dim::sym("n")]).unwrap();
    let s = b.reduce_sum(x, &[0], false).unwrap();
    let t = b.add(y, s).unwrap();
    b.output(t);
    let g = b.finish().unwrap();
    let out = run(&g, &[f32s(&[5], &[1.0; 5]), f32s(&[2], &[0.0, 1.0])]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![5.0, 6.0]);
    let e = run(&g, &[f32s(&[4], &[1.0; 4]), f32s(&[2], &[0.0; 2])]).unwrap_err().to_string();
    assert!(e.contains("input `%x`: expected f32[2*n + 1], found f32[4]"), "{e}");
}

#[test]
fn products_of_symbols_bind_once_a_factor_is_known() {
    // `b*s` binds `s` once `b` is known, whatever the input order; `n*n` alone cannot bind.
    let mut gb = GraphBuilder::new("g");
    let y = gb.input("y", DType::F32, [Dim::sym("b") * Dim::sym("s")]).unwrap();
    let x = gb.input("x", DType::F32, [Dim::sym("b")]).unwrap();
    let sq = gb.input("sq", DType::F32, [Dim::sym("s") * Dim::sym("s")]).unwrap();
    let r = gb.reduce_sum(y, &[0], false).unwrap();
    let r2 = gb.reduce_sum(sq, &[0], false).unwrap();
    let t = gb.add(x, r).unwrap();
    let t = gb.add(t, r2).unwrap();
    gb.output(t);
    let g = gb.finish().unwrap();
    let out = run(&g, &[f32s(&[6], &[1.0; 6]), f32s(&[2], &[0.0; 2]), f32s(&[9], &[1.0; 9])]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![15.0, 15.0]);
    let e = run(&g, &[f32s(&[6], &[1.0; 6]), f32s(&[2], &[0.0; 2]), f32s(&[8], &[1.0; 8])]).unwrap_err();
    assert_eq!(e.to_string(), "input `%sq`: expected f32[s*s], found f32[8] (with s = 3)");

    let mut gb = GraphBuilder::new("g");
    let sq = gb.input("sq", DType::F32, [Dim::sym("n") * Dim::sym("n")]).unwrap();
    gb.output(sq);
    let g = gb.finish().unwrap();
    let e = run(&g, &[f32s(&[4], &[0.0; 4])]).unwrap_err().to_string();
    assert!(e.contains("cannot determine the symbols of n*n"), "{e}");
}

#[test]
fn symbolic_reshape_and_iota_use_bindings() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::I64, [Dim::sym("b"), Dim::from(2)]).unwrap();
    let flat = b.reshape(x, vec![Dim::sym("b") * Dim::from(2)]).unwrap();
    let idx = b.iota(DType::I64, vec![Dim::sym("b") * Dim::from(2)], 0).unwrap();
    let y = b.add(flat, idx).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let out = run(&g, &[TensorData::from_vec(vec![3, 2], &[10i64, 10, 10, 10, 10, 10])]).unwrap();
    assert_eq!(out[0].to_vec::<i64>().unwrap(), vec![10, 11, 12, 13, 14, 15]);
}

#[test]
fn node_errors_name_the_node() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::I32, [3]).unwrap();
    let y = b.input("y", DType::I32, [3]).unwrap();
    let q = b.div(x, y).unwrap();
    b.set_name(q, "quot").unwrap();
    b.output(q);
    let g = b.finish().unwrap();
    let ints = |v: &[i32]| TensorData::from_vec(vec![3], v);
    assert_eq!(run(&g, &[ints(&[7, -7, 9]), ints(&[2, 2, -4])]).unwrap()[0].to_vec::<i32>().unwrap(), vec![3, -3, -2]);
    let e = run(&g, &[ints(&[1, 2, 3]), ints(&[1, 0, 1])]).unwrap_err();
    assert_eq!(e.to_string(), "node `%quot = div(%x, %y)`: integer division by zero");

    let mut b = GraphBuilder::new("g");
    let d = b.input("d", DType::F32, [4, 2]).unwrap();
    let i = b.input("i", DType::I64, [2]).unwrap();
    let r = b.gather(d, i, 0).unwrap();
    b.output(r);
    let g = b.finish().unwrap();
    let data = f32s(&[4, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let ok = run(&g, &[data.clone(), TensorData::from_vec(vec![2], &[-1i64, 1])]).unwrap();
    assert_eq!(ok[0].to_vec::<f32>().unwrap(), vec![6.0, 7.0, 2.0, 3.0]);
    let e = run(&g, &[data, TensorData::from_vec(vec![2], &[0i64, 4])]).unwrap_err().to_string();
    assert!(
        e.contains("gather(%d, %i)`: index 4 (at [1] of the indices) is out of range for axis 0 of length 4"),
        "{e}"
    );
}

#[test]
fn huge_results_are_errors_not_aborts() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [1]).unwrap();
    let y = b.expand(x, vec![Dim::from(1 << 16), Dim::from(1 << 16)]).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let e = run(&g, &[f32s(&[1], &[1.0])]).unwrap_err().to_string();
    assert!(e.contains("expand(%x)`: tensor too large"), "{e}");
}

#[test]
fn trace_sees_every_node_and_outputs_keep_order() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [2]).unwrap();
    let e = b.exp(x).unwrap();
    let n = b.unary(UnaryOp::Neg, e).unwrap();
    b.output(n);
    b.output(x);
    b.output(e);
    let g = b.finish().unwrap();
    let mut seen = Vec::new();
    let out = run_with_trace(&g, &[f32s(&[2], &[0.0, 1.0])], |i, r| seen.push((i, r[0].shape().to_vec()))).unwrap();
    assert_eq!(seen, vec![(0, vec![2]), (1, vec![2])]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![-1.0, -(1f32.exp())]);
    assert_eq!(out[1].to_vec::<f32>().unwrap(), vec![0.0, 1.0]);
    assert_eq!(out[2].to_vec::<f32>().unwrap(), vec![1.0, 1f32.exp()]);
}

fn softmax_ref(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn composites_match_their_formulas() {
    let xs = [1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0];
    let x64: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [2, 3]).unwrap();
    let scale = b.constant(f32s(&[3], &[1.0, 2.0, 0.5]));
    let bias = b.constant(f32s(&[3], &[0.0, 1.0, -1.0]));
    let outs = [
        b.softmax(x, -1).unwrap(),
        b.log_softmax(x, 1).unwrap(),
        b.layer_norm(x, scale, bias, 1, 1e-5).unwrap(),
        b.gelu(x, GeluApprox::None).unwrap(),
        b.gelu(x, GeluApprox::Tanh).unwrap(),
    ];
    for o in outs {
        b.output(o);
    }
    let g = b.finish().unwrap();
    let out = run(&g, &[f32s(&[2, 3], &xs)]).unwrap();
    let got = |k: usize| out[k].to_vec::<f32>().unwrap();

    let sm: Vec<f64> = x64.chunks(3).flat_map(softmax_ref).collect();
    close(&got(0), &sm, 1e-6);
    close(&got(1), &sm.iter().map(|v| v.ln()).collect::<Vec<_>>(), 1e-6);
    let mut ln = Vec::new();
    for row in x64.chunks(3) {
        let mean = row.iter().sum::<f64>() / 3.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
        for (j, v) in row.iter().enumerate() {
            ln.push((v - mean) / (var + 1e-5).sqrt() * [1.0, 2.0, 0.5][j] + [0.0, 1.0, -1.0][j]);
        }
    }
    close(&got(2), &ln, 1e-5);
    let gelu: Vec<f64> = x64.iter().map(|&v| 0.5 * v * (1.0 + nnc_interp::erf(v / 2f64.sqrt()))).collect();
    close(&got(3), &gelu, 1e-6);
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let gelu_tanh: Vec<f64> = x64.iter().map(|&v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())).collect();
    close(&got(4), &gelu_tanh, 1e-6);
    // gelu(1) with the exact erf: 0.8413447460685429.
    assert!((got(3)[0] as f64 - 0.841_344_746_068_542_9).abs() < 1e-7);
}

#[test]
fn batch_norm_and_causal_attention() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [1, 2, 2]).unwrap();
    let p = |b: &mut GraphBuilder, v: [f32; 2]| b.constant(f32s(&[2], &v));
    let (scale, bias, mean, var) =
        (p(&mut b, [2.0, 1.0]), p(&mut b, [0.0, 1.0]), p(&mut b, [1.0, -1.0]), p(&mut b, [4.0, 1.0]));
    let bn = b.op1(Op::BatchNorm { epsilon: 0.0 }, &[x, scale, bias, mean, var]).unwrap();
    b.output(bn);
    let q = b.input("q", DType::F32, [3, 2]).unwrap();
    let att = b.attention(q, q, q, None, None, true).unwrap();
    b.output(att);
    let g = b.finish().unwrap();
    let qv = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    let out = run(&g, &[f32s(&[1, 2, 2], &[1.0, 3.0, -1.0, 0.0]), f32s(&[3, 2], &qv)]).unwrap();
    // (x - mean) / sqrt(var) * scale + bias, per channel.
    close(&out[0].to_vec::<f32>().unwrap(), &[0.0, 2.0, 1.0, 2.0], 1e-6);
    // Row i attends to rows 0..=i with weights softmax(q_i . q_j / sqrt(2)).
    let q64: Vec<[f64; 2]> = qv.chunks(2).map(|r| [r[0] as f64, r[1] as f64]).collect();
    let mut want = Vec::new();
    for i in 0..3 {
        let scores: Vec<f64> = (0..=i).map(|j| (q64[i][0] * q64[j][0] + q64[i][1] * q64[j][1]) / 2f64.sqrt()).collect();
        let w = softmax_ref(&scores);
        want.extend((0..2).map(|d| (0..=i).map(|j| w[j] * q64[j][d]).sum::<f64>()));
    }
    close(&out[1].to_vec::<f32>().unwrap(), &want, 1e-6);
}

#[test]
fn conv3d_pool_ceil_mode_and_pad_end_to_end() {
    // 3-D conv of ones with a 2x2x2 kernel of ones: each output counts its in-bounds taps.
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [1, 1, 2, 2, 2]).unwrap();
    let w = b.constant(f32s(&[1, 1, 2, 2, 2], &[1.0; 8]));
    let win = Window { strides: vec![1; 3], dilations: vec![1; 3], pads: vec![1, 0, 0, 0, 0, 0] };
    let y = b.conv(x, w, win, 1).unwrap();
    b.output(y);
    // avg_pool with ceil_mode via the general op.
    let p = b.input("p", DType::F32, [1, 1, 5, 5]).unwrap();
    let pw = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![0; 4] };
    let pooled = b
        .op1(
            Op::Pool { kind: PoolKind::Avg, kernel: vec![2, 2], window: pw, ceil_mode: true, count_include_pad: true },
            &[p],
        )
        .unwrap();
    b.output(pooled);
    let padded = b.pad(p, vec![0, 0, -4, 0, 0, 0, 1, -3], PadMode::Reflect, 0.0).unwrap();
    b.output(padded);
    let g = b.finish().unwrap();
    let pv: Vec<f32> = (0..25).map(|i| i as f32).collect();
    let out = run(&g, &[f32s(&[1, 1, 2, 2, 2], &[1.0; 8]), f32s(&[1, 1, 5, 5], &pv)]).unwrap();
    assert_eq!(out[0].shape(), &[1, 1, 2, 1, 1]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![4.0, 8.0]);
    assert_eq!(out[1].shape(), &[1, 1, 3, 3]);
    let avg = out[1].to_vec::<f32>().unwrap();
    // Full window (0,0): (0+1+5+6)/4; corner (2,2) holds only element 24.
    assert_eq!(avg[0], 3.0);
    assert_eq!(avg[2], (4.0 + 9.0) / 2.0);
    assert_eq!(avg[8], 24.0);
    // Rows: crop 4 from the top (keep row 4) and reflect one below (row 3); columns 0..2.
    assert_eq!(out[2].shape(), &[1, 1, 2, 2]);
    assert_eq!(out[2].to_vec::<f32>().unwrap(), vec![20.0, 21.0, 15.0, 16.0]);
}

#[test]
fn dtypes_round_after_every_op() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F16, [2]).unwrap();
    let y = b.binary_scalar(BinaryOp::Add, x, 1.0).unwrap();
    let z = b.binary_scalar(BinaryOp::Sub, y, 1.0).unwrap();
    b.output(z);
    let g = b.finish().unwrap();
    let v = [half::f16::from_f32(1e-4), half::f16::from_f32(0.5)];
    let out = run(&g, &[TensorData::from_vec(vec![2], &v)]).unwrap();
    // 1 + 1e-4 rounds to 1 in f16 (ulp 2^-10), so the difference is 0: rounding happened.
    assert_eq!(out[0].to_vec::<half::f16>().unwrap(), vec![half::f16::ZERO, half::f16::from_f32(0.5)]);
}

#[test]
fn every_unary_op_and_cast_runs_on_every_dtype_it_accepts() {
    use nnc_ir::op::UnaryClass;
    let xs = [-2.5, -1.0, -0.0, 0.25, 0.5, 3.0, f64::NAN, f64::INFINITY];
    for dtype in DType::ALL {
        let input = TensorData::from_f64(dtype, vec![xs.len()], &xs);
        for &u in UnaryOp::ALL {
            let ok = match u.class() {
                UnaryClass::Numeric => dtype.is_numeric(),
                UnaryClass::Float | UnaryClass::FloatPredicate => dtype.is_float(),
                UnaryClass::Logical => dtype == DType::Bool,
            };
            if !ok {
                continue;
            }
            let mut b = GraphBuilder::new("g");
            let x = b.input("x", dtype, [xs.len()]).unwrap();
            let y = b.unary(u, x).unwrap();
            b.output(y);
            let g = b.finish().unwrap();
            let out = run(&g, std::slice::from_ref(&input)).unwrap_or_else(|e| panic!("{u:?} on {dtype}: {e}"));
            assert_eq!(out[0].dtype(), g.ty(g.outputs[0]).dtype);
        }
        for to in DType::ALL {
            let mut b = GraphBuilder::new("g");
            let x = b.input("x", dtype, [xs.len()]).unwrap();
            let y = b.cast(x, to).unwrap();
            b.output(y);
            let g = b.finish().unwrap();
            let out = run(&g, std::slice::from_ref(&input)).unwrap();
            assert_eq!(out[0].dtype(), to);
        }
    }
    // Spot values through the graph path.
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [3]).unwrap();
    let outs = [UnaryOp::Erf, UnaryOp::Sigmoid, UnaryOp::Rsqrt, UnaryOp::Round].map(|u| b.unary(u, x).unwrap());
    outs.iter().for_each(|&o| b.output(o));
    let g = b.finish().unwrap();
    let out = run(&g, &[f32s(&[3], &[0.5, 2.5, 4.0])]).unwrap();
    let v = |k: usize| out[k].to_vec::<f32>().unwrap();
    assert_eq!(v(0), [0.520_499_877_813_046_5f64, 0.999_593_047_982_555, 0.999_999_984_582_742_1].map(|e| e as f32));
    assert_eq!(v(1)[0], (1.0 / (1.0 + (-0.5f64).exp())) as f32);
    assert_eq!(v(2)[2], 0.5);
    assert_eq!(v(3), vec![0.0, 2.0, 4.0]);
}

#[test]
fn u64_graph_end_to_end_above_2_pow_63() {
    let top = 1u64 << 63;
    let mut b = GraphBuilder::new("u64");
    let x = b.input("x", DType::U64, [3]).unwrap();
    let y = b.input("y", DType::U64, [3]).unwrap();
    let q = b.div(x, y).unwrap();
    let gt = b.binary(BinaryOp::Gt, x, y).unwrap();
    let m = b.max(x, y).unwrap();
    let f = b.cast(x, DType::F64).unwrap();
    let w = b.pad(x, vec![1, 1], PadMode::Wrap, 0.0).unwrap();
    for v in [q, gt, m, f, w] {
        b.output(v);
    }
    let g = b.finish().unwrap();
    let xs = TensorData::from_vec(vec![3], &[u64::MAX, top, 7u64]);
    let ys = TensorData::from_vec(vec![3], &[2u64, 1, top]);
    let out = run(&g, &[xs, ys]).unwrap();
    assert_eq!(out[0].to_vec::<u64>().unwrap(), [u64::MAX / 2, top, 0]);
    assert_eq!(out[1].to_vec::<bool>().unwrap(), [true, true, false]);
    assert_eq!(out[2].to_vec::<u64>().unwrap(), [u64::MAX, top, top]);
    assert_eq!(out[3].to_vec::<f64>().unwrap(), [u64::MAX as f64, top as f64, 7.0]);
    assert_eq!(out[4].to_vec::<u64>().unwrap(), [7, u64::MAX, top, 7, u64::MAX]);
}

#[test]
fn narrow_integer_graphs_wrap_at_their_width() {
    for (dtype, a, b_, sum) in
        [(DType::I16, 32767i64, 1i64, -32768i64), (DType::U16, 65535, 2, 1), (DType::U32, 4294967295, 3, 2)]
    {
        let mut b = GraphBuilder::new("wrap");
        let x = b.input("x", dtype, [1]).unwrap();
        let y = b.input("y", dtype, [1]).unwrap();
        let s = b.add(x, y).unwrap();
        b.output(s);
        let g = b.finish().unwrap();
        let t = |v: i64| TensorData::from_i64(dtype, vec![1], &[v]);
        let out = run(&g, &[t(a), t(b_)]).unwrap();
        assert_eq!(out[0], t(sum), "{dtype}");
    }
}
