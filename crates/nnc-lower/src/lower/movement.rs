//! Data movement: `reshape`, `transpose`, `expand`, `slice`, `concat`, `pad`.
//!
//! - `reshape` flattens the output index row-major and unflattens it in the operand's shape.
//! - `slice` uses [`nnc_ir::infer::slice_bounds`] (ONNX rules: negative starts count from the
//!   end and are clamped), so operand position = `start + a * step`.
//! - `concat` is a chain of `select`s on the concatenation axis; only the chosen part is read.
//! - `pad`: position `p = a - begin` per axis. `constant` is a masked load (plus a `select` for a
//!   non-zero fill, converted to the dtype like `cast`); `edge` clamps `p`; `wrap` reads
//!   `p mod n`; `reflect` mirrors with period `2(n-1)`. The modulo operands are first shifted by
//!   a multiple of the period so they are never negative. Negative pads crop.

use super::{and_all, axes, bin, broadcast_index, in_range, literal, masked, strides, Ctx, LowerError};
use nnc_ir::infer::slice_bounds;
use nnc_ir::{BinaryOp, Op, PadMode};
use nnc_kernel::expr::{Expr, Literal};
use nnc_kernel::kernel::Compute;

pub(super) fn lower(cx: &Ctx, op: &Op) -> Result<Compute, LowerError> {
    let out = cx.out_shape().to_vec();
    let rank = out.len();
    let x = cx.in_shape(0)?.to_vec();
    let e = match op {
        Op::Reshape { .. } => {
            let os = strides(&out);
            let flat = axes(rank)
                .into_iter()
                .zip(&os)
                .fold(Expr::i64(0), |acc, (a, &s)| Expr::add_index(acc, Expr::mul_index(a, Expr::i64(s))));
            let is = strides(&x);
            let index = x
                .iter()
                .zip(&is)
                .enumerate()
                .map(|(k, (&n, &s))| {
                    let q = Expr::div_index(flat.clone(), Expr::i64(s));
                    if k == 0 {
                        q
                    } else {
                        Expr::rem_index(q, Expr::i64(n))
                    }
                })
                .collect();
            cx.load(0, index)?
        }
        Op::Transpose { perm } => {
            let mut index = vec![Expr::i64(0); x.len()];
            for (i, &p) in perm.iter().enumerate() {
                index[p] = Expr::Axis(i as u8);
            }
            cx.load(0, index)?
        }
        Op::Expand { .. } => cx.load(0, broadcast_index(&x, rank))?,
        Op::Slice { axes: sl, starts, ends, steps } => {
            let mut index = axes(rank);
            for (k, &a) in sl.iter().enumerate() {
                let (start, step) = (starts[k], steps[k]);
                let (s, _) = slice_bounds(x[a], start, ends[k], step);
                index[a] = Expr::add_index(Expr::mul_index(Expr::Axis(a as u8), Expr::i64(step)), Expr::i64(s));
            }
            cx.load(0, index)?
        }
        Op::Concat { axis } => {
            let mut offsets = Vec::new();
            let mut at = 0;
            for k in 0..cx.ins.len() {
                let len = cx.in_shape(k)?[*axis];
                offsets.push((k, at, len));
                at += len;
            }
            let parts: Vec<ConcatPart> = offsets.into_iter().filter(|&(_, _, len)| len > 0).collect();
            let read = |&(k, start, _): &ConcatPart| {
                let mut index = axes(rank);
                index[*axis] = Expr::sub_index(Expr::Axis(*axis as u8), Expr::i64(start));
                cx.load(k, index)
            };
            // A balanced tree of selects on the position along the axis: log2(parts) deep, so
            // a concat of thousands of parts (an unrolled sequence model's outputs) neither
            // compares thousands of times per element nor nests deeper than code generators
            // (and LLVM's analyses) can recurse.
            fn tree(
                parts: &[ConcatPart],
                axis: usize,
                read: &dyn Fn(&ConcatPart) -> Result<Expr, LowerError>,
            ) -> Result<Expr, LowerError> {
                if let [one] = parts {
                    return read(one);
                }
                let (low, high) = parts.split_at(parts.len() / 2);
                let split = high[0].1;
                let below = bin(BinaryOp::Lt, Expr::Axis(axis as u8), Expr::i64(split));
                Ok(Expr::select(below, tree(low, axis, read)?, tree(high, axis, read)?))
            }
            if parts.is_empty() {
                literal(0.0, cx.out_dtype())
            } else {
                tree(&parts, *axis, &read)?
            }
        }
        Op::Pad { pads, mode, value } => pad(cx, &x, pads, *mode, *value)?,
        _ => return Err(cx.err(format!("`{}` is not data movement", op.name()))),
    };
    Ok(Compute::Map(e))
}

/// One operand of a concatenation: its input, where it starts along the axis, its length.
type ConcatPart = (usize, i64, i64);

fn pad(cx: &Ctx, x: &[i64], pads: &[i64], mode: PadMode, value: f64) -> Result<Expr, LowerError> {
    let out = cx.out_shape();
    let nonempty = !out.contains(&0);
    let mut index = Vec::new();
    let mut mask = Vec::new();
    for (a, &n) in x.iter().enumerate() {
        let begin = pads[a];
        let p = Expr::sub_index(Expr::Axis(a as u8), Expr::i64(begin));
        if n == 0 && nonempty && mode != PadMode::Constant {
            return Err(cx.err(format!("cannot {}-pad axis {a}, which is empty", mode.name())));
        }
        // `p + shift >= 0` for every output position.
        let shift = |period: i64| if begin > 0 && period > 0 { (begin + period - 1) / period * period } else { 0 };
        let i = match mode {
            PadMode::Constant => {
                if begin > 0 || out[a] - begin > n {
                    mask.push(in_range(&p, 0, n));
                }
                p
            }
            PadMode::Edge => {
                let lo = if begin > 0 { bin(BinaryOp::Max, p, Expr::i64(0)) } else { p };
                if out[a] - begin > n {
                    bin(BinaryOp::Min, lo, Expr::i64(n - 1))
                } else {
                    lo
                }
            }
            PadMode::Wrap => Expr::rem_index(Expr::add_index(p, Expr::i64(shift(n))), Expr::i64(n)),
            PadMode::Reflect if n == 1 => Expr::i64(0),
            PadMode::Reflect => {
                let period = 2 * (n - 1);
                let m = Expr::rem_index(Expr::add_index(p, Expr::i64(shift(period))), Expr::i64(period));
                Expr::select(
                    bin(BinaryOp::Lt, m.clone(), Expr::i64(n)),
                    m.clone(),
                    Expr::sub_index(Expr::i64(period), m),
                )
            }
        };
        index.push(i);
    }
    let load = cx.load(0, index)?;
    let mask = and_all(mask);
    let fill = literal(value, cx.out_dtype());
    let zero = matches!(fill, Expr::Lit(Literal::Float(v, _)) if v == 0.0 && v.is_sign_positive())
        || matches!(fill, Expr::Lit(Literal::Int(0, _)) | Expr::Lit(Literal::Bool(false)));
    Ok(if zero || matches!(mask, Expr::Lit(Literal::Bool(true))) {
        masked(load, mask)
    } else {
        Expr::select(mask, load, fill)
    })
}
