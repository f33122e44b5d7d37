//! Contractions and windows: `matmul`, `conv`, `conv_transpose`, pooling.

use super::{Grads, NodeCtx};
use crate::concrete;
use crate::util::{product, reshape, unbroadcast, RuleError, R};
use nnc_ir::{Dim, GraphBuilder, Op, PoolKind, TensorData, ValueId, Window};

pub(crate) fn matmul(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    let (a, c) = (n.inputs[0], n.inputs[1]);
    let g = n.grad(b, 0)?;
    let (ta, tc) = (b.ty(a).clone(), b.ty(c).clone());
    let (ra, rc) = (ta.rank(), tc.rank());
    // Undo numpy's 1-D promotion: work on [1, k] and [k, 1] and a result with both axes.
    let a2 = if ra == 1 { b.reshape(a, vec![Dim::constant(1), ta.shape[0].clone()])? } else { a };
    let c2 = if rc == 1 { b.reshape(c, vec![tc.shape[0].clone(), Dim::constant(1)])? } else { c };
    let mut gs = b.ty(g).shape.clone();
    if rc == 1 {
        gs.push(Dim::constant(1));
    }
    if ra == 1 {
        let at = gs.len() - 1;
        gs.insert(at, Dim::constant(1));
    }
    let g2 = reshape(b, g, gs)?;
    let mut out = vec![None, None];
    if n.needs[0] {
        let ct = b.transpose_last2(c2)?;
        let ga = b.matmul(g2, ct)?;
        let s2 = b.ty(a2).shape.clone();
        let ga = unbroadcast(b, ga, &s2)?;
        out[0] = Some(reshape(b, ga, ta.shape.clone())?);
    }
    if n.needs[1] {
        let at = b.transpose_last2(a2)?;
        let gc = b.matmul(at, g2)?;
        let s2 = b.ty(c2).shape.clone();
        let gc = unbroadcast(b, gc, &s2)?;
        out[1] = Some(reshape(b, gc, tc.shape.clone())?);
    }
    Ok(out)
}

/// The `output_padding` that makes a `conv_transpose` with this window give back `len` from
/// `out` positions: `len - (s·(out - 1) + d·(k - 1) + 1 - p_b - p_e)` per axis.
fn exact_output_padding(window: &Window, kernel: &[i64], len: &[Dim], out: &[Dim]) -> R<Vec<i64>> {
    let n = kernel.len();
    (0..n)
        .map(|i| {
            let full = out[i].clone() * Dim::constant(window.strides[i]) - Dim::constant(window.strides[i])
                + Dim::constant(window.dilations[i] * (kernel[i] - 1) + 1 - window.pads[i] - window.pads[n + i]);
            let extra = len[i].clone() - full;
            extra.as_const().filter(|&e| e >= 0).ok_or_else(|| {
                RuleError::Unsupported(format!(
                    "the transposed window cannot give back length {} on spatial axis {i} (needs {extra} extra positions)",
                    len[i]
                ))
            })
        })
        .collect()
}

/// Slices the spatial axes (from axis 2) of `v` down to `lens`, if longer.
fn crop_spatial(b: &mut GraphBuilder, v: ValueId, lens: &[Dim]) -> R<ValueId> {
    let shape = b.ty(v).shape.clone();
    let mut axes = Vec::new();
    let mut ends = Vec::new();
    for (i, l) in lens.iter().enumerate() {
        if shape[2 + i] != *l {
            let l = l.as_const().ok_or_else(|| RuleError::Unsupported(format!("cropping to symbolic length {l}")))?;
            axes.push(2 + i);
            ends.push(l);
        }
    }
    if axes.is_empty() {
        return Ok(v);
    }
    let k = axes.len();
    Ok(b.op1(Op::Slice { axes, starts: vec![0; k], ends, steps: vec![1; k] }, &[v])?)
}

/// The gradient of a convolution's weight: with input `x [N, C, D..]` and output gradient
/// `gy [N, M, O..]`, `gw[m, c, j] = Σ_{b,o} gy[b, m, o] · x[b, g·C/G + c, o·s - p_b + j·d]`,
/// which is itself a convolution over the batch: channels and batch swapped, the roles of
/// stride and dilation exchanged, one group per conv group. Result `[M, C/G, K..]`.
pub(crate) fn conv_weight_grad(
    b: &mut GraphBuilder,
    x: ValueId,
    gy: ValueId,
    window: &Window,
    groups: i64,
    kernel: &[i64],
) -> R<ValueId> {
    let xs = b.ty(x).shape.clone();
    let gs = b.ty(gy).shape.clone();
    let sp = kernel.len();
    concrete(&gs[2..], "the weight gradient of a convolution (output spatial sizes)")?;
    let (nb, c) = (xs[0].clone(), xs[1].clone());
    let cg = c.div_exact(groups).ok_or_else(|| RuleError::Unsupported(format!("channels {c} / groups {groups}")))?;
    let spatial: Vec<usize> = (3..sp + 3).collect();
    // x [N, C, D] -> [C/G, G·N, D]: batch of the new conv = in-group channel, channels = (group, n).
    let xc = if groups == 1 {
        let mut perm = vec![1, 0];
        perm.extend(2..sp + 2);
        b.transpose(x, perm)?
    } else {
        let mut s = vec![nb.clone(), Dim::constant(groups), cg.clone()];
        s.extend(xs[2..].iter().cloned());
        let xr = b.reshape(x, s)?;
        let mut perm = vec![2, 1, 0];
        perm.extend(spatial.iter().copied());
        let xt = b.transpose(xr, perm)?;
        let mut s = vec![cg.clone(), Dim::constant(groups) * nb.clone()];
        s.extend(xs[2..].iter().cloned());
        b.reshape(xt, s)?
    };
    let mut perm = vec![1, 0];
    perm.extend(2..sp + 2);
    let gt = b.transpose(gy, perm.clone())?;
    let w2 = Window { strides: window.dilations.clone(), dilations: window.strides.clone(), pads: window.pads.clone() };
    let out = b.conv(xc, gt, w2, groups)?;
    let lens: Vec<Dim> = kernel.iter().map(|&k| Dim::constant(k)).collect();
    let out = crop_spatial(b, out, &lens)?;
    Ok(b.transpose(out, perm)?)
}

pub(crate) fn conv(b: &mut GraphBuilder, n: &NodeCtx, window: &Window, groups: i64) -> R<Grads> {
    let (x, w) = (n.inputs[0], n.inputs[1]);
    let g = n.grad(b, 0)?;
    let (xs, ws, gs) = (b.ty(x).shape.clone(), b.ty(w).shape.clone(), b.ty(g).shape.clone());
    let kernel = concrete(&ws[2..], "conv kernel")?;
    let mut out = vec![None, None];
    if n.needs[0] {
        let op = exact_output_padding(window, &kernel, &xs[2..], &gs[2..])?;
        out[0] = Some(b.op1(Op::ConvTranspose { window: window.clone(), output_padding: op, groups }, &[g, w])?);
    }
    if n.needs[1] {
        out[1] = Some(conv_weight_grad(b, x, g, window, groups, &kernel)?);
    }
    Ok(out)
}

pub(crate) fn conv_transpose(
    b: &mut GraphBuilder,
    n: &NodeCtx,
    window: &Window,
    _output_padding: &[i64],
    groups: i64,
) -> R<Grads> {
    let (x, w) = (n.inputs[0], n.inputs[1]);
    let g = n.grad(b, 0)?;
    let (xs, ws) = (b.ty(x).shape.clone(), b.ty(w).shape.clone());
    let kernel = concrete(&ws[2..], "conv_transpose kernel")?;
    let mut out = vec![None, None];
    if n.needs[0] {
        // The adjoint of conv_transpose is conv with the same window; output_padding may leave
        // extra positions at the end, which are cropped.
        let gx = b.conv(g, w, window.clone(), groups)?;
        out[0] = Some(crop_spatial(b, gx, &xs[2..])?);
    }
    if n.needs[1] {
        // conv_transpose(x, w) is the adjoint of conv(·, w): the weight gradient is the conv
        // weight gradient with the roles of input (now `g`) and output gradient (now `x`) swapped.
        out[1] = Some(conv_weight_grad(b, g, x, window, groups, &kernel)?);
    }
    Ok(out)
}

pub(crate) fn pool(
    b: &mut GraphBuilder,
    n: &NodeCtx,
    kind: PoolKind,
    kernel: &[i64],
    window: &Window,
    ceil_mode: bool,
    count_include_pad: bool,
) -> R<Grads> {
    let x = n.inputs[0];
    let g = n.grad(b, 0)?;
    let xt = b.ty(x).clone();
    let gs = b.ty(g).shape.clone();
    let gx = match kind {
        PoolKind::Max => {
            // Each window's gradient goes to its first maximum (argmax_pool's choice).
            let idx = b.op1(Op::ArgMaxPool { kernel: kernel.to_vec(), window: window.clone(), ceil_mode }, &[x])?;
            let total = product(&xt.shape);
            let count = product(&gs);
            let flat_idx = b.reshape(idx, vec![count.clone()])?;
            let flat_g = b.reshape(g, vec![count])?;
            let zeros = crate::util::full(b, xt.dtype, &[total], 0.0)?;
            let s = b.op1(Op::ScatterAdd { axis: 0 }, &[zeros, flat_idx, flat_g])?;
            b.reshape(s, xt.shape.clone())?
        }
        PoolKind::Avg => {
            let sp = kernel.len();
            let lens = concrete(&xt.shape[2..], "the gradient of avg_pool (input spatial sizes)")?;
            let outs = concrete(&gs[2..], "the gradient of avg_pool (output spatial sizes)")?;
            // The divisor of each output position is a product of one count per axis.
            let mut counts = vec![1.0f64];
            let mut pads_end = Vec::new();
            let mut output_padding = Vec::new();
            for i in 0..sp {
                let (s, d, k, pb, pe) =
                    (window.strides[i], window.dilations[i], kernel[i], window.pads[i], window.pads[sp + i]);
                let l = lens[i];
                let axis_counts: Vec<f64> = (0..outs[i])
                    .map(|o| {
                        let c = (0..k)
                            .map(|j| o * s - pb + j * d)
                            .filter(|&p| if count_include_pad { p >= -pb && p < l + pe } else { p >= 0 && p < l })
                            .count();
                        c.max(1) as f64
                    })
                    .collect();
                counts = counts.iter().flat_map(|&a| axis_counts.iter().map(move |&c| a * c)).collect();
                // conv_transpose's full result starts at -p_b and has this many positions.
                let full = s * (outs[i] - 1) + d * (k - 1) + 1;
                let end_crop = full - pb - l;
                if end_crop >= 0 {
                    pads_end.push(end_crop);
                    output_padding.push(0);
                } else {
                    pads_end.push(0);
                    output_padding.push(-end_crop);
                }
            }
            let count_shape: Vec<usize> = outs.iter().map(|&o| o as usize).collect();
            let count = b.constant(TensorData::from_f64(xt.dtype, count_shape, &counts));
            let scaled = b.div(g, count)?;
            let nc = xt.shape[0].clone() * xt.shape[1].clone();
            let mut s = vec![nc, Dim::constant(1)];
            s.extend(gs[2..].iter().cloned());
            let scaled = b.reshape(scaled, s)?;
            let mut ones_shape = vec![1usize, 1];
            ones_shape.extend(kernel.iter().map(|&k| k as usize));
            let kn: usize = kernel.iter().product::<i64>() as usize;
            let ones = b.constant(TensorData::from_f64(xt.dtype, ones_shape, &vec![1.0; kn]));
            let mut pads = window.pads[..sp].to_vec();
            pads.extend(pads_end);
            let w2 = Window { strides: window.strides.clone(), dilations: window.dilations.clone(), pads };
            let spread = b.op1(Op::ConvTranspose { window: w2, output_padding, groups: 1 }, &[scaled, ones])?;
            b.reshape(spread, xt.shape.clone())?
        }
    };
    Ok(vec![Some(gx)])
}
