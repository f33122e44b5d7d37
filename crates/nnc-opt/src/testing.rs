//! Helpers for the rules' unit tests: optimize a small `.nnir` graph with one rule and check the
//! rule changed it as expected, and that the interpreter agrees on both graphs.

use crate::{optimize, OptOptions, Optimized};
use nnc_ir::{text, DType, Graph, TensorData};

/// Parses `src`, optimizes it with only `rule` (preferring rewritten e-nodes), and checks the
/// rule was applied and each of `expect` is a line (or part of a line) of the printed result.
pub fn assert_rule(rule: &str, src: &str, expect: &[&str]) -> Optimized {
    let g = text::parse(src, "test.nnir").unwrap_or_else(|e| panic!("{e}"));
    let opt = optimize(&g, &OptOptions { prefer_rewrites: true, ..OptOptions::only(rule) })
        .unwrap_or_else(|e| panic!("{rule}: {e}"));
    let printed = text::print(&opt.graph);
    assert!(opt.applied.iter().any(|(n, c)| *n == rule && *c > 0), "{rule} was not applied; result:\n{printed}");
    for e in expect {
        assert!(printed.contains(e), "{rule}: expected `{e}` in\n{printed}");
    }
    agree(&g, &opt.graph, 1e-5);
    // And the default cost model never makes it worse.
    let plain = optimize(&g, &OptOptions::only(rule)).unwrap_or_else(|e| panic!("{rule}: {e}"));
    assert!(plain.cost_after.total(&Default::default()) <= plain.cost_before.total(&Default::default()));
    opt
}

/// Checks that `rule` does not change `src`.
pub fn assert_not_applied(rule: &str, src: &str) {
    let g = text::parse(src, "test.nnir").unwrap_or_else(|e| panic!("{e}"));
    let opt = optimize(&g, &OptOptions { prefer_rewrites: true, ..OptOptions::only(rule) })
        .unwrap_or_else(|e| panic!("{rule}: {e}"));
    assert!(opt.fired.is_empty(), "{rule} fired on\n{src}\ngiving\n{}", text::print(&opt.graph));
}

/// Deterministic inputs for a graph with concrete input shapes (symbols count as 3).
pub fn inputs_for(g: &Graph, seed: u64) -> Vec<TensorData> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / ((1u64 << 31) as f64)
    };
    g.inputs
        .iter()
        .map(|&id| {
            let ty = g.ty(id);
            let shape: Vec<usize> = ty.shape.iter().map(|d| d.as_usize().unwrap_or(3)).collect();
            let n: usize = shape.iter().product();
            let vals: Vec<f64> = (0..n)
                .map(|_| {
                    let u = next();
                    if ty.dtype.is_float() {
                        u * 6.0 - 3.0
                    } else if ty.dtype == DType::Bool {
                        (u < 0.5) as u8 as f64
                    } else if ty.dtype.is_unsigned_int() {
                        (u * 20.0).floor()
                    } else {
                        (u * 20.0).floor() - 10.0
                    }
                })
                .collect();
            TensorData::from_f64(ty.dtype, shape, &vals)
        })
        .collect()
}

/// Runs both graphs on the same inputs and checks they agree within `rtol` (relative, with an
/// absolute floor of `rtol` too); integers exactly.
pub fn agree(a: &Graph, b: &Graph, rtol: f64) {
    let inputs = inputs_for(a, 7);
    let (Ok(ra), rb) = (nnc_interp::run(a, &inputs), nnc_interp::run(b, &inputs)) else { return };
    let rb = rb.unwrap_or_else(|e| panic!("the original runs, the optimized fails: {e}\n{}", text::print(b)));
    for (x, y) in ra.iter().zip(&rb) {
        if let Err(m) = close(x, y, rtol) {
            panic!("{m}\noriginal:\n{}\noptimized:\n{}", text::print(a), text::print(b));
        }
    }
}

/// `Ok` if the tensors have one type and close values.
pub fn close(x: &TensorData, y: &TensorData, rtol: f64) -> Result<(), String> {
    if x.dtype() != y.dtype() || x.shape() != y.shape() {
        return Err(format!("types differ: {x:?} and {y:?}"));
    }
    if x.dtype().is_float() {
        for (i, (p, q)) in x.to_f64_vec().into_iter().zip(y.to_f64_vec()).enumerate() {
            let ok = (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= rtol * (1.0 + p.abs().max(q.abs()));
            if !ok {
                return Err(format!("element {i}: {p} vs {q}"));
            }
        }
    } else if x.to_i64_vec() != y.to_i64_vec() {
        return Err(format!("integers differ: {:?} vs {:?}", x.to_i64_vec(), y.to_i64_vec()));
    }
    Ok(())
}
