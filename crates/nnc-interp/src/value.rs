//! Runtime tensors and the index arithmetic every kernel shares.
//!
//! A [`Value`] holds its elements in one of three widened forms:
//! - floating-point dtypes (`f32`, `f64`, `f16`, `bf16`) as `f64`, always already rounded to the
//!   value's dtype, so every float element is exactly representable in its dtype;
//! - integer dtypes (`i64`, `i32`, `i8`, `u8`) as `i64`, always already wrapped to the dtype's
//!   width (two's complement, as numpy's fixed-width integers);
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
        DType::F64 | DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool => x,
    }
}

/// Wraps `x` to the width of integer dtype `dtype` (two's complement); other dtypes leave it
/// unchanged.
pub fn wrap_int(dtype: DType, x: i64) -> i64 {
    match dtype {
        DType::I32 => x as i32 as i64,
        DType::I8 => x as i8 as i64,
        DType::U8 => x as u8 as i64,
        DType::I64 | DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool => x,
    }
}

/// Rounds every element of `xs` to `dtype` in place.
pub fn round_all(dtype: DType, xs: &mut [f64]) {
    match dtype {
        DType::F32 => xs.iter_mut().for_each(|x| *x = *x as f32 as f64),
        DType::F16 => xs.iter_mut().for_each(|x| *x = f16::from_f64(*x).to_f64()),
        DType::BF16 => xs.iter_mut().for_each(|x| *x = bf16::from_f64(*x).to_f64()),
        DType::F64 | DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool => {}
    }
}

/// Wraps every element of `xs` to `dtype` in place.
pub fn wrap_all(dtype: DType, xs: &mut [i64]) {
    match dtype {
        DType::I32 | DType::I8 | DType::U8 => xs.iter_mut().for_each(|x| *x = wrap_int(dtype, *x)),
        DType::I64 | DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool => {}
    }
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
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Data::Float(t.to_f64_vec()),
            DType::I64 | DType::I32 | DType::I8 | DType::U8 => Data::Int(t.to_i64_vec()),
            DType::Bool => Data::Bool(t.to_i64_vec().into_iter().map(|v| v != 0).collect()),
        };
        Value { dtype: t.dtype(), shape, data }
    }

    /// Converts back to a tensor of the value's dtype. Exact, because elements are kept rounded
    /// (or wrapped) to the dtype.
    pub fn to_tensor(&self) -> Result<TensorData, String> {
        let shape = self.shape.clone();
        match (&self.data, self.dtype) {
            (Data::Float(v), DType::F32 | DType::F64 | DType::F16 | DType::BF16) => {
                Ok(TensorData::from_f64(self.dtype, shape, v))
            }
            (Data::Int(v), DType::I64 | DType::I32 | DType::I8 | DType::U8) => {
                Ok(TensorData::from_i64(self.dtype, shape, v))
            }
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
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Scalar::Float(round_float(dtype, value)),
            DType::I64 | DType::I32 | DType::I8 | DType::U8 => Scalar::Int(float_to_int(dtype, value)),
            DType::Bool => Scalar::Bool(value != 0.0),
        }
    }
}

/// Float to integer dtype: truncates toward zero and saturates at the dtype's range; NaN is 0
/// (Rust's `as`).
pub fn float_to_int(dtype: DType, x: f64) -> i64 {
    match dtype {
        DType::I32 => x as i32 as i64,
        DType::I8 => x as i8 as i64,
        DType::U8 => x as u8 as i64,
        DType::I64 | DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool => x as i64,
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
    fn rounding_and_wrapping() {
        assert_eq!(round_float(DType::F32, 0.1), 0.1f32 as f64);
        assert_eq!(round_float(DType::F16, 65520.0), f64::INFINITY);
        assert_eq!(wrap_int(DType::U8, 256 + 7), 7);
        assert_eq!(wrap_int(DType::I8, 128), -128);
        assert_eq!(float_to_int(DType::I8, 1e9), 127);
        assert_eq!(float_to_int(DType::I64, f64::NAN), 0);
        assert_eq!(float_to_int(DType::U8, -3.7), 0);
        assert!(checked_numel(&[1 << 20, 1 << 12]).is_err());
        assert!(checked_numel(&[usize::MAX, 2]).is_err());
        assert_eq!(checked_numel(&[]).unwrap(), 1);
    }
}
