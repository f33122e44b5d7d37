//! What an expression costs as the scheduler runs it: how often each node runs, the elements
//! it reads from each buffer, and its floating-point work. Fusion prices its decisions with
//! these, and [`crate::stats`] reports them.

use crate::expr::{BufId, Expr};
use std::collections::BTreeMap;

/// The distinct program buffers `e` loads, in first-load order.
pub fn collect_loads(e: &Expr, out: &mut Vec<BufId>) {
    e.any(&mut |x| {
        if let Expr::Load { buf, .. } = x {
            if !out.contains(buf) {
                out.push(*buf);
            }
        }
        false
    });
}

/// Walks an expression counting how often each node runs, the way the scheduler emits it:
/// every output element is computed by its own invocation (or loop iteration); a reduction
/// outside any other is computed once per distinct value of the axes it depends on (a row's
/// reductions are shared by the row); a reduction inside another runs for each element and
/// each value of the enclosing variables it depends on (it is hoisted out of the loops of the
/// others).
struct Counter<'a> {
    axes: &'a [i64],
    /// Extents of the enclosing reductions' variables.
    vars: Vec<(u32, i64)>,
    elements: f64,
    /// Reductions outside any other counted so far (by [`crate::expr::canonical_key`]): an
    /// equal one is computed once (an activation reading a convolution twice, as SiLU does).
    counted: Vec<String>,
}

impl Counter<'_> {
    fn new(axes: &[i64]) -> Counter<'_> {
        Counter {
            axes,
            vars: Vec::new(),
            elements: axes.iter().map(|&d| d as f64).product::<f64>().max(1.0),
            counted: Vec::new(),
        }
    }

    /// The product of the extents of the axes and the enclosing reductions' variables that
    /// `exprs` depend on.
    fn distinct(&self, exprs: &[&Expr]) -> f64 {
        self.distinct_from(exprs, None, 0)
    }

    /// As [`Counter::distinct`], counting only the variables from `vars[first_var..]`, and
    /// with `base` in place of the axes if given.
    fn distinct_from(&self, exprs: &[&Expr], base: Option<f64>, first_var: usize) -> f64 {
        let mut axes = vec![false; self.axes.len()];
        let mut vars: Vec<u32> = Vec::new();
        for e in exprs {
            e.any(&mut |x| {
                match x {
                    Expr::Axis(a) => {
                        if let Some(u) = axes.get_mut(*a as usize) {
                            *u = true;
                        }
                    }
                    Expr::Var(v) if !vars.contains(&v.id) => vars.push(v.id),
                    _ => {}
                }
                false
            });
        }
        let a: f64 = match base {
            Some(b) => b,
            None => self.axes.iter().zip(&axes).filter(|(_, &u)| u).map(|(&n, _)| n as f64).product(),
        };
        let v: f64 =
            self.vars[first_var..].iter().filter(|(id, _)| vars.contains(id)).map(|&(_, n)| n as f64).product();
        a * v
    }

    /// Calls `f(node, runs)` for every node of `e` outside any reduction, where a node runs once
    /// per distinct value of the axes it depends on (the scheduler hoists what a loop does not
    /// change out of it); returns the axes `e` depends on, as a bit set.
    fn walk_outside(&mut self, e: &Expr, f: &mut impl FnMut(&Expr, f64)) -> u64 {
        let mask = match e {
            Expr::Axis(a) => 1u64.checked_shl(*a as u32).unwrap_or(u64::MAX),
            Expr::Reduce(r) => {
                // Counted by `walk` (once per distinct value of the axes its body reads), and
                // once for all its copies.
                let key = crate::expr::canonical_key(r);
                let first = !self.counted.contains(&key);
                let mut mask = 0;
                e.any(&mut |x| {
                    if let Expr::Axis(a) = x {
                        mask |= 1u64.checked_shl(*a as u32).unwrap_or(u64::MAX);
                    }
                    false
                });
                if first {
                    self.counted.push(key);
                    self.walk(e, self.elements, None, f);
                }
                return mask;
            }
            _ => {
                let mut mask = 0;
                e.for_each_child(|c| mask |= self.walk_outside(c, f));
                mask
            }
        };
        let runs: f64 =
            self.axes.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, &n)| n as f64).product();
        f(e, runs);
        mask
    }

    /// Calls `f(node, runs)` for every node of `e`, which runs `runs` times. `enclosing` is the
    /// innermost enclosing reduction: how many times it is started and where its variables
    /// begin in `self.vars`.
    fn walk(&mut self, e: &Expr, runs: f64, enclosing: Option<(f64, usize)>, f: &mut impl FnMut(&Expr, f64)) {
        match e {
            Expr::Reduce(r) => {
                let own: f64 = r.vars.iter().map(|(_, n)| *n as f64).product();
                // Outside any reduction: once per distinct value of the axes it reads (a row's
                // reductions are shared by the row). Inside one: hoisted out of the enclosing
                // loops it does not depend on, so once per start of the enclosing reduction and
                // value of the enclosing variables it reads.
                let distinct = match enclosing {
                    None => self.distinct(&[&r.body]),
                    Some((starts, first)) => self.distinct_from(&[&r.body], Some(starts), first),
                };
                let starts = distinct.min(runs.max(1.0)).max(1.0);
                f(e, starts * own);
                let first = self.vars.len();
                for (v, n) in &r.vars {
                    self.vars.push((v.id, *n));
                }
                self.walk(&r.body, starts * own, Some((starts, first)), f);
                self.vars.truncate(first);
            }
            _ => {
                f(e, runs);
                e.for_each_child(|c| self.walk(c, runs, enclosing, f));
            }
        }
    }
}

/// For each buffer `e` loads, how many elements its loads can ask for: per load site, the
/// product of the extents of the axes and reduction variables its index depends on, summed over
/// sites (an upper bound on the elements read).
pub fn elements_read(e: &Expr, shape: &[i64]) -> BTreeMap<BufId, f64> {
    fn go(e: &Expr, counter: &mut Counter<'_>, reads: &mut BTreeMap<BufId, f64>) {
        match e {
            Expr::Reduce(r) => {
                for (v, n) in &r.vars {
                    counter.vars.push((v.id, *n));
                }
                go(&r.body, counter, reads);
                counter.vars.truncate(counter.vars.len() - r.vars.len());
            }
            Expr::Load { buf, index, mask, .. } => {
                let mut parts: Vec<&Expr> = index.iter().collect();
                parts.extend(mask.as_deref());
                *reads.entry(*buf).or_default() += counter.distinct(&parts);
                e.for_each_child(|c| go(c, counter, reads));
            }
            _ => e.for_each_child(|c| go(c, counter, reads)),
        }
    }
    let mut reads = BTreeMap::new();
    go(e, &mut Counter::new(shape), &mut reads);
    reads
}

/// Floating-point operations per element of `e` over `shape` (arithmetic on floating-point
/// values, and one per reduction step), with each reduction counted as the scheduler runs it
/// (see [`Counter`]). Loads are memory traffic, and integer and boolean arithmetic is index
/// computation: neither is counted.
pub fn flops_per_element(e: &Expr, shape: &[i64]) -> f64 {
    weighted_per_element(e, shape, &|x| if is_float_work(x) { 1.0 } else { 0.0 })
}

/// As [`flops_per_element`], with each operation priced at what it costs relative to an add or
/// a multiply ([`relative_cost`]): what fusion weighs recomputation by, where a `log` recomputed
/// for every output channel is not one operation but twenty.
pub fn work_per_element(e: &Expr, shape: &[i64]) -> f64 {
    weighted_per_element(e, shape, &|x| if is_float_work(x) { relative_cost(x) } else { 0.0 })
}

/// How many times per element of `shape` the loads of `buf` in `e` run, counted as
/// [`flops_per_element`] counts operations: what a value inlined there would be evaluated.
pub fn loads_per_element(e: &Expr, shape: &[i64], buf: BufId) -> f64 {
    weighted_per_element(e, shape, &|x| if matches!(x, Expr::Load { buf: b, .. } if *b == buf) { 1.0 } else { 0.0 })
}

/// Whether `op` is a transcendental function: on floats, far costlier than an add (see
/// [`relative_cost`]).
pub fn is_transcendental(op: nnc_ir::UnaryOp) -> bool {
    use nnc_ir::UnaryOp::*;
    matches!(
        op,
        Exp | Log | Sigmoid | Tanh | Erf | Sin | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Asinh | Acosh | Atanh
    )
}

/// What one evaluation of node `e` costs in adds or multiplies: the common transcendentals
/// with vector forms on the CPU (`exp`, `log`, `sigmoid`, `tanh`, `erf`) about 20, the rest (a
/// call per lane on the CPU) about 40, as `pow` and a floating-point remainder; division and
/// square roots about 4 (their throughput on current CPUs and GPUs); everything else 1.
pub fn relative_cost(e: &Expr) -> f64 {
    use nnc_ir::{BinaryOp, UnaryOp};
    match e {
        Expr::Unary(UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Erf, _) => 20.0,
        Expr::Unary(op, _) if is_transcendental(*op) => 40.0,
        Expr::Unary(UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Reciprocal, _) => 4.0,
        Expr::Binary(BinaryOp::Pow | BinaryOp::Rem, ..) => 40.0,
        Expr::Binary(BinaryOp::Div, ..) => 4.0,
        _ => 1.0,
    }
}

/// Whether node `x` is floating-point work: arithmetic on floating-point values, or a reduction
/// of them (loads are memory traffic, integer and boolean arithmetic index computation).
fn is_float_work(x: &Expr) -> bool {
    match x {
        Expr::Lit(_) | Expr::Var(_) | Expr::Axis(_) | Expr::Special(_) | Expr::Load { .. } => false,
        Expr::Reduce(r) => r.body.dtype().is_float(),
        Expr::Unary(_, a) | Expr::Binary(_, a, _) | Expr::Select(_, a, _) => a.dtype().is_float(),
        Expr::Cast(to, a) => to.is_float() || a.dtype().is_float(),
    }
}

/// The per-element sum of `weight(node)` over the nodes of `e`, each counted as often as the
/// scheduler runs it.
fn weighted_per_element(e: &Expr, shape: &[i64], weight: &dyn Fn(&Expr) -> f64) -> f64 {
    let mut counter = Counter::new(shape);
    let elements = counter.elements;
    let mut total = 0.0;
    counter.walk_outside(e, &mut |x, runs| total += runs * weight(x));
    total / elements
}
