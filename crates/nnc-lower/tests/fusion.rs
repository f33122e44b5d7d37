//! Fusion happens where it must: fixed graphs are compiled for the GPU and the CPU, checked on
//! the Kernel-IR interpreter (which also reports out-of-bounds accesses, races and barrier
//! misuse) against the graph interpreter, and their kernels inspected. The random graph
//! families run on the Kernel-IR interpreter in nnc-kernel's `tests/suite.rs` (the test kit's
//! lines for both schedules).

mod common;

use common::*;
use nnc_ir::{BinaryOp, DType, Graph, GraphBuilder};
use nnc_kernel::kernel::{Stmt, Strategy};
use nnc_kernel::program::BufferKind;
use nnc_kernel::Device;
use nnc_testkit::families::block;

// ---------------------------------------------------------------- fusion must happen

fn checked(graph: &Graph) -> (nnc_kernel::program::Program, nnc_kernel::program::Program) {
    let inputs = inputs_for(graph, 11);
    check(graph, &inputs).unwrap_or_else(|e| panic!("{e}"))
}

fn no_intermediates(program: &nnc_kernel::program::Program) -> bool {
    !program.fused.buffers.iter().any(|b| {
        matches!(b.kind, BufferKind::Intermediate)
            && !program.fused.outputs.iter().any(|o| program.fused.buffers[o.index()].name == b.name)
    })
}

#[test]
fn a_chain_of_five_elementwise_ops_is_one_kernel() {
    let (gpu, cpu) = checked(&elementwise_chain());
    for p in [&gpu, &cpu] {
        let k = only_kernel(p);
        assert_eq!(k.schedule.strategy, Strategy::Elementwise);
        assert_eq!(k.covers.len(), 5, "{k}");
        assert!(no_intermediates(p), "{}", dump(p));
    }
}

#[test]
fn softmax_over_the_last_axis_is_one_row_reduce_kernel_on_gpu() {
    for shape in [vec![4, 64], vec![2, 3, 10], vec![1, 300]] {
        let (gpu, cpu) = checked(&softmax(&shape, -1));
        assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::RowReduce, "{}", dump(&gpu));
        assert_eq!(only_kernel(&cpu).schedule.strategy, Strategy::Elementwise, "{}", dump(&cpu));
        // Each reduction is computed once per row: on the CPU, the reductions are loops before
        // the loop over the row's elements, which has none nested.
        let k = only_kernel(&cpu);
        let loops: Vec<&Stmt> = k.body.iter().filter(|s| matches!(s, Stmt::For { .. })).collect();
        assert!(loops.len() >= 3, "max, sum, then the row:\n{k}");
        let Some(Stmt::For { body, .. }) = loops.last() else { unreachable!() };
        assert_eq!(count_stmts(body, &mut |s| matches!(s, Stmt::For { .. })), 0, "{k}");
    }
}

#[test]
fn layer_norm_is_one_row_reduce_kernel_on_gpu() {
    let (gpu, cpu) = checked(&layer_norm(&[4, 32], -1));
    assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::RowReduce, "{}", dump(&gpu));
    only_kernel(&cpu);
}

#[test]
fn matmul_bias_relu_is_one_tiled_kernel_on_gpu() {
    for (m, k, n) in [(8, 20, 24), (1, 3, 1), (33, 17, 5)] {
        let (gpu, cpu) = checked(&matmul_bias_relu(m, k, n));
        let kernel = only_kernel(&gpu);
        assert_eq!(kernel.schedule.strategy, Strategy::TiledMatmul, "{kernel}");
        assert_eq!(kernel.covers.len(), 3, "{kernel}");
        only_kernel(&cpu);
    }
}

#[test]
fn batched_matmul_with_epilogue_is_one_tiled_kernel_on_gpu() {
    let mut b = GraphBuilder::new("bmm");
    let x = b.input("x", DType::F32, [3, 5, 7]).unwrap();
    let w = b.input("w", DType::F32, [3, 7, 6]).unwrap();
    let r = b.input("r", DType::F32, [3, 5, 6]).unwrap();
    let y = b.matmul(x, w).unwrap();
    let y = b.tanh(y).unwrap();
    let y = b.add(y, r).unwrap();
    b.output(y);
    let (gpu, cpu) = checked(&b.finish().unwrap());
    let k = only_kernel(&gpu);
    assert_eq!(k.schedule.strategy, Strategy::TiledMatmul, "{k}");
    assert_eq!(k.launch.grid[2], 3, "one grid layer per batch:\n{k}");
    only_kernel(&cpu);
}

#[test]
fn conv_bias_relu_is_one_kernel() {
    let (gpu, cpu) = checked(&conv_bias_relu([1, 2, 6, 6], 4, 3, 1));
    assert_eq!(only_kernel(&gpu).covers.len(), 3);
    // The CPU pads the input once into a buffer of its own (register tiles load it without
    // masks) and reads the weights, stored channels-last, through an inlined transpose.
    let [pad, conv] = cpu.kernels.as_slice() else { panic!("expected pad and conv kernels:\n{}", dump(&cpu)) };
    assert!(pad.covers.iter().all(|c| c.ends_with("= pad")), "{pad}");
    assert_eq!(conv.covers.len(), 4, "{conv}");
    assert!(conv.covers.iter().any(|c| c.ends_with("= transpose")), "{conv}");
}

#[test]
fn whole_tensor_reductions_before_a_convolution_run_once_and_transcendentals_are_not_recomputed_per_channel() {
    // basic-pitch's front end: minutes a run on the CPU when its whole-tensor minimum was
    // inlined into the stacked copy (computed per element, on one thread), 16 ms since.
    let (h, w) = (32, 160);
    let graph = nnc_testkit::graphs::spectrogram_stack_conv(h, w);
    let (gpu, cpu) = checked(&graph);
    let pixels = (h * w) as f64;
    for p in [&gpu, &cpu] {
        // Each log at most once per stacked copy and reduction pass (4 + 2 + slack), never
        // once per output channel (8) or per element of a reduction (h * w).
        let logs = executed_transcendentals(p);
        assert!(logs <= 8.0 * pixels, "{logs} logs for {pixels} pixels:\n{}", dump(p));
        // Every large kernel spreads over many rows or invocations.
        for k in &p.kernels {
            let out =
                k.params().filter(|(_, b)| b.access != nnc_kernel::kernel::Access::Read).map(|(_, b)| b.len()).max();
            let invocations: u64 = k.launch.grid.iter().chain(&k.launch.workgroup).map(|&n| n as u64).product();
            if out.unwrap_or(0) >= 16384 {
                assert!(invocations >= 32, "{} runs in {invocations} invocation(s):\n{k}", k.name);
            }
        }
    }
}

#[test]
fn a_log_feeding_a_convolution_is_computed_once_not_per_output_channel() {
    let mut b = GraphBuilder::new("log_conv");
    let x = b.input("x", DType::F32, [1, 4, 16, 16]).unwrap();
    let y = b.binary(BinaryOp::Mul, x, x).unwrap();
    let y = b.binary_scalar(BinaryOp::Add, y, 1.0).unwrap();
    let y = b.unary(nnc_ir::UnaryOp::Log, y).unwrap();
    // A 1x1 convolution to 4 channels: recomputing a one-operation producer for each would pay.
    let w = weight(&mut b, 3, &[4, 4, 1, 1]);
    let window = nnc_ir::Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
    let y = b.conv(y, w, window, 1).unwrap();
    b.output(y);
    // (Checked on the CPU, whose register tiles are bound by arithmetic; a GPU, bound by
    // memory, may recompute a log four times rather than store and reload it.)
    let (_, cpu) = checked(&b.finish().unwrap());
    let logs = executed_transcendentals(&cpu);
    assert!(logs <= 4.0 * 16.0 * 16.0, "{logs} logs for 1024 inputs:\n{}", dump(&cpu));
    assert!(logs > 0.0, "{}", dump(&cpu));
}

#[test]
fn matmuls_packed_into_one_concatenation_keep_their_own_tiled_kernels() {
    // Two weight gradients flattened into one bucket, as data-parallel training packs them for
    // an all-reduce: each matmul stays a tiled kernel, the concatenation only copies.
    let mut b = GraphBuilder::new("bucket");
    let x = b.input("x", DType::F32, [16, 12]).unwrap();
    let g = b.input("g", DType::F32, [16, 8]).unwrap();
    let h = b.input("h", DType::F32, [16, 4]).unwrap();
    let xt = b.transpose(x, vec![1, 0]).unwrap();
    let dw1 = b.matmul(xt, g).unwrap();
    let dw2 = b.matmul(xt, h).unwrap();
    let flat1 = b.reshape(dw1, vec![96.into()]).unwrap();
    let flat2 = b.reshape(dw2, vec![48.into()]).unwrap();
    let bucket = b.op1(nnc_ir::Op::Concat { axis: 0 }, &[flat1, flat2]).unwrap();
    b.output(bucket);
    let (gpu, cpu) = checked(&b.finish().unwrap());
    assert_eq!(strategies(&gpu).iter().filter(|s| **s == Strategy::TiledMatmul).count(), 2, "{}", dump(&gpu));
    for p in [&gpu, &cpu] {
        assert_eq!(p.kernels.len(), 3, "two matmuls and the concatenation:\n{}", dump(p));
    }
}

#[test]
fn a_transposed_weight_matmul_inlines_the_transpose() {
    for weight_is_constant in [false, true] {
        let mut b = GraphBuilder::new("xwt");
        let x = b.input("x", DType::F32, [6, 10]).unwrap();
        let w =
            if weight_is_constant { weight(&mut b, 12, &[9, 10]) } else { b.input("w", DType::F32, [9, 10]).unwrap() };
        let wt = b.transpose_last2(w).unwrap();
        let y = b.matmul(x, wt).unwrap();
        let y = b.relu(y).unwrap();
        b.output(y);
        let graph = b.finish().unwrap();
        let (gpu, cpu) = checked(&graph);
        for p in [&gpu, &cpu] {
            let k = only_kernel(p);
            if weight_is_constant && p.device.vector > 1 {
                // Vector tiles: the constant is transposed once at compile time, so the kernel
                // reads a [10, 9] weight along its rows.
                assert!(!k.covers.iter().any(|c| c.ends_with("= transpose")), "{k}");
                assert!(k.params().any(|(_, b)| b.shape == [10, 9]), "{k}");
                continue;
            }
            assert!(k.covers.iter().any(|c| c.ends_with("= transpose")), "{k}");
            // The kernel reads the untransposed [9, 10] weight directly.
            assert!(k.params().any(|(_, b)| b.shape == [9, 10]), "{k}");
        }
        assert_eq!(only_kernel(&gpu).schedule.strategy, Strategy::TiledMatmul, "{}", dump(&gpu));
    }
}

#[test]
fn a_graph_output_used_inside_is_materialized_once_and_reused() {
    // `t = exp(x)` is an output and also feeds `t * 2`: both outputs are right, and `t` has a
    // kernel of its own.
    let mut b = GraphBuilder::new("shared_output");
    let x = b.input("x", DType::F32, [3, 4]).unwrap();
    let t = b.exp(x).unwrap();
    let u = b.binary_scalar(BinaryOp::Mul, t, 2.0).unwrap();
    b.output(t);
    b.output(u);
    let (gpu, cpu) = checked(&b.finish().unwrap());
    assert!(gpu.kernels.len() <= 2 && cpu.kernels.len() <= 2, "{}", dump(&gpu));
}

#[test]
fn fusion_off_gives_one_kernel_per_node_with_the_same_results() {
    let graph = block(5);
    let inputs = inputs_for(&graph, 5);
    let expected = nnc_interp::run(&graph, &inputs).unwrap();
    for device in [Device::gpu(), Device::cpu()] {
        let p = compile_unfused(&graph, &device);
        let found = p.run_interpreted(&inputs).unwrap_or_else(|e| panic!("{e}\n{}", dump(&p)));
        compare("unfused", &expected[0], &found[0]).unwrap();
        let fused = compile_for(&graph, &device);
        assert!(fused.kernels.len() < p.kernels.len(), "fused {} vs unfused {}", fused.kernels.len(), p.kernels.len());
    }
}

#[test]
fn softmax_on_a_non_last_axis_and_with_large_rows() {
    // Axis 0 of [5, 3]: the reduction runs down columns. And a row of 1000 elements (more than
    // a workgroup), where the strided partial loop runs several times per invocation.
    for (shape, axis) in [(vec![5, 3], 0), (vec![2, 1000], -1), (vec![1, 257], 1), (vec![3, 4, 5], 1)] {
        checked(&softmax(&shape, axis));
    }
    checked(&layer_norm(&[2, 600], -1));
    checked(&layer_norm(&[2, 3, 4], 1));
}

#[test]
fn argmax_and_topk_match() {
    checked(&argmax(&[4, 16], -1));
    checked(&argmax(&[5, 3], 0));
    checked(&argmax(&[2, 300], 1));
    checked(&topk(&[3, 8], 3));
}
