//! The Kernel-IR interpreter: runs one scheduled [`Kernel`] with GPU semantics, strictly.
//!
//! It is the oracle that proves fusion and scheduling preserved a graph's meaning, so it checks
//! everything a GPU would leave undefined and reports it as a [`KernelError`] (never a panic)
//! naming the kernel, the buffer, the index and the invocation at fault.
//!
//! # Execution model
//!
//! - The body runs once per invocation of `launch.grid` × `launch.workgroup`. One workgroup at a
//!   time runs with all its invocations in lock-step as *lanes*: every expression is evaluated
//!   once over the vector of active lanes with the graph interpreter's elementwise functions
//!   ([`nnc_interp::lanes`]), so a kernel's `add` is exactly the graph's `add` and the
//!   interpretation overhead is paid per workgroup, not per invocation. Values that are the same
//!   in every lane (literals, loop counters, group ids) are kept as one element and broadcast.
//! - Kernels without barriers and without workgroup memory (CPU-style schedules, elementwise
//!   GPU schedules) run several workgroups as the lanes of one batch, since they are
//!   independent.
//! - Divergence is an active set: an `If` whose condition differs between lanes runs each branch
//!   for its lanes; a `For` evaluates its extent per lane (once, before the first iteration) and
//!   masks off lanes whose extent is reached. Every loop kind has serial semantics; a
//!   `vector(n)` loop's extent must be a multiple of `n` and an `unroll` loop's a literal.
//! - `Let`/`Local`/loop variables are per-lane registers; an `Assign` under a mask keeps the
//!   inactive lanes' values. Variables are checked to be declared, in scope and of their
//!   declared dtype before anything runs.
//! - `Select` evaluates each side only for the lanes that choose it, and a masked `Load` reads
//!   (and evaluates its index) only where the mask is true, giving 0 elsewhere: a masked-off side
//!   never reports an out-of-bounds access or a division by zero.
//! - Expressions with `Axis` or `Reduce` are refused ("not scheduled").
//!
//! # Memory and what is checked
//!
//! - Global buffers are the caller's [`Value`]s, in [`Kernel::params`] order; their count, dtype
//!   and element count are checked. Stores to a global declared `in` (read-only) are refused.
//! - Every load and store checks each index component against its axis (and so the flat index
//!   against the buffer).
//! - Workgroup buffers are allocated per workgroup and are *uninitialized*: a read of an element
//!   not written by this workgroup is reported as "read of uninitialized workgroup memory"
//!   (floats are also poisoned with NaN). Private buffers are per invocation, with the same check.
//! - Races in workgroup memory: each element records its last writer (lane, epoch) and its
//!   readers since the last barrier (one lane, or "several"); the epoch advances at every
//!   barrier. A read of an element another invocation wrote in the same epoch, or a write of an
//!   element another invocation read or wrote in the same epoch, is a data race ("missing
//!   barrier?").
//! - Races in global memory (there is no grid-wide barrier, so the whole kernel is one epoch):
//!   for every global the kernel may write, each element records its writer and its readers; two
//!   invocations storing the same element, an invocation reading an element another one wrote,
//!   or one writing an element another one read, are races.
//! - A `Barrier` must be reached by every invocation of the workgroup ("barrier in non-uniform
//!   control flow").
//! - Integer division or remainder by zero (in an active lane) is an error.

use crate::expr::{Expr, Literal, Special};
use crate::kernel::{Access, Kernel, LoopKind, Space, Stmt};
use nnc_interp::lanes::{self, Data, Value};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use std::borrow::Cow;
use std::collections::HashMap;

/// Why a kernel failed: names the kernel, and the access/invocation at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct KernelError {
    pub kernel: String,
    pub message: String,
}

/// Runs `kernel` on its global buffers, given in the order of `kernel.params()` (a flat Value per
/// global buffer, with the buffer's dtype and element count); results are written into them.
pub fn run_kernel(kernel: &Kernel, globals: &mut [Value]) -> Result<(), KernelError> {
    let err = |message: String| KernelError { kernel: kernel.name.clone(), message };
    let prog = Compiler::compile(kernel).map_err(err)?;
    check_globals(kernel, globals).map_err(err)?;
    let mut exec = Exec::new(kernel, &prog, globals);
    let result = exec.run(&prog);
    exec.mem.restore(globals);
    result.map_err(err)
}

/// Lanes per batch of independent workgroups (kernels without barriers and workgroup memory).
const BATCH_LANES: u64 = 1024;
/// The most private-memory elements a batch may hold (all lanes together).
const MAX_PRIVATE_ELEMENTS: u64 = 1 << 24;
/// The largest workgroup or private buffer, in elements.
const MAX_LOCAL_ELEMENTS: i64 = 1 << 28;

// ---------------------------------------------------------------- compiled form

/// An expression with variables resolved to register slots and literals pre-built.
enum CExpr<'k> {
    /// A one-element value.
    Lit(Value),
    Reg(usize),
    /// `0..3`: thread id x, y, z; `3..6`: group id x, y, z.
    Special(usize),
    Unary(UnaryOp, Box<CExpr<'k>>, &'k Expr),
    Binary(BinaryOp, Box<CExpr<'k>>, Box<CExpr<'k>>, &'k Expr),
    Select(Box<CExpr<'k>>, Box<CExpr<'k>>, Box<CExpr<'k>>),
    Cast(DType, Box<CExpr<'k>>),
    Load {
        buf: usize,
        index: Vec<CExpr<'k>>,
        mask: Option<Box<CExpr<'k>>>,
    },
}

enum CStmt<'k> {
    For {
        slot: usize,
        dtype: DType,
        extent: CExpr<'k>,
        vector: u32,
        body: Vec<CStmt<'k>>,
    },
    /// `Let` and `Local`: the variable is dead in inactive lanes, so the mask is ignored.
    Set {
        slot: usize,
        value: CExpr<'k>,
    },
    /// Keeps the values of inactive lanes.
    Assign {
        slot: usize,
        value: CExpr<'k>,
    },
    Store {
        buf: usize,
        index: Vec<CExpr<'k>>,
        value: CExpr<'k>,
    },
    If {
        cond: CExpr<'k>,
        then: Vec<CStmt<'k>>,
        els: Vec<CStmt<'k>>,
    },
    Barrier,
}

struct Program<'k> {
    body: Vec<CStmt<'k>>,
    slots: usize,
    has_barrier: bool,
}

struct Compiler<'k> {
    kernel: &'k Kernel,
    slot_of: HashMap<u32, usize>,
    /// Visible variables, innermost last: (id, dtype, mutable).
    scope: Vec<(u32, DType, bool)>,
    has_barrier: bool,
}

fn one_of(dtype: DType) -> Value {
    match dtype {
        d if d.is_float() => Value::float(d, vec![1], vec![1.0]),
        d if d.is_int() => Value::int(d, vec![1], vec![1]),
        _ => Value::bool(vec![1], vec![true]),
    }
}

impl<'k> Compiler<'k> {
    fn compile(kernel: &'k Kernel) -> Result<Program<'k>, String> {
        for (i, b) in kernel.buffers.iter().enumerate() {
            let mut len: i64 = 1;
            for &d in &b.shape {
                if d < 0 {
                    return Err(format!("buffer `{}` (b{i}) has a negative dimension {d}", b.name));
                }
                len = len.checked_mul(d).ok_or_else(|| format!("buffer `{}` (b{i}) is too large", b.name))?;
            }
            if b.space != Space::Global && len > MAX_LOCAL_ELEMENTS {
                return Err(format!("buffer `{}` (b{i}) has {len} elements, more than the interpreter allows", b.name));
            }
        }
        let mut c = Compiler { kernel, slot_of: HashMap::new(), scope: Vec::new(), has_barrier: false };
        let body = c.block(&kernel.body)?;
        Ok(Program { body, slots: c.slot_of.len(), has_barrier: c.has_barrier })
    }

    fn slot(&mut self, id: u32) -> usize {
        let n = self.slot_of.len();
        *self.slot_of.entry(id).or_insert(n)
    }

    fn block(&mut self, stmts: &'k [Stmt]) -> Result<Vec<CStmt<'k>>, String> {
        let mark = self.scope.len();
        let out = stmts.iter().map(|s| self.stmt(s)).collect();
        self.scope.truncate(mark);
        out
    }

    fn lookup(&self, id: u32) -> Option<(DType, bool)> {
        self.scope.iter().rev().find(|(v, _, _)| *v == id).map(|&(_, d, m)| (d, m))
    }

    fn stmt(&mut self, s: &'k Stmt) -> Result<CStmt<'k>, String> {
        Ok(match s {
            Stmt::For { var, extent, kind, body } => {
                let ext = self.expr(extent)?;
                if !extent.dtype().is_int() || !var.dtype.is_int() {
                    return Err(format!("loop `for v{} < {extent}` needs integer variable and extent", var.id));
                }
                let vector = match kind {
                    LoopKind::Serial => 1,
                    LoopKind::Unroll => {
                        if extent.as_int().is_none() {
                            return Err(format!("unroll loop `for v{} < {extent}` needs a literal extent", var.id));
                        }
                        1
                    }
                    LoopKind::Vector(0) => return Err(format!("loop `for v{}` has vector width 0", var.id)),
                    LoopKind::Vector(n) => *n,
                };
                let slot = self.slot(var.id);
                let mark = self.scope.len();
                self.scope.push((var.id, var.dtype, false));
                let body = self.block(body);
                self.scope.truncate(mark);
                CStmt::For { slot, dtype: var.dtype, extent: ext, vector, body: body? }
            }
            Stmt::Let { var, value } | Stmt::Local { var, init: value } => {
                let v = self.expr(value)?;
                if value.dtype() != var.dtype {
                    return Err(format!("`v{}: {}` bound to `{value}` of dtype {}", var.id, var.dtype, value.dtype()));
                }
                let slot = self.slot(var.id);
                self.scope.push((var.id, var.dtype, matches!(s, Stmt::Local { .. })));
                CStmt::Set { slot, value: v }
            }
            Stmt::Assign { var, value } => {
                match self.lookup(var.id) {
                    None => return Err(format!("assignment to v{}, which is not declared here", var.id)),
                    Some((_, false)) => return Err(format!("assignment to v{}, which is not a `var` local", var.id)),
                    Some((d, true)) if d != var.dtype || value.dtype() != d => {
                        return Err(format!("assignment of `{value}` ({}) to v{} of dtype {d}", value.dtype(), var.id))
                    }
                    Some(_) => {}
                }
                let v = self.expr(value)?;
                CStmt::Assign { slot: self.slot(var.id), value: v }
            }
            Stmt::Store { buf, index, value } => {
                let b = self.buffer(buf.index())?;
                if b.space == Space::Global && b.access == Access::Read {
                    return Err(format!("store to read-only global buffer `{}` (b{})", b.name, buf.0));
                }
                if value.dtype() != b.dtype {
                    return Err(format!(
                        "store of `{value}` ({}) to `{}` (b{}) of dtype {}",
                        value.dtype(),
                        b.name,
                        buf.0,
                        b.dtype
                    ));
                }
                let index = self.index(buf.index(), index)?;
                CStmt::Store { buf: buf.index(), index, value: self.expr(value)? }
            }
            Stmt::If { cond, then, els } => {
                if cond.dtype() != DType::Bool {
                    return Err(format!("`if {cond}`: the condition is not bool"));
                }
                CStmt::If { cond: self.expr(cond)?, then: self.block(then)?, els: self.block(els)? }
            }
            Stmt::Barrier => {
                self.has_barrier = true;
                CStmt::Barrier
            }
        })
    }

    fn buffer(&self, i: usize) -> Result<&'k crate::kernel::Buffer, String> {
        self.kernel.buffers.get(i).ok_or_else(|| format!("b{i} is not a buffer of the kernel"))
    }

    fn index(&mut self, buf: usize, index: &'k [Expr]) -> Result<Vec<CExpr<'k>>, String> {
        let b = self.buffer(buf)?;
        if index.len() != b.shape.len() {
            return Err(format!("`{}` (b{buf}) has {} axes, indexed with {}", b.name, b.shape.len(), index.len()));
        }
        index
            .iter()
            .map(|i| {
                if !i.dtype().is_int() {
                    return Err(format!("index `{i}` of `{}` (b{buf}) is not an integer", b.name));
                }
                self.expr(i)
            })
            .collect()
    }

    fn expr(&mut self, e: &'k Expr) -> Result<CExpr<'k>, String> {
        Ok(match e {
            Expr::Lit(l) => CExpr::Lit(match *l {
                Literal::Float(v, d) if d.is_float() => Value::float(d, vec![1], vec![v]),
                Literal::Int(v, d) if d.is_int() => Value::int(d, vec![1], vec![v]),
                Literal::Bool(b) => Value::bool(vec![1], vec![b]),
                _ => return Err(format!("literal `{e}` has the wrong dtype")),
            }),
            Expr::Var(v) => match self.lookup(v.id) {
                Some((d, _)) if d == v.dtype => CExpr::Reg(self.slot(v.id)),
                Some((d, _)) => return Err(format!("v{} used as {}, declared {d}", v.id, v.dtype)),
                None => return Err(format!("v{} is used where it is not declared", v.id)),
            },
            Expr::Axis(_) | Expr::Reduce(_) => {
                return Err(format!("not scheduled: `{e}` (an axis or reduction) in a kernel body"))
            }
            Expr::Special(s) => {
                let (base, a) = match *s {
                    Special::ThreadId(a) => (0, a),
                    Special::GroupId(a) => (3, a),
                };
                if a > 2 {
                    return Err(format!("`{e}`: axis {a} does not exist"));
                }
                CExpr::Special(base + a as usize)
            }
            Expr::Unary(op, a) => {
                lanes::unary(*op, &one_of(a.dtype())).map_err(|_| format!("`{e}`: {} on {}", op.name(), a.dtype()))?;
                CExpr::Unary(*op, Box::new(self.expr(a)?), e)
            }
            Expr::Binary(op, a, b) => {
                if a.dtype() != b.dtype() {
                    return Err(format!("`{e}`: operands of dtypes {} and {}", a.dtype(), b.dtype()));
                }
                lanes::binary(*op, &one_of(a.dtype()), &one_of(b.dtype()), &[1])
                    .map_err(|_| format!("`{e}`: {} on {}", op.name(), a.dtype()))?;
                CExpr::Binary(*op, Box::new(self.expr(a)?), Box::new(self.expr(b)?), e)
            }
            Expr::Select(c, a, b) => {
                if c.dtype() != DType::Bool || a.dtype() != b.dtype() {
                    return Err(format!("`{e}`: needs a bool condition and sides of one dtype"));
                }
                CExpr::Select(Box::new(self.expr(c)?), Box::new(self.expr(a)?), Box::new(self.expr(b)?))
            }
            Expr::Cast(d, a) => CExpr::Cast(*d, Box::new(self.expr(a)?)),
            Expr::Load { buf, dtype, index, mask } => {
                let b = self.buffer(buf.index())?;
                if *dtype != b.dtype {
                    return Err(format!("`{e}` loads {dtype} from `{}` (b{}) of dtype {}", b.name, buf.0, b.dtype));
                }
                let index = self.index(buf.index(), index)?;
                let mask = match mask {
                    Some(m) if m.dtype() != DType::Bool => return Err(format!("`{e}`: the mask is not bool")),
                    Some(m) => Some(Box::new(self.expr(m)?)),
                    None => None,
                };
                CExpr::Load { buf: buf.index(), index, mask }
            }
        })
    }
}

fn check_globals(kernel: &Kernel, globals: &[Value]) -> Result<(), String> {
    let params: Vec<_> = kernel.params().collect();
    if params.len() != globals.len() {
        return Err(format!("takes {} global buffer(s), {} given", params.len(), globals.len()));
    }
    for ((id, b), v) in params.iter().zip(globals) {
        let kind_ok = match &v.data {
            Data::Float(_) => v.dtype.is_float(),
            Data::Int(_) => v.dtype.is_int(),
            Data::Bool(_) => v.dtype == DType::Bool,
        };
        if v.dtype != b.dtype || v.numel() as i64 != b.len() || !kind_ok {
            return Err(format!(
                "global `{}` (b{}) is {}{:?} ({} elements); given a {} value of {} elements",
                b.name,
                id.0,
                b.dtype,
                b.shape,
                b.len(),
                v.dtype,
                v.numel()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- memory

const NONE: u64 = u64::MAX;
const MULTI: u64 = u64::MAX - 1;
const MULTI_LANE: u32 = u32::MAX;

enum Track {
    /// Read-only globals: nothing can race.
    None,
    /// Writable globals: writer and reader invocation per element (`NONE`, an id or `MULTI`).
    Global { writer: Vec<u64>, reader: Vec<u64> },
    /// Workgroup memory: last write (epoch, lane) and readers (epoch, lane or `MULTI_LANE`).
    Workgroup { cells: Vec<Cell> },
    /// Private memory (one copy per lane): the batch that last wrote each element.
    Private { stamp: Vec<u64> },
}

/// The race and initialization state of one workgroup-memory element.
#[derive(Clone, Copy, Default)]
struct Cell {
    /// The barrier interval of the last write (0: never; below `wg_start`: another workgroup's).
    w_epoch: u64,
    /// The barrier interval of the readers recorded in `r_lane`.
    r_epoch: u64,
    w_lane: u32,
    /// The one lane that read in `r_epoch`, or `MULTI_LANE`.
    r_lane: u32,
}

/// Calls `$go` with the offset and lane functions of `$offs` and `$act`, monomorphized for
/// each combination (the hot loops of workgroup memory then have no branches on them).
macro_rules! with_access {
    ($offs:expr, $act:expr, $go:ident($($arg:expr),*)) => {
        match ($offs, $act.lanes) {
            (Offs::Uniform(o), None) => $go($($arg,)* |_| *o, |j| j as u32),
            (Offs::Uniform(o), Some(l)) => $go($($arg,)* |_| *o, |j| l[j]),
            (Offs::Lanes(v), None) => $go($($arg,)* |j| v[j], |j| j as u32),
            (Offs::Lanes(v), Some(l)) => $go($($arg,)* |j| v[j], |j| l[j]),
        }
    };
}

/// Records the reads of `n` lanes of workgroup memory; returns the first lane (position) that
/// reads an uninitialized element or one another lane wrote in this barrier interval.
#[inline(always)]
fn wg_read(
    cells: &mut [Cell],
    n: usize,
    (epoch, wg_start): (u64, u64),
    off: impl Fn(usize) -> usize,
    lane: impl Fn(usize) -> u32,
) -> Option<usize> {
    for j in 0..n {
        let (c, l) = (&mut cells[off(j)], lane(j));
        if c.w_epoch < wg_start || (c.w_epoch == epoch && c.w_lane != l) {
            return Some(j);
        }
        if c.r_epoch != epoch {
            c.r_epoch = epoch;
            c.r_lane = l;
        } else if c.r_lane != l {
            c.r_lane = MULTI_LANE;
        }
    }
    None
}

/// Records the writes of `n` lanes; returns the first lane (position) that writes an element
/// another lane read or wrote in this barrier interval.
#[inline(always)]
fn wg_write(
    cells: &mut [Cell],
    n: usize,
    epoch: u64,
    off: impl Fn(usize) -> usize,
    lane: impl Fn(usize) -> u32,
) -> Option<usize> {
    for j in 0..n {
        let (c, l) = (&mut cells[off(j)], lane(j));
        if (c.w_epoch == epoch && c.w_lane != l) || (c.r_epoch == epoch && c.r_lane != l) {
            return Some(j);
        }
        c.w_epoch = epoch;
        c.w_lane = l;
    }
    None
}

struct Buf {
    name: String,
    id: usize,
    dtype: DType,
    space: Space,
    shape: Vec<i64>,
    strides: Vec<i64>,
    len: usize,
    data: Data,
    /// The position in the caller's globals.
    global: Option<usize>,
    track: Track,
}

impl Buf {
    fn what(&self) -> String {
        let space = match self.space {
            Space::Global => "global",
            Space::Workgroup => "workgroup",
            Space::Private => "private",
        };
        format!("{space} buffer `{}` (b{})", self.name, self.id)
    }

    fn unflat(&self, mut off: usize) -> Vec<i64> {
        if self.space == Space::Private && self.len > 0 {
            off %= self.len;
        }
        self.strides
            .iter()
            .zip(&self.shape)
            .map(|(&s, &d)| if s == 0 || d == 0 { 0 } else { (off as i64 / s) % d })
            .collect()
    }
}

fn filled(dtype: DType, n: usize, poison: bool) -> Data {
    if dtype.is_float() {
        Data::Float(vec![if poison { f64::NAN } else { 0.0 }; n])
    } else if dtype.is_int() {
        Data::Int(vec![0; n])
    } else {
        Data::Bool(vec![false; n])
    }
}

struct Memory {
    bufs: Vec<Buf>,
}

impl Memory {
    fn new(kernel: &Kernel, globals: &mut [Value]) -> Memory {
        let mut next_global = 0;
        let bufs = kernel
            .buffers
            .iter()
            .enumerate()
            .map(|(id, b)| {
                let len = b.len() as usize;
                let (data, global, track) = match b.space {
                    Space::Global => {
                        let g = next_global;
                        next_global += 1;
                        let data = std::mem::replace(&mut globals[g].data, Data::Bool(Vec::new()));
                        let track = if b.access == Access::Read {
                            Track::None
                        } else {
                            Track::Global { writer: vec![NONE; len], reader: vec![NONE; len] }
                        };
                        (data, Some(g), track)
                    }
                    Space::Workgroup => {
                        (filled(b.dtype, len, true), None, Track::Workgroup { cells: vec![Cell::default(); len] })
                    }
                    // Sized per batch by `alloc_private`.
                    Space::Private => (filled(b.dtype, 0, true), None, Track::Private { stamp: Vec::new() }),
                };
                Buf {
                    name: b.name.clone(),
                    id,
                    dtype: b.dtype,
                    space: b.space,
                    shape: b.shape.clone(),
                    strides: b.strides(),
                    len,
                    data,
                    global,
                    track,
                }
            })
            .collect();
        Memory { bufs }
    }

    fn private_elements(&self) -> u64 {
        self.bufs.iter().filter(|b| b.space == Space::Private).map(|b| b.len as u64).sum()
    }

    fn alloc_private(&mut self, lanes: usize) {
        for b in self.bufs.iter_mut().filter(|b| b.space == Space::Private) {
            b.data = filled(b.dtype, b.len * lanes, true);
            b.track = Track::Private { stamp: vec![0; b.len * lanes] };
        }
    }

    fn restore(&mut self, globals: &mut [Value]) {
        for b in &mut self.bufs {
            if let Some(g) = b.global {
                globals[g].data = std::mem::replace(&mut b.data, Data::Bool(Vec::new()));
            }
        }
    }
}

// ---------------------------------------------------------------- lanes

/// The active lanes: all `n` lanes of the batch (`lanes == None`), or the listed ones. Values
/// evaluated under it have `n` elements (one per active lane, in order) or one (uniform).
#[derive(Clone, Copy)]
struct Act<'a> {
    lanes: Option<&'a [u32]>,
    n: usize,
}

impl Act<'_> {
    fn lane(&self, j: usize) -> usize {
        match self.lanes {
            Some(l) => l[j] as usize,
            None => j,
        }
    }
}

/// Where each lane of a load or store goes: one element for all, or one per lane.
enum Offs {
    Uniform(usize),
    Lanes(Vec<usize>),
}

impl Offs {
    fn get(&self, j: usize) -> usize {
        match self {
            Offs::Uniform(o) => *o,
            Offs::Lanes(v) => v[j],
        }
    }
}

fn vec_value(dtype: DType, data: Data) -> Value {
    let n = data.numel();
    Value { dtype, shape: vec![n], data }
}

fn gather_data(data: &Data, offs: &[usize]) -> Data {
    match data {
        Data::Float(v) => Data::Float(offs.iter().map(|&o| v[o]).collect()),
        Data::Int(v) => Data::Int(offs.iter().map(|&o| v[o]).collect()),
        Data::Bool(v) => Data::Bool(offs.iter().map(|&o| v[o]).collect()),
    }
}

fn gather_lanes(data: &Data, lanes: &[u32]) -> Data {
    match data {
        Data::Float(v) => Data::Float(lanes.iter().map(|&o| v[o as usize]).collect()),
        Data::Int(v) => Data::Int(lanes.iter().map(|&o| v[o as usize]).collect()),
        Data::Bool(v) => Data::Bool(lanes.iter().map(|&o| v[o as usize]).collect()),
    }
}

/// A position in a vector: lane lists are `u32`, offsets `usize`.
trait Idx {
    fn idx(self) -> usize;
}

impl Idx for u32 {
    fn idx(self) -> usize {
        self as usize
    }
}

impl Idx for usize {
    fn idx(self) -> usize {
        self
    }
}

/// `dst[pos[j]] = src[j]` (or `src[0]` if `src` has one element).
fn scatter<P: Copy + Idx>(dst: &mut Data, pos: &[P], src: &Data) -> Result<(), String> {
    fn go<T: Copy, P: Copy + Idx>(d: &mut [T], pos: &[P], s: &[T]) {
        if s.len() == 1 {
            pos.iter().for_each(|&p| d[p.idx()] = s[0]);
        } else {
            pos.iter().zip(s).for_each(|(&p, &x)| d[p.idx()] = x);
        }
    }
    match (dst, src) {
        (Data::Float(d), Data::Float(s)) => go(d, pos, s),
        (Data::Int(d), Data::Int(s)) => go(d, pos, s),
        (Data::Bool(d), Data::Bool(s)) => go(d, pos, s),
        _ => return Err("internal interpreter error: mismatched element kinds (please report)".into()),
    }
    Ok(())
}

/// A value of `n` elements that is `v` at positions `pos` and 0 elsewhere.
fn spread(v: &Value, pos: &[u32], n: usize) -> Result<Value, String> {
    let mut data = filled(v.dtype, n, false);
    scatter(&mut data, pos, &v.data)?;
    Ok(vec_value(v.dtype, data))
}

/// `v` with `n` elements (a uniform value repeated).
fn widen(v: Cow<Value>, n: usize) -> Cow<Value> {
    if v.numel() == n {
        v
    } else {
        Cow::Owned(broadcast(&v, n))
    }
}

fn broadcast(v: &Value, n: usize) -> Value {
    let data = match &v.data {
        Data::Float(x) => Data::Float(vec![x[0]; n]),
        Data::Int(x) => Data::Int(vec![x[0]; n]),
        Data::Bool(x) => Data::Bool(vec![x[0]; n]),
    };
    vec_value(v.dtype, data)
}

/// Positions (in the active vector) where `c` is true and where it is false.
fn partition(c: &[bool]) -> (Vec<u32>, Vec<u32>) {
    let (mut t, mut f) = (Vec::with_capacity(c.len()), Vec::with_capacity(c.len()));
    for (j, &b) in c.iter().enumerate() {
        if b {
            t.push(j as u32)
        } else {
            f.push(j as u32)
        }
    }
    (t, f)
}

fn to_lanes(act: Act, pos: &[u32]) -> Vec<u32> {
    match act.lanes {
        Some(l) => pos.iter().map(|&p| l[p as usize]).collect(),
        None => pos.to_vec(),
    }
}

// ---------------------------------------------------------------- execution

/// What expression evaluation reads: registers and ids of the current batch.
struct Regs {
    vals: Vec<Value>,
    special: [Value; 6],
}

/// The current batch, for invocation ids and messages.
struct Cx {
    grid: [u64; 3],
    wg: [u64; 3],
    /// Invocations per workgroup.
    w: u64,
    /// Linear id of the batch's first workgroup.
    group_base: u64,
    /// Lanes in the batch.
    lanes: usize,
    /// Current barrier interval, and the first one of the current workgroup.
    epoch: u64,
    wg_start: u64,
    batch_no: u64,
}

fn split3(mut x: u64, dims: [u64; 3]) -> [u64; 3] {
    let a = x % dims[0];
    x /= dims[0];
    let b = x % dims[1];
    [a, b, x / dims[1]]
}

impl Cx {
    fn inv_of(&self, lane: usize) -> u64 {
        self.group_base * self.w + lane as u64
    }

    fn describe(&self, inv: u64) -> String {
        let g = split3(inv / self.w, self.grid);
        let t = split3(inv % self.w, self.wg);
        format!("invocation gid=({}, {}, {}) tid=({}, {}, {})", g[0], g[1], g[2], t[0], t[1], t[2])
    }

    fn lane(&self, lane: usize) -> String {
        self.describe(self.inv_of(lane))
    }
}

fn read_reg<'r>(v: &'r Value, act: Act, cx: &Cx) -> Result<Cow<'r, Value>, String> {
    let len = v.numel();
    if len == 1 {
        return Ok(Cow::Borrowed(v));
    }
    if len != cx.lanes {
        return Err("internal interpreter error: a variable read before it was set (please report)".into());
    }
    match act.lanes {
        None => Ok(Cow::Borrowed(v)),
        Some(l) => Ok(Cow::Owned(vec_value(v.dtype, gather_lanes(&v.data, l)))),
    }
}

fn eval<'r>(regs: &'r Regs, mem: &mut Memory, cx: &Cx, e: &'r CExpr, act: Act) -> Result<Cow<'r, Value>, String> {
    Ok(match e {
        CExpr::Lit(v) => Cow::Borrowed(v),
        CExpr::Reg(s) => return read_reg(&regs.vals[*s], act, cx),
        CExpr::Special(s) => return read_reg(&regs.special[*s], act, cx),
        CExpr::Unary(op, a, src) => {
            let a = eval(regs, mem, cx, a, act)?;
            Cow::Owned(lanes::unary(*op, &a).map_err(|m| format!("{m} in `{src}`"))?)
        }
        CExpr::Binary(op, a, b, src) => {
            let a = eval(regs, mem, cx, a, act)?;
            let b = eval(regs, mem, cx, b, act)?;
            let n = a.numel().max(b.numel());
            if let Some(v) = fast_binary(*op, &a, &b, n) {
                return Ok(Cow::Owned(v));
            }
            // Equal lengths take the graph interpreter's plain loop rather than broadcasting.
            let (a, b) = (widen(a, n), widen(b, n));
            match lanes::binary(*op, &a, &b, &[n]) {
                Ok(v) => Cow::Owned(v),
                Err(m) => {
                    let culprit = match (&b.data, op) {
                        (Data::Int(d), BinaryOp::Div | BinaryOp::Rem) => {
                            d.iter().position(|&x| x == 0).map(|j| if d.len() == 1 { 0 } else { j })
                        }
                        _ => None,
                    };
                    return Err(match culprit {
                        Some(j) => format!("{m} in `{src}` by {}", cx.lane(act.lane(j))),
                        None => format!("{m} in `{src}`"),
                    });
                }
            }
        }
        CExpr::Select(c, a, b) => {
            let cv = eval(regs, mem, cx, c, act)?;
            let cb = cv.bools()?;
            if cb.len() == 1 {
                return eval(regs, mem, cx, if cb[0] { a } else { b }, act);
            }
            let (tp, fp) = partition(cb);
            if fp.is_empty() {
                return eval(regs, mem, cx, a, act);
            }
            if tp.is_empty() {
                return eval(regs, mem, cx, b, act);
            }
            let (tl, fl) = (to_lanes(act, &tp), to_lanes(act, &fp));
            let av = eval(regs, mem, cx, a, Act { lanes: Some(&tl), n: tl.len() })?;
            let bv = eval(regs, mem, cx, b, Act { lanes: Some(&fl), n: fl.len() })?;
            let av = if av.numel() == 1 { av } else { Cow::Owned(spread(&av, &tp, act.n)?) };
            let bv = if bv.numel() == 1 { bv } else { Cow::Owned(spread(&bv, &fp, act.n)?) };
            Cow::Owned(lanes::select(&cv, &av, &bv, &[act.n])?)
        }
        CExpr::Cast(d, a) => {
            let a = eval(regs, mem, cx, a, act)?;
            if a.dtype == *d {
                return Ok(a);
            }
            Cow::Owned(lanes::cast(&a, *d)?)
        }
        CExpr::Load { buf, index, mask } => {
            let Some(m) = mask else {
                return Ok(Cow::Owned(load(regs, mem, cx, *buf, index, act)?));
            };
            let mv = eval(regs, mem, cx, m, act)?;
            let mb = mv.bools()?;
            let dtype = mem.bufs[*buf].dtype;
            let zero = || vec_value(dtype, filled(dtype, 1, false));
            if mb.len() == 1 {
                return Ok(Cow::Owned(if mb[0] { load(regs, mem, cx, *buf, index, act)? } else { zero() }));
            }
            if mb.iter().all(|&m| m) {
                return Ok(Cow::Owned(load(regs, mem, cx, *buf, index, act)?));
            }
            let (tp, fp) = partition(mb);
            if fp.is_empty() {
                Cow::Owned(load(regs, mem, cx, *buf, index, act)?)
            } else if tp.is_empty() {
                Cow::Owned(zero())
            } else {
                let tl = to_lanes(act, &tp);
                let v = load(regs, mem, cx, *buf, index, Act { lanes: Some(&tl), n: tl.len() })?;
                Cow::Owned(spread(&v, &tp, act.n)?)
            }
        }
    })
}

/// `f` over `x` and `y`, each of `n` elements or one (broadcast).
#[inline(always)]
fn zip2<T: Copy, R>(x: &[T], y: &[T], n: usize, f: impl Fn(T, T) -> R) -> Vec<R> {
    match (x.len() == n, y.len() == n) {
        (true, true) => x.iter().zip(y).map(|(&a, &b)| f(a, b)).collect(),
        (true, false) => x.iter().map(|&a| f(a, y[0])).collect(),
        (false, true) => y.iter().map(|&b| f(x[0], b)).collect(),
        (false, false) => vec![f(x[0], y[0])],
    }
}

/// The hot binary ops of index arithmetic and multiply-accumulate, computed by inlined loops
/// that are *the same functions* as [`lanes::binary`]'s (wrapping `i64` arithmetic wrapped to
/// the dtype, signed `i64` comparisons for every integer dtype but `u64`, `f64` arithmetic
/// rounded to `f32`/`f64`, IEEE comparisons, `bool` and/or), several times faster than its
/// function-pointer loops. Everything else (`div`, `rem`, `pow`, `max`/`min`, `u64`
/// comparisons, `f16`/`bf16`) goes to `lanes::binary`. The test `fast_binary_is_lanes_binary`
/// checks the two agree bit for bit.
fn fast_binary(op: BinaryOp, a: &Value, b: &Value, n: usize) -> Option<Value> {
    use BinaryOp::*;
    let dtype = a.dtype;
    let cmp = matches!(op, Eq | Ne | Lt | Le | Gt | Ge);
    macro_rules! compare {
        ($x:expr, $y:expr) => {
            Data::Bool(match op {
                Eq => zip2($x, $y, n, |p, q| p == q),
                Ne => zip2($x, $y, n, |p, q| p != q),
                Lt => zip2($x, $y, n, |p, q| p < q),
                Le => zip2($x, $y, n, |p, q| p <= q),
                Gt => zip2($x, $y, n, |p, q| p > q),
                Ge => zip2($x, $y, n, |p, q| p >= q),
                _ => return None,
            })
        };
    }
    let data = match (&a.data, &b.data) {
        (Data::Int(x), Data::Int(y)) if b.dtype == dtype => {
            if cmp {
                if dtype == DType::U64 {
                    return None;
                }
                compare!(x, y)
            } else {
                let mut v = match op {
                    Add => zip2(x, y, n, i64::wrapping_add),
                    Sub => zip2(x, y, n, i64::wrapping_sub),
                    Mul => zip2(x, y, n, i64::wrapping_mul),
                    _ => return None,
                };
                if !matches!(dtype, DType::I64 | DType::U64) {
                    v.iter_mut().for_each(|e| *e = lanes::wrap_int(dtype, *e));
                }
                Data::Int(v)
            }
        }
        (Data::Float(x), Data::Float(y)) if b.dtype == dtype && matches!(dtype, DType::F32 | DType::F64) => {
            if cmp {
                compare!(x, y)
            } else {
                let f32 = dtype == DType::F32;
                macro_rules! arith {
                    ($f:expr) => {
                        if f32 {
                            zip2(x, y, n, |p, q| $f(p, q) as f32 as f64)
                        } else {
                            zip2(x, y, n, $f)
                        }
                    };
                }
                Data::Float(match op {
                    Add => arith!(|p: f64, q: f64| p + q),
                    Sub => arith!(|p: f64, q: f64| p - q),
                    Mul => arith!(|p: f64, q: f64| p * q),
                    Div => arith!(|p: f64, q: f64| p / q),
                    _ => return None,
                })
            }
        }
        (Data::Bool(x), Data::Bool(y)) => Data::Bool(match op {
            And => zip2(x, y, n, |p, q| p && q),
            Or => zip2(x, y, n, |p, q| p || q),
            _ => return None,
        }),
        _ => return None,
    };
    let dtype = if cmp { DType::Bool } else { dtype };
    Some(vec_value(dtype, data))
}

/// Evaluates an index and resolves it to element offsets (checking bounds) for the active lanes.
fn offsets(
    regs: &Regs,
    mem: &mut Memory,
    cx: &Cx,
    buf: usize,
    index: &[CExpr],
    act: Act,
    what: &str,
) -> Result<Offs, String> {
    let idx = index.iter().map(|i| eval(regs, mem, cx, i, act)).collect::<Result<Vec<_>, _>>()?;
    let ints = idx.iter().map(|v| v.ints()).collect::<Result<Vec<_>, _>>()?;
    let b = &mem.bufs[buf];
    let oob = |j: usize| {
        let at: Vec<i64> = ints.iter().map(|v| if v.len() == 1 { v[0] } else { v[j] }).collect();
        format!(
            "out-of-bounds {what} of {} at index {at:?} (shape {:?}) by {}",
            b.what(),
            b.shape,
            cx.lane(act.lane(j))
        )
    };
    let mut offs = if ints.iter().all(|v| v.len() == 1) {
        let mut flat = 0i64;
        for (k, v) in ints.iter().enumerate() {
            if v[0] < 0 || v[0] >= b.shape[k] {
                return Err(oob(0));
            }
            flat += v[0] * b.strides[k];
        }
        Offs::Uniform(flat as usize)
    } else {
        let mut offs = vec![0usize; act.n];
        for (k, v) in ints.iter().enumerate() {
            let (d, s) = (b.shape[k] as u64, b.strides[k]);
            if v.len() == 1 {
                if v[0] as u64 >= d {
                    return Err(oob(0));
                }
                let add = (v[0] * s) as usize;
                offs.iter_mut().for_each(|o| *o += add);
            } else {
                // Check, then accumulate: two loops the compiler vectorizes.
                if v.iter().fold(false, |bad, &i| bad | (i as u64 >= d)) {
                    let j = v.iter().position(|&i| i as u64 >= d).unwrap_or(0);
                    return Err(oob(j));
                }
                offs.iter_mut().zip(v.iter()).for_each(|(o, &i)| *o = o.wrapping_add((i * s) as usize));
            }
        }
        Offs::Lanes(offs)
    };
    if b.space == Space::Private {
        let len = b.len;
        offs = Offs::Lanes((0..act.n).map(|j| act.lane(j) * len + offs.get(j)).collect());
    }
    Ok(offs)
}

fn load(regs: &Regs, mem: &mut Memory, cx: &Cx, buf: usize, index: &[CExpr], act: Act) -> Result<Value, String> {
    let offs = offsets(regs, mem, cx, buf, index, act, "load")?;
    let b = &mut mem.bufs[buf];
    // Taken out while checking so messages can describe the buffer; put back below (an error
    // ends the run, so it need not be).
    let mut track = std::mem::replace(&mut b.track, Track::None);
    let b = &*b;
    let at = |b: &Buf, off: usize| format!("{} at index {:?}", b.what(), b.unflat(off));
    match &mut track {
        Track::None => {}
        Track::Global { writer, reader } => {
            for j in 0..act.n {
                let (o, inv) = (offs.get(j), cx.inv_of(act.lane(j)));
                let w = writer[o];
                if w != NONE && w != inv {
                    let msg = format!(
                        "data race on {}: written by {} and read by {} (no grid-wide barrier orders them)",
                        at(b, o),
                        cx.describe(w),
                        cx.describe(inv)
                    );
                    return Err(msg);
                }
                let r = &mut reader[o];
                if *r == NONE {
                    *r = inv;
                } else if *r != inv {
                    *r = MULTI;
                }
            }
        }
        Track::Workgroup { cells } => {
            if let Some(j) = with_access!(&offs, act, wg_read(cells, act.n, (cx.epoch, cx.wg_start))) {
                let (o, lane) = (offs.get(j), act.lane(j));
                let c = cells[o];
                return Err(if c.w_epoch < cx.wg_start {
                    format!("read of uninitialized workgroup memory: {} by {}", at(b, o), cx.lane(lane))
                } else {
                    format!(
                        "data race on {}: written by {} and read by {} with no barrier between (missing barrier?)",
                        at(b, o),
                        cx.lane(c.w_lane as usize),
                        cx.lane(lane)
                    )
                });
            }
        }
        Track::Private { stamp } => {
            for j in 0..act.n {
                let o = offs.get(j);
                if stamp[o] != cx.batch_no {
                    let msg = format!("read of uninitialized private memory: {} by {}", at(b, o), cx.lane(act.lane(j)));
                    return Err(msg);
                }
            }
        }
    }
    let b = &mut mem.bufs[buf];
    b.track = track;
    let data = match &offs {
        Offs::Uniform(o) => gather_data(&b.data, &[*o]),
        Offs::Lanes(v) => gather_data(&b.data, v),
    };
    Ok(vec_value(b.dtype, data))
}

fn store(
    regs: &Regs,
    mem: &mut Memory,
    cx: &Cx,
    buf: usize,
    index: &[CExpr],
    value: &CExpr,
    act: Act,
) -> Result<(), String> {
    let v = eval(regs, mem, cx, value, act)?;
    let offs = offsets(regs, mem, cx, buf, index, act, "store")?;
    let b = &mut mem.bufs[buf];
    // Taken out while checking so messages can describe the buffer; put back below (an error
    // ends the run, so it need not be).
    let mut track = std::mem::replace(&mut b.track, Track::None);
    let b = &*b;
    let at = |b: &Buf, off: usize| format!("{} at index {:?}", b.what(), b.unflat(off));
    match &mut track {
        Track::None => {}
        Track::Global { writer, reader } => {
            for j in 0..act.n {
                let (o, inv) = (offs.get(j), cx.inv_of(act.lane(j)));
                let w = writer[o];
                if w != NONE && w != inv {
                    let msg = format!(
                        "data race on {}: stored by {} and by {} (two invocations write one element)",
                        at(b, o),
                        cx.describe(w),
                        cx.describe(inv)
                    );
                    return Err(msg);
                }
                let r = reader[o];
                if r != NONE && r != inv {
                    let by = if r == MULTI { "several invocations".to_string() } else { cx.describe(r) };
                    let msg = format!(
                        "data race on {}: read by {by} and written by {} (no grid-wide barrier orders them)",
                        at(b, o),
                        cx.describe(inv)
                    );
                    return Err(msg);
                }
                writer[o] = inv;
            }
        }
        Track::Workgroup { cells } => {
            if let Some(j) = with_access!(&offs, act, wg_write(cells, act.n, cx.epoch)) {
                let (o, lane) = (offs.get(j), act.lane(j));
                let c = cells[o];
                return Err(if c.w_epoch == cx.epoch && c.w_lane as usize != lane {
                    format!(
                        "data race on {}: written by {} and by {} with no barrier between (missing barrier?)",
                        at(b, o),
                        cx.lane(c.w_lane as usize),
                        cx.lane(lane)
                    )
                } else {
                    let by = if c.r_lane == MULTI_LANE {
                        "several invocations".to_string()
                    } else {
                        cx.lane(c.r_lane as usize)
                    };
                    format!(
                        "data race on {}: read by {by} and written by {} with no barrier between (missing barrier?)",
                        at(b, o),
                        cx.lane(lane)
                    )
                });
            }
        }
        Track::Private { stamp } => {
            for j in 0..act.n {
                stamp[offs.get(j)] = cx.batch_no;
            }
        }
    }
    let b = &mut mem.bufs[buf];
    b.track = track;
    match &offs {
        // Several lanes storing one element is a race (reported above), so one lane is active.
        Offs::Uniform(o) => scatter(&mut b.data, &[*o], &v.data),
        Offs::Lanes(p) => scatter(&mut b.data, p, &v.data),
    }
}

struct Exec {
    regs: Regs,
    mem: Memory,
    cx: Cx,
    launch_groups: u64,
    batched: bool,
}

fn uniform_i64(v: i64) -> Value {
    Value::int(DType::I64, vec![1], vec![v])
}

impl Exec {
    fn new(kernel: &Kernel, prog: &Program, globals: &mut [Value]) -> Exec {
        let mem = Memory::new(kernel, globals);
        let l = &kernel.launch;
        let grid = l.grid.map(|g| g as u64);
        let wg = l.workgroup.map(|g| g as u64);
        let batched = !prog.has_barrier && !kernel.buffers.iter().any(|b| b.space == Space::Workgroup);
        Exec {
            regs: Regs {
                vals: (0..prog.slots).map(|_| Value::bool(vec![0], Vec::new())).collect(),
                special: std::array::from_fn(|_| uniform_i64(0)),
            },
            mem,
            cx: Cx { grid, wg, w: wg.iter().product(), group_base: 0, lanes: 0, epoch: 0, wg_start: 0, batch_no: 0 },
            launch_groups: grid.iter().product(),
            batched,
        }
    }

    fn run(&mut self, prog: &Program) -> Result<(), String> {
        let (w, groups) = (self.cx.w, self.launch_groups);
        if w == 0 || groups == 0 {
            return Ok(());
        }
        let mut per_batch = 1;
        if self.batched {
            per_batch = (BATCH_LANES / w).max(1).min(groups);
            let private = self.mem.private_elements();
            if private > 0 {
                per_batch = per_batch.min((MAX_PRIVATE_ELEMENTS / (private * w)).max(1));
            }
        }
        if per_batch * w > u32::MAX as u64 {
            return Err(format!("a workgroup of {w} invocations is more than the interpreter runs"));
        }
        self.mem.alloc_private((per_batch * w) as usize);
        let mut base = 0;
        let mut last_groups = 0;
        while base < groups {
            let n_groups = per_batch.min(groups - base);
            self.start_batch(base, n_groups, n_groups != last_groups);
            last_groups = n_groups;
            let lanes = self.cx.lanes;
            exec_block(&mut self.regs, &mut self.mem, &mut self.cx, &prog.body, Act { lanes: None, n: lanes })?;
            base += n_groups;
        }
        Ok(())
    }

    /// Sets the ids of a batch of `n_groups` workgroups from `base`.
    fn start_batch(&mut self, base: u64, n_groups: u64, resized: bool) {
        let cx = &mut self.cx;
        let w = cx.w;
        let lanes = (n_groups * w) as usize;
        cx.group_base = base;
        cx.lanes = lanes;
        cx.batch_no += 1;
        cx.epoch += 1;
        cx.wg_start = cx.epoch;
        if resized {
            for a in 0..3 {
                self.regs.special[a] = if cx.wg[a] == 1 {
                    uniform_i64(0)
                } else {
                    let ids = (0..lanes as u64).map(|l| split3(l % w, cx.wg)[a] as i64).collect();
                    Value::int(DType::I64, vec![lanes], ids)
                };
            }
        }
        for a in 0..3 {
            self.regs.special[3 + a] = if n_groups == 1 || cx.grid[a] == 1 {
                uniform_i64(split3(base, cx.grid)[a] as i64)
            } else {
                let ids = (0..lanes as u64).map(|l| split3(base + l / w, cx.grid)[a] as i64).collect();
                Value::int(DType::I64, vec![lanes], ids)
            };
        }
    }
}

/// Writes `v` (evaluated under `act`) into a register of `lanes` lanes; with `keep`, inactive
/// lanes keep their values, otherwise they may be overwritten.
fn set_reg(reg: &mut Value, v: Cow<Value>, act: Act, lanes: usize, keep: bool) -> Result<(), String> {
    let all = act.lanes.is_none();
    if all || (!keep && v.numel() == 1) {
        *reg = v.into_owned();
        return Ok(());
    }
    let Some(l) = act.lanes else { unreachable!("handled above") };
    if reg.numel() != lanes || reg.dtype != v.dtype {
        *reg = if keep && reg.numel() == 1 && reg.dtype == v.dtype {
            broadcast(reg, lanes)
        } else {
            vec_value(v.dtype, filled(v.dtype, lanes, false))
        };
    }
    scatter(&mut reg.data, l, &v.data)
}

fn exec_block(regs: &mut Regs, mem: &mut Memory, cx: &mut Cx, stmts: &[CStmt], act: Act) -> Result<(), String> {
    for s in stmts {
        match s {
            CStmt::Set { slot, value } | CStmt::Assign { slot, value } => {
                let v = eval(regs, mem, cx, value, act)?;
                let v = Cow::Owned(v.into_owned());
                set_reg(&mut regs.vals[*slot], v, act, cx.lanes, matches!(s, CStmt::Assign { .. }))?;
            }
            CStmt::Store { buf, index, value } => store(regs, mem, cx, *buf, index, value, act)?,
            CStmt::If { cond, then, els } => {
                let c = eval(regs, mem, cx, cond, act)?;
                let cb = c.bools()?;
                if cb.len() == 1 {
                    let branch = if cb[0] { then } else { els };
                    exec_block(regs, mem, cx, branch, act)?;
                    continue;
                }
                let (tp, fp) = partition(cb);
                drop(c);
                for (pos, branch) in [(tp, then), (fp, els)] {
                    if pos.is_empty() || branch.is_empty() {
                        continue;
                    }
                    if pos.len() == act.n {
                        exec_block(regs, mem, cx, branch, act)?;
                    } else {
                        let l = to_lanes(act, &pos);
                        exec_block(regs, mem, cx, branch, Act { lanes: Some(&l), n: l.len() })?;
                    }
                }
            }
            CStmt::For { slot, dtype, extent, vector, body } => {
                let e = eval(regs, mem, cx, extent, act)?;
                let ext = e.ints()?.to_vec();
                drop(e);
                if *vector > 1 {
                    if let Some(j) = ext.iter().position(|&x| x % *vector as i64 != 0) {
                        let lane = if ext.len() == 1 { 0 } else { j };
                        return Err(format!(
                            "vector({vector}) loop extent {} is not a multiple of {vector} (at {})",
                            ext[j],
                            cx.lane(act.lane(lane))
                        ));
                    }
                }
                let set_var = |regs: &mut Regs, i: i64| {
                    let r = &mut regs.vals[*slot];
                    match &mut r.data {
                        Data::Int(d) if d.len() == 1 && r.dtype == *dtype => d[0] = lanes::wrap_int(*dtype, i),
                        _ => *r = Value::int(*dtype, vec![1], vec![i]),
                    }
                };
                if ext.len() == 1 {
                    for i in 0..ext[0] {
                        set_var(regs, i);
                        exec_block(regs, mem, cx, body, act)?;
                    }
                    continue;
                }
                let max = ext.iter().copied().max().unwrap_or(0);
                let mut live: Vec<u32> = Vec::new();
                let mut live_n = usize::MAX;
                for i in 0..max {
                    let n = ext.iter().filter(|&&x| x > i).count();
                    if n == 0 {
                        break;
                    }
                    set_var(regs, i);
                    if n == act.n {
                        exec_block(regs, mem, cx, body, act)?;
                        continue;
                    }
                    if n != live_n {
                        let pos: Vec<u32> = (0..act.n as u32).filter(|&j| ext[j as usize] > i).collect();
                        live = to_lanes(act, &pos);
                        live_n = n;
                    }
                    exec_block(regs, mem, cx, body, Act { lanes: Some(&live), n: live.len() })?;
                }
            }
            CStmt::Barrier => {
                if let Some(l) = act.lanes {
                    if l.len() != cx.lanes {
                        return Err(format!(
                            "barrier in non-uniform control flow: reached by {} of the {} invocations of the \
                             workgroup (first: {}, missing e.g. {})",
                            l.len(),
                            cx.lanes,
                            cx.lane(l[0] as usize),
                            cx.lane((0..cx.lanes).find(|x| !l.contains(&(*x as u32))).unwrap_or(0))
                        ));
                    }
                }
                cx.epoch += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
