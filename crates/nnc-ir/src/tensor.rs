//! Concrete tensor values: constants in a graph, inputs and outputs of a run.
//!
//! Data is kept as little-endian bytes in a reference-counted [`Bytes`] buffer, so a 47 MB
//! weight file can be sliced into constants without copying, and cloning a graph (or a constant
//! node) never copies weights.

use crate::DType;
use bytes::Bytes;
use half::{bf16, f16};
use std::fmt;

/// A Rust type that is the native representation of one [`DType`].
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(bytes: &[u8]) -> Self;
    /// The value as `f64` (exact for every type but `i64`/`u64` beyond 2^53).
    fn to_f64(self) -> f64;
}

macro_rules! element {
    ($t:ty, $d:expr, $n:expr, |$v:ident| $to:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&bytes[..$n]);
                <$t>::from_le_bytes(a)
            }
            fn to_f64(self) -> f64 {
                let $v = self;
                $to
            }
        }
    };
}

element!(f32, DType::F32, 4, |v| v as f64);
element!(f64, DType::F64, 8, |v| v);
element!(f16, DType::F16, 2, |v| v.to_f64());
element!(bf16, DType::BF16, 2, |v| v.to_f64());
element!(i64, DType::I64, 8, |v| v as f64);
element!(i32, DType::I32, 4, |v| v as f64);
element!(i16, DType::I16, 2, |v| v as f64);
element!(i8, DType::I8, 1, |v| v as f64);
element!(u64, DType::U64, 8, |v| v as f64);
element!(u32, DType::U32, 4, |v| v as f64);
element!(u16, DType::U16, 2, |v| v as f64);
element!(u8, DType::U8, 1, |v| v as f64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
}

/// A dense tensor with concrete shape, in row-major order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TensorData {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Bytes,
}

/// Why bytes could not become a tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor of type {dtype}[{shape}] needs {expected} bytes, found {found}")]
pub struct TensorSizeError {
    pub dtype: DType,
    pub shape: String,
    pub expected: usize,
    pub found: usize,
}

impl TensorData {
    /// Wraps little-endian bytes without copying; fails if the length does not match the shape.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Bytes) -> Result<TensorData, TensorSizeError> {
        let expected = shape.iter().try_fold(dtype.size_bytes(), |acc, &d| acc.checked_mul(d)).unwrap_or(usize::MAX);
        if bytes.len() != expected {
            let shape = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            return Err(TensorSizeError { dtype, shape, expected, found: bytes.len() });
        }
        Ok(TensorData { dtype, shape, bytes })
    }

    /// Builds a tensor from typed values. Panics if `values.len()` differs from the shape's
    /// element count: that is a programming error in the caller, not user input.
    pub fn from_vec<T: Element>(shape: Vec<usize>, values: &[T]) -> TensorData {
        let n: usize = shape.iter().product();
        assert_eq!(n, values.len(), "TensorData::from_vec: shape {shape:?} needs {n} values");
        let mut out = Vec::with_capacity(n * T::DTYPE.size_bytes());
        for &v in values {
            v.write_le(&mut out);
        }
        TensorData { dtype: T::DTYPE, shape, bytes: Bytes::from(out) }
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(value: T) -> TensorData {
        TensorData::from_vec(Vec::new(), &[value])
    }

    /// A tensor of `dtype` from `f64` values, each rounded (or truncated toward zero and saturated,
    /// for integers) to the dtype. Used by tests and by the text parser.
    pub fn from_f64(dtype: DType, shape: Vec<usize>, values: &[f64]) -> TensorData {
        fn conv<T: Element>(shape: Vec<usize>, values: &[f64], f: impl Fn(f64) -> T) -> TensorData {
            TensorData::from_vec(shape, &values.iter().map(|&v| f(v)).collect::<Vec<_>>())
        }
        match dtype {
            DType::F32 => conv(shape, values, |v| v as f32),
            DType::F64 => TensorData::from_vec(shape, values),
            DType::F16 => conv(shape, values, f16::from_f64),
            DType::BF16 => conv(shape, values, bf16::from_f64),
            DType::I64 => conv(shape, values, |v| v as i64),
            DType::I32 => conv(shape, values, |v| v as i32),
            DType::I16 => conv(shape, values, |v| v as i16),
            DType::I8 => conv(shape, values, |v| v as i8),
            DType::U64 => conv(shape, values, |v| v as u64),
            DType::U32 => conv(shape, values, |v| v as u32),
            DType::U16 => conv(shape, values, |v| v as u16),
            DType::U8 => conv(shape, values, |v| v as u8),
            DType::Bool => conv(shape, values, |v| v != 0.0),
            d if d.is_minifloat() => {
                let bytes = values.iter().map(|&v| crate::lowp::encode(d, v, false).unwrap_or(0)).collect::<Vec<u8>>();
                TensorData::from_vec(shape, &bytes).with_byte_dtype(d)
            }
            // The 4- and 2-bit integers: truncated and saturated to `i64`, then wrapped.
            d => TensorData::from_i64(d, shape, &values.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        }
    }

    /// A tensor of `dtype` from `i64` values. Integer dtypes wrap (two's complement truncation),
    /// so `u64` takes each value's bit pattern (`-1` is `2^64 - 1`): [`TensorData::to_i64_vec`]
    /// reads it back exactly. Floats round to nearest; `bool` is `!= 0`.
    pub fn from_i64(dtype: DType, shape: Vec<usize>, values: &[i64]) -> TensorData {
        fn conv<T: Element>(shape: Vec<usize>, values: &[i64], f: impl Fn(i64) -> T) -> TensorData {
            TensorData::from_vec(shape, &values.iter().map(|&v| f(v)).collect::<Vec<_>>())
        }
        match dtype {
            DType::I64 => TensorData::from_vec(shape, values),
            DType::I32 => conv(shape, values, |v| v as i32),
            DType::I16 => conv(shape, values, |v| v as i16),
            DType::I8 => conv(shape, values, |v| v as i8),
            DType::U64 => conv(shape, values, |v| v as u64),
            DType::U32 => conv(shape, values, |v| v as u32),
            DType::U16 => conv(shape, values, |v| v as u16),
            DType::U8 => conv(shape, values, |v| v as u8),
            DType::Bool => conv(shape, values, |v| v != 0),
            DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
                conv(shape, values, |v| crate::lowp::wrap_sub_byte(dtype, v) as u8).with_byte_dtype(dtype)
            }
            // Straight to `f32`, so large integers round once.
            DType::F32 => conv(shape, values, |v| v as f32),
            // The other floats.
            _ => TensorData::from_f64(dtype, shape, &values.iter().map(|&v| v as f64).collect::<Vec<_>>()),
        }
    }

    /// A tensor of bytes relabelled as another one-byte dtype (the low-precision formats, which
    /// have no Rust type of their own).
    fn with_byte_dtype(self, dtype: DType) -> TensorData {
        debug_assert_eq!((self.dtype.size_bytes(), dtype.size_bytes()), (1, 1));
        TensorData { dtype, ..self }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same data with another shape of equal element count.
    pub fn reshaped(&self, shape: Vec<usize>) -> Option<TensorData> {
        (shape.iter().product::<usize>() == self.len()).then(|| TensorData {
            dtype: self.dtype,
            shape,
            bytes: self.bytes.clone(),
        })
    }

    /// The tensor with its axes permuted (output axis `i` is axis `perm[i]`), elements copied;
    /// `None` if `perm` is not a permutation of the axes.
    pub fn transposed(&self, perm: &[usize]) -> Option<TensorData> {
        self.transposed_padded(perm, 0)
    }

    /// [`Self::transposed`], with `extra` zeros after each row of the result (its last axis
    /// `extra` longer), in the same pass; `None` also for `extra` on a scalar.
    pub fn transposed_padded(&self, perm: &[usize], extra: usize) -> Option<TensorData> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank || !perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)) {
            return None;
        }
        if rank == 0 && extra > 0 {
            return None;
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut padded = shape.clone();
        if let Some(last) = padded.last_mut() {
            *last += extra;
        }
        let size = self.dtype.size_bytes();
        let mut in_strides = vec![1usize; rank];
        for a in (0..rank.saturating_sub(1)).rev() {
            in_strides[a] = in_strides[a + 1] * self.shape[a + 1];
        }
        let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let mut out = vec![0u8; padded.iter().product::<usize>() * size];
        // Elements moved as fixed-size arrays: a copy of run-time length is a call to `memcpy`
        // per element (it was most of the time of packing a large model's weights).
        match size {
            1 => permute::<1>(&self.bytes, &mut out, &shape, &strides, extra),
            2 => permute::<2>(&self.bytes, &mut out, &shape, &strides, extra),
            4 => permute::<4>(&self.bytes, &mut out, &shape, &strides, extra),
            8 => permute::<8>(&self.bytes, &mut out, &shape, &strides, extra),
            _ => unreachable!("element sizes are 1, 2, 4 or 8 bytes"),
        }
        Some(TensorData { dtype: self.dtype, shape: padded, bytes: out.into() })
    }

    /// The elements as `T`, or `None` if `T` is not this tensor's element type.
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        if T::DTYPE != self.dtype {
            return None;
        }
        let size = self.dtype.size_bytes();
        Some(self.bytes.chunks_exact(size).map(T::read_le).collect())
    }

    /// Every element converted to `f64`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let size = self.dtype.size_bytes();
        let chunks = self.bytes.chunks_exact(size);
        match self.dtype {
            DType::F32 => chunks.map(|c| f32::read_le(c).to_f64()).collect(),
            DType::F64 => chunks.map(f64::read_le).collect(),
            DType::F16 => chunks.map(|c| f16::read_le(c).to_f64()).collect(),
            DType::BF16 => chunks.map(|c| bf16::read_le(c).to_f64()).collect(),
            DType::I64 => chunks.map(|c| i64::read_le(c) as f64).collect(),
            DType::I32 => chunks.map(|c| i32::read_le(c) as f64).collect(),
            DType::I16 => chunks.map(|c| i16::read_le(c) as f64).collect(),
            DType::I8 => chunks.map(|c| i8::read_le(c) as f64).collect(),
            DType::U64 => chunks.map(|c| u64::read_le(c) as f64).collect(),
            DType::U32 => chunks.map(|c| u32::read_le(c) as f64).collect(),
            DType::U16 => chunks.map(|c| u16::read_le(c) as f64).collect(),
            DType::U8 => chunks.map(|c| c[0] as f64).collect(),
            DType::Bool => chunks.map(|c| (c[0] != 0) as u8 as f64).collect(),
            DType::I4 | DType::I2 => chunks.map(|c| c[0] as i8 as f64).collect(),
            DType::U4 | DType::U2 => chunks.map(|c| c[0] as f64).collect(),
            d => chunks.map(|c| crate::lowp::decode(d, c[0]).unwrap_or(f64::NAN)).collect(),
        }
    }

    /// Every element converted to `i64`: exact for every integer dtype but `u64`, which gives each
    /// value's bit pattern (`2^64 - 1` reads as `-1`; [`TensorData::from_i64`] undoes it, and
    /// equality is exact). Floats truncate toward zero and saturate; `bool` is 0 or 1.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        let size = self.dtype.size_bytes();
        let chunks = self.bytes.chunks_exact(size);
        match self.dtype {
            DType::I64 => chunks.map(i64::read_le).collect(),
            DType::I32 => chunks.map(|c| i32::read_le(c) as i64).collect(),
            DType::I16 => chunks.map(|c| i16::read_le(c) as i64).collect(),
            DType::I8 => chunks.map(|c| i8::read_le(c) as i64).collect(),
            DType::U64 => chunks.map(|c| u64::read_le(c) as i64).collect(),
            DType::U32 => chunks.map(|c| u32::read_le(c) as i64).collect(),
            DType::U16 => chunks.map(|c| u16::read_le(c) as i64).collect(),
            DType::U8 => chunks.map(|c| c[0] as i64).collect(),
            DType::Bool => chunks.map(|c| (c[0] != 0) as i64).collect(),
            DType::I4 | DType::I2 => chunks.map(|c| c[0] as i8 as i64).collect(),
            DType::U4 | DType::U2 => chunks.map(|c| c[0] as i64).collect(),
            // Floats.
            _ => self.to_f64_vec().into_iter().map(|v| v as i64).collect(),
        }
    }
}

impl fmt::Debug for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorData({}{:?}, {} bytes)", self.dtype, self.shape, self.bytes.len())
    }
}

/// Writes `dst` (of `shape`, row-major, rows `extra` longer) from `src`, where output axis `a`
/// steps `strides[a]` elements of `N` bytes in `src`. Walks the output in tiles over its last axis and an axis
/// the input has close together, so both sides use most of each cache line they touch (a
/// weight `[O, C, kh, kw]` stored as `[kh, kw, C, O]` otherwise reads one element per line).
/// The other axes are walked inside each tile where they are few (a convolution's window: the
/// input's lines are read once, not once per window position), around the tiles otherwise.
fn permute<const N: usize>(src: &[u8], dst: &mut [u8], shape: &[usize], strides: &[usize], extra: usize) {
    // A tile: 16 output columns (a cache line of f32) by 128 rows (long runs of the input).
    const TILE: usize = 16;
    const TILE_ROWS: usize = 128;
    const FEW: usize = 64;
    let (src, _) = src.as_chunks::<N>();
    let (dst, _) = dst.as_chunks_mut::<N>();
    let Some(last) = shape.len().checked_sub(1) else {
        dst.copy_from_slice(src);
        return;
    };
    if dst.is_empty() {
        return;
    }
    // Output rows are `extra` elements longer than `shape` says (left as they are: zeros).
    let mut out_strides = vec![1usize; shape.len()];
    for a in (0..last).rev() {
        out_strides[a] = out_strides[a + 1] * (shape[a + 1] + if a + 1 == last { extra } else { 0 });
    }
    // The tile's other axis: of the outer output axes at least a tile long, the one the input
    // has closest together (`[3, 3, C, O]`: C); without one, a tile is part of a row.
    let across = (0..last).filter(|&a| shape[a] >= TILE && strides[a] < strides[last]).min_by_key(|&a| strides[a]);
    let (rows, row_stride, row_out_stride) = match across {
        Some(b) => (shape[b], strides[b], out_strides[b]),
        None => (1, 0, 0),
    };
    let outer: Vec<usize> = (0..last).filter(|&a| Some(a) != across).collect();
    let offsets = Odometer::new(&outer, shape, strides, &out_strides);
    // A tile goes through a small buffer: read in the input's order (runs of neighbours), then
    // written in the output's (whole rows). Straight from one to the other, one side walks a
    // power-of-two stride whose lines share a few cache sets and evict each other.
    let mut staged = Vec::new();
    let mut tile = |bases: &[(usize, usize)], j0: usize, i0: usize| {
        let (js, is) = (j0..(j0 + TILE_ROWS).min(rows), i0..(i0 + TILE).min(shape[last]));
        staged.clear();
        for i in is.clone() {
            for j in js.clone() {
                let s = j * row_stride + i * strides[last];
                staged.extend(bases.iter().map(|&(src_base, _)| src[src_base + s]));
            }
        }
        let (per_i, per_j) = (js.len() * bases.len(), bases.len());
        for (k, &(_, dst_base)) in bases.iter().enumerate() {
            for (jj, j) in js.clone().enumerate() {
                let row = dst_base + j * row_out_stride;
                for (ii, i) in is.clone().enumerate() {
                    dst[row + i] = staged[ii * per_i + jj * per_j + k];
                }
            }
        }
    };
    if outer.iter().map(|&a| shape[a]).product::<usize>() <= FEW {
        let bases: Vec<(usize, usize)> = offsets.collect();
        for j0 in (0..rows).step_by(TILE_ROWS) {
            for i0 in (0..shape[last]).step_by(TILE) {
                tile(&bases, j0, i0);
            }
        }
    } else {
        for base in offsets {
            for j0 in (0..rows).step_by(TILE_ROWS) {
                for i0 in (0..shape[last]).step_by(TILE) {
                    tile(&[base], j0, i0);
                }
            }
        }
    }
}

/// The (input, output) element offsets of every index of some axes, row-major.
struct Odometer<'a> {
    axes: &'a [usize],
    shape: &'a [usize],
    strides: [&'a [usize]; 2],
    index: Vec<usize>,
    done: bool,
}

impl<'a> Odometer<'a> {
    fn new(axes: &'a [usize], shape: &'a [usize], strides: &'a [usize], out_strides: &'a [usize]) -> Self {
        let done = axes.iter().any(|&a| shape[a] == 0);
        Odometer { axes, shape, strides: [strides, out_strides], index: vec![0; axes.len()], done }
    }
}

impl Iterator for Odometer<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let at = |s: &[usize]| self.axes.iter().zip(&self.index).map(|(&a, &i)| i * s[a]).sum::<usize>();
        let item = (at(self.strides[0]), at(self.strides[1]));
        // The next index, or the end.
        self.done = true;
        for k in (0..self.index.len()).rev() {
            self.index[k] += 1;
            if self.index[k] < self.shape[self.axes[k]] {
                self.done = false;
                break;
            }
            self.index[k] = 0;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `transposed(perm)` of a tensor of `shape` element by element against the
    /// definition (output index `i` reads input index `i` permuted back).
    fn check_transpose(shape: &[usize], perm: &[usize], wide: bool) {
        let rank = shape.len();
        let count: usize = shape.iter().product();
        let (dtype, size) = if wide { (DType::F64, 8) } else { (DType::U8, 1) };
        let bytes: Vec<u8> = (0..count * size).map(|i| (i * 31 + i / 251) as u8).collect();
        let t = TensorData::from_bytes(dtype, shape.to_vec(), bytes.clone().into()).unwrap();
        let out = t.transposed(perm).unwrap();
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        assert_eq!(out.shape(), &out_shape[..]);
        for flat in 0..count {
            let (mut rest, mut index) = (flat, vec![0; rank]);
            for a in (0..rank).rev() {
                index[a] = rest % out_shape[a];
                rest /= out_shape[a];
            }
            let mut source = 0;
            for (a, &extent) in shape.iter().enumerate() {
                let axis = perm.iter().position(|&p| p == a).unwrap();
                source = source * extent + index[axis];
            }
            let (found, want) = (&out.bytes()[flat * size..][..size], &bytes[source * size..][..size]);
            assert_eq!(found, want, "{shape:?} by {perm:?}: output element {flat}");
        }
    }

    proptest::proptest! {
        /// The tiled permutation agrees with the definition, for shapes that cross tile edges
        /// and permutations chosen by the seed.
        #[test]
        fn transpose_agrees_with_the_definition(
            shape in proptest::collection::vec(1usize..24, 0..5),
            seed in 0u64..1000,
            wide in proptest::bool::ANY,
        ) {
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            let mut r = seed;
            for i in (1..shape.len()).rev() {
                perm.swap(i, (r % (i as u64 + 1)) as usize);
                r /= i as u64 + 1;
            }
            check_transpose(&shape, &perm, wide);
        }
    }

    #[test]
    fn a_padded_transposition_is_the_transposition_with_zero_rows_appended() {
        let t = TensorData::from_vec(vec![40, 33, 3, 3], &(0..40 * 33 * 9).map(|i| i as f32).collect::<Vec<_>>());
        let plain = t.transposed(&[2, 3, 1, 0]).unwrap().to_vec::<f32>().unwrap();
        let padded = t.transposed_padded(&[2, 3, 1, 0], 5).unwrap();
        assert_eq!(padded.shape(), [3, 3, 33, 45]);
        let rows: Vec<&[f32]> = plain.chunks(40).collect();
        for (k, row) in padded.to_vec::<f32>().unwrap().chunks(45).enumerate() {
            assert_eq!(&row[..40], rows[k], "row {k}");
            assert!(row[40..].iter().all(|&x| x == 0.0), "row {k}");
        }
        assert!(TensorData::scalar(1.0f32).transposed_padded(&[], 1).is_none());
    }

    #[test]
    fn transpose_of_large_axes_crosses_every_tile_edge() {
        check_transpose(&[17, 300], &[1, 0], false);
        check_transpose(&[40, 33, 3, 3], &[2, 3, 1, 0], true);
        check_transpose(&[5, 70, 130], &[2, 0, 1], false);
    }

    #[test]
    fn transpose_moves_elements() {
        let a = TensorData::from_vec(vec![2, 3], &[1i32, 2, 3, 4, 5, 6]);
        let t = a.transposed(&[1, 0]).unwrap();
        assert_eq!(t.shape(), [3, 2]);
        assert_eq!(t.to_vec::<i32>().unwrap(), [1, 4, 2, 5, 3, 6]);
        let b = TensorData::from_vec(vec![2, 1, 3], &[1u8, 2, 3, 4, 5, 6]);
        assert_eq!(b.transposed(&[2, 0, 1]).unwrap().to_vec::<u8>().unwrap(), [1, 4, 2, 5, 3, 6]);
        assert!(a.transposed(&[0, 0]).is_none() && a.transposed(&[1]).is_none());
    }

    #[test]
    fn typed_round_trip() {
        let t = TensorData::from_vec(vec![2, 2], &[1.0f32, 2.0, 3.0, 4.5]);
        assert_eq!(t.bytes().len(), 16);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.5]);
        assert_eq!(t.to_vec::<f64>(), None);
        assert_eq!(t.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.5]);
    }

    #[test]
    fn byte_length_is_checked() {
        let err = TensorData::from_bytes(DType::F32, vec![3], Bytes::from(vec![0u8; 8])).unwrap_err();
        assert_eq!(err.expected, 12);
        assert!(TensorData::from_bytes(DType::F32, vec![usize::MAX, 2], Bytes::new()).is_err());
    }

    #[test]
    fn clones_share_bytes() {
        let t = TensorData::from_vec(vec![1024], &vec![0.5f32; 1024]);
        let u = t.clone();
        assert_eq!(t.bytes().as_ptr(), u.bytes().as_ptr());
    }

    #[test]
    fn every_dtype_converts_from_f64() {
        for d in DType::ALL {
            // E8M0 has no zero; 2 is out of the 2-bit signed range.
            let values: [f64; 3] = match d {
                DType::F8E8M0 => [1.0, 2.0, 4.0],
                DType::I2 => [0.0, 1.0, -2.0],
                _ => [0.0, 1.0, 2.0],
            };
            let t = TensorData::from_f64(d, vec![3], &values);
            assert_eq!(t.dtype(), d);
            let expect = if d == DType::Bool { vec![0.0, 1.0, 1.0] } else { values.to_vec() };
            assert_eq!(t.to_f64_vec(), expect, "{d}");
            let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
            assert_eq!(TensorData::from_i64(d, vec![3], &ints), t, "{d}");
        }
    }

    #[test]
    fn new_integer_dtypes_round_trip() {
        let t = TensorData::from_vec(vec![3], &[i16::MIN, -1, i16::MAX]);
        assert_eq!((t.dtype(), t.bytes().len()), (DType::I16, 6));
        assert_eq!(t.to_vec::<i16>().unwrap(), vec![i16::MIN, -1, i16::MAX]);
        assert_eq!(t.to_i64_vec(), vec![-32768, -1, 32767]);
        assert_eq!(TensorData::from_i64(DType::I16, vec![3], &t.to_i64_vec()), t);
        let t = TensorData::from_vec(vec![2], &[0u16, u16::MAX]);
        assert_eq!(t.to_i64_vec(), vec![0, 65535]);
        assert_eq!(t.to_f64_vec(), vec![0.0, 65535.0]);
        let t = TensorData::from_vec(vec![2], &[7u32, u32::MAX]);
        assert_eq!(t.to_i64_vec(), vec![7, 4294967295]);
        assert_eq!(TensorData::from_i64(DType::U32, vec![2], &t.to_i64_vec()), t);
        // Integer dtypes wrap in from_i64 and saturate in from_f64.
        assert_eq!(TensorData::from_i64(DType::U16, vec![2], &[65536 + 3, -1]).to_vec::<u16>().unwrap(), [3, 65535]);
        assert_eq!(TensorData::from_f64(DType::U16, vec![2], &[1e9, -5.0]).to_vec::<u16>().unwrap(), [65535, 0]);
        assert_eq!(TensorData::from_f64(DType::I16, vec![1], &[-1e9]).to_vec::<i16>().unwrap(), [i16::MIN]);
    }

    #[test]
    fn u64_above_2_pow_63_is_kept_exactly() {
        let big = [0u64, 1 << 63, u64::MAX, (1 << 63) + 12345];
        let t = TensorData::from_vec(vec![4], &big);
        assert_eq!(t.to_vec::<u64>().unwrap(), big);
        // to_i64_vec gives the bit patterns, and from_i64 takes them back.
        assert_eq!(t.to_i64_vec(), vec![0, i64::MIN, -1, i64::MIN + 12345]);
        assert_eq!(TensorData::from_i64(DType::U64, vec![4], &t.to_i64_vec()), t);
        assert_eq!(t.to_f64_vec(), big.map(|v| v as f64));
        assert_eq!(t.to_f64_vec()[1], 9223372036854775808.0);
        let f = TensorData::from_f64(DType::U64, vec![3], &[1e30, -1.0, 9223372036854775808.0]);
        assert_eq!(f.to_vec::<u64>().unwrap(), [u64::MAX, 0, 1 << 63]);
    }
}
