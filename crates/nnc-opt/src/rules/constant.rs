//! Constant folding: ops whose operands are all constants become constants.
//!
//! The importer already folds what is constant in the ONNX file; these rules fold what other
//! rules expose (a reassociated chain, a reshaped weight). Values are computed by `fold.rs` with
//! the interpreter's semantics, so folding is exact; a fold that cannot be computed exactly
//! (integer division, `u64` casts) or whose result has more than `SMALL_CONST` elements does not
//! happen. `reshape` of a constant of any size folds without copying: the new constant shares
//! the weight's bytes.

use super::{attr, value, var, Family, Rule, Term};
use crate::analysis::EG;
use crate::fold;
use crate::lang::Head;
use egg::{Id, Subst};
use nnc_ir::{BinaryOp, DType, Op, TensorData, UnaryOp};

const F: Family = Family::Constant;

/// The most elements of a narrow integer constant that `fold_cast` widens (a lookup table of
/// a few values, not a quantized weight).
const WIDENED_TABLE: usize = 64;

/// The constant (of any size) in e-class `id`.
fn const_in(eg: &EG, id: Id) -> Option<&TensorData> {
    eg[id].nodes.iter().find_map(|n| match n.head {
        Head::Const(k) => eg.analysis.consts.get(k),
        _ => None,
    })
}

pub fn rules() -> Vec<Rule> {
    let (a, b, t) = (var("?a"), var("?b"), var("?t"));
    // op(c) → constant (exact, as the interpreter computes it); guard: c small, op foldable for its dtype.
    let mut fold_unary = Rule::named(F, "fold_unary");
    for u in [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Relu,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Tanh,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ] {
        fold_unary = fold_unary.or_custom(&format!("({} ?a)", u.name()), move |eg, s| {
            Some(Term::Const(fold::unary(u, value(eg, s, a)?)?))
        });
    }
    // c1 op c2 → constant (exact); guard: c1, c2 and the result small, op foldable (no integer div).
    let mut fold_binary = Rule::named(F, "fold_binary");
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
        fold_binary = fold_binary.or_custom(&format!("({} ?a ?b)", op.name()), move |eg, s| {
            Some(Term::Const(fold::binary(op, value(eg, s, a)?, value(eg, s, b)?)?))
        });
    }
    vec![
        fold_unary,
        fold_binary,
        // cast(c) → constant (exact, as SPEC's cast table); guard: c a small constant, no u64
        // side, and not a table of narrow integers widened (quantized weights stay 8-bit: a
        // quarter of the bytes, and what integer dot products read).
        Rule::custom(F, "fold_cast", "(cast ?t ?a)", move |eg: &EG, s: &Subst| {
            let Op::Cast { to } = attr(eg, s, t)? else { return None };
            let c = value(eg, s, a)?;
            let narrow = |d: DType| d.is_int() && d.size_bytes() <= 2;
            if narrow(c.dtype()) && to.is_int() && to.size_bytes() > c.dtype().size_bytes() && c.len() > WIDENED_TABLE {
                return None;
            }
            Some(Term::Const(fold::cast(c, *to)?))
        }),
        // reshape(c) → c reshaped (exact, bytes shared, any size); guard: a concrete target shape.
        Rule::custom(F, "fold_reshape", "(reshape ?t ?a)", move |eg: &EG, s: &Subst| {
            let Op::Reshape { shape } = attr(eg, s, t)? else { return None };
            let dims: Vec<usize> = shape.iter().map(|d| d.as_usize()).collect::<Option<_>>()?;
            Some(Term::Const(const_in(eg, *s.get(a)?)?.reshaped(dims)?))
        }),
        // transpose(c) → constant (exact); guard: c a small constant.
        Rule::custom(F, "fold_transpose", "(transpose ?t ?a)", move |eg: &EG, s: &Subst| {
            let Op::Transpose { perm } = attr(eg, s, t)? else { return None };
            Some(Term::Const(value(eg, s, a)?.transposed(perm)?))
        }),
    ]
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_not_applied, assert_rule};

    #[test]
    fn fold_unary() {
        assert_rule(
            "fold_unary",
            "graph g(%x: f32[2]) {
               %c: f32[2] = constant [4.0, -9.0]
               %a: f32[2] = abs(%c)
               %b: f32[2] = sqrt(%a)
               %y: f32[2] = mul(%x, %b)
               return %y
             }",
            &["constant [2.0, 3.0]", "%y: f32[2] = mul(%x, "],
        );
    }

    #[test]
    fn fold_binary() {
        assert_rule(
            "fold_binary",
            "graph g(%x: f32[2, 2]) {
               %c: f32[2, 1] = constant [1.0, 2.0]
               %d: f32[2] = constant [10.0, 20.0]
               %e: f32[2, 2] = add(%c, %d)
               %y: f32[2, 2] = mul(%x, %e)
               return %y
             }",
            &["constant [11.0, 21.0, 12.0, 22.0]", "%y: f32[2, 2] = mul(%x, "],
        );
        // Integer division is not folded here.
        assert_not_applied(
            "fold_binary",
            "graph g(%x: i32[2]) {
               %c: i32[] = constant [7]
               %d: i32[] = constant [2]
               %e: i32[] = div(%c, %d)
               %y: i32[2] = mul(%x, %e)
               return %y
             }",
        );
    }

    #[test]
    fn fold_cast() {
        assert_rule(
            "fold_cast",
            "graph g(%x: i32[2]) {
               %c: f32[2] = constant [2.7, -300.5]
               %d: i32[2] = cast(%c) {to = i32}
               %y: i32[2] = mul(%x, %d)
               return %y
             }",
            &["constant [2, -300]", "%y: i32[2] = mul(%x, "],
        );
    }

    #[test]
    fn fold_reshape() {
        assert_rule(
            "fold_reshape",
            "graph g(%x: f32[2, 2]) {
               %c: f32[4] = constant [1.0, 2.0, 3.0, 4.0]
               %d: f32[2, 2] = reshape(%c) {shape = [2, 2]}
               %y: f32[2, 2] = matmul(%x, %d)
               return %y
             }",
            &["%d: f32[2, 2] = constant [1.0, 2.0, 3.0, 4.0]", "%y: f32[2, 2] = matmul(%x, %d)"],
        );
    }

    #[test]
    fn fold_transpose() {
        assert_rule(
            "fold_transpose",
            "graph g(%x: f32[2, 2]) {
               %c: f32[2, 2] = constant [1.0, 2.0, 3.0, 4.0]
               %d: f32[2, 2] = transpose(%c) {perm = [1, 0]}
               %y: f32[2, 2] = matmul(%x, %d)
               return %y
             }",
            &["%d: f32[2, 2] = constant [1.0, 3.0, 2.0, 4.0]", "%y: f32[2, 2] = matmul(%x, %d)"],
        );
    }
}
