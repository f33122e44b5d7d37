//! Elementwise ops: unary, binary (with broadcasting undone), `select`, `cast`.

use super::{Grads, NodeCtx};
use crate::util::{bs, mask, neg, sb, unbroadcast, R};
use nnc_ir::{BinaryOp, DType, GraphBuilder, UnaryOp, ValueId};
use std::f64::consts::PI;

pub(crate) fn unary(b: &mut GraphBuilder, n: &NodeCtx, u: UnaryOp) -> R<Grads> {
    use UnaryOp::*;
    let (x, y) = (n.inputs[0], n.outputs[0]);
    let g = n.grad(b, 0)?;
    let gx = match u {
        Neg => neg(b, g)?,
        Abs => {
            let s = b.unary(Sign, x)?;
            b.mul(g, s)?
        }
        // Piecewise constant: zero gradient.
        Sign | Floor | Ceil | Round => return Ok(n.none()),
        // Boolean results: no gradient.
        Not | IsNan | IsInf => return Ok(n.none()),
        Relu => {
            let z = crate::util::scalar_like(b, x, 0.0);
            let pos = b.binary(BinaryOp::Gt, x, z)?;
            mask(b, pos, g, true)?
        }
        Exp => b.mul(g, y)?,
        Log => b.div(g, x)?,
        Sqrt => {
            let h = bs(b, BinaryOp::Mul, g, 0.5)?;
            b.div(h, y)?
        }
        Rsqrt => {
            // d/dx x^(-1/2) = -1/2 · y³
            let y2 = b.mul(y, y)?;
            let y3 = b.mul(y2, y)?;
            let d = bs(b, BinaryOp::Mul, y3, -0.5)?;
            b.mul(g, d)?
        }
        Reciprocal => {
            let y2 = b.mul(y, y)?;
            let gy = b.mul(g, y2)?;
            neg(b, gy)?
        }
        Sin => {
            let c = b.unary(Cos, x)?;
            b.mul(g, c)?
        }
        Cos => {
            let s = b.unary(Sin, x)?;
            let gs = b.mul(g, s)?;
            neg(b, gs)?
        }
        Tan => {
            let y2 = b.mul(y, y)?;
            let d = bs(b, BinaryOp::Add, y2, 1.0)?;
            b.mul(g, d)?
        }
        Asin | Acos => {
            let x2 = b.mul(x, x)?;
            let d = sb(b, BinaryOp::Sub, 1.0, x2)?;
            let r = b.unary(Rsqrt, d)?;
            let gr = b.mul(g, r)?;
            if u == Asin {
                gr
            } else {
                neg(b, gr)?
            }
        }
        Atan => {
            let x2 = b.mul(x, x)?;
            let d = bs(b, BinaryOp::Add, x2, 1.0)?;
            b.div(g, d)?
        }
        Sinh => {
            let c = b.unary(Cosh, x)?;
            b.mul(g, c)?
        }
        Cosh => {
            let s = b.unary(Sinh, x)?;
            b.mul(g, s)?
        }
        Tanh => {
            let y2 = b.mul(y, y)?;
            let d = sb(b, BinaryOp::Sub, 1.0, y2)?;
            b.mul(g, d)?
        }
        Asinh | Acosh => {
            let x2 = b.mul(x, x)?;
            let d = bs(b, BinaryOp::Add, x2, if u == Asinh { 1.0 } else { -1.0 })?;
            let r = b.unary(Rsqrt, d)?;
            b.mul(g, r)?
        }
        Atanh => {
            let x2 = b.mul(x, x)?;
            let d = sb(b, BinaryOp::Sub, 1.0, x2)?;
            b.div(g, d)?
        }
        Sigmoid => {
            let one_minus = sb(b, BinaryOp::Sub, 1.0, y)?;
            let d = b.mul(y, one_minus)?;
            b.mul(g, d)?
        }
        Erf => {
            // 2/sqrt(pi) · exp(-x²)
            let x2 = b.mul(x, x)?;
            let nx2 = neg(b, x2)?;
            let e = b.exp(nx2)?;
            let d = bs(b, BinaryOp::Mul, e, 2.0 / PI.sqrt())?;
            b.mul(g, d)?
        }
    };
    Ok(vec![Some(gx)])
}

pub(crate) fn binary(b: &mut GraphBuilder, n: &NodeCtx, op: BinaryOp) -> R<Grads> {
    use BinaryOp::*;
    let (a, c, y) = (n.inputs[0], n.inputs[1], n.outputs[0]);
    let (need_a, need_c) = (n.needs[0], n.needs[1]);
    let g = n.grad(b, 0)?;
    let (ga, gc): (Option<ValueId>, Option<ValueId>) = match op {
        Add => (Some(g), Some(g)),
        Sub => (Some(g), if need_c { Some(neg(b, g)?) } else { None }),
        Mul => (if need_a { Some(b.mul(g, c)?) } else { None }, if need_c { Some(b.mul(g, a)?) } else { None }),
        Div => {
            let ga = if need_a { Some(b.div(g, c)?) } else { None };
            let gc = if need_c {
                // d(a/c)/dc = -y/c
                let yc = b.div(y, c)?;
                let gyc = b.mul(g, yc)?;
                Some(neg(b, gyc)?)
            } else {
                None
            };
            (ga, gc)
        }
        Rem => {
            // a = q·c + y with q = trunc(a/c): dy/da = 1, dy/dc = -q = -(a - y)/c.
            let gc = if need_c {
                let ay = b.sub(a, y)?;
                let q = b.div(ay, c)?;
                let gq = b.mul(g, q)?;
                Some(neg(b, gq)?)
            } else {
                None
            };
            (Some(g), gc)
        }
        Pow => {
            let ga = if need_a {
                // c · a^(c-1)
                let cm1 = bs(b, Sub, c, 1.0)?;
                let p = b.binary(Pow, a, cm1)?;
                let d = b.mul(c, p)?;
                Some(b.mul(g, d)?)
            } else {
                None
            };
            let gc = if need_c {
                // y · log(a) where a > 0; 0 elsewhere (log undefined).
                let z = crate::util::scalar_like(b, a, 0.0);
                let pos = b.binary(Gt, a, z)?;
                let la = b.log(a)?;
                let yl = b.mul(y, la)?;
                let d = mask(b, pos, yl, true)?;
                Some(b.mul(g, d)?)
            } else {
                None
            };
            (ga, gc)
        }
        Max | Min => {
            // Ties go to the first operand.
            let cond = b.binary(if op == Max { Ge } else { Le }, a, c)?;
            (
                if need_a { Some(mask(b, cond, g, true)?) } else { None },
                if need_c { Some(mask(b, cond, g, false)?) } else { None },
            )
        }
        // Boolean results: no gradient.
        And | Or | Xor | Eq | Ne | Lt | Le | Gt | Ge => (None, None),
    };
    let sa = b.ty(a).shape.clone();
    let sc = b.ty(c).shape.clone();
    let ga = match ga {
        Some(g) if need_a => Some(unbroadcast(b, g, &sa)?),
        _ => None,
    };
    let gc = match gc {
        Some(g) if need_c => Some(unbroadcast(b, g, &sc)?),
        _ => None,
    };
    Ok(vec![ga, gc])
}

/// `select(cond, a, b)`: the gradient flows to the side chosen; the condition has none.
pub(crate) fn select(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    let (cond, x, z) = (n.inputs[0], n.inputs[1], n.inputs[2]);
    let g = n.grad(b, 0)?;
    let mut out = vec![None; 3];
    if n.needs[1] {
        let m = mask(b, cond, g, true)?;
        let s = b.ty(x).shape.clone();
        out[1] = Some(unbroadcast(b, m, &s)?);
    }
    if n.needs[2] {
        let m = mask(b, cond, g, false)?;
        let s = b.ty(z).shape.clone();
        out[2] = Some(unbroadcast(b, m, &s)?);
    }
    Ok(out)
}

/// Float to float: cast the gradient back. Anything involving integers or `bool`: none.
pub(crate) fn cast(b: &mut GraphBuilder, n: &NodeCtx, to: DType) -> R<Grads> {
    let from = b.ty(n.inputs[0]).dtype;
    if !(from.is_float() && to.is_float()) {
        return Ok(n.none());
    }
    let g = n.grad(b, 0)?;
    Ok(vec![Some(if from == to { g } else { b.cast(g, from)? })])
}
