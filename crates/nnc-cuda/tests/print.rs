//! Printing: kernels of every graph family print as CUDA C++ that NVRTC compiles and ptxas
//! assembles (when the tools are present), every dtype prints, the text of typical kernels is
//! snapshotted, loads under `select` stay lazy, and tree reductions end in warp shuffles.

mod common;

use nnc_cuda::{compile_ptx, print_kernel, print_program, ptxas_report, PrintOptions};
use nnc_ir::{DType, Graph, GraphBuilder, UnaryOp};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::Program;
use nnc_kernel::{BufId, Expr, Stmt};
use nnc_lower::compile;
use nnc_testkit::families::FAMILIES;
use nnc_testkit::graphs::*;

fn gpu_program(graph: &Graph) -> Program {
    compile(graph, &nnc_cuda::CudaBackend.device(), None).unwrap_or_else(|e| panic!("compile `{}`: {e}", graph.name))
}

/// Every kernel of `program` as standalone sources, joined (what the snapshots hold).
fn all_cuda(program: &Program) -> String {
    program
        .kernels
        .iter()
        .enumerate()
        .map(|(g, k)| {
            let options = nnc_cuda::print::program_options(program, g);
            print_kernel(k, &nnc_cuda::entry_name(g, k), &options).unwrap_or_else(|e| panic!("{e}\n{k}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The program through NVRTC and ptxas (sm_80), when they are present.
fn assemble(what: &str, program: &Program) {
    let source = print_program(program).unwrap_or_else(|e| panic!("{what}: {e}"));
    if common::tools().is_none() {
        return;
    }
    let ptx = compile_ptx(&source, "sm_80").unwrap_or_else(|e| panic!("{what}: {e}\n{source}"));
    let stats = ptxas_report(&ptx, "sm_80").unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(stats.len(), program.kernels.len(), "{what}");
}

#[test]
fn kernels_of_every_family_compile_with_nvrtc_and_ptxas() {
    if common::tools().is_none() {
        return;
    }
    let mut kernels = 0;
    for (name, build) in FAMILIES {
        // One translation unit per family: every seed's program, renamed apart.
        for seed in 0..12u64 {
            let program = gpu_program(&build(seed));
            assemble(&format!("{name}({seed})"), &program);
            kernels += program.kernels.len();
        }
    }
    assert!(kernels >= 84, "{kernels} kernels");
}

#[test]
fn fixed_graphs_compile() {
    for g in fixed_graphs() {
        assemble(&g.name.clone(), &gpu_program(&g));
    }
}

/// A graph over `dtype`: arithmetic, max, a comparison and casts to and from f32.
fn typed_graph(dtype: DType) -> Graph {
    let mut b = GraphBuilder::new(&format!("typed_{}", dtype.name()));
    let x = b.input("x", dtype, [3, 5]).unwrap();
    let y = b.input("y", dtype, [3, 5]).unwrap();
    let s = if dtype == DType::Bool { b.binary(nnc_ir::BinaryOp::And, x, y).unwrap() } else { b.add(x, y).unwrap() };
    let m = if dtype == DType::Bool { b.binary(nnc_ir::BinaryOp::Or, s, x).unwrap() } else { b.max(s, y).unwrap() };
    let f = b.cast(m, DType::F32).unwrap();
    let e = b.exp(f).unwrap();
    let back = b.cast(e, dtype).unwrap();
    b.output(back);
    let r = b.reduce_sum(f, &[1], false).unwrap();
    b.output(r);
    b.finish().unwrap()
}

#[test]
fn every_dtype_prints_and_compiles() {
    for dtype in
        [DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I8, DType::U8, DType::Bool]
    {
        let program = gpu_program(&typed_graph(dtype));
        assemble(dtype.name(), &program);
    }
}

#[test]
fn every_float_unary_prints_and_compiles() {
    use UnaryOp::*;
    for dtype in [DType::F32, DType::F16, DType::F64] {
        let mut b = GraphBuilder::new(&format!("unary_{}", dtype.name()));
        let x = b.input("x", dtype, [8]).unwrap();
        let mut outs = Vec::new();
        for op in [
            Neg, Abs, Sign, Relu, Exp, Log, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh,
            Asinh, Acosh, Atanh, Sigmoid, Erf, Floor, Ceil, Round,
        ] {
            outs.push(unary(&mut b, op, x));
        }
        for o in outs {
            b.output(o);
        }
        assemble(dtype.name(), &gpu_program(&b.finish().unwrap()));
    }
}

#[test]
fn snapshot_elementwise_chain() {
    insta::assert_snapshot!(all_cuda(&gpu_program(&elementwise_chain())));
}

#[test]
fn snapshot_softmax_row_reduction() {
    insta::assert_snapshot!(all_cuda(&gpu_program(&softmax(&[4, 32], -1))));
}

#[test]
fn snapshot_tiled_matmul() {
    insta::assert_snapshot!(all_cuda(&gpu_program(&matmul_bias_relu(32, 24, 20))));
}

#[test]
fn snapshot_conv_bias_relu() {
    insta::assert_snapshot!(all_cuda(&gpu_program(&conv_bias_relu([1, 3, 8, 8], 4, 3, 1))));
}

#[test]
fn snapshot_argmax_i64() {
    insta::assert_snapshot!(all_cuda(&gpu_program(&argmax(&[3, 7], 1))));
}

#[test]
fn snapshot_f16() {
    let mut b = GraphBuilder::new("half");
    let x = b.input("x", DType::F16, [4, 64]).unwrap();
    let e = b.exp(x).unwrap();
    let s = b.reduce_sum(e, &[1], true).unwrap();
    let y = b.div(e, s).unwrap();
    b.output(y);
    insta::assert_snapshot!(all_cuda(&gpu_program(&b.finish().unwrap())));
}

/// The last five steps of every tree reduction become shuffles of the first warp.
#[test]
fn tree_reductions_end_in_warp_shuffles() {
    for g in [softmax(&[4, 32], -1), layer_norm(&[2, 600], -1), argmax(&[3, 700], 1)] {
        let program = gpu_program(&g);
        let text = print_program(&program).unwrap();
        let mut barriers = 0;
        for kernel in &program.kernels {
            nnc_kernel::visit::visit_stmts(&kernel.body, &mut |s| barriers += usize::from(matches!(s, Stmt::Barrier)));
        }
        assert!(barriers > 0, "{}", g.name);
        assert!(text.contains("nnc_shfl_down("), "{}:\n{text}", g.name);
        // Each shuffled tail replaces five barriers by one.
        assert_eq!(
            text.matches("__syncthreads();").count(),
            barriers - 4 * text.matches("if (tid_x < 32) {").count(),
            "{}",
            g.name
        );
        assemble(&g.name, &program);
    }
}

/// Loads under `select` and masked loads are `?:`, which evaluates only the chosen side.
#[test]
fn a_select_that_loads_is_lazy() {
    let program = gpu_program(&conv_bias_relu([1, 2, 5, 5], 2, 3, 1));
    let mut kernel = program.kernels[0].clone();
    let out = kernel.params().last().map(|(id, _)| id).unwrap();
    let x = BufId(0);
    let rank = kernel.buffer(x).shape.len();
    let load = Expr::load(x, DType::F32, vec![Expr::i64(0); rank]);
    let cond = Expr::binary(nnc_ir::BinaryOp::Lt, Expr::Special(nnc_kernel::Special::ThreadId(0)), Expr::i64(1));
    let value = Expr::select(cond.clone(), load, Expr::lit(0.0, DType::F32));
    let masked = Expr::Load { buf: x, dtype: DType::F32, index: vec![Expr::i64(0); rank], mask: Some(Box::new(cond)) };
    let orank = kernel.buffer(out).shape.len();
    kernel.body = vec![
        Stmt::Store { buf: out, index: vec![Expr::i64(0); orank], value },
        Stmt::Store { buf: out, index: vec![Expr::i64(0); orank], value: masked },
    ];
    let text = print_kernel(&kernel, "k", &PrintOptions::default()).unwrap();
    assert_eq!(text.matches("((tid_x < 1) ? b0[0] : 0.0f)").count(), 2, "{text}");
}

/// A grid beyond CUDA's 65,535 in y is launched linearised along x.
#[test]
fn large_grids_are_linearised() {
    let program = gpu_program(&elementwise_chain());
    let mut kernel = program.kernels[0].clone();
    kernel.launch.grid = [10, 70_000, 1];
    let dims = nnc_cuda::launch_dims(&kernel).unwrap();
    assert!(dims.linearized);
    assert_eq!(dims.grid, [700_000, 1, 1]);
    let text = print_kernel(&kernel, "k", &PrintOptions::default()).unwrap();
    assert!(text.contains("gid_y = (nnc_block / 10LL) % 70000LL"), "{text}");
    kernel.launch.grid = [10, 70_000, 70_000];
    assert!(nnc_cuda::launch_dims(&kernel).is_err());
}

#[test]
fn nvrtc_errors_carry_the_log() {
    if common::tools().is_none() {
        return;
    }
    let e = compile_ptx("extern \"C\" __global__ void k() { int x = ; }", "sm_80").unwrap_err();
    assert!(matches!(e, nnc_cuda::CudaError::Nvrtc { .. }), "{e}");
    assert!(e.to_string().contains("expected an expression"), "{e}");
}
