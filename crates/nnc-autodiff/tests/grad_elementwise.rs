//! Gradient checks: elementwise ops, select, cast, reductions, cumulative, top-k.

mod common;
use common::*;
use nnc_ir::{ArgKind, BinaryOp, CumKind, DType, Op, ReduceKind, UnaryOp};
use proptest::prelude::*;

/// A shape and a second shape that broadcasts against it (leading axes dropped, some axes 1).
fn broadcast_pair(rng: &mut Gen) -> (Vec<usize>, Vec<usize>) {
    let a = rng.shape(1, 3, 3);
    let drop = rng.usize(0, a.len());
    let mut b: Vec<usize> = a[drop..].to_vec();
    for d in b.iter_mut() {
        if rng.usize(0, 2) == 0 {
            *d = 1;
        }
    }
    if rng.bool() {
        (a, b)
    } else {
        (b, a)
    }
}

fn unary_domain(u: UnaryOp) -> (f64, f64, bool) {
    use UnaryOp::*;
    match u {
        Log | Sqrt | Rsqrt => (0.3, 2.0, false),
        Reciprocal => (0.3, 2.0, true),
        Asin | Acos | Atanh => (-0.8, 0.8, false),
        Acosh => (1.2, 3.0, false),
        Tan => (-1.2, 1.2, false),
        Abs | Relu | Sign => (0.05, 2.0, true),
        _ => (-2.0, 2.0, false),
    }
}

fn unary_cases(rng: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for &u in UnaryOp::ALL {
        if matches!(u, UnaryOp::Not | UnaryOp::IsNan | UnaryOp::IsInf) {
            continue;
        }
        let shape = rng.shape(0, 3, 4);
        let (lo, hi, signed) = unary_domain(u);
        let mut v = if signed { rng.signed(&shape, lo, hi) } else { rng.vals(&shape, lo, hi) };
        if matches!(u, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round) {
            // Fractions kept within [0.1, 0.4]: finite differences across a step (an integer,
            // or a half for `round`) are not the zero gradient of a piecewise-constant op.
            for x in &mut v {
                *x = x.floor() + 0.1 + 0.3 * (*x - x.floor());
            }
        }
        cases.push(Case::new(u.name(), vec![f(&shape, v)], move |b, x| Ok(vec![b.unary(u, x[0])?])));
    }
    cases
}

fn binary_cases(rng: &mut Gen) -> Vec<Case> {
    use BinaryOp::*;
    let mut cases = Vec::new();
    for op in [Add, Sub, Mul, Div, Rem, Pow, Max, Min] {
        let (sa, sb) = broadcast_pair(rng);
        let (va, vb) = match op {
            Div => (rng.vals(&sa, -2.0, 2.0), rng.signed(&sb, 0.5, 2.0)),
            Rem => (rng.vals(&sa, -3.0, 3.0), rng.signed(&sb, 0.7, 1.5)),
            Pow => (rng.vals(&sa, 0.5, 2.0), rng.vals(&sb, -2.0, 2.0)),
            Max | Min => {
                let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
                let mut both = rng.distinct(na + nb, -2.0, 2.0);
                let vb = both.split_off(na);
                (both, vb)
            }
            _ => (rng.vals(&sa, -2.0, 2.0), rng.vals(&sb, -2.0, 2.0)),
        };
        let name = format!("{} {sa:?} {sb:?}", op.name());
        cases.push(Case::new(name, vec![f(&sa, va), f(&sb, vb)], move |b, x| Ok(vec![b.binary(op, x[0], x[1])?])));
    }
    // The same value on both sides: contributions add up.
    let s = rng.shape(1, 2, 3);
    let v = rng.vals(&s, 0.5, 2.0);
    cases.push(Case::new("mul(x, x) / pow(x, x)", vec![f(&s, v)], |b, x| {
        let m = b.mul(x[0], x[0])?;
        let p = b.binary(Pow, x[0], x[0])?;
        Ok(vec![m, p])
    }));
    cases
}

fn other_cases(rng: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    // select with broadcasting of all three operands
    let (sa, sb) = broadcast_pair(rng);
    let sc: Vec<usize> = sa.iter().rev().take(1).copied().collect();
    let cond: Vec<i64> = (0..sc.iter().product::<usize>()).map(|_| rng.int(0, 1)).collect();
    let (va, vb) = (rng.vals(&sa, -1.0, 1.0), rng.vals(&sb, -1.0, 1.0));
    cases.push(Case::new(
        format!("select {sc:?} {sa:?} {sb:?}"),
        vec![Inp::Other(DType::Bool, sc, cond), f(&sa, va), f(&sb, vb)],
        |b, x| Ok(vec![b.select(x[0], x[1], x[2])?]),
    ));
    // cast between floats; casts through integers and argmax/comparisons carry no gradient
    let s = rng.shape(1, 3, 3);
    let v = rng.vals(&s, -3.0, 3.0);
    cases.push(Case::new("cast f64 / cast i64 / argmax / comparison", vec![f(&s, v)], |b, x| {
        let dt = b.ty(x[0]).dtype;
        let wide = b.cast(x[0], DType::F64)?;
        let sq = b.mul(wide, wide)?;
        let i = b.cast(x[0], DType::I64)?;
        let back = b.cast(i, dt)?;
        let am = b.argmax(x[0], 0, true)?;
        let am = b.cast(am, dt)?;
        let z = b.scalar(dt, 0.0);
        let pos = b.binary(BinaryOp::Gt, x[0], z)?;
        let pos = b.cast(pos, dt)?;
        let am_min =
            b.op1(Op::ArgReduce { kind: ArgKind::Min, axis: 0, keep_dims: false, select_last: true }, &[x[0]])?;
        let am_min = b.cast(am_min, dt)?;
        Ok(vec![sq, back, am, pos, am_min])
    }));
    cases
}

fn reduce_cases(rng: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for &kind in ReduceKind::ALL {
        let shape = rng.shape(1, 3, 4);
        let axes: Vec<i64> = (0..shape.len() as i64).filter(|_| rng.bool()).collect();
        let keep = rng.bool();
        let n = shape.iter().product();
        let mut v = match kind {
            ReduceKind::Prod => rng.signed(&shape, 0.5, 1.5),
            ReduceKind::Max | ReduceKind::Min => rng.distinct(n, -2.0, 2.0),
            _ => rng.vals(&shape, -2.0, 2.0),
        };
        if kind == ReduceKind::Prod && rng.bool() {
            v[0] = 0.0; // exact zeros are handled
        }
        let name = format!("reduce_{} {shape:?} axes {axes:?} keep {keep}", kind.name());
        cases.push(Case::new(name, vec![f(&shape, v)], move |b, x| Ok(vec![b.reduce(kind, x[0], &axes, keep)?])));
    }
    cases
}

fn cumulative_cases(rng: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for &kind in CumKind::ALL {
        for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
            let shape = rng.shape(1, 3, 4);
            let axis = rng.usize(0, shape.len() - 1);
            let v = if kind == CumKind::Prod { rng.signed(&shape, 0.5, 1.5) } else { rng.vals(&shape, -2.0, 2.0) };
            let name =
                format!("cumulative {} {shape:?} axis {axis} exclusive {exclusive} reverse {reverse}", kind.name());
            cases.push(Case::new(name, vec![f(&shape, v)], move |b, x| {
                Ok(vec![b.op1(Op::Cumulative { axis, kind, exclusive, reverse }, &[x[0]])?])
            }));
        }
    }
    let shape = rng.shape(1, 3, 4);
    let axis = rng.usize(0, shape.len() - 1);
    let k = rng.usize(0, shape[axis]);
    let largest = rng.bool();
    let v = rng.distinct(shape.iter().product(), -2.0, 2.0);
    cases.push(Case::new(
        format!("topk {shape:?} axis {axis} k {k} largest {largest}"),
        vec![f(&shape, v)],
        move |b, x| b.op(Op::TopK { axis, k, largest }, &[x[0]]),
    ));
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unary_ops(seed in any::<u64>()) {
        check_all(unary_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn binary_ops_with_broadcasting(seed in any::<u64>()) {
        check_all(binary_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn select_cast_and_non_differentiable(seed in any::<u64>()) {
        check_all(other_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn reductions(seed in any::<u64>()) {
        check_all(reduce_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn cumulative_and_topk(seed in any::<u64>()) {
        check_all(cumulative_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }
}
