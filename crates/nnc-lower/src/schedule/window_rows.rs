//! Vector code for CPU rows whose elements each reduce a window of their own (max and average
//! pooling, depthwise convolutions, a softmax over a short axis and what reduces it): the row
//! loop is cut into chunks of one or two vectors, and the loop over a chunk's elements is moved
//! inside the window loops (outer-loop vectorization). Each element's accumulator (and each
//! binding that reads one) becomes a lane of a private buffer that the code generators keep in
//! registers, so every window step is one vector operation over the chunk instead of a scalar
//! loop per element.
//!
//! This is exact: the elements of a row are independent (each reads its own window and writes
//! its own output), the window loops' extents do not depend on the element, and each
//! element's accumulator sees its window steps in the original order. Chunks clear of every
//! bounds check (a pooling window inside the unpadded input) run without the checks; the
//! elements past the last whole chunk are covered by one more chunk that ends at the row's end.

use super::always_holds;
use nnc_ir::{BinaryOp, DType};
use nnc_kernel::expr::{BufId, Expr, Var, VarGen};
use nnc_kernel::kernel::{Access, Buffer, LoopKind, Space, Stmt};
use std::collections::{HashMap, HashSet};

/// The loop over a row's `len` elements (variable `j`, body `body`) as chunks of vector code,
/// with new private buffers appended to `buffers`; `None` where the body is not of that shape
/// (no window loop, a branch, an accumulator or a binding reading one that is not `f32`), and
/// the caller keeps its scalar loop.
pub(super) fn vectorize_window_row(
    body: &[Stmt],
    j: Var,
    len: i64,
    lanes: u32,
    vars: &mut VarGen,
    buffers: &mut Vec<Buffer>,
) -> Option<Vec<Stmt>> {
    let lanes_i = lanes as i64;
    let mut locals = Vec::new();
    if lanes < 2 || len < lanes_i || !distributable(body, &mut locals, &mut false)? {
        return None;
    }
    // Two vectors a chunk (two independent chains of window steps) where the row has them.
    let width = if len >= 2 * lanes_i { 2 * lanes_i } else { lanes_i };
    // Bindings that read an accumulator (softmax's `exp(x - max) / sum` inside a weighted sum)
    // depend on where they stand among its updates: each becomes a private buffer as well.
    let mut expanded: HashSet<u32> = locals.iter().map(|v: &Var| v.id).collect();
    expand_bindings(body, &mut expanded, &mut locals)?;
    let accumulators: HashMap<u32, BufId> = locals
        .iter()
        .map(|v| {
            buffers.push(Buffer {
                name: "window_acc".into(),
                dtype: DType::F32,
                shape: vec![width],
                space: Space::Private,
                access: Access::ReadWrite,
            });
            (v.id, BufId(buffers.len() as u32 - 1))
        })
        .collect();
    let chunk = vars.index();
    let whole = len / width;
    let mut out = vec![Stmt::For {
        var: chunk,
        extent: Expr::i64(whole),
        kind: LoopKind::Serial,
        body: chunk_body(
            body,
            j,
            Expr::mul_index(Expr::Var(chunk), Expr::i64(width)),
            width,
            lanes,
            &accumulators,
            vars,
        ),
    }];
    // The elements after the last whole chunk: one more chunk, ending at the row's end. It
    // computes some elements again, to the same values (they depend on their windows only,
    // and the memory plan never lets a kernel's output share memory with what it reads).
    if whole * width < len {
        let last = chunk_body(body, j, Expr::i64(len - width), width, lanes, &accumulators, vars);
        out.extend(copy_stmts(&last, &mut HashMap::new(), vars));
    }
    Some(out)
}

/// One chunk of `width` elements from `start`: vector code over its lanes, and a copy of it
/// without bounds checks for chunks clear of them.
fn chunk_body(
    body: &[Stmt],
    j: Var,
    start: Expr,
    width: i64,
    lanes: u32,
    accumulators: &HashMap<u32, BufId>,
    vars: &mut VarGen,
) -> Vec<Stmt> {
    let vectors = Chunk { j, start: &start, width, lanes, accumulators };
    let checked = vectors.emit(body, &[], vars);
    match interior(body, j, &start, width, vars) {
        Some((cond, checks)) => {
            // A second copy of the loops, under fresh variables.
            let clear = vectors.emit(&strip_checks(body, &checks), &[], vars);
            let clear = copy_stmts(&clear, &mut HashMap::new(), vars);
            vec![Stmt::If { cond, then: clear, els: checked }]
        }
        None => checked,
    }
}

/// Whether `body` is bindings, `f32` accumulators, assignments, stores and loops of constant
/// extent (at least one, `looped`), with the accumulators collected; `None` for anything else.
fn distributable(body: &[Stmt], locals: &mut Vec<Var>, looped: &mut bool) -> Option<bool> {
    for s in body {
        match s {
            Stmt::Let { .. } | Stmt::Assign { .. } | Stmt::Store { .. } => {}
            Stmt::Local { var, .. } if var.dtype == DType::F32 => locals.push(*var),
            Stmt::For { extent, kind: LoopKind::Serial | LoopKind::Unroll, body, .. } if extent.as_int().is_some() => {
                *looped = true;
                distributable(body, locals, looped)?;
            }
            _ => return None,
        }
    }
    Some(*looped)
}

/// Adds to `expanded` (and to `vars`, in program order) every binding of `body` that reads an
/// expanded variable; `None` where such a binding is not `f32` (no vector lanes for it).
fn expand_bindings(body: &[Stmt], expanded: &mut HashSet<u32>, vars: &mut Vec<Var>) -> Option<()> {
    let mut ok = true;
    nnc_kernel::visit::visit_stmts(body, &mut |s| {
        if let Stmt::Let { var, value } = s {
            if value.any(&mut |x| matches!(x, Expr::Var(v) if expanded.contains(&v.id))) {
                ok &= var.dtype == DType::F32;
                expanded.insert(var.id);
                vars.push(*var);
            }
        }
    });
    ok.then_some(())
}

/// How the statements of one chunk are emitted.
struct Chunk<'a> {
    /// The row's element variable, `start + lane` in a chunk.
    j: Var,
    start: &'a Expr,
    width: i64,
    lanes: u32,
    /// Each accumulator's (and each binding's that reads one) private buffer, one lane per
    /// element of the chunk.
    accumulators: &'a HashMap<u32, BufId>,
}

impl Chunk<'_> {
    /// `body` with its loops kept and each run of other statements between them made one
    /// vector loop over the chunk, preceded by copies of the bindings in scope (`scope`).
    fn emit(&self, body: &[Stmt], scope: &[Stmt], vars: &mut VarGen) -> Vec<Stmt> {
        let mut scope = scope.to_vec();
        let mut out = Vec::new();
        let mut run = Vec::new();
        for s in body {
            match s {
                Stmt::Let { var, .. } if !self.accumulators.contains_key(&var.id) => scope.push(s.clone()),
                Stmt::For { var, extent, kind, body } => {
                    self.flush(&mut run, &scope, &mut out, vars);
                    let body = self.emit(body, &scope, vars);
                    out.push(Stmt::For { var: *var, extent: extent.clone(), kind: *kind, body });
                }
                s => run.push(s.clone()),
            }
        }
        self.flush(&mut run, &scope, &mut out, vars);
        out
    }

    fn flush(&self, run: &mut Vec<Stmt>, scope: &[Stmt], out: &mut Vec<Stmt>, vars: &mut VarGen) {
        if run.is_empty() {
            return;
        }
        let lane = vars.index();
        let at = vec![Expr::Var(lane)];
        let run: Vec<Stmt> = run
            .drain(..)
            .map(|s| match s {
                Stmt::Local { var, init: value } | Stmt::Assign { var, value } | Stmt::Let { var, value } => {
                    Stmt::Store { buf: self.accumulators[&var.id], index: at.clone(), value }
                }
                s => s,
            })
            .collect();
        let straight: Vec<Stmt> = bindings_read(scope, &run).into_iter().chain(run).collect();
        let mut renamed: HashMap<u32, Expr> =
            self.accumulators.iter().map(|(&v, &b)| (v, Expr::load(b, DType::F32, at.clone()))).collect();
        renamed.insert(self.j.id, Expr::add_index(self.start.clone(), Expr::Var(lane)));
        let body = copy_stmts(&straight, &mut renamed, vars);
        out.push(Stmt::For { var: lane, extent: Expr::i64(self.width), kind: LoopKind::Vector(self.lanes), body });
    }
}

/// The bindings of `scope` (in order) that `stmts` read, directly or through later bindings.
fn bindings_read(scope: &[Stmt], stmts: &[Stmt]) -> Vec<Stmt> {
    fn note(e: &Expr, read: &mut HashSet<u32>) {
        e.any(&mut |x| {
            if let Expr::Var(v) = x {
                read.insert(v.id);
            }
            false
        });
    }
    let mut read = HashSet::new();
    nnc_kernel::visit::visit_exprs(stmts, &mut |e| note(e, &mut read));
    let mut kept: Vec<Stmt> = Vec::new();
    for s in scope.iter().rev() {
        if let Stmt::Let { var, value } = s {
            if read.contains(&var.id) {
                note(value, &mut read);
                kept.push(s.clone());
            }
        }
    }
    kept.reverse();
    kept
}

/// A condition on the chunk (`j = start + lane`, lane below `width`) under which every bounds
/// check of `body` holds for all its lanes and window steps, with those checks (load masks, and
/// selects on index comparisons); `None` where there are none or one cannot be bounded so (it
/// reads an accumulator, or is not affine in the loop variables).
fn interior(body: &[Stmt], j: Var, start: &Expr, width: i64, vars: &mut VarGen) -> Option<(Expr, Vec<Expr>)> {
    let mut lets = HashMap::new();
    let mut locals = HashSet::new();
    let mut inner = HashMap::new();
    nnc_kernel::visit::visit_stmts(body, &mut |s| match s {
        Stmt::Let { var, value } => {
            lets.insert(var.id, value.clone());
        }
        Stmt::Local { var, .. } => {
            locals.insert(var.id);
        }
        Stmt::For { var, extent, .. } => {
            inner.insert(var.id, extent.as_int().unwrap_or(i64::MAX));
        }
        _ => {}
    });
    let mut checks = Vec::new();
    nnc_kernel::visit::visit_exprs(body, &mut |e| {
        e.any(&mut |x| {
            match x {
                Expr::Load { mask: Some(m), .. } => checks.push((**m).clone()),
                Expr::Select(c, _, _) if is_index_check(c) => checks.push((**c).clone()),
                _ => {}
            }
            false
        });
    });
    // The bindings a check reads, by their values (they are pure, and each binds once).
    let inline = |c: &Expr| {
        let mut c = c.clone();
        while c.any(&mut |x| matches!(x, Expr::Var(v) if lets.contains_key(&v.id))) {
            c = c.rewrite(&mut |x| match x {
                Expr::Var(v) => lets.get(&v.id).cloned().unwrap_or(Expr::Var(v)),
                x => x,
            });
        }
        c
    };
    let reads_local = |c: &Expr| c.any(&mut |x| matches!(x, Expr::Var(v) if locals.contains(&v.id)));
    if checks.is_empty() || checks.iter().any(|c| reads_local(&inline(c))) {
        return None;
    }
    let lane = vars.index();
    inner.insert(lane.id, width);
    let at_lane = Expr::add_index(start.clone(), Expr::Var(lane));
    let mut cond: Option<Expr> = None;
    for c in &checks {
        let c = inline(c).rewrite(&mut |x| match x {
            Expr::Var(v) if v.id == j.id => at_lane.clone(),
            x => x,
        });
        let holds = always_holds(&c, &inner)?;
        cond = Some(match cond {
            Some(a) => Expr::and(a, holds),
            None => holds,
        });
    }
    Some((cond?, checks))
}

/// A conjunction of integer comparisons (a bounds check, as fusion writes a padded read).
fn is_index_check(c: &Expr) -> bool {
    match c {
        Expr::Binary(BinaryOp::And, a, b) => is_index_check(a) && is_index_check(b),
        Expr::Binary(BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge, a, _) => a.dtype() == DType::I64,
        _ => false,
    }
}

/// `body` with the given `checks` taken as holding: load masks dropped, selects on them
/// replaced by their first side.
fn strip_checks(body: &[Stmt], checks: &[Expr]) -> Vec<Stmt> {
    let strip = |e: &Expr| {
        e.clone().rewrite(&mut |x| match x {
            Expr::Load { buf, dtype, index, .. } => Expr::Load { buf, dtype, index, mask: None },
            Expr::Select(c, a, b) => {
                if checks.contains(&c) {
                    *a
                } else {
                    Expr::Select(c, a, b)
                }
            }
            x => x,
        })
    };
    map_exprs(body, &strip)
}

pub(super) fn map_exprs(body: &[Stmt], f: &impl Fn(&Expr) -> Expr) -> Vec<Stmt> {
    body.iter()
        .map(|s| match s {
            Stmt::For { var, extent, kind, body } => {
                Stmt::For { var: *var, extent: f(extent), kind: *kind, body: map_exprs(body, f) }
            }
            Stmt::Let { var, value } => Stmt::Let { var: *var, value: f(value) },
            Stmt::Local { var, init } => Stmt::Local { var: *var, init: f(init) },
            Stmt::Assign { var, value } => Stmt::Assign { var: *var, value: f(value) },
            Stmt::Store { buf, index, value } => {
                Stmt::Store { buf: *buf, index: index.iter().map(f).collect(), value: f(value) }
            }
            Stmt::If { cond, then, els } => {
                Stmt::If { cond: f(cond), then: map_exprs(then, f), els: map_exprs(els, f) }
            }
            Stmt::Barrier => Stmt::Barrier,
        })
        .collect()
}

/// A copy of `body` with variables replaced as `renamed` says and every variable it binds
/// (`let`s, locals, loops) given a fresh one, so the copy can sit beside the original.
pub(super) fn copy_stmts(body: &[Stmt], renamed: &mut HashMap<u32, Expr>, vars: &mut VarGen) -> Vec<Stmt> {
    let rewrite = |e: &Expr, renamed: &HashMap<u32, Expr>| {
        e.clone().rewrite(&mut |x| match x {
            Expr::Var(v) => renamed.get(&v.id).cloned().unwrap_or(Expr::Var(v)),
            x => x,
        })
    };
    let fresh = |var: &Var, renamed: &mut HashMap<u32, Expr>, vars: &mut VarGen| {
        let v = vars.fresh(var.dtype);
        renamed.insert(var.id, Expr::Var(v));
        v
    };
    let mut out = Vec::with_capacity(body.len());
    for s in body {
        out.push(match s {
            Stmt::Let { var, value } => {
                let value = rewrite(value, renamed);
                Stmt::Let { var: fresh(var, renamed, vars), value }
            }
            Stmt::Local { var, init } => {
                let init = rewrite(init, renamed);
                Stmt::Local { var: fresh(var, renamed, vars), init }
            }
            Stmt::Assign { var, value } => {
                let value = rewrite(value, renamed);
                match renamed.get(&var.id) {
                    Some(Expr::Var(v)) => Stmt::Assign { var: *v, value },
                    _ => Stmt::Assign { var: *var, value },
                }
            }
            Stmt::Store { buf, index, value } => Stmt::Store {
                buf: *buf,
                index: index.iter().map(|i| rewrite(i, renamed)).collect(),
                value: rewrite(value, renamed),
            },
            Stmt::For { var, extent, kind, body } => {
                let extent = rewrite(extent, renamed);
                let var = fresh(var, renamed, vars);
                Stmt::For { var, extent, kind: *kind, body: copy_stmts(body, renamed, vars) }
            }
            Stmt::If { cond, then, els } => Stmt::If {
                cond: rewrite(cond, renamed),
                then: copy_stmts(then, renamed, vars),
                els: copy_stmts(els, renamed, vars),
            },
            Stmt::Barrier => Stmt::Barrier,
        });
    }
    out
}
