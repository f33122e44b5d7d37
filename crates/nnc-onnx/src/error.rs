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
}

impl OnnxError {
    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> OnnxError {
        OnnxError::Invalid { what: what.into(), message: message.into() }
    }
}
