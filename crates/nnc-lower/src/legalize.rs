//! Legalization: scheduled kernels made fit for a device, driven by its [`Device`] data only,
//! between scheduling and code generation, so printers and emitters hold no such special cases.
//!
//! - **Limits**: a kernel's storage buffers, invocations per workgroup and workgroup memory are
//!   checked against the device's (fusion and scheduling keep within them; a kernel beyond
//!   them is an error naming it, not a failure in a driver).
//! - **Effects made explicit**: on a device whose `select` is not lazy
//!   ([`Device::lazy_select`]: WGSL's `select()` computes both sides), a `select` whose unchosen
//!   side must not run (it loads, or divides integers) and every masked load become statements
//!   (`local t; if c { t = a } else { t = b }`). Targets whose selects are lazy (C's `?:`, a
//!   CPU's branches and masked vector loads) print them as they are.
//! - **Loop limits**: where the device stops loops after [`Device::max_loop_iterations`]
//!   iterations of one loop statement per invocation (llvmpipe), outer loops are unrolled so
//!   each copy of an inner loop stays below.
//! - **Index width**: where the device computes indices in 32 bits ([`IndexWidth`]) and every
//!   index of the kernel provably fits (every buffer and the launch below 2^31), the `i64`
//!   variables that only hold index arithmetic become `i32`, and the expressions over them.

use nnc_ir::{BinaryOp, DType, Graph, Node, Op};
use nnc_kernel::expr::{Literal, Var, VarGen};
use nnc_kernel::kernel::{Kernel, LoopKind, Stmt};
use nnc_kernel::visit::{visit_exprs, visit_stmts};
use nnc_kernel::{Device, Expr, IndexWidth};
use std::collections::BTreeSet;

/// A kernel that cannot be made fit for the device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct LegalizeError {
    pub kernel: String,
    pub message: String,
}

/// Legalizes every kernel for `device`.
pub fn legalize_all(kernels: &[Kernel], device: &Device) -> Result<Vec<Kernel>, LegalizeError> {
    kernels.iter().map(|k| legalize(k, device)).collect()
}

/// `kernel` made fit for `device` (see the module docs).
pub fn legalize(kernel: &Kernel, device: &Device) -> Result<Kernel, LegalizeError> {
    let err = |message: String| LegalizeError { kernel: kernel.name.clone(), message };
    check_limits(kernel, device).map_err(err)?;
    let mut k = kernel.clone();
    let mut vars = VarGen::after(max_var(&k.body) + 1);
    if !device.lazy_select {
        k.body = explicit_effects(std::mem::take(&mut k.body), &mut vars);
    }
    if device.max_loop_iterations > 0 {
        k.body = split_loops(std::mem::take(&mut k.body), 1, device.max_loop_iterations, &mut vars);
    }
    narrow_indices(&mut k, device).map_err(err)?;
    Ok(k)
}

// ---------------------------------------------------------------- limits

/// `graph` with every concatenation of more operands than one kernel may bind (with its
/// result) split into a tree of concatenations that fit: the part of legalization that must
/// happen before fusion, since a kernel cannot be split once it is one. Fusion then keeps
/// every kernel within the limit ([`crate::fuse::FuseOptions::max_buffers`]).
pub fn split_wide_concats(graph: &Graph, device: &Device) -> Graph {
    let per_kernel = device.max_buffers.saturating_sub(1).max(2) as usize;
    let wide = |n: &Node| matches!(n.op, Op::Concat { .. }) && n.inputs.len() > per_kernel;
    if device.max_buffers == u32::MAX {
        return graph.clone();
    }
    // Composites first (an LSTM concatenates its steps' outputs); an error is fusion's to report.
    let Ok(mut g) = nnc_ir::composite::decompose(graph) else { return graph.clone() };
    if !g.nodes.iter().any(wide) {
        return g;
    }
    let mut names: BTreeSet<String> = g.values.iter().map(|v| v.name.clone()).collect();
    let nodes = std::mem::take(&mut g.nodes);
    for node in nodes {
        if !wide(&node) {
            g.nodes.push(node);
            continue;
        }
        let Op::Concat { axis } = node.op else { unreachable!("checked by `wide`") };
        let base = g.name_of(node.outputs[0]).to_string();
        let mut parts = node.inputs.clone();
        while parts.len() > per_kernel {
            let mut next = Vec::new();
            for chunk in parts.chunks(per_kernel) {
                if let [one] = chunk {
                    next.push(*one);
                    continue;
                }
                let types: Vec<&nnc_ir::TensorType> = chunk.iter().map(|&v| g.ty(v)).collect();
                let Ok(mut ty) = nnc_ir::infer(&Op::Concat { axis }, &types) else { return graph.clone() };
                let mut name = format!("{base}_part{}", next.len());
                while !names.insert(name.clone()) {
                    name.push('_');
                }
                let v = g.add_value(name, ty.remove(0));
                g.nodes.push(Node { op: Op::Concat { axis }, inputs: chunk.to_vec(), outputs: vec![v] });
                next.push(v);
            }
            parts = next;
        }
        g.nodes.push(Node { op: Op::Concat { axis }, inputs: parts, outputs: node.outputs });
    }
    g
}

fn check_limits(kernel: &Kernel, device: &Device) -> Result<(), String> {
    let buffers = kernel.params().count() as u64;
    if buffers > u64::from(device.max_buffers) {
        return Err(format!("binds {buffers} storage buffers; the device allows {}", device.max_buffers));
    }
    let invocations = kernel.launch.threads_per_workgroup();
    if invocations > u64::from(device.max_workgroup) {
        return Err(format!("{invocations} invocations per workgroup; the device allows {}", device.max_workgroup));
    }
    let shared = kernel.workgroup_bytes();
    if shared > i64::from(device.workgroup_bytes) {
        return Err(format!("{shared} bytes of workgroup memory; the device has {}", device.workgroup_bytes));
    }
    Ok(())
}

// ---------------------------------------------------------------- explicit effects

/// The largest variable id of `body` (0 if none): every variable is bound by a statement
/// (loops, lets, locals) before an expression reads it.
fn max_var(body: &[Stmt]) -> u32 {
    let mut max = 0;
    visit_stmts(body, &mut |s| {
        if let Stmt::For { var, .. } | Stmt::Let { var, .. } | Stmt::Local { var, .. } | Stmt::Assign { var, .. } = s {
            max = max.max(var.id);
        }
    });
    max
}

/// Whether evaluating `e` where the IR says it is not evaluated would be wrong: a load that
/// may be out of bounds, an integer division that may be by zero.
fn must_not_speculate(e: &Expr) -> bool {
    e.any(&mut |x| match x {
        Expr::Load { .. } => true,
        Expr::Binary(BinaryOp::Div | BinaryOp::Rem, a, b) if !a.dtype().is_float() => {
            !matches!(b.as_int(), Some(v) if v != 0 && v != -1)
        }
        _ => false,
    })
}

/// Rewrites statements (outside vector loops, which have none of this) so lazy parts of their
/// expressions are statements of their own.
fn explicit_effects(body: Vec<Stmt>, vars: &mut VarGen) -> Vec<Stmt> {
    let mut out = Vec::with_capacity(body.len());
    for s in body {
        let mut lift = |e: Expr, out: &mut Vec<Stmt>| lift(e, out, vars);
        match s {
            Stmt::For { var, extent, kind, body } => {
                let extent = lift(extent, &mut out);
                let body = if matches!(kind, LoopKind::Vector(_)) { body } else { explicit_effects(body, vars) };
                out.push(Stmt::For { var, extent, kind, body });
            }
            Stmt::Let { var, value } => {
                let value = lift(value, &mut out);
                out.push(Stmt::Let { var, value });
            }
            Stmt::Local { var, init } => {
                let init = lift(init, &mut out);
                out.push(Stmt::Local { var, init });
            }
            Stmt::Assign { var, value } => {
                let value = lift(value, &mut out);
                out.push(Stmt::Assign { var, value });
            }
            Stmt::Store { buf, index, value } => {
                let index = index.into_iter().map(|i| lift(i, &mut out)).collect();
                let value = lift(value, &mut out);
                out.push(Stmt::Store { buf, index, value });
            }
            Stmt::If { cond, then, els } => {
                let cond = lift(cond, &mut out);
                let then = explicit_effects(then, vars);
                let els = explicit_effects(els, vars);
                out.push(Stmt::If { cond, then, els });
            }
            Stmt::Barrier => out.push(Stmt::Barrier),
        }
    }
    out
}

/// `e` with every lazy select that must not be speculated, and every masked load, turned into
/// statements appended to `pre` (evaluated before the statement `e` belongs to); what is left is
/// evaluated whole.
fn lift(e: Expr, pre: &mut Vec<Stmt>, vars: &mut VarGen) -> Expr {
    match e {
        Expr::Select(c, a, b) if must_not_speculate(&a) || must_not_speculate(&b) => {
            let cond = lift(*c, pre, vars);
            let dtype = a.dtype();
            let t = vars.fresh(dtype);
            let mut then = Vec::new();
            let a = lift(*a, &mut then, vars);
            then.push(Stmt::Assign { var: t, value: a });
            let mut els = Vec::new();
            let b = lift(*b, &mut els, vars);
            els.push(Stmt::Assign { var: t, value: b });
            pre.push(Stmt::Local { var: t, init: Expr::Lit(Literal::zero(dtype)) });
            pre.push(Stmt::If { cond, then, els });
            Expr::Var(t)
        }
        Expr::Load { buf, dtype, index, mask: Some(m) } => {
            let cond = lift(*m, pre, vars);
            let t = vars.fresh(dtype);
            let mut then = Vec::new();
            let index = index.into_iter().map(|i| lift(i, &mut then, vars)).collect();
            then.push(Stmt::Assign { var: t, value: Expr::Load { buf, dtype, index, mask: None } });
            pre.push(Stmt::Local { var: t, init: Expr::Lit(Literal::zero(dtype)) });
            pre.push(Stmt::If { cond, then, els: Vec::new() });
            Expr::Var(t)
        }
        Expr::Unary(op, a) => Expr::Unary(op, Box::new(lift(*a, pre, vars))),
        Expr::Cast(d, a) => Expr::Cast(d, Box::new(lift(*a, pre, vars))),
        Expr::Binary(op, a, b) => {
            let a = lift(*a, pre, vars);
            let b = lift(*b, pre, vars);
            Expr::Binary(op, Box::new(a), Box::new(b))
        }
        Expr::Select(c, a, b) => {
            let c = lift(*c, pre, vars);
            let a = lift(*a, pre, vars);
            let b = lift(*b, pre, vars);
            Expr::Select(Box::new(c), Box::new(a), Box::new(b))
        }
        Expr::Load { buf, dtype, index, mask: None } => {
            let index = index.into_iter().map(|i| lift(i, pre, vars)).collect();
            Expr::Load { buf, dtype, index, mask: None }
        }
        e => e,
    }
}

// ---------------------------------------------------------------- loop limits

/// `body` (run `trips` times per invocation) with every loop whose iterations would exceed
/// `limit` over the invocation nested less deeply: an outer loop is unrolled by the factor
/// that brings each copy of what it contains below the limit.
fn split_loops(body: Vec<Stmt>, trips: u64, limit: u64, vars: &mut VarGen) -> Vec<Stmt> {
    body.into_iter()
        .map(|s| match s {
            Stmt::For { var, extent, kind, body } => {
                let extent_trips = extent.as_int().unwrap_or(1).max(1) as u64;
                let total = trips.saturating_mul(extent_trips);
                match (total > limit).then(|| unroll_factor(extent_trips, total, limit, &body)).flatten() {
                    None => Stmt::For { var, extent, kind, body: split_loops(body, total, limit, vars) },
                    Some((k, exact)) => {
                        let inner_trips = trips.saturating_mul(extent_trips.div_ceil(k));
                        let body = split_loops(body, inner_trips, limit, vars);
                        unrolled(var, vars.fresh(var.dtype), &extent, kind, k, exact, body)
                    }
                }
            }
            Stmt::If { cond, then, els } => Stmt::If {
                cond,
                then: split_loops(then, trips, limit, vars),
                els: split_loops(els, trips, limit, vars),
            },
            s => s,
        })
        .collect()
}

/// `for var in 0..extent { body }` as `for base in 0..ceil(extent / k)` over `k` copies of the
/// body, each in a block of its own binding `var = base * k + j` (guarded by `var < extent`
/// unless `k` divides it).
fn unrolled(var: Var, base: Var, extent: &Expr, kind: LoopKind, k: u64, exact: bool, body: Vec<Stmt>) -> Stmt {
    let n = extent.as_int().unwrap_or(0);
    let copies = (0..k as i64)
        .map(|j| {
            let at = Expr::add_index(Expr::mul_index(Expr::Var(base), Expr::i64(k as i64)), Expr::i64(j));
            let mut then = vec![Stmt::Let { var, value: at.clone() }];
            then.extend(body.iter().cloned());
            let cond = if exact { Expr::bool(true) } else { bin(BinaryOp::Lt, at, Expr::i64(n)) };
            Stmt::If { cond, then, els: Vec::new() }
        })
        .collect();
    Stmt::For { var: base, extent: Expr::i64((n as u64).div_ceil(k) as i64), kind, body: copies }
}

/// How much to unroll a loop of `extent` iterations that runs `total` times per invocation so
/// each copy runs at most `limit` times: `(k, exact)`, exact when `k` divides the extent. A
/// loop with a barrier is unrolled only exactly (a guard around a barrier must be uniform, and
/// the drivers' analyses do not always see that it is).
fn unroll_factor(extent: u64, total: u64, limit: u64, body: &[Stmt]) -> Option<(u64, bool)> {
    let need = total.div_ceil(limit.max(1));
    if need > 64 || need > extent {
        return None;
    }
    if let Some(k) = (need..=64.min(extent)).find(|&k| extent.is_multiple_of(k)) {
        return Some((k, true));
    }
    let mut barrier = false;
    visit_stmts(body, &mut |s| barrier |= matches!(s, Stmt::Barrier));
    (!barrier).then_some((need, false))
}

fn bin(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    Expr::Binary(op, Box::new(a), Box::new(b))
}

// ---------------------------------------------------------------- index width

/// Narrows the kernel's index arithmetic to 32 bits where the device wants it and it provably
/// fits; refuses a kernel whose indices may not fit on a device without 64-bit integers.
fn narrow_indices(kernel: &mut Kernel, device: &Device) -> Result<(), String> {
    if device.index_width == IndexWidth::Wide {
        return Ok(());
    }
    const LIMIT: i64 = i32::MAX as i64;
    let l = &kernel.launch;
    let too_big = kernel.buffers.iter().find(|b| b.len() > LIMIT);
    let too_many = l.workgroups().saturating_mul(l.threads_per_workgroup()) > LIMIT as u64;
    if too_big.is_some() || too_many {
        if device.index_width == IndexWidth::Narrow {
            let what = match too_big {
                Some(b) => format!("buffer `{}` has {} elements", b.name, b.len()),
                None => format!("the launch has {} invocations", l.workgroups() * l.threads_per_workgroup()),
            };
            return Err(format!("{what}; this device's indices are 32-bit (at most 2^31 - 1)"));
        }
        return Ok(());
    }
    let narrow = index_vars(&kernel.body);
    if narrow.is_empty() && !has_index_specials(&kernel.body) {
        return Ok(());
    }
    kernel.body = narrow_body(std::mem::take(&mut kernel.body), &narrow);
    Ok(())
}

fn has_index_specials(body: &[Stmt]) -> bool {
    let mut found = false;
    visit_exprs(body, &mut |e| found |= e.any(&mut |x| matches!(x, Expr::Special(_))));
    found
}

/// The `i64` variables that only ever hold index arithmetic: literals that fit in 31 bits,
/// thread and group ids, loop counters and `+ - * / % max min select` of those. With every
/// buffer and the launch below 2^31, such values stay within the extents of what they index
/// (flat offsets, coordinates, tile positions), so they fit in 32 bits.
fn index_vars(body: &[Stmt]) -> BTreeSet<u32> {
    let mut defs: Vec<(u32, Expr)> = Vec::new();
    visit_stmts(body, &mut |s| match s {
        Stmt::For { var, extent, .. } => defs.push((var.id, extent.clone())),
        Stmt::Let { var, value } | Stmt::Local { var, init: value } | Stmt::Assign { var, value }
            if var.dtype == DType::I64 =>
        {
            defs.push((var.id, value.clone()))
        }
        _ => {}
    });
    let mut set: BTreeSet<u32> = defs.iter().map(|(v, _)| *v).collect();
    loop {
        let before = set.len();
        for (v, e) in &defs {
            if set.contains(v) && !is_index(e, &set) {
                set.remove(v);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Whether `e` is index arithmetic over the variables of `set`.
fn is_index(e: &Expr, set: &BTreeSet<u32>) -> bool {
    use BinaryOp::*;
    match e {
        Expr::Lit(Literal::Int(v, DType::I64)) => v.unsigned_abs() <= i32::MAX as u64,
        Expr::Special(_) => true,
        Expr::Var(v) => v.dtype == DType::I64 && set.contains(&v.id),
        Expr::Binary(Add | Sub | Mul | Div | Rem | Max | Min, a, b) => is_index(a, set) && is_index(b, set),
        Expr::Select(_, a, b) => is_index(a, set) && is_index(b, set),
        _ => false,
    }
}

fn narrow_body(body: Vec<Stmt>, set: &BTreeSet<u32>) -> Vec<Stmt> {
    let var = |v: Var| if set.contains(&v.id) { Var { dtype: DType::I32, ..v } } else { v };
    body.into_iter()
        .map(|s| match s {
            Stmt::For { var: v, extent, kind, body } => {
                let v2 = var(v);
                Stmt::For { var: v2, extent: narrow_to(extent, v2.dtype, set), kind, body: narrow_body(body, set) }
            }
            Stmt::Let { var: v, value } => {
                let v2 = var(v);
                Stmt::Let { var: v2, value: narrow_to(value, v2.dtype, set) }
            }
            Stmt::Local { var: v, init } => {
                let v2 = var(v);
                Stmt::Local { var: v2, init: narrow_to(init, v2.dtype, set) }
            }
            Stmt::Assign { var: v, value } => {
                let v2 = var(v);
                Stmt::Assign { var: v2, value: narrow_to(value, v2.dtype, set) }
            }
            Stmt::Store { buf, index, value } => Stmt::Store {
                buf,
                index: index.into_iter().map(|i| narrow_index(i, set)).collect(),
                value: narrow(value, set),
            },
            Stmt::If { cond, then, els } => {
                Stmt::If { cond: narrow(cond, set), then: narrow_body(then, set), els: narrow_body(els, set) }
            }
            Stmt::Barrier => Stmt::Barrier,
        })
        .collect()
}

/// `e` computed as `dtype` (`i32` for a narrowed variable's definition).
fn narrow_to(e: Expr, dtype: DType, set: &BTreeSet<u32>) -> Expr {
    if dtype == DType::I32 && e.dtype() == DType::I64 && is_index(&e, set) {
        to_i32(e, set)
    } else {
        narrow(e, set)
    }
}

/// A load or store index: 32-bit where it is index arithmetic.
fn narrow_index(e: Expr, set: &BTreeSet<u32>) -> Expr {
    if is_index(&e, set) {
        to_i32(e, set)
    } else {
        narrow(e, set)
    }
}

/// Index arithmetic `e` (see [`is_index`]) rebuilt in `i32`.
fn to_i32(e: Expr, set: &BTreeSet<u32>) -> Expr {
    match e {
        Expr::Lit(Literal::Int(v, _)) => Expr::Lit(Literal::Int(v, DType::I32)),
        Expr::Special(s) => Expr::Cast(DType::I32, Box::new(Expr::Special(s))),
        Expr::Var(v) => Expr::Var(Var { dtype: DType::I32, ..v }),
        Expr::Binary(op, a, b) => Expr::Binary(op, Box::new(to_i32(*a, set)), Box::new(to_i32(*b, set))),
        Expr::Select(c, a, b) => {
            Expr::Select(Box::new(narrow(*c, set)), Box::new(to_i32(*a, set)), Box::new(to_i32(*b, set)))
        }
        e => e,
    }
}

/// `e` with comparisons of index arithmetic made in `i32`, load indices narrowed, and the
/// narrowed variables read back as `i64` wherever else an `i64` is expected.
fn narrow(e: Expr, set: &BTreeSet<u32>) -> Expr {
    match e {
        Expr::Binary(op, a, b)
            if op.class() == nnc_ir::op::BinaryClass::Comparison
                && a.dtype() == DType::I64
                && is_index(&a, set)
                && is_index(&b, set) =>
        {
            Expr::Binary(op, Box::new(to_i32(*a, set)), Box::new(to_i32(*b, set)))
        }
        Expr::Var(v) if v.dtype == DType::I64 && set.contains(&v.id) => {
            Expr::Cast(DType::I64, Box::new(Expr::Var(Var { dtype: DType::I32, ..v })))
        }
        Expr::Load { buf, dtype, index, mask } => Expr::Load {
            buf,
            dtype,
            index: index.into_iter().map(|i| narrow_index(i, set)).collect(),
            mask: mask.map(|m| Box::new(narrow(*m, set))),
        },
        Expr::Unary(op, a) => Expr::Unary(op, Box::new(narrow(*a, set))),
        Expr::Cast(d, a) => Expr::Cast(d, Box::new(narrow(*a, set))),
        Expr::Binary(op, a, b) => Expr::Binary(op, Box::new(narrow(*a, set)), Box::new(narrow(*b, set))),
        Expr::Select(c, a, b) => {
            Expr::Select(Box::new(narrow(*c, set)), Box::new(narrow(*a, set)), Box::new(narrow(*b, set)))
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_kernel::expr::Special;
    use nnc_kernel::kernel::{Access, Buffer, Launch, Schedule, Space};

    fn kernel(body: Vec<Stmt>) -> Kernel {
        let buffer = |name: &str, access| Buffer {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![64],
            space: Space::Global,
            access,
        };
        Kernel {
            name: "k".into(),
            buffers: vec![buffer("x", Access::Read), buffer("y", Access::Write)],
            launch: Launch { grid: [64, 1, 1], workgroup: [1, 1, 1] },
            body,
            schedule: Schedule::PLAIN,
            covers: vec![],
        }
    }

    fn load(i: Expr, mask: Option<Expr>) -> Expr {
        Expr::Load { buf: nnc_kernel::BufId(0), dtype: DType::F32, index: vec![i], mask: mask.map(Box::new) }
    }

    fn gid() -> Expr {
        Expr::Special(Special::GroupId(0))
    }

    fn lt(a: Expr, n: i64) -> Expr {
        bin(BinaryOp::Lt, a, Expr::i64(n))
    }

    /// A select that loads on both sides becomes an `if`; one that does not stays a select.
    #[test]
    fn lazy_selects_and_masked_loads_become_statements() {
        let lazy = Expr::select(lt(gid(), 32), load(gid(), None), load(Expr::i64(0), None));
        let pure = Expr::select(lt(gid(), 32), Expr::lit(1.0, DType::F32), Expr::lit(2.0, DType::F32));
        let masked = load(Expr::sub_index(gid(), Expr::i64(1)), Some(bin(BinaryOp::Gt, gid(), Expr::i64(0))));
        let sum = bin(BinaryOp::Add, bin(BinaryOp::Add, lazy, pure), masked);
        let k = kernel(vec![Stmt::Store { buf: nnc_kernel::BufId(1), index: vec![gid()], value: sum }]);
        let mut device = Device::gpu();
        device.index_width = IndexWidth::Wide;
        let out = legalize(&k, &device).unwrap();
        assert_eq!(legalize(&k, &Device::cpu()).unwrap(), k, "a CPU's selects are lazy: nothing to do");
        let text = format!("{out}");
        assert_eq!(text.matches("if ").count(), 2, "{text}");
        assert!(text.contains("select("), "the pure select stays: {text}");
        let mut masks = 0;
        visit_stmts(&out.body, &mut |s| {
            if let Stmt::Store { value, .. } | Stmt::Assign { value, .. } = s {
                value.any(&mut |e| {
                    masks += matches!(e, Expr::Load { mask: Some(_), .. }) as usize;
                    false
                });
            }
        });
        assert_eq!(masks, 0, "{text}");
    }

    /// llvmpipe's limit: a loop of 300 inside a loop of 300 runs its statement 90,000 times per
    /// invocation; unrolled by 3, the inner loop statement runs 30,000 times.
    #[test]
    fn nested_loops_are_unrolled_below_the_iteration_limit() {
        let (i, j) = (Var { id: 1, dtype: DType::I64 }, Var { id: 2, dtype: DType::I64 });
        let store =
            Stmt::Store { buf: nnc_kernel::BufId(1), index: vec![Expr::i64(0)], value: Expr::lit(1.0, DType::F32) };
        let inner = Stmt::For { var: j, extent: Expr::i64(300), kind: LoopKind::Serial, body: vec![store] };
        let outer = Stmt::For { var: i, extent: Expr::i64(300), kind: LoopKind::Serial, body: vec![inner] };
        let mut device = Device::gpu();
        device.max_loop_iterations = 32_768;
        let out = legalize(&kernel(vec![outer]), &device).unwrap();
        let Stmt::For { extent: outer_extent, body, .. } = &out.body[0] else { panic!("{out}") };
        let Stmt::For { extent, body: copies, .. } = &body[0] else { panic!("{out}") };
        let (outer_n, inner_n) = (outer_extent.as_int().unwrap(), extent.as_int().unwrap());
        assert_eq!((outer_n, inner_n, copies.len()), (300, 100, 3), "{out}");
        assert!(outer_n * inner_n <= 32_768);
    }

    /// With 32-bit indices, a loop counter and the index arithmetic over it become `i32`.
    #[test]
    fn index_arithmetic_is_narrowed_where_it_fits() {
        let i = Var { id: 1, dtype: DType::I64 };
        let index = Expr::add_index(Expr::mul_index(gid(), Expr::i64(4)), Expr::Var(i));
        let store = Stmt::Store { buf: nnc_kernel::BufId(1), index: vec![index.clone()], value: load(index, None) };
        let body = vec![Stmt::For { var: i, extent: Expr::i64(4), kind: LoopKind::Serial, body: vec![store] }];
        let out = legalize(&kernel(body), &Device::gpu()).unwrap();
        let Stmt::For { var, body, .. } = &out.body[0] else { panic!("{out}") };
        assert_eq!(var.dtype, DType::I32);
        let Stmt::Store { index, .. } = &body[0] else { panic!("{out}") };
        assert_eq!(index[0].dtype(), DType::I32, "{out}");
        // A buffer of 2^31 elements cannot be indexed in 32 bits on a device without 64.
        let mut big = kernel(vec![]);
        big.buffers[0].shape = vec![1 << 31];
        assert!(legalize(&big, &Device::gpu()).unwrap_err().to_string().contains("32-bit"));
    }

    /// A concatenation of 41 parts (an OCR model's) on a device of 8 buffers per kernel: a
    /// tree of concatenations of at most 7, computing the same.
    #[test]
    fn wide_concatenations_are_split_into_a_tree() {
        let mut b = nnc_ir::GraphBuilder::new("wide");
        let parts: Vec<_> = (0..41).map(|k| b.input(&format!("x{k}"), DType::F32, [2, 3]).unwrap()).collect();
        let y = b.op(Op::Concat { axis: 1 }, &parts).unwrap()[0];
        b.output(y);
        let g = b.finish().unwrap();
        let split = split_wide_concats(&g, &Device::gpu());
        nnc_ir::verify(&split).unwrap();
        assert!(split.nodes.iter().all(|n| n.inputs.len() <= 7), "{}", nnc_ir::text::print(&split));
        assert_eq!(split.nodes.len(), 7, "six parts of at most 7, then their concatenation");
        let inputs: Vec<nnc_ir::TensorData> =
            (0..41).map(|k| nnc_ir::TensorData::from_vec(vec![2, 3], &[k as f32; 6])).collect();
        assert_eq!(nnc_interp::run(&g, &inputs).unwrap(), nnc_interp::run(&split, &inputs).unwrap());
        let program = crate::compile(&g, &Device::gpu(), None).unwrap();
        assert!(program.kernels.iter().all(|k| k.params().count() <= 8));
    }

    #[test]
    fn limits_are_checked() {
        let mut device = Device::gpu();
        device.max_buffers = 1;
        let e = legalize(&kernel(vec![]), &device).unwrap_err();
        assert_eq!(e.to_string(), "kernel `k`: binds 2 storage buffers; the device allows 1");
    }
}
