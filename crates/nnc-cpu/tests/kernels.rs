//! Every Kernel-IR construct, natively vs the Kernel-IR interpreter, on hand-built kernels: every
//! unary and binary op on every dtype it applies to, every cast, select and masked loads that
//! must not touch memory on the side not taken, `if`, locals, nested, unrolled and vector loops,
//! private buffers, 3-D grids, and the error statuses.

use nnc_cpu::{compile_kernels, EmitOptions, Status};
use nnc_interp::lanes::Value;
use nnc_ir::{BinaryOp, DType, TensorData, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Special, Var};
use nnc_kernel::interp::run_kernel;
use nnc_kernel::kernel::{Access, Buffer, Kernel, Launch, LoopKind, Schedule, Space, Stmt};

fn buf(name: &str, dtype: DType, shape: &[i64], access: Access) -> Buffer {
    Buffer { name: name.into(), dtype, shape: shape.to_vec(), space: Space::Global, access }
}

fn kernel(name: &str, buffers: Vec<Buffer>, grid: [u32; 3], body: Vec<Stmt>) -> Kernel {
    Kernel {
        name: name.into(),
        buffers,
        launch: Launch { grid, workgroup: [1, 1, 1] },
        body,
        schedule: Schedule::PLAIN,
        covers: vec![],
    }
}

fn gid(a: u8) -> Expr {
    Expr::Special(Special::GroupId(a))
}

fn var(id: u32, dtype: DType) -> Var {
    Var { id, dtype }
}

/// Runs `k` natively and through the interpreter on `globals` (one tensor per global buffer);
/// returns both results (or the native status / interpreter error).
fn run_both(k: &Kernel, globals: &[TensorData]) -> (Result<Vec<TensorData>, u32>, Result<Vec<TensorData>, String>) {
    run_both_with(k, globals, &EmitOptions { verify: true, ..Default::default() })
}

fn run_both_with(
    k: &Kernel,
    globals: &[TensorData],
    options: &EmitOptions,
) -> (Result<Vec<TensorData>, u32>, Result<Vec<TensorData>, String>) {
    let mut values: Vec<Value> = globals.iter().map(Value::from_tensor).collect();
    let interp = run_kernel(k, &mut values)
        .map(|_| values.iter().map(|v| v.to_tensor().unwrap()).collect())
        .map_err(|e| e.to_string());
    let code = compile_kernels(std::slice::from_ref(k), options).unwrap_or_else(|e| panic!("{e}\n{}", k));
    let mut bytes: Vec<Vec<u8>> = globals.iter().map(|t| t.bytes().to_vec()).collect();
    let ptrs: Vec<*mut u8> = bytes.iter_mut().map(|b| b.as_mut_ptr()).collect();
    let status = unsafe { code.function(0)(ptrs.as_ptr(), 0, k.launch.workgroups()) };
    let native = if status == 0 {
        Ok(globals
            .iter()
            .zip(bytes)
            .map(|(t, b)| TensorData::from_bytes(t.dtype(), t.shape().to_vec(), b.into()).unwrap())
            .collect())
    } else {
        Err(status)
    };
    (native, interp)
}

fn same(a: &TensorData, b: &TensorData) -> bool {
    if a.dtype().is_float() {
        a.to_f64_vec().iter().zip(b.to_f64_vec()).all(|(&x, y)| {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()) || (x == y) || (x - y).abs() <= 1e-6 * x.abs()
        })
    } else {
        a.to_i64_vec() == b.to_i64_vec()
    }
}

fn assert_match(k: &Kernel, globals: &[TensorData]) {
    assert_match_with(k, globals, &EmitOptions { verify: true, ..Default::default() });
}

fn assert_match_with(k: &Kernel, globals: &[TensorData], options: &EmitOptions) {
    let (native, interp) = run_both_with(k, globals, options);
    let interp = interp.unwrap_or_else(|e| panic!("interpreter: {e}\n{}", k));
    let native = native.unwrap_or_else(|s| panic!("native status {s}\n{}", k));
    for (i, (n, e)) in native.iter().zip(&interp).enumerate() {
        assert!(same(e, n), "buffer {i}: expected {:?}, found {:?}\n{}", e.to_f64_vec(), n.to_f64_vec(), k);
    }
}

const FLOATS: [f64; 12] = [0.0, -0.0, 1.5, -2.5, 2.5, 0.5, f64::NAN, f64::INFINITY, -f64::INFINITY, 3.75, -0.3, 1e6];
const INTS: [i64; 12] = [0, 1, -1, 7, -7, 127, -128, 255, 1000, -1000, i64::MAX, i64::MIN];

fn data(dtype: DType, n: usize, shift: usize) -> TensorData {
    if dtype.is_float() {
        let v: Vec<f64> = (0..n).map(|i| FLOATS[(i + shift) % FLOATS.len()]).collect();
        TensorData::from_f64(dtype, vec![n], &v)
    } else if dtype == DType::Bool {
        let v: Vec<i64> = (0..n).map(|i| (i + shift).is_multiple_of(3) as i64).collect();
        TensorData::from_i64(dtype, vec![n], &v)
    } else {
        let v: Vec<i64> = (0..n).map(|i| INTS[(i + shift) % INTS.len()]).collect();
        TensorData::from_i64(dtype, vec![n], &v)
    }
}

fn zeros(dtype: DType, n: usize) -> TensorData {
    TensorData::from_f64(dtype, vec![n], &vec![0.0; n])
}

fn load(b: u32, dtype: DType, i: Expr) -> Expr {
    Expr::load(BufId(b), dtype, vec![i])
}

/// `out[g] = e(a[g], b[g])` over 12 (or 144 for pairs) elements.
fn map2(dtype: DType, out: DType, f: impl Fn(Expr, Expr) -> Expr) {
    let n = 144usize;
    let a = load(0, dtype, gid(0));
    let b = load(1, dtype, gid(0));
    let k = kernel(
        "map2",
        vec![
            buf("a", dtype, &[n as i64], Access::Read),
            buf("b", dtype, &[n as i64], Access::Read),
            buf("o", out, &[n as i64], Access::Write),
        ],
        [n as u32, 1, 1],
        vec![Stmt::Store { buf: BufId(2), index: vec![gid(0)], value: f(a, b) }],
    );
    // Pairs: a cycles fast, b slow.
    let av = data(dtype, n, 0);
    let bv = {
        let base = data(dtype, 12, 0);
        let idx: Vec<usize> = (0..n).map(|i| i / 12).collect();
        if dtype.is_float() {
            let v = base.to_f64_vec();
            TensorData::from_f64(dtype, vec![n], &idx.iter().map(|&i| v[i]).collect::<Vec<_>>())
        } else {
            let v = base.to_i64_vec();
            TensorData::from_i64(dtype, vec![n], &idx.iter().map(|&i| v[i]).collect::<Vec<_>>())
        }
    };
    assert_match(&k, &[av, bv, zeros(out, n)]);
}

const FLOAT_TYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const INT_TYPES: [DType; 8] =
    [DType::I8, DType::I16, DType::I32, DType::I64, DType::U8, DType::U16, DType::U32, DType::U64];

const UNARY_FLOAT: [UnaryOp; 27] = [
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Relu,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Rsqrt,
    UnaryOp::Reciprocal,
    UnaryOp::Sin,
    UnaryOp::Cos,
    UnaryOp::Tan,
    UnaryOp::Asin,
    UnaryOp::Acos,
    UnaryOp::Atan,
    UnaryOp::Sinh,
    UnaryOp::Cosh,
    UnaryOp::Tanh,
    UnaryOp::Asinh,
    UnaryOp::Acosh,
    UnaryOp::Atanh,
    UnaryOp::Sigmoid,
    UnaryOp::Erf,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
    UnaryOp::IsNan,
];

#[test]
fn every_float_unary_op_on_every_float_dtype() {
    for d in FLOAT_TYPES {
        for op in UNARY_FLOAT.iter().copied().chain([UnaryOp::IsInf]) {
            let out = if matches!(op, UnaryOp::IsNan | UnaryOp::IsInf) { DType::Bool } else { d };
            map2(d, out, |a, _| Expr::unary(op, a));
        }
    }
}

#[test]
fn integer_and_bool_unary_ops() {
    for d in INT_TYPES {
        for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Relu] {
            map2(d, d, |a, _| Expr::unary(op, a));
        }
    }
    map2(DType::Bool, DType::Bool, |a, _| Expr::unary(UnaryOp::Not, a));
}

#[test]
fn every_binary_op_on_every_dtype() {
    use BinaryOp::*;
    for d in FLOAT_TYPES {
        for op in [Add, Sub, Mul, Div, Rem, Pow, Max, Min] {
            map2(d, d, |a, b| Expr::binary(op, a, b));
        }
        for op in [Eq, Ne, Lt, Le, Gt, Ge] {
            map2(d, DType::Bool, |a, b| Expr::binary(op, a, b));
        }
    }
    for d in INT_TYPES {
        for op in [Add, Sub, Mul, Max, Min] {
            map2(d, d, |a, b| Expr::binary(op, a, b));
        }
        for op in [Eq, Ne, Lt, Le, Gt, Ge] {
            map2(d, DType::Bool, |a, b| Expr::binary(op, a, b));
        }
        // Division, remainder and pow where the interpreter defines them (non-zero divisor,
        // non-negative exponent): select them only where safe.
        for op in [Div, Rem] {
            map2(d, d, |a, b| {
                let zero = Expr::lit(0.0, d);
                let nz = Expr::binary(Ne, b.clone(), zero.clone());
                Expr::select(nz, Expr::binary(op, a, b), zero)
            });
        }
        map2(d, d, |a, b| {
            let zero = Expr::lit(0.0, d);
            let small = Expr::cast(d, Expr::binary(Rem, Expr::cast(DType::I64, b), Expr::i64(9)));
            let ok = Expr::binary(Ge, small.clone(), zero.clone());
            Expr::select(ok, Expr::binary(Pow, a, small), zero)
        });
    }
    for op in [And, Or, Xor, Eq, Ne, Lt, Le, Gt, Ge] {
        map2(DType::Bool, DType::Bool, |a, b| Expr::binary(op, a, b));
    }
}

#[test]
fn every_cast() {
    for from in nnc_ir::DType::ALL {
        for to in nnc_ir::DType::ALL {
            map2(from, to, |a, _| Expr::cast(to, a));
        }
    }
    // Float → int saturation and NaN → 0 with large values.
    for to in INT_TYPES {
        let k = kernel(
            "sat",
            vec![buf("a", DType::F64, &[6], Access::Read), buf("o", to, &[6], Access::Write)],
            [6, 1, 1],
            vec![Stmt::Store {
                buf: BufId(1),
                index: vec![gid(0)],
                value: Expr::cast(to, load(0, DType::F64, gid(0))),
            }],
        );
        let a = TensorData::from_f64(DType::F64, vec![6], &[1e20, -1e20, f64::NAN, 300.7, -300.7, 65536.0]);
        assert_match(&k, &[a, zeros(to, 6)]);
    }
}

#[test]
fn select_and_masked_loads_touch_only_the_chosen_side() {
    // o[g] = select(g < 4, a[g], a[g + 1000]) and a masked load past the end: the interpreter
    // would report an out-of-bounds access, native code would read wild memory.
    let n = 8;
    let inb = Expr::binary(BinaryOp::Lt, gid(0), Expr::i64(4));
    let far = Expr::add_index(gid(0), Expr::i64(1 << 40));
    let k = kernel(
        "select",
        vec![
            buf("a", DType::F32, &[n], Access::Read),
            buf("o", DType::F32, &[n], Access::Write),
            buf("p", DType::F32, &[n], Access::Write),
            buf("q", DType::I32, &[n], Access::Write),
        ],
        [n as u32, 1, 1],
        vec![
            Stmt::Store {
                buf: BufId(1),
                index: vec![gid(0)],
                value: Expr::select(inb.clone(), load(0, DType::F32, gid(0)), load(0, DType::F32, far.clone())),
            },
            Stmt::Store {
                buf: BufId(2),
                index: vec![gid(0)],
                value: Expr::Load {
                    buf: BufId(0),
                    dtype: DType::F32,
                    index: vec![far],
                    mask: Some(Box::new(Expr::bool(false))),
                },
            },
            // Integer division only on the chosen side.
            Stmt::Store {
                buf: BufId(3),
                index: vec![gid(0)],
                value: Expr::select(
                    inb,
                    Expr::lit(7.0, DType::I32),
                    Expr::binary(BinaryOp::Div, Expr::lit(7.0, DType::I32), Expr::lit(0.0, DType::I32)),
                ),
            },
        ],
    );
    let a = data(DType::F32, n as usize, 2);
    // Only the first 4 lanes are valid for the far side to be skipped; lanes 4.. pick the far
    // side, so restrict the grid to 4 for the comparison.
    let mut k4 = k.clone();
    k4.launch.grid = [4, 1, 1];
    assert_match(&k4, &[a, zeros(DType::F32, 8), zeros(DType::F32, 8), zeros(DType::I32, 8)]);
}

#[test]
fn division_by_zero_and_negative_exponents_are_statuses() {
    for (op, status) in [(BinaryOp::Div, Status::DivisionByZero), (BinaryOp::Rem, Status::RemainderByZero)] {
        for d in INT_TYPES {
            let k = kernel(
                "div0",
                vec![buf("a", d, &[4], Access::Read), buf("o", d, &[4], Access::Write)],
                [4, 1, 1],
                vec![Stmt::Store {
                    buf: BufId(1),
                    index: vec![gid(0)],
                    value: Expr::binary(op, Expr::lit(5.0, d), load(0, d, gid(0))),
                }],
            );
            let (native, interp) = run_both(&k, &[TensorData::from_i64(d, vec![4], &[1, 2, 0, 3]), zeros(d, 4)]);
            assert!(interp.is_err());
            assert_eq!(native.err(), Some(status as u32));
        }
    }
    let k = kernel(
        "pow",
        vec![buf("a", DType::I32, &[2], Access::Read), buf("o", DType::I32, &[2], Access::Write)],
        [2, 1, 1],
        vec![Stmt::Store {
            buf: BufId(1),
            index: vec![gid(0)],
            value: Expr::binary(BinaryOp::Pow, Expr::lit(2.0, DType::I32), load(0, DType::I32, gid(0))),
        }],
    );
    let (native, _) = run_both(&k, &[TensorData::from_i64(DType::I32, vec![2], &[3, -1]), zeros(DType::I32, 2)]);
    assert_eq!(native.err(), Some(Status::NegativeExponent as u32));
    // A data-dependent index out of bounds is a status, not a crash.
    let k = kernel(
        "gather",
        vec![buf("i", DType::I64, &[2], Access::Read), buf("o", DType::F32, &[2], Access::Write)],
        [2, 1, 1],
        vec![Stmt::Store {
            buf: BufId(1),
            index: vec![gid(0)],
            value: load(1, DType::F32, load(0, DType::I64, gid(0))),
        }],
    );
    let (native, _) = run_both(&k, &[TensorData::from_i64(DType::I64, vec![2], &[1, 1 << 40]), zeros(DType::F32, 2)]);
    assert_eq!(native.err(), Some(Status::OutOfBounds as u32));
}

#[test]
fn loops_locals_ifs_private_buffers_and_3d_grids() {
    // grid [3, 2, 2]: for each (x, y, z): acc over an unrolled loop, a serial loop with an `if`,
    // a private buffer filled then summed, and a vector loop writing a row.
    let (i, j, acc, t, p) =
        (var(1, DType::I64), var(2, DType::I64), var(3, DType::F32), var(4, DType::I64), var(5, DType::I64));
    let flat = Expr::add_index(
        Expr::mul_index(Expr::add_index(Expr::mul_index(gid(2), Expr::i64(2)), gid(1)), Expr::i64(3)),
        gid(0),
    );
    let body = vec![
        Stmt::Let { var: t, value: flat.clone() },
        Stmt::Local { var: acc, init: Expr::lit(0.0, DType::F32) },
        Stmt::For {
            var: i,
            extent: Expr::i64(4),
            kind: LoopKind::Unroll,
            body: vec![Stmt::Store {
                buf: BufId(2),
                index: vec![Expr::Var(i)],
                value: Expr::binary(
                    BinaryOp::Mul,
                    load(0, DType::F32, Expr::Var(i)),
                    Expr::cast(DType::F32, Expr::Var(t)),
                ),
            }],
        },
        Stmt::For {
            var: j,
            extent: Expr::i64(4),
            kind: LoopKind::Serial,
            body: vec![Stmt::If {
                cond: Expr::binary(BinaryOp::Lt, Expr::Var(j), Expr::i64(3)),
                then: vec![Stmt::Assign {
                    var: acc,
                    value: Expr::binary(
                        BinaryOp::Add,
                        Expr::Var(acc),
                        Expr::load(BufId(2), DType::F32, vec![Expr::Var(j)]),
                    ),
                }],
                els: vec![Stmt::Assign {
                    var: acc,
                    value: Expr::binary(BinaryOp::Max, Expr::Var(acc), Expr::lit(1.0, DType::F32)),
                }],
            }],
        },
        Stmt::Store { buf: BufId(1), index: vec![Expr::Var(t), Expr::i64(0)], value: Expr::Var(acc) },
        Stmt::For {
            var: p,
            extent: Expr::i64(8),
            kind: LoopKind::Vector(4),
            body: vec![Stmt::Store {
                buf: BufId(3),
                index: vec![Expr::Var(t), Expr::Var(p)],
                value: Expr::binary(
                    BinaryOp::Add,
                    Expr::unary(UnaryOp::Exp, load(4, DType::F32, Expr::Var(p))),
                    Expr::Var(acc),
                ),
            }],
        },
    ];
    let mut bufs = vec![
        buf("a", DType::F32, &[4], Access::Read),
        buf("o", DType::F32, &[12, 1], Access::Write),
        Buffer {
            name: "tmp".into(),
            dtype: DType::F32,
            shape: vec![4],
            space: Space::Private,
            access: Access::ReadWrite,
        },
        buf("row", DType::F32, &[12, 8], Access::Write),
        buf("c", DType::F32, &[8], Access::Read),
    ];
    let k = kernel("loops", std::mem::take(&mut bufs), [3, 2, 2], body);
    let globals = [
        data(DType::F32, 4, 2),
        TensorData::from_f64(DType::F32, vec![12, 1], &[0.0; 12]),
        TensorData::from_f64(DType::F32, vec![12, 8], &[0.0; 96]),
        TensorData::from_f64(DType::F32, vec![8], &[0.1, 0.2, -0.3, 0.4, 1.0, -1.0, 2.0, 0.0]),
    ];
    assert_match(&k, &globals);
    // The vector loop is real vector code.
    let code = compile_kernels(std::slice::from_ref(&k), &EmitOptions::default()).unwrap();
    assert_eq!(code.vectorized_loops, 1);
}

#[test]
fn gpu_kernels_are_refused_with_a_clear_error() {
    let mut k = kernel("gpu", vec![buf("o", DType::F32, &[4], Access::Write)], [1, 1, 1], vec![Stmt::Barrier]);
    let e = compile_kernels(std::slice::from_ref(&k), &EmitOptions::default()).unwrap_err();
    assert!(e.to_string().contains("barrier"), "{e}");
    k.launch.workgroup = [32, 1, 1];
    let e = compile_kernels(std::slice::from_ref(&k), &EmitOptions::default()).unwrap_err();
    assert!(e.to_string().contains("one invocation"), "{e}");
}

#[test]
fn strided_vector_loads_with_and_without_bounds_checks() {
    // o[j] = a[s * j + off] for strides 2 to 5 (2 to 4 are contiguous loads and shuffles,
    // 5 a gather), unchecked where every lane is in bounds, else behind a select on the bounds
    // (lanes outside read nothing and give 7) or a masked load (lanes outside give 0).
    for width in [4u32, 8, 16] {
        for step in 2..=5i64 {
            for off in [-1i64, 0, 1] {
                let extent = 2 * width as i64;
                let n = step * (extent - 1) + 1; // the last lane reads the last element when off = 0
                let j = var(1, DType::I64);
                let at = Expr::add_index(Expr::mul_index(Expr::Var(j), Expr::i64(step)), Expr::i64(off));
                let inside = Expr::and(
                    Expr::binary(BinaryOp::Ge, at.clone(), Expr::i64(0)),
                    Expr::binary(BinaryOp::Lt, at.clone(), Expr::i64(n)),
                );
                let value = match off {
                    0 => load(0, DType::F32, at),
                    -1 => Expr::select(inside, load(0, DType::F32, at), Expr::lit(7.0, DType::F32)),
                    _ => Expr::Load { buf: BufId(0), dtype: DType::F32, index: vec![at], mask: Some(Box::new(inside)) },
                };
                let body = vec![Stmt::For {
                    var: j,
                    extent: Expr::i64(extent),
                    kind: LoopKind::Vector(width),
                    body: vec![Stmt::Store { buf: BufId(1), index: vec![Expr::Var(j)], value }],
                }];
                let bufs =
                    vec![buf("a", DType::F32, &[n], Access::Read), buf("o", DType::F32, &[extent], Access::Write)];
                let k = kernel(&format!("stride{step}_{off}_w{width}"), bufs, [1, 1, 1], body);
                let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
                let a = TensorData::from_f64(DType::F32, vec![n as usize], &a);
                assert_match(&k, &[a, zeros(DType::F32, extent as usize)]);
            }
        }
    }
}

#[test]
fn round_trips_through_integers_stay_in_vector_lanes_and_match() {
    // o[j] = f32(int(a[j])): quantization's round trip, which vector loops compute in f32 lanes
    // (truncate, saturate, NaN to 0), on both code generators, for every integer width.
    let specials = [
        0.0,
        -0.0,
        0.4,
        0.5,
        0.6,
        -0.5,
        -0.6,
        -1.5,
        1.5,
        127.4,
        127.6,
        128.0,
        -128.9,
        -129.0,
        255.4,
        255.6,
        256.0,
        32767.9,
        -32768.9,
        65535.9,
        2147483520.0,
        2147483648.0,
        -2147483904.0,
        4294967040.0,
        5e9,
        1e19,
        2e19,
        -1e19,
        f64::NAN,
        f64::INFINITY,
        -f64::INFINITY,
        -3.7,
    ];
    let n = specials.len() as i64;
    let ints = [DType::I8, DType::U8, DType::I16, DType::U16, DType::I32, DType::U32, DType::I64, DType::U64];
    for (llvm, width) in [(false, 4u32), (true, 16)] {
        for int in ints {
            let j = var(1, DType::I64);
            let value = Expr::cast(DType::F32, Expr::cast(int, load(0, DType::F32, Expr::Var(j))));
            let body = vec![Stmt::For {
                var: j,
                extent: Expr::i64(n),
                kind: LoopKind::Vector(width),
                body: vec![Stmt::Store { buf: BufId(1), index: vec![Expr::Var(j)], value }],
            }];
            let bufs = vec![buf("a", DType::F32, &[n], Access::Read), buf("o", DType::F32, &[n], Access::Write)];
            let k = kernel(&format!("through_{}", int.name()), bufs, [1, 1, 1], body);
            let a = TensorData::from_f64(DType::F32, vec![n as usize], &specials);
            let options = EmitOptions { verify: true, llvm, ..Default::default() };
            assert_match_with(&k, &[a, zeros(DType::F32, n as usize)], &options);
        }
    }
}
