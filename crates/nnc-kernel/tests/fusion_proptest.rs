//! Fusion and scheduling preserve meaning: random graphs of static shape are compiled for the
//! GPU and the CPU, every kernel runs through the Kernel-IR interpreter (which also reports
//! out-of-bounds accesses, races and barrier misuse), and the outputs are compared with the
//! graph interpreter's. Then fixed graphs check that fusion happens where it must.
//!
//! The random graphs are built from a seed (printed with the graph on failure), so a failing
//! case is reproduced by calling the family's builder with that seed.

mod common;

use common::Rng;
use common::*;
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder, PadMode, ReduceKind, UnaryOp, ValueId, Window};
use nnc_kernel::fuse::BufferKind;
use nnc_kernel::kernel::{Stmt, Strategy};
use nnc_kernel::schedule::Device;
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

/// Checks one random graph on both devices; the error names the family and seed.
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
}

// ---------------------------------------------------------------- fusion must happen

fn checked(graph: &Graph) -> (nnc_kernel::program::Program, nnc_kernel::program::Program) {
    let inputs = inputs_for(graph, 11);
    check(graph, &inputs).unwrap_or_else(|e| panic!("{e}"))
}

fn no_intermediates(program: &nnc_kernel::program::Program) -> bool {
    !program.fused.buffers.iter().any(|b| {
        matches!(b.kind, BufferKind::Intermediate)
            && !program.fused.outputs.iter().any(|o| program.fused.buffers[o.index()].name == b.name)
    })
}

#[test]
fn a_chain_of_five_elementwise_ops_is_one_kernel() {
    let (gpu, cpu) = checked(&elementwise_chain());
    for p in [&gpu, &cpu] {
        let k = only_kernel(p);
        assert_eq!(k.schedule.strategy, Strategy::Elementwise);
        assert_eq!(k.covers.len(), 5, "{k}");
        assert!(no_intermediates(p), "{}", dump(p));
    }
}

#[test]
fn softmax_over_the_last_axis_is_one_row_reduce_kernel_on_gpu() {
    for shape in [vec![4, 64], vec![2, 3, 10], vec![1, 300]] {
        let (gpu, cpu) = checked(&softmax(&shape, -1));
        assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::RowReduce, "{}", dump(&gpu));
        assert_eq!(only_kernel(&cpu).schedule.strategy, Strategy::Elementwise, "{}", dump(&cpu));
        // Each reduction is computed once per row: on the CPU, no reduction loop is nested in
        // the loop over the row's elements.
        let k = only_kernel(&cpu);
        let top_loops = count_stmts(&k.body, &mut |s| matches!(s, Stmt::For { .. }));
        assert_eq!(top_loops, 3, "max, sum, then the row:\n{k}");
    }
}

#[test]
fn layer_norm_is_one_row_reduce_kernel_on_gpu() {
    let (gpu, cpu) = checked(&layer_norm(&[4, 32], -1));
    assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::RowReduce, "{}", dump(&gpu));
    only_kernel(&cpu);
}

#[test]
fn matmul_bias_relu_is_one_tiled_kernel_on_gpu() {
    for (m, k, n) in [(8, 20, 24), (1, 3, 1), (33, 17, 5)] {
        let (gpu, cpu) = checked(&matmul_bias_relu(m, k, n));
        let kernel = only_kernel(&gpu);
        assert_eq!(kernel.schedule.strategy, Strategy::TiledMatmul, "{kernel}");
        assert_eq!(kernel.covers.len(), 3, "{kernel}");
        only_kernel(&cpu);
    }
}

#[test]
fn batched_matmul_with_epilogue_is_one_tiled_kernel_on_gpu() {
    let mut b = GraphBuilder::new("bmm");
    let x = b.input("x", DType::F32, [3, 5, 7]).unwrap();
    let w = b.input("w", DType::F32, [3, 7, 6]).unwrap();
    let r = b.input("r", DType::F32, [3, 5, 6]).unwrap();
    let y = b.matmul(x, w).unwrap();
    let y = b.tanh(y).unwrap();
    let y = b.add(y, r).unwrap();
    b.output(y);
    let (gpu, cpu) = checked(&b.finish().unwrap());
    let k = only_kernel(&gpu);
    assert_eq!(k.schedule.strategy, Strategy::TiledMatmul, "{k}");
    assert_eq!(k.launch.grid[2], 3, "one grid layer per batch:\n{k}");
    only_kernel(&cpu);
}

#[test]
fn conv_bias_relu_is_one_kernel() {
    let (gpu, cpu) = checked(&conv_bias_relu([1, 2, 6, 6], 4, 3, 1));
    for p in [&gpu, &cpu] {
        let k = only_kernel(p);
        assert_eq!(k.covers.len(), 3, "{k}");
    }
}

#[test]
fn a_transposed_weight_matmul_inlines_the_transpose() {
    for weight_is_constant in [false, true] {
        let mut b = GraphBuilder::new("xwt");
        let x = b.input("x", DType::F32, [6, 10]).unwrap();
        let w =
            if weight_is_constant { weight(&mut b, 12, &[9, 10]) } else { b.input("w", DType::F32, [9, 10]).unwrap() };
        let wt = b.transpose_last2(w).unwrap();
        let y = b.matmul(x, wt).unwrap();
        let y = b.relu(y).unwrap();
        b.output(y);
        let graph = b.finish().unwrap();
        let (gpu, cpu) = checked(&graph);
        for p in [&gpu, &cpu] {
            let k = only_kernel(p);
            assert!(k.covers.iter().any(|c| c.ends_with("= transpose")), "{k}");
            // The kernel reads the untransposed [9, 10] weight directly.
            assert!(k.params().any(|(_, b)| b.shape == [9, 10]), "{k}");
        }
        assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::TiledMatmul, "{}", dump(&gpu));
    }
}

#[test]
fn a_graph_output_used_inside_is_materialized_once_and_reused() {
    // `t = exp(x)` is an output and also feeds `t * 2`: both outputs are right, and `t` has a
    // kernel of its own.
    let mut b = GraphBuilder::new("shared_output");
    let x = b.input("x", DType::F32, [3, 4]).unwrap();
    let t = b.exp(x).unwrap();
    let u = b.binary_scalar(BinaryOp::Mul, t, 2.0).unwrap();
    b.output(t);
    b.output(u);
    let (gpu, cpu) = checked(&b.finish().unwrap());
    assert!(gpu.kernels.len() <= 2 && cpu.kernels.len() <= 2, "{}", dump(&gpu));
}

#[test]
fn fusion_off_gives_one_kernel_per_node_with_the_same_results() {
    let graph = block(5);
    let inputs = inputs_for(&graph, 5);
    let expected = nnc_interp::run(&graph, &inputs).unwrap();
    for device in [Device::gpu(), Device::cpu()] {
        let p = compile_unfused(&graph, &device);
        let found = p.run_interpreted(&inputs).unwrap_or_else(|e| panic!("{e}\n{}", dump(&p)));
        compare("unfused", &expected[0], &found[0]).unwrap();
        let fused = compile_for(&graph, &device);
        assert!(fused.kernels.len() < p.kernels.len(), "fused {} vs unfused {}", fused.kernels.len(), p.kernels.len());
    }
}

#[test]
fn softmax_on_a_non_last_axis_and_with_large_rows() {
    // Axis 0 of [5, 3]: the reduction runs down columns. And a row of 1000 elements (more than
    // a workgroup), where the strided partial loop runs several times per invocation.
    for (shape, axis) in [(vec![5, 3], 0), (vec![2, 1000], -1), (vec![1, 257], 1), (vec![3, 4, 5], 1)] {
        checked(&softmax(&shape, axis));
    }
    checked(&layer_norm(&[2, 600], -1));
    checked(&layer_norm(&[2, 3, 4], 1));
}

#[test]
fn argmax_and_topk_match() {
    checked(&argmax(&[4, 16], -1));
    checked(&argmax(&[5, 3], 0));
    checked(&argmax(&[2, 300], 1));
    checked(&topk(&[3, 8], 3));
}
