//! Contractions and windows: `matmul`, `conv`, `conv_transpose`, `max_pool`/`avg_pool`,
//! `argmax_pool`.
//!
//! - `matmul`: a sum over the contraction variable; leading (batch) axes broadcast as in
//!   `binary`; a 1-D left operand is a row, a 1-D right operand a column, their promoted axes
//!   absent from the output index.
//! - `conv`: output `[n, m, o..]` sums, over `c < C/groups` and the kernel taps `k..`,
//!   `x[n, g*C/groups + c, o*stride - pad_begin + k*dilation] * w[m, c, k..]` with
//!   `g = m / (M/groups)`; taps in the padding are masked loads (0).
//! - `conv_transpose`: the adjoint, as a gather: output position `o` receives tap `k` of input
//!   position `i = (o + pad_begin - k*dilation) / stride` when that is exact and in range
//!   (mask), summed over the channels of the group and the taps.
//! - pools: the same window, with `ceil_mode` already in the output shape. `max_pool` is a max
//!   over the taps of `select(in bounds, x, -inf)` (the dtype's minimum for integers);
//!   `avg_pool` the sum of the masked loads divided by the count of in-bounds taps (or, with
//!   `count_include_pad`, of taps inside the padded input), each a per-axis count reduction.
//! - `argmax_pool`: the window position of the first maximum (`argmax` over the taps of a key
//!   that is 2 for in-bounds non-NaN elements equal to the window's maximum, 1 for other
//!   in-bounds elements, 0 for padding: so an all-NaN window points at its first in-bounds
//!   element, as in the interpreter), unravelled into the flat row-major index of the whole
//!   input.

use super::{and_all, bin, broadcast_index, extreme, in_range, masked, Ctx, LowerError};
use nnc_ir::{BinaryOp, DType, Op, PoolKind, UnaryOp, Window};
use nnc_kernel::expr::{Combine, Expr, Var, VarGen};
use nnc_kernel::kernel::Compute;

pub(super) fn lower(cx: &Ctx, op: &Op, vars: &mut VarGen) -> Result<Compute, LowerError> {
    let e = match op {
        Op::MatMul => matmul(cx, vars)?,
        Op::Conv { window, groups } => conv(cx, window, *groups, vars)?,
        Op::ConvTranspose { window, groups, .. } => conv_transpose(cx, window, *groups, vars)?,
        Op::Pool { kind, kernel, window, count_include_pad, .. } => {
            pool(cx, *kind, kernel, window, *count_include_pad, vars)?
        }
        Op::ArgMaxPool { kernel, window, .. } => argmax_pool(cx, kernel, window, vars)?,
        _ => return Err(cx.err(format!("`{}` is not a contraction", op.name()))),
    };
    Ok(Compute::Map(e))
}

fn matmul(cx: &Ctx, vars: &mut VarGen) -> Result<Expr, LowerError> {
    let (a, b) = (cx.in_shape(0)?.to_vec(), cx.in_shape(1)?.to_vec());
    let rank = cx.out_shape().len();
    let (a2, b2) = (a.len() >= 2, b.len() >= 2);
    let batch_rank = rank - a2 as usize - b2 as usize;
    let k = if a2 { a[a.len() - 1] } else { a[0] };
    let v = vars.index();
    let batch = |s: &[i64]| -> Vec<Expr> {
        // The operand's batch axes, broadcast against the output's batch axes.
        broadcast_index(s, batch_rank)
    };
    let ia = if a2 {
        let mut i = batch(&a[..a.len() - 2]);
        i.push(Expr::Axis(batch_rank as u8));
        i.push(Expr::Var(v));
        i
    } else {
        vec![Expr::Var(v)]
    };
    let ib = if b2 {
        let mut i = batch(&b[..b.len() - 2]);
        i.push(Expr::Var(v));
        i.push(Expr::Axis((batch_rank + a2 as usize) as u8));
        i
    } else {
        vec![Expr::Var(v)]
    };
    Ok(Expr::reduce(Combine::Sum, vec![(v, k)], bin(BinaryOp::Mul, cx.load(0, ia)?, cx.load(1, ib)?)))
}

/// Per spatial axis `a`: the input position `o*stride - pad_begin + k*dilation` of tap `k`.
fn tap_position(window: &Window, a: usize, o: Expr, k: Expr) -> Expr {
    Expr::add_index(
        Expr::sub_index(Expr::mul_index(o, Expr::i64(window.strides[a])), Expr::i64(window.pads[a])),
        Expr::mul_index(k, Expr::i64(window.dilations[a])),
    )
}

fn check_window(cx: &Ctx, window: &Window, d: usize) -> Result<(), LowerError> {
    if window.strides.len() != d || window.dilations.len() != d || window.pads.len() != 2 * d {
        return Err(cx.err(format!("window lists do not match {d} spatial axes")));
    }
    Ok(())
}

fn conv(cx: &Ctx, window: &Window, groups: i64, vars: &mut VarGen) -> Result<Expr, LowerError> {
    let (x, w) = (cx.in_shape(0)?.to_vec(), cx.in_shape(1)?.to_vec());
    let d = x.len() - 2;
    check_window(cx, window, d)?;
    let (m_out, c_group) = (w[0], w[1]);
    if groups <= 0 || m_out % groups != 0 {
        return Err(cx.err(format!("{m_out} output channels do not split into {groups} groups")));
    }
    let m_group = m_out / groups;
    let c = vars.index();
    let ks: Vec<Var> = (0..d).map(|_| vars.index()).collect();
    // With one group every output channel reads every input channel: the index does not
    // depend on the output channel, which is what lets a schedule reuse an input across them.
    let channel = if groups == 1 {
        Expr::Var(c)
    } else {
        Expr::add_index(
            Expr::mul_index(Expr::div_index(Expr::Axis(1), Expr::i64(m_group)), Expr::i64(c_group)),
            Expr::Var(c),
        )
    };
    let mut xi = vec![Expr::Axis(0), channel];
    let mut wi = vec![Expr::Axis(1), Expr::Var(c)];
    let mut mask = Vec::new();
    for a in 0..d {
        let p = tap_position(window, a, Expr::Axis((2 + a) as u8), Expr::Var(ks[a]));
        if window.pads[a] > 0 || window.pads[a + d] > 0 {
            mask.push(in_range(&p, 0, x[2 + a]));
        }
        xi.push(p);
        wi.push(Expr::Var(ks[a]));
    }
    let body = bin(BinaryOp::Mul, masked(cx.load(0, xi)?, and_all(mask)), cx.load(1, wi)?);
    let mut rvars = vec![(c, c_group)];
    rvars.extend(ks.iter().zip(&w[2..]).map(|(&v, &n)| (v, n)));
    Ok(Expr::reduce(Combine::Sum, rvars, body))
}

fn conv_transpose(cx: &Ctx, window: &Window, groups: i64, vars: &mut VarGen) -> Result<Expr, LowerError> {
    let (x, w) = (cx.in_shape(0)?.to_vec(), cx.in_shape(1)?.to_vec());
    let d = x.len() - 2;
    check_window(cx, window, d)?;
    let (c_in, m_group) = (x[1], w[1]);
    if groups <= 0 || c_in % groups != 0 {
        return Err(cx.err(format!("{c_in} input channels do not split into {groups} groups")));
    }
    let c_group = c_in / groups;
    let c = vars.index();
    let ks: Vec<Var> = (0..d).map(|_| vars.index()).collect();
    let channel = Expr::add_index(
        Expr::mul_index(Expr::div_index(Expr::Axis(1), Expr::i64(m_group)), Expr::i64(c_group)),
        Expr::Var(c),
    );
    let mut xi = vec![Expr::Axis(0), channel.clone()];
    let mut wi = vec![channel, Expr::rem_index(Expr::Axis(1), Expr::i64(m_group))];
    let mut mask = Vec::new();
    for a in 0..d {
        // t = o + pad_begin - k*dilation; the input position is t / stride when exact.
        let t = Expr::sub_index(
            Expr::add_index(Expr::Axis((2 + a) as u8), Expr::i64(window.pads[a])),
            Expr::mul_index(Expr::Var(ks[a]), Expr::i64(window.dilations[a])),
        );
        let s = window.strides[a];
        let i = Expr::div_index(t.clone(), Expr::i64(s));
        let ok = if s == 1 {
            in_range(&t, 0, x[2 + a])
        } else {
            // Only evaluated for t >= 0, so div and rem see non-negative operands.
            let exact = bin(BinaryOp::Eq, Expr::rem_index(t.clone(), Expr::i64(s)), Expr::i64(0));
            Expr::select(
                bin(BinaryOp::Ge, t, Expr::i64(0)),
                Expr::and(exact, bin(BinaryOp::Lt, i.clone(), Expr::i64(x[2 + a]))),
                Expr::bool(false),
            )
        };
        mask.push(ok);
        xi.push(i);
        wi.push(Expr::Var(ks[a]));
    }
    let body = bin(BinaryOp::Mul, masked(cx.load(0, xi)?, and_all(mask)), cx.load(1, wi)?);
    let mut rvars = vec![(c, c_group)];
    rvars.extend(ks.iter().zip(&w[2..]).map(|(&v, &n)| (v, n)));
    Ok(Expr::reduce(Combine::Sum, rvars, body))
}

/// The taps of a pooling window: reduction variables, the operand index, and the per-axis
/// in-bounds conditions.
struct Taps {
    vars: Vec<(Var, i64)>,
    index: Vec<Expr>,
    inside: Vec<Expr>,
}

fn taps(x: &[i64], kernel: &[i64], window: &Window, vars: &mut VarGen) -> Taps {
    let d = x.len() - 2;
    let mut t = Taps { vars: Vec::new(), index: vec![Expr::Axis(0), Expr::Axis(1)], inside: Vec::new() };
    for a in 0..d {
        let k = vars.index();
        let p = tap_position(window, a, Expr::Axis((2 + a) as u8), Expr::Var(k));
        t.inside.push(in_range(&p, 0, x[2 + a]));
        t.index.push(p);
        t.vars.push((k, kernel[a]));
    }
    t
}

/// The number of taps of output position `o` on spatial axis `a` whose input position lies in
/// `[lo, hi)`.
fn axis_count(window: &Window, a: usize, kernel: i64, lo: i64, hi: i64, vars: &mut VarGen) -> Expr {
    let k = vars.index();
    let p = tap_position(window, a, Expr::Axis((2 + a) as u8), Expr::Var(k));
    Expr::reduce(Combine::Sum, vec![(k, kernel)], Expr::cast(DType::I64, in_range(&p, lo, hi)))
}

fn pool(
    cx: &Ctx,
    kind: PoolKind,
    kernel: &[i64],
    window: &Window,
    count_include_pad: bool,
    vars: &mut VarGen,
) -> Result<Expr, LowerError> {
    let x = cx.in_shape(0)?.to_vec();
    let dtype = cx.in_dtype(0)?;
    let d = x.len() - 2;
    check_window(cx, window, d)?;
    if kernel.len() != d {
        return Err(cx.err(format!("kernel has {} axes, the input {d} spatial axes", kernel.len())));
    }
    let t = taps(&x, kernel, window, vars);
    let load = cx.load(0, t.index)?;
    Ok(match kind {
        PoolKind::Max => {
            let body = Expr::select(and_all(t.inside), load, extreme(dtype, false));
            Expr::reduce(Combine::Max, t.vars, body)
        }
        PoolKind::Avg => {
            let sum = Expr::reduce(Combine::Sum, t.vars, masked(load, and_all(t.inside)));
            let mut count = Expr::i64(1);
            for a in 0..d {
                let (lo, hi) =
                    if count_include_pad { (-window.pads[a], x[2 + a] + window.pads[a + d]) } else { (0, x[2 + a]) };
                count = Expr::mul_index(count, axis_count(window, a, kernel[a], lo, hi, vars));
            }
            bin(BinaryOp::Div, sum, Expr::cast(dtype, count))
        }
    })
}

fn argmax_pool(cx: &Ctx, kernel: &[i64], window: &Window, vars: &mut VarGen) -> Result<Expr, LowerError> {
    let x = cx.in_shape(0)?.to_vec();
    let dtype = cx.in_dtype(0)?;
    let d = x.len() - 2;
    check_window(cx, window, d)?;
    if kernel.len() != d {
        return Err(cx.err(format!("kernel has {} axes, the input {d} spatial axes", kernel.len())));
    }
    // The window's maximum over in-bounds, non-NaN elements (loads only under `select`s on
    // the in-bounds condition, so no padding position is ever read).
    let t = taps(&x, kernel, window, vars);
    let load = cx.load(0, t.index)?;
    let low = extreme(dtype, false);
    let value = if dtype.is_float() {
        Expr::select(Expr::unary(UnaryOp::IsNan, load.clone()), low.clone(), load)
    } else {
        load
    };
    let max = Expr::reduce(Combine::Max, t.vars, Expr::select(and_all(t.inside), value, low));
    // The first tap that holds it (NaN equals nothing), else the first in-bounds tap.
    let t = taps(&x, kernel, window, vars);
    let load = cx.load(0, t.index)?;
    let key = Expr::select(
        and_all(t.inside),
        Expr::select(bin(BinaryOp::Eq, load, max), Expr::i64(2), Expr::i64(1)),
        Expr::i64(0),
    );
    let pos = Expr::reduce(Combine::ArgMax { select_last: false }, t.vars, key);
    // Flat index into the whole input: ((n*C + c)*S0 + i0)*S1 + i1 ...
    let mut flat = Expr::add_index(Expr::mul_index(Expr::Axis(0), Expr::i64(x[1])), Expr::Axis(1));
    let mut inner: i64 = kernel.iter().product();
    for a in 0..d {
        inner /= kernel[a].max(1);
        let k = Expr::rem_index(Expr::div_index(pos.clone(), Expr::i64(inner)), Expr::i64(kernel[a]));
        let i = tap_position(window, a, Expr::Axis((2 + a) as u8), k);
        flat = Expr::add_index(Expr::mul_index(flat, Expr::i64(x[2 + a])), i);
    }
    Ok(flat)
}
