//! Elementwise ops: `unary`, `binary` (numpy broadcasting), `select`, `cast` and `iota`.
//!
//! Semantics (ONNX/numpy where the IR follows them):
//! - floats compute in `f64` and round to the value's dtype afterwards; integers compute in `i64`
//!   with wrapping and wrap to the dtype's width (`u64` computes in `u64`, so order, division and
//!   remainder are unsigned: see [`crate::value::Int`]); `bool` stays `bool`;
//! - integer `div` truncates toward zero, integer `rem` has the sign of the dividend (C `%`);
//!   either by zero is an error; float `div` is IEEE, float `rem` is `fmod`;
//! - integer `pow` needs exponents `>= 0` (wrapping result); float `pow` is `powf`;
//! - `max`/`min` propagate NaN; comparisons are IEEE (NaN compares unequal to everything);
//!   `bool` orders `false < true`;
//! - `sign(±0) = ±0`, `sign(NaN) = NaN`; `relu(NaN) = NaN`; `round` is half-to-even;
//!   `neg`/`abs` of integers wrap (`abs(i8 -128) = -128`, as numpy; `abs` of unsigned dtypes is
//!   the identity, `neg(u8 1) = 255`);
//! - `cast`: float → int truncates toward zero and saturates, NaN → 0 (Rust `as`); int → int
//!   wraps; anything → bool is `!= 0` (so NaN → true); float → float rounds to nearest-even.

use crate::erf::erf;
use crate::value::{
    broadcast_strides, float_to_int, for_each_offset, internal, round_float, strides, with_int, Data, Int, Value,
};
use nnc_ir::{BinaryOp, DType, UnaryOp};

/// `f` applied to `a` and `b` broadcast to `shape`.
fn zip_map<A: Copy, B: Copy, R>(
    (a, a_shape): (&[A], &[usize]),
    (b, b_shape): (&[B], &[usize]),
    shape: &[usize],
    f: impl Fn(A, B) -> R,
) -> Result<Vec<R>, String> {
    if a_shape == shape && b_shape == shape {
        return Ok(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect());
    }
    let (sa, sb) = (broadcast_strides(a_shape, shape)?, broadcast_strides(b_shape, shape)?);
    let mut out = Vec::with_capacity(shape.iter().product());
    for_each_offset(shape, [&sa, &sb], |[i, j]| out.push(f(a[i], b[j])));
    Ok(out)
}

fn float_unary(op: UnaryOp) -> Option<fn(f64) -> f64> {
    use UnaryOp::*;
    let f: fn(f64) -> f64 = match op {
        Neg => |x| -x,
        Abs => f64::abs,
        Sign => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        Relu => |x| if x > 0.0 || x.is_nan() { x } else { 0.0 },
        Exp => f64::exp,
        Log => f64::ln,
        Sqrt => f64::sqrt,
        Rsqrt => |x| 1.0 / x.sqrt(),
        Reciprocal => |x| 1.0 / x,
        Sin => f64::sin,
        Cos => f64::cos,
        Tan => f64::tan,
        Asin => f64::asin,
        Acos => f64::acos,
        Atan => f64::atan,
        Sinh => f64::sinh,
        Cosh => f64::cosh,
        Tanh => f64::tanh,
        Asinh => f64::asinh,
        Acosh => f64::acosh,
        Atanh => f64::atanh,
        Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
        Erf => erf,
        Floor => f64::floor,
        Ceil => f64::ceil,
        Round => f64::round_ties_even,
        Not | IsNan | IsInf => return None,
    };
    Some(f)
}

fn int_unary<T: Int>(op: UnaryOp) -> Option<fn(T) -> T> {
    use UnaryOp::*;
    let f: fn(T) -> T = match op {
        Neg => T::neg,
        Abs => T::abs,
        Sign => T::signum,
        Relu => |x| x.max(T::ZERO),
        Exp | Log | Sqrt | Rsqrt | Reciprocal | Sin | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Tanh | Asinh
        | Acosh | Atanh | Sigmoid | Erf | Floor | Ceil | Round | Not | IsNan | IsInf => return None,
    };
    Some(f)
}

pub fn unary(op: UnaryOp, x: &Value) -> Result<Value, String> {
    let shape = x.shape.clone();
    let bad = || internal(&format!("`{}` on a {} value", op.name(), x.dtype));
    match (&x.data, op) {
        (Data::Float(v), UnaryOp::IsNan) => Ok(Value::bool(shape, v.iter().map(|x| x.is_nan()).collect())),
        (Data::Float(v), UnaryOp::IsInf) => Ok(Value::bool(shape, v.iter().map(|x| x.is_infinite()).collect())),
        (Data::Float(v), _) => {
            let f = float_unary(op).ok_or_else(bad)?;
            Ok(Value::float(x.dtype, shape, v.iter().map(|&x| f(x)).collect()))
        }
        // Bitwise not of the held bits, wrapped back to the dtype's width.
        (Data::Int(v), UnaryOp::Not) => Ok(Value::int(x.dtype, shape, v.iter().map(|&x| !x).collect())),
        (Data::Int(v), _) => with_int!(x.dtype, T => {
            let f = int_unary::<T>(op).ok_or_else(bad)?;
            Ok(Value::int(x.dtype, shape, v.iter().map(|&x| f(T::from_held(x)).held()).collect()))
        }),
        (Data::Bool(v), UnaryOp::Not) => Ok(Value::bool(shape, v.iter().map(|x| !x).collect())),
        (Data::Bool(_), _) => Err(bad()),
    }
}

/// `max`/`min` that return NaN if either operand is NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn comparison<T: PartialOrd>(op: BinaryOp) -> Option<fn(T, T) -> bool> {
    use BinaryOp::*;
    let f: fn(T, T) -> bool = match op {
        Eq => |a, b| a == b,
        Ne => |a, b| a != b,
        Lt => |a, b| a < b,
        Le => |a, b| a <= b,
        Gt => |a, b| a > b,
        Ge => |a, b| a >= b,
        Add | Sub | Mul | Div | Rem | Pow | Max | Min | And | Or | Xor => return None,
    };
    Some(f)
}

/// `a op b` with numpy broadcasting to `shape` (the result shape from shape inference).
pub fn binary(op: BinaryOp, a: &Value, b: &Value, shape: &[usize]) -> Result<Value, String> {
    use BinaryOp::*;
    let out = shape.to_vec();
    let bad = || internal(&format!("`{}` on {} and {} values", op.name(), a.dtype, b.dtype));
    match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => {
            let (x, y) = ((x.as_slice(), a.shape.as_slice()), (y.as_slice(), b.shape.as_slice()));
            if let Some(cmp) = comparison::<f64>(op) {
                return Ok(Value::bool(out, zip_map(x, y, shape, cmp)?));
            }
            let f: fn(f64, f64) -> f64 = match op {
                Add => |a, b| a + b,
                Sub => |a, b| a - b,
                Mul => |a, b| a * b,
                Div => |a, b| a / b,
                Rem => |a, b| a % b,
                Pow => f64::powf,
                Max => nan_max,
                Min => nan_min,
                And | Or | Xor | Eq | Ne | Lt | Le | Gt | Ge => return Err(bad()),
            };
            Ok(Value::float(a.dtype, out, zip_map(x, y, shape, f)?))
        }
        (Data::Int(x), Data::Int(y)) => {
            with_int!(a.dtype, T => int_binary::<T>(op, (x, &a.shape), (y, &b.shape), a.dtype, shape))
        }
        (Data::Bool(x), Data::Bool(y)) => {
            let (x, y) = ((x.as_slice(), a.shape.as_slice()), (y.as_slice(), b.shape.as_slice()));
            let f: fn(bool, bool) -> bool = match op {
                And => |a, b| a && b,
                Or => |a, b| a || b,
                Xor => |a, b| a != b,
                Eq | Ne | Lt | Le | Gt | Ge => comparison::<bool>(op).ok_or_else(bad)?,
                Add | Sub | Mul | Div | Rem | Pow | Max | Min => return Err(bad()),
            };
            Ok(Value::bool(out, zip_map(x, y, shape, f)?))
        }
        _ => Err(bad()),
    }
}

/// [`binary`] on integers held as `i64` (see [`crate::value`]), computed in `T`.
fn int_binary<T: Int>(
    op: BinaryOp,
    (xv, x_shape): (&[i64], &[usize]),
    (yv, y_shape): (&[i64], &[usize]),
    dtype: DType,
    shape: &[usize],
) -> Result<Value, String> {
    use BinaryOp::*;
    let out = shape.to_vec();
    let (x, y) = ((xv, x_shape), (yv, y_shape));
    if let Some(cmp) = comparison::<T>(op) {
        return Ok(Value::bool(out, zip_map(x, y, shape, |p, q| cmp(T::from_held(p), T::from_held(q)))?));
    }
    // Every element of `b` meets some element of `a` unless the result is empty, so
    // checking the divisors up front is exact.
    let nonempty = !shape.contains(&0);
    if matches!(op, Div | Rem) && nonempty && yv.contains(&0) {
        let what = if op == Div { "division" } else { "remainder" };
        return Err(format!("integer {what} by zero"));
    }
    if op == Pow && nonempty {
        if let Some(e) = yv.iter().map(|&e| T::from_held(e)).find(|&e| e < T::ZERO) {
            return Err(format!("integer pow with negative exponent {e}"));
        }
    }
    // Bitwise ops act on the held bits (a `u64`'s pattern, the others' sign-extended values),
    // which wrapping to the dtype keeps exact.
    let bitwise: Option<fn(i64, i64) -> i64> = match op {
        And => Some(|a, b| a & b),
        Or => Some(|a, b| a | b),
        Xor => Some(|a, b| a ^ b),
        _ => None,
    };
    if let Some(f) = bitwise {
        return Ok(Value::int(dtype, out, zip_map(x, y, shape, f)?));
    }
    let f: fn(T, T) -> T = match op {
        Add => T::add,
        Sub => T::sub,
        Mul => T::mul,
        Div => T::div,
        Rem => T::rem,
        Pow => T::pow,
        Max => |a, b| a.max(b),
        Min => |a, b| a.min(b),
        And | Or | Xor | Eq | Ne | Lt | Le | Gt | Ge => {
            return Err(internal(&format!("`{}` on {dtype} values", op.name())))
        }
    };
    Ok(Value::int(dtype, out, zip_map(x, y, shape, |p, q| f(T::from_held(p), T::from_held(q)).held())?))
}

/// `select(cond, a, b)`: `a` where `cond`, else `b`, all three broadcast to `shape`.
pub fn select(cond: &Value, a: &Value, b: &Value, shape: &[usize]) -> Result<Value, String> {
    let c = cond.bools()?;
    let sc = broadcast_strides(&cond.shape, shape)?;
    let sa = broadcast_strides(&a.shape, shape)?;
    let sb = broadcast_strides(&b.shape, shape)?;
    fn pick<T: Copy>(c: &[bool], x: &[T], y: &[T], shape: &[usize], s: [&[usize]; 3]) -> Vec<T> {
        let mut out = Vec::with_capacity(shape.iter().product());
        for_each_offset(shape, s, |[i, j, k]| out.push(if c[i] { x[j] } else { y[k] }));
        out
    }
    let s = [sc.as_slice(), &sa, &sb];
    let data = match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => Data::Float(pick(c, x, y, shape, s)),
        (Data::Int(x), Data::Int(y)) => Data::Int(pick(c, x, y, shape, s)),
        (Data::Bool(x), Data::Bool(y)) => Data::Bool(pick(c, x, y, shape, s)),
        _ => return Err(internal("select of values of different kinds")),
    };
    Ok(Value { dtype: a.dtype, shape: shape.to_vec(), data })
}

/// Conversion to dtype `to` (see the module docs for the rules).
pub fn cast(x: &Value, to: DType) -> Result<Value, String> {
    let shape = x.shape.clone();
    let to_float = to.is_float();
    let to_int = to.is_int();
    Ok(match &x.data {
        Data::Float(v) if to_float => Value::float(to, shape, v.clone()),
        Data::Float(v) if to_int => Value::int(to, shape, v.iter().map(|&f| float_to_int(to, f)).collect()),
        Data::Float(v) => Value::bool(shape, v.iter().map(|&f| f != 0.0).collect()),
        Data::Int(v) if to_float => with_int!(x.dtype, T => {
            // Integer → f32 directly, so large integers round once, not twice.
            let data = match to {
                DType::F32 => v.iter().map(|&i| T::from_held(i).to_f32() as f64).collect(),
                _ => v.iter().map(|&i| round_float(to, T::from_held(i).to_f64())).collect(),
            };
            Value { dtype: to, shape, data: Data::Float(data) }
        }),
        Data::Int(v) if to_int => Value::int(to, shape, v.clone()),
        Data::Int(v) => Value::bool(shape, v.iter().map(|&i| i != 0).collect()),
        Data::Bool(v) if to_float => Value::float(to, shape, v.iter().map(|&b| b as u8 as f64).collect()),
        Data::Bool(v) if to_int => Value::int(to, shape, v.iter().map(|&b| b as i64).collect()),
        Data::Bool(v) => Value::bool(shape, v.clone()),
    })
}

/// `out[i0, .., in] = i_axis` in `dtype` (floats rounded, integers wrapped).
pub fn iota(dtype: DType, shape: &[usize], axis: usize) -> Result<Value, String> {
    let (Some(&len), Some(&stride)) = (shape.get(axis), strides(shape).get(axis)) else {
        return Err(internal("iota axis out of range"));
    };
    let n: usize = shape.iter().product();
    let coords = (0..n).map(|i| ((i / stride) % len) as i64);
    if dtype.is_float() {
        Ok(Value::float(dtype, shape.to_vec(), coords.map(|c| c as f64).collect()))
    } else if dtype.is_int() {
        Ok(Value::int(dtype, shape.to_vec(), coords.collect()))
    } else {
        Err(internal("iota of bool"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dtype: DType, shape: &[usize], v: &[f64]) -> Value {
        Value::float(dtype, shape.to_vec(), v.to_vec())
    }

    fn i(dtype: DType, shape: &[usize], v: &[i64]) -> Value {
        Value::int(dtype, shape.to_vec(), v.to_vec())
    }

    #[test]
    fn float_unary_edge_cases() {
        let x = f(DType::F64, &[5], &[-0.0, 2.5, -2.5, f64::NAN, 0.5]);
        let r = unary(UnaryOp::Round, &x).unwrap();
        assert_eq!(r.floats().unwrap()[1..3], [2.0, -2.0]);
        assert_eq!(unary(UnaryOp::Round, &f(DType::F64, &[1], &[3.5])).unwrap().floats().unwrap(), [4.0]);
        let s = unary(UnaryOp::Sign, &x).unwrap();
        let s = s.floats().unwrap();
        assert!(s[0] == 0.0 && s[0].is_sign_negative() && s[1] == 1.0 && s[2] == -1.0 && s[3].is_nan());
        let r = unary(UnaryOp::Relu, &x).unwrap();
        assert!(r.floats().unwrap()[3].is_nan());
        assert_eq!(r.floats().unwrap()[2], 0.0);
        let n = unary(UnaryOp::IsNan, &x).unwrap();
        assert_eq!(n.bools().unwrap(), [false, false, false, true, false]);
        // f32 results are rounded to f32.
        let e = unary(UnaryOp::Exp, &f(DType::F32, &[1], &[1.0])).unwrap();
        assert_eq!(e.floats().unwrap(), [std::f64::consts::E as f32 as f64]);
    }

    #[test]
    fn integer_unary_wraps() {
        let x = i(DType::I8, &[4], &[-128, -3, 0, 7]);
        assert_eq!(unary(UnaryOp::Abs, &x).unwrap().ints().unwrap(), [-128, 3, 0, 7]);
        assert_eq!(unary(UnaryOp::Neg, &x).unwrap().ints().unwrap(), [-128, 3, 0, -7]);
        assert_eq!(unary(UnaryOp::Sign, &x).unwrap().ints().unwrap(), [-1, -1, 0, 1]);
        assert_eq!(unary(UnaryOp::Relu, &x).unwrap().ints().unwrap(), [0, 0, 0, 7]);
        assert!(unary(UnaryOp::Exp, &x).is_err());
    }

    #[test]
    fn integer_division_truncates_and_rem_follows_dividend() {
        let a = i(DType::I32, &[4], &[7, -7, 7, -7]);
        let b = i(DType::I32, &[4], &[2, 2, -2, -2]);
        assert_eq!(binary(BinaryOp::Div, &a, &b, &[4]).unwrap().ints().unwrap(), [3, -3, -3, 3]);
        assert_eq!(binary(BinaryOp::Rem, &a, &b, &[4]).unwrap().ints().unwrap(), [1, -1, 1, -1]);
        let zero = i(DType::I32, &[1], &[0]);
        assert_eq!(binary(BinaryOp::Div, &a, &zero, &[4]).unwrap_err(), "integer division by zero");
        assert!(binary(BinaryOp::Rem, &a, &zero, &[4]).unwrap_err().contains("remainder by zero"));
        // An empty result divides nothing.
        let empty = i(DType::I32, &[0], &[]);
        assert!(binary(BinaryOp::Div, &empty, &zero, &[0]).is_ok());
        // i32::MIN / -1 wraps.
        let m = i(DType::I32, &[1], &[i32::MIN as i64]);
        let neg1 = i(DType::I32, &[1], &[-1]);
        assert_eq!(binary(BinaryOp::Div, &m, &neg1, &[1]).unwrap().ints().unwrap(), [i32::MIN as i64]);
    }

    #[test]
    fn float_rem_is_fmod_and_minmax_propagate_nan() {
        let a = f(DType::F32, &[3], &[5.5, -5.5, f64::NAN]);
        let b = f(DType::F32, &[3], &[2.0, 2.0, 1.0]);
        assert_eq!(binary(BinaryOp::Rem, &a, &b, &[3]).unwrap().floats().unwrap()[..2], [1.5, -1.5]);
        assert!(binary(BinaryOp::Max, &a, &b, &[3]).unwrap().floats().unwrap()[2].is_nan());
        assert!(binary(BinaryOp::Min, &b, &a, &[3]).unwrap().floats().unwrap()[2].is_nan());
        let d = binary(BinaryOp::Div, &b, &f(DType::F32, &[1], &[0.0]), &[3]).unwrap();
        assert_eq!(d.floats().unwrap()[0], f64::INFINITY);
    }

    #[test]
    fn integer_pow_and_wrapping() {
        let a = i(DType::U8, &[3], &[2, 3, 0]);
        let b = i(DType::U8, &[3], &[9, 2, 0]);
        assert_eq!(binary(BinaryOp::Pow, &a, &b, &[3]).unwrap().ints().unwrap(), [0, 9, 1]);
        let n = i(DType::I64, &[1], &[-1]);
        assert!(binary(BinaryOp::Pow, &n, &n, &[1]).unwrap_err().contains("negative exponent -1"));
        assert_eq!(binary(BinaryOp::Sub, &a, &b, &[3]).unwrap().ints().unwrap(), [249, 1, 0]);
    }

    #[test]
    fn broadcasting_and_comparisons() {
        let a = f(DType::F32, &[2, 1], &[1.0, 2.0]);
        let b = f(DType::F32, &[3], &[0.0, 1.0, 2.0]);
        let r = binary(BinaryOp::Add, &a, &b, &[2, 3]).unwrap();
        assert_eq!(r.floats().unwrap(), [1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        let r = binary(BinaryOp::Ge, &a, &b, &[2, 3]).unwrap();
        assert_eq!(r.bools().unwrap(), [true, true, false, true, true, true]);
        let nan = f(DType::F32, &[1], &[f64::NAN]);
        assert_eq!(binary(BinaryOp::Ne, &nan, &nan, &[1]).unwrap().bools().unwrap(), [true]);
        assert_eq!(binary(BinaryOp::Eq, &nan, &nan, &[1]).unwrap().bools().unwrap(), [false]);
        let t = Value::bool(vec![2], vec![true, false]);
        let u = Value::bool(vec![1], vec![true]);
        assert_eq!(binary(BinaryOp::Xor, &t, &u, &[2]).unwrap().bools().unwrap(), [false, true]);
        assert_eq!(binary(BinaryOp::Gt, &t, &u, &[2]).unwrap().bools().unwrap(), [false, false]);
    }

    #[test]
    fn select_broadcasts_three_ways() {
        let c = Value::bool(vec![2, 1], vec![true, false]);
        let a = i(DType::I64, &[3], &[1, 2, 3]);
        let b = i(DType::I64, &[], &[0]);
        assert_eq!(select(&c, &a, &b, &[2, 3]).unwrap().ints().unwrap(), [1, 2, 3, 0, 0, 0]);
    }

    #[test]
    fn casts() {
        let x = f(DType::F64, &[6], &[-1.9, 1.9, f64::NAN, 1e10, -1e10, 0.0]);
        assert_eq!(cast(&x, DType::I32).unwrap().ints().unwrap(), [-1, 1, 0, i32::MAX as i64, i32::MIN as i64, 0]);
        assert_eq!(cast(&x, DType::U8).unwrap().ints().unwrap(), [0, 1, 0, 255, 0, 0]);
        assert_eq!(cast(&x, DType::Bool).unwrap().bools().unwrap(), [true, true, true, true, true, false]);
        let h = cast(&f(DType::F64, &[2], &[0.1, 70000.0]), DType::F16).unwrap();
        assert_eq!(h.floats().unwrap(), [half::f16::from_f64(0.1).to_f64(), f64::INFINITY]);
        let big = i(DType::I64, &[2], &[300, (1 << 53) + 1]);
        assert_eq!(cast(&big, DType::U8).unwrap().ints().unwrap(), [44, 1]);
        assert_eq!(cast(&big, DType::F32).unwrap().floats().unwrap()[1], ((1i64 << 53) + 1) as f32 as f64);
        let b = Value::bool(vec![2], vec![true, false]);
        assert_eq!(cast(&b, DType::F32).unwrap().floats().unwrap(), [1.0, 0.0]);
    }

    #[test]
    fn low_precision_casts_round_and_wrap() {
        // float8 E4M3FN: ties to even, out of range NaN (the cast does not saturate; ONNX's
        // saturating Cast clamps before it), subnormals kept.
        let x = f(DType::F32, &[4], &[1.0625, 500.0, -2f64.powi(-9), 0.3]);
        let y = cast(&x, DType::F8E4M3FN).unwrap();
        let v = y.floats().unwrap();
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        assert_eq!(v[2], -2f64.powi(-9));
        assert_eq!(v[3], 0.3125);
        // Back to f32 exactly, and through the tensor form (one byte per element).
        assert_eq!(cast(&y, DType::F32).unwrap().floats().unwrap()[3], 0.3125);
        assert_eq!(y.to_tensor().unwrap().bytes().len(), 4);
        // 4-bit integers wrap, from floats (truncated first) and from integers.
        let z = cast(&f(DType::F32, &[3], &[-9.0, 8.5, 7.0]), DType::I4).unwrap();
        assert_eq!(z.ints().unwrap(), [7, -8, 7]);
        assert_eq!(cast(&i(DType::I64, &[2], &[16, -1]), DType::U4).unwrap().ints().unwrap(), [0, 15]);
        // Arithmetic on them wraps too.
        let s = binary(BinaryOp::Add, &z, &z, &[3]).unwrap();
        assert_eq!(s.ints().unwrap(), [-2, 0, -2]);
    }

    const TOP: u64 = 1 << 63;

    /// A `u64` value from `u64` elements (held as bit patterns).
    fn u(v: &[u64]) -> Value {
        Value::from_tensor(&nnc_ir::TensorData::from_vec(vec![v.len()], v))
    }

    /// The elements of a `u64` value.
    fn u64s(v: &Value) -> Vec<u64> {
        v.to_tensor().unwrap().to_vec::<u64>().unwrap()
    }

    #[test]
    fn new_integer_widths_wrap() {
        let bin = |op, d, x: &[i64], y: &[i64]| {
            let n = x.len();
            binary(op, &i(d, &[n], x), &i(d, &[n], y), &[n]).unwrap().ints().unwrap().to_vec()
        };
        assert_eq!(bin(BinaryOp::Add, DType::I16, &[32767, -32768], &[1, -1]), [-32768, 32767]);
        assert_eq!(bin(BinaryOp::Mul, DType::I16, &[256, -300], &[256, 300]), [0, -24464]);
        assert_eq!(bin(BinaryOp::Sub, DType::U16, &[0, 5], &[1, 65535]), [65535, 6]);
        assert_eq!(bin(BinaryOp::Mul, DType::U16, &[256, 300], &[256, 300]), [0, 24464]);
        assert_eq!(bin(BinaryOp::Add, DType::U32, &[4294967295, 7], &[1, 4294967290]), [0, 1]);
        assert_eq!(bin(BinaryOp::Mul, DType::U32, &[65536, 3], &[65536, 1431655766]), [0, 2]);
        assert_eq!(bin(BinaryOp::Pow, DType::U32, &[2, 3], &[32, 21]), [0, 3486784401u32 as i64 * 3 % (1 << 32)]);
        assert_eq!(bin(BinaryOp::Div, DType::I16, &[-7, -32768], &[2, -1]), [-3, -32768]);
        assert_eq!(bin(BinaryOp::Rem, DType::I16, &[-7, 7], &[2, -2]), [-1, 1]);
        // u8 .. u32 values fit i64, so unsigned comparison needs nothing special.
        let lt = binary(BinaryOp::Lt, &i(DType::U32, &[1], &[4294967295]), &i(DType::U32, &[1], &[1]), &[1]).unwrap();
        assert_eq!(lt.bools().unwrap(), [false]);
        assert_eq!(unary(UnaryOp::Neg, &i(DType::U16, &[2], &[1, 0])).unwrap().ints().unwrap(), [65535, 0]);
        assert_eq!(unary(UnaryOp::Abs, &i(DType::I16, &[1], &[-32768])).unwrap().ints().unwrap(), [-32768]);
        let (a, b) = (u(&[u64::MAX, TOP, TOP]), u(&[1, TOP, 3]));
        assert_eq!(u64s(&binary(BinaryOp::Add, &a, &b, &[3]).unwrap()), [0, 0, TOP + 3]);
        assert_eq!(u64s(&binary(BinaryOp::Sub, &b, &a, &[3]).unwrap()), [2, 0, 3u64.wrapping_sub(TOP)]);
        assert_eq!(u64s(&binary(BinaryOp::Mul, &a, &b, &[3]).unwrap()), [u64::MAX, 0, TOP]);
    }

    #[test]
    fn u64_above_2_pow_63_orders_and_divides_unsigned() {
        let a = u(&[TOP, u64::MAX, 5, TOP + 1, 0]);
        let b = u(&[1, TOP, 7, TOP + 1, u64::MAX]);
        let cmp = |op| binary(op, &a, &b, &[5]).unwrap().bools().unwrap().to_vec();
        assert_eq!(cmp(BinaryOp::Gt), [true, true, false, false, false]);
        assert_eq!(cmp(BinaryOp::Lt), [false, false, true, false, true]);
        assert_eq!(cmp(BinaryOp::Ge), [true, true, false, true, false]);
        assert_eq!(cmp(BinaryOp::Le), [false, false, true, true, true]);
        assert_eq!(cmp(BinaryOp::Eq), [false, false, false, true, false]);
        assert_eq!(u64s(&binary(BinaryOp::Max, &a, &b, &[5]).unwrap()), [TOP, u64::MAX, 7, TOP + 1, u64::MAX]);
        assert_eq!(u64s(&binary(BinaryOp::Min, &a, &b, &[5]).unwrap()), [1, TOP, 5, TOP + 1, 0]);
        let n = u(&[u64::MAX, TOP, TOP + 7, 10, u64::MAX]);
        let d = u(&[2, 3, 10, TOP, u64::MAX - 1]);
        assert_eq!(u64s(&binary(BinaryOp::Div, &n, &d, &[5]).unwrap()), [u64::MAX / 2, TOP / 3, (TOP + 7) / 10, 0, 1]);
        assert_eq!(u64s(&binary(BinaryOp::Rem, &n, &d, &[5]).unwrap()), [1, TOP % 3, (TOP + 7) % 10, 10, 1]);
        assert_eq!(binary(BinaryOp::Div, &n, &u(&[0]), &[5]).unwrap_err(), "integer division by zero");
        // An exponent of 2^63 is not negative.
        let p = binary(BinaryOp::Pow, &u(&[2, 1, 3]), &u(&[63, TOP, 2]), &[3]).unwrap();
        assert_eq!(u64s(&p), [TOP, 1, 9]);
        assert_eq!(u64s(&unary(UnaryOp::Abs, &a).unwrap()), u64s(&a));
        assert_eq!(u64s(&unary(UnaryOp::Relu, &a).unwrap()), u64s(&a));
        assert_eq!(u64s(&unary(UnaryOp::Sign, &a).unwrap()), [1, 1, 1, 1, 0]);
        assert_eq!(u64s(&unary(UnaryOp::Neg, &u(&[1, TOP])).unwrap()), [u64::MAX, TOP]);
    }

    #[test]
    fn u64_casts() {
        let a = u(&[TOP, u64::MAX, TOP + 4096, 3]);
        let f = cast(&a, DType::F64).unwrap();
        assert_eq!(f.floats().unwrap(), [9223372036854775808.0, 18446744073709551616.0, (TOP + 4096) as f64, 3.0]);
        let f = cast(&a, DType::F32).unwrap();
        assert_eq!(f.floats().unwrap()[1], u64::MAX as f32 as f64);
        assert_eq!(cast(&a, DType::I64).unwrap().ints().unwrap(), [i64::MIN, -1, i64::MIN + 4096, 3]);
        assert_eq!(cast(&a, DType::U32).unwrap().ints().unwrap(), [0, 4294967295, 4096, 3]);
        assert_eq!(cast(&a, DType::I16).unwrap().ints().unwrap(), [0, -1, 4096, 3]);
        assert_eq!(cast(&a, DType::Bool).unwrap().bools().unwrap(), [true, true, true, true]);
        assert_eq!(u64s(&cast(&i(DType::I64, &[2], &[-1, 5]), DType::U64).unwrap()), [u64::MAX, 5]);
        assert_eq!(u64s(&cast(&i(DType::I8, &[1], &[-1]), DType::U64).unwrap()), [u64::MAX]);
        assert_eq!(u64s(&cast(&i(DType::U32, &[1], &[4294967295]), DType::U64).unwrap()), [4294967295]);
        let x = f_(&[1e19, -1.0, 2e19, f64::NAN, 9223372036854775808.0]);
        assert_eq!(u64s(&cast(&x, DType::U64).unwrap()), [10_000_000_000_000_000_000, 0, u64::MAX, 0, TOP]);
        assert_eq!(cast(&x, DType::U16).unwrap().ints().unwrap(), [65535, 0, 65535, 0, 65535]);
        assert_eq!(cast(&x, DType::I16).unwrap().ints().unwrap(), [32767, -1, 32767, 0, 32767]);
        assert_eq!(cast(&i(DType::U32, &[1], &[4294967295]), DType::F32).unwrap().floats().unwrap(), [4294967296.0]);
    }

    fn f_(v: &[f64]) -> Value {
        f(DType::F64, &[v.len()], v)
    }

    #[test]
    fn iota_counts_along_axis() {
        assert_eq!(iota(DType::I64, &[2, 3], 1).unwrap().ints().unwrap(), [0, 1, 2, 0, 1, 2]);
        assert_eq!(iota(DType::F32, &[2, 3], 0).unwrap().floats().unwrap(), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(iota(DType::I8, &[130], 0).unwrap().ints().unwrap()[129], -127);
    }
}
