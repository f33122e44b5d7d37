//! Reductions: `reduce_*`, `argmax`/`argmin`, `cumulative` and `topk`.
//!
//! - `reduce_<kind>` is one [`Expr::Reduce`] over fresh variables for the reduced axes; `mean`
//!   is the sum divided by the element count in the value's dtype; an integer mean (other than
//!   `u64`) sums in `i64` and truncates, as the interpreter divides the unwrapped sum; `f16` and
//!   `bf16` sums and means accumulate in `f32` and round once. An empty axis list is a copy.
//! - `argmax`/`argmin` are [`Combine::ArgMax`]/[`Combine::ArgMin`] over the axis (NaN wins, ties
//!   go to the first or, with `select_last`, the last position).
//! - `cumulative` is, per element, a reduction over the whole axis of
//!   `select(k in range, x[k], identity)` with the range `k <= i` (`<` when exclusive, `>=`/`>`
//!   when reversed): quadratic, but a per-element form that fusion can inline.
//! - `topk` has two results, so it is a [`Compute::Program`]: for every line along the axis and
//!   every element `i`, its rank is the number of elements that come before it (more extreme,
//!   NaN being the most extreme, or equal with a smaller index); elements of rank `< k` are
//!   stored at their rank in both results. Ranks are a permutation, so every result element is
//!   written once.

use super::{axes, bin, literal, Ctx, LowerError};
use nnc_ir::{ArgKind, BinaryOp, CumKind, DType, Op, ReduceKind, UnaryOp};
use nnc_kernel::expr::{BufId, Combine, Expr, VarGen};
use nnc_kernel::kernel::{Compute, LoopKind, Stmt};

pub(super) fn lower(cx: &Ctx, op: &Op, vars: &mut VarGen) -> Result<Compute, LowerError> {
    let x = cx.in_shape(0)?.to_vec();
    let dtype = cx.in_dtype(0)?;
    match op {
        Op::Reduce { kind, axes: red, keep_dims } => {
            if red.is_empty() {
                return Ok(Compute::Map(cx.load(0, axes(x.len()))?));
            }
            let mut index = Vec::new();
            let mut rvars = Vec::new();
            let mut out_axis = 0u8;
            for (a, &n) in x.iter().enumerate() {
                if red.contains(&a) {
                    let v = vars.index();
                    rvars.push((v, n));
                    index.push(Expr::Var(v));
                    if *keep_dims {
                        out_axis += 1;
                    }
                } else {
                    index.push(Expr::Axis(out_axis));
                    out_axis += 1;
                }
            }
            let combine = match kind {
                ReduceKind::Sum | ReduceKind::Mean => Combine::Sum,
                ReduceKind::Prod => Combine::Prod,
                ReduceKind::Max => Combine::Max,
                ReduceKind::Min => Combine::Min,
            };
            let count: i64 = rvars.iter().map(|&(_, n)| n).product();
            let term = cx.load(0, index)?;
            if *kind == ReduceKind::Mean && !dtype.is_float() && dtype != DType::U64 {
                // The interpreter divides the wide (`i64`) sum, so the mean of large values
                // does not wrap; the quotient lies between the extreme terms, so it fits.
                let sum = Expr::reduce(combine, rvars, Expr::cast(DType::I64, term));
                return Ok(Compute::Map(Expr::cast(dtype, bin(BinaryOp::Div, sum, Expr::i64(count)))));
            }
            if matches!(dtype, DType::F16 | DType::BF16) && combine == Combine::Sum {
                // A 16-bit accumulator stops growing (2048 + 1 == 2048 in f16): sum in f32, as
                // the interpreter sums in f64, and round once.
                let sum = Expr::reduce(combine, rvars, Expr::cast(DType::F32, term));
                let sum = if *kind == ReduceKind::Mean {
                    bin(BinaryOp::Div, sum, literal(count as f64, DType::F32))
                } else {
                    sum
                };
                return Ok(Compute::Map(Expr::cast(dtype, sum)));
            }
            let r = Expr::reduce(combine, rvars, term);
            Ok(Compute::Map(if *kind == ReduceKind::Mean {
                bin(BinaryOp::Div, r, literal(count as f64, dtype))
            } else {
                r
            }))
        }
        Op::ArgReduce { kind, axis, keep_dims, select_last } => {
            let v = vars.index();
            let mut index = Vec::new();
            let mut out_axis = 0u8;
            for a in 0..x.len() {
                if a == *axis {
                    index.push(Expr::Var(v));
                    if *keep_dims {
                        out_axis += 1;
                    }
                } else {
                    index.push(Expr::Axis(out_axis));
                    out_axis += 1;
                }
            }
            let combine = match kind {
                ArgKind::Max => Combine::ArgMax { select_last: *select_last },
                ArgKind::Min => Combine::ArgMin { select_last: *select_last },
            };
            Ok(Compute::Map(Expr::reduce(combine, vec![(v, x[*axis])], cx.load(0, index)?)))
        }
        Op::Cumulative { axis, kind, exclusive, reverse } => {
            let v = vars.index();
            let mut index = axes(x.len());
            index[*axis] = Expr::Var(v);
            let cmp = match (*reverse, *exclusive) {
                (false, false) => BinaryOp::Le,
                (false, true) => BinaryOp::Lt,
                (true, false) => BinaryOp::Ge,
                (true, true) => BinaryOp::Gt,
            };
            let inside = bin(cmp, Expr::Var(v), Expr::Axis(*axis as u8));
            let (combine, identity) = match kind {
                CumKind::Sum => (Combine::Sum, 0.0),
                CumKind::Prod => (Combine::Prod, 1.0),
            };
            let body = Expr::select(inside, cx.load(0, index)?, literal(identity, dtype));
            Ok(Compute::Map(Expr::reduce(combine, vec![(v, x[*axis])], body)))
        }
        Op::TopK { axis, k, largest } => topk(cx, &x, dtype, *axis, *k as i64, *largest, vars),
        _ => Err(cx.err(format!("`{}` is not a reduction", op.name()))),
    }
}

/// `a` comes before `b` in `topk` order: more extreme (NaN most of all), never on ties.
fn more_extreme(a: Expr, b: Expr, dtype: DType, largest: bool) -> Expr {
    let cmp = bin(if largest { BinaryOp::Gt } else { BinaryOp::Lt }, a.clone(), b.clone());
    if !dtype.is_float() {
        return cmp;
    }
    let nan_a = Expr::unary(UnaryOp::IsNan, a);
    let not_nan_b = Expr::unary(UnaryOp::Not, Expr::unary(UnaryOp::IsNan, b));
    bin(BinaryOp::Or, cmp, bin(BinaryOp::And, nan_a, not_nan_b))
}

/// `a` and `b` tie in `topk` order (equal, or both NaN).
fn ties(a: Expr, b: Expr, dtype: DType) -> Expr {
    let eq = bin(BinaryOp::Eq, a.clone(), b.clone());
    if !dtype.is_float() {
        return eq;
    }
    bin(BinaryOp::Or, eq, bin(BinaryOp::And, Expr::unary(UnaryOp::IsNan, a), Expr::unary(UnaryOp::IsNan, b)))
}

fn topk(
    cx: &Ctx,
    x: &[i64],
    dtype: DType,
    axis: usize,
    k: i64,
    largest: bool,
    vars: &mut VarGen,
) -> Result<Compute, LowerError> {
    let n = x[axis];
    if k > n {
        return Err(cx.err(format!("k = {k} is larger than axis {axis} (length {n})")));
    }
    let outer: Vec<_> = (0..x.len()).map(|_| vars.index()).collect();
    let (i, u, xi, rank) = (vars.index(), vars.index(), vars.fresh(dtype), vars.index());
    let at = |pos: Expr| -> Vec<Expr> {
        outer.iter().enumerate().map(|(a, v)| if a == axis { pos.clone() } else { Expr::Var(*v) }).collect()
    };
    let xu = cx.load(0, at(Expr::Var(u)))?;
    let before = bin(
        BinaryOp::Or,
        more_extreme(xu.clone(), Expr::Var(xi), dtype, largest),
        bin(BinaryOp::And, ties(xu, Expr::Var(xi), dtype), bin(BinaryOp::Lt, Expr::Var(u), Expr::Var(i))),
    );
    let out_values = BufId(1);
    let out_indices = BufId(2);
    let mut body = vec![
        Stmt::Let { var: xi, value: cx.load(0, at(Expr::Var(i)))? },
        Stmt::Local { var: rank, init: Expr::i64(0) },
        Stmt::For {
            var: u,
            extent: Expr::i64(n),
            kind: LoopKind::Serial,
            body: vec![Stmt::If {
                cond: before,
                then: vec![Stmt::Assign { var: rank, value: Expr::add_index(Expr::Var(rank), Expr::i64(1)) }],
                els: vec![],
            }],
        },
        Stmt::If {
            cond: bin(BinaryOp::Lt, Expr::Var(rank), Expr::i64(k)),
            then: vec![
                Stmt::Store { buf: out_values, index: at(Expr::Var(rank)), value: Expr::Var(xi) },
                Stmt::Store { buf: out_indices, index: at(Expr::Var(rank)), value: Expr::Var(i) },
            ],
            els: vec![],
        },
    ];
    body = vec![Stmt::For { var: i, extent: Expr::i64(n), kind: LoopKind::Serial, body }];
    for (a, v) in outer.iter().enumerate().rev() {
        if a != axis {
            body = vec![Stmt::For { var: *v, extent: Expr::i64(x[a]), kind: LoopKind::Serial, body }];
        }
    }
    Ok(Compute::Program(body))
}
