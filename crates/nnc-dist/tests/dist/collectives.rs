//! Collectives without an engine: the interpreter's N-rank semantics, the gradient rules
//! (against finite differences of the ranks' summed losses), the text form, the split into
//! stages, data-parallel steps (N ranks on slices = one process on the whole batch) and the
//! tensor-parallel transformer layer (N ranks = the unsplit layer).

use nnc_autodiff::train::{training_step, Optimizer};
use nnc_dist::data_parallel::{shard_rows, step_graph, DataParallel};
use nnc_dist::stages::{split, Step};
use nnc_dist::tensor_parallel::{layer_graph, shard_weights, weight_shapes, LayerShape};
use nnc_dist::{DistSession, SingleRank};
use nnc_interp::{run, run_ranks};
use nnc_ir::{Collective, CollectiveReduce, DType, Graph, GraphBuilder, Op, TensorData};
use nnc_runtime::{SessionOptions, Target};

fn collective_graph(c: Collective, dtype: DType, shape: &[usize]) -> Graph {
    let mut b = GraphBuilder::new("one_collective");
    let x = b.input("x", dtype, shape.iter().copied()).unwrap();
    let y = b.op1(Op::Collective(c), &[x]).unwrap();
    b.output(y);
    b.finish().unwrap()
}

fn f32s(t: &TensorData) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

#[test]
fn the_interpreter_runs_every_collective_over_three_ranks() {
    let x = |r: f32| TensorData::from_vec(vec![2, 3], &[r, r + 1.0, -r, 10.0 * r, 0.5, r * r]);
    let inputs: Vec<Vec<TensorData>> = (0..3).map(|r| vec![x(r as f32)]).collect();
    let case = |c: Collective, shape: &[usize]| {
        run_ranks(&collective_graph(c, DType::F32, &[2, 3]), &inputs).map(|outs| {
            assert!(outs.iter().all(|o| o[0].shape() == shape));
            outs.into_iter().map(|o| f32s(&o[0])).collect::<Vec<_>>()
        })
    };
    let sum = case(Collective::AllReduce { op: CollectiveReduce::Sum, world: 3 }, &[2, 3]).unwrap();
    assert_eq!(sum[2], vec![3.0, 6.0, -3.0, 30.0, 1.5, 5.0]);
    let max = case(Collective::AllReduce { op: CollectiveReduce::Max, world: 3 }, &[2, 3]).unwrap();
    assert_eq!(max[0], vec![2.0, 3.0, 0.0, 20.0, 0.5, 4.0]);
    let mean = case(Collective::AllReduce { op: CollectiveReduce::Mean, world: 3 }, &[2, 3]).unwrap();
    assert_eq!(mean[1], vec![1.0, 2.0, -1.0, 10.0, 0.5, 5.0 / 3.0]);
    let gathered = case(Collective::AllGather { axis: 1, world: 3 }, &[2, 9]).unwrap();
    assert_eq!(&gathered[0][..9], &[0.0, 1.0, -0.0, 1.0, 2.0, -1.0, 2.0, 3.0, -2.0]);
    let scattered = case(Collective::ReduceScatter { op: CollectiveReduce::Sum, axis: 1, world: 3 }, &[2, 1]).unwrap();
    assert_eq!(scattered, vec![vec![3.0, 30.0], vec![6.0, 1.5], vec![-3.0, 5.0]]);
    let root = case(Collective::Broadcast { root: 2, world: 3 }, &[2, 3]).unwrap();
    assert_eq!(root[0], f32s(&x(2.0)));
    // The wrong number of ranks, and ranks that disagree on the operand type, are errors.
    let two = run_ranks(&collective_graph(Collective::AllGather { axis: 0, world: 2 }, DType::F32, &[2, 3]), &inputs);
    assert!(two.unwrap_err().to_string().contains("spans 2 ranks but the program runs on 3"));
    let one = run(&collective_graph(Collective::AllGather { axis: 0, world: 2 }, DType::F32, &[2, 3]), &inputs[0]);
    assert!(one.unwrap_err().to_string().contains("run_ranks"));
}

#[test]
fn integer_reductions_wrap_and_compare_as_their_dtype() {
    let g = collective_graph(Collective::AllReduce { op: CollectiveReduce::Sum, world: 2 }, DType::U8, &[2]);
    let inputs =
        vec![vec![TensorData::from_vec(vec![2], &[200u8, 1])], vec![TensorData::from_vec(vec![2], &[100u8, 2])]];
    let out = run_ranks(&g, &inputs).unwrap();
    assert_eq!(out[1][0].to_vec::<u8>().unwrap(), vec![44, 3]);
}

#[test]
fn collectives_print_and_parse() {
    let g = collective_graph(
        Collective::ReduceScatter { op: CollectiveReduce::Mean, axis: 0, world: 2 },
        DType::F32,
        &[4, 3],
    );
    let text = nnc_ir::text::print(&g);
    assert!(text.contains("reduce_scatter(%x) {op = mean, axis = 0, world = 2}"), "{text}");
    assert_eq!(nnc_ir::text::parse(&text, "t.nnir").unwrap(), g);
    let bad = text.replace("axis = 0", "axis = 1");
    let err = nnc_ir::text::parse(&bad, "t.nnir").unwrap_err().to_string();
    assert!(err.contains("does not split into 2 equal parts"), "{err}");
}

/// Rank `r`'s loss is `sum(w_r · f(x_r))` for a collective `f`, with weights that differ per
/// rank; the gradient of the ranks' summed loss with respect to each rank's `x` must match
/// central differences.
fn check_gradient(c: Collective, shape: &[usize]) {
    let world = c.world();
    let mut b = GraphBuilder::new("grad_collective");
    let x = b.input("x", DType::F64, shape.iter().copied()).unwrap();
    let y = b.op1(Op::Collective(c.clone()), &[x]).unwrap();
    let ty = b.ty(y).clone();
    let w = b.input("w", DType::F64, ty.shape.clone()).unwrap();
    let p = b.mul(y, w).unwrap();
    let axes: Vec<i64> = (0..ty.rank() as i64).collect();
    let loss = b.reduce_sum(p, &axes, false).unwrap();
    b.output(loss);
    let forward = b.finish().unwrap();
    let backward = nnc_autodiff::grad(&forward, loss, &[x]).unwrap();
    let n: usize = shape.iter().product();
    let wn: usize = ty.static_shape().unwrap().iter().product();
    // Distinct values, so max and min have no ties.
    let xs: Vec<Vec<f64>> = (0..world)
        .map(|r| (0..n).map(|i| ((i * 7 + r * 13) % 23) as f64 * 0.37 - 3.0 + r as f64 * 0.011).collect())
        .collect();
    let ws: Vec<Vec<f64>> =
        (0..world).map(|r| (0..wn).map(|i| ((i * 5 + r * 3) % 11) as f64 * 0.2 - 1.0).collect()).collect();
    let inputs = |xs: &[Vec<f64>]| -> Vec<Vec<TensorData>> {
        (0..world)
            .map(|r| {
                vec![
                    TensorData::from_vec(shape.to_vec(), &xs[r]),
                    TensorData::from_vec(ty.static_shape().unwrap(), &ws[r]),
                ]
            })
            .collect()
    };
    let grads = run_ranks(&backward, &inputs(&xs)).unwrap();
    let total = |xs: &[Vec<f64>]| -> f64 {
        run_ranks(&forward, &inputs(xs)).unwrap().iter().map(|o| o[0].to_vec::<f64>().unwrap()[0]).sum()
    };
    let h = 1e-6;
    for r in 0..world {
        let g = grads[r].last().unwrap().to_vec::<f64>().unwrap();
        for i in 0..n {
            let mut up = xs.clone();
            up[r][i] += h;
            let mut down = xs.clone();
            down[r][i] -= h;
            let numeric = (total(&up) - total(&down)) / (2.0 * h);
            assert!((numeric - g[i]).abs() < 1e-6, "{c:?}: rank {r} element {i}: analytic {} numeric {numeric}", g[i]);
        }
    }
}

#[test]
fn gradients_of_collectives_match_finite_differences() {
    for op in CollectiveReduce::ALL {
        check_gradient(Collective::AllReduce { op, world: 3 }, &[2, 2]);
        check_gradient(Collective::ReduceScatter { op, axis: 1, world: 2 }, &[2, 4]);
    }
    check_gradient(Collective::AllGather { axis: 0, world: 3 }, &[2, 2]);
    check_gradient(Collective::AllGather { axis: 1, world: 2 }, &[2, 3]);
}

#[test]
fn broadcast_has_no_gradient_and_says_why() {
    let mut b = GraphBuilder::new("loss");
    let x = b.input("x", DType::F32, [2usize]).unwrap();
    let y = b.op1(Op::Collective(Collective::Broadcast { root: 0, world: 2 }), &[x]).unwrap();
    let loss = b.reduce_sum(y, &[0], false).unwrap();
    b.output(loss);
    let g = b.finish().unwrap();
    let err = nnc_autodiff::grad(&g, loss, &[x]).unwrap_err().to_string();
    assert!(err.contains("rank's own index"), "{err}");
}

#[test]
fn graphs_split_into_stages_at_their_collectives() {
    let mut b = GraphBuilder::new("two_stages");
    let x = b.input("x", DType::F32, [4usize]).unwrap();
    let w = b.constant(TensorData::from_vec(vec![4], &[1.0f32, 2.0, 3.0, 4.0]));
    let y = b.mul(x, w).unwrap();
    let s = b.op1(Op::Collective(Collective::AllReduce { op: CollectiveReduce::Sum, world: 2 }), &[y]).unwrap();
    let z = b.mul(s, w).unwrap();
    let z = b.add(z, x).unwrap();
    b.output(z);
    b.output(y);
    let g = b.finish().unwrap();
    let steps = split(&g);
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            Step::Compute { .. } => "compute",
            Step::Collective { .. } => "collective",
        })
        .collect();
    assert_eq!(kinds, ["compute", "collective", "compute"]);
    let Step::Compute { graph, inputs, .. } = &steps[2] else { unreachable!() };
    // The second stage reads the collective's result and `x`, and makes its own copy of `w`.
    assert_eq!(inputs.len(), 2);
    assert!(graph.nodes.iter().any(|n| matches!(n.op, Op::Constant(_))));
}

fn mlp_forward(rows: usize) -> Graph {
    let mut b = GraphBuilder::new("mlp");
    let x = b.input("x", DType::F32, [rows, 5]).unwrap();
    let t = b.input("t", DType::F32, [rows, 2]).unwrap();
    let w1 = b.input("w1", DType::F32, [5usize, 8]).unwrap();
    let b1 = b.input("b1", DType::F32, [8usize]).unwrap();
    let w2 = b.input("w2", DType::F32, [8usize, 2]).unwrap();
    let h = b.matmul(x, w1).unwrap();
    let h = b.add(h, b1).unwrap();
    let h = b.tanh(h).unwrap();
    let y = b.matmul(h, w2).unwrap();
    let loss = nnc_autodiff::mse(&mut b, y, t).unwrap();
    b.set_name(loss, "loss").unwrap();
    b.output(loss);
    b.finish().unwrap()
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 31 + seed * 17) % 29) as f32 - 14.0) / 10.0).collect()
}

#[test]
fn data_parallel_steps_on_slices_match_one_step_on_the_whole_batch() {
    let (rows, world) = (12, 3);
    let optimizer = Optimizer::Sgd { lr: 0.1, momentum: 0.9 };
    let params = ["w1", "b1", "w2"];
    let whole = training_step(&mlp_forward(rows), "loss", &params, &optimizer).unwrap();
    // Small buckets: w1 and b1 share one, w2 travels alone.
    let dp = DataParallel { world, bucket_bytes: 200 };
    let sliced = step_graph(&mlp_forward(rows / world), "loss", &params, &optimizer, &dp).unwrap();
    let reduces = sliced.nodes.iter().filter(|n| matches!(n.op, Op::Collective(_))).count();
    assert_eq!(reduces, 3, "the loss and two buckets");
    let x = TensorData::from_vec(vec![rows, 5], &values(rows * 5, 1));
    let t = TensorData::from_vec(vec![rows, 2], &values(rows * 2, 2));
    let state = [
        TensorData::from_vec(vec![5, 8], &values(40, 3)),
        TensorData::from_vec(vec![8], &values(8, 4)),
        TensorData::from_vec(vec![8, 2], &values(16, 5)),
        TensorData::from_vec(vec![5, 8], &[0.0f32; 40]),
        TensorData::from_vec(vec![8], &[0.0f32; 8]),
        TensorData::from_vec(vec![8, 2], &[0.0f32; 16]),
    ];
    let mut one = vec![x.clone(), t.clone()];
    one.extend(state.iter().cloned());
    let expected = run(&whole, &one).unwrap();
    let ranks: Vec<Vec<TensorData>> = (0..world)
        .map(|r| {
            let mut ins = vec![shard_rows(&x, r, world).unwrap(), shard_rows(&t, r, world).unwrap()];
            ins.extend(state.iter().cloned());
            ins
        })
        .collect();
    let got = run_ranks(&sliced, &ranks).unwrap();
    for outs in &got {
        assert_eq!(outs, &got[0], "every rank ends with the same parameters");
        for (a, e) in outs.iter().zip(&expected) {
            for (u, v) in f32s(a).iter().zip(f32s(e)) {
                assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "{u} vs {v}");
            }
        }
    }
    let err = shard_rows(&x, 0, 5).unwrap_err().to_string();
    assert!(err.contains("12 rows does not split evenly over 5 ranks"), "{err}");
}

#[test]
fn a_world_of_one_compiles_and_runs_a_graph_with_collectives_on_the_cpu() {
    let optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let step = step_graph(&mlp_forward(4), "loss", &["w1", "b1", "w2"], &optimizer, &DataParallel::new(1)).unwrap();
    let mut inputs =
        vec![TensorData::from_vec(vec![4, 5], &values(20, 1)), TensorData::from_vec(vec![4, 2], &values(8, 2))];
    for (shape, seed) in [(vec![5, 8], 3), (vec![8], 4), (vec![8, 2], 5)] {
        let n = shape.iter().product();
        inputs.push(TensorData::from_vec(shape, &values(n, seed)));
    }
    for _ in 0..2 {
        for shape in [vec![5, 8], vec![8], vec![8, 2]] {
            let n = shape.iter().product();
            inputs.push(TensorData::from_vec(shape, &vec![0.0f32; n]));
        }
    }
    inputs.push(TensorData::scalar(0.0f32));
    let expected = run(&step, &inputs).unwrap();
    let mut session = DistSession::new(step, SessionOptions::target(Target::Cpu), Box::new(SingleRank)).unwrap();
    assert_eq!(session.shape(), (2, 2), "forward and backward, the loss and gradient all-reduces, the update");
    let got = session.run(&inputs).unwrap();
    for (a, e) in got.iter().zip(&expected) {
        for (u, v) in f32s(a).iter().zip(f32s(e)) {
            assert!((u - v).abs() <= 1e-4 * v.abs().max(1.0), "{u} vs {v}");
        }
    }
    assert_eq!(session.stats().collectives, 2);
}

fn layer_weights(s: LayerShape) -> Vec<TensorData> {
    weight_shapes(s)
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let mut v: Vec<f32> = values(n, k + 7).iter().map(|x| x * 0.3).collect();
            if name.ends_with("_scale") {
                v.iter_mut().for_each(|x| *x += 1.0);
            }
            TensorData::from_vec(shape, &v)
        })
        .collect()
}

#[test]
fn a_tensor_parallel_transformer_layer_matches_the_unsplit_layer() {
    let s = LayerShape { seq: 5, dim: 8, heads: 4, hidden: 16 };
    let x = TensorData::from_vec(vec![5, 8], &values(40, 11));
    let whole = layer_weights(s);
    let mut ins = vec![x.clone()];
    ins.extend(whole.iter().cloned());
    let expected = f32s(&run(&layer_graph(s, 1).unwrap(), &ins).unwrap()[0]);
    for world in [2, 4] {
        let g = layer_graph(s, world).unwrap();
        let reduces = g.nodes.iter().filter(|n| matches!(n.op, Op::Collective(_))).count();
        assert_eq!(reduces, 2, "one all-reduce after attention, one after the MLP");
        let ranks: Vec<Vec<TensorData>> = (0..world)
            .map(|r| {
                let mut ins = vec![x.clone()];
                ins.extend(shard_weights(s, &whole, r, world).unwrap());
                ins
            })
            .collect();
        for outs in run_ranks(&g, &ranks).unwrap() {
            for (u, v) in f32s(&outs[0]).iter().zip(&expected) {
                assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "world {world}: {u} vs {v}");
            }
        }
    }
    let err = layer_graph(s, 3).unwrap_err().to_string();
    assert!(err.contains("does not split over 3 ranks"), "{err}");
}
