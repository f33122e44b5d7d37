//! The soundness property test: for every rule, random small graphs that match its left side,
//! with random shapes (including shapes its guard must refuse) and random values, optimized with
//! that rule alone (preferring rewritten e-nodes, so the rewrite is what gets checked), must give
//! the interpreter's results of the original graph, up to rounding.
//!
//! Each rule has a generator here; a rule without one fails the test, and so does a generator
//! with which its rule never fires.

use crate::testing::{close, inputs_for};
use crate::{all_rules, optimize, OptOptions};
use nnc_ir::{
    BinaryOp, DType, Dim, Graph, GraphBuilder, IrError, Op, PadMode, ReduceKind, TensorData, UnaryOp, ValueId, Window,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A small deterministic random source (splitmix64) driven by proptest's seed, and whether this
/// case declares inputs with a symbolic dimension.
struct Gen(u64, bool);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A shape of rank `lo..=hi` with dimensions 1 to 4.
    fn shape(&mut self, lo: usize, hi: usize) -> Vec<usize> {
        let rank = lo + self.below(hi - lo + 1);
        (0..rank).map(|_| 1 + self.below(4)).collect()
    }
    /// A shape that broadcasts against `s`: usually without changing it (leading axes dropped,
    /// some dimensions 1), sometimes with an extra leading axis, which changes the result.
    fn bcast_of(&mut self, s: &[usize]) -> Vec<usize> {
        let drop = self.below(s.len() + 1);
        let mut out: Vec<usize> = s[drop..].iter().map(|&d| if self.chance(0.3) { 1 } else { d }).collect();
        if self.chance(0.15) {
            out.insert(0, 2);
        }
        out
    }
    fn float(&mut self) -> DType {
        self.pick(&[DType::F32, DType::F32, DType::F32, DType::F64, DType::F16])
    }
    fn numeric(&mut self) -> DType {
        self.pick(&[DType::F32, DType::F64, DType::F16, DType::I32, DType::I8, DType::U8, DType::I64])
    }
    /// Random values of `dtype`: floats in [-3, 3), integers in [-10, 10) (or [0, 20)).
    fn values(&mut self, dtype: DType, shape: &[usize]) -> TensorData {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let u = self.unit();
                if dtype.is_float() {
                    u * 6.0 - 3.0
                } else if dtype.is_unsigned_int() {
                    (u * 20.0).floor()
                } else {
                    (u * 20.0).floor() - 10.0
                }
            })
            .collect();
        TensorData::from_f64(dtype, shape.to_vec(), &v)
    }
    /// Random values away from zero (magnitude 0.5 to 3), for divisors.
    fn nonzero(&mut self, dtype: DType, shape: &[usize]) -> TensorData {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let m = 0.5 + 2.5 * self.unit();
                if self.chance(0.5) {
                    -m
                } else {
                    m
                }
            })
            .collect();
        TensorData::from_f64(dtype, shape.to_vec(), &v)
    }
    fn perm(&mut self, rank: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

type R = Result<Graph, IrError>;

fn dims(s: &[usize]) -> Vec<Dim> {
    s.iter().map(|&d| Dim::from(d)).collect()
}

/// An input of shape `s`; in symbolic cases, its dimensions of size 3 are declared as the symbol
/// `n` (which the test's inputs bind to 3), so rules are checked under symbolic shapes too.
fn input(g: &Gen, b: &mut GraphBuilder, name: &str, dtype: DType, s: &[usize]) -> Result<ValueId, IrError> {
    let shape: Vec<Dim> = s.iter().map(|&d| if g.1 && d == 3 { Dim::sym("n") } else { Dim::from(d) }).collect();
    b.input(name, dtype, shape)
}

fn uniform(dtype: DType, s: &[usize], v: f64) -> TensorData {
    TensorData::from_f64(dtype, s.to_vec(), &vec![v; s.iter().product()])
}

fn finish(mut b: GraphBuilder, outs: &[ValueId]) -> R {
    for &o in outs {
        b.output(o);
    }
    b.finish()
}

/// `op(x, c)` (or `op(c, x)` when `left`) with `c` a constant of value `v` and a shape that
/// broadcasts against x's.
fn with_unit(g: &mut Gen, op: BinaryOp, v: f64, left: bool, dtype: DType) -> R {
    let s = g.shape(0, 3);
    let mut b = GraphBuilder::new("g");
    let x = input(g, &mut b, "x", dtype, &s)?;
    let cs = g.bcast_of(&s);
    // Sometimes a constant that is not all `v`: the guard must refuse it.
    let c = if g.chance(0.15) { g.values(dtype, &cs) } else { uniform(dtype, &cs, v) };
    let c = b.constant(c);
    let y = if left { b.binary(op, c, x)? } else { b.binary(op, x, c)? };
    let z = b.unary(UnaryOp::Neg, y)?;
    finish(b, &[z])
}

/// A value that the analysis knows is non-negative, made from an input.
fn nonneg_value(g: &mut Gen, b: &mut GraphBuilder, dtype: DType, s: &[usize]) -> Result<ValueId, IrError> {
    let x = input(g, b, "x", dtype, s)?;
    let u = g.pick(&[UnaryOp::Exp, UnaryOp::Relu, UnaryOp::Abs, UnaryOp::Sigmoid, UnaryOp::Sqrt, UnaryOp::Tanh]);
    b.unary(u, x)
}

/// `(x inner a) outer b` with constants a, b.
fn chain(g: &mut Gen, inner: BinaryOp, outer: BinaryOp, float_only: bool) -> R {
    let dtype = if float_only || g.chance(0.6) { g.float() } else { g.pick(&[DType::I32, DType::I8, DType::U8]) };
    let s = g.shape(0, 3);
    let mut b = GraphBuilder::new("g");
    let x = input(g, &mut b, "x", dtype, &s)?;
    let (sa, sb) = (g.bcast_of(&s), g.bcast_of(&s));
    let divides = |op: BinaryOp| op == BinaryOp::Div;
    let a = if divides(inner) || divides(outer) { g.nonzero(dtype, &sa) } else { g.values(dtype, &sa) };
    let c = if divides(outer) || divides(inner) { g.nonzero(dtype, &sb) } else { g.values(dtype, &sb) };
    let (a, c) = (b.constant(a), b.constant(c));
    let m = b.binary(inner, x, a)?;
    let n = b.binary(outer, m, c)?;
    finish(b, &[n])
}

fn unary_twice(g: &mut Gen, first: UnaryOp, second: UnaryOp, float_only: bool) -> R {
    let dtype = if float_only { g.float() } else { g.numeric() };
    let s = g.shape(0, 3);
    let mut b = GraphBuilder::new("g");
    let x = input(g, &mut b, "x", dtype, &s)?;
    let a = b.unary(first, x)?;
    let c = b.unary(second, a)?;
    finish(b, &[c])
}

fn conv_window(rank: usize) -> Window {
    Window::unit(rank)
}

/// The generator of the rule named `name`.
fn generator(name: &str) -> Option<fn(&mut Gen) -> R> {
    use BinaryOp::*;
    use UnaryOp::*;
    Some(match name {
        "mul_one" => |g| {
            let d = g.numeric();
            with_unit(g, Mul, 1.0, false, d)
        },
        "mul_one_left" => |g| {
            let d = g.numeric();
            with_unit(g, Mul, 1.0, true, d)
        },
        "add_zero" => |g| {
            let d = g.numeric();
            with_unit(g, Add, 0.0, false, d)
        },
        "add_zero_left" => |g| {
            let d = g.numeric();
            with_unit(g, Add, 0.0, true, d)
        },
        "sub_zero" => |g| {
            let d = g.numeric();
            with_unit(g, Sub, 0.0, false, d)
        },
        "div_one" => |g| {
            let d = g.float();
            with_unit(g, Div, 1.0, false, d)
        },
        "pow_one" => |g| {
            let d = g.float();
            with_unit(g, Pow, 1.0, false, d)
        },
        "neg_neg" => |g| unary_twice(g, Neg, Neg, false),
        "relu_relu" => |g| unary_twice(g, Relu, Relu, false),
        "abs_abs" => |g| unary_twice(g, Abs, Abs, false),
        "abs_neg" => |g| unary_twice(g, Neg, Abs, false),
        "sub_neg" | "add_neg" => |g| {
            let dtype = g.numeric();
            let s = g.shape(0, 3);
            let sy = g.bcast_of(&s);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let y = input(g, &mut b, "y", dtype, &sy)?;
            let n = b.unary(Neg, y)?;
            let op = if g.chance(0.5) { Sub } else { Add };
            let z = b.binary(op, x, n)?;
            finish(b, &[z])
        },
        "relu_nonneg" | "abs_nonneg" | "exp_log" => |g| {
            let dtype = g.float();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            // Sometimes a value that may be negative: the guard must refuse it.
            let v = if g.chance(0.2) { input(g, &mut b, "x", dtype, &s)? } else { nonneg_value(g, &mut b, dtype, &s)? };
            let out = match g.below(3) {
                0 => b.unary(Relu, v)?,
                1 => b.unary(Abs, v)?,
                _ => {
                    let l = b.unary(Log, v)?;
                    b.unary(Exp, l)?
                }
            };
            finish(b, &[out])
        },
        "max_self" | "min_self" => |g| {
            let dtype = g.numeric();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let op = if g.chance(0.5) { Max } else { Min };
            let y = b.binary(op, x, x)?;
            finish(b, &[y])
        },
        "mul_const_right" | "add_const_right" => |g| {
            let dtype = g.numeric();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let cs = g.bcast_of(&s);
            let c = g.values(dtype, &cs);
            let c = b.constant(c);
            let op = if g.chance(0.5) { Mul } else { Add };
            let y = b.binary(op, c, x)?;
            finish(b, &[y])
        },
        "mul_mul_const" => |g| chain(g, Mul, Mul, false),
        "add_add_const" => |g| chain(g, Add, Add, false),
        "sub_add_const" => |g| chain(g, Sub, Add, false),
        "add_sub_const" => |g| chain(g, Add, Sub, false),
        "sub_sub_const" => |g| chain(g, Sub, Sub, false),
        "div_div_const" => |g| chain(g, Div, Div, true),
        "mul_div_const" => |g| chain(g, Mul, Div, true),
        "div_mul_const" => |g| chain(g, Div, Mul, true),
        "neg_mul_const" => |g| {
            let dtype = g.numeric();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let cs = g.bcast_of(&s);
            let c = g.values(dtype, &cs);
            let c = b.constant(c);
            let m = b.mul(x, c)?;
            let n = b.unary(Neg, m)?;
            finish(b, &[n])
        },
        "fold_unary" => |g| {
            let u = g.pick(&[Neg, Abs, Relu, Exp, Log, Sqrt, Rsqrt, Reciprocal, Tanh, Floor, Ceil, Round]);
            let dtype = if u == Neg { g.numeric() } else { g.float() };
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let c = g.values(dtype, &s);
            let c = b.constant(c);
            let f = b.unary(u, c)?;
            let y = b.add(x, f)?;
            finish(b, &[y])
        },
        "fold_binary" => |g| {
            let op = g.pick(&[Add, Sub, Mul, Div, Max, Min]);
            let dtype = if op == Div { g.float() } else { g.numeric() };
            let s = g.shape(0, 3);
            let sb = g.bcast_of(&s);
            let mut b = GraphBuilder::new("g");
            let (ca, cb) = (g.values(dtype, &s), g.nonzero(dtype, &sb));
            let (ca, cb) = (b.constant(ca), b.constant(cb));
            let y = b.binary(op, ca, cb)?;
            let shape = b.ty(y).shape.clone();
            let x = b.input("x", dtype, shape)?;
            let z = b.add(x, y)?;
            finish(b, &[z])
        },
        "fold_cast" => |g| {
            let from = g.pick(&[DType::F32, DType::F16, DType::I32, DType::I8, DType::U8, DType::Bool, DType::U64]);
            let to = g.pick(&[DType::F32, DType::F64, DType::I32, DType::I8, DType::U8, DType::Bool, DType::U16]);
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let c = if from == DType::Bool { uniform(DType::Bool, &s, 1.0) } else { g.values(from, &s) };
            let c = b.constant(c);
            let y = b.cast(c, to)?;
            finish(b, &[y])
        },
        "fold_reshape" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let c = g.values(dtype, &s);
            let c = b.constant(c);
            let n: usize = s.iter().product();
            let target = if g.chance(0.5) { vec![n] } else { s.iter().rev().copied().collect() };
            let y = b.reshape(c, dims(&target))?;
            let x = input(g, &mut b, "x", dtype, &target)?;
            let z = b.add(x, y)?;
            finish(b, &[z])
        },
        "fold_transpose" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 4);
            let mut b = GraphBuilder::new("g");
            let c = g.values(dtype, &s);
            let c = b.constant(c);
            let p = g.perm(s.len());
            let y = b.transpose(c, p)?;
            finish(b, &[y])
        },
        "transpose_transpose" | "transpose_identity" | "transpose_to_reshape" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 4);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let p = if g.chance(0.2) { (0..s.len()).collect() } else { g.perm(s.len()) };
            let mut y = b.transpose(x, p)?;
            if g.chance(0.6) {
                let q = g.perm(s.len());
                y = b.transpose(y, q)?;
            }
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "reshape_reshape" | "reshape_identity" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 3);
            let n: usize = s.iter().product();
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let mid = if g.chance(0.3) { s.clone() } else { vec![n] };
            let mut y = b.reshape(x, dims(&mid))?;
            if g.chance(0.7) {
                let t: Vec<usize> = if g.chance(0.5) { s.iter().rev().copied().collect() } else { vec![1, n] };
                y = b.reshape(y, dims(&t))?;
            }
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "expand_identity" => |g| {
            let dtype = g.numeric();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let t = g.bcast_of(&s);
            let y = b.expand(x, dims(&t))?;
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "slice_identity" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let axis = g.below(s.len());
            let n = s[axis] as i64;
            let (start, end, step) = match g.below(4) {
                0 => (0, i64::MAX, 1),
                1 => (-n, n, 1),
                2 => (-1, i64::MIN, -1),
                _ => (g.below(2) as i64, n, 1),
            };
            let y =
                b.op1(Op::Slice { axes: vec![axis], starts: vec![start], ends: vec![end], steps: vec![step] }, &[x])?;
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "pad_zero" => |g| {
            let dtype = g.float();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let mut pads = vec![0i64; 2 * s.len()];
            if g.chance(0.3) {
                let k = g.below(pads.len());
                pads[k] = 1;
            }
            let mode = g.pick(&[PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap]);
            let y = b.pad(x, pads, mode, 0.5)?;
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "concat_single" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let y = if g.chance(0.8) { b.concat(&[x], 0)? } else { b.concat(&[x, x], 0)? };
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "transpose_unary" | "reshape_unary" => |g| {
            let u = g.pick(UnaryOp::ALL);
            let dtype = match u.class() {
                nnc_ir::op::UnaryClass::Numeric => g.numeric(),
                nnc_ir::op::UnaryClass::Logical => DType::Bool,
                _ => g.float(),
            };
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let y = b.unary(u, x)?;
            let z = if g.chance(0.5) {
                let p = g.perm(s.len());
                b.transpose(y, p)?
            } else {
                let n: usize = s.iter().product();
                b.reshape(y, dims(&[n]))?
            };
            finish(b, &[z])
        },
        "matmul_scalar_left" | "matmul_scalar_right" => |g| {
            let dtype = g.pick(&[DType::F32, DType::F64, DType::I32]);
            let (m, k, n) = (1 + g.below(3), 1 + g.below(4), 1 + g.below(3));
            let batch: Vec<usize> = if g.chance(0.3) { vec![2] } else { vec![] };
            let mut b = GraphBuilder::new("g");
            let xs: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
            let x = input(g, &mut b, "x", dtype, &xs)?;
            let y = input(g, &mut b, "y", dtype, &[k, n])?;
            let cs = g.pick(&[vec![], vec![1], vec![1, 1], vec![1, 1, 1], vec![k]]);
            let c = g.values(dtype, &cs);
            let c = b.constant(c);
            let z = if g.chance(0.5) {
                let xc = b.mul(x, c)?;
                b.matmul(xc, y)?
            } else {
                let yc = b.mul(y, c)?;
                b.matmul(x, yc)?
            };
            finish(b, &[z])
        },
        "conv_mul_const" | "batch_norm_into_conv" => |g| {
            let dtype = DType::F32;
            let (c, m, h) = (1 + g.below(2), 1 + g.below(3), 2 + g.below(3));
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &[1, c, h, h])?;
            let w = g.values(dtype, &[m, c, 2, 2]);
            let w = b.constant(w);
            let y = b.conv(x, w, conv_window(2), 1)?;
            let out = if g.chance(0.5) {
                let cs = g.pick(&[vec![m, 1, 1], vec![], vec![1], vec![1, m, 1, 1], vec![h - 1]]);
                let k = g.values(dtype, &cs);
                let k = b.constant(k);
                b.mul(y, k)?
            } else {
                let mut params = Vec::new();
                for positive in [false, false, false, true] {
                    let v = if positive {
                        let r: Vec<f64> = (0..m).map(|_| 0.1 + g.unit() * 2.0).collect();
                        TensorData::from_f64(dtype, vec![m], &r)
                    } else {
                        g.values(dtype, &[m])
                    };
                    params.push(b.constant(v));
                }
                let (s, bias, mean, var) = (params[0], params[1], params[2], params[3]);
                b.op1(Op::BatchNorm { epsilon: 1e-5 }, &[y, s, bias, mean, var])?
            };
            finish(b, &[out])
        },
        "gelu_erf" => |g| {
            let dtype = g.float();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let scalar = |b: &mut GraphBuilder, v: f64| b.constant(uniform(dtype, &[], v));
            let erf_arg = if g.chance(0.5) {
                let c = scalar(&mut b, std::f64::consts::SQRT_2);
                b.div(x, c)?
            } else {
                let c = scalar(&mut b, std::f64::consts::FRAC_1_SQRT_2);
                b.mul(x, c)?
            };
            let e = b.unary(Erf, erf_arg)?;
            let one = scalar(&mut b, 1.0);
            let e1 = b.add(e, one)?;
            let h = scalar(&mut b, if g.chance(0.9) { 0.5 } else { 0.25 });
            let y = match g.below(3) {
                0 => {
                    let t = b.mul(h, e1)?;
                    b.mul(x, t)?
                }
                1 => {
                    let t = b.mul(x, h)?;
                    b.mul(t, e1)?
                }
                _ => {
                    let t = b.mul(e1, h)?;
                    b.mul(t, x)?
                }
            };
            finish(b, &[y])
        },
        "softmax_expansion" | "log_softmax_expansion" => |g| {
            let dtype = g.float();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let axis = g.below(s.len()) as i64;
            let axis2 = if g.chance(0.85) { axis } else { g.below(s.len()) as i64 };
            let m = b.reduce(ReduceKind::Max, x, &[axis], true)?;
            let d = b.sub(x, m)?;
            let e = b.exp(d)?;
            let sum = b.reduce_sum(e, &[axis2], true)?;
            let y = if g.chance(0.5) {
                b.div(e, sum)?
            } else {
                let l = b.log(sum)?;
                b.sub(d, l)?
            };
            finish(b, &[y])
        },
        "layer_norm_expansion" => |g| {
            let dtype = g.float();
            let s = g.shape(1, 3);
            let r = s.len();
            let axis = g.below(r);
            let axes: Vec<i64> = (axis as i64..r as i64).collect();
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let ps: Vec<usize> = s[axis..].to_vec();
            let gamma = input(g, &mut b, "gamma", dtype, &ps)?;
            let beta = input(g, &mut b, "beta", dtype, &ps)?;
            let mean = b.reduce_mean(x, &axes, true)?;
            let c = b.sub(x, mean)?;
            let sq = if g.chance(0.3) {
                let two = b.constant(uniform(dtype, &[], 2.0));
                b.binary(Pow, c, two)?
            } else {
                b.mul(c, c)?
            };
            let var = b.reduce_mean(sq, &axes, true)?;
            let eps = b.constant(uniform(dtype, &[], 1e-3));
            let ve = b.add(var, eps)?;
            let n = if g.chance(0.5) {
                let rs = b.unary(Rsqrt, ve)?;
                b.mul(c, rs)?
            } else {
                let sq = b.unary(Sqrt, ve)?;
                b.div(c, sq)?
            };
            let sc = b.mul(n, gamma)?;
            let y = b.add(sc, beta)?;
            finish(b, &[y])
        },
        "cast_identity" | "cast_cast" => |g| {
            let all = [
                DType::F32,
                DType::F64,
                DType::F16,
                DType::BF16,
                DType::I64,
                DType::I32,
                DType::I16,
                DType::I8,
                DType::U32,
                DType::U16,
                DType::U8,
                DType::Bool,
            ];
            let (from, mid, to) = (g.pick(&all), g.pick(&all), g.pick(&all));
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", from, &s)?;
            // Values that exercise wrapping and saturation: scaled inputs.
            let x = if from.is_numeric() {
                let k = b.constant(uniform(from, &[], if from.is_float() { 60.0 } else { 13.0 }));
                b.mul(x, k)?
            } else {
                x
            };
            let a = b.cast(x, mid)?;
            let y = b.cast(a, to)?;
            finish(b, &[y])
        },
        "gelu_tanh" => |g| {
            let dtype = g.float();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let scalar = |b: &mut GraphBuilder, v: f64| b.constant(uniform(dtype, &[], v));
            let cube = if g.chance(0.5) {
                let x2 = b.mul(x, x)?;
                b.mul(x2, x)?
            } else {
                let three = scalar(&mut b, 3.0);
                b.binary(Pow, x, three)?
            };
            let k = scalar(&mut b, if g.chance(0.9) { 0.044715 } else { 0.05 });
            let c = b.mul(cube, k)?;
            let sum = b.add(x, c)?;
            let r = scalar(&mut b, (2.0 / std::f64::consts::PI).sqrt());
            let t = b.mul(sum, r)?;
            let th = b.unary(Tanh, t)?;
            let one = scalar(&mut b, 1.0);
            let o = b.add(th, one)?;
            let h = scalar(&mut b, 0.5);
            let y = if g.chance(0.5) {
                let hx = b.mul(x, h)?;
                b.mul(hx, o)?
            } else {
                let oh = b.mul(o, h)?;
                b.mul(x, oh)?
            };
            finish(b, &[y])
        },
        "softmax_naive" => |g| {
            let dtype = g.float();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let axis = g.below(s.len()) as i64;
            let e = b.exp(x)?;
            let keep = g.chance(0.9);
            let sum = b.reduce_sum(e, &[axis], keep)?;
            let y = b.div(e, sum)?;
            finish(b, &[y])
        },
        "sigmoid_expansion" | "rsqrt_expansion" => |g| {
            let dtype = g.float();
            let s = g.shape(0, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let cs = g.bcast_of(&s);
            let one = b.constant(uniform(dtype, &cs, if g.chance(0.9) { 1.0 } else { 2.0 }));
            let den = if g.chance(0.5) {
                let n = b.unary(Neg, x)?;
                let e = b.exp(n)?;
                b.add(e, one)?
            } else {
                b.unary(Sqrt, x)?
            };
            let y = if g.chance(0.5) { b.div(one, den)? } else { b.unary(Reciprocal, den)? };
            finish(b, &[y])
        },
        "unsqueeze_transpose" => |g| {
            let dtype = g.numeric();
            let s = g.shape(1, 3);
            let mut b = GraphBuilder::new("g");
            let x = input(g, &mut b, "x", dtype, &s)?;
            let p = g.perm(s.len());
            let t = b.transpose(x, p)?;
            let ts = b.ty(t).shape.clone();
            let target: Vec<Dim> = match g.below(3) {
                0 => std::iter::once(Dim::from(1)).chain(ts).collect(),
                1 => [Dim::from(1), Dim::from(1)].into_iter().chain(ts).collect(),
                _ => ts.into_iter().chain(std::iter::once(Dim::from(1))).collect(),
            };
            let y = b.reshape(t, target)?;
            let z = b.unary(Neg, y)?;
            finish(b, &[z])
        },
        "attention_expansion" => |g| {
            let dtype = g.pick(&[DType::F32, DType::F64]);
            let (lq, lk, d, dv) = (1 + g.below(4), 1 + g.below(4), 1 + g.below(4), 1 + g.below(3));
            let batch: Vec<usize> = g.pick(&[vec![], vec![2], vec![1, 2]]);
            let with = |tail: [usize; 2]| batch.iter().copied().chain(tail).collect::<Vec<usize>>();
            let mut b = GraphBuilder::new("g");
            let q = input(g, &mut b, "q", dtype, &with([lq, d]))?;
            let k = input(g, &mut b, "k", dtype, &with([lk, d]))?;
            let v = input(g, &mut b, "v", dtype, &with([lk, dv]))?;
            // kᵀ, or another transpose of k (then attention needs k transposed first).
            let kt = if g.chance(0.7) { b.transpose_last2(k)? } else { b.transpose(k, g.perm(b.ty(k).rank()))? };
            let s = b.matmul(q, kt)?;
            let c = b.constant(uniform(dtype, &g.pick(&[vec![], vec![1]]), 0.1 + g.unit()));
            let mut sc = b.mul(s, c)?;
            if g.chance(0.4) {
                let ms = g.pick(&[vec![lq, lk], vec![lk], vec![1, lk]]);
                let m = input(g, &mut b, "m", dtype, &ms)?;
                sc = b.add(sc, m)?;
            }
            let rank = b.ty(sc).rank() as i64;
            let axis = if g.chance(0.85) { rank - 1 } else { rank - 2 };
            let p = b.softmax(sc, axis)?;
            let y = b.matmul(p, v)?;
            finish(b, &[y])
        },
        _ => return None,
    })
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-9,
        DType::F32 => 2e-4,
        DType::F16 => 2e-2,
        DType::BF16 => 5e-2,
        _ => 0.0,
    }
}

/// Checks one random case of `rule`; returns whether the rule fired.
fn check_case(rule: &str, make: fn(&mut Gen) -> R, seed: u64) -> Result<bool, TestCaseError> {
    let mut g = Gen(seed, seed.is_multiple_of(3));
    let Ok(graph) = make(&mut g) else { return Ok(false) };
    let options = OptOptions { prefer_rewrites: true, ..OptOptions::only(rule) };
    let opt = optimize(&graph, &options).map_err(|e| TestCaseError::fail(format!("{rule}: {e}")))?;
    let fired = opt.fired.iter().any(|(n, _)| *n == rule);
    let inputs = inputs_for(&graph, seed);
    let Ok(expected) = nnc_interp::run(&graph, &inputs) else { return Ok(fired) };
    let show =
        || format!("original:\n{}\noptimized:\n{}", nnc_ir::text::print(&graph), nnc_ir::text::print(&opt.graph));
    let found = nnc_interp::run(&opt.graph, &inputs)
        .map_err(|e| TestCaseError::fail(format!("{rule}: the optimized graph fails: {e}\n{}", show())))?;
    for (e, f) in expected.iter().zip(&found) {
        close(e, f, tolerance(e.dtype())).map_err(|m| TestCaseError::fail(format!("{rule}: {m}\n{}", show())))?;
    }
    Ok(fired)
}

#[test]
fn every_rule_is_sound_on_random_graphs() {
    let cases = std::env::var("NNC_SOUNDNESS_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let mut missing = Vec::new();
    for rule in all_rules() {
        let Some(make) = generator(rule.name) else {
            missing.push(rule.name);
            continue;
        };
        let fired = std::cell::Cell::new(0usize);
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let result = runner.run(&any::<u64>(), |seed| {
            if check_case(rule.name, make, seed)? {
                fired.set(fired.get() + 1);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("rule `{}` is unsound: {e}", rule.name);
        }
        assert!(fired.get() > 0, "rule `{}` never fired on {cases} random graphs", rule.name);
    }
    assert!(missing.is_empty(), "rules without a soundness generator: {missing:?}");
}
