//! Tests of the lowering: a small evaluator for compute definitions (elementwise semantics from
//! `nnc_interp::lanes`, so an expression means exactly what the graph op means), and for every
//! primitive op a graph whose node is lowered, evaluated and compared with `nnc_interp`.

use super::lower_node;
use nnc_interp::lanes::{self, binary, Data, Value};
use nnc_ir::*;
use nnc_kernel::expr::{Combine, Expr, Literal, VarGen};
use nnc_kernel::kernel::{Compute, Stmt};
use proptest::prelude::*;
use std::collections::HashMap;

// ---------------------------------------------------------------- the evaluator

struct Eval<'a> {
    bufs: Vec<Value>,
    written: Vec<Vec<bool>>,
    env: HashMap<u32, Value>,
    axes: &'a [i64],
}

fn scalar_f(v: f64, d: DType) -> Value {
    Value::float(d, vec![], vec![v])
}

fn lit(l: Literal) -> Value {
    match l {
        Literal::Float(v, d) => scalar_f(v, d),
        Literal::Int(v, d) => Value::int(d, vec![], vec![v]),
        Literal::Bool(b) => Value::bool(vec![], vec![b]),
    }
}

fn zero(d: DType) -> Value {
    lit(Literal::zero(d))
}

fn as_i64(v: &Value) -> Result<i64, String> {
    match &v.data {
        Data::Int(x) => Ok(x[0]),
        _ => Err(format!("expected an integer, found {v:?}")),
    }
}

fn as_bool(v: &Value) -> Result<bool, String> {
    match &v.data {
        Data::Bool(x) => Ok(x[0]),
        _ => Err(format!("expected a bool, found {v:?}")),
    }
}

fn element(buf: &Value, k: usize) -> Value {
    match &buf.data {
        Data::Float(x) => scalar_f(x[k], buf.dtype),
        Data::Int(x) => Value::int(buf.dtype, vec![], vec![x[k]]),
        Data::Bool(x) => Value::bool(vec![], vec![x[k]]),
    }
}

fn set_element(buf: &mut Value, k: usize, v: &Value) -> Result<(), String> {
    if buf.dtype != v.dtype {
        return Err(format!("store of {} into a {} buffer", v.dtype, buf.dtype));
    }
    match (&mut buf.data, &v.data) {
        (Data::Float(x), Data::Float(y)) => x[k] = y[0],
        (Data::Int(x), Data::Int(y)) => x[k] = y[0],
        (Data::Bool(x), Data::Bool(y)) => x[k] = y[0],
        _ => return Err("store of the wrong kind".into()),
    }
    Ok(())
}

fn empty(dtype: DType, shape: &[usize]) -> Value {
    let n = shape.iter().product();
    let shape = shape.to_vec();
    if dtype.is_float() {
        Value::float(dtype, shape, vec![0.0; n])
    } else if dtype == DType::Bool {
        Value::bool(shape, vec![false; n])
    } else {
        Value::int(dtype, shape, vec![0; n])
    }
}

/// The identity of a reduction over terms of `dtype`.
fn identity(c: Combine, dtype: DType) -> Value {
    match c {
        Combine::Sum => zero(dtype),
        Combine::Prod => lit(Literal::from_f64(1.0, dtype)),
        Combine::Max => ext(dtype, false),
        Combine::Min => ext(dtype, true),
        Combine::ArgMax { .. } | Combine::ArgMin { .. } => zero(DType::I64),
    }
}

fn ext(dtype: DType, max: bool) -> Value {
    match super::extreme(dtype, max) {
        Expr::Lit(l) => lit(l),
        _ => unreachable!(),
    }
}

/// Does candidate `c` replace the best `b` of an arg reduction (the interpreter's rule: NaN wins,
/// ties go to the first, or the last with `select_last`)?
fn arg_better(c: &Value, b: &Value, max: bool, last: bool) -> Result<bool, String> {
    if let (Data::Float(cv), Data::Float(bv)) = (&c.data, &b.data) {
        let (c, b) = (cv[0], bv[0]);
        return Ok(if b.is_nan() {
            last && c.is_nan()
        } else if c.is_nan() {
            true
        } else if max {
            if last {
                c >= b
            } else {
                c > b
            }
        } else if last {
            c <= b
        } else {
            c < b
        });
    }
    let op = match (max, last) {
        (true, false) => BinaryOp::Gt,
        (true, true) => BinaryOp::Ge,
        (false, false) => BinaryOp::Lt,
        (false, true) => BinaryOp::Le,
    };
    as_bool(&binary(op, c, b, &[])?)
}

impl Eval<'_> {
    fn expr(&mut self, e: &Expr) -> Result<Value, String> {
        Ok(match e {
            Expr::Lit(l) => lit(*l),
            Expr::Var(v) => self.env.get(&v.id).cloned().ok_or_else(|| format!("unbound v{}", v.id))?,
            Expr::Axis(a) => Value::int(DType::I64, vec![], vec![self.axes[*a as usize]]),
            Expr::Special(_) => return Err("special in a compute definition".into()),
            Expr::Unary(op, a) => lanes::unary(*op, &self.expr(a)?)?,
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                binary(*op, &a, &b, &[])?
            }
            Expr::Select(c, a, b) => {
                if as_bool(&self.expr(c)?)? {
                    self.expr(a)?
                } else {
                    self.expr(b)?
                }
            }
            Expr::Cast(d, a) => lanes::cast(&self.expr(a)?, *d)?,
            Expr::Load { buf, dtype, index, mask } => {
                if let Some(m) = mask {
                    if !as_bool(&self.expr(m)?)? {
                        return Ok(zero(*dtype));
                    }
                }
                let k = self.offset(buf.index(), index)?;
                let b = &self.bufs[buf.index()];
                if b.dtype != *dtype {
                    return Err(format!("load of {dtype} from a {} buffer", b.dtype));
                }
                element(b, k)
            }
            Expr::Reduce(r) => {
                let dtype = r.body.dtype();
                let mut acc = identity(r.combine, dtype);
                let mut best: Option<Value> = None;
                let total: i64 = r.vars.iter().map(|&(_, n)| n).product();
                for pos in 0..total {
                    let mut rest = pos;
                    for &(v, n) in r.vars.iter().rev() {
                        self.env.insert(v.id, Value::int(DType::I64, vec![], vec![rest % n]));
                        rest /= n;
                    }
                    let t = self.expr(&r.body)?;
                    match r.combine {
                        Combine::Sum => acc = binary(BinaryOp::Add, &acc, &t, &[])?,
                        Combine::Prod => acc = binary(BinaryOp::Mul, &acc, &t, &[])?,
                        Combine::Max => acc = binary(BinaryOp::Max, &acc, &t, &[])?,
                        Combine::Min => acc = binary(BinaryOp::Min, &acc, &t, &[])?,
                        Combine::ArgMax { select_last } | Combine::ArgMin { select_last } => {
                            let max = matches!(r.combine, Combine::ArgMax { .. });
                            let replace = match &best {
                                None => true,
                                Some(b) => arg_better(&t, b, max, select_last)?,
                            };
                            if replace {
                                best = Some(t);
                                acc = Value::int(DType::I64, vec![], vec![pos]);
                            }
                        }
                    }
                }
                acc
            }
        })
    }

    fn offset(&mut self, buf: usize, index: &[Expr]) -> Result<usize, String> {
        let shape = self.bufs[buf].shape.clone();
        if index.len() != shape.len() {
            return Err(format!("index of rank {} into b{buf} of rank {}", index.len(), shape.len()));
        }
        let mut k = 0usize;
        for (e, &n) in index.iter().zip(&shape) {
            let i = as_i64(&self.expr(e)?)?;
            if i < 0 || i >= n as i64 {
                return Err(format!("out-of-bounds access: index {i} of an axis of length {n} in b{buf}"));
            }
            k = k * n + i as usize;
        }
        Ok(k)
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> Result<(), String> {
        for s in stmts {
            match s {
                Stmt::For { var, extent, body, .. } => {
                    let n = as_i64(&self.expr(extent)?)?;
                    for i in 0..n {
                        self.env.insert(var.id, Value::int(DType::I64, vec![], vec![i]));
                        self.stmts(body)?;
                    }
                }
                Stmt::Let { var, value } | Stmt::Local { var, init: value } | Stmt::Assign { var, value } => {
                    let v = self.expr(value)?;
                    if v.dtype != var.dtype {
                        return Err(format!("v{} of {} set to a {}", var.id, var.dtype, v.dtype));
                    }
                    self.env.insert(var.id, v);
                }
                Stmt::Store { buf, index, value } => {
                    let v = self.expr(value)?;
                    let k = self.offset(buf.index(), index)?;
                    set_element(&mut self.bufs[buf.index()], k, &v)?;
                    self.written[buf.index()][k] = true;
                }
                Stmt::If { cond, then, els } => {
                    if as_bool(&self.expr(cond)?)? {
                        self.stmts(then)?;
                    } else {
                        self.stmts(els)?;
                    }
                }
                Stmt::Barrier => {}
            }
        }
        Ok(())
    }
}

/// Evaluates `c` on `operands`, for results of the given types.
fn evaluate(c: &Compute, operands: &[Value], results: &[(DType, Vec<usize>)]) -> Result<Vec<Value>, String> {
    match c {
        Compute::Map(e) => {
            let (dtype, shape) = &results[0];
            if e.dtype() != *dtype {
                return Err(format!("map of dtype {} for a {dtype} result", e.dtype()));
            }
            let mut out = empty(*dtype, shape);
            let n: usize = shape.iter().product();
            let mut idx = vec![0i64; shape.len()];
            for k in 0..n {
                let mut rest = k;
                for (i, &d) in idx.iter_mut().zip(shape).rev() {
                    *i = (rest % d) as i64;
                    rest /= d;
                }
                let mut ev = Eval { bufs: operands.to_vec(), written: vec![], env: HashMap::new(), axes: &idx };
                let v = ev.expr(e)?;
                set_element(&mut out, k, &v)?;
            }
            Ok(vec![out])
        }
        Compute::Program(stmts) => {
            let mut bufs = operands.to_vec();
            bufs.extend(results.iter().map(|(d, s)| empty(*d, s)));
            let written = bufs.iter().map(|b| vec![false; b.numel()]).collect();
            let mut ev = Eval { bufs, written, env: HashMap::new(), axes: &[] };
            ev.stmts(stmts)?;
            for (k, w) in ev.written.iter().enumerate().skip(operands.len()) {
                if let Some(p) = w.iter().position(|&w| !w) {
                    return Err(format!("result b{k} element {p} was never written"));
                }
            }
            Ok(ev.bufs.split_off(operands.len()))
        }
    }
}

// ---------------------------------------------------------------- the harness

/// A deterministic generator of test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
    fn float(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    }
}

/// Random data of a dtype: floats in `[-2, 2)`, signed integers in `[-4, 5)`, unsigned in
/// `[0, 9)` (small, so sums do not overflow and ties are common).
fn random(rng: &mut Rng, dtype: DType, shape: &[usize]) -> TensorData {
    let n = shape.iter().product();
    if dtype.is_float() {
        let v: Vec<f64> = (0..n).map(|_| rng.float()).collect();
        TensorData::from_f64(dtype, shape.to_vec(), &v)
    } else {
        let (lo, hi) = if dtype.is_unsigned_int() || dtype == DType::Bool { (0, 9) } else { (-4, 5) };
        let v: Vec<i64> = (0..n).map(|_| rng.int(lo, hi)).collect();
        if dtype == DType::Bool {
            let v: Vec<f64> = v.iter().map(|&x| (x % 2) as f64).collect();
            TensorData::from_f64(dtype, shape.to_vec(), &v)
        } else {
            TensorData::from_i64(dtype, shape.to_vec(), &v)
        }
    }
}

fn ints(dtype: DType, shape: &[usize], v: &[i64]) -> TensorData {
    TensorData::from_i64(dtype, shape.to_vec(), v)
}

fn close(a: &TensorData, b: &TensorData) -> Result<(), String> {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return Err(format!("{}{:?} vs {}{:?}", a.dtype(), a.shape(), b.dtype(), b.shape()));
    }
    if a.dtype().is_float() {
        let tol = if matches!(a.dtype(), DType::F16 | DType::BF16) { 1e-2 } else { 1e-5 };
        for (k, (x, y)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
            let same = (x.is_nan() && y.is_nan()) || x == &y || (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs()));
            if !same {
                return Err(format!("element {k}: {x} vs {y}"));
            }
        }
        Ok(())
    } else if a.to_i64_vec() == b.to_i64_vec() {
        Ok(())
    } else {
        Err(format!("{:?} vs {:?}", a.to_i64_vec(), b.to_i64_vec()))
    }
}

/// Lowers node `node` of `g`, evaluates it on the operand values the interpreter computed for
/// `inputs`, compares with the node's results, and returns the lowering.
fn check_node(g: &Graph, node: usize, inputs: &[TensorData]) -> Compute {
    let mut values: HashMap<ValueId, TensorData> = g.inputs.iter().copied().zip(inputs.iter().cloned()).collect();
    nnc_interp::run_with_trace(g, inputs, |i, results| {
        for (id, t) in g.nodes[i].outputs.iter().zip(results) {
            values.insert(*id, t.clone());
        }
    })
    .unwrap_or_else(|e| panic!("interpreter: {e}"));
    let n = &g.nodes[node];
    let c = lower_node(g, node, &mut VarGen::new()).unwrap_or_else(|e| panic!("{e}"));
    let operands: Vec<Value> = match &n.op {
        Op::Constant(t) => vec![Value::from_tensor(t)],
        _ => n.inputs.iter().map(|id| Value::from_tensor(&values[id])).collect(),
    };
    let results: Vec<(DType, Vec<usize>)> =
        n.outputs.iter().map(|id| (g.ty(*id).dtype, g.ty(*id).static_shape().unwrap())).collect();
    let got = evaluate(&c, &operands, &results).unwrap_or_else(|e| panic!("{}: {e}\n{c}", g.describe_node(node)));
    for (k, (v, id)) in got.iter().zip(&n.outputs).enumerate() {
        let t = v.to_tensor().unwrap();
        if let Err(e) = close(&t, &values[id]) {
            panic!("{}: result {k}: {e}\n{c}", g.describe_node(node));
        }
    }
    c
}

/// A graph of one `op` node on inputs of the given tensors; checks it and returns the lowering.
fn check_op(op: Op, inputs: Vec<TensorData>) -> Compute {
    let mut b = GraphBuilder::new("t");
    let ids: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| b.input(&format!("x{k}"), t.dtype(), t.shape().iter().copied()).unwrap())
        .collect();
    let outs = b.op(op.clone(), &ids).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    for o in outs {
        b.output(o);
    }
    let g = b.finish().unwrap();
    check_node(&g, 0, &inputs)
}

/// `check_op` on random operands of the given types.
fn check_random(op: Op, operands: &[(DType, &[usize])]) -> Compute {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let inputs = operands.iter().map(|(d, s)| random(&mut rng, *d, s)).collect();
    check_op(op, inputs)
}

fn win(strides: &[i64], dilations: &[i64], pads: &[i64]) -> Window {
    Window { strides: strides.to_vec(), dilations: dilations.to_vec(), pads: pads.to_vec() }
}

const F: DType = DType::F32;
const I: DType = DType::I32;

// ---------------------------------------------------------------- leaves and elementwise

#[test]
fn constant_reads_its_own_data_as_buffer_0() {
    let mut b = GraphBuilder::new("c");
    let c = b.constant(TensorData::from_vec(vec![2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]));
    b.output(c);
    let g = b.finish().unwrap();
    let comp = check_node(&g, 0, &[]);
    assert_eq!(format!("{comp}"), "  map b0[a0, a1]\n");
}

#[test]
fn iota() {
    for dtype in [F, I, DType::U8] {
        let mut b = GraphBuilder::new("i");
        let v = b.iota(dtype, vec![3.into(), 4.into()], 1).unwrap();
        b.output(v);
        let g = b.finish().unwrap();
        let c = check_node(&g, 0, &[]);
        assert!(matches!(c, Compute::Map(_)));
    }
}

#[test]
fn unary() {
    for &op in UnaryOp::ALL {
        match op.class() {
            op::UnaryClass::Logical => {
                check_random(Op::Unary(op), &[(DType::Bool, &[2, 3])]);
            }
            op::UnaryClass::Numeric => {
                check_random(Op::Unary(op), &[(F, &[2, 3])]);
                check_random(Op::Unary(op), &[(I, &[2, 3])]);
                check_random(Op::Unary(op), &[(DType::I8, &[7])]);
            }
            _ => {
                check_random(Op::Unary(op), &[(F, &[2, 3])]);
                check_random(Op::Unary(op), &[(DType::F64, &[5])]);
            }
        }
    }
}

#[test]
fn binary_with_broadcasting() {
    for &op in BinaryOp::ALL {
        match op.class() {
            op::BinaryClass::Logical => {
                check_random(Op::Binary(op), &[(DType::Bool, &[2, 1, 3]), (DType::Bool, &[4, 1])]);
            }
            _ => {
                check_random(Op::Binary(op), &[(F, &[2, 1, 3]), (F, &[4, 1])]);
                check_random(Op::Binary(op), &[(F, &[3]), (F, &[])]);
                if !matches!(op, BinaryOp::Div | BinaryOp::Rem | BinaryOp::Pow) {
                    check_random(Op::Binary(op), &[(I, &[2, 1, 3]), (I, &[4, 1])]);
                    check_random(Op::Binary(op), &[(DType::U8, &[4]), (DType::U8, &[1])]);
                }
            }
        }
    }
    // Integer division, remainder and power with safe right operands.
    let mut rng = Rng(7);
    for op in [BinaryOp::Div, BinaryOp::Rem, BinaryOp::Pow] {
        let a = random(&mut rng, I, &[3, 4]);
        let b = ints(I, &[4], &[1, 2, 3, 4]);
        check_op(Op::Binary(op), vec![a, b]);
    }
}

#[test]
fn select_with_broadcasting() {
    check_random(Op::Select, &[(DType::Bool, &[2, 1]), (F, &[3]), (F, &[2, 3])]);
    check_random(Op::Select, &[(DType::Bool, &[4]), (I, &[3, 1]), (I, &[])]);
    check_random(Op::Select, &[(DType::Bool, &[2, 2]), (DType::Bool, &[2, 2]), (DType::Bool, &[1])]);
}

#[test]
fn cast() {
    for (from, to) in [
        (F, I),
        (I, F),
        (F, DType::Bool),
        (DType::Bool, F),
        (DType::I64, DType::U8),
        (F, DType::F16),
        (DType::I8, DType::I64),
    ] {
        check_random(Op::Cast { to }, &[(from, &[2, 3])]);
    }
}

// ---------------------------------------------------------------- reductions

#[test]
fn reduce() {
    for &kind in ReduceKind::ALL {
        for (axes, keep_dims) in [(vec![1], false), (vec![0, 2], true), (vec![0, 1, 2], false), (vec![], false)] {
            check_random(Op::Reduce { kind, axes: axes.clone(), keep_dims }, &[(F, &[2, 3, 4])]);
            check_random(Op::Reduce { kind, axes, keep_dims }, &[(I, &[2, 3, 4])]);
        }
    }
    check_random(Op::Reduce { kind: ReduceKind::Mean, axes: vec![0], keep_dims: true }, &[(DType::U8, &[5, 2])]);
}

#[test]
fn integer_mean_divides_the_unwrapped_sum() {
    // 3 * 2^30 + 5 overflows i32; the interpreter divides the i64 sum (805306369), so must we.
    let op = Op::Reduce { kind: ReduceKind::Mean, axes: vec![1], keep_dims: false };
    let big = 1 << 30;
    check_op(op.clone(), vec![ints(I, &[2, 4], &[big, big, big, 5, -7, 0, 0, 0])]);
    check_op(op.clone(), vec![ints(DType::U8, &[1, 3], &[200, 250, 255])]);
    check_op(op.clone(), vec![ints(DType::I8, &[1, 3], &[-128, -128, -127])]);
    check_op(op, vec![ints(DType::U32, &[1, 2], &[u32::MAX as i64, u32::MAX as i64 - 2])]);
}

#[test]
fn half_precision_sums_accumulate_in_f32() {
    // In an f16 accumulator 2048 + 1 == 2048, so the mean of 4096 ones would be 0.5.
    for dtype in [DType::F16, DType::BF16] {
        for kind in [ReduceKind::Sum, ReduceKind::Mean] {
            let ones = TensorData::from_f64(dtype, vec![1, 4096], &[1.0; 4096]);
            check_op(Op::Reduce { kind, axes: vec![1], keep_dims: false }, vec![ones]);
        }
        check_random(Op::Reduce { kind: ReduceKind::Mean, axes: vec![0, 2], keep_dims: true }, &[(dtype, &[2, 3, 4])]);
    }
}

#[test]
fn arg_reduce() {
    for kind in [ArgKind::Max, ArgKind::Min] {
        for select_last in [false, true] {
            for (axis, keep_dims) in [(0, false), (1, true), (2, false)] {
                let op = Op::ArgReduce { kind, axis, keep_dims, select_last };
                check_random(op.clone(), &[(F, &[3, 4, 5])]);
                check_random(op, &[(I, &[3, 4, 5])]); // small ints: many ties
            }
        }
    }
    // NaN wins.
    let x = TensorData::from_vec(vec![5], &[1.0f32, f32::NAN, 3.0, f32::NAN, 3.0]);
    for kind in [ArgKind::Max, ArgKind::Min] {
        for select_last in [false, true] {
            check_op(Op::ArgReduce { kind, axis: 0, keep_dims: false, select_last }, vec![x.clone()]);
        }
    }
}

#[test]
fn cumulative() {
    for &kind in CumKind::ALL {
        for exclusive in [false, true] {
            for reverse in [false, true] {
                for axis in [0, 1] {
                    let op = Op::Cumulative { axis, kind, exclusive, reverse };
                    check_random(op.clone(), &[(F, &[3, 4])]);
                    check_random(op, &[(I, &[3, 4])]);
                }
            }
        }
    }
}

#[test]
fn topk() {
    for largest in [true, false] {
        for (axis, k) in [(0, 2), (1, 3), (1, 5), (1, 0)] {
            let op = Op::TopK { axis, k, largest };
            let c = check_random(op.clone(), &[(F, &[3, 5])]);
            assert!(matches!(c, Compute::Program(_)));
            check_random(op, &[(I, &[3, 5])]); // ties: smaller index first
        }
    }
    let x = TensorData::from_vec(vec![2, 4], &[1.0f32, 3.0, 3.0, 0.0, 2.0, f32::NAN, 9.0, -0.0]);
    for largest in [true, false] {
        check_op(Op::TopK { axis: 1, k: 3, largest }, vec![x.clone()]);
    }
    check_op(Op::TopK { axis: 0, k: 2, largest: true }, vec![ints(DType::U64, &[3], &[-1, 5, 7])]);
}

// ---------------------------------------------------------------- contractions and windows

#[test]
fn matmul() {
    for (a, b) in [
        (&[2, 3][..], &[3, 4][..]),
        (&[2, 1, 2, 3], &[3, 3, 2]),
        (&[3], &[2, 3, 4]),
        (&[2, 2, 3], &[3]),
        (&[3], &[3]),
        (&[2, 0], &[0, 3]),
    ] {
        check_random(Op::MatMul, &[(F, a), (F, b)]);
        check_random(Op::MatMul, &[(I, a), (I, b)]);
    }
}

#[test]
fn conv() {
    let cases: Vec<(&[usize], &[usize], Window, i64)> = vec![
        (&[1, 2, 5], &[3, 2, 3], win(&[1], &[1], &[0, 0]), 1),
        (&[2, 2, 6], &[2, 2, 2], win(&[2], &[2], &[1, 2]), 1),
        (&[1, 4, 5, 5], &[4, 2, 3, 3], win(&[2, 1], &[1, 2], &[1, 0, 2, 1]), 2),
        (&[1, 3, 4, 4], &[3, 1, 2, 2], win(&[1, 1], &[1, 1], &[1, 1, 1, 1]), 3),
        (&[1, 1, 3, 3, 3], &[2, 1, 2, 2, 2], win(&[1, 2, 1], &[1, 1, 1], &[0, 1, 0, 0, 0, 1]), 1),
    ];
    for (x, w, window, groups) in cases {
        check_random(Op::Conv { window, groups }, &[(F, x), (F, w)]);
    }
}

#[test]
fn conv_transpose() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&[usize], &[usize], Window, Vec<i64>, i64)> = vec![
        (&[1, 1, 3], &[1, 1, 2], win(&[2], &[1], &[0, 0]), vec![0], 1),
        (&[1, 2, 4], &[2, 3, 3], win(&[2], &[1], &[1, 1]), vec![1], 1),
        (&[2, 4, 3, 3], &[4, 1, 2, 3], win(&[2, 3], &[2, 1], &[1, 0, 0, 2]), vec![1, 2], 2),
        (&[1, 2, 3, 2], &[2, 2, 3, 3], win(&[1, 1], &[1, 1], &[1, 1, 1, 1]), vec![0, 0], 1),
    ];
    for (x, w, window, output_padding, groups) in cases {
        check_random(Op::ConvTranspose { window, output_padding, groups }, &[(F, x), (F, w)]);
    }
}

fn pool_cases() -> Vec<(&'static [usize], Vec<i64>, Window, bool)> {
    vec![
        (&[1, 2, 6], vec![2], win(&[2], &[1], &[0, 0]), false),
        (&[1, 1, 7], vec![3], win(&[2], &[1], &[1, 1]), true),
        (&[2, 2, 5, 5], vec![2, 3], win(&[2, 2], &[1, 1], &[1, 0, 1, 2]), false),
        (&[1, 1, 5, 6], vec![3, 2], win(&[2, 3], &[2, 1], &[1, 1, 0, 1]), true),
        (&[1, 1, 4, 4], vec![2, 2], win(&[1, 1], &[1, 1], &[0, 0, 0, 0]), false),
    ]
}

#[test]
fn pools() {
    for (x, kernel, window, ceil_mode) in pool_cases() {
        for &kind in PoolKind::ALL {
            for count_include_pad in [false, true] {
                let op =
                    Op::Pool { kind, kernel: kernel.clone(), window: window.clone(), ceil_mode, count_include_pad };
                check_random(op.clone(), &[(F, x)]);
                check_random(op, &[(I, x)]);
            }
        }
    }
}

#[test]
fn argmax_pool() {
    for (x, kernel, window, ceil_mode) in pool_cases() {
        let op = Op::ArgMaxPool { kernel, window, ceil_mode };
        check_random(op.clone(), &[(F, x)]);
        check_random(op, &[(I, x)]); // ties: first occurrence
    }
    // NaN never wins; an all-NaN window points at its first in-bounds element.
    let n = f32::NAN;
    let x = TensorData::from_vec(vec![1, 1, 6], &[n, 2.0, n, n, 1.0, n]);
    check_op(Op::ArgMaxPool { kernel: vec![2], window: win(&[2], &[1], &[1, 1]), ceil_mode: false }, vec![x]);
}

// ---------------------------------------------------------------- data movement

#[test]
fn reshape() {
    check_random(Op::Reshape { shape: vec![3.into(), 2.into(), 4.into()] }, &[(F, &[2, 12])]);
    check_random(Op::Reshape { shape: vec![24.into()] }, &[(I, &[2, 3, 4])]);
    check_random(Op::Reshape { shape: vec![] }, &[(F, &[1, 1])]);
    // Runs of axes: a merge and a split; a run of two on each side; ones left over.
    check_random(Op::Reshape { shape: vec![16.into(), 3.into()] }, &[(F, &[2, 8, 3])]);
    check_random(Op::Reshape { shape: vec![2.into(), 4.into(), 3.into()] }, &[(F, &[8, 3])]);
    check_random(Op::Reshape { shape: vec![3.into(), 2.into(), 5.into()] }, &[(F, &[2, 3, 5])]);
    check_random(Op::Reshape { shape: vec![6.into()] }, &[(I, &[1, 6, 1])]);
}

#[test]
fn transpose() {
    check_random(Op::Transpose { perm: vec![2, 0, 1] }, &[(F, &[2, 3, 4])]);
    check_random(Op::Transpose { perm: vec![1, 0] }, &[(DType::Bool, &[2, 5])]);
}

#[test]
fn expand() {
    check_random(Op::Expand { shape: vec![2.into(), 3.into(), 4.into()] }, &[(F, &[3, 1])]);
    check_random(Op::Expand { shape: vec![1.into(), 4.into()] }, &[(I, &[2, 1, 1])]);
}

#[test]
fn slice() {
    let s =
        |axes: Vec<usize>, starts: Vec<i64>, ends: Vec<i64>, steps: Vec<i64>| Op::Slice { axes, starts, ends, steps };
    check_random(s(vec![0], vec![-1], vec![i64::MIN], vec![-1]), &[(F, &[10])]);
    check_random(s(vec![0], vec![8], vec![1], vec![-3]), &[(F, &[10])]);
    check_random(s(vec![0], vec![2], vec![100], vec![3]), &[(F, &[10])]);
    check_random(s(vec![0], vec![-3], vec![-1], vec![1]), &[(I, &[10])]);
    check_random(s(vec![1, 0], vec![-1, 2], vec![0, -10], vec![-2, -1]), &[(I, &[3, 4])]);
    check_random(s(vec![1], vec![5], vec![2], vec![1]), &[(F, &[2, 6])]);
}

#[test]
fn concat() {
    check_random(Op::Concat { axis: 1 }, &[(F, &[2, 1, 2]), (F, &[2, 0, 2]), (F, &[2, 3, 2]), (F, &[2, 2, 2])]);
    check_random(Op::Concat { axis: 0 }, &[(I, &[2])]);
    check_random(Op::Concat { axis: 0 }, &[(DType::Bool, &[1, 2]), (DType::Bool, &[3, 2])]);
}

/// A concat of many parts (an unrolled sequence model's outputs) chooses its part through a
/// balanced tree of selects: 1,000 parts nest 10 deep, not 1,000 (a fuzzed RNN of 4,096 steps
/// once overflowed the stack of LLVM's analyses on such a chain).
#[test]
fn concat_of_many_parts_is_a_shallow_tree() {
    fn depth(e: &Expr) -> usize {
        let mut deepest = 0;
        e.for_each_child(|c| deepest = deepest.max(depth(c)));
        deepest + 1
    }
    let parts: Vec<(DType, &[usize])> = (0..1000).map(|_| (F, &[1usize, 2][..])).collect();
    let Compute::Map(e) = check_random(Op::Concat { axis: 0 }, &parts) else { panic!("not a map") };
    assert!(depth(&e) <= 2 * 10 + 4, "depth {}", depth(&e));
}

#[test]
fn pad() {
    for &mode in PadMode::ALL {
        for (shape, pads) in [
            (&[4][..], vec![2, 1]),
            (&[4], vec![5, 6]),
            (&[4], vec![-1, 2]),
            (&[4], vec![0, -3]),
            (&[1], vec![2, 1]),
            (&[2, 3], vec![1, 1, 0, 1]),
            (&[3, 3], vec![4, -1, 2, 5]),
        ] {
            for value in [0.0, 9.7] {
                check_random(Op::Pad { pads: pads.clone(), mode, value }, &[(F, shape)]);
                check_random(Op::Pad { pads: pads.clone(), mode, value }, &[(I, shape)]);
            }
        }
    }
}

// ---------------------------------------------------------------- indexing

#[test]
fn gather_with_negative_indices() {
    let mut rng = Rng(3);
    let data = random(&mut rng, F, &[3, 4]);
    check_op(Op::Gather { axis: 1 }, vec![data.clone(), ints(DType::I64, &[2], &[-1, 0])]);
    check_op(Op::Gather { axis: 0 }, vec![data.clone(), ints(I, &[2, 2], &[2, -3, 0, -1])]);
    check_op(Op::Gather { axis: 1 }, vec![data, ints(DType::I64, &[], &[-2])]);
}

#[test]
fn gather_out_of_range_is_an_out_of_bounds_load() {
    let mut b = GraphBuilder::new("g");
    let d = b.input("d", F, [3]).unwrap();
    let i = b.input("i", DType::I64, [1]).unwrap();
    let y = b.gather(d, i, 0).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let c = lower_node(&g, 0, &mut VarGen::new()).unwrap();
    let data = Value::from_tensor(&TensorData::from_vec(vec![3], &[1.0f32, 2.0, 3.0]));
    let idx = Value::from_tensor(&ints(DType::I64, &[1], &[3]));
    let e = evaluate(&c, &[data, idx], &[(F, vec![1])]).unwrap_err();
    assert!(e.contains("out-of-bounds"), "{e}");
}

#[test]
fn scatter_add() {
    let mut rng = Rng(5);
    let data = random(&mut rng, F, &[2, 3]);
    let upd = random(&mut rng, F, &[2, 3]);
    check_op(Op::ScatterAdd { axis: 1 }, vec![data, ints(DType::I64, &[3], &[2, -1, 0]), upd]);
    let data = random(&mut rng, I, &[4, 2]);
    let upd = random(&mut rng, I, &[2, 2, 2]);
    check_op(Op::ScatterAdd { axis: 0 }, vec![data, ints(DType::I64, &[2, 2], &[3, 0, 3, -4]), upd]);
    let data = random(&mut rng, DType::Bool, &[3]);
    let upd = random(&mut rng, DType::Bool, &[2]);
    check_op(Op::ScatterAdd { axis: 0 }, vec![data, ints(DType::I64, &[2], &[1, 1]), upd]);
}

#[test]
fn gather_elements() {
    let mut rng = Rng(11);
    let data = random(&mut rng, F, &[3, 3]);
    check_op(Op::GatherElements { axis: 0 }, vec![data.clone(), ints(DType::I64, &[2, 3], &[1, 2, 0, 2, 0, -3])]);
    check_op(Op::GatherElements { axis: 1 }, vec![data, ints(I, &[3, 1], &[-1, 0, 2])]);
}

#[test]
fn scatter_elements() {
    let mut rng = Rng(13);
    for &reduction in ScatterReduction::ALL {
        for dtype in [F, I, DType::Bool] {
            let data = random(&mut rng, dtype, &[3, 5]);
            let upd = random(&mut rng, dtype, &[2, 3]);
            let idx = ints(DType::I64, &[2, 3], &[1, 1, 4, -1, 1, 0]);
            check_op(Op::ScatterElements { axis: 1, reduction }, vec![data, idx, upd]);
        }
        let data = random(&mut rng, F, &[3, 2]);
        let upd = random(&mut rng, F, &[2, 2]);
        check_op(Op::ScatterElements { axis: 0, reduction }, vec![data, ints(I, &[2, 2], &[0, 2, 0, -3]), upd]);
    }
}

#[test]
fn gather_nd() {
    let mut rng = Rng(17);
    let data = random(&mut rng, F, &[2, 2]);
    check_op(Op::GatherNd { batch_dims: 0 }, vec![data.clone(), ints(DType::I64, &[2, 2], &[0, 0, 1, -1])]);
    check_op(Op::GatherNd { batch_dims: 0 }, vec![data, ints(DType::I64, &[2, 1], &[1, 0])]);
    let data = random(&mut rng, I, &[2, 3, 2]);
    check_op(Op::GatherNd { batch_dims: 1 }, vec![data.clone(), ints(DType::I64, &[2, 1], &[1, -1])]);
    check_op(Op::GatherNd { batch_dims: 1 }, vec![data, ints(DType::I64, &[2, 2, 2], &[0, 1, 2, 0, 1, 1, -1, 0])]);
}

#[test]
fn scatter_nd() {
    let mut rng = Rng(19);
    for &reduction in ScatterReduction::ALL {
        let data = random(&mut rng, I, &[4, 2]);
        let upd = random(&mut rng, I, &[3, 2]);
        check_op(Op::ScatterNd { reduction }, vec![data, ints(DType::I64, &[3, 1], &[3, 0, -1]), upd]);
        let data = random(&mut rng, F, &[2, 3]);
        let upd = random(&mut rng, F, &[3]);
        check_op(Op::ScatterNd { reduction }, vec![data, ints(DType::I64, &[3, 2], &[0, 1, 1, 2, 0, 1]), upd]);
    }
}

// ---------------------------------------------------------------- resize

fn resize_attrs(
    mode: ResizeMode,
    coord: CoordMode,
    axes: Vec<usize>,
    sizes: Vec<i64>,
    scales: Vec<f64>,
) -> ResizeAttrs {
    let n = axes.len();
    ResizeAttrs {
        mode,
        coordinate_transformation_mode: coord,
        nearest_mode: NearestMode::RoundPreferFloor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes,
        sizes,
        scales,
        roi: [vec![0.0; n], vec![1.0; n]].concat(),
    }
}

#[test]
fn resize() {
    /// Input shape, resized axes, sizes, scales.
    type Geometry = (&'static [usize], Vec<usize>, Vec<i64>, Vec<f64>);
    let geometries: Vec<Geometry> = vec![
        (&[1, 1, 3, 4], vec![2, 3], vec![5, 7], vec![5.0 / 3.0, 1.75]),
        (&[1, 2, 6, 4], vec![2, 3], vec![3, 2], vec![0.5, 0.5]),
        (&[2, 5], vec![1], vec![1], vec![0.2]),
        (&[4, 3], vec![0], vec![6], vec![1.5]),
    ];
    for (shape, axes, sizes, scales) in &geometries {
        for &mode in ResizeMode::ALL {
            for &coord in CoordMode::ALL {
                let mut r = resize_attrs(mode, coord, axes.clone(), sizes.clone(), scales.clone());
                if coord == CoordMode::TfCropAndResize {
                    let n = axes.len();
                    r.roi = [vec![0.2; n], vec![1.3; n]].concat();
                    r.extrapolation_value = 7.5;
                }
                check_random(Op::Resize(r.clone()), &[(F, shape)]);
                if mode == ResizeMode::Nearest {
                    for &nearest_mode in NearestMode::ALL {
                        let r = ResizeAttrs { nearest_mode, ..r.clone() };
                        check_random(Op::Resize(r.clone()), &[(F, shape)]);
                        check_random(Op::Resize(r), &[(I, shape)]);
                    }
                } else {
                    for (exclude_outside, antialias) in [(true, false), (false, true), (true, true)] {
                        let r = ResizeAttrs { exclude_outside, antialias, cubic_coeff_a: -0.5, ..r.clone() };
                        check_random(Op::Resize(r), &[(F, shape)]);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn composite_is_an_error_naming_the_node() {
    let mut b = GraphBuilder::new("s");
    let x = b.input("x", F, [2, 3]).unwrap();
    let y = b.softmax(x, 1).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let e = lower_node(&g, 0, &mut VarGen::new()).unwrap_err();
    assert_eq!(e.node, g.describe_node(0));
    assert!(e.message.contains("composite"), "{e}");
    // After decomposition every node lowers.
    let d = composite::decompose(&g).unwrap();
    for i in 0..d.nodes.len() {
        lower_node(&d, i, &mut VarGen::new()).unwrap();
    }
}

#[test]
fn symbolic_dim_is_an_error() {
    let mut b = GraphBuilder::new("s");
    let x = b.input("x", F, [Dim::sym("batch"), 3.into()]).unwrap();
    let y = b.relu(x).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let e = lower_node(&g, 0, &mut VarGen::new()).unwrap_err();
    assert!(e.to_string().contains("symbolic") && e.to_string().contains("relu"), "{e}");
}

// ---------------------------------------------------------------- properties

fn check_seeded(op: Op, operands: &[(DType, Vec<usize>)], seed: u64) {
    let mut rng = Rng(seed | 1);
    let inputs = operands.iter().map(|(d, s)| random(&mut rng, *d, s)).collect();
    check_op(op, inputs);
}

/// A shape and the same shape with some axes set to 1 and some leading axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec((1usize..4, any::<bool>()), 0..4).prop_flat_map(|dims| {
        let full: Vec<usize> = dims.iter().map(|&(d, _)| d).collect();
        let other: Vec<usize> = dims.iter().map(|&(d, one)| if one { 1 } else { d }).collect();
        (Just(full), 0..=other.len(), Just(other)).prop_map(|(full, drop, other)| (full, other[drop..].to_vec()))
    })
}

fn window_case() -> impl Strategy<Value = (Vec<usize>, Vec<i64>, Window)> {
    prop::collection::vec((1usize..7, 1i64..4, 1i64..3, 1i64..3, 0i64..3, 0i64..3), 1..3).prop_filter_map(
        "window larger than the padded input",
        |axes| {
            let mut spatial = vec![];
            let mut kernel = vec![];
            let (mut strides, mut dilations, mut begin, mut end) = (vec![], vec![], vec![], vec![]);
            for (s, k, st, d, pb, pe) in axes {
                let (pb, pe) = (pb.min(k - 1), pe.min(k - 1));
                if (s as i64) + pb + pe < d * (k - 1) + 1 {
                    return None;
                }
                spatial.push(s);
                kernel.push(k);
                strides.push(st);
                dilations.push(d);
                begin.push(pb);
                end.push(pe);
            }
            Some((spatial, kernel, Window { strides, dilations, pads: [begin, end].concat() }))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn prop_binary_broadcasting((a, b) in broadcast_pair(), swap in any::<bool>(), op in 0usize..4, seed in any::<u64>()) {
        let op = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Lt][op];
        let (a, b) = if swap { (b, a) } else { (a, b) };
        check_seeded(Op::Binary(op), &[(F, a.clone()), (F, b.clone())], seed);
        check_seeded(Op::Select, &[(DType::Bool, b), (I, a.clone()), (I, a)], seed);
    }

    #[test]
    fn prop_reduce_over_random_axes(
        shape in prop::collection::vec(1usize..4, 1..4),
        mask in any::<u8>(),
        keep_dims in any::<bool>(),
        kind in 0usize..5,
        seed in any::<u64>(),
    ) {
        let axes: Vec<usize> = (0..shape.len()).filter(|a| mask & (1 << a) != 0).collect();
        let kind = ReduceKind::ALL[kind];
        check_seeded(Op::Reduce { kind, axes: axes.clone(), keep_dims }, &[(F, shape.clone())], seed);
        check_seeded(Op::Reduce { kind, axes, keep_dims }, &[(I, shape)], seed);
    }

    #[test]
    fn prop_transpose_slice_concat_pad(
        shape in prop::collection::vec(1usize..5, 1..4),
        rot in 0usize..4,
        bounds in prop::collection::vec((-6i64..6, -6i64..6, prop_oneof![-3i64..0, 1i64..4]), 3),
        parts in prop::collection::vec(0usize..3, 1..4),
        pads in prop::collection::vec(-2i64..4, 6),
        mode in 0usize..4,
        seed in any::<u64>(),
    ) {
        let r = shape.len();
        let perm: Vec<usize> = (0..r).map(|a| (a + rot) % r).collect();
        check_seeded(Op::Transpose { perm }, &[(F, shape.clone())], seed);
        let axes: Vec<usize> = (0..r).collect();
        let op = Op::Slice {
            axes,
            starts: bounds[..r].iter().map(|b| b.0).collect(),
            ends: bounds[..r].iter().map(|b| b.1).collect(),
            steps: bounds[..r].iter().map(|b| b.2).collect(),
        };
        check_seeded(op, &[(I, shape.clone())], seed);
        let axis = rot % r;
        let operands: Vec<(DType, Vec<usize>)> = parts
            .iter()
            .map(|&n| {
                let mut s = shape.clone();
                s[axis] = n;
                (F, s)
            })
            .collect();
        check_seeded(Op::Concat { axis }, &operands, seed);
        let mut p = [pads[..r].to_vec(), pads[3..3 + r].to_vec()].concat();
        for a in 0..r {
            // Keep every output axis non-negative.
            while shape[a] as i64 + p[a] + p[a + r] < 0 {
                p[a] += 1;
            }
        }
        check_seeded(Op::Pad { pads: p, mode: PadMode::ALL[mode], value: 1.5 }, &[(F, shape)], seed);
    }

    #[test]
    fn prop_conv_and_pool_windows(
        (spatial, kernel, window) in window_case(),
        channels in 1usize..3,
        groups in 1i64..3,
        ceil_mode in any::<bool>(),
        count_include_pad in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let c = channels * groups as usize;
        let x: Vec<usize> = [vec![2, c], spatial.clone()].concat();
        let w: Vec<usize> = [vec![groups as usize * 2, channels], kernel.iter().map(|&k| k as usize).collect()].concat();
        check_seeded(Op::Conv { window: window.clone(), groups }, &[(F, x.clone()), (F, w)], seed);
        let wt: Vec<usize> = [vec![c, 2], kernel.iter().map(|&k| k as usize).collect()].concat();
        let output_padding = vec![0; spatial.len()];
        // Pads may crop more than a transposed convolution produces: the builder refuses that.
        let op = Op::ConvTranspose { window: window.clone(), output_padding, groups };
        if builds(&op, &[(F, x.clone()), (F, wt.clone())]) {
            check_seeded(op, &[(F, x.clone()), (F, wt)], seed);
        }
        for &kind in PoolKind::ALL {
            let op = Op::Pool { kind, kernel: kernel.clone(), window: window.clone(), ceil_mode, count_include_pad };
            check_seeded(op, &[(F, x.clone())], seed);
        }
        // A window wholly in the padding has no position to return: the interpreter refuses it
        // (`argmax_pool window with no input elements`), so there is nothing to compare.
        let op = Op::ArgMaxPool { kernel, window, ceil_mode };
        if every_window_reads_input(&op, &x) {
            check_seeded(op, &[(I, x)], seed);
        }
    }
}

/// Whether the graph builder accepts `op` on operands of these types.
fn builds(op: &Op, operands: &[(DType, Vec<usize>)]) -> bool {
    let mut b = GraphBuilder::new("t");
    let ids: Option<Vec<ValueId>> =
        operands.iter().enumerate().map(|(k, (d, s))| b.input(&format!("x{k}"), *d, s.iter().copied()).ok()).collect();
    ids.is_some_and(|ids| b.op(op.clone(), &ids).is_ok())
}

/// Whether the interpreter accepts `op` on an `i32` operand of shape `x` (zeros).
fn every_window_reads_input(op: &Op, x: &[usize]) -> bool {
    let mut b = GraphBuilder::new("t");
    let Ok(input) = b.input("x", I, x.iter().copied()) else { return false };
    let Ok(outs) = b.op(op.clone(), &[input]) else { return false };
    outs.into_iter().for_each(|o| b.output(o));
    let Ok(g) = b.finish() else { return false };
    nnc_interp::run(&g, &[ints(I, x, &vec![0; x.iter().product()])]).is_ok()
}

// ---------------------------------------------------------------- snapshots

fn printed(op: Op, operands: &[(DType, &[usize])]) -> String {
    format!("{}", check_random(op, operands))
}

#[test]
fn conv_with_padding_snapshot() {
    let op = Op::Conv { window: win(&[2, 1], &[1, 2], &[1, 0, 1, 2]), groups: 2 };
    insta::assert_snapshot!(printed(op, &[(F, &[1, 4, 5, 5]), (F, &[2, 2, 3, 2])]));
}

#[test]
fn reduce_mean_snapshot() {
    let op = Op::Reduce { kind: ReduceKind::Mean, axes: vec![1, 2], keep_dims: false };
    insta::assert_snapshot!(printed(op, &[(F, &[2, 3, 4])]));
}

#[test]
fn gather_snapshot() {
    let mut rng = Rng(23);
    let c = check_op(Op::Gather { axis: 1 }, vec![random(&mut rng, F, &[3, 4]), ints(DType::I64, &[2], &[-1, 2])]);
    insta::assert_snapshot!(format!("{c}"));
}

#[test]
fn resize_linear_snapshot() {
    let r = resize_attrs(ResizeMode::Linear, CoordMode::HalfPixel, vec![1], vec![6], vec![2.0]);
    insta::assert_snapshot!(printed(Op::Resize(r), &[(F, &[2, 3])]));
}

#[test]
fn topk_snapshot() {
    insta::assert_snapshot!(printed(Op::TopK { axis: 1, k: 2, largest: true }, &[(F, &[2, 4])]));
}

/// Many index positions: the one-pass program, not the quadratic map; same result.
#[test]
fn scatter_add_with_many_positions_is_a_program() {
    let mut rng = Rng(9);
    let idx: Vec<i64> = (0..100).map(|i| (i * 7) % 4 - 1).collect();
    for (axis, data, upd) in [(0, [4usize, 3], vec![100usize, 3]), (1, [3, 4], vec![3, 100])] {
        let data = random(&mut rng, F, &data);
        let upd = random(&mut rng, F, &upd);
        let c = check_op(Op::ScatterAdd { axis }, vec![data, ints(DType::I64, &[100], &idx), upd]);
        assert!(matches!(c, Compute::Program(_)), "{c}");
    }
}
