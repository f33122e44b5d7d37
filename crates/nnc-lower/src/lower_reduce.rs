//! Turning nested reductions into loops, locals and combine statements.
//!
//! A reduction is emitted at the outermost block where every variable its body depends on is
//! bound (so a row's maximum is computed once per row, not once per element), and a reduction
//! equal to one already computed in scope (up to renaming its variables) is reused, not
//! recomputed: the two are what let a fused softmax compute its maximum once.

use nnc_ir::{BinaryOp, DType};
pub use nnc_kernel::expr::canonical_key;
use nnc_kernel::expr::{BufId, Combine, Expr, Literal, Reduction, Var, VarGen};
use nnc_kernel::kernel::{Access, Buffer, LoopKind, Space, Stmt};
use std::collections::BTreeMap;

/// The identity of a combine for a dtype: the value an empty reduction has.
pub fn identity(combine: Combine, dtype: DType) -> Expr {
    let (lo, hi) = match dtype {
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U64 | DType::U32 | DType::U16 | DType::U8 | DType::Bool => (0.0, u32::MAX as f64),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    };
    let v = match combine {
        Combine::Sum | Combine::ArgMax { .. } | Combine::ArgMin { .. } => 0.0,
        Combine::Prod => 1.0,
        Combine::Max => lo,
        Combine::Min => hi,
    };
    if dtype == DType::U64 && combine == Combine::Min {
        return Expr::Lit(Literal::Int(-1, DType::U64));
    }
    Expr::lit(v, dtype)
}

/// For arg reductions: the starting "best" value, which every term beats or ties.
pub fn arg_start(combine: Combine, dtype: DType) -> Expr {
    match combine {
        Combine::ArgMax { .. } => identity(Combine::Max, dtype),
        _ => identity(Combine::Min, dtype),
    }
}

/// `acc ⊕ term` for the value-combining reductions.
pub fn combine_values(combine: Combine, acc: Expr, term: Expr) -> Expr {
    let op = match combine {
        Combine::Sum => BinaryOp::Add,
        Combine::Prod => BinaryOp::Mul,
        Combine::Max => BinaryOp::Max,
        Combine::Min => BinaryOp::Min,
        Combine::ArgMax { .. } | Combine::ArgMin { .. } => unreachable!("arg reductions combine pairs"),
    };
    Expr::binary(op, acc, term)
}

/// Whether candidate `(v, i)` replaces the current best `(best, best_i)` of an arg reduction.
/// Ties go to the smaller position (or the larger with `select_last`), whatever the order
/// candidates arrive in, so a tree reduction agrees with a serial one. As in the graph
/// interpreter, NaN beats every number and NaNs tie with each other.
pub fn arg_better(combine: Combine, v: Expr, i: Expr, best: Expr, best_i: Expr) -> Expr {
    let (strict, last) = match combine {
        Combine::ArgMax { select_last } => (BinaryOp::Gt, select_last),
        Combine::ArgMin { select_last } => (BinaryOp::Lt, select_last),
        _ => unreachable!("only arg reductions compare positions"),
    };
    let tie_pos = if last { BinaryOp::Gt } else { BinaryOp::Lt };
    let equal = Expr::binary(BinaryOp::Eq, v.clone(), best.clone());
    if !v.dtype().is_float() {
        let tie = Expr::and(equal, Expr::binary(tie_pos, i, best_i));
        return Expr::binary(BinaryOp::Or, Expr::binary(strict, v, best), tie);
    }
    let nan = |e: &Expr| Expr::unary(nnc_ir::UnaryOp::IsNan, e.clone());
    let not = |e: Expr| Expr::unary(nnc_ir::UnaryOp::Not, e);
    let wins = Expr::binary(
        BinaryOp::Or,
        Expr::and(nan(&v), not(nan(&best))),
        Expr::and(not(nan(&best)), Expr::binary(strict, v.clone(), best.clone())),
    );
    let tied = Expr::binary(BinaryOp::Or, equal, Expr::and(nan(&v), nan(&best)));
    Expr::binary(BinaryOp::Or, wins, Expr::and(tied, Expr::binary(tie_pos, i, best_i)))
}

/// The variables (not bound inside `e`) that `e` depends on.
pub fn free_vars(e: &Expr) -> Vec<Var> {
    fn go(e: &Expr, bound: &mut Vec<Var>, out: &mut Vec<Var>) {
        match e {
            Expr::Var(v) if !bound.contains(v) && !out.contains(v) => out.push(*v),
            Expr::Reduce(r) => {
                let n = bound.len();
                bound.extend(r.vars.iter().map(|(v, _)| *v));
                go(&r.body, bound, out);
                bound.truncate(n);
            }
            _ => e.for_each_child(|c| go(c, bound, out)),
        }
    }
    let mut out = Vec::new();
    go(e, &mut Vec::new(), &mut out);
    out
}

/// Emits the reductions of expressions into a block structure.
pub struct ReductionLowering<'a> {
    pub vars: &'a mut VarGen,
    /// Open blocks, outermost first: statements are appended to them as they are emitted.
    blocks: Vec<Vec<Stmt>>,
    /// The block each variable is bound in (variables not listed are bound outside block 0).
    var_block: BTreeMap<u32, usize>,
    /// Reductions already computed: key, block, result.
    computed: Vec<(String, usize, Var)>,
    /// Nothing is hoisted outside this block: inside a branch, hoisting would run a
    /// computation (and its loads) where the branch is not taken.
    floor: usize,
    /// Open guard blocks: their depth and the floor before them.
    guards: Vec<(usize, usize)>,
    /// Vector lanes for reductions over a contiguous run (see [`Self::with_vector_lanes`]).
    lanes: u32,
    /// The id the next private buffer gets, and the buffers created so far.
    next_buffer: u32,
    pub new_buffers: Vec<Buffer>,
}

impl<'a> ReductionLowering<'a> {
    pub fn new(vars: &'a mut VarGen) -> ReductionLowering<'a> {
        ReductionLowering {
            vars,
            blocks: vec![Vec::new()],
            var_block: BTreeMap::new(),
            computed: Vec::new(),
            floor: 0,
            guards: Vec::new(),
            lanes: 1,
            next_buffer: 0,
            new_buffers: Vec::new(),
        }
    }

    /// Sums, maxima and minima of `f32` whose innermost variable spans at least two vectors of
    /// `lanes` keep `lanes` partial results in a private buffer (ids from `first_buffer` on,
    /// listed in [`Self::new_buffers`]) updated by a `vector` loop (the rest of an extent that
    /// is not a multiple of `lanes` goes to the first), then combine them in lane order: a CPU
    /// runs the loop as vector code. The order of the additions differs from one accumulator's;
    /// the Kernel-IR interpreter runs the same order.
    pub fn with_vector_lanes(mut self, lanes: u32, first_buffer: u32) -> Self {
        self.lanes = lanes;
        self.next_buffer = first_buffer;
        self
    }

    /// Appends a statement to the innermost open block.
    pub fn push(&mut self, s: Stmt) {
        self.blocks.last_mut().expect("a block is always open").push(s);
    }

    /// Opens a block in which `bound` are newly bound (a loop body).
    pub fn open(&mut self, bound: &[Var]) {
        self.blocks.push(Vec::new());
        let depth = self.blocks.len() - 1;
        for v in bound {
            self.var_block.insert(v.id, depth);
        }
    }

    /// Opens the body of an `if` that guards its statements (a bounds check): nothing inside is
    /// hoisted above it.
    pub fn open_guard(&mut self) {
        self.blocks.push(Vec::new());
        let depth = self.blocks.len() - 1;
        self.guards.push((depth, self.floor));
        self.floor = depth;
    }

    /// Closes the innermost block and returns its statements; reductions computed in it go out
    /// of scope.
    pub fn close(&mut self) -> Vec<Stmt> {
        let depth = self.blocks.len() - 1;
        if let Some(&(d, floor)) = self.guards.last() {
            if d == depth {
                self.floor = floor;
                self.guards.pop();
            }
        }
        self.computed.retain(|(_, b, _)| *b < depth);
        self.blocks.pop().expect("close matches open")
    }

    /// Marks `v` as bound in the innermost open block (a `let`).
    pub fn bind(&mut self, v: Var) {
        self.var_block.insert(v.id, self.blocks.len() - 1);
    }

    /// The statements of the outermost block (call once, at the end).
    pub fn finish(mut self) -> Vec<Stmt> {
        assert_eq!(self.blocks.len(), 1, "unbalanced blocks");
        self.blocks.pop().unwrap_or_default()
    }

    /// `e` with every reduction replaced by a variable computed by emitted statements.
    pub fn lower(&mut self, e: Expr) -> Expr {
        match e {
            Expr::Reduce(r) => Expr::Var(self.reduce(*r)),
            Expr::Select(c, a, b) if contains_reduce(&a) || contains_reduce(&b) => {
                // Keep a reduction under a select from running (and loading) where the select
                // does not choose it: branch instead.
                let c = self.lower(*c);
                let dtype = a.dtype();
                let out = self.vars.fresh(dtype);
                self.push(Stmt::Local { var: out, init: Expr::lit(0.0, dtype) });
                let depth = self.blocks.len();
                let floor = self.floor;
                self.floor = depth;
                self.blocks.push(Vec::new());
                let a = self.lower(*a);
                self.push(Stmt::Assign { var: out, value: a });
                let then = self.close_at(depth);
                self.blocks.push(Vec::new());
                let b = self.lower(*b);
                self.push(Stmt::Assign { var: out, value: b });
                let els = self.close_at(depth);
                self.floor = floor;
                self.push(Stmt::If { cond: c, then, els });
                Expr::Var(out)
            }
            Expr::Select(c, a, b) => {
                // Either side may be valid only where the condition chooses it (a padded
                // load): nothing in them moves out of the current block.
                let c = self.lower(*c);
                let floor = std::mem::replace(&mut self.floor, self.blocks.len() - 1);
                let (a, b) = (self.lower(*a), self.lower(*b));
                self.floor = floor;
                Expr::select(c, a, b)
            }
            e if hoistable(&e) => {
                let block = self.block_of(&e);
                if block + 1 < self.blocks.len() {
                    Expr::Var(self.hoist(e, block))
                } else {
                    rebuild(e, &mut |c| self.lower(c))
                }
            }
            e => rebuild(e, &mut |c| self.lower(c)),
        }
    }

    /// The outermost block `e` can be computed in: where all its free variables are bound, and
    /// never outside the floor if it loads through them (a guard keeps loads in bounds;
    /// arithmetic on values already computed is safe anywhere).
    fn block_of(&self, e: &Expr) -> usize {
        let free = free_vars(e);
        let bound_at = free.iter().map(|v| self.var_block.get(&v.id).copied().unwrap_or(0)).max().unwrap_or(0);
        let loads = e.any(&mut |x| matches!(x, Expr::Load { .. } | Expr::Reduce(_)));
        // With no free variables, its loads read fixed elements that every evaluation reads:
        // in bounds anywhere (see `reduce`).
        if loads && !is_closed(e, &free) {
            bound_at.max(self.floor)
        } else {
            bound_at
        }
    }

    /// Computes `e` once, as a `let` in `block` (loop-invariant code motion), reusing an equal
    /// expression already computed there.
    fn hoist(&mut self, e: Expr, block: usize) -> Var {
        let parked = self.blocks.split_off(block + 1);
        let (parked_computed, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.computed).into_iter().partition(|(_, b, _)| *b > block);
        self.computed = kept;
        let floor = std::mem::replace(&mut self.floor, block);
        let value = rebuild(e, &mut |c| self.lower(c));
        // Keyed after lowering, when equal reductions inside have become the same variable.
        let key = format!("let {value}");
        let existing = self.computed.iter().find(|(k, b, _)| *k == key && *b <= block).map(|(_, _, v)| *v);
        let var = match existing {
            Some(v) => v,
            None => {
                let var = self.vars.fresh(value.dtype());
                self.push(Stmt::Let { var, value });
                self.bind(var);
                self.computed.push((key, block, var));
                var
            }
        };
        self.floor = floor;
        self.blocks.extend(parked);
        self.computed.extend(parked_computed);
        var
    }

    fn close_at(&mut self, depth: usize) -> Vec<Stmt> {
        debug_assert_eq!(self.blocks.len(), depth + 1);
        self.close()
    }

    fn reduce(&mut self, r: Reduction) -> Var {
        let key = canonical_key(&r);
        let whole = Expr::Reduce(Box::new(r.clone()));
        let free = free_vars(&whole);
        let bound_at = free.iter().map(|v| self.var_block.get(&v.id).copied().unwrap_or(0)).max().unwrap_or(0);
        // A reduction with no free variables reads the same in-bounds elements wherever it is
        // computed, so no guard protects it: it goes outside every loop and branch, once.
        let block = if is_closed(&whole, &free) { 0 } else { bound_at.max(self.floor) };
        if let Some((_, _, var)) = self.computed.iter().find(|(k, b, _)| *k == key && *b <= block) {
            return *var;
        }
        // Emit into `block`: park the blocks inside it (and what was computed in them), and
        // restore them afterwards.
        let parked = self.blocks.split_off(block + 1);
        let (parked_computed, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.computed).into_iter().partition(|(_, b, _)| *b > block);
        self.computed = kept;
        let floor = std::mem::replace(&mut self.floor, block);
        let result = self.emit_reduction(r);
        self.floor = floor;
        self.blocks.extend(parked);
        self.computed.extend(parked_computed);
        self.computed.push((key, block, result));
        result
    }

    /// The reduction through vector lanes, when it qualifies (see [`Self::with_vector_lanes`]):
    /// the innermost variable in lanes (then a scalar loop over what is left of it when its
    /// extent is not a multiple of them), any others as loops around.
    fn emit_lane_reduction(&mut self, r: &Reduction) -> Option<Var> {
        let lanes = self.lanes as i64;
        let ((v, n), outer) = r.vars.split_last()?;
        let (v, n) = (*v, *n);
        let dtype = r.body.dtype();
        let combines = matches!(r.combine, Combine::Sum | Combine::Max | Combine::Min);
        if lanes < 2 || n < 2 * lanes || dtype != DType::F32 || !combines {
            return None;
        }
        let buf = BufId(self.next_buffer);
        self.next_buffer += 1;
        self.new_buffers.push(Buffer {
            name: "lanes".into(),
            dtype,
            shape: vec![lanes],
            space: Space::Private,
            access: Access::ReadWrite,
        });
        let lane = self.vars.index();
        let at = |lane: Expr| vec![lane];
        self.push(Stmt::For {
            var: lane,
            extent: Expr::i64(lanes),
            kind: LoopKind::Vector(self.lanes),
            body: vec![Stmt::Store { buf, index: at(Expr::Var(lane)), value: identity(r.combine, dtype) }],
        });
        for (o, _) in outer {
            self.open(&[*o]);
        }
        // for k0 < n / lanes { for lane < lanes vector { part[lane] op= body(k0 * lanes + lane) } }
        let main = n / lanes * lanes;
        let (k0, lane) = (self.vars.index(), self.vars.index());
        self.open(&[k0]);
        self.open(&[lane]);
        let k = Expr::add_index(Expr::mul_index(Expr::Var(k0), Expr::i64(lanes)), Expr::Var(lane));
        self.accumulate(r, v, &k, buf, Expr::Var(lane));
        let body = self.close();
        self.push(Stmt::For { var: lane, extent: Expr::i64(lanes), kind: LoopKind::Vector(self.lanes), body });
        let body = self.close();
        self.push(Stmt::For { var: k0, extent: Expr::i64(n / lanes), kind: LoopKind::Serial, body });
        if main < n {
            // for t < n - main { part[0] op= body(main + t) }
            let t = self.vars.index();
            self.open(&[t]);
            self.accumulate(r, v, &Expr::add_index(Expr::Var(t), Expr::i64(main)), buf, Expr::i64(0));
            let body = self.close();
            self.push(Stmt::For { var: t, extent: Expr::i64(n - main), kind: LoopKind::Serial, body });
        }
        for (o, extent) in outer.iter().rev() {
            let body = self.close();
            self.push(Stmt::For { var: *o, extent: Expr::i64(*extent), kind: LoopKind::Serial, body });
        }
        let total = (1..lanes).fold(Expr::load(buf, dtype, at(Expr::i64(0))), |acc, j| {
            combine_values(r.combine, acc, Expr::load(buf, dtype, at(Expr::i64(j))))
        });
        let result = self.vars.fresh(dtype);
        self.push(Stmt::Let { var: result, value: total });
        self.bind(result);
        Some(result)
    }

    /// `part[slot] op= body` with reduction variable `v` at `k`, into the open block.
    fn accumulate(&mut self, r: &Reduction, v: Var, k: &Expr, part: BufId, slot: Expr) {
        let body = r.body.clone().rewrite(&mut |e| match e {
            Expr::Var(x) if x == v => k.clone(),
            e => e,
        });
        let term = self.lower(body);
        let current = Expr::load(part, r.body.dtype(), vec![slot.clone()]);
        self.push(Stmt::Store { buf: part, index: vec![slot], value: combine_values(r.combine, current, term) });
    }

    fn emit_reduction(&mut self, r: Reduction) -> Var {
        if let Some(result) = self.emit_lane_reduction(&r) {
            return result;
        }
        let dtype = r.body.dtype();
        let arg = matches!(r.combine, Combine::ArgMax { .. } | Combine::ArgMin { .. });
        let acc = self.vars.fresh(dtype);
        let init = if arg { arg_start(r.combine, dtype) } else { identity(r.combine, dtype) };
        self.push(Stmt::Local { var: acc, init });
        let pos = self.vars.fresh(DType::I64);
        if arg {
            self.push(Stmt::Local { var: pos, init: Expr::i64(0) });
        }
        let depth = self.blocks.len();
        for (v, _) in &r.vars {
            self.open(&[*v]);
        }
        let term = self.lower(r.body);
        if arg {
            let t = self.vars.fresh(dtype);
            self.push(Stmt::Let { var: t, value: term });
            let p = self.vars.fresh(DType::I64);
            let flat = r.vars.iter().fold(Expr::i64(0), |acc_i, (v, n)| {
                Expr::add_index(Expr::mul_index(acc_i, Expr::i64(*n)), Expr::Var(*v))
            });
            self.push(Stmt::Let { var: p, value: flat });
            let better = self.vars.fresh(DType::Bool);
            let cond = arg_better(r.combine, Expr::Var(t), Expr::Var(p), Expr::Var(acc), Expr::Var(pos));
            self.push(Stmt::Let { var: better, value: cond });
            self.push(Stmt::Assign { var: acc, value: Expr::select(Expr::Var(better), Expr::Var(t), Expr::Var(acc)) });
            self.push(Stmt::Assign { var: pos, value: Expr::select(Expr::Var(better), Expr::Var(p), Expr::Var(pos)) });
        } else {
            let value = combine_values(r.combine, Expr::Var(acc), term);
            self.push(Stmt::Assign { var: acc, value });
        }
        for (v, n) in r.vars.iter().rev() {
            let body = self.close();
            self.push(Stmt::For { var: *v, extent: Expr::i64(*n), kind: LoopKind::Serial, body });
        }
        debug_assert_eq!(self.blocks.len(), depth);
        if arg {
            pos
        } else {
            acc
        }
    }
}

/// Whether `e` is worth a `let` of its own when it can move out of a loop: floating-point
/// arithmetic (index arithmetic is cheap and keeps kernels readable when left in place).
fn hoistable(e: &Expr) -> bool {
    matches!(e, Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..)) && e.dtype().is_float()
}

/// Whether `e`, whose free variables are `free`, depends on nothing its kernel binds: no
/// variable, no invocation or workgroup id.
fn is_closed(e: &Expr, free: &[Var]) -> bool {
    free.is_empty() && !e.any(&mut |x| matches!(x, Expr::Special(_)))
}

pub fn contains_reduce(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x, Expr::Reduce(_)))
}

/// `e` with each direct child replaced by `f(child)`.
pub fn rebuild(e: Expr, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
    match e {
        e @ (Expr::Lit(_) | Expr::Var(_) | Expr::Axis(_) | Expr::Special(_)) => e,
        Expr::Unary(op, a) => Expr::Unary(op, Box::new(f(*a))),
        Expr::Cast(d, a) => Expr::Cast(d, Box::new(f(*a))),
        Expr::Binary(op, a, b) => {
            let a = f(*a);
            Expr::Binary(op, Box::new(a), Box::new(f(*b)))
        }
        Expr::Select(c, a, b) => {
            let c = f(*c);
            let a = f(*a);
            Expr::Select(Box::new(c), Box::new(a), Box::new(f(*b)))
        }
        Expr::Load { buf, dtype, index, mask } => {
            let index = index.into_iter().map(&mut *f).collect();
            Expr::Load { buf, dtype, index, mask: mask.map(|m| Box::new(f(*m))) }
        }
        Expr::Reduce(r) => {
            let Reduction { combine, vars, body } = *r;
            Expr::reduce(combine, vars, f(body))
        }
    }
}

/// Lowers the reductions inside a program's statements (a program may use them in
/// expressions), emitting each right before the statement that needs it.
pub fn lower_program(stmts: Vec<Stmt>, vars: &mut VarGen) -> Vec<Stmt> {
    let mut out = Vec::new();
    for s in stmts {
        let mut lowering = ReductionLowering::new(vars);
        let s = lower_stmt(s, &mut lowering);
        let mut pre = lowering.finish();
        pre.push(s);
        out.extend(pre);
    }
    out
}

fn lower_stmt(s: Stmt, l: &mut ReductionLowering<'_>) -> Stmt {
    let sub = |body: Vec<Stmt>, l: &mut ReductionLowering<'_>| lower_program(body, l.vars);
    match s {
        Stmt::For { var, extent, kind, body } => Stmt::For { var, extent: l.lower(extent), kind, body: sub(body, l) },
        Stmt::Let { var, value } => Stmt::Let { var, value: l.lower(value) },
        Stmt::Local { var, init } => Stmt::Local { var, init: l.lower(init) },
        Stmt::Assign { var, value } => Stmt::Assign { var, value: l.lower(value) },
        Stmt::Store { buf, index, value } => {
            let index = index.into_iter().map(|i| l.lower(i)).collect();
            Stmt::Store { buf, index, value: l.lower(value) }
        }
        Stmt::If { cond, then, els } => {
            let cond = l.lower(cond);
            Stmt::If { cond, then: sub(then, l), els: sub(els, l) }
        }
        Stmt::Barrier => Stmt::Barrier,
    }
}
