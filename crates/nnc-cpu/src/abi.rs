//! The contract between generated kernels and the process that runs them, shared by both code
//! generators: the kernel function's signature ([`KernelFn`]), the [`Status`] codes it returns,
//! and the runtime helpers it may call ([`Lib`]: transcendentals in `f64`, `fmod`, integer
//! `pow`, half-precision conversions), each with its symbol, address and signature.

use nnc_ir::{DType, UnaryOp};

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

/// The float8/float4 pattern of `x` in the format that is `DType::ALL[format]` (rounded to
/// nearest even, not saturating: registers already hold values of the format, and a saturating
/// cast clamps before it converts).
extern "C" fn nnc_lowp_encode(format: u32, x: f64) -> u32 {
    let dtype = DType::ALL.get(format as usize).copied().unwrap_or(DType::F32);
    nnc_ir::lowp::encode(dtype, x, false).unwrap_or(0) as u32
}

/// The value of the float8/float4 pattern `bits` in the format that is `DType::ALL[format]`.
extern "C" fn nnc_lowp_decode(format: u32, bits: u32) -> f32 {
    let dtype = DType::ALL.get(format as usize).copied().unwrap_or(DType::F32);
    nnc_ir::lowp::decode(dtype, bits as u8).unwrap_or(f64::NAN) as f32
}

/// The number a kernel passes to the low-precision helpers for `dtype`.
pub(crate) fn lowp_format_code(dtype: DType) -> i64 {
    DType::ALL.iter().position(|&d| d == dtype).unwrap_or(0) as i64
}

/// A runtime helper a kernel may call.
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
    LowpEncode,
    LowpDecode,
}

/// A helper's parameter or result type, for each generator to spell in its own IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    F64,
    F32,
    I64,
    I32,
}

/// A helper: its symbol, its address in this process and its signature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Helper {
    pub name: &'static str,
    pub address: *const u8,
    pub params: &'static [Arg],
    pub ret: Arg,
}

/// The helper `lib` names, if it has one (`Lib::Unary` has one for transcendentals only).
pub(crate) fn helper(lib: Lib) -> Option<Helper> {
    use Arg::*;
    let h = |name, f: *const u8, params, ret| Some(Helper { name, address: f, params, ret });
    let u = |name, f: extern "C" fn(f64) -> f64| h(name, f as *const u8, &[F64], F64);
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
        Lib::Map4 => h("nnc_map4", nnc_map4 as *const u8, &[I64, I64], I64),
        Lib::Map => h("nnc_map", nnc_map as *const u8, &[I64, I64, I64], I64),
        Lib::Fmod => h("nnc_fmod", nnc_fmod as *const u8, &[F64, F64], F64),
        Lib::Pow => h("nnc_pow", nnc_pow as *const u8, &[F64, F64], F64),
        Lib::IPow => h("nnc_ipow", nnc_ipow as *const u8, &[I64, I64], I64),
        Lib::RoundF16 => h("nnc_round_f16", nnc_round_f16 as *const u8, &[F64], F32),
        Lib::RoundBF16 => h("nnc_round_bf16", nnc_round_bf16 as *const u8, &[F64], F32),
        Lib::F16ToF32 => h("nnc_f16_to_f32", nnc_f16_to_f32 as *const u8, &[I32], F32),
        Lib::F32ToF16 => h("nnc_f32_to_f16", nnc_f32_to_f16 as *const u8, &[F32], I32),
        Lib::LowpEncode => h("nnc_lowp_encode", nnc_lowp_encode as *const u8, &[I32, F64], I32),
        Lib::LowpDecode => h("nnc_lowp_decode", nnc_lowp_decode as *const u8, &[I32, I32], F32),
    }
}

/// Whether `op` on floats is computed by a helper (in `f64`), not inline.
pub(crate) fn is_transcendental(op: UnaryOp) -> bool {
    helper(Lib::Unary(op)).is_some()
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
        _ => ALL_LIBS.iter().filter_map(|&lib| helper(lib)).find(|h| h.name == name).map(|h| h.address),
    }
}

/// Every helper's name and address in this process.
pub(crate) fn helper_addresses() -> impl Iterator<Item = (&'static str, *const u8)> {
    ALL_LIBS.iter().filter_map(|&lib| helper(lib)).map(|h| (h.name, h.address))
}

pub(crate) const ALL_LIBS: &[Lib] = &[
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
    Lib::LowpEncode,
    Lib::LowpDecode,
];

// ---------------------------------------------------------------- dtypes

/// Whether integers of `d` are unsigned (`bool` counts as one).
pub(crate) fn is_unsigned(d: DType) -> bool {
    matches!(d, DType::U2 | DType::U4 | DType::U8 | DType::U16 | DType::U32 | DType::U64 | DType::Bool)
}

/// The values of an integer dtype (a float → int cast saturates to them).
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
