//! Contractions: scalars move out of matmuls (where they meet and fold with other scalars), and
//! per-channel scales and inference batch norms fold into convolution weights.
//!
//! Folding into weights makes a new weight tensor (the old one is dropped if nothing else uses
//! it); it is bounded to `MAX_NEW_WEIGHTS` elements so that memory stays bounded too.

use super::{class, info, is_float, is_single, value, var, Family, Rule, Term};
use crate::analysis::EG;
use crate::fold;
use crate::lang::Head;
use egg::{Id, Subst};
use nnc_ir::{BinaryOp, Op, TensorData};

const F: Family = Family::MatmulConv;

/// The largest weight tensor a rule computes anew.
pub const MAX_NEW_WEIGHTS: usize = 1 << 24;

/// The constant (of any size) in e-class `id`.
fn const_in(eg: &EG, id: Id) -> Option<&TensorData> {
    eg[id].nodes.iter().find_map(|n| match n.head {
        Head::Const(k) => eg.analysis.consts.get(k),
        _ => None,
    })
}

/// The per-channel factors of a constant `c` multiplied into a conv result of rank `rank` with
/// `m` channels (axis 1): `c` must be a scalar or `[m, 1, ..]` aligned with axis 1.
fn channel_values(c: &TensorData, rank: usize, m: usize) -> Option<Vec<f64>> {
    let rc = c.shape().len();
    if rc > rank {
        return None;
    }
    for (i, &d) in c.shape().iter().enumerate() {
        let axis = i + rank - rc;
        if d != 1 && !(axis == 1 && d == m) {
            return None;
        }
    }
    let vals = c.to_f64_vec();
    match vals.len() {
        1 => Some(vec![vals[0]; m]),
        n if n == m => Some(vals),
        _ => None,
    }
}

/// The conv weights bound to `?w` and their output channel count, if a constant of bounded size.
fn weights<'a>(eg: &'a EG, s: &Subst) -> Option<(&'a TensorData, usize)> {
    let w = const_in(eg, *s.get(var("?w"))?)?;
    (w.len() <= MAX_NEW_WEIGHTS).then_some(())?;
    Some((w, *w.shape().first()?))
}

pub fn rules() -> Vec<Rule> {
    let (x, c) = (var("?x"), var("?c"));
    vec![
        // matmul(x * c, y) → matmul(x, y) * c (ints exact, floats up to rounding); guard: c's dims all 1.
        Rule::rewrite(F, "matmul_scalar_left", "(matmul (mul ?x ?c) ?y)", "(mul (matmul ?x ?y) ?c)")
            .when(is_single("?c")),
        // matmul(x, y * c) → matmul(x, y) * c; guard as `matmul_scalar_left`.
        Rule::rewrite(F, "matmul_scalar_right", "(matmul ?x (mul ?y ?c))", "(mul (matmul ?x ?y) ?c)")
            .when(is_single("?c")),
        // conv(x, w) * c → conv(x, w·c[m]) (up to rounding); guard: float, w constant, c per channel.
        Rule::custom(F, "conv_mul_const", "(mul (conv ?a ?x ?w) ?c)", move |eg, s| {
            let (w, m) = weights(eg, s)?;
            let rank = info(eg, s, x)?.ty.rank();
            let scale = channel_values(value(eg, s, c)?, rank, m)?;
            let attr = class(s, var("?a"))?;
            Some(Term::Node(Head::Op("conv"), vec![attr, class(s, x)?, Term::Const(fold::scale_channels(w, &scale)?)]))
        })
        .when(is_float("?x")),
        // bn(conv(x, w)) → conv(x, w·k[m]) + (b - mean·k), k = s/√(var+ε); guard: float, constants.
        Rule::custom(
            F,
            "batch_norm_into_conv",
            "(batch_norm ?e (conv ?a ?x ?w) ?scale ?bias ?mean ?var)",
            move |eg, s| {
                let Op::BatchNorm { epsilon } = super::attr(eg, s, var("?e"))? else { return None };
                let (w, m) = weights(eg, s)?;
                let p = |n: &str| value(eg, s, var(n)).map(TensorData::to_f64_vec).filter(|v| v.len() == m);
                let (scale, bias, mean, var_) = (p("?scale")?, p("?bias")?, p("?mean")?, p("?var")?);
                let k: Vec<f64> = scale.iter().zip(&var_).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
                let shift: Vec<f64> = (0..m).map(|i| bias[i] - mean[i] * k[i]).collect();
                let rank = info(eg, s, x)?.ty.rank();
                let dtype = info(eg, s, x)?.ty.dtype;
                let mut shape = vec![m];
                shape.resize(rank.checked_sub(1)?, 1);
                let conv = Term::Node(
                    Head::Op("conv"),
                    vec![class(s, var("?a"))?, class(s, x)?, Term::Const(fold::scale_channels(w, &k)?)],
                );
                Some(Term::op(
                    Op::Binary(BinaryOp::Add),
                    vec![conv, Term::Const(TensorData::from_f64(dtype, shape, &shift))],
                ))
            },
        )
        .when(is_float("?x")),
    ]
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_not_applied, assert_rule};

    #[test]
    fn matmul_scalar_left() {
        assert_rule(
            "matmul_scalar_left",
            "graph g(%x: f32[2, 3], %y: f32[3, 4]) {
               %c: f32[1] = constant [0.5]
               %a: f32[2, 3] = mul(%x, %c)
               %b: f32[2, 4] = matmul(%a, %y)
               return %b
             }",
            &["= matmul(%x, %y)", "%b: f32[2, 4] = mul("],
        );
        // A per-column factor does not commute with the contraction.
        assert_not_applied(
            "matmul_scalar_left",
            "graph g(%x: f32[2, 3], %y: f32[3, 4]) {
               %c: f32[3] = constant [0.5, 1.0, 2.0]
               %a: f32[2, 3] = mul(%x, %c)
               %b: f32[2, 4] = matmul(%a, %y)
               return %b
             }",
        );
    }

    #[test]
    fn matmul_scalar_right() {
        assert_rule(
            "matmul_scalar_right",
            "graph g(%x: f32[5, 2, 3], %y: f32[3, 4]) {
               %c: f32[] = constant [0.5]
               %a: f32[3, 4] = mul(%y, %c)
               %b: f32[5, 2, 4] = matmul(%x, %a)
               return %b
             }",
            &["= matmul(%x, %y)", "%b: f32[5, 2, 4] = mul("],
        );
    }

    #[test]
    fn conv_mul_const() {
        assert_rule(
            "conv_mul_const",
            "graph g(%x: f32[1, 1, 3, 3]) {
               %w: f32[2, 1, 1, 1] = constant [1.0, 2.0]
               %a: f32[1, 2, 3, 3] = conv(%x, %w) {strides = [1, 1], dilations = [1, 1], pads = [0, 0, 0, 0], groups = 1}
               %c: f32[2, 1, 1] = constant [3.0, 5.0]
               %b: f32[1, 2, 3, 3] = mul(%a, %c)
               return %b
             }",
            &["constant [3.0, 10.0]", "%b: f32[1, 2, 3, 3] = conv(%x, "],
        );
        assert_not_applied(
            "conv_mul_const",
            "graph g(%x: f32[1, 1, 3, 3]) {
               %w: f32[2, 1, 1, 1] = constant [1.0, 2.0]
               %a: f32[1, 2, 3, 3] = conv(%x, %w) {strides = [1, 1], dilations = [1, 1], pads = [0, 0, 0, 0], groups = 1}
               %c: f32[3] = constant [3.0, 5.0, 7.0]
               %b: f32[1, 2, 3, 3] = mul(%a, %c)
               return %b
             }",
        );
    }

    #[test]
    fn batch_norm_into_conv() {
        assert_rule(
            "batch_norm_into_conv",
            "graph g(%x: f32[1, 1, 2, 2]) {
               %w: f32[2, 1, 1, 1] = constant [1.0, 2.0]
               %a: f32[1, 2, 2, 2] = conv(%x, %w) {strides = [1, 1], dilations = [1, 1], pads = [0, 0, 0, 0], groups = 1}
               %s: f32[2] = constant [2.0, 3.0]
               %bi: f32[2] = constant [1.0, -1.0]
               %m: f32[2] = constant [0.5, 0.25]
               %v: f32[2] = constant [4.0, 1.0]
               %b: f32[1, 2, 2, 2] = batch_norm(%a, %s, %bi, %m, %v) {epsilon = 0.0}
               return %b
             }",
            &["constant [1.0, 6.0]", "constant [0.5, -1.75]", "%b: f32[1, 2, 2, 2] = add("],
        );
    }
}
