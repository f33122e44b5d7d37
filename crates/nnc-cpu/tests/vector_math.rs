//! Transcendentals that vector loops compute inline instead of calling the interpreter's `f64`
//! routine per lane (`exp`, `log`, `sigmoid`, `tanh`, `erf`): within the ulp bounds
//! `vmath` states of the correctly rounded result on a sweep of their whole range, with the
//! special values (±inf, NaN, zero, overflow, underflow) exact.
//! Both code generators are checked: Cranelift on 4 lanes, and LLVM (where built) on the
//! host's widest vectors.

use nnc_cpu::{CpuOptions, CpuProgram, EmitOptions};
use nnc_ir::{DType, GraphBuilder, TensorData, UnaryOp};
use nnc_kernel::Device;

/// Distance in units in the last place between two finite `f32`s of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
}

/// Runs `op` over `xs` (a multiple of 16, so the loop is vector code) with each code generator
/// and returns the worst ulp distance from `reference`, checking non-finite and zero results
/// exactly.
fn worst_ulps(op: UnaryOp, xs: &[f32], reference: impl Fn(f64) -> f64) -> u32 {
    let cranelift = (Device::cpu(), EmitOptions { llvm: false, ..EmitOptions::default() });
    let host = (nnc_cpu::jit_device(), EmitOptions::default());
    [cranelift, host]
        .into_iter()
        .map(|(device, emit)| worst_ulps_with(op, xs, &reference, &device, emit))
        .max()
        .unwrap()
}

fn worst_ulps_with(
    op: UnaryOp,
    xs: &[f32],
    reference: &impl Fn(f64) -> f64,
    device: &Device,
    emit: EmitOptions,
) -> u32 {
    let mut b = GraphBuilder::new("math");
    let x = b.input("x", DType::F32, [xs.len() as i64]).unwrap();
    let y = b.unary(op, x).unwrap();
    b.output(y);
    let graph = b.finish().unwrap();
    let program = nnc_lower::compile(&graph, device, None).unwrap();
    let program = CpuProgram::with_options(&program, &CpuOptions { emit, threads: None }).unwrap();
    assert!(program.vectorized_loops() > 0, "the loop is not vector code");
    let out = program.run(&[TensorData::from_vec(vec![xs.len()], xs)]).unwrap();
    let found: Vec<f32> = out[0].to_vec().unwrap();
    let mut worst = 0;
    for (&x, &f) in xs.iter().zip(&found) {
        let want = reference(x as f64) as f32;
        if want.is_nan() || !want.is_finite() || want == 0.0 || f == 0.0 || want.is_subnormal() {
            let same = (want.is_nan() && f.is_nan()) || want == f || (want.is_subnormal() && ulps(want, f) <= 2);
            assert!(same, "{op:?}({x}) = {f}, expected {want}");
            continue;
        }
        worst = worst.max(ulps(want, f));
    }
    worst
}

fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    let mut xs: Vec<f32> = (0..n).map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32).collect();
    xs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.72,
        88.73,
        -87.3,
        -103.0,
        -104.5,
        1e-8,
        -1e-8,
    ]);
    while !xs.len().is_multiple_of(16) {
        xs.push(1.0);
    }
    xs
}

#[test]
fn vector_exp_is_within_2_ulp() {
    let worst = worst_ulps(UnaryOp::Exp, &sweep(-110.0, 95.0, 200_000), f64::exp);
    assert!(worst <= 2, "exp: {worst} ulp");
}

#[test]
fn vector_erf_is_within_6_ulp() {
    let worst = worst_ulps(UnaryOp::Erf, &sweep(-6.0, 6.0, 100_000), nnc_interp::erf);
    assert!(worst <= 6, "erf: {worst} ulp");
}

/// Positive `f32`s from the smallest subnormal to the largest finite, spaced evenly in their bits
/// (so every binade gets its share), plus what [`sweep`] adds.
fn positive_sweep(n: usize) -> Vec<f32> {
    let top = f32::MAX.to_bits();
    let mut xs: Vec<f32> = (0..n).map(|i| f32::from_bits(1 + (top as u64 * i as u64 / n as u64) as u32)).collect();
    xs.extend(sweep(0.25, 4.0, 50_000));
    xs.extend([-1.0, -1e-30, f32::MIN_POSITIVE, 1e-40, 1.0]);
    while !xs.len().is_multiple_of(16) {
        xs.push(1.0);
    }
    xs
}

#[test]
fn vector_log_is_within_2_ulp() {
    let worst = worst_ulps(UnaryOp::Log, &positive_sweep(400_000), f64::ln);
    assert!(worst <= 2, "log: {worst} ulp");
}

#[test]
fn vector_sigmoid_is_within_3_ulp() {
    let worst = worst_ulps(UnaryOp::Sigmoid, &sweep(-110.0, 40.0, 200_000), |x| 1.0 / (1.0 + (-x).exp()));
    assert!(worst <= 3, "sigmoid: {worst} ulp");
}

#[test]
fn vector_tanh_is_within_2_ulp() {
    let mut xs = sweep(-12.0, 12.0, 200_000);
    xs.extend(sweep(-0.7, 0.7, 100_000));
    let worst = worst_ulps(UnaryOp::Tanh, &xs, f64::tanh);
    assert!(worst <= 2, "tanh: {worst} ulp");
}
