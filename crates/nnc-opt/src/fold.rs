//! Evaluation of ops on small constants, with the interpreter's numeric semantics (SPEC §6):
//! floats compute in `f64` and round once to the dtype, integers wrap.
//!
//! Only what rules need is here, and only where the result is exactly what the reference
//! interpreter computes; anything else (integer division, `bool` arithmetic, `u64` orderings
//! through `i64`, large results) returns `None` and the rule does not apply.

use crate::lang::SMALL_CONST;
use nnc_ir::{BinaryOp, DType, TensorData, UnaryOp};

/// The broadcast of two concrete shapes, or `None`.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        });
    }
    Some(out)
}

/// For each element of `out` (row-major), the index of the element of `shape` broadcast to it.
fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let rank = out.len();
    let offset = rank - shape.len();
    // Strides of `shape`, zero along broadcast axes.
    let mut strides = vec![0usize; rank];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[i + offset] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    let mut idx = vec![0usize; rank];
    let mut res = Vec::with_capacity(n);
    for _ in 0..n {
        res.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            if idx[ax] < out[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    res
}

/// `a op b` elementwise with broadcasting.
pub fn binary(op: BinaryOp, a: &TensorData, b: &TensorData) -> Option<TensorData> {
    let dtype = a.dtype();
    if b.dtype() != dtype {
        return None;
    }
    let shape = broadcast(a.shape(), b.shape())?;
    if shape.iter().product::<usize>() > SMALL_CONST {
        return None;
    }
    let (ia, ib) = (broadcast_index(a.shape(), &shape), broadcast_index(b.shape(), &shape));
    if dtype.is_float() {
        let (va, vb) = (a.to_f64_vec(), b.to_f64_vec());
        let f: fn(f64, f64) -> f64 = match op {
            BinaryOp::Add => |x, y| x + y,
            BinaryOp::Sub => |x, y| x - y,
            BinaryOp::Mul => |x, y| x * y,
            BinaryOp::Div => |x, y| x / y,
            BinaryOp::Max => |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.max(y) },
            BinaryOp::Min => |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.min(y) },
            _ => return None,
        };
        let out: Vec<f64> = ia.iter().zip(&ib).map(|(&i, &j)| f(va[i], vb[j])).collect();
        Some(TensorData::from_f64(dtype, shape, &out))
    } else if dtype.is_int() {
        let (va, vb) = (a.to_i64_vec(), b.to_i64_vec());
        let unsigned = dtype == DType::U64;
        let f: Box<dyn Fn(i64, i64) -> i64> = match op {
            BinaryOp::Add => Box::new(|x: i64, y: i64| x.wrapping_add(y)),
            BinaryOp::Sub => Box::new(|x: i64, y: i64| x.wrapping_sub(y)),
            BinaryOp::Mul => Box::new(|x: i64, y: i64| x.wrapping_mul(y)),
            BinaryOp::Max if unsigned => Box::new(|x: i64, y: i64| (x as u64).max(y as u64) as i64),
            BinaryOp::Min if unsigned => Box::new(|x: i64, y: i64| (x as u64).min(y as u64) as i64),
            BinaryOp::Max => Box::new(|x: i64, y: i64| x.max(y)),
            BinaryOp::Min => Box::new(|x: i64, y: i64| x.min(y)),
            _ => return None,
        };
        let out: Vec<i64> = ia.iter().zip(&ib).map(|(&i, &j)| f(va[i], vb[j])).collect();
        Some(TensorData::from_i64(dtype, shape, &out))
    } else {
        None
    }
}

/// `op(a)` elementwise.
pub fn unary(op: UnaryOp, a: &TensorData) -> Option<TensorData> {
    let dtype = a.dtype();
    let shape = a.shape().to_vec();
    if dtype.is_float() {
        let f: fn(f64) -> f64 = match op {
            UnaryOp::Neg => |x| -x,
            UnaryOp::Abs => f64::abs,
            UnaryOp::Relu => |x| if x > 0.0 || x.is_nan() { x } else { 0.0 },
            UnaryOp::Exp => f64::exp,
            UnaryOp::Log => f64::ln,
            UnaryOp::Sqrt => f64::sqrt,
            UnaryOp::Rsqrt => |x| 1.0 / x.sqrt(),
            UnaryOp::Reciprocal => |x| 1.0 / x,
            UnaryOp::Tanh => f64::tanh,
            UnaryOp::Floor => f64::floor,
            UnaryOp::Ceil => f64::ceil,
            UnaryOp::Round => f64::round_ties_even,
            _ => return None,
        };
        let out: Vec<f64> = a.to_f64_vec().into_iter().map(f).collect();
        Some(TensorData::from_f64(dtype, shape, &out))
    } else if dtype.is_int() {
        let f: fn(i64) -> i64 = match op {
            UnaryOp::Neg => i64::wrapping_neg,
            _ => return None,
        };
        let out: Vec<i64> = a.to_i64_vec().into_iter().map(f).collect();
        Some(TensorData::from_i64(dtype, shape, &out))
    } else {
        None
    }
}

/// `cast(a) to dtype`, where the conversion is exact to compute here (not from or to `u64`,
/// whose values do not all pass through `i64` or `f64`).
pub fn cast(a: &TensorData, to: DType) -> Option<TensorData> {
    let from = a.dtype();
    if from == DType::U64 || to == DType::U64 {
        return None;
    }
    let shape = a.shape().to_vec();
    if from.is_float() {
        // Floats to floats round; to integers truncate toward zero and saturate (NaN to 0);
        // to bool `x != 0` (NaN is true): exactly what `from_f64` does.
        Some(TensorData::from_f64(to, shape, &a.to_f64_vec()))
    } else {
        // Integers and bools: integers wrap, floats round, bool is `!= 0`.
        Some(TensorData::from_i64(to, shape, &a.to_i64_vec()))
    }
}

/// Weights `w: [M, ...]` with every block `w[m, ...]` multiplied by `scale[m]` (floats, computed
/// in `f64` and rounded once). This makes a new weight tensor: callers bound its size.
pub fn scale_channels(w: &TensorData, scale: &[f64]) -> Option<TensorData> {
    let m = *w.shape().first()?;
    if !w.dtype().is_float() || scale.len() != m || m == 0 {
        return None;
    }
    let block = w.len() / m;
    let vals: Vec<f64> = w.to_f64_vec().iter().enumerate().map(|(i, v)| v * scale[i / block]).collect();
    Some(TensorData::from_f64(w.dtype(), w.shape().to_vec(), &vals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_broadcasts_and_rounds() {
        let a = TensorData::from_vec(vec![2, 1], &[1.0f32, 2.0]);
        let b = TensorData::from_vec(vec![3], &[0.1f32, 0.2, 0.3]);
        let c = binary(BinaryOp::Mul, &a, &b).unwrap();
        assert_eq!(c.shape(), [2, 3]);
        assert_eq!(c.to_vec::<f32>().unwrap(), [0.1, 0.2, 0.3, 0.2, 0.4, 0.6]);
        let i = TensorData::from_vec(vec![2], &[127i8, -128]);
        let one = TensorData::scalar(1i8);
        assert_eq!(binary(BinaryOp::Add, &i, &one).unwrap().to_vec::<i8>().unwrap(), [-128, -127]);
        assert!(binary(BinaryOp::Div, &i, &one).is_none(), "integer division is not folded");
    }

    #[test]
    fn cast_follows_the_spec() {
        let a = TensorData::from_vec(vec![3], &[-3.7f32, 300.0, f32::NAN]);
        assert_eq!(cast(&a, DType::U8).unwrap().to_vec::<u8>().unwrap(), [0, 255, 0]);
        let i = TensorData::from_vec(vec![1], &[300i32]);
        assert_eq!(cast(&i, DType::U8).unwrap().to_vec::<u8>().unwrap(), [44]);
    }
}
