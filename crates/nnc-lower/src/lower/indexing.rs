//! Indexing: `gather`, `gather_elements`, `gather_nd`, `scatter_add`, `scatter_elements`,
//! `scatter_nd`.
//!
//! Index operands are read, cast to `i64` and normalized (`i < 0 ? i + n : i`); they are not
//! clamped, so an index outside `[-n, n)` makes an out-of-bounds load or store, which the
//! Kernel-IR interpreter reports (as the graph interpreter reports the index).
//!
//! - The gathers are single loads whose index reads the index operand.
//! - `scatter_add` is a map: `data[p] + sum over the index positions j of
//!   select(idx[j] == p[axis], updates[.., j.., ..], 0)` (for `bool`, `or` of the matches). An
//!   out-of-range index matches nothing, so it is silently dropped here (the graph interpreter
//!   reports it). With more than 64 index positions that scan is quadratic, and it is a
//!   one-pass program instead (where a bad index is an out-of-bounds store, reported).
//! - `scatter_elements` and `scatter_nd` apply their updates in order (with `none`, the last of
//!   repeated indices wins), so they are programs: copy `data` into the result, then for every
//!   position of `updates` in row-major order combine the update into its target (`add`/`mul`,
//!   `max`/`min` as the binary ops; for `bool`, `add`/`max` are `or` and `mul`/`min` `and`).

use super::{axes, bin, normalize_index, Ctx, LowerError};
use nnc_ir::{BinaryOp, DType, Op, ScatterReduction};
use nnc_kernel::expr::{BufId, Combine, Expr, Var, VarGen};
use nnc_kernel::kernel::{Compute, LoopKind, Stmt};

pub(super) fn lower(cx: &Ctx, op: &Op, vars: &mut VarGen) -> Result<Compute, LowerError> {
    let data = cx.in_shape(0)?.to_vec();
    let rank = cx.out_shape().len();
    match op {
        Op::Gather { axis } => {
            let q = cx.in_shape(1)?.len();
            let idx = cx.load(1, (0..q).map(|j| Expr::Axis((axis + j) as u8)).collect())?;
            let mut index: Vec<Expr> = (0..*axis).map(|a| Expr::Axis(a as u8)).collect();
            index.push(normalize_index(idx, data[*axis]));
            index.extend((axis + 1..data.len()).map(|a| Expr::Axis((a + q - 1) as u8)));
            Ok(Compute::Map(cx.load(0, index)?))
        }
        Op::GatherElements { axis } => {
            let idx = cx.load(1, axes(rank))?;
            let mut index = axes(rank);
            index[*axis] = normalize_index(idx, data[*axis]);
            Ok(Compute::Map(cx.load(0, index)?))
        }
        Op::GatherNd { batch_dims } => {
            let b = *batch_dims;
            let ishape = cx.in_shape(1)?.to_vec();
            let q = ishape.len();
            let m = ishape[q - 1] as usize;
            let mut index: Vec<Expr> = (0..b).map(|a| Expr::Axis(a as u8)).collect();
            for k in 0..m {
                let mut ii: Vec<Expr> = (0..q - 1).map(|a| Expr::Axis(a as u8)).collect();
                ii.push(Expr::i64(k as i64));
                index.push(normalize_index(cx.load(1, ii)?, data[b + k]));
            }
            index.extend((b + m..data.len()).map(|j| Expr::Axis((q - 1 + j - b - m) as u8)));
            Ok(Compute::Map(cx.load(0, index)?))
        }
        Op::ScatterAdd { axis } if cx.in_shape(1)?.iter().product::<i64>() > MAX_SCATTER_ADD_SCAN => {
            // Many index positions: scanning them all for every output element is quadratic, so
            // the updates are applied in one pass instead (a program).
            let ishape = cx.in_shape(1)?.to_vec();
            let ushape = cx.in_shape(2)?.to_vec();
            let us: Vec<Var> = ushape.iter().map(|_| vars.index()).collect();
            let q = ishape.len();
            let at = |range: std::ops::Range<usize>| us[range].iter().map(|v| Expr::Var(*v)).collect::<Vec<_>>();
            let idx = cx.load(1, at(*axis..axis + q))?;
            let mut target = at(0..*axis);
            target.push(normalize_index(idx, data[*axis]));
            target.extend(at(axis + q..us.len()));
            scatter_program(cx, &data, &ushape, &us, target, ScatterReduction::Add, vars)
        }
        Op::ScatterAdd { axis } => {
            let ishape = cx.in_shape(1)?.to_vec();
            let js: Vec<(Var, i64)> = ishape.iter().map(|&n| (vars.index(), n)).collect();
            let idx = cx.load(1, js.iter().map(|(v, _)| Expr::Var(*v)).collect())?;
            let hit = bin(BinaryOp::Eq, normalize_index(idx, data[*axis]), Expr::Axis(*axis as u8));
            let mut ui: Vec<Expr> = (0..*axis).map(|a| Expr::Axis(a as u8)).collect();
            ui.extend(js.iter().map(|(v, _)| Expr::Var(*v)));
            ui.extend((axis + 1..data.len()).map(|a| Expr::Axis(a as u8)));
            let upd = cx.load(2, ui)?;
            let dtype = cx.in_dtype(0)?;
            let own = cx.load(0, axes(rank))?;
            Ok(Compute::Map(if dtype == DType::Bool {
                let any = Expr::reduce(Combine::Sum, js, Expr::cast(DType::I64, Expr::and(hit, upd)));
                bin(BinaryOp::Or, own, bin(BinaryOp::Ne, any, Expr::i64(0)))
            } else {
                let sum = Expr::reduce(Combine::Sum, js, Expr::select(hit, upd, super::literal(0.0, dtype)));
                bin(BinaryOp::Add, own, sum)
            }))
        }
        Op::ScatterElements { axis, reduction } => {
            let ushape = cx.in_shape(2)?.to_vec();
            let us: Vec<Var> = ushape.iter().map(|_| vars.index()).collect();
            let at: Vec<Expr> = us.iter().map(|v| Expr::Var(*v)).collect();
            let mut target = at.clone();
            target[*axis] = normalize_index(cx.load(1, at.clone())?, data[*axis]);
            scatter_program(cx, &data, &ushape, &us, target, *reduction, vars)
        }
        Op::ScatterNd { reduction } => {
            let ishape = cx.in_shape(1)?.to_vec();
            let ushape = cx.in_shape(2)?.to_vec();
            let q = ishape.len();
            let m = ishape[q - 1] as usize;
            let us: Vec<Var> = ushape.iter().map(|_| vars.index()).collect();
            let mut target = Vec::new();
            for (k, &n) in data.iter().enumerate().take(m) {
                let mut ii: Vec<Expr> = us[..q - 1].iter().map(|v| Expr::Var(*v)).collect();
                ii.push(Expr::i64(k as i64));
                target.push(normalize_index(cx.load(1, ii)?, n));
            }
            target.extend(us[q - 1..].iter().map(|v| Expr::Var(*v)));
            scatter_program(cx, &data, &ushape, &us, target, *reduction, vars)
        }
        _ => Err(cx.err(format!("`{}` is not an indexing op", op.name()))),
    }
}

/// Above this many index positions, `scatter_add` is a one-pass program rather than a map that
/// scans every position for every output element.
const MAX_SCATTER_ADD_SCAN: i64 = 64;

/// `for p in data: out[p] = data[p]`, then `for u in updates: out[target] = f(out[target], u)`.
fn scatter_program(
    cx: &Ctx,
    data: &[i64],
    ushape: &[i64],
    us: &[Var],
    target: Vec<Expr>,
    reduction: ScatterReduction,
    vars: &mut VarGen,
) -> Result<Compute, LowerError> {
    let dtype = cx.in_dtype(0)?;
    let out = BufId(3);
    let ds: Vec<Var> = data.iter().map(|_| vars.index()).collect();
    let di: Vec<Expr> = ds.iter().map(|v| Expr::Var(*v)).collect();
    let copy = nest(&ds, data, vec![Stmt::Store { buf: out, index: di.clone(), value: cx.load(0, di)? }]);
    let at: Vec<Expr> = us.iter().map(|v| Expr::Var(*v)).collect();
    let upd = cx.load(2, at)?;
    let old = Expr::load(out, dtype, target.clone());
    let bool_op = |or: bool| if or { BinaryOp::Or } else { BinaryOp::And };
    let value = match reduction {
        ScatterReduction::None => upd,
        ScatterReduction::Add if dtype == DType::Bool => bin(bool_op(true), old, upd),
        ScatterReduction::Max if dtype == DType::Bool => bin(bool_op(true), old, upd),
        ScatterReduction::Mul if dtype == DType::Bool => bin(bool_op(false), old, upd),
        ScatterReduction::Min if dtype == DType::Bool => bin(bool_op(false), old, upd),
        ScatterReduction::Add => bin(BinaryOp::Add, old, upd),
        ScatterReduction::Mul => bin(BinaryOp::Mul, old, upd),
        ScatterReduction::Max => bin(BinaryOp::Max, old, upd),
        ScatterReduction::Min => bin(BinaryOp::Min, old, upd),
    };
    let apply = nest(us, ushape, vec![Stmt::Store { buf: out, index: target, value }]);
    Ok(Compute::Program(copy.into_iter().chain(apply).collect()))
}

/// Row-major loops over `shape` with the given variables around `body`.
fn nest(vars: &[Var], shape: &[i64], mut body: Vec<Stmt>) -> Vec<Stmt> {
    for (v, &n) in vars.iter().zip(shape).rev() {
        body = vec![Stmt::For { var: *v, extent: Expr::i64(n), kind: LoopKind::Serial, body }];
    }
    body
}
