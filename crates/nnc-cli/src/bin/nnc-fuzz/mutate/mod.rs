//! Mutators: each takes a valid input of one kind and changes it the way a damaged, hand-edited
//! or hostile file would differ, knowing the format's structure (a model's dimensions, a
//! tensor's header, a manifest's fields) so most mutants get past the parser to the stages
//! behind it. Every mutator returns what it did, for the case's record.

pub mod bundle;
pub mod bytes;
pub mod onnx;
pub mod tensor;
pub mod text;

/// Sizes and integers that find overflow, zero, sign and limit bugs.
pub const INTERESTING: [i64; 20] = [
    0,
    1,
    2,
    3,
    -1,
    -2,
    7,
    255,
    256,
    65_535,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 48,
    1_000_000_000_000_000,
    1 << 62,
    i64::MAX,
    i64::MIN,
    4096,
];

/// A value from [`INTERESTING`], or a small random one.
pub fn interesting(rng: &mut fastrand::Rng) -> i64 {
    if rng.u8(..4) == 0 {
        rng.i64(-8..64)
    } else {
        INTERESTING[rng.usize(..INTERESTING.len())]
    }
}

/// Floats that find NaN, infinity, rounding and range bugs.
pub fn interesting_float(rng: &mut fastrand::Rng) -> f64 {
    const FLOATS: [f64; 12] =
        [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e38, 3.5e38, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300];
    FLOATS[rng.usize(..FLOATS.len())]
}
