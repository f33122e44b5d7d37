//! Kernel IR printed as CUDA C++: the CUDA dialect of the C-family printer (`nnc_cfamily`),
//! which walks the kernel; this file says only how CUDA C++ spells things.
//!
//! One legalized [`Kernel`] becomes one `extern "C" __global__` function ([`print_kernel`]); a
//! whole [`Program`] becomes one translation unit with one function per kernel
//! ([`print_program`]). The text is self-contained (no `#include`), so NVRTC needs no header
//! search path.
//!
//! - `__launch_bounds__` is the launch's workgroup size and enough blocks per SM for 768
//!   resident threads (a budget of 80 registers per thread); `tid.*`/`gid.*` are `threadIdx` and
//!   `blockIdx`. A grid whose y or z exceeds CUDA's 65,535 is launched linearised along x
//!   ([`launch_dims`]) and the kernel recovers the ids.
//! - Index arithmetic is `int` where legalization narrowed it to `i32` (every index of the
//!   kernel fits in 31 bits: that halves its registers and makes division by the constant
//!   strides 32-bit), `long long` otherwise; `i64` data is always `long long`.
//! - Global buffers are `T* __restrict__` parameters in [`Kernel::params`] order (`const` when
//!   only read; no `__restrict__` on a program buffer bound twice, see
//!   [`PrintOptions::aliased`]), workgroup buffers `__shared__` arrays, private buffers local
//!   arrays; every multi-index becomes a flat address through [`nnc_kernel::Buffer::flat_index`].
//! - Barriers are `__syncthreads()`, printed where the IR has them (the schedules put them in
//!   uniform control flow). The last five steps of a workgroup tree reduction (the schedule's
//!   `if (tid.x < 16) { p[tid] = p[tid] + p[tid + 16] } barrier` ... down to 1) are recognised
//!   and become `__shfl_down_sync` steps of the first warp, combining the same pairs in the same
//!   order as the tree, so results are bit-identical to it.
//!
//! Types. Global and shared memory hold every dtype in the host's layout (so the runtime copies
//! tensors as they are): `f16`/`bf16` as their 16 bits (`unsigned short`), `bool` as one byte.
//! In registers, `f16` and `bf16` values are `float`s rounded to their dtype after every op
//! (the graph interpreter computes in `f64` and rounds once per op); the conversions are
//! written out here (PTX `cvt` for `f16`, bit arithmetic for `bf16`), not taken from
//! `cuda_fp16.h`. `f64` is `double`, integers their C types.
//!
//! Semantics follow the graph interpreter (`nnc_interp::elementwise`): NaN-propagating
//! `max`/`min`, `relu(NaN) = NaN`, `sign(±0) = ±0`, round half to even (`rint`), float `rem`
//! is `fmod`, integer `/` and `%` truncate (C), float → int casts truncate and saturate with
//! NaN → 0, int → int casts wrap. Narrow integers (8 and 16 bits) wrap after every op; `neg`,
//! `abs` and `pow` of every integer wrap; `i32`/`i64` `+ - *` are C's signed operations (they
//! wrap on every NVIDIA GPU; the formal overflow UB lets NVVM simplify index arithmetic).
//! Selects left by legalization have no effects and are C's `?:`. Precise math functions only
//! (no `--use_fast_math`); NVRTC's default FMA contraction is kept.

use crate::CudaError;
use nnc_cfamily::{axis, buffer_name, comment, print_body, Dialect, PrintError, Printer, R};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{Literal, Special};
use nnc_kernel::program::Program;
use nnc_kernel::{Access, BufId, Expr, Kernel, LoopKind, Space, Stmt};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How the caller binds the kernel's buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Per global parameter (in [`Kernel::params`] order): the program binds the same buffer to
    /// another parameter too, so this one must not be `__restrict__` (nor `const`).
    pub aliased: Vec<bool>,
}

/// The launch of a kernel on CUDA: blocks per grid and threads per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// The IR's grid was linearised along x (its y or z exceeded 65,535).
    pub linearized: bool,
}

/// CUDA's grid limits: x up to 2^31 - 1, y and z up to 65,535.
const MAX_GRID_X: u64 = (1 << 31) - 1;
const MAX_GRID_YZ: u32 = 65_535;

/// How `kernel` is launched: the IR's grid as it is, or linearised along x when y or z exceed
/// CUDA's 65,535 (the printed kernel then recovers `gid.x/y/z` from `blockIdx.x`).
pub fn launch_dims(kernel: &Kernel) -> Result<LaunchDims, CudaError> {
    let l = &kernel.launch;
    let threads = l.threads_per_workgroup();
    if threads > 1024 || l.workgroup[2] > 64 {
        return Err(unsupported(kernel, format!("a workgroup of {:?} exceeds CUDA's 1024 threads", l.workgroup)));
    }
    if l.grid[1] <= MAX_GRID_YZ && l.grid[2] <= MAX_GRID_YZ && u64::from(l.grid[0]) <= MAX_GRID_X {
        return Ok(LaunchDims { grid: l.grid, block: l.workgroup, linearized: false });
    }
    let total = l.workgroups();
    if total > MAX_GRID_X {
        return Err(unsupported(kernel, format!("a grid of {:?} ({total} blocks) exceeds CUDA's 2^31 - 1", l.grid)));
    }
    Ok(LaunchDims { grid: [total as u32, 1, 1], block: l.workgroup, linearized: true })
}

fn unsupported(kernel: &Kernel, message: String) -> CudaError {
    CudaError::Unsupported { kernel: kernel.name.clone(), message }
}

impl From<PrintError> for CudaError {
    fn from(e: PrintError) -> CudaError {
        CudaError::Unsupported { kernel: e.kernel, message: e.message }
    }
}

/// The C name of kernel `index` of a program: `nnc_k{index}_` and the kernel's name with every
/// character outside `[A-Za-z0-9_]` replaced (at most 64 characters).
pub fn entry_name(index: usize, kernel: &Kernel) -> String {
    let clean: String =
        kernel.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).take(48).collect();
    format!("nnc_k{index}_{clean}")
}

/// One kernel (legalized for a CUDA device) as a self-contained CUDA C++ source: the helpers it
/// uses, then `extern "C" __global__ void {entry}(...)`.
pub fn print_kernel(kernel: &Kernel, entry: &str, options: &PrintOptions) -> Result<String, CudaError> {
    let (body, helpers) = print_function(kernel, entry, options)?;
    let mut s = String::from(PREAMBLE);
    s.push_str(&helpers_text(&helpers));
    s.push('\n');
    s.push_str(&body);
    Ok(s)
}

/// Every kernel of `program` in one translation unit, kernel `g` named
/// [`entry_name`]`(g, ..)`, with `__restrict__` dropped where the program binds one buffer to
/// two parameters of a kernel.
pub fn print_program(program: &Program) -> Result<String, CudaError> {
    let mut helpers = BTreeSet::new();
    let mut bodies = String::new();
    for (g, kernel) in program.kernels.iter().enumerate() {
        let options = program_options(program, g);
        let (body, used) = print_function(kernel, &entry_name(g, kernel), &options)?;
        helpers.extend(used);
        bodies.push('\n');
        bodies.push_str(&body);
    }
    let mut s = format!("// program {}: {} kernels\n", comment(&program.fused.name), program.kernels.len());
    s.push_str(PREAMBLE);
    s.push_str(&helpers_text(&helpers));
    s.push_str(&bodies);
    Ok(s)
}

/// The print options of kernel `g` of `program`: which parameters alias another.
pub fn program_options(program: &Program, g: usize) -> PrintOptions {
    let Some(group) = program.fused.groups.get(g) else { return PrintOptions::default() };
    let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
    PrintOptions { aliased: ids.iter().map(|id| ids.iter().filter(|&x| x == id).count() > 1).collect() }
}

const PREAMBLE: &str = "// Generated by nnc-cuda: self-contained CUDA C++ (no #include), for NVRTC.\n";

/// The `__global__` function, and the helpers it needs.
fn print_function(
    kernel: &Kernel,
    entry: &str,
    options: &PrintOptions,
) -> Result<(String, BTreeSet<&'static str>), CudaError> {
    if let Some(message) = kernel.buffers.iter().find_map(|b| low_precision_refusal(b.dtype)) {
        return Err(CudaError::Unsupported { kernel: kernel.name.clone(), message });
    }
    let dims = launch_dims(kernel)?;
    let cuda = Cuda { warp: None, shuffles: 0, candidates: shuffle_candidates(kernel) };
    let p = print_body(kernel, cuda)?;
    let mut params = Vec::new();
    let mut shared = String::new();
    let mut privates = String::new();
    for (i, b) in kernel.buffers.iter().enumerate() {
        let elem = storage_type(b.dtype);
        match b.space {
            Space::Global => {
                let k = kernel.params().position(|(id, _)| id.index() == i).unwrap_or(0);
                let aliased = options.aliased.get(k).copied().unwrap_or(false);
                let konst = if b.access == Access::Read && !aliased { "const " } else { "" };
                let restrict = if aliased { "" } else { " __restrict__" };
                params.push(format!("{konst}{elem}*{restrict} b{i} /* {} */", comment(&b.name).replace("*/", "* /")));
            }
            Space::Workgroup => {
                let _ = writeln!(shared, "  __shared__ {elem} b{i}[{}]; // {}", b.len().max(1), comment(&b.name));
            }
            Space::Private => {
                let _ = writeln!(privates, "  {elem} b{i}[{}]; // {}", b.len().max(1), comment(&b.name));
            }
        }
    }
    let mut s = String::new();
    let sch = &kernel.schedule;
    let _ = writeln!(s, "// kernel {}", comment(&kernel.name));
    let _ = writeln!(
        s,
        "// schedule {} workgroup_size={} tile={}x{}x{} grid=[{}, {}, {}] workgroup=[{}, {}, {}]{}",
        sch.strategy.name(),
        sch.workgroup_size,
        sch.tile[0],
        sch.tile[1],
        sch.tile[2],
        kernel.launch.grid[0],
        kernel.launch.grid[1],
        kernel.launch.grid[2],
        kernel.launch.workgroup[0],
        kernel.launch.workgroup[1],
        kernel.launch.workgroup[2],
        if dims.linearized { " (launched linearised along x)" } else { "" }
    );
    let threads = kernel.launch.threads_per_workgroup().max(1);
    let _ = writeln!(s, "extern \"C\" __global__ void __launch_bounds__({threads}, {}) {entry}(", min_blocks(threads));
    if params.is_empty() {
        s.push_str("  void");
    } else {
        s.push_str(&params.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join(",\n"));
    }
    s.push_str(") {\n");
    s.push_str(&shared);
    s.push_str(&privates);
    let id = if ids_fit_in_int(kernel) { "int" } else { "long long" };
    let _ = writeln!(s, "  const {id} tid_x = threadIdx.x, tid_y = threadIdx.y, tid_z = threadIdx.z;");
    if dims.linearized {
        let [gx, gy, _] = kernel.launch.grid.map(u64::from);
        let _ = writeln!(s, "  const long long nnc_block = blockIdx.x;");
        let _ = writeln!(
            s,
            "  const {id} gid_x = nnc_block % {gx}LL, gid_y = (nnc_block / {gx}LL) % {gy}LL, gid_z = nnc_block / {}LL;",
            gx * gy
        );
    } else {
        let _ = writeln!(s, "  const {id} gid_x = blockIdx.x, gid_y = blockIdx.y, gid_z = blockIdx.z;");
    }
    s.push_str(&p.out);
    s.push_str("}\n");
    Ok((s, p.helpers))
}

/// Whether the thread and block ids are declared `int`: when the launch has fewer than 2^31
/// invocations.
fn ids_fit_in_int(kernel: &Kernel) -> bool {
    kernel.launch.workgroups().saturating_mul(kernel.launch.threads_per_workgroup()) < 1 << 31
}

/// The second `__launch_bounds__` argument: enough resident blocks for 768 threads per SM, a
/// budget of 80 registers per thread. Measured on the shared models with ptxas 12.9: with the
/// thread count alone, ptxas trades spills for occupancy by itself (digits_cnn's pooled conv:
/// 40 registers and a 4-byte spill); with 1024 threads (64 registers) a resnet18 conv spills 16
/// bytes on sm_90; with 768 nothing spills.
fn min_blocks(threads: u64) -> u64 {
    (768 / threads.max(1)).max(1)
}

/// A register standing for a workgroup buffer inside the warp-shuffle form of a tree.
#[derive(Clone)]
struct WarpCtx {
    /// Buffer → (the invocation's own value, the value `step` lanes down).
    regs: BTreeMap<BufId, (String, String)>,
    step: i64,
}

/// The CUDA dialect: the state of the warp-shuffle form of tree reductions.
struct Cuda {
    /// Set while the steps of a tree are printed as shuffles.
    warp: Option<WarpCtx>,
    shuffles: u32,
    /// Workgroup buffers whose tree tails may become shuffles.
    candidates: BTreeSet<BufId>,
}

type P<'k> = Printer<'k, Cuda>;

/// The C type of a value of `d` in registers.
fn value_type(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => "float",
        DType::F64 => "double",
        DType::I8 => "signed char",
        DType::I16 => "short",
        DType::I32 => "int",
        DType::I64 => "long long",
        DType::U8 => "unsigned char",
        DType::U16 => "unsigned short",
        DType::U32 => "unsigned int",
        DType::U64 => "unsigned long long",
        DType::Bool => "bool",
        // Refused before anything is printed (`low_precision_refusal`).
        d if d.is_minifloat() => "float",
        _ => "signed char",
    }
}

/// Why the backend cannot hold `d`, if it cannot: float8/float4 and the 4- and 2-bit integers
/// have no conversions in the CUDA printer yet (the CPU backend and the interpreters have them).
fn low_precision_refusal(d: DType) -> Option<String> {
    (d.is_minifloat() || d.is_sub_byte_int())
        .then(|| format!("{d} values are not supported by the CUDA backend yet (cpu and interp hold them)"))
}

/// The C type of an element of `d` in memory (the host's layout).
fn storage_type(d: DType) -> &'static str {
    match d {
        DType::F16 | DType::BF16 => "unsigned short",
        DType::Bool => "unsigned char",
        d => value_type(d),
    }
}

/// Integer dtypes narrower than 32 bits (C promotes them to `int`).
fn narrow(d: DType) -> bool {
    matches!(d, DType::I8 | DType::I16 | DType::U8 | DType::U16)
}

/// The unsigned type integer arithmetic of `d` wraps in.
fn wide_unsigned(d: DType) -> &'static str {
    if matches!(d, DType::I64 | DType::U64) {
        "unsigned long long"
    } else {
        "unsigned int"
    }
}

fn is_signed_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::I16 | DType::I32 | DType::I64)
}

/// `Some(k)` for `tid.x + k` (and `tid.x`: 0), narrowed to `i32` or not.
fn is_tid_plus(e: &Expr) -> Option<i64> {
    let is_tid = |e: &Expr| match e {
        Expr::Special(Special::ThreadId(0)) => true,
        Expr::Cast(_, a) => matches!(**a, Expr::Special(Special::ThreadId(0))),
        _ => false,
    };
    match e {
        e if is_tid(e) => Some(0),
        Expr::Binary(BinaryOp::Add, a, b) if is_tid(a) => b.as_int(),
        _ => None,
    }
}

// ---- warp shuffles for the tail of a tree reduction ----

/// Workgroup buffers whose every load is at `[tid.x]`, `[tid.x + literal]` or `[0]`: the tails
/// of their trees may become shuffles (entries other than 0 are never read after).
fn shuffle_candidates(k: &Kernel) -> BTreeSet<BufId> {
    let [x, y, z] = k.launch.workgroup;
    if y != 1 || z != 1 || x < 32 || x % 32 != 0 {
        return BTreeSet::new();
    }
    let mut ok: BTreeSet<BufId> = k
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.space == Space::Workgroup && b.shape.len() == 1 && b.len() >= 32)
        .map(|(i, _)| BufId(i as u32))
        .collect();
    let mut check = |e: &Expr| {
        let _ = e.any(&mut |x| {
            if let Expr::Load { buf, index, mask, .. } = x {
                let fine = mask.is_none()
                    && index.len() == 1
                    && (index[0].as_int() == Some(0) || is_tid_plus(&index[0]).is_some());
                if !fine {
                    ok.remove(buf);
                }
            }
            false
        });
    };
    nnc_kernel::visit::visit_exprs(&k.body, &mut check);
    ok
}

/// Whether `then` is one step of a tree over `candidates` with distance `step`: `let`s and
/// stores to `b[tid.x]` whose values load only `b[tid.x]` and `b[tid.x + step]` of those
/// buffers (and nothing else). Returns the buffers it stores.
fn tree_step(then: &[Stmt], step: i64, candidates: &BTreeSet<BufId>) -> Option<BTreeSet<BufId>> {
    let mut stored = BTreeSet::new();
    let mut loaded = BTreeSet::new();
    let fine_expr = |e: &Expr, loaded: &mut BTreeSet<BufId>| {
        !e.any(&mut |x| match x {
            Expr::Load { buf, index, mask, .. } => {
                let at = if index.len() == 1 { is_tid_plus(&index[0]) } else { None };
                let good = mask.is_none() && candidates.contains(buf) && (at == Some(0) || at == Some(step));
                if good {
                    loaded.insert(*buf);
                }
                !good
            }
            Expr::Special(Special::GroupId(_)) => true,
            _ => false,
        })
    };
    for s in then {
        match s {
            Stmt::Let { value, .. } => {
                if !fine_expr(value, &mut loaded) {
                    return None;
                }
            }
            Stmt::Store { buf, index, value } => {
                if !candidates.contains(buf) || index.len() != 1 || is_tid_plus(&index[0]) != Some(0) {
                    return None;
                }
                if !fine_expr(value, &mut loaded) {
                    return None;
                }
                stored.insert(*buf);
            }
            _ => return None,
        }
    }
    (!stored.is_empty() && loaded.is_subset(&stored)).then_some(stored)
}

/// If `stmts[i..]` starts the last five steps of a tree (`if tid.x < 16 {..} barrier` ..
/// `if tid.x < 1 {..} barrier`, after a barrier), the buffers they reduce.
fn warp_tail(stmts: &[Stmt], i: usize, candidates: &BTreeSet<BufId>) -> Option<BTreeSet<BufId>> {
    if candidates.is_empty() || i == 0 || !matches!(stmts[i - 1], Stmt::Barrier) || stmts.len() < i + 10 {
        return None;
    }
    let mut bufs: Option<BTreeSet<BufId>> = None;
    for (k, step) in [16i64, 8, 4, 2, 1].into_iter().enumerate() {
        let Stmt::If { cond, then, els } = &stmts[i + 2 * k] else { return None };
        if !els.is_empty() || !matches!(stmts[i + 2 * k + 1], Stmt::Barrier) {
            return None;
        }
        let Expr::Binary(BinaryOp::Lt, a, b) = cond else { return None };
        if is_tid_plus(a) != Some(0) || b.as_int() != Some(step) {
            return None;
        }
        let stored = tree_step(then, step, candidates)?;
        match &bufs {
            None => bufs = Some(stored),
            Some(b) if *b == stored => {}
            Some(_) => return None,
        }
    }
    bufs
}

/// The last five tree steps as shuffles within the first warp; lane 0 writes the results to
/// entry 0, which is all that is read afterwards.
fn print_warp_tail(p: &mut P, stmts: &[Stmt], bufs: &BTreeSet<BufId>) -> R<()> {
    p.dialect.shuffles += 1;
    let n = p.dialect.shuffles;
    let shfl = p.helper("nnc_shfl_down");
    p.line("// the tree's last five steps: shuffles within the first warp (same pairs, same order)");
    p.line("if (tid_x < 32) {");
    p.indented(|p| {
        let mut regs = BTreeMap::new();
        for &b in bufs {
            let d = p.kernel.buffer(b).dtype;
            let own = format!("w{n}_b{}", b.index());
            let load = load_text(p, b, "tid_x");
            p.line(&format!("{} {own} = {load};", value_type(d)));
            regs.insert(b, (own, format!("w{n}_b{}_down", b.index())));
        }
        for (k, step) in [16i64, 8, 4, 2, 1].into_iter().enumerate() {
            let Stmt::If { then, .. } = &stmts[2 * k] else { return Err(p.err("warp tail mismatch")) };
            p.line("{");
            p.indented(|p| {
                for (&b, (own, down)) in &regs {
                    let d = p.kernel.buffer(b).dtype;
                    p.line(&format!("const {} {down} = {shfl}({own}, {step});", value_type(d)));
                }
                p.dialect.warp = Some(WarpCtx { regs: regs.clone(), step });
                let r = p.block(then);
                p.dialect.warp = None;
                r
            })?;
            p.line("}");
        }
        p.line("if (tid_x == 0) {");
        p.indented(|p| {
            for (&b, (own, _)) in &regs {
                let st = store_text(p, b, "0", own);
                p.line(&st);
            }
            Ok(())
        })?;
        p.line("}");
        Ok(())
    })?;
    p.line("}");
    p.line("__syncthreads();");
    Ok(())
}

/// `b{buf}[{flat}] = {value}` with the value converted to the storage type.
fn store_text(p: &mut P, buf: BufId, flat: &str, value: &str) -> String {
    let name = buffer_name(buf);
    let v = match p.kernel.buffer(buf).dtype {
        DType::F16 => format!("{}({value})", p.helper("nnc_f2h")),
        DType::BF16 => format!("{}({value})", p.helper("nnc_f2bf")),
        DType::Bool => format!("(unsigned char)({value})"),
        _ => value.to_string(),
    };
    format!("{name}[{flat}] = {v};")
}

/// The load of `b{buf}[{flat}]` as a value of its dtype.
fn load_text(p: &mut P, buf: BufId, flat: &str) -> String {
    let name = buffer_name(buf);
    match p.kernel.buffer(buf).dtype {
        DType::F16 => format!("{}({name}[{flat}])", p.helper("nnc_h2f")),
        DType::BF16 => format!("{}({name}[{flat}])", p.helper("nnc_bf2f")),
        DType::Bool => format!("({name}[{flat}] != 0)"),
        _ => format!("{name}[{flat}]"),
    }
}

/// Rounds a float computed in `float` to `f16`/`bf16`.
fn round(p: &mut P, x: String, d: DType) -> String {
    match d {
        DType::F16 => format!("{}({x})", p.helper("nnc_rh")),
        DType::BF16 => format!("{}({x})", p.helper("nnc_rbf")),
        _ => x,
    }
}

impl Dialect for Cuda {
    const LAZY_SELECT: bool = true;

    fn value_type(_: &mut P, dtype: DType) -> R<&'static str> {
        Ok(value_type(dtype))
    }

    fn let_line(name: &str, ty: &str, value: &str) -> String {
        format!("const {ty} {name} = {value};")
    }

    fn var_line(name: &str, ty: &str, value: &str) -> String {
        format!("{ty} {name} = {value};")
    }

    fn for_open(_: &mut P, v: &str, ty: &str, n: &str, kind: LoopKind) -> Vec<String> {
        let mut lines = Vec::new();
        match kind {
            LoopKind::Serial => {}
            LoopKind::Unroll => lines.push("#pragma unroll".to_string()),
            LoopKind::Vector(w) => lines.push(format!("#pragma unroll // vector({w})")),
        }
        lines.push(format!("for ({ty} {v} = 0; {v} < {n}; ++{v}) {{"));
        lines
    }

    fn barrier() -> &'static str {
        "__syncthreads();"
    }

    fn special(_: &mut P, s: Special) -> String {
        match s {
            Special::ThreadId(a) => format!("tid_{}", axis(a)),
            Special::GroupId(a) => format!("gid_{}", axis(a)),
        }
    }

    fn special_dtype(p: &P) -> DType {
        if ids_fit_in_int(p.kernel) {
            DType::I32
        } else {
            DType::I64
        }
    }

    fn literal(_: &mut P, l: Literal) -> R<String> {
        Ok(match l {
            Literal::Bool(b) => b.to_string(),
            Literal::Float(v, d) => float_literal(v, d),
            Literal::Int(v, d) if d.is_float() => float_literal(v as f64, d),
            Literal::Int(v, d) => int_literal(v, d),
        })
    }

    fn load(p: &mut P, buf: BufId, index: &[Expr]) -> R<String> {
        if let Some(w) = &p.dialect.warp {
            if let Some((own, down)) = w.regs.get(&buf) {
                let at = if index.len() == 1 { is_tid_plus(&index[0]) } else { None };
                return match at {
                    Some(0) => Ok(own.clone()),
                    Some(s) if s == w.step => Ok(down.clone()),
                    _ => Err(p.err("unexpected load in a tree step")),
                };
            }
        }
        let flat = p.expr(&p.kernel.buffer(buf).flat_index(index))?;
        Ok(load_text(p, buf, &flat))
    }

    fn store(p: &mut P, buf: BufId, index: &[Expr], value: &str) -> R<Vec<String>> {
        if let Some(w) = &p.dialect.warp {
            if let Some((own, _)) = w.regs.get(&buf) {
                return Ok(vec![format!("{own} = {value};")]);
            }
        }
        let flat = p.expr(&p.kernel.buffer(buf).flat_index(index))?;
        Ok(vec![store_text(p, buf, &flat, value)])
    }

    fn select(c: &str, a: &str, b: &str) -> String {
        format!("({c} ? {a} : {b})")
    }

    fn unary(p: &mut P, op: UnaryOp, x: &str, d: DType) -> R<String> {
        use UnaryOp::*;
        let bad = |p: &P| p.err(format!("`{}` on {}", op.name(), d.name()));
        if d == DType::Bool {
            return match op {
                Not => Ok(format!("(!{x})")),
                _ => Err(bad(p)),
            };
        }
        if d.is_int() {
            let (t, w) = (value_type(d), wide_unsigned(d));
            let signed = is_signed_int(d);
            return Ok(match op {
                Neg => format!("(({t})(({w})0 - ({w})({x})))"),
                Abs if signed => format!("{}<{t}>({x})", p.helper("nnc_iabs")),
                Abs => x.to_string(),
                Sign => format!("{}<{t}>({x})", p.helper("nnc_sign")),
                Relu => format!("{}<{t}>({x})", p.helper("nnc_relu")),
                Not => format!("(({t})(~({x})))"),
                _ => return Err(bad(p)),
            });
        }
        let dbl = d == DType::F64;
        // `float` functions end in `f`; f16/bf16 compute in float and round.
        let f = |name: &str| if dbl { format!("{name}({x})") } else { format!("{name}f({x})") };
        let one = if dbl { "1.0" } else { "1.0f" };
        let r = match op {
            Neg => format!("(-{x})"),
            Abs => f("fabs"),
            Sign => format!("{}<{}>({x})", p.helper("nnc_sign"), value_type(d)),
            Relu => format!("{}<{}>({x})", p.helper("nnc_relu"), value_type(d)),
            Exp => f("exp"),
            Log => f("log"),
            Sqrt => f("sqrt"),
            Rsqrt => format!("({one} / {})", f("sqrt")),
            Reciprocal => format!("({one} / {x})"),
            Sin => f("sin"),
            Cos => f("cos"),
            Tan => f("tan"),
            Asin => f("asin"),
            Acos => f("acos"),
            Atan => f("atan"),
            Sinh => f("sinh"),
            Cosh => f("cosh"),
            Tanh => f("tanh"),
            Asinh => f("asinh"),
            Acosh => f("acosh"),
            Atanh => f("atanh"),
            Sigmoid => {
                if dbl {
                    format!("(1.0 / (1.0 + exp(-{x})))")
                } else {
                    format!("(1.0f / (1.0f + expf(-{x})))")
                }
            }
            Erf => f("erf"),
            Floor => f("floor"),
            Ceil => f("ceil"),
            Round => f("rint"),
            IsNan => return Ok(format!("({x} != {x})")),
            IsInf => return Ok(format!("({} == {})", f("fabs"), float_literal(f64::INFINITY, d))),
            Not => return Err(bad(p)),
        };
        Ok(round(p, r, d))
    }

    fn binary(p: &mut P, op: BinaryOp, (a, b): (&Expr, &Expr), x: &str, y: &str, d: DType) -> R<String> {
        use BinaryOp::*;
        // Two literals would be computed in `int`.
        let x = if d == DType::I64 && matches!(a, Expr::Lit(_)) && matches!(b, Expr::Lit(_)) {
            format!("(long long){x}")
        } else {
            x.to_string()
        };
        let bad = |p: &P| p.err(format!("`{}` on {}", op.name(), d.name()));
        let infix = |o: &str| format!("({x} {o} {y})");
        match op {
            Eq => return Ok(infix("==")),
            Ne => return Ok(infix("!=")),
            Lt => return Ok(infix("<")),
            Le => return Ok(infix("<=")),
            Gt => return Ok(infix(">")),
            Ge => return Ok(infix(">=")),
            _ => {}
        }
        if d == DType::Bool {
            return match op {
                And => Ok(infix("&&")),
                Or => Ok(infix("||")),
                Xor => Ok(infix("!=")),
                _ => Err(bad(p)),
            };
        }
        if d.is_int() && matches!(op, And | Or | Xor) {
            let o = match op {
                And => "&",
                Or => "|",
                _ => "^",
            };
            return Ok(format!("(({})(({x}) {o} ({y})))", value_type(d)));
        }
        if matches!(op, And | Or | Xor) {
            return Err(bad(p));
        }
        if d.is_int() {
            let (t, w) = (value_type(d), wide_unsigned(d));
            let wrap = narrow(d);
            let arith = |o: &str| {
                if wrap {
                    format!("(({t})(({w})({x}) {o} ({w})({y})))")
                } else {
                    format!("({x} {o} {y})")
                }
            };
            return Ok(match op {
                Add => arith("+"),
                Sub => arith("-"),
                Mul => arith("*"),
                Div if wrap => format!("(({t})({x} / {y}))"),
                Rem if wrap => format!("(({t})({x} % {y}))"),
                Div => infix("/"),
                Rem => infix("%"),
                Max => format!("{}<{t}>({x}, {y})", p.helper("nnc_max")),
                Min => format!("{}<{t}>({x}, {y})", p.helper("nnc_min")),
                Pow => format!("{}<{t}, {w}>({x}, {y})", p.helper("nnc_ipow")),
                _ => return Err(bad(p)),
            });
        }
        let dbl = d == DType::F64;
        let r = match op {
            Add => infix("+"),
            Sub => infix("-"),
            Mul => infix("*"),
            Div => infix("/"),
            Rem => format!("{}({x}, {y})", if dbl { "fmod" } else { "fmodf" }),
            Pow => format!("{}({x}, {y})", if dbl { "pow" } else { "powf" }),
            Max => format!("{}<{}>({x}, {y})", p.helper("nnc_max"), value_type(d)),
            Min => format!("{}<{}>({x}, {y})", p.helper("nnc_min"), value_type(d)),
            _ => return Err(bad(p)),
        };
        Ok(round(p, r, d))
    }

    fn cast(p: &mut P, x: &str, from: DType, to: DType) -> R<String> {
        if from == to {
            return Ok(x.to_string());
        }
        let t = value_type(to);
        if to == DType::Bool {
            return Ok(match from {
                DType::F64 => format!("({x} != 0.0)"),
                f if f.is_float() => format!("({x} != 0.0f)"),
                _ => format!("({x} != 0)"),
            });
        }
        if let Some(message) = low_precision_refusal(to).or_else(|| low_precision_refusal(from)) {
            return Err(p.err(message));
        }
        if from == DType::Bool {
            return Ok(format!("(({t})({x}))"));
        }
        if to.is_float() {
            return Ok(match to {
                DType::F32 | DType::F64 => format!("(({t})({x}))"),
                DType::F16 if from == DType::F32 || from == DType::BF16 => round(p, x.to_string(), to),
                DType::F16 => format!("{}((double)({x}))", p.helper("nnc_rh_d")),
                _ => {
                    let f =
                        if from == DType::F32 || from == DType::F16 { x.to_string() } else { format!("(float)({x})") };
                    round(p, f, to)
                }
            });
        }
        if from.is_float() {
            // Truncate toward zero, saturate, NaN → 0 (through double, exact for every float).
            return Ok(match to {
                DType::I64 => format!("{}((double)({x}))", p.helper("nnc_f2i64")),
                DType::U64 => format!("{}((double)({x}))", p.helper("nnc_f2u64")),
                _ => {
                    let (lo, hi) = match to {
                        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
                        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
                        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
                        DType::U8 => (0.0, u8::MAX as f64),
                        DType::U16 => (0.0, u16::MAX as f64),
                        _ => (0.0, u32::MAX as f64),
                    };
                    format!("{}<{t}>((double)({x}), {lo:?}, {hi:?})", p.helper("nnc_f2int"))
                }
            });
        }
        // Integer to integer wraps.
        Ok(format!("(({t})({x}))"))
    }

    fn helper_deps(name: &str) -> &'static [&'static str] {
        helper_deps(name)
    }

    fn block_hook(p: &mut P, stmts: &[Stmt], i: usize) -> R<Option<usize>> {
        if p.dialect.warp.is_some() {
            return Ok(None);
        }
        match warp_tail(stmts, i, &p.dialect.candidates) {
            Some(bufs) => {
                print_warp_tail(p, &stmts[i..i + 10], &bufs)?;
                Ok(Some(10))
            }
            None => Ok(None),
        }
    }
}

/// A float literal of dtype `d` (rounded to it), as a value in registers.
fn float_literal(v: f64, d: DType) -> String {
    if d == DType::F64 {
        if v.is_finite() {
            let s = format!("{:?}", v.abs());
            return if v < 0.0 || (v == 0.0 && v.is_sign_negative()) { format!("(-{s})") } else { s };
        }
        let bits: u64 = if v.is_nan() {
            0x7ff8_0000_0000_0000
        } else if v > 0.0 {
            0x7ff0_0000_0000_0000
        } else {
            0xfff0_0000_0000_0000
        };
        return format!("__longlong_as_double({:#x}LL)", bits as i64);
    }
    let f: f32 = match d {
        DType::F16 => f32::from(half::f16::from_f64(v)),
        DType::BF16 => f32::from(half::bf16::from_f64(v)),
        _ => v as f32,
    };
    if f.is_finite() {
        let s = format!("{:?}f", f.abs());
        if f < 0.0 || (f == 0.0 && f.is_sign_negative()) {
            format!("(-{s})")
        } else {
            s
        }
    } else {
        let bits: u32 = if f.is_nan() {
            0x7fc0_0000
        } else if f > 0.0 {
            0x7f80_0000
        } else {
            0xff80_0000
        };
        format!("__int_as_float({:#x})", bits as i32)
    }
}

/// An integer literal of dtype `d`, wrapped to it.
fn int_literal(v: i64, d: DType) -> String {
    match d {
        DType::I64 => {
            if v == i64::MIN {
                "(-9223372036854775807LL - 1LL)".to_string()
            } else if v < 0 {
                format!("(-{}LL)", -v)
            } else if v <= i32::MAX as i64 {
                // Index literals stay short; every i64 expression has an i64 operand beside them.
                format!("{v}")
            } else {
                format!("{v}LL")
            }
        }
        DType::I32 => {
            let v = v as i32;
            if v == i32::MIN {
                "(-2147483647 - 1)".to_string()
            } else if v < 0 {
                format!("(-{})", -v)
            } else {
                format!("{v}")
            }
        }
        DType::U32 => format!("{}u", v as u32),
        DType::U64 => format!("{}ull", v as u64),
        DType::I8 => format!("((signed char){})", v as i8),
        DType::I16 => format!("((short){})", v as i16),
        DType::U8 => format!("((unsigned char){})", v as u8),
        DType::U16 => format!("((unsigned short){})", v as u16),
        DType::Bool => (v != 0).to_string(),
        d => float_literal(v as f64, d),
    }
}

fn helper_deps(name: &str) -> &'static [&'static str] {
    match name {
        "nnc_rh" => &["nnc_f2h", "nnc_h2f"],
        "nnc_rh_d" => &["nnc_h2f"],
        "nnc_rbf" => &["nnc_f2bf", "nnc_bf2f"],
        _ => &[],
    }
}

fn helpers_text(helpers: &BTreeSet<&'static str>) -> String {
    helpers.iter().map(|h| helper_text(h)).collect()
}

fn helper_text(name: &str) -> &'static str {
    match name {
        "nnc_h2f" => {
            "static __device__ __forceinline__ float nnc_h2f(unsigned short h) {\n\
             \x20 float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return f;\n}\n"
        }
        "nnc_f2h" => {
            "// float -> f16 bits, round to nearest even.\n\
             static __device__ __forceinline__ unsigned short nnc_f2h(float f) {\n\
             \x20 unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); return h;\n}\n"
        }
        "nnc_rh" => {
            "// f16 values live in float registers, rounded to f16 after every op.\n\
             static __device__ __forceinline__ float nnc_rh(float f) { return nnc_h2f(nnc_f2h(f)); }\n"
        }
        "nnc_rh_d" => {
            "static __device__ __forceinline__ float nnc_rh_d(double d) {\n\
             \x20 unsigned short h; asm(\"cvt.rn.f16.f64 %0, %1;\" : \"=h\"(h) : \"d\"(d)); return nnc_h2f(h);\n}\n"
        }
        "nnc_bf2f" => {
            "static __device__ __forceinline__ float nnc_bf2f(unsigned short b) { return __int_as_float((int)b << 16); }\n"
        }
        "nnc_f2bf" => {
            "// float -> bf16 bits, round to nearest even, NaN stays NaN.\n\
             static __device__ __forceinline__ unsigned short nnc_f2bf(float f) {\n\
             \x20 unsigned int u = (unsigned int)__float_as_int(f);\n\
             \x20 if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);\n\
             \x20 u += 0x7fffu + ((u >> 16) & 1u);\n\
             \x20 return (unsigned short)(u >> 16);\n}\n"
        }
        "nnc_rbf" => {
            "// bf16 values live in float registers, rounded to bf16 after every op.\n\
             static __device__ __forceinline__ float nnc_rbf(float f) { return nnc_bf2f(nnc_f2bf(f)); }\n"
        }
        "nnc_max" => {
            "// max/min propagate NaN (for integers, x != x is false).\n\
             template <typename T> static __device__ __forceinline__ T nnc_max(T a, T b) {\n\
             \x20 return (a != a || b != b) ? (T)(a + b) : (a > b ? a : b);\n}\n"
        }
        "nnc_min" => {
            "template <typename T> static __device__ __forceinline__ T nnc_min(T a, T b) {\n\
             \x20 return (a != a || b != b) ? (T)(a + b) : (a < b ? a : b);\n}\n"
        }
        "nnc_relu" => {
            "// relu(NaN) = NaN.\n\
             template <typename T> static __device__ __forceinline__ T nnc_relu(T x) { return (x > (T)0 || x != x) ? x : (T)0; }\n"
        }
        "nnc_sign" => {
            "// sign(±0) = ±0, sign(NaN) = NaN.\n\
             template <typename T> static __device__ __forceinline__ T nnc_sign(T x) {\n\
             \x20 return x > (T)0 ? (T)1 : (x < (T)0 ? (T)(-1) : x);\n}\n"
        }
        "nnc_iabs" => {
            "// abs of the most negative integer wraps to itself (as numpy).\n\
             template <typename T> static __device__ __forceinline__ T nnc_iabs(T x) {\n\
             \x20 return x < (T)0 ? (T)(0ull - (unsigned long long)x) : x;\n}\n"
        }
        "nnc_ipow" => {
            "// integer pow by squaring, wrapping (exponents are >= 0).\n\
             template <typename T, typename W> static __device__ __forceinline__ T nnc_ipow(T x, T y) {\n\
             \x20 W r = 1, b = (W)x;\n\
             \x20 for (T e = y; e > (T)0; e = (T)(e >> 1)) { if (e & 1) r = r * b; b = b * b; }\n\
             \x20 return (T)r;\n}\n"
        }
        "nnc_f2int" => {
            "// float -> integer of at most 32 bits: truncates, saturates, NaN -> 0.\n\
             template <typename T> static __device__ __forceinline__ T nnc_f2int(double x, double lo, double hi) {\n\
             \x20 return x != x ? (T)0 : (T)fmin(fmax(x, lo), hi);\n}\n"
        }
        "nnc_f2i64" => {
            "static __device__ __forceinline__ long long nnc_f2i64(double x) {\n\
             \x20 if (x != x) return 0;\n\
             \x20 if (x >= 9223372036854775808.0) return 9223372036854775807LL;\n\
             \x20 if (x <= -9223372036854775808.0) return -9223372036854775807LL - 1LL;\n\
             \x20 return (long long)x;\n}\n"
        }
        "nnc_f2u64" => {
            "static __device__ __forceinline__ unsigned long long nnc_f2u64(double x) {\n\
             \x20 if (x != x || x <= 0.0) return 0;\n\
             \x20 if (x >= 18446744073709551616.0) return 18446744073709551615ull;\n\
             \x20 return (unsigned long long)x;\n}\n"
        }
        "nnc_shfl_down" => {
            "// __shfl_down_sync over the whole warp, for every register type the IR has.\n\
             static __device__ __forceinline__ float nnc_shfl_down(float x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ double nnc_shfl_down(double x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ int nnc_shfl_down(int x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ unsigned int nnc_shfl_down(unsigned int x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ long long nnc_shfl_down(long long x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ unsigned long long nnc_shfl_down(unsigned long long x, int d) { return __shfl_down_sync(0xffffffffu, x, d); }\n\
             static __device__ __forceinline__ bool nnc_shfl_down(bool x, int d) { return __shfl_down_sync(0xffffffffu, (int)x, d) != 0; }\n\
             static __device__ __forceinline__ signed char nnc_shfl_down(signed char x, int d) { return (signed char)__shfl_down_sync(0xffffffffu, (int)x, d); }\n\
             static __device__ __forceinline__ short nnc_shfl_down(short x, int d) { return (short)__shfl_down_sync(0xffffffffu, (int)x, d); }\n\
             static __device__ __forceinline__ unsigned char nnc_shfl_down(unsigned char x, int d) { return (unsigned char)__shfl_down_sync(0xffffffffu, (int)x, d); }\n\
             static __device__ __forceinline__ unsigned short nnc_shfl_down(unsigned short x, int d) { return (unsigned short)__shfl_down_sync(0xffffffffu, (int)x, d); }\n"
        }
        _ => "",
    }
}
