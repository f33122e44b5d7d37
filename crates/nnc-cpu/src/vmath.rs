//! The math that vector loops compute inline instead of calling the `f64` helper once per lane,
//! defined once for both code generators over the few lane-wise operations each provides
//! ([`LaneOps`]): `exp` within 2 ulp and `erf` within 6 ulp of the correctly rounded `f32`
//! result, special values exact (`tests/vector_math.rs` sweeps both over their whole range).

type R<T> = Result<T, String>;

/// Lane-wise `f32` operations of one code generator, on vectors of its width.
pub(crate) trait LaneOps {
    /// A vector of `f32` lanes.
    type V: Copy;
    /// `v` (rounded to `f32`) in every lane.
    fn splat_constant(&mut self, v: f64) -> R<Self::V>;
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
