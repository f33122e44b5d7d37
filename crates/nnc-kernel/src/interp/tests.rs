//! Unit tests of the Kernel-IR interpreter: hand-built kernels whose GPU semantics (lock-step
//! lanes, barriers, workgroup memory) and planted bugs (races, out-of-bounds accesses, divergent
//! barriers) it must execute or report.

use super::*;
use crate::expr::{BufId, Var, VarGen};
use crate::kernel::{Buffer, Launch, Schedule};
use nnc_ir::BinaryOp::{Add, Div, Lt, Mul};
use proptest::prelude::*;

// ---------------------------------------------------------------- builders

fn buffer(name: &str, dtype: DType, shape: &[i64], space: Space, access: Access) -> Buffer {
    Buffer { name: name.into(), dtype, shape: shape.to_vec(), space, access }
}

fn input(name: &str, dtype: DType, shape: &[i64]) -> Buffer {
    buffer(name, dtype, shape, Space::Global, Access::Read)
}

fn output(name: &str, dtype: DType, shape: &[i64]) -> Buffer {
    buffer(name, dtype, shape, Space::Global, Access::Write)
}

fn shared(name: &str, dtype: DType, shape: &[i64]) -> Buffer {
    buffer(name, dtype, shape, Space::Workgroup, Access::ReadWrite)
}

fn kernel(name: &str, buffers: Vec<Buffer>, grid: [u32; 3], workgroup: [u32; 3], body: Vec<Stmt>) -> Kernel {
    Kernel {
        name: name.into(),
        buffers,
        launch: Launch { grid, workgroup },
        body,
        schedule: Schedule { workgroup_size: workgroup.iter().product(), ..Schedule::PLAIN },
        covers: vec![],
    }
}

fn tid(a: u8) -> Expr {
    Expr::Special(Special::ThreadId(a))
}

fn gid(a: u8) -> Expr {
    Expr::Special(Special::GroupId(a))
}

fn v(var: Var) -> Expr {
    Expr::Var(var)
}

fn f32v(xs: &[f64]) -> Value {
    Value::float(DType::F32, vec![xs.len()], xs.to_vec())
}

fn i32v(xs: &[i64]) -> Value {
    Value::int(DType::I32, vec![xs.len()], xs.to_vec())
}

fn floats(v: &Value) -> Vec<f64> {
    v.floats().unwrap().to_vec()
}

/// Runs and returns the globals, with the kernel's text in the panic message on failure.
fn run_ok(k: &Kernel, mut globals: Vec<Value>) -> Vec<Value> {
    if let Err(e) = run_kernel(k, &mut globals) {
        panic!("{e}\n{k}");
    }
    globals
}

fn run_err(k: &Kernel, mut globals: Vec<Value>) -> String {
    match run_kernel(k, &mut globals) {
        Ok(()) => panic!("expected an error from\n{k}"),
        Err(e) => {
            assert_eq!(e.kernel, k.name);
            e.to_string()
        }
    }
}

fn store(buf: u32, index: Vec<Expr>, value: Expr) -> Stmt {
    Stmt::Store { buf: BufId(buf), index, value }
}

fn load(buf: u32, dtype: DType, index: Vec<Expr>) -> Expr {
    Expr::load(BufId(buf), dtype, index)
}

fn iff(cond: Expr, then: Vec<Stmt>) -> Stmt {
    Stmt::If { cond, then, els: vec![] }
}

// Index arithmetic, spelled out (no folding) so the tests depend only on `Expr::binary`.
fn iadd(a: Expr, b: Expr) -> Expr {
    Expr::binary(Add, a, b)
}

fn isub(a: Expr, b: Expr) -> Expr {
    Expr::binary(nnc_ir::BinaryOp::Sub, a, b)
}

fn imul(a: Expr, b: Expr) -> Expr {
    Expr::binary(Mul, a, b)
}

fn idiv(a: Expr, b: Expr) -> Expr {
    Expr::binary(Div, a, b)
}

fn irem(a: Expr, b: Expr) -> Expr {
    Expr::binary(nnc_ir::BinaryOp::Rem, a, b)
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::binary(nnc_ir::BinaryOp::And, a, b)
}

fn lt(a: Expr, b: Expr) -> Expr {
    Expr::binary(Lt, a, b)
}

// ---------------------------------------------------------------- (1) elementwise

/// `out[i] = x[i] * 2 + 1` for `i = gid.x * wg + tid.x < n`.
fn elementwise(n: i64, wg: u32, guarded: bool) -> Kernel {
    let mut g = VarGen::new();
    let i = g.index();
    let f = DType::F32;
    let value = Expr::binary(Add, Expr::binary(Mul, load(0, f, vec![v(i)]), Expr::lit(2.0, f)), Expr::lit(1.0, f));
    let st = store(1, vec![v(i)], value);
    let body = vec![
        Stmt::Let { var: i, value: iadd(imul(gid(0), Expr::i64(wg as i64)), tid(0)) },
        if guarded { iff(lt(v(i), Expr::i64(n)), vec![st]) } else { st },
    ];
    let grid = (n as u32).div_ceil(wg);
    kernel("scale", vec![input("x", f, &[n]), output("y", f, &[n])], [grid, 1, 1], [wg, 1, 1], body)
}

#[test]
fn interp_elementwise() {
    let n = 1000;
    let k = elementwise(n, 64, true);
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.25 - 7.0).collect();
    let out = run_ok(&k, vec![f32v(&x), f32v(&vec![0.0; n as usize])]);
    let want: Vec<f64> = x.iter().map(|x| x * 2.0 + 1.0).collect();
    assert_eq!(floats(&out[1]), want, "{k}");
    assert_eq!(floats(&out[0]), x, "inputs are given back");
}

// ---------------------------------------------------------------- (2, 3) tree reduction

/// `out[r] = sum(x[r, :])`, one workgroup of `w` (a power of two) invocations per row:
/// strided partial sums, then a tree through workgroup memory. `skip_barrier` removes the
/// barrier after that step of the tree (0 = the one after filling `partial`).
fn row_sum(rows: i64, n: i64, w: u32, skip_barrier: Option<usize>) -> Kernel {
    let mut g = VarGen::new();
    let (acc, k, idx) = (g.fresh(DType::F32), g.index(), g.index());
    let f = DType::F32;
    let wl = w as i64;
    let mut body = vec![
        Stmt::Local { var: acc, init: Expr::lit(0.0, f) },
        Stmt::For {
            var: k,
            extent: Expr::i64((n + wl - 1) / wl),
            kind: LoopKind::Serial,
            body: vec![
                Stmt::Let { var: idx, value: iadd(imul(v(k), Expr::i64(wl)), tid(0)) },
                Stmt::Assign {
                    var: acc,
                    value: Expr::binary(
                        Add,
                        v(acc),
                        Expr::Load {
                            buf: BufId(0),
                            dtype: f,
                            index: vec![gid(0), v(idx)],
                            mask: Some(Box::new(lt(v(idx), Expr::i64(n)))),
                        },
                    ),
                },
            ],
        },
        store(2, vec![tid(0)], v(acc)),
    ];
    let mut step = 0;
    let mut s = wl / 2;
    loop {
        if skip_barrier != Some(step) {
            body.push(Stmt::Barrier);
        }
        if s == 0 {
            break;
        }
        let sum = Expr::binary(Add, load(2, f, vec![tid(0)]), load(2, f, vec![iadd(tid(0), Expr::i64(s))]));
        body.push(iff(lt(tid(0), Expr::i64(s)), vec![store(2, vec![tid(0)], sum)]));
        s /= 2;
        step += 1;
    }
    body.push(iff(
        Expr::binary(nnc_ir::BinaryOp::Eq, tid(0), Expr::i64(0)),
        vec![store(1, vec![gid(0)], load(2, f, vec![Expr::i64(0)]))],
    ));
    kernel(
        "row_sum",
        vec![input("x", f, &[rows, n]), output("sums", f, &[rows]), shared("partial", f, &[wl])],
        [rows as u32, 1, 1],
        [w, 1, 1],
        body,
    )
}

fn row_data(rows: i64, n: i64) -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..rows * n).map(|i| ((i * 7919) % 23 - 11) as f64).collect();
    let sums = x.chunks(n as usize).map(|r| r.iter().sum()).collect();
    (x, sums)
}

#[test]
fn interp_tree_reduction() {
    let (rows, n) = (3, 1000);
    let (x, want) = row_data(rows, n);
    for w in [1, 2, 64, 256] {
        let k = row_sum(rows, n, w, None);
        let out = run_ok(&k, vec![f32v(&x), f32v(&vec![0.0; rows as usize])]);
        assert_eq!(floats(&out[1]), want, "{k}");
    }
}

#[test]
fn interp_reduction_missing_barrier_is_a_race() {
    let (rows, n) = (2, 100);
    let (x, _) = row_data(rows, n);
    for skip in 0..4 {
        let k = row_sum(rows, n, 64, Some(skip));
        let e = run_err(&k, vec![f32v(&x), f32v(&vec![0.0; rows as usize])]);
        assert!(e.contains("race") && e.contains("barrier"), "{e}\n{k}");
        assert!(e.contains("`partial`") && e.contains("row_sum"), "{e}");
    }
}

// ---------------------------------------------------------------- (4) tiled matmul

/// `c = a · b` with `t`×`t` output tiles per workgroup and operand tiles staged through
/// workgroup memory, `k / t` tiles deep.
fn tiled_matmul(m: i64, n: i64, kk: i64, t: i64, second_barrier: bool) -> Kernel {
    let mut g = VarGen::new();
    let (row, col, acc, step, k) = (g.index(), g.index(), g.fresh(DType::F32), g.index(), g.index());
    let f = DType::F32;
    let (ty, tx) = (tid(1), tid(0));
    let mut tile_loop = vec![
        store(3, vec![ty.clone(), tx.clone()], load(0, f, vec![v(row), iadd(imul(v(step), Expr::i64(t)), tx.clone())])),
        store(4, vec![ty.clone(), tx.clone()], load(1, f, vec![iadd(imul(v(step), Expr::i64(t)), ty.clone()), v(col)])),
        Stmt::Barrier,
        Stmt::For {
            var: k,
            extent: Expr::i64(t),
            kind: LoopKind::Unroll,
            body: vec![Stmt::Assign {
                var: acc,
                value: Expr::binary(
                    Add,
                    v(acc),
                    Expr::binary(Mul, load(3, f, vec![ty.clone(), v(k)]), load(4, f, vec![v(k), tx.clone()])),
                ),
            }],
        },
    ];
    if second_barrier {
        tile_loop.push(Stmt::Barrier);
    }
    let body = vec![
        Stmt::Let { var: row, value: iadd(imul(gid(1), Expr::i64(t)), ty.clone()) },
        Stmt::Let { var: col, value: iadd(imul(gid(0), Expr::i64(t)), tx.clone()) },
        Stmt::Local { var: acc, init: Expr::lit(0.0, f) },
        Stmt::For { var: step, extent: Expr::i64(kk / t), kind: LoopKind::Serial, body: tile_loop },
        store(2, vec![v(row), v(col)], v(acc)),
    ];
    kernel(
        "matmul",
        vec![
            input("a", f, &[m, kk]),
            input("b", f, &[kk, n]),
            output("c", f, &[m, n]),
            shared("a_tile", f, &[t, t]),
            shared("b_tile", f, &[t, t]),
        ],
        [(n / t) as u32, (m / t) as u32, 1],
        [t as u32, t as u32, 1],
        body,
    )
}

#[test]
fn interp_tiled_matmul() {
    let (m, n, kk, t) = (8, 12, 8, 4);
    let a: Vec<f64> = (0..m * kk).map(|i| (i % 5) as f64 - 2.0).collect();
    let b: Vec<f64> = (0..kk * n).map(|i| (i % 7) as f64 * 0.5).collect();
    let mut want = vec![0.0; (m * n) as usize];
    for i in 0..m {
        for j in 0..n {
            want[(i * n + j) as usize] = (0..kk).map(|p| a[(i * kk + p) as usize] * b[(p * n + j) as usize]).sum();
        }
    }
    let k = tiled_matmul(m, n, kk, t, true);
    let out = run_ok(&k, vec![f32v(&a), f32v(&b), f32v(&vec![0.0; (m * n) as usize])]);
    assert_eq!(floats(&out[2]), want, "{k}");

    let k = tiled_matmul(m, n, kk, t, false);
    let e = run_err(&k, vec![f32v(&a), f32v(&b), f32v(&vec![0.0; (m * n) as usize])]);
    assert!(e.contains("race") && e.contains("a_tile") && e.contains("missing barrier"), "{e}\n{k}");
}

// ---------------------------------------------------------------- (5) bounds

#[test]
fn interp_out_of_bounds() {
    // 1000 elements, 16 workgroups of 64: invocation 1000 is the first outside.
    let k = elementwise(1000, 64, false);
    let e = run_err(&k, vec![f32v(&vec![0.0; 1000]), f32v(&vec![0.0; 1000])]);
    assert!(e.contains("`scale`") && e.contains("out-of-bounds load") && e.contains("`x`"), "{e}");
    assert!(e.contains("[1000]") && e.contains("gid=(15, 0, 0) tid=(40, 0, 0)"), "{e}");

    // The same load, masked: no error, and zeros where masked off.
    let mut g = VarGen::new();
    let i = g.index();
    let f = DType::F32;
    let masked =
        Expr::Load { buf: BufId(0), dtype: f, index: vec![v(i)], mask: Some(Box::new(lt(v(i), Expr::i64(10)))) };
    let k = kernel(
        "masked",
        vec![input("x", f, &[10]), output("y", f, &[16])],
        [2, 1, 1],
        [8, 1, 1],
        vec![Stmt::Let { var: i, value: iadd(imul(gid(0), Expr::i64(8)), tid(0)) }, store(1, vec![v(i)], masked)],
    );
    let x: Vec<f64> = (1..=10).map(f64::from).collect();
    let out = run_ok(&k, vec![f32v(&x), f32v(&[0.0; 16])]);
    let mut want = x.clone();
    want.resize(16, 0.0);
    assert_eq!(floats(&out[1]), want);

    // A select's unchosen side is not evaluated either.
    let k2 = Kernel {
        name: "sel".into(),
        body: vec![
            Stmt::Let { var: i, value: iadd(imul(gid(0), Expr::i64(8)), tid(0)) },
            store(1, vec![v(i)], Expr::select(lt(v(i), Expr::i64(10)), load(0, f, vec![v(i)]), Expr::lit(-1.0, f))),
        ],
        ..k.clone()
    };
    let out = run_ok(&k2, vec![f32v(&x), f32v(&[0.0; 16])]);
    let mut want = x.clone();
    want.resize(16, -1.0);
    assert_eq!(floats(&out[1]), want);

    // A multi-dimensional index is checked per axis, even when the flat offset is in range.
    let k3 = kernel(
        "axis",
        vec![input("m", f, &[4, 4]), output("y", f, &[1])],
        [1, 1, 1],
        [1, 1, 1],
        vec![store(1, vec![Expr::i64(0)], load(0, f, vec![Expr::i64(1), Expr::i64(5)]))],
    );
    let e = run_err(&k3, vec![f32v(&[0.0; 16]), f32v(&[0.0])]);
    assert!(e.contains("`m`") && e.contains("[1, 5]"), "{e}");
}

// ---------------------------------------------------------------- (6) barriers

#[test]
fn interp_barrier_in_divergent_control_flow() {
    let f = DType::F32;
    let bufs = || vec![output("y", f, &[8]), shared("s", f, &[8])];
    let k = kernel(
        "div_barrier",
        bufs(),
        [1, 1, 1],
        [8, 1, 1],
        vec![iff(lt(tid(0), Expr::i64(2)), vec![Stmt::Barrier]), store(0, vec![tid(0)], Expr::lit(1.0, f))],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 8])]);
    assert!(e.contains("barrier in non-uniform control flow"), "{e}");

    // In a loop whose extent differs between invocations.
    let mut g = VarGen::new();
    let i = g.index();
    let k = kernel(
        "loop_barrier",
        bufs(),
        [1, 1, 1],
        [8, 1, 1],
        vec![Stmt::For { var: i, extent: tid(0), kind: LoopKind::Serial, body: vec![Stmt::Barrier] }],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 8])]);
    assert!(e.contains("barrier in non-uniform control flow"), "{e}");

    // Under a condition that is the same everywhere, it is fine.
    let k = kernel(
        "uniform_barrier",
        bufs(),
        [2, 1, 1],
        [8, 1, 1],
        vec![iff(lt(gid(0), Expr::i64(1)), vec![Stmt::Barrier]), store(0, vec![tid(0)], Expr::lit(1.0, f))],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 8])]);
    assert!(e.contains("race") && e.contains("`y`"), "both workgroups store y: {e}");
}

#[test]
fn interp_uninitialized_workgroup_memory() {
    let f = DType::F32;
    let k = kernel(
        "uninit",
        vec![output("y", f, &[4]), shared("s", f, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![
            iff(lt(tid(0), Expr::i64(3)), vec![store(1, vec![tid(0)], Expr::lit(1.0, f))]),
            Stmt::Barrier,
            store(0, vec![tid(0)], load(1, f, vec![tid(0)])),
        ],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 4])]);
    assert!(e.contains("uninitialized workgroup memory") && e.contains("`s`") && e.contains("[3]"), "{e}");
}

// ---------------------------------------------------------------- (7) global races

#[test]
fn interp_global_races() {
    let f = DType::F32;
    let k = kernel(
        "same_element",
        vec![output("y", f, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![store(0, vec![Expr::i64(0)], Expr::lit(1.0, f))],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 4])]);
    assert!(e.contains("race") && e.contains("`y`") && e.contains("[0]"), "{e}");

    // Across workgroups (and across batches of independent workgroups).
    let k = kernel(
        "across_groups",
        vec![output("y", f, &[4])],
        [2000, 1, 1],
        [1, 1, 1],
        vec![iff(
            Expr::binary(nnc_ir::BinaryOp::Ge, gid(0), Expr::i64(1995)),
            vec![store(0, vec![Expr::i64(2)], Expr::lit(1.0, f))],
        )],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 4])]);
    assert!(e.contains("race") && e.contains("gid=(1995, 0, 0)") && e.contains("gid=(1996, 0, 0)"), "{e}");

    // Reading what another invocation wrote (in place shift).
    let inout = buffer("z", f, &[8], Space::Global, Access::ReadWrite);
    let k = kernel(
        "shift",
        vec![inout],
        [1, 1, 1],
        [7, 1, 1],
        vec![store(0, vec![tid(0)], load(0, f, vec![iadd(tid(0), Expr::i64(1))]))],
    );
    let e = run_err(&k, vec![f32v(&[0.0; 8])]);
    assert!(e.contains("race") && e.contains("read by") && e.contains("`z`"), "{e}");

    // Each invocation updating its own element in place is fine.
    let k = kernel(
        "own",
        vec![buffer("z", f, &[8], Space::Global, Access::ReadWrite)],
        [1, 1, 1],
        [8, 1, 1],
        vec![store(0, vec![tid(0)], Expr::binary(Add, load(0, f, vec![tid(0)]), Expr::lit(1.0, f)))],
    );
    let out = run_ok(&k, vec![f32v(&[1.0; 8])]);
    assert_eq!(floats(&out[0]), vec![2.0; 8]);
}

// ---------------------------------------------------------------- (8) division by zero

#[test]
fn interp_integer_division_by_zero() {
    let i = DType::I32;
    let k = kernel(
        "idiv",
        vec![input("a", i, &[4]), input("b", i, &[4]), output("q", i, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![store(2, vec![tid(0)], Expr::binary(Div, load(0, i, vec![tid(0)]), load(1, i, vec![tid(0)])))],
    );
    let e = run_err(&k, vec![i32v(&[8, 9, 10, 11]), i32v(&[2, 3, 0, 1]), i32v(&[0; 4])]);
    assert!(e.contains("`idiv`") && e.contains("division by zero") && e.contains("tid=(2, 0, 0)"), "{e}");
    let out = run_ok(&k, vec![i32v(&[8, 9, 10, -11]), i32v(&[2, 3, 5, 2]), i32v(&[0; 4])]);
    assert_eq!(out[2].ints().unwrap(), [4, 3, 2, -5]);

    // Only where a select chooses the division.
    let b_nonzero = Expr::binary(nnc_ir::BinaryOp::Ne, load(1, i, vec![tid(0)]), Expr::lit(0.0, i));
    let k = Kernel {
        name: "safe_div".into(),
        body: vec![store(
            2,
            vec![tid(0)],
            Expr::select(
                b_nonzero,
                Expr::binary(Div, load(0, i, vec![tid(0)]), load(1, i, vec![tid(0)])),
                Expr::lit(-1.0, i),
            ),
        )],
        ..k
    };
    let out = run_ok(&k, vec![i32v(&[8, 9, 10, 11]), i32v(&[2, 3, 0, 1]), i32v(&[0; 4])]);
    assert_eq!(out[2].ints().unwrap(), [4, 3, -1, 11]);
}

// ---------------------------------------------------------------- (9) CPU-style schedules

/// Workgroups of one invocation, each handling 4 consecutive elements in a vector loop:
/// `y[i] = relu(x[i]) + i`.
fn cpu_kernel(groups: u32) -> Kernel {
    let mut g = VarGen::new();
    let (j, i) = (g.index(), g.index());
    let f = DType::F32;
    let n = groups as i64 * 4;
    let value = Expr::binary(Add, Expr::unary(UnaryOp::Relu, load(0, f, vec![v(i)])), Expr::cast(f, v(i)));
    kernel(
        "cpu",
        vec![input("x", f, &[n]), output("y", f, &[n])],
        [groups, 1, 1],
        [1, 1, 1],
        vec![Stmt::For {
            var: j,
            extent: Expr::i64(4),
            kind: LoopKind::Vector(4),
            body: vec![
                Stmt::Let { var: i, value: iadd(imul(gid(0), Expr::i64(4)), v(j)) },
                store(1, vec![v(i)], value),
            ],
        }],
    )
}

#[test]
fn interp_cpu_style_vector_loop() {
    for groups in [1, 3, 1024, 2500] {
        let k = cpu_kernel(groups);
        let n = groups as usize * 4;
        let x: Vec<f64> = (0..n).map(|i| (i % 9) as f64 - 4.0).collect();
        let out = run_ok(&k, vec![f32v(&x), f32v(&vec![0.0; n])]);
        let want: Vec<f64> = x.iter().enumerate().map(|(i, x)| x.max(0.0) + i as f64).collect();
        assert_eq!(floats(&out[1]), want, "{groups} groups");
    }
}

// ---------------------------------------------------------------- divergence and registers

#[test]
fn interp_divergent_loops_and_assignments() {
    // y[t] = sum_{k < t} k, with a per-lane extent, plus an else branch assigning under a mask.
    let mut g = VarGen::new();
    let (acc, k) = (g.fresh(DType::I64), g.index());
    let ty = DType::I64;
    let body = vec![
        Stmt::Local { var: acc, init: Expr::i64(100) },
        Stmt::If {
            cond: lt(tid(0), Expr::i64(5)),
            then: vec![
                Stmt::Assign { var: acc, value: Expr::i64(0) },
                Stmt::For {
                    var: k,
                    extent: tid(0),
                    kind: LoopKind::Serial,
                    body: vec![Stmt::Assign { var: acc, value: iadd(v(acc), v(k)) }],
                },
            ],
            els: vec![Stmt::Assign { var: acc, value: iadd(v(acc), tid(0)) }],
        },
        store(0, vec![tid(0)], v(acc)),
    ];
    let k = kernel("diverge", vec![output("y", ty, &[8])], [1, 1, 1], [8, 1, 1], body);
    let out = run_ok(&k, vec![Value::int(ty, vec![8], vec![0; 8])]);
    assert_eq!(out[0].ints().unwrap(), [0, 0, 1, 3, 6, 105, 106, 107], "{k}");
}

// ---------------------------------------------------------------- strictness of the setup

#[test]
fn interp_checks_globals_and_schedules() {
    let k = elementwise(10, 4, true);
    let e = run_err(&k, vec![f32v(&[0.0; 10])]);
    assert!(e.contains("takes 2 global"), "{e}");
    let e = run_err(&k, vec![f32v(&[0.0; 10]), f32v(&[0.0; 9])]);
    assert!(e.contains("`y`") && e.contains("9 elements"), "{e}");
    let e = run_err(&k, vec![f32v(&[0.0; 10]), i32v(&[0; 10])]);
    assert!(e.contains("`y`") && e.contains("i32"), "{e}");

    let f = DType::F32;
    let k = kernel(
        "axis",
        vec![output("y", f, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![store(0, vec![Expr::Axis(0)], Expr::lit(0.0, f))],
    );
    assert!(run_err(&k, vec![f32v(&[0.0; 4])]).contains("not scheduled"));

    let mut g = VarGen::new();
    let x = g.index();
    let k = kernel(
        "undeclared",
        vec![output("y", f, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![store(0, vec![v(x)], Expr::lit(0.0, f))],
    );
    assert!(run_err(&k, vec![f32v(&[0.0; 4])]).contains("not declared"));

    let k = kernel(
        "read_only",
        vec![input("x", f, &[4])],
        [1, 1, 1],
        [4, 1, 1],
        vec![store(0, vec![tid(0)], Expr::lit(0.0, f))],
    );
    assert!(run_err(&k, vec![f32v(&[0.0; 4])]).contains("read-only"));
}

// ---------------------------------------------------------------- (10) properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn interp_prop_reduction(rows in 1i64..4, n in 1i64..700, w_log in 0u32..9, seed in 0i64..1000) {
        let w = 1u32 << w_log;
        let k = row_sum(rows, n, w, None);
        let x: Vec<f64> = (0..rows * n).map(|i| ((i * 31 + seed) % 17 - 8) as f64).collect();
        let want: Vec<f64> = x.chunks(n as usize).map(|r| r.iter().sum()).collect();
        let out = run_ok(&k, vec![f32v(&x), f32v(&vec![0.0; rows as usize])]);
        prop_assert_eq!(floats(&out[1]), want, "{}", k);
    }

    #[test]
    fn interp_prop_elementwise(n in 1i64..3000, wg in prop::sample::select(vec![1u32, 3, 32, 64, 256]), seed in 0i64..100) {
        let k = elementwise(n, wg, true);
        let x: Vec<f64> = (0..n).map(|i| ((i * 13 + seed) % 101) as f64 / 8.0 - 6.0).collect();
        let out = run_ok(&k, vec![f32v(&x), f32v(&vec![0.0; n as usize])]);
        let want: Vec<f64> = x.iter().map(|x| ((*x as f32) * 2.0 + 1.0) as f64).collect();
        prop_assert_eq!(floats(&out[1]), want, "{}", k);
    }
}

// ---------------------------------------------------------------- speed

/// A direct 3×3 convolution (padding 1), one invocation per output element in workgroups of
/// 256, each looping serially over its reduction: the shape of a scheduled ResNet conv.
fn conv3x3(c: i64, co: i64, h: i64, w: i64) -> Kernel {
    use nnc_ir::BinaryOp::{Ge, Rem};
    let mut g = VarGen::new();
    let (o, oc, p, y, x, acc, ci, ky, kx, iy, ix, inb) = (
        g.index(),
        g.index(),
        g.index(),
        g.index(),
        g.index(),
        g.fresh(DType::F32),
        g.index(),
        g.index(),
        g.index(),
        g.index(),
        g.index(),
        g.fresh(DType::Bool),
    );
    let f = DType::F32;
    let n = co * h * w;
    let ge0 = |e: Expr| Expr::binary(Ge, e, Expr::i64(0));
    let inner = vec![
        Stmt::Let { var: iy, value: isub(iadd(v(y), v(ky)), Expr::i64(1)) },
        Stmt::Let { var: ix, value: isub(iadd(v(x), v(kx)), Expr::i64(1)) },
        Stmt::Let {
            var: inb,
            value: and(and(ge0(v(iy)), lt(v(iy), Expr::i64(h))), and(ge0(v(ix)), lt(v(ix), Expr::i64(w)))),
        },
        Stmt::Assign {
            var: acc,
            value: Expr::binary(
                Add,
                v(acc),
                Expr::binary(
                    Mul,
                    Expr::Load {
                        buf: BufId(0),
                        dtype: f,
                        index: vec![v(ci), v(iy), v(ix)],
                        mask: Some(Box::new(v(inb))),
                    },
                    load(1, f, vec![v(oc), v(ci), v(ky), v(kx)]),
                ),
            ),
        },
    ];
    let lp = |var, ext, body| Stmt::For { var, extent: Expr::i64(ext), kind: LoopKind::Serial, body };
    let body = vec![
        Stmt::Let { var: o, value: iadd(imul(gid(0), Expr::i64(256)), tid(0)) },
        iff(
            lt(v(o), Expr::i64(n)),
            vec![
                Stmt::Let { var: oc, value: idiv(v(o), Expr::i64(h * w)) },
                Stmt::Let { var: p, value: Expr::binary(Rem, v(o), Expr::i64(h * w)) },
                Stmt::Let { var: y, value: idiv(v(p), Expr::i64(w)) },
                Stmt::Let { var: x, value: irem(v(p), Expr::i64(w)) },
                Stmt::Local { var: acc, init: Expr::lit(0.0, f) },
                lp(ci, c, vec![lp(ky, 3, vec![lp(kx, 3, inner)])]),
                store(2, vec![v(oc), v(y), v(x)], v(acc)),
            ],
        ),
    ];
    kernel(
        "conv3x3",
        vec![input("x", f, &[c, h, w]), input("w", f, &[co, c, 3, 3]), output("y", f, &[co, h, w])],
        [(n as u32).div_ceil(256), 1, 1],
        [256, 1, 1],
        body,
    )
}

#[test]
fn interp_speed_conv() {
    let (c, co, h, w) = if cfg!(debug_assertions) { (4, 4, 8, 8) } else { (64, 64, 28, 28) };
    let k = conv3x3(c, co, h, w);
    let x: Vec<f64> = (0..c * h * w).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
    let wt: Vec<f64> = (0..co * c * 9).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
    let start = std::time::Instant::now();
    let out = run_ok(&k, vec![f32v(&x), f32v(&wt), f32v(&vec![0.0; (co * h * w) as usize])]);
    let secs = start.elapsed().as_secs_f64();
    let y = floats(&out[2]);
    for (o, &got) in y.iter().enumerate() {
        let (oc, yy, xx) = (o as i64 / (h * w), o as i64 % (h * w) / w, o as i64 % w);
        let mut want = 0.0;
        for ci in 0..c {
            for ky in 0..3 {
                for kx in 0..3 {
                    let (iy, ix) = (yy + ky - 1, xx + kx - 1);
                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                        want +=
                            x[(ci * h * w + iy * w + ix) as usize] * wt[(((oc * c + ci) * 3 + ky) * 3 + kx) as usize];
                    }
                }
            }
        }
        assert_eq!(got, want, "output {o}");
    }
    let macs = (co * h * w * c * 9) as f64;
    // Per inner iteration: 4 for iy/ix, 7 for the bounds, 2 loads, mul, add, assignment.
    let lane_ops = macs * 16.0;
    eprintln!(
        "conv3x3 {c}->{co} {h}x{w}: {macs:.0} MACs in {secs:.3}s = {:.1} M MAC/s, {:.0} M lane-ops/s",
        macs / secs / 1e6,
        lane_ops / secs / 1e6
    );
}

#[test]
fn fast_binary_is_lanes_binary() {
    use nnc_ir::BinaryOp::*;
    let floats =
        [0.0, -0.0, 1.0, -1.5, 3.25, 1e30, -1e-30, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 16777217.0, 0.1];
    let ints = [0, 1, -1, 7, -8, 255, 256, i64::MAX, i64::MIN, 1 << 40, -(1 << 33), 65535];
    let ops = [Add, Sub, Mul, Div, Rem, Pow, Max, Min, And, Or, Xor, Eq, Ne, Lt, Le, Gt, Ge];
    let make = |d: DType, k: usize, n: usize| -> Value {
        if d.is_float() {
            Value::float(d, vec![n], (0..n).map(|j| floats[(j * 5 + k) % floats.len()]).collect())
        } else if d.is_int() {
            Value::int(d, vec![n], (0..n).map(|j| ints[(j * 7 + k) % ints.len()]).collect())
        } else {
            Value::bool(vec![n], (0..n).map(|j| (j + k).is_multiple_of(3)).collect())
        }
    };
    let same = |x: &Value, y: &Value| match (&x.data, &y.data) {
        (Data::Float(p), Data::Float(q)) => {
            p.iter().zip(q).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
        }
        _ => x == y,
    };
    let mut checked = 0;
    for d in DType::ALL {
        for op in ops {
            for (la, lb) in [(144, 144), (1, 144), (144, 1), (1, 1)] {
                for k in 0..3 {
                    let (a, b) = (make(d, k, la), make(d, k + 1, lb));
                    let n = la.max(lb);
                    let Some(fast) = fast_binary(op, &a, &b, n) else { continue };
                    let want = lanes::binary(op, &broadcast_to(&a, n), &broadcast_to(&b, n), &[n]).unwrap();
                    assert!(same(&fast, &want), "{} on {d}: {fast:?} vs {want:?}", op.name());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

fn broadcast_to(v: &Value, n: usize) -> Value {
    if v.numel() == n {
        v.clone()
    } else {
        broadcast(v, n)
    }
}

#[test]
fn interp_private_memory() {
    // Each invocation writes 4 values to its private scratch, then reads them back reversed.
    let mut g = VarGen::new();
    let (j, i) = (g.index(), g.index());
    let ty = DType::I32;
    let private = buffer("scratch", ty, &[4], Space::Private, Access::ReadWrite);
    let fill = Stmt::For {
        var: j,
        extent: Expr::i64(4),
        kind: LoopKind::Unroll,
        body: vec![store(1, vec![v(j)], Expr::cast(ty, iadd(imul(gid(0), Expr::i64(10)), v(j))))],
    };
    let read = Stmt::For {
        var: i,
        extent: Expr::i64(4),
        kind: LoopKind::Serial,
        body: vec![store(0, vec![iadd(imul(gid(0), Expr::i64(4)), v(i))], load(1, ty, vec![isub(Expr::i64(3), v(i))]))],
    };
    for groups in [1u32, 5, 1500] {
        let n = groups as i64 * 4;
        let k = kernel(
            "private",
            vec![output("y", ty, &[n]), private.clone()],
            [groups, 1, 1],
            [1, 1, 1],
            vec![fill.clone(), read.clone()],
        );
        let out = run_ok(&k, vec![i32v(&vec![0; n as usize])]);
        let want: Vec<i64> = (0..n).map(|e| (e / 4) * 10 + 3 - e % 4).collect();
        assert_eq!(out[0].ints().unwrap(), want, "{k}");
    }
    let k = kernel("private_uninit", vec![output("y", ty, &[4]), private], [1, 1, 1], [1, 1, 1], vec![read]);
    let e = run_err(&k, vec![i32v(&[0; 4])]);
    assert!(e.contains("uninitialized private memory") && e.contains("`scratch`"), "{e}");
}

#[test]
fn interp_speed_tiled_matmul() {
    let (m, n, kk, t) = if cfg!(debug_assertions) { (16, 16, 16, 8) } else { (256, 256, 256, 16) };
    let k = tiled_matmul(m, n, kk, t, true);
    let a: Vec<f64> = (0..m * kk).map(|i| (i % 5) as f64 - 2.0).collect();
    let b: Vec<f64> = (0..kk * n).map(|i| (i % 7) as f64 * 0.5).collect();
    let start = std::time::Instant::now();
    let out = run_ok(&k, vec![f32v(&a), f32v(&b), f32v(&vec![0.0; (m * n) as usize])]);
    let secs = start.elapsed().as_secs_f64();
    let c = floats(&out[2]);
    for (i, j) in [(0, 0), (m - 1, n - 1), (m / 2, 3)] {
        let want: f64 = (0..kk).map(|p| a[(i * kk + p) as usize] * b[(p * n + j) as usize]).sum();
        assert_eq!(c[(i * n + j) as usize], want);
    }
    let macs = (m * n * kk) as f64;
    eprintln!("tiled matmul {m}x{n}x{kk} (tile {t}): {macs:.0} MACs in {secs:.3}s = {:.1} M MAC/s", macs / secs / 1e6);
}
