//! Composite recognition: spelled-out softmax, log-softmax, layer norm and GELU become the
//! composite op, which later stages run as one fused kernel (and the cost model prices so).
//!
//! A composite means its expansion (`nnc_ir::composite`), so recognising the exact expansion is
//! exact. Other spellings (dividing by `sqrt(2)` instead of multiplying by `1/sqrt(2)`, `/ sqrt`
//! instead of `* rsqrt`) agree up to rounding. Constants must be the composite's constants to the
//! precision of their dtype.

use super::{attr, class, info, uniform, var, Family, Rule, Term};
use crate::analysis::EG;
use egg::Subst;
use nnc_ir::{DType, GeluApprox, Op, ReduceKind};

const F: Family = Family::Composite;

/// `v` is `target` up to the rounding of a constant of `dtype`.
fn approx(v: f64, target: f64, dtype: DType) -> bool {
    let tol = match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
        _ => return false,
    };
    (v - target).abs() <= tol * target.abs()
}

/// The constant bound to `name` is a single value (`[]`, `[1]`, ...) equal to `target` up to
/// its dtype's rounding.
fn const_is(eg: &EG, s: &Subst, name: &str, target: f64) -> bool {
    let v = var(name);
    let single = info(eg, s, v).is_some_and(|i| i.ty.shape.iter().all(|d| d.as_const() == Some(1)));
    let dtype = info(eg, s, v).map(|i| i.ty.dtype);
    single && matches!((uniform(eg, s, v), dtype), (Some(x), Some(d)) if approx(x, target, d))
}

/// The single axis of a keep-dims reduction of kind `kind` bound to `name`.
fn reduce_axis(eg: &EG, s: &Subst, name: &str, kind: ReduceKind) -> Option<usize> {
    match attr(eg, s, var(name))? {
        Op::Reduce { kind: k, axes, keep_dims: true } if *k == kind && axes.len() == 1 => Some(axes[0]),
        _ => None,
    }
}

pub fn rules() -> Vec<Rule> {
    let x = var("?x");
    let sqrt2 = std::f64::consts::SQRT_2;

    // gelu {none}: x · 0.5 · (erf(x / √2) + 1), in the orders exporters write it.
    let mut gelu_erf = Rule::named(F, "gelu_erf");
    for (arg, s) in [("(div ?x ?s)", sqrt2), ("(mul ?x ?s)", 1.0 / sqrt2)] {
        let e = format!("(add (erf {arg}) ?one)");
        for lhs in [
            format!("(mul ?x (mul {e} ?h))"),
            format!("(mul ?x (mul ?h {e}))"),
            format!("(mul (mul ?x ?h) {e})"),
            format!("(mul (mul ?x {e}) ?h)"),
            format!("(mul (mul {e} ?h) ?x)"),
        ] {
            gelu_erf = gelu_erf.or_custom(&lhs, move |eg, st| {
                let ok = const_is(eg, st, "?s", s) && const_is(eg, st, "?h", 0.5) && const_is(eg, st, "?one", 1.0);
                ok.then(|| Term::op(Op::Gelu { approximate: GeluApprox::None }, vec![Term::Class(st[x])]))
            });
        }
    }

    // gelu {tanh}: x · 0.5 · (tanh(√(2/π) · (x + 0.044715 · x³)) + 1), x³ as x·x·x or pow(x, 3).
    let mut gelu_tanh = Rule::named(F, "gelu_tanh");
    for cube in ["(mul (mul ?x ?x) ?x)", "(pow ?x ?three)"] {
        let t = format!("(add (tanh (mul (add ?x (mul {cube} ?k)) ?r)) ?one)");
        let uses_pow = cube.starts_with("(pow");
        for lhs in
            [format!("(mul (mul ?x ?h) {t})"), format!("(mul ?x (mul {t} ?h))"), format!("(mul (mul {t} ?h) ?x)")]
        {
            gelu_tanh = gelu_tanh.or_custom(&lhs, move |eg, st| {
                let ok = const_is(eg, st, "?h", 0.5)
                    && const_is(eg, st, "?one", 1.0)
                    && const_is(eg, st, "?k", 0.044715)
                    && const_is(eg, st, "?r", (2.0 / std::f64::consts::PI).sqrt())
                    && (!uses_pow || const_is(eg, st, "?three", 3.0));
                ok.then(|| Term::op(Op::Gelu { approximate: GeluApprox::Tanh }, vec![Term::Class(st[x])]))
            });
        }
    }

    // The exact expansions of softmax and log_softmax.
    let shifted = "(sub ?x (reduce_max ?a ?x))";
    let sum = format!("(reduce_sum ?b (exp {shifted}))");
    let softmax_like = move |log: bool| {
        move |eg: &EG, s: &Subst| {
            let k = reduce_axis(eg, s, "?a", ReduceKind::Max)?;
            (reduce_axis(eg, s, "?b", ReduceKind::Sum)? == k).then_some(())?;
            let op = if log { Op::LogSoftmax { axis: k } } else { Op::Softmax { axis: k } };
            Some(Term::op(op, vec![class(s, x)?]))
        }
    };

    // layer_norm: (x - mean) · rsqrt(var + ε) · scale + bias, and spellings with / sqrt and pow.
    let centered = "(sub ?x (reduce_mean ?a ?x))";
    let mut layer_norm = Rule::named(F, "layer_norm_expansion");
    for (square, norm) in [
        (format!("(mul {centered} {centered})"), "rsqrt"),
        (format!("(mul {centered} {centered})"), "sqrt"),
        (format!("(pow {centered} ?two)"), "sqrt"),
    ] {
        let var_eps = format!("(add (reduce_mean ?a {square}) ?eps)");
        let normed = if norm == "rsqrt" {
            format!("(mul {centered} (rsqrt {var_eps}))")
        } else {
            format!("(div {centered} (sqrt {var_eps}))")
        };
        let uses_pow = square.starts_with("(pow");
        layer_norm = layer_norm.or_custom(&format!("(add (mul {normed} ?scale) ?bias)"), move |eg, s| {
            let Op::Reduce { kind: ReduceKind::Mean, axes, keep_dims: true } = attr(eg, s, var("?a"))? else {
                return None;
            };
            let rank = info(eg, s, x)?.ty.rank();
            let axis = *axes.first()?;
            // The axes must be axis..rank, in order.
            (axes.iter().enumerate().all(|(i, &a)| a == axis + i) && axis + axes.len() == rank).then_some(())?;
            if uses_pow && !const_is(eg, s, "?two", 2.0) {
                return None;
            }
            let eps_ty = info(eg, s, var("?eps"))?;
            eps_ty.ty.shape.iter().all(|d| d.as_const() == Some(1)).then_some(())?;
            let epsilon = uniform(eg, s, var("?eps"))?;
            let args = vec![class(s, x)?, class(s, var("?scale"))?, class(s, var("?bias"))?];
            Some(Term::op(Op::LayerNorm { axis, epsilon }, args))
        });
    }

    // attention: matmul(softmax(matmul(q, kᵀ) · σ), v), with an additive mask or without.
    let scores = "(mul (matmul ?q (transpose ?p ?k)) ?s)";
    let attention_like = move |masked: bool| {
        move |eg: &EG, s: &Subst| {
            let Op::Transpose { perm } = attr(eg, s, var("?p"))? else { return None };
            let r = perm.len();
            // transpose(k) {perm} is transpose(k') with its last two axes swapped, where
            // k' = transpose(k) {perm with its last two entries swapped} (k itself if that is the
            // identity).
            let mut inner = perm.clone();
            inner.swap(r.checked_sub(2)?, r - 1);
            let rank = info(eg, s, var("?v"))?.ty.rank().max(info(eg, s, var("?q"))?.ty.rank());
            let softmax_last = matches!(attr(eg, s, var("?sa"))?, Op::Softmax { axis } if *axis + 1 == rank);
            let single = info(eg, s, var("?s"))?.ty.shape.iter().all(|d| d.as_const() == Some(1));
            (softmax_last && single).then_some(())?;
            let scale = uniform(eg, s, var("?s"))?;
            let k = if inner.iter().enumerate().all(|(i, &a)| i == a) {
                class(s, var("?k"))?
            } else {
                Term::op(Op::Transpose { perm: inner }, vec![class(s, var("?k"))?])
            };
            let mut args = vec![class(s, var("?q"))?, k, class(s, var("?v"))?];
            if masked {
                args.push(class(s, var("?mask"))?);
            }
            Some(Term::op(Op::Attention { scale: Some(scale), causal: false }, args))
        }
    };
    let attention = Rule::named(F, "attention_expansion")
        .or_custom(&format!("(matmul (softmax ?sa {scores}) ?v)"), attention_like(false))
        .or_custom(&format!("(matmul (softmax ?sa (add {scores} ?mask)) ?v)"), attention_like(true));

    vec![
        // softmax(q·transpose(k)·σ [+ m])·v → attention(q, k', v [, m]) {scale = σ} (exact: the expansion);
        // guard: softmax over the last axis, σ a single constant; k' = transpose(k) with the last two swapped.
        attention,
        // x·0.5·(erf(x/√2) + 1) → gelu(x) {none} (up to rounding); guard: single constants 0.5, 1, √2.
        gelu_erf,
        // x·0.5·(tanh(√(2/π)·(x + 0.044715·x³)) + 1) → gelu(x) {tanh}; guard: those single constants.
        gelu_tanh,
        // exp(x - max(x)) / sum(exp(x - max(x))) → softmax(x) (exact); guard: one axis, keep dims.
        Rule::custom(F, "softmax_expansion", &format!("(div (exp {shifted}) {sum})"), softmax_like(false)),
        // exp(x) / sum(exp(x)) → softmax(x) (where the left side is finite); guard: one axis, keep dims.
        Rule::custom(F, "softmax_naive", "(div (exp ?x) (reduce_sum ?b (exp ?x)))", move |eg, s| {
            let k = reduce_axis(eg, s, "?b", ReduceKind::Sum)?;
            Some(Term::op(Op::Softmax { axis: k }, vec![class(s, x)?]))
        }),
        // 1 / (1 + exp(-x)) → sigmoid(x) (up to rounding); guard: the constants are single ones.
        Rule::named(F, "sigmoid_expansion")
            .or("(div ?one (add (exp (neg ?x)) ?one2))", "(sigmoid ?x)")
            .or("(reciprocal (add (exp (neg ?x)) ?one2))", "(sigmoid ?x)")
            .when(|eg, s| {
                (s.get(var("?one")).is_none() || const_is(eg, s, "?one", 1.0)) && const_is(eg, s, "?one2", 1.0)
            }),
        // 1 / sqrt(x) → rsqrt(x) (up to rounding); guard: the numerator is a single constant 1.
        Rule::named(F, "rsqrt_expansion")
            .or("(div ?one (sqrt ?x))", "(rsqrt ?x)")
            .or("(reciprocal (sqrt ?x))", "(rsqrt ?x)")
            .when(|eg, s| s.get(var("?one")).is_none() || const_is(eg, s, "?one", 1.0)),
        // (x - max(x)) - log(sum(exp(x - max(x)))) → log_softmax(x) (exact); guard: one axis, keep dims.
        Rule::custom(F, "log_softmax_expansion", &format!("(sub {shifted} (log {sum}))"), softmax_like(true)),
        // (x-μ)·rsqrt(mean((x-μ)²)+ε)·g + b → layer_norm(x, g, b); guard: means over axis..rank, ε single.
        layer_norm,
    ]
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_not_applied, assert_rule};

    #[test]
    fn gelu_erf() {
        // As torch exports it.
        assert_rule(
            "gelu_erf",
            "graph g(%x: f32[2, 8]) {
               %s: f32[] = constant [1.4142135]
               %one: f32[] = constant [1.0]
               %h: f32[] = constant [0.5]
               %a: f32[2, 8] = div(%x, %s)
               %b: f32[2, 8] = erf(%a)
               %c: f32[2, 8] = add(%b, %one)
               %d: f32[2, 8] = mul(%h, %c)
               %y: f32[2, 8] = mul(%x, %d)
               return %y
             }",
            &["%y: f32[2, 8] = gelu(%x) {approximate = none}"],
        );
        // A different constant is a different function.
        assert_not_applied(
            "gelu_erf",
            "graph g(%x: f32[2, 8]) {
               %s: f32[] = constant [1.5]
               %one: f32[] = constant [1.0]
               %h: f32[] = constant [0.5]
               %a: f32[2, 8] = div(%x, %s)
               %b: f32[2, 8] = erf(%a)
               %c: f32[2, 8] = add(%b, %one)
               %d: f32[2, 8] = mul(%h, %c)
               %y: f32[2, 8] = mul(%x, %d)
               return %y
             }",
        );
    }

    #[test]
    fn gelu_tanh() {
        // The IR's own expansion of gelu {tanh}.
        assert_rule(
            "gelu_tanh",
            "graph g(%x: f32[4]) {
               %x2: f32[4] = mul(%x, %x)
               %x3: f32[4] = mul(%x2, %x)
               %k: f32[] = constant [0.044715]
               %c: f32[4] = mul(%x3, %k)
               %s: f32[4] = add(%x, %c)
               %r: f32[] = constant [0.7978846]
               %t: f32[4] = mul(%s, %r)
               %th: f32[4] = tanh(%t)
               %one: f32[] = constant [1.0]
               %o: f32[4] = add(%th, %one)
               %h: f32[] = constant [0.5]
               %hx: f32[4] = mul(%x, %h)
               %y: f32[4] = mul(%hx, %o)
               return %y
             }",
            &["%y: f32[4] = gelu(%x) {approximate = tanh}"],
        );
    }

    #[test]
    fn softmax_naive() {
        assert_rule(
            "softmax_naive",
            "graph g(%x: f32[2, 5]) {
               %e: f32[2, 5] = exp(%x)
               %s: f32[2, 1] = reduce_sum(%e) {axes = [1], keep_dims = true}
               %y: f32[2, 5] = div(%e, %s)
               return %y
             }",
            &["%y: f32[2, 5] = softmax(%x) {axis = 1}"],
        );
    }

    #[test]
    fn sigmoid_expansion() {
        assert_rule(
            "sigmoid_expansion",
            "graph g(%x: f32[3]) {
               %n: f32[3] = neg(%x)
               %e: f32[3] = exp(%n)
               %one: f32[] = constant [1.0]
               %d: f32[3] = add(%e, %one)
               %y: f32[3] = div(%one, %d)
               return %y
             }",
            &["%y: f32[3] = sigmoid(%x)"],
        );
        assert_not_applied(
            "sigmoid_expansion",
            "graph g(%x: f32[3]) {
               %n: f32[3] = neg(%x)
               %e: f32[3] = exp(%n)
               %one: f32[] = constant [1.0]
               %two: f32[] = constant [2.0]
               %d: f32[3] = add(%e, %two)
               %y: f32[3] = div(%one, %d)
               return %y
             }",
        );
    }

    #[test]
    fn rsqrt_expansion() {
        assert_rule(
            "rsqrt_expansion",
            "graph g(%x: f32[3]) {
               %s: f32[3] = sqrt(%x)
               %y: f32[3] = reciprocal(%s)
               return %y
             }",
            &["%y: f32[3] = rsqrt(%x)"],
        );
    }

    #[test]
    fn attention_expansion() {
        assert_rule(
            "attention_expansion",
            "graph g(%q: f32[2, 4, 8], %k: f32[2, 5, 8], %v: f32[2, 5, 3], %m: f32[4, 5]) {
               %kt: f32[2, 8, 5] = transpose(%k) {perm = [0, 2, 1]}
               %s: f32[2, 4, 5] = matmul(%q, %kt)
               %c: f32[] = constant [0.35355338]
               %ss: f32[2, 4, 5] = mul(%s, %c)
               %sm: f32[2, 4, 5] = add(%ss, %m)
               %p: f32[2, 4, 5] = softmax(%sm) {axis = 2}
               %y: f32[2, 4, 3] = matmul(%p, %v)
               return %y
             }",
            &["%y: f32[2, 4, 3] = attention(%q, %k, %v, %m) {scale = 0.3535533845424652, causal = false}"],
        );
        // Softmax over the query axis is something else.
        assert_not_applied(
            "attention_expansion",
            "graph g(%q: f32[2, 4, 8], %k: f32[2, 4, 8], %v: f32[2, 4, 3]) {
               %kt: f32[2, 8, 4] = transpose(%k) {perm = [0, 2, 1]}
               %s: f32[2, 4, 4] = matmul(%q, %kt)
               %c: f32[] = constant [0.35355338]
               %ss: f32[2, 4, 4] = mul(%s, %c)
               %p: f32[2, 4, 4] = softmax(%ss) {axis = 1}
               %y: f32[2, 4, 3] = matmul(%p, %v)
               return %y
             }",
        );
    }

    #[test]
    fn softmax_expansion() {
        assert_rule(
            "softmax_expansion",
            "graph g(%x: f32[2, 5]) {
               %m: f32[2, 1] = reduce_max(%x) {axes = [1], keep_dims = true}
               %d: f32[2, 5] = sub(%x, %m)
               %e: f32[2, 5] = exp(%d)
               %s: f32[2, 1] = reduce_sum(%e) {axes = [1], keep_dims = true}
               %y: f32[2, 5] = div(%e, %s)
               return %y
             }",
            &["%y: f32[2, 5] = softmax(%x) {axis = 1}"],
        );
        assert_not_applied(
            "softmax_expansion",
            "graph g(%x: f32[2, 5]) {
               %m: f32[1, 5] = reduce_max(%x) {axes = [0], keep_dims = true}
               %d: f32[2, 5] = sub(%x, %m)
               %e: f32[2, 5] = exp(%d)
               %s: f32[2, 1] = reduce_sum(%e) {axes = [1], keep_dims = true}
               %y: f32[2, 5] = div(%e, %s)
               return %y
             }",
        );
    }

    #[test]
    fn log_softmax_expansion() {
        assert_rule(
            "log_softmax_expansion",
            "graph g(%x: f32[2, 5]) {
               %m: f32[2, 1] = reduce_max(%x) {axes = [1], keep_dims = true}
               %d: f32[2, 5] = sub(%x, %m)
               %e: f32[2, 5] = exp(%d)
               %s: f32[2, 1] = reduce_sum(%e) {axes = [1], keep_dims = true}
               %l: f32[2, 1] = log(%s)
               %y: f32[2, 5] = sub(%d, %l)
               return %y
             }",
            &["%y: f32[2, 5] = log_softmax(%x) {axis = 1}"],
        );
    }

    #[test]
    fn layer_norm_expansion() {
        assert_rule(
            "layer_norm_expansion",
            "graph g(%x: f32[2, 3, 4], %g: f32[4], %b: f32[4]) {
               %m: f32[2, 3, 1] = reduce_mean(%x) {axes = [2], keep_dims = true}
               %c: f32[2, 3, 4] = sub(%x, %m)
               %sq: f32[2, 3, 4] = mul(%c, %c)
               %v: f32[2, 3, 1] = reduce_mean(%sq) {axes = [2], keep_dims = true}
               %eps: f32[] = constant [1e-5]
               %ve: f32[2, 3, 1] = add(%v, %eps)
               %r: f32[2, 3, 1] = rsqrt(%ve)
               %n: f32[2, 3, 4] = mul(%c, %r)
               %s: f32[2, 3, 4] = mul(%n, %g)
               %y: f32[2, 3, 4] = add(%s, %b)
               return %y
             }",
            &["%y: f32[2, 3, 4] = layer_norm(%x, %g, %b) {axis = 2, epsilon = 9.999999747378752e-6}"],
        );
        // Normalising over the middle axis only is not a layer norm.
        assert_not_applied(
            "layer_norm_expansion",
            "graph g(%x: f32[2, 3, 4], %g: f32[3, 1], %b: f32[3, 1]) {
               %m: f32[2, 1, 4] = reduce_mean(%x) {axes = [1], keep_dims = true}
               %c: f32[2, 3, 4] = sub(%x, %m)
               %sq: f32[2, 3, 4] = mul(%c, %c)
               %v: f32[2, 1, 4] = reduce_mean(%sq) {axes = [1], keep_dims = true}
               %eps: f32[] = constant [1e-5]
               %ve: f32[2, 1, 4] = add(%v, %eps)
               %r: f32[2, 1, 4] = rsqrt(%ve)
               %n: f32[2, 3, 4] = mul(%c, %r)
               %s: f32[2, 3, 4] = mul(%n, %g)
               %y: f32[2, 3, 4] = add(%s, %b)
               return %y
             }",
        );
    }
}
