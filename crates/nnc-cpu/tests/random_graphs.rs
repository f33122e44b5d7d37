//! Native code matches the graph interpreter: random graphs of static shape (the graph families
//! of nnc-kernel's fusion property test, plus casts and integer arithmetic) are compiled for the
//! CPU, JIT-compiled with Cranelift, run by `CpuProgram`, and compared with `nnc_interp::run`.
//!
//! The random graphs are built from a seed (printed with the graph on failure), so a failing
//! case is reproduced by calling the family's builder with that seed.

mod common;

use common::Rng;
use common::*;
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder, PadMode, ReduceKind, UnaryOp, ValueId, Window};
use proptest::prelude::*;

// ---------------------------------------------------------------- random graph families

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len())]
}

fn coin(rng: &mut Rng) -> bool {
    rng.below(2) == 0
}

fn numel(b: &GraphBuilder, v: ValueId) -> usize {
    b.ty(v).static_shape().expect("static").iter().product()
}

fn shape_of(b: &GraphBuilder, v: ValueId) -> Vec<usize> {
    b.ty(v).static_shape().expect("static")
}

const UNARY: &[UnaryOp] =
    &[UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Sin, UnaryOp::Exp];
const BINARY: &[BinaryOp] = &[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min, BinaryOp::Div];

/// `shape` with some axes set to 1 and maybe some leading axes dropped: broadcasts against it.
fn broadcastable(rng: &mut Rng, shape: &[usize]) -> Vec<usize> {
    let drop = if coin(rng) { rng.below(shape.len()) } else { 0 };
    shape[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
}

/// One random elementwise op over the values in `pool` (any pair broadcasts).
fn elementwise_step(b: &mut GraphBuilder, rng: &mut Rng, pool: &[ValueId]) -> ValueId {
    let x = pool[rng.below(pool.len())];
    match rng.below(10) {
        0..=3 => b.unary(pick(rng, UNARY), x).unwrap(),
        4..=7 => {
            let y = pool[rng.below(pool.len())];
            b.binary(pick(rng, BINARY), x, y).unwrap()
        }
        8 => {
            let s = rng.uniform(-1.5, 1.5);
            b.binary_scalar(pick(rng, &[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Max]), x, s).unwrap()
        }
        _ => {
            let y = pool[rng.below(pool.len())];
            let z = pool[rng.below(pool.len())];
            let c = b.binary(pick(rng, &[BinaryOp::Gt, BinaryOp::Le]), x, y).unwrap();
            b.select(c, y, z).unwrap()
        }
    }
}

/// A DAG of elementwise ops with broadcasting; values are reused by later ops, and sometimes an
/// intermediate value is an output too.
fn elementwise_dag(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("elementwise_dag");
    let rank = 1 + rng.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(6)).collect();
    let mut pool = vec![b.input("x", DType::F32, dims(&shape)).unwrap()];
    for i in 0..rng.below(3) {
        let s = broadcastable(&mut rng, &shape);
        pool.push(b.input(&format!("in{i}"), DType::F32, dims(&s)).unwrap());
    }
    let inputs = pool.len();
    let steps = 2 + rng.below(7);
    for _ in 0..steps {
        let v = elementwise_step(&mut b, &mut rng, &pool);
        pool.push(v);
    }
    b.output(*pool.last().unwrap());
    if coin(&mut rng) && pool.len() > inputs + 1 {
        let extra = pool[inputs + rng.below(pool.len() - inputs - 1)];
        b.output(extra);
    }
    b.finish().unwrap()
}

/// Random non-empty subset of `0..rank`, sorted.
fn axes_subset(rng: &mut Rng, rank: usize) -> Vec<i64> {
    loop {
        let axes: Vec<i64> = (0..rank as i64).filter(|_| coin(rng)).collect();
        if !axes.is_empty() {
            return axes;
        }
    }
}

/// An elementwise producer, a reduction (sum/mean/max/min over random axes, keep_dims both
/// ways), and elementwise consumers that combine the result with the producer.
fn reduction(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("reduction");
    let rank = 1 + rng.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(8)).collect();
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    let y = b.input("y", DType::F32, dims(&broadcastable(&mut rng, &shape))).unwrap();
    let p = match rng.below(3) {
        0 => x,
        1 => b.mul(x, y).unwrap(),
        _ => {
            let t = b.tanh(x).unwrap();
            b.add(t, y).unwrap()
        }
    };
    let kind = pick(&mut rng, &[ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max, ReduceKind::Min]);
    let axes = axes_subset(&mut rng, rank);
    let keep = coin(&mut rng);
    let r = b.reduce(kind, p, &axes, keep).unwrap();
    let out = if keep {
        // Broadcast back against the producer: `p - r` or `p * r`, then maybe a unary.
        let c = b.binary(pick(&mut rng, &[BinaryOp::Sub, BinaryOp::Mul]), p, r).unwrap();
        if coin(&mut rng) {
            b.unary(pick(&mut rng, UNARY), c).unwrap()
        } else {
            c
        }
    } else {
        let c = b.unary(pick(&mut rng, &[UnaryOp::Tanh, UnaryOp::Neg, UnaryOp::Relu]), r).unwrap();
        let rank_out = b.ty(c).rank();
        if rank_out > 0 && coin(&mut rng) {
            // A second reduction over the first one's consumer.
            b.reduce(ReduceKind::Max, c, &[rank_out as i64 - 1], coin(&mut rng)).unwrap()
        } else {
            c
        }
    };
    b.output(out);
    if coin(&mut rng) {
        // The reduction is also an output: materialized and read back by its consumer.
        b.output(r);
    }
    b.finish().unwrap()
}

/// softmax, log_softmax or layer_norm over a random axis, with an elementwise producer and
/// consumer.
fn composite(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("composite");
    let rank = 1 + rng.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(12)).collect();
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    let p = if coin(&mut rng) {
        let s = b.input("s", DType::F32, dims(&broadcastable(&mut rng, &shape))).unwrap();
        b.mul(x, s).unwrap()
    } else {
        x
    };
    let axis = rng.below(rank) as i64 - if coin(&mut rng) { rank as i64 } else { 0 };
    let y = match rng.below(3) {
        0 => b.softmax(p, axis).unwrap(),
        1 => b.log_softmax(p, axis).unwrap(),
        _ => {
            let a = axis.rem_euclid(rank as i64) as usize;
            let scale = weight(&mut b, seed ^ 1, &shape[a..]);
            let bias = b.input("bias", DType::F32, dims(&shape[a..])).unwrap();
            b.layer_norm(p, scale, bias, axis, 1e-5).unwrap()
        }
    };
    let out = match rng.below(3) {
        0 => y,
        1 => b.relu(y).unwrap(),
        _ => b.add(y, x).unwrap(),
    };
    b.output(out);
    b.finish().unwrap()
}

/// matmul (batched, broadcast batch, transposed operands, weights or inputs) with a bias,
/// activation and residual epilogue.
fn matmul(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("matmul");
    let (m, k, n) = (1 + rng.below(20), 1 + rng.below(24), 1 + rng.below(20));
    let batch: Vec<usize> = match rng.below(3) {
        0 => vec![],
        1 => vec![1 + rng.below(3)],
        _ => vec![1 + rng.below(2), 1 + rng.below(2)],
    };
    let cat = |pre: &[usize], a: usize, c: usize| -> Vec<usize> { pre.iter().copied().chain([a, c]).collect() };
    // a: [batch.., m, k], given transposed as [batch.., k, m] sometimes.
    let a = if coin(&mut rng) {
        let at = b.input("a_t", DType::F32, dims(&cat(&batch, k, m))).unwrap();
        b.transpose_last2(at).unwrap()
    } else {
        b.input("a", DType::F32, dims(&cat(&batch, m, k))).unwrap()
    };
    // b: [k, n] (broadcast over the batch), [batch.., k, n], or broadcast from a batch of 1; as a
    // weight or an input; transposed sometimes.
    let b_batch: Vec<usize> = match rng.below(3) {
        0 => vec![],
        1 => batch.clone(),
        _ => batch.iter().map(|_| 1).collect(),
    };
    let transposed = coin(&mut rng);
    let b_shape = if transposed { cat(&b_batch, n, k) } else { cat(&b_batch, k, n) };
    let w = if coin(&mut rng) {
        weight(&mut b, seed ^ 3, &b_shape)
    } else {
        b.input("w", DType::F32, dims(&b_shape)).unwrap()
    };
    let w = if transposed { b.transpose_last2(w).unwrap() } else { w };
    let mut y = b.matmul(a, w).unwrap();
    if coin(&mut rng) {
        let bias = weight(&mut b, seed ^ 4, &[n]);
        y = b.add(y, bias).unwrap();
    }
    match rng.below(4) {
        0 => y = b.relu(y).unwrap(),
        1 => y = b.tanh(y).unwrap(),
        2 => y = b.sigmoid(y).unwrap(),
        _ => {}
    }
    if coin(&mut rng) {
        let shape = shape_of(&b, y);
        let r = b.input("residual", DType::F32, dims(&shape)).unwrap();
        y = b.add(y, r).unwrap();
    }
    b.output(y);
    b.finish().unwrap()
}

/// conv (stride, padding, several channels) with a per-channel bias and relu.
fn conv(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("conv");
    let (n, c, h, w) = (1 + rng.below(2), 1 + rng.below(3), 3 + rng.below(5), 3 + rng.below(5));
    let m = 1 + rng.below(4);
    let kh = 1 + rng.below(3);
    let kw = 1 + rng.below(3);
    let pad = rng.below(2) as i64;
    let stride = 1 + rng.below(2) as i64;
    let x = b.input("x", DType::F32, dims(&[n, c, h, w])).unwrap();
    let wt = weight(&mut b, seed ^ 5, &[m, c, kh, kw]);
    let window = Window { strides: vec![stride, stride], dilations: vec![1, 1], pads: vec![pad; 4] };
    let mut y = b.conv(x, wt, window, 1).unwrap();
    let bias = weight(&mut b, seed ^ 6, &[m, 1, 1]);
    y = b.add(y, bias).unwrap();
    y = b.relu(y).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// transpose, reshape, slice, concat and pad between elementwise ops, maybe ending in a
/// reduction.
fn movement(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("movement");
    let shape: Vec<usize> = (0..3).map(|_| 1 + rng.below(5)).collect();
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    let mut v = b.tanh(x).unwrap();
    for _ in 0..1 + rng.below(4) {
        let s = shape_of(&b, v);
        let rank = s.len();
        v = match rng.below(5) {
            0 => {
                let mut perm: Vec<usize> = (0..rank).collect();
                for i in (1..rank).rev() {
                    perm.swap(i, rng.below(i + 1));
                }
                b.transpose(v, perm).unwrap()
            }
            1 => {
                let mut new: Vec<usize> = s.clone();
                for i in (1..new.len()).rev() {
                    new.swap(i, rng.below(i + 1));
                }
                if coin(&mut rng) && new.len() > 1 {
                    // Merge the first two dims.
                    let merged = new[0] * new[1];
                    new.splice(0..2, [merged]);
                }
                b.reshape(v, dims(&new)).unwrap()
            }
            2 => {
                let axis = rng.below(rank);
                let start = rng.below(s[axis]) as i64;
                let end = start + 1 + rng.below(s[axis] - start as usize) as i64;
                b.slice_axis(v, axis, start, end).unwrap()
            }
            3 if numel(&b, v) * 2 <= 2048 => {
                let axis = rng.below(rank) as i64;
                let u = b.unary(pick(&mut rng, UNARY), v).unwrap();
                if coin(&mut rng) {
                    b.concat(&[v, u], axis).unwrap()
                } else {
                    b.concat(&[u, v, u], axis).unwrap()
                }
            }
            _ if numel(&b, v) * 8 <= 2048 => {
                let pads: Vec<i64> = (0..2 * rank).map(|_| rng.below(3) as i64).collect();
                let mode = pick(&mut rng, &[PadMode::Constant, PadMode::Edge]);
                b.pad(v, pads, mode, 0.5).unwrap()
            }
            _ => b.relu(v).unwrap(),
        };
        if coin(&mut rng) {
            let other = if coin(&mut rng) { v } else { b.sigmoid(v).unwrap() };
            v = b.binary(pick(&mut rng, BINARY), v, other).unwrap();
        }
    }
    if coin(&mut rng) {
        let rank = b.ty(v).rank() as i64;
        let s = b.reduce_sum(v, &[rank - 1], true).unwrap();
        v = b.sub(v, s).unwrap();
    }
    b.output(v);
    b.finish().unwrap()
}

/// A chain mixing the families: matmul, then softmax over its rows, then a residual with a
/// transposed input, then layer_norm (an attention-like block).
fn block(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("block");
    let (s, d) = (1 + rng.below(12), 1 + rng.below(16));
    let x = b.input("x", DType::F32, [s as i64, d as i64]).unwrap();
    let wq = weight(&mut b, seed ^ 7, &[d, d]);
    let q = b.matmul(x, wq).unwrap();
    let xt = b.transpose_last2(x).unwrap();
    let scores = b.matmul(q, xt).unwrap();
    let scores = b.binary_scalar(BinaryOp::Mul, scores, 0.25).unwrap();
    let p = b.softmax(scores, -1).unwrap();
    let att = b.matmul(p, x).unwrap();
    let h = b.add(att, x).unwrap();
    let scale = weight(&mut b, seed ^ 8, &[d]);
    let bias = weight(&mut b, seed ^ 9, &[d]);
    let y = b.layer_norm(h, scale, bias, -1, 1e-5).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// Casts between every dtype family and integer arithmetic (wrapping, truncating division by a
/// non-zero divisor, remainder, min/max, comparisons, bool logic, select).
fn casts_and_ints(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let shape = [1 + rng.below(3), 4 + rng.below(9)];
    let mut b = GraphBuilder::new("casts_and_ints");
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    let y = b.input("y", DType::F32, dims(&shape)).unwrap();
    let int =
        pick(&mut rng, &[DType::I8, DType::I16, DType::I32, DType::I64, DType::U8, DType::U16, DType::U32, DType::U64]);
    let scale = b.binary_scalar(BinaryOp::Mul, x, pick(&mut rng, &[3.0, 50.0, 300.0])).unwrap();
    let xi = b.cast(scale, int).unwrap();
    let ys = b.binary_scalar(BinaryOp::Mul, y, 20.0).unwrap();
    let yi = b.cast(ys, int).unwrap();
    let ya = b.unary(UnaryOp::Abs, yi).unwrap();
    let one = b.constant(nnc_ir::TensorData::scalar(1.0f32));
    let one = b.cast(one, int).unwrap();
    let nz = b.binary(BinaryOp::Add, ya, one).unwrap();
    // Divisors stay non-zero: |y| + 1 (wrapping only at the very edge of i8/u8, avoided below).
    let mut v = xi;
    for _ in 0..4 {
        let op = pick(
            &mut rng,
            &[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min, BinaryOp::Div, BinaryOp::Rem],
        );
        let rhs = if matches!(op, BinaryOp::Div | BinaryOp::Rem) { nz } else { pick(&mut rng, &[xi, yi]) };
        v = b.binary(op, v, rhs).unwrap();
    }
    let cmp = b.binary(pick(&mut rng, &[BinaryOp::Lt, BinaryOp::Ge, BinaryOp::Eq, BinaryOp::Ne]), v, yi).unwrap();
    let other = b.binary(BinaryOp::Gt, x, y).unwrap();
    let logic = b.binary(pick(&mut rng, &[BinaryOp::And, BinaryOp::Or, BinaryOp::Xor]), cmp, other).unwrap();
    let picked = b.select(logic, v, xi).unwrap();
    let to = pick(&mut rng, &[DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32, DType::U8]);
    let c = b.cast(picked, to).unwrap();
    let back = b.cast(c, DType::F32).unwrap();
    let f64v = b.cast(x, DType::F64).unwrap();
    let f64e = b
        .unary(pick(&mut rng, &[UnaryOp::Exp, UnaryOp::Round, UnaryOp::Floor, UnaryOp::Sign, UnaryOp::Tanh]), f64v)
        .unwrap();
    let half = b.cast(y, pick(&mut rng, &[DType::F16, DType::BF16])).unwrap();
    let halfe = b.binary(BinaryOp::Mul, half, half).unwrap();
    let halfe = b.unary(pick(&mut rng, &[UnaryOp::Exp, UnaryOp::Sqrt, UnaryOp::Neg]), halfe).unwrap();
    let hb = b.cast(halfe, DType::F32).unwrap();
    b.output(back);
    b.output(f64e);
    b.output(hb);
    b.output(logic);
    b.finish().unwrap()
}

/// Checks one random graph natively; the error names the family and seed.
fn run_case(family: &str, build: fn(u64) -> Graph, seed: u64) -> Result<(), TestCaseError> {
    let graph = build(seed);
    let inputs = inputs_for(&graph, seed.wrapping_add(1));
    check(&graph, &inputs).map(|_| ()).map_err(|e| TestCaseError::fail(format!("{family}({seed:#x}): {e}")))
}

/// 64 cases, or `PROPTEST_CASES` when set (for longer bug hunts).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn elementwise_dags_match_the_interpreter(seed in any::<u64>()) {
        run_case("elementwise_dag", elementwise_dag, seed)?;
    }

    #[test]
    fn reductions_match_the_interpreter(seed in any::<u64>()) {
        run_case("reduction", reduction, seed)?;
    }

    #[test]
    fn composites_match_the_interpreter(seed in any::<u64>()) {
        run_case("composite", composite, seed)?;
    }

    #[test]
    fn matmuls_match_the_interpreter(seed in any::<u64>()) {
        run_case("matmul", matmul, seed)?;
    }

    #[test]
    fn convs_match_the_interpreter(seed in any::<u64>()) {
        run_case("conv", conv, seed)?;
    }

    #[test]
    fn movement_matches_the_interpreter(seed in any::<u64>()) {
        run_case("movement", movement, seed)?;
    }

    #[test]
    fn blocks_match_the_interpreter(seed in any::<u64>()) {
        run_case("block", block, seed)?;
    }

    #[test]
    fn casts_and_ints_match_the_interpreter(seed in any::<u64>()) {
        run_case("casts_and_ints", casts_and_ints, seed)?;
    }
}

#[test]
fn fixed_graphs_match_the_interpreter() {
    for g in [
        elementwise_chain(),
        softmax(&[3, 17], -1),
        softmax(&[2, 5, 7], 1),
        layer_norm(&[4, 32], -1),
        matmul_bias_relu(5, 7, 9),
        conv_bias_relu([1, 3, 8, 8], 4, 3, 1),
        argmax(&[3, 9], -1),
        topk(&[2, 10], 3),
    ] {
        let inputs = inputs_for(&g, 5);
        check(&g, &inputs).unwrap_or_else(|e| panic!("{}: {e}", g.name));
    }
}

#[test]
fn straight_line_f32_loops_become_vector_code() {
    let g = elementwise_chain();
    let program = compile_for(&g, &nnc_kernel::schedule::Device::cpu());
    let native = nnc_cpu::CpuProgram::new(&program).unwrap();
    assert!(native.vectorized_loops() >= 1, "{}", dump(&program));
}
