//! Constant literals: `[v, v, ...]`, the elements of a constant in row-major order, each read
//! straight into the constant's dtype (`f32` text is parsed as `f32`, not through `f64`, so
//! printed values read back bit-exactly; `f16`/`bf16` are printed and read through `f32`).
//!
//! The element count comes from the annotated type and is checked for overflow first; elements
//! are collected as they are read, so the memory used is bounded by the text, never by a size
//! the text claims.

use super::lexer::{quote_source, Tok, Token};
use super::parse::Parser;
use crate::{DType, IrError, TensorData, TensorType};
use half::{bf16, f16};
use std::ops::Neg;
use std::str::FromStr;

/// The elements read so far, in the constant's element type.
enum Elements {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U64(Vec<u64>),
    U32(Vec<u32>),
    U16(Vec<u16>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
    /// A float8/float4 type: the values as written, encoded at the end.
    Minifloat(DType, Vec<f64>),
    /// A 4- or 2-bit integer type.
    SubByte(DType, Vec<i64>),
}

impl Elements {
    fn new(dtype: DType) -> Elements {
        match dtype {
            DType::F32 => Elements::F32(Vec::new()),
            DType::F64 => Elements::F64(Vec::new()),
            DType::F16 => Elements::F16(Vec::new()),
            DType::BF16 => Elements::BF16(Vec::new()),
            DType::I64 => Elements::I64(Vec::new()),
            DType::I32 => Elements::I32(Vec::new()),
            DType::I16 => Elements::I16(Vec::new()),
            DType::I8 => Elements::I8(Vec::new()),
            DType::U64 => Elements::U64(Vec::new()),
            DType::U32 => Elements::U32(Vec::new()),
            DType::U16 => Elements::U16(Vec::new()),
            DType::U8 => Elements::U8(Vec::new()),
            DType::Bool => Elements::Bool(Vec::new()),
            d if d.is_minifloat() => Elements::Minifloat(d, Vec::new()),
            d => Elements::SubByte(d, Vec::new()),
        }
    }

    /// The tensor; `shape` must hold exactly as many elements as were read.
    fn into_tensor(self, shape: Vec<usize>) -> TensorData {
        match self {
            Elements::F32(v) => TensorData::from_vec(shape, &v),
            Elements::F64(v) => TensorData::from_vec(shape, &v),
            Elements::F16(v) => TensorData::from_vec(shape, &v),
            Elements::BF16(v) => TensorData::from_vec(shape, &v),
            Elements::I64(v) => TensorData::from_vec(shape, &v),
            Elements::I32(v) => TensorData::from_vec(shape, &v),
            Elements::I16(v) => TensorData::from_vec(shape, &v),
            Elements::I8(v) => TensorData::from_vec(shape, &v),
            Elements::U64(v) => TensorData::from_vec(shape, &v),
            Elements::U32(v) => TensorData::from_vec(shape, &v),
            Elements::U16(v) => TensorData::from_vec(shape, &v),
            Elements::U8(v) => TensorData::from_vec(shape, &v),
            Elements::Bool(v) => TensorData::from_vec(shape, &v),
            Elements::Minifloat(d, v) => TensorData::from_f64(d, shape, &v),
            Elements::SubByte(d, v) => TensorData::from_i64(d, shape, &v),
        }
    }
}

impl<'a> Parser<'a> {
    /// The literal of constant `shown` (its `%name`), whose annotation `ty` starts at `ty_tok`.
    /// The current token is the one after `constant`.
    pub(super) fn constant_literal(
        &mut self,
        ty: &TensorType,
        ty_tok: &Token<'_>,
        shown: &str,
    ) -> Result<TensorData, IrError> {
        if self.tok.is_punct('<') {
            return Err(self.at_token(
                &self.tok,
                format!(
                    "the elements of constant `{shown}` were elided when this file was printed \
                     (`<elided N elements>`); print the graph without `elide_constants_over` to get text that parses"
                ),
            ));
        }
        let Some(shape) = ty.static_shape() else {
            return Err(self.at_token(ty_tok, format!("constant `{shown}` needs a static shape, found {ty}")));
        };
        // Checked in the order `TensorData` multiplies, including the byte size.
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let Some(count) = count.filter(|n| n.checked_mul(ty.dtype.size_bytes()).is_some()) else {
            return Err(self.at_token(ty_tok, format!("constant `{shown}`: the element count of {ty} overflows")));
        };
        self.expect_punct('[', "`[` and the constant's elements")?;
        let mut elements = Elements::new(ty.dtype);
        let mut read = 0usize;
        if !self.tok.is_punct(']') {
            loop {
                if read == count {
                    let message = format!("constant `{shown}` of type {ty} needs {count} elements; this is one more");
                    return Err(self.at_token(&self.tok, message));
                }
                self.element(&mut elements)?;
                read += 1;
                if self.eat_punct(',')?.is_none() {
                    break;
                }
            }
        }
        let close = self.expect_punct(']', "`,` or `]` after a constant element")?;
        if read != count {
            let message = format!("constant `{shown}` of type {ty} needs {count} elements, found {read}");
            return Err(self.at_token(&close, message));
        }
        Ok(elements.into_tensor(shape))
    }

    fn element(&mut self, elements: &mut Elements) -> Result<(), IrError> {
        match elements {
            Elements::F32(v) => v.push(self.float(DType::F32, f32::INFINITY, f32::NAN)?),
            Elements::F64(v) => v.push(self.float(DType::F64, f64::INFINITY, f64::NAN)?),
            Elements::F16(v) => v.push(f16::from_f32(self.float(DType::F16, f32::INFINITY, f32::NAN)?)),
            Elements::BF16(v) => v.push(bf16::from_f32(self.float(DType::BF16, f32::INFINITY, f32::NAN)?)),
            Elements::I64(v) => v.push(self.int(DType::I64)?),
            Elements::I32(v) => v.push(self.int(DType::I32)?),
            Elements::I16(v) => v.push(self.int(DType::I16)?),
            Elements::I8(v) => v.push(self.int(DType::I8)?),
            Elements::U64(v) => v.push(self.int(DType::U64)?),
            Elements::U32(v) => v.push(self.int(DType::U32)?),
            Elements::U16(v) => v.push(self.int(DType::U16)?),
            Elements::U8(v) => v.push(self.int(DType::U8)?),
            // Printed as the shortest `f32` that reads back: every value of these formats is one.
            Elements::Minifloat(d, v) => v.push(self.float(*d, f32::INFINITY, f32::NAN)? as f64),
            Elements::SubByte(d, v) => {
                let tok = self.tok.clone();
                let value: i64 = self.int(*d)?;
                if crate::lowp::wrap_sub_byte(*d, value) != value {
                    return Err(self.at_token(&tok, format!("{value} is out of range for {d}")));
                }
                v.push(value);
            }
            Elements::Bool(v) => {
                let b = match &self.tok.kind {
                    Tok::Ident if self.tok.text == "true" => true,
                    Tok::Ident if self.tok.text == "false" => false,
                    _ => return Err(self.expected("`true` or `false` (the constant is bool)")),
                };
                self.advance()?;
                v.push(b);
            }
        }
        Ok(())
    }

    /// `-`? then a number, `inf` or `nan`, parsed as `T` (integers are accepted too).
    fn float<T: FromStr + Neg<Output = T>>(&mut self, dtype: DType, inf: T, nan: T) -> Result<T, IrError> {
        let negative = self.eat_punct('-')?.is_some();
        let v = match &self.tok.kind {
            Tok::Int | Tok::Float => self.tok.text.parse::<T>().ok(),
            Tok::Ident if self.tok.text == "inf" => Some(inf),
            Tok::Ident if self.tok.text == "nan" => Some(nan),
            _ => None,
        };
        let Some(v) = v else {
            return Err(self.expected(&format!("a number, `inf` or `nan` (the constant is {dtype})")));
        };
        self.advance()?;
        Ok(if negative { -v } else { v })
    }

    /// `-`? then an integer in the range of `T`.
    fn int<T: TryFrom<i128>>(&mut self, dtype: DType) -> Result<T, IrError> {
        let negative = self.eat_punct('-')?.is_some();
        if self.tok.kind != Tok::Int {
            return Err(self.expected(&format!("an integer (the constant is {dtype})")));
        }
        let tok = self.tok.clone();
        let value = tok.text.parse::<u64>().ok().map(i128::from).map(|v| if negative { -v } else { v });
        let Some(value) = value.and_then(|v| T::try_from(v).ok()) else {
            let sign = if negative { "-" } else { "" };
            let shown = quote_source(&format!("{sign}{}", tok.text));
            return Err(self.at_token(&tok, format!("{shown} is out of range for {dtype}")));
        };
        self.advance()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parser_for;
    use super::*;
    use crate::Dim;

    fn literal(dtype: DType, shape: &[i64], src: &str) -> Result<TensorData, IrError> {
        let mut p = parser_for(src)?;
        let ty = TensorType::new(dtype, shape.iter().copied());
        let at = p.tok.clone();
        p.constant_literal(&ty, &at, "%c")
    }

    #[test]
    fn every_dtype_reads_exactly() {
        let t = literal(DType::F32, &[2, 3], "[0.1, -0.0, 1e-45, inf, -inf, 3]").unwrap();
        let v = t.to_vec::<f32>().unwrap();
        assert_eq!(v[0], 0.1f32);
        assert!(v[1] == 0.0 && v[1].is_sign_negative());
        assert_eq!(v[2].to_bits(), 1);
        assert_eq!(&v[3..], &[f32::INFINITY, f32::NEG_INFINITY, 3.0]);
        // f32 text is parsed as f32: through f64 this would round twice and be off by one ulp.
        let v = literal(DType::F32, &[1], "[1.00000005960464477550]").unwrap().to_vec::<f32>().unwrap();
        assert_eq!(v[0], "1.00000005960464477550".parse::<f32>().unwrap());
        let v = literal(DType::F64, &[2], "[0.1, nan]").unwrap().to_vec::<f64>().unwrap();
        assert!(v[0] == 0.1 && v[1].is_nan());
        let v = literal(DType::F16, &[1], "[0.099975586]").unwrap().to_vec::<f16>().unwrap();
        assert_eq!(v[0], f16::from_f32(0.1));
        let v = literal(DType::BF16, &[1], "[-2.5]").unwrap().to_vec::<bf16>().unwrap();
        assert_eq!(v[0], bf16::from_f32(-2.5));
        let t = literal(DType::I64, &[2], "[-9223372036854775808, 9223372036854775807]").unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![i64::MIN, i64::MAX]);
        assert_eq!(literal(DType::I8, &[2], "[-128, 127]").unwrap().to_vec::<i8>().unwrap(), vec![-128, 127]);
        assert_eq!(literal(DType::U8, &[1], "[255]").unwrap().to_vec::<u8>().unwrap(), vec![255]);
        assert_eq!(literal(DType::I32, &[], "[-7]").unwrap().to_vec::<i32>().unwrap(), vec![-7]);
        assert_eq!(literal(DType::I16, &[2], "[-32768, 32767]").unwrap().to_vec::<i16>().unwrap(), vec![-32768, 32767]);
        assert_eq!(literal(DType::U16, &[1], "[65535]").unwrap().to_vec::<u16>().unwrap(), vec![65535]);
        assert_eq!(literal(DType::U32, &[1], "[4294967295]").unwrap().to_vec::<u32>().unwrap(), vec![u32::MAX]);
        let t = literal(DType::U64, &[2], "[0, 18446744073709551615]").unwrap();
        assert_eq!(t.to_vec::<u64>().unwrap(), vec![0, u64::MAX]);
        assert_eq!(literal(DType::Bool, &[2], "[true, false]").unwrap().to_vec::<bool>().unwrap(), vec![true, false]);
        assert_eq!(literal(DType::F32, &[0, 5], "[]").unwrap().shape(), &[0, 5]);
    }

    #[test]
    fn element_errors() {
        let e = |dtype, src| literal(dtype, &[1], src).unwrap_err().to_string();
        assert_eq!(e(DType::U8, "[256]"), "t.nnir:1:2: `256` is out of range for u8");
        assert_eq!(e(DType::U8, "[-1]"), "t.nnir:1:3: `-1` is out of range for u8");
        assert_eq!(e(DType::I64, "[9223372036854775808]"), "t.nnir:1:2: `9223372036854775808` is out of range for i64");
        assert_eq!(
            e(DType::U64, "[18446744073709551616]"),
            "t.nnir:1:2: `18446744073709551616` is out of range for u64"
        );
        assert_eq!(e(DType::U64, "[-1]"), "t.nnir:1:3: `-1` is out of range for u64");
        assert_eq!(e(DType::I16, "[32768]"), "t.nnir:1:2: `32768` is out of range for i16");
        assert_eq!(e(DType::U32, "[4294967296]"), "t.nnir:1:2: `4294967296` is out of range for u32");
        assert_eq!(e(DType::I32, "[1.5]"), "t.nnir:1:2: expected an integer (the constant is i32), found `1.5`");
        assert_eq!(e(DType::Bool, "[1]"), "t.nnir:1:2: expected `true` or `false` (the constant is bool), found `1`");
        assert_eq!(
            e(DType::F32, "[x]"),
            "t.nnir:1:2: expected a number, `inf` or `nan` (the constant is f32), found `x`"
        );
        let trailing = literal(DType::F32, &[2], "[1.0,]").unwrap_err().to_string();
        assert_eq!(trailing, "t.nnir:1:6: expected a number, `inf` or `nan` (the constant is f32), found `]`");
        assert_eq!(e(DType::F32, "[1.0 2.0]"), "t.nnir:1:6: expected `,` or `]` after a constant element, found `2.0`");
        let mut p = parser_for("[1]").unwrap();
        let ty = TensorType::new(DType::F32, [Dim::sym("n")]);
        let at = p.tok.clone();
        assert!(p.constant_literal(&ty, &at, "%c").unwrap_err().to_string().contains("needs a static shape"));
    }
}
