//! Walks over scheduled kernels, shared by every pass and backend that reads them.

use crate::kernel::Stmt;

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
