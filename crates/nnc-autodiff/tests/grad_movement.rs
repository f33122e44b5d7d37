//! Gradient checks: data movement, gathers and scatters, resize.

mod common;
use common::*;
use nnc_ir::{CoordMode, Dim, NearestMode, Op, PadMode, ResizeAttrs, ResizeMode, ScatterReduction};
use proptest::prelude::*;

fn movement_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    // reshape
    let s = g.shape(1, 3, 3);
    let n: usize = s.iter().product();
    let v = g.vals(&s, -1.0, 1.0);
    cases.push(Case::new(format!("reshape {s:?}"), vec![f(&s, v)], move |b, x| {
        Ok(vec![b.reshape(x[0], vec![Dim::from(n)])?])
    }));
    // transpose
    let s = g.shape(1, 4, 3);
    let mut perm: Vec<usize> = (0..s.len()).collect();
    for i in (1..perm.len()).rev() {
        let j = g.usize(0, i);
        perm.swap(i, j);
    }
    let v = g.vals(&s, -1.0, 1.0);
    cases.push(Case::new(format!("transpose {s:?} {perm:?}"), vec![f(&s, v)], move |b, x| {
        Ok(vec![b.transpose(x[0], perm.clone())?])
    }));
    // expand: new leading axes and 1 -> n
    let s = vec![g.usize(1, 3), 1];
    let target = vec![2, s[0], 3];
    let v = g.vals(&s, -1.0, 1.0);
    cases.push(Case::new(format!("expand {s:?} to {target:?}"), vec![f(&s, v)], move |b, x| {
        Ok(vec![b.expand(x[0], dims(&target))?])
    }));
    // slice: random steps including negative ones
    let s = g.shape(1, 3, 5);
    let mut axes = Vec::new();
    let (mut starts, mut ends, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    for (a, &len) in s.iter().enumerate() {
        let len = len as i64;
        if g.bool() {
            continue;
        }
        axes.push(a);
        let step = g.pick(&[1i64, 1, 2, 3, -1, -2]);
        starts.push(g.int(-len - 1, len));
        let e = g.int(-len, len + 1);
        ends.push(g.pick(&[i64::MAX, i64::MIN, e, e]));
        steps.push(step);
    }
    let v = g.vals(&s, -1.0, 1.0);
    let name = format!("slice {s:?} axes {axes:?} starts {starts:?} ends {ends:?} steps {steps:?}");
    cases.push(Case::new(name, vec![f(&s, v)], move |b, x| {
        Ok(vec![b.op1(
            Op::Slice { axes: axes.clone(), starts: starts.clone(), ends: ends.clone(), steps: steps.clone() },
            &[x[0]],
        )?])
    }));
    // concat of 1-3 operands (the same value twice too)
    let s = g.shape(1, 3, 3);
    let axis = g.usize(0, s.len() - 1);
    let k = g.usize(1, 3);
    let mut inputs = Vec::new();
    for _ in 0..k {
        let mut si = s.clone();
        si[axis] = g.usize(1, 3);
        inputs.push(f(&si, g.vals(&si, -1.0, 1.0)));
    }
    cases.push(Case::new(format!("concat {k} x {s:?} axis {axis}"), inputs, move |b, x| {
        let mut xs = x.to_vec();
        xs.push(x[0]);
        Ok(vec![b.concat(&xs, axis as i64)?])
    }));
    // pad: every mode, negative pads (crops) too
    for mode in [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap] {
        let s = g.shape(1, 3, 4);
        let pads: Vec<i64> = (0..2 * s.len()).map(|i| g.int(-((s[i % s.len()] as i64 - 1) / 2), 4)).collect();
        let v = g.vals(&s, -1.0, 1.0);
        cases.push(Case::new(format!("pad {} {s:?} {pads:?}", mode.name()), vec![f(&s, v)], move |b, x| {
            Ok(vec![b.pad(x[0], pads.clone(), mode, 0.5)?])
        }));
    }
    cases
}

/// Data and update values for a scatter with `reduction`: products stay away from zero, and for
/// `max`/`min` the data lie on multiples of 0.1 and the updates are distinct points halfway
/// between (shuffled), so no two values that can meet at one position are within a
/// finite-difference step of each other: a near tie makes the difference quotient straddle the
/// kink, and an exact tie of three splits the gradient unlike the one-sided differences.
fn scatter_values(g: &mut Gen, reduction: ScatterReduction, data: &[usize], upd: &[usize]) -> (Vec<f64>, Vec<f64>) {
    match reduction {
        ScatterReduction::Mul => (g.signed(data, 0.5, 1.5), g.signed(upd, 0.5, 1.5)),
        ScatterReduction::Max | ScatterReduction::Min => {
            let d = g.vals(data, -1.0, 1.0).into_iter().map(|x| (x * 10.0).round() / 10.0).collect();
            let n: usize = upd.iter().product();
            let mut u: Vec<f64> = (0..n as i64).map(|k| (k - n as i64 / 2) as f64 / 10.0 + 0.05).collect();
            for i in (1..n).rev() {
                u.swap(i, g.usize(0, i));
            }
            (d, u)
        }
        _ => (g.vals(data, -1.0, 1.0), g.vals(upd, -1.0, 1.0)),
    }
}

fn indexing_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    // gather and scatter_add (repeated and negative indices)
    let s = g.shape(1, 3, 4);
    let axis = g.usize(0, s.len() - 1);
    let is = g.shape(0, 2, 3);
    let n = s[axis] as i64;
    let iv: Vec<i64> = (0..is.iter().product::<usize>()).map(|_| g.int(-n, n - 1)).collect();
    let v = g.vals(&s, -1.0, 1.0);
    let mut us = s[..axis].to_vec();
    us.extend(&is);
    us.extend(&s[axis + 1..]);
    let uv = g.vals(&us, -1.0, 1.0);
    cases.push(Case::new(
        format!("gather {s:?} axis {axis} idx {is:?}"),
        vec![f(&s, v.clone()), idx(&is, iv.clone())],
        move |b, x| Ok(vec![b.gather(x[0], x[1], axis as i64)?]),
    ));
    cases.push(Case::new(
        format!("scatter_add {s:?} axis {axis} idx {is:?}"),
        vec![f(&s, v), idx(&is, iv), f(&us, uv)],
        move |b, x| Ok(vec![b.op1(Op::ScatterAdd { axis }, &[x[0], x[1], x[2]])?]),
    ));
    // gather_elements / scatter_elements with every reduction
    let s = g.shape(1, 3, 3);
    let axis = g.usize(0, s.len() - 1);
    let is: Vec<usize> =
        s.iter().enumerate().map(|(a, &d)| if a == axis { g.usize(1, 4) } else { g.usize(1, d) }).collect();
    let n = s[axis] as i64;
    let iv: Vec<i64> = (0..is.iter().product::<usize>()).map(|_| g.int(-n, n - 1)).collect();
    let v = g.vals(&s, -1.0, 1.0);
    cases.push(Case::new(
        format!("gather_elements {s:?} axis {axis} idx {is:?}"),
        vec![f(&s, v), idx(&is, iv.clone())],
        move |b, x| Ok(vec![b.op1(Op::GatherElements { axis }, &[x[0], x[1]])?]),
    ));
    for &reduction in ScatterReduction::ALL {
        let (vd, vu) = scatter_values(g, reduction, &s, &is);
        cases.push(Case::new(
            format!("scatter_elements {} {s:?} axis {axis} idx {is:?} {iv:?}", reduction.name()),
            vec![f(&s, vd), idx(&is, iv.clone()), f(&is, vu)],
            move |b, x| Ok(vec![b.op1(Op::ScatterElements { axis, reduction }, &[x[0], x[1], x[2]])?]),
        ));
    }
    // gather_nd with batch dims 0 and 1, scatter_nd with every reduction
    let ds = vec![g.usize(1, 3), g.usize(1, 3), g.usize(1, 3)];
    for batch_dims in [0usize, 1] {
        let m = g.usize(1, 3 - batch_dims);
        let mut is = ds[..batch_dims].to_vec();
        is.push(g.usize(1, 3));
        is.push(m);
        let count: usize = is.iter().product();
        let iv: Vec<i64> = (0..count)
            .map(|k| {
                let a = batch_dims + k % m;
                let n = ds[a] as i64;
                g.int(-n, n - 1)
            })
            .collect();
        let v = g.vals(&ds, -1.0, 1.0);
        cases.push(Case::new(
            format!("gather_nd {ds:?} idx {is:?} batch_dims {batch_dims}"),
            vec![f(&ds, v), idx(&is, iv)],
            move |b, x| Ok(vec![b.op1(Op::GatherNd { batch_dims }, &[x[0], x[1]])?]),
        ));
    }
    for &reduction in ScatterReduction::ALL {
        let m = g.usize(1, 3);
        let is = vec![g.usize(1, 3), m];
        let iv: Vec<i64> = (0..is[0] * m)
            .map(|k| {
                let n = ds[k % m] as i64;
                g.int(-n, n - 1)
            })
            .collect();
        let mut us = vec![is[0]];
        us.extend(&ds[m..]);
        let (vd, vu) = scatter_values(g, reduction, &ds, &us);
        cases.push(Case::new(
            format!("scatter_nd {} {ds:?} idx {is:?} {iv:?}", reduction.name()),
            vec![f(&ds, vd), idx(&is, iv), f(&us, vu)],
            move |b, x| Ok(vec![b.op1(Op::ScatterNd { reduction }, &[x[0], x[1], x[2]])?]),
        ));
    }
    cases
}

fn resize_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for mode in [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic] {
        let coord = g.pick(&[
            CoordMode::HalfPixel,
            CoordMode::HalfPixelSymmetric,
            CoordMode::PytorchHalfPixel,
            CoordMode::AlignCorners,
            CoordMode::Asymmetric,
            CoordMode::TfCropAndResize,
        ]);
        let s = vec![g.usize(1, 2), g.usize(1, 4), g.usize(2, 4)];
        let axes = if g.bool() { vec![1, 2] } else { vec![2] };
        let sizes: Vec<i64> = axes.iter().map(|_| g.int(1, 6)).collect();
        let scales: Vec<f64> = axes.iter().zip(&sizes).map(|(&a, &o)| o as f64 / s[a] as f64).collect();
        let mut roi: Vec<f64> = axes.iter().map(|_| 0.1).collect();
        roi.extend(axes.iter().map(|_| 0.8));
        let antialias = mode != ResizeMode::Nearest && g.bool();
        let exclude_outside = mode != ResizeMode::Nearest && g.bool();
        let attrs = ResizeAttrs {
            mode,
            coordinate_transformation_mode: coord,
            nearest_mode: g.pick(&[
                NearestMode::RoundPreferFloor,
                NearestMode::RoundPreferCeil,
                NearestMode::Floor,
                NearestMode::Ceil,
            ]),
            cubic_coeff_a: -0.75,
            exclude_outside,
            extrapolation_value: 2.0,
            antialias,
            axes,
            sizes,
            scales,
            roi,
        };
        let v = g.vals(&s, -1.0, 1.0);
        cases.push(Case::new(format!("resize {s:?} {attrs:?}"), vec![f(&s, v)], move |b, x| {
            Ok(vec![b.op1(Op::Resize(attrs.clone()), &[x[0]])?])
        }));
    }
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reshape_transpose_expand_slice_concat_pad(seed in any::<u64>()) {
        check_all(movement_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn gathers_and_scatters(seed in any::<u64>()) {
        check_all(indexing_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn resize_every_mode(seed in any::<u64>()) {
        check_all(resize_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }
}
