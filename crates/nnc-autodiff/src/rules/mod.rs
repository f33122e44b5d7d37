//! Gradient rules, one module per op family, reached through the one exhaustive `match` in
//! [`rule`] (no wildcard arm: a new [`Op`] variant does not compile until it is listed here).
//!
//! A rule receives a node, the adjoints of its results (`None`: no gradient reaches that result)
//! and which operands need a gradient, and appends backward nodes returning one adjoint per
//! operand (`None`: zero).
//!
//! # Ops with a gradient rule
//!
//! | family | ops | rule |
//! |---|---|---|
//! | elementwise | `neg abs relu exp log sqrt rsqrt reciprocal sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh sigmoid erf` | the derivative; `abs` and `relu` use 0 at 0 |
//! | | `add sub mul div rem pow` | broadcasting undone by `reduce_sum` + `reshape`; `pow`'s exponent gradient is `y·log(a)` where `a > 0` and 0 elsewhere; `rem`'s divisor gradient is `-trunc(a/b)` |
//! | | `max min` | **ties go to the first operand** (`a >= b` for max, `a <= b` for min) |
//! | | `select` | to the chosen side; the condition has none |
//! | | `cast` float → float | cast back |
//! | reduce | `reduce_sum reduce_mean` | broadcast back (mean divides by the count) |
//! | | `reduce_max reduce_min` | **ties share the gradient equally** |
//! | | `reduce_prod` | product of the other elements (exclusive cumulative products from both ends, exact with zeros) |
//! | | `cumulative` sum | a cumulative sum running the other way |
//! | | `cumulative` prod | `cumsum_reversed(g·y) / x` (not defined where `x` has a zero) |
//! | | `topk` values | `scatter_elements(add)` to the selected positions |
//! | linalg | `matmul` | `g·bᵀ`, `aᵀ·g`, with 1-D promotion and batch broadcasting undone |
//! | | `conv` | input: `conv_transpose(g, w)` (same window and groups, `output_padding` making the size exact); weight: a `conv` of the input and `g` with batch and channels swapped (strides and dilations exchanged, per group) |
//! | | `conv_transpose` | input: `conv(g, w)`; weight: as for `conv`, roles swapped |
//! | | `max_pool` | `scatter_add` of `g` at `argmax_pool`'s indices (**ties: the first maximum**, as `argmax_pool`) |
//! | | `avg_pool` | `conv_transpose` of `g / count` with a ones kernel, per channel (needs concrete spatial sizes) |
//! | movement | `reshape transpose expand` | reshape back / inverse permutation / sum over broadcast axes |
//! | | `slice` | zeros concatenated around it (step 1, symbolic axes allowed) or `scatter_add` (other steps) |
//! | | `concat` | slices (a gather of run-time positions where an offset is symbolic) |
//! | | `pad` | constant: `pad` with negated pads; reflect/edge/wrap: `scatter_add` of each axis's source positions |
//! | | `resize` | every mode: the transpose of each axis's interpolation matrix, obtained by resizing an identity matrix with the same attributes (needs concrete lengths on resized axes) |
//! | indexing | `gather` | `scatter_add` |
//! | | `scatter_add` | data: `g`; updates: `gather(g)` |
//! | | `gather_elements` / `gather_nd` | `scatter_elements(add)` / `scatter_nd(add)` (batch axes turned into index columns) |
//! | | `scatter_elements` / `scatter_nd` | `add`: `g` and a gather of it; `none`: overwritten data positions get 0, each update gets its gradient only where it is the one written (last wins); `mul`: products of the others (by division: not defined where an update is zero); `max`/`min`: ties share equally between data and updates |
//! | collective | `all_reduce all_gather reduce_scatter` | collectives of the adjoints (module `collective`); `broadcast` is unsupported |
//! | composite | `softmax log_softmax` | direct rules: `y·(g - Σ g·y)`, `g - exp(y)·Σ g` |
//! | | `layer_norm batch_norm gelu attention lstm gru rnn` | through their expansion (`nnc_ir::composite::expand`), recomputed in the backward graph |
//!
//! # Zero gradient
//!
//! `sign floor ceil round`: piecewise constant, so their gradient is zero (not an error).
//!
//! # No gradient (results or operands that are not floating point)
//!
//! `constant iota` (no operands); `not is_nan is_inf`, `and or xor`, `eq ne lt le gt ge`,
//! `argmax argmin argmax_pool`, `topk`'s indices, `cast` to or from an integer or `bool`, and the
//! index operands of gathers and scatters: these produce or consume integers or booleans, so no
//! gradient flows through them. Integer-typed arithmetic carries no gradient either.
//!
//! # Unsupported
//!
//! Cases that need a concrete size the graph leaves symbolic (the weight gradient of a `conv`
//! whose output spatial sizes are symbolic, `avg_pool`, `resize` and non-unit-step `slice` of a
//! symbolic axis, `scatter_* {reduction = none}` with symbolic update shapes) are reported as
//! [`crate::GradError::Unsupported`] naming the node.

use crate::util::R;
use nnc_ir::{GraphBuilder, Op, ValueId};

pub mod collective;
pub mod composite;
pub mod elementwise;
pub mod indexing;
pub mod linalg;
pub mod movement;
pub mod reduce;

/// One node being differentiated.
pub(crate) struct NodeCtx<'a> {
    pub op: &'a Op,
    pub inputs: &'a [ValueId],
    pub outputs: &'a [ValueId],
    /// The adjoint of each result, if any reaches it.
    pub grads: &'a [Option<ValueId>],
    /// Which operands need a gradient.
    pub needs: &'a [bool],
    /// The node as text, for messages.
    #[allow(dead_code)]
    pub describe: &'a str,
}

impl NodeCtx<'_> {
    /// The adjoint of result `i`, zeros if none reaches it.
    pub fn grad(&self, b: &mut GraphBuilder, i: usize) -> R<ValueId> {
        match self.grads[i] {
            Some(g) => Ok(g),
            None => crate::util::zeros_like(b, self.outputs[i]),
        }
    }

    pub fn none(&self) -> Grads {
        vec![None; self.inputs.len()]
    }
}

/// One adjoint per operand; `None` is zero.
pub(crate) type Grads = Vec<Option<ValueId>>;

/// The gradient rule of `n.op`: one arm per op, no wildcard.
pub(crate) fn rule(b: &mut GraphBuilder, n: &NodeCtx) -> R<Grads> {
    match n.op {
        // Leaves have no operands.
        Op::Constant(_) | Op::Iota { .. } => Ok(n.none()),
        Op::Unary(u) => elementwise::unary(b, n, *u),
        Op::Binary(op) => elementwise::binary(b, n, *op),
        Op::Select => elementwise::select(b, n),
        Op::Cast { to } => elementwise::cast(b, n, *to),
        Op::Reduce { kind, axes, keep_dims } => reduce::reduce(b, n, *kind, axes, *keep_dims),
        // Integer results: no gradient.
        Op::ArgReduce { .. } => Ok(n.none()),
        Op::Cumulative { axis, kind, exclusive, reverse } => {
            reduce::cumulative_rule(b, n, *axis, *kind, *exclusive, *reverse)
        }
        Op::TopK { axis, .. } => reduce::topk(b, n, *axis),
        Op::MatMul => linalg::matmul(b, n),
        Op::Conv { window, groups } => linalg::conv(b, n, window, *groups),
        Op::ConvTranspose { window, output_padding, groups } => {
            linalg::conv_transpose(b, n, window, output_padding, *groups)
        }
        Op::Pool { kind, kernel, window, ceil_mode, count_include_pad } => {
            linalg::pool(b, n, *kind, kernel, window, *ceil_mode, *count_include_pad)
        }
        // Integer results: no gradient.
        Op::ArgMaxPool { .. } => Ok(n.none()),
        Op::Reshape { .. } => movement::reshape(b, n),
        Op::Transpose { perm } => movement::transpose(b, n, perm),
        Op::Expand { .. } => movement::expand(b, n),
        Op::Slice { axes, starts, ends, steps } => movement::slice(b, n, axes, starts, ends, steps),
        Op::Concat { axis } => movement::concat(b, n, *axis),
        Op::Pad { pads, mode, .. } => movement::pad(b, n, pads, *mode),
        Op::Resize(attrs) => movement::resize(b, n, attrs),
        Op::Gather { axis } => indexing::gather(b, n, *axis),
        Op::ScatterAdd { axis } => indexing::scatter_add(b, n, *axis),
        Op::GatherElements { axis } => indexing::gather_elements(b, n, *axis),
        Op::ScatterElements { axis, reduction } => indexing::scatter(b, n, indexing::Kind::Elements(*axis), *reduction),
        Op::GatherNd { batch_dims } => indexing::gather_nd(b, n, *batch_dims),
        Op::ScatterNd { reduction } => indexing::scatter(b, n, indexing::Kind::Nd, *reduction),
        Op::Softmax { axis } => composite::softmax(b, n, *axis),
        Op::LogSoftmax { axis } => composite::log_softmax(b, n, *axis),
        Op::LayerNorm { .. } | Op::BatchNorm { .. } | Op::Gelu { .. } | Op::Attention { .. } | Op::Recurrent { .. } => {
            composite::through_expansion(b, n)
        }
        Op::Collective(c) => collective::collective(b, n, c),
    }
}
