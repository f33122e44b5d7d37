//! The math that vector loops compute in their own code instead of calling the `f64` helper
//! once per lane, defined once for both code generators over the few lane-wise operations each
//! provides ([`LaneOps`]). Bounds against the correctly rounded `f32` result, special values exact
//! (`tests/vector_math.rs` sweeps each over its whole range): `exp` 2 ulp, `log` 2 ulp,
//! `sigmoid` 3 ulp, `tanh` 2 ulp, `erf` 6 ulp. The other transcendentals (trigonometric,
//! hyperbolic other than `tanh`, inverse functions) still call the helper once per lane.

use nnc_ir::{BinaryOp, UnaryOp};
use nnc_kernel::expr::{Expr, Literal};

type R<T> = Result<T, String>;

/// An ordered lane-wise comparison: false in lanes where either side is NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Ge,
    Eq,
}

/// A function computing one transcendental on a vector of lanes.
pub(crate) type VectorFn<O> = fn(&mut O, <O as LaneOps>::V) -> R<<O as LaneOps>::V>;

/// The inline vector form of `op` on `f32` lanes, where it has one (else the generator calls
/// the `f64` helper once per lane).
pub(crate) fn vector_form<O: LaneOps>(op: UnaryOp) -> Option<VectorFn<O>> {
    Some(match op {
        UnaryOp::Exp => exp::<O>,
        UnaryOp::Log => log::<O>,
        UnaryOp::Sigmoid => sigmoid::<O>,
        UnaryOp::Tanh => tanh::<O>,
        UnaryOp::Erf => erf::<O>,
        _ => return None,
    })
}

/// Lane-wise `f32` operations of one code generator, on vectors of its width.
pub(crate) trait LaneOps {
    /// A vector of `f32` lanes.
    type V: Copy;
    /// A lane mask, as a comparison gives it.
    type M: Copy;
    /// `v` (rounded to `f32`) in every lane.
    fn splat_constant(&mut self, v: f64) -> R<Self::V>;
    fn add(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    fn mul(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    fn sub(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    fn div(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    /// `a * b + c`, fused where the target has a fused multiply-add.
    fn mul_add(&mut self, a: Self::V, b: Self::V, c: Self::V) -> R<Self::V>;
    /// NaN-propagating minimum and maximum.
    fn min(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    fn max(&mut self, a: Self::V, b: Self::V) -> R<Self::V>;
    /// Rounding to the nearest integer, half to even.
    fn round_even(&mut self, a: Self::V) -> R<Self::V>;
    fn floor(&mut self, a: Self::V) -> R<Self::V>;
    /// `2^n` for lanes holding integers in `[-126, 127]`, built from the exponent bits.
    fn exp2_int(&mut self, n: Self::V) -> R<Self::V>;
    fn compare(&mut self, cmp: Cmp, a: Self::V, b: Self::V) -> R<Self::M>;
    /// `a` in the lanes where `m` holds, `b` elsewhere.
    fn choose(&mut self, m: Self::M, a: Self::V, b: Self::V) -> R<Self::V>;
    /// The fields of a positive normal `x = m * 2^e`: `(e, m)` with `m` in [1, 2), both as
    /// `f32` lanes (read from the bits; meaningless for zero, subnormals, infinities and NaN).
    fn split_exponent(&mut self, x: Self::V) -> R<(Self::V, Self::V)>;
}

/// `f32(int(x))` lane-wise, where `int` is an integer dtype of range `[lo, hi]`: truncation
/// toward zero, saturation at the range, NaN to 0 (the IR's float-to-integer cast), and back to
/// `f32` (exact, but at the ends of 32- and 64-bit ranges, where `lo` and `hi` round as the
/// integer does). This is how quantization's round trip through `uint8`/`int8` stays in vector
/// registers.
pub(crate) fn through_integer<O: LaneOps>(o: &mut O, x: O::V, lo: f64, hi: f64) -> R<O::V> {
    let zero = o.splat_constant(0.0)?;
    let negative = o.compare(Cmp::Lt, x, zero)?;
    let down = o.floor(x)?;
    let minus = o.sub(zero, x)?;
    let minus_down = o.floor(minus)?;
    let up = o.sub(zero, minus_down)?;
    let truncated = o.choose(negative, up, down)?;
    let lo = o.splat_constant(lo)?;
    let hi = o.splat_constant(hi)?;
    let clamped = o.max(truncated, lo)?;
    let clamped = o.min(clamped, hi)?;
    let number = o.compare(Cmp::Eq, x, x)?;
    o.choose(number, clamped, zero)
}

/// [`through_integer`] of the value of `e`, which a quantization usually writes as
/// `min(max(round(y), lo'), hi')` with integral bounds inside the integer's range: such a value
/// is already integral and in range, so the conversion leaves it as it is but for NaN (to 0),
/// and only that check is emitted (two operations where the general form takes a dozen).
pub(crate) fn integer_valued<O: LaneOps>(o: &mut O, e: &Expr, x: O::V, lo: f64, hi: f64) -> R<O::V> {
    if !clamped_integral(e, lo, hi) {
        return through_integer(o, x, lo, hi);
    }
    let zero = o.splat_constant(0.0)?;
    let number = o.compare(Cmp::Eq, x, x)?;
    o.choose(number, x, zero)
}

/// Whether `e` is `min(max(r, a), b)` or `max(min(r, b), a)` with `r` a rounding (to even,
/// down or up) and `a <= b` integral bounds within `[lo, hi]`: integral and in range
/// wherever it is not NaN.
fn clamped_integral(e: &Expr, lo: f64, hi: f64) -> bool {
    let bound = |e: &Expr| match e {
        Expr::Lit(Literal::Float(v, _)) if v.fract() == 0.0 && (lo..=hi).contains(v) => Some(*v),
        _ => None,
    };
    let rounded = |e: &Expr| matches!(e, Expr::Unary(UnaryOp::Round | UnaryOp::Floor | UnaryOp::Ceil, _));
    let Expr::Binary(outer, inner, b) = e else { return false };
    let Expr::Binary(inner_op, r, a) = &**inner else { return false };
    let ordered = matches!((outer, inner_op), (BinaryOp::Min, BinaryOp::Max) | (BinaryOp::Max, BinaryOp::Min));
    ordered && rounded(r) && bound(a).is_some() && bound(b).is_some()
}

/// Coefficients (of x⁰, x², x⁴, ... ) of the numerator and denominator of the `f32` rational
/// approximation of `erf(x) = x * num(x²) / den(x²)` on [-4, 4] (Eigen's); measured against
/// correctly rounded `erf` it is within 4.2e-7 relative error (6 ulp).
const ERF_NUM: [f64; 7] = [
    -1.60960333262415e-02,
    -2.95459980854025e-03,
    -7.34990630326855e-04,
    -5.69250639462346e-05,
    -2.10102402082508e-06,
    2.77068142495902e-08,
    -2.72614225801306e-10,
];
const ERF_DEN: [f64; 5] =
    [-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04, -1.45660718464996e-05];

/// `erf` lane-wise: `x * P(x²) / Q(x²)` on `x` clamped to [-4, 4] (beyond which `erf` rounds
/// to ±1 in `f32`). NaN propagates through the clamp; `erf(-0) = -0`.
pub(crate) fn erf<O: LaneOps>(o: &mut O, x: O::V) -> R<O::V> {
    let x = clamp(o, x, -4.0, 4.0)?;
    let x2 = o.mul(x, x)?;
    let p = horner(o, x2, &ERF_NUM)?;
    let q = horner(o, x2, &ERF_DEN)?;
    let p = o.mul(p, x)?;
    o.div(p, q)
}

/// `exp` lane-wise, within 2 ulp of the correctly rounded result: `exp(x) = 2^n exp(r)` with
/// `n = round(x / ln 2)` and `r = x - n ln 2` (ln 2 in two parts, so `r` is exact enough),
/// `exp(r)` by its Taylor polynomial to degree 7 on `|r| <= ln 2 / 2`, and `2^n` as two powers of
/// two built from exponent bits (so results that are subnormal or overflow round as the product
/// does). NaN stays NaN; `x` is clamped to `[-104, 89]`, beyond which `exp` is 0 or infinite in
/// `f32` anyway.
pub(crate) fn exp<O: LaneOps>(o: &mut O, x: O::V) -> R<O::V> {
    let x = clamp(o, x, -104.0, 89.0)?;
    let log2e = o.splat_constant(std::f64::consts::LOG2_E)?;
    let t = o.mul(x, log2e)?;
    let n = o.round_even(t)?;
    let (ln2_hi, ln2_lo) = (o.splat_constant(0.693_359_375)?, o.splat_constant(-2.121_944_400_546_905_8e-4)?);
    let a = o.mul(n, ln2_hi)?;
    let r = o.sub(x, a)?;
    let b = o.mul(n, ln2_lo)?;
    let r = o.sub(r, b)?;
    let taylor = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let p = horner(o, r, &taylor)?;
    // 2^n = 2^n1 * 2^n2 with n1 = floor(n / 2): both halves stay normal for n in [-150, 128].
    let half = o.splat_constant(0.5)?;
    let n_half = o.mul(n, half)?;
    let n1 = o.floor(n_half)?;
    let n2 = o.sub(n, n1)?;
    let (s1, s2) = (o.exp2_int(n1)?, o.exp2_int(n2)?);
    let y = o.mul(p, s1)?;
    o.mul(y, s2)
}

/// Coefficients (constant term first) of Cephes' `logf` polynomial: `log(1 + f) = f - f²/2 +
/// f³ P(f)` for `f` in [√½ - 1, √2 - 1].
const LOG_P: [f64; 9] = [
    3.333_333_117_4e-1,
    -2.499_999_399_3e-1,
    2.000_071_476_5e-1,
    -1.666_805_766_5e-1,
    1.424_932_278_7e-1,
    -1.242_014_084_6e-1,
    1.167_699_874_0e-1,
    -1.151_461_031_0e-1,
    7.037_683_629_2e-2,
];

/// `log` lane-wise: `x = m 2^e` with `m` in [√½, √2) (subnormals scaled by 2^23 first), then
/// `e ln 2 + log(m)` with `log(m)` by [`LOG_P`] and `ln 2` in two parts. `log(0) = -inf`,
/// `log(inf) = inf`, NaN for negative and NaN inputs.
pub(crate) fn log<O: LaneOps>(o: &mut O, x: O::V) -> R<O::V> {
    let min_normal = o.splat_constant(f32::MIN_POSITIVE as f64)?;
    let subnormal = o.compare(Cmp::Lt, x, min_normal)?;
    let scale = o.splat_constant(8_388_608.0)?; // 2^23
    let scaled = o.mul(x, scale)?;
    let x_normal = o.choose(subnormal, scaled, x)?;
    let (e, m) = o.split_exponent(x_normal)?;
    let e_scaled = add_constant(o, e, -23.0)?;
    let e = o.choose(subnormal, e_scaled, e)?;
    // m in [√2, 2) becomes m/2 in [√½, 1) with e one larger.
    let sqrt2 = o.splat_constant(std::f64::consts::SQRT_2)?;
    let high = o.compare(Cmp::Ge, m, sqrt2)?;
    let half = o.splat_constant(0.5)?;
    let m_half = o.mul(m, half)?;
    let m = o.choose(high, m_half, m)?;
    let e_up = add_constant(o, e, 1.0)?;
    let e = o.choose(high, e_up, e)?;
    let f = add_constant(o, m, -1.0)?;
    let z = o.mul(f, f)?;
    let p = horner(o, f, &LOG_P)?;
    let fz = o.mul(f, z)?;
    let y = o.mul(fz, p)?;
    let ln2_lo = o.splat_constant(-2.121_944_400_546_905_8e-4)?;
    let y = o.mul_add(e, ln2_lo, y)?;
    let minus_half = o.splat_constant(-0.5)?;
    let y = o.mul_add(z, minus_half, y)?;
    let r = o.add(f, y)?;
    let ln2_hi = o.splat_constant(0.693_359_375)?;
    let r = o.mul_add(e, ln2_hi, r)?;
    // Special values: +inf stays, ±0 gives -inf, negative and NaN give NaN.
    let inf = o.splat_constant(f64::INFINITY)?;
    let is_inf = o.compare(Cmp::Eq, x, inf)?;
    let r = o.choose(is_inf, inf, r)?;
    let zero = o.splat_constant(0.0)?;
    let is_zero = o.compare(Cmp::Eq, x, zero)?;
    let neg_inf = o.splat_constant(f64::NEG_INFINITY)?;
    let r = o.choose(is_zero, neg_inf, r)?;
    let in_domain = o.compare(Cmp::Ge, x, zero)?;
    let nan = o.splat_constant(f64::NAN)?;
    o.choose(in_domain, r, nan)
}

/// `sigmoid` lane-wise, without cancellation on either side: with `e = exp(-|x|)`,
/// `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` below (NaN stays NaN).
pub(crate) fn sigmoid<O: LaneOps>(o: &mut O, x: O::V) -> R<O::V> {
    let zero = o.splat_constant(0.0)?;
    let minus_x = o.sub(zero, x)?;
    let minus_abs = o.min(x, minus_x)?;
    let e = exp(o, minus_abs)?;
    let one = o.splat_constant(1.0)?;
    let denominator = o.add(one, e)?;
    let r = o.div(one, denominator)?;
    let er = o.mul(e, r)?;
    let non_negative = o.compare(Cmp::Ge, x, zero)?;
    o.choose(non_negative, r, er)
}

/// Coefficients (constant term first) of Cephes' `tanhf` polynomial: `tanh(x) = x + x z P(z)`,
/// `z = x²`, for `|x| < 0.625`.
const TANH_P: [f64; 5] =
    [-3.333_328_194_22e-1, 1.333_144_220_36e-1, -5.373_971_555_31e-2, 2.063_908_879_54e-2, -5.704_988_727_45e-3];

/// `tanh` lane-wise: `x (1 + z P(z))` for `|x| < 0.625` (so `-0` stays `-0`), else
/// `±(1 - 2 / (exp(2|x|) + 1))`, which is ±1 once `exp` overflows.
pub(crate) fn tanh<O: LaneOps>(o: &mut O, x: O::V) -> R<O::V> {
    let z = o.mul(x, x)?;
    let p = horner(o, z, &TANH_P)?;
    let one = o.splat_constant(1.0)?;
    let q = o.mul_add(z, p, one)?;
    let small = o.mul(x, q)?;
    let zero = o.splat_constant(0.0)?;
    let minus_x = o.sub(zero, x)?;
    let abs = o.max(x, minus_x)?;
    let two_abs = o.add(abs, abs)?;
    let e = exp(o, two_abs)?;
    let e1 = o.add(e, one)?;
    let two = o.splat_constant(2.0)?;
    let t = o.div(two, e1)?;
    let large = o.sub(one, t)?;
    let negative = o.compare(Cmp::Lt, x, zero)?;
    let minus_large = o.sub(zero, large)?;
    let large = o.choose(negative, minus_large, large)?;
    let threshold = o.splat_constant(0.625)?;
    let is_small = o.compare(Cmp::Lt, abs, threshold)?;
    o.choose(is_small, small, large)
}

/// `x + k` lane-wise.
fn add_constant<O: LaneOps>(o: &mut O, x: O::V, k: f64) -> R<O::V> {
    let k = o.splat_constant(k)?;
    o.add(x, k)
}

/// `x` clamped to `[lo, hi]` lane-wise (NaN stays NaN).
fn clamp<O: LaneOps>(o: &mut O, x: O::V, lo: f64, hi: f64) -> R<O::V> {
    let (lo, hi) = (o.splat_constant(lo)?, o.splat_constant(hi)?);
    let x = o.min(x, hi)?;
    o.max(x, lo)
}

/// The polynomial with coefficients `coefs` (constant term first) at `x`, by Horner's rule.
fn horner<O: LaneOps>(o: &mut O, x: O::V, coefs: &[f64]) -> R<O::V> {
    let (&last, rest) = coefs.split_last().expect("a polynomial has coefficients");
    let mut acc = o.splat_constant(last)?;
    for &k in rest.iter().rev() {
        let k = o.splat_constant(k)?;
        acc = o.mul_add(acc, x, k)?;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    fn lit(v: f64) -> Expr {
        Expr::Lit(Literal::Float(v, DType::F32))
    }

    fn clamp(r: Expr, lo: f64, hi: f64) -> Expr {
        Expr::Binary(
            BinaryOp::Min,
            Box::new(Expr::Binary(BinaryOp::Max, Box::new(r), Box::new(lit(lo)))),
            Box::new(lit(hi)),
        )
    }

    #[test]
    fn only_rounded_values_clamped_to_integral_bounds_in_range_skip_the_conversion() {
        let x = Expr::Load { buf: nnc_kernel::expr::BufId(0), dtype: DType::F32, index: vec![], mask: None };
        let rounded = Expr::Unary(UnaryOp::Round, Box::new(x.clone()));
        assert!(clamped_integral(&clamp(rounded.clone(), 0.0, 255.0), 0.0, 255.0));
        assert!(clamped_integral(&clamp(rounded.clone(), -128.0, 127.0), -128.0, 127.0));
        // Not rounded, a bound past the range, or a bound between integers: the full conversion.
        assert!(!clamped_integral(&clamp(x, 0.0, 255.0), 0.0, 255.0));
        assert!(!clamped_integral(&clamp(rounded.clone(), 0.0, 256.0), 0.0, 255.0));
        assert!(!clamped_integral(&clamp(rounded, 0.5, 255.0), 0.0, 255.0));
    }
}
