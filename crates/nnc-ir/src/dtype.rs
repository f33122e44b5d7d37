//! Element types of tensors.
//!
//! The set is closed and small on purpose: every backend must say what it does with each one.

use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
    /// The low-precision formats ONNX defines ([`crate::lowp`] has their encodings): float8 with
    /// 4 exponent and 3 mantissa bits, finite (no infinities; NaN is `S.1111.111`), bias 7.
    F8E4M3FN,
    /// float8 E4M3, finite, unsigned zero (one NaN, `0x80`), bias 8.
    F8E4M3FNUZ,
    /// float8 E5M2, IEEE-like (infinities and NaNs), bias 15.
    F8E5M2,
    /// float8 E5M2, finite, unsigned zero (one NaN, `0x80`), bias 16.
    F8E5M2FNUZ,
    /// float8 with 8 exponent bits and no sign or mantissa: the powers of two 2^-127..2^127
    /// (block scales), `0xFF` is NaN.
    F8E8M0,
    /// float4 E2M1: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, no infinities or NaN.
    F4E2M1,
    /// 4- and 2-bit integers (two's complement or unsigned). ONNX packs them two or four to a
    /// byte; nnc holds one per byte (sign-extended), packing them only at ONNX's boundary.
    I4,
    U4,
    I2,
    U2,
}

impl DType {
    /// Every dtype, in the order used by documentation and tests.
    pub const ALL: [DType; 23] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
        DType::F8E4M3FN,
        DType::F8E4M3FNUZ,
        DType::F8E5M2,
        DType::F8E5M2FNUZ,
        DType::F8E8M0,
        DType::F4E2M1,
        DType::I4,
        DType::U4,
        DType::I2,
        DType::U2,
    ];

    /// The name used in the text form (`f32`, `i64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U64 => "u64",
            DType::U32 => "u32",
            DType::U16 => "u16",
            DType::U8 => "u8",
            DType::Bool => "bool",
            DType::F8E4M3FN => "f8e4m3fn",
            DType::F8E4M3FNUZ => "f8e4m3fnuz",
            DType::F8E5M2 => "f8e5m2",
            DType::F8E5M2FNUZ => "f8e5m2fnuz",
            DType::F8E8M0 => "f8e8m0",
            DType::F4E2M1 => "f4e2m1",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I2 => "i2",
            DType::U2 => "u2",
        }
    }

    /// Parses a name produced by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Size of one element in bytes (`bool` is stored as one byte, 0 or 1; the 4- and 2-bit
    /// types one to a byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 => 1,
            DType::F4E2M1 | DType::I4 | DType::U4 | DType::I2 | DType::U2 => 1,
        }
    }

    /// Bits of one element as ONNX stores it (the 4- and 2-bit types packed).
    pub fn bits(self) -> usize {
        match self {
            DType::F4E2M1 | DType::I4 | DType::U4 => 4,
            DType::I2 | DType::U2 => 2,
            d => 8 * d.size_bytes(),
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16) || self.is_minifloat()
    }

    /// The float8 and float4 formats: stored as bytes, computed in `f32` (each result rounded
    /// back, as for `f16`).
    pub fn is_minifloat(self) -> bool {
        matches!(
            self,
            DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 | DType::F4E2M1
        )
    }

    /// The integers narrower than a byte (held one to a byte, sign-extended).
    pub fn is_sub_byte_int(self) -> bool {
        matches!(self, DType::I4 | DType::U4 | DType::I2 | DType::U2)
    }

    /// Integers, signed (two's complement) or unsigned.
    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::I4 | DType::I2)
    }

    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U64 | DType::U32 | DType::U16 | DType::U8 | DType::U4 | DType::U2)
    }

    /// Numbers: floats and integers, not `bool`.
    pub fn is_numeric(self) -> bool {
        self.is_float() || self.is_int()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_name("f128"), None);
    }

    #[test]
    fn classes_are_disjoint() {
        for d in DType::ALL {
            assert!(!(d.is_float() && d.is_int()));
            assert!(!(d.is_signed_int() && d.is_unsigned_int()));
        }
        assert!(!DType::Bool.is_numeric());
        let ints: Vec<&str> = DType::ALL.into_iter().filter(|d| d.is_int()).map(DType::name).collect();
        assert_eq!(ints, ["i64", "i32", "i16", "i8", "u64", "u32", "u16", "u8", "i4", "u4", "i2", "u2"]);
        assert_eq!(DType::I4.bits(), 4);
        assert_eq!(DType::U2.bits(), 2);
        assert_eq!(DType::F8E5M2.bits(), 8);
        assert_eq!(DType::U64.size_bytes(), 8);
        assert_eq!(DType::U32.size_bytes(), 4);
        assert_eq!(DType::I16.size_bytes(), 2);
        assert_eq!(DType::U16.size_bytes(), 2);
    }
}
