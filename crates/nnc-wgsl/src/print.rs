//! Kernel IR printed as a WGSL compute shader: the WGSL dialect of the C-family printer
//! (`nnc_cfamily`), which walks the kernel; this file says only how WGSL spells things.
//!
//! One legalized [`Kernel`] becomes one module with one entry point, `main`:
//! - `@workgroup_size` is the launch's workgroup; `tid`/`gid` are `local_invocation_id` and
//!   `workgroup_id`;
//! - global buffers are `@group(0) @binding(k)` storage arrays in [`Kernel::params`] order,
//!   workgroup buffers `var<workgroup>` arrays, private buffers function-local arrays;
//! - every multi-index becomes a flat address through [`nnc_kernel::Buffer::flat_index`].
//!
//! Types. WGSL has no 64-bit types by default, so index arithmetic is `i32` (legalization
//! proved every index fits and narrowed it), and `i64` data is held in `i32`: in a global buffer
//! as (low, high) word pairs, the same bytes as the host's little-endian `i64`, of which the
//! shader reads the low word and writes the sign-extended pair (the runtime checks that uploaded
//! values fit); `u64` likewise in `u32`, stored as (low, 0) pairs. `i8`/`i16` compute in `i32`
//! and `u8`/`u16` in `u32`, wrapped to their width after every arithmetic op, and are stored one
//! per 32-bit word; `bool` is stored as `u32`. `f16` needs the adapter's `SHADER_F16` and
//! computes each op in `f32`, rounding once to `f16` (what the graph interpreter does in `f64`).
//! `f64` values that never reach a global buffer (Resize's coordinate math) compute in `f32`;
//! `f64` and `bf16` tensors are rejected. Integer division or remainder by a literal zero (index
//! math of kernels over empty tensors, which never run) is printed as `0`, the interpreter's
//! value: naga rejects the division.
//!
//! Semantics follow the graph interpreter (`nnc_interp::elementwise`): NaN-propagating
//! `max`/`min`, round half to even, `erf` through a series and a rational approximation,
//! truncating integer division, saturating float-to-int casts with NaN → 0. WGSL's `select()`
//! evaluates both sides: legalization has already made every select with an effect (a load) an
//! `if`, and every masked load too. Loops llvmpipe would stop are split by legalization as well
//! (`Device::max_loop_iterations`). Barriers are printed where the IR has them; no
//! `enable subgroups;`.

use crate::WgslError;
use nnc_cfamily::{axis, buffer_name, comment, print_body, Dialect, PrintError, Printer, R};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{Literal, Special};
use nnc_kernel::{Access, BufId, Expr, Kernel, LoopKind, Space};
use std::fmt::Write;

/// What the target offers, and how the runtime binds the kernel's buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// The adapter has `SHADER_F16`: `f16` buffers and values are allowed.
    pub f16: bool,
    /// Per global parameter (in [`Kernel::params`] order), declare it `read_write` even if the
    /// kernel only reads it (a program buffer bound twice, once written, must be writable in
    /// every binding).
    pub force_read_write: Vec<bool>,
}

/// Per global parameter of a kernel bound to program buffers `ids` (reads then writes):
/// whether it must be declared `read_write` although the kernel only reads it. A program buffer
/// bound twice must be writable in every binding (wgpu forbids read-only and read-write uses of
/// one buffer in one dispatch).
pub fn bound_twice(ids: &[usize]) -> Vec<bool> {
    ids.iter().map(|id| ids.iter().filter(|&x| x == id).count() > 1).collect()
}

/// Every kernel of `program` (legalized for a WGSL device) as validated WGSL: `f16` only where
/// the program has half-precision buffers (the adapter then needs `SHADER_F16`). For
/// `nnc compile --target wgsl -o`.
pub fn print_program(program: &nnc_kernel::program::Program) -> Result<Vec<String>, WgslError> {
    let f16 = program.fused.buffers.iter().any(|b| b.dtype == nnc_ir::DType::F16);
    program
        .fused
        .groups
        .iter()
        .zip(&program.kernels)
        .map(|(group, kernel)| {
            let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
            compile_kernel(kernel, &PrintOptions { f16, force_read_write: bound_twice(&ids) })
        })
        .collect()
}

/// Prints `kernel` as WGSL and validates it with naga.
pub fn compile_kernel(kernel: &Kernel, options: &PrintOptions) -> Result<String, WgslError> {
    let text = print_kernel(kernel, options)?;
    validate(&kernel.name, &text)?;
    Ok(text)
}

/// Parses and validates `wgsl` with naga; errors name `kernel` and the WGSL line.
pub fn validate(kernel: &str, wgsl: &str) -> Result<naga::Module, WgslError> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| {
        let line = e.location(wgsl).map(|l| l.line_number as usize).unwrap_or(0);
        naga_error(kernel, wgsl, line, e.emit_to_string(wgsl))
    })?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    validator.validate(&module).map_err(|e| {
        let line = e.location(wgsl).map(|l| l.line_number as usize).unwrap_or(0);
        naga_error(kernel, wgsl, line, e.emit_to_string(wgsl))
    })?;
    Ok(module)
}

fn naga_error(kernel: &str, wgsl: &str, line: usize, message: String) -> WgslError {
    let text = wgsl.lines().nth(line.saturating_sub(1)).unwrap_or("").trim().to_string();
    WgslError::Naga { kernel: kernel.to_string(), line, text, message }
}

impl From<PrintError> for WgslError {
    fn from(e: PrintError) -> WgslError {
        WgslError::Unsupported { kernel: e.kernel, message: e.message }
    }
}

/// Prints `kernel` (legalized for a WGSL device) as a WGSL compute shader (not validated; see
/// [`compile_kernel`]).
pub fn print_kernel(kernel: &Kernel, options: &PrintOptions) -> Result<String, WgslError> {
    check_buffers(kernel)?;
    let mut p = print_body(kernel, Wgsl { options: options.clone(), uses_f16: false })?;
    let mut decls = String::new();
    let mut privates = String::new();
    for (i, b) in kernel.buffers.iter().enumerate() {
        let elem = storage_type(&mut p, b.dtype, b.space)?;
        match b.space {
            Space::Global => {
                let k = kernel.params().position(|(id, _)| id.index() == i).unwrap_or(0);
                let rw = b.access != Access::Read || options.force_read_write.get(k).copied().unwrap_or(false);
                let mode = if rw { "read_write" } else { "read" };
                let _ = writeln!(
                    decls,
                    "@group(0) @binding({k}) var<storage, {mode}> b{i}: array<{elem}>; // {}",
                    comment(&b.name)
                );
            }
            Space::Workgroup => {
                let _ =
                    writeln!(decls, "var<workgroup> b{i}: array<{elem}, {}>; // {}", b.len().max(1), comment(&b.name));
            }
            Space::Private => {
                let _ = writeln!(privates, "  var b{i}: array<{elem}, {}>; // {}", b.len().max(1), comment(&b.name));
            }
        }
    }
    let mut s = String::new();
    if p.dialect.uses_f16 {
        s.push_str("enable f16;\n\n");
    }
    let _ = writeln!(s, "// kernel {}", comment(&kernel.name));
    let sch = &kernel.schedule;
    let _ = writeln!(
        s,
        "// schedule {} workgroup_size={} tile={}x{}x{} grid=[{}, {}, {}]",
        sch.strategy.name(),
        sch.workgroup_size,
        sch.tile[0],
        sch.tile[1],
        sch.tile[2],
        kernel.launch.grid[0],
        kernel.launch.grid[1],
        kernel.launch.grid[2]
    );
    s.push_str(&decls);
    for h in &p.helpers {
        s.push('\n');
        s.push_str(helper_text(h));
    }
    let [x, y, z] = kernel.launch.workgroup;
    let _ = write!(
        s,
        "\n@compute @workgroup_size({x}, {y}, {z})\n\
         fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{\n"
    );
    s.push_str(&privates);
    s.push_str(&p.out);
    s.push_str("}\n");
    Ok(s)
}

/// WGSL indexes a global buffer with an `i32`: every buffer (in 32-bit words) must be
/// addressable by one.
fn check_buffers(kernel: &Kernel) -> Result<(), WgslError> {
    for b in &kernel.buffers {
        let words = if wide(b.dtype) && b.space == Space::Global { 2 } else { 1 };
        if b.len().saturating_mul(words) >= 1 << 31 {
            return Err(WgslError::Unsupported {
                kernel: kernel.name.clone(),
                message: format!(
                    "buffer `{}` has {} elements; WGSL indices are i32 (at most 2^31 - 1 words)",
                    b.name,
                    b.len()
                ),
            });
        }
    }
    Ok(())
}

/// How a value of a dtype is held in a shader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    F32,
    F16,
    I32,
    U32,
    Bool,
}

/// The WGSL dialect: its options, and whether the kernel turned out to use `f16`.
struct Wgsl {
    options: PrintOptions,
    uses_f16: bool,
}

type P<'k> = Printer<'k, Wgsl>;

fn repr(p: &mut P, d: DType) -> R<Repr> {
    Ok(match d {
        DType::F32 => Repr::F32,
        DType::F16 => {
            if !p.dialect.options.f16 {
                return Err(p.err("f16 needs an adapter with SHADER_F16"));
            }
            p.dialect.uses_f16 = true;
            Repr::F16
        }
        DType::I64 | DType::I32 | DType::I16 | DType::I8 => Repr::I32,
        DType::U64 | DType::U32 | DType::U16 | DType::U8 => Repr::U32,
        DType::Bool => Repr::Bool,
        // f64 values that never leave the invocation's registers or the kernel's own
        // workgroup/private memory (Resize's coordinate math) compute in f32; f64 tensors are
        // rejected in `storage_type`.
        DType::F64 => Repr::F32,
        DType::BF16 => return Err(p.err("bf16 is not supported: WGSL has no bf16")),
        d if d.is_minifloat() => return Err(p.err(format!("{d} is not supported: WGSL has no float8 or float4"))),
        d => return Err(p.err(format!("{d} is not supported: WGSL has no 4- or 2-bit integers"))),
    })
}

fn storage_type(p: &mut P, d: DType, space: Space) -> R<&'static str> {
    if d == DType::F64 && space == Space::Global {
        return Err(p.err("f64 is not supported: WGSL has no f64"));
    }
    Ok(match repr(p, d)? {
        Repr::Bool => "u32",
        r => repr_name(r),
    })
}

/// `x` (a value of `dtype`'s representation) wrapped to the width of a narrow integer.
fn wrap(x: String, dtype: DType) -> String {
    match dtype {
        DType::I8 => format!("(({x} << 24u) >> 24u)"),
        DType::I16 => format!("(({x} << 16u) >> 16u)"),
        DType::U8 => format!("({x} & 0xffu)"),
        DType::U16 => format!("({x} & 0xffffu)"),
        _ => x,
    }
}

impl Dialect for Wgsl {
    const LAZY_SELECT: bool = false;

    fn value_type(p: &mut P, dtype: DType) -> R<&'static str> {
        Ok(repr_name(repr(p, dtype)?))
    }

    fn let_line(name: &str, ty: &str, value: &str) -> String {
        format!("let {name}: {ty} = {value};")
    }

    fn var_line(name: &str, ty: &str, value: &str) -> String {
        format!("var {name}: {ty} = {value};")
    }

    fn for_open(_: &mut P, v: &str, ty: &str, n: &str, kind: LoopKind) -> Vec<String> {
        let note = match kind {
            LoopKind::Serial => String::new(),
            LoopKind::Unroll => " // unroll".to_string(),
            LoopKind::Vector(w) => format!(" // vector({w})"),
        };
        let zero = if ty == "u32" { "0u" } else { "0i" };
        vec![format!("for (var {v}: {ty} = {zero}; {v} < {n}; {v}++) {{{note}")]
    }

    fn barrier() -> &'static str {
        "workgroupBarrier();"
    }

    fn special(_: &mut P, s: Special) -> String {
        match s {
            Special::ThreadId(a) => format!("i32(lid.{})", axis(a)),
            Special::GroupId(a) => format!("i32(wid.{})", axis(a)),
        }
    }

    fn special_dtype(_: &P) -> DType {
        DType::I32
    }

    fn literal(p: &mut P, l: Literal) -> R<String> {
        Ok(match l {
            Literal::Bool(b) => b.to_string(),
            Literal::Float(v, d) => match repr(p, d)? {
                Repr::F32 => f32_literal(p, v as f32),
                Repr::F16 => {
                    let h = half::f16::from_f64(v);
                    if h.is_finite() {
                        format!("{:?}h", f32::from(h))
                    } else {
                        format!("f16({})", f32_literal(p, f32::from(h)))
                    }
                }
                _ => return Err(p.err(format!("float literal of dtype {}", d.name()))),
            },
            Literal::Int(v, d) => match repr(p, d)? {
                // i64 values beyond i32 saturate (reduction identities such as i64::MIN).
                Repr::I32 => {
                    let v = v.clamp(i32::MIN as i64, i32::MAX as i64);
                    if v == i32::MIN as i64 {
                        "i32(-2147483648)".to_string()
                    } else if v < 0 {
                        format!("(-{}i)", -v)
                    } else {
                        format!("{v}i")
                    }
                }
                // u64 values beyond u32 saturate (`Literal::Int` holds a u64 as its bits).
                Repr::U32 if d == DType::U64 => format!("{}u", (v as u64).min(u32::MAX as u64)),
                Repr::U32 => format!("{}u", v as u32),
                Repr::F32 => format!("{v}.0f"),
                _ => return Err(p.err(format!("integer literal of dtype {}", d.name()))),
            },
        })
    }

    fn load(p: &mut P, buf: BufId, index: &[Expr]) -> R<String> {
        let b = p.kernel.buffer(buf);
        let (dtype, space) = (b.dtype, b.space);
        let flat = p.expr(&b.flat_index(index))?;
        let name = buffer_name(buf);
        Ok(match repr(p, dtype)? {
            Repr::Bool => format!("({name}[{flat}] != 0u)"),
            Repr::I32 | Repr::U32 if wide(dtype) && space == Space::Global => format!("{name}[2i * ({flat})]"),
            _ => format!("{name}[{flat}]"),
        })
    }

    fn store(p: &mut P, buf: BufId, index: &[Expr], v: &str) -> R<Vec<String>> {
        let b = p.kernel.buffer(buf);
        let (dtype, space) = (b.dtype, b.space);
        let flat = p.expr(&b.flat_index(index))?;
        let name = buffer_name(buf);
        Ok(match repr(p, dtype)? {
            Repr::Bool => vec![format!("{name}[{flat}] = select(0u, 1u, {v});")],
            Repr::I32 if dtype == DType::I64 && space == Space::Global => {
                let (t, a) = (p.temp(), p.temp());
                vec![
                    format!("let {t}: i32 = {v};"),
                    format!("let {a}: i32 = 2i * ({flat});"),
                    format!("{name}[{a}] = {t};"),
                    format!("{name}[{a} + 1i] = {t} >> 31u;"),
                ]
            }
            Repr::U32 if dtype == DType::U64 && space == Space::Global => {
                let a = p.temp();
                vec![
                    format!("let {a}: i32 = 2i * ({flat});"),
                    format!("{name}[{a}] = {v};"),
                    format!("{name}[{a} + 1i] = 0u;"),
                ]
            }
            _ => vec![format!("{name}[{flat}] = {v};")],
        })
    }

    fn select(c: &str, a: &str, b: &str) -> String {
        format!("select({b}, {a}, {c})")
    }

    fn unary(p: &mut P, op: UnaryOp, x: &str, dtype: DType) -> R<String> {
        use UnaryOp::*;
        let repr = repr(p, dtype)?;
        let bad = |p: &P| p.err(format!("`{}` on {}", op.name(), dtype.name()));
        match repr {
            Repr::Bool => match op {
                Not => Ok(format!("(!{x})")),
                _ => Err(bad(p)),
            },
            Repr::I32 | Repr::U32 => {
                let s = match (op, repr) {
                    (Neg, Repr::I32) => format!("(-{x})"),
                    (Neg, _) => format!("(0u - {x})"),
                    (Abs, Repr::I32) => format!("abs({x})"),
                    (Abs, _) => x.to_string(),
                    (Sign, Repr::I32) => format!("sign({x})"),
                    (Sign, _) => format!("select(0u, 1u, {x} > 0u)"),
                    (Relu, Repr::I32) => format!("max({x}, 0i)"),
                    (Relu, _) => x.to_string(),
                    // A u64's complement does not fit the 32 bits its values are held in.
                    (Not, _) if dtype != DType::U64 => format!("(~{x})"),
                    _ => return Err(bad(p)),
                };
                Ok(wrap(s, dtype))
            }
            Repr::F32 | Repr::F16 => {
                let h = repr == Repr::F16;
                // f16 computes in f32 and rounds once.
                let a = if h { format!("f32({x})") } else { x.to_string() };
                let f = match op {
                    Neg => format!("(-{a})"),
                    Abs => format!("abs({a})"),
                    Sign => format!("{}({a})", p.helper("nnc_sign")),
                    Relu => format!("{}({a})", p.helper("nnc_relu")),
                    Exp => format!("exp({a})"),
                    Log => format!("log({a})"),
                    Sqrt => format!("sqrt({a})"),
                    Rsqrt => format!("(1.0f / sqrt({a}))"),
                    Reciprocal => format!("(1.0f / {a})"),
                    Sin => format!("sin({a})"),
                    Cos => format!("cos({a})"),
                    Tan => format!("tan({a})"),
                    Asin => format!("asin({a})"),
                    Acos => format!("acos({a})"),
                    Atan => format!("atan({a})"),
                    Sinh => format!("sinh({a})"),
                    Cosh => format!("cosh({a})"),
                    Tanh => format!("{}({a})", p.helper("nnc_tanh")),
                    Asinh => format!("asinh({a})"),
                    Acosh => format!("acosh({a})"),
                    Atanh => format!("atanh({a})"),
                    Sigmoid => format!("{}({a})", p.helper("nnc_sigmoid")),
                    Erf => format!("{}({a})", p.helper("nnc_erf")),
                    Floor => format!("floor({a})"),
                    Ceil => format!("ceil({a})"),
                    Round => format!("round({a})"),
                    IsNan => return Ok(format!("{}({a})", p.helper("nnc_isnan"))),
                    IsInf => return Ok(format!("{}({a})", p.helper("nnc_isinf"))),
                    Not => return Err(bad(p)),
                };
                Ok(if h { format!("f16({f})") } else { f })
            }
        }
    }

    fn binary(p: &mut P, op: BinaryOp, _: (&Expr, &Expr), x: &str, y: &str, dtype: DType) -> R<String> {
        use BinaryOp::*;
        let repr = repr(p, dtype)?;
        let bad = |p: &P| p.err(format!("`{}` on {}", op.name(), dtype.name()));
        let cmp = |o: &str| format!("({x} {o} {y})");
        if repr == Repr::Bool {
            return match op {
                And => Ok(cmp("&&")),
                Or => Ok(cmp("||")),
                Xor | Ne => Ok(cmp("!=")),
                Eq => Ok(cmp("==")),
                // false < true
                Lt => Ok(format!("(u32({x}) < u32({y}))")),
                Le => Ok(format!("(u32({x}) <= u32({y}))")),
                Gt => Ok(format!("(u32({x}) > u32({y}))")),
                Ge => Ok(format!("(u32({x}) >= u32({y}))")),
                _ => Err(bad(p)),
            };
        }
        match op {
            Eq => return Ok(cmp("==")),
            Ne => return Ok(cmp("!=")),
            Lt => return Ok(cmp("<")),
            Le => return Ok(cmp("<=")),
            Gt => return Ok(cmp(">")),
            Ge => return Ok(cmp(">=")),
            // Bitwise on integers (the 32 bits they are held in).
            And => return Ok(cmp("&")),
            Or => return Ok(cmp("|")),
            Xor => return Ok(cmp("^")),
            _ => {}
        }
        match repr {
            Repr::I32 | Repr::U32 => {
                // naga rejects an integer division by a literal zero (index math of a kernel
                // over an empty tensor, which never runs); the interpreter's x / 0 and x % 0
                // are 0.
                let zero_divisor = y == "0i" || y == "0u";
                let s = match op {
                    Add => cmp("+"),
                    Sub => cmp("-"),
                    Mul => cmp("*"),
                    Div | Rem if zero_divisor => y.to_string(),
                    Div => cmp("/"),
                    Rem => cmp("%"),
                    Max => format!("max({x}, {y})"),
                    Min => format!("min({x}, {y})"),
                    Pow if repr == Repr::I32 => format!("{}({x}, {y})", p.helper("nnc_ipow")),
                    Pow => format!("{}({x}, {y})", p.helper("nnc_upow")),
                    _ => return Err(bad(p)),
                };
                Ok(wrap(s, dtype))
            }
            _ => {
                let h = repr == Repr::F16;
                let (a, b) =
                    if h { (format!("f32({x})"), format!("f32({y})")) } else { (x.to_string(), y.to_string()) };
                let f = match op {
                    Add => format!("({a} + {b})"),
                    Sub => format!("({a} - {b})"),
                    Mul => format!("({a} * {b})"),
                    Div => format!("({a} / {b})"),
                    Rem => format!("({a} % {b})"),
                    Pow => format!("{}({a}, {b})", p.helper("nnc_pow")),
                    Max => format!("{}({a}, {b})", p.helper("nnc_max")),
                    Min => format!("{}({a}, {b})", p.helper("nnc_min")),
                    _ => return Err(bad(p)),
                };
                Ok(if h { format!("f16({f})") } else { f })
            }
        }
    }

    fn cast(p: &mut P, x: &str, from: DType, to: DType) -> R<String> {
        let (rf, rt) = (repr(p, from)?, repr(p, to)?);
        if from == to {
            return Ok(x.to_string());
        }
        let float = |r: Repr| matches!(r, Repr::F32 | Repr::F16);
        Ok(match (rf, rt) {
            (_, Repr::Bool) => match rf {
                Repr::Bool => x.to_string(),
                Repr::F32 => format!("({x} != 0.0f)"),
                Repr::F16 => format!("({x} != 0.0h)"),
                Repr::I32 => format!("({x} != 0i)"),
                Repr::U32 => format!("({x} != 0u)"),
            },
            (Repr::Bool, _) => {
                let one = Self::literal(p, Literal::from_f64(1.0, to))?;
                let zero = Self::literal(p, Literal::zero(to))?;
                format!("select({zero}, {one}, {x})")
            }
            (f, t) if float(f) && float(t) => format!("{}({x})", repr_name(t)),
            (_, t) if float(t) => format!("{}({x})", repr_name(t)),
            (f, t) if float(f) => {
                // Truncate toward zero, saturate to the target's range, NaN → 0.
                let a = if f == Repr::F16 { format!("f32({x})") } else { x.to_string() };
                match (t, to) {
                    (Repr::I32, DType::I8) => format!("i32(clamp({}({a}), -128.0f, 127.0f))", p.helper("nnc_nan0")),
                    (Repr::I32, DType::I16) => {
                        format!("i32(clamp({}({a}), -32768.0f, 32767.0f))", p.helper("nnc_nan0"))
                    }
                    (Repr::I32, _) => format!("{}({a})", p.helper("nnc_f2i")),
                    (_, DType::U8) => format!("u32(clamp({}({a}), 0.0f, 255.0f))", p.helper("nnc_nan0")),
                    (_, DType::U16) => format!("u32(clamp({}({a}), 0.0f, 65535.0f))", p.helper("nnc_nan0")),
                    _ => format!("{}({a})", p.helper("nnc_f2u")),
                }
            }
            // Integer to integer wraps: reinterpret the 32-bit word, then narrow.
            (_, t) => {
                let s = if rf == t { x.to_string() } else { format!("{}({x})", repr_name(t)) };
                wrap(s, to)
            }
        })
    }

    fn helper_deps(name: &str) -> &'static [&'static str] {
        helper_deps(name)
    }
}

/// A 64-bit integer dtype: held in a global buffer as (low, high) 32-bit word pairs.
fn wide(d: DType) -> bool {
    matches!(d, DType::I64 | DType::U64)
}

fn repr_name(r: Repr) -> &'static str {
    match r {
        Repr::F32 => "f32",
        Repr::F16 => "f16",
        Repr::I32 => "i32",
        Repr::U32 => "u32",
        Repr::Bool => "bool",
    }
}

/// An `f32` literal; infinities and NaN come from helpers (WGSL has no non-finite literals).
fn f32_literal(p: &mut P, v: f32) -> String {
    if v.is_nan() {
        format!("{}()", p.helper("nnc_nan"))
    } else if v.is_infinite() {
        let inf = p.helper("nnc_inf");
        if v > 0.0 {
            format!("{inf}()")
        } else {
            format!("(-{inf}())")
        }
    } else if v < 0.0 {
        format!("(-{:?}f)", -v)
    } else {
        format!("{v:?}f")
    }
}

fn helper_deps(name: &str) -> &'static [&'static str] {
    match name {
        "nnc_nan" => &["nnc_inf_bits"],
        "nnc_inf" => &["nnc_inf_bits"],
        "nnc_max" | "nnc_min" => &["nnc_isnan", "nnc_nan", "nnc_inf_bits"],
        "nnc_relu" | "nnc_sign" | "nnc_nan0" | "nnc_f2i" | "nnc_f2u" => &["nnc_isnan"],
        "nnc_pow" => &["nnc_isnan", "nnc_nan", "nnc_inf_bits"],
        _ => &[],
    }
}

fn helper_text(name: &str) -> &'static str {
    match name {
        "nnc_inf_bits" => {
            "// Non-finite constants come from a variable: WGSL has no non-finite literals.\n\
             var<private> nnc_inf_bits: u32 = 0x7f800000u;\n"
        }
        "nnc_inf" => "fn nnc_inf() -> f32 { return bitcast<f32>(nnc_inf_bits); }\n",
        "nnc_nan" => "fn nnc_nan() -> f32 { return bitcast<f32>(nnc_inf_bits | 0x400000u); }\n",
        "nnc_isnan" => "fn nnc_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }\n",
        "nnc_isinf" => "fn nnc_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }\n",
        "nnc_max" => {
            "fn nnc_max(a: f32, b: f32) -> f32 {\n  if (nnc_isnan(a) || nnc_isnan(b)) { return nnc_nan(); }\n  return max(a, b);\n}\n"
        }
        "nnc_min" => {
            "fn nnc_min(a: f32, b: f32) -> f32 {\n  if (nnc_isnan(a) || nnc_isnan(b)) { return nnc_nan(); }\n  return min(a, b);\n}\n"
        }
        "nnc_relu" => "fn nnc_relu(x: f32) -> f32 { return select(0.0f, x, x > 0.0f || nnc_isnan(x)); }\n",
        "nnc_sign" => {
            "// sign(±0) = ±0, sign(NaN) = NaN.\n\
             fn nnc_sign(x: f32) -> f32 { return select(sign(x), x, x == 0.0f || nnc_isnan(x)); }\n"
        }
        "nnc_tanh" => {
            "// tanh through exp overflows to NaN on some drivers: it is ±1 in f32 beyond |x| = 10.\n\
             fn nnc_tanh(x: f32) -> f32 { return select(tanh(x), sign(x), abs(x) > 10.0f); }\n"
        }
        "nnc_sigmoid" => "fn nnc_sigmoid(x: f32) -> f32 { return 1.0f / (1.0f + exp(-x)); }\n",
        "nnc_erf" => {
            "// erf: its Maclaurin series below 0.5 (relative error < 1e-8), else 1 - erfc with\n\
             // Numerical Recipes' Chebyshev fit (relative error < 1.2e-7).\n\
             fn nnc_erf(x: f32) -> f32 {\n\
             \x20 let z = abs(x);\n\
             \x20 if (z < 0.5f) {\n\
             \x20   let q = x * x;\n\
             \x20   return 1.1283791671f * x * (1.0f + q * (-0.3333333333f + q * (0.1f + q * (-0.0238095238f + q * (0.0046296296f + q * (-0.0007575758f + q * 0.0001068376f))))));\n\
             \x20 }\n\
             \x20 let t = 1.0f / (1.0f + 0.5f * z);\n\
             \x20 let r = t * exp(-z * z - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f)))))))));\n\
             \x20 return sign(x) * (1.0f - r);\n\
             }\n"
        }
        "nnc_pow" => {
            "// powf: negative bases with integral exponents, x^0 = 1, NaN propagates.\n\
             fn nnc_pow(x: f32, y: f32) -> f32 {\n\
             \x20 if (y == 0.0f) { return 1.0f; }\n\
             \x20 if (nnc_isnan(x) || nnc_isnan(y)) { return x + y; }\n\
             \x20 if (x == 1.0f) { return 1.0f; }\n\
             \x20 let r = pow(abs(x), y);\n\
             \x20 if (x < 0.0f) {\n\
             \x20   if (floor(y) != y) { return nnc_nan(); }\n\
             \x20   if (abs(y) < 16777216.0f && (i32(abs(y)) & 1i) == 1i) { return -r; }\n\
             \x20 }\n\
             \x20 return r;\n\
             }\n"
        }
        "nnc_ipow" => {
            "fn nnc_ipow(x: i32, y: i32) -> i32 {\n\
             \x20 var r: i32 = 1i; var b: i32 = x; var e: i32 = y;\n\
             \x20 loop { if (e <= 0i) { break; } if ((e & 1i) == 1i) { r = r * b; } b = b * b; e = e >> 1u; }\n\
             \x20 return r;\n\
             }\n"
        }
        "nnc_upow" => {
            "fn nnc_upow(x: u32, y: u32) -> u32 {\n\
             \x20 var r: u32 = 1u; var b: u32 = x; var e: u32 = y;\n\
             \x20 loop { if (e == 0u) { break; } if ((e & 1u) == 1u) { r = r * b; } b = b * b; e = e >> 1u; }\n\
             \x20 return r;\n\
             }\n"
        }
        "nnc_nan0" => "fn nnc_nan0(x: f32) -> f32 { return select(trunc(x), 0.0f, nnc_isnan(x)); }\n",
        "nnc_f2i" => {
            "// float → i32: truncates, saturates, NaN → 0.\n\
             fn nnc_f2i(x: f32) -> i32 {\n\
             \x20 if (nnc_isnan(x)) { return 0i; }\n\
             \x20 if (x >= 2147483648.0f) { return 2147483647i; }\n\
             \x20 if (x <= -2147483648.0f) { return i32(-2147483648); }\n\
             \x20 return i32(x);\n\
             }\n"
        }
        "nnc_f2u" => {
            "// float → u32: truncates, saturates, NaN → 0.\n\
             fn nnc_f2u(x: f32) -> u32 {\n\
             \x20 if (nnc_isnan(x) || x <= 0.0f) { return 0u; }\n\
             \x20 if (x >= 4294967296.0f) { return 4294967295u; }\n\
             \x20 return u32(x);\n\
             }\n"
        }
        _ => "",
    }
}
