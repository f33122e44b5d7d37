//! Random graphs in the configurations the CPU backend's suite line (`suite.rs`: the registry's
//! target, LLVM for the host's widest vectors) does not run: Cranelift alone, with kernels
//! scheduled for 128-bit vectors (what runs where LLVM is missing), on every graph family of the
//! test kit and its fixed graphs; and casts and integer arithmetic in both configurations. Each
//! run is compared with the graph interpreter and with the Kernel-IR interpreter.
//!
//! The random graphs are built from a seed (printed with the graph on failure), so a failing
//! case is reproduced by calling the family's builder with that seed.

use nnc_cpu::{CpuBackend, CpuOptions, EmitOptions};
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder, UnaryOp, Window};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_testkit::check::{check_on, compile_for, dump, Oracles};
use nnc_testkit::families::{family, pick};
use nnc_testkit::graphs::{dims, elementwise_chain, fixed_graphs};
use nnc_testkit::inputs::{inputs_for, Rng};
use nnc_testkit::suite::for_random_seeds;
use nnc_testkit::NonFinite;

/// Random graphs per family (`PROPTEST_CASES` overrides it).
const CASES: u32 = 64;

/// Cranelift alone, with kernels scheduled for 128-bit vectors.
fn cranelift() -> (CpuBackend, Device) {
    let emit = EmitOptions { llvm: false, ..EmitOptions::default() };
    (CpuBackend { options: CpuOptions { emit, threads: None } }, Device::cpu())
}

/// The registry's configuration: LLVM for the host's widest vectors (where built).
fn host() -> (CpuBackend, Device) {
    (CpuBackend { options: CpuOptions::default() }, nnc_cpu::jit_device())
}

/// `graph` in `configuration` against both interpreters; the error names the graph.
fn check(
    configuration: &(CpuBackend, Device),
    graph: &Graph,
    inputs: &[nnc_ir::TensorData],
) -> Result<Program, String> {
    let (backend, device) = configuration;
    check_on(backend, device, graph, inputs, Oracles::Both, NonFinite::Ieee)
}

/// `CASES` random graphs of the family named `name`, with Cranelift alone.
fn family_on_cranelift(name: &str) {
    let build = family(name);
    for_random_seeds(CASES, |seed| {
        let graph = build(seed);
        let inputs = inputs_for(&graph, seed.wrapping_add(1));
        check(&cranelift(), &graph, &inputs).map(|_| ()).map_err(|e| format!("{name}({seed:#x}) on cranelift: {e}"))
    });
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

#[test]
fn elementwise_dags_match_the_interpreters_on_cranelift() {
    family_on_cranelift("elementwise_dag");
}

#[test]
fn reductions_match_the_interpreters_on_cranelift() {
    family_on_cranelift("reduction");
}

#[test]
fn composites_match_the_interpreters_on_cranelift() {
    family_on_cranelift("composite");
}

#[test]
fn matmuls_match_the_interpreters_on_cranelift() {
    family_on_cranelift("matmul");
}

#[test]
fn integer_matmuls_match_the_interpreters_on_cranelift() {
    family_on_cranelift("integer_matmul");
}

/// Kernels scheduled for `u8 × i8` dot products (reductions four steps at a time) run where
/// LLVM cannot emit the instruction: Cranelift computes the same sums element by element.
#[test]
fn integer_matmuls_grouped_for_dot_products_match_the_interpreters_on_cranelift() {
    let (backend, device) = cranelift();
    let configuration = (backend, Device { int8_dot: true, ..device });
    let build = family("integer_matmul");
    for_random_seeds(CASES, |seed| {
        let graph = build(seed);
        let inputs = inputs_for(&graph, seed.wrapping_add(1));
        check(&configuration, &graph, &inputs).map(|_| ()).map_err(|e| format!("integer_matmul({seed:#x}): {e}"))
    });
}

#[test]
fn convs_match_the_interpreters_on_cranelift() {
    family_on_cranelift("conv");
}

#[test]
fn pools_match_the_interpreters_on_cranelift() {
    family_on_cranelift("pool");
}

#[test]
fn movement_matches_the_interpreters_on_cranelift() {
    family_on_cranelift("movement");
}

#[test]
fn blocks_match_the_interpreters_on_cranelift() {
    family_on_cranelift("block");
}

/// `cases` graphs `build` makes from random seeds, each in both configurations (Cranelift
/// alone, and LLVM for the host's widest vectors); failures name `name` and the seed.
fn in_both_configurations(name: &str, cases: u32, build: fn(u64) -> Graph) {
    for_random_seeds(cases, |seed| {
        let graph = build(seed);
        let inputs = inputs_for(&graph, seed.wrapping_add(1));
        for (configuration_name, configuration) in [("cranelift", cranelift()), ("llvm", host())] {
            check(&configuration, &graph, &inputs)
                .map_err(|e| format!("{name}({seed:#x}) on {configuration_name}: {e}"))?;
        }
        Ok(())
    });
}

#[test]
fn casts_and_ints_match_the_interpreters_in_both_configurations() {
    in_both_configurations("casts_and_ints", CASES, casts_and_ints);
}

#[test]
fn fixed_graphs_match_the_interpreters_on_cranelift() {
    for g in fixed_graphs() {
        let inputs = inputs_for(&g, 5);
        check(&cranelift(), &g, &inputs).unwrap_or_else(|e| panic!("{}: {e}", g.name));
    }
}

#[test]
fn straight_line_f32_loops_become_vector_code() {
    let g = elementwise_chain();
    let program = compile_for(&g, &Device::cpu());
    let native = nnc_cpu::CpuProgram::new(&program).unwrap();
    assert!(native.vectorized_loops() >= 1, "{}", dump(&program));
}

/// Feature maps of 64 to 96 channels and small spatial extents (whose trailing axes kernels
/// merge into rows that fill vectors): a 1x1 convolution of few channels with a SiLU, a
/// depthwise 3x3 convolution, and an elementwise product broadcasting a per-channel gate.
fn small_feature_maps(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let (c, m) = (8 + rng.below(25), 64 + rng.below(33));
    let (h, w) = (3 + rng.below(10), 3 + rng.below(14));
    let mut b = GraphBuilder::new("small_feature_maps");
    let x = b.input("x", DType::F32, dims(&[1, c, h, w])).unwrap();
    let pointwise = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
    let wt = nnc_testkit::graphs::weight(&mut b, seed ^ 3, &[m, c, 1, 1]);
    let y = b.conv(x, wt, pointwise, 1).unwrap();
    let s = b.unary(UnaryOp::Sigmoid, y).unwrap();
    let y = b.mul(y, s).unwrap();
    let depthwise = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1; 4] };
    let wd = nnc_testkit::graphs::weight(&mut b, seed ^ 4, &[m, 1, 3, 3]);
    let y = b.conv(y, wd, depthwise, m as i64).unwrap();
    let gate = nnc_testkit::graphs::weight(&mut b, seed ^ 5, &[1, m, 1, 1]);
    let y = b.mul(y, gate).unwrap();
    b.output(y);
    b.finish().unwrap()
}

#[test]
fn small_feature_maps_match_the_interpreters_in_both_configurations() {
    in_both_configurations("small_feature_maps", 16, small_feature_maps);
}

/// YOLOv8's distribution head: a softmax over 16 bins, weighted and summed, for each of four
/// box sides at every position (rows of 16 to 80 positions). Each position's sum reads its
/// softmax's maximum and total, which vector lanes over the positions carry as well.
fn softmax_expectation(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let positions = 16 + rng.below(65);
    let mut b = GraphBuilder::new("softmax_expectation");
    let x = b.input("x", DType::F32, dims(&[1, 4, 16, positions])).unwrap();
    let p = b.softmax(x, 2).unwrap();
    let w = nnc_testkit::graphs::weight(&mut b, seed ^ 7, &[1, 1, 16, 1]);
    let y = b.mul(p, w).unwrap();
    let y = b.reduce(nnc_ir::ReduceKind::Sum, y, &[2], false).unwrap();
    b.output(y);
    b.finish().unwrap()
}

#[test]
fn softmax_expectations_match_the_interpreters_in_both_configurations() {
    in_both_configurations("softmax_expectation", 16, softmax_expectation);
}
