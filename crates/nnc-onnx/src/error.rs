//! Errors of the ONNX front end; each names the file, tensor, node or op at fault.

/// What went wrong reading or importing ONNX.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{what}: not a valid ONNX protobuf message ({source})")]
    Decode { what: String, source: prost::DecodeError },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    /// Every node of the model that could not be imported, listed at once.
    #[error("{file}: {} node(s) cannot be imported:\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Unsupported { file: String, problems: Vec<NodeProblem> },
}

/// Why one ONNX node could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProblem {
    pub node: String,
    pub op_type: String,
    pub message: String,
    /// The node needs values known only at run time (a condition, a trip count, a sequence, an
    /// output whose shape depends on data): [`crate::staged`] runs such models, a compiled
    /// graph between each such node.
    pub run_time: bool,
}

impl std::fmt::Display for NodeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node `{}` ({}): {}", self.node, self.op_type, self.message)
    }
}

impl OnnxError {
    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> OnnxError {
        OnnxError::Invalid { what: what.into(), message: message.into() }
    }
}
