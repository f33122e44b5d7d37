//! The Kernel-IR interpreter catches bugs planted in REAL generated kernels: a missing barrier
//! in a row reduction or a tiled matmul is a race, and an index pushed past its buffer is an
//! out-of-bounds access that names the kernel and the buffer. Each test first runs the
//! unmodified kernel, so the error is the planted bug's and not a pre-existing one.

mod common;

use common::*;
use nnc_interp::lanes::Value;
use nnc_ir::{BinaryOp, Graph, TensorData};
use nnc_kernel::expr::Expr;
use nnc_kernel::interp::{run_kernel, KernelError};
use nnc_kernel::kernel::{Kernel, Space, Stmt, Strategy};
use nnc_kernel::program::Program;
use nnc_kernel::Device;

/// The global buffers of kernel `g` of `program` for `inputs`: graph inputs and constants as
/// given, everything else zero. Only for kernels whose reads are graph inputs or constants.
fn globals(program: &Program, g: usize, inputs: &[TensorData]) -> Vec<Value> {
    use nnc_kernel::program::BufferKind;
    let group = &program.fused.groups[g];
    group
        .reads
        .iter()
        .chain(&group.writes)
        .map(|b| {
            let buf = &program.fused.buffers[b.index()];
            let shape: Vec<usize> = buf.shape.iter().map(|&d| d as usize).collect();
            match &buf.kind {
                BufferKind::Input(n) => Value::from_tensor(&inputs[*n]),
                BufferKind::Constant(t) => Value::from_tensor(t),
                BufferKind::Intermediate => {
                    let n = shape.iter().product();
                    if buf.dtype.is_float() {
                        Value::float(buf.dtype, shape, vec![0.0; n])
                    } else {
                        Value::int(buf.dtype, shape, vec![0; n])
                    }
                }
            }
        })
        .collect()
}

/// The kernel of `graph` for `device` with strategy `strategy`, its index, and the program.
fn generated(graph: &Graph, device: &Device, strategy: Strategy) -> (Program, usize) {
    let program = compile_for(graph, device);
    let g = program
        .kernels
        .iter()
        .position(|k| k.schedule.strategy == strategy)
        .unwrap_or_else(|| panic!("no {} kernel:\n{}", strategy.name(), dump(&program)));
    (program, g)
}

fn run(program: &Program, g: usize, kernel: &Kernel, inputs: &[TensorData]) -> Result<(), KernelError> {
    let mut globals = globals(program, g, inputs);
    run_kernel(kernel, &mut globals)
}

/// Removes the `n`-th barrier (in statement order, counting nested ones); returns whether it
/// found one.
fn delete_barrier(stmts: &mut Vec<Stmt>, n: &mut usize) -> bool {
    let mut i = 0;
    while i < stmts.len() {
        if matches!(stmts[i], Stmt::Barrier) {
            if *n == 0 {
                stmts.remove(i);
                return true;
            }
            *n -= 1;
        }
        let found = match &mut stmts[i] {
            Stmt::For { body, .. } => delete_barrier(body, n),
            Stmt::If { then, els, .. } => delete_barrier(then, n) || delete_barrier(els, n),
            _ => false,
        };
        if found {
            return true;
        }
        i += 1;
    }
    false
}

fn barriers(k: &Kernel) -> usize {
    count_stmts(&k.body, &mut |s| matches!(s, Stmt::Barrier))
}

/// Deletes each barrier of `kernel` in turn; returns, per barrier, the error (if any).
fn without_each_barrier(program: &Program, g: usize, inputs: &[TensorData]) -> Vec<(usize, Result<(), KernelError>)> {
    let kernel = &program.kernels[g];
    (0..barriers(kernel))
        .map(|b| {
            let mut k = kernel.clone();
            assert!(delete_barrier(&mut k.body, &mut b.clone()));
            assert_eq!(barriers(&k), barriers(kernel) - 1);
            (b, run(program, g, &k, inputs))
        })
        .collect()
}

fn assert_race(e: &KernelError, kernel: &Kernel) {
    assert_eq!(e.kernel, kernel.name, "{e}");
    assert!(e.message.contains("race"), "expected a race, found: {e}\n{kernel}");
}

#[test]
fn a_missing_barrier_in_a_generated_row_reduce_is_a_race() {
    let graph = softmax(&[4, 64], -1);
    let inputs = inputs_for(&graph, 1);
    let (program, g) = generated(&graph, &Device::gpu(), Strategy::RowReduce);
    let kernel = &program.kernels[g];
    run(&program, g, kernel, &inputs).unwrap_or_else(|e| panic!("the generated kernel fails: {e}\n{kernel}"));
    // The first barrier separates each invocation's store of its partial from the tree's first
    // step, which reads another invocation's partial.
    let mut k = kernel.clone();
    assert!(delete_barrier(&mut k.body, &mut 0));
    let e = run(&program, g, &k, &inputs).expect_err("a race must be reported");
    assert_race(&e, &k);
    assert!(e.message.contains("partial"), "the race names the workgroup buffer: {e}");
    // Every barrier between tree steps is needed: removing any one of them is a race. (The
    // barrier after the final read of a reduction's result guards against reuse of the buffer,
    // but every reduction gets a fresh buffer, so that one is not needed: two in a softmax.)
    let results = without_each_barrier(&program, g, &inputs);
    let races = results.iter().filter(|(_, r)| matches!(r, Err(e) if e.message.contains("race"))).count();
    let other_errors: Vec<String> = results
        .iter()
        .filter_map(|(b, r)| r.as_ref().err().filter(|e| !e.message.contains("race")).map(|e| format!("#{b}: {e}")))
        .collect();
    assert!(other_errors.is_empty(), "{other_errors:?}");
    assert!(races >= results.len() - 2, "only {races} of {} barriers are caught:\n{kernel}", results.len());
}

#[test]
fn a_missing_barrier_in_a_generated_layer_norm_is_a_race() {
    let graph = layer_norm(&[3, 40], -1);
    let inputs = inputs_for(&graph, 2);
    let (program, g) = generated(&graph, &Device::gpu(), Strategy::RowReduce);
    let kernel = &program.kernels[g];
    run(&program, g, kernel, &inputs).unwrap_or_else(|e| panic!("the generated kernel fails: {e}\n{kernel}"));
    let mut k = kernel.clone();
    assert!(delete_barrier(&mut k.body, &mut 0));
    assert_race(&run(&program, g, &k, &inputs).expect_err("a race must be reported"), &k);
}

#[test]
fn a_missing_barrier_in_a_generated_tiled_matmul_is_a_race() {
    let graph = matmul_bias_relu(20, 40, 24);
    let inputs = inputs_for(&graph, 3);
    let (program, g) = generated(&graph, &Device::gpu(), Strategy::TiledMatmul);
    let kernel = &program.kernels[g];
    assert_eq!(barriers(kernel), 2, "{kernel}");
    run(&program, g, kernel, &inputs).unwrap_or_else(|e| panic!("the generated kernel fails: {e}\n{kernel}"));
    // Barrier 0: tiles are read before every invocation stored its element (read-after-write).
    // Barrier 1: the next step's tile stores overwrite elements others still read
    // (write-after-read); the K extent (40) spans three tile steps so this happens.
    for (b, result) in without_each_barrier(&program, g, &inputs) {
        let Err(e) = result else { panic!("deleting barrier #{b} went unnoticed:\n{kernel}") };
        assert_race(&e, kernel);
        assert!(e.message.contains("a_tile") || e.message.contains("b_tile"), "#{b}: {e}");
    }
}

/// Adds `by` to the last index component of the first store (if `store`) or first load of a
/// global buffer found in `stmts`; returns the buffer's id.
fn shift_index(stmts: &mut [Stmt], kernel: &Kernel, store: bool, by: i64) -> Option<u32> {
    for s in stmts.iter_mut() {
        let found = match s {
            Stmt::Store { buf, index, value } => {
                if store {
                    let last = index.last_mut().expect("stores have an index");
                    *last = shifted(last.clone(), by);
                    Some(buf.0)
                } else {
                    shift_load(value, kernel, by)
                }
            }
            Stmt::For { body, .. } => shift_index(body, kernel, store, by),
            Stmt::If { then, els, .. } => {
                shift_index(then, kernel, store, by).or_else(|| shift_index(els, kernel, store, by))
            }
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `index + by`, in the index's own width (legalization narrows GPU indices to `i32`).
fn shifted(index: Expr, by: i64) -> Expr {
    let dtype = index.dtype();
    Expr::binary(BinaryOp::Add, index, Expr::Lit(nnc_kernel::Literal::Int(by, dtype)))
}

/// Shifts the last index of the first load of a global buffer in `e`.
fn shift_load(e: &mut Expr, kernel: &Kernel, by: i64) -> Option<u32> {
    let mut found = None;
    let taken = std::mem::replace(e, Expr::i64(0));
    *e = taken.rewrite(&mut |x| match x {
        Expr::Load { buf, dtype, mut index, mask }
            if found.is_none() && kernel.buffer(buf).space == Space::Global && !index.is_empty() =>
        {
            found = Some(buf.0);
            let last = index.pop().expect("not empty");
            index.push(shifted(last, by));
            Expr::Load { buf, dtype, index, mask }
        }
        x => x,
    });
    found
}

#[test]
fn an_index_past_the_buffer_in_a_generated_elementwise_kernel_names_kernel_and_buffer() {
    let graph = elementwise_chain();
    let inputs = inputs_for(&graph, 4);
    for device in [Device::gpu(), Device::cpu()] {
        let (program, g) = generated(&graph, &device, Strategy::Elementwise);
        let kernel = &program.kernels[g];
        run(&program, g, kernel, &inputs).unwrap_or_else(|e| panic!("the generated kernel fails: {e}\n{kernel}"));
        for store in [true, false] {
            let mut k = kernel.clone();
            // Past the end of the whole buffer, not only of its last axis.
            let by = 1000;
            let orig = k.clone();
            let buf = shift_index(&mut k.body, &orig, store, by).expect("a global access to shift");
            let name = &k.buffers[buf as usize].name;
            let e = run(&program, g, &k, &inputs).expect_err("an out-of-bounds access must be reported");
            assert_eq!(e.kernel, kernel.name, "{e}");
            let text = e.to_string();
            assert!(text.contains(&kernel.name), "{text}");
            assert!(text.contains(&format!("`{name}`")) || text.contains(name.as_str()), "names `{name}`: {text}");
            assert!(text.contains("bounds") || text.contains("out of"), "{text}");
        }
    }
}

#[test]
fn an_index_one_past_an_inner_axis_is_caught_even_when_the_flat_index_is_in_bounds() {
    // Shifting the last index of a [4, 8] buffer by 1 stays inside the buffer's 32 elements for
    // most elements (it reads the next row), so only a per-axis check catches it.
    let graph = elementwise_chain();
    let inputs = inputs_for(&graph, 5);
    let (program, g) = generated(&graph, &Device::gpu(), Strategy::Elementwise);
    let mut k = program.kernels[g].clone();
    let orig = k.clone();
    let buf = shift_index(&mut k.body, &orig, false, 1).expect("a load to shift");
    let e = run(&program, g, &k, &inputs).expect_err("out of bounds on an axis");
    assert!(e.to_string().contains(&k.buffers[buf as usize].name), "{e}");
}

#[test]
fn the_whole_program_reports_a_planted_bug_with_the_kernel_name() {
    // Through `Program::run_interpreted`, as a user would see it.
    let graph = softmax(&[2, 48], -1);
    let inputs = inputs_for(&graph, 6);
    let (mut program, g) = generated(&graph, &Device::gpu(), Strategy::RowReduce);
    assert!(delete_barrier(&mut program.kernels[g].body, &mut 0));
    let e = program.run_interpreted(&inputs).expect_err("the race surfaces");
    let text = e.to_string();
    assert!(text.contains(&program.kernels[g].name) && text.contains("race"), "{text}");
}
