//! The closed set of Graph IR operations and their attributes.
//!
//! Every op is one variant of [`Op`]. Its text name and attributes are here; its shape rule is
//! in `infer.rs`, its expansion (for composites) in `composite.rs`, its meaning in the
//! interpreter: all reached by exhaustive `match`, so a new variant makes the compiler list
//! every place that must learn about it.

use crate::collective::{Collective, CollectiveReduce};
use crate::{DType, Dim, TensorData};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The name in the text form.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            pub fn from_name(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

named_enum!(
    /// Elementwise functions of one operand.
    UnaryOp {
        Neg => "neg", Abs => "abs", Sign => "sign", Relu => "relu",
        Exp => "exp", Log => "log", Sqrt => "sqrt", Rsqrt => "rsqrt", Reciprocal => "reciprocal",
        Sin => "sin", Cos => "cos", Tan => "tan", Asin => "asin", Acos => "acos", Atan => "atan",
        Sinh => "sinh", Cosh => "cosh", Tanh => "tanh", Asinh => "asinh", Acosh => "acosh", Atanh => "atanh",
        Sigmoid => "sigmoid", Erf => "erf", Floor => "floor", Ceil => "ceil", Round => "round",
        Not => "not", IsNan => "is_nan", IsInf => "is_inf",
    }
);

/// What operand and result dtypes a unary op admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryClass {
    /// Any number; the result has the operand's dtype.
    Numeric,
    /// Floating point only; the result has the operand's dtype.
    Float,
    /// `bool` to `bool`, or bitwise on an integer (`not`).
    Logical,
    /// Floating point to `bool`.
    FloatPredicate,
}

impl UnaryOp {
    pub fn class(self) -> UnaryClass {
        use UnaryOp::*;
        match self {
            Neg | Abs | Sign | Relu => UnaryClass::Numeric,
            Not => UnaryClass::Logical,
            IsNan | IsInf => UnaryClass::FloatPredicate,
            Exp | Log | Sqrt | Rsqrt | Reciprocal | Sin | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Tanh
            | Asinh | Acosh | Atanh | Sigmoid | Erf | Floor | Ceil | Round => UnaryClass::Float,
        }
    }
}

named_enum!(
    /// Elementwise functions of two operands, with broadcasting.
    BinaryOp {
        Add => "add", Sub => "sub", Mul => "mul", Div => "div", Rem => "rem", Pow => "pow",
        Max => "max", Min => "min",
        And => "and", Or => "or", Xor => "xor",
        Eq => "eq", Ne => "ne", Lt => "lt", Le => "le", Gt => "gt", Ge => "ge",
    }
);

/// What operand and result dtypes a binary op admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryClass {
    /// Two numbers of one dtype to that dtype.
    Arithmetic,
    /// Two `bool`s to `bool`, or bitwise on two integers of one dtype.
    Logical,
    /// Two values of one dtype to `bool`.
    Comparison,
}

impl BinaryOp {
    pub fn class(self) -> BinaryClass {
        use BinaryOp::*;
        match self {
            Add | Sub | Mul | Div | Rem | Pow | Max | Min => BinaryClass::Arithmetic,
            And | Or | Xor => BinaryClass::Logical,
            Eq | Ne | Lt | Le | Gt | Ge => BinaryClass::Comparison,
        }
    }
}

named_enum!(
    /// How a reduction combines the elements along its axes.
    ReduceKind { Sum => "sum", Mean => "mean", Max => "max", Min => "min", Prod => "prod" }
);

named_enum!(
    /// How `cumulative` combines the elements along its axis.
    CumKind { Sum => "sum", Prod => "prod" }
);

named_enum!(
    /// Index of the largest or smallest element.
    ArgKind { Max => "argmax", Min => "argmin" }
);

named_enum!(
    /// Pooling window function.
    PoolKind { Max => "max_pool", Avg => "avg_pool" }
);

named_enum!(
    /// How `pad` fills the new border.
    PadMode { Constant => "constant", Reflect => "reflect", Edge => "edge", Wrap => "wrap" }
);

named_enum!(
    /// How `scatter_elements` and `scatter_nd` combine an update with the element it lands on:
    /// `none` replaces it, the others combine the two.
    ScatterReduction { None => "none", Add => "add", Mul => "mul", Max => "max", Min => "min" }
);

named_enum!(
    /// How `resize` interpolates.
    ResizeMode { Nearest => "nearest", Linear => "linear", Cubic => "cubic" }
);

named_enum!(
    /// How `resize` maps an output coordinate to an input coordinate (ONNX's
    /// `coordinate_transformation_mode`).
    CoordMode {
        HalfPixel => "half_pixel",
        HalfPixelSymmetric => "half_pixel_symmetric",
        PytorchHalfPixel => "pytorch_half_pixel",
        AlignCorners => "align_corners",
        Asymmetric => "asymmetric",
        TfCropAndResize => "tf_crop_and_resize",
    }
);

named_enum!(
    /// Which neighbour `resize {mode = nearest}` picks.
    NearestMode {
        RoundPreferFloor => "round_prefer_floor",
        RoundPreferCeil => "round_prefer_ceil",
        Floor => "floor",
        Ceil => "ceil",
    }
);

/// The attributes of `resize`: ONNX `Resize` with every input fixed. `axes` are the resized
/// axes; `sizes`, `scales` and `roi` (the starts, then the ends) have one entry (two for `roi`)
/// per listed axis.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coordinate_transformation_mode: CoordMode,
    pub nearest_mode: NearestMode,
    pub cubic_coeff_a: f64,
    pub exclude_outside: bool,
    pub extrapolation_value: f64,
    pub antialias: bool,
    pub axes: Vec<usize>,
    pub sizes: Vec<i64>,
    pub scales: Vec<f64>,
    pub roi: Vec<f64>,
}

named_enum!(
    /// Which formula `gelu` uses.
    GeluApprox { None => "none", Tanh => "tanh" }
);

named_enum!(
    /// The cell of a recurrent layer.
    RnnCell { Lstm => "lstm", Gru => "gru", Simple => "rnn" }
);

named_enum!(
    /// Which way a recurrent layer walks the sequence.
    RnnDirection { Forward => "forward", Reverse => "reverse", Bidirectional => "bidirectional" }
);

impl RnnCell {
    /// How many gate blocks the weights stack: LSTM i,o,f,c; GRU z,r,h; a simple RNN one.
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Lstm => 4,
            RnnCell::Gru => 3,
            RnnCell::Simple => 1,
        }
    }
}

impl RnnDirection {
    pub fn count(self) -> usize {
        if self == RnnDirection::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// Window geometry shared by convolution and pooling. All lists have one entry per spatial
/// axis, except `pads`, which has the begin pads of every spatial axis then the end pads
/// (ONNX's order).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub pads: Vec<i64>,
}

impl Window {
    /// Stride 1, dilation 1, no padding over `n` spatial axes.
    pub fn unit(n: usize) -> Window {
        Window { strides: vec![1; n], dilations: vec![1; n], pads: vec![0; 2 * n] }
    }
}

/// A Graph IR operation: what a node computes from its operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ---- leaves ----
    /// A tensor known at compile time (weights). No operands.
    Constant(TensorData),
    /// `out[i0, .., in] = i_axis`, of the given dtype and shape. No operands.
    Iota {
        dtype: DType,
        shape: Vec<Dim>,
        axis: usize,
    },

    // ---- elementwise ----
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `select(cond, a, b)`: `a` where `cond`, else `b`; broadcasting all three.
    Select,
    /// Conversion to another dtype (floats to integers truncate toward zero and saturate).
    Cast {
        to: DType,
    },

    // ---- reductions ----
    Reduce {
        kind: ReduceKind,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    ArgReduce {
        kind: ArgKind,
        axis: usize,
        keep_dims: bool,
        select_last: bool,
    },
    /// Running sums or products along `axis` (ONNX `CumSum`, `CumProd`): `exclusive` leaves out
    /// the element itself, `reverse` runs from the end.
    Cumulative {
        axis: usize,
        kind: CumKind,
        exclusive: bool,
        reverse: bool,
    },
    /// The `k` largest (or smallest) elements along `axis`, most extreme first (ties: smaller
    /// index first), and their `i64` indices: two results.
    TopK {
        axis: usize,
        k: usize,
        largest: bool,
    },

    // ---- contractions ----
    /// numpy `matmul`: batched over leading axes with broadcasting; 1-D operands are promoted.
    MatMul,
    /// N-d convolution, input `[N, C, ...]`, weight `[M, C/groups, k...]`, no bias.
    Conv {
        window: Window,
        groups: i64,
    },
    /// N-d transposed convolution (the adjoint of `conv`), input `[N, C, ...]`, weight
    /// `[C, M/groups, k...]`, no bias. `output_padding` adds positions at the end of each
    /// spatial axis.
    ConvTranspose {
        window: Window,
        output_padding: Vec<i64>,
        groups: i64,
    },
    Pool {
        kind: PoolKind,
        kernel: Vec<i64>,
        window: Window,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// Where each `max_pool` window's maximum is: its flat row-major index into the whole input
    /// (ONNX MaxPool's `Indices`), first occurrence on ties, as `i64`.
    ArgMaxPool {
        kernel: Vec<i64>,
        window: Window,
        ceil_mode: bool,
    },

    // ---- data movement ----
    Reshape {
        shape: Vec<Dim>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Broadcast to `broadcast(operand shape, shape)` (ONNX `Expand`).
    Expand {
        shape: Vec<Dim>,
    },
    /// ONNX slice semantics: negative starts/ends count from the end, and are clamped.
    Slice {
        axes: Vec<usize>,
        starts: Vec<i64>,
        ends: Vec<i64>,
        steps: Vec<i64>,
    },
    Concat {
        axis: usize,
    },
    /// `pads` lists the begin pad of every axis, then the end pad; negative pads crop.
    Pad {
        pads: Vec<i64>,
        mode: PadMode,
        value: f64,
    },
    /// ONNX `Gather`: pick slices of `data` along `axis` by `indices` (negative counts from the end).
    Gather {
        axis: usize,
    },
    /// The adjoint of `gather`: `scatter_add(data, indices, updates)` adds each slice of
    /// `updates` into `data` at the position its index names.
    ScatterAdd {
        axis: usize,
    },
    /// ONNX `GatherElements`: `out[p] = data[p with axis replaced by indices[p]]`; the result has
    /// the shape of `indices`.
    GatherElements {
        axis: usize,
    },
    /// ONNX `ScatterElements`: `data` with each `updates[p]` combined into the element at `p`
    /// with axis `axis` replaced by `indices[p]`, in row-major order of `updates`.
    ScatterElements {
        axis: usize,
        reduction: ScatterReduction,
    },
    /// ONNX `GatherND`: each row of the last axis of `indices` addresses a slice of `data`
    /// (after `batch_dims` leading axes shared by both).
    GatherNd {
        batch_dims: usize,
    },
    /// ONNX `ScatterND`: the adjoint of `gather_nd` (no batch axes), combining each update slice
    /// into `data` with `reduction`.
    ScatterNd {
        reduction: ScatterReduction,
    },

    /// ONNX `Resize`: interpolation along `axes` to static sizes.
    Resize(ResizeAttrs),

    // ---- composites: defined by their expansion into the ops above ----
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    /// `layer_norm(x, scale, bias)`, normalising over the axes from `axis` to the last.
    LayerNorm {
        axis: usize,
        epsilon: f64,
    },
    /// `batch_norm(x, scale, bias, mean, var)` in inference mode, channels on axis 1.
    BatchNorm {
        epsilon: f64,
    },
    Gelu {
        approximate: GeluApprox,
    },
    /// A recurrent layer (ONNX's LSTM, GRU and RNN with default activations), time-major:
    /// `x [S, B, I]`, `w [D, G*H, I]`, `r [D, G*H, H]`, `b [D, 2*G*H]`, `h0 [D, B, H]`, and for
    /// LSTM `c0 [D, B, H]` and peepholes `p [D, 3*H]`. Results: `y [S, D, B, H]`, `y_h [D, B, H]`
    /// and for LSTM `y_c [D, B, H]`. Gate order and equations are ONNX's; `clip` bounds gate
    /// pre-activations, `input_forget` couples LSTM's forget gate to `1 - input`, and
    /// `linear_before_reset` applies GRU's reset gate after the recurrent product.
    Recurrent {
        cell: RnnCell,
        hidden: usize,
        direction: RnnDirection,
        clip: Option<f64>,
        input_forget: bool,
        linear_before_reset: bool,
    },
    /// `attention(q, k, v [, mask])`: `softmax(q·kᵀ·scale + mask) · v` over the last two axes;
    /// `scale` defaults to `1/sqrt(d)`; `causal` masks keys after the query position.
    Attention {
        scale: Option<f64>,
        causal: bool,
    },

    // ---- communication between ranks (module `collective`) ----
    Collective(Collective),
}

/// An attribute value as it appears in the text form.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
    /// A bare word: a dtype, a mode, `true`/`false`, or a dimension symbol.
    Ident(String),
    /// A dimension expression with symbols, such as `2*batch`.
    Dim(Dim),
    List(Vec<AttrValue>),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(v) => write!(f, "{v}"),
            AttrValue::Float(v) => f.write_str(&format_float(*v)),
            AttrValue::Ident(s) => f.write_str(s),
            AttrValue::Dim(d) => write!(f, "{d}"),
            AttrValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Prints a float so that it reads back to the same bits and never looks like an integer:
/// `1.0`, `0.001`, `1e-12`, `inf`, `-inf`, `nan`, `-nan`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        // The sign survives (`-nan` parses as the negated NaN); other payload bits do not.
        if v.is_sign_negative() { "-nan" } else { "nan" }.into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

/// Attributes by name, as parsed; [`Op::from_parts`] takes what it needs and rejects leftovers.
pub type AttrMap = BTreeMap<String, AttrValue>;

fn ints(v: &[i64]) -> AttrValue {
    AttrValue::List(v.iter().map(|&x| AttrValue::Int(x)).collect())
}

fn floats(v: &[f64]) -> AttrValue {
    AttrValue::List(v.iter().map(|&x| AttrValue::Float(x)).collect())
}

fn usizes(v: &[usize]) -> AttrValue {
    AttrValue::List(v.iter().map(|&x| AttrValue::Int(x as i64)).collect())
}

fn dims(v: &[Dim]) -> AttrValue {
    AttrValue::List(
        v.iter().map(|d| d.as_const().map(AttrValue::Int).unwrap_or_else(|| AttrValue::Dim(d.clone()))).collect(),
    )
}

fn boolean(b: bool) -> AttrValue {
    AttrValue::Ident(if b { "true" } else { "false" }.into())
}

fn ident(s: &str) -> AttrValue {
    AttrValue::Ident(s.into())
}

impl Op {
    /// The op's name in the text form.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Constant(_) => "constant",
            Op::Iota { .. } => "iota",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Select => "select",
            Op::Cast { .. } => "cast",
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Sum => "reduce_sum",
                ReduceKind::Mean => "reduce_mean",
                ReduceKind::Max => "reduce_max",
                ReduceKind::Min => "reduce_min",
                ReduceKind::Prod => "reduce_prod",
            },
            Op::ArgReduce { kind, .. } => kind.name(),
            Op::TopK { .. } => "topk",
            Op::Cumulative { .. } => "cumulative",
            Op::MatMul => "matmul",
            Op::Conv { .. } => "conv",
            Op::ConvTranspose { .. } => "conv_transpose",
            Op::Pool { kind, .. } => kind.name(),
            Op::ArgMaxPool { .. } => "argmax_pool",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Expand { .. } => "expand",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::GatherElements { .. } => "gather_elements",
            Op::Resize(_) => "resize",
            Op::ScatterElements { .. } => "scatter_elements",
            Op::GatherNd { .. } => "gather_nd",
            Op::ScatterNd { .. } => "scatter_nd",
            Op::Softmax { .. } => "softmax",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::LayerNorm { .. } => "layer_norm",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Gelu { .. } => "gelu",
            Op::Attention { .. } => "attention",
            Op::Recurrent { cell, .. } => cell.name(),
            Op::Collective(c) => c.name(),
        }
    }

    /// The attributes in their canonical order (the order the printer uses).
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        match self {
            Op::Constant(_) | Op::Unary(_) | Op::Binary(_) | Op::Select | Op::MatMul => vec![],
            Op::Iota { dtype, shape, axis } => {
                vec![("dtype", ident(dtype.name())), ("shape", dims(shape)), ("axis", AttrValue::Int(*axis as i64))]
            }
            Op::Cast { to } => vec![("to", ident(to.name()))],
            Op::Reduce { axes, keep_dims, .. } => vec![("axes", usizes(axes)), ("keep_dims", boolean(*keep_dims))],
            Op::ArgReduce { axis, keep_dims, select_last, .. } => vec![
                ("axis", AttrValue::Int(*axis as i64)),
                ("keep_dims", boolean(*keep_dims)),
                ("select_last", boolean(*select_last)),
            ],
            Op::Cumulative { axis, kind, exclusive, reverse } => vec![
                ("axis", AttrValue::Int(*axis as i64)),
                ("kind", ident(kind.name())),
                ("exclusive", boolean(*exclusive)),
                ("reverse", boolean(*reverse)),
            ],
            Op::TopK { axis, k, largest } => vec![
                ("axis", AttrValue::Int(*axis as i64)),
                ("k", AttrValue::Int(*k as i64)),
                ("largest", boolean(*largest)),
            ],
            Op::Conv { window, groups } => {
                let mut a = window_attrs(window);
                a.push(("groups", AttrValue::Int(*groups)));
                a
            }
            Op::ConvTranspose { window, output_padding, groups } => {
                let mut a = window_attrs(window);
                a.push(("output_padding", ints(output_padding)));
                a.push(("groups", AttrValue::Int(*groups)));
                a
            }
            Op::ArgMaxPool { kernel, window, ceil_mode } => {
                let mut a = vec![("kernel", ints(kernel))];
                a.extend(window_attrs(window));
                a.push(("ceil_mode", boolean(*ceil_mode)));
                a
            }
            Op::Pool { kernel, window, ceil_mode, count_include_pad, .. } => {
                let mut a = vec![("kernel", ints(kernel))];
                a.extend(window_attrs(window));
                a.push(("ceil_mode", boolean(*ceil_mode)));
                a.push(("count_include_pad", boolean(*count_include_pad)));
                a
            }
            Op::Reshape { shape } | Op::Expand { shape } => vec![("shape", dims(shape))],
            Op::Transpose { perm } => vec![("perm", usizes(perm))],
            Op::Slice { axes, starts, ends, steps } => {
                vec![("axes", usizes(axes)), ("starts", ints(starts)), ("ends", ints(ends)), ("steps", ints(steps))]
            }
            Op::Concat { axis }
            | Op::Gather { axis }
            | Op::ScatterAdd { axis }
            | Op::GatherElements { axis }
            | Op::Softmax { axis }
            | Op::LogSoftmax { axis } => {
                vec![("axis", AttrValue::Int(*axis as i64))]
            }
            Op::ScatterElements { axis, reduction } => {
                vec![("axis", AttrValue::Int(*axis as i64)), ("reduction", ident(reduction.name()))]
            }
            Op::Resize(r) => vec![
                ("mode", ident(r.mode.name())),
                ("coordinate_transformation_mode", ident(r.coordinate_transformation_mode.name())),
                ("nearest_mode", ident(r.nearest_mode.name())),
                ("cubic_coeff_a", AttrValue::Float(r.cubic_coeff_a)),
                ("exclude_outside", boolean(r.exclude_outside)),
                ("extrapolation_value", AttrValue::Float(r.extrapolation_value)),
                ("antialias", boolean(r.antialias)),
                ("axes", usizes(&r.axes)),
                ("sizes", ints(&r.sizes)),
                ("scales", floats(&r.scales)),
                ("roi", floats(&r.roi)),
            ],
            Op::GatherNd { batch_dims } => vec![("batch_dims", AttrValue::Int(*batch_dims as i64))],
            Op::ScatterNd { reduction } => vec![("reduction", ident(reduction.name()))],
            Op::Pad { pads, mode, value } => {
                vec![("pads", ints(pads)), ("mode", ident(mode.name())), ("value", AttrValue::Float(*value))]
            }
            Op::LayerNorm { axis, epsilon } => {
                vec![("axis", AttrValue::Int(*axis as i64)), ("epsilon", AttrValue::Float(*epsilon))]
            }
            Op::BatchNorm { epsilon } => vec![("epsilon", AttrValue::Float(*epsilon))],
            Op::Gelu { approximate } => vec![("approximate", ident(approximate.name()))],
            Op::Attention { scale, causal } => {
                let mut a = Vec::new();
                if let Some(s) = scale {
                    a.push(("scale", AttrValue::Float(*s)));
                }
                a.push(("causal", boolean(*causal)));
                a
            }
            Op::Recurrent { cell, hidden, direction, clip, input_forget, linear_before_reset } => {
                let mut a = vec![("hidden", AttrValue::Int(*hidden as i64)), ("direction", ident(direction.name()))];
                if let Some(c) = clip {
                    a.push(("clip", AttrValue::Float(*c)));
                }
                match cell {
                    RnnCell::Lstm => a.push(("input_forget", boolean(*input_forget))),
                    RnnCell::Gru => a.push(("linear_before_reset", boolean(*linear_before_reset))),
                    RnnCell::Simple => {}
                }
                a
            }
            Op::Collective(c) => {
                let int = |v: usize| AttrValue::Int(v as i64);
                match *c {
                    Collective::AllReduce { op, world } => vec![("op", ident(op.name())), ("world", int(world))],
                    Collective::AllGather { axis, world } => vec![("axis", int(axis)), ("world", int(world))],
                    Collective::ReduceScatter { op, axis, world } => {
                        vec![("op", ident(op.name())), ("axis", int(axis)), ("world", int(world))]
                    }
                    Collective::Broadcast { root, world } => vec![("root", int(root)), ("world", int(world))],
                }
            }
        }
    }

    /// Builds an op from its text name and attributes. `Constant` is not built here: its payload
    /// is a literal, which the parser handles. Unknown names, missing, extra or ill-typed
    /// attributes are errors that name the op and attribute.
    pub fn from_parts(name: &str, attrs: &AttrMap) -> Result<Op, String> {
        let mut a = Attrs { op: name, map: attrs, used: Vec::new() };
        let op = if let Some(u) = UnaryOp::from_name(name) {
            Op::Unary(u)
        } else if let Some(b) = BinaryOp::from_name(name) {
            Op::Binary(b)
        } else if let Some(kind) = name.strip_prefix("reduce_").and_then(ReduceKind::from_name) {
            Op::Reduce { kind, axes: a.usizes("axes")?, keep_dims: a.boolean("keep_dims")? }
        } else if let Some(kind) = ArgKind::from_name(name) {
            Op::ArgReduce {
                kind,
                axis: a.usize("axis")?,
                keep_dims: a.boolean("keep_dims")?,
                select_last: a.boolean("select_last")?,
            }
        } else if let Some(cell) = RnnCell::from_name(name) {
            Op::Recurrent {
                cell,
                hidden: a.usize("hidden")?,
                direction: a.named("direction", RnnDirection::from_name)?,
                clip: if attrs.contains_key("clip") { Some(a.float("clip")?) } else { None },
                input_forget: cell == RnnCell::Lstm && a.boolean("input_forget")?,
                linear_before_reset: cell == RnnCell::Gru && a.boolean("linear_before_reset")?,
            }
        } else if Collective::is_name(name) {
            let world = a.usize("world")?;
            Op::Collective(match name {
                "all_reduce" => Collective::AllReduce { op: a.named("op", CollectiveReduce::from_name)?, world },
                "all_gather" => Collective::AllGather { axis: a.usize("axis")?, world },
                "reduce_scatter" => Collective::ReduceScatter {
                    op: a.named("op", CollectiveReduce::from_name)?,
                    axis: a.usize("axis")?,
                    world,
                },
                _ => Collective::Broadcast { root: a.usize("root")?, world },
            })
        } else if let Some(kind) = PoolKind::from_name(name) {
            Op::Pool {
                kind,
                kernel: a.ints("kernel")?,
                window: a.window()?,
                ceil_mode: a.boolean("ceil_mode")?,
                count_include_pad: a.boolean("count_include_pad")?,
            }
        } else {
            match name {
                "constant" => return Err("`constant` takes a literal, not attributes".into()),
                "iota" => Op::Iota { dtype: a.dtype("dtype")?, shape: a.dims("shape")?, axis: a.usize("axis")? },
                "select" => Op::Select,
                "cast" => Op::Cast { to: a.dtype("to")? },
                "matmul" => Op::MatMul,
                "cumulative" => Op::Cumulative {
                    axis: a.usize("axis")?,
                    kind: a.named("kind", CumKind::from_name)?,
                    exclusive: a.boolean("exclusive")?,
                    reverse: a.boolean("reverse")?,
                },
                "topk" => Op::TopK { axis: a.usize("axis")?, k: a.usize("k")?, largest: a.boolean("largest")? },
                "conv" => Op::Conv { window: a.window()?, groups: a.int("groups")? },
                "conv_transpose" => Op::ConvTranspose {
                    window: a.window()?,
                    output_padding: a.ints("output_padding")?,
                    groups: a.int("groups")?,
                },
                "argmax_pool" => Op::ArgMaxPool {
                    kernel: a.ints("kernel")?,
                    window: a.window()?,
                    ceil_mode: a.boolean("ceil_mode")?,
                },
                "reshape" => Op::Reshape { shape: a.dims("shape")? },
                "expand" => Op::Expand { shape: a.dims("shape")? },
                "transpose" => Op::Transpose { perm: a.usizes("perm")? },
                "slice" => Op::Slice {
                    axes: a.usizes("axes")?,
                    starts: a.ints("starts")?,
                    ends: a.ints("ends")?,
                    steps: a.ints("steps")?,
                },
                "concat" => Op::Concat { axis: a.usize("axis")? },
                "pad" => Op::Pad {
                    pads: a.ints("pads")?,
                    mode: a.named("mode", PadMode::from_name)?,
                    value: a.float("value")?,
                },
                "gather" => Op::Gather { axis: a.usize("axis")? },
                "scatter_add" => Op::ScatterAdd { axis: a.usize("axis")? },
                "gather_elements" => Op::GatherElements { axis: a.usize("axis")? },
                "scatter_elements" => Op::ScatterElements {
                    axis: a.usize("axis")?,
                    reduction: a.named("reduction", ScatterReduction::from_name)?,
                },
                "resize" => Op::Resize(ResizeAttrs {
                    mode: a.named("mode", ResizeMode::from_name)?,
                    coordinate_transformation_mode: a.named("coordinate_transformation_mode", CoordMode::from_name)?,
                    nearest_mode: a.named("nearest_mode", NearestMode::from_name)?,
                    cubic_coeff_a: a.float("cubic_coeff_a")?,
                    exclude_outside: a.boolean("exclude_outside")?,
                    extrapolation_value: a.float("extrapolation_value")?,
                    antialias: a.boolean("antialias")?,
                    axes: a.usizes("axes")?,
                    sizes: a.ints("sizes")?,
                    scales: a.floats("scales")?,
                    roi: a.floats("roi")?,
                }),
                "gather_nd" => Op::GatherNd { batch_dims: a.usize("batch_dims")? },
                "scatter_nd" => Op::ScatterNd { reduction: a.named("reduction", ScatterReduction::from_name)? },
                "softmax" => Op::Softmax { axis: a.usize("axis")? },
                "log_softmax" => Op::LogSoftmax { axis: a.usize("axis")? },
                "layer_norm" => Op::LayerNorm { axis: a.usize("axis")?, epsilon: a.float("epsilon")? },
                "batch_norm" => Op::BatchNorm { epsilon: a.float("epsilon")? },
                "gelu" => Op::Gelu { approximate: a.named("approximate", GeluApprox::from_name)? },
                "attention" => Op::Attention {
                    scale: if attrs.contains_key("scale") { Some(a.float("scale")?) } else { None },
                    causal: a.boolean("causal")?,
                },
                _ => return Err(format!("unknown op `{name}`")),
            }
        };
        a.reject_unused()?;
        Ok(op)
    }

    /// True for composites: ops defined by their expansion into primitives.
    pub fn is_composite(&self) -> bool {
        matches!(
            self,
            Op::Softmax { .. }
                | Op::LogSoftmax { .. }
                | Op::LayerNorm { .. }
                | Op::BatchNorm { .. }
                | Op::Gelu { .. }
                | Op::Attention { .. }
                | Op::Recurrent { .. }
        )
    }

    /// How many operands the op takes: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Constant(_) | Op::Iota { .. } => (0, 0),
            Op::Unary(_) | Op::Cast { .. } | Op::Reduce { .. } | Op::ArgReduce { .. } | Op::Pool { .. } => (1, 1),
            Op::ArgMaxPool { .. } | Op::TopK { .. } | Op::Resize(_) | Op::Cumulative { .. } => (1, 1),
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Expand { .. } | Op::Slice { .. } | Op::Pad { .. } => (1, 1),
            Op::Softmax { .. } | Op::LogSoftmax { .. } | Op::Gelu { .. } | Op::Collective(_) => (1, 1),
            Op::Binary(_) | Op::MatMul | Op::Conv { .. } | Op::ConvTranspose { .. } | Op::Gather { .. } => (2, 2),
            Op::GatherElements { .. } | Op::GatherNd { .. } => (2, 2),
            Op::Select | Op::ScatterAdd { .. } | Op::LayerNorm { .. } => (3, 3),
            Op::ScatterElements { .. } | Op::ScatterNd { .. } => (3, 3),
            Op::Attention { .. } => (3, 4),
            Op::BatchNorm { .. } => (5, 5),
            Op::Recurrent { cell: RnnCell::Lstm, .. } => (7, 7),
            Op::Recurrent { .. } => (5, 5),
            Op::Concat { .. } => (1, usize::MAX),
        }
    }
}

fn window_attrs(w: &Window) -> Vec<(&'static str, AttrValue)> {
    vec![("strides", ints(&w.strides)), ("dilations", ints(&w.dilations)), ("pads", ints(&w.pads))]
}

/// Typed access to parsed attributes, remembering which were used.
struct Attrs<'a> {
    op: &'a str,
    map: &'a AttrMap,
    used: Vec<&'static str>,
}

impl Attrs<'_> {
    fn get(&mut self, key: &'static str) -> Result<AttrValue, String> {
        self.used.push(key);
        self.map.get(key).cloned().ok_or_else(|| format!("`{}` needs attribute `{key}`", self.op))
    }

    fn wrong(&self, key: &str, want: &str, found: &AttrValue) -> String {
        format!("`{}` attribute `{key}`: expected {want}, found `{found}`", self.op)
    }

    fn int(&mut self, key: &'static str) -> Result<i64, String> {
        match self.get(key)? {
            AttrValue::Int(v) => Ok(v),
            other => Err(self.wrong(key, "an integer", &other)),
        }
    }

    fn usize(&mut self, key: &'static str) -> Result<usize, String> {
        let v = self.int(key)?;
        usize::try_from(v)
            .map_err(|_| format!("`{}` attribute `{key}`: expected a non-negative integer, found {v}", self.op))
    }

    fn float(&mut self, key: &'static str) -> Result<f64, String> {
        match self.get(key)? {
            AttrValue::Float(v) => Ok(v),
            AttrValue::Int(v) => Ok(v as f64),
            other => Err(self.wrong(key, "a number", &other)),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<bool, String> {
        match self.get(key)? {
            AttrValue::Ident(s) if s == "true" => Ok(true),
            AttrValue::Ident(s) if s == "false" => Ok(false),
            other => Err(self.wrong(key, "`true` or `false`", &other)),
        }
    }

    fn named<T>(&mut self, key: &'static str, parse: fn(&str) -> Option<T>) -> Result<T, String> {
        let v = self.get(key)?;
        match &v {
            AttrValue::Ident(s) => parse(s).ok_or_else(|| self.wrong(key, "a known name", &v)),
            _ => Err(self.wrong(key, "a name", &v)),
        }
    }

    fn dtype(&mut self, key: &'static str) -> Result<DType, String> {
        self.named(key, DType::from_name)
    }

    fn list(&mut self, key: &'static str) -> Result<Vec<AttrValue>, String> {
        match self.get(key)? {
            AttrValue::List(items) => Ok(items),
            other => Err(self.wrong(key, "a list", &other)),
        }
    }

    fn ints(&mut self, key: &'static str) -> Result<Vec<i64>, String> {
        let items = self.list(key)?;
        items
            .iter()
            .map(|v| match v {
                AttrValue::Int(i) => Ok(*i),
                other => Err(self.wrong(key, "a list of integers", other)),
            })
            .collect()
    }

    fn floats(&mut self, key: &'static str) -> Result<Vec<f64>, String> {
        let items = self.list(key)?;
        items
            .iter()
            .map(|v| match v {
                AttrValue::Float(x) => Ok(*x),
                AttrValue::Int(i) => Ok(*i as f64),
                other => Err(self.wrong(key, "a list of numbers", other)),
            })
            .collect()
    }

    fn usizes(&mut self, key: &'static str) -> Result<Vec<usize>, String> {
        let op = self.op;
        self.ints(key)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| format!("`{op}` attribute `{key}`: {v} is negative")))
            .collect()
    }

    fn dims(&mut self, key: &'static str) -> Result<Vec<Dim>, String> {
        let items = self.list(key)?;
        items
            .iter()
            .map(|v| match v {
                AttrValue::Int(i) => Ok(Dim::constant(*i)),
                AttrValue::Dim(d) => Ok(d.clone()),
                AttrValue::Ident(s) if crate::dim::is_symbol_name(s) => Ok(Dim::sym(s)),
                other => Err(self.wrong(key, "a list of dimensions", other)),
            })
            .collect()
    }

    fn window(&mut self) -> Result<Window, String> {
        Ok(Window { strides: self.ints("strides")?, dilations: self.ints("dilations")?, pads: self.ints("pads")? })
    }

    fn reject_unused(&self) -> Result<(), String> {
        let extra: Vec<&str> = self.map.keys().map(String::as_str).filter(|k| !self.used.contains(k)).collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "`{}` has no attribute {}",
                self.op,
                extra.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op that has a text name and attributes rebuilds from them.
    #[test]
    fn attrs_round_trip_through_from_parts() {
        let ops = vec![
            Op::Unary(UnaryOp::Erf),
            Op::Binary(BinaryOp::Ge),
            Op::Iota { dtype: DType::I64, shape: vec![Dim::sym("n"), 3.into()], axis: 1 },
            Op::Cast { to: DType::F16 },
            Op::Reduce { kind: ReduceKind::Mean, axes: vec![0, 2], keep_dims: true },
            Op::ArgReduce { kind: ArgKind::Min, axis: 1, keep_dims: false, select_last: true },
            Op::Conv { window: Window::unit(2), groups: 2 },
            Op::ConvTranspose { window: Window::unit(1), output_padding: vec![1], groups: 1 },
            Op::Pool {
                kind: PoolKind::Avg,
                kernel: vec![3],
                window: Window::unit(1),
                ceil_mode: true,
                count_include_pad: false,
            },
            Op::Reshape { shape: vec![Dim::sym("b") * 2.into(), 5.into()] },
            Op::Slice { axes: vec![0], starts: vec![-1], ends: vec![i64::MIN], steps: vec![-1] },
            Op::Pad { pads: vec![1, 0, 0, 2], mode: PadMode::Reflect, value: 0.0 },
            Op::GatherElements { axis: 1 },
            Op::Resize(ResizeAttrs {
                mode: ResizeMode::Cubic,
                coordinate_transformation_mode: CoordMode::TfCropAndResize,
                nearest_mode: NearestMode::Ceil,
                cubic_coeff_a: -0.5,
                exclude_outside: true,
                extrapolation_value: 10.0,
                antialias: false,
                axes: vec![2, 3],
                sizes: vec![3, 5],
                scales: vec![0.75, 1.25],
                roi: vec![0.1, 0.0, 0.9, 1.0],
            }),
            Op::TopK { axis: 2, k: 3, largest: false },
            Op::Cumulative { axis: 1, kind: CumKind::Prod, exclusive: true, reverse: false },
            Op::ScatterElements { axis: 0, reduction: ScatterReduction::Max },
            Op::GatherNd { batch_dims: 1 },
            Op::ScatterNd { reduction: ScatterReduction::None },
            Op::LayerNorm { axis: 2, epsilon: 1e-5 },
            Op::Gelu { approximate: GeluApprox::Tanh },
            Op::Attention { scale: Some(0.125), causal: true },
            Op::Attention { scale: None, causal: false },
            Op::Collective(Collective::AllReduce { op: CollectiveReduce::Mean, world: 4 }),
            Op::Collective(Collective::AllGather { axis: 1, world: 2 }),
            Op::Collective(Collective::ReduceScatter { op: CollectiveReduce::Max, axis: 0, world: 3 }),
            Op::Collective(Collective::Broadcast { root: 1, world: 2 }),
            Op::Recurrent {
                cell: RnnCell::Lstm,
                hidden: 8,
                direction: RnnDirection::Bidirectional,
                clip: Some(3.0),
                input_forget: true,
                linear_before_reset: false,
            },
            Op::Recurrent {
                cell: RnnCell::Gru,
                hidden: 4,
                direction: RnnDirection::Reverse,
                clip: None,
                input_forget: false,
                linear_before_reset: true,
            },
        ];
        for op in ops {
            let map: AttrMap = op.attrs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(Op::from_parts(op.name(), &map).unwrap(), op);
        }
    }

    #[test]
    fn attribute_errors_name_the_op_and_attribute() {
        let mut map = AttrMap::new();
        assert!(Op::from_parts("concat", &map).unwrap_err().contains("`concat` needs attribute `axis`"));
        map.insert("axis".into(), AttrValue::Int(0));
        map.insert("bogus".into(), AttrValue::Int(0));
        assert!(Op::from_parts("concat", &map).unwrap_err().contains("no attribute `bogus`"));
        assert!(Op::from_parts("frobnicate", &AttrMap::new()).unwrap_err().contains("unknown op"));
    }

    #[test]
    fn floats_never_print_as_integers() {
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(1e-5), "1e-5");
        assert_eq!(format_float(f64::NEG_INFINITY), "-inf");
    }
}
