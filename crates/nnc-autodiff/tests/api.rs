//! The public API: errors, names, symbolic shapes, and training end to end.

mod common;
use common::Gen;
use nnc_autodiff::{grad, mse, softmax_cross_entropy, training_step, GradError, Optimizer};
use nnc_ir::{DType, Dim, Graph, GraphBuilder, PoolKind, TensorData, ValueId, Window};

fn t(shape: &[usize], v: &[f64]) -> TensorData {
    TensorData::from_f64(DType::F32, shape.to_vec(), v)
}

#[test]
fn non_scalar_loss_is_an_error_naming_it() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [3]).unwrap();
    let y = b.exp(x).unwrap();
    b.set_name(y, "y").unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let (x, y) = (g.find("x").unwrap(), g.find("y").unwrap());
    let err = grad(&g, y, &[x]).unwrap_err();
    assert!(matches!(err, GradError::LossNotScalar { .. }), "{err:?}");
    assert_eq!(err.to_string(), "the loss `y` must be a scalar floating-point value, but it has type f32[3]");
}

#[test]
fn integer_loss_and_integer_wrt_are_errors() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [3]).unwrap();
    let i = b.input("i", DType::I64, Vec::<Dim>::new()).unwrap();
    let s = b.reduce_sum(x, &[0], false).unwrap();
    b.set_name(s, "s").unwrap();
    b.output(s);
    b.output(i);
    let g = b.finish().unwrap();
    let (x, i, s) = (g.find("x").unwrap(), g.find("i").unwrap(), g.find("s").unwrap());
    assert!(grad(&g, i, &[x]).unwrap_err().to_string().contains("the loss `i` must be a scalar floating-point"));
    let err = grad(&g, s, &[i]).unwrap_err().to_string();
    assert!(err.contains("cannot differentiate with respect to `i`: it has dtype i64"), "{err}");
}

#[test]
fn wrt_not_in_graph_is_an_error() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, Vec::<Dim>::new()).unwrap();
    let y = b.exp(x).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let err = grad(&g, g.outputs[0], &[ValueId(999)]).unwrap_err();
    assert!(matches!(err, GradError::NotInGraph { .. }));
    assert!(err.to_string().contains("is not a value of graph `g`"), "{err}");
}

#[test]
fn unsupported_case_names_the_node() {
    // avg_pool over a symbolic length: the divisor of each position is not known.
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [Dim::from(1), Dim::from(1), Dim::sym("n")]).unwrap();
    let p = b.pool(PoolKind::Avg, x, vec![2], Window::unit(1)).unwrap();
    b.set_name(p, "pooled").unwrap();
    let s = b.reduce_sum(p, &[0, 1, 2], false).unwrap();
    b.output(s);
    let g = b.finish().unwrap();
    let err = grad(&g, g.outputs[0], &[g.find("x").unwrap()]).unwrap_err();
    assert!(matches!(err, GradError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("no gradient for node `%pooled = avg_pool(%x)`"), "{msg}");
    assert!(msg.contains("concrete sizes"), "{msg}");
}

#[test]
fn outputs_are_original_then_loss_then_named_gradients() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [2]).unwrap();
    let w = b.input("w", DType::F32, [2]).unwrap();
    let u = b.input("unused", DType::F32, [2]).unwrap();
    let y = b.mul(x, w).unwrap();
    b.set_name(y, "y").unwrap();
    let l = b.reduce_sum(y, &[0], false).unwrap();
    b.set_name(l, "loss").unwrap();
    b.output(y);
    b.output(u);
    let g = b.finish().unwrap();
    let ids: Vec<ValueId> = ["w", "x", "unused", "loss"].iter().map(|n| g.find(n).unwrap()).collect();
    let gg = grad(&g, g.find("loss").unwrap(), &ids).unwrap();
    let names: Vec<&str> = gg.outputs.iter().map(|&o| gg.name_of(o)).collect();
    assert_eq!(names, ["y", "unused", "loss", "grad_w", "grad_x", "grad_unused", "grad_loss"]);
    let out = nnc_interp::run(&gg, &[t(&[2], &[1.0, 2.0]), t(&[2], &[3.0, 4.0]), t(&[2], &[5.0, 6.0])]).unwrap();
    assert_eq!(out[3].to_f64_vec(), [1.0, 2.0]);
    assert_eq!(out[4].to_f64_vec(), [3.0, 4.0]);
    assert_eq!(out[5].to_f64_vec(), [0.0, 0.0]);
    assert_eq!(out[6].to_f64_vec(), [1.0]);
    // The backward graph is a graph like any other: it prints and parses back.
    let text = nnc_ir::text::print(&gg);
    assert_eq!(nnc_ir::text::parse(&text, "g.nnir").unwrap(), gg);
}

/// An MLP with a symbolic batch: `relu(x·w1 + b1)·w2 + b2`.
fn mlp(batch: Dim, hidden: usize, loss: &str) -> Graph {
    let mut b = GraphBuilder::new("mlp");
    let x = b.input("x", DType::F32, [batch.clone(), Dim::from(2)]).unwrap();
    let labels = b.input("labels", DType::I64, [batch]).unwrap();
    let w1 = b.input("w1", DType::F32, [2, hidden]).unwrap();
    let b1 = b.input("b1", DType::F32, [hidden]).unwrap();
    let w2 = b.input("w2", DType::F32, [hidden, 2]).unwrap();
    let b2 = b.input("b2", DType::F32, [2]).unwrap();
    let h = b.matmul(x, w1).unwrap();
    let h = b.add(h, b1).unwrap();
    let h = b.relu(h).unwrap();
    let o = b.matmul(h, w2).unwrap();
    let logits = b.add(o, b2).unwrap();
    b.set_name(logits, "logits").unwrap();
    let l = if loss == "ce" {
        softmax_cross_entropy(&mut b, logits, labels).unwrap()
    } else {
        let onehot_src = b.cast(labels, DType::F32).unwrap();
        let target = b.reshape(onehot_src, vec![b.ty(onehot_src).shape[0].clone(), Dim::from(1)]).unwrap();
        mse(&mut b, logits, target).unwrap()
    };
    b.set_name(l, "loss").unwrap();
    b.output(logits);
    b.output(l);
    b.finish().unwrap()
}

/// A linearly separable problem: class 1 iff `x0 + 2·x1 > 0.2`.
fn dataset(n: usize, seed: u64) -> (Vec<f64>, Vec<i64>) {
    let mut g = Gen::new(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    while y.len() < n {
        let (a, c) = (g.f(-1.0, 1.0), g.f(-1.0, 1.0));
        let m = a + 2.0 * c - 0.2;
        if m.abs() < 0.1 {
            continue; // a margin keeps it cleanly separable
        }
        x.extend([a, c]);
        y.push(i64::from(m > 0.0));
    }
    (x, y)
}

fn init_params(hidden: usize) -> Vec<TensorData> {
    let mut g = Gen::new(5);
    vec![
        t(&[2, hidden], &g.vals(&[2, hidden], -1.0, 1.0)),
        t(&[hidden], &vec![0.1; hidden]),
        t(&[hidden, 2], &g.vals(&[hidden, 2], -1.0, 1.0)),
        t(&[2], &[0.0, 0.0]),
    ]
}

#[test]
fn symbolic_batch_gradients_match_the_concrete_graph() {
    let (x, y) = dataset(6, 1);
    let inputs = |p: &[TensorData]| {
        let mut v = vec![t(&[6, 2], &x), TensorData::from_i64(DType::I64, vec![6], &y)];
        v.extend(p.iter().cloned());
        v
    };
    let params = init_params(4);
    let mut results = Vec::new();
    for batch in [Dim::sym("batch"), Dim::from(6)] {
        for loss in ["ce", "mse"] {
            let g = mlp(batch.clone(), 4, loss);
            let wrt: Vec<ValueId> = ["w1", "b1", "w2", "b2", "x"].iter().map(|n| g.find(n).unwrap()).collect();
            let gg = grad(&g, g.find("loss").unwrap(), &wrt).unwrap();
            results.push(nnc_interp::run(&gg, &inputs(&params)).unwrap());
        }
    }
    assert_eq!(results[0], results[2]);
    assert_eq!(results[1], results[3]);
}

fn accuracy(g: &Graph, x: &[f64], y: &[i64], params: &[TensorData]) -> f64 {
    let n = y.len();
    let mut inputs = vec![t(&[n, 2], x), TensorData::from_i64(DType::I64, vec![n], y)];
    inputs.extend(params.iter().cloned());
    let logits = nnc_interp::run(g, &inputs).unwrap()[0].to_f64_vec();
    let correct = (0..n).filter(|&i| i64::from(logits[2 * i + 1] > logits[2 * i]) == y[i]).count();
    correct as f64 / n as f64
}

/// Runs `steps` training steps through the interpreter; returns the losses and final params.
fn train(opt: Optimizer, steps: usize) -> (Vec<f64>, Vec<TensorData>, Graph) {
    let hidden = 8;
    let fwd = mlp(Dim::sym("batch"), hidden, "ce");
    let step = training_step(&fwd, "loss", &["w1", "b1", "w2", "b2"], &opt).unwrap();
    let (x, y) = dataset(64, 2);
    let mut params = init_params(hidden);
    let zeros = |p: &TensorData| TensorData::from_f64(DType::F32, p.shape().to_vec(), &vec![0.0; p.len()]);
    let mut state: Vec<TensorData> = match opt {
        Optimizer::Sgd { .. } => params.iter().map(zeros).collect(),
        Optimizer::Adam { .. } => {
            let mut s: Vec<TensorData> = params.iter().chain(&params).map(zeros).collect();
            s.push(t(&[], &[0.0]));
            s
        }
    };
    let mut losses = Vec::new();
    for _ in 0..steps {
        let mut inputs = vec![t(&[64, 2], &x), TensorData::from_i64(DType::I64, vec![64], &y)];
        inputs.extend(params.iter().cloned());
        inputs.extend(state.iter().cloned());
        let out = nnc_interp::run(&step, &inputs).unwrap();
        losses.push(out[0].to_f64_vec()[0]);
        params = out[1..5].to_vec();
        state = out[5..].to_vec();
    }
    (losses, params, fwd)
}

#[test]
fn training_step_has_the_documented_signature() {
    let fwd = mlp(Dim::sym("batch"), 3, "ce");
    let opt = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let step = training_step(&fwd, "loss", &["w2", "w1"], &opt).unwrap();
    let names = |ids: &[ValueId]| ids.iter().map(|&i| step.name_of(i).to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(&step.inputs),
        ["x", "labels", "b1", "b2", "w2", "w1", "w2.m", "w1.m", "w2.v", "w1.v", "adam.step"]
    );
    assert_eq!(
        names(&step.outputs),
        ["loss", "w2.next", "w1.next", "w2.m.next", "w1.m.next", "w2.v.next", "w1.v.next", "adam.step.next"]
    );
    let err = training_step(&fwd, "loss", &["logits"], &opt).unwrap_err().to_string();
    assert!(err.contains("parameter `logits` must be an input"), "{err}");
    let err = training_step(&fwd, "nope", &["w1"], &opt).unwrap_err().to_string();
    assert!(err.contains("the loss `nope` is not a value of graph `mlp`"), "{err}");
}

#[test]
fn sgd_step_matches_the_update_rule() {
    let fwd = mlp(Dim::sym("batch"), 4, "ce");
    let opt = Optimizer::Sgd { lr: 0.5, momentum: 0.9 };
    let step = training_step(&fwd, "loss", &["w1", "b1", "w2", "b2"], &opt).unwrap();
    let (x, y) = dataset(8, 3);
    let params = init_params(4);
    let mut g = Gen::new(11);
    let vel: Vec<TensorData> = params.iter().map(|p| t(p.shape(), &g.vals(p.shape(), -0.1, 0.1))).collect();
    let data = vec![t(&[8, 2], &x), TensorData::from_i64(DType::I64, vec![8], &y)];
    let mut inputs = data.clone();
    inputs.extend(params.iter().cloned());
    inputs.extend(vel.iter().cloned());
    let out = nnc_interp::run(&step, &inputs).unwrap();
    // The gradients from `grad` on the forward graph, applied by hand.
    let wrt: Vec<ValueId> = ["w1", "b1", "w2", "b2"].iter().map(|n| fwd.find(n).unwrap()).collect();
    let gg = grad(&fwd, fwd.find("loss").unwrap(), &wrt).unwrap();
    let mut fin = data;
    fin.extend(params.iter().cloned());
    let gout = nnc_interp::run(&gg, &fin).unwrap();
    assert_eq!(out[0], gout[2], "the loss");
    for k in 0..4 {
        let (p, v, gr) = (params[k].to_f64_vec(), vel[k].to_f64_vec(), gout[3 + k].to_f64_vec());
        let (np, nv) = (out[1 + k].to_f64_vec(), out[5 + k].to_f64_vec());
        for i in 0..p.len() {
            let want_v = 0.9 * v[i] + gr[i];
            assert!((nv[i] - want_v).abs() < 1e-6, "velocity {k}[{i}]");
            assert!((np[i] - (p[i] - 0.5 * want_v)).abs() < 1e-6, "param {k}[{i}]");
        }
    }
}

#[test]
fn mlp_trains_with_sgd_momentum() {
    let (losses, params, fwd) = train(Optimizer::Sgd { lr: 0.2, momentum: 0.9 }, 60);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.25 * first, "loss {first} -> {last}: {losses:?}");
    assert!(losses[30..].iter().sum::<f64>() < losses[..30].iter().sum::<f64>());
    let (x, y) = dataset(200, 9);
    let acc = accuracy(&fwd, &x, &y, &params);
    assert!(acc > 0.9, "test accuracy {acc}");
}

#[test]
fn mlp_trains_with_adam() {
    let (losses, params, fwd) = train(Optimizer::Adam { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 60);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.25 * first, "loss {first} -> {last}: {losses:?}");
    let (x, y) = dataset(200, 9);
    let acc = accuracy(&fwd, &x, &y, &params);
    assert!(acc > 0.9, "test accuracy {acc}");
}

/// Ties: binary max/min give the whole gradient to the first operand; reduce_max/min share it
/// equally between the tied elements; max_pool gives it to the first maximum.
#[test]
fn ties_are_resolved_as_documented() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DType::F32, [4]).unwrap();
    let z = b.input("z", DType::F32, [4]).unwrap();
    let m = b.max(x, z).unwrap();
    let s1 = b.reduce_sum(m, &[0], false).unwrap();
    let r = b.reduce(nnc_ir::ReduceKind::Max, x, &[0], false).unwrap();
    let x3 = b.reshape(x, vec![Dim::from(1), Dim::from(1), Dim::from(4)]).unwrap();
    let p = b.pool(PoolKind::Max, x3, vec![4], Window::unit(1)).unwrap();
    let p = b.reshape(p, Vec::<Dim>::new()).unwrap();
    let l = b.add(s1, r).unwrap();
    let l = b.add(l, p).unwrap();
    b.output(l);
    let g = b.finish().unwrap();
    let gg = grad(&g, g.outputs[0], &[g.inputs[0], g.inputs[1]]).unwrap();
    let out = nnc_interp::run(&gg, &[t(&[4], &[1.0, 3.0, 3.0, 0.0]), t(&[4], &[1.0, 1.0, 1.0, 1.0])]).unwrap();
    // max(x, z): ties (x = z = 1) go to x; reduce_max: 1/2 each; max_pool: the first 3.
    assert_eq!(out[2].to_f64_vec(), [1.0, 1.0 + 0.5 + 1.0, 1.0 + 0.5, 0.0]);
    assert_eq!(out[3].to_f64_vec(), [0.0, 0.0, 0.0, 1.0]);
}

/// Slices and concatenations of a symbolic axis, and a convolution with a symbolic batch.
#[test]
fn symbolic_slice_concat_and_conv_batch() {
    let mut b = GraphBuilder::new("g");
    let n = Dim::sym("n");
    let x = b.input("x", DType::F32, [n.clone(), Dim::from(1), Dim::from(5)]).unwrap();
    let w = b.input("w", DType::F32, [2, 1, 3]).unwrap();
    let head = b.slice_axis(x, 0, 1, i64::MAX).unwrap();
    let first = b.slice_axis(x, 0, 0, 1).unwrap();
    let c = b.concat(&[first, head, x], 0).unwrap();
    let y = b.conv(c, w, Window { strides: vec![2], dilations: vec![1], pads: vec![1, 1] }, 1).unwrap();
    let y2 = b.mul(y, y).unwrap();
    let l = b.reduce_sum(y2, &[0, 1, 2], false).unwrap();
    b.output(l);
    let g = b.finish().unwrap();
    let gg = grad(&g, g.outputs[0], &[g.inputs[0], g.inputs[1]]).unwrap();
    // Outputs: loss (original output), loss, grad_x, grad_w; checked at n = 3 against finite
    // differences (the loss is quadratic, so they are exact up to rounding).
    let mut gen = Gen::new(3);
    let (xv, wv) = (gen.vals(&[3, 1, 5], -1.0, 1.0), gen.vals(&[2, 1, 3], -1.0, 1.0));
    let out = nnc_interp::run(&gg, &[t(&[3, 1, 5], &xv), t(&[2, 1, 3], &wv)]).unwrap();
    let loss = |xv: &[f64], wv: &[f64]| {
        nnc_interp::run(&g, &[t(&[3, 1, 5], xv), t(&[2, 1, 3], wv)]).unwrap()[0].to_f64_vec()[0]
    };
    let h = 1e-2;
    for (k, &gk) in out[2].to_f64_vec().iter().enumerate() {
        let (mut p, mut m) = (xv.clone(), xv.clone());
        p[k] += h;
        m[k] -= h;
        let fd = (loss(&p, &wv) - loss(&m, &wv)) / (2.0 * h);
        assert!((gk - fd).abs() < 1e-2 * (1.0 + fd.abs()), "x[{k}]: {gk} vs {fd}");
    }
    for (k, &gk) in out[3].to_f64_vec().iter().enumerate() {
        let (mut p, mut m) = (wv.clone(), wv.clone());
        p[k] += h;
        m[k] -= h;
        let fd = (loss(&xv, &p) - loss(&xv, &m)) / (2.0 * h);
        assert!((gk - fd).abs() < 1e-2 * (1.0 + fd.abs()), "w[{k}]: {gk} vs {fd}");
    }
}
