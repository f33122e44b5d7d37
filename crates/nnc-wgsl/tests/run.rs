//! Running on wgpu (lavapipe in CI), beyond the WGSL backend's suite line (`suite.rs`: the random
//! graph families and the fixed graphs): integer, bool, `u64`, empty and `f64`-in-registers data
//! agree with the graph interpreter and the Kernel-IR interpreter; one submission per run; a
//! long serial reduction; no adapter and wrong inputs are errors, not panics.

mod common;

use common::{check_gpu, gpu};
use nnc_ir::{BinaryOp, DType, GraphBuilder, TensorData};
use nnc_kernel::Device;
use nnc_lower::compile;
use nnc_testkit::families::block;
use nnc_testkit::graphs::softmax;
use nnc_testkit::inputs::inputs_for;
use nnc_wgsl::{WgslError, WgslProgram};

/// Integer, bool and i64 data: gather with i64 indices, casts, comparisons, integer arithmetic.
#[test]
fn integer_and_bool_data_run() {
    let mut b = GraphBuilder::new("ints");
    let x = b.input("x", DType::F32, [3, 5]).unwrap();
    let idx = b.input("idx", DType::I64, [4]).unwrap();
    let g = b.gather(x, idx, 1).unwrap();
    let am = b.argmax(x, 1, false).unwrap();
    let i8v = b.cast(x, DType::I8).unwrap();
    let i8s = b.add(i8v, i8v).unwrap();
    let u8v = b.cast(x, DType::U8).unwrap();
    let i32v = b.cast(x, DType::I32).unwrap();
    let three = b.scalar(DType::I32, -3.0);
    let q = b.div(i32v, three).unwrap();
    let r = b.binary(BinaryOp::Rem, i32v, three).unwrap();
    let pos = b.scalar(DType::F32, 0.0);
    let m = b.binary(BinaryOp::Gt, x, pos).unwrap();
    let sel = b.select(m, x, pos).unwrap();
    for v in [g, am, i8s, u8v, q, r, m, sel] {
        b.output(v);
    }
    let graph = b.finish().unwrap();
    let xs: Vec<f64> = (0..15).map(|i| (i as f64 - 7.0) * 37.5).collect();
    let inputs = vec![
        TensorData::from_f64(DType::F32, vec![3, 5], &xs),
        TensorData::from_i64(DType::I64, vec![4], &[4, 0, -1, 2]),
    ];
    check_gpu(&graph, &inputs).unwrap_or_else(|e| panic!("{e}"));
}

/// `u64` data (held as word pairs, computed in `u32`): arithmetic and unsigned comparisons;
/// values that do not fit in `u32` are refused at upload.
#[test]
fn u64_data_runs() {
    let mut b = GraphBuilder::new("u64");
    let x = b.input("x", DType::U64, [6]).unwrap();
    let y = b.input("y", DType::U64, [6]).unwrap();
    let sum = b.add(x, y).unwrap();
    let diff = b.sub(x, y).unwrap();
    let prod = b.binary(BinaryOp::Mul, x, y).unwrap();
    let quot = b.div(x, y).unwrap();
    let lt = b.binary(BinaryOp::Lt, x, y).unwrap();
    let max = b.binary(BinaryOp::Max, x, y).unwrap();
    for v in [sum, diff, prod, quot, lt, max] {
        b.output(v);
    }
    let graph = b.finish().unwrap();
    let inputs = vec![
        TensorData::from_i64(DType::U64, vec![6], &[7, 100, 3_000_000_000, 9, 65_536, 1]),
        TensorData::from_i64(DType::U64, vec![6], &[2, 100, 1, 3, 65_535, 1]),
    ];
    check_gpu(&graph, &inputs).unwrap_or_else(|e| panic!("{e}"));
    let program = compile(&graph, &Device::gpu(), None).unwrap();
    let Some(mut wgpu) = gpu(&program) else { return };
    let big = TensorData::from_i64(DType::U64, vec![6], &[1 << 40, 0, 0, 0, 0, 0]);
    let e = wgpu.run(&[big, inputs[1].clone()]).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

/// Kernels over empty tensors (extents of zero in their index math) compile and do nothing.
#[test]
fn empty_tensors_run() {
    let mut b = GraphBuilder::new("empty");
    let x = b.input("x", DType::F32, [2, 0, 4]).unwrap();
    let y = b.reduce_sum(x, &[1], true).unwrap();
    b.output(y);
    let graph = b.finish().unwrap();
    let inputs = vec![TensorData::from_f64(DType::F32, vec![2, 0, 4], &[])];
    check_gpu(&graph, &inputs).unwrap_or_else(|e| panic!("{e}"));
}

/// `f64` values that stay in registers compute in `f32` (Resize's coordinates); an `f64`
/// tensor is refused, naming the reason.
#[test]
fn f64_in_registers_only() {
    let mut b = GraphBuilder::new("f64");
    let x = b.input("x", DType::F32, [8]).unwrap();
    let d = b.cast(x, DType::F64).unwrap();
    let e = b.exp(d).unwrap();
    let y = b.cast(e, DType::F32).unwrap();
    b.output(y);
    let graph = b.finish().unwrap();
    let program = compile(&graph, &Device::gpu(), None).unwrap();
    if program.fused.buffers.iter().all(|b| b.dtype != DType::F64) {
        let xs: Vec<f64> = (0..8).map(|i| i as f64 * 0.7 - 2.0).collect();
        check_gpu(&graph, &[TensorData::from_f64(DType::F32, vec![8], &xs)]).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut b = GraphBuilder::new("f64_tensor");
    let x = b.input("x", DType::F64, [4]).unwrap();
    let y = b.exp(x).unwrap();
    b.output(y);
    let program = compile(&b.finish().unwrap(), &Device::gpu(), None).unwrap();
    let Err(e) = WgslProgram::new(&program, None) else { panic!("an f64 tensor was accepted") };
    assert!(e.to_string().contains("WGSL has no f64") || matches!(e, WgslError::NoAdapter(_)), "{e}");
}

/// Every kernel of a run is recorded into one command buffer: one submission per run.
#[test]
fn one_submission_per_run() {
    let graph = block(3);
    let program = compile(&graph, &Device::gpu(), None).unwrap();
    assert!(program.kernels.len() > 2, "{} kernels", program.kernels.len());
    let Some(mut wgpu) = gpu(&program) else { return };
    eprintln!("adapter: {}", wgpu.adapter_name());
    let inputs = inputs_for(&graph, 1);
    for run in 1..=3 {
        wgpu.run(&inputs).unwrap();
        assert_eq!(wgpu.submissions(), run);
    }
}

#[test]
fn a_missing_adapter_is_an_error() {
    let program = compile(&softmax(&[2, 8], -1), &Device::gpu(), None).unwrap();
    match WgslProgram::new(&program, Some("no such adapter, surely")) {
        Err(WgslError::NoAdapter(m)) => assert!(m.contains("no such adapter"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(p) => panic!("found {}", p.adapter_name()),
    }
}

#[test]
fn wrong_inputs_are_errors() {
    let graph = softmax(&[2, 8], -1);
    let program = compile(&graph, &Device::gpu(), None).unwrap();
    let Some(mut wgpu) = gpu(&program) else { return };
    assert!(matches!(wgpu.run(&[]), Err(WgslError::Data(_))));
    let bad = TensorData::from_f64(DType::F32, vec![3, 8], &[0.0; 24]);
    assert!(matches!(wgpu.run(&[bad]), Err(WgslError::Data(_))));
    let big = TensorData::from_i64(DType::I64, vec![1], &[1 << 40]);
    let mut b = GraphBuilder::new("big");
    let x = b.input("x", DType::I64, [1]).unwrap();
    let y = b.add(x, x).unwrap();
    b.output(y);
    let program = compile(&b.finish().unwrap(), &Device::gpu(), None).unwrap();
    let Some(mut wgpu) = gpu(&program) else { return };
    let e = wgpu.run(&[big]).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

/// A long serial reduction per invocation (squeezenet's last kernel: 1x1 conv, relu, global
/// average pool over 13 x 13 positions and 512 channels).
#[test]
fn a_long_serial_reduction_runs() {
    let mut b = GraphBuilder::new("head");
    let (c, hw, o) = (512usize, 13usize, 1000usize);
    let x = b.input("x", DType::F32, [1, c as i64, hw as i64, hw as i64]).unwrap();
    let w = b.constant(TensorData::from_f64(DType::F32, vec![o, c, 1, 1], &vec![1.0 / c as f64; o * c]));
    let y = b.conv(x, w, nnc_ir::Window::unit(2), 1).unwrap();
    let y = b.relu(y).unwrap();
    let y = b.reduce_mean(y, &[2, 3], false).unwrap();
    b.output(y);
    let graph = b.finish().unwrap();
    let inputs = vec![TensorData::from_f64(DType::F32, vec![1, c, hw, hw], &vec![1.0; c * hw * hw])];
    check_gpu(&graph, &inputs).unwrap_or_else(|e| panic!("{e}"));
}
