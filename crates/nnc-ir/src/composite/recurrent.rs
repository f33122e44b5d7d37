//! The expansion of recurrent layers (LSTM, GRU, simple RNN) into per-time-step primitives.
//!
//! The sequence is unrolled, so its length must be concrete. The input projection of every
//! time step is one matmul up front; each step then adds the recurrent product and applies the
//! cell's equations (ONNX's, with default activations).

use crate::op::{BinaryOp, RnnCell, RnnDirection};
use crate::{Dim, GraphBuilder, IrError, Op, ValueId};

/// What one direction of the layer needs, already sliced out of the stacked operands.
struct DirectionParams {
    /// `x · Wᵀ + Wb` for every step: `[S, B, G*H]`.
    projected: ValueId,
    /// `Rᵀ`: `[H, G*H]`.
    r_t: ValueId,
    /// The recurrent bias `Rb`: `[G*H]`.
    r_bias: ValueId,
    h0: ValueId,
    c0: Option<ValueId>,
    /// LSTM peepholes `P`: `[3*H]` (input, output, forget).
    peep: Option<ValueId>,
}

struct Layer {
    cell: RnnCell,
    hidden: i64,
    clip: Option<f64>,
    input_forget: bool,
    linear_before_reset: bool,
}

pub(super) fn expand(op: &Op, b: &mut GraphBuilder, inputs: &[ValueId]) -> Result<Vec<ValueId>, IrError> {
    let Op::Recurrent { cell, hidden, direction, clip, input_forget, linear_before_reset } = op else {
        unreachable!("recurrent::expand is only called on Op::Recurrent")
    };
    let layer = Layer {
        cell: *cell,
        hidden: *hidden as i64,
        clip: *clip,
        input_forget: *input_forget,
        linear_before_reset: *linear_before_reset,
    };
    let x_ty = b.ty(inputs[0]).clone();
    let steps = x_ty.shape[0].as_const().ok_or_else(|| IrError::Build {
        at: "recurrent expansion".into(),
        op: cell.name().into(),
        message: format!("unrolling needs a concrete sequence length; x is {x_ty}"),
    })?;
    let gh = cell.gates() as i64 * layer.hidden;
    let (mut ys, mut hs, mut cs) = (Vec::new(), Vec::new(), Vec::new());
    for d in 0..direction.count() {
        let reverse = *direction == RnnDirection::Reverse || d == 1;
        let pick = |b: &mut GraphBuilder, v: ValueId| -> Result<ValueId, IrError> {
            let s = b.slice_axis(v, 0, d as i64, d as i64 + 1)?;
            let mut shape = b.ty(s).shape.clone();
            shape.remove(0);
            b.reshape(s, shape)
        };
        let w = pick(b, inputs[1])?;
        let w_t = b.transpose(w, vec![1, 0])?;
        let r = pick(b, inputs[2])?;
        let r_t = b.transpose(r, vec![1, 0])?;
        let bias = pick(b, inputs[3])?;
        let w_bias = b.slice_axis(bias, 0, 0, gh)?;
        let r_bias = b.slice_axis(bias, 0, gh, 2 * gh)?;
        let xw = b.matmul(inputs[0], w_t)?;
        let projected = b.add(xw, w_bias)?;
        let h0 = pick(b, inputs[4])?;
        let (c0, peep) =
            if *cell == RnnCell::Lstm { (Some(pick(b, inputs[5])?), Some(pick(b, inputs[6])?)) } else { (None, None) };
        let params = DirectionParams { projected, r_t, r_bias, h0, c0, peep };
        let (y, h, c) = run_direction(b, &layer, &params, steps, reverse)?;
        ys.push(y);
        hs.push(h);
        cs.extend(c);
    }
    let y = b.concat(&ys, 1)?;
    let y_h = b.concat(&hs, 0)?;
    let mut out = vec![y, y_h];
    if *cell == RnnCell::Lstm {
        out.push(b.concat(&cs, 0)?);
    }
    Ok(out)
}

/// Runs one direction over all steps; returns `y [S, 1, B, H]`, the last `h [1, B, H]` and for
/// LSTM the last `c [1, B, H]`.
fn run_direction(
    b: &mut GraphBuilder,
    layer: &Layer,
    p: &DirectionParams,
    steps: i64,
    reverse: bool,
) -> Result<(ValueId, ValueId, Option<ValueId>), IrError> {
    let (mut h, mut c) = (p.h0, p.c0);
    let mut outputs = vec![None; steps as usize];
    let order: Vec<i64> = if reverse { (0..steps).rev().collect() } else { (0..steps).collect() };
    for &t in &order {
        let xt = b.slice_axis(p.projected, 0, t, t + 1)?;
        let shape = b.ty(xt).shape[1..].to_vec();
        let xt = b.reshape(xt, shape)?;
        let (new_h, new_c) = step(b, layer, p, xt, h, c)?;
        h = new_h;
        c = new_c;
        outputs[t as usize] = Some(h);
    }
    // y[t] = h after step t, in time order whatever the direction.
    let mut frames = Vec::with_capacity(outputs.len());
    for h_t in outputs.into_iter().flatten() {
        let mut shape = vec![Dim::constant(1), Dim::constant(1)];
        shape.extend(b.ty(h_t).shape.iter().cloned());
        frames.push(b.reshape(h_t, shape)?);
    }
    let y = b.concat(&frames, 0)?;
    let lift = |b: &mut GraphBuilder, v: ValueId| {
        let mut shape = vec![Dim::constant(1)];
        shape.extend(b.ty(v).shape.iter().cloned());
        b.reshape(v, shape)
    };
    let last_h = lift(b, h)?;
    let last_c = match c {
        Some(c) => Some(lift(b, c)?),
        None => None,
    };
    Ok((y, last_h, last_c))
}

/// One time step: the new `h` (and `c` for LSTM) from the projected input `xt [B, G*H]`.
fn step(
    b: &mut GraphBuilder,
    layer: &Layer,
    p: &DirectionParams,
    xt: ValueId,
    h: ValueId,
    c: Option<ValueId>,
) -> Result<(ValueId, Option<ValueId>), IrError> {
    let hid = layer.hidden;
    let gate = |b: &mut GraphBuilder, v: ValueId, k: i64| b.slice_axis(v, 1, k * hid, (k + 1) * hid);
    let hr = b.matmul(h, p.r_t)?;
    let hr = b.add(hr, p.r_bias)?;
    match layer.cell {
        RnnCell::Simple => {
            let pre = b.add(xt, hr)?;
            let pre = clip(b, pre, layer.clip)?;
            Ok((b.tanh(pre)?, None))
        }
        RnnCell::Lstm => {
            let (c, peep) = (c.expect("LSTM has a cell state"), p.peep.expect("LSTM has peepholes"));
            let pre = b.add(xt, hr)?;
            let peephole = |b: &mut GraphBuilder, k: i64| b.slice_axis(peep, 0, k * hid, (k + 1) * hid);
            // Gate order i, o, f, c; peepholes i, o, f. `clip` bounds each activation's input,
            // peephole term included.
            let gi = gate(b, pre, 0)?;
            let pi = peephole(b, 0)?;
            let ci = b.mul(pi, c)?;
            let gi = b.add(gi, ci)?;
            let gi = clip(b, gi, layer.clip)?;
            let i = b.sigmoid(gi)?;
            let f = if layer.input_forget {
                let one = b.scalar(b.ty(i).dtype, 1.0);
                b.sub(one, i)?
            } else {
                let gf = gate(b, pre, 2)?;
                let pf = peephole(b, 2)?;
                let cf = b.mul(pf, c)?;
                let gf = b.add(gf, cf)?;
                let gf = clip(b, gf, layer.clip)?;
                b.sigmoid(gf)?
            };
            let gc = gate(b, pre, 3)?;
            let gc = clip(b, gc, layer.clip)?;
            let candidate = b.tanh(gc)?;
            let keep = b.mul(f, c)?;
            let write = b.mul(i, candidate)?;
            let new_c = b.add(keep, write)?;
            let go = gate(b, pre, 1)?;
            let po = peephole(b, 1)?;
            let co = b.mul(po, new_c)?;
            let go = b.add(go, co)?;
            let go = clip(b, go, layer.clip)?;
            let o = b.sigmoid(go)?;
            let tc = b.tanh(new_c)?;
            Ok((b.mul(o, tc)?, Some(new_c)))
        }
        RnnCell::Gru => {
            // Gate order z, r, h.
            let xz = gate(b, xt, 0)?;
            let hz = gate(b, hr, 0)?;
            let z_pre = b.add(xz, hz)?;
            let z_pre = clip(b, z_pre, layer.clip)?;
            let z = b.sigmoid(z_pre)?;
            let xr = gate(b, xt, 1)?;
            let hr_r = gate(b, hr, 1)?;
            let r_pre = b.add(xr, hr_r)?;
            let r_pre = clip(b, r_pre, layer.clip)?;
            let r = b.sigmoid(r_pre)?;
            let xh = gate(b, xt, 2)?;
            let recurrent = if layer.linear_before_reset {
                // r ⊙ (h·Rhᵀ + Rbh)
                let hh = gate(b, hr, 2)?;
                b.mul(r, hh)?
            } else {
                // (r ⊙ h)·Rhᵀ + Rbh
                let rh = b.mul(r, h)?;
                let rh_t = b.slice_axis(p.r_t, 1, 2 * hid, 3 * hid)?;
                let prod = b.matmul(rh, rh_t)?;
                let rbh = b.slice_axis(p.r_bias, 0, 2 * hid, 3 * hid)?;
                b.add(prod, rbh)?
            };
            let h_pre = b.add(xh, recurrent)?;
            let h_pre = clip(b, h_pre, layer.clip)?;
            let candidate = b.tanh(h_pre)?;
            // h' = (1 - z) ⊙ candidate + z ⊙ h
            let one = b.scalar(b.ty(z).dtype, 1.0);
            let not_z = b.sub(one, z)?;
            let a = b.mul(not_z, candidate)?;
            let keep = b.mul(z, h)?;
            Ok((b.add(a, keep)?, None))
        }
    }
}

/// Bounds gate pre-activations to `[-clip, clip]` when a clip is set.
fn clip(b: &mut GraphBuilder, v: ValueId, clip: Option<f64>) -> Result<ValueId, IrError> {
    match clip {
        None => Ok(v),
        Some(c) => {
            let lo = b.binary_scalar(BinaryOp::Max, v, -c)?;
            b.binary_scalar(BinaryOp::Min, lo, c)
        }
    }
}
