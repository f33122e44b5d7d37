//! The training optimizers of the `ai.onnx.preview.training` domain: `Adagrad`, `Adam` and
//! `Momentum`, one update step of every tensor they are given (`R, T, X1.., G1.., state...`),
//! as ONNX's reference writes them. The step count `T` and the rate `R` are run-time scalars.

use super::{blend, Fail, NodeCx, Out};
use crate::import::Slot;
use nnc_ir::{BinaryOp, DType, UnaryOp, ValueId};

/// The optimizer's tensors: inputs `2..` split into `groups` equal runs (X, G, and the states).
fn runs(cx: &mut NodeCx, groups: usize) -> Result<Vec<Vec<ValueId>>, Fail> {
    let count = cx.num_inputs().saturating_sub(2);
    if count == 0 || !count.is_multiple_of(groups) {
        return Err(format!("{count} tensor inputs do not split into {groups} equal runs").into());
    }
    let per = count / groups;
    (0..groups).map(|g| (0..per).map(|i| Ok(cx.input(2 + g * per + i)?)).collect()).collect()
}

/// `norm_coefficient · x + g`.
fn regularized(cx: &mut NodeCx, x: ValueId, g: ValueId, norm: f64) -> Result<ValueId, Fail> {
    let scaled = cx.b.binary_scalar(BinaryOp::Mul, x, norm)?;
    Ok(cx.b.add(scaled, g)?)
}

/// The rate `R` and step `T` as scalars of `dtype`.
fn rate_and_step(cx: &mut NodeCx, dtype: DType) -> Result<(ValueId, ValueId), Fail> {
    let (r, t) = (cx.input(0)?, cx.input(1)?);
    Ok((cx.b.cast(r, dtype)?, cx.b.cast(t, dtype)?))
}

fn values(outputs: Vec<ValueId>) -> Vec<Slot> {
    outputs.into_iter().map(NodeCx::value).collect()
}

/// `Adagrad`: `h += g'²`, `x -= r / (1 + t·decay) · g' / (√h + ε)`.
pub fn adagrad(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["decay_factor", "epsilon", "norm_coefficient"])?;
    let decay = cx.attr_float_or("decay_factor", 0.0)? as f64;
    let epsilon = cx.attr_float_or("epsilon", 0.0)? as f64;
    let norm = cx.attr_float_or("norm_coefficient", 0.0)? as f64;
    let tensors = runs(cx, 3)?;
    let dtype = cx.ty(tensors[0][0]).dtype;
    let (r, t) = rate_and_step(cx, dtype)?;
    let decayed = cx.b.binary_scalar(BinaryOp::Mul, t, decay)?;
    let decayed = cx.b.binary_scalar(BinaryOp::Add, decayed, 1.0)?;
    let rate = cx.b.div(r, decayed)?;
    let (mut xs, mut hs) = (Vec::new(), Vec::new());
    for ((&x, &g), &h) in tensors[0].iter().zip(&tensors[1]).zip(&tensors[2]) {
        let g = regularized(cx, x, g, norm)?;
        let g2 = cx.b.mul(g, g)?;
        let h = cx.b.add(h, g2)?;
        let root = cx.b.unary(UnaryOp::Sqrt, h)?;
        let root = cx.b.binary_scalar(BinaryOp::Add, root, epsilon)?;
        let step = cx.b.mul(rate, g)?;
        let step = cx.b.div(step, root)?;
        xs.push(cx.b.sub(x, step)?);
        hs.push(h);
    }
    xs.extend(hs);
    Ok(values(xs))
}

/// `Adam`: `v = α·v + (1 − α)·g'`, `h = β·h + (1 − β)·g'²`, `x -= r·√(1 − βᵗ)/(1 − αᵗ) · v / (√h + ε)`
/// (`r` itself at `t = 0`), then `x *= 1 − norm_coefficient_post`.
pub fn adam(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["alpha", "beta", "epsilon", "norm_coefficient", "norm_coefficient_post"])?;
    let alpha = cx.attr_float_or("alpha", 0.9)? as f64;
    let beta = cx.attr_float_or("beta", 0.999)? as f64;
    let epsilon = cx.attr_float_or("epsilon", 0.0)? as f64;
    let norm = cx.attr_float_or("norm_coefficient", 0.0)? as f64;
    let post = cx.attr_float_or("norm_coefficient_post", 0.0)? as f64;
    let tensors = runs(cx, 4)?;
    let dtype = cx.ty(tensors[0][0]).dtype;
    let (r, t) = rate_and_step(cx, dtype)?;
    // r·√(1 − βᵗ)/(1 − αᵗ) where t > 0, else r.
    let power = |cx: &mut NodeCx, base: f64| -> Result<ValueId, Fail> {
        let b = cx.scalar(dtype, base);
        let p = cx.b.binary(BinaryOp::Pow, b, t)?;
        let one = cx.scalar(dtype, 1.0);
        Ok(cx.b.sub(one, p)?)
    };
    let (beta_t, alpha_t) = (power(cx, beta)?, power(cx, alpha)?);
    let root = cx.b.unary(UnaryOp::Sqrt, beta_t)?;
    let corrected = cx.b.mul(r, root)?;
    let corrected = cx.b.div(corrected, alpha_t)?;
    let started = cx.b.binary_scalar(BinaryOp::Gt, t, 0.0)?;
    let rate = cx.b.select(started, corrected, r)?;
    let (mut xs, mut vs, mut hs) = (Vec::new(), Vec::new(), Vec::new());
    for (((&x, &g), &v), &h) in tensors[0].iter().zip(&tensors[1]).zip(&tensors[2]).zip(&tensors[3]) {
        let g = regularized(cx, x, g, norm)?;
        let v = blend(cx, v, g, alpha)?;
        let g2 = cx.b.mul(g, g)?;
        let h = blend(cx, h, g2, beta)?;
        let root = cx.b.unary(UnaryOp::Sqrt, h)?;
        let root = cx.b.binary_scalar(BinaryOp::Add, root, epsilon)?;
        let ratio = cx.b.div(v, root)?;
        let step = cx.b.mul(rate, ratio)?;
        let x = cx.b.sub(x, step)?;
        xs.push(cx.b.binary_scalar(BinaryOp::Mul, x, 1.0 - post)?);
        vs.push(v);
        hs.push(h);
    }
    xs.extend(vs);
    xs.extend(hs);
    Ok(values(xs))
}

/// `Momentum`: `v = α·v + β'·g'` (`β' = 1` at `t = 0`), then `x -= r·v` (`standard`) or
/// `x -= r·(g' + α·v)` (`nesterov`).
pub fn momentum(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["alpha", "beta", "mode", "norm_coefficient"])?;
    let alpha = cx.attr_float_or("alpha", 0.0)? as f64;
    let beta = cx.attr_float_or("beta", 0.0)? as f64;
    let norm = cx.attr_float_or("norm_coefficient", 0.0)? as f64;
    let nesterov = match cx.attr_string("mode")?.as_deref() {
        None | Some("standard") => false,
        Some("nesterov") => true,
        Some(m) => return Err(format!("mode `{m}` is not standard or nesterov").into()),
    };
    let tensors = runs(cx, 3)?;
    let dtype = cx.ty(tensors[0][0]).dtype;
    let (r, t) = rate_and_step(cx, dtype)?;
    let started = cx.b.binary_scalar(BinaryOp::Gt, t, 0.0)?;
    let (b, one) = (cx.scalar(dtype, beta), cx.scalar(dtype, 1.0));
    let beta_t = cx.b.select(started, b, one)?;
    let (mut xs, mut vs) = (Vec::new(), Vec::new());
    for ((&x, &g), &v) in tensors[0].iter().zip(&tensors[1]).zip(&tensors[2]) {
        let g = regularized(cx, x, g, norm)?;
        let kept = cx.b.binary_scalar(BinaryOp::Mul, v, alpha)?;
        let added = cx.b.mul(beta_t, g)?;
        let v = cx.b.add(kept, added)?;
        let direction = if nesterov {
            let ahead = cx.b.binary_scalar(BinaryOp::Mul, v, alpha)?;
            cx.b.add(g, ahead)?
        } else {
            v
        };
        let step = cx.b.mul(r, direction)?;
        xs.push(cx.b.sub(x, step)?);
        vs.push(v);
    }
    xs.extend(vs);
    Ok(values(xs))
}
