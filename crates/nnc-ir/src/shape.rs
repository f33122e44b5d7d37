//! Tensor types (dtype + shape) and the numpy/ONNX broadcasting rule.

use crate::{DType, Dim};
use std::fmt;

/// A shape: one [`Dim`] per axis. Rank 0 is a scalar.
pub type Shape = Vec<Dim>;

/// The static type of a value: element type and shape.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl IntoIterator<Item = impl Into<Dim>>) -> TensorType {
        TensorType { dtype, shape: shape.into_iter().map(Into::into).collect() }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType { dtype, shape: Vec::new() }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The concrete sizes, if no dimension is symbolic.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(Dim::as_usize).collect()
    }

    /// The number of elements as a dimension expression.
    pub fn num_elements(&self) -> Dim {
        self.shape.iter().cloned().fold(Dim::constant(1), |a, b| a * b)
    }

    pub fn with_dtype(&self, dtype: DType) -> TensorType {
        TensorType { dtype, shape: self.shape.clone() }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.dtype, format_shape(&self.shape))
    }
}

impl fmt::Debug for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `batch, 3, 224` — the inside of a shape's brackets.
pub fn format_shape(shape: &[Dim]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// The broadcast of two shapes under numpy/ONNX rules: align from the right; each pair of
/// dimensions must be equal or one of them must be 1.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    let rank = a.len().max(b.len());
    let one = Dim::constant(1);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { &a[i + a.len() - rank] } else { &one };
        let db = if i + b.len() >= rank { &b[i + b.len() - rank] } else { &one };
        let d = if da == db || *db == one {
            da.clone()
        } else if *da == one {
            db.clone()
        } else {
            return Err(format!(
                "shapes [{}] and [{}] do not broadcast: axis {i} has {da} against {db}",
                format_shape(a),
                format_shape(b)
            ));
        };
        out.push(d);
    }
    Ok(out)
}

/// Resolves a possibly negative axis against `rank` (`-1` is the last axis).
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(dims: &[i64]) -> Shape {
        dims.iter().map(|&d| Dim::constant(d)).collect()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&s(&[2, 1, 4]), &s(&[3, 1])).unwrap(), s(&[2, 3, 4]));
        assert_eq!(broadcast_shapes(&s(&[]), &s(&[5])).unwrap(), s(&[5]));
        assert!(broadcast_shapes(&s(&[2, 3]), &s(&[4])).unwrap_err().contains("axis 1"));
        let b = vec![Dim::sym("batch"), Dim::constant(1)];
        assert_eq!(broadcast_shapes(&b, &s(&[7])).unwrap(), vec![Dim::sym("batch"), 7.into()]);
    }

    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 3), Ok(2));
        assert_eq!(normalize_axis(0, 3), Ok(0));
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(-4, 3).is_err());
    }

    #[test]
    fn display() {
        let t = TensorType::new(DType::F32, [Dim::sym("batch"), Dim::constant(64)]);
        assert_eq!(t.to_string(), "f32[batch, 64]");
        assert_eq!(TensorType::scalar(DType::Bool).to_string(), "bool[]");
    }
}
