//! The low-precision element formats ONNX defines: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ,
//! E8M0), float4 (E2M1) and the 4- and 2-bit integers, as bytes.
//!
//! Every backend and the interpreter take their conversions from here, so there is one
//! definition of each format. The rules are ONNX's (its reference implementation uses
//! `ml_dtypes`):
//! - float → float8/float4 rounds to nearest, ties to even. Out of range, a *saturating* cast
//!   (ONNX `Cast`'s default for float8) clamps to the largest finite value, infinities included;
//!   a non-saturating one gives infinity where the format has it (E5M2) and NaN where it does not.
//!   Float4 always saturates and turns NaN into `0x8`, as the reference does.
//! - float → E8M0 takes the exponent and rounds up (the `round_mode` `"up"` that is ONNX's
//!   default), saturating at 2^127; NaN and infinities become NaN (`0xFF`).
//! - The 4- and 2-bit integers wrap (two's complement); ONNX stores them packed, the low bits of
//!   each byte first ([`pack`], [`unpack`]), nnc one to a byte, sign-extended.

use crate::DType;

/// The layout of a float8/float4 format with a sign bit (E8M0 has none).
#[derive(Clone, Copy, Debug)]
struct Minifloat {
    exponent_bits: u32,
    mantissa_bits: u32,
    bias: i32,
    specials: Specials,
}

/// How a format spends its special encodings.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Specials {
    /// IEEE: the top exponent holds the infinities (mantissa 0) and NaNs.
    Ieee,
    /// "FN": no infinities; only the all-ones pattern `S.1111.111` is NaN.
    FiniteAllOnesNan,
    /// "FNUZ": no infinities, no negative zero; `0x80` is the one NaN.
    FiniteUnsignedZero,
    /// Float4 E2M1: every pattern is a number.
    None,
}

fn layout(dtype: DType) -> Option<Minifloat> {
    let f = |exponent_bits, mantissa_bits, bias, specials| Minifloat { exponent_bits, mantissa_bits, bias, specials };
    Some(match dtype {
        DType::F8E4M3FN => f(4, 3, 7, Specials::FiniteAllOnesNan),
        DType::F8E4M3FNUZ => f(4, 3, 8, Specials::FiniteUnsignedZero),
        DType::F8E5M2 => f(5, 2, 15, Specials::Ieee),
        DType::F8E5M2FNUZ => f(5, 2, 16, Specials::FiniteUnsignedZero),
        DType::F4E2M1 => f(2, 1, 1, Specials::None),
        _ => return None,
    })
}

impl Minifloat {
    fn sign_bit(self) -> u8 {
        1 << (self.exponent_bits + self.mantissa_bits)
    }

    /// The largest finite value.
    fn max(self) -> f64 {
        let top = (1i32 << self.exponent_bits) - 1;
        let m = self.mantissa_bits as i32;
        let (exponent, mantissa) = match self.specials {
            // The top exponent is all infinities and NaNs.
            Specials::Ieee => (top - 1, (1 << m) - 1),
            // `S.1111.111` is NaN, `S.1111.110` the largest number.
            Specials::FiniteAllOnesNan => (top, (1 << m) - 2),
            Specials::FiniteUnsignedZero | Specials::None => (top, (1 << m) - 1),
        };
        (1.0 + mantissa as f64 / (1 << m) as f64) * 2f64.powi(exponent - self.bias)
    }

    fn nan(self, negative: bool) -> u8 {
        let all_ones = (self.sign_bit() << 1).wrapping_sub(1) & !self.sign_bit();
        match self.specials {
            Specials::Ieee | Specials::FiniteAllOnesNan => all_ones | if negative { self.sign_bit() } else { 0 },
            Specials::FiniteUnsignedZero => 0x80,
            Specials::None => self.sign_bit(),
        }
    }

    fn decode(self, bits: u8) -> f64 {
        let (e, m) = (self.exponent_bits, self.mantissa_bits);
        let negative = bits & self.sign_bit() != 0;
        let exponent = ((bits >> m) & ((1 << e) - 1)) as i32;
        let mantissa = (bits & ((1 << m) - 1)) as i32;
        let top = (1i32 << e) - 1;
        let special = match self.specials {
            Specials::Ieee if exponent == top => Some(if mantissa == 0 { f64::INFINITY } else { f64::NAN }),
            Specials::FiniteAllOnesNan if exponent == top && mantissa == (1 << m) - 1 => Some(f64::NAN),
            Specials::FiniteUnsignedZero if bits == 0x80 => return f64::NAN,
            _ => None,
        };
        let magnitude = special.unwrap_or_else(|| {
            let scale = (1 << m) as f64;
            if exponent == 0 {
                mantissa as f64 / scale * 2f64.powi(1 - self.bias)
            } else {
                (1.0 + mantissa as f64 / scale) * 2f64.powi(exponent - self.bias)
            }
        });
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }

    fn encode(self, x: f64, saturate: bool) -> u8 {
        let negative = x.is_sign_negative();
        if x.is_nan() {
            return self.nan(negative);
        }
        let sign = if negative { self.sign_bit() } else { 0 };
        let saturate = saturate || self.specials == Specials::None;
        let max = self.max();
        let overflow = || match self.specials {
            _ if saturate => sign | self.encode_magnitude(max),
            Specials::Ieee => sign | (((1u8 << self.exponent_bits) - 1) << self.mantissa_bits),
            _ => self.nan(negative),
        };
        let mut a = x.abs();
        if saturate {
            a = a.min(max);
        }
        if a.is_infinite() {
            return overflow();
        }
        // Round to the grid of the binade `a` is in (below the smallest normal: the subnormals').
        let min_normal_exponent = 1 - self.bias;
        let exponent = if a == 0.0 { min_normal_exponent } else { binade(a).max(min_normal_exponent) };
        let quantum = 2f64.powi(exponent - self.mantissa_bits as i32);
        let rounded = (a / quantum).round_ties_even() * quantum;
        if rounded > max {
            return overflow();
        }
        if rounded == 0.0 {
            return if self.specials == Specials::FiniteUnsignedZero { 0 } else { sign };
        }
        sign | self.encode_magnitude(rounded)
    }

    /// The bits of a positive number of the format (exactly representable, at most `max`).
    fn encode_magnitude(self, a: f64) -> u8 {
        let m = self.mantissa_bits as i32;
        let min_normal_exponent = 1 - self.bias;
        if a < 2f64.powi(min_normal_exponent) {
            return (a / 2f64.powi(min_normal_exponent - m)) as u8;
        }
        let exponent = binade(a);
        let mantissa = (a / 2f64.powi(exponent - m)) as i32 - (1 << m);
        (((exponent + self.bias) << m) | mantissa) as u8
    }
}

/// `floor(log2(a))` for a positive finite `a`, exactly (from the bits, not `log2`'s rounding).
fn binade(a: f64) -> i32 {
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    if biased == 0 {
        // Subnormal `f64`: far below every format's smallest value.
        -1074
    } else {
        biased - 1023
    }
}

/// The largest finite value of float8/float4 format `dtype` (`None` for other dtypes and E8M0).
pub fn largest(dtype: DType) -> Option<f64> {
    layout(dtype).map(Minifloat::max)
}

/// Encodes `x` in float format `dtype` (a float8 or float4 type); see the module docs for
/// rounding and `saturate`. Other dtypes give `None`.
pub fn encode(dtype: DType, x: f64, saturate: bool) -> Option<u8> {
    if dtype == DType::F8E8M0 {
        return Some(encode_e8m0(x, saturate));
    }
    layout(dtype).map(|f| f.encode(x, saturate))
}

/// The value of the float8/float4 pattern `bits` (only its low 4 bits for float4); `None`
/// for other dtypes. Every value is exact in `f32`.
pub fn decode(dtype: DType, bits: u8) -> Option<f64> {
    if dtype == DType::F8E8M0 {
        return Some(if bits == 0xFF { f64::NAN } else { 2f64.powi(bits as i32 - 127) });
    }
    layout(dtype).map(|f| f.decode(bits & ((f.sign_bit() << 1).wrapping_sub(1))))
}

/// `x` rounded to float format `dtype` as the result of an operation (not saturating; float4 and
/// E8M0 always saturate). Other dtypes leave `x` unchanged.
pub fn round(dtype: DType, x: f64) -> f64 {
    match encode(dtype, x, false) {
        Some(bits) => decode(dtype, bits).unwrap_or(x),
        None => x,
    }
}

/// E8M0: the binade of `|x|`, one up if `|x|` is not a power of two (rounding up), kept at
/// 2^127 when saturating. For `f32` inputs this is ONNX's bit recipe (exponent field, plus one if
/// a mantissa bit is set); below `f32`'s normals it is exact where that recipe is not.
fn encode_e8m0(x: f64, saturate: bool) -> u8 {
    if !x.is_finite() {
        return 0xFF;
    }
    let a = x.abs();
    if a == 0.0 {
        return 0;
    }
    let exponent = binade(a);
    let up = a != 2f64.powi(exponent);
    match exponent + up as i32 + 127 {
        biased if biased > 0xFE => {
            if saturate {
                0xFE
            } else {
                0xFF
            }
        }
        biased => biased.max(0) as u8,
    }
}

/// Wraps `x` to the 4- or 2-bit integer dtype `dtype` (sign-extended for the signed ones); other
/// dtypes leave it unchanged.
pub fn wrap_sub_byte(dtype: DType, x: i64) -> i64 {
    match dtype {
        DType::I4 => (x << 60) >> 60,
        DType::U4 => x & 0xF,
        DType::I2 => (x << 62) >> 62,
        DType::U2 => x & 0x3,
        _ => x,
    }
}

/// ONNX's packed form of one-per-byte elements of a 4- or 2-bit type: two (four) to a byte, the
/// first in the low bits, the last byte padded with zero bits.
pub fn pack(dtype: DType, elements: &[u8]) -> Vec<u8> {
    let bits = dtype.bits();
    if bits >= 8 {
        return elements.to_vec();
    }
    let per_byte = 8 / bits;
    let mask = (1u8 << bits) - 1;
    elements
        .chunks(per_byte)
        .map(|chunk| chunk.iter().enumerate().fold(0u8, |byte, (i, &e)| byte | (e & mask) << (i * bits)))
        .collect()
}

/// The inverse of [`pack`]: `count` one-per-byte elements (integers sign-extended) from packed
/// bytes, or `None` if `packed` is too short.
pub fn unpack(dtype: DType, packed: &[u8], count: usize) -> Option<Vec<u8>> {
    let bits = dtype.bits();
    if bits >= 8 {
        return (packed.len() >= count).then(|| packed[..count].to_vec());
    }
    let per_byte = 8 / bits;
    if packed.len() < count.div_ceil(per_byte) {
        return None;
    }
    let mask = (1u8 << bits) - 1;
    Some(
        (0..count)
            .map(|i| {
                let field = (packed[i / per_byte] >> ((i % per_byte) * bits)) & mask;
                match dtype {
                    DType::I4 | DType::I2 => wrap_sub_byte(dtype, field as i64) as i8 as u8,
                    _ => field,
                }
            })
            .collect(),
    )
}

/// The number of bytes ONNX's packed form of `count` elements of `dtype` takes (saturating: a
/// count read from a file can be anything).
pub fn packed_len(dtype: DType, count: usize) -> usize {
    match dtype.bits() {
        bits if bits >= 8 => count.saturating_mul(bits / 8),
        bits => count.div_ceil(8 / bits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOAT8: [DType; 4] = [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ];

    #[test]
    fn largest_values_are_the_formats() {
        let max = |d| layout(d).unwrap().max();
        assert_eq!(max(DType::F8E4M3FN), 448.0);
        assert_eq!(max(DType::F8E4M3FNUZ), 240.0);
        assert_eq!(max(DType::F8E5M2), 57344.0);
        assert_eq!(max(DType::F8E5M2FNUZ), 57344.0);
        assert_eq!(max(DType::F4E2M1), 6.0);
    }

    #[test]
    fn every_pattern_decodes_and_encodes_back() {
        for d in FLOAT8 {
            for bits in 0..=255u8 {
                let v = decode(d, bits).unwrap();
                if v.is_nan() {
                    assert!(decode(d, encode(d, v, false).unwrap()).unwrap().is_nan());
                    continue;
                }
                let back = encode(d, v, false).unwrap();
                // FNUZ has no negative zero: `0x80` is its NaN, handled above.
                assert_eq!(back, bits, "{d}: {bits:#04x} decodes to {v}, encodes to {back:#04x}");
                assert_eq!(v as f32 as f64, v, "{d}: {v} is exact in f32");
            }
        }
        for bits in 0..16u8 {
            let v = decode(DType::F4E2M1, bits).unwrap();
            assert_eq!(encode(DType::F4E2M1, v, false), Some(bits), "f4e2m1 {bits:#x} = {v}");
        }
        let f4: Vec<f64> = (0..8).map(|b| decode(DType::F4E2M1, b).unwrap()).collect();
        assert_eq!(f4, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        // Between 448 (mantissa 110) and the NaN pattern's 480: the tie goes to 448.
        assert_eq!(round(DType::F8E4M3FN, 464.0), 448.0);
        assert!(round(DType::F8E4M3FN, 465.0).is_nan());
        // Between 1 and 1.125 (E4M3): the tie goes to 1, between 1.125 and 1.25 to 1.25.
        assert_eq!(round(DType::F8E4M3FN, 1.0625), 1.0);
        assert_eq!(round(DType::F8E4M3FN, 1.1875), 1.25);
        // Subnormals: E4M3FN's smallest is 2^-9; half of it ties to zero, more rounds up.
        assert_eq!(round(DType::F8E4M3FN, 2f64.powi(-10)), 0.0);
        assert_eq!(round(DType::F8E4M3FN, 1.5 * 2f64.powi(-10)), 2f64.powi(-9));
        assert_eq!(round(DType::F8E5M2, 61440.0), f64::INFINITY);
        assert_eq!(round(DType::F4E2M1, 0.25), 0.0);
        assert_eq!(round(DType::F4E2M1, -3.5), -4.0);
    }

    #[test]
    fn saturation_and_specials_follow_onnx() {
        let enc = |d, x, s| encode(d, x, s).unwrap();
        assert_eq!(decode(DType::F8E4M3FN, enc(DType::F8E4M3FN, 1e9, true)), Some(448.0));
        assert_eq!(decode(DType::F8E4M3FN, enc(DType::F8E4M3FN, f64::NEG_INFINITY, true)), Some(-448.0));
        assert!(decode(DType::F8E4M3FN, enc(DType::F8E4M3FN, f64::INFINITY, false)).unwrap().is_nan());
        assert_eq!(decode(DType::F8E4M3FNUZ, enc(DType::F8E4M3FNUZ, f64::INFINITY, true)), Some(240.0));
        assert_eq!(enc(DType::F8E4M3FNUZ, -0.0, true), 0);
        assert_eq!(enc(DType::F8E4M3FN, -0.0, true), 0x80);
        assert_eq!(decode(DType::F8E5M2, enc(DType::F8E5M2, 1e9, false)), Some(f64::INFINITY));
        assert_eq!(decode(DType::F8E5M2, enc(DType::F8E5M2, 1e9, true)), Some(57344.0));
        assert!(decode(DType::F8E5M2FNUZ, enc(DType::F8E5M2FNUZ, 1e9, false)).unwrap().is_nan());
        // Float4: always saturating; NaN is `0x8` as in ONNX's reference outputs.
        assert_eq!(enc(DType::F4E2M1, 9.0, false), 0x7);
        assert_eq!(enc(DType::F4E2M1, f64::NEG_INFINITY, false), 0xF);
        assert_eq!(enc(DType::F4E2M1, f64::NAN, false), 0x8);
    }

    #[test]
    fn e8m0_rounds_up_and_saturates() {
        let enc = |x, s| encode(DType::F8E8M0, x, s).unwrap();
        assert_eq!(enc(1.0, true), 127);
        assert_eq!(enc(1.5, true), 128);
        assert_eq!(enc(0.25, true), 125);
        assert_eq!(enc(f64::INFINITY, true), 0xFF);
        assert_eq!(enc(f32::MAX as f64, true), 0xFE);
        assert_eq!(enc(f32::MAX as f64, false), 0xFF);
        assert_eq!(decode(DType::F8E8M0, 127), Some(1.0));
        assert_eq!(decode(DType::F8E8M0, 0), Some(2f64.powi(-127)));
        for bits in 0..0xFF {
            assert_eq!(enc(decode(DType::F8E8M0, bits).unwrap(), false), bits);
        }
        assert!(decode(DType::F8E8M0, 0xFF).unwrap().is_nan());
    }

    #[test]
    fn sub_byte_integers_wrap_and_pack_low_bits_first() {
        assert_eq!(wrap_sub_byte(DType::I4, -9), 7);
        assert_eq!(wrap_sub_byte(DType::I4, 8), -8);
        assert_eq!(wrap_sub_byte(DType::U4, -9), 7);
        assert_eq!(wrap_sub_byte(DType::I2, 3), -1);
        assert_eq!(wrap_sub_byte(DType::U2, -3), 1);
        let elements: Vec<u8> = [-8i8, 7, -1, 0, 3].iter().map(|&v| v as u8).collect();
        let packed = pack(DType::I4, &elements);
        assert_eq!(packed, [0x78, 0x0F, 0x03]);
        assert_eq!(packed_len(DType::I4, 5), 3);
        assert_eq!(packed_len(DType::U2, 5), 2);
        assert_eq!(packed_len(DType::I4, usize::MAX), usize::MAX.div_ceil(2));
        assert_eq!(unpack(DType::I4, &packed, 5).unwrap(), elements);
        let two: Vec<u8> = vec![1, 2, 3, 0, 1];
        assert_eq!(pack(DType::U2, &two), [0b00_11_10_01, 0b01]);
        assert_eq!(unpack(DType::U2, &pack(DType::U2, &two), 5).unwrap(), two);
        assert_eq!(unpack(DType::U2, &[0], 5), None);
    }
}
