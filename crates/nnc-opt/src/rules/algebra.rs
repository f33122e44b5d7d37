//! Algebraic identities of elementwise ops: units, involutions, idempotence, and the
//! reassociation of chains of constant operands (`(x * a) * b → x * (a * b)`).
//!
//! Every rule also passes the type gate of `rules/mod.rs`: its right side must have the matched
//! value's dtype and shape, which is the broadcasting guard (a constant `1` of shape `[2, 3]`
//! multiplied into `x: [3]` changes the shape, so `x * 1 → x` does not fire there).
//!
//! Floating-point notes: rules marked "exact" give bit-identical results (except possibly the
//! sign of a zero result, for `x + 0`); reassociation rounds differently (the property test
//! allows for that); nothing here assumes finite inputs unless its guard says so.

use super::{class, info, is_const, is_float, is_value, not_const, value, var, Family, Rule, Term};
use crate::fold;
use nnc_ir::{BinaryOp, DType, Op};

const F: Family = Family::Algebra;

/// `x op c` with `c` a new constant.
fn with_const(op: BinaryOp, x: Term, c: nnc_ir::TensorData) -> Term {
    Term::op(Op::Binary(op), vec![x, Term::Const(c)])
}

/// `(x outer a) inner b → x result (fold(a, b))`: a reassociation of two constants in a chain.
fn chain(name: &'static str, lhs: &str, result: BinaryOp, fold_op: BinaryOp, swap: bool, float_only: bool) -> Rule {
    let (x, a, b) = (var("?x"), var("?a"), var("?b"));
    let rule = Rule::custom(F, name, lhs, move |eg, s| {
        let (va, vb) = (value(eg, s, a)?, value(eg, s, b)?);
        let c = if swap { fold::binary(fold_op, vb, va)? } else { fold::binary(fold_op, va, vb)? };
        Some(with_const(result, class(s, x)?, c))
    })
    .when(not_const("?x"))
    .when(is_const("?a"))
    .when(is_const("?b"));
    if float_only {
        rule.when(is_float("?x"))
    } else {
        rule
    }
}

pub fn rules() -> Vec<Rule> {
    use BinaryOp::*;
    vec![
        // x * 1 → x (exact); guard: every element of the constant is 1.
        Rule::rewrite(F, "mul_one", "(mul ?x ?c)", "?x").when(is_value("?c", 1.0)),
        // 1 * x → x (exact); guard: every element of the constant is 1.
        Rule::rewrite(F, "mul_one_left", "(mul ?c ?x)", "?x").when(is_value("?c", 1.0)),
        // x + 0 → x (exact up to the sign of a zero result); guard: the constant is all zeros.
        Rule::rewrite(F, "add_zero", "(add ?x ?c)", "?x").when(is_value("?c", 0.0)),
        // 0 + x → x (exact up to the sign of a zero result); guard: the constant is all zeros.
        Rule::rewrite(F, "add_zero_left", "(add ?c ?x)", "?x").when(is_value("?c", 0.0)),
        // x - 0 → x (exact up to the sign of a zero result); guard: the constant is all zeros.
        Rule::rewrite(F, "sub_zero", "(sub ?x ?c)", "?x").when(is_value("?c", 0.0)),
        // x / 1 → x (exact, integers too); guard: every element of the constant is 1.
        Rule::rewrite(F, "div_one", "(div ?x ?c)", "?x").when(is_value("?c", 1.0)),
        // pow(x, 1) → x (exact); guard: every element of the exponent is 1.
        Rule::rewrite(F, "pow_one", "(pow ?x ?c)", "?x").when(is_value("?c", 1.0)),
        // -(-x) → x (exact, wrapping integers too); no guard.
        Rule::rewrite(F, "neg_neg", "(neg (neg ?x))", "?x"),
        // x - (-y) → x + y (exact); no guard beyond types.
        Rule::rewrite(F, "sub_neg", "(sub ?x (neg ?y))", "(add ?x ?y)"),
        // x + (-y) → x - y (exact); no guard beyond types.
        Rule::rewrite(F, "add_neg", "(add ?x (neg ?y))", "(sub ?x ?y)"),
        // relu(relu(x)) → relu(x) (exact); no guard.
        Rule::rewrite(F, "relu_relu", "(relu (relu ?x))", "(relu ?x)"),
        // relu(x) → x (exact up to the sign of zero); guard: x is known non-negative (or NaN).
        Rule::rewrite(F, "relu_nonneg", "(relu ?x)", "?x").when(nonneg("?x")),
        // abs(abs(x)) → abs(x) (exact, also for wrapping integer abs); no guard.
        Rule::rewrite(F, "abs_abs", "(abs (abs ?x))", "(abs ?x)"),
        // abs(-x) → abs(x) (exact); guard: not unsigned (there abs(neg(4)) is 252 in u8, abs(4) is 4).
        Rule::rewrite(F, "abs_neg", "(abs (neg ?x))", "(abs ?x)").when(not_unsigned("?x")),
        // abs(x) → x (exact up to the sign of zero); guard: x is known non-negative (or NaN).
        Rule::rewrite(F, "abs_nonneg", "(abs ?x)", "?x").when(nonneg("?x")),
        // exp(log(x)) → x (up to rounding, 0, inf and NaN included); guard: x known non-negative.
        Rule::rewrite(F, "exp_log", "(exp (log ?x))", "?x").when(nonneg("?x")),
        // max(x, x) → x (exact, NaN included); no guard.
        Rule::rewrite(F, "max_self", "(max ?x ?x)", "?x"),
        // min(x, x) → x (exact, NaN included); no guard.
        Rule::rewrite(F, "min_self", "(min ?x ?x)", "?x"),
        // cast(x) {to = dtype(x)} → x (exact: the identity conversion); guard: the type gate.
        Rule::rewrite(F, "cast_identity", "(cast ?t ?x)", "?x"),
        // cast(cast(x) to b) to c → cast(x) to c (exact); guard: x → b widens, and not int → float → int.
        Rule::custom(F, "cast_cast", "(cast ?t (cast ?u ?x))", move |eg, s| {
            let (Op::Cast { to }, Op::Cast { to: mid }) =
                (super::attr(eg, s, var("?t"))?, super::attr(eg, s, var("?u"))?)
            else {
                return None;
            };
            let from = info(eg, s, var("?x"))?.ty.dtype;
            // Integers cast to integers wrap but floats cast to integers saturate: an integer
            // widened to a float and then cast to an integer is not the direct cast.
            let kind_changes = from.is_int() && mid.is_float() && to.is_int();
            (widens(from, *mid) && !kind_changes)
                .then(|| Term::op(Op::Cast { to: *to }, vec![Term::Class(s[var("?x")])]))
        }),
        // c * x → x * c (exact), gathering constants on the right; guard: c a small constant, x not.
        Rule::rewrite(F, "mul_const_right", "(mul ?c ?x)", "(mul ?x ?c)").when(is_const("?c")).when(not_const("?x")),
        // c + x → x + c (exact), gathering constants on the right; guard: c a small constant, x not.
        Rule::rewrite(F, "add_const_right", "(add ?c ?x)", "(add ?x ?c)").when(is_const("?c")).when(not_const("?x")),
        // (x * a) * b → x * (a * b) (ints exact, floats up to rounding); guard: a, b small constants.
        chain("mul_mul_const", "(mul (mul ?x ?a) ?b)", Mul, Mul, false, false),
        // (x + a) + b → x + (a + b); guard as `mul_mul_const`.
        chain("add_add_const", "(add (add ?x ?a) ?b)", Add, Add, false, false),
        // (x - a) + b → x + (b - a); guard as `mul_mul_const`.
        chain("sub_add_const", "(add (sub ?x ?a) ?b)", Add, Sub, true, false),
        // (x + a) - b → x + (a - b); guard as `mul_mul_const`.
        chain("add_sub_const", "(sub (add ?x ?a) ?b)", Add, Sub, false, false),
        // (x - a) - b → x - (a + b); guard as `mul_mul_const`.
        chain("sub_sub_const", "(sub (sub ?x ?a) ?b)", Sub, Add, false, false),
        // (x / a) / b → x / (a * b) (up to rounding); guard: floats (ints truncate), a, b small constants.
        chain("div_div_const", "(div (div ?x ?a) ?b)", Div, Mul, false, true),
        // (x * a) / b → x * (a / b) (up to rounding); guard: floats, a, b small constants.
        chain("mul_div_const", "(div (mul ?x ?a) ?b)", Mul, Div, false, true),
        // (x / a) * b → x * (b / a) (up to rounding); guard: floats, a, b small constants.
        chain("div_mul_const", "(mul (div ?x ?a) ?b)", Mul, Div, true, true),
        // -(x * c) → x * (-c) (exact, wrapping integers too); guard: c a small constant.
        Rule::custom(F, "neg_mul_const", "(neg (mul ?x ?c))", {
            let (x, c) = (var("?x"), var("?c"));
            move |eg, s| Some(with_const(Mul, class(s, x)?, fold::unary(nnc_ir::UnaryOp::Neg, value(eg, s, c)?)?))
        }),
    ]
}

/// True if `cast` from `from` to `to` keeps every value exactly (and so can be skipped before
/// another cast, which then sees the same values).
fn widens(from: DType, to: DType) -> bool {
    use DType::*;
    let bits = |d: DType| d.size_bytes() * 8;
    match (from, to) {
        (a, b) if a == b => true,
        (Bool, _) => true,
        (F16 | BF16, F32 | F64) | (F32, F64) => true,
        (a, b) if a.is_signed_int() && b.is_signed_int() => bits(b) > bits(a),
        (a, b) if a.is_unsigned_int() && b.is_unsigned_int() => bits(b) > bits(a),
        (a, b) if a.is_unsigned_int() && b.is_signed_int() => bits(b) > bits(a),
        // Integers of at most 24 (f32) or 53 (f64) significant bits are exact in floats.
        (I8 | U8 | I16 | U16, F32 | F64) | (I32 | U32, F64) => true,
        (I8 | U8, F16 | BF16) => true,
        _ => false,
    }
}

/// Guard: the value's dtype is not an unsigned integer.
fn not_unsigned(name: &str) -> impl Fn(&crate::analysis::EG, &egg::Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| info(eg, s, v).is_some_and(|i| !i.ty.dtype.is_unsigned_int())
}

/// Guard: the analysis knows the value is never negative.
fn nonneg(name: &str) -> impl Fn(&crate::analysis::EG, &egg::Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| info(eg, s, v).is_some_and(|i| i.nonneg)
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_not_applied, assert_rule};

    #[test]
    fn mul_one() {
        assert_rule(
            "mul_one",
            "graph g(%x: f32[2, 3]) {
               %one: f32[3] = constant [1.0, 1.0, 1.0]
               %y: f32[2, 3] = mul(%x, %one)
               %z: f32[2, 3] = exp(%y)
               return %z
             }",
            &["%z: f32[2, 3] = exp(%x)"],
        );
        // The ones would broadcast x from [3] to [2, 3]: not the identity.
        assert_not_applied(
            "mul_one",
            "graph g(%x: f32[3]) {
               %one: f32[2, 3] = constant [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
               %y: f32[2, 3] = mul(%x, %one)
               return %y
             }",
        );
    }

    #[test]
    fn mul_one_left() {
        assert_rule(
            "mul_one_left",
            "graph g(%x: i32[batch]) {
               %one: i32[] = constant [1]
               %y: i32[batch] = mul(%one, %x)
               %z: i32[batch] = neg(%y)
               return %z
             }",
            &["%z: i32[batch] = neg(%x)"],
        );
    }

    #[test]
    fn add_zero() {
        assert_rule(
            "add_zero",
            "graph g(%x: f32[2]) {
               %c: f32[1] = constant [0.0]
               %y: f32[2] = add(%x, %c)
               %z: f32[2] = exp(%y)
               return %z
             }",
            &["%z: f32[2] = exp(%x)"],
        );
        assert_not_applied(
            "add_zero",
            "graph g(%x: f32[2]) {
               %c: f32[2] = constant [0.0, 1.0]
               %y: f32[2] = add(%x, %c)
               return %y
             }",
        );
    }

    #[test]
    fn add_zero_left() {
        assert_rule(
            "add_zero_left",
            "graph g(%x: f32[2]) {
               %c: f32[] = constant [0.0]
               %y: f32[2] = add(%c, %x)
               %z: f32[2] = exp(%y)
               return %z
             }",
            &["%z: f32[2] = exp(%x)"],
        );
    }

    #[test]
    fn sub_zero() {
        assert_rule(
            "sub_zero",
            "graph g(%x: i64[2]) {
               %c: i64[] = constant [0]
               %y: i64[2] = sub(%x, %c)
               %z: i64[2] = neg(%y)
               return %z
             }",
            &["%z: i64[2] = neg(%x)"],
        );
    }

    #[test]
    fn div_one() {
        assert_rule(
            "div_one",
            "graph g(%x: f32[2]) {
               %c: f32[] = constant [1.0]
               %y: f32[2] = div(%x, %c)
               %z: f32[2] = exp(%y)
               return %z
             }",
            &["%z: f32[2] = exp(%x)"],
        );
    }

    #[test]
    fn pow_one() {
        assert_rule(
            "pow_one",
            "graph g(%x: f32[2]) {
               %c: f32[] = constant [1.0]
               %y: f32[2] = pow(%x, %c)
               %z: f32[2] = exp(%y)
               return %z
             }",
            &["%z: f32[2] = exp(%x)"],
        );
    }

    #[test]
    fn neg_neg() {
        assert_rule(
            "neg_neg",
            "graph g(%x: f32[2]) {
               %a: f32[2] = neg(%x)
               %b: f32[2] = neg(%a)
               %z: f32[2] = exp(%b)
               return %z
             }",
            &["%z: f32[2] = exp(%x)"],
        );
    }

    #[test]
    fn sub_neg() {
        assert_rule(
            "sub_neg",
            "graph g(%x: f32[2], %y: f32[2]) {
               %n: f32[2] = neg(%y)
               %z: f32[2] = sub(%x, %n)
               return %z
             }",
            &["%z: f32[2] = add(%x, %y)"],
        );
    }

    #[test]
    fn add_neg() {
        assert_rule(
            "add_neg",
            "graph g(%x: f32[2], %y: f32[2]) {
               %n: f32[2] = neg(%y)
               %z: f32[2] = add(%x, %n)
               return %z
             }",
            &["%z: f32[2] = sub(%x, %y)"],
        );
    }

    #[test]
    fn relu_relu() {
        assert_rule(
            "relu_relu",
            "graph g(%x: f32[2]) {
               %a: f32[2] = relu(%x)
               %b: f32[2] = relu(%a)
               return %b
             }",
            &["%b: f32[2] = relu(%x)"],
        );
    }

    #[test]
    fn relu_nonneg() {
        assert_rule(
            "relu_nonneg",
            "graph g(%x: f32[2]) {
               %a: f32[2] = exp(%x)
               %b: f32[2] = relu(%a)
               %c: f32[2] = neg(%b)
               return %c
             }",
            &["%c: f32[2] = neg(%a)"],
        );
        assert_not_applied(
            "relu_nonneg",
            "graph g(%x: f32[2]) {
               %a: f32[2] = tanh(%x)
               %b: f32[2] = relu(%a)
               return %b
             }",
        );
    }

    #[test]
    fn abs_abs() {
        assert_rule(
            "abs_abs",
            "graph g(%x: i8[2]) {
               %a: i8[2] = abs(%x)
               %b: i8[2] = abs(%a)
               return %b
             }",
            &["%b: i8[2] = abs(%x)"],
        );
    }

    #[test]
    fn abs_neg() {
        assert_rule(
            "abs_neg",
            "graph g(%x: f32[2]) {
               %a: f32[2] = neg(%x)
               %b: f32[2] = abs(%a)
               return %b
             }",
            &["%b: f32[2] = abs(%x)"],
        );
        assert_not_applied(
            "abs_neg",
            "graph g(%x: u8[2]) {
               %a: u8[2] = neg(%x)
               %b: u8[2] = abs(%a)
               return %b
             }",
        );
    }

    #[test]
    fn abs_nonneg() {
        assert_rule(
            "abs_nonneg",
            "graph g(%x: f32[2]) {
               %a: f32[2] = sigmoid(%x)
               %b: f32[2] = abs(%a)
               %c: f32[2] = neg(%b)
               return %c
             }",
            &["%c: f32[2] = neg(%a)"],
        );
    }

    #[test]
    fn exp_log() {
        assert_rule(
            "exp_log",
            "graph g(%x: f32[2]) {
               %a: f32[2] = relu(%x)
               %b: f32[2] = log(%a)
               %c: f32[2] = exp(%b)
               %d: f32[2] = neg(%c)
               return %d
             }",
            &["%d: f32[2] = neg(%a)"],
        );
        // log of a possibly negative value is NaN: no rewrite.
        assert_not_applied(
            "exp_log",
            "graph g(%x: f32[2]) {
               %b: f32[2] = log(%x)
               %c: f32[2] = exp(%b)
               return %c
             }",
        );
    }

    #[test]
    fn max_self() {
        assert_rule(
            "max_self",
            "graph g(%x: f32[2]) {
               %a: f32[2] = max(%x, %x)
               %b: f32[2] = neg(%a)
               return %b
             }",
            &["%b: f32[2] = neg(%x)"],
        );
    }

    #[test]
    fn min_self() {
        assert_rule(
            "min_self",
            "graph g(%x: u8[2]) {
               %a: u8[2] = min(%x, %x)
               %b: u8[2] = neg(%a)
               return %b
             }",
            &["%b: u8[2] = neg(%x)"],
        );
    }

    #[test]
    fn cast_identity() {
        assert_rule(
            "cast_identity",
            "graph g(%x: i32[2]) {
               %a: i32[2] = cast(%x) {to = i32}
               %b: i32[2] = neg(%a)
               return %b
             }",
            &["%b: i32[2] = neg(%x)"],
        );
    }

    #[test]
    fn cast_cast() {
        assert_rule(
            "cast_cast",
            "graph g(%x: i8[2]) {
               %a: i32[2] = cast(%x) {to = i32}
               %b: f32[2] = cast(%a) {to = f32}
               return %b
             }",
            &["%b: f32[2] = cast(%x) {to = f32}"],
        );
        // Through a float, an integer saturates instead of wrapping: -78 → f32 → u16 is 0, not 65458.
        assert_not_applied(
            "cast_cast",
            "graph g(%x: i8[2]) {
               %a: f32[2] = cast(%x) {to = f32}
               %b: u16[2] = cast(%a) {to = u16}
               return %b
             }",
        );
        // Through a narrower type values change: 300 → u8 44 → f32 44.0, not 300.0.
        assert_not_applied(
            "cast_cast",
            "graph g(%x: i32[2]) {
               %a: u8[2] = cast(%x) {to = u8}
               %b: f32[2] = cast(%a) {to = f32}
               return %b
             }",
        );
    }

    #[test]
    fn mul_const_right() {
        assert_rule(
            "mul_const_right",
            "graph g(%x: f32[2]) {
               %c: f32[] = constant [3.0]
               %a: f32[2] = mul(%c, %x)
               return %a
             }",
            &["%a: f32[2] = mul(%x, %c)"],
        );
    }

    #[test]
    fn add_const_right() {
        assert_rule(
            "add_const_right",
            "graph g(%x: f32[2]) {
               %c: f32[] = constant [3.0]
               %a: f32[2] = add(%c, %x)
               return %a
             }",
            &["%a: f32[2] = add(%x, %c)"],
        );
    }

    #[test]
    fn mul_mul_const() {
        assert_rule(
            "mul_mul_const",
            "graph g(%x: f32[2, 2]) {
               %a: f32[] = constant [3.0]
               %b: f32[2] = constant [2.0, 0.5]
               %m: f32[2, 2] = mul(%x, %a)
               %n: f32[2, 2] = mul(%m, %b)
               return %n
             }",
            &["constant [6.0, 1.5]", "%n: f32[2, 2] = mul(%x, "],
        );
    }

    #[test]
    fn add_add_const() {
        assert_rule(
            "add_add_const",
            "graph g(%x: i32[2]) {
               %a: i32[] = constant [3]
               %b: i32[] = constant [4]
               %m: i32[2] = add(%x, %a)
               %n: i32[2] = add(%m, %b)
               return %n
             }",
            &["constant [7]", "%n: i32[2] = add(%x, "],
        );
    }

    #[test]
    fn sub_add_const() {
        assert_rule(
            "sub_add_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [3.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = sub(%x, %a)
               %n: f32[2] = add(%m, %b)
               return %n
             }",
            &["constant [1.0]", "%n: f32[2] = add(%x, "],
        );
    }

    #[test]
    fn add_sub_const() {
        assert_rule(
            "add_sub_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [3.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = add(%x, %a)
               %n: f32[2] = sub(%m, %b)
               return %n
             }",
            &["constant [-1.0]", "%n: f32[2] = add(%x, "],
        );
    }

    #[test]
    fn sub_sub_const() {
        assert_rule(
            "sub_sub_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [3.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = sub(%x, %a)
               %n: f32[2] = sub(%m, %b)
               return %n
             }",
            &["constant [7.0]", "%n: f32[2] = sub(%x, "],
        );
    }

    #[test]
    fn div_div_const() {
        assert_rule(
            "div_div_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [2.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = div(%x, %a)
               %n: f32[2] = div(%m, %b)
               return %n
             }",
            &["constant [8.0]", "%n: f32[2] = div(%x, "],
        );
        assert_not_applied(
            "div_div_const",
            "graph g(%x: i32[2]) {
               %a: i32[] = constant [2]
               %b: i32[] = constant [4]
               %m: i32[2] = div(%x, %a)
               %n: i32[2] = div(%m, %b)
               return %n
             }",
        );
    }

    #[test]
    fn mul_div_const() {
        assert_rule(
            "mul_div_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [2.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = mul(%x, %a)
               %n: f32[2] = div(%m, %b)
               return %n
             }",
            &["constant [0.5]", "%n: f32[2] = mul(%x, "],
        );
    }

    #[test]
    fn div_mul_const() {
        assert_rule(
            "div_mul_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [2.0]
               %b: f32[] = constant [4.0]
               %m: f32[2] = div(%x, %a)
               %n: f32[2] = mul(%m, %b)
               return %n
             }",
            &["constant [2.0]", "%n: f32[2] = mul(%x, "],
        );
    }

    #[test]
    fn neg_mul_const() {
        assert_rule(
            "neg_mul_const",
            "graph g(%x: f32[2]) {
               %a: f32[] = constant [2.0]
               %m: f32[2] = mul(%x, %a)
               %n: f32[2] = neg(%m)
               return %n
             }",
            &["constant [-2.0]", "%n: f32[2] = mul(%x, "],
        );
    }
}
