//! Data movement: `reshape`, `transpose`, `expand`, `slice`, `concat`, `pad`.
//!
//! - `reshape` maps each run of output axes to the run of operand axes with the same number of
//!   elements (a merge, a split, or both), flattening and unflattening within the run only, so
//!   merging `[O/16, 16]` into `[O]` reads `[o / 16, o % 16]`; shapes with no such runs (a zero
//!   extent) flatten the whole index.
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
        Op::Reshape { .. } => cx.load(0, reshape_index(&x, &out))?,
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

/// The operand index of a reshape from `x` to `out` (equal element counts): runs of axes with
/// equal products map onto each other (see the module doc), extent-1 axes left over read 0.
fn reshape_index(x: &[i64], out: &[i64]) -> Vec<Expr> {
    let runs = reshape_runs(x, out).unwrap_or_else(|| vec![(0..x.len(), 0..out.len())]);
    let mut index = vec![Expr::i64(0); x.len()];
    for (ins, outs) in runs {
        let os = strides(&out[outs.clone()]);
        let flat = outs.zip(&os).fold(Expr::i64(0), |acc, (a, &s)| {
            Expr::add_index(acc, Expr::mul_index(Expr::Axis(a as u8), Expr::i64(s)))
        });
        let is = strides(&x[ins.clone()]);
        for (k, (a, &s)) in ins.clone().zip(&is).enumerate() {
            let q = if s == 1 { flat.clone() } else { Expr::div_index(flat.clone(), Expr::i64(s)) };
            index[a] = if k == 0 { q } else { Expr::rem_index(q, Expr::i64(x[a])) };
        }
    }
    index
}

/// The runs of operand and output axes with equal element counts, in order; `None` where a
/// zero extent makes every split equal.
fn reshape_runs(x: &[i64], out: &[i64]) -> Option<Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>> {
    if x.contains(&0) || out.contains(&0) {
        return None;
    }
    let mut runs = Vec::new();
    let (mut i, mut o) = (0, 0);
    while i < x.len() && o < out.len() {
        let (first_i, first_o) = (i, o);
        let (mut pi, mut po) = (x[i], out[o]);
        (i, o) = (i + 1, o + 1);
        while pi != po {
            if pi < po {
                pi = pi.checked_mul(*x.get(i)?)?;
                i += 1;
            } else {
                po = po.checked_mul(*out.get(o)?)?;
                o += 1;
            }
        }
        runs.push((first_i..i, first_o..o));
    }
    // What is left on either side has one element: operand axes read 0, output axes nothing.
    (x[i..].iter().chain(&out[o..]).all(|&n| n == 1)).then_some(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshapes_map_runs_of_axes_with_equal_counts() {
        // Split, merge, a run of two on each side, and leftover ones.
        assert_eq!(reshape_runs(&[16, 2, 3], &[4, 4, 6]), Some(vec![(0..1, 0..2), (1..3, 2..3)]));
        assert_eq!(reshape_runs(&[2, 3], &[3, 2]), Some(vec![(0..2, 0..2)]));
        assert_eq!(reshape_runs(&[1, 6, 1], &[6]), Some(vec![(0..2, 0..1)]));
        assert_eq!(reshape_runs(&[6], &[6, 1, 1]), Some(vec![(0..1, 0..1)]));
        assert_eq!(reshape_runs(&[0, 4], &[4, 0]), None);
    }

    #[test]
    fn merging_two_axes_reads_a_quotient_and_a_remainder_of_one() {
        // [2, 8] read as [16]: o / 8 and o % 8, no flattening of other axes.
        let index = reshape_index(&[2, 8, 3], &[16, 3]);
        let o = Expr::Axis(0);
        assert_eq!(
            index,
            vec![Expr::div_index(o.clone(), Expr::i64(8)), Expr::rem_index(o, Expr::i64(8)), Expr::Axis(1)]
        );
    }
}
