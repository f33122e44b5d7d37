//! Native code matches the graph interpreter: random graphs of static shape (the graph families
//! of nnc-kernel's tests, `common/families.rs`, plus casts and integer arithmetic) are compiled for the
//! CPU, JIT-compiled with Cranelift and with LLVM (see `common::check_native`), run by `CpuProgram`, and compared with `nnc_interp::run`.
//!
//! The random graphs are built from a seed (printed with the graph on failure), so a failing
//! case is reproduced by calling the family's builder with that seed.

mod common;

use common::families::*;
use common::Rng;
use common::*;
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder, UnaryOp};
use proptest::prelude::*;

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

/// Checks one random graph natively; the error names the family and seed.
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

    #[test]
    fn casts_and_ints_match_the_interpreter(seed in any::<u64>()) {
        run_case("casts_and_ints", casts_and_ints, seed)?;
    }
}

#[test]
fn fixed_graphs_match_the_interpreter() {
    for g in [
        elementwise_chain(),
        softmax(&[3, 17], -1),
        softmax(&[2, 5, 7], 1),
        layer_norm(&[4, 32], -1),
        matmul_bias_relu(5, 7, 9),
        conv_bias_relu([1, 3, 8, 8], 4, 3, 1),
        argmax(&[3, 9], -1),
        topk(&[2, 10], 3),
    ] {
        let inputs = inputs_for(&g, 5);
        check(&g, &inputs).unwrap_or_else(|e| panic!("{}: {e}", g.name));
    }
}

#[test]
fn straight_line_f32_loops_become_vector_code() {
    let g = elementwise_chain();
    let program = compile_for(&g, &nnc_kernel::Device::cpu());
    let native = nnc_cpu::CpuProgram::new(&program).unwrap();
    assert!(native.vectorized_loops() >= 1, "{}", dump(&program));
}
