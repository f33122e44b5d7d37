//! The `.nnir` text form: a printer and a parser that round-trip exactly.
//!
//! ```text
//! # a comment runs to end of line
//! graph mlp(%x: f32[batch, 64], %"onnx/name:0": i64[]) {
//!   %w: f32[64, 2] = constant [...]
//!   %h: f32[batch, 2] = matmul(%x, %w)
//!   %r: f32[batch, 2] = softmax(%h) {axis = 1}
//!   return %r, %h
//! }
//! ```
//!
//! [`print`] writes every result type and every attribute (in [`Op::attrs`](crate::Op::attrs)
//! order); [`parse`] accepts results with or without types, attributes in any order, infers
//! every type with [`infer`](crate::infer) and verifies the graph. For any graph `g` that
//! [`GraphBuilder::finish`](crate::GraphBuilder::finish) returns, `parse(&print(&g), f) == Ok(g)`.
//!
//! The parser never panics and never allocates more than a small multiple of its input: numbers
//! in the text (shapes, element counts) are checked before anything is sized by them, and
//! nesting and the size of symbolic dimension expressions are capped (see the `MAX_*` limits).
//!
//! In attribute values the words `inf` and `nan` are floats, so a dimension symbol of that name
//! cannot appear in a `shape` attribute (it can in types).
//!
//! Modules: `lexer` (tokens), `print` (the printer), `parse` (graph structure), `expr`
//! (dimension expressions, types and attribute values), `literal` (constant literals).

mod expr;
mod lexer;
mod literal;
mod parse;
mod print;

use crate::{Graph, IrError};

pub use print::{format_f32, format_graph_name, format_value_name};

/// How deeply parentheses and lists may nest in one expression.
pub const MAX_NESTING: usize = 64;
/// The most terms one parsed dimension expression may have (`2*b + s + 1` has three).
pub const MAX_DIM_TERMS: usize = 256;
/// The highest degree of one parsed dimension (`b*s*s` has degree three).
pub const MAX_DIM_DEGREE: usize = 32;
/// Bound on a whole shape: the product over its axes of each dimension's term count. This
/// bounds the work of multiplying the dimensions out (element counts, `reshape`), so a short
/// file cannot make the parser build a huge polynomial.
pub const MAX_SHAPE_TERMS: usize = 4096;
/// Bound on a whole shape: the sum over its axes of each dimension's degree.
pub const MAX_SHAPE_DEGREE: usize = 64;
/// The highest rank a value may have. Some shape rules take time quadratic in the rank (axis
/// lists are checked for repeats), so it is bounded; real models stay far below it.
pub const MAX_RANK: usize = 1024;

/// How [`print_with`] abbreviates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Constants with more elements than this print as `constant <elided N elements>`, which
    /// [`parse`] rejects. `None` (the default) prints every element.
    pub elide_constants_over: Option<usize>,
}

/// The full text of `graph`; [`parse`] reads it back to an equal graph.
pub fn print(graph: &Graph) -> String {
    print_with(graph, &PrintOptions::default())
}

/// The text of `graph`, abbreviated as `opts` says (for dumps and error messages).
pub fn print_with(graph: &Graph, opts: &PrintOptions) -> String {
    print::print_graph(graph, opts)
}

/// Parses `.nnir` text and verifies the graph. `file` is used in error messages
/// (`file:line:col: ...`). Values are numbered in definition order: inputs, then node results.
pub fn parse(src: &str, file: &str) -> Result<Graph, IrError> {
    let graph = parse::parse_graph(src, file)?;
    crate::verify(&graph)?;
    Ok(graph)
}
