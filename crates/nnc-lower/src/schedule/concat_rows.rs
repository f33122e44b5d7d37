//! Rows that concatenate: a CPU row whose elements choose their source by their position along
//! the row (`select(j < c, a, b)`, a concatenation along the last axis) runs as one loop per
//! source, each with its selects resolved, so each vector loads from one place instead of
//! every source with a per-lane choice.

use super::window_rows::map_exprs;
use nnc_ir::BinaryOp;
use nnc_kernel::expr::{Expr, Literal, Var};
use nnc_kernel::kernel::Stmt;

/// Pieces to split a row into beyond which it is not worth it (each piece is a loop).
const MAX_PIECES: usize = 64;

/// The row loop `for j < len` over `body` (lets and stores) as pieces `(start, end, body)`,
/// each body with the selects on `j < c` resolved for `start <= j < end`; `None` where no
/// select depends on `j` that way, or a piece would be shorter than `min_piece`.
pub(super) fn split_row(body: &[Stmt], j: Var, len: i64, min_piece: i64) -> Option<Vec<(i64, i64, Vec<Stmt>)>> {
    // `j` and the lets that copy it.
    let mut row = vec![j.id];
    for st in body {
        if let Stmt::Let { var, value: Expr::Var(v) } = st {
            if row.contains(&v.id) {
                row.push(var.id);
            }
        }
    }
    let mut cuts = vec![0, len];
    for st in body {
        let e = match st {
            Stmt::Let { value, .. } => value,
            Stmt::Store { value, .. } => value,
            _ => return None,
        };
        e.any(&mut |x| {
            cuts.extend(bound_of(x, &row).filter(|&c| c > 0 && c < len));
            false
        });
    }
    cuts.sort_unstable();
    cuts.dedup();
    let pieces: Vec<(i64, i64)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    if pieces.len() < 2 || pieces.len() > MAX_PIECES || pieces.iter().any(|&(s, e)| e - s < min_piece) {
        return None;
    }
    Some(pieces.into_iter().map(|(start, end)| (start, end, resolved(body, &row, start, end))).collect())
}

/// `c` where `e` is the condition `j < c`, `j` one of the variables `row` holds.
fn bound_of(e: &Expr, row: &[u32]) -> Option<i64> {
    match e {
        Expr::Binary(BinaryOp::Lt, a, b) => match (&**a, &**b) {
            (Expr::Var(v), Expr::Lit(Literal::Int(c, _))) if row.contains(&v.id) => Some(*c),
            _ => None,
        },
        _ => None,
    }
}

/// `body` with each `select(j < c, a, b)` replaced by the branch it takes for every `j` in
/// `start..end` (the cuts make that one branch); `row` holds `j` and its copies.
fn resolved(body: &[Stmt], row: &[u32], start: i64, end: i64) -> Vec<Stmt> {
    map_exprs(body, &|e: &Expr| {
        e.clone().rewrite(&mut |x| match x {
            Expr::Select(cond, a, b) => match bound_of(&cond, row) {
                Some(c) if end <= c => *a,
                Some(c) if start >= c => *b,
                _ => Expr::Select(cond, a, b),
            },
            x => x,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;
    use nnc_kernel::expr::BufId;

    fn var(id: u32) -> Var {
        Var { id, dtype: DType::I64 }
    }

    fn load(buf: u32, index: Expr) -> Expr {
        Expr::Load { buf: BufId(buf), dtype: DType::F32, index: vec![index], mask: None }
    }

    /// `out[j] = select(j < 64, a[j], b[j - 64])` through a copy of `j`, as rows are lowered.
    fn concatenating_row(split_at: i64) -> Vec<Stmt> {
        let (j, copy) = (var(3), var(4));
        let at = |v: Var| Expr::Var(v);
        let second = load(1, Expr::Binary(BinaryOp::Sub, Box::new(at(copy)), Box::new(Expr::i64(split_at))));
        let cond = Expr::Binary(BinaryOp::Lt, Box::new(at(copy)), Box::new(Expr::i64(split_at)));
        vec![
            Stmt::Let { var: copy, value: at(j) },
            Stmt::Store {
                buf: BufId(2),
                index: vec![at(copy)],
                value: Expr::Select(Box::new(cond), Box::new(load(0, at(copy))), Box::new(second)),
            },
        ]
    }

    fn loaded_buffers(body: &[Stmt]) -> Vec<u32> {
        let mut bufs = Vec::new();
        for st in body {
            if let Stmt::Store { value, .. } = st {
                value.any(&mut |e| {
                    if let Expr::Load { buf, .. } = e {
                        bufs.push(buf.0);
                    }
                    false
                });
            }
        }
        bufs
    }

    #[test]
    fn a_concatenating_row_splits_into_one_loop_per_source() {
        let pieces = split_row(&concatenating_row(64), var(3), 128, 16).expect("split");
        let spans: Vec<(i64, i64)> = pieces.iter().map(|(s, e, _)| (*s, *e)).collect();
        assert_eq!(spans, [(0, 64), (64, 128)]);
        assert_eq!(loaded_buffers(&pieces[0].2), [0]);
        assert_eq!(loaded_buffers(&pieces[1].2), [1]);
    }

    #[test]
    fn short_pieces_and_rows_without_choices_stay_whole() {
        assert!(split_row(&concatenating_row(8), var(3), 128, 16).is_none(), "a piece of 8 is shorter than 16");
        let plain =
            vec![Stmt::Store { buf: BufId(2), index: vec![Expr::Var(var(3))], value: load(0, Expr::Var(var(3))) }];
        assert!(split_row(&plain, var(3), 128, 16).is_none());
    }
}
