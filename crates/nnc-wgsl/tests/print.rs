//! Printing: kernels of many shapes print as WGSL that naga accepts (no adapter needed), the
//! text of four typical kernels is snapshotted, and what WGSL cannot hold is refused clearly.

use nnc_ir::{DType, GraphBuilder};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_kernel::{BufId, Expr, Stmt};
use nnc_lower::compile;
use nnc_testkit::families::FAMILIES;
use nnc_testkit::graphs::*;
use nnc_wgsl::{compile_kernel, print_kernel, PrintOptions, WgslError};

fn options() -> PrintOptions {
    PrintOptions { f16: true, ..Default::default() }
}

fn gpu_program(graph: &nnc_ir::Graph) -> Program {
    compile(graph, &Device::gpu(), None).unwrap_or_else(|e| panic!("compile `{}`: {e}", graph.name))
}

/// Every kernel of `program`, printed and validated by naga.
fn all_wgsl(program: &Program) -> String {
    program
        .kernels
        .iter()
        .map(|k| compile_kernel(k, &options()).unwrap_or_else(|e| panic!("{e}\n{k}")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kernels_of_every_family_validate_with_naga() {
    let mut kernels = 0;
    for (name, build) in FAMILIES {
        for seed in 0..12u64 {
            let graph = build(seed);
            let program = gpu_program(&graph);
            for k in &program.kernels {
                compile_kernel(k, &options()).unwrap_or_else(|e| panic!("{name}({seed}): {e}\n{k}"));
                kernels += 1;
            }
        }
    }
    assert!(kernels >= 84, "{kernels} kernels");
}

#[test]
fn fixed_graphs_validate() {
    for g in fixed_graphs() {
        all_wgsl(&gpu_program(&g));
    }
}

#[test]
fn snapshot_elementwise_chain() {
    insta::assert_snapshot!(all_wgsl(&gpu_program(&elementwise_chain())));
}

#[test]
fn snapshot_softmax_row_reduction() {
    insta::assert_snapshot!(all_wgsl(&gpu_program(&softmax(&[4, 32], -1))));
}

#[test]
fn snapshot_tiled_matmul() {
    insta::assert_snapshot!(all_wgsl(&gpu_program(&matmul_bias_relu(32, 24, 20))));
}

#[test]
fn snapshot_conv_bias_relu() {
    insta::assert_snapshot!(all_wgsl(&gpu_program(&conv_bias_relu([1, 3, 8, 8], 4, 3, 1))));
}

/// A `select` whose side loads becomes an `if`: WGSL's `select()` would make the load.
#[test]
/// Loads under `select`, and masked loads, are `if`s: WGSL's `select()` evaluates both sides.
fn a_select_that_loads_is_an_if() {
    let program = gpu_program(&conv_bias_relu([1, 2, 5, 5], 2, 3, 1));
    let mut kernel = program.kernels[0].clone();
    let out = kernel.params().last().map(|(id, _)| id).unwrap();
    let x = BufId(0);
    let rank = kernel.buffer(x).shape.len();
    let load = Expr::load(x, DType::F32, vec![Expr::i64(0); rank]);
    let cond = Expr::binary(nnc_ir::BinaryOp::Lt, Expr::Special(nnc_kernel::Special::ThreadId(0)), Expr::i64(1));
    let value = Expr::select(cond.clone(), load.clone(), Expr::lit(0.0, DType::F32));
    let masked = Expr::Load { buf: x, dtype: DType::F32, index: vec![Expr::i64(0); rank], mask: Some(Box::new(cond)) };
    let orank = kernel.buffer(out).shape.len();
    kernel.body = vec![
        Stmt::Store { buf: out, index: vec![Expr::i64(0); orank], value },
        Stmt::Store { buf: out, index: vec![Expr::i64(0); orank], value: masked },
    ];
    // Unlegalized, WGSL's eager select() cannot express it: an error, not a wrong shader.
    let e = compile_kernel(&kernel, &options()).unwrap_err();
    assert!(e.to_string().contains("not legalized"), "{e}");
    // Legalized for a WGSL device, both become `if`s.
    let kernel = nnc_lower::legalize::legalize(&kernel, &nnc_kernel::Device::gpu()).unwrap();
    let text = compile_kernel(&kernel, &options()).unwrap();
    assert!(!text.contains("select("), "{text}");
    assert_eq!(text.matches("if (").count(), 2, "{text}");
}

#[test]
fn f64_and_bf16_are_refused_with_the_kernel_name() {
    for dtype in [DType::F64, DType::BF16] {
        let mut b = GraphBuilder::new("wide");
        let x = b.input("x", dtype, [4]).unwrap();
        let y = b.add(x, x).unwrap();
        b.output(y);
        let program = gpu_program(&b.finish().unwrap());
        let e = print_kernel(&program.kernels[0], &options()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, WgslError::Unsupported { .. }), "{text}");
        assert!(text.contains(&program.kernels[0].name) && text.contains(dtype.name()), "{text}");
    }
}

#[test]
fn f16_needs_the_feature() {
    let mut b = GraphBuilder::new("half");
    let x = b.input("x", DType::F16, [4]).unwrap();
    let y = b.exp(x).unwrap();
    b.output(y);
    let program = gpu_program(&b.finish().unwrap());
    let e = print_kernel(&program.kernels[0], &PrintOptions::default()).unwrap_err();
    assert!(e.to_string().contains("SHADER_F16"), "{e}");
    let text = compile_kernel(&program.kernels[0], &options()).unwrap();
    assert!(text.starts_with("enable f16;"), "{text}");
}

#[test]
fn naga_errors_name_the_kernel_and_line() {
    let e = nnc_wgsl::validate("k7", "fn main() {\n  let x: i32 = 1.5f;\n}\n").unwrap_err();
    match &e {
        WgslError::Naga { kernel, line, .. } => {
            assert_eq!(kernel, "k7");
            assert_eq!(*line, 2, "{e}");
        }
        _ => panic!("{e}"),
    }
}

/// `u64` is held like `i64`: (low, high) word pairs in global buffers, computed in `u32`.
#[test]
fn u64_is_printed_as_word_pairs() {
    let mut b = GraphBuilder::new("wide");
    let x = b.input("x", DType::U64, [4]).unwrap();
    let y = b.add(x, x).unwrap();
    b.output(y);
    let program = gpu_program(&b.finish().unwrap());
    let text = compile_kernel(&program.kernels[0], &options()).unwrap();
    assert!(text.contains("array<u32>") && text.contains("2i * (") && text.contains("+ 1i] = 0u;"), "{text}");
}

/// A kernel over an empty tensor divides its index by a zero extent: naga rejects a division
/// by a literal zero, so none is printed (the kernel never runs).
#[test]
fn no_division_by_a_literal_zero() {
    let mut b = GraphBuilder::new("empty");
    let x = b.input("x", DType::F32, [2, 0, 4]).unwrap();
    let y = b.reduce_sum(x, &[1], true).unwrap();
    b.output(y);
    let program = gpu_program(&b.finish().unwrap());
    for kernel in &program.kernels {
        let text = compile_kernel(kernel, &options()).unwrap();
        assert!(!text.contains("/ 0i") && !text.contains("% 0i"), "{text}");
    }
}
