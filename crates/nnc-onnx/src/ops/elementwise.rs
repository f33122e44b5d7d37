//! Elementwise ONNX ops: unary functions, broadcasting binary ops, activations, casts.

use super::{Fail, NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::{BinaryOp, DType, GeluApprox, Op, UnaryOp, ValueId};

fn unary_op(op_type: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    Some(match op_type {
        "Abs" => Abs,
        "Neg" => Neg,
        "Sign" => Sign,
        "Relu" => Relu,
        "Exp" => Exp,
        "Log" => Log,
        "Sqrt" => Sqrt,
        "Reciprocal" => Reciprocal,
        "Sin" => Sin,
        "Cos" => Cos,
        "Tan" => Tan,
        "Asin" => Asin,
        "Acos" => Acos,
        "Atan" => Atan,
        "Sinh" => Sinh,
        "Cosh" => Cosh,
        "Tanh" => Tanh,
        "Asinh" => Asinh,
        "Acosh" => Acosh,
        "Atanh" => Atanh,
        "Sigmoid" => Sigmoid,
        "Erf" => Erf,
        "Floor" => Floor,
        "Ceil" => Ceil,
        "Round" => Round,
        "Not" | "BitwiseNot" => Not,
        "IsNaN" => IsNan,
        _ => return None,
    })
}

fn binary_op(op_type: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    Some(match op_type {
        "Add" | "Sum" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "And" | "BitwiseAnd" => And,
        "Or" | "BitwiseOr" => Or,
        "Xor" | "BitwiseXor" => Xor,
        "Equal" => Eq,
        "Less" => Lt,
        "LessOrEqual" => Le,
        "Greater" => Gt,
        "GreaterOrEqual" => Ge,
        "Max" => Max,
        "Min" => Min,
        _ => return None,
    })
}

pub fn unary(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let op = unary_op(cx.node.op_type()).ok_or("not a unary op")?;
    let x = cx.input(0)?;
    Ok(vec![NodeCx::value(cx.b.unary(op, x)?)])
}

pub fn is_inf(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["detect_negative", "detect_positive"])?;
    let (neg, pos) = (cx.attr_int_or("detect_negative", 1)?, cx.attr_int_or("detect_positive", 1)?);
    let x = cx.input(0)?;
    let inf = cx.b.unary(UnaryOp::IsInf, x)?;
    let out = match (neg != 0, pos != 0) {
        (true, true) => inf,
        (detect_neg, _) => {
            // Keep only infinities of the requested sign.
            let zero = cx.scalar(cx.ty(x).dtype, 0.0);
            let sign_ok = cx.b.binary(if detect_neg { BinaryOp::Lt } else { BinaryOp::Gt }, x, zero)?;
            let any = cx.b.binary(BinaryOp::And, inf, sign_ok)?;
            if neg == 0 && pos == 0 {
                let f = cx.scalar(DType::Bool, 0.0);
                cx.b.binary(BinaryOp::And, any, f)?
            } else {
                any
            }
        }
    };
    Ok(vec![NodeCx::value(out)])
}

pub fn binary(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let op = binary_op(cx.node.op_type()).ok_or("not a binary op")?;
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![NodeCx::value(cx.b.binary(op, a, b)?)])
}

/// `Pow` allows an exponent of another numeric type; the IR wants one dtype, the base's.
pub fn pow(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let (a, mut b) = (cx.input(0)?, cx.input(1)?);
    let dtype = cx.ty(a).dtype;
    if cx.ty(b).dtype != dtype {
        b = cx.b.cast(b, dtype)?;
    }
    Ok(vec![NodeCx::value(cx.b.binary(BinaryOp::Pow, a, b)?)])
}

/// `BitShift(x, y)` on unsigned integers: `x << y` as the wrapping product `x · 2^y`, `x >> y`
/// as the quotient `x / 2^y`; a shift by the type's width or more gives 0 (the power of two
/// would wrap to 0).
pub fn bit_shift(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["direction"])?;
    let (x, y) = (cx.input(0)?, cx.input(1)?);
    let dtype = cx.ty(x).dtype;
    if !dtype.is_unsigned_int() || cx.ty(y).dtype != dtype {
        return Err(format!(
            "BitShift takes two unsigned integers of one type, found {} and {}",
            dtype,
            cx.ty(y).dtype
        )
        .into());
    }
    let left = match cx.attr_string("direction")?.as_deref() {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        other => return Err(format!("direction {other:?} is not LEFT or RIGHT").into()),
    };
    let two = cx.scalar(dtype, 2.0);
    let power = cx.b.binary(BinaryOp::Pow, two, y)?;
    let width = cx.scalar(dtype, (8 * dtype.size_bytes()) as f64);
    let too_far = cx.b.binary(BinaryOp::Ge, y, width)?;
    let shifted = if left {
        cx.b.mul(x, power)?
    } else {
        // A divisor of 1 where the power wrapped to 0, replaced by 0 below.
        let one = cx.scalar(dtype, 1.0);
        let safe = cx.b.select(too_far, one, power)?;
        cx.b.div(x, safe)?
    };
    let zero = cx.scalar(dtype, 0.0);
    Ok(vec![NodeCx::value(cx.b.select(too_far, zero, shifted)?)])
}

/// `Mod`: `fmod = 1` is C's fmod (the IR's `rem`); otherwise the result takes the divisor's
/// sign (Python's `%`): `r = rem(a, b); r + b` where `r` is non-zero and differs in sign from `b`.
pub fn modulo(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["fmod"])?;
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let r = cx.b.binary(BinaryOp::Rem, a, b)?;
    if cx.attr_int_or("fmod", 0)? != 0 {
        return Ok(vec![NodeCx::value(r)]);
    }
    let zero = cx.scalar(cx.ty(a).dtype, 0.0);
    let r_neg = cx.b.binary(BinaryOp::Lt, r, zero)?;
    let b_neg = cx.b.binary(BinaryOp::Lt, b, zero)?;
    let r_nonzero = cx.b.binary(BinaryOp::Ne, r, zero)?;
    let signs_differ = cx.b.binary(BinaryOp::Xor, r_neg, b_neg)?;
    let fix = cx.b.binary(BinaryOp::And, signs_differ, r_nonzero)?;
    let shifted = cx.b.add(r, b)?;
    Ok(vec![NodeCx::value(cx.b.select(fix, shifted, r)?)])
}

/// `Max`, `Min`, `Sum`, `Mean` of one or more operands with broadcasting.
pub fn variadic(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let op_type = cx.node.op_type();
    let op = binary_op(op_type).unwrap_or(BinaryOp::Add);
    let mut acc = cx.input(0)?;
    for i in 1..cx.num_inputs() {
        let x = cx.input(i)?;
        acc = cx.b.binary(op, acc, x)?;
    }
    if op_type == "Mean" {
        let n = cx.scalar(cx.ty(acc).dtype, cx.num_inputs() as f64);
        acc = cx.b.div(acc, n)?;
    }
    Ok(vec![NodeCx::value(acc)])
}

pub fn where_(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let (c, a, b) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    Ok(vec![NodeCx::value(cx.b.select(c, a, b)?)])
}

/// `Clip(x, min, max)`: bounds are inputs from opset 11, attributes before.
pub fn clip(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["min", "max"])?;
    let x = cx.input(0)?;
    let dtype = cx.ty(x).dtype;
    let (lo, hi) = if cx.opset < 11 {
        let lo = cx.has_attr("min").then(|| cx.attr_float_or("min", 0.0)).transpose()?;
        let hi = cx.has_attr("max").then(|| cx.attr_float_or("max", 0.0)).transpose()?;
        (lo.map(|v| cx.scalar(dtype, v as f64)), hi.map(|v| cx.scalar(dtype, v as f64)))
    } else {
        (cx.opt_input(1)?, cx.opt_input(2)?)
    };
    let mut y = x;
    if let Some(lo) = lo {
        y = cx.b.max(y, lo)?;
    }
    if let Some(hi) = hi {
        y = cx.b.binary(BinaryOp::Min, y, hi)?;
    }
    Ok(vec![NodeCx::value(y)])
}

pub fn cast(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["to", "saturate", "round_mode"])?;
    let to = cx.attr_int("to")?.ok_or("`to` is required")?;
    let to = dtype_from_onnx(to as i32)?;
    onnx_cast(cx, to)
}

pub fn cast_like(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["saturate", "round_mode"])?;
    let to = cx.input_type(1)?.dtype;
    onnx_cast(cx, to)
}

/// `Cast`/`CastLike` of input 0 to `to`, with their `saturate` and `round_mode` attributes.
/// E8M0 is cast with ONNX's defaults only (saturating, rounding up).
fn onnx_cast(cx: &mut NodeCx, to: DType) -> Out {
    let saturate = cx.attr_int_or("saturate", 1)? != 0;
    let round_mode = cx.attr_string("round_mode")?.unwrap_or_else(|| "up".into());
    if to == DType::F8E8M0 && (!saturate || round_mode != "up") {
        return Err(Fail::from(format!(
            "a cast to float8e8m0 with saturate = {} and round_mode = `{round_mode}` is not supported \
             (only ONNX's default, saturating and rounding up)",
            saturate as u8
        )));
    }
    let x = cx.input(0)?;
    Ok(vec![NodeCx::value(convert(cx, x, to, saturate)?)])
}

/// `x` cast to `to`, saturating for float8 if `saturate`. The Graph IR's cast to a float8 type
/// rounds without saturating (out of range is infinity or NaN); ONNX's saturating cast clamps to
/// the format's largest value first (NaN stays NaN: `min`/`max` propagate it). Float4 always
/// saturates.
pub(super) fn convert(cx: &mut NodeCx, x: ValueId, to: DType, saturate: bool) -> Result<ValueId, Fail> {
    let clamps = matches!(to, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ);
    let mut x = x;
    if saturate && clamps && cx.b.ty(x).dtype.is_float() {
        let largest = nnc_ir::lowp::largest(to).ok_or("no largest value")?;
        x = cx.b.binary_scalar(BinaryOp::Min, x, largest)?;
        x = cx.b.binary_scalar(BinaryOp::Max, x, -largest)?;
    }
    Ok(cx.b.cast(x, to)?)
}

pub fn identity(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    if cx.is_known(0) {
        return Ok(vec![NodeCx::known(cx.const_input(0)?)]);
    }
    Ok(vec![NodeCx::value(cx.input(0)?)])
}

/// `Dropout` in inference mode (or with ratio 0) is the identity, its mask all true. Random
/// dropout in training mode is not supported.
pub fn dropout(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["seed", "ratio", "is_test"])?;
    let training = cx.opt_const_input(2)?.is_some_and(|t| t.to_i64_vec().first().copied().unwrap_or(0) != 0);
    let ratio = match cx.opt_const_input(1)? {
        Some(r) => r.to_f64_vec().first().copied().unwrap_or(0.5),
        None => cx.attr_float_or("ratio", 0.5)? as f64,
    };
    if training && ratio != 0.0 {
        return Err("random dropout in training mode is not supported (inference only)".into());
    }
    let x = cx.input(0)?;
    let yes = cx.scalar(DType::Bool, 1.0);
    let mask = cx.b.expand(yes, cx.ty(x).shape)?;
    Ok(vec![NodeCx::value(x), NodeCx::value(mask)])
}

/// Activation functions expressed with IR primitives, each a one-line formula from the ONNX spec.
pub fn activation(cx: &mut NodeCx) -> Out {
    let op_type = cx.node.op_type().to_string();
    let x = cx.input(0)?;
    let dtype = cx.ty(x).dtype;
    let f = |cx: &mut NodeCx, name: &str, default: f32| cx.attr_float_or(name, default).map(|v| v as f64);
    let y = match op_type.as_str() {
        // x if x >= 0 else alpha * x
        "LeakyRelu" => {
            cx.only_attrs(&["alpha"])?;
            let alpha = f(cx, "alpha", 0.01)?;
            let scaled = cx.b.binary_scalar(BinaryOp::Mul, x, alpha)?;
            select_nonneg(cx, x, x, scaled)?
        }
        // x if x > 0 else alpha * (exp(x) - 1), times gamma for Selu
        "Elu" | "Selu" | "Celu" => {
            cx.only_attrs(&["alpha", "gamma"])?;
            let (alpha, gamma) = match op_type.as_str() {
                "Elu" => (f(cx, "alpha", 1.0)?, 1.0),
                "Celu" => (f(cx, "alpha", 1.0)?, 1.0),
                _ => (f(cx, "alpha", 1.673_263_2)?, f(cx, "gamma", 1.050_701)?),
            };
            // Celu is alpha * (exp(x / alpha) - 1) on the negative side.
            let arg = if op_type == "Celu" { cx.b.binary_scalar(BinaryOp::Div, x, alpha)? } else { x };
            let e = cx.b.exp(arg)?;
            let em1 = cx.b.binary_scalar(BinaryOp::Sub, e, 1.0)?;
            let neg = cx.b.binary_scalar(BinaryOp::Mul, em1, alpha)?;
            let zero = cx.scalar(dtype, 0.0);
            let pos = cx.b.binary(BinaryOp::Gt, x, zero)?;
            let y = cx.b.select(pos, x, neg)?;
            if gamma != 1.0 {
                cx.b.binary_scalar(BinaryOp::Mul, y, gamma)?
            } else {
                y
            }
        }
        // max(0, min(1, alpha * x + beta))
        "HardSigmoid" | "HardSwish" => {
            cx.only_attrs(&["alpha", "beta"])?;
            let (alpha, beta) =
                if op_type == "HardSwish" { (1.0 / 6.0, 0.5) } else { (f(cx, "alpha", 0.2)?, f(cx, "beta", 0.5)?) };
            let ax = cx.b.binary_scalar(BinaryOp::Mul, x, alpha)?;
            let axb = cx.b.binary_scalar(BinaryOp::Add, ax, beta)?;
            let lo = cx.b.binary_scalar(BinaryOp::Max, axb, 0.0)?;
            let hs = cx.b.binary_scalar(BinaryOp::Min, lo, 1.0)?;
            if op_type == "HardSwish" {
                cx.b.mul(x, hs)?
            } else {
                hs
            }
        }
        // log(1 + exp(x))
        "Softplus" => {
            cx.only_attrs(&[])?;
            softplus(cx, x)?
        }
        // x / (1 + |x|)
        "Softsign" => {
            cx.only_attrs(&[])?;
            let a = cx.b.unary(UnaryOp::Abs, x)?;
            let d = cx.b.binary_scalar(BinaryOp::Add, a, 1.0)?;
            cx.b.div(x, d)?
        }
        // x if x > alpha else 0
        "ThresholdedRelu" => {
            cx.only_attrs(&["alpha"])?;
            let alpha = f(cx, "alpha", 1.0)?;
            let t = cx.scalar(dtype, alpha);
            let keep = cx.b.binary(BinaryOp::Gt, x, t)?;
            let zero = cx.scalar(dtype, 0.0);
            cx.b.select(keep, x, zero)?
        }
        // x * tanh(softplus(x))
        "Mish" => {
            cx.only_attrs(&[])?;
            let sp = softplus(cx, x)?;
            let t = cx.b.tanh(sp)?;
            cx.b.mul(x, t)?
        }
        other => return Err(format!("`{other}` is not an activation").into()),
    };
    Ok(vec![NodeCx::value(y)])
}

fn softplus(cx: &mut NodeCx, x: ValueId) -> Result<ValueId, super::Fail> {
    let e = cx.b.exp(x)?;
    let e1 = cx.b.binary_scalar(BinaryOp::Add, e, 1.0)?;
    Ok(cx.b.log(e1)?)
}

/// `if_nonneg` where `x >= 0`, else `otherwise`.
fn select_nonneg(cx: &mut NodeCx, x: ValueId, if_nonneg: ValueId, otherwise: ValueId) -> Result<ValueId, super::Fail> {
    let zero = cx.scalar(cx.ty(x).dtype, 0.0);
    let nonneg = cx.b.binary(BinaryOp::Ge, x, zero)?;
    Ok(cx.b.select(nonneg, if_nonneg, otherwise)?)
}

/// `PRelu(x, slope)`: x if x >= 0 else slope * x, slope broadcasting to x.
pub fn prelu(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let (x, slope) = (cx.input(0)?, cx.input(1)?);
    let scaled = cx.b.mul(x, slope)?;
    Ok(vec![NodeCx::value(select_nonneg(cx, x, x, scaled)?)])
}

pub fn gelu(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["approximate"])?;
    let approximate = match cx.attr_string("approximate")?.as_deref() {
        None | Some("none") => GeluApprox::None,
        Some("tanh") => GeluApprox::Tanh,
        Some(other) => return Err(format!("approximate = `{other}` is not supported").into()),
    };
    let x = cx.input(0)?;
    Ok(vec![NodeCx::value(cx.b.op1(Op::Gelu { approximate }, &[x])?)])
}

/// `Swish`: `x * sigmoid(alpha * x)`.
pub fn swish(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["alpha"])?;
    let x = cx.input(0)?;
    let alpha = cx.attr_float_or("alpha", 1.0)? as f64;
    let ax = cx.b.binary_scalar(BinaryOp::Mul, x, alpha)?;
    let s = cx.b.sigmoid(ax)?;
    Ok(vec![NodeCx::value(cx.b.mul(x, s)?)])
}

/// `Shrink`: `x + bias` below `-lambd`, `x - bias` above `lambd`, 0 between.
pub fn shrink(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["bias", "lambd"])?;
    let x = cx.input(0)?;
    let dtype = cx.ty(x).dtype;
    let (bias, lambd) = (cx.attr_float_or("bias", 0.0)? as f64, cx.attr_float_or("lambd", 0.5)? as f64);
    let lo = cx.scalar(dtype, -lambd);
    let hi = cx.scalar(dtype, lambd);
    let below = cx.b.binary(BinaryOp::Lt, x, lo)?;
    let above = cx.b.binary(BinaryOp::Gt, x, hi)?;
    let plus = cx.b.binary_scalar(BinaryOp::Add, x, bias)?;
    let minus = cx.b.binary_scalar(BinaryOp::Sub, x, bias)?;
    let zero = cx.scalar(dtype, 0.0);
    let upper = cx.b.select(above, minus, zero)?;
    Ok(vec![NodeCx::value(cx.b.select(below, plus, upper)?)])
}
