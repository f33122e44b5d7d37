//! Data movement: reshape, transpose, expand, slice, concat, pad, resize.

use super::{Grads, NodeCtx};
use crate::concrete;
use crate::util::{const_i64, full, inverse_perm, unbroadcast, RuleError, R};
use nnc_ir::infer::slice_bounds;
use nnc_ir::{DType, Dim, GraphBuilder, Op, PadMode, ResizeAttrs, TensorData, ValueId};

pub(crate) fn reshape(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let s = b.ty(n.inputs[0]).shape.clone();
    Ok(vec![Some(b.reshape(g, s)?)])
}

pub(crate) fn transpose(b: &mut GraphBuilder, n: &NodeCtx, perm: &[usize]) -> R<Grads> {
    let g = n.grad(b, 0)?;
    Ok(vec![Some(b.transpose(g, inverse_perm(perm))?)])
}

pub(crate) fn expand(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let s = b.ty(n.inputs[0]).shape.clone();
    Ok(vec![Some(unbroadcast(b, g, &s)?)])
}

/// Adds `rows` positions back along `axis` of `g`: `scatter_add` into zeros of `len` positions,
/// output position `k` landing on `rows[k]`.
fn scatter_axis(b: &mut GraphBuilder, g: ValueId, axis: usize, len: i64, rows: &[i64]) -> R<ValueId> {
    let t = b.ty(g).clone();
    let mut shape = t.shape.clone();
    shape[axis] = Dim::constant(len);
    let zeros = full(b, t.dtype, &shape, 0.0)?;
    let idx = const_i64(b, vec![rows.len()], rows);
    Ok(b.op1(Op::ScatterAdd { axis }, &[zeros, idx, g])?)
}

pub(crate) fn slice(
    b: &mut GraphBuilder,
    n: &NodeCtx,
    axes: &[usize],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
) -> R<Grads> {
    let xs = b.ty(n.inputs[0]).shape.clone();
    let mut g = n.grad(b, 0)?;
    for (k, &axis) in axes.iter().enumerate() {
        let len = &xs[axis];
        let (start, end, step) = (starts[k], ends[k], steps[k]);
        if step == 1 {
            // Zeros before and after, concatenated (works on symbolic axes too).
            let (before, after) = match len.as_const() {
                Some(l) => {
                    let (s, e) = slice_bounds(l, start, end, 1);
                    let taken = (e - s).max(0);
                    (Dim::constant(s), Dim::constant(l - s - taken))
                }
                None => {
                    let after = if end == i64::MAX { Dim::constant(0) } else { len.clone() - Dim::constant(end) };
                    (Dim::constant(start), after)
                }
            };
            let t = b.ty(g).clone();
            let zeros = |b: &mut GraphBuilder, part: Dim| -> R<ValueId> {
                let mut shape = t.shape.clone();
                shape[axis] = part;
                full(b, t.dtype, &shape, 0.0)
            };
            let mut pieces = Vec::new();
            if before != Dim::constant(0) {
                pieces.push(zeros(b, before)?);
            }
            pieces.push(g);
            if after != Dim::constant(0) {
                pieces.push(zeros(b, after)?);
            }
            if pieces.len() > 1 {
                g = b.concat(&pieces, axis as i64)?;
            }
        } else {
            let l = len.as_const().ok_or_else(|| {
                RuleError::Unsupported(format!("slicing symbolic axis {axis} ({len}) with step {step}"))
            })?;
            let (s, e) = slice_bounds(l, start, end, step);
            let mut rows = Vec::new();
            let mut p = s;
            while (step > 0 && p < e) || (step < 0 && p > e) {
                rows.push(p);
                p += step;
            }
            g = scatter_axis(b, g, axis, l, &rows)?;
        }
    }
    Ok(vec![Some(g)])
}

pub(crate) fn concat(b: &mut GraphBuilder, n: &NodeCtx, axis: usize) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let mut out = Vec::with_capacity(n.inputs.len());
    let mut offset = Dim::constant(0);
    let last = n.inputs.len() - 1;
    for (i, &x) in n.inputs.iter().enumerate() {
        let len = b.ty(x).shape[axis].clone();
        let next = offset.clone() + len.clone();
        if n.needs[i] {
            let piece = match (offset.as_const(), next.as_const()) {
                (Some(start), Some(end)) => b.slice_axis(g, axis, start, end)?,
                (Some(start), None) if i == last => b.slice_axis(g, axis, start, i64::MAX)?,
                _ => {
                    // A symbolic offset: gather positions offset..offset+len, with the offset
                    // computed at run time as the length of a broadcast of ones.
                    let ones = full(b, DType::I64, std::slice::from_ref(&offset), 1.0)?;
                    let start = b.reduce_sum(ones, &[0], false)?;
                    let positions = b.iota(DType::I64, vec![len.clone()], 0)?;
                    let positions = b.add(positions, start)?;
                    b.gather(g, positions, axis as i64)?
                }
            };
            out.push(Some(piece));
        } else {
            out.push(None);
        }
        offset = next;
    }
    Ok(out)
}

/// Where output position `q` of a padded axis reads from (`None`: the constant border).
fn pad_source(mode: PadMode, q: i64, before: i64, len: i64) -> Option<i64> {
    let p = q - before;
    match mode {
        PadMode::Constant => (0..len).contains(&p).then_some(p),
        PadMode::Edge => Some(p.clamp(0, len - 1)),
        PadMode::Wrap => Some(p.rem_euclid(len)),
        PadMode::Reflect => {
            if len == 1 {
                return Some(0);
            }
            let period = 2 * (len - 1);
            let m = p.rem_euclid(period);
            Some(if m < len { m } else { period - m })
        }
    }
}

pub(crate) fn pad(b: &mut GraphBuilder, n: &NodeCtx, pads: &[i64], mode: PadMode) -> R<Grads> {
    let g = n.grad(b, 0)?;
    let xs = b.ty(n.inputs[0]).shape.clone();
    if mode == PadMode::Constant {
        // Padding with the negated pads crops the border and puts zeros where the input was cropped.
        let neg: Vec<i64> = pads.iter().map(|p| -p).collect();
        return Ok(vec![Some(b.pad(g, neg, PadMode::Constant, 0.0)?)]);
    }
    // reflect/edge/wrap read input elements again: add each axis's border back where it came from.
    let r = xs.len();
    let mut g = g;
    for a in 0..r {
        let (before, after) = (pads[a], pads[a + r]);
        if before == 0 && after == 0 {
            continue;
        }
        let len = xs[a].as_const().ok_or_else(|| {
            RuleError::Unsupported(format!("{} padding of symbolic axis {a} ({})", mode.name(), xs[a]))
        })?;
        if len == 0 {
            return Err(RuleError::Unsupported(format!("{} padding of empty axis {a}", mode.name())));
        }
        let out_len = len + before + after;
        let rows: Vec<i64> = (0..out_len).map(|q| pad_source(mode, q, before, len).unwrap_or(0)).collect();
        g = scatter_axis(b, g, a, len, &rows)?;
    }
    Ok(vec![Some(g)])
}

/// `resize` is linear in `x` and separable: along each resized axis it multiplies by an
/// interpolation matrix `W [O, L]` that depends only on the attributes. `Wᵀ` is obtained by
/// resizing the identity `[L, L]` along its axis 1 with the same attributes (extrapolated
/// positions give 0, as they do not depend on `x`), so every mode has a gradient.
pub(crate) fn resize(b: &mut GraphBuilder, n: &NodeCtx, r: &ResizeAttrs) -> R<Grads> {
    let x = n.inputs[0];
    let xt = b.ty(x).clone();
    let mut g = n.grad(b, 0)?;
    let k = r.axes.len();
    let rank = xt.rank();
    for (i, &a) in r.axes.iter().enumerate() {
        let len = concrete(&xt.shape[a..a + 1], "the gradient of resize (resized input lengths)")?[0];
        let l = len as usize;
        let mut eye = vec![0.0; l * l];
        for j in 0..l {
            eye[j * l + j] = 1.0;
        }
        let eye = b.constant(TensorData::from_f64(xt.dtype, vec![l, l], &eye));
        let one_axis = ResizeAttrs {
            axes: vec![1],
            sizes: vec![r.sizes[i]],
            scales: vec![r.scales[i]],
            roi: vec![r.roi[i], r.roi[k + i]],
            extrapolation_value: 0.0,
            ..r.clone()
        };
        let wt = b.op1(Op::Resize(one_axis), &[eye])?; // [L, O]
        let w = b.transpose(wt, vec![1, 0])?; // [O, L]
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != a).collect();
        perm.push(a);
        let moved = crate::util::transpose(b, g, perm.clone())?;
        let back = b.matmul(moved, w)?;
        g = crate::util::transpose(b, back, inverse_perm(&perm))?;
    }
    Ok(vec![Some(g)])
}
