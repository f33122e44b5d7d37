//! Load masks of the CPU register tiles: the condition under which an epilogue uses its
//! contraction (the loads of rows it discards must not be made), and adding or dropping masks.

use nnc_kernel::expr::{canonical_key, Expr};

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
