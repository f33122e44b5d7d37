//! `LSTM`, `GRU` and `RNN` → the IR's `recurrent` composite (time-major, every operand present).
//!
//! Omitted optional operands become zeros, batch-major `layout = 1` is transposed in and out,
//! and only ONNX's default activations are accepted.

use super::{Fail, NodeCx, Out};
use nnc_ir::{Dim, Op, RnnCell, RnnDirection, ValueId};

pub fn recurrent(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[
        "activation_alpha",
        "activation_beta",
        "activations",
        "clip",
        "direction",
        "hidden_size",
        "input_forget",
        "layout",
        "linear_before_reset",
    ])?;
    let cell = match cx.node.op_type() {
        "LSTM" => RnnCell::Lstm,
        "GRU" => RnnCell::Gru,
        _ => RnnCell::Simple,
    };
    let direction = match cx.attr_string("direction")?.as_deref().unwrap_or("forward") {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        other => return Err(format!("direction `{other}` is not supported").into()),
    };
    check_activations(cx, cell, direction.count())?;
    let mut x = cx.input(0)?;
    let batch_major = cx.attr_int_or("layout", 0)? != 0;
    if batch_major {
        x = cx.b.transpose(x, vec![1, 0, 2])?;
    }
    let x_ty = cx.ty(x);
    let [steps, batch, _] = x_ty.shape.as_slice() else {
        return Err(format!("X must have rank 3, found {x_ty}").into());
    };
    let (steps, batch) = (steps.clone(), batch.clone());
    let r_ty = cx.input_type(2)?;
    let hidden = match cx.attr_int("hidden_size")? {
        Some(h) => h,
        None => r_ty.shape.get(2).and_then(Dim::as_const).ok_or("hidden_size is required")?,
    };
    let hidden_usize = usize::try_from(hidden).map_err(|_| Fail(format!("hidden_size {hidden} is negative")))?;
    if let Some(lens) = cx.opt_const_ints(4)? {
        if lens.iter().any(|&l| Some(l) != steps.as_const()) {
            return Err(format!(
                "sequence_lens {lens:?} differ from the sequence length {steps}: variable lengths are not supported"
            )
            .into());
        }
    } else if cx.has_input(4) {
        return Err("sequence_lens must be known at compile time".into());
    }
    let (w, r) = (cx.input(1)?, cx.input(2)?);
    let dirs = Dim::from(direction.count());
    let gates = cell.gates() as i64;
    let dtype = x_ty.dtype;
    let zeros = |cx: &mut NodeCx, shape: Vec<Dim>| -> Result<ValueId, Fail> {
        let z = cx.scalar(dtype, 0.0);
        Ok(cx.b.expand(z, shape)?)
    };
    let bias = match cx.opt_input(3)? {
        Some(b) => b,
        None => zeros(cx, vec![dirs.clone(), Dim::constant(2 * gates * hidden)])?,
    };
    let state = |cx: &mut NodeCx, i: usize| -> Result<ValueId, Fail> {
        match cx.opt_input(i)? {
            Some(v) if batch_major => Ok(cx.b.transpose(v, vec![1, 0, 2])?),
            Some(v) => Ok(v),
            None => zeros(cx, vec![dirs.clone(), batch.clone(), Dim::constant(hidden)]),
        }
    };
    let h0 = state(cx, 5)?;
    let mut operands = vec![x, w, r, bias, h0];
    if cell == RnnCell::Lstm {
        let c0 = state(cx, 6)?;
        let p = match cx.opt_input(7)? {
            Some(p) => p,
            None => zeros(cx, vec![dirs.clone(), Dim::constant(3 * hidden)])?,
        };
        operands.extend([c0, p]);
    }
    let clip = cx.has_attr("clip").then(|| cx.attr_float_or("clip", 0.0)).transpose()?.map(f64::from);
    let op = Op::Recurrent {
        cell,
        hidden: hidden_usize,
        direction,
        clip,
        input_forget: cx.attr_int_or("input_forget", 0)? != 0,
        linear_before_reset: cx.attr_int_or("linear_before_reset", 0)? != 0,
    };
    let mut outs = cx.b.op(op, &operands)?;
    if batch_major {
        outs[0] = cx.b.transpose(outs[0], vec![2, 0, 1, 3])?;
        for o in outs.iter_mut().skip(1) {
            *o = cx.b.transpose(*o, vec![1, 0, 2])?;
        }
    }
    Ok(outs.into_iter().map(NodeCx::value).collect())
}

/// Only the default activations are supported; they may be spelled out.
fn check_activations(cx: &NodeCx, cell: RnnCell, directions: usize) -> Result<(), Fail> {
    let Some(given) = cx.attr_strings("activations")? else { return Ok(()) };
    let per_direction: &[&str] = match cell {
        RnnCell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        RnnCell::Gru => &["Sigmoid", "Tanh"],
        RnnCell::Simple => &["Tanh"],
    };
    let default: Vec<&str> = per_direction.iter().copied().cycle().take(per_direction.len() * directions).collect();
    if given.iter().map(|s| s.as_str()).eq(default.iter().copied()) && !cx.has_attr("activation_alpha") {
        Ok(())
    } else {
        Err(format!("activations {given:?} are not supported (only the defaults {default:?})").into())
    }
}
