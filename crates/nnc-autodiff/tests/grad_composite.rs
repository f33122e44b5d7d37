//! Gradient checks: composites (first order), and second order (grad of grad) for softmax,
//! layer norm and attention.

mod common;
use common::*;
use nnc_ir::{GeluApprox, GraphBuilder, IrError, Op, RnnCell, RnnDirection, TensorData, ValueId};
use proptest::prelude::*;

fn composite_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    let s = g.shape(1, 3, 4);
    let axis = g.usize(0, s.len() - 1) as i64;
    let v = g.vals(&s, -2.0, 2.0);
    cases.push(Case::new(format!("softmax {s:?} axis {axis}"), vec![f(&s, v.clone())], move |b, x| {
        Ok(vec![b.softmax(x[0], axis)?])
    }));
    cases.push(Case::new(format!("log_softmax {s:?} axis {axis}"), vec![f(&s, v)], move |b, x| {
        Ok(vec![b.log_softmax(x[0], axis)?])
    }));
    // layer_norm: scale and bias of shape [D] or [1, D]
    let s = vec![g.usize(1, 3), g.usize(2, 4)];
    let axis = g.usize(0, 1);
    let ps: Vec<usize> = if axis == 1 { vec![s[1]] } else { vec![1, s[1]] };
    let (vx, vs, vb) = (g.vals(&s, -2.0, 2.0), g.vals(&ps, 0.5, 1.5), g.vals(&ps, -1.0, 1.0));
    cases.push(Case::new(
        format!("layer_norm {s:?} axis {axis} params {ps:?}"),
        vec![f(&s, vx), f(&ps, vs), f(&ps, vb)],
        move |b, x| Ok(vec![b.layer_norm(x[0], x[1], x[2], axis as i64, 1e-3)?]),
    ));
    // batch_norm
    let s = vec![g.usize(1, 2), g.usize(1, 3), g.usize(1, 3)];
    let c = [s[1]];
    let inputs = vec![
        f(&s, g.vals(&s, -2.0, 2.0)),
        f(&c, g.vals(&c, 0.5, 1.5)),
        f(&c, g.vals(&c, -1.0, 1.0)),
        f(&c, g.vals(&c, -1.0, 1.0)),
        f(&c, g.vals(&c, 0.5, 2.0)),
    ];
    cases.push(Case::new(format!("batch_norm {s:?}"), inputs, |b, x| {
        Ok(vec![b.op1(Op::BatchNorm { epsilon: 1e-3 }, x)?])
    }));
    for approximate in [GeluApprox::None, GeluApprox::Tanh] {
        let s = g.shape(0, 2, 4);
        let v = g.vals(&s, -3.0, 3.0);
        cases.push(Case::new(format!("gelu {} {s:?}", approximate.name()), vec![f(&s, v)], move |b, x| {
            Ok(vec![b.gelu(x[0], approximate)?])
        }));
    }
    // attention: batch broadcasting, mask, causal, explicit scale, q = k = v
    let (lq, lk, d, dv) = (g.usize(1, 3), g.usize(1, 3), g.usize(1, 3), g.usize(1, 3));
    let causal = g.bool();
    let scale = if g.bool() { Some(0.7) } else { None };
    let qs = vec![2, lq, d];
    let ks = vec![1, lk, d];
    let vs = vec![lk, dv];
    let ms = vec![lq, lk];
    let inputs = vec![
        f(&qs, g.vals(&qs, -1.0, 1.0)),
        f(&ks, g.vals(&ks, -1.0, 1.0)),
        f(&vs, g.vals(&vs, -1.0, 1.0)),
        f(&ms, g.vals(&ms, -1.0, 0.0)),
    ];
    cases.push(Case::new(
        format!("attention q {qs:?} k {ks:?} v {vs:?} causal {causal} scale {scale:?}"),
        inputs,
        move |b, x| Ok(vec![b.attention(x[0], x[1], x[2], Some(x[3]), scale, causal)?]),
    ));
    let s = vec![2, g.usize(1, 3), g.usize(1, 3)];
    let v = g.vals(&s, -1.0, 1.0);
    cases.push(Case::new(format!("self-attention q = k = v {s:?}"), vec![f(&s, v)], move |b, x| {
        Ok(vec![b.attention(x[0], x[0], x[0], None, None, causal)?])
    }));
    cases
}

fn recurrent_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for cell in [RnnCell::Simple, RnnCell::Gru, RnnCell::Lstm] {
        let direction = g.pick(&[RnnDirection::Forward, RnnDirection::Reverse, RnnDirection::Bidirectional]);
        let (sq, bt, i, h) = (g.usize(1, 3), g.usize(1, 2), g.usize(1, 3), g.usize(1, 2));
        let dn = direction.count();
        let gh = cell.gates() * h;
        let mut shapes = vec![vec![sq, bt, i], vec![dn, gh, i], vec![dn, gh, h], vec![dn, 2 * gh], vec![dn, bt, h]];
        if cell == RnnCell::Lstm {
            shapes.push(vec![dn, bt, h]);
            shapes.push(vec![dn, 3 * h]);
        }
        let clip = if g.bool() { Some(5.0) } else { None };
        let input_forget = cell == RnnCell::Lstm && g.bool();
        let linear_before_reset = cell == RnnCell::Gru && g.bool();
        let op = Op::Recurrent { cell, hidden: h, direction, clip, input_forget, linear_before_reset };
        let inputs = shapes.iter().map(|s| f(s, g.vals(s, -1.0, 1.0))).collect();
        cases.push(Case::new(format!("{op:?} x [{sq}, {bt}, {i}]"), inputs, move |b, x| b.op(op.clone(), x)));
    }
    cases
}

/// `build` followed by its own gradient: the case's outputs are `d (Σ build(x)·r) / d x` for
/// every input, so checking the case checks grad of grad.
fn second_order(
    name: &str,
    inputs: Vec<Inp>,
    build: impl Fn(&mut GraphBuilder, &[ValueId]) -> Result<ValueId, IrError> + 'static,
) -> Case {
    Case::new(format!("second order: {name}"), inputs, move |b, x| {
        let y = build(b, x)?;
        let t = b.ty(y).clone();
        let shape: Vec<usize> = t.shape.iter().map(|d| d.as_usize().unwrap()).collect();
        let mut g = Gen::new(99);
        let r = g.vals(&shape, -1.0, 1.0);
        let r = b.constant(TensorData::from_f64(t.dtype, shape, &r));
        let p = b.mul(y, r)?;
        let axes: Vec<i64> = (0..t.rank() as i64).collect();
        let l = b.reduce_sum(p, &axes, false)?;
        nnc_autodiff::backward(b, l, x)
            .map_err(|e| IrError::Graph { graph: "second order".into(), message: e.to_string() })
    })
}

fn second_order_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    let s = vec![g.usize(1, 3), g.usize(2, 4)];
    let axis = g.usize(0, 1) as i64;
    cases.push(second_order(&format!("softmax {s:?} axis {axis}"), vec![f(&s, g.vals(&s, -2.0, 2.0))], move |b, x| {
        b.softmax(x[0], axis)
    }));
    let d = g.usize(2, 4);
    let s = vec![g.usize(1, 3), d];
    cases.push(second_order(
        &format!("layer_norm {s:?}"),
        vec![f(&s, g.vals(&s, -2.0, 2.0)), f(&[d], g.vals(&[d], 0.5, 1.5)), f(&[d], g.vals(&[d], -1.0, 1.0))],
        |b, x| b.layer_norm(x[0], x[1], x[2], -1, 1e-2),
    ));
    let (lq, lk, dd) = (g.usize(1, 3), g.usize(1, 3), g.usize(1, 3));
    let causal = g.bool();
    let inputs = vec![
        f(&[lq, dd], g.vals(&[lq, dd], -1.0, 1.0)),
        f(&[lk, dd], g.vals(&[lk, dd], -1.0, 1.0)),
        f(&[lk, 2], g.vals(&[lk, 2], -1.0, 1.0)),
    ];
    cases.push(second_order(&format!("attention lq {lq} lk {lk} d {dd} causal {causal}"), inputs, move |b, x| {
        b.attention(x[0], x[1], x[2], None, None, causal)
    }));
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn composites(seed in any::<u64>()) {
        check_all(composite_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn recurrent_layers(seed in any::<u64>()) {
        check_all(recurrent_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn second_order_softmax_layer_norm_attention(seed in any::<u64>()) {
        let cases = second_order_cases(&mut Gen::new(seed));
        let errors: Vec<String> = cases.iter().filter_map(|c| check_with(c, 10.0).err()).collect();
        prop_assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    }
}
