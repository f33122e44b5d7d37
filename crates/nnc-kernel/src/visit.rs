//! Walks over scheduled kernels, shared by every pass and backend that reads them.

use crate::expr::Expr;
use crate::kernel::Stmt;
use std::collections::BTreeSet;

/// Calls `f` on every statement, outer before inner.
pub fn visit_stmts(stmts: &[Stmt], f: &mut impl FnMut(&Stmt)) {
    for s in stmts {
        f(s);
        match s {
            Stmt::For { body, .. } => visit_stmts(body, f),
            Stmt::If { then, els, .. } => {
                visit_stmts(then, f);
                visit_stmts(els, f);
            }
            _ => {}
        }
    }
}

/// Calls `f` on every expression a statement holds directly (loop extents, values, store
/// indices, conditions), for every statement, outer before inner. `f` walks into each
/// expression itself (with [`Expr::any`], say).
pub fn visit_exprs(stmts: &[Stmt], f: &mut impl FnMut(&Expr)) {
    visit_stmts(stmts, &mut |s| match s {
        Stmt::For { extent, .. } => f(extent),
        Stmt::Let { value, .. } | Stmt::Local { init: value, .. } | Stmt::Assign { value, .. } => f(value),
        Stmt::Store { index, value, .. } => {
            index.iter().for_each(&mut *f);
            f(value)
        }
        Stmt::If { cond, .. } => f(cond),
        Stmt::Barrier => {}
    })
}

/// The variables whose values depend on loaded data: defined (or assigned, or bounded, for a
/// loop counter) by an expression that loads, or reads such a variable. An index that reads one
/// of them, or loads, can hold any value, and a backend that bounds-checks such indices must
/// see through the variables that hold them.
pub fn data_dependent_vars(body: &[Stmt]) -> BTreeSet<u32> {
    let mut defs: Vec<(u32, Expr)> = Vec::new();
    visit_stmts(body, &mut |s| match s {
        Stmt::For { var, extent: e, .. }
        | Stmt::Let { var, value: e }
        | Stmt::Local { var, init: e }
        | Stmt::Assign { var, value: e } => defs.push((var.id, e.clone())),
        _ => {}
    });
    let mut set = BTreeSet::new();
    loop {
        let before = set.len();
        for (v, e) in &defs {
            if !set.contains(v) && depends_on_data(e, &set) {
                set.insert(*v);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Whether `e` loads, or reads a variable of `data` (see [`data_dependent_vars`]).
pub fn depends_on_data(e: &Expr, data: &BTreeSet<u32>) -> bool {
    e.any(&mut |x| match x {
        Expr::Load { .. } => true,
        Expr::Var(v) => data.contains(&v.id),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{BufId, Var};
    use nnc_ir::DType;

    #[test]
    fn data_dependence_flows_through_variables() {
        let v = |id| Var { id, dtype: DType::I64 };
        let load = Expr::load(BufId(0), DType::I64, vec![Expr::i64(0)]);
        let body = vec![
            Stmt::Local { var: v(1), init: Expr::i64(0) },
            Stmt::If { cond: Expr::bool(true), then: vec![Stmt::Assign { var: v(1), value: load }], els: vec![] },
            Stmt::Let { var: v(2), value: Expr::add_index(Expr::Var(v(1)), Expr::i64(1)) },
            Stmt::Let { var: v(3), value: Expr::i64(7) },
        ];
        let data = data_dependent_vars(&body);
        assert_eq!(data, [1, 2].into_iter().collect());
        assert!(depends_on_data(&Expr::Var(v(2)), &data) && !depends_on_data(&Expr::Var(v(3)), &data));
    }
}
