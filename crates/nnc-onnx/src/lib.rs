//! nnc's ONNX front end.
//!
//! - [`proto`]: the ONNX protobuf messages, generated from the vendored `onnx.proto`;
//! - [`tensor`]: `TensorProto` ↔ [`nnc_ir::TensorData`], and `.pb` tensor files.

pub mod error;
pub mod tensor;

/// The ONNX protobuf schema (`onnx.proto`, ONNX 1.22), generated at build time.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::OnnxError;
pub use tensor::{read_tensor_file, tensor_from_proto, tensor_to_proto};
