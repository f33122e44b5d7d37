//! Layout rules: transposes and reshapes that compose, cancel or become views, and data movement
//! that does nothing.
//!
//! A `reshape` is free in the cost model (a view of its operand's row-major elements), so a rule
//! that turns a `transpose` into a `reshape` removes a copy. The type gate (`rules/mod.rs`) is
//! the guard of the identity rules: `reshape(x) → x` applies exactly when the target shape is
//! `x`'s shape.

use super::{attr, class, var, Family, Rule, Term};
use crate::analysis::EG;
use egg::Subst;
use nnc_ir::{Op, UnaryOp};

const F: Family = Family::Layout;

/// The op bound to `?p`, if it is a transpose: its permutation.
fn perm<'a>(eg: &'a EG, s: &Subst, name: &str) -> Option<&'a [usize]> {
    match attr(eg, s, var(name))? {
        Op::Transpose { perm } => Some(perm),
        _ => None,
    }
}

pub fn rules() -> Vec<Rule> {
    let x = var("?x");
    // One alternative per elementwise unary op, to move transposes and reshapes through them.
    let mut transpose_unary = Rule::named(F, "transpose_unary");
    let mut reshape_unary = Rule::named(F, "reshape_unary");
    for u in UnaryOp::ALL {
        let name = u.name();
        transpose_unary =
            transpose_unary.or(&format!("(transpose ?p ({name} ?x))"), &format!("({name} (transpose ?p ?x))"));
        reshape_unary = reshape_unary.or(&format!("(reshape ?p ({name} ?x))"), &format!("({name} (reshape ?p ?x))"));
    }
    vec![
        // transpose(transpose(x) {q}) {p} → transpose(x) {r}, r[k] = q[p[k]] (exact); no guard.
        Rule::custom(F, "transpose_transpose", "(transpose ?p (transpose ?q ?x))", move |eg, s| {
            let (outer, inner) = (perm(eg, s, "?p")?, perm(eg, s, "?q")?);
            let composed: Vec<usize> = outer.iter().map(|&k| inner.get(k).copied()).collect::<Option<_>>()?;
            Some(Term::op(Op::Transpose { perm: composed }, vec![class(s, x)?]))
        }),
        // transpose(x) {perm = identity} → x (exact); guard: perm[k] = k.
        Rule::rewrite(F, "transpose_identity", "(transpose ?p ?x)", "?x")
            .when(|eg, s| perm(eg, s, "?p").is_some_and(|p| p.iter().enumerate().all(|(k, &a)| k == a))),
        // transpose(x) → reshape(x) (exact); guard: x's axes not known to be 1 keep their order.
        Rule::custom(F, "transpose_to_reshape", "(transpose ?p ?x)", move |eg, s| {
            let perm = perm(eg, s, "?p")?;
            let ty = &super::info(eg, s, x)?.ty;
            let moved: Vec<usize> =
                perm.iter().copied().filter(|&a| ty.shape.get(a).and_then(|d| d.as_const()) != Some(1)).collect();
            if !moved.windows(2).all(|w| w[0] < w[1]) {
                return None;
            }
            let shape = perm.iter().map(|&a| ty.shape.get(a).cloned()).collect::<Option<Vec<_>>>()?;
            Some(Term::op(Op::Reshape { shape }, vec![class(s, x)?]))
        }),
        // reshape(reshape(x)) {s} → reshape(x) {s} (exact: row-major order is kept); no guard.
        Rule::rewrite(F, "reshape_reshape", "(reshape ?s (reshape ?t ?x))", "(reshape ?s ?x)"),
        // reshape(x) {shape(x)} → x (exact); guard: the type gate (same shape).
        Rule::rewrite(F, "reshape_identity", "(reshape ?s ?x)", "?x"),
        // expand(x) → x (exact); guard: the type gate (the broadcast leaves x's shape).
        Rule::rewrite(F, "expand_identity", "(expand ?s ?x)", "?x"),
        // slice(x) → x (exact); guard: every step 1 and the same shape (so every axis whole).
        Rule::rewrite(F, "slice_identity", "(slice ?s ?x)", "?x").when(move |eg, s| {
            matches!(attr(eg, s, var("?s")), Some(Op::Slice { steps, .. }) if steps.iter().all(|&k| k == 1))
        }),
        // pad(x) {pads = 0..} → x (exact, any mode); guard: every pad is 0.
        Rule::rewrite(F, "pad_zero", "(pad ?s ?x)", "?x")
            .when(|eg, s| match attr(eg, s, var("?s")) {
                Some(Op::Pad { pads, .. }) => pads.iter().all(|&k| k == 0),
                _ => false,
            }),
        // concat(x) → x (exact); no guard (one operand).
        Rule::rewrite(F, "concat_single", "(concat ?s ?x)", "?x"),
        // transpose(u(x)) → u(transpose(x)) for elementwise unary u (exact); no guard.
        transpose_unary,
        // reshape(u(x)) → u(reshape(x)) for elementwise unary u (exact); no guard.
        reshape_unary,
        // reshape(transpose(x) {p}) {[1]*j ++ shape} → transpose(reshape(x) {[1]*j ++ shape(x)}) {0..j ++ p+j}
        // (exact: new leading axes of length 1 commute with the transpose); guard: only ones prepended.
        Rule::custom(F, "unsqueeze_transpose", "(reshape ?s (transpose ?p ?x))", move |eg, s| {
            let Op::Reshape { shape: target } = attr(eg, s, var("?s"))? else { return None };
            let p = perm(eg, s, "?p")?;
            let xs = &super::info(eg, s, x)?.ty.shape;
            let j = target.len().checked_sub(p.len()).filter(|&j| j > 0)?;
            let one = nnc_ir::Dim::from(1);
            if !target[..j].iter().all(|d| *d == one) {
                return None;
            }
            let transposed: Vec<_> = p.iter().map(|&a| xs.get(a).cloned()).collect::<Option<_>>()?;
            if target[j..] != transposed[..] {
                return None;
            }
            let mut shape = vec![one; j];
            shape.extend(xs.iter().cloned());
            let perm: Vec<usize> = (0..j).chain(p.iter().map(|&a| a + j)).collect();
            let r = Term::op(Op::Reshape { shape }, vec![class(s, x)?]);
            Some(Term::op(Op::Transpose { perm }, vec![r]))
        }),
    ]
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_not_applied, assert_rule};

    #[test]
    fn transpose_transpose() {
        assert_rule(
            "transpose_transpose",
            "graph g(%x: f32[2, 3, 4]) {
               %a: f32[3, 4, 2] = transpose(%x) {perm = [1, 2, 0]}
               %b: f32[4, 2, 3] = transpose(%a) {perm = [1, 2, 0]}
               return %b
             }",
            &["%b: f32[4, 2, 3] = transpose(%x) {perm = [2, 0, 1]}"],
        );
    }

    #[test]
    fn transpose_identity() {
        assert_rule(
            "transpose_identity",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = transpose(%x) {perm = [0, 1]}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
    }

    #[test]
    fn transpose_to_reshape() {
        assert_rule(
            "transpose_to_reshape",
            "graph g(%x: f32[32, 1, 128]) {
               %a: f32[1, 32, 128] = transpose(%x) {perm = [1, 0, 2]}
               return %a
             }",
            &["%a: f32[1, 32, 128] = reshape(%x) {shape = [1, 32, 128]}"],
        );
        assert_not_applied(
            "transpose_to_reshape",
            "graph g(%x: f32[n, 2, 3]) {
               %a: f32[n, 3, 2] = transpose(%x) {perm = [0, 2, 1]}
               return %a
             }",
        );
    }

    #[test]
    fn reshape_reshape() {
        assert_rule(
            "reshape_reshape",
            "graph g(%x: f32[b, 6]) {
               %a: f32[b, 2, 3] = reshape(%x) {shape = [b, 2, 3]}
               %c: f32[3, b, 2] = reshape(%a) {shape = [3, b, 2]}
               return %c
             }",
            &["%c: f32[3, b, 2] = reshape(%x) {shape = [3, b, 2]}"],
        );
    }

    #[test]
    fn reshape_identity() {
        assert_rule(
            "reshape_identity",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = reshape(%x) {shape = [2, 3]}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
    }

    #[test]
    fn expand_identity() {
        assert_rule(
            "expand_identity",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = expand(%x) {shape = [1, 3]}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
        assert_not_applied(
            "expand_identity",
            "graph g(%x: f32[1, 3]) {
               %a: f32[2, 3] = expand(%x) {shape = [2, 3]}
               return %a
             }",
        );
    }

    #[test]
    fn slice_identity() {
        assert_rule(
            "slice_identity",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = slice(%x) {axes = [1], starts = [0], ends = [9223372036854775807], steps = [1]}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
        // Reversing keeps the shape but not the order.
        assert_not_applied(
            "slice_identity",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = slice(%x) {axes = [1], starts = [-1], ends = [-9223372036854775808], steps = [-1]}
               return %a
             }",
        );
    }

    #[test]
    fn pad_zero() {
        assert_rule(
            "pad_zero",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = pad(%x) {pads = [0, 0, 0, 0], mode = reflect, value = 0.0}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
    }

    #[test]
    fn concat_single() {
        assert_rule(
            "concat_single",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = concat(%x) {axis = 1}
               %b: f32[2, 3] = exp(%a)
               return %b
             }",
            &["%b: f32[2, 3] = exp(%x)"],
        );
    }

    #[test]
    fn unsqueeze_transpose() {
        assert_rule(
            "unsqueeze_transpose",
            "graph g(%x: f32[4, 8, 3]) {
               %t: f32[4, 3, 8] = transpose(%x) {perm = [0, 2, 1]}
               %u: f32[1, 4, 3, 8] = reshape(%t) {shape = [1, 4, 3, 8]}
               return %u
             }",
            &["= reshape(%x) {shape = [1, 4, 8, 3]}", "%u: f32[1, 4, 3, 8] = transpose("],
        );
        // Merging axes is not an unsqueeze.
        assert_not_applied(
            "unsqueeze_transpose",
            "graph g(%x: f32[4, 8, 3]) {
               %t: f32[4, 3, 8] = transpose(%x) {perm = [0, 2, 1]}
               %u: f32[12, 8] = reshape(%t) {shape = [12, 8]}
               return %u
             }",
        );
    }

    #[test]
    fn transpose_unary() {
        assert_rule(
            "transpose_unary",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = exp(%x)
               %b: f32[3, 2] = transpose(%a) {perm = [1, 0]}
               return %b
             }",
            &["= transpose(%x) {perm = [1, 0]}", "%b: f32[3, 2] = exp("],
        );
    }

    #[test]
    fn reshape_unary() {
        assert_rule(
            "reshape_unary",
            "graph g(%x: f32[2, 3]) {
               %a: f32[2, 3] = exp(%x)
               %b: f32[6] = reshape(%a) {shape = [6]}
               return %b
             }",
            &["= reshape(%x) {shape = [6]}", "%b: f32[6] = exp("],
        );
    }
}
