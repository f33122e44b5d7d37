//! Simplification of scheduled kernels with value ranges: index arithmetic that fusion composes
//! (a reshape of a transpose of a slice) leaves divisions, remainders and bounds checks that the
//! ranges of loop variables and thread ids decide. `(v / 4) * 2` with `v < 4` is `0`;
//! `(4 * i + j) / 4` with `j < 4` is `i`; `x >= 0` for a loop index is `true`.
//!
//! Every rewrite is exact for the values the ranges admit; ranges come from loop extents, the
//! launch (thread and workgroup ids) and `let`s of what those bound.

use nnc_ir::{BinaryOp, DType};
use nnc_kernel::expr::{Expr, Literal, Special};
use nnc_kernel::kernel::{Kernel, Stmt};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Inclusive bounds of an integer value.
type Range = (i64, i64);

struct Ranges<'a> {
    vars: BTreeMap<u32, Range>,
    launch: &'a nnc_kernel::kernel::Launch,
    /// `let`s of a variable, literal or thread id, propagated into their uses and dropped.
    copies: BTreeMap<u32, Expr>,
    /// `let`s of a multiple of another index (`j0 = tile * 32`), as (multiplier, index):
    /// divisions see through them (`(j0 + c) / 32` is `tile` for `c < 32`).
    multiples: BTreeMap<u32, (i64, Expr)>,
    /// Extents of the output axes (`Expr::Axis`) of an unscheduled map expression.
    axes: &'a [i64],
    /// Bounds that hold where the expression being simplified is evaluated, from the conditions
    /// around it: an `if`'s, a select's for its first side, a load's mask for its index
    /// (`p < 1600` there makes `p / 1600` zero). Pushed and popped as those are entered.
    facts: RefCell<Vec<(Expr, Range)>>,
}

impl Ranges<'_> {
    fn new<'a>(launch: &'a nnc_kernel::kernel::Launch, vars: BTreeMap<u32, Range>, axes: &'a [i64]) -> Ranges<'a> {
        Ranges {
            vars,
            launch,
            copies: BTreeMap::new(),
            multiples: BTreeMap::new(),
            axes,
            facts: RefCell::new(Vec::new()),
        }
    }

    /// `e`'s range from its parts, narrowed by the facts about it.
    fn of(&self, e: &Expr) -> Option<Range> {
        let mut range = self.of_parts(e);
        for (_, fact) in self.facts.borrow().iter().filter(|(x, _)| x == e) {
            let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
            range = Some((lo.max(fact.0), hi.min(fact.1)));
        }
        range
    }

    /// `f` with the facts `cond` states in force.
    fn under<T>(&self, cond: &Expr, f: impl FnOnce(&Self) -> T) -> T {
        let before = self.facts.borrow().len();
        facts_of(cond, &mut self.facts.borrow_mut());
        let out = f(self);
        self.facts.borrow_mut().truncate(before);
        out
    }

    fn of_parts(&self, e: &Expr) -> Option<Range> {
        match e {
            Expr::Lit(Literal::Int(v, _)) => Some((*v, *v)),
            Expr::Var(v) => self.vars.get(&v.id).copied(),
            Expr::Axis(a) => self.axes.get(*a as usize).filter(|&&n| n > 0).map(|&n| (0, n - 1)),
            Expr::Special(Special::ThreadId(a)) => Some((0, *self.launch.workgroup.get(*a as usize)? as i64 - 1)),
            Expr::Special(Special::GroupId(a)) => Some((0, *self.launch.grid.get(*a as usize)? as i64 - 1)),
            Expr::Binary(op, a, b) if e.dtype() == DType::I64 => {
                let (a, b) = (self.of(a)?, self.of(b)?);
                match op {
                    BinaryOp::Add => Some((a.0.checked_add(b.0)?, a.1.checked_add(b.1)?)),
                    BinaryOp::Sub => Some((a.0.checked_sub(b.1)?, a.1.checked_sub(b.0)?)),
                    BinaryOp::Mul => {
                        let c = [
                            a.0.checked_mul(b.0)?,
                            a.0.checked_mul(b.1)?,
                            a.1.checked_mul(b.0)?,
                            a.1.checked_mul(b.1)?,
                        ];
                        Some((*c.iter().min()?, *c.iter().max()?))
                    }
                    BinaryOp::Div if a.0 >= 0 && b.0 > 0 => Some((a.0 / b.1, a.1 / b.0)),
                    BinaryOp::Rem if a.0 >= 0 && b.0 > 0 => Some((0, a.1.min(b.1 - 1))),
                    BinaryOp::Max => Some((a.0.max(b.0), a.1.max(b.1))),
                    BinaryOp::Min => Some((a.0.min(b.0), a.1.min(b.1))),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn non_negative(&self, e: &Expr) -> bool {
        self.of(e).is_some_and(|r| r.0 >= 0)
    }
}

/// `e` as `sum(coefficient * term) + constant` over `i64` (terms are expressions that are not
/// sums or products by constants).
fn linear(e: &Expr) -> (Vec<(i64, Expr)>, i64) {
    match e {
        Expr::Lit(Literal::Int(v, DType::I64)) => (Vec::new(), *v),
        Expr::Binary(BinaryOp::Add, a, b) => {
            let (mut ta, ca) = linear(a);
            let (tb, cb) = linear(b);
            ta.extend(tb);
            (ta, ca.wrapping_add(cb))
        }
        Expr::Binary(BinaryOp::Mul, a, b) => match (a.as_int(), b.as_int()) {
            (_, Some(k)) => scale(linear(a), k),
            (Some(k), _) => scale(linear(b), k),
            _ => (vec![(1, e.clone())], 0),
        },
        _ => (vec![(1, e.clone())], 0),
    }
}

fn scale((terms, c): (Vec<(i64, Expr)>, i64), k: i64) -> (Vec<(i64, Expr)>, i64) {
    (terms.into_iter().map(|(m, t)| (m.wrapping_mul(k), t)).collect(), c.wrapping_mul(k))
}

fn rebuild_linear(terms: Vec<(i64, Expr)>, c: i64) -> Expr {
    let sum =
        terms.into_iter().fold(Expr::i64(0), |acc, (k, t)| Expr::add_index(acc, Expr::mul_index(t, Expr::i64(k))));
    Expr::add_index(sum, Expr::i64(c))
}

/// `(a / c, a % c)` simplified, for `c > 0` and `a` known non-negative in every term.
fn div_rem(a: &Expr, c: i64, ranges: &Ranges<'_>, want_div: bool) -> Option<Expr> {
    let (terms, constant) = linear(a);
    let terms: Vec<(i64, Expr)> = terms
        .into_iter()
        .map(|(k, t)| match &t {
            // Only where the multiple leaves the remainder alone (other terms stay as written).
            Expr::Var(v) => match ranges.multiples.get(&v.id) {
                Some((m, x)) if k.wrapping_mul(*m) % c == 0 => (k.wrapping_mul(*m), x.clone()),
                _ => (k, t),
            },
            _ => (k, t),
        })
        .collect();
    if constant < 0 || terms.iter().any(|(k, t)| *k < 0 || !ranges.non_negative(t)) {
        return None;
    }
    // Terms whose coefficient c divides leave the remainder alone.
    let (whole, rest): (Vec<_>, Vec<_>) = terms.into_iter().partition(|(k, _)| k % c == 0);
    let rest_expr = rebuild_linear(rest, constant % c);
    let quotient = rebuild_linear(whole.into_iter().map(|(k, t)| (k / c, t)).collect(), constant / c);
    let rest_range = ranges.of(&rest_expr)?;
    let rest_small = rest_range.0 >= 0 && rest_range.1 < c;
    Some(match (want_div, rest_small) {
        (true, true) => quotient,
        (true, false) => Expr::add_index(quotient, Expr::div_index(rest_expr, Expr::i64(c))),
        (false, true) => rest_expr,
        (false, false) => Expr::rem_index(rest_expr, Expr::i64(c)),
    })
}

/// The bounds a condition states: of each side compared with a constant in a conjunction of
/// integer comparisons (and of `x` where the side is `x + k`); none about values that load.
fn facts_of(cond: &Expr, out: &mut Vec<(Expr, Range)>) {
    fn push(a: &Expr, (lo, hi): Range, out: &mut Vec<(Expr, Range)>) {
        if a.any(&mut |x| matches!(x, Expr::Load { .. })) {
            return;
        }
        out.push((a.clone(), (lo, hi)));
        if let Expr::Binary(BinaryOp::Add, x, y) = a {
            let term = match (x.as_int(), y.as_int()) {
                (None, Some(k)) => Some((x, k)),
                (Some(k), None) => Some((y, k)),
                _ => None,
            };
            if let Some((x, k)) = term {
                push(x, (lo.saturating_sub(k), hi.saturating_sub(k)), out);
            }
        }
    }
    match cond {
        Expr::Binary(BinaryOp::And, a, b) => {
            facts_of(a, out);
            facts_of(b, out);
        }
        Expr::Binary(op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge), a, b)
            if a.dtype() == DType::I64 =>
        {
            let Some(k) = b.as_int() else { return };
            let range = match op {
                BinaryOp::Lt => (i64::MIN, k.saturating_sub(1)),
                BinaryOp::Le => (i64::MIN, k),
                BinaryOp::Gt => (k.saturating_add(1), i64::MAX),
                _ => (k, i64::MAX),
            };
            push(a, range, out);
        }
        _ => {}
    }
}

/// `e` simplified bottom-up: a load's index under the facts of its mask, a select's first side
/// under its condition's.
fn simplify_expr(e: Expr, ranges: &Ranges<'_>) -> Expr {
    let simplify = |e: Expr| simplify_expr(e, ranges);
    let boxed = |e: Box<Expr>| Box::new(simplify_expr(*e, ranges));
    let e = match e {
        Expr::Var(v) => {
            return match ranges.copies.get(&v.id) {
                Some(copy) => copy.clone(),
                // A variable with one value (a 1x1 convolution's window offsets) is that value.
                None => match ranges.vars.get(&v.id) {
                    Some(&(lo, hi)) if lo == hi && v.dtype == DType::I64 => Expr::i64(lo),
                    _ => Expr::Var(v),
                },
            };
        }
        Expr::Load { buf, dtype, index, mask: Some(m) } => {
            let m = simplify(*m);
            let index = ranges.under(&m, |r| index.into_iter().map(|i| simplify_expr(i, r)).collect());
            Expr::Load { buf, dtype, index, mask: Some(Box::new(m)) }
        }
        Expr::Load { buf, dtype, index, mask: None } => {
            Expr::Load { buf, dtype, index: index.into_iter().map(simplify).collect(), mask: None }
        }
        Expr::Select(c, a, b) => {
            let c = simplify(*c);
            let a = ranges.under(&c, |r| simplify_expr(*a, r));
            Expr::Select(Box::new(c), Box::new(a), boxed(b))
        }
        Expr::Unary(op, a) => Expr::Unary(op, boxed(a)),
        Expr::Binary(op, a, b) => Expr::Binary(op, boxed(a), boxed(b)),
        Expr::Cast(t, a) => Expr::Cast(t, boxed(a)),
        Expr::Reduce(r) => {
            let r = *r;
            Expr::Reduce(Box::new(nnc_kernel::expr::Reduction { body: simplify(r.body), ..r }))
        }
        leaf @ (Expr::Lit(_) | Expr::Axis(_) | Expr::Special(_)) => leaf,
    };
    simplify_node(e, ranges)
}

/// One rewrite step, on a node whose children are already simplified.
fn simplify_node(e: Expr, ranges: &Ranges<'_>) -> Expr {
    let int = e.dtype() == DType::I64;
    match e {
        Expr::Binary(op @ (BinaryOp::Div | BinaryOp::Rem), ref a, ref b) if int => {
            let Some(c) = b.as_int().filter(|&c| c > 0) else { return e };
            if ranges.of(a).is_some_and(|r| r.0 >= 0 && r.1 < c) {
                return if op == BinaryOp::Div { Expr::i64(0) } else { (**a).clone() };
            }
            div_rem(a, c, ranges, op == BinaryOp::Div).unwrap_or(e)
        }
        Expr::Binary(op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul), a, b) if int => match op {
            BinaryOp::Add => Expr::add_index(*a, *b),
            BinaryOp::Sub => Expr::sub_index(*a, *b),
            _ => Expr::mul_index(*a, *b),
        },
        Expr::Binary(op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge), ref a, ref b)
            if a.dtype() == DType::I64 =>
        {
            let (Some(x), Some(y)) = (ranges.of(a), ranges.of(b)) else { return e };
            let decided = match op {
                BinaryOp::Lt if x.1 < y.0 => Some(true),
                BinaryOp::Lt if x.0 >= y.1 => Some(false),
                BinaryOp::Le if x.1 <= y.0 => Some(true),
                BinaryOp::Le if x.0 > y.1 => Some(false),
                BinaryOp::Gt if x.0 > y.1 => Some(true),
                BinaryOp::Gt if x.1 <= y.0 => Some(false),
                BinaryOp::Ge if x.0 >= y.1 => Some(true),
                BinaryOp::Ge if x.1 < y.0 => Some(false),
                _ => None,
            };
            decided.map(Expr::bool).unwrap_or(e)
        }
        Expr::Binary(BinaryOp::And, a, b) => match (&*a, &*b) {
            (Expr::Lit(Literal::Bool(false)), _) | (_, Expr::Lit(Literal::Bool(false))) => Expr::bool(false),
            _ => Expr::and(*a, *b),
        },
        Expr::Binary(BinaryOp::Or, a, b) => match (&*a, &*b) {
            (Expr::Lit(Literal::Bool(true)), _) | (_, Expr::Lit(Literal::Bool(true))) => Expr::bool(true),
            (Expr::Lit(Literal::Bool(false)), _) => *b,
            (_, Expr::Lit(Literal::Bool(false))) => *a,
            _ => Expr::binary(BinaryOp::Or, *a, *b),
        },
        Expr::Select(c, a, b) => match *c {
            Expr::Lit(Literal::Bool(true)) => *a,
            Expr::Lit(Literal::Bool(false)) => *b,
            c => narrowed_select(c, *a, *b),
        },
        Expr::Load { buf, dtype, index, mask: Some(m) } => match *m {
            Expr::Lit(Literal::Bool(true)) => Expr::Load { buf, dtype, index, mask: None },
            m => Expr::Load { buf, dtype, index, mask: Some(Box::new(m)) },
        },
        e => e,
    }
}

/// `select(c, a, b)`, with a narrowing cast taken out of the select where one side narrows an
/// `f32` and the other is a constant of the narrow type: `select(c, u8(x), 128u8)` becomes
/// `u8(select(c, x, 128.0))` (the same value, NaN included: `u8(NaN)` is 0 on either side), which
/// vector code computes in `f32` lanes, narrowing once as it stores (a quantized, padded input).
fn narrowed_select(c: Expr, a: Expr, b: Expr) -> Expr {
    // The narrowed `f32` and the constant as an `f32`, whichever side each is on.
    let narrowed = |e: &Expr| match e {
        Expr::Cast(t @ (DType::U8 | DType::I8 | DType::U16 | DType::I16), x) if x.dtype() == DType::F32 => {
            Some((*t, (**x).clone()))
        }
        _ => None,
    };
    let widened = |k: &Expr, t: DType| match k {
        Expr::Lit(Literal::Int(v, d)) if *d == t => Some(Expr::Lit(Literal::Float(*v as f64, DType::F32))),
        _ => None,
    };
    let hoisted = match (narrowed(&a), narrowed(&b)) {
        (Some((t, x)), _) => widened(&b, t).map(|k| (t, x, k)),
        (_, Some((t, x))) => widened(&a, t).map(|k| (t, k, x)),
        _ => None,
    };
    match hoisted {
        Some((t, x, y)) => Expr::Cast(t, Box::new(Expr::Select(Box::new(c), Box::new(x), Box::new(y)))),
        None => Expr::Select(Box::new(c), Box::new(a), Box::new(b)),
    }
}

/// Simplifies every expression of `stmts`; removes loops of one iteration and branches whose
/// condition is decided.
fn simplify_stmts(stmts: Vec<Stmt>, ranges: &mut Ranges<'_>) -> Vec<Stmt> {
    let mut out = Vec::with_capacity(stmts.len());
    for s in stmts {
        match s {
            Stmt::For { var, extent, kind, body } => {
                let extent = simplify_expr(extent, ranges);
                match ranges.of(&extent) {
                    Some((_, 0)) | Some((_, i64::MIN..=-1)) => {}
                    Some((1, 1)) => {
                        // One iteration: the variable is 0.
                        ranges.copies.insert(var.id, Expr::i64(0));
                        out.extend(simplify_stmts(body, ranges));
                    }
                    range => {
                        let hi = range.map(|r| r.1 - 1).unwrap_or(i64::MAX);
                        ranges.vars.insert(var.id, (0, hi.max(0)));
                        let body = simplify_stmts(body, ranges);
                        out.push(Stmt::For { var, extent, kind, body });
                    }
                }
            }
            Stmt::Let { var, value } => {
                let value = simplify_expr(value, ranges);
                if matches!(value, Expr::Var(_) | Expr::Lit(_) | Expr::Special(_)) {
                    ranges.copies.insert(var.id, value);
                    continue;
                }
                if let Some(r) = ranges.of(&value) {
                    ranges.vars.insert(var.id, r);
                }
                // Only of an index that keeps its value where the `let` is used: loop variables,
                // thread ids and `let`s with ranges, no locals (assigned again) and no loads.
                let fixed = |x: &Expr| {
                    !x.any(&mut |e| {
                        matches!(e, Expr::Load { .. }) || matches!(e, Expr::Var(u) if !ranges.vars.contains_key(&u.id))
                    })
                };
                if let (terms, 0) = linear(&value) {
                    if let [(k, x)] = terms.as_slice() {
                        if *k > 1 && var.dtype == DType::I64 && fixed(x) {
                            ranges.multiples.insert(var.id, (*k, x.clone()));
                        }
                    }
                }
                out.push(Stmt::Let { var, value });
            }
            Stmt::Local { var, init } => out.push(Stmt::Local { var, init: simplify_expr(init, ranges) }),
            Stmt::Assign { var, value } => out.push(Stmt::Assign { var, value: simplify_expr(value, ranges) }),
            Stmt::Store { buf, index, value } => {
                let index = index.into_iter().map(|i| simplify_expr(i, ranges)).collect();
                out.push(Stmt::Store { buf, index, value: simplify_expr(value, ranges) });
            }
            Stmt::If { cond, then, els } => match simplify_expr(cond, ranges) {
                Expr::Lit(Literal::Bool(true)) => out.extend(simplify_stmts(then, ranges)),
                Expr::Lit(Literal::Bool(false)) => out.extend(simplify_stmts(els, ranges)),
                cond => {
                    let before = ranges.facts.get_mut().len();
                    facts_of(&cond, ranges.facts.get_mut());
                    let then = simplify_stmts(then, ranges);
                    ranges.facts.get_mut().truncate(before);
                    let els = simplify_stmts(els, ranges);
                    out.push(Stmt::If { cond, then, els });
                }
            },
            Stmt::Barrier => out.push(Stmt::Barrier),
        }
    }
    out
}

/// Simplifies a scheduled kernel in place.
pub fn simplify(kernel: &mut Kernel) {
    let mut ranges = Ranges::new(&kernel.launch, BTreeMap::new(), &[]);
    let body = std::mem::take(&mut kernel.body);
    kernel.body = simplify_stmts(body, &mut ranges);
}

/// Simplifies the expression of a fused map group, computing an output of `shape`, before it is
/// scheduled: the index arithmetic that reshapes and transposes compose (`(i * 32 + j) / 32`)
/// otherwise hides which output axes each factor of a contraction reads.
pub fn simplify_map(expr: Expr, shape: &[i64]) -> Expr {
    let mut vars = Vec::new();
    expr.any(&mut |e| {
        if let Expr::Reduce(r) = e {
            vars.extend(r.vars.iter().map(|(v, n)| (v.id, *n)));
        }
        false
    });
    simplify_with(expr, shape, &vars)
}

/// Simplifies an expression over output axes of extents `shape` in which each variable of
/// `vars` ranges over `0..extent`.
pub fn simplify_with(expr: Expr, shape: &[i64], vars: &[(u32, i64)]) -> Expr {
    let launch = nnc_kernel::kernel::Launch { grid: [1, 1, 1], workgroup: [1, 1, 1] };
    let vars = vars.iter().filter(|(_, n)| *n > 0).map(|&(v, n)| (v, (0, n - 1))).collect();
    let ranges = Ranges::new(&launch, vars, shape);
    simplify_expr(expr, &ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_kernel::kernel::Launch;

    fn ranges(vars: &[(u32, i64, i64)]) -> (BTreeMap<u32, Range>, Launch) {
        (vars.iter().map(|&(v, lo, hi)| (v, (lo, hi))).collect(), Launch { grid: [8, 1, 1], workgroup: [64, 1, 1] })
    }

    fn var(id: u32) -> Expr {
        Expr::Var(nnc_kernel::expr::Var { id, dtype: DType::I64 })
    }

    #[test]
    fn divisions_and_remainders_decided_by_ranges() {
        let (vars, launch) = ranges(&[(0, 0, 3), (1, 0, 9)]);
        let r = Ranges::new(&launch, vars, &[]);
        // (v0 / 4) * 2 with v0 < 4 is 0.
        let e = Expr::mul_index(Expr::div_index(var(0), Expr::i64(4)), Expr::i64(2));
        assert_eq!(simplify_expr(e, &r), Expr::i64(0));
        // (4 * v1 + v0) / 4 is v1, and % 4 is v0.
        let x = Expr::add_index(Expr::mul_index(var(1), Expr::i64(4)), var(0));
        assert_eq!(simplify_expr(Expr::div_index(x.clone(), Expr::i64(4)), &r), var(1));
        assert_eq!(simplify_expr(Expr::rem_index(x, Expr::i64(4)), &r), var(0));
        // tid.x < 64 always holds; v1 >= 0 too.
        let t = Expr::binary(BinaryOp::Lt, Expr::Special(Special::ThreadId(0)), Expr::i64(64));
        assert_eq!(simplify_expr(t, &r), Expr::bool(true));
        assert_eq!(simplify_expr(Expr::binary(BinaryOp::Ge, var(1), Expr::i64(0)), &r), Expr::bool(true));
        // Not decided: v1 < 5.
        let open = Expr::binary(BinaryOp::Lt, var(1), Expr::i64(5));
        assert_eq!(simplify_expr(open.clone(), &r), open);
    }

    #[test]
    fn divisions_see_through_a_let_of_a_multiple() {
        // let v2 = v1 * 32; (v2 + v0) / 32 is v1 and (v2 + v0) % 32 is v0 for v0 < 32 (a tile's
        // first column and a column within it, reading weights stored in 32-column panels).
        let (vars, launch) = ranges(&[(0, 0, 31), (1, 0, 9)]);
        let mut r = Ranges::new(&launch, vars, &[]);
        let v2 = nnc_kernel::expr::Var { id: 2, dtype: DType::I64 };
        let body = simplify_stmts(vec![Stmt::Let { var: v2, value: Expr::mul_index(var(1), Expr::i64(32)) }], &mut r);
        assert_eq!(body.len(), 1, "the let stays");
        let column = Expr::add_index(var(2), var(0));
        assert_eq!(simplify_expr(Expr::div_index(column.clone(), Expr::i64(32)), &r), var(1));
        assert_eq!(simplify_expr(Expr::rem_index(column.clone(), Expr::i64(32)), &r), var(0));
        // A divisor the multiple does not divide leaves the let as written.
        let by_7 = Expr::div_index(column, Expr::i64(7));
        assert_eq!(simplify_expr(by_7.clone(), &r), by_7);
        // A multiple of a value without a range (a local, which may be assigned again) is not
        // seen through.
        let v3 = nnc_kernel::expr::Var { id: 3, dtype: DType::I64 };
        simplify_stmts(vec![Stmt::Let { var: v3, value: Expr::mul_index(var(9), Expr::i64(32)) }], &mut r);
        let of_local = Expr::div_index(Expr::add_index(var(3), var(0)), Expr::i64(32));
        assert_ne!(simplify_expr(of_local, &r), var(9));
    }

    #[test]
    fn a_remainder_that_can_wrap_stays() {
        let (vars, launch) = ranges(&[(0, 0, 7)]);
        let r = Ranges::new(&launch, vars, &[]);
        let e = Expr::rem_index(Expr::add_index(var(0), Expr::i64(2)), Expr::i64(4));
        assert_eq!(simplify_expr(e.clone(), &r), e);
    }

    #[test]
    fn conditions_bound_what_they_guard_and_only_that() {
        // p = v0 + v1 with v0 < 2048, v1 < 4: `p / 1600` is 0 only where a mask says p < 1600.
        let (vars, launch) = ranges(&[(0, 0, 2047), (1, 0, 3), (2, 0, 31), (3, 0, 64)]);
        let r = Ranges::new(&launch, vars, &[]);
        let p = Expr::add_index(var(0), var(1));
        let inside = Expr::binary(BinaryOp::Lt, p.clone(), Expr::i64(1600));
        let load = |index: Expr, mask: Option<Expr>| Expr::Load {
            buf: nnc_kernel::expr::BufId(0),
            dtype: DType::F32,
            index: vec![index],
            mask: mask.map(Box::new),
        };
        let split = Expr::div_index(p.clone(), Expr::i64(1600));
        let masked = simplify_expr(load(split.clone(), Some(inside.clone())), &r);
        assert_eq!(masked, load(Expr::i64(0), Some(inside.clone())));
        // Unmasked, or on the other side of a select, nothing is known.
        assert_eq!(simplify_expr(load(split.clone(), None), &r), load(split.clone(), None));
        let chosen = Expr::select(inside.clone(), split.clone(), split.clone());
        assert_eq!(simplify_expr(chosen, &r), Expr::select(inside, Expr::i64(0), split));
        // `if (v3 + 32) <= 82`: v3 <= 50 there, so (v3 + v2) % 82 is v3 + v2.
        let wraps = Expr::rem_index(Expr::add_index(var(3), var(2)), Expr::i64(82));
        let store = |value: Expr| Stmt::Store { buf: nnc_kernel::expr::BufId(1), index: vec![Expr::i64(0)], value };
        let cond = Expr::binary(BinaryOp::Le, Expr::add_index(var(3), Expr::i64(32)), Expr::i64(82));
        let body =
            vec![Stmt::If { cond: cond.clone(), then: vec![store(wraps.clone())], els: vec![store(wraps.clone())] }];
        let mut r = Ranges::new(&launch, r.vars.clone(), &[]);
        let out = simplify_stmts(body, &mut r);
        let plain = Expr::add_index(var(3), var(2));
        assert_eq!(out, vec![Stmt::If { cond, then: vec![store(plain)], els: vec![store(wraps)] }]);
    }

    #[test]
    fn a_narrowing_cast_leaves_a_select_whose_other_side_is_a_narrow_constant() {
        let x =
            Expr::Load { buf: nnc_kernel::expr::BufId(0), dtype: DType::F32, index: vec![Expr::i64(0)], mask: None };
        let c = Expr::Binary(
            BinaryOp::Lt,
            Box::new(Expr::Var(nnc_kernel::expr::Var { id: 1, dtype: DType::I64 })),
            Box::new(Expr::i64(3)),
        );
        let narrow = Expr::Cast(DType::U8, Box::new(x.clone()));
        let pad = Expr::Lit(Literal::Int(128, DType::U8));
        let got = narrowed_select(c.clone(), narrow.clone(), pad.clone());
        assert_eq!(got.to_string(), "u8(select((v1 < 3), b0[0], 128.0))");
        let got = narrowed_select(c.clone(), pad, narrow.clone());
        assert_eq!(got.to_string(), "u8(select((v1 < 3), 128.0, b0[0]))");
        // A constant of another type, or a select of two casts, stays as it is.
        let wide = Expr::Lit(Literal::Int(128, DType::I32));
        assert!(matches!(narrowed_select(c.clone(), narrow.clone(), wide), Expr::Select(..)));
        assert!(matches!(narrowed_select(c, narrow.clone(), narrow), Expr::Select(..)));
    }
}
