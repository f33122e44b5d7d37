//! Random graph families: each builds a small graph of static shape from a seed, so a failing
//! case is reproduced by calling the family's builder with the seed its failure names. Every
//! backend's suite runs them against the interpreters (see [`crate::backend_suite!`]).

use crate::graphs::{dims, quantize, weight};
use crate::inputs::Rng;
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder, Op, PadMode, PoolKind, ReduceKind, UnaryOp, ValueId, Window};

/// A family's name (as failures and test names use it) and its builder.
pub type Family = (&'static str, fn(u64) -> Graph);

/// Every family, in the order the suites run them.
pub const FAMILIES: [Family; 9] = [
    ("elementwise_dag", elementwise_dag),
    ("reduction", reduction),
    ("composite", composite),
    ("matmul", matmul),
    ("integer_matmul", integer_matmul),
    ("conv", conv),
    ("pool", pool),
    ("movement", movement),
    ("block", block),
];

/// The builder of the family named `name` (one of [`FAMILIES`]).
pub fn family(name: &str) -> fn(u64) -> Graph {
    FAMILIES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no graph family `{name}`")).1
}

pub fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len())]
}

pub fn coin(rng: &mut Rng) -> bool {
    rng.below(2) == 0
}

pub fn numel(b: &GraphBuilder, v: ValueId) -> usize {
    b.ty(v).static_shape().expect("static").iter().product()
}

pub fn shape_of(b: &GraphBuilder, v: ValueId) -> Vec<usize> {
    b.ty(v).static_shape().expect("static")
}

const UNARY: &[UnaryOp] =
    &[UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Sin, UnaryOp::Exp];
const BINARY: &[BinaryOp] = &[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min, BinaryOp::Div];

/// `shape` with some axes set to 1 and maybe some leading axes dropped: broadcasts against it.
pub fn broadcastable(rng: &mut Rng, shape: &[usize]) -> Vec<usize> {
    let drop = if coin(rng) { rng.below(shape.len()) } else { 0 };
    shape[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
}

/// One random elementwise op over the values in `pool` (any pair broadcasts).
pub fn elementwise_step(b: &mut GraphBuilder, rng: &mut Rng, pool: &[ValueId]) -> ValueId {
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
pub fn elementwise_dag(seed: u64) -> Graph {
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
pub fn axes_subset(rng: &mut Rng, rank: usize) -> Vec<i64> {
    loop {
        let axes: Vec<i64> = (0..rank as i64).filter(|_| coin(rng)).collect();
        if !axes.is_empty() {
            return axes;
        }
    }
}

/// An elementwise producer, a reduction (sum/mean/max/min over random axes, keep_dims both
/// ways), and elementwise consumers that combine the result with the producer.
pub fn reduction(seed: u64) -> Graph {
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
pub fn composite(seed: u64) -> Graph {
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
pub fn matmul(seed: u64) -> Graph {
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

/// A quantized model's matmul: `f32` activations quantized to `u8` or `i8` in the graph (round,
/// clamp, cast), `i8` weights (a constant, or an input quantized the same way), the product
/// accumulated in `i32` (batched or not; depths short, not a multiple of four, or long), a
/// per-column zero-point correction, scaled to `f32` and sometimes requantized.
pub fn integer_matmul(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("integer_matmul");
    let k = if coin(&mut rng) { 1 + rng.below(24) } else { 60 + rng.below(260) };
    let (m, n) = (1 + rng.below(20), 1 + rng.below(40));
    let batch: Vec<usize> = if coin(&mut rng) { vec![] } else { vec![1 + rng.below(3)] };
    let shape: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    // Unsigned activations (zero point 128), or signed ones (zero point 0).
    let xq = if coin(&mut rng) { quantize(&mut b, x, 128.0, DType::U8) } else { quantize(&mut b, x, 0.0, DType::I8) };
    let wq = if coin(&mut rng) {
        let values: Vec<i64> = (0..k * n).map(|_| rng.below(256) as i64 - 128).collect();
        b.constant(nnc_ir::TensorData::from_i64(DType::I8, vec![k, n], &values))
    } else {
        let w = b.input("w", DType::F32, dims(&[k, n])).unwrap();
        quantize(&mut b, w, 0.0, DType::I8)
    };
    let (xi, wi) = (b.cast(xq, DType::I32).unwrap(), b.cast(wq, DType::I32).unwrap());
    let mut y = b.matmul(xi, wi).unwrap();
    if coin(&mut rng) {
        let correction: Vec<i64> = (0..n).map(|_| rng.below(20000) as i64 - 10000).collect();
        let correction = b.constant(nnc_ir::TensorData::from_i64(DType::I32, vec![n], &correction));
        y = b.sub(y, correction).unwrap();
    }
    let y = b.cast(y, DType::F32).unwrap();
    let mut y = b.binary_scalar(BinaryOp::Mul, y, 1.0 / 4096.0).unwrap();
    if coin(&mut rng) {
        let q = quantize(&mut b, y, 128.0, DType::U8);
        y = b.cast(q, DType::F32).unwrap();
    }
    b.output(y);
    b.finish().unwrap()
}

/// conv (stride, padding, several channels; one group or depthwise; rows shorter than a vector
/// or of several) with a per-channel bias and relu.
pub fn conv(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("conv");
    let (n, c, h) = (1 + rng.below(2), 1 + rng.below(3), 3 + rng.below(5));
    // Rows shorter than a vector, or of one to three (on 4 lanes, ten) vectors and a remainder.
    let w = if coin(&mut rng) { 3 + rng.below(5) } else { 16 + rng.below(40) };
    // Depthwise (a group per input channel, one or two outputs each) or one group.
    let groups = if coin(&mut rng) { c } else { 1 };
    let m = if groups > 1 { c * (1 + rng.below(2)) } else { 1 + rng.below(4) };
    let kh = 1 + rng.below(3);
    let kw = 1 + rng.below(3);
    let pad = rng.below(2) as i64;
    let stride = 1 + rng.below(2) as i64;
    let x = b.input("x", DType::F32, dims(&[n, c, h, w])).unwrap();
    let wt = weight(&mut b, seed ^ 5, &[m, c / groups, kh, kw]);
    let window = Window { strides: vec![stride, stride], dilations: vec![1, 1], pads: vec![pad; 4] };
    let mut y = b.conv(x, wt, window, groups as i64).unwrap();
    let bias = weight(&mut b, seed ^ 6, &[m, 1, 1]);
    y = b.add(y, bias).unwrap();
    y = b.relu(y).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// Max or average pooling, 1-D or 2-D, over rows of 4 to 15 elements (narrower vectors) or 16
/// to 80 (several vectors and a remainder on every CPU), with strides up to 4, dilations, padding on either side (less than
/// the window), ceil mode and padding counted or not; after a `relu` or an `exp` (which fusion
/// may inline into the window) and before a `tanh`.
pub fn pool(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut b = GraphBuilder::new("pool");
    let spatial = 1 + rng.below(2);
    let kernel: Vec<i64> = (0..spatial).map(|_| 1 + rng.below(3) as i64).collect();
    let dilations: Vec<i64> = (0..spatial).map(|_| 1 + rng.below(2) as i64).collect();
    let strides: Vec<i64> = (0..spatial).map(|_| 1 + rng.below(4) as i64).collect();
    let mut pads: Vec<i64> = Vec::new();
    for _ in 0..2 {
        pads.extend(kernel.iter().map(|&k| rng.below(k as usize) as i64));
    }
    let mut shape = vec![1 + rng.below(2), 1 + rng.below(3)];
    if spatial == 2 {
        shape.push((kernel[0] - 1) as usize * dilations[0] as usize + 1 + rng.below(4));
    }
    shape.push(if coin(&mut rng) { 4 + rng.below(12) } else { 16 + rng.below(65) });
    let kind = pick(&mut rng, &[PoolKind::Max, PoolKind::Avg]);
    let (ceil_mode, count_include_pad) = (coin(&mut rng), coin(&mut rng));
    let x = b.input("x", DType::F32, dims(&shape)).unwrap();
    let x = b.unary(pick(&mut rng, &[UnaryOp::Relu, UnaryOp::Exp]), x).unwrap();
    let window = Window { strides, dilations, pads };
    let y = b.op1(Op::Pool { kind, kernel, window, ceil_mode, count_include_pad }, &[x]).unwrap();
    let y = b.unary(UnaryOp::Tanh, y).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// transpose, reshape, slice, concat and pad between elementwise ops, maybe ending in a
/// reduction.
pub fn movement(seed: u64) -> Graph {
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
pub fn block(seed: u64) -> Graph {
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
