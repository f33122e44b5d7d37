//! Errors of the Graph IR: building, verifying and parsing graphs.

/// An error about a graph, with enough context to find the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IrError {
    /// A builder call was given operands its op cannot take; `at` is the caller's `file:line:col`.
    #[error("{at}: `{op}`: {message}")]
    Build { at: String, op: String, message: String },
    /// A node of a graph is malformed.
    #[error("graph `{graph}`, node `{node}`: {message}")]
    Node { graph: String, node: String, message: String },
    /// The graph as a whole is malformed (inputs, outputs, names).
    #[error("graph `{graph}`: {message}")]
    Graph { graph: String, message: String },
    /// Text that is not a well-formed `.nnir` graph.
    #[error("{file}:{line}:{col}: expected {expected}, found {found}")]
    Parse { file: String, line: usize, col: usize, expected: String, found: String },
    /// Well-formed `.nnir` text that does not make a valid graph, at a known place: an
    /// undefined or duplicate name, an unknown op or bad attribute, a type annotation that
    /// disagrees with shape inference. The message names the value or op.
    #[error("{file}:{line}:{col}: {message}")]
    At { file: String, line: usize, col: usize, message: String },
}
