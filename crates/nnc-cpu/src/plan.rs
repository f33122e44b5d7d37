//! The per-kernel plan both code generators follow, computed once per kernel for the
//! generator's vector width: which loops are unrolled, which become vector code and how each
//! variable of a vector loop is held ([`Lane`]), which private buffers live in registers, and
//! which variables hold loaded data (an index reading one is bounds-checked). Also the facts
//! about expressions both generators ask (lazy `select`s, fused multiply-adds).

use crate::abi::is_transcendental;
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{Expr, Literal};
use nnc_kernel::kernel::{Kernel, LoopKind, Space, Stmt};
use std::collections::{BTreeSet, HashMap, HashSet};

/// How one loop statement is emitted.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LoopPlan {
    /// Fully unrolled: `extent` iterations, `step` at a time; with `lanes`, each step is one
    /// vector of `step` lanes.
    Unrolled { extent: i64, step: i64, lanes: Option<Lanes> },
    /// A counted loop over vectors of the plan's width.
    Vector(Lanes),
    /// A counted loop, one element per iteration.
    Serial,
}

/// What the code generators follow for one kernel (see the module docs).
pub(crate) struct KernelPlan<'k> {
    pub kernel: &'k Kernel,
    /// The `f32` lanes of the generator's vectors (1: scalar code only).
    pub width: u32,
    /// Per loop statement, by its address: the kernel is borrowed as long as the plan, and one
    /// variable may bind several loops (copies made by unrolling).
    loops: HashMap<*const Stmt, LoopPlan>,
    /// Private buffers every access of which has a constant index: they live in registers.
    pub registers: HashSet<u32>,
    /// Variables holding loaded data.
    pub data: BTreeSet<u32>,
    /// Loops that became vector code.
    pub vectorized_loops: usize,
}

impl<'k> KernelPlan<'k> {
    /// Plans `kernel` for vectors of `width` `f32` lanes (with `integer_lanes`, also `i32`
    /// lanes: the integer products of quantized models); refuses kernels outside the CPU
    /// execution model.
    pub fn new(kernel: &'k Kernel, width: u32, integer_lanes: bool) -> Result<KernelPlan<'k>, String> {
        check_cpu_kernel(kernel)?;
        let mut loops = HashMap::new();
        let unit = VectorUnit { width, integers: integer_lanes };
        nnc_kernel::visit::visit_stmts(&kernel.body, &mut |s| {
            if let Stmt::For { var, extent, kind, body } = s {
                loops.insert(std::ptr::from_ref(s), plan_loop(kernel, unit, var.id, *kind, extent, body));
            }
        });
        let vectorized_loops = loops
            .values()
            .filter(|p| matches!(p, LoopPlan::Vector(_) | LoopPlan::Unrolled { lanes: Some(_), .. }))
            .count();
        let mut plan = KernelPlan {
            kernel,
            width,
            loops,
            registers: HashSet::new(),
            data: nnc_kernel::visit::data_dependent_vars(&kernel.body),
            vectorized_loops,
        };
        plan.registers = plan.promotable();
        Ok(plan)
    }

    /// How loop statement `s` (a `Stmt::For` of the kernel) is emitted.
    pub fn loop_plan(&self, s: &Stmt) -> &LoopPlan {
        self.loops.get(&std::ptr::from_ref(s)).unwrap_or(&LoopPlan::Serial)
    }

    /// Whether an index expression reads loaded data (and must be bounds-checked).
    pub fn is_data_dependent(&self, index: &[Expr]) -> bool {
        index.iter().any(|i| nnc_kernel::visit::depends_on_data(i, &self.data))
    }
}

/// What a code generator's vector code holds: `width` `f32` lanes, and whether `i32` lanes too.
#[derive(Clone, Copy)]
struct VectorUnit {
    width: u32,
    integers: bool,
}

/// Whether vector code holds `dtype` in its lanes (`i32` only where the generator has integer
/// lanes).
fn lane_dtype(dtype: DType, integers: bool) -> bool {
    dtype == DType::F32 || (integers && dtype == DType::I32)
}

/// 8- and 16-bit integers: vector code loads them widened and stores them narrowed.
fn narrow_int(dtype: DType) -> bool {
    matches!(dtype, DType::I8 | DType::U8 | DType::I16 | DType::U16)
}

/// How a loop is emitted. A `vector(width)` loop whose extent is a multiple of the width and
/// whose body has a [`vector_plan`] becomes vector code. Loops with a literal extent are fully
/// unrolled when short: `unroll` loops up to 64 iterations, `vector` loops up to 64 that become
/// vector code (one vector per step) and up to 32 that do not, and serial loops up to 16 that
/// index a private buffer with their variable (so the buffer can live in registers).
fn plan_loop(kernel: &Kernel, unit: VectorUnit, var: u32, kind: LoopKind, extent: &Expr, body: &[Stmt]) -> LoopPlan {
    let mut lanes = Lanes::new();
    let width = unit.width;
    let vectorizes = matches!(kind, LoopKind::Vector(w) if w == width && width > 1)
        && extent.as_int().is_some_and(|n| n % width as i64 == 0)
        && vector_plan(kernel, unit.integers, var, body, &mut lanes);
    let unroll = extent.as_int().filter(|&n| {
        n >= 0
            && match kind {
                LoopKind::Unroll => n <= 64,
                LoopKind::Vector(_) => n <= if vectorizes { 64 } else { 32 },
                LoopKind::Serial => n <= 16 && indexes_private(kernel, var, body),
            }
    });
    match (unroll, vectorizes) {
        (Some(extent), true) => LoopPlan::Unrolled { extent, step: width as i64, lanes: Some(lanes) },
        (Some(extent), false) => LoopPlan::Unrolled { extent, step: 1, lanes: None },
        (None, true) => LoopPlan::Vector(lanes),
        (None, false) => LoopPlan::Serial,
    }
}

/// Refuses kernels outside the CPU execution model.
pub(crate) fn check_cpu_kernel(kernel: &Kernel) -> Result<(), String> {
    if kernel.launch.threads_per_workgroup() != 1 {
        return Err(format!(
            "the CPU backend runs workgroups of one invocation, this kernel has {:?} (schedule it for Device::cpu())",
            kernel.launch.workgroup
        ));
    }
    if let Some(b) = kernel.buffers.iter().find(|b| b.space == Space::Workgroup) {
        return Err(format!("workgroup buffer `{}` is not supported on the CPU (schedule for Device::cpu())", b.name));
    }
    let mut barrier = false;
    nnc_kernel::visit::visit_stmts(&kernel.body, &mut |s| barrier |= matches!(s, Stmt::Barrier));
    if barrier {
        return Err("barriers are not supported on the CPU (schedule for Device::cpu())".into());
    }
    Ok(())
}

/// Whether evaluating `e` can have an effect or a cost worth a branch: a load, an integer
/// division, remainder or pow (which may report an error), or a call. The CPU's `select` is
/// lazy (`Device::lazy_select`): a side for which this holds is evaluated behind a branch.
pub(crate) fn needs_branch(e: &Expr) -> bool {
    e.any(&mut |x| match x {
        Expr::Load { .. } => true,
        Expr::Binary(BinaryOp::Div | BinaryOp::Rem, a, b) if !a.dtype().is_float() => {
            !matches!(b.as_int(), Some(v) if v != 0 && v != -1)
        }
        Expr::Binary(BinaryOp::Pow | BinaryOp::Rem, ..) => true,
        Expr::Unary(op, a) => a.dtype().is_float() && is_transcendental(*op),
        _ => false,
    })
}

/// Whether `e` is a product (`c + a * b` becomes one fused multiply-add).
pub(crate) fn is_mul(e: &Expr) -> bool {
    matches!(e, Expr::Binary(BinaryOp::Mul, ..))
}

/// Whether `e` reads memory.
pub(crate) fn contains_load(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x, Expr::Load { .. }))
}

// ---------------------------------------------------------------- vector planning

/// How a variable bound in a vector loop is held.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Lane {
    /// Four `f32` lanes in an `f32x4`.
    Vector,
    /// A scalar `i64` holding lane 0's value, affine in the loop variable with this coefficient.
    Index(i64),
}

pub(crate) type Lanes = HashMap<u32, Lane>;

/// Whether `e` differs between the lanes of the vector loop over `lv`.
pub(crate) fn varies(e: &Expr, lv: u32, lanes: &Lanes) -> bool {
    e.any(&mut |x| match x {
        Expr::Var(v) => {
            v.id == lv
                || matches!(lanes.get(&v.id), Some(Lane::Vector))
                || matches!(lanes.get(&v.id), Some(Lane::Index(c)) if *c != 0)
        }
        _ => false,
    })
}

/// The coefficient of loop variable `lv` in an `i64` index expression that is affine in it.
pub(crate) fn coefficient(e: &Expr, lv: u32, lanes: &Lanes) -> Option<i64> {
    match e {
        Expr::Var(v) if v.id == lv => Some(1),
        Expr::Var(v) => match lanes.get(&v.id) {
            Some(Lane::Index(c)) => Some(*c),
            Some(Lane::Vector) => None,
            None => Some(0),
        },
        Expr::Lit(_) | Expr::Special(_) => Some(0),
        Expr::Binary(BinaryOp::Add, a, b) => Some(coefficient(a, lv, lanes)? + coefficient(b, lv, lanes)?),
        Expr::Binary(BinaryOp::Sub, a, b) => Some(coefficient(a, lv, lanes)? - coefficient(b, lv, lanes)?),
        Expr::Binary(BinaryOp::Mul, a, b) => {
            let (ca, cb) = (coefficient(a, lv, lanes)?, coefficient(b, lv, lanes)?);
            match (ca, cb) {
                (0, 0) => Some(0),
                (c, 0) => b.as_int().map(|k| c * k),
                (0, c) => a.as_int().map(|k| c * k),
                _ => None,
            }
        }
        e => {
            if varies(e, lv, lanes) {
                None
            } else {
                Some(0)
            }
        }
    }
}

/// Whether the body of a vector loop over `lv` can run as vector code (`f32` lanes, and `i32`
/// lanes with `ints`); fills `lanes`.
fn vector_plan(kernel: &Kernel, ints: bool, lv: u32, body: &[Stmt], lanes: &mut Lanes) -> bool {
    for s in body {
        match s {
            Stmt::Let { var, value } => {
                if !varies(value, lv, lanes) {
                    continue;
                }
                if lane_dtype(var.dtype, ints) && vector_expr_ok(kernel, ints, value, lv, lanes) {
                    lanes.insert(var.id, Lane::Vector);
                } else if var.dtype == DType::I64 {
                    match coefficient(value, lv, lanes) {
                        Some(c) => lanes.insert(var.id, Lane::Index(c)),
                        None => return false,
                    };
                } else {
                    return false;
                }
            }
            Stmt::Store { buf, index, value } => {
                let b = kernel.buffer(*buf);
                // Narrow integers are stored from `f32` lanes (a quantized activation).
                let narrowed = ints && narrow_int(b.dtype) && matches!(value, Expr::Cast(..));
                let stored = lane_dtype(b.dtype, ints) || narrowed;
                if !stored || b.space == Space::Workgroup || value.dtype() != b.dtype {
                    return false;
                }
                if coefficient(&b.flat_index(index), lv, lanes) != Some(1) {
                    return false;
                }
                if varies(value, lv, lanes) && !vector_expr_ok(kernel, ints, value, lv, lanes) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// A mask that holds for all four lanes when it holds for lanes 0 and 3: a conjunction of
/// comparisons of affine indices (each holds on an interval of lanes).
fn lane_mask_ok(m: &Expr, lv: u32, lanes: &Lanes) -> bool {
    if !varies(m, lv, lanes) {
        return true;
    }
    match m {
        Expr::Binary(BinaryOp::And, a, b) => lane_mask_ok(a, lv, lanes) && lane_mask_ok(b, lv, lanes),
        Expr::Binary(BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge, a, b) => {
            a.dtype() == DType::I64 && coefficient(a, lv, lanes).is_some() && coefficient(b, lv, lanes).is_some()
        }
        _ => false,
    }
}

/// `e` at lane `k` of the vector loop over `lv`, whose variables hold lane 0's values.
pub(crate) fn at_lane(e: &Expr, lv: u32, lanes: &Lanes, k: i64) -> Expr {
    if k == 0 {
        return e.clone();
    }
    e.clone().rewrite(&mut |x| match x {
        Expr::Var(v) if v.id == lv => Expr::add_index(Expr::Var(v), Expr::i64(k)),
        Expr::Var(v) => match lanes.get(&v.id) {
            Some(Lane::Index(c)) if *c != 0 => Expr::add_index(Expr::Var(v), Expr::i64(c * k)),
            _ => Expr::Var(v),
        },
        x => x,
    })
}

/// A lane-varying expression made of what the generators support in vector code (invariant parts are
/// scalar code, splatted).
/// `f32(int(x))` for an `f32` `x` and an integer dtype `int` of 8 to 64 bits: `(x, lo, hi)`,
/// the range of `int` (a quantized value's round trip, which vector code computes in `f32`
/// lanes: `vmath::through_integer`).
pub(crate) fn integer_round_trip(e: &Expr) -> Option<(&Expr, f64, f64)> {
    let Expr::Cast(DType::F32, inner) = e else { return None };
    let Expr::Cast(int, x) = &**inner else { return None };
    let (lo, hi) = match int {
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        _ => return None,
    };
    (x.dtype() == DType::F32).then_some((&**x, lo, hi))
}

fn vector_expr_ok(kernel: &Kernel, ints: bool, e: &Expr, lv: u32, lanes: &Lanes) -> bool {
    if !varies(e, lv, lanes) {
        return true;
    }
    if let Some((x, _, _)) = integer_round_trip(e) {
        return vector_expr_ok(kernel, ints, x, lv, lanes);
    }
    let ok = |x: &Expr| vector_expr_ok(kernel, ints, x, lv, lanes);
    match e {
        Expr::Var(v) => lanes.get(&v.id) == Some(&Lane::Vector),
        // Integer lanes: 8- and 16-bit integers widened as they load (to `i32` or `f32`),
        // `i32` lanes to `f32`, `f32` lanes to the narrow integers a store writes.
        Expr::Cast(DType::I32 | DType::F32, x)
            if ints && narrow_int(x.dtype()) && matches!(&**x, Expr::Load { .. }) =>
        {
            load_ok(kernel, x, lv, lanes)
        }
        Expr::Cast(DType::F32, x) if ints => x.dtype() == DType::I32 && ok(x),
        Expr::Cast(to, x) if ints && narrow_int(*to) => x.dtype() == DType::F32 && ok(x),
        Expr::Load { dtype, .. } => lane_dtype(*dtype, ints) && load_ok(kernel, e, lv, lanes),
        Expr::Select(c, a, b) => {
            // `a`'s loads are masked by `c` (the generators' vector `select`): each must vary with the
            // lane (an invariant one is scalar code, outside the mask) and be global; `b` is
            // evaluated unmasked, so it must not load.
            let mut masked_ok = true;
            a.any(&mut |x| {
                if let Expr::Load { buf, .. } = x {
                    masked_ok &= varies(x, lv, lanes) && kernel.buffer(*buf).space == Space::Global;
                }
                false
            });
            lane_dtype(a.dtype(), ints)
                && lane_mask_ok(c, lv, lanes)
                && masked_ok
                && !contains_load(b)
                && ok(a)
                && ok(b)
        }
        Expr::Unary(op, a) => {
            a.dtype() == DType::F32
                && (is_transcendental(*op)
                    || matches!(
                        op,
                        UnaryOp::Neg
                            | UnaryOp::Abs
                            | UnaryOp::Sqrt
                            | UnaryOp::Floor
                            | UnaryOp::Ceil
                            | UnaryOp::Round
                            | UnaryOp::Reciprocal
                            | UnaryOp::Relu
                    ))
                && ok(a)
        }
        Expr::Binary(op, a, b) => {
            let float = a.dtype() == DType::F32
                && matches!(
                    op,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Max | BinaryOp::Min
                );
            let integer =
                ints && a.dtype() == DType::I32 && matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul);
            (float || integer) && ok(a) && ok(b)
        }
        _ => false,
    }
}

/// Whether load `e` can fill vector lanes: unmasked or masked by a condition on affine indices,
/// not from workgroup memory, affine in the lane.
fn load_ok(kernel: &Kernel, e: &Expr, lv: u32, lanes: &Lanes) -> bool {
    let Expr::Load { buf, index, mask, .. } = e else { return false };
    let b = kernel.buffer(*buf);
    mask.as_ref().is_none_or(|m| b.space == Space::Global && lane_mask_ok(m, lv, lanes))
        && b.space != Space::Workgroup
        && coefficient(&b.flat_index(index), lv, lanes).is_some()
}

// ---------------------------------------------------------------- unrolling and promotion

/// Whether `body` accesses a private buffer at an index that uses variable `var`.
fn indexes_private(kernel: &Kernel, var: u32, body: &[Stmt]) -> bool {
    let uses = |index: &[Expr]| index.iter().any(|i| i.any(&mut |x| matches!(x, Expr::Var(v) if v.id == var)));
    let in_expr = |e: &Expr| {
        e.any(&mut |x| match x {
            Expr::Load { buf, index, .. } => kernel.buffer(*buf).space == Space::Private && uses(index),
            _ => false,
        })
    };
    let mut found = false;
    nnc_kernel::visit::visit_stmts(body, &mut |s| {
        found |=
            matches!(s, Stmt::Store { buf, index, .. } if kernel.buffer(*buf).space == Space::Private && uses(index));
    });
    nnc_kernel::visit::visit_exprs(body, &mut |e| found |= in_expr(e));
    found
}

/// `e` as a constant, given the values of some variables.
pub(crate) fn const_eval(e: &Expr, consts: &HashMap<u32, i64>) -> Option<i64> {
    match e {
        Expr::Lit(Literal::Int(v, _)) => Some(*v),
        Expr::Var(v) => consts.get(&v.id).copied(),
        Expr::Binary(op, a, b) if a.dtype() == DType::I64 => {
            let (x, y) = (const_eval(a, consts)?, const_eval(b, consts)?);
            match op {
                BinaryOp::Add => Some(x.wrapping_add(y)),
                BinaryOp::Sub => Some(x.wrapping_sub(y)),
                BinaryOp::Mul => Some(x.wrapping_mul(y)),
                BinaryOp::Div if y > 0 && x >= 0 => Some(x / y),
                BinaryOp::Rem if y > 0 && x >= 0 => Some(x % y),
                _ => None,
            }
        }
        _ => None,
    }
}

impl KernelPlan<'_> {
    /// Private buffers whose every access has an index made of literals and variables of
    /// unrolled loops (at most 256 elements): they live in registers.
    fn promotable(&self) -> HashSet<u32> {
        let mut bad = HashSet::new();
        self.walk_private(&self.kernel.body, &mut HashSet::new(), &mut bad);
        let buffers = &self.kernel.buffers;
        (0..buffers.len() as u32)
            .filter(|&b| buffers[b as usize].space == Space::Private && !bad.contains(&b))
            .filter(|&b| buffers[b as usize].len() <= 256)
            .collect()
    }

    /// Collects in `bad` the private buffers accessed at an index that is not constant, given
    /// the variables `known` to be constants (of unrolled loops, or computed from them).
    fn walk_private(&self, stmts: &[Stmt], known: &mut HashSet<u32>, bad: &mut HashSet<u32>) {
        let kernel = self.kernel;
        for s in stmts {
            match s {
                Stmt::For { var, extent, body, .. } => {
                    private_loads(extent, kernel, known, bad);
                    if matches!(self.loop_plan(s), LoopPlan::Unrolled { .. }) {
                        known.insert(var.id);
                    } else {
                        known.remove(&var.id);
                    }
                    self.walk_private(body, known, bad);
                }
                Stmt::Let { var, value } => {
                    private_loads(value, kernel, known, bad);
                    if index_is_constant(std::slice::from_ref(value), known) && value.dtype() == DType::I64 {
                        known.insert(var.id);
                    } else {
                        known.remove(&var.id);
                    }
                }
                Stmt::Local { init: value, .. } | Stmt::Assign { value, .. } => {
                    private_loads(value, kernel, known, bad)
                }
                Stmt::Barrier => {}
                Stmt::Store { buf, index, value } => {
                    private_loads(value, kernel, known, bad);
                    index.iter().for_each(|i| private_loads(i, kernel, known, bad));
                    if kernel.buffer(*buf).space == Space::Private && !index_is_constant(index, known) {
                        bad.insert(buf.0);
                    }
                }
                Stmt::If { cond, then, els } => {
                    private_loads(cond, kernel, known, bad);
                    self.walk_private(then, known, bad);
                    self.walk_private(els, known, bad);
                }
            }
        }
    }
}

/// Whether every index is made of literals and `known` variables.
fn index_is_constant(index: &[Expr], known: &HashSet<u32>) -> bool {
    index.iter().all(|i| {
        !i.any(&mut |x| match x {
            Expr::Var(v) => !known.contains(&v.id),
            Expr::Load { .. } | Expr::Special(_) | Expr::Axis(_) | Expr::Reduce(_) => true,
            Expr::Binary(BinaryOp::Div | BinaryOp::Rem, ..) => true,
            _ => false,
        })
    })
}

/// Adds to `bad` the private buffers `e` loads from at a non-constant index (or masked).
fn private_loads(e: &Expr, kernel: &Kernel, known: &HashSet<u32>, bad: &mut HashSet<u32>) {
    e.any(&mut |x| {
        if let Expr::Load { buf, index, mask, .. } = x {
            if kernel.buffer(*buf).space == Space::Private && (mask.is_some() || !index_is_constant(index, known)) {
                bad.insert(buf.0);
            }
        }
        false
    });
}
