//! Kernel IR → native code with Cranelift (JIT).
//!
//! Every kernel scheduled for [`Device::cpu`](nnc_kernel::Device::cpu) (workgroups of
//! one invocation, no barriers, no workgroup memory) becomes one function
//!
//! ```text
//! extern "C" fn(buffers: *const *mut u8, group_begin: u64, group_end: u64) -> u32
//! ```
//!
//! that runs workgroups `group_begin..group_end` of the flattened grid (x fastest) and returns a
//! [`Status`] code (0 = success). `buffers[k]` is the k-th global buffer of the kernel, in
//! [`Kernel::params`] order.
//!
//! Semantics are the graph interpreter's, on one element:
//! - `f32`/`f64` compute natively where that is exact (`+ - * /`, `sqrt`, `floor`, `ceil`,
//!   `round` half to even, NaN-propagating `max`/`min`); transcendentals, float `rem` (fmod) and
//!   `pow` call `extern "C"` Rust functions in `f64` and round to the dtype, as the interpreter
//!   does (except `erf` and `exp` in vector loops: a rational approximation within 6 ulp, see
//!   [`ERF_NUM`], and a polynomial within 2 ulp, see `vexp`);
//! - `f16`/`bf16` are held in registers as `f32` values that are exactly representable in the
//!   dtype: every op rounds its result to the dtype (directly from `f64` for transcendentals),
//!   loads and stores convert exactly;
//! - integers wrap at their width; `div` truncates, `rem` has the sign of the dividend, `MIN / -1`
//!   wraps; division or remainder by zero and `pow` with a negative exponent return a status code
//!   instead of trapping; casts float → int saturate with NaN → 0 (Rust `as`);
//! - `select` evaluates only the chosen side when either side loads, divides or calls out, and a
//!   masked load branches around the access; loads whose index depends on loaded data are
//!   bounds-checked (status [`Status::OutOfBounds`]).

use crate::aot::{capture, LoadedImage, MachineCode};
use crate::link::{Image, LinkedKernels};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, FuncRef, InstBuilder, InstructionData, MemFlagsData, Opcode, StackSlot, StackSlotData,
    StackSlotKind, Type, Value, ValueDef,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Literal, Special};
use nnc_kernel::kernel::{Kernel, LoopKind, Space, Stmt};
use std::collections::{HashMap, HashSet};

/// The native entry point of one kernel.
pub type KernelFn = unsafe extern "C" fn(buffers: *const *mut u8, group_begin: u64, group_end: u64) -> u32;

/// What a kernel function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    DivisionByZero = 1,
    RemainderByZero = 2,
    NegativeExponent = 3,
    OutOfBounds = 4,
}

impl Status {
    pub fn from_code(code: u32) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::DivisionByZero,
            2 => Status::RemainderByZero,
            3 => Status::NegativeExponent,
            4 => Status::OutOfBounds,
            _ => return None,
        })
    }

    pub fn message(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::DivisionByZero => "integer division by zero",
            Status::RemainderByZero => "integer remainder by zero",
            Status::NegativeExponent => "integer pow with a negative exponent",
            Status::OutOfBounds => "load out of bounds (data-dependent index)",
        }
    }
}

/// Why a kernel could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct EmitError {
    pub kernel: String,
    pub message: String,
}

/// Options of the emitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmitOptions {
    /// Emit `vector(4)` loops over `f32` as 128-bit vector code where the body allows it.
    pub vectorize: bool,
    /// Run Cranelift's verifier on every function (slower compiles; on in debug builds).
    pub verify: bool,
    /// Contract `c + a * b` in vector loops to a fused multiply-add where the host has one
    /// (AVX + FMA); one rounding instead of two.
    pub fma: bool,
    /// Keep each kernel's machine code and relocations in [`JitCode::machine`], for an
    /// ahead-of-time bundle (Cranelift's per kernel, LLVM's as one image in [`JitCode::linked`]).
    pub keep_machine_code: bool,
    /// Compile kernels with LLVM for the host's widest vectors where LLVM covers them (see
    /// [`crate::llvm`]); the others, and every kernel when off, with Cranelift.
    pub llvm: bool,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            vectorize: true,
            verify: cfg!(debug_assertions),
            fma: true,
            keep_machine_code: false,
            llvm: cfg!(feature = "llvm"),
        }
    }
}

/// JIT-compiled kernels: the code lives as long as this value.
pub struct JitCode {
    module: Option<JITModule>,
    /// Held, never read: dropping it unmaps LLVM's kernels.
    #[allow(dead_code)]
    image: Option<LoadedImage>,
    functions: Vec<KernelFn>,
    /// Kernels compiled by LLVM (the others by Cranelift).
    pub llvm_kernels: usize,
    /// Why kernels went to Cranelift although LLVM was asked for (per kernel, or for all).
    pub llvm_notes: Vec<String>,
    /// Kernels whose `vector` loops became real vector code.
    pub vectorized_loops: usize,
    /// Per kernel, with [`EmitOptions::keep_machine_code`]: its code, for a bundle.
    pub machine: Vec<KernelCode>,
    /// With [`EmitOptions::keep_machine_code`]: LLVM's linked image of kernels and the CPU
    /// features (LLVM's names) it was built for.
    pub linked: Option<(Image, String)>,
}

/// Where a kernel's machine code is, for a bundle.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelCode {
    /// Cranelift's code for this kernel alone.
    Cranelift(MachineCode),
    /// The entry point in LLVM's image ([`JitCode::linked`]).
    Linked { entry: u64 },
}

// SAFETY: the module only owns executable memory and symbol tables; after finalization it is
// never mutated until it is dropped, and the function pointers are plain code.
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

impl JitCode {
    /// The entry point of the `i`-th compiled kernel.
    pub fn function(&self, i: usize) -> KernelFn {
        self.functions[i]
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: every function pointer handed out lives inside `self`.
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for JitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitCode({} kernels)", self.functions.len())
    }
}

// ---------------------------------------------------------------- runtime helpers

macro_rules! unary_f64 {
    ($($name:ident => $f:expr;)*) => {
        $(extern "C" fn $name(x: f64) -> f64 { let f: fn(f64) -> f64 = $f; f(x) })*
    };
}

unary_f64! {
    nnc_exp => f64::exp;
    nnc_log => f64::ln;
    nnc_sin => f64::sin;
    nnc_cos => f64::cos;
    nnc_tan => f64::tan;
    nnc_asin => f64::asin;
    nnc_acos => f64::acos;
    nnc_atan => f64::atan;
    nnc_sinh => f64::sinh;
    nnc_cosh => f64::cosh;
    nnc_tanh => f64::tanh;
    nnc_asinh => f64::asinh;
    nnc_acosh => f64::acosh;
    nnc_atanh => f64::atanh;
    nnc_sigmoid => |x| 1.0 / (1.0 + (-x).exp());
    nnc_erf => nnc_interp::erf;
}

/// `f` on each of the four `f32` lanes at `p`, in place (in `f64`, rounded back to `f32` like the
/// scalar calls): one call per vector instead of four, each of which would spill every vector
/// register the loop keeps live.
extern "C" fn nnc_map4(f: extern "C" fn(f64) -> f64, p: *mut f32) -> i64 {
    for k in 0..4 {
        // SAFETY: the caller passes a 16-byte stack slot.
        unsafe { *p.add(k) = f(*p.add(k) as f64) as f32 };
    }
    0
}

/// `f` on each of the `n` `f32` lanes at `p`, in place: [`nnc_map4`] for LLVM's wider vectors.
extern "C" fn nnc_map(f: extern "C" fn(f64) -> f64, p: *mut f32, n: i64) -> i64 {
    for k in 0..n.max(0) as usize {
        // SAFETY: the caller passes a slot of `n` lanes.
        unsafe { *p.add(k) = f(*p.add(k) as f64) as f32 };
    }
    0
}

extern "C" fn nnc_fmod(a: f64, b: f64) -> f64 {
    a % b
}

extern "C" fn nnc_pow(a: f64, b: f64) -> f64 {
    a.powf(b)
}

/// `a ** b` wrapping, for `b >= 0` (the bit pattern of `b` read as unsigned).
extern "C" fn nnc_ipow(a: i64, b: i64) -> i64 {
    let (mut base, mut e, mut acc) = (a, b as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

extern "C" fn nnc_round_f16(x: f64) -> f32 {
    half::f16::from_f64(x).to_f32()
}

extern "C" fn nnc_round_bf16(x: f64) -> f32 {
    half::bf16::from_f64(x).to_f32()
}

extern "C" fn nnc_f16_to_f32(bits: u32) -> f32 {
    half::f16::from_bits(bits as u16).to_f32()
}

extern "C" fn nnc_f32_to_f16(x: f32) -> u32 {
    half::f16::from_f32(x).to_bits() as u32
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Lib {
    Unary(UnaryOp),
    Map4,
    Map,
    Fmod,
    Pow,
    IPow,
    RoundF16,
    RoundBF16,
    F16ToF32,
    F32ToF16,
}

pub(crate) fn lib_symbol(lib: Lib) -> Option<(&'static str, *const u8, &'static [Type], Type)> {
    const F: &[Type] = &[types::F64];
    const FF: &[Type] = &[types::F64, types::F64];
    let u = |name, f: extern "C" fn(f64) -> f64| Some((name, f as *const u8, F, types::F64));
    match lib {
        Lib::Unary(op) => match op {
            UnaryOp::Exp => u("nnc_exp", nnc_exp),
            UnaryOp::Log => u("nnc_log", nnc_log),
            UnaryOp::Sin => u("nnc_sin", nnc_sin),
            UnaryOp::Cos => u("nnc_cos", nnc_cos),
            UnaryOp::Tan => u("nnc_tan", nnc_tan),
            UnaryOp::Asin => u("nnc_asin", nnc_asin),
            UnaryOp::Acos => u("nnc_acos", nnc_acos),
            UnaryOp::Atan => u("nnc_atan", nnc_atan),
            UnaryOp::Sinh => u("nnc_sinh", nnc_sinh),
            UnaryOp::Cosh => u("nnc_cosh", nnc_cosh),
            UnaryOp::Tanh => u("nnc_tanh", nnc_tanh),
            UnaryOp::Asinh => u("nnc_asinh", nnc_asinh),
            UnaryOp::Acosh => u("nnc_acosh", nnc_acosh),
            UnaryOp::Atanh => u("nnc_atanh", nnc_atanh),
            UnaryOp::Sigmoid => u("nnc_sigmoid", nnc_sigmoid),
            UnaryOp::Erf => u("nnc_erf", nnc_erf),
            _ => None,
        },
        Lib::Map4 => Some(("nnc_map4", nnc_map4 as *const u8, &[types::I64, types::I64], types::I64)),
        Lib::Map => Some(("nnc_map", nnc_map as *const u8, &[types::I64, types::I64, types::I64], types::I64)),
        Lib::Fmod => Some(("nnc_fmod", nnc_fmod as *const u8, FF, types::F64)),
        Lib::Pow => Some(("nnc_pow", nnc_pow as *const u8, FF, types::F64)),
        Lib::IPow => Some(("nnc_ipow", nnc_ipow as *const u8, &[types::I64, types::I64], types::I64)),
        Lib::RoundF16 => Some(("nnc_round_f16", nnc_round_f16 as *const u8, F, types::F32)),
        Lib::RoundBF16 => Some(("nnc_round_bf16", nnc_round_bf16 as *const u8, F, types::F32)),
        Lib::F16ToF32 => Some(("nnc_f16_to_f32", nnc_f16_to_f32 as *const u8, &[types::I32], types::F32)),
        Lib::F32ToF16 => Some(("nnc_f32_to_f16", nnc_f32_to_f16 as *const u8, &[types::F32], types::I32)),
    }
}

/// The address in this process of the helper named `name` (for loading ahead-of-time code),
/// or of the C library's memory routines, which LLVM calls for loops it recognizes as such.
pub(crate) fn lib_address(name: &str) -> Option<*const u8> {
    extern "C" {
        fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8;
        fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    }
    match name {
        "memset" => Some(memset as *const u8),
        "memcpy" => Some(memcpy as *const u8),
        "memmove" => Some(memmove as *const u8),
        _ => ALL_LIBS.iter().filter_map(|&lib| lib_symbol(lib)).find(|s| s.0 == name).map(|s| s.1),
    }
}

/// Every helper's name and address in this process.
pub(crate) fn helper_addresses() -> impl Iterator<Item = (&'static str, *const u8)> {
    ALL_LIBS.iter().filter_map(|&lib| lib_symbol(lib)).map(|s| (s.0, s.1))
}

const ALL_LIBS: &[Lib] = &[
    Lib::Unary(UnaryOp::Exp),
    Lib::Unary(UnaryOp::Log),
    Lib::Unary(UnaryOp::Sin),
    Lib::Unary(UnaryOp::Cos),
    Lib::Unary(UnaryOp::Tan),
    Lib::Unary(UnaryOp::Asin),
    Lib::Unary(UnaryOp::Acos),
    Lib::Unary(UnaryOp::Atan),
    Lib::Unary(UnaryOp::Sinh),
    Lib::Unary(UnaryOp::Cosh),
    Lib::Unary(UnaryOp::Tanh),
    Lib::Unary(UnaryOp::Asinh),
    Lib::Unary(UnaryOp::Acosh),
    Lib::Unary(UnaryOp::Atanh),
    Lib::Unary(UnaryOp::Sigmoid),
    Lib::Unary(UnaryOp::Erf),
    Lib::Map4,
    Lib::Map,
    Lib::Fmod,
    Lib::Pow,
    Lib::IPow,
    Lib::RoundF16,
    Lib::RoundBF16,
    Lib::F16ToF32,
    Lib::F32ToF16,
];

// ---------------------------------------------------------------- types

/// The register type of a dtype (`f16`/`bf16` live as `f32`, `bool` as an `i8` 0/1).
pub(crate) fn reg_type(d: DType) -> Type {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => types::F32,
        DType::F64 => types::F64,
        DType::I64 | DType::U64 => types::I64,
        DType::I32 | DType::U32 => types::I32,
        DType::I16 | DType::U16 => types::I16,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
    }
}

pub(crate) fn is_unsigned(d: DType) -> bool {
    matches!(d, DType::U8 | DType::U16 | DType::U32 | DType::U64 | DType::Bool)
}

fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Whether evaluating `e` can have an effect or a cost worth a branch: a load, an integer
/// division, remainder or pow (which may report an error), or a call.
pub(crate) fn needs_branch(e: &Expr) -> bool {
    e.any(&mut |x| match x {
        Expr::Load { .. } => true,
        Expr::Binary(BinaryOp::Div | BinaryOp::Rem, a, b) if !a.dtype().is_float() => {
            !matches!(b.as_int(), Some(v) if v != 0 && v != -1)
        }
        Expr::Binary(BinaryOp::Pow | BinaryOp::Rem, ..) => true,
        Expr::Unary(op, a) => a.dtype().is_float() && lib_symbol(Lib::Unary(*op)).is_some(),
        _ => false,
    })
}

pub(crate) fn is_mul(e: &Expr) -> bool {
    matches!(e, Expr::Binary(BinaryOp::Mul, ..))
}

pub(crate) fn contains_load(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x, Expr::Load { .. }))
}

// ---------------------------------------------------------------- the compiler

/// Compiles `kernels` into one JIT module.
pub fn compile_kernels(kernels: &[Kernel], options: &EmitOptions) -> Result<JitCode, EmitError> {
    let top = |message: String| EmitError { kernel: "<jit>".into(), message };
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| top(e.to_string()))?;
    flags.set("is_pic", "false").map_err(|e| top(e.to_string()))?;
    flags.set("enable_verifier", if options.verify { "true" } else { "false" }).map_err(|e| top(e.to_string()))?;
    let isa_builder = cranelift_native::builder().map_err(|e| top(e.to_string()))?;
    let isa = isa_builder.finish(settings::Flags::new(flags)).map_err(|e| top(e.to_string()))?;
    let flag = |name: &str| isa.isa_flags().iter().any(|f| f.name == name && f.as_bool() == Some(true));
    // `fma` is a real fused instruction only with AVX and FMA (otherwise a libcall).
    let fma = options.fma && flag("has_avx") && flag("has_fma");
    let disasm = std::env::var_os("NNC_CPU_DISASM").is_some();
    let mut jb = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    for &lib in ALL_LIBS {
        if let Some((name, ptr, _, _)) = lib_symbol(lib) {
            jb.symbol(name, ptr);
        }
    }
    let mut module = JITModule::new(jb);
    let mut libs: HashMap<Lib, FuncId> = HashMap::new();
    let mut imports: HashMap<u32, &'static str> = HashMap::new();
    for &lib in ALL_LIBS {
        let (name, _, params, ret) = lib_symbol(lib).expect("every listed lib has a symbol");
        let mut sig = module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.push(AbiParam::new(ret));
        let id = module.declare_function(name, Linkage::Import, &sig).map_err(|e| top(e.to_string()))?;
        libs.insert(lib, id);
        imports.insert(id.as_u32(), name);
    }
    let ptr = module.target_config().pointer_type();
    let mut kernel_sig = module.make_signature();
    kernel_sig.params.extend([AbiParam::new(ptr), AbiParam::new(types::I64), AbiParam::new(types::I64)]);
    kernel_sig.returns.push(AbiParam::new(types::I32));
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    let mut vectorized_loops = 0;
    let mut machine = Vec::new();
    // LLVM failing as a whole (an unexpected relocation, say) leaves every kernel to Cranelift.
    let mut llvm_notes = Vec::new();
    let llvm = compile_with_llvm(kernels, options)
        .and_then(|c| c.map(|c| LoadedImage::load(&c.image.bytes, &c.image.relocations).map(|i| (c, i))).transpose())
        .unwrap_or_else(|e| {
            llvm_notes.push(format!("LLVM: {e}; every kernel compiled by Cranelift"));
            None
        });
    let (llvm, image) = llvm.unzip();
    if let Some(c) = &llvm {
        for (kernel, entry) in kernels.iter().zip(&c.entries) {
            if let Err(reason) = entry {
                llvm_notes.push(format!("{}: {reason}", kernel.name));
            }
        }
    }
    let llvm_entry = |i: usize| llvm.as_ref().and_then(|c| c.entries[i].as_ref().ok().copied());
    for (i, kernel) in kernels.iter().enumerate() {
        let err = |message: String| EmitError { kernel: kernel.name.clone(), message };
        check_cpu_kernel(kernel).map_err(err)?;
        if let Some(entry) = llvm_entry(i) {
            ids.push(None);
            if options.keep_machine_code {
                machine.push(KernelCode::Linked { entry });
            }
            continue;
        }
        let id =
            module.declare_function(&format!("k{i}"), Linkage::Local, &kernel_sig).map_err(|e| err(e.to_string()))?;
        ctx.func.signature = kernel_sig.clone();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let mut refs = HashMap::new();
            for (&lib, &fid) in &libs {
                refs.insert(lib, module.declare_func_in_func(fid, b.func));
            }
            let mut e = Emitter {
                kernel,
                b: &mut b,
                libs: refs,
                vars: HashMap::new(),
                bases: Vec::new(),
                error_blocks: HashMap::new(),
                vectorize: options.vectorize,
                vectorized_loops: 0,
                consts: HashMap::new(),
                promoted: HashSet::new(),
                vpromoted: HashSet::new(),
                elements: HashMap::new(),
                fma,
                versions: HashMap::new(),
                loads: vec![HashMap::new()],
                guards: Vec::new(),
                lane_slot: None,
                data: nnc_kernel::visit::data_dependent_vars(&kernel.body),
            };
            for buf in promotable(kernel, lanes(options.vectorize)) {
                if vector_promotable(kernel.buffer(BufId(buf)), options.vectorize) {
                    e.vpromoted.insert(buf);
                } else {
                    e.promoted.insert(buf);
                }
            }
            e.function().map_err(err)?;
            vectorized_loops += e.vectorized_loops;
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        if disasm {
            ctx.set_disasm(true);
            eprintln!("{}", ctx.func.display());
        }
        module.define_function(id, &mut ctx).map_err(|e| err(format!("cranelift: {e:?}")))?;
        if options.keep_machine_code {
            let code = ctx.compiled_code().ok_or_else(|| err("cranelift kept no code".into()))?;
            machine.push(KernelCode::Cranelift(capture(&ctx.func, &code.buffer, &imports).map_err(err)?));
        }
        if disasm {
            if let Some(vcode) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
                eprintln!("{vcode}");
            }
        }
        module.clear_context(&mut ctx);
        ids.push(Some(id));
    }
    module.finalize_definitions().map_err(|e| top(e.to_string()))?;
    let functions = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| match (id, &image, llvm_entry(i)) {
            (Some(id), _, _) => {
                let p = module.get_finalized_function(id);
                // SAFETY: the function was defined with exactly the signature of `KernelFn`.
                Ok(unsafe { std::mem::transmute::<*const u8, KernelFn>(p) })
            }
            (None, Some(image), Some(entry)) => image.function(entry).map_err(top),
            _ => Err(top("a kernel has no code".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let llvm_kernels = ids.iter().filter(|id| id.is_none()).count();
    let vectorized_loops = vectorized_loops + llvm.as_ref().map_or(0, |c| c.vectorized_loops);
    let linked = llvm.filter(|_| options.keep_machine_code && llvm_kernels > 0).map(|c| (c.image, c.features));
    Ok(JitCode { module: Some(module), image, functions, llvm_kernels, llvm_notes, vectorized_loops, machine, linked })
}

/// LLVM's image of the kernels it covers, when the options and the host allow.
#[cfg(feature = "llvm")]
fn compile_with_llvm(kernels: &[Kernel], options: &EmitOptions) -> Result<Option<LinkedKernels>, String> {
    match crate::llvm::host_lanes() {
        Some(width) if options.llvm && options.vectorize => crate::llvm::compile(kernels, width).map(Some),
        _ => Ok(None),
    }
}

/// Without the `llvm` feature every kernel is Cranelift's.
#[cfg(not(feature = "llvm"))]
fn compile_with_llvm(_: &[Kernel], _: &EmitOptions) -> Result<Option<LinkedKernels>, String> {
    Ok(None)
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

/// A value in a register: scalar, or 4 lanes of `f32` (vector loops).
#[derive(Clone, Copy)]
struct Val {
    v: Value,
    vector: bool,
}

struct Emitter<'a, 'b, 'k> {
    kernel: &'k Kernel,
    b: &'a mut FunctionBuilder<'b>,
    libs: HashMap<Lib, FuncRef>,
    /// Variable id → (cranelift variable, whether it holds a vector).
    vars: HashMap<u32, (Variable, bool)>,
    /// Base address of each buffer (globals loaded at entry, privates on the stack).
    bases: Vec<Value>,
    error_blocks: HashMap<u32, Block>,
    vectorize: bool,
    vectorized_loops: usize,
    /// Values of the variables of unrolled loops (and lets computed from them).
    consts: HashMap<u32, i64>,
    /// Private buffers held in registers (every access has a constant index), and their elements
    /// (for `vpromoted` ones, one `f32x4` per 4 consecutive elements, keyed by flat index / 4).
    promoted: HashSet<u32>,
    vpromoted: HashSet<u32>,
    elements: HashMap<(u32, i64), Variable>,
    /// Emit `a * b + c` on `f32x4` as one fused multiply-add.
    fma: bool,
    /// How many times each variable has been bound (or assigned): an expression means the same
    /// value wherever its variables have the same versions.
    versions: HashMap<u32, u32>,
    /// Vector loads already emitted, by buffer and key, in nested scopes (a loop body or branch
    /// drops what it added when it closes).
    loads: Vec<HashMap<(u32, String), Value>>,
    /// Conditions of the vector `select`s being evaluated: the loads of a selected side are
    /// masked by them, so lanes that the select discards read nothing.
    guards: Vec<Expr>,
    /// A stack slot for the lanes of vector calls, created on first use.
    lane_slot: Option<StackSlot>,
    /// Variables holding loaded data: an index reading one is bounds-checked.
    data: std::collections::BTreeSet<u32>,
}

type R<T> = Result<T, String>;

impl Emitter<'_, '_, '_> {
    fn function(&mut self) -> R<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.seal_block(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        let (bufs, begin, end) = (params[0], params[1], params[2]);
        let mut global = 0;
        for buf in &self.kernel.buffers {
            let base = match buf.space {
                Space::Global => {
                    let off = 8 * global;
                    global += 1;
                    self.b.ins().load(types::I64, MemFlagsData::trusted(), bufs, off)
                }
                _ => {
                    let bytes = (buf.len().max(1) as u64 * buf.dtype.size_bytes() as u64).max(16);
                    let bytes =
                        u32::try_from(bytes).map_err(|_| format!("private buffer `{}` is too large", buf.name))?;
                    let slot =
                        self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 4));
                    self.b.ins().stack_addr(types::I64, slot, 0)
                }
            };
            self.bases.push(base);
        }
        // for g in begin..end: gid = unflatten(g); body
        let g = self.b.declare_var(types::I64);
        self.b.def_var(g, begin);
        let header = self.b.create_block();
        let body = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let gv = self.b.use_var(g);
        let done = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, gv, end);
        self.b.ins().brif(done, exit, &[], body, &[]);
        self.b.seal_block(body);
        self.b.seal_block(exit);
        self.b.switch_to_block(body);
        let [gx, gy, _] = self.kernel.launch.grid.map(|v| v as i64);
        let gid = [
            self.urem_const(gv, gx),
            {
                let q = self.udiv_const(gv, gx);
                self.urem_const(q, gy)
            },
            self.udiv_const(gv, gx * gy),
        ];
        for (axis, v) in gid.into_iter().enumerate() {
            let var = self.b.declare_var(types::I64);
            self.b.def_var(var, v);
            self.bind(u32::MAX - axis as u32, (var, false));
        }
        self.block(&self.kernel.body)?;
        let gv = self.b.use_var(g);
        let one = self.b.ins().iconst(types::I64, 1);
        let next = self.b.ins().iadd(gv, one);
        self.b.def_var(g, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        let ok = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[ok]);
        let mut errors: Vec<(u32, Block)> = self.error_blocks.iter().map(|(&c, &b)| (c, b)).collect();
        errors.sort();
        for (code, blk) in errors {
            self.b.switch_to_block(blk);
            let c = self.b.ins().iconst(types::I32, code as i64);
            self.b.ins().return_(&[c]);
        }
        Ok(())
    }

    fn bind(&mut self, id: u32, v: (Variable, bool)) {
        self.vars.insert(id, v);
        *self.versions.entry(id).or_insert(0) += 1;
    }

    /// The key of a load: its text and the versions of the variables it reads.
    fn load_key(&self, index: &[Expr], mask: Option<&Expr>) -> String {
        let mut key = String::new();
        let mut vars = Vec::new();
        for e in index.iter().chain(mask) {
            key.push_str(&format!("{e};"));
            e.any(&mut |x| {
                if let Expr::Var(v) = x {
                    // Constants (variables of unrolled loops) by value, others by version.
                    vars.push(match self.consts.get(&v.id) {
                        Some(&c) => (v.id, c, u32::MAX),
                        None => (v.id, 0, self.versions.get(&v.id).copied().unwrap_or(0)),
                    });
                }
                false
            });
        }
        vars.sort_unstable();
        vars.dedup();
        key.push_str(&format!("{vars:?}"));
        key
    }

    fn cached_load(&self, buf: BufId, key: &str) -> Option<Value> {
        self.loads.iter().rev().find_map(|m| m.get(&(buf.0, key.to_string())).copied())
    }

    /// Forgets loads of buffer `buf` (after a store to it).
    fn forget_loads(&mut self, buf: BufId) {
        for m in &mut self.loads {
            m.retain(|k, _| k.0 != buf.0);
        }
    }

    /// Opens a scope for a loop body or branch; loads of buffers the body stores to are
    /// forgotten (a later iteration must see the stores).
    fn open_scope(&mut self, body: &[Stmt]) {
        nnc_kernel::visit::visit_stmts(body, &mut |s| {
            if let Stmt::Store { buf, .. } = s {
                for m in self.loads.iter_mut() {
                    m.retain(|k, _| k.0 != buf.0);
                }
            }
        });
        self.loads.push(HashMap::new());
    }

    fn close_scope(&mut self) {
        self.loads.pop();
    }

    /// The value of `v` if an `iconst` defines it.
    fn constant(&self, v: Value) -> Option<i64> {
        let ValueDef::Result(inst, _) = self.b.func.dfg.value_def(v) else { return None };
        match self.b.func.dfg.insts[inst] {
            InstructionData::UnaryImm { opcode: Opcode::Iconst, imm } => Some(imm.bits()),
            _ => None,
        }
    }

    fn urem_const(&mut self, v: Value, d: i64) -> Value {
        if d <= 1 {
            return self.b.ins().iconst(types::I64, 0);
        }
        let c = self.b.ins().iconst(types::I64, d);
        self.b.ins().urem(v, c)
    }

    fn udiv_const(&mut self, v: Value, d: i64) -> Value {
        if d <= 1 {
            return v;
        }
        let c = self.b.ins().iconst(types::I64, d);
        self.b.ins().udiv(v, c)
    }

    fn error_block(&mut self, status: Status) -> Block {
        let code = status as u32;
        if let Some(&b) = self.error_blocks.get(&code) {
            return b;
        }
        // Filled at the end of the function (a block cannot be left unfinished).
        let blk = self.b.create_block();
        self.error_blocks.insert(code, blk);
        blk
    }

    /// Branches to the error return when `cond` (an `i8` 0/1) holds.
    fn fail_if(&mut self, cond: Value, status: Status) {
        let err = self.error_block(status);
        let cont = self.b.create_block();
        self.b.ins().brif(cond, err, &[], cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
    }

    fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::For { var, extent, kind, body } => {
                if let Some((n, step)) = unrolled(self.kernel, lanes(self.vectorize), var.id, *kind, extent, body) {
                    if step == 4 {
                        let mut lanes = Lanes::new();
                        vector_plan(self.kernel, var.id, body, &mut lanes);
                        for k in (0..n).step_by(4) {
                            let cv = self.b.declare_var(types::I64);
                            let c = self.b.ins().iconst(types::I64, k);
                            self.b.def_var(cv, c);
                            self.bind(var.id, (cv, false));
                            self.consts.insert(var.id, k);
                            self.vector_body(var.id, body, &lanes)?;
                        }
                        self.consts.remove(&var.id);
                        self.vectorized_loops += 1;
                        return Ok(());
                    }
                    let ty = reg_type(var.dtype);
                    for k in 0..n {
                        let cv = self.b.declare_var(ty);
                        let c = self.b.ins().iconst(ty, k);
                        self.b.def_var(cv, c);
                        self.bind(var.id, (cv, false));
                        self.consts.insert(var.id, k);
                        self.block(body)?;
                    }
                    self.consts.remove(&var.id);
                    return Ok(());
                }
                if let LoopKind::Vector(n) = kind {
                    if self.vectorize && *n == 4 && self.try_vector_loop(*var, extent, body)? {
                        self.vectorized_loops += 1;
                        return Ok(());
                    }
                }
                self.serial_loop(*var, extent, body)
            }
            Stmt::Let { var, value } | Stmt::Local { var, init: value } => {
                if let (Stmt::Let { .. }, Some(c)) = (s, const_eval(value, &self.consts)) {
                    self.consts.insert(var.id, c);
                } else {
                    self.consts.remove(&var.id);
                }
                let v = self.expr(value)?;
                let cv = self.b.declare_var(reg_type(var.dtype));
                self.b.def_var(cv, v);
                self.bind(var.id, (cv, false));
                Ok(())
            }
            Stmt::Assign { var, value } => {
                let v = self.expr(value)?;
                let &(cv, _) = self.vars.get(&var.id).ok_or_else(|| format!("assignment to undeclared v{}", var.id))?;
                self.b.def_var(cv, v);
                *self.versions.entry(var.id).or_insert(0) += 1;
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let v = self.expr(value)?;
                if self.vpromoted.contains(&buf.0) {
                    let flat = self.const_flat(*buf, index)?;
                    let cv = self.vreg(*buf, flat / 4);
                    let old = self.b.use_var(cv);
                    let new = self.b.ins().insertlane(old, v, (flat % 4) as u8);
                    self.b.def_var(cv, new);
                    return Ok(());
                }
                if let Some(cv) = self.element(*buf, index)? {
                    self.b.def_var(cv, v);
                    return Ok(());
                }
                let addr = self.address(*buf, index)?;
                let dtype = self.kernel.buffer(*buf).dtype;
                self.store_scalar(dtype, v, addr);
                self.forget_loads(*buf);
                Ok(())
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                self.b.ins().brif(c, tb, &[], eb, &[]);
                self.b.seal_block(tb);
                self.b.seal_block(eb);
                self.b.switch_to_block(tb);
                self.open_scope(then);
                self.block(then)?;
                self.close_scope();
                self.b.ins().jump(merge, &[]);
                self.b.switch_to_block(eb);
                self.open_scope(els);
                self.block(els)?;
                self.close_scope();
                self.b.ins().jump(merge, &[]);
                self.b.seal_block(merge);
                self.b.switch_to_block(merge);
                Ok(())
            }
            Stmt::Barrier => Err("barriers are not supported on the CPU".into()),
        }
    }

    fn serial_loop(&mut self, var: nnc_kernel::Var, extent: &Expr, body: &[Stmt]) -> R<()> {
        let ty = reg_type(var.dtype);
        if !var.dtype.is_int() || !extent.dtype().is_int() {
            return Err(format!("loop v{} needs an integer variable and extent", var.id));
        }
        let n = self.expr(extent)?;
        let n = self.int_convert(n, extent.dtype(), var.dtype);
        let iv = self.b.declare_var(ty);
        let zero = self.b.ins().iconst(ty, 0);
        self.b.def_var(iv, zero);
        self.bind(var.id, (iv, false));
        let (header, bodyb, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(iv);
        let cc =
            if is_unsigned(var.dtype) { IntCC::UnsignedGreaterThanOrEqual } else { IntCC::SignedGreaterThanOrEqual };
        let done = self.b.ins().icmp(cc, i, n);
        self.b.ins().brif(done, exit, &[], bodyb, &[]);
        self.b.seal_block(bodyb);
        self.b.seal_block(exit);
        self.b.switch_to_block(bodyb);
        self.open_scope(body);
        self.block(body)?;
        self.close_scope();
        let i = self.b.use_var(iv);
        let one = self.b.ins().iconst(ty, 1);
        let next = self.b.ins().iadd(i, one);
        self.b.def_var(iv, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        Ok(())
    }

    // ------------------------------------------------------------ memory

    /// The constant flat index of an access to a promoted private buffer.
    fn const_flat(&mut self, buf: BufId, index: &[Expr]) -> R<i64> {
        let b = self.kernel.buffer(buf);
        const_eval(&b.flat_index(index), &self.consts).ok_or_else(|| "promoted buffer with a variable index".into())
    }

    /// The `f32x4` register holding elements `4 * group .. 4 * group + 4` of a vector-promoted
    /// private buffer.
    fn vreg(&mut self, buf: BufId, group: i64) -> Variable {
        if let Some(&v) = self.elements.get(&(buf.0, group)) {
            return v;
        }
        let v = self.b.declare_var(types::F32X4);
        self.elements.insert((buf.0, group), v);
        v
    }

    /// Four consecutive elements of a vector-promoted buffer from flat index `flat`.
    fn vreg_get(&mut self, buf: BufId, flat: i64) -> Value {
        if flat % 4 == 0 {
            let cv = self.vreg(buf, flat / 4);
            return self.b.use_var(cv);
        }
        let z = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, z);
        for lane in 0..4 {
            let f = flat + lane;
            let cv = self.vreg(buf, f / 4);
            let v = self.b.use_var(cv);
            let x = self.b.ins().extractlane(v, (f % 4) as u8);
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        r
    }

    fn vreg_set(&mut self, buf: BufId, flat: i64, x: Value) {
        if flat % 4 == 0 {
            let cv = self.vreg(buf, flat / 4);
            self.b.def_var(cv, x);
            return;
        }
        for lane in 0..4 {
            let f = flat + lane;
            let cv = self.vreg(buf, f / 4);
            let v = self.b.use_var(cv);
            let e = self.b.ins().extractlane(x, lane as u8);
            let n = self.b.ins().insertlane(v, e, (f % 4) as u8);
            self.b.def_var(cv, n);
        }
    }

    /// The register holding element `index` of a promoted private buffer.
    fn element(&mut self, buf: BufId, index: &[Expr]) -> R<Option<Variable>> {
        if !self.promoted.contains(&buf.0) {
            return Ok(None);
        }
        let b = self.kernel.buffer(buf);
        let flat = const_eval(&b.flat_index(index), &self.consts).ok_or("promoted buffer with a variable index")?;
        if let Some(&v) = self.elements.get(&(buf.0, flat)) {
            return Ok(Some(v));
        }
        let ty = reg_type(b.dtype);
        let v = self.b.declare_var(ty);
        self.elements.insert((buf.0, flat), v);
        Ok(Some(v))
    }

    /// The address of `buf[index]`; data-dependent indices are bounds-checked.
    fn address(&mut self, buf: BufId, index: &[Expr]) -> R<Value> {
        let b = self.kernel.buffers.get(buf.index()).ok_or_else(|| format!("no buffer b{}", buf.0))?;
        if index.len() != b.shape.len() {
            return Err(format!("buffer `{}` has rank {}, indexed with {}", b.name, b.shape.len(), index.len()));
        }
        let (len, size) = (b.len(), b.dtype.size_bytes() as i64);
        let flat_expr = b.flat_index(index);
        let flat = self.expr(&flat_expr)?;
        if index.iter().any(|i| nnc_kernel::visit::depends_on_data(i, &self.data)) {
            let n = self.b.ins().iconst(types::I64, len);
            let bad = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, flat, n);
            self.fail_if(bad, Status::OutOfBounds);
        }
        let base = self.bases[buf.index()];
        Ok(self.offset(base, flat, size))
    }

    fn offset(&mut self, base: Value, flat: Value, size: i64) -> Value {
        let s = self.b.ins().iconst(types::I64, size);
        let bytes = self.b.ins().imul(flat, s);
        self.b.ins().iadd(base, bytes)
    }

    fn load_scalar(&mut self, dtype: DType, addr: Value) -> Value {
        match dtype {
            DType::F16 => {
                let bits = self.b.ins().uload16(types::I32, mem(), addr, 0);
                self.call(Lib::F16ToF32, &[bits])
            }
            DType::BF16 => {
                let bits = self.b.ins().uload16(types::I32, mem(), addr, 0);
                let sh = self.b.ins().iconst(types::I32, 16);
                let bits = self.b.ins().ishl(bits, sh);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), bits)
            }
            DType::Bool => {
                let byte = self.b.ins().load(types::I8, mem(), addr, 0);
                let z = self.b.ins().iconst(types::I8, 0);
                self.b.ins().icmp(IntCC::NotEqual, byte, z)
            }
            d => self.b.ins().load(reg_type(d), mem(), addr, 0),
        }
    }

    fn store_scalar(&mut self, dtype: DType, v: Value, addr: Value) {
        match dtype {
            DType::F16 => {
                let bits = self.call(Lib::F32ToF16, &[v]);
                self.b.ins().istore16(mem(), bits, addr, 0);
            }
            DType::BF16 => {
                let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
                let sh = self.b.ins().iconst(types::I32, 16);
                let bits = self.b.ins().ushr(bits, sh);
                self.b.ins().istore16(mem(), bits, addr, 0);
            }
            _ => {
                self.b.ins().store(mem(), v, addr, 0);
            }
        }
    }

    fn call(&mut self, lib: Lib, args: &[Value]) -> Value {
        let f = self.libs[&lib];
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst)[0]
    }

    // ------------------------------------------------------------ expressions

    fn expr(&mut self, e: &Expr) -> R<Value> {
        Ok(match e {
            Expr::Lit(l) => self.literal(*l),
            Expr::Var(v) => {
                let &(cv, _) = self.vars.get(&v.id).ok_or_else(|| format!("use of undeclared v{}", v.id))?;
                self.b.use_var(cv)
            }
            Expr::Special(Special::ThreadId(_)) => self.b.ins().iconst(types::I64, 0),
            Expr::Special(Special::GroupId(axis)) => {
                let &(cv, _) = self.vars.get(&(u32::MAX - *axis as u32)).ok_or("bad group id axis")?;
                self.b.use_var(cv)
            }
            Expr::Axis(_) | Expr::Reduce(_) => return Err(format!("expression `{e}` is not scheduled")),
            Expr::Unary(op, a) => {
                let x = self.expr(a)?;
                self.unary(*op, a.dtype(), x)?
            }
            Expr::Binary(op, a, b) => {
                let x = self.expr(a)?;
                let y = self.expr(b)?;
                self.binary(*op, a.dtype(), x, y)?
            }
            Expr::Select(c, a, b) => {
                let cv = self.expr(c)?;
                if !needs_branch(a) && !needs_branch(b) {
                    let x = self.expr(a)?;
                    let y = self.expr(b)?;
                    self.b.ins().select(cv, x, y)
                } else {
                    let ty = reg_type(a.dtype());
                    let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                    let res = self.b.append_block_param(merge, ty);
                    self.b.ins().brif(cv, tb, &[], eb, &[]);
                    self.b.seal_block(tb);
                    self.b.seal_block(eb);
                    self.b.switch_to_block(tb);
                    let x = self.expr(a)?;
                    self.b.ins().jump(merge, &[x.into()]);
                    self.b.switch_to_block(eb);
                    let y = self.expr(b)?;
                    self.b.ins().jump(merge, &[y.into()]);
                    self.b.seal_block(merge);
                    self.b.switch_to_block(merge);
                    res
                }
            }
            Expr::Cast(to, a) => {
                let x = self.expr(a)?;
                self.cast(x, a.dtype(), *to)
            }
            Expr::Load { buf, dtype, index, mask } => match mask {
                None if self.vpromoted.contains(&buf.0) => {
                    let flat = self.const_flat(*buf, index)?;
                    let cv = self.vreg(*buf, flat / 4);
                    let v = self.b.use_var(cv);
                    self.b.ins().extractlane(v, (flat % 4) as u8)
                }
                None if self.promoted.contains(&buf.0) => {
                    let cv = self.element(*buf, index)?.ok_or("promoted buffer with a variable index")?;
                    self.b.use_var(cv)
                }
                None => {
                    let addr = self.address(*buf, index)?;
                    self.load_scalar(*dtype, addr)
                }
                Some(m) => {
                    let mv = self.expr(m)?;
                    let ty = reg_type(*dtype);
                    let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                    let res = self.b.append_block_param(merge, ty);
                    self.b.ins().brif(mv, tb, &[], eb, &[]);
                    self.b.seal_block(tb);
                    self.b.seal_block(eb);
                    self.b.switch_to_block(tb);
                    let addr = self.address(*buf, index)?;
                    let x = self.load_scalar(*dtype, addr);
                    self.b.ins().jump(merge, &[x.into()]);
                    self.b.switch_to_block(eb);
                    let z = self.literal(Literal::zero(*dtype));
                    self.b.ins().jump(merge, &[z.into()]);
                    self.b.seal_block(merge);
                    self.b.switch_to_block(merge);
                    res
                }
            },
        })
    }

    fn literal(&mut self, l: Literal) -> Value {
        match l {
            Literal::Float(v, d) => self.float_const(v, d),
            Literal::Int(v, d) => self.int_const(v, d),
            Literal::Bool(v) => self.b.ins().iconst(types::I8, v as i64),
        }
    }

    fn float_const(&mut self, v: f64, d: DType) -> Value {
        match d {
            DType::F64 => self.b.ins().f64const(v),
            DType::F16 => self.b.ins().f32const(half::f16::from_f64(v).to_f32()),
            DType::BF16 => self.b.ins().f32const(half::bf16::from_f64(v).to_f32()),
            DType::F32 => self.b.ins().f32const(v as f32),
            d if d.is_int() || d == DType::Bool => self.int_const(v as i64, d),
            _ => self.b.ins().f32const(v as f32),
        }
    }

    fn int_const(&mut self, v: i64, d: DType) -> Value {
        if d.is_float() {
            return self.float_const(v as f64, d);
        }
        let ty = reg_type(d);
        let bits = ty.bits();
        let v = if bits >= 64 { v } else { v & ((1i64 << bits) - 1) };
        self.b.ins().iconst(ty, v)
    }

    /// Rounds an `f32` register holding an `f16`/`bf16` result of an op computed in `f32` (exact
    /// for `+ - * /`: `f32` has more than twice their precision, so double rounding is harmless).
    fn round_half32(&mut self, d: DType, v: Value) -> Value {
        if !is_half(d) {
            return v;
        }
        let w = self.b.ins().fpromote(types::F64, v);
        self.round_from_f64(d, w)
    }

    /// An `f64` rounded to dtype `d`'s register form.
    fn round_from_f64(&mut self, d: DType, w: Value) -> Value {
        match d {
            DType::F64 => w,
            DType::F32 => self.b.ins().fdemote(types::F32, w),
            DType::F16 => self.call(Lib::RoundF16, &[w]),
            DType::BF16 => self.call(Lib::RoundBF16, &[w]),
            _ => w,
        }
    }

    fn widen_f64(&mut self, d: DType, v: Value) -> Value {
        if d == DType::F64 {
            v
        } else {
            self.b.ins().fpromote(types::F64, v)
        }
    }

    fn unary(&mut self, op: UnaryOp, d: DType, x: Value) -> R<Value> {
        let ty = reg_type(d);
        let bad = || format!("`{}` on {}", op.name(), d.name());
        if d.is_float() {
            if let Some(_sym) = lib_symbol(Lib::Unary(op)) {
                let w = self.widen_f64(d, x);
                let r = self.call(Lib::Unary(op), &[w]);
                return Ok(self.round_from_f64(d, r));
            }
            let zero = self.float_const(0.0, d);
            return Ok(match op {
                UnaryOp::Neg => self.b.ins().fneg(x),
                UnaryOp::Abs => self.b.ins().fabs(x),
                UnaryOp::Sign => {
                    let one = self.float_const(1.0, d);
                    let m1 = self.float_const(-1.0, d);
                    let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                    let lt = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                    let r = self.b.ins().select(lt, m1, x);
                    self.b.ins().select(gt, one, r)
                }
                UnaryOp::Relu => {
                    let keep = self.b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, x, zero);
                    self.b.ins().select(keep, x, zero)
                }
                UnaryOp::Sqrt => {
                    let r = self.b.ins().sqrt(x);
                    self.round_half32(d, r)
                }
                UnaryOp::Rsqrt => {
                    let w = self.widen_f64(d, x);
                    let s = self.b.ins().sqrt(w);
                    let one = self.b.ins().f64const(1.0);
                    let r = self.b.ins().fdiv(one, s);
                    self.round_from_f64(d, r)
                }
                UnaryOp::Reciprocal => {
                    let one = self.float_const(1.0, d);
                    let r = self.b.ins().fdiv(one, x);
                    self.round_half32(d, r)
                }
                UnaryOp::Floor => self.b.ins().floor(x),
                UnaryOp::Ceil => self.b.ins().ceil(x),
                UnaryOp::Round => self.b.ins().nearest(x),
                UnaryOp::IsNan => self.b.ins().fcmp(FloatCC::Unordered, x, x),
                UnaryOp::IsInf => {
                    let a = self.b.ins().fabs(x);
                    let inf = self.float_const(f64::INFINITY, d);
                    self.b.ins().fcmp(FloatCC::Equal, a, inf)
                }
                _ => return Err(bad()),
            });
        }
        if d == DType::Bool {
            return match op {
                UnaryOp::Not => {
                    let one = self.b.ins().iconst(types::I8, 1);
                    Ok(self.b.ins().bxor(x, one))
                }
                _ => Err(bad()),
            };
        }
        let zero = self.b.ins().iconst(ty, 0);
        let unsigned = is_unsigned(d);
        Ok(match op {
            UnaryOp::Neg => self.b.ins().ineg(x),
            UnaryOp::Abs if unsigned => x,
            UnaryOp::Abs => {
                let n = self.b.ins().ineg(x);
                let neg = self.b.ins().icmp(IntCC::SignedLessThan, x, zero);
                self.b.ins().select(neg, n, x)
            }
            UnaryOp::Sign => {
                let one = self.b.ins().iconst(ty, 1);
                if unsigned {
                    let nz = self.b.ins().icmp(IntCC::NotEqual, x, zero);
                    self.b.ins().select(nz, one, zero)
                } else {
                    let m1 = self.b.ins().iconst(ty, mask(ty));
                    let gt = self.b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
                    let lt = self.b.ins().icmp(IntCC::SignedLessThan, x, zero);
                    let r = self.b.ins().select(lt, m1, zero);
                    self.b.ins().select(gt, one, r)
                }
            }
            UnaryOp::Relu if unsigned => x,
            UnaryOp::Relu => {
                let pos = self.b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
                self.b.ins().select(pos, x, zero)
            }
            _ => return Err(bad()),
        })
    }

    fn binary(&mut self, op: BinaryOp, d: DType, x: Value, y: Value) -> R<Value> {
        use BinaryOp::*;
        let bad = || format!("`{}` on {}", op.name(), d.name());
        if d.is_float() {
            let cc = match op {
                Eq => Some(FloatCC::Equal),
                Ne => Some(FloatCC::NotEqual),
                Lt => Some(FloatCC::LessThan),
                Le => Some(FloatCC::LessThanOrEqual),
                Gt => Some(FloatCC::GreaterThan),
                Ge => Some(FloatCC::GreaterThanOrEqual),
                _ => None,
            };
            if let Some(cc) = cc {
                return Ok(self.b.ins().fcmp(cc, x, y));
            }
            return Ok(match op {
                Add => {
                    let r = self.b.ins().fadd(x, y);
                    self.round_half32(d, r)
                }
                Sub => {
                    let r = self.b.ins().fsub(x, y);
                    self.round_half32(d, r)
                }
                Mul => {
                    let r = self.b.ins().fmul(x, y);
                    self.round_half32(d, r)
                }
                Div => {
                    let r = self.b.ins().fdiv(x, y);
                    self.round_half32(d, r)
                }
                Max => self.b.ins().fmax(x, y),
                Min => self.b.ins().fmin(x, y),
                Rem | Pow => {
                    let (a, b) = (self.widen_f64(d, x), self.widen_f64(d, y));
                    let r = self.call(if op == Rem { Lib::Fmod } else { Lib::Pow }, &[a, b]);
                    self.round_from_f64(d, r)
                }
                _ => return Err(bad()),
            });
        }
        let unsigned = is_unsigned(d);
        let cc = match op {
            Eq => Some(IntCC::Equal),
            Ne => Some(IntCC::NotEqual),
            Lt => Some(if unsigned { IntCC::UnsignedLessThan } else { IntCC::SignedLessThan }),
            Le => Some(if unsigned { IntCC::UnsignedLessThanOrEqual } else { IntCC::SignedLessThanOrEqual }),
            Gt => Some(if unsigned { IntCC::UnsignedGreaterThan } else { IntCC::SignedGreaterThan }),
            Ge => Some(if unsigned { IntCC::UnsignedGreaterThanOrEqual } else { IntCC::SignedGreaterThanOrEqual }),
            _ => None,
        };
        if let Some(cc) = cc {
            return Ok(self.b.ins().icmp(cc, x, y));
        }
        if d == DType::Bool {
            return Ok(match op {
                And => self.b.ins().band(x, y),
                Or => self.b.ins().bor(x, y),
                Xor => self.b.ins().bxor(x, y),
                _ => return Err(bad()),
            });
        }
        let ty = reg_type(d);
        Ok(match op {
            Add => self.b.ins().iadd(x, y),
            Sub => self.b.ins().isub(x, y),
            Mul => self.b.ins().imul(x, y),
            Max if unsigned => self.b.ins().umax(x, y),
            Max => self.b.ins().smax(x, y),
            Min if unsigned => self.b.ins().umin(x, y),
            Min => self.b.ins().smin(x, y),
            // A constant divisor other than 0 and -1 needs no checks (index arithmetic divides
            // by shape constants): no branch, and Cranelift multiplies by a magic number.
            Div | Rem
                if self.constant(y).is_some_and(|c| {
                    let (all, c) = (mask(ty) as u64, c as u64 & mask(ty) as u64);
                    c != 0 && (unsigned || c != all)
                }) =>
            {
                match (op, unsigned) {
                    (Div, true) => self.b.ins().udiv(x, y),
                    (Rem, true) => self.b.ins().urem(x, y),
                    (Div, false) => self.b.ins().sdiv(x, y),
                    _ => self.b.ins().srem(x, y),
                }
            }
            Div | Rem => {
                let zero = self.b.ins().iconst(ty, 0);
                let is_zero = self.b.ins().icmp(IntCC::Equal, y, zero);
                self.fail_if(is_zero, if op == Div { Status::DivisionByZero } else { Status::RemainderByZero });
                match (op, unsigned) {
                    (Div, true) => self.b.ins().udiv(x, y),
                    (Rem, true) => self.b.ins().urem(x, y),
                    _ => {
                        // `MIN / -1` wraps (and `MIN % -1` is 0): divide by 1 instead.
                        let m1 = self.b.ins().iconst(ty, mask(ty));
                        let one = self.b.ins().iconst(ty, 1);
                        let is_m1 = self.b.ins().icmp(IntCC::Equal, y, m1);
                        let safe = self.b.ins().select(is_m1, one, y);
                        if op == Div {
                            let q = self.b.ins().sdiv(x, safe);
                            let n = self.b.ins().ineg(x);
                            self.b.ins().select(is_m1, n, q)
                        } else {
                            self.b.ins().srem(x, safe)
                        }
                    }
                }
            }
            Pow => {
                if !unsigned {
                    let zero = self.b.ins().iconst(ty, 0);
                    let neg = self.b.ins().icmp(IntCC::SignedLessThan, y, zero);
                    self.fail_if(neg, Status::NegativeExponent);
                }
                let a = self.int_convert(x, d, if unsigned { DType::U64 } else { DType::I64 });
                let b = self.int_convert(y, d, if unsigned { DType::U64 } else { DType::I64 });
                let r = self.call(Lib::IPow, &[a, b]);
                self.int_convert(r, DType::I64, d)
            }
            And => self.b.ins().band(x, y),
            Or => self.b.ins().bor(x, y),
            Xor => self.b.ins().bxor(x, y),
            _ => return Err(bad()),
        })
    }

    /// Integer → integer (wrapping; widened by the source's signedness).
    fn int_convert(&mut self, v: Value, from: DType, to: DType) -> Value {
        let (ft, tt) = (reg_type(from), reg_type(to));
        if ft == tt {
            v
        } else if ft.bits() > tt.bits() {
            self.b.ins().ireduce(tt, v)
        } else if is_unsigned(from) {
            self.b.ins().uextend(tt, v)
        } else {
            self.b.ins().sextend(tt, v)
        }
    }

    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        if from == to {
            return x;
        }
        if to == DType::Bool {
            return if from.is_float() {
                let z = self.float_const(0.0, from);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else {
                let z = self.b.ins().iconst(reg_type(from), 0);
                self.b.ins().icmp(IntCC::NotEqual, x, z)
            };
        }
        match (from.is_float(), to.is_float()) {
            (true, true) => match (from, to) {
                (DType::F32 | DType::F16 | DType::BF16, DType::F32) => x,
                (_, DType::F64) => self.b.ins().fpromote(types::F64, x),
                (DType::F64, DType::F32) => self.b.ins().fdemote(types::F32, x),
                _ => {
                    let w = self.widen_f64(from, x);
                    self.round_from_f64(to, w)
                }
            },
            (true, false) => {
                // Rust `as`: truncate toward zero, saturate, NaN → 0.
                let tt = reg_type(to);
                if to == DType::U64 {
                    return self.b.ins().fcvt_to_uint_sat(types::I64, x);
                }
                let wide = self.b.ins().fcvt_to_sint_sat(types::I64, x);
                if to == DType::I64 {
                    return wide;
                }
                let (lo, hi) = int_range(to);
                let lo = self.b.ins().iconst(types::I64, lo);
                let hi = self.b.ins().iconst(types::I64, hi);
                let c = self.b.ins().smax(wide, lo);
                let c = self.b.ins().smin(c, hi);
                self.b.ins().ireduce(tt, c)
            }
            (false, true) => {
                let wide = self.int_convert(x, from, if is_unsigned(from) { DType::U64 } else { DType::I64 });
                let target = if to == DType::F64 { types::F64 } else { types::F32 };
                let direct = to == DType::F32 || to == DType::F64;
                let t = if direct { target } else { types::F64 };
                let r = if is_unsigned(from) {
                    self.b.ins().fcvt_from_uint(t, wide)
                } else {
                    self.b.ins().fcvt_from_sint(t, wide)
                };
                if direct {
                    r
                } else {
                    self.round_from_f64(to, r)
                }
            }
            (false, false) => self.int_convert(x, from, to),
        }
    }

    // ------------------------------------------------------------ vector loops

    /// `for var < extent vector(4)` over `f32` as 128-bit vectors: the body must be `let`s and
    /// stores whose values are `f32` arithmetic, and whose loads and stores are contiguous in
    /// `var` (flat index `var + invariant`) or invariant in it. Returns `false` (emitting
    /// nothing) when the body does not fit.
    fn try_vector_loop(&mut self, var: nnc_kernel::Var, extent: &Expr, body: &[Stmt]) -> R<bool> {
        let Some(n) = extent.as_int() else { return Ok(false) };
        let mut lanes = Lanes::new();
        if n % 4 != 0 || !vector_plan(self.kernel, var.id, body, &mut lanes) {
            return Ok(false);
        }
        let iv = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(iv, zero);
        let (header, bodyb, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(iv);
        let nv = self.b.ins().iconst(types::I64, n);
        let done = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, i, nv);
        self.b.ins().brif(done, exit, &[], bodyb, &[]);
        self.b.seal_block(bodyb);
        self.b.seal_block(exit);
        self.b.switch_to_block(bodyb);
        self.bind(var.id, (iv, false));
        self.open_scope(body);
        self.vector_body(var.id, body, &lanes)?;
        self.close_scope();
        let i = self.b.use_var(iv);
        let four = self.b.ins().iconst(types::I64, 4);
        let next = self.b.ins().iadd(i, four);
        self.b.def_var(iv, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        Ok(true)
    }

    /// The body of a vector loop over `lv` (bound to lane 0's index), one vector per `f32`.
    fn vector_body(&mut self, lv: u32, body: &[Stmt], lanes: &Lanes) -> R<()> {
        for s in body {
            match s {
                Stmt::Let { var: v, value } => {
                    let x = if lanes.get(&v.id) == Some(&Lane::Vector) {
                        self.consts.remove(&v.id);
                        self.vexpr(value, lv, lanes)?
                    } else {
                        // Scalars (and lane 0 of affine indices) may be constants of unrolled loops.
                        match const_eval(value, &self.consts) {
                            Some(c) => self.consts.insert(v.id, c),
                            None => self.consts.remove(&v.id),
                        };
                        Val { v: self.expr(value)?, vector: false }
                    };
                    let ty = if x.vector { types::F32X4 } else { reg_type(v.dtype) };
                    let cv = self.b.declare_var(ty);
                    self.b.def_var(cv, x.v);
                    self.bind(v.id, (cv, x.vector));
                }
                Stmt::Store { buf, index, value } => {
                    let x = self.vexpr(value, lv, lanes)?;
                    let x = self.splat(x);
                    if self.vpromoted.contains(&buf.0) {
                        let flat = self.const_flat(*buf, index)?;
                        self.vreg_set(*buf, flat, x);
                    } else {
                        let addr = self.address(*buf, index)?;
                        self.b.ins().store(mem(), x, addr, 0);
                        self.forget_loads(*buf);
                    }
                }
                _ => unreachable!("vector_plan accepts lets and stores only"),
            }
        }
        Ok(())
    }

    /// A load whose mask varies between lanes (a conjunction of affine comparisons, so it holds
    /// for all four lanes when it holds for lanes 0 and 3): one vector load (or gather, for a
    /// lane stride `step` other than 1) when it does, lane by lane otherwise.
    #[allow(clippy::too_many_arguments)]
    fn masked_vload(
        &mut self,
        buf: BufId,
        dtype: DType,
        index: &[Expr],
        m: &Expr,
        step: i64,
        lv: u32,
        lanes: &Lanes,
    ) -> R<Value> {
        let m0 = self.expr(&at_lane(m, lv, lanes, 0))?;
        let m3 = self.expr(&at_lane(m, lv, lanes, 3))?;
        let all = self.b.ins().band(m0, m3);
        let (fast, slow, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let res = self.b.append_block_param(merge, types::F32X4);
        self.b.ins().brif(all, fast, &[], slow, &[]);
        self.b.seal_block(fast);
        self.b.seal_block(slow);
        self.b.switch_to_block(fast);
        let v = self.unmasked_vload(buf, index, step)?;
        self.b.ins().jump(merge, &[v.into()]);
        self.b.switch_to_block(slow);
        if !index.iter().any(contains_load) && !self.kernel.buffer(buf).is_empty() {
            let r = self.lanewise_vload(buf, index, m, step, lv, lanes)?;
            self.b.ins().jump(merge, &[r.into()]);
            self.b.seal_block(merge);
            self.b.switch_to_block(merge);
            return Ok(res);
        }
        let z = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, z);
        for lane in 0..4i64 {
            let e = Expr::Load {
                buf,
                dtype,
                index: index.iter().map(|i| at_lane(i, lv, lanes, lane)).collect(),
                mask: Some(Box::new(at_lane(m, lv, lanes, lane))),
            };
            let x = self.expr(&e)?;
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        self.b.ins().jump(merge, &[r.into()]);
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
        Ok(res)
    }

    /// A load whose mask fails for some lanes, without branches (an edge tile meets one every
    /// iteration): lanes whose mask fails load the buffer's first element instead of their own
    /// and become 0. Only for indices that cannot fail (no data-dependent index).
    fn lanewise_vload(&mut self, buf: BufId, index: &[Expr], m: &Expr, step: i64, lv: u32, lanes: &Lanes) -> R<Value> {
        let base = self.bases[buf.index()];
        let zero = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, zero);
        let addr0 = self.address(buf, index)?;
        for lane in 0..4i64 {
            let mk = self.expr(&at_lane(m, lv, lanes, lane))?;
            let off = self.b.ins().iconst(types::I64, lane * step * 4);
            let addr = self.b.ins().iadd(addr0, off);
            let safe = self.b.ins().select(mk, addr, base);
            let x = self.b.ins().load(types::F32, mem(), safe, 0);
            let x = self.b.ins().select(mk, x, zero);
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        Ok(r)
    }

    /// Four `f32` lanes at `index` (lane 0) and every `step` elements after it: one vector load
    /// when they are consecutive, a splat when they are one element, else four scalar loads at
    /// constant offsets (strided convolutions read every other element).
    fn unmasked_vload(&mut self, buf: BufId, index: &[Expr], step: i64) -> R<Value> {
        let addr = self.address(buf, index)?;
        if step == 1 {
            return Ok(self.b.ins().load(types::F32X4, mem(), addr, 0));
        }
        let x0 = self.b.ins().load(types::F32, mem(), addr, 0);
        let mut r = self.b.ins().splat(types::F32X4, x0);
        if step != 0 {
            for lane in 1..4i64 {
                let off = i32::try_from(lane * step * 4).map_err(|_| "vector lane stride too large")?;
                let x = self.b.ins().load(types::F32, mem(), addr, off);
                r = self.b.ins().insertlane(r, x, lane as u8);
            }
        }
        Ok(r)
    }

    /// `select(c, a, b)` in a vector loop: `a` is evaluated with `c` masking its loads (lanes
    /// that `c` discards read nothing, so an edge tile never reads past its row), then the
    /// lanes are merged by `c` (lane by lane when `c` varies between them).
    fn vselect(&mut self, c: &Expr, a: &Expr, b: &Expr, lv: u32, lanes: &Lanes) -> R<Value> {
        self.guards.push(c.clone());
        let x = self.vexpr(a, lv, lanes);
        self.guards.pop();
        let x = x?;
        let y = self.vexpr(b, lv, lanes)?;
        let (x, y) = (self.splat(x), self.splat(y));
        if !varies(c, lv, lanes) {
            let cv = self.expr(c)?;
            return Ok(self.b.ins().select(cv, x, y));
        }
        let zero = self.b.ins().iconst(types::I32, 0);
        let mut bits = self.b.ins().splat(types::I32X4, zero);
        for lane in 0..4i64 {
            let ck = self.expr(&at_lane(c, lv, lanes, lane))?;
            let w = self.b.ins().bmask(types::I32, ck);
            bits = self.b.ins().insertlane(bits, w, lane as u8);
        }
        let m = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), bits);
        Ok(self.b.ins().bitselect(m, x, y))
    }

    /// `erf` on four lanes: `x * P(x²) / Q(x²)` on `x` clamped to [-4, 4] (beyond which `erf`
    /// rounds to ±1 in `f32`). NaN propagates through the clamp; `erf(-0) = -0`.
    fn verf(&mut self, x: Value) -> Value {
        let x = self.vclamp(x, -4.0, 4.0);
        let x2 = self.b.ins().fmul(x, x);
        let p = self.vhorner(x2, &ERF_NUM);
        let q = self.vhorner(x2, &ERF_DEN);
        let p = self.b.ins().fmul(p, x);
        self.b.ins().fdiv(p, q)
    }

    /// `v` in every `f32` lane.
    fn vconst(&mut self, v: f64) -> Value {
        let k = self.b.ins().f32const(v as f32);
        self.b.ins().splat(types::F32X4, k)
    }

    /// `x` clamped to `[lo, hi]` lane-wise (NaN stays NaN).
    fn vclamp(&mut self, x: Value, lo: f64, hi: f64) -> Value {
        let (lo, hi) = (self.vconst(lo), self.vconst(hi));
        let x = self.b.ins().fmin(x, hi);
        self.b.ins().fmax(x, lo)
    }

    /// The polynomial with coefficients `coefs` (constant term first) at `x`, by Horner's rule
    /// with fused multiply-adds where the CPU has them.
    fn vhorner(&mut self, x: Value, coefs: &[f64]) -> Value {
        let (&last, rest) = coefs.split_last().expect("a polynomial has coefficients");
        let mut acc = self.vconst(last);
        for &k in rest.iter().rev() {
            let k = self.vconst(k);
            acc = if self.fma {
                self.b.ins().fma(acc, x, k)
            } else {
                let m = self.b.ins().fmul(acc, x);
                self.b.ins().fadd(m, k)
            };
        }
        acc
    }

    /// `exp` on four `f32` lanes, within 2 ulp of the correctly rounded result (tested against
    /// `f64::exp`): `exp(x) = 2^n exp(r)` with `n = round(x / ln 2)` and `r = x - n ln 2` (ln 2
    /// in two parts, so `r` is exact enough), `exp(r)` by its Taylor polynomial to degree 7 on
    /// `|r| <= ln 2 / 2`, and `2^n` as two powers of two built from exponent bits (so results
    /// that are subnormal or overflow round as the product does). NaN stays NaN; `x` is clamped
    /// to `[-104, 89]`, beyond which `exp` is 0 or infinite in `f32` anyway.
    fn vexp(&mut self, x: Value) -> Value {
        let x = self.vclamp(x, -104.0, 89.0);
        let log2e = self.vconst(std::f64::consts::LOG2_E);
        let t = self.b.ins().fmul(x, log2e);
        let n = self.b.ins().nearest(t);
        let (ln2_hi, ln2_lo) = (self.vconst(0.693_359_375), self.vconst(-2.121_944_400_546_905_8e-4));
        let a = self.b.ins().fmul(n, ln2_hi);
        let r = self.b.ins().fsub(x, a);
        let b = self.b.ins().fmul(n, ln2_lo);
        let r = self.b.ins().fsub(r, b);
        let taylor = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
        let p = self.vhorner(r, &taylor);
        // 2^n = 2^n1 * 2^n2 with n1 = n >> 1: both halves stay normal for n in [-150, 128].
        let n = self.b.ins().fcvt_to_sint_sat(types::I32X4, n);
        let n1 = self.b.ins().sshr_imm_u(n, 1);
        let n2 = self.b.ins().isub(n, n1);
        let pow2 = |this: &mut Self, e: Value| {
            let bias = this.b.ins().iconst(types::I32, 127);
            let bias = this.b.ins().splat(types::I32X4, bias);
            let e = this.b.ins().iadd(e, bias);
            let bits = this.b.ins().ishl_imm_u(e, 23);
            this.b.ins().bitcast(types::F32X4, MemFlagsData::new(), bits)
        };
        let (s1, s2) = (pow2(self, n1), pow2(self, n2));
        let y = self.b.ins().fmul(p, s1);
        self.b.ins().fmul(y, s2)
    }

    /// The function's 16-byte stack slot for the lanes of a vector call.
    fn lane_slot(&mut self) -> StackSlot {
        *self.lane_slot.get_or_insert_with(|| {
            self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4))
        })
    }

    fn splat(&mut self, x: Val) -> Value {
        if x.vector {
            x.v
        } else {
            self.b.ins().splat(types::F32X4, x.v)
        }
    }

    /// An expression of a vector loop: lane-varying `f32` values become `f32x4`, everything else
    /// (index arithmetic, invariant values) stays scalar.
    fn vexpr(&mut self, e: &Expr, lv: u32, lanes: &Lanes) -> R<Val> {
        if !varies(e, lv, lanes) {
            return Ok(Val { v: self.expr(e)?, vector: false });
        }
        Ok(Val {
            vector: true,
            v: match e {
                Expr::Var(v) => {
                    let &(cv, _) = self.vars.get(&v.id).ok_or("undeclared variable")?;
                    self.b.use_var(cv)
                }
                Expr::Load { buf, index, mask, dtype } => {
                    if self.vpromoted.contains(&buf.0) {
                        let flat = self.const_flat(*buf, index)?;
                        self.vreg_get(*buf, flat)
                    } else {
                        // The guards of enclosing selects mask the load as well as its own mask.
                        let mask = self.guards.iter().chain(mask.as_deref()).cloned().reduce(Expr::and);
                        let key = self.load_key(index, mask.as_ref());
                        if let Some(v) = self.cached_load(*buf, &key) {
                            return Ok(Val { v, vector: true });
                        }
                        let flat = self.kernel.buffer(*buf).flat_index(index);
                        let step = coefficient(&flat, lv, lanes).ok_or("vector load not affine in the lane")?;
                        let v = match mask {
                            Some(m) => self.masked_vload(*buf, *dtype, index, &m, step, lv, lanes)?,
                            None => self.unmasked_vload(*buf, index, step)?,
                        };
                        self.loads.last_mut().expect("a scope").insert((buf.0, key), v);
                        v
                    }
                }
                Expr::Unary(op, a) => {
                    let x = self.vexpr(a, lv, lanes)?;
                    let x = self.splat(x);
                    if *op == UnaryOp::Erf {
                        return Ok(Val { v: self.verf(x), vector: true });
                    }
                    if *op == UnaryOp::Exp {
                        return Ok(Val { v: self.vexp(x), vector: true });
                    }
                    if lib_symbol(Lib::Unary(*op)).is_some() {
                        // Transcendentals: the scalar routine on each lane (f64, rounded to f32),
                        // through one call that maps the four lanes in a stack slot.
                        // The routine's address through a relocation (as calls get), never a
                        // constant of this process: a bundle runs in another one.
                        let slot = self.lane_slot();
                        let addr = self.b.ins().stack_addr(types::I64, slot, 0);
                        self.b.ins().store(MemFlagsData::trusted(), x, addr, 0);
                        let fv = self.b.ins().func_addr(types::I64, self.libs[&Lib::Unary(*op)]);
                        self.call(Lib::Map4, &[fv, addr]);
                        let r = self.b.ins().load(types::F32X4, MemFlagsData::trusted(), addr, 0);
                        return Ok(Val { v: r, vector: true });
                    }
                    match op {
                        UnaryOp::Neg => self.b.ins().fneg(x),
                        UnaryOp::Abs => self.b.ins().fabs(x),
                        UnaryOp::Sqrt => self.b.ins().sqrt(x),
                        UnaryOp::Floor => self.b.ins().floor(x),
                        UnaryOp::Ceil => self.b.ins().ceil(x),
                        UnaryOp::Round => self.b.ins().nearest(x),
                        UnaryOp::Reciprocal => {
                            let one = self.b.ins().f32const(1.0);
                            let one = self.b.ins().splat(types::F32X4, one);
                            self.b.ins().fdiv(one, x)
                        }
                        UnaryOp::Relu => {
                            // NaN-propagating max(x, 0) is relu, NaN kept.
                            let z = self.b.ins().f32const(0.0);
                            let z = self.b.ins().splat(types::F32X4, z);
                            self.b.ins().fmax(x, z)
                        }
                        _ => return Err(format!("vector `{}`", op.name())),
                    }
                }
                Expr::Select(c, a, b) => self.vselect(c, a, b, lv, lanes)?,
                Expr::Binary(BinaryOp::Add, a, b) if self.fma && (is_mul(a) || is_mul(b)) => {
                    // `c + x * y` (either order) as one fused multiply-add.
                    let (c, prod) = if is_mul(b) { (a, b) } else { (b, a) };
                    let Expr::Binary(_, x, y) = &**prod else { unreachable!("is_mul") };
                    let c = self.vexpr(c, lv, lanes)?;
                    let x = self.vexpr(x, lv, lanes)?;
                    let y = self.vexpr(y, lv, lanes)?;
                    let (c, x, y) = (self.splat(c), self.splat(x), self.splat(y));
                    self.b.ins().fma(x, y, c)
                }
                Expr::Binary(op, a, b) => {
                    let x = self.vexpr(a, lv, lanes)?;
                    let y = self.vexpr(b, lv, lanes)?;
                    let (x, y) = (self.splat(x), self.splat(y));
                    match op {
                        BinaryOp::Add => self.b.ins().fadd(x, y),
                        BinaryOp::Sub => self.b.ins().fsub(x, y),
                        BinaryOp::Mul => self.b.ins().fmul(x, y),
                        BinaryOp::Div => self.b.ins().fdiv(x, y),
                        BinaryOp::Max => self.b.ins().fmax(x, y),
                        BinaryOp::Min => self.b.ins().fmin(x, y),
                        _ => return Err(format!("vector `{}`", op.name())),
                    }
                }
                _ => return Err(format!("vector expression `{e}`")),
            },
        })
    }
}

/// Coefficients (of x⁰, x², x⁴, ... ) of the numerator and denominator of the `f32` rational
/// approximation of `erf(x) = x * num(x²) / den(x²)` on [-4, 4] (Eigen's); measured against
/// correctly rounded `erf` it is within 4.2e-7 relative error (6 ulp; `tests/vector_math.rs`).
pub(crate) const ERF_NUM: [f64; 7] = [
    -1.60960333262415e-02,
    -2.95459980854025e-03,
    -7.34990630326855e-04,
    -5.69250639462346e-05,
    -2.10102402082508e-06,
    2.77068142495902e-08,
    -2.72614225801306e-10,
];
pub(crate) const ERF_DEN: [f64; 5] =
    [-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04, -1.45660718464996e-05];

pub(crate) fn mask(ty: Type) -> i64 {
    if ty.bits() >= 64 {
        -1
    } else {
        (1i64 << ty.bits()) - 1
    }
}

pub(crate) fn int_range(d: DType) -> (i64, i64) {
    match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
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

/// Whether the body of a `vector(4)` loop over `lv` can run as `f32x4` code; fills `lanes`.
pub(crate) fn vector_plan(kernel: &Kernel, lv: u32, body: &[Stmt], lanes: &mut Lanes) -> bool {
    for s in body {
        match s {
            Stmt::Let { var, value } => {
                if !varies(value, lv, lanes) {
                    continue;
                }
                if var.dtype == DType::F32 && vector_expr_ok(kernel, value, lv, lanes) {
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
                if b.dtype != DType::F32 || b.space == Space::Workgroup || value.dtype() != DType::F32 {
                    return false;
                }
                if coefficient(&b.flat_index(index), lv, lanes) != Some(1) {
                    return false;
                }
                if varies(value, lv, lanes) && !vector_expr_ok(kernel, value, lv, lanes) {
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
fn at_lane(e: &Expr, lv: u32, lanes: &Lanes, k: i64) -> Expr {
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

/// A lane-varying expression made of what [`Emitter::vexpr`] supports (invariant parts are
/// scalar code, splatted).
fn vector_expr_ok(kernel: &Kernel, e: &Expr, lv: u32, lanes: &Lanes) -> bool {
    if !varies(e, lv, lanes) {
        return true;
    }
    match e {
        Expr::Var(v) => lanes.get(&v.id) == Some(&Lane::Vector),
        Expr::Load { buf, dtype, index, mask } => {
            let b = kernel.buffer(*buf);
            *dtype == DType::F32
                && mask.as_ref().is_none_or(|m| b.space == Space::Global && lane_mask_ok(m, lv, lanes))
                && b.space != Space::Workgroup
                && coefficient(&b.flat_index(index), lv, lanes).is_some()
        }
        Expr::Select(c, a, b) => {
            // `a`'s loads are masked by `c` (see `Emitter::vselect`): each must vary with the
            // lane (an invariant one is scalar code, outside the mask) and be global; `b` is
            // evaluated unmasked, so it must not load.
            let mut masked_ok = true;
            a.any(&mut |x| {
                if let Expr::Load { buf, .. } = x {
                    masked_ok &= varies(x, lv, lanes) && kernel.buffer(*buf).space == Space::Global;
                }
                false
            });
            a.dtype() == DType::F32
                && lane_mask_ok(c, lv, lanes)
                && masked_ok
                && !contains_load(b)
                && vector_expr_ok(kernel, a, lv, lanes)
                && vector_expr_ok(kernel, b, lv, lanes)
        }
        Expr::Unary(op, a) => {
            a.dtype() == DType::F32
                && (lib_symbol(Lib::Unary(*op)).is_some()
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
                && vector_expr_ok(kernel, a, lv, lanes)
        }
        Expr::Binary(op, a, b) => {
            a.dtype() == DType::F32
                && matches!(
                    op,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Max | BinaryOp::Min
                )
                && vector_expr_ok(kernel, a, lv, lanes)
                && vector_expr_ok(kernel, b, lv, lanes)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- unrolling and promotion

/// The vector width Cranelift code uses: 4 lanes of `f32`, or none.
fn lanes(vectorize: bool) -> u32 {
    if vectorize {
        4
    } else {
        1
    }
}

/// Loops emitted fully unrolled, as `(extent, step)`: `unroll` loops with a literal extent up to
/// 64, `vector` loops up to 32 iterations that do not become vector code (step 1) and up to 64
/// that do (step `width`: one vector per step), and serial loops up to 16 iterations that index
/// a private buffer with their variable (so the buffer can live in registers). `width` is the
/// emitter's vector width (1: none).
pub(crate) fn unrolled(
    kernel: &Kernel,
    width: u32,
    var: u32,
    kind: LoopKind,
    extent: &Expr,
    body: &[Stmt],
) -> Option<(i64, i64)> {
    let n = extent.as_int()?;
    match kind {
        LoopKind::Unroll if (0..=64).contains(&n) => Some((n, 1)),
        LoopKind::Vector(w) if (0..=64).contains(&n) => {
            let vectorizes =
                width > 1 && w == width && n % w as i64 == 0 && vector_plan(kernel, var, body, &mut Lanes::new());
            if vectorizes {
                Some((n, w as i64))
            } else {
                (n <= 32).then_some((n, 1))
            }
        }
        LoopKind::Serial if (0..=16).contains(&n) && indexes_private(kernel, var, body) => Some((n, 1)),
        _ => None,
    }
}

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
        found |= match s {
            Stmt::Store { buf, index, value } => {
                (kernel.buffer(*buf).space == Space::Private && uses(index)) || in_expr(value)
            }
            Stmt::Let { value, .. } | Stmt::Local { init: value, .. } | Stmt::Assign { value, .. } => in_expr(value),
            Stmt::If { cond, .. } => in_expr(cond),
            Stmt::For { extent, .. } => in_expr(extent),
            Stmt::Barrier => false,
        }
    });
    found
}

/// A private buffer held as `f32x4` registers (when every access has a constant index).
fn vector_promotable(b: &nnc_kernel::kernel::Buffer, vectorize: bool) -> bool {
    vectorize && b.dtype == DType::F32 && b.len() % 4 == 0 && b.len() <= 64
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

/// Private buffers whose every access has an index made of literals and variables of unrolled
/// loops: they live in registers.
pub(crate) fn promotable(kernel: &Kernel, width: u32) -> std::collections::HashSet<u32> {
    use std::collections::HashSet;
    fn index_const(index: &[Expr], known: &HashSet<u32>) -> bool {
        index.iter().all(|i| {
            !i.any(&mut |x| match x {
                Expr::Var(v) => !known.contains(&v.id),
                Expr::Load { .. } | Expr::Special(_) | Expr::Axis(_) | Expr::Reduce(_) => true,
                Expr::Binary(BinaryOp::Div | BinaryOp::Rem, ..) => true,
                _ => false,
            })
        })
    }
    fn expr(e: &Expr, kernel: &Kernel, known: &HashSet<u32>, bad: &mut HashSet<u32>) {
        e.any(&mut |x| {
            if let Expr::Load { buf, index, mask, .. } = x {
                if kernel.buffer(*buf).space == Space::Private && (mask.is_some() || !index_const(index, known)) {
                    bad.insert(buf.0);
                }
            }
            false
        });
    }
    fn walk(stmts: &[Stmt], kernel: &Kernel, width: u32, known: &mut HashSet<u32>, bad: &mut HashSet<u32>) {
        for s in stmts {
            match s {
                Stmt::For { var, extent, kind, body } => {
                    expr(extent, kernel, known, bad);
                    if unrolled(kernel, width, var.id, *kind, extent, body).is_some() {
                        known.insert(var.id);
                    } else {
                        known.remove(&var.id);
                    }
                    walk(body, kernel, width, known, bad);
                }
                Stmt::Let { var, value } => {
                    expr(value, kernel, known, bad);
                    if index_const(std::slice::from_ref(value), known) && value.dtype() == DType::I64 {
                        known.insert(var.id);
                    } else {
                        known.remove(&var.id);
                    }
                }
                Stmt::Local { init: value, .. } | Stmt::Assign { value, .. } => expr(value, kernel, known, bad),
                Stmt::Barrier => {}
                Stmt::Store { buf, index, value } => {
                    expr(value, kernel, known, bad);
                    index.iter().for_each(|i| expr(i, kernel, known, bad));
                    if kernel.buffer(*buf).space == Space::Private && !index_const(index, known) {
                        bad.insert(buf.0);
                    }
                }
                Stmt::If { cond, then, els } => {
                    expr(cond, kernel, known, bad);
                    walk(then, kernel, width, known, bad);
                    walk(els, kernel, width, known, bad);
                }
            }
        }
    }
    let mut bad = HashSet::new();
    walk(&kernel.body, kernel, width, &mut HashSet::new(), &mut bad);
    (0..kernel.buffers.len() as u32)
        .filter(|&b| kernel.buffers[b as usize].space == Space::Private && !bad.contains(&b))
        .filter(|&b| kernel.buffers[b as usize].len() <= 256)
        .collect()
}
