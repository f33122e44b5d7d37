//! Load masks of the CPU register tiles: the condition under which an epilogue uses its
//! contraction (the loads of rows it discards must not be made), adding or dropping masks, and
//! the affine analysis that decides when a mask holds for a whole tile.

use nnc_ir::{BinaryOp, DType};
use nnc_kernel::expr::{canonical_key, Expr};
use std::collections::HashMap;

/// The condition under which `e` uses the reduction of key `key`, where selects guard it (a
/// fused `pad` computes the contraction on its border too, then selects 0 there; a fused
/// `concat` on the other operand's channels); `None` where it is used unconditionally (or the
/// structure is not a plain chain of guarding selects).
pub(super) fn reduction_guard(e: &Expr, key: &str) -> Option<Expr> {
    let holds = |x: &Expr| x.any(&mut |y| matches!(y, Expr::Reduce(r) if canonical_key(r) == key));
    match e {
        // Used on one side only: that side's condition (a fused `concat` takes its other
        // operand's channels on the other side).
        Expr::Select(c, t, f) if !holds(c) && holds(t) != holds(f) => {
            let (side, cond) =
                if holds(t) { (t, (**c).clone()) } else { (f, Expr::unary(nnc_ir::UnaryOp::Not, (**c).clone())) };
            Some(match reduction_guard(side, key) {
                Some(inner) => Expr::and(cond, inner),
                None => cond,
            })
        }
        Expr::Unary(_, a) | Expr::Cast(_, a) => reduction_guard(a, key),
        Expr::Binary(_, a, b) => match (holds(a), holds(b)) {
            (true, false) => reduction_guard(a, key),
            (false, true) => reduction_guard(b, key),
            _ => None,
        },
        _ => None,
    }
}

/// `e` with `cond` added to every load's mask: where it fails the load reads nothing (0).
pub(super) fn mask_loads(e: Expr, cond: &Expr) -> Expr {
    e.rewrite(&mut |x| match x {
        Expr::Load { buf, dtype, index, mask } => {
            let mask = Some(Box::new(match mask {
                Some(m) => Expr::and(*m, cond.clone()),
                None => cond.clone(),
            }));
            Expr::Load { buf, dtype, index, mask }
        }
        x => x,
    })
}

/// `e` with every load's mask dropped.
pub(super) fn strip_masks(e: Expr) -> Expr {
    e.rewrite(&mut |x| match x {
        Expr::Load { buf, dtype, index, .. } => Expr::Load { buf, dtype, index, mask: None },
        x => x,
    })
}

/// A condition free of the `inner` variables (id → extent) under which mask `m` holds for all
/// their values: `m` must be a conjunction of comparisons of expressions affine in them.
pub(super) fn always_holds(m: &Expr, inner: &HashMap<u32, i64>) -> Option<Expr> {
    match m {
        Expr::Lit(_) => Some(m.clone()),
        Expr::Binary(BinaryOp::And, a, b) => Some(Expr::and(always_holds(a, inner)?, always_holds(b, inner)?)),
        Expr::Binary(op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge), a, b)
            if a.dtype() == DType::I64 =>
        {
            // `a - b` at the inner variables' extreme that makes the comparison hardest.
            let mut terms = Vec::new();
            let c = affine(a, 1, &mut terms)? - affine(b, 1, &mut terms)?;
            let want_max = matches!(op, BinaryOp::Lt | BinaryOp::Le);
            let mut worst = Expr::i64(c);
            for (k, t) in terms {
                match &t {
                    Expr::Var(v) if inner.contains_key(&v.id) => {
                        if (k > 0) == want_max {
                            worst = Expr::add_index(worst, Expr::i64(k * (inner[&v.id] - 1)));
                        }
                    }
                    // Inner variables under a non-affine operation, or a loaded value (whose
                    // own mask the tile condition would not respect): no tile condition.
                    t if t.any(&mut |x| match x {
                        Expr::Var(v) => inner.contains_key(&v.id),
                        x => matches!(x, Expr::Load { .. }),
                    }) =>
                    {
                        return None
                    }
                    t => worst = Expr::add_index(worst, Expr::mul_index(t.clone(), Expr::i64(k))),
                }
            }
            Some(Expr::binary(*op, worst, Expr::i64(0)))
        }
        _ => None,
    }
}

/// `e` (times `k`) as a constant returned and `(coefficient, term)`s pushed to `terms`.
pub(super) fn affine(e: &Expr, k: i64, terms: &mut Vec<(i64, Expr)>) -> Option<i64> {
    match e {
        Expr::Lit(_) => Some(k.checked_mul(e.as_int()?)?),
        Expr::Binary(BinaryOp::Add, a, b) => affine(a, k, terms)?.checked_add(affine(b, k, terms)?),
        Expr::Binary(BinaryOp::Sub, a, b) => affine(a, k, terms)?.checked_add(affine(b, -k, terms)?),
        Expr::Binary(BinaryOp::Mul, a, b) if b.as_int().is_some() => affine(a, k.checked_mul(b.as_int()?)?, terms),
        Expr::Binary(BinaryOp::Mul, a, b) if a.as_int().is_some() => affine(b, k.checked_mul(a.as_int()?)?, terms),
        e => {
            terms.push((k, e.clone()));
            Some(0)
        }
    }
}

/// Whether variable `var` appears in a load's mask or a select's condition within `e`.
pub(super) fn bounds_a_mask(e: &Expr, var: u32) -> bool {
    let uses = |x: &Expr| x.any(&mut |y| matches!(y, Expr::Var(v) if v.id == var));
    e.any(&mut |x| match x {
        Expr::Load { mask: Some(m), .. } => uses(m),
        Expr::Select(c, _, _) => uses(c),
        _ => false,
    })
}
