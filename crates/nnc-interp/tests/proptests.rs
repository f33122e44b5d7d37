//! Property tests: broadcasting binary ops, reductions over random axes and batched matmul, each
//! against a direct naive computation written here.

use nnc_ir::{BinaryOp, DType, GraphBuilder, ReduceKind, TensorData};
use proptest::prelude::*;

/// Row-major multi-indices of `shape`.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &d in shape {
        out = out.into_iter().flat_map(|p| (0..d).map(move |i| [p.clone(), vec![i]].concat())).collect();
    }
    out
}

/// Flat offset in `shape` of output index `idx` under numpy broadcasting (aligned right).
fn broadcast_offset(shape: &[usize], idx: &[usize]) -> usize {
    let lead = idx.len() - shape.len();
    shape.iter().enumerate().fold(0, |acc, (a, &d)| acc * d + if d == 1 { 0 } else { idx[lead + a] })
}

/// The numpy broadcast of two shapes that are known to broadcast.
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank).map(|i| dim(a, i).max(dim(b, i))).collect()
}

/// Two operand shapes that broadcast together, and their broadcast: both are made from one
/// target shape by dropping leading axes and setting axes to 1.
fn broadcast_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..4, 0..4).prop_flat_map(|target| {
        let r = target.len();
        let operand = (0..=r, prop::collection::vec(any::<bool>(), r))
            .prop_map(move |(drop, ones)| (drop..r).map(|a| if ones[a] { 1 } else { target[a] }).collect::<Vec<_>>());
        (operand.clone(), operand).prop_map(|(a, b)| (broadcast(&a, &b), a, b))
    })
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-8.0f32..8.0, n)
}

fn run1(g: &nnc_ir::Graph, inputs: &[TensorData]) -> TensorData {
    nnc_interp::run(g, inputs).unwrap().remove(0)
}

const FLOAT_OPS: &[BinaryOp] =
    &[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min];

fn float_naive(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn binary_float_ops_broadcast(
        (out, sa, sb) in broadcast_case(),
        op_i in 0..FLOAT_OPS.len(),
        seed in values(64),
    ) {
        let op = FLOAT_OPS[op_i];
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        let a: Vec<f32> = (0..na).map(|i| seed[i % 64]).collect();
        let b: Vec<f32> = (0..nb).map(|i| seed[(i * 7 + 3) % 64] + 0.25).collect();
        let mut gb = GraphBuilder::new("g");
        let x = gb.input("a", DType::F32, sa.clone()).unwrap();
        let y = gb.input("b", DType::F32, sb.clone()).unwrap();
        let z = gb.binary(op, x, y).unwrap();
        gb.output(z);
        let g = gb.finish().unwrap();
        let r = run1(&g, &[TensorData::from_vec(sa.clone(), &a), TensorData::from_vec(sb.clone(), &b)]);
        prop_assert_eq!(r.shape(), out.as_slice());
        let got = r.to_vec::<f32>().unwrap();
        for (k, idx) in indices(&out).iter().enumerate() {
            let (va, vb) = (a[broadcast_offset(&sa, idx)] as f64, b[broadcast_offset(&sb, idx)] as f64);
            // Computed in f64, rounded once to f32: exactly what the interpreter promises.
            let want = float_naive(op, va, vb) as f32;
            prop_assert_eq!(got[k].to_bits(), want.to_bits(), "{:?} at {:?}: {} vs {}", op, idx, got[k], want);
        }
    }

    #[test]
    fn binary_int_ops_broadcast_and_wrap(
        (out, sa, sb) in broadcast_case(),
        op_i in 0..6usize,
        seed in prop::collection::vec(any::<i8>(), 64),
    ) {
        let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem, BinaryOp::Lt][op_i];
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        let a: Vec<i8> = (0..na).map(|i| seed[i % 64]).collect();
        // Divisors are never zero.
        let b: Vec<i8> = (0..nb).map(|i| match seed[(i * 5 + 1) % 64] { 0 => 3, v => v }).collect();
        let mut gb = GraphBuilder::new("g");
        let x = gb.input("a", DType::I8, sa.clone()).unwrap();
        let y = gb.input("b", DType::I8, sb.clone()).unwrap();
        let z = gb.binary(op, x, y).unwrap();
        gb.output(z);
        let g = gb.finish().unwrap();
        let r = run1(&g, &[TensorData::from_vec(sa.clone(), &a), TensorData::from_vec(sb.clone(), &b)]);
        let got = r.to_i64_vec();
        for (k, idx) in indices(&out).iter().enumerate() {
            let (va, vb) = (a[broadcast_offset(&sa, idx)], b[broadcast_offset(&sb, idx)]);
            let want = match op {
                BinaryOp::Add => va.wrapping_add(vb) as i64,
                BinaryOp::Sub => va.wrapping_sub(vb) as i64,
                BinaryOp::Mul => va.wrapping_mul(vb) as i64,
                BinaryOp::Div => va.wrapping_div(vb) as i64,
                BinaryOp::Rem => va.wrapping_rem(vb) as i64,
                _ => (va < vb) as i64,
            };
            prop_assert_eq!(got[k], want, "{:?}({}, {})", op, va, vb);
        }
    }

    #[test]
    fn reductions_over_random_axes(
        shape in prop::collection::vec(1usize..5, 1..5),
        axis_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        kind_i in 0..5usize,
        keep_dims in any::<bool>(),
        seed in values(97),
    ) {
        let kind = ReduceKind::ALL[kind_i];
        let rank = shape.len();
        let mut axes: Vec<usize> = axis_picks.iter().map(|p| p.index(rank)).collect();
        let mut seen = Vec::new();
        axes.retain(|a| if seen.contains(a) { false } else { seen.push(*a); true });
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n).map(|i| seed[i % 97] / 4.0 + 1.0).collect();
        let mut gb = GraphBuilder::new("g");
        let xi = gb.input("x", DType::F32, shape.clone()).unwrap();
        let axes_i64: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
        let y = gb.reduce(kind, xi, &axes_i64, keep_dims).unwrap();
        gb.output(y);
        let g = gb.finish().unwrap();
        let r = run1(&g, &[TensorData::from_vec(shape.clone(), &x)]);
        let kept: Vec<usize> = (0..rank).map(|a| if axes.contains(&a) { 1 } else { shape[a] }).collect();
        let want_shape: Vec<usize> =
            (0..rank).filter(|a| keep_dims || !axes.contains(a)).map(|a| kept[a]).collect();
        prop_assert_eq!(r.shape(), want_shape.as_slice());
        let got = r.to_vec::<f32>().unwrap();
        let all = indices(&shape);
        for (k, oidx) in indices(&kept).iter().enumerate() {
            let members: Vec<f64> = all
                .iter()
                .enumerate()
                .filter(|(_, idx)| (0..rank).all(|a| axes.contains(&a) || idx[a] == oidx[a]))
                .map(|(i, _)| x[i] as f64)
                .collect();
            let want = match kind {
                ReduceKind::Sum => members.iter().sum::<f64>(),
                ReduceKind::Mean => members.iter().sum::<f64>() / members.len() as f64,
                ReduceKind::Prod => members.iter().product::<f64>(),
                ReduceKind::Max => members.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                ReduceKind::Min => members.iter().cloned().fold(f64::INFINITY, f64::min),
            };
            let g = got[k] as f64;
            prop_assert!((g - want).abs() <= 1e-6 * want.abs().max(1.0), "{:?} over {:?} at {:?}: {} vs {}", kind, axes, oidx, g, want);
        }
    }

    #[test]
    fn matmul_batches_broadcast_and_promotes(
        (_, ba, bb) in broadcast_case(),
        (m, k, n) in (1usize..4, 0usize..4, 1usize..4),
        (vec_a, vec_b) in (any::<bool>(), any::<bool>()),
        seed in values(61),
    ) {
        // A 1-D operand has no batch axes.
        let sa: Vec<usize> = if vec_a { vec![k] } else { [ba.clone(), vec![m, k]].concat() };
        let sb: Vec<usize> = if vec_b { vec![k] } else { [bb.clone(), vec![k, n]].concat() };
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        let a: Vec<f32> = (0..na).map(|i| seed[i % 61]).collect();
        let b: Vec<f32> = (0..nb).map(|i| seed[(i * 3 + 5) % 61]).collect();
        let mut gb = GraphBuilder::new("g");
        let x = gb.input("a", DType::F32, sa.clone()).unwrap();
        let y = gb.input("b", DType::F32, sb.clone()).unwrap();
        let z = gb.matmul(x, y).unwrap();
        gb.output(z);
        let g = gb.finish().unwrap();
        let r = run1(&g, &[TensorData::from_vec(sa.clone(), &a), TensorData::from_vec(sb.clone(), &b)]);
        // The result's batch shape is the broadcast of the operands' batch shapes.
        let (pa, pb) = (if vec_a { vec![] } else { ba.clone() }, if vec_b { vec![] } else { bb.clone() });
        let out_batch = broadcast(&pa, &pb);
        let mut want_shape = out_batch.clone();
        if !vec_a { want_shape.push(m); }
        if !vec_b { want_shape.push(n); }
        prop_assert_eq!(r.shape(), want_shape.as_slice());
        let got = r.to_vec::<f32>().unwrap();
        let (rows, cols) = (if vec_a { 1 } else { m }, if vec_b { 1 } else { n });
        let mut at = 0;
        for bidx in indices(&out_batch) {
            let (oa, ob) = (broadcast_offset(&pa, &bidx), broadcast_offset(&pb, &bidx));
            for i in 0..rows {
                for j in 0..cols {
                    let want: f64 = (0..k)
                        .map(|p| {
                            let av = a[oa * rows * k + i * k + p] as f64;
                            let bv = b[ob * k * cols + p * cols + j] as f64;
                            av * bv
                        })
                        .sum();
                    prop_assert!((got[at] as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "at {:?},{},{}: {} vs {}", bidx, i, j, got[at], want);
                    at += 1;
                }
            }
        }
        prop_assert_eq!(at, got.len());
    }
}
