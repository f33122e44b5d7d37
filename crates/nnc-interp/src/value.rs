//! Runtime tensors and the index arithmetic every kernel shares.
//!
//! A [`Value`] holds its elements in one of three widened forms:
//! - floating-point dtypes (`f32`, `f64`, `f16`, `bf16`) as `f64`, always already rounded to the
//!   value's dtype, so every float element is exactly representable in its dtype;
//! - integer dtypes (`i64 i32 i16 i8 u64 u32 u16 u8`) as `i64`, always already wrapped to the
//!   dtype's width (two's complement, as numpy's fixed-width integers). Every dtype but `u64`
//!   fits, so the `i64` is the value itself. A `u64` is held as its bit pattern (`u64 as i64`:
//!   `2^64 - 1` is held as `-1`), which makes wrapping `+ - *` (and casts between integer
//!   dtypes) the same bit operations as for `i64`; everything that depends on the value's sign
//!   (order, `max`/`min`, division, remainder, `abs`, `sign`, conversion to float) reads it back
//!   as `u64` first, through [`IntKind`];
//! - `bool` as `bool`.
//!
//! Kernels compute in the wide form and call [`Value::float`] / [`Value::int`], which round or
//! wrap the result to the dtype: "compute in f64 (or i64), round after each op".

use half::{bf16, f16};
use nnc_ir::{DType, TensorData};

/// The largest number of elements a value may have (2^31): beyond it the interpreter reports an
/// error rather than trying to allocate.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Elements in their widened form (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

/// One element in widened form, for fill values and the like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Float(f64),
    Int(i64),
    Bool(bool),
}

/// A tensor during interpretation: dtype, concrete row-major shape and widened elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Data,
}

/// Rounds `x` to the nearest value of float dtype `dtype` (round-half-to-even, as IEEE casts);
/// other dtypes leave it unchanged.
pub fn round_float(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => x as f32 as f64,
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        d if d.is_minifloat() => nnc_ir::lowp::round(d, x),
        _ => x,
    }
}

/// Wraps `x` to the width of integer dtype `dtype` (two's complement; `u64` keeps the bit
/// pattern); other dtypes leave it unchanged.
pub fn wrap_int(dtype: DType, x: i64) -> i64 {
    match dtype {
        DType::I32 => x as i32 as i64,
        DType::I16 => x as i16 as i64,
        DType::I8 => x as i8 as i64,
        DType::U32 => x as u32 as i64,
        DType::U16 => x as u16 as i64,
        DType::U8 => x as u8 as i64,
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => nnc_ir::lowp::wrap_sub_byte(dtype, x),
        _ => x,
    }
}

/// Rounds every element of `xs` to `dtype` in place.
pub fn round_all(dtype: DType, xs: &mut [f64]) {
    match dtype {
        DType::F32 => xs.iter_mut().for_each(|x| *x = *x as f32 as f64),
        DType::F16 => xs.iter_mut().for_each(|x| *x = f16::from_f64(*x).to_f64()),
        DType::BF16 => xs.iter_mut().for_each(|x| *x = bf16::from_f64(*x).to_f64()),
        d if d.is_minifloat() => xs.iter_mut().for_each(|x| *x = nnc_ir::lowp::round(d, *x)),
        _ => {}
    }
}

/// Wraps every element of `xs` to `dtype` in place.
pub fn wrap_all(dtype: DType, xs: &mut [i64]) {
    match dtype {
        DType::I64 | DType::U64 => {}
        d if d.is_int() => xs.iter_mut().for_each(|x| *x = wrap_int(dtype, *x)),
        _ => {}
    }
}

/// The arithmetic of the `i64` form of integer values: `i64` itself for every integer dtype but
/// `u64`, whose values are held as their bit patterns and computed on as `u64` (see the module
/// docs). Kernels whose result depends on the sign are generic over `Int` and pick the type
/// with [`with_int!`].
pub trait Int: Copy + Ord + std::fmt::Display + 'static {
    const ZERO: Self;
    /// The smallest and largest values of the widened type (`i64` or `u64`).
    const MIN: Self;
    const MAX: Self;
    /// The value held as `x`.
    fn from_held(x: i64) -> Self;
    /// The `i64` form that holds `self`.
    fn held(self) -> i64;
    /// A count (`< 2^63`).
    fn from_count(n: usize) -> Self;
    /// Nearest `f64` / `f32` (each rounded once, to nearest-even).
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// Truncating division (`o != 0`), wrapping on `MIN / -1`.
    fn div(self, o: Self) -> Self;
    /// Remainder with the dividend's sign (`o != 0`).
    fn rem(self, o: Self) -> Self;
    fn neg(self) -> Self;
    /// `|x|`, wrapping (`i64::MIN` stays `i64::MIN`); the identity for `u64`.
    fn abs(self) -> Self;
    /// `-1`, `0` or `1`.
    fn signum(self) -> Self;
    /// `self^exp` by repeated wrapping multiplication; `exp >= 0`.
    fn pow(self, exp: Self) -> Self;
}

macro_rules! int_impl {
    ($t:ty, abs: |$a:ident| $abs:expr, signum: |$s:ident| $signum:expr) => {
        impl Int for $t {
            const ZERO: $t = 0;
            const MIN: $t = <$t>::MIN;
            const MAX: $t = <$t>::MAX;
            fn from_held(x: i64) -> $t {
                x as $t
            }
            fn held(self) -> i64 {
                self as i64
            }
            fn from_count(n: usize) -> $t {
                n as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn add(self, o: $t) -> $t {
                self.wrapping_add(o)
            }
            fn sub(self, o: $t) -> $t {
                self.wrapping_sub(o)
            }
            fn mul(self, o: $t) -> $t {
                self.wrapping_mul(o)
            }
            fn div(self, o: $t) -> $t {
                if o == 0 {
                    0
                } else {
                    self.wrapping_div(o)
                }
            }
            fn rem(self, o: $t) -> $t {
                if o == 0 {
                    0
                } else {
                    self.wrapping_rem(o)
                }
            }
            fn neg(self) -> $t {
                self.wrapping_neg()
            }
            fn abs(self) -> $t {
                let $a = self;
                $abs
            }
            fn signum(self) -> $t {
                let $s = self;
                $signum
            }
            fn pow(self, mut exp: $t) -> $t {
                let (mut result, mut b): ($t, $t) = (1, self);
                while exp > 0 {
                    if exp & 1 == 1 {
                        result = result.wrapping_mul(b);
                    }
                    b = b.wrapping_mul(b);
                    exp >>= 1;
                }
                result
            }
        }
    };
}

int_impl!(i64, abs: |x| x.wrapping_abs(), signum: |x| x.signum());
int_impl!(u64, abs: |x| x, signum: |x| (x != 0) as u64);

/// Evaluates `$body` with the type alias `$t` naming the [`Int`] type of integer dtype `$dtype`
/// (`u64` for `u64`, `i64` for the others).
macro_rules! with_int {
    ($dtype:expr, $t:ident => $body:expr) => {
        if $dtype == nnc_ir::DType::U64 {
            type $t = u64;
            $body
        } else {
            type $t = i64;
            $body
        }
    };
}
pub(crate) use with_int;

/// The smallest and largest values of integer dtype `dtype`, in `T` (the type it computes in).
pub fn int_range<T: Int>(dtype: DType) -> (T, T) {
    let (lo, hi): (i64, i64) = match dtype {
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U8 => (0, u8::MAX.into()),
        DType::I4 => (-8, 7),
        DType::U4 => (0, 15),
        DType::I2 => (-2, 1),
        DType::U2 => (0, 3),
        _ => return (T::MIN, T::MAX),
    };
    (T::from_held(lo), T::from_held(hi))
}

/// The message for a widened form that does not match the dtype: unreachable for verified
/// graphs, reported rather than panicking.
pub fn internal(what: &str) -> String {
    format!("internal interpreter error: {what} (please report)")
}

impl Value {
    /// A float value; rounds `data` to `dtype`.
    pub fn float(dtype: DType, shape: Vec<usize>, mut data: Vec<f64>) -> Value {
        round_all(dtype, &mut data);
        Value { dtype, shape, data: Data::Float(data) }
    }

    /// An integer value; wraps `data` to `dtype`.
    pub fn int(dtype: DType, shape: Vec<usize>, mut data: Vec<i64>) -> Value {
        wrap_all(dtype, &mut data);
        Value { dtype, shape, data: Data::Int(data) }
    }

    pub fn bool(shape: Vec<usize>, data: Vec<bool>) -> Value {
        Value { dtype: DType::Bool, shape, data: Data::Bool(data) }
    }

    /// The value with the same elements and a new shape (same element count).
    pub fn with_shape(self, shape: Vec<usize>) -> Value {
        Value { shape, ..self }
    }

    /// The number of elements held.
    pub fn numel(&self) -> usize {
        self.data.numel()
    }

    /// Converts a tensor at the interpreter's boundary (graph inputs and constants). Exact for
    /// every dtype.
    pub fn from_tensor(t: &TensorData) -> Value {
        let shape = t.shape().to_vec();
        let data = match t.dtype() {
            d if d.is_float() => Data::Float(t.to_f64_vec()),
            // `u64` as bit patterns, which is what `to_i64_vec` gives.
            d if d.is_int() => Data::Int(t.to_i64_vec()),
            _ => Data::Bool(t.to_i64_vec().into_iter().map(|v| v != 0).collect()),
        };
        Value { dtype: t.dtype(), shape, data }
    }

    /// Converts back to a tensor of the value's dtype. Exact, because elements are kept rounded
    /// (or wrapped) to the dtype.
    pub fn to_tensor(&self) -> Result<TensorData, String> {
        let shape = self.shape.clone();
        match (&self.data, self.dtype) {
            (Data::Float(v), d) if d.is_float() => Ok(TensorData::from_f64(self.dtype, shape, v)),
            (Data::Int(v), d) if d.is_int() => Ok(TensorData::from_i64(self.dtype, shape, v)),
            (Data::Bool(v), DType::Bool) => Ok(TensorData::from_vec(shape, v)),
            _ => Err(internal(&format!("{} value holds the wrong element kind", self.dtype))),
        }
    }

    pub fn floats(&self) -> Result<&[f64], String> {
        match &self.data {
            Data::Float(v) => Ok(v),
            _ => Err(internal(&format!("expected floats, found a {} value", self.dtype))),
        }
    }

    pub fn ints(&self) -> Result<&[i64], String> {
        match &self.data {
            Data::Int(v) => Ok(v),
            _ => Err(internal(&format!("expected integers, found a {} value", self.dtype))),
        }
    }

    pub fn bools(&self) -> Result<&[bool], String> {
        match &self.data {
            Data::Bool(v) => Ok(v),
            _ => Err(internal(&format!("expected bools, found a {} value", self.dtype))),
        }
    }

    /// The elements as indices (for `gather`/`scatter_add`): integers only.
    pub fn indices(&self) -> Result<&[i64], String> {
        self.ints()
    }

    /// `value` (a float attribute such as a pad value) converted to this value's dtype with
    /// `cast` semantics.
    pub fn scalar_like(dtype: DType, value: f64) -> Scalar {
        match dtype {
            d if d.is_float() => Scalar::Float(round_float(dtype, value)),
            d if d.is_int() => Scalar::Int(float_to_int(dtype, value)),
            _ => Scalar::Bool(value != 0.0),
        }
    }
}

/// Float to integer dtype: truncates toward zero and saturates at the dtype's range; NaN is 0
/// (Rust's `as`). The 4- and 2-bit types saturate at `i64`'s range and then wrap, as ONNX's
/// reference casts do (`-9.0` to `i4` is 7). The result is in the `i64` form (a `u64` as its bit
/// pattern).
pub fn float_to_int(dtype: DType, x: f64) -> i64 {
    match dtype {
        DType::I32 => x as i32 as i64,
        DType::I16 => x as i16 as i64,
        DType::I8 => x as i8 as i64,
        DType::U64 => x as u64 as i64,
        DType::U32 => x as u32 as i64,
        DType::U16 => x as u16 as i64,
        DType::U8 => x as u8 as i64,
        _ => wrap_int(dtype, x as i64),
    }
}

impl Data {
    pub fn numel(&self) -> usize {
        match self {
            Data::Float(v) => v.len(),
            Data::Int(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    /// `out[i] = self[idx[i]]`, or `fill` where `idx[i]` is [`FILL`]. Every other index must be
    /// in range (callers compute them from shapes); a bad one is reported, not a panic.
    pub fn take(&self, idx: &[usize], fill: Option<Scalar>) -> Result<Data, String> {
        fn go<T: Copy>(src: &[T], idx: &[usize], fill: Option<T>) -> Result<Vec<T>, String> {
            idx.iter()
                .map(|&i| match (src.get(i), fill) {
                    (Some(&v), _) => Ok(v),
                    (None, Some(f)) if i == FILL => Ok(f),
                    _ => Err(internal(&format!("element index {i} out of range {}", src.len()))),
                })
                .collect()
        }
        match (self, fill) {
            (Data::Float(v), None) => Ok(Data::Float(go(v, idx, None)?)),
            (Data::Float(v), Some(Scalar::Float(f))) => Ok(Data::Float(go(v, idx, Some(f))?)),
            (Data::Int(v), None) => Ok(Data::Int(go(v, idx, None)?)),
            (Data::Int(v), Some(Scalar::Int(f))) => Ok(Data::Int(go(v, idx, Some(f))?)),
            (Data::Bool(v), None) => Ok(Data::Bool(go(v, idx, None)?)),
            (Data::Bool(v), Some(Scalar::Bool(f))) => Ok(Data::Bool(go(v, idx, Some(f))?)),
            _ => Err(internal("fill value of the wrong kind")),
        }
    }
}

/// Marks an output element of [`Data::take`] that is not read from the source.
pub const FILL: usize = usize::MAX;

/// Row-major strides of `shape` (in elements).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The element count of `shape`, or an error if it overflows or exceeds [`MAX_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Result<usize, String> {
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match n {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(format!("tensor too large: shape {shape:?} has more than 2^31 elements")),
    }
}

/// Strides for reading an operand of shape `shape` as if broadcast (numpy rules) to `out`:
/// leading missing axes and size-1 axes get stride 0. `shape` must broadcast to `out`.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Result<Vec<usize>, String> {
    if shape.len() > out.len() {
        return Err(internal(&format!("{shape:?} has more axes than {out:?}")));
    }
    let own = strides(shape);
    let lead = out.len() - shape.len();
    let mut s = vec![0; out.len()];
    for (i, (&d, &st)) in shape.iter().zip(&own).enumerate() {
        let o = out[lead + i];
        if d == o {
            s[lead + i] = if d == 1 { 0 } else { st };
        } else if d != 1 {
            return Err(internal(&format!("{shape:?} does not broadcast to {out:?}")));
        }
    }
    Ok(s)
}

/// Visits every index of `shape` in row-major order and calls `f` with, for each of `K`
/// operands, the element offset under that operand's `strides` (one stride per axis of `shape`).
/// The innermost axis is a plain loop, so broadcasting costs little.
pub fn for_each_offset<const K: usize>(shape: &[usize], strides: [&[usize]; K], mut f: impl FnMut([usize; K])) {
    if shape.contains(&0) {
        return;
    }
    let Some(last) = shape.len().checked_sub(1) else {
        f([0; K]);
        return;
    };
    let inner = shape[last];
    let inner_step: [usize; K] = std::array::from_fn(|k| strides[k][last]);
    let mut idx = vec![0usize; last];
    let mut base = [0usize; K];
    loop {
        let mut off = base;
        for _ in 0..inner {
            f(off);
            for k in 0..K {
                off[k] += inner_step[k];
            }
        }
        // Advance the odometer over the outer axes.
        let mut ax = last;
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            idx[ax] += 1;
            for k in 0..K {
                base[k] += strides[k][ax];
            }
            if idx[ax] < shape[ax] {
                break;
            }
            for k in 0..K {
                base[k] -= strides[k][ax] * shape[ax];
            }
            idx[ax] = 0;
        }
    }
}

/// The source offsets of an output whose axis `a` has `lists[a].len()` elements: element
/// `(i0, i1, ..)` reads `lists[0][i0] + lists[1][i1] + ..`, or is [`FILL`] if any term is.
/// Transpose, expand, slice and pad are all such "separable" index maps.
pub fn separable_offsets(lists: &[Vec<usize>]) -> Vec<usize> {
    let n: usize = lists.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(n);
    fn rec(lists: &[Vec<usize>], base: usize, out: &mut Vec<usize>) {
        match lists {
            [] => out.push(base),
            [last] => out.extend(last.iter().map(|&o| if base == FILL || o == FILL { FILL } else { base + o })),
            [first, rest @ ..] => {
                for &o in first {
                    rec(rest, if base == FILL || o == FILL { FILL } else { base + o }, out);
                }
            }
        }
    }
    rec(lists, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_broadcast_strides() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]).unwrap(), vec![0, 1, 0]);
        assert!(broadcast_strides(&[3], &[4]).is_err());
    }

    #[test]
    fn for_each_offset_walks_row_major() {
        let mut seen = Vec::new();
        let a = [1, 0];
        let b = [0, 1];
        for_each_offset(&[2, 3], [&a, &b], |o| seen.push(o));
        assert_eq!(seen, vec![[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
        let mut count = 0;
        for_each_offset::<0>(&[], [], |_| count += 1);
        assert_eq!(count, 1);
        for_each_offset::<0>(&[3, 0], [], |_| count += 1);
        assert_eq!(count, 1);
    }

    #[test]
    fn separable_offsets_fill() {
        assert_eq!(separable_offsets(&[vec![0, 10], vec![FILL, 1]]), vec![FILL, 1, FILL, 11]);
        assert_eq!(separable_offsets(&[]), vec![0]);
    }

    #[test]
    fn u64_values_round_trip_through_the_i64_form() {
        let big = [0u64, 1 << 63, u64::MAX, 12];
        let t = TensorData::from_vec(vec![4], &big);
        let v = Value::from_tensor(&t);
        assert_eq!(v.ints().unwrap(), [0, i64::MIN, -1, 12]);
        assert_eq!(v.to_tensor().unwrap(), t);
        for d in DType::ALL.into_iter().filter(|d| d.is_int()) {
            let t = TensorData::from_i64(d, vec![3], &[0, 1, 100]);
            assert_eq!(Value::from_tensor(&t).to_tensor().unwrap(), t, "{d}");
        }
        assert_eq!(<u64 as Int>::from_held(-1).div(2), u64::MAX / 2);
        assert_eq!(<u64 as Int>::from_held(-1).rem(10), 5);
        assert_eq!(<u64 as Int>::from_held(i64::MIN).abs(), 1 << 63);
        assert_eq!(Int::signum(u64::MAX), 1);
        assert_eq!(Int::pow(2u64, 63), 1 << 63);
        assert_eq!(Int::pow(3i64, 3), 27);
    }

    #[test]
    fn rounding_and_wrapping() {
        assert_eq!(round_float(DType::F32, 0.1), 0.1f32 as f64);
        assert_eq!(round_float(DType::F16, 65520.0), f64::INFINITY);
        assert_eq!(wrap_int(DType::U8, 256 + 7), 7);
        assert_eq!(wrap_int(DType::I8, 128), -128);
        assert_eq!(float_to_int(DType::I8, 1e9), 127);
        assert_eq!(float_to_int(DType::I64, f64::NAN), 0);
        assert_eq!(float_to_int(DType::U8, -3.7), 0);
        assert_eq!(wrap_int(DType::I16, 32768), -32768);
        assert_eq!(wrap_int(DType::U16, -1), 65535);
        assert_eq!(wrap_int(DType::U32, (1 << 32) + 5), 5);
        assert_eq!(wrap_int(DType::U64, -1), -1);
        assert_eq!(float_to_int(DType::U16, 1e9), 65535);
        assert_eq!(float_to_int(DType::I16, -1e9), -32768);
        assert_eq!(float_to_int(DType::U32, -1.0), 0);
        assert_eq!(float_to_int(DType::U64, 1e30), -1);
        assert_eq!(float_to_int(DType::U64, 9223372036854775808.0), i64::MIN);
        assert_eq!(int_range::<u64>(DType::U64), (0, u64::MAX));
        assert_eq!(int_range::<i64>(DType::U16), (0, 65535));
        assert_eq!(int_range::<i64>(DType::I16), (-32768, 32767));
        assert!(checked_numel(&[1 << 20, 1 << 12]).is_err());
        assert!(checked_numel(&[usize::MAX, 2]).is_err());
        assert_eq!(checked_numel(&[]).unwrap(), 1);
    }
}
